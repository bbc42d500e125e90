/// The MQTT mapping of the device protocol (docs/protocol.md, "MQTT
/// devices"): topics, JSON payloads to native requests, native responses
/// and pushes to JSON. Pure functions, no network, so that the bridge's
/// decisions about every payload can be tested alone.
#pragma once

#include "fota/v1/api.pb.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fota::mqtt {

// -- topics -------------------------------------------------------------------

/// A device's topic, `/sys/{pk}/{dk}/ota/device/{kind}`.
struct device_topic {
  std::string product_key;
  std::string device_key;
  /// The last level: "inform", "status", "progress", ...
  std::string kind;
};

/// Splits `topic`; nullopt when it is not a device topic (wrong prefix,
/// wrong number of levels, an empty key or kind).
std::optional<device_topic> parse_topic(std::string_view topic);

/// Returns `/sys/{pk}/{dk}/ota/device/{kind}`.
std::string topic_name(const std::string& product_key,
                       const std::string& device_key, std::string_view kind);

/// The filter that matches every device topic the bridge reads.
inline constexpr std::string_view device_filter = "/sys/+/+/ota/device/+";

// -- device to cloud ----------------------------------------------------------

/// What one message of a device asks of the node.
struct inbound {
  /// The request's id as JSON text ("\"\"" when absent), echoed in replies.
  std::string id = "\"\"";
  /// The native request (no request id), when the payload is good and the
  /// topic is one the node hears of.
  std::optional<v1::ClientFrame> frame;
  /// Why the payload was refused; empty when it was not.
  std::string error;
  /// Whether the message is answered on `<topic>_reply` (requests are;
  /// status and upgrade_reply are not).
  bool replies = false;
};

/// Decodes `payload` published on `topic`: a request (inform, progress,
/// getversion), a status ({"online": bool}) or an acknowledgement of a
/// push (upgrade_reply). Topics of other kinds (e.g. the bridge's own
/// pushes and replies) give neither a frame nor an error.
inbound decode(const device_topic& topic, std::string_view payload);

/// The execution and attempt in a push id "<executionId>.<attempt>";
/// nullopt when `id` is not that.
std::optional<std::pair<uint64_t, uint32_t>> parse_push_id(std::string_view id);

// -- cloud to device ----------------------------------------------------------

/// The reply code for a node's status (200, 400, 403, 404, 409, 429, 503,
/// 500).
int reply_code(v1::StatusCode x) noexcept;

/// The reply to the request with id `id` (JSON text) for the node's
/// `response`: code, the offer's params as data for getversion, and the
/// node's message.
std::string encode_reply(const std::string& id, const v1::Response& response);

/// A reply the bridge gives itself: `code` with `message` and empty data.
std::string encode_reply(const std::string& id, int code,
                         std::string_view message);

/// A message for a device: its topic and payload.
struct outbound {
  std::string topic;
  std::string payload;
};

/// The push for `x` on `.../ota/device/upgrade`.
outbound encode_push(const v1::UpgradePush& x);

/// The cancel for `x` on `.../ota/device/cancel`.
outbound encode_cancel(const v1::CancelPush& x);

/// The push's params (the getversion offer's data): version, fileUrl,
/// fileSize, sign, signMethod, manifest, signature, description,
/// executionId and attempt, as JSON text.
std::string encode_params(uint64_t execution_id, uint32_t attempt,
                          const v1::Firmware& firmware,
                          const std::string& manifest);

} // namespace fota::mqtt
