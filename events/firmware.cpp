#include "events/firmware.hpp"

#include "events/codec.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

namespace fota {

namespace {

failure invalid(std::string field, std::string what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

failure inconsistent(std::string what) {
  return make_failure(errc::corrupted, std::move(what));
}

bool is_hex_sha256(const std::string& x) {
  return x.size() == 64 && std::all_of(x.begin(), x.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) &&
                  !std::isupper(static_cast<unsigned char>(c));
         });
}

/// The scheme of `url` ("https" of "https://host/x"), lower case, or empty
/// when `url` does not start with "scheme://" followed by something.
std::string scheme_of(const std::string& url) {
  auto end = url.find("://");
  if (end == std::string::npos || end == 0 || end + 3 == url.size())
    return {};
  std::string scheme;
  for (size_t i = 0; i < end; ++i) {
    auto c = static_cast<unsigned char>(url[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.')
      return {};
    scheme += static_cast<char>(std::tolower(c));
  }
  return std::isalpha(static_cast<unsigned char>(scheme[0])) ? scheme
                                                             : std::string{};
}

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : ", ") + x;
  return out;
}

/// Why the URL is refused, if it is: devices download only from schemes the
/// node allows, and the URL is one line of the manifest.
std::optional<failure> refuse_url(const std::string& url,
                                  const firmware_policy& policy) {
  if (std::any_of(
          url.begin(), url.end(),
          [](char c) { return std::isspace(static_cast<unsigned char>(c)); }) ||
      has_control_character(url))
    return invalid("firmware.url", "must not contain white space or control "
                                   "characters");
  auto scheme = scheme_of(url);
  if (scheme.empty())
    return invalid("firmware.url",
                   "must be an absolute URL such as https://host/path, got \"" +
                       url + "\"");
  if (std::find(policy.url_schemes.begin(), policy.url_schemes.end(), scheme) ==
      policy.url_schemes.end())
    return invalid("firmware.url", "scheme " + scheme +
                                       " is not allowed; this node allows " +
                                       joined(policy.url_schemes));
  return std::nullopt;
}

/// Why the signature is refused, if it is: a product with trusted keys
/// accepts only firmware whose manifest one of them signed.
std::optional<failure> refuse_signature(const create_firmware& cmd,
                                        const firmware_policy& policy) {
  auto i = policy.signing_keys.find(cmd.product);
  if (i == policy.signing_keys.end() || i->second.empty())
    return std::nullopt;
  const auto& keys = i->second;
  auto name = firmware_name(cmd.product, cmd.version);
  if (cmd.signature.empty())
    return invalid("firmware.signature",
                   name + " is not signed; product " + cmd.product +
                       " accepts only firmware whose manifest is signed "
                       "with " +
                       (keys.size() == 1
                            ? std::string{"its trusted key"}
                            : "one of its " + std::to_string(keys.size()) +
                                  " trusted keys"));
  if (cmd.signature.size() != ed25519_signature_size)
    return invalid("firmware.signature",
                   name + ": an Ed25519 signature is 64 bytes, got " +
                       std::to_string(cmd.signature.size()));
  auto manifest = canonical_manifest(cmd.product, cmd.version, cmd.size,
                                     cmd.sha256, cmd.url);
  if (!signed_by_any(keys, manifest, cmd.signature))
    return invalid("firmware.signature",
                   name +
                       ": signature does not verify with any trusted key of "
                       "product " +
                       cmd.product);
  return std::nullopt;
}

event firmware_event(const std::string& product, const std::string& version,
                     timestamp now) {
  return make_event(firmware_stream(product, version), now);
}

failure unknown(const std::string& product, const std::string& version) {
  return make_failure(errc::not_found,
                      firmware_name(product, version) + " does not exist");
}

} // namespace

std::string firmware_name(const std::string& product,
                          const std::string& version) {
  return "firmware " + product + "/" + version;
}

bool operator==(const firmware_record& x, const firmware_record& y) {
  return x.product == y.product && x.version == y.version && x.url == y.url &&
         x.size == y.size && x.sha256 == y.sha256 &&
         x.signature == y.signature && x.description == y.description &&
         x.status == y.status && x.created_at_ms == y.created_at_ms &&
         x.verification_devices == y.verification_devices &&
         x.verification_failure == y.verification_failure &&
         x.verification_skip_reason == y.verification_skip_reason;
}

const firmware_record*
firmware_catalog::find(const std::string& product,
                       const std::string& version) const {
  auto i = entries.find(key{product, version});
  return i == entries.end() ? nullptr : &i->second;
}

