/// A device: its reported firmware version, online state, tags, attributes
/// and the one execution it may be in. Registration and version reports are
/// events that increment tasks subscribe to.
#pragma once

#include "events/commands.hpp"
#include "events/error.hpp"
#include "events/event.hpp"
#include "events/values.hpp"

#include <cstdint>
#include <string>

namespace fota {

struct device_quota;

/// Longest accepted product key, device key, version, tag or attribute text.
constexpr size_t max_key_length = 128;

/// "device <product>/<key>", as messages name it.
std::string device_name(const std::string& product, const std::string& key);

// -- the busy claim -----------------------------------------------------------

/// The claim of a task that is still enrolling a device: its execution id
/// has sequence 0, which no execution has.
execution_id enrolling_claim(task_id task);

/// Whether `x` is a claim made while enrolling, not yet an execution.
bool is_enrolling_claim(execution_id x) noexcept;

/// A device is in at most one upgrade process at a time: `claimant` (an
/// execution, or a task enrolling the device) may hold `d` when nothing
/// holds it, or when it holds it already (a rebind after recovery).
/// Otherwise the device is busy, and the error says with what.
status decide_claim(const device_state& d, execution_id claimant);

/// Why `d` is busy: the execution or the enrolling task that holds it.
std::string busy_reason(const device_state& d);

// -- decide ------------------------------------------------------------------

/// `existing` is null for an unknown device. Re-registering is idempotent: it
/// records only what changed.
expected<event_list> decide(const device_state* existing,
                            const register_device& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const report_version& cmd, timestamp now);

expected<event_list> decide(const device_state& state, const device_online& cmd,
                            timestamp now);

expected<event_list> decide(const device_state& state,
                            const device_offline& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const set_device_tags& cmd, timestamp now);

expected<event_list> decide(const device_state& state,
                            const set_device_attributes& cmd, timestamp now);

/// Hands the device to `cmd.gateway`; nothing when it has it already.
expected<event_list> decide(const device_state& state, const move_device& cmd,
                            timestamp now);

/// `decided` (events of `state`'s device), or RESOURCE_EXHAUSTED when the
/// device would hold more tags and attributes than `quota` allows.
expected<event_list> within(const device_state& state,
                            expected<event_list> decided,
                            const device_quota& quota);

/// Checks product and device key of any device command.
status validate_device_ref(const std::string& product,
                           const std::string& device);

// -- apply -------------------------------------------------------------------

/// Creates the state from a DeviceRegistered event.
device_state make_device(const event& registered);

/// Applies an event of this device's stream; DeviceRegistered only on a
/// fresh state. Refuses a second registration and events of other streams.
status apply(device_state& state, const event& e);

} // namespace fota
