/// Actor-level tests of the batch-upgrade rules of DESIGN.md §1: strategies,
/// scope filters, device requests, schedule windows, rates and priorities,
/// timeouts, retries, the abort rule, firmware verification and end time.
/// Each runs a whole node on CAF's deterministic test coordinator; time moves
/// only when a test walks the clock, and every timer fires at its instant.
#include "tests/actors/rollout_fixture.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::execution_id;
using fota::test::wall_clock_base_ms;
using keys = std::vector<std::string>;

constexpr int64_t minute_ms = 60'000;
constexpr int64_t hour_ms = 60 * minute_ms;
constexpr int64_t day_ms = 24 * hour_ms;

/// 09:00 UTC on the first day (the tests start at 08:00 UTC).
constexpr int64_t nine_utc = wall_clock_base_ms + hour_ms;
/// 10:00 UTC on the first day.
constexpr int64_t ten_utc = wall_clock_base_ms + 2 * hour_ms;

// -- fixtures -----------------------------------------------------------------

/// Each suite is a node without a rate limit, starting 2026-03-01 08:00 UTC.
class DeviceRequests : public fota::test::rollout_fixture {};
class ScheduleWindows : public fota::test::rollout_fixture {};
class PushRates : public fota::test::rollout_fixture {};
class Verification : public fota::test::rollout_fixture {};

/// A node on 2026-03-28 12:00 UTC, the day before Europe/Berlin moves its
/// clocks from 02:00 CET to 03:00 CEST.
class DstScheduleWindows : public fota::test::rollout_fixture {
protected:
  DstScheduleWindows() {
    wall_start_ms = 1'774'699'200'000; // 2026-03-28T12:00:00Z
  }
};

/// A node that pushes at most once a second, so that the order in which
/// tasks are served is observable.
class NodeRatePriorities : public fota::test::rollout_fixture {
protected:
  NodeRatePriorities() { limits.max_pushes_per_minute = 60; }
};

// -- helpers ------------------------------------------------------------------

