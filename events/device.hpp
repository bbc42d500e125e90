/// A device: its reported firmware version, online state, tags, attributes
/// and the one execution it may be in. Registration and version reports are
/// events that increment tasks subscribe to.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "fota/v1/api.pb.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fota {

/// A small sorted map; devices carry a handful of tags, and a million
/// devices must stay compact.
using label_map = std::vector<std::pair<std::string, std::string>>;

/// Returns the value of `key` in `xs`, or nullptr.
const std::string* find_label(const label_map& xs, const std::string& key);

/// Sets (or with an empty value, removes) `key` in `xs`.
void set_label(label_map& xs, const std::string& key, const std::string& value);

/// State of one device.
struct device_state {
  std::string product;
  std::string key;
  std::string version;
  bool online = false;
  label_map tags;
  label_map attributes;
  /// The active execution holding this device, or 0. Kept by the device
  /// actor; rebuilt from task events on recovery.
  uint64_t active_execution = 0;
  int64_t registered_at_ms = 0;

  /// The device as a protobuf value.
  v1::Device to_proto() const;
};

/// Longest accepted product key, device key, version, tag or attribute text.
constexpr size_t max_key_length = 128;

// -- decide ------------------------------------------------------------------

/// `existing` is null for an unknown device. Re-registering is idempotent: it
/// records only what changed.
expected<event_list> decide(const device_state* existing,
                            const v1::RegisterDevice& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const v1::ReportVersion& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const v1::DeviceOnline& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const v1::DeviceOffline& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const v1::SetDeviceTags& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const v1::SetDeviceAttributes& cmd, timestamp now);

/// Checks product and device key of any device command.
status validate_device_ref(const std::string& product,
                           const std::string& device);

// -- apply -------------------------------------------------------------------

/// Creates the state from a DeviceRegistered event.
device_state make_device(const event& registered);

/// Applies a device event of this device's stream.
void apply(device_state& state, const event& e);

} // namespace fota
