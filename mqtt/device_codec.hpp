/// The device side of the MQTT mapping (docs/protocol.md, "MQTT devices"):
/// a native device request as the message a device publishes, and the
/// bridge's replies and pushes as native responses and pushes. fota-sim's
/// MQTT link uses it so that its simulator core keeps speaking native
/// requests; pure, so that it can be tested against the bridge's codec
/// without a broker.
#pragma once

#include "events/error.hpp"
#include "fota/v1/api.pb.h"
#include "mqtt/codec.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace fota::mqtt {

/// A message a device publishes.
struct device_message {
  std::string topic;
  std::string payload;
  /// Statuses are retained, so that a bridge that starts later reads them.
  bool retained = false;
  /// Whether the bridge answers on `<topic>_reply` with the request's id;
  /// statuses and push acknowledgements get no reply.
  bool replied = false;
};

/// The progress step that reports the failure `code`: -3 for
/// "verification_failed" and VERIFY_FAILED, -2 for DOWNLOAD_FAILED, -4 for
/// FLASH_FAILED and E_FLASH, -1 (UPGRADE_FAILED) for any other code.
int failure_step(std::string_view code) noexcept;

/// `frame` as the message that asks the same over MQTT, with request id
/// `id` (a JSON string):
/// - RegisterDevice, ReportVersion → inform with the version;
/// - DeviceOnline, DeviceOffline → status {"online": ...}, retained;
/// - ReportProgress, ConfirmUpgrade → progress with the step (0 for a
///   confirmation) and the execution id;
/// - ReportFailure → progress with `failure_step(code)`;
/// - RequestUpgrade → getversion;
/// - AckPush → upgrade_reply {"id": "<execution>.<attempt>", "code": 200}.
/// Fails with invalid_argument naming the request for any other frame,
/// which MQTT has no topic for (e.g. RegisterDevices).
expected<device_message> encode_request(const v1::ClientFrame& frame,
                                        uint64_t id);

/// A reply the bridge published on `<topic>_reply`.
struct device_reply {
  /// The request's id, as the device sent it ("" when the reply has none).
  std::string id;
  /// The status the reply's code stands for, its message, and for a
  /// getversion reply the offer (available when `data` holds one).
  v1::Response response;
};

/// The native status for a reply `code`: 200 OK, 400 INVALID_ARGUMENT,
/// 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 FAILED_PRECONDITION, 429
/// RESOURCE_EXHAUSTED, 503 UNAVAILABLE, anything else INTERNAL.
v1::StatusCode status_of(int64_t code) noexcept;

/// Decodes the reply `payload` published on `topic` (kind
/// "<request>_reply"; a "getversion_reply" carries the offer). Fails
/// naming the field when the payload is not a reply.
expected<device_reply> decode_reply(const device_topic& topic,
                                    std::string_view payload);

/// Decodes a push (`upgrade`) or a cancel (`cancel`) that the bridge
/// published on `topic` for the device it names. Fails naming the field
/// when the payload is not one.
expected<v1::Push> decode_push(const device_topic& topic,
                               std::string_view payload);

} // namespace fota::mqtt