::testing::AssertionResult contains(const std::string& s,
                                    const std::string& part) {
  if (s.find(part) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << s << "\" does not contain \"" << part << "\"";
}

::testing::AssertionResult starts_with(const std::string& s,
                                       const std::string& prefix) {
  if (s.rfind(prefix, 0) == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << s << "\" does not start with \"" << prefix << "\"";
}

/// Adds the daily window [start, end) (minutes after local midnight).
void add_window(v1::TaskSpec& spec, uint32_t start, uint32_t end,
                const std::string& zone = {}) {
  auto* s = spec.mutable_schedule();
  s->set_time_zone(zone);
  auto* w = s->add_windows();
  w->set_start_minute(start);
  w->set_end_minute(end);
}

/// `spec` as a device-request task.
v1::TaskSpec device_request(v1::TaskSpec spec) {
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  return spec;
}

// -- strategies ---------------------------------------------------------------

/// The ids of two tasks created at the same moment over source version 1.0:
/// an INCREMENT task to 2.0 for the devices tagged group=inc and a SNAPSHOT
/// task to 3.0 for group=snap.
struct two_tasks {
  uint64_t increment = 0;
  uint64_t snapshot = 0;
};

/// Increment tasks, and how a snapshot task differs.
class IncrementTasks : public fota::test::rollout_fixture {
protected:
  /// Creates the two tasks over inc-1 and snap-1, then registers inc-2 and
  /// snap-2 and brings them online.
  two_tasks run_scenario() {
    create_firmware_verified("2.0");
    create_firmware_verified("3.0");
    EXPECT_EQ(register_labelled("inc-1", "1.0", {{"group", "inc"}}).status(),
              v1::STATUS_CODE_OK);
    EXPECT_EQ(register_labelled("snap-1", "1.0", {{"group", "snap"}}).status(),
              v1::STATUS_CODE_OK);
    online("inc-1");
    online("snap-1");
    auto inc = tag_spec("1.0", "2.0", "group", "inc");
    inc.set_strategy(v1::STRATEGY_INCREMENT);
    auto snap = tag_spec("1.0", "3.0", "group", "snap");
    // Both requests are in the mailbox before either task runs.
    auto inc_reply = send_request(create_task_frame(inc));
    auto snap_reply = send_request(create_task_frame(snap));
    sched.run();
    two_tasks out;
    if (!*inc_reply || !*snap_reply) {
      ADD_FAILURE() << "no reply to CreateTask";
      return out;
    }
    EXPECT_EQ((*inc_reply)->status(), v1::STATUS_CODE_OK)
        << (*inc_reply)->message();
    EXPECT_EQ((*snap_reply)->status(), v1::STATUS_CODE_OK)
        << (*snap_reply)->message();
    out.increment = (*inc_reply)->task().task_id();
    out.snapshot = (*snap_reply)->task().task_id();
    EXPECT_EQ(register_labelled("inc-2", "1.0", {{"group", "inc"}}).status(),
              v1::STATUS_CODE_OK);
    EXPECT_EQ(register_labelled("snap-2", "1.0", {{"group", "snap"}}).status(),
              v1::STATUS_CODE_OK);
    online("inc-2");
    online("snap-2");
    return out;
  }
};

TEST_F(IncrementTasks, IncrementTaskEnrolsDevicesRegisteredLater) {
  auto ids = run_scenario();
  ASSERT_NE(ids.increment, 0u);
  EXPECT_EQ(enrolled(ids.increment), (keys{"inc-1", "inc-2"}));
  auto x = execution_of(ids.increment, "inc-2");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(get_device("inc-2").active_execution_id(),
            execution_id(ids.increment, 2));
  auto pushed = pushed_keys();
  EXPECT_EQ(std::count(pushed.begin(), pushed.end(), "inc-2"), 1);
  EXPECT_EQ(task_summary(ids.increment).status(), v1::TASK_STATUS_RUNNING);
}

TEST_F(IncrementTasks, SnapshotTaskDoesNot) {
  auto ids = run_scenario();
  ASSERT_NE(ids.snapshot, 0u);
  EXPECT_EQ(enrolled(ids.snapshot), (keys{"snap-1"}));
  EXPECT_EQ(get_device("snap-2").active_execution_id(), 0u);
  auto pushed = pushed_keys();
  EXPECT_EQ(std::count(pushed.begin(), pushed.end(), "snap-2"), 0);
  // The snapshot task's list stays closed while the increment task grows.
  EXPECT_EQ(task_summary(ids.snapshot).counters().queued() +
                task_summary(ids.snapshot).counters().notified(),
            1u);
}

TEST_F(IncrementTasks, IncrementTaskEnrolsDeviceThatReportsASourceVersion) {
  create_firmware_verified("2.0");
  register_online("old", "0.9");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(enrolled(id).empty());
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  auto r = report_version("old", "1.0");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(enrolled(id), (keys{"old"}));
  EXPECT_EQ(pushed_keys(), (keys{"old"}));
  EXPECT_EQ(execution_of(id, "old").state(), v1::EXECUTION_STATE_NOTIFIED);
}

TEST_F(IncrementTasks, IncrementTaskEndsAtEndTime) {
  create_firmware_verified("2.0");
  ASSERT_EQ(register_device("sleeper", "1.0").status(), v1::STATUS_CODE_OK);
  auto spec = snapshot_spec("1.0", "2.0");
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  auto end = now_ms() + hour_ms;
  spec.set_end_time_ms(end);
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  run_until(end - 1);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(execution_of(id, "sleeper").state(), v1::EXECUTION_STATE_QUEUED);
  run_until(end);
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(s.finished_at_ms(), end);
  EXPECT_EQ(execution_of(id, "sleeper").state(), v1::EXECUTION_STATE_CANCELED);
  EXPECT_EQ(get_device("sleeper").active_execution_id(), 0u);
  // The list is closed now.
  register_online("late", "1.0");
  EXPECT_EQ(enrolled(id), (keys{"sleeper"}));
  EXPECT_TRUE(upgrades().empty());
}

// -- scope filters ------------------------------------------------------------

/// Scope filters; asset-tree tasks select nodes of `site_tree()`.
class ScopeFilters : public fota::test::rollout_fixture {
protected:
  static v1::TaskSpec tree_spec(std::vector<std::string> nodes) {
    auto spec = snapshot_spec("1.0", "2.0");
    spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    auto* sel = spec.mutable_scope()->mutable_asset_trees()->add_trees();
    sel->set_tree_id("site");
    for (auto& n : nodes)
      sel->add_node_ids(n);
    return spec;
  }
};

TEST_F(ScopeFilters, TagScopeSelectsTaggedDevices) {
  create_firmware_verified("2.0");
  register_labelled("a", "1.0", {{"ring", "canary"}});
  register_labelled("b", "1.0", {{"ring", "beta"}});
  register_labelled("c", "0.9", {{"ring", "canary"}}); // not on a source
  register_labelled("d", "1.0", {});
  // d is tagged after registration: the index follows.
  ASSERT_EQ(set_tags("d", {{"ring", "canary"}}).status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(tag_spec("1.0", "2.0", "ring", "canary"));
  ASSERT_NE(id, 0u);
  EXPECT_EQ(enrolled(id), (keys{"a", "d"}));
}

TEST_F(ScopeFilters, AttributeScopeSelectsDevices) {
  create_firmware_verified("2.0");
  register_labelled("a", "1.0", {}, {{"region", "eu"}});
  register_labelled("b", "1.0", {}, {{"region", "us"}});
  register_labelled("c", "1.0", {{"region", "eu"}}); // a tag, not attribute
  register_labelled("d", "1.0", {}, {{"region", "us"}});
  ASSERT_EQ(set_attributes("d", {{"region", "eu"}}).status(),
            v1::STATUS_CODE_OK);
  auto spec = snapshot_spec("1.0", "2.0");
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_attribute()->set_name("region");
  spec.mutable_scope()->mutable_attribute()->set_value("eu");
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(enrolled(id), (keys{"a", "d"}));
}

TEST_F(ScopeFilters, DeviceKeyScopeRefusesUnknownKey) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_device_keys()->add_device_keys("a");
  spec.mutable_scope()->mutable_device_keys()->add_device_keys("ghost");
  auto r = create_task(spec);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(r.message(), "scope.device_keys"));
  EXPECT_TRUE(contains(r.message(), "ghost"));
  EXPECT_TRUE(list_tasks().empty());
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  EXPECT_TRUE(upgrades().empty());
  // Nothing was written: a restarted node replays no task.
  stop_node();
  start_node();
  ASSERT_TRUE(the_node);
  EXPECT_EQ(the_node->recovery().tasks, 0u);
  EXPECT_TRUE(list_tasks().empty());
}

/// site (device gw)
/// ├── hall-a (device a)
/// │   └── line-1 (device deep)
/// ├── hall-b
/// └── hall-c (device c)
v1::AssetTree site_tree() {
  v1::AssetTree t;
  t.set_product_key(fota::test::product);
  t.set_tree_id("site");
  t.set_name("plant");
  auto node = [&](const char* id, const char* parent, const char* device) {
    auto* n = t.add_nodes();
    n->set_node_id(id);
    n->set_parent_id(parent);
    n->set_name(id);
    n->set_device_key(device);
  };
  node("site", "", "gw");
  node("hall-a", "site", "a");
  node("line-1", "hall-a", "deep");
  node("hall-b", "site", "");
  node("hall-c", "site", "c");
  return t;
}

TEST_F(ScopeFilters, AssetTreeScopeSelectsRootAndChildDevices) {
  create_firmware_verified("2.0");
  for (const auto* k : {"gw", "a", "deep", "c"})
    register_online(k, "1.0");
  auto r = create_tree(site_tree());
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto id = create_task_id(tree_spec({"site", "hall-a", "hall-b"}));
  ASSERT_NE(id, 0u);
  // The root and the selected children that are devices; not the grandchild
  // under hall-a, not the unselected hall-c.
  EXPECT_EQ(enrolled(id), (keys{"gw", "a"}));
}

TEST_F(ScopeFilters, AssetTreeScopeRefusesDeeperNode) {
  create_firmware_verified("2.0");
  for (const auto* k : {"gw", "a", "deep", "c"})
    register_online(k, "1.0");
  ASSERT_EQ(create_tree(site_tree()).status(), v1::STATUS_CODE_OK);
  auto r = create_task(tree_spec({"hall-a", "line-1"}));
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(r.message(), "scope.asset_trees"));
  EXPECT_TRUE(contains(r.message(), "line-1"));
  EXPECT_TRUE(list_tasks().empty());
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  EXPECT_TRUE(upgrades().empty());
}

