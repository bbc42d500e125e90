#include "mqtt/codec.hpp"

#include "events/manifest.hpp"

#include <charconv>
#include <vector>

#include <nlohmann/json.hpp>

namespace fota::mqtt {

namespace {

using json = nlohmann::json;

/// The levels of `topic` between slashes.
std::vector<std::string_view> split(std::string_view topic) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto end = topic.find('/', start);
    if (end == std::string_view::npos) {
      out.push_back(topic.substr(start));
      return out;
    }
    out.push_back(topic.substr(start, end - start));
    start = end + 1;
  }
}

/// The failure codes of progress steps -1 to -4.
constexpr const char* failure_codes[] = {"UPGRADE_FAILED", "DOWNLOAD_FAILED",
                                         "VERIFY_FAILED", "FLASH_FAILED"};

/// Whether `x` is an integer (not a float, not a bool).
bool is_integer(const json& x) {
  return x.is_number_integer() || x.is_number_unsigned();
}

/// Reads the request envelope of `payload` into `out`: the id, the method
/// (when present, it must be `method`) and the params object (`{}` when
/// absent and `params_required` is false). Returns the params or nullptr
/// with `out.error` set.
const json* envelope(const json& doc, std::string_view method,
                     bool params_required, inbound& out) {
  if (!doc.is_object()) {
    out.error = "payload: must be a JSON object";
    return nullptr;
  }
  auto id = doc.find("id");
  if (id == doc.end()) {
    out.error = "id: missing";
    return nullptr;
  }
  if (!id->is_string() && !is_integer(*id)) {
    out.error = "id: must be a string or an integer";
    return nullptr;
  }
  out.id = id->dump();
  if (auto m = doc.find("method"); m != doc.end()) {
    if (!m->is_string() || m->get<std::string>() != method) {
      out.error = "method: must be \"" + std::string{method} + "\"";
      return nullptr;
    }
  }
  static const json empty = json::object();
  auto params = doc.find("params");
  if (params == doc.end()) {
    if (params_required) {
      out.error = "params: missing";
      return nullptr;
    }
    return &empty;
  }
  if (!params->is_object()) {
    out.error = "params: must be an object";
    return nullptr;
  }
  return &*params;
}

void decode_inform(const device_topic& t, const json& doc, inbound& out) {
  out.replies = true;
  auto params = envelope(doc, "ota.device.inform", true, out);
  if (!params)
    return;
  auto version = params->find("version");
  if (version == params->end()) {
    out.error = "params.version: missing";
    return;
  }
  if (!version->is_string() || version->get<std::string>().empty()) {
    out.error = "params.version: must be a non-empty string";
    return;
  }
  v1::ClientFrame f;
  auto* x = f.mutable_register_device();
  x->set_product_key(t.product_key);
  x->set_device_key(t.device_key);
  x->set_version(version->get<std::string>());
  out.frame = std::move(f);
}

void decode_progress(const device_topic& t, const json& doc, inbound& out) {
  out.replies = true;
  auto params = envelope(doc, "ota.device.progress", true, out);
  if (!params)
    return;
  auto step = params->find("step");
  if (step == params->end()) {
    out.error = "params.step: missing";
    return;
  }
  if (!is_integer(*step) || step->get<int64_t>() < -4 ||
      step->get<int64_t>() > 100) {
    out.error = "params.step: must be an integer from -4 to 100";
    return;
  }
  std::string desc;
  if (auto d = params->find("desc"); d != params->end()) {
    if (!d->is_string()) {
      out.error = "params.desc: must be a string";
      return;
    }
    desc = d->get<std::string>();
  }
  uint64_t execution = 0;
  if (auto e = params->find("executionId"); e != params->end()) {
    if (e->is_number_unsigned())
      execution = e->get<uint64_t>();
    else if (e->is_number_integer() && e->get<int64_t>() >= 0)
      execution = static_cast<uint64_t>(e->get<int64_t>());
    else {
      out.error = "params.executionId: must be a non-negative integer";
      return;
    }
  }
  auto n = step->get<int64_t>();
  v1::ClientFrame f;
  if (n >= 0) {
    auto* x = f.mutable_report_progress();
    x->set_product_key(t.product_key);
    x->set_device_key(t.device_key);
    x->set_execution_id(execution);
    x->set_step(static_cast<uint32_t>(n));
    x->set_text(std::move(desc));
  } else {
    auto* x = f.mutable_report_failure();
    x->set_product_key(t.product_key);
    x->set_device_key(t.device_key);
    x->set_execution_id(execution);
    x->set_code(failure_codes[-n - 1]);
    x->set_text(std::move(desc));
  }
  out.frame = std::move(f);
}

