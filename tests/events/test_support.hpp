/// Helpers shared by the tests of the pure domain: fixed instants, unwrapping
/// `expected` results, applying event lists and typical firmware and task
/// specs, so each test states only what it is about.
#pragma once

#include "events/codec.hpp"
#include "events/error.hpp"
#include "events/event.hpp"
#include "events/firmware.hpp"
#include "events/task.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <date/date.h>
#include <gtest/gtest.h>

namespace fota::test {

/// 2026-01-01T00:00:00Z, the start of every test's timeline.
constexpr int64_t t0_ms = 1'767'225'600'000;

/// `ms` milliseconds after t0.
inline timestamp at(int64_t ms = 0) {
  return from_millis(t0_ms + ms);
}

/// The UTC instant `y-m-d hh:mm:ss`.
inline timestamp utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0,
                     int ss = 0) {
  auto day = date::sys_days{date::year{y} / m / d};
  return std::chrono::time_point_cast<std::chrono::milliseconds>(
      day + std::chrono::hours{hh} + std::chrono::minutes{mm} +
      std::chrono::seconds{ss});
}

/// Returns the events of `x`, or records a test failure and returns none.
inline event_list events_of(expected<event_list> x) {
  if (!x) {
    ADD_FAILURE() << "unexpected failure: " << to_string(x.error().code) << ": "
                  << x.error().message;
    return {};
  }
  return std::move(x).value();
}

/// Returns the failure of `x`, or records a test failure.
inline failure failure_of(const expected<event_list>& x) {
  if (x) {
    ADD_FAILURE() << "expected a failure, got " << x->size() << " events";
    return {};
  }
  return x.error();
}

/// Applies `xs` in order to `state`; each must apply.
template <class State>
void apply_all(State& state, const event_list& xs) {
  for (const auto& x : xs)
    if (auto err = apply(state, x))
      ADD_FAILURE() << "event does not apply: " << err->message;
}

// -- requests as clients send them
// ---------------------------------------------

/// A `ClientFrame` with `body` as its request.
template <class Proto>
v1::ClientFrame frame_of(const Proto& body) {
  v1::ClientFrame f;
  const auto* d = f.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* field = d->field(i);
    if (field->message_type() == Proto::descriptor()) {
      f.GetReflection()->MutableMessage(&f, field)->CopyFrom(body);
      return f;
    }
  }
  ADD_FAILURE() << Proto::descriptor()->name() << " is no request";
  return f;
}

/// The command the edge turns `body` into, without the edge's size limits
/// (the rules behind the edge check sizes themselves).
template <class Command, class Proto>
Command command_of(const Proto& body) {
  auto r = decode(frame_of(body), false);
  if (!r) {
    ADD_FAILURE() << "does not decode: " << r.error().message;
    return {};
  }
  if (!std::holds_alternative<Command>(*r)) {
    ADD_FAILURE() << "decodes to another command";
    return {};
  }
  return std::get<Command>(std::move(*r));
}

inline register_device cmd(const v1::RegisterDevice& x) {
  return command_of<register_device>(x);
}
inline report_version cmd(const v1::ReportVersion& x) {
  return command_of<report_version>(x);
}
inline device_online cmd(const v1::DeviceOnline& x) {
  return command_of<device_online>(x);
}
inline device_offline cmd(const v1::DeviceOffline& x) {
  return command_of<device_offline>(x);
}
inline set_device_tags cmd(const v1::SetDeviceTags& x) {
  return command_of<set_device_tags>(x);
}
inline set_device_attributes cmd(const v1::SetDeviceAttributes& x) {
  return command_of<set_device_attributes>(x);
}
inline create_firmware cmd(const v1::CreateFirmware& x) {
  return command_of<create_firmware>(x);
}
inline verify_firmware cmd(const v1::VerifyFirmware& x) {
  return command_of<verify_firmware>(x);
}
inline skip_verification cmd(const v1::SkipVerification& x) {
  return command_of<skip_verification>(x);
}
inline delete_firmware cmd(const v1::DeleteFirmware& x) {
  return command_of<delete_firmware>(x);
}
inline create_asset_tree cmd(const v1::CreateAssetTree& x) {
  return command_of<create_asset_tree>(x);
}
inline delete_asset_tree cmd(const v1::DeleteAssetTree& x) {
  return command_of<delete_asset_tree>(x);
}

