/// The fleet actor: the device directory (key → device actor), the indexes
/// scope selection reads (`events/fleet_index.hpp`), the asset trees,
/// registration of new devices, scope queries, and the subscriptions of
/// increment tasks to devices that enter their scope later.
#pragma once

#include "actors/context.hpp"
#include "actors/outbox.hpp"
#include "events/asset_tree.hpp"
#include "events/device.hpp"
#include "events/fleet_index.hpp"

#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// The fleet as implemented: `fleet_actor` plus the flush of its outbox.
using fleet_impl = fleet_actor::extend<caf::reacts_to<flush_atom>>;

struct fleet_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = fleet_impl::stateful_pointer<fleet_state>;

  /// An increment task and the scope it enrols from.
  struct subscription {
    task_joiner task;
    task_spec spec;
    /// Devices named by a device-key filter or selected in asset trees.
    std::unordered_set<std::string> named;
  };

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.fleet";

  /// Items of batch registrations asked of their device actors at once.
  static constexpr size_t batch_window = 1024;

  // -- constructors -----------------------------------------------------------

  explicit fleet_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- device commands --------------------------------------------------------

  /// Registers an unknown device (its actor persists the registration) or
  /// hands the command to the device's actor.
  caf::result<device_state> operator()(register_device& cmd);

  /// Registers each device of a batch as `register_device` does, one by
  /// one, in one message; with `cmd.online`, brings each online on
  /// `session` (none in-process). The device actors decide and persist in
  /// parallel (a bounded number at a time, so their appends group in the
  /// journal); the answer leaves once every item is answered, each after its
  /// events are durable.
  caf::result<registered_batch> operator()(register_devices& cmd,
                                           caf::actor& session);

  /// Asks items of waiting batches of their device actors while fewer than
  /// `batch_window` are asked.
  void pump_batches();

  /// Hands a device command to the device's actor, spawned first if the
  /// device is dormant.
  template <class Command, class... Ts>
  auto route(Command& cmd, Ts&... xs) -> caf::result<typename Command::reply> {
    if (auto err = validate_device_ref(cmd.product, cmd.device))
      return to_error(*err);
    auto actor = actor_of(cmd.product, cmd.device);
    if (!actor)
      return to_error(
          make_failure(errc::not_found, device_name(cmd.product, cmd.device) +
                                            " is not registered"));
    return self->delegate(actor, std::move(cmd), std::move(xs)...);
  }

  /// Hands a device to another configured gateway that has room for it.
  caf::result<device_state> operator()(move_device& cmd);

  caf::result<device_page> operator()(list_devices& cmd);

  // -- asset trees ------------------------------------------------------------

  caf::result<asset_tree> operator()(create_asset_tree& cmd);
  caf::result<accepted> operator()(delete_asset_tree& cmd);
  caf::result<asset_tree_page> operator()(list_asset_trees& cmd);

  // -- scope ------------------------------------------------------------------

  /// The devices in a task's scope; with `joiner`, subscribes the task.
  caf::result<device_handles> operator()(scope_atom, task_spec& spec,
                                         task_joiner& joiner);

  void operator()(forget_atom, task_joiner& joiner);

  /// The scope of a task being previewed, as `scope_atom` without a joiner
  /// resolves it, and the devices on its target version; subscribes nothing.
  caf::result<scope_preview> operator()(preview_atom, task_spec& spec);

  caf::result<device_actor> operator()(lookup_atom, const std::string& product,
                                       const std::string& key);

  // -- messages from devices --------------------------------------------------

  /// A device's durable registration, version, tags or attributes.
  void operator()(changed_atom, device_state& d);

  /// A device (product, key) is free again.
  void operator()(free_atom, const std::string& product,
                  const std::string& key);

  caf::result<digest_sum> operator()(digest_atom);

  // -- dormant devices --------------------------------------------------------

  /// What of a recovered device's state neither the index nor `owners`
  /// holds. A device recovered at start with nothing to do (offline, held by
  /// no running task) stays a row until its first message: its actor is
  /// spawned then, from the row.
  struct dormant_row {
    execution_id active_execution;
    int64_t registered_at_ms = 0;
  };

  /// The actor of a registered device, spawned first when it is dormant;
  /// null when no such device is registered.
  device_actor actor_of(const std::string& product, const std::string& key);

  /// The actor of the indexed device `x`, spawned first when it is dormant.
  const device_actor& awaken(fleet_index::ordinal x);

  /// The stored state of the indexed device `x`, which is dormant.
  device_state dormant_state(fleet_index::ordinal x) const;

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  /// Every device, durably registered or not: where its commands go. A
  /// dormant device's entry holds no actor.
  std::unordered_map<std::string, device_actor> directory;
  /// Durably registered devices, for scope selection.
  fleet_index index;
  /// The actor of each indexed device, by ordinal; none while dormant.
  std::vector<device_actor> actors;
  /// The rows of the recovered devices, by ordinal (the first ordinals);
  /// a row is unused once its device's actor runs.
  std::vector<dormant_row> dormant;
  tree_catalog trees;
  std::vector<subscription> subscriptions;
  /// Devices held by each gateway (by name; "" for in-process) and each
  /// product, registered durably or being registered, for the quotas.
  std::unordered_map<std::string, uint64_t> per_gateway;
  std::unordered_map<std::string, uint64_t> per_product;
  /// The gateway of each indexed device, by ordinal, to move the counts
  /// when a device changes hands.
  std::vector<std::string> owners;
  /// Batch registrations with items not yet asked of their device actors,
  /// oldest first: each call asks one more, false when none is left. Items
  /// asked and not answered, across batches, stay below `batch_window`:
  /// CAF keeps the fleet's pending replies in a flat map (actors/gather.hpp).
  std::deque<std::function<bool()>> batches;
  size_t batch_asks = 0;
  outbox out;

private:
  static std::string key_of(const std::string& product,
                            const std::string& device);

  /// The devices in the scope of `spec`, with their actors; `named` as in
  /// `fleet_index::select`.
  /// Wakes the dormant devices among them.
  expected<device_handles> resolve(const task_spec& spec,
                                   std::unordered_set<std::string>& named);

  /// Offers the indexed device `x` to the increment tasks whose scope it is
  /// in.
  void offer(fleet_index::ordinal x);

  /// The fleet's part of a registration: the actor that decides `cmd`, or
  /// why the fleet refuses it (quotas, labels, an invalid new device). An
  /// unknown device is admitted, counted and spawned here, its registration
  /// its first events. Bringing it online is the device actor's, when it
  /// handles the command (online state is volatile).
  expected<device_actor> admit(const register_device& cmd);

  /// RESOURCE_EXHAUSTED unless `gateway` may take one more device.
  status room_at(const std::string& gateway) const;

  /// Counts the indexed device `x` as held by `gateway` from now on.
  void own(fleet_index::ordinal x, const std::string& gateway);
};

/// The fleet of a node; `devices` are the recovered devices and their
/// actors, in registration order. A device without an actor is dormant: its
/// actor is spawned at its first message. The fleet links to every device
/// actor, so they stop with it.
fleet_impl::behavior_type
fleet_behavior(fleet_state::self_pointer self, context_ptr ctx,
               std::vector<std::pair<device_state, device_actor>> devices,
               tree_catalog trees);

} // namespace fota
