/// Tests of the preview tally: devices counted by version, online and busy
/// under the busy claim rule; busy tasks listed most devices first and
/// bounded; what each strategy and method would enrol and skip; and the
/// forecast it feeds.
#include "events/preview.hpp"
#include "tests/events/test_support.hpp"

#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::utc;

task_spec cloud_push(v1::Strategy strategy) {
  task_spec s;
  s.product = "p";
  s.target_version = "2.0.0";
  s.source_versions = {"1.0.0", "1.1.0"};
  s.strategy = strategy;
  s.scope.kind = v1::SCOPE_KIND_ALL;
  s.method = v1::METHOD_CLOUD_PUSH;
  return s;
}

device_state device(const std::string& key, const std::string& version,
                    bool online, execution_id held = {}) {
  device_state d;
  d.product = "p";
  d.key = key;
  d.version = version;
  d.online = online;
  d.active_execution = held;
  return d;
}

execution_id in_task(uint64_t task, uint64_t seq = 1) {
  return execution_id{task_id{task}, execution_seq{seq}};
}

TEST(PreviewTally, CountsVersionsOnlineAndBusyDevices) {
  preview_tally t{cloud_push(v1::STRATEGY_SNAPSHOT), task_id{9}};
  t.add(device("a", "1.0.0", true));
  t.add(device("b", "1.1.0", true));
  t.add(device("c", "1.1.0", false));
  t.add(device("d", "1.1.0", true, in_task(3, 7)));
  // Being enrolled by task 4 is busy as well.
  t.add(device("e", "1.0.0", false, in_task(4, 0)));
  t.add_on_target(5);
  auto p = t.finish(0, utc(2026, 1, 5, 12));
  EXPECT_EQ(p.devices, 5u);
  ASSERT_EQ(p.versions.size(), 2u);
  EXPECT_EQ(p.versions[0].version, "1.1.0");
  EXPECT_EQ(p.versions[0].devices, 3u);
  EXPECT_EQ(p.versions[1].version, "1.0.0");
  EXPECT_EQ(p.versions[1].devices, 2u);
  EXPECT_EQ(p.online, 3u);
  EXPECT_EQ(p.offline, 2u);
  EXPECT_EQ(p.busy, 2u);
  ASSERT_EQ(p.busy_tasks.size(), 2u);
  EXPECT_EQ(p.busy_tasks[0].task, task_id{3});
  EXPECT_EQ(p.busy_tasks[1].task, task_id{4});
  EXPECT_EQ(p.enrolled, 3u);
  EXPECT_EQ(p.skipped, 2u);
  EXPECT_EQ(p.on_target_version, 5u);
  // Of the enrolled devices a and b are online; c is offline.
  EXPECT_EQ(p.forecast.queued, 3u);
  EXPECT_EQ(p.forecast.queued_online, 2u);
  EXPECT_FALSE(p.forecast.eta_known);
}

TEST(PreviewTally, ListsTheBusiestTasksFirstAndAtMostTwenty) {
  preview_tally t{cloud_push(v1::STRATEGY_SNAPSHOT), task_id{100}};
  uint64_t n = 0;
  // Task k holds k devices, for k = 1..25.
  for (uint64_t k = 1; k <= 25; ++k)
    for (uint64_t i = 0; i < k; ++i)
      t.add(
          device("d" + std::to_string(n++), "1.0.0", true, in_task(k, i + 1)));
  auto p = t.finish(0, utc(2026, 1, 5, 12));
  EXPECT_EQ(p.busy, n);
  ASSERT_EQ(p.busy_tasks.size(), preview_busy_tasks);
  EXPECT_EQ(p.busy_tasks_unlisted, 5u);
  for (size_t i = 0; i < p.busy_tasks.size(); ++i) {
    EXPECT_EQ(p.busy_tasks[i].task, task_id{25 - i});
    EXPECT_EQ(p.busy_tasks[i].devices, 25 - i);
  }
}

TEST(PreviewTally, IncrementAndDeviceRequestTasksSkipNoBusyDevice) {
  auto increment = cloud_push(v1::STRATEGY_INCREMENT);
  preview_tally inc{increment, task_id{9}};
  auto request = cloud_push(v1::STRATEGY_SNAPSHOT);
  request.method = v1::METHOD_DEVICE_REQUEST;
  preview_tally req{request, task_id{9}};
  for (auto* t : {&inc, &req}) {
    t->add(device("a", "1.0.0", true));
    t->add(device("b", "1.0.0", true, in_task(2)));
  }
  auto now = utc(2026, 1, 5, 12);
  auto p = inc.finish(0, now);
  EXPECT_EQ(p.busy, 1u);
  EXPECT_EQ(p.enrolled, 1u); // b joins once it is free
  EXPECT_EQ(p.skipped, 0u);
  p = req.finish(0, now);
  EXPECT_EQ(p.busy, 1u);
  EXPECT_EQ(p.enrolled, 2u);
  EXPECT_EQ(p.skipped, 0u);
  EXPECT_EQ(p.forecast.idle, idle_reason::device_requests);
}

TEST(PreviewTally, ASnapshotTaskWithNothingToEnrolIsFinishedAtOnce) {
  preview_tally t{cloud_push(v1::STRATEGY_SNAPSHOT), task_id{9}};
  t.add(device("a", "1.0.0", true, in_task(2)));
  auto p = t.finish(0, utc(2026, 1, 5, 12));
  EXPECT_EQ(p.enrolled, 0u);
  EXPECT_EQ(p.skipped, 1u);
  EXPECT_EQ(p.forecast.idle, idle_reason::finished);
}

TEST(PreviewTally, TheEtaFollowsTheRateOfTheEnrolledDevices) {
  auto spec = cloud_push(v1::STRATEGY_SNAPSHOT);
  spec.rate.max_per_minute = 10;
  preview_tally t{spec, task_id{9}};
  for (int i = 0; i < 30; ++i)
    t.add(device("d" + std::to_string(i), "1.0.0", true));
  auto now = utc(2026, 1, 5, 12);
  auto p = t.finish(0, now);
  EXPECT_EQ(p.forecast.allowed_per_minute, 10u);
  ASSERT_TRUE(p.forecast.eta_known);
  // 30 pushes at 10 a minute: the forecast's model, as GetTask gives it.
  forecast_input in;
  in.queued = 30;
  in.queued_online = 30;
  in.rate = spec.rate;
  in.now = now;
  EXPECT_EQ(p.forecast.eta_ms, forecast(in).eta_ms);
  EXPECT_GT(p.forecast.eta_ms, to_millis(now));
}

} // namespace
