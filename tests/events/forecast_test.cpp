/// Tests of the task forecast: what holds a rollout back now, and when its
/// last push should leave, against cases computed by hand: bound by the
/// rate, by the schedule windows (in a time zone), by offline devices, by
/// the ramp-up and by retries.
#include "events/forecast.hpp"
#include "tests/events/test_support.hpp"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace std::chrono_literals;
using test::utc;

/// A running cloud-push task with `queued` devices, all online, at `rate`
/// pushes a minute, on Monday 2026-01-05 at 12:00 UTC.
forecast_input running(uint64_t queued, uint32_t rate) {
  forecast_input in;
  in.queued = queued;
  in.queued_online = queued;
  in.rate.max_per_minute = rate;
  in.now = utc(2026, 1, 5, 12);
  return in;
}

schedule_spec window(const std::string& zone, uint32_t start_minute,
                     uint32_t end_minute) {
  schedule_spec s;
  s.set = true;
  s.time_zone = zone;
  s.windows.push_back(schedule_window{start_minute, end_minute});
  return s;
}

int64_t ms(timestamp t) {
  return to_millis(t);
}

TEST(TaskForecast, RateBoundEtaIsTheQueueOverTheRate) {
  // 100 devices at 10 a minute: 10 minutes.
  auto f = forecast(running(100, 10));
  EXPECT_TRUE(f.eta_known);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 12, 10)));
  EXPECT_EQ(f.allowed_per_minute, 10u);
  EXPECT_EQ(f.idle, idle_reason::rate);
  EXPECT_TRUE(f.window_open);
  EXPECT_EQ(f.next_window_edge_ms, 0);
  EXPECT_DOUBLE_EQ(f.online_share, 1.0);
}

TEST(TaskForecast, TheNodeRateCapsTheTaskRate) {
  // The task allows 600 a minute, the node 60: 120 devices take 2 minutes.
  auto in = running(120, 600);
  in.node_per_minute = 60;
  auto f = forecast(in);
  EXPECT_EQ(f.allowed_per_minute, 60u);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 12, 2)));
}

TEST(TaskForecast, UnlimitedRatePushesEverythingNow) {
  auto f = forecast(running(1000, 0));
  EXPECT_TRUE(f.eta_known);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 12)));
  EXPECT_EQ(f.allowed_per_minute, 0u);
  EXPECT_EQ(f.idle, idle_reason::none);
}

TEST(TaskForecast, WindowBoundEtaWaitsForTheNextWindow) {
  // Window 12:00-13:00 UTC, now 12:50, 150 devices at 10 a minute: 100
  // leave by 13:00, the other 50 take 5 minutes of the next day's window.
  auto in = running(150, 10);
  in.schedule = window("UTC", 12 * 60, 13 * 60);
  in.now = utc(2026, 1, 5, 12, 50);
  auto f = forecast(in);
  EXPECT_TRUE(f.window_open);
  EXPECT_EQ(f.next_window_edge_ms, ms(utc(2026, 1, 5, 13)));
  EXPECT_TRUE(f.eta_known);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 6, 12, 5)));
}

TEST(TaskForecast, ClosedWindowHoldsTheRolloutInItsTimeZone) {
  // 09:00-10:00 in Berlin is 08:00-09:00 UTC in January. At 07:00 UTC the
  // window is closed; 10 devices at 10 a minute leave by 08:01 UTC.
  auto in = running(10, 10);
  in.schedule = window("Europe/Berlin", 9 * 60, 10 * 60);
  in.now = utc(2026, 1, 5, 7);
  auto f = forecast(in);
  EXPECT_FALSE(f.window_open);
  EXPECT_EQ(f.next_window_edge_ms, ms(utc(2026, 1, 5, 8)));
  EXPECT_EQ(f.idle, idle_reason::window_closed);
  EXPECT_TRUE(f.eta_known);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 8, 1)));
}