// -- device requests ----------------------------------------------------------

TEST_F(DeviceRequests, DeviceRequestOffersFirmwareAndConfirmStartsUpgrade) {
  create_firmware_verified("2.0");
  register_online("d", "1.0");
  auto id = create_task_id(device_request(snapshot_spec("1.0", "2.0")));
  ASSERT_NE(id, 0u);
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_QUEUED);
  auto r = request_upgrade("d");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  const auto& offer = r.offer();
  ASSERT_TRUE(offer.available()) << offer.reason();
  auto fw = firmware_of("2.0");
  EXPECT_EQ(offer.execution_id(), execution_id(id, 1));
  EXPECT_EQ(offer.attempt(), 1u);
  EXPECT_EQ(offer.firmware().version(), "2.0");
  EXPECT_EQ(offer.firmware().url(), fw.url());
  EXPECT_EQ(offer.firmware().size(), fw.size());
  EXPECT_EQ(offer.firmware().sha256(), fw.sha256());
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_NOTIFIED);
  r = confirm_upgrade("d", offer.execution_id());
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_IN_PROGRESS);
  r = report_version("d", "2.0");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_COMPLETED);
  // The device asked; nothing was pushed.
  EXPECT_TRUE(upgrades().empty());
}

TEST_F(DeviceRequests, DeviceWithoutTaskIsToldNoUpgrade) {
  create_firmware_verified("2.0");
  register_online("covered", "1.0");
  register_online("d", "0.9");
  // A device-request task that does not cover d.
  ASSERT_NE(create_task_id(device_request(snapshot_spec("1.0", "2.0"))), 0u);
  auto r = request_upgrade("d");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_FALSE(r.offer().available());
  EXPECT_TRUE(starts_with(r.offer().reason(), "no upgrade available"));
  EXPECT_EQ(r.offer().execution_id(), 0u);
}

