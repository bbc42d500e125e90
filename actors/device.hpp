/// The device actor, one per device: its state, the one execution it may be
/// in, and the route of pushes to the gateway session it is online on.
#pragma once

#include "actors/context.hpp"
#include "events/device.hpp"

#include <caf/stateful_actor.hpp>

namespace fota {

struct device_actor_state {
  context_ptr ctx;
  device_state device;
  /// Gateway session the device is online on.
  caf::actor session;
  /// Task of the active execution.
  caf::actor task;

  static inline constexpr const char* name = "fota.device";
};

/// Handles device commands (forwarded by the fleet) and:
/// - `(claim_atom, execution, task) -> std::string`: empty when claimed,
///   otherwise why the device is busy;
/// - `(claim_atom, provisional, execution, task)`: turns a provisional
///   claim into the final one;
/// - `(release_atom, execution)`: the execution ended;
/// - `push_order -> bool`: true when handed to the gateway, false when the
///   device is offline;
/// - `(get_atom) -> std::string`: the serialized `v1::Device`.
caf::behavior device_actor(caf::stateful_actor<device_actor_state>* self,
                           context_ptr ctx, device_state initial);

} // namespace fota
