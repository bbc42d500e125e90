/// The device actor, one per device: its state, the one execution that may
/// hold it (the busy claim rule), and the route of pushes to the gateway
/// session it is online on.
#pragma once

#include "actors/context.hpp"
#include "actors/outbox.hpp"
#include "events/device.hpp"
#include "events/gateway.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// The device as implemented: `device_actor` plus the flush of its outbox.
using device_impl = device_actor::extend<caf::reacts_to<flush_atom>>;

struct device_actor_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = device_impl::stateful_pointer<device_actor_state>;

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.device";

  // -- constructors -----------------------------------------------------------

  explicit device_actor_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  /// Counts the actor out of the node's running device actors.
  ~device_actor_state();

  device_actor_state(const device_actor_state&) = delete;
  device_actor_state& operator=(const device_actor_state&) = delete;

  // -- gateway and operator commands -----------------------------------------

  caf::result<device_state> operator()(register_device& cmd);

  /// Registers the device and brings it online on `session`, exactly as
  /// `register_device` followed by `device_online`, in one commit.
  caf::result<device_state> operator()(register_device& cmd,
                                       caf::actor& session);
  caf::result<device_state> operator()(device_online& cmd, caf::actor& session);
  caf::result<device_state> operator()(device_offline& cmd,
                                       caf::actor& session);
  caf::result<device_state> operator()(report_version& cmd);
  caf::result<device_state> operator()(set_device_tags& cmd);
  caf::result<device_state> operator()(set_device_attributes& cmd);
  caf::result<device_state> operator()(get_device& cmd);
  caf::result<device_state> operator()(move_device& cmd);

  /// Reports about an execution go to its task, if it holds the device.
  caf::result<accepted> operator()(report_progress& cmd);
  caf::result<accepted> operator()(report_failure& cmd);
  caf::result<accepted> operator()(confirm_upgrade& cmd);
  caf::result<accepted> operator()(ack_push& cmd);

  /// The device asks for its upgrade: the task holding it answers; a free
  /// device asks the device-request tasks that cover it, best first.
  caf::result<upgrade_offer> operator()(request_upgrade& cmd);

  // -- messages from tasks ----------------------------------------------------

  /// The busy claim: granted when nothing else holds the device.
  caf::result<claim_result> operator()(claim_atom, execution_id claimant);

  /// The claimant's execution is durable: it holds the device.
  void operator()(bind_atom, execution_id execution, task_sink& task);

  /// The execution ended, durably: the device is free.
  void operator()(release_atom, execution_id execution);

  /// Hands a push to the gateway session, if the device is online.
  void operator()(push_atom, push_frame& push);

  /// The session did not send the push of `execution`: the task waits.
  void operator()(deferred_atom, execution_id execution);

  /// The session sends again: the task may push again.
  void operator()(resume_atom);

  caf::result<digest_sum> operator()(digest_atom);

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  device_state device;
  /// Gateway session the device is online on.
  caf::actor session;
  /// Task of the execution that holds the device.
  task_sink task;
  /// The execution that held the device last, and its task: a late or
  /// repeated report about it still reaches the task, which acknowledges it.
  execution_id previous;
  task_sink previous_task;
  /// Whether a RequestUpgrade is being answered.
  bool asking = false;
  /// The gauges of the device's product, looked up when it first comes
  /// online.
  product_gauges* gauges = nullptr;
  outbox out;

private:
  /// Sets the volatile online state and counts it in the product's gauge.
  void set_online(bool online);

  /// Applies `events`; unless `durable` already, queues them for the
  /// journal. The fleet hears of changes scope selection sees once durable.
  status apply_all(const event_list& events, bool durable);

  /// Applies and persists `decided`; replies with the device once durable
  /// and tells the fleet and the task what changed.
  caf::result<device_state> commit(expected<event_list> decided);

  /// A version report while an execution holds the device: the task records
  /// the version with the execution's success, or the device records
  /// `decided` (its DeviceVersionReported) itself.
  caf::result<device_state> record(event_list decided,
                                   const std::string& version);

  /// Turns execution 0 in a report of `gateway` into the execution this
  /// device holds now; fails when it holds none (FAILED_PRECONDITION naming
  /// the device). Other executions stay as they are.
  status resolve_current(const std::string& gateway,
                         execution_id& execution) const;

  /// The task that answers reports of `gateway` about `execution` on this
  /// device: the one holding it, or the one that held it last; or why there
  /// is none (another gateway owns the device, or no such execution).
  expected<task_sink> task_of(const std::string& gateway,
                              execution_id execution) const;

  /// What this device may hold, once owned by `gateway` (empty: its owner).
  device_quota quota(const std::string& gateway = {}) const;

  /// A RequestUpgrade of a free device on its way through the candidates.
  struct asking_state {
    offer_candidates candidates;
    std::string first_refusal;
  };

  /// Tries the device-request tasks of `a` from `index` on.
  void ask(caf::typed_response_promise<upgrade_offer> rp,
           std::shared_ptr<asking_state> a, size_t index);
};

/// Spawns a device from its state; `registration` holds the events of a
/// device registered just now, which the device persists before anything
/// else (empty for a device recovered from the log).
device_impl::behavior_type
device_behavior(device_actor_state::self_pointer self, context_ptr ctx,
                device_state initial, event_list registration);

} // namespace fota
