#include "events/forecast.hpp"

#include "events/rate.hpp"
#include "events/schedule.hpp"
#include "events/task.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

namespace fota {

namespace {

constexpr int64_t ms_per_minute = 60'000;

/// Bounds the simulation: windows and ramp-up stages walked at most.
constexpr int max_steps = 100'000;

int64_t seconds_of(timestamp t) noexcept {
  auto ms = to_millis(t);
  return ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
}

size_t bucket_of(int64_t second) noexcept {
  return static_cast<size_t>(((second % 60) + 60) % 60);
}

/// Ramp-up steps completed after `successes`.
uint32_t ramp_stage_of(const rate_spec& rate, uint64_t successes) {
  if (!rate.has_ramp_up || rate.ramp_up.successes_per_step == 0)
    return 0;
  auto steps = successes / rate.ramp_up.successes_per_step;
  return static_cast<uint32_t>(
      std::min<uint64_t>(steps, std::numeric_limits<uint32_t>::max()));
}

/// Pushes `n` devices from `t` on, within the windows, at the allowed rate
/// as the successes raise it; returns when the last one leaves, or nullopt
/// when the walk is too long to say.
std::optional<timestamp> push_all(const forecast_input& in,
                                  const schedule& windows, uint64_t n,
                                  uint64_t& successes, timestamp t) {
  for (int step = 0; n > 0; ++step) {
    if (step == max_steps)
      return std::nullopt;
    if (!windows.is_open(t)) {
      auto edge = windows.next_edge(t);
      if (!edge)
        return std::nullopt;
      t = *edge;
      continue;
    }
    auto edge = windows.next_edge(t);
    auto r = allowed_rate(in.rate, in.node_per_minute, successes);
    if (r == 0) { // Unlimited: all at once.
      successes += n;
      return t;
    }
    // Up to the next ramp-up step, the rate holds.
    auto k = n;
    if (in.rate.has_ramp_up && in.rate.ramp_up.successes_per_step > 0 &&
        (in.rate.max_per_minute == 0 ||
         ramp_rate(in.rate, successes) < in.rate.max_per_minute)) {
      auto per = in.rate.ramp_up.successes_per_step;
      auto next_step = (successes / per + 1) * per;
      k = std::min<uint64_t>(k, next_step - successes);
    }
    auto need = static_cast<int64_t>(
        std::ceil(static_cast<double>(k) * ms_per_minute / r));
    if (!edge || t + std::chrono::milliseconds{need} <= *edge) {
      t += std::chrono::milliseconds{need};
      n -= k;
      successes += k;
      continue;
    }
    // The window closes first: what fits goes, the rest waits.
    auto open_ms = (*edge - t).count();
    auto fits = std::min<uint64_t>(
        k, static_cast<uint64_t>(static_cast<double>(open_ms) * r /
                                 ms_per_minute));
    n -= fits;
    successes += fits;
    t = *edge;
  }
  return t;
}

} // namespace

// -- push_meter ---------------------------------------------------------------

void push_meter::record(timestamp t, uint32_t n) noexcept {
  auto s = seconds_of(t);
  auto i = bucket_of(s);
  if (seconds_[i] != s) {
    seconds_[i] = s;
    counts_[i] = 0;
  }
  counts_[i] += n;
}

uint32_t push_meter::last_minute(timestamp now) const noexcept {
  auto s = seconds_of(now);
  uint32_t sum = 0;
  for (size_t i = 0; i < counts_.size(); ++i)
    if (seconds_[i] > s - 60 && seconds_[i] <= s)
      sum += counts_[i];
  return sum;
}

// -- forecast -----------------------------------------------------------------

uint32_t allowed_rate(const rate_spec& rate, uint32_t node_per_minute,
                      uint64_t successes) {
  auto own = ramp_rate(rate, successes);
  if (own == 0)
    return node_per_minute;
  if (node_per_minute == 0)
    return own;
  return std::min(own, node_per_minute);
}

task_forecast forecast(const forecast_input& in) {
  task_forecast out;
  out.pushes_last_minute = in.pushes_last_minute;
  out.allowed_per_minute =
      allowed_rate(in.rate, in.node_per_minute, in.succeeded);
  out.ramp_stage = ramp_stage_of(in.rate, in.succeeded);
  out.ramp_at_max = in.rate.has_ramp_up && in.rate.max_per_minute != 0 &&
                    ramp_rate(in.rate, in.succeeded) >= in.rate.max_per_minute;
  schedule windows;
  if (in.schedule.set)
    windows = schedule{in.schedule};
  out.window_open = windows.is_open(in.now);
  if (auto edge = windows.next_edge(in.now))
    out.next_window_edge_ms = to_millis(*edge);
  out.retries_waiting = in.retries_waiting;
  out.next_retry_ms = in.retries_waiting > 0 ? in.next_retry_ms : 0;
  out.queued = in.queued;
  out.queued_online = std::min(in.queued_online, in.queued);
  out.online_share = in.queued == 0 ? 1.0
                                    : static_cast<double>(out.queued_online) /
                                          static_cast<double>(in.queued);
  auto offline = in.queued - out.queued_online;
  auto set_idle = [&](idle_reason x, std::string text) {
    out.idle = x;
    out.idle_text = std::move(text);
  };
  // What holds the rollout back now.
  if (is_finished(in.status)) {
    set_idle(idle_reason::finished, "the task is finished");
    return out;
  }
  if (in.status == v1::TASK_STATUS_PAUSED) {
    if (in.status_reason.rfind("abort rule", 0) == 0)
      set_idle(idle_reason::paused_by_abort_rule,
               "paused by the abort rule: " + in.status_reason);
    else
      set_idle(idle_reason::paused, "paused by an operator");
    return out;
  }
  if (!in.cloud_push) {
    set_idle(idle_reason::device_requests,
             "a device-request task: devices ask for their upgrade");
    return out;
  }
  if (in.queued > 0 && !out.window_open)
    set_idle(idle_reason::window_closed, "outside the schedule windows");
  else if (out.queued_online > 0 && out.allowed_per_minute > 0)
    set_idle(idle_reason::rate,
             "held by the rate: " + std::to_string(out.allowed_per_minute) +
                 " pushes a minute");
  else if (out.queued_online > 0)
    set_idle(idle_reason::none, "pushing");
  else if (offline > 0)
    set_idle(idle_reason::devices_offline, "every queued device (" +
                                               std::to_string(offline) +
                                               ") is offline");
  else if (in.retries_waiting > 0)
    set_idle(idle_reason::waiting_for_retries,
             std::to_string(in.retries_waiting) +
                 " failed executions wait for their retry");
  else if (in.upgrading > 0)
    set_idle(idle_reason::devices_upgrading,
             std::to_string(in.upgrading) + " pushed devices are upgrading");
  else
    set_idle(idle_reason::none, "nothing to push");
  // When the last remaining push leaves.
  auto successes = in.succeeded;
  auto t = push_all(in, windows, out.queued_online, successes, in.now);
  if (t && in.retries_waiting > 0) {
    auto from = std::max(*t, from_millis(in.next_retry_ms));
    t = push_all(in, windows, in.retries_waiting, successes, from);
  }
  if (!t)
    return out;
  if (offline > 0) {
    out.online_eta_ms = to_millis(*t);
    return out;
  }
  out.eta_ms = to_millis(*t);
  out.eta_known = true;
  return out;
}

const char* to_string(idle_reason x) noexcept {
  switch (x) {
  case idle_reason::none:
    return "none";
  case idle_reason::finished:
    return "finished";
  case idle_reason::paused:
    return "paused";
  case idle_reason::paused_by_abort_rule:
    return "paused by the abort rule";
  case idle_reason::window_closed:
    return "window closed";
  case idle_reason::rate:
    return "rate";
  case idle_reason::devices_offline:
    return "devices offline";
  case idle_reason::waiting_for_retries:
    return "waiting for retries";
  case idle_reason::devices_upgrading:
    return "devices upgrading";
  case idle_reason::device_requests:
    return "device requests";
  }
  return "unknown";
}

} // namespace fota