void decode_getversion(const device_topic& t, const json& doc, inbound& out) {
  out.replies = true;
  if (!envelope(doc, "ota.device.getversion", false, out))
    return;
  v1::ClientFrame f;
  auto* x = f.mutable_request_upgrade();
  x->set_product_key(t.product_key);
  x->set_device_key(t.device_key);
  out.frame = std::move(f);
}

void decode_status(const device_topic& t, const json& doc, inbound& out) {
  if (!doc.is_object()) {
    out.error = "payload: must be a JSON object";
    return;
  }
  auto online = doc.find("online");
  if (online == doc.end()) {
    out.error = "online: missing";
    return;
  }
  if (!online->is_boolean()) {
    out.error = "online: must be true or false";
    return;
  }
  v1::ClientFrame f;
  if (online->get<bool>()) {
    auto* x = f.mutable_device_online();
    x->set_product_key(t.product_key);
    x->set_device_key(t.device_key);
  } else {
    auto* x = f.mutable_device_offline();
    x->set_product_key(t.product_key);
    x->set_device_key(t.device_key);
  }
  out.frame = std::move(f);
}

void decode_upgrade_reply(const device_topic& t, const json& doc,
                          inbound& out) {
  if (!doc.is_object()) {
    out.error = "payload: must be a JSON object";
    return;
  }
  auto id = doc.find("id");
  if (id == doc.end()) {
    out.error = "id: missing";
    return;
  }
  if (!id->is_string()) {
    out.error = "id: must be a string \"<executionId>.<attempt>\"";
    return;
  }
  out.id = id->dump();
  auto push = parse_push_id(id->get<std::string>());
  if (!push) {
    out.error = "id: must be \"<executionId>.<attempt>\"";
    return;
  }
  auto code = doc.find("code");
  if (code == doc.end()) {
    out.error = "code: missing";
    return;
  }
  if (!is_integer(*code)) {
    out.error = "code: must be an integer";
    return;
  }
  if (code->get<int64_t>() != 200) {
    out.error = "code: " + code->dump() + " does not acknowledge the push";
    return;
  }
  v1::ClientFrame f;
  auto* x = f.mutable_ack_push();
  x->set_product_key(t.product_key);
  x->set_device_key(t.device_key);
  x->set_execution_id(push->first);
  x->set_attempt(push->second);
  out.frame = std::move(f);
}

json params_of(uint64_t execution_id, uint32_t attempt, const v1::Firmware& fw,
               const std::string& manifest) {
  return json{{"version", fw.version()},
              {"fileUrl", fw.url()},
              {"fileSize", fw.size()},
              {"sign", fw.sha256()},
              {"signMethod", "sha256"},
              {"manifest", to_base64(manifest)},
              {"signature", to_base64(fw.signature())},
              {"description", fw.description()},
              {"executionId", execution_id},
              {"attempt", attempt}};
}

/// `id` as JSON; "" when `id` is not JSON text.
json id_of(const std::string& id) {
  auto x = json::parse(id, nullptr, false);
  return x.is_discarded() ? json("") : x;
}

} // namespace

// -- topics -------------------------------------------------------------------

std::optional<device_topic> parse_topic(std::string_view topic) {
  auto levels = split(topic);
  if (levels.size() != 7 || !levels[0].empty() || levels[1] != "sys" ||
      levels[4] != "ota" || levels[5] != "device")
    return std::nullopt;
  if (levels[2].empty() || levels[3].empty() || levels[6].empty())
    return std::nullopt;
  return device_topic{std::string{levels[2]}, std::string{levels[3]},
                      std::string{levels[6]}};
}

std::string topic_name(const std::string& product_key,
                       const std::string& device_key, std::string_view kind) {
  std::string out = "/sys/";
  out += product_key;
  out += '/';
  out += device_key;
  out += "/ota/device/";
  out += kind;
  return out;
}

// -- device to cloud ----------------------------------------------------------