/// The payload cases of `xs`, in order.
inline std::vector<event::PayloadCase> cases_of(const event_list& xs) {
  std::vector<event::PayloadCase> out;
  for (const auto& x : xs)
    out.push_back(x.payload_case());
  return out;
}

/// A lower-case hex SHA-256 that passes validation.
inline std::string good_sha256() {
  return "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
}

/// A firmware that passes CreateFirmware validation.
inline v1::Firmware make_firmware(const std::string& product,
                                  const std::string& version) {
  v1::Firmware fw;
  fw.set_product_key(product);
  fw.set_version(version);
  fw.set_url("https://fw.example/" + product + "/" + version + ".bin");
  fw.set_size(4096);
  fw.set_sha256(good_sha256());
  fw.set_description("test image");
  return fw;
}

/// A catalog holding VERIFIED firmware `p1/2.0` and UNVERIFIED `p1/3.0`.
inline firmware_catalog make_catalog() {
  firmware_catalog c;
  auto verified = from_proto(make_firmware("p1", "2.0"));
  verified.status = v1::FIRMWARE_STATUS_VERIFIED;
  c.entries[{"p1", "2.0"}] = verified;
  auto unverified = from_proto(make_firmware("p1", "3.0"));
  unverified.status = v1::FIRMWARE_STATUS_UNVERIFIED;
  c.entries[{"p1", "3.0"}] = unverified;
  return c;
}

/// Decides creation of task `id` from `spec` against `catalog`.
inline expected<event_list> create_in(const firmware_catalog& catalog,
                                      uint64_t id, const v1::TaskSpec& spec,
                                      timestamp now) {
  return decide_create(task_id{id}, from_proto(spec),
                       catalog.find(spec.product_key(), spec.target_version()),
                       now);
}

/// The sequence `s` of an execution.
inline execution_seq seq(uint64_t s) {
  return execution_seq{s};
}

/// Execution `s` of `t` as the API shows it.
inline v1::Execution execution_proto(const task_state& t, uint64_t s) {
  return to_proto(t.view(execution_seq{s}));
}

/// A valid spec: snapshot, scope ALL, cloud push, from 1.0 to p1/2.0.
inline v1::TaskSpec make_spec() {
  v1::TaskSpec s;
  s.set_name("roll out 2.0");
  s.set_product_key("p1");
  s.set_target_version("2.0");
  s.add_source_versions("1.0");
  s.set_strategy(v1::STRATEGY_SNAPSHOT);
  s.mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
  s.set_method(v1::METHOD_CLOUD_PUSH);
  return s;
}

/// The keys "d1" … "d<n>".
inline std::vector<std::string> device_keys(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 1; i <= n; ++i)
    out.push_back("d" + std::to_string(i));
  return out;
}

/// Task `id` created from `spec` at t0 against the standard catalog, with
/// devices d1 … d<n> enrolled at t0+1.
inline task_state running_task(const v1::TaskSpec& spec, size_t n,
                               uint64_t id = 7) {
  task_state t;
  auto catalog = make_catalog();
  apply_all(t, events_of(create_in(catalog, id, spec, at())));
  apply_all(t, decide_enroll(t, device_keys(n), {}, at(1)));
  return t;
}

/// Applies the events of a decision that must succeed and returns them.
inline event_list step(task_state& t, expected<event_list> x) {
  auto xs = events_of(std::move(x));
  apply_all(t, xs);
  return xs;
}

} // namespace fota::test
