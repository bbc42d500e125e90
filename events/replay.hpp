/// The whole state of a node, rebuilt from the event log with the same
/// `apply()` functions the actors use at run time. Replay checks every
/// event against the state it applies to and stops at the first violation,
/// naming the event's log sequence: nothing is guessed or dropped.
#pragma once

#include "events/asset_tree.hpp"
#include "events/device.hpp"
#include "events/firmware.hpp"
#include "events/task.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fota {

/// Directory key of a device: product and device key.
std::string device_ref(const std::string& product, const std::string& device);

/// The task an event of a task's stream names, or 0 for other events.
uint64_t task_of(const event& e);

/// Every aggregate of the node, as replay leaves it.
struct world {
  firmware_catalog firmware;
  /// Devices in registration order, each with the execution holding it.
  std::vector<device_state> devices;
  std::unordered_map<std::string, size_t> device_index;
  tree_catalog trees;
  std::map<uint64_t, task_state> tasks;
  sequence_number last_sequence;
  /// Where in the log each task was created, and each firmware's latest
  /// verification run started: a run's task is created after its start.
  std::map<uint64_t, uint64_t> task_created_at;
  std::map<firmware_catalog::key, uint64_t> verification_started_at;
  /// For each task, where in `devices` each execution's device is, by
  /// sequence: derived from the above as replay goes (not in snapshots),
  /// so that an execution's events find their device without its key.
  std::unordered_map<uint64_t, std::vector<size_t>> execution_devices;

  device_state* find_device(const std::string& product,
                            const std::string& device);
};

/// Applies one event of any stream after checking it: the log sequence
/// continues, the event's type is known to this version, the entity it
/// names exists (or, when created, does not yet), the transition is allowed,
/// and no device is held by two active executions. A violation leaves the
/// world unchanged and names the event's sequence and type.
status apply(world& w, const event& e);

/// Decodes the envelope stored under `seq` into `e`, checking that it
/// carries that sequence. `e` may be reused: it is cleared first.
status decode_stored(event& e, sequence_number seq, std::string_view bytes);

/// Decodes the envelope stored under `seq` and applies it.
status replay(world& w, sequence_number seq, std::string_view bytes);

/// Ends a replay: no device is online (no session survives a restart).
void finish_replay(world& w);

} // namespace fota