expected<event_list> decide(const firmware_catalog& state,
                            const create_firmware& cmd,
                            const firmware_policy& policy, timestamp now) {
  if (cmd.product.empty())
    return invalid("firmware.product_key", "must not be empty");
  if (has_control_character(cmd.product))
    return invalid("firmware.product_key",
                   "must not contain control characters");
  if (cmd.version.empty())
    return invalid("firmware.version", "must not be empty");
  if (has_control_character(cmd.version))
    return invalid("firmware.version", "must not contain control characters");
  if (cmd.url.empty())
    return invalid("firmware.url", "must not be empty");
  if (auto refused = refuse_url(cmd.url, policy))
    return *refused;
  if (cmd.size == 0)
    return invalid("firmware.size", "must be greater than 0");
  if (!is_hex_sha256(cmd.sha256))
    return invalid("firmware.sha256",
                   "must be 64 lower-case hex digits, got \"" + cmd.sha256 +
                       "\"");
  if (state.find(cmd.product, cmd.version) != nullptr)
    return make_failure(errc::already_exists,
                        firmware_name(cmd.product, cmd.version) +
                            " already exists");
  if (auto refused = refuse_signature(cmd, policy))
    return *refused;
  // Field by field: nothing a client sends beyond these is stored.
  firmware_record fw;
  fw.product = cmd.product;
  fw.version = cmd.version;
  fw.url = cmd.url;
  fw.size = cmd.size;
  fw.sha256 = cmd.sha256;
  fw.signature = cmd.signature;
  fw.description = cmd.description;
  fw.status = v1::FIRMWARE_STATUS_UNVERIFIED;
  fw.created_at_ms = to_millis(now);
  auto e = firmware_event(fw.product, fw.version, now);
  *e.mutable_firmware_created()->mutable_firmware() = to_proto(fw);
  return event_list{std::move(e)};
}

namespace {

// Why firmware cannot enter verification (run or skipped), if it cannot:
// it must exist and be neither verified nor being verified.
std::optional<failure> refuse_verification(const firmware_catalog& state,
                                           const std::string& product,
                                           const std::string& version) {
  const auto* fw = state.find(product, version);
  if (fw == nullptr)
    return unknown(product, version);
  if (fw->status == v1::FIRMWARE_STATUS_VERIFIED)
    return make_failure(errc::failed_precondition,
                        firmware_name(product, version) +
                            " is already verified");
  if (fw->status == v1::FIRMWARE_STATUS_VERIFYING)
    return make_failure(errc::failed_precondition,
                        firmware_name(product, version) + " is being verified");
  return std::nullopt;
}

} // namespace

expected<event_list> decide(const firmware_catalog& state,
                            const verify_firmware& cmd, timestamp now) {
  if (auto refused = refuse_verification(state, cmd.product, cmd.version))
    return *refused;
  if (cmd.devices.empty())
    return invalid("device_keys",
                   "verification needs 1 to 5 devices; to attest firmware "
                   "without a run, skip verification with a reason");
  if (cmd.devices.size() > static_cast<size_t>(max_verification_devices))
    return invalid("device_keys", "names " +
                                      std::to_string(cmd.devices.size()) +
                                      " devices, at most 5 are allowed");
  std::set<std::string> seen;
  for (const auto& k : cmd.devices) {
    if (k.empty())
      return invalid("device_keys", "must not contain an empty key");
    if (!seen.insert(k).second)
      return invalid("device_keys", "names " + k + " twice");
  }
  if (cmd.timeout_seconds != 0 && (cmd.timeout_seconds < min_timeout_seconds ||
                                   cmd.timeout_seconds > max_timeout_seconds))
    return invalid("timeout_seconds",
                   "must be between 300 (5 min) and 172800 (48 h), got " +
                       std::to_string(cmd.timeout_seconds));
  auto e = firmware_event(cmd.product, cmd.version, now);
  auto* started = e.mutable_firmware_verification_started();
  started->set_product_key(cmd.product);
  started->set_version(cmd.version);
  for (const auto& k : cmd.devices)
    started->add_device_keys(k);
  started->set_timeout_seconds(cmd.timeout_seconds);
  return event_list{std::move(e)};
}

expected<event_list> decide(const firmware_catalog& state,
                            const skip_verification& cmd, timestamp now) {
  if (auto refused = refuse_verification(state, cmd.product, cmd.version))
    return *refused;
  auto reason = cmd.reason;
  reason.erase(0, reason.find_first_not_of(" \t\r\n"));
  if (reason.empty())
    return invalid("reason", "skipping verification needs a reason, which "
                             "is recorded with the firmware");
  auto e = firmware_event(cmd.product, cmd.version, now);
  auto* skipped = e.mutable_firmware_verification_skipped();
  skipped->set_product_key(cmd.product);
  skipped->set_version(cmd.version);
  skipped->set_reason(cmd.reason);
  return event_list{std::move(e)};
}