TEST(TaskForecast, OfflineDevicesLeaveTheEtaUnknown) {
  // 100 queued, 50 online, 10 a minute: the online ones leave in 5
  // minutes; the rest wait for their devices.
  auto in = running(100, 10);
  in.queued_online = 50;
  auto f = forecast(in);
  EXPECT_DOUBLE_EQ(f.online_share, 0.5);
  EXPECT_FALSE(f.eta_known);
  EXPECT_EQ(f.eta_ms, 0);
  EXPECT_EQ(f.online_eta_ms, ms(utc(2026, 1, 5, 12, 5)));
  EXPECT_EQ(f.idle, idle_reason::rate);
  // With every queued device offline nothing moves, and that is why.
  in.queued_online = 0;
  f = forecast(in);
  EXPECT_DOUBLE_EQ(f.online_share, 0.0);
  EXPECT_EQ(f.idle, idle_reason::devices_offline);
  EXPECT_FALSE(f.eta_known);
}

TEST(TaskForecast, RampUpRaisesTheRateStageByStage) {
  // 10 a minute, doubled after every 50 successes, at most 40: 50 devices
  // take 5 minutes, 50 more 2.5, the last 50 1.25: 8.75 minutes.
  auto in = running(150, 40);
  in.rate.has_ramp_up = true;
  in.rate.ramp_up = ramp_up_spec{10, 2.0, 50};
  auto f = forecast(in);
  EXPECT_EQ(f.allowed_per_minute, 10u);
  EXPECT_EQ(f.ramp_stage, 0u);
  EXPECT_FALSE(f.ramp_at_max);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 12, 8, 45)));
  // After 100 successes the ramp-up has reached the maximum.
  in.succeeded = 100;
  f = forecast(in);
  EXPECT_EQ(f.ramp_stage, 2u);
  EXPECT_TRUE(f.ramp_at_max);
  EXPECT_EQ(f.allowed_per_minute, 40u);
}

TEST(TaskForecast, RetriesWaitingAreWhyNothingMoves) {
  // Nothing queued; 3 retries due in 10 minutes, at 60 a minute: they
  // leave 3 seconds after they are due.
  auto in = running(0, 60);
  in.retries_waiting = 3;
  in.next_retry_ms = ms(utc(2026, 1, 5, 12, 10));
  in.upgrading = 2;
  auto f = forecast(in);
  EXPECT_EQ(f.idle, idle_reason::waiting_for_retries);
  EXPECT_EQ(f.retries_waiting, 3u);
  EXPECT_EQ(f.next_retry_ms, ms(utc(2026, 1, 5, 12, 10)));
  EXPECT_TRUE(f.eta_known);
  EXPECT_EQ(f.eta_ms, ms(utc(2026, 1, 5, 12, 10, 3)));
  // Without retries, the pushed devices upgrading are what it waits for.
  in.retries_waiting = 0;
  EXPECT_EQ(forecast(in).idle, idle_reason::devices_upgrading);
}

TEST(TaskForecast, PausesSayWhoPaused) {
  auto in = running(10, 10);
  in.status = v1::TASK_STATUS_PAUSED;
  in.status_reason = "abort rule: 3 of 5 finished executions failed";
  auto f = forecast(in);
  EXPECT_EQ(f.idle, idle_reason::paused_by_abort_rule);
  EXPECT_FALSE(f.eta_known);
  in.status_reason = "paused by operator";
  EXPECT_EQ(forecast(in).idle, idle_reason::paused);
  in.status = v1::TASK_STATUS_COMPLETED;
  EXPECT_EQ(forecast(in).idle, idle_reason::finished);
  in.status = v1::TASK_STATUS_RUNNING;
  in.cloud_push = false;
  EXPECT_EQ(forecast(in).idle, idle_reason::device_requests);
}

TEST(TaskForecast, PushMeterCountsTheLastSixtySeconds) {
  push_meter m;
  auto t = utc(2026, 1, 5, 12);
  m.record(t, 2);
  m.record(t + 30s);
  EXPECT_EQ(m.last_minute(t + 59s), 3u);
  EXPECT_EQ(m.last_minute(t + 60s), 1u);
  EXPECT_EQ(m.last_minute(t + 91s), 0u);
  // A bucket reused a minute later starts again from zero.
  m.record(t + 60s);
  EXPECT_EQ(m.last_minute(t + 60s), 2u);
}

} // namespace
