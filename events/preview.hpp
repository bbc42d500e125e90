/// What CreateTask would do now with a spec, without doing it (PreviewTask):
/// the devices in scope by version, online and busy, what the task would
/// enrol and skip, and its forecast. Pure: the node resolves the scope as
/// CreateTask does, walks it once, and hands each device's state to a
/// `preview_tally`.
#pragma once

#include "events/clock.hpp"
#include "events/forecast.hpp"
#include "events/ids.hpp"
#include "events/task_spec.hpp"
#include "events/values.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fota {

/// Devices on one version.
struct version_count {
  std::string version;
  uint64_t devices = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 version_count& x) {
    return f(x.version, x.devices);
  }
};

/// Devices held by one task.
struct task_count {
  task_id task;
  uint64_t devices = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, task_count& x) {
    return f(x.task, x.devices);
  }
};

/// The answer to PreviewTask; mirrors `v1::TaskPreview`.
struct task_preview {
  /// Devices in scope now.
  uint64_t devices = 0;
  /// By version, most devices first (ties: by version).
  std::vector<version_count> versions;
  uint64_t online = 0;
  uint64_t offline = 0;
  /// Devices another task holds, and the tasks holding most of them.
  uint64_t busy = 0;
  std::vector<task_count> busy_tasks;
  uint32_t busy_tasks_unlisted = 0;
  /// Devices the task would enrol now, and record as skipped.
  uint64_t enrolled = 0;
  uint64_t skipped = 0;
  /// Devices the scope's filter selects that already run the target.
  uint64_t on_target_version = 0;
  task_forecast forecast;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 task_preview& x) {
    return f(x.devices, x.versions, x.online, x.offline, x.busy, x.busy_tasks,
             x.busy_tasks_unlisted, x.enrolled, x.skipped, x.on_target_version,
             x.forecast);
  }
};

/// Tasks listed at most in `task_preview::busy_tasks`.
inline constexpr size_t preview_busy_tasks = 20;

/// Counts the devices of a scope, one at a time, into a preview: memory
/// bounded by the versions and busy tasks seen, not by the devices.
class preview_tally {
public:
  /// `spec` passed CreateTask's validation; `claimant` is the id the task
  /// would take, whose claims the busy rule judges.
  preview_tally(task_spec spec, task_id claimant);

  /// Counts a device in scope as it is now.
  void add(const device_state& d);

  /// Counts `n` devices the scope's filter selects on the target version.
  void add_on_target(uint64_t n) noexcept { on_target_ += n; }

  /// The preview, with the forecast of a task created at `now` on a node
  /// that pushes at most `node_per_minute` (0: unlimited).
  task_preview finish(uint32_t node_per_minute, timestamp now) const;

private:
  task_spec spec_;
  task_id claimant_;
  uint64_t devices_ = 0;
  uint64_t online_ = 0;
  uint64_t busy_ = 0;
  /// Online devices that are free: pushed first.
  uint64_t free_online_ = 0;
  uint64_t on_target_ = 0;
  std::map<std::string, uint64_t> versions_;
  std::map<uint64_t, uint64_t> busy_by_task_;
};

} // namespace fota
