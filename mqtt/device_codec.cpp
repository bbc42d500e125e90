#include "mqtt/device_codec.hpp"

#include "events/manifest.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace fota::mqtt {

namespace {

using json = nlohmann::json;

std::string dump(const json& x) {
  return x.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// A request envelope with a string id.
device_message request(const std::string& pk, const std::string& dk,
                       std::string_view kind, uint64_t id,
                       std::string_view method, json params) {
  json out{{"id", std::to_string(id)},
           {"version", "1.0"},
           {"method", std::string{method}},
           {"params", std::move(params)}};
  return {topic_name(pk, dk, kind), dump(out), false, true};
}

device_message inform(const std::string& pk, const std::string& dk, uint64_t id,
                      const std::string& version) {
  return request(pk, dk, "inform", id, "ota.device.inform",
                 json{{"version", version}});
}

device_message progress(const std::string& pk, const std::string& dk,
                        uint64_t id, int step, const std::string& desc,
                        uint64_t execution) {
  json params{{"step", step}, {"desc", desc}};
  if (execution != 0)
    params["executionId"] = execution;
  return request(pk, dk, "progress", id, "ota.device.progress",
                 std::move(params));
}

device_message status(const std::string& pk, const std::string& dk,
                      bool online) {
  return {topic_name(pk, dk, "status"), dump(json{{"online", online}}), true,
          false};
}

bool is_integer(const json& x) {
  return x.is_number_integer() || x.is_number_unsigned();
}

/// `doc[name]` as an unsigned integer below 2^64, or a failure naming
/// `where.name`.
expected<uint64_t> unsigned_field(const json& doc, const char* where,
                                  const char* name) {
  auto bad = [&](const char* what) {
    return make_failure(errc::invalid_argument,
                        std::string{where} + name + ": " + what);
  };
  auto i = doc.find(name);
  if (i == doc.end())
    return bad("missing");
  if (i->is_number_unsigned())
    return i->get<uint64_t>();
  if (i->is_number_integer() && i->get<int64_t>() >= 0)
    return static_cast<uint64_t>(i->get<int64_t>());
  return bad("must be a non-negative integer");
}

/// `doc[name]` as a string ("" when absent and not `required`).
expected<std::string> string_field(const json& doc, const char* where,
                                   const char* name, bool required) {
  auto i = doc.find(name);
  if (i == doc.end()) {
    if (required)
      return make_failure(errc::invalid_argument,
                          std::string{where} + name + ": missing");
    return std::string{};
  }
  if (!i->is_string())
    return make_failure(errc::invalid_argument,
                        std::string{where} + name + ": must be a string");
  return i->get<std::string>();
}

/// The execution, attempt, firmware and manifest of push or offer params.
struct offered {
  uint64_t execution_id = 0;
  uint32_t attempt = 0;
  v1::Firmware firmware;
  std::string manifest;
};

expected<offered> decode_params(const std::string& product, const json& p,
                                const char* where) {
  if (!p.is_object())
    return make_failure(errc::invalid_argument,
                        std::string{where} + ": must be an object");
  std::string field_prefix = std::string{where} + ".";
  const char* w = field_prefix.c_str();
  offered out;
  auto execution = unsigned_field(p, w, "executionId");
  if (!execution)
    return execution.error();
  auto attempt = unsigned_field(p, w, "attempt");
  if (!attempt)
    return attempt.error();
  if (*attempt > UINT32_MAX)
    return make_failure(errc::invalid_argument,
                        field_prefix + "attempt: out of range");
  auto size = unsigned_field(p, w, "fileSize");
  if (!size)
    return size.error();
  auto version = string_field(p, w, "version", true);
  if (!version)
    return version.error();
  auto url = string_field(p, w, "fileUrl", true);
  if (!url)
    return url.error();
  auto sign = string_field(p, w, "sign", true);
  if (!sign)
    return sign.error();
  auto description = string_field(p, w, "description", false);
  if (!description)
    return description.error();
  auto manifest = string_field(p, w, "manifest", false);
  if (!manifest)
    return manifest.error();
  auto signature = string_field(p, w, "signature", false);
  if (!signature)
    return signature.error();
  auto manifest_bytes = from_base64(*manifest);
  if (!manifest_bytes)
    return make_failure(errc::invalid_argument,
                        field_prefix + "manifest: not base64");
  auto signature_bytes = from_base64(*signature);
  if (!signature_bytes)
    return make_failure(errc::invalid_argument,
                        field_prefix + "signature: not base64");
  out.execution_id = *execution;
  out.attempt = static_cast<uint32_t>(*attempt);
  out.firmware.set_product_key(product);
  out.firmware.set_version(*version);
  out.firmware.set_url(*url);
  out.firmware.set_size(*size);
  out.firmware.set_sha256(*sign);
  out.firmware.set_signature(*signature_bytes);
  out.firmware.set_description(*description);
  out.manifest = std::move(*manifest_bytes);
  return out;
}

/// Parses `payload` as a JSON object, or fails.
expected<json> parse_object(std::string_view payload) {
  auto doc = json::parse(payload, nullptr, false);
  if (doc.is_discarded())
    return make_failure(errc::invalid_argument, "payload: not JSON");
  if (!doc.is_object())
    return make_failure(errc::invalid_argument,
                        "payload: must be a JSON object");
  return doc;
}

} // namespace

int failure_step(std::string_view code) noexcept {
  if (code == "verification_failed" || code == "VERIFY_FAILED")
    return -3;
  if (code == "DOWNLOAD_FAILED")
    return -2;
  if (code == "FLASH_FAILED" || code == "E_FLASH")
    return -4;
  return -1;
}

expected<device_message> encode_request(const v1::ClientFrame& f, uint64_t id) {
  switch (f.body_case()) {
  case v1::ClientFrame::kRegisterDevice: {
    const auto& x = f.register_device();
    return inform(x.product_key(), x.device_key(), id, x.version());
  }
  case v1::ClientFrame::kReportVersion: {
    const auto& x = f.report_version();
    return inform(x.product_key(), x.device_key(), id, x.version());
  }
  case v1::ClientFrame::kDeviceOnline: {
    const auto& x = f.device_online();
    return status(x.product_key(), x.device_key(), true);
  }
  case v1::ClientFrame::kDeviceOffline: {
    const auto& x = f.device_offline();
    return status(x.product_key(), x.device_key(), false);
  }
  case v1::ClientFrame::kReportProgress: {
    const auto& x = f.report_progress();
    return progress(x.product_key(), x.device_key(), id,
                    static_cast<int>(std::min<uint32_t>(x.step(), 100)),
                    x.text(), x.execution_id());
  }
  case v1::ClientFrame::kConfirmUpgrade: {
    const auto& x = f.confirm_upgrade();
    return progress(x.product_key(), x.device_key(), id, 0, "confirmed",
                    x.execution_id());
  }
  case v1::ClientFrame::kReportFailure: {
    const auto& x = f.report_failure();
    return progress(x.product_key(), x.device_key(), id, failure_step(x.code()),
                    x.text(), x.execution_id());
  }
  case v1::ClientFrame::kRequestUpgrade: {
    const auto& x = f.request_upgrade();
    return request(x.product_key(), x.device_key(), "getversion", id,
                   "ota.device.getversion", json::object());
  }
  case v1::ClientFrame::kAckPush: {
    const auto& x = f.ack_push();
    json out{{"id", std::to_string(x.execution_id()) + "." +
                        std::to_string(x.attempt())},
             {"code", 200}};
    return device_message{
        topic_name(x.product_key(), x.device_key(), "upgrade_reply"), dump(out),
        false, false};
  }
  default:
    return make_failure(errc::invalid_argument,
                        "MQTT has no topic for request " +
                            std::to_string(static_cast<int>(f.body_case())));
  }
}

v1::StatusCode status_of(int64_t code) noexcept {
  switch (code) {
  case 200:
    return v1::STATUS_CODE_OK;
  case 400:
    return v1::STATUS_CODE_INVALID_ARGUMENT;
  case 403:
    return v1::STATUS_CODE_PERMISSION_DENIED;
  case 404:
    return v1::STATUS_CODE_NOT_FOUND;
  case 409:
    return v1::STATUS_CODE_FAILED_PRECONDITION;
  case 429:
    return v1::STATUS_CODE_RESOURCE_EXHAUSTED;
  case 503:
    return v1::STATUS_CODE_UNAVAILABLE;
  default:
    return v1::STATUS_CODE_INTERNAL;
  }
}

expected<device_reply> decode_reply(const device_topic& topic,
                                    std::string_view payload) {
  auto doc = parse_object(payload);
  if (!doc)
    return doc.error();
  device_reply out;
  auto id = doc->find("id");
  if (id == doc->end())
    return make_failure(errc::invalid_argument, "id: missing");
  if (id->is_string())
    out.id = id->get<std::string>();
  else if (is_integer(*id))
    out.id = id->dump();
  else
    return make_failure(errc::invalid_argument,
                        "id: must be a string or an integer");
  auto code = doc->find("code");
  if (code == doc->end())
    return make_failure(errc::invalid_argument, "code: missing");
  if (!is_integer(*code))
    return make_failure(errc::invalid_argument, "code: must be an integer");
  auto message = string_field(*doc, "", "message", false);
  if (!message)
    return message.error();
  auto& r = out.response;
  r.set_status(status_of(code->get<int64_t>()));
  r.set_message(*message);
  if (topic.kind != "getversion_reply" || r.status() != v1::STATUS_CODE_OK)
    return out;
  auto* offer = r.mutable_offer();
  auto data = doc->find("data");
  if (data == doc->end() || (data->is_object() && data->empty())) {
    offer->set_available(false);
    offer->set_reason(*message);
    return out;
  }
  auto params = decode_params(topic.product_key, *data, "data");
  if (!params)
    return params.error();
  offer->set_available(true);
  offer->set_execution_id(params->execution_id);
  offer->set_attempt(params->attempt);
  *offer->mutable_firmware() = std::move(params->firmware);
  offer->set_manifest(std::move(params->manifest));
  return out;
}

expected<v1::Push> decode_push(const device_topic& topic,
                               std::string_view payload) {
  auto doc = parse_object(payload);
  if (!doc)
    return doc.error();
  auto params = doc->find("params");
  if (params == doc->end())
    return make_failure(errc::invalid_argument, "params: missing");
  v1::Push out;
  if (topic.kind == "cancel") {
    if (!params->is_object())
      return make_failure(errc::invalid_argument, "params: must be an object");
    auto execution = unsigned_field(*params, "params.", "executionId");
    if (!execution)
      return execution.error();
    auto* x = out.mutable_cancel();
    x->set_product_key(topic.product_key);
    x->set_device_key(topic.device_key);
    x->set_execution_id(*execution);
    return out;
  }
  if (topic.kind != "upgrade")
    return make_failure(errc::invalid_argument,
                        "topic: " + topic.kind + " is not a push");
  auto offer = decode_params(topic.product_key, *params, "params");
  if (!offer)
    return offer.error();
  auto* x = out.mutable_upgrade();
  x->set_product_key(topic.product_key);
  x->set_device_key(topic.device_key);
  x->set_execution_id(offer->execution_id);
  x->set_attempt(offer->attempt);
  *x->mutable_firmware() = std::move(offer->firmware);
  x->set_manifest(std::move(offer->manifest));
  return out;
}

} // namespace fota::mqtt
