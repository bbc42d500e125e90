#include "events/history.hpp"

#include "events/limits.hpp"
#include "events/paging.hpp"

namespace fota {

namespace {

/// The product and key of a device event, or nulls.
std::pair<const std::string*, const std::string*>
device_of_event(const event& e) {
  switch (e.payload_case()) {
  case event::kDeviceRegistered:
    return {&e.device_registered().product_key(),
            &e.device_registered().device_key()};
  case event::kDeviceVersionReported:
    return {&e.device_version_reported().product_key(),
            &e.device_version_reported().device_key()};
  case event::kDeviceConnected:
    return {&e.device_connected().product_key(),
            &e.device_connected().device_key()};
  case event::kDeviceDisconnected:
    return {&e.device_disconnected().product_key(),
            &e.device_disconnected().device_key()};
  case event::kDeviceTagsChanged:
    return {&e.device_tags_changed().product_key(),
            &e.device_tags_changed().device_key()};
  case event::kDeviceAttributesChanged:
    return {&e.device_attributes_changed().product_key(),
            &e.device_attributes_changed().device_key()};
  case event::kDeviceGatewayChanged:
    return {&e.device_gateway_changed().product_key(),
            &e.device_gateway_changed().device_key()};
  default:
    return {nullptr, nullptr};
  }
}

/// The execution sequence an execution event names, or 0.
uint64_t execution_of_event(const event& e) {
  switch (e.payload_case()) {
  case event::kExecutionNotified:
    return e.execution_notified().sequence();
  case event::kExecutionStarted:
    return e.execution_started().sequence();
  case event::kExecutionProgressed:
    return e.execution_progressed().sequence();
  case event::kExecutionSucceeded:
    return e.execution_succeeded().sequence();
  case event::kExecutionFailed:
    return e.execution_failed().sequence();
  case event::kExecutionTimedOut:
    return e.execution_timed_out().sequence();
  case event::kExecutionRequeued:
    return e.execution_requeued().sequence();
  default:
    return 0;
  }
}

/// "a=1, b removed", for changed labels.
template <class Map>
std::string labels_text(const Map& xs) {
  std::map<std::string, std::string> sorted(xs.begin(), xs.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    if (!out.empty())
      out += ", ";
    out += v.empty() ? k + " removed" : k + "=" + v;
  }
  return out;
}

std::string execution_text(uint64_t task, uint64_t seq) {
  return "execution " + std::to_string(task) + "/" + std::to_string(seq);
}

} // namespace

std::string kind_of(const event& e) {
  const auto* field = e.GetDescriptor()->FindFieldByNumber(e.payload_case());
  if (field == nullptr || field->message_type() == nullptr)
    return "unknown";
  return field->message_type()->name();
}

history_builder::history_builder(history_request req)
  : req_(std::move(req)), page_size_(page_size_of(req_.page_size)) {
  if (req_.has_at) {
    world_ = std::make_unique<world>();
    page_.has_state = true;
    page_.at_ms = req_.at_ms;
    page_.has_task = req_.subject.is_task();
  }
}

history_builder::~history_builder() = default;

history_builder::history_builder(history_builder&&) noexcept = default;

history_builder&
history_builder::operator=(history_builder&&) noexcept = default;

uint64_t history_builder::start() const noexcept {
  if (req_.subject.is_task() && !req_.has_at)
    return std::max<uint64_t>(req_.from, 1);
  return 1;
}

expected<bool> history_builder::add(sequence_number seq,
                                    std::string_view bytes) {
  event e;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_failure(errc::corrupted,
                        "event " + std::to_string(seq.value()) +
                            " does not decode as fota.v1.EventEnvelope");
  e.set_sequence(seq.value());
  if (req_.has_at) {
    // The state at the moment: the log's events up to the first one after
    // it, through the checked apply of replay.
    if (e.time_ms() > req_.at_ms) {
      past_moment_ = true;
      return false;
    }
    if (auto err = apply(*world_, e))
      return std::move(*err);
  }
  uint64_t execution = 0;
  if (!concerns(e, execution) || seq.value() < req_.from)
    return true;
  if (page_full_) {
    // The first entry of the next page.
    if (page_.next_page_token.empty())
      page_.next_page_token = std::to_string(seq.value());
    return req_.has_at;
  }
  page_.entries.push_back(describe(e, execution));
  if (page_.entries.size() >= page_size_)
    page_full_ = true;
  return true;
}

history_page history_builder::finish() {
  if (world_) {
    const auto& who = req_.subject;
    if (who.is_task()) {
      auto i = world_->tasks.find(who.task.value());
      page_.existed = i != world_->tasks.end();
      if (page_.existed)
        page_.task = i->second.summary();
    } else if (const auto* d = world_->find_device(who.product, who.device)) {
      page_.existed = true;
      page_.device = *d;
    }
  }
  return std::move(page_);
}

bool history_builder::concerns(const event& e, uint64_t& execution) {
  const auto& who = req_.subject;
  if (who.is_task())
    return task_of(e) == who.task.value();
  if (auto [product, key] = device_of_event(e); product != nullptr)
    return *product == who.product && *key == who.device;
  switch (e.payload_case()) {
  case event::kTaskCreated: {
    const auto& spec = e.task_created().spec();
    if (spec.product_key() == who.product)
      tasks_.emplace(e.task_created().task_id(), spec.method());
    return false;
  }
  case event::kDevicesEnrolled: {
    const auto& x = e.devices_enrolled();
    if (tasks_.count(x.task_id()) == 0)
      return false;
    for (int i = 0; i < x.device_keys_size(); ++i)
      if (x.device_keys(i) == who.device) {
        execution = x.first_sequence() + static_cast<uint64_t>(i);
        executions_.emplace(x.task_id(), execution);
        return true;
      }
    return false;
  }
  case event::kDevicesSkipped: {
    const auto& x = e.devices_skipped();
    if (tasks_.count(x.task_id()) == 0)
      return false;
    for (const auto& s : x.devices())
      if (s.device_key() == who.device)
        return true;
    return false;
  }
  case event::kExecutionsCanceled: {
    const auto& x = e.executions_canceled();
    for (auto s : x.sequences())
      if (executions_.count({x.task_id(), s}) > 0) {
        execution = s;
        return true;
      }
    return false;
  }
  default:
    if (auto s = execution_of_event(e); s != 0)
      if (executions_.count({task_of(e), s}) > 0) {
        execution = s;
        return true;
      }
    return false;
  }
}

history_entry history_builder::describe(const event& e,
                                        uint64_t execution) const {
  history_entry out;
  out.sequence = sequence_number{e.sequence()};
  out.time_ms = e.time_ms();
  out.kind = kind_of(e);
  out.task = task_of(e);
  const auto& who = req_.subject;
  if (!who.is_task())
    out.device_key = who.device;
  if (out.task != 0)
    out.execution = execution != 0 ? execution : execution_of_event(e);
  auto exec = execution_text(out.task, out.execution);
  auto offer = [&] {
    auto method = who.method;
    if (!who.is_task()) {
      auto i = tasks_.find(out.task);
      method = i == tasks_.end() ? v1::METHOD_UNSPECIFIED : i->second;
    }
    if (method == v1::METHOD_DEVICE_REQUEST)
      return "offered " + exec;
    if (method == v1::METHOD_CLOUD_PUSH)
      return "pushed " + exec;
    return "notified " + exec;
  };
  switch (e.payload_case()) {
  case event::kDeviceRegistered: {
    const auto& x = e.device_registered();
    out.version = x.version();
    out.text = "registered on version " + x.version();
    if (!x.gateway().empty())
      out.text += " by gateway " + x.gateway();
    break;
  }
  case event::kDeviceVersionReported:
    out.version = e.device_version_reported().version();
    out.text = "reported version " + out.version;
    break;
  case event::kDeviceConnected:
    out.text = "came online (logged by versions before issue 8)";
    break;
  case event::kDeviceDisconnected:
    out.text = "went offline (logged by versions before issue 8)";
    break;
  case event::kDeviceTagsChanged:
    out.text = "tags: " + labels_text(e.device_tags_changed().tags());
    break;
  case event::kDeviceAttributesChanged:
    out.text = "attributes: " +
               labels_text(e.device_attributes_changed().attributes());
    break;
  case event::kDeviceGatewayChanged: {
    const auto& x = e.device_gateway_changed();
    out.text = "moved to gateway " + x.gateway();
    if (!x.previous_gateway().empty())
      out.text += " from " + x.previous_gateway();
    break;
  }
  case event::kTaskCreated: {
    const auto& spec = e.task_created().spec();
    out.version = spec.target_version();
    out.text = "created: " + spec.product_key() + " to " +
               spec.target_version() + " by " +
               (spec.method() == v1::METHOD_DEVICE_REQUEST ? "device request"
                                                           : "cloud push");
    if (!spec.name().empty())
      out.text += " (" + spec.name() + ")";
    break;
  }
  case event::kDevicesEnrolled: {
    const auto& x = e.devices_enrolled();
    out.device_count = static_cast<uint32_t>(x.device_keys_size());
    if (who.is_task()) {
      out.execution = 0;
      out.text =
          "enrolled " + std::to_string(x.device_keys_size()) +
          " devices, executions " + std::to_string(x.first_sequence()) + ".." +
          std::to_string(x.first_sequence() +
                         static_cast<uint64_t>(x.device_keys_size()) - 1);
    } else {
      out.text = "enrolled in task " + std::to_string(out.task) + " as " + exec;
    }
    break;
  }
  case event::kDevicesSkipped: {
    const auto& x = e.devices_skipped();
    out.device_count = static_cast<uint32_t>(x.devices_size());
    if (who.is_task()) {
      out.text = "skipped " + std::to_string(x.devices_size()) + " devices";
    } else {
      for (const auto& s : x.devices())
        if (s.device_key() == who.device)
          out.code = s.reason();
      out.text =
          "skipped by task " + std::to_string(out.task) + ": " + out.code;
    }
    break;
  }
  case event::kExecutionNotified:
    out.attempt = e.execution_notified().attempt();
    out.text = offer() + " (attempt " + std::to_string(out.attempt) + ")";
    break;
  case event::kExecutionStarted: {
    const auto& x = e.execution_started();
    out.step = x.step();
    out.text = "started " + exec + " at step " + std::to_string(x.step());
    if (!x.text().empty())
      out.text += ": " + x.text();
    break;
  }
  case event::kExecutionProgressed: {
    const auto& x = e.execution_progressed();
    out.step = x.step();
    out.text = "progress of " + exec + ": step " + std::to_string(x.step());
    if (!x.text().empty())
      out.text += ": " + x.text();
    break;
  }
  case event::kExecutionSucceeded:
    out.version = e.execution_succeeded().device_version();
    out.text = "succeeded " + exec;
    if (!out.version.empty())
      out.text += " on version " + out.version;
    break;
  case event::kExecutionFailed: {
    const auto& x = e.execution_failed();
    out.code = x.code();
    out.text = "failed " + exec + ": " + x.code();
    if (!x.text().empty())
      out.text += " " + x.text();
    break;
  }
  case event::kExecutionTimedOut:
    out.text = "timed out " + exec;
    break;
  case event::kExecutionRequeued:
    out.attempt = e.execution_requeued().attempt();
    out.text =
        "requeued " + exec + " for attempt " + std::to_string(out.attempt);
    break;
  case event::kExecutionsCanceled: {
    const auto& x = e.executions_canceled();
    out.device_count = static_cast<uint32_t>(x.sequences_size());
    if (who.is_task()) {
      out.execution = 0;
      out.text =
          "canceled " + std::to_string(x.sequences_size()) + " executions";
    } else {
      out.text = "canceled " + exec;
    }
    break;
  }
  case event::kTaskPaused:
    out.code = e.task_paused().reason();
    out.text = "paused";
    if (!out.code.empty())
      out.text += ": " + out.code;
    break;
  case event::kTaskResumed:
    out.text = "resumed";
    break;
  case event::kTaskCanceled:
    out.code = e.task_canceled().reason();
    out.text = "canceled";
    if (!out.code.empty())
      out.text += ": " + out.code;
    break;
  case event::kTaskCompleted:
    out.text = "completed";
    break;
  default:
    out.text = out.kind;
    break;
  }
  return out;
}

} // namespace fota
