#include "events/firmware.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace fota {

namespace {

failure invalid(std::string field, std::string what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

bool is_hex_sha256(const std::string& x) {
  return x.size() == 64 && std::all_of(x.begin(), x.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) &&
                  !std::isupper(static_cast<unsigned char>(c));
         });
}

std::string name_of(const std::string& product, const std::string& version) {
  return "firmware " + product + "/" + version;
}

} // namespace

const v1::Firmware* firmware_catalog::find(const std::string& product,
                                           const std::string& version) const {
  auto i = entries.find(key{product, version});
  return i == entries.end() ? nullptr : &i->second;
}

expected<event_list> decide(const firmware_catalog& state,
                            const v1::CreateFirmware& cmd, timestamp now) {
  const auto& fw = cmd.firmware();
  if (fw.product_key().empty())
    return invalid("firmware.product_key", "must not be empty");
  if (fw.version().empty())
    return invalid("firmware.version", "must not be empty");
  if (fw.url().empty())
    return invalid("firmware.url", "must not be empty");
  if (fw.size() == 0)
    return invalid("firmware.size", "must be greater than 0");
  if (!is_hex_sha256(fw.sha256()))
    return invalid("firmware.sha256",
                   "must be 64 lower-case hex digits, got \"" + fw.sha256() +
                       "\"");
  if (state.find(fw.product_key(), fw.version()) != nullptr)
    return make_failure(errc::already_exists,
                        name_of(fw.product_key(), fw.version()) +
                            " already exists");
  auto e = make_event(firmware_stream(fw.product_key(), fw.version()), now);
  auto* created = e.mutable_firmware_created()->mutable_firmware();
  *created = fw;
  created->set_status(v1::FIRMWARE_STATUS_UNVERIFIED);
  created->set_created_at_ms(to_millis(now));
  created->clear_verification_device_keys();
  created->clear_verification_failure();
  return event_list{std::move(e)};
}

expected<event_list> decide(const firmware_catalog& state,
                            const v1::VerifyFirmware& cmd, timestamp now) {
  const auto* fw = state.find(cmd.product_key(), cmd.version());
  if (fw == nullptr)
    return make_failure(errc::not_found,
                        name_of(cmd.product_key(), cmd.version()) +
                            " does not exist");
  if (fw->status() == v1::FIRMWARE_STATUS_VERIFIED)
    return make_failure(errc::failed_precondition,
                        name_of(cmd.product_key(), cmd.version()) +
                            " is already verified");
  if (fw->status() == v1::FIRMWARE_STATUS_VERIFYING)
    return make_failure(errc::failed_precondition,
                        name_of(cmd.product_key(), cmd.version()) +
                            " is being verified");
  if (cmd.device_keys_size() > max_verification_devices)
    return invalid("device_keys", "names " +
                                      std::to_string(cmd.device_keys_size()) +
                                      " devices, at most 5 are allowed");
  if (cmd.device_keys_size() > 0) {
    std::set<std::string> seen;
    for (const auto& k : cmd.device_keys()) {
      if (k.empty())
        return invalid("device_keys", "must not contain an empty key");
      if (!seen.insert(k).second)
        return invalid("device_keys", "names " + k + " twice");
    }
    if (cmd.timeout_seconds() != 0 &&
        (cmd.timeout_seconds() < 300 || cmd.timeout_seconds() > 172800))
      return invalid("timeout_seconds",
                     "must be between 300 (5 min) and 172800 (48 h), got " +
                         std::to_string(cmd.timeout_seconds()));
    auto e = make_event(firmware_stream(cmd.product_key(), cmd.version()), now);
    auto* started = e.mutable_firmware_verification_started();
    started->set_product_key(cmd.product_key());
    started->set_version(cmd.version());
    *started->mutable_device_keys() = cmd.device_keys();
    started->set_timeout_seconds(cmd.timeout_seconds());
    return event_list{std::move(e)};
  }
  auto e = make_event(firmware_stream(cmd.product_key(), cmd.version()), now);
  auto* verified = e.mutable_firmware_verified();
  verified->set_product_key(cmd.product_key());
  verified->set_version(cmd.version());
  return event_list{std::move(e)};
}

expected<event_list> decide(const firmware_catalog& state,
                            const v1::DeleteFirmware& cmd, bool in_use,
                            timestamp now) {
  const auto* fw = state.find(cmd.product_key(), cmd.version());
  if (fw == nullptr)
    return make_failure(errc::not_found,
                        name_of(cmd.product_key(), cmd.version()) +
                            " does not exist");
  if (in_use || fw->status() == v1::FIRMWARE_STATUS_VERIFYING)
    return make_failure(errc::failed_precondition,
                        name_of(cmd.product_key(), cmd.version()) +
                            " is used by an active task or verification");
  auto e = make_event(firmware_stream(cmd.product_key(), cmd.version()), now);
  auto* deleted = e.mutable_firmware_deleted();
  deleted->set_product_key(cmd.product_key());
  deleted->set_version(cmd.version());
  return event_list{std::move(e)};
}

event_list decide_verification_result(const firmware_catalog& state,
                                      const std::string& product,
                                      const std::string& version,
                                      bool succeeded, const std::string& reason,
                                      timestamp now) {
  event_list out;
  const auto* fw = state.find(product, version);
  if (fw == nullptr || fw->status() != v1::FIRMWARE_STATUS_VERIFYING)
    return out;
  auto e = make_event(firmware_stream(product, version), now);
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

void apply(firmware_catalog& state, const event& e) {
  switch (e.payload_case()) {
  case event::kFirmwareCreated: {
    const auto& fw = e.firmware_created().firmware();
    state.entries[{fw.product_key(), fw.version()}] = fw;
    break;
  }
  case event::kFirmwareVerificationStarted: {
    const auto& x = e.firmware_verification_started();
    auto i = state.entries.find({x.product_key(), x.version()});
    if (i != state.entries.end()) {
      i->second.set_status(v1::FIRMWARE_STATUS_VERIFYING);
      *i->second.mutable_verification_device_keys() = x.device_keys();
      i->second.clear_verification_failure();
    }
    break;
  }
  case event::kFirmwareVerified: {
    const auto& x = e.firmware_verified();
    auto i = state.entries.find({x.product_key(), x.version()});
    if (i != state.entries.end())
      i->second.set_status(v1::FIRMWARE_STATUS_VERIFIED);
    break;
  }
  case event::kFirmwareVerificationFailed: {
    const auto& x = e.firmware_verification_failed();
    auto i = state.entries.find({x.product_key(), x.version()});
    if (i != state.entries.end()) {
      i->second.set_status(v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
      i->second.set_verification_failure(x.reason());
    }
    break;
  }
  case event::kFirmwareDeleted: {
    const auto& x = e.firmware_deleted();
    state.entries.erase({x.product_key(), x.version()});
    break;
  }
  default:
    break;
  }
}

} // namespace fota
