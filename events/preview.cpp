#include "events/preview.hpp"

#include "events/device.hpp"

#include <algorithm>
#include <utility>

namespace fota {

preview_tally::preview_tally(task_spec spec, task_id claimant)
  : spec_(std::move(spec)), claimant_(claimant) {
  // nop
}

void preview_tally::add(const device_state& d) {
  ++devices_;
  ++versions_[d.version];
  if (d.online)
    ++online_;
  // The rule CreateTask's claims meet: a device another execution (or
  // another task's enrolment) holds is busy.
  if (decide_claim(d, enrolling_claim(claimant_))) {
    ++busy_;
    ++busy_by_task_[d.active_execution.task().value()];
  } else if (d.online) {
    ++free_online_;
  }
}

task_preview preview_tally::finish(uint32_t node_per_minute,
                                   timestamp now) const {
  task_preview out;
  out.devices = devices_;
  for (const auto& [version, n] : versions_)
    out.versions.push_back(version_count{version, n});
  std::stable_sort(
      out.versions.begin(), out.versions.end(),
      [](const auto& a, const auto& b) { return a.devices > b.devices; });
  out.online = online_;
  out.offline = devices_ - online_;
  out.busy = busy_;
  for (const auto& [id, n] : busy_by_task_)
    out.busy_tasks.push_back(task_count{task_id{id}, n});
  std::stable_sort(
      out.busy_tasks.begin(), out.busy_tasks.end(),
      [](const auto& a, const auto& b) { return a.devices > b.devices; });
  if (out.busy_tasks.size() > preview_busy_tasks) {
    out.busy_tasks_unlisted =
        static_cast<uint32_t>(out.busy_tasks.size() - preview_busy_tasks);
    out.busy_tasks.resize(preview_busy_tasks);
  }
  // A cloud-push task claims each device: a busy one is skipped by a
  // snapshot task and joins an increment task once free. A device-request
  // task enrols every device and offers the upgrade when it asks.
  bool claims = spec_.is_cloud_push();
  out.enrolled = claims ? devices_ - busy_ : devices_;
  out.skipped = claims && !spec_.is_increment() ? busy_ : 0;
  out.on_target_version = on_target_;
  forecast_input in;
  // A snapshot task with nothing to enrol completes as it is created.
  in.status = out.enrolled == 0 && !spec_.is_increment()
                  ? v1::TASK_STATUS_COMPLETED
                  : v1::TASK_STATUS_RUNNING;
  in.cloud_push = spec_.is_cloud_push();
  in.queued = out.enrolled;
  in.queued_online = claims ? free_online_ : online_;
  in.rate = spec_.rate;
  in.node_per_minute = node_per_minute;
  in.schedule = spec_.schedule;
  in.now = now;
  out.forecast = forecast(in);
  return out;
}

} // namespace fota
