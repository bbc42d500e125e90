/// The firmware actor: owns the firmware catalog and its verification.
#pragma once

#include "actors/context.hpp"
#include "events/firmware.hpp"

#include <caf/stateful_actor.hpp>

namespace fota {

struct firmware_actor_state {
  context_ptr ctx;
  firmware_catalog catalog;

  static inline constexpr const char* name = "fota.firmware";
};

/// Handles firmware commands, and `(get_atom, product, version)` which
/// replies with the serialized `v1::Firmware` or NOT_FOUND.
caf::behavior firmware_actor(caf::stateful_actor<firmware_actor_state>* self,
                             context_ptr ctx, firmware_catalog catalog);

} // namespace fota
