/// The fleet actor: the device directory (key → device actor), the indexes
/// by (product, version), tag and attribute, the asset trees, registration
/// of new devices, scope queries, and the subscriptions of increment tasks
/// to devices that register or report a source version.
#pragma once

#include "actors/context.hpp"
#include "events/asset_tree.hpp"
#include "events/device.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/stateful_actor.hpp>

namespace fota {

struct fleet_state {
  /// A device as the directory sees it.
  struct entry {
    std::string product;
    std::string key;
    std::string version;
    label_map tags;
    label_map attributes;
    caf::actor actor;
  };

  /// An increment task and the scope it enrols from.
  struct subscription {
    caf::actor task;
    v1::TaskSpec spec;
    /// Devices named by a device-key filter or selected in asset trees.
    std::unordered_set<std::string> keys;
  };

  using ordinals = std::set<uint32_t>;

  context_ptr ctx;
  /// Devices in registration order; the index is the ordinal.
  std::vector<entry> devices;
  /// product + '\0' + device key → ordinal.
  std::unordered_map<std::string, uint32_t> directory;
  /// product + '\0' + version → ordinals.
  std::unordered_map<std::string, ordinals> by_version;
  /// product + '\0' + key + '\0' + value → ordinals.
  std::unordered_map<std::string, ordinals> by_tag;
  std::unordered_map<std::string, ordinals> by_attribute;
  tree_catalog trees;
  std::vector<subscription> subscriptions;

  /// Adds a device actor to the directory and the indexes.
  uint32_t add(caf::actor actor, const device_state& d);

  /// Moves a device to its new version, tags and attributes in the indexes.
  void update(uint32_t ordinal, const v1::Device& d);

  const entry* find(const std::string& product, const std::string& key) const;

  static inline constexpr const char* name = "fota.fleet";
};

/// Routes device commands to device actors (registering unknown devices),
/// manages asset trees, and answers:
/// - `(scope_atom, spec bytes, subscribe) -> device_handles`: the devices in
///   a task's scope, in registration order; with `subscribe`, the sender
///   also gets `(join_atom, device_handle)` for every device that later
///   registers or reports a source version and matches, until it sends
///   `(forget_atom)`;
/// - `(changed_atom, device bytes)` from device actors: keeps indexes current.
/// The fleet links to every device actor, so they stop with it.
caf::behavior
fleet_actor(caf::stateful_actor<fleet_state>* self, context_ptr ctx,
            std::vector<std::pair<device_state, caf::actor>> devices,
            tree_catalog trees);

} // namespace fota
