#include "events/replay.hpp"

#include <limits>
#include <string_view>
#include <unordered_set>

namespace fota {

std::string device_ref(const std::string& product, const std::string& device) {
  std::string s;
  s.reserve(product.size() + device.size() + 1);
  s.append(product).push_back('\0');
  s.append(device);
  return s;
}

device_state* world::find_device(const std::string& product,
                                 const std::string& device) {
  auto i = device_index.find(device_ref(product, device));
  return i == device_index.end() ? nullptr : &devices[i->second];
}

namespace {

failure violation(std::string what) {
  return make_failure(errc::corrupted, std::move(what));
}

/// "DevicesEnrolled", the type of an event's payload.
std::string type_of(const event& e) {
  const auto* field = e.GetDescriptor()->FindFieldByNumber(e.payload_case());
  if (field == nullptr || field->message_type() == nullptr)
    return "unknown";
  return field->message_type()->name();
}

status apply_device(world& w, const std::string& product,
                    const std::string& key, const event& e) {
  if (e.payload_case() == event::kDeviceRegistered) {
    if (auto err = validate_device_ref(product, key))
      return violation("a device is registered with an invalid key: " +
                       err->message);
    if (!w.device_index.try_emplace(device_ref(product, key), w.devices.size())
             .second)
      return violation(device_name(product, key) +
                       " is registered a second time");
    w.devices.push_back(make_device(e));
    return std::nullopt;
  }
  auto* d = w.find_device(product, key);
  if (d == nullptr)
    return violation(device_name(product, key) + " is not registered");
  return apply(*d, e);
}

} // namespace

uint64_t task_of(const event& e) {
  switch (e.payload_case()) {
  case event::kTaskCreated:
    return e.task_created().task_id();
  case event::kDevicesEnrolled:
    return e.devices_enrolled().task_id();
  case event::kDevicesSkipped:
    return e.devices_skipped().task_id();
  case event::kExecutionNotified:
    return e.execution_notified().task_id();
  case event::kExecutionStarted:
    return e.execution_started().task_id();
  case event::kExecutionProgressed:
    return e.execution_progressed().task_id();
  case event::kExecutionSucceeded:
    return e.execution_succeeded().task_id();
  case event::kExecutionFailed:
    return e.execution_failed().task_id();
  case event::kExecutionTimedOut:
    return e.execution_timed_out().task_id();
  case event::kExecutionRequeued:
    return e.execution_requeued().task_id();
  case event::kExecutionsCanceled:
    return e.executions_canceled().task_id();
  case event::kTaskPaused:
    return e.task_paused().task_id();
  case event::kTaskResumed:
    return e.task_resumed().task_id();
  case event::kTaskCanceled:
    return e.task_canceled().task_id();
  case event::kTaskCompleted:
    return e.task_completed().task_id();
  default:
    return 0;
  }
}

namespace {

/// Calls `f(sequence)` for each execution that `e` touches, after it was
/// applied to `t`: they may have taken or released their device.
template <class F>
void for_touched(const task_state& t, const event& e, size_t executions_before,
                 F&& f) {
  switch (e.payload_case()) {
  case event::kDevicesEnrolled:
    for (auto s = executions_before + 1; s <= t.executions.size(); ++s)
      f(s);
    return;
  case event::kExecutionNotified:
    f(e.execution_notified().sequence());
    return;
  case event::kExecutionStarted:
    f(e.execution_started().sequence());
    return;
  case event::kExecutionSucceeded:
    f(e.execution_succeeded().sequence());
    return;
  case event::kExecutionFailed:
    f(e.execution_failed().sequence());
    return;
  case event::kExecutionTimedOut:
    f(e.execution_timed_out().sequence());
    return;
  case event::kExecutionRequeued:
    f(e.execution_requeued().sequence());
    return;
  case event::kExecutionsCanceled:
    for (auto s : e.executions_canceled().sequences())
      f(s);
    return;
  case event::kTaskCanceled:
  case event::kTaskCompleted:
    // Executions waiting for a retry let go of their device.
    for (uint64_t s = 1; s <= t.executions.size(); ++s) {
      auto x = t.executions[s - 1].state;
      if (x == v1::EXECUTION_STATE_FAILED || x == v1::EXECUTION_STATE_TIMED_OUT)
        f(s);
    }
    return;
  default:
    return;
  }
}

/// The device of execution `s` of `t`; nullptr when it is not registered.
/// Each execution's device is looked up by key once, then by its place.
device_state* device_of(world& w, const task_state& t, uint64_t s) {
  constexpr auto none = std::numeric_limits<size_t>::max();
  auto& places = w.execution_devices[t.id.value()];
  while (places.size() < t.executions.size()) {
    const auto& key = t.executions[places.size()].device_key;
    auto i = w.device_index.find(device_ref(t.spec.product, key));
    places.push_back(i == w.device_index.end() ? none : i->second);
  }
  if (s == 0 || s > places.size())
    return nullptr;
  auto& place = places[s - 1];
  if (place == none) // Registered since? Looked up again.
    if (auto* d = w.find_device(t.spec.product, t.executions[s - 1].device_key))
      place = static_cast<size_t>(d - w.devices.data());
  return place == none ? nullptr : &w.devices[place];
}

/// Updates which execution holds each device `e` touched.
void update_holders(world& w, const task_state& t, const event& e,
                    size_t executions_before) {
  for_touched(t, e, executions_before, [&](uint64_t s) {
    if (s == 0 || s > t.executions.size())
      return;
    const auto& x = t.executions[s - 1];
    auto* d = device_of(w, t, s);
    if (d == nullptr)
      return; // Checked at enrolment.
    auto id = t.id_of(execution_seq{s});
    if (t.holds_device(x))
      d->active_execution = id;
    else if (d->active_execution == id)
      d->active_execution = execution_id{};
  });
}

status apply_task_created(world& w, const event& e) {
  const auto& x = e.task_created();
  if (x.task_id() == 0 || x.task_id() > max_task_id)
    return violation("task id " + std::to_string(x.task_id()) +
                     " is out of range");
  if (w.tasks.count(x.task_id()) > 0)
    return violation("task " + std::to_string(x.task_id()) +
                     " is created a second time");
  const auto& spec = x.spec();
  if (w.firmware.find(spec.product_key(), spec.target_version()) == nullptr)
    return violation("task " + std::to_string(x.task_id()) + " targets " +
                     firmware_name(spec.product_key(), spec.target_version()) +
                     ", which does not exist");
  w.tasks.emplace(x.task_id(), make_task(e));
  w.task_created_at[x.task_id()] = e.sequence();
  return std::nullopt;
}

status apply_task(world& w, const event& e) {
  auto id = task_of(e);
  auto i = w.tasks.find(id);
  if (i == w.tasks.end())
    return violation("task " + std::to_string(id) + " does not exist");
  auto& t = i->second;
  auto before = t.executions.size();
  // An execution starts to hold its device only when it is enrolled (cloud
  // push) or offered (device request): both are checked against the
  // devices before anything is applied.
  if (e.payload_case() == event::kDevicesEnrolled) {
    std::unordered_set<std::string_view> seen;
    seen.reserve(static_cast<size_t>(e.devices_enrolled().device_keys_size()));
    for (const auto& k : e.devices_enrolled().device_keys()) {
      auto* d = w.find_device(t.spec.product, k);
      if (d == nullptr)
        return violation("task " + std::to_string(id) + " enrols " +
                         device_name(t.spec.product, k) +
                         ", which is not registered");
      if (!seen.insert(k).second)
        return violation("task " + std::to_string(id) + " enrols " +
                         device_name(t.spec.product, k) + " twice");
      if (t.spec.method == v1::METHOD_CLOUD_PUSH && d->active_execution)
        return violation(device_name(t.spec.product, k) +
                         " is enrolled in task " + std::to_string(id) +
                         " while execution " + d->active_execution.to_string() +
                         " holds it");
    }
  } else if (e.payload_case() == event::kExecutionNotified &&
             t.spec.method == v1::METHOD_DEVICE_REQUEST) {
    // A device-request offer takes the device: it must be free.
    auto seq = execution_seq{e.execution_notified().sequence()};
    if (const auto* x = t.find(seq)) {
      auto* d = device_of(w, t, seq.value());
      auto id = t.id_of(seq);
      if (d != nullptr && d->active_execution && d->active_execution != id)
        return violation(device_name(t.spec.product, x->device_key) +
                         " is offered execution " + id.to_string() +
                         " while execution " + d->active_execution.to_string() +
                         " holds it");
    }
  }
  // A success that records the device's version changes the device too.
  device_state* recorded = nullptr;
  if (e.payload_case() == event::kExecutionSucceeded &&
      !e.execution_succeeded().device_version().empty()) {
    const auto& v = e.execution_succeeded().device_version();
    if (const auto* x =
            t.find(execution_seq{e.execution_succeeded().sequence()})) {
      recorded = device_of(w, t, e.execution_succeeded().sequence());
      if (recorded == nullptr)
        return violation("task " + std::to_string(id) +
                         " records a version of " +
                         device_name(t.spec.product, x->device_key) +
                         ", which is not registered");
      if (v.size() > max_key_length)
        return violation(
            "task " + std::to_string(id) + " records a version of " +
            device_name(t.spec.product, x->device_key) + " longer than " +
            std::to_string(max_key_length) + " characters");
    }
  }
  if (auto err = apply(t, e))
    return err;
  if (recorded != nullptr)
    if (auto err = apply(*recorded, e))
      return err;
  update_holders(w, t, e, before);
  return std::nullopt;
}

status apply_checked(world& w, const event& e) {
  switch (e.payload_case()) {
  case event::kFirmwareDeleted: {
    const auto& x = e.firmware_deleted();
    for (const auto& [id, t] : w.tasks)
      if (!is_finished(t.status) && t.spec.product == x.product_key() &&
          t.spec.target_version == x.version())
        return violation(firmware_name(x.product_key(), x.version()) +
                         " is deleted while task " + std::to_string(id) +
                         " uses it");
    return apply(w.firmware, e);
  }
  case event::kFirmwareVerificationStarted: {
    const auto& x = e.firmware_verification_started();
    if (auto err = apply(w.firmware, e))
      return err;
    w.verification_started_at[{x.product_key(), x.version()}] = e.sequence();
    return std::nullopt;
  }
  case event::kFirmwareCreated:
  case event::kFirmwareVerified:
  case event::kFirmwareVerificationFailed:
  case event::kFirmwareVerificationSkipped:
    return apply(w.firmware, e);
  case event::kDeviceRegistered:
    return apply_device(w, e.device_registered().product_key(),
                        e.device_registered().device_key(), e);
  case event::kDeviceVersionReported:
    return apply_device(w, e.device_version_reported().product_key(),
                        e.device_version_reported().device_key(), e);
  case event::kDeviceConnected:
    return apply_device(w, e.device_connected().product_key(),
                        e.device_connected().device_key(), e);
  case event::kDeviceDisconnected:
    return apply_device(w, e.device_disconnected().product_key(),
                        e.device_disconnected().device_key(), e);
  case event::kDeviceTagsChanged:
    return apply_device(w, e.device_tags_changed().product_key(),
                        e.device_tags_changed().device_key(), e);
  case event::kDeviceAttributesChanged:
    return apply_device(w, e.device_attributes_changed().product_key(),
                        e.device_attributes_changed().device_key(), e);
  case event::kDeviceGatewayChanged:
    return apply_device(w, e.device_gateway_changed().product_key(),
                        e.device_gateway_changed().device_key(), e);
  case event::kAssetTreeCreated:
  case event::kAssetTreeDeleted:
    return apply(w.trees, e);
  case event::kTaskCreated:
    return apply_task_created(w, e);
  case event::PAYLOAD_NOT_SET:
    return violation("the event has no payload this version knows (written "
                     "by a newer version of fota?)");
  default:
    return apply_task(w, e);
  }
}

} // namespace

status apply(world& w, const event& e) {
  auto expected = w.last_sequence.value() + 1;
  auto name = [&] {
    return "event " + std::to_string(e.sequence()) + " (" + type_of(e) + ")";
  };
  if (e.sequence() != expected)
    return violation(name() + ": the log continues at sequence " +
                     std::to_string(expected));
  if (auto err = apply_checked(w, e))
    return violation(name() + ": " + err->message);
  w.last_sequence = sequence_number{e.sequence()};
  return std::nullopt;
}

status decode_stored(event& e, sequence_number seq, std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return violation("event " + std::to_string(seq.value()) +
                     " does not decode as fota.v1.EventEnvelope");
  if (e.sequence() != seq.value())
    return violation("event " + std::to_string(seq.value()) +
                     " carries sequence " + std::to_string(e.sequence()));
  return std::nullopt;
}

status replay(world& w, sequence_number seq, std::string_view bytes) {
  event e;
  if (auto err = decode_stored(e, seq, bytes))
    return err;
  return apply(w, e);
}

void finish_replay(world& w) {
  for (auto& d : w.devices)
    d.online = false;
}

} // namespace fota
