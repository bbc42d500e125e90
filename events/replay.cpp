#include "events/replay.hpp"

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

void apply_device(world& w, const std::string& product,
                  const std::string& device, const event& e) {
  if (e.payload_case() == event::kDeviceRegistered) {
    auto ref = device_ref(product, device);
    if (w.device_index.count(ref) == 0) {
      w.device_index.emplace(std::move(ref), w.devices.size());
      w.devices.push_back(make_device(e));
    }
    return;
  }
  if (auto* d = w.find_device(product, device))
    apply(*d, e);
}

uint64_t task_of_event(const event& e) {
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

} // namespace

void apply(world& w, const event& e) {
  if (e.sequence() > w.last_sequence)
    w.last_sequence = e.sequence();
  switch (e.payload_case()) {
  case event::kFirmwareCreated:
  case event::kFirmwareVerificationStarted:
  case event::kFirmwareVerified:
  case event::kFirmwareVerificationFailed:
  case event::kFirmwareDeleted:
    apply(w.firmware, e);
    return;
  case event::kDeviceRegistered:
    apply_device(w, e.device_registered().product_key(),
                 e.device_registered().device_key(), e);
    return;
  case event::kDeviceVersionReported:
    apply_device(w, e.device_version_reported().product_key(),
                 e.device_version_reported().device_key(), e);
    return;
  case event::kDeviceConnected:
    apply_device(w, e.device_connected().product_key(),
                 e.device_connected().device_key(), e);
    return;
  case event::kDeviceDisconnected:
    apply_device(w, e.device_disconnected().product_key(),
                 e.device_disconnected().device_key(), e);
    return;
  case event::kDeviceTagsChanged:
    apply_device(w, e.device_tags_changed().product_key(),
                 e.device_tags_changed().device_key(), e);
    return;
  case event::kDeviceAttributesChanged:
    apply_device(w, e.device_attributes_changed().product_key(),
                 e.device_attributes_changed().device_key(), e);
    return;
  case event::kAssetTreeCreated:
  case event::kAssetTreeDeleted:
    apply(w.trees, e);
    return;
  case event::kTaskCreated: {
    auto t = make_task(e);
    w.tasks[t.id] = std::move(t);
    return;
  }
  case event::PAYLOAD_NOT_SET:
    return;
  default: {
    auto i = w.tasks.find(task_of_event(e));
    if (i != w.tasks.end())
      apply(i->second, e);
    return;
  }
  }
}

void finish_replay(world& w) {
  for (auto& d : w.devices) {
    d.online = false;
    d.active_execution = 0;
  }
  for (auto& [id, t] : w.tasks) {
    for (uint64_t s = 1; s <= t.executions.size(); ++s) {
      const auto& x = t.executions[s - 1];
      if (!t.holds_device(x))
        continue;
      if (auto* d = w.find_device(t.spec.product_key(), x.device_key))
        d->active_execution = (id << 32) | s;
    }
  }
}

} // namespace fota
