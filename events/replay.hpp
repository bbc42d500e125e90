/// The whole state of a node, rebuilt from the event log with the same
/// `apply()` functions the actors use at run time.
#pragma once

#include "events/asset_tree.hpp"
#include "events/device.hpp"
#include "events/firmware.hpp"
#include "events/task.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace fota {

/// Directory key of a device: product and device key.
std::string device_ref(const std::string& product, const std::string& device);

/// Every aggregate of the node, as replay leaves it.
struct world {
  firmware_catalog firmware;
  /// Devices in registration order.
  std::vector<device_state> devices;
  std::unordered_map<std::string, size_t> device_index;
  tree_catalog trees;
  std::map<uint64_t, task_state> tasks;
  uint64_t last_sequence = 0;

  device_state* find_device(const std::string& product,
                            const std::string& device);
};

/// Applies one event of any stream.
void apply(world& w, const event& e);

/// Ends a replay: no device is online (no session survives a restart), and
/// each device's active execution is taken from the tasks.
void finish_replay(world& w);

} // namespace fota