inbound decode(const device_topic& topic, std::string_view payload) {
  inbound out;
  using decoder = void (*)(const device_topic&, const json&, inbound&);
  decoder f = nullptr;
  bool replies = false;
  if (topic.kind == "inform") {
    f = decode_inform;
    replies = true;
  } else if (topic.kind == "progress") {
    f = decode_progress;
    replies = true;
  } else if (topic.kind == "getversion") {
    f = decode_getversion;
    replies = true;
  } else if (topic.kind == "status") {
    f = decode_status;
  } else if (topic.kind == "upgrade_reply") {
    f = decode_upgrade_reply;
  } else {
    return out;
  }
  out.replies = replies;
  // An empty retained message clears a status: nothing to tell the node.
  if (payload.empty() && topic.kind == "status")
    return out;
  auto doc = json::parse(payload, nullptr, false);
  if (doc.is_discarded()) {
    out.error = "payload: not JSON";
    return out;
  }
  f(topic, doc, out);
  return out;
}

std::optional<std::pair<uint64_t, uint32_t>>
parse_push_id(std::string_view id) {
  auto dot = id.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == id.size())
    return std::nullopt;
  uint64_t execution = 0;
  uint32_t attempt = 0;
  auto* first = id.data();
  auto* mid = id.data() + dot;
  auto* last = id.data() + id.size();
  auto [p1, e1] = std::from_chars(first, mid, execution);
  if (e1 != std::errc{} || p1 != mid || execution == 0)
    return std::nullopt;
  auto [p2, e2] = std::from_chars(mid + 1, last, attempt);
  if (e2 != std::errc{} || p2 != last || attempt == 0)
    return std::nullopt;
  return std::pair{execution, attempt};
}

// -- cloud to device ----------------------------------------------------------

int reply_code(v1::StatusCode x) noexcept {
  switch (x) {
  case v1::STATUS_CODE_OK:
    return 200;
  case v1::STATUS_CODE_INVALID_ARGUMENT:
    return 400;
  case v1::STATUS_CODE_PERMISSION_DENIED:
  case v1::STATUS_CODE_UNAUTHENTICATED:
    return 403;
  case v1::STATUS_CODE_NOT_FOUND:
    return 404;
  case v1::STATUS_CODE_FAILED_PRECONDITION:
  case v1::STATUS_CODE_ALREADY_EXISTS:
    return 409;
  case v1::STATUS_CODE_RESOURCE_EXHAUSTED:
    return 429;
  case v1::STATUS_CODE_UNAVAILABLE:
    return 503;
  default:
    return 500;
  }
}

std::string encode_reply(const std::string& id, const v1::Response& r) {
  json data = json::object();
  std::string message;
  if (r.status() != v1::STATUS_CODE_OK)
    message = r.message();
  else if (r.has_offer()) {
    const auto& o = r.offer();
    if (o.available())
      data =
          params_of(o.execution_id(), o.attempt(), o.firmware(), o.manifest());
    else
      message = o.reason();
  }
  json out{{"id", id_of(id)},
           {"code", reply_code(r.status())},
           {"data", std::move(data)},
           {"message", std::move(message)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_reply(const std::string& id, int code,
                         std::string_view message) {
  json out{{"id", id_of(id)},
           {"code", code},
           {"data", json::object()},
           {"message", std::string{message}}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_params(uint64_t execution_id, uint32_t attempt,
                          const v1::Firmware& firmware,
                          const std::string& manifest) {
  return params_of(execution_id, attempt, firmware, manifest)
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

outbound encode_push(const v1::UpgradePush& x) {
  json out{{"id", std::to_string(x.execution_id()) + "." +
                      std::to_string(x.attempt())},
           {"version", "1.0"},
           {"method", "ota.device.upgrade"},
           {"params", params_of(x.execution_id(), x.attempt(), x.firmware(),
                                x.manifest())}};
  return {topic_name(x.product_key(), x.device_key(), "upgrade"),
          out.dump(-1, ' ', false, json::error_handler_t::replace)};
}

outbound encode_cancel(const v1::CancelPush& x) {
  json out{{"id", std::to_string(x.execution_id())},
           {"version", "1.0"},
           {"method", "ota.device.cancel"},
           {"params", {{"executionId", x.execution_id()}}}};
  return {topic_name(x.product_key(), x.device_key(), "cancel"),
          out.dump(-1, ' ', false, json::error_handler_t::replace)};
}

} // namespace fota::mqtt
