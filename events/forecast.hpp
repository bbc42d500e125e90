/// Where a task stands and where it is going: what holds its pushes back
/// now (or why nothing moves) and when its last remaining push should leave,
/// from its counters, the devices online, its rate and ramp-up, the node's
/// rate, its schedule windows and its retries. Pure, so that operators'
/// forecasts are tested against hand-computed cases without a node.
#pragma once

#include "events/clock.hpp"
#include "events/task_spec.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace fota {

/// What holds a task's pushes back now; `v1::IdleReason` on the wire.
enum class idle_reason : uint8_t {
  /// Pushes leave as fast as the devices allow.
  none = 1,
  finished = 2,
  paused = 3,
  paused_by_abort_rule = 4,
  window_closed = 5,
  rate = 6,
  devices_offline = 7,
  waiting_for_retries = 8,
  devices_upgrading = 9,
  device_requests = 10,
};

/// Pushes sent in the last minute, counted in one-second buckets: bounded
/// memory whatever the rate.
class push_meter {
public:
  /// Counts `n` pushes sent at `t`.
  void record(timestamp t, uint32_t n = 1) noexcept;

  /// Pushes sent in the 60 seconds up to `now`.
  uint32_t last_minute(timestamp now) const noexcept;

private:
  /// Pushes of second `s` (since the epoch) in bucket `s % 60`.
  std::array<uint32_t, 60> counts_{};
  std::array<int64_t, 60> seconds_{};
};

/// What the forecast looks at.
struct forecast_input {
  v1::TaskStatus status = v1::TASK_STATUS_RUNNING;
  /// The task's status reason (an abort-rule pause names the rule).
  std::string status_reason;
  bool cloud_push = true;
  /// QUEUED executions, and those whose device is online now.
  uint64_t queued = 0;
  uint64_t queued_online = 0;
  /// NOTIFIED and IN_PROGRESS executions.
  uint64_t upgrading = 0;
  uint64_t succeeded = 0;
  /// FAILED or TIMED_OUT executions that will be queued again, and when the
  /// first is due (0: none).
  uint64_t retries_waiting = 0;
  int64_t next_retry_ms = 0;
  rate_spec rate;
  /// The node's rate (0: unlimited).
  uint32_t node_per_minute = 0;
  schedule_spec schedule;
  uint32_t pushes_last_minute = 0;
  timestamp now;
};

/// The forecast; mirrors `v1::TaskForecast`.
struct task_forecast {
  uint32_t pushes_last_minute = 0;
  /// 0: unlimited.
  uint32_t allowed_per_minute = 0;
  uint32_t ramp_stage = 0;
  bool ramp_at_max = false;
  bool window_open = true;
  /// 0: the schedule is always open.
  int64_t next_window_edge_ms = 0;
  uint64_t retries_waiting = 0;
  int64_t next_retry_ms = 0;
  uint64_t queued = 0;
  uint64_t queued_online = 0;
  double online_share = 1.0;
  int64_t eta_ms = 0;
  bool eta_known = false;
  int64_t online_eta_ms = 0;
  idle_reason idle = idle_reason::none;
  std::string idle_text;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 task_forecast& x) {
    return f(x.pushes_last_minute, x.allowed_per_minute, x.ramp_stage,
             x.ramp_at_max, x.window_open, x.next_window_edge_ms,
             x.retries_waiting, x.next_retry_ms, x.queued, x.queued_online,
             x.online_share, x.eta_ms, x.eta_known, x.online_eta_ms, x.idle,
             x.idle_text);
  }
};

/// The pushes per minute allowed after `successes`: the task's rate at its
/// ramp-up stage, capped by the node's (0 = unlimited).
uint32_t allowed_rate(const rate_spec& rate, uint32_t node_per_minute,
                      uint64_t successes);

/// The forecast. The ETA model: n pushes at r a minute take n/r minutes of
/// open window (unlimited: none); every push counts as a success for the
/// ramp-up; the devices online now are pushed first, then the retries from
/// when the first is due. While queued devices are offline the ETA is
/// unknown and `online_eta_ms` says when the online ones will have been
/// pushed. Paused, device-request and finished tasks have no ETA.
/// @pre `validate_schedule(in.schedule)` succeeded.
task_forecast forecast(const forecast_input& in);

/// "rate", "window closed", ...: the reason as the CLI prints it.
const char* to_string(idle_reason x) noexcept;

} // namespace fota