TEST_F(DeviceRequests, BusyDeviceAskingGetsBusyAnswer) {
  create_firmware_verified("2.0");
  register_online("d", "1.0");
  auto id = create_task_id(snapshot_spec("1.0", "2.0")); // cloud push
  ASSERT_NE(id, 0u);
  ASSERT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_NOTIFIED);
  auto r = request_upgrade("d");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_FALSE(r.offer().available());
  EXPECT_TRUE(starts_with(r.offer().reason(), "busy"));
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_NOTIFIED);
}

TEST_F(DeviceRequests, UnconfirmedOfferTimesOut) {
  create_firmware_verified("2.0");
  register_online("d", "1.0");
  auto spec = device_request(snapshot_spec("1.0", "2.0"));
  spec.set_timeout_seconds(300);
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  auto offered_at = now_ms();
  auto r = request_upgrade("d");
  ASSERT_TRUE(r.offer().available()) << r.offer().reason();
  run_until(offered_at + 5 * minute_ms - 1);
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_NOTIFIED);
  run_until(offered_at + 5 * minute_ms);
  auto x = execution_of(id, "d");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_EQ(x.finished_at_ms(), offered_at + 5 * minute_ms);
  EXPECT_EQ(get_device("d").active_execution_id(), 0u);
}

// -- schedule windows ---------------------------------------------------------

TEST_F(ScheduleWindows, NoPushOutsideScheduleWindow) {
  create_firmware_verified("2.0");
  register_online_many("d", 70, "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  add_window(spec, 9 * 60, 10 * 60); // 09:00-10:00 UTC
  spec.mutable_rate()->set_max_per_minute(1);
  ASSERT_EQ(now_ms(), wall_clock_base_ms); // 08:00 UTC
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  run_until(nine_utc - 1);
  EXPECT_TRUE(upgrades().empty());
  run_until(nine_utc);
  auto pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0].at_ms, nine_utc);
  // One a minute from 09:00 to 09:59.
  run_until(ten_utc - 1);
  EXPECT_EQ(upgrades().size(), 60u);
  // Ten devices are still queued, but the window is closed until tomorrow.
  run_until(nine_utc + day_ms - 1);
  EXPECT_EQ(upgrades().size(), 60u);
  EXPECT_EQ(task_summary(id).counters().queued(), 10u);
  run_until(nine_utc + day_ms + 10 * minute_ms);
  pushed = timed_upgrades();
  EXPECT_EQ(pushed.size(), 70u);
  for (const auto& p : pushed) {
    auto minute = fota::test::utc_minute_of_day(p.at_ms);
    EXPECT_TRUE(minute >= 9 * 60 && minute < 10 * 60)
        << p.push.device_key() << " pushed at " << p.at_ms;
  }
}

