/// The one place where the domain's values and commands meet protobuf:
/// values to and from `fota.v1` messages (for events and responses), a
/// `ClientFrame` body to its command (parsed once, at the edge), and each
/// reply to its `Response`.
#pragma once

#include "events/commands.hpp"
#include "events/error.hpp"
#include "events/values.hpp"
#include "fota/v1/api.pb.h"

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace fota {

// -- values -------------------------------------------------------------------

v1::Firmware to_proto(const firmware_record& x);
firmware_record from_proto(const v1::Firmware& x);

/// The firmware as a push or an offer gives it to a device: what it
/// downloads and checks (product, version, URL, size, SHA-256, signature,
/// description), field by field, without the catalog's state.
v1::Firmware to_device_proto(const firmware_record& x);

v1::TaskSpec to_proto(const task_spec& x);
task_spec from_proto(const v1::TaskSpec& x);

/// A schedule as a task spec carries it (set, since it is given).
schedule_spec from_proto(const v1::Schedule& x);

v1::AssetTree to_proto(const asset_tree& x);
asset_tree from_proto(const v1::AssetTree& x);

v1::Device to_proto(const device_state& x);
v1::TaskSummary to_proto(const task_summary& x);
v1::Execution to_proto(const execution_view& x);
v1::UpgradeOffer to_proto(const upgrade_offer& x);
v1::TaskForecast to_proto(const task_forecast& x);
v1::TaskPreview to_proto(const task_preview& x);

/// The push that tells `device` to upgrade to `fw`: the firmware as a device
/// sees it and the manifest that its signature covers.
v1::UpgradePush to_upgrade_push(const std::string& product,
                                const std::string& device, execution_id id,
                                uint32_t attempt, const firmware_record& fw);

// -- requests -----------------------------------------------------------------

/// Every command a client can send.
using request = std::variant<
    create_firmware, verify_firmware, skip_verification, get_firmware,
    list_firmware, delete_firmware, create_task, get_task, list_tasks,
    get_task_details, pause_task, resume_task, cancel_task, get_state_digest,
    list_devices, get_device, set_device_tags, set_device_attributes,
    move_device, create_asset_tree, delete_asset_tree, list_asset_trees,
    register_device, device_online, device_offline, report_version,
    report_progress, report_failure, request_upgrade, confirm_upgrade, ack_push,
    register_devices, get_device_history, get_task_history, preview_task>;

/// The command in `frame`, or INVALID_ARGUMENT naming what is wrong: no
/// body, a `Hello` (only valid as a session's first frame), or (unless
/// `enforce_limits` is false, for tests of the rules behind the edge) a
/// field beyond its documented limit.
expected<request> decode(const v1::ClientFrame& frame,
                         bool enforce_limits = true);

/// The role that may send `x`.
v1::Role required_role(const request& x) noexcept;

/// The name of `x` on the wire, e.g. "report_progress".
std::string name_of(const request& x);

/// Records which gateway sent `x`, if it is a gateway command.
void stamp_gateway(request& x, const std::string& gateway);

/// The product and device key of a gateway command about one device, or
/// nullopt.
std::optional<std::pair<std::string, std::string>> device_of(const request& x);

// -- responses ----------------------------------------------------------------

/// An OK response carrying `x` (and, for a summary with a forecast, the
/// forecast).
v1::Response to_response(const firmware_record& x);
v1::Response to_response(const firmware_page& x);
v1::Response to_response(const task_summary& x);
v1::Response to_response(const task_page& x);
v1::Response to_response(const task_details& x);
v1::Response to_response(const device_state& x);
v1::Response to_response(const device_page& x);
v1::Response to_response(const asset_tree& x);
v1::Response to_response(const asset_tree_page& x);
v1::Response to_response(const upgrade_offer& x);
v1::Response to_response(const state_digest& x);
v1::Response to_response(const accepted& x);
v1::Response to_response(const history_page& x);
v1::Response to_response(const task_preview& x);

/// An OK response with one result per item; a refused item's message names
/// its index ("devices[3]: ..."). With `with_devices` false, OK results
/// carry no device, so that the response stays small.
v1::Response to_response(const registration_results& x,
                         bool with_devices = true);

} // namespace fota
