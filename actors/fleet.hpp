/// The fleet actor: the device directory (key → device actor), the index by
/// (product, version), registration of new devices, and scope queries.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/stateful_actor.hpp>

#include "actors/context.hpp"
#include "events/device.hpp"

namespace fota {

struct fleet_state {
  /// A device as the directory sees it.
  struct entry {
    std::string product;
    std::string key;
    std::string version;
    caf::actor actor;
  };

  context_ptr ctx;
  /// Devices in registration order; the index is the ordinal.
  std::vector<entry> devices;
  /// product + '\0' + device key → ordinal.
  std::unordered_map<std::string, uint32_t> directory;
  /// (product, version) → ordinals.
  std::map<std::pair<std::string, std::string>, std::set<uint32_t>>
    by_version;

  /// Adds a device actor to the directory and the indexes.
  void add(caf::actor actor, const device_state& d);

  const entry* find(const std::string& product, const std::string& key) const;

  static inline constexpr const char* name = "fota.fleet";
};

/// Routes device commands to device actors (registering unknown devices) and
/// answers:
/// - `(scope_atom, product, versions) -> device_handles`: devices of the
///   product on one of the versions, in registration order;
/// - `(version_atom, product, key, old, new)`: keeps the index current.
/// The fleet links to every device actor, so they stop with it.
caf::behavior fleet_actor(
  caf::stateful_actor<fleet_state>* self, context_ptr ctx,
  std::vector<std::pair<device_state, caf::actor>> devices);

} // namespace fota