TEST_F(ScheduleWindows,
       DeviceComingOnlineOutsideWindowIsPushedWhenWindowOpens) {
  create_firmware_verified("2.0");
  ASSERT_EQ(register_device("early", "1.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(register_device("late", "1.0").status(), v1::STATUS_CODE_OK);
  auto spec = snapshot_spec("1.0", "2.0");
  add_window(spec, 9 * 60, 10 * 60); // 09:00-10:00 UTC
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  // early comes online at 08:30, before the window.
  run_until(wall_clock_base_ms + 30 * minute_ms);
  online("early");
  run_until(nine_utc - 1);
  EXPECT_TRUE(upgrades().empty());
  run_until(nine_utc);
  auto pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0].push.device_key(), "early");
  EXPECT_EQ(pushed[0].at_ms, nine_utc);
  EXPECT_TRUE(execution_of(id, "late").waiting_for_device());
  // late comes online at 10:30, after the window: it waits for tomorrow's.
  run_until(ten_utc + 30 * minute_ms);
  online("late");
  run_until(nine_utc + day_ms - 1);
  EXPECT_EQ(upgrades().size(), 1u);
  run_until(nine_utc + day_ms);
  pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 2u);
  EXPECT_EQ(pushed[1].push.device_key(), "late");
  EXPECT_EQ(pushed[1].at_ms, nine_utc + day_ms);
}

TEST_F(DstScheduleWindows, WindowAcrossDstChange) {
  // On 2026-03-29 Europe/Berlin jumps from 02:00 CET (UTC+1) to 03:00 CEST
  // (UTC+2) at 01:00 UTC, so local 02:00-03:00 does not exist. The window
  // 02:30-03:30 local then opens at the first local instant inside it that
  // exists, 03:00 CEST = 2026-03-29T01:00:00Z, and closes at 03:30 CEST =
  // 01:30:00Z: 30 minutes instead of 60. The next day it opens at 02:30
  // CEST = 2026-03-30T00:30:00Z. (The day before, 02:30-03:30 CET was
  // 01:30-02:30 UTC, already over when the test starts at 12:00 UTC.)
  constexpr int64_t opens = 1'774'746'000'000;       // 2026-03-29T01:00:00Z
  constexpr int64_t closes = opens + 30 * minute_ms; // 2026-03-29T01:30:00Z
  constexpr int64_t next_opens = 1'774'830'600'000;  // 2026-03-30T00:30:00Z
  create_firmware_verified("2.0");
  register_online_many("d", 40, "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  add_window(spec, 2 * 60 + 30, 3 * 60 + 30, "Europe/Berlin");
  spec.mutable_rate()->set_max_per_minute(1);
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  run_until(opens - 1);
  EXPECT_TRUE(upgrades().empty());
  run_until(opens);
  auto pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0].at_ms, opens);
  run_until(next_opens - 1);
  pushed = timed_upgrades();
  EXPECT_EQ(pushed.size(), 30u);
  for (const auto& p : pushed)
    EXPECT_TRUE(p.at_ms >= opens && p.at_ms < closes)
        << p.push.device_key() << " pushed at " << p.at_ms;
  run_until(next_opens);
  pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 31u);
  EXPECT_EQ(pushed.back().at_ms, next_opens);
}

// -- rates and priorities -----------------------------------------------------