expected<event_list> decide(const firmware_catalog& state,
                            const delete_firmware& cmd, bool in_use,
                            timestamp now) {
  const auto* fw = state.find(cmd.product, cmd.version);
  if (fw == nullptr)
    return unknown(cmd.product, cmd.version);
  if (in_use || fw->status == v1::FIRMWARE_STATUS_VERIFYING)
    return make_failure(errc::failed_precondition,
                        firmware_name(cmd.product, cmd.version) +
                            " is used by an active task or verification");
  auto e = firmware_event(cmd.product, cmd.version, now);
  auto* deleted = e.mutable_firmware_deleted();
  deleted->set_product_key(cmd.product);
  deleted->set_version(cmd.version);
  return event_list{std::move(e)};
}

event_list decide_verification_result(const firmware_catalog& state,
                                      const std::string& product,
                                      const std::string& version,
                                      bool succeeded, const std::string& reason,
                                      timestamp now) {
  event_list out;
  const auto* fw = state.find(product, version);
  if (fw == nullptr || fw->status != v1::FIRMWARE_STATUS_VERIFYING)
    return out;
  auto e = firmware_event(product, version, now);
  if (succeeded) {
    e.mutable_firmware_verified()->set_product_key(product);
    e.mutable_firmware_verified()->set_version(version);
  } else {
    auto* f = e.mutable_firmware_verification_failed();
    f->set_product_key(product);
    f->set_version(version);
    f->set_reason(reason);
  }
  out.push_back(std::move(e));
  return out;
}

namespace {

/// The record an event names, or why there is none.
expected<firmware_record*> existing(firmware_catalog& state,
                                    const std::string& product,
                                    const std::string& version) {
  auto i = state.entries.find({product, version});
  if (i == state.entries.end())
    return inconsistent(firmware_name(product, version) + " does not exist");
  return &i->second;
}

} // namespace

status apply(firmware_catalog& state, const event& e) {
  switch (e.payload_case()) {
  case event::kFirmwareCreated: {
    auto fw = from_proto(e.firmware_created().firmware());
    if (state.find(fw.product, fw.version) != nullptr)
      return inconsistent(firmware_name(fw.product, fw.version) +
                          " is created a second time");
    auto key = firmware_catalog::key{fw.product, fw.version};
    state.entries.emplace(std::move(key), std::move(fw));
    return std::nullopt;
  }
  case event::kFirmwareVerificationStarted: {
    const auto& x = e.firmware_verification_started();
    auto fw = existing(state, x.product_key(), x.version());
    if (!fw)
      return fw.error();
    auto& r = **fw;
    r.status = v1::FIRMWARE_STATUS_VERIFYING;
    r.verification_devices.assign(x.device_keys().begin(),
                                  x.device_keys().end());
    r.verification_failure.clear();
    return std::nullopt;
  }
  case event::kFirmwareVerified: {
    const auto& x = e.firmware_verified();
    auto fw = existing(state, x.product_key(), x.version());
    if (!fw)
      return fw.error();
    (*fw)->status = v1::FIRMWARE_STATUS_VERIFIED;
    return std::nullopt;
  }
  case event::kFirmwareVerificationFailed: {
    const auto& x = e.firmware_verification_failed();
    auto fw = existing(state, x.product_key(), x.version());
    if (!fw)
      return fw.error();
    (*fw)->status = v1::FIRMWARE_STATUS_VERIFICATION_FAILED;
    (*fw)->verification_failure = x.reason();
    return std::nullopt;
  }
  case event::kFirmwareVerificationSkipped: {
    const auto& x = e.firmware_verification_skipped();
    auto fw = existing(state, x.product_key(), x.version());
    if (!fw)
      return fw.error();
    (*fw)->status = v1::FIRMWARE_STATUS_VERIFIED;
    (*fw)->verification_skip_reason = x.reason();
    return std::nullopt;
  }
  case event::kFirmwareDeleted: {
    const auto& x = e.firmware_deleted();
    if (state.entries.erase({x.product_key(), x.version()}) == 0)
      return inconsistent(firmware_name(x.product_key(), x.version()) +
                          " does not exist");
    return std::nullopt;
  }
  default:
    return inconsistent("not a firmware event");
  }
}

} // namespace fota
