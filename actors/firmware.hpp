/// The firmware actor: owns the firmware catalog, its verification, and who
/// uses each firmware. A task reserves its target before it validates, and
/// lets go once it has ended, so that deleting firmware is decided here
/// alone: a task still being created counts as using it.
#pragma once

#include "actors/context.hpp"
#include "actors/outbox.hpp"
#include "events/firmware.hpp"

#include <map>
#include <set>
#include <utility>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// The firmware actor as implemented: `firmware_actor` plus its flush.
using firmware_impl = firmware_actor::extend<caf::reacts_to<flush_atom>>;

struct firmware_actor_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = firmware_impl::stateful_pointer<firmware_actor_state>;

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.firmware";

  // -- constructors -----------------------------------------------------------

  explicit firmware_actor_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- operator commands ------------------------------------------------------

  caf::result<firmware_record> operator()(create_firmware& cmd);
  caf::result<firmware_record> operator()(verify_firmware& cmd);
  caf::result<firmware_record> operator()(skip_verification& cmd);
  caf::result<firmware_record> operator()(get_firmware& cmd);
  caf::result<firmware_page> operator()(list_firmware& cmd);
  caf::result<accepted> operator()(delete_firmware& cmd);

  // -- messages from tasks ----------------------------------------------------

  /// Task `task` targets the firmware; replies with its record.
  caf::result<firmware_record> operator()(reserve_atom, task_id task,
                                          const std::string& product,
                                          const std::string& version);

  /// The target of a task being previewed: the record, or the error that
  /// `reserve_atom` gives; reserves nothing.
  caf::result<firmware_record> operator()(lookup_atom,
                                          const std::string& product,
                                          const std::string& version);

  /// Task `task` has ended, or was never created.
  void operator()(release_atom, task_id task);

  /// The outcome of a verification run.
  void operator()(verified_atom, const std::string& product,
                  const std::string& version, bool ok,
                  const std::string& reason);

  caf::result<digest_sum> operator()(digest_atom);

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  firmware_catalog catalog;
  /// URL schemes and trusted signing keys that new firmware must satisfy.
  firmware_policy policy;
  /// The tasks that use each firmware.
  std::map<firmware_catalog::key, std::set<task_id>> users;
  outbox out;

  /// Applies and persists `decided`; replies with the record of
  /// `product`/`version` once durable.
  caf::result<firmware_record> commit(expected<event_list> decided,
                                      const std::string& product,
                                      const std::string& version);

  /// Applies and persists events no client waits for.
  void commit_quietly(const event_list& events);

private:
  /// The firmware a task targets, or INVALID_ARGUMENT naming the target.
  expected<const firmware_record*> target_of(const std::string& product,
                                             const std::string& version) const;
};

/// `policy` is what new firmware must satisfy; `users` are the unfinished
/// tasks of the recovered log by the firmware they target;
/// `running_verifications` the firmware whose verification run has an
/// unfinished task. A VERIFYING firmware without one was interrupted by a
/// restart before its run started, and fails.
firmware_impl::behavior_type
firmware_behavior(firmware_actor_state::self_pointer self, context_ptr ctx,
                  firmware_policy policy, firmware_catalog catalog,
                  std::map<firmware_catalog::key, std::set<task_id>> users,
                  std::set<firmware_catalog::key> running_verifications);

} // namespace fota