TEST_F(PushRates, TaskRateHoldsPushesPerMinute) {
  create_firmware_verified("2.0");
  register_online_many("d", 20, "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.mutable_rate()->set_max_per_minute(6);
  auto t0 = now_ms();
  ASSERT_NE(create_task_id(spec), 0u);
  run_until(t0 + minute_ms);
  auto after_a_minute = upgrades().size();
  EXPECT_GE(after_a_minute, 6u);
  EXPECT_LE(after_a_minute, 7u);
  run_until(t0 + 4 * minute_ms);
  auto pushed = timed_upgrades();
  EXPECT_EQ(pushed.size(), 20u);
  // The bucket holds one push: over any span, at most one more push than
  // six a minute allows.
  for (size_t i = 0; i < pushed.size(); ++i)
    for (size_t j = i + 1; j < pushed.size(); ++j)
      EXPECT_LE(static_cast<int64_t>(j - i) * minute_ms,
                (pushed[j].at_ms - pushed[i].at_ms) * 6)
          << "pushes " << i << " and " << j;
}

TEST_F(PushRates, RampUpIncreasesRateAfterSuccesses) {
  create_firmware_verified("2.0");
  register_online_many("d", 8, "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  auto* ramp = spec.mutable_rate()->mutable_ramp_up();
  ramp->set_base_per_minute(1);
  ramp->set_factor(2.0);
  ramp->set_successes_per_step(2);
  auto t0 = now_ms();
  ASSERT_NE(create_task_id(spec), 0u);
  // Every device upgrades as soon as it is pushed.
  size_t answered = 0;
  auto answer = [&] {
    auto ups = upgrades();
    for (; answered < ups.size(); ++answered)
      upgrade(ups[answered].device_key(), ups[answered].execution_id(), "2.0");
  };
  answer();
  run_until(t0 + 200'000, answer);
  // 1/min until the 2nd success (at 60 s), 2/min until the 4th (at 120 s),
  // then 4/min: pushes at 0, 60, 90, 120 and 135 s.
  std::vector<int64_t> offsets;
  for (const auto& p : timed_upgrades())
    offsets.push_back(p.at_ms - t0);
  ASSERT_GE(offsets.size(), 5u);
  offsets.resize(5);
  EXPECT_EQ(offsets,
            (std::vector<int64_t>{0, 60'000, 90'000, 120'000, 135'000}));
}

TEST_F(NodeRatePriorities, HigherPriorityTaskIsServedFirst) {
  create_firmware_verified("2.0");
  register_online_many("low", 3, "1.0");
  register_online_many("high", 3, "1.1");
  auto low = snapshot_spec("1.0", "2.0");
  auto high = snapshot_spec("1.1", "2.0");
  high.set_priority(5);
  ASSERT_NE(create_task_id(low), 0u);  // takes the one token there is
  ASSERT_NE(create_task_id(high), 0u); // created later, served first
  run_for(10s);
  EXPECT_EQ(pushed_keys(),
            (keys{"low-1", "high-1", "high-2", "high-3", "low-2", "low-3"}));
}

TEST_F(NodeRatePriorities, EqualPriorityTasksShareRoundRobin) {
  create_firmware_verified("2.0");
  register_online_many("a", 3, "1.0");
  register_online_many("b", 3, "1.1");
  ASSERT_NE(create_task_id(snapshot_spec("1.0", "2.0")), 0u);
  ASSERT_NE(create_task_id(snapshot_spec("1.1", "2.0")), 0u);
  run_for(10s);
  EXPECT_EQ(pushed_keys(), (keys{"a-1", "b-1", "a-2", "b-2", "a-3", "b-3"}));
}

// -- timeouts, retries, abort rule --------------------------------------------

/// Timeouts, retries and the abort rule.
class ExecutionRules : public fota::test::rollout_fixture {
protected:
  /// Four devices pushed one a minute; the first two fail. The abort rule
  /// (50 % of at least 2 finished) trips on the second failure.
  static v1::TaskSpec abort_spec(v1::AbortAction action) {
    auto spec = snapshot_spec("1.0", "2.0");
    spec.mutable_rate()->set_max_per_minute(1);
    spec.mutable_abort()->set_failure_percent(50.0);
    spec.mutable_abort()->set_min_finished(2);
    spec.mutable_abort()->set_action(action);
    return spec;
  }
};

TEST_F(ExecutionRules, TimeoutMakesSilentExecutionTimedOut) {
  create_firmware_verified("2.0");
  register_online("quiet", "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.set_timeout_seconds(300);
  auto t0 = now_ms();
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  ASSERT_EQ(upgrades().size(), 1u);
  run_until(t0 + 5 * minute_ms - 1);
  EXPECT_EQ(execution_of(id, "quiet").state(), v1::EXECUTION_STATE_NOTIFIED);
  run_until(t0 + 5 * minute_ms);
  auto x = execution_of(id, "quiet");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_EQ(x.finished_at_ms(), t0 + 5 * minute_ms);
  EXPECT_EQ(get_device("quiet").active_execution_id(), 0u);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_COMPLETED);
}

TEST_F(ExecutionRules, RetryRequeuesAndPushesAgainWithNextAttempt) {
  create_firmware_verified("2.0");
  register_online("flaky", "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.mutable_retry()->set_max_retries(2);
  spec.mutable_retry()->set_interval_seconds(60);
  auto id = create_task_id(spec);
  ASSERT_NE(id, 0u);
  auto ups = upgrades();
  ASSERT_EQ(ups.size(), 1u);
  EXPECT_EQ(ups[0].attempt(), 1u);
  auto exec = ups[0].execution_id();
  auto r = report_failure("flaky", exec, "E_FLASH", "write error");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto failed_at = now_ms();
  EXPECT_EQ(execution_of(id, "flaky").state(), v1::EXECUTION_STATE_FAILED);
  // The device stays with the task while it waits for the retry.
  EXPECT_EQ(get_device("flaky").active_execution_id(), exec);
  run_until(failed_at + minute_ms - 1);
  EXPECT_EQ(upgrades().size(), 1u);
  run_until(failed_at + minute_ms);
  ups = upgrades();
  ASSERT_EQ(ups.size(), 2u);
  EXPECT_EQ(ups[1].attempt(), 2u);
  EXPECT_EQ(ups[1].execution_id(), exec);
  auto x = execution_of(id, "flaky");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(x.attempt(), 2u);
}

TEST_F(ExecutionRules, AbortRulePausesTask) {
  create_firmware_verified("2.0");
  register_online_many("d", 4, "1.0");
  auto id = create_task_id(abort_spec(v1::ABORT_ACTION_PAUSE));
  ASSERT_NE(id, 0u);
  ASSERT_EQ(pushed_keys(), (keys{"d-1"}));
  ASSERT_EQ(report_failure("d-1", execution_id(id, 1), "E1", "x").status(),
            v1::STATUS_CODE_OK);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  run_for(1min);
  ASSERT_EQ(pushed_keys(), (keys{"d-1", "d-2"}));
  ASSERT_EQ(report_failure("d-2", execution_id(id, 2), "E1", "x").status(),
            v1::STATUS_CODE_OK);
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_PAUSED);
  EXPECT_TRUE(starts_with(s.status_reason(), "abort rule"));
  run_for(10min);
  EXPECT_EQ(upgrades().size(), 2u);
  EXPECT_EQ(execution_of(id, "d-3").state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(execution_of(id, "d-4").state(), v1::EXECUTION_STATE_QUEUED);
}

TEST_F(ExecutionRules, AbortRuleCancelsQueued) {
  create_firmware_verified("2.0");
  register_online_many("d", 4, "1.0");
  auto id = create_task_id(abort_spec(v1::ABORT_ACTION_CANCEL));
  ASSERT_NE(id, 0u);
  ASSERT_EQ(pushed_keys(), (keys{"d-1"}));
  ASSERT_EQ(report_failure("d-1", execution_id(id, 1), "E1", "x").status(),
            v1::STATUS_CODE_OK);
  run_for(1min);
  ASSERT_EQ(pushed_keys(), (keys{"d-1", "d-2"}));
  ASSERT_EQ(report_failure("d-2", execution_id(id, 2), "E1", "x").status(),
            v1::STATUS_CODE_OK);
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_CANCELED);
  EXPECT_TRUE(starts_with(s.status_reason(), "abort rule"));
  for (const auto* k : {"d-3", "d-4"}) {
    EXPECT_EQ(execution_of(id, k).state(), v1::EXECUTION_STATE_CANCELED) << k;
    EXPECT_EQ(get_device(k).active_execution_id(), 0u) << k;
  }
  run_for(10min);
  EXPECT_EQ(upgrades().size(), 2u);
}

// -- firmware verification ----------------------------------------------------

TEST_F(Verification, VerificationRunVerifiesFirmwareWhenAllDevicesSucceed) {
  register_online("v1", "1.0");
  register_online("v2", "1.0");
  register_online("other", "1.0");
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  auto r = verify_firmware("2.0", {"v1", "v2"});
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.firmware().status(), v1::FIRMWARE_STATUS_VERIFYING);
  auto ups = upgrades();
  ASSERT_EQ(ups.size(), 2u);
  EXPECT_EQ(ups[0].device_key(), "v1");
  EXPECT_EQ(ups[1].device_key(), "v2");
  // Not a target while it is being verified.
  EXPECT_EQ(create_task(snapshot_spec("1.0", "2.0")).status(),
            v1::STATUS_CODE_FAILED_PRECONDITION);
  upgrade("v1", ups[0].execution_id(), "2.0");
  EXPECT_EQ(get_firmware("2.0").status(), v1::FIRMWARE_STATUS_VERIFYING);
  upgrade("v2", ups[1].execution_id(), "2.0");
  EXPECT_EQ(get_firmware("2.0").status(), v1::FIRMWARE_STATUS_VERIFIED);
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_NE(id, 0u);
  EXPECT_EQ(enrolled(id), (keys{"other"}));
}

TEST_F(Verification, VerificationFailsOnFirstFailure) {
  register_online("v1", "1.0");
  register_online("v2", "1.0");
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(verify_firmware("2.0", {"v1", "v2"}).status(), v1::STATUS_CODE_OK);
  auto ups = upgrades();
  ASSERT_EQ(ups.size(), 2u);
  ASSERT_EQ(report_progress("v1", ups[0].execution_id(), 10).status(),
            v1::STATUS_CODE_OK);
  ASSERT_EQ(
      report_failure("v1", ups[0].execution_id(), "E_BOOT", "does not boot")
          .status(),
      v1::STATUS_CODE_OK);
  auto fw = get_firmware("2.0");
  EXPECT_EQ(fw.status(), v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_TRUE(contains(fw.verification_failure(), "v1"));
  // v2 was told about its upgrade; it is told that it is off.
  auto cancels = this->cancels();
  EXPECT_EQ(cancels.size(), 1u) << "v2 got no CancelPush";
  if (cancels.size() == 1) {
    EXPECT_EQ(cancels[0].device_key(), "v2");
    EXPECT_EQ(cancels[0].execution_id(), ups[1].execution_id());
  }
  EXPECT_EQ(get_device("v2").active_execution_id(), 0u);
  // It can be verified again.
  auto r = verify_firmware("2.0", {"v1", "v2"});
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.firmware().status(), v1::FIRMWARE_STATUS_VERIFYING);
  ups = upgrades();
  ASSERT_EQ(ups.size(), 4u);
  upgrade("v1", ups[2].execution_id(), "2.0");
  upgrade("v2", ups[3].execution_id(), "2.0");
  EXPECT_EQ(get_firmware("2.0").status(), v1::FIRMWARE_STATUS_VERIFIED);
}

TEST_F(Verification, VerificationOnBusyDeviceFails) {
  create_firmware_verified("2.0");
  register_online("held", "1.0");
  register_online("idle", "0.9");
  // held is upgrading to 2.0 in a batch task.
  auto batch = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_NE(batch, 0u);
  ASSERT_EQ(execution_of(batch, "held").state(), v1::EXECUTION_STATE_NOTIFIED);
  ASSERT_EQ(create_firmware("3.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(verify_firmware("3.0", {"idle", "held"}).status(),
            v1::STATUS_CODE_OK);
  auto fw = get_firmware("3.0");
  EXPECT_EQ(fw.status(), v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_TRUE(contains(fw.verification_failure(), "held"));
  EXPECT_TRUE(contains(fw.verification_failure(), "busy"));
  // idle was not pushed and is free again; held's upgrade goes on.
  EXPECT_EQ(pushed_keys(), (keys{"held"}));
  EXPECT_EQ(get_device("idle").active_execution_id(), 0u);
  EXPECT_EQ(execution_of(batch, "held").state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(get_device("held").active_execution_id(), execution_id(batch, 1));
}

} // namespace
