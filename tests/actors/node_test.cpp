/// Tests of a whole fota node on CAF's deterministic test coordinator: a
/// gateway session stand-in brings devices online and reports, an operator
/// creates firmware and tasks, and the tests check what the devices are
/// pushed and what the task records, across a restart too.
#include "actors/device.hpp"
#include "tests/actors/test_node.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::execution_id;
using google::protobuf::util::MessageDifferencer;

// -- fixtures -----------------------------------------------------------------

/// A node without a rate limit.
class Node : public fota::test::node_fixture {
protected:
  void SetUp() override { start_node(); }
};

/// A node that pushes at most once a second (60 a minute, burst 1).
class RateLimitedNode : public fota::test::node_fixture {
protected:
  void SetUp() override {
    limits.max_pushes_per_minute = 60;
    start_node();
  }
};

// -- helpers ------------------------------------------------------------------

std::vector<std::string> device_keys_of(const v1::TaskDetails& d) {
  std::vector<std::string> out;
  for (const auto& x : d.executions())
    out.push_back(x.device_key());
  return out;
}

std::vector<std::string>
device_keys_of(const std::vector<v1::UpgradePush>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs)
    out.push_back(x.device_key());
  return out;
}

/// Sum of all execution counters except skipped.
uint64_t executions_in(const v1::ExecutionCounters& c) {
  return c.queued() + c.notified() + c.in_progress() + c.succeeded() +
         c.failed() + c.timed_out() + c.canceled();
}

// -- cloud push ---------------------------------------------------------------

TEST_F(Node, SnapshotTaskPushesOnlineDevicesInSequence) {
  create_firmware_verified("2.0.0");
  // Registration order, not key order, is the order of the scope.
  const std::vector<std::string> keys{"m", "c", "x", "a", "k"};
  for (const auto& k : keys)
    register_online(k, "1.0.0");
  auto created = create_task(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(created.status(), v1::STATUS_CODE_OK) << created.message();
  auto id = created.task().task_id();
  ASSERT_NE(id, 0u);
  auto ups = gateway.pushes->upgrades();
  ASSERT_EQ(ups.size(), keys.size());
  auto fw = get_firmware("2.0.0");
  for (size_t i = 0; i < ups.size(); ++i) {
    SCOPED_TRACE("push " + std::to_string(i));
    EXPECT_EQ(ups[i].product_key(), test::product);
    EXPECT_EQ(ups[i].device_key(), keys[i]);
    EXPECT_EQ(ups[i].execution_id(), execution_id(id, i + 1));
    EXPECT_EQ(ups[i].attempt(), 1u);
    EXPECT_EQ(ups[i].firmware().version(), "2.0.0");
    EXPECT_EQ(ups[i].firmware().url(), fw.url());
    EXPECT_EQ(ups[i].firmware().size(), fw.size());
    EXPECT_EQ(ups[i].firmware().sha256(), fw.sha256());
  }
  for (const auto& f : gateway.pushes->frames)
    EXPECT_EQ(f.request_id(), 0u);
  auto d = details(id);
  ASSERT_EQ(d.executions_size(), 5);
  for (int i = 0; i < d.executions_size(); ++i) {
    const auto& x = d.executions(i);
    EXPECT_EQ(x.sequence(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(x.device_key(), keys[i]);
    EXPECT_EQ(x.state(), v1::EXECUTION_STATE_NOTIFIED);
    EXPECT_EQ(x.attempt(), 1u);
    EXPECT_GT(x.notified_at_ms(), 0);
  }
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(s.counters().notified(), 5u);
  EXPECT_EQ(s.counters().queued(), 0u);
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(get_device(keys[i]).active_execution_id(),
              execution_id(id, i + 1));
}

TEST_F(Node, OnlyTargetVersionCountsAsSuccess) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  register_online("b", "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto a = execution_id(id, 1);
  auto r = report_progress("a", a, 100, "image written");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto x = execution_of(id, "a");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(x.progress_step(), 100u);
  EXPECT_EQ(x.progress_text(), "image written");
  r = report_version("a", "1.5.0");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(task_summary(id).counters().succeeded(), 0u);
  r = report_version("a", "2.0.0");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  x = execution_of(id, "a");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_GT(x.finished_at_ms(), 0);
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  upgrade("b", execution_id(id, 2), "2.0.0");
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(s.counters().succeeded(), 2u);
  EXPECT_EQ(executions_in(s.counters()), 2u);
  EXPECT_GT(s.finished_at_ms(), 0);
}

TEST_F(Node, FailureKeepsDeviceCodeAndText) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  register_online("b", "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto a = execution_id(id, 1);
  ASSERT_EQ(report_progress("a", a, 30).status(), v1::STATUS_CODE_OK);
  auto r = report_failure("a", a, "E_FLASH_WRITE", "block 7 failed to verify");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto failed = details(id, v1::EXECUTION_STATE_FAILED);
  ASSERT_EQ(failed.executions_size(), 1);
  EXPECT_EQ(failed.executions(0).device_key(), "a");
  EXPECT_EQ(failed.executions(0).failure_code(), "E_FLASH_WRITE");
  EXPECT_EQ(failed.executions(0).failure_text(), "block 7 failed to verify");
  EXPECT_GT(failed.executions(0).finished_at_ms(), 0);
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  EXPECT_EQ(get_device("a").version(), "1.0.0");
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  // A failure straight from NOTIFIED is kept as well, and ends the task.
  r = report_failure("b", execution_id(id, 2), "E_BATTERY", "battery low");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto b = execution_of(id, "b");
  EXPECT_EQ(b.state(), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(b.failure_code(), "E_BATTERY");
  EXPECT_EQ(b.failure_text(), "battery low");
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(s.counters().failed(), 2u);
}

TEST_F(Node, ReportsAboutExecutionZeroGoToTheDevicesCurrentExecution) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  register_online("idle", "2.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto r = report_progress("a", 0, 40, "writing");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto x = execution_of(id, "a");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(x.progress_step(), 40u);
  EXPECT_EQ(x.progress_text(), "writing");
  r = report_failure("a", 0, "E_FLASH", "bad block");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  x = execution_of(id, "a");
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(x.failure_code(), "E_FLASH");
  // Once the execution is over, the device holds none: nothing to resolve.
  r = report_progress("a", 0, 50);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_FAILED_PRECONDITION);
  EXPECT_EQ(r.message(), "device a has no current execution");
  r = report_failure("idle", 0, "E_FLASH", "x");
  EXPECT_EQ(r.status(), v1::STATUS_CODE_FAILED_PRECONDITION);
  EXPECT_EQ(r.message(), "device idle has no current execution");
}

// -- one upgrade per device ---------------------------------------------------

TEST_F(Node, BusyDeviceIsSkippedWithReason) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  auto first = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  for (const auto& k : {"d", "e"})
    register_online(k, "1.0.0");
  auto created = create_task(snapshot_spec("1.0.0", "3.0.0"));
  ASSERT_EQ(created.status(), v1::STATUS_CODE_OK) << created.message();
  auto second = created.task().task_id();
  EXPECT_EQ(created.task().counters().skipped(), 3u);
  EXPECT_EQ(device_keys_of(details(second)),
            (std::vector<std::string>{"d", "e"}));
  auto skips = skipped(second);
  ASSERT_EQ(skips.size(), 3u);
  const std::vector<std::string> busy{"a", "b", "c"};
  for (size_t i = 0; i < skips.size(); ++i) {
    SCOPED_TRACE(skips[i].device_key());
    EXPECT_EQ(skips[i].device_key(), busy[i]);
    auto names =
        "execution " + std::to_string(first) + "/" + std::to_string(i + 1);
    EXPECT_NE(skips[i].reason().find(names), std::string::npos)
        << skips[i].reason();
    EXPECT_NE(skips[i].reason().find("busy"), std::string::npos)
        << skips[i].reason();
  }
  // The busy devices got no push of the second task.
  for (const auto& up : gateway.pushes->upgrades()) {
    if (fota::execution_id{up.execution_id()}.task().value() == second) {
      EXPECT_TRUE(up.device_key() == "d" || up.device_key() == "e")
          << up.device_key();
    }
  }
  for (size_t i = 0; i < busy.size(); ++i)
    EXPECT_EQ(get_device(busy[i]).active_execution_id(),
              execution_id(first, i + 1));
  EXPECT_EQ(task_summary(first).counters().skipped(), 0u);
}

TEST_F(Node, TwoTasksCreatedAtOnceNeverEnrolTheSameDevice) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  const std::vector<std::string> keys{"a", "b", "c", "d", "e", "f"};
  for (const auto& k : keys)
    register_online(k, "1.0.0");
  // Both requests wait in the registry's mailbox before either runs.
  auto one = send_request(create_task_frame(snapshot_spec("1.0.0", "2.0.0")));
  auto two = send_request(create_task_frame(snapshot_spec("1.0.0", "3.0.0")));
  sched.run();
  ASSERT_TRUE(*one);
  ASSERT_TRUE(*two);
  ASSERT_EQ((*one)->status(), v1::STATUS_CODE_OK) << (*one)->message();
  ASSERT_EQ((*two)->status(), v1::STATUS_CODE_OK) << (*two)->message();
  uint64_t ids[] = {(*one)->task().task_id(), (*two)->task().task_id()};
  ASSERT_NE(ids[0], ids[1]);
  std::map<std::string, std::vector<uint64_t>> enrolled_in;
  std::map<uint64_t, std::map<std::string, uint64_t>> sequence_in;
  std::map<uint64_t, std::vector<v1::SkippedDevice>> skipped_by;
  for (auto id : ids) {
    auto d = details(id);
    for (const auto& x : d.executions()) {
      enrolled_in[x.device_key()].push_back(id);
      sequence_in[id][x.device_key()] = x.sequence();
    }
    skipped_by[id] = skipped(id);
    EXPECT_EQ(sequence_in[id].size() + skipped_by[id].size(), keys.size());
  }
  for (const auto& k : keys) {
    SCOPED_TRACE(k);
    ASSERT_EQ(enrolled_in[k].size(), 1u);
    auto owner = enrolled_in[k].front();
    EXPECT_EQ(get_device(k).active_execution_id(),
              execution_id(owner, sequence_in[owner][k]));
  }
  // Each task skipped exactly the devices of the other, and says why: the
  // other task holds the device. An execution named in the reason must be
  // the one that exists, not an id used while enrolment was under way.
  const std::regex execution_ref{R"(execution (\d+)/(\d+))"};
  for (int i = 0; i < 2; ++i) {
    auto id = ids[i];
    auto other = ids[1 - i];
    for (const auto& s : skipped_by[id]) {
      SCOPED_TRACE("task " + std::to_string(id) + " skipped " + s.device_key());
      ASSERT_EQ(sequence_in[other].count(s.device_key()), 1u);
      EXPECT_NE(s.reason().find("busy"), std::string::npos) << s.reason();
      std::smatch m;
      if (std::regex_search(s.reason(), m, execution_ref)) {
        EXPECT_EQ(m[1].str(), std::to_string(other)) << s.reason();
        EXPECT_EQ(m[2].str(),
                  std::to_string(sequence_in[other][s.device_key()]))
            << s.reason();
      } else {
        EXPECT_NE(s.reason().find("task " + std::to_string(other)),
                  std::string::npos)
            << s.reason();
      }
    }
  }
  // Every device got exactly one push, from the task that enrolled it.
  auto ups = gateway.pushes->upgrades();
  EXPECT_EQ(ups.size(), keys.size());
  std::set<std::string> pushed;
  for (const auto& up : ups) {
    EXPECT_TRUE(pushed.insert(up.device_key()).second) << up.device_key();
    EXPECT_EQ(fota::execution_id{up.execution_id()}.task().value(),
              enrolled_in[up.device_key()].front());
  }
}

TEST_F(Node, RefusedCreationsLeaveTheirTaskIdToTheNextTask) {
  create_firmware_verified("2.0.0");
  v1::CreateFirmware unverified;
  *unverified.mutable_firmware() = firmware_of("3.0.0");
  ASSERT_EQ(call(unverified).status(), v1::STATUS_CODE_OK);
  register_online("a", "1.0.0");
  EXPECT_EQ(create_task_id(snapshot_spec("1.0.0", "2.0.0")), 1u);
  // Two refusals, one by the firmware (not verified) and one by the rules
  // (a source that is the target), with a good creation queued behind them.
  auto not_verified =
      send_request(create_task_frame(snapshot_spec("1.0.0", "3.0.0")));
  auto same_version =
      send_request(create_task_frame(snapshot_spec("2.0.0", "2.0.0")));
  auto good = send_request(create_task_frame(snapshot_spec("1.0.0", "2.0.0")));
  sched.run();
  ASSERT_TRUE(*not_verified && *same_version && *good);
  EXPECT_EQ((*not_verified)->status(), v1::STATUS_CODE_FAILED_PRECONDITION)
      << (*not_verified)->message();
  EXPECT_EQ((*same_version)->status(), v1::STATUS_CODE_INVALID_ARGUMENT)
      << (*same_version)->message();
  ASSERT_EQ((*good)->status(), v1::STATUS_CODE_OK) << (*good)->message();
  EXPECT_EQ((*good)->task().task_id(), 2u);
  v1::ListTasks list;
  auto listed = call(list);
  ASSERT_EQ(listed.status(), v1::STATUS_CODE_OK) << listed.message();
  ASSERT_EQ(listed.task_list().tasks_size(), 2);
  EXPECT_EQ(listed.task_list().tasks(0).task_id(), 1u);
  EXPECT_EQ(listed.task_list().tasks(1).task_id(), 2u);
  // A refusal after a restart, then the next id.
  stop_node();
  start_node();
  EXPECT_EQ(create_task(snapshot_spec("1.0.0", "3.0.0")).status(),
            v1::STATUS_CODE_FAILED_PRECONDITION);
  EXPECT_EQ(create_task_id(snapshot_spec("1.0.0", "2.0.0")), 3u);
}

TEST_F(Node, NewDevicesDoNotJoinASnapshotTask) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  register_online("late", "1.0.0");
  // A device reporting a source version later does not join either.
  register_online("moved", "0.9.0");
  ASSERT_EQ(report_version("moved", "1.0.0").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(device_keys_of(details(id)),
            (std::vector<std::string>{"a", "b", "c"}));
  auto s = task_summary(id);
  EXPECT_EQ(executions_in(s.counters()), 3u);
  EXPECT_EQ(s.counters().skipped(), 0u);
  EXPECT_EQ(device_keys_of(gateway.pushes->upgrades()),
            (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(get_device("late").active_execution_id(), 0u);
  EXPECT_EQ(get_device("moved").active_execution_id(), 0u);
  // Finishing the three completes the task without the newcomers.
  for (uint64_t i = 1; i <= 3; ++i)
    upgrade(std::string(1, static_cast<char>('a' + i - 1)), execution_id(id, i),
            "2.0.0");
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_COMPLETED);
}

TEST_F(Node, OfflineDeviceIsPushedOnReconnect) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  ASSERT_EQ(register_device("b", "1.0.0").status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  EXPECT_EQ(device_keys_of(gateway.pushes->upgrades()),
            (std::vector<std::string>{"a"}));
  auto b = execution_of(id, "b");
  EXPECT_EQ(b.state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_TRUE(b.waiting_for_device())
      << "an offline device's QUEUED execution should show as waiting";
  // Time passing does not push to an offline device either.
  advance(10min);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  auto later = new_session();
  ASSERT_EQ(online("b", later).status(), v1::STATUS_CODE_OK);
  auto ups = later.pushes->upgrades();
  ASSERT_EQ(ups.size(), 1u);
  EXPECT_EQ(ups[0].device_key(), "b");
  EXPECT_EQ(ups[0].execution_id(), execution_id(id, 2));
  EXPECT_EQ(ups[0].attempt(), 1u);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  b = execution_of(id, "b");
  EXPECT_EQ(b.state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_FALSE(b.waiting_for_device());
}

// -- rate limit ---------------------------------------------------------------

TEST_F(RateLimitedNode, NodeRateLimitHoldsPushes) {
  create_firmware_verified("2.0.0");
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) {
    keys.push_back("dev-" + std::to_string(i));
    register_online(keys.back(), "1.0.0");
  }
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  // The dispatcher sleeps on one timer until the next token, and does not
  // poll: no timer fires before it, and exactly one fires then.
  EXPECT_EQ(advance(999ms), 0u);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  EXPECT_EQ(advance(1ms), 1u);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 2u);
  for (size_t n = 3; n <= keys.size(); ++n) {
    EXPECT_EQ(advance(500ms), 0u);
    EXPECT_EQ(gateway.pushes->upgrades().size(), n - 1);
    EXPECT_EQ(advance(500ms), 1u);
    EXPECT_EQ(gateway.pushes->upgrades().size(), n);
  }
  EXPECT_EQ(device_keys_of(gateway.pushes->upgrades()), keys);
  EXPECT_EQ(task_summary(id).counters().notified(), keys.size());
  // With nothing left to push, the dispatcher does not poll: over ten
  // minutes in one-second steps, at most the wake-up it had already set
  // fires (the per-device timeout is hours away).
  EXPECT_LE(advance_in_steps(10min, 1s), 1u);
  EXPECT_EQ(gateway.pushes->upgrades().size(), keys.size());
}

TEST_F(RateLimitedNode, GetTaskForecastsFromTheRateAndTheDevicesOnline) {
  create_firmware_verified("2.0.0");
  for (int i = 0; i < 3; ++i)
    register_online("on-" + std::to_string(i), "1.0.0");
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(register_device("off-" + std::to_string(i), "1.0.0").status(),
              v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(gateway.pushes->upgrades().size(), 1u);
  v1::GetTask req;
  req.set_task_id(id);
  auto r = call(req);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  ASSERT_TRUE(r.has_forecast());
  const auto& f = r.forecast();
  // One push left; four devices are queued, two of them online, and the
  // node allows one push a second.
  EXPECT_EQ(f.pushes_last_minute(), 1u);
  EXPECT_EQ(f.allowed_per_minute(), 60u);
  EXPECT_EQ(f.queued(), 4u);
  EXPECT_EQ(f.queued_online(), 2u);
  EXPECT_DOUBLE_EQ(f.online_share(), 0.5);
  EXPECT_EQ(f.idle_reason(), v1::IDLE_REASON_RATE);
  // The offline devices leave the ETA unknown; the two online ones are
  // pushed within two seconds.
  EXPECT_FALSE(f.eta_known());
  EXPECT_EQ(f.online_eta_ms(), to_millis(clock->now()) + 2000);
  // Once the online ones are pushed, nothing moves: the rest are offline.
  advance(1s);
  advance(1s);
  ASSERT_EQ(gateway.pushes->upgrades().size(), 3u);
  r = call(req);
  EXPECT_EQ(r.forecast().pushes_last_minute(), 3u);
  EXPECT_EQ(r.forecast().queued_online(), 0u);
  EXPECT_EQ(r.forecast().idle_reason(), v1::IDLE_REASON_DEVICES_OFFLINE);
  // ListTasks carries no forecast.
  EXPECT_FALSE(call(v1::ListTasks{}).has_forecast());
}

TEST_F(Node, GetTaskOfAnUnknownTaskIsNotFound) {
  v1::GetTask req;
  req.set_task_id(77);
  auto r = call(req);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_EQ(r.message(), "task 77 does not exist");
  EXPECT_FALSE(r.has_forecast());
}

// -- controls -----------------------------------------------------------------

TEST_F(RateLimitedNode, PauseStopsPushesAndResumeContinues) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c", "d"})
    register_online(k, "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(gateway.pushes->upgrades().size(), 1u);
  auto r = pause(id);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_PAUSED);
  // Nothing is pushed while paused, and a paused task is not polled: over
  // ten minutes in one-second steps, at most the wake-ups the dispatcher had
  // set before the pause fire.
  EXPECT_LE(advance_in_steps(10min, 1s), 2u);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  EXPECT_EQ(task_summary(id).counters().queued(), 3u);
  // The device already notified still reports while the task is paused.
  ASSERT_EQ(report_progress("a", execution_id(id, 1), 10).status(),
            v1::STATUS_CODE_OK);
  r = resume(id);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 2u);
  advance(1s);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 3u);
  advance(1s);
  EXPECT_EQ(device_keys_of(gateway.pushes->upgrades()),
            (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(task_summary(id).counters().queued(), 0u);
}

TEST_F(Node, CancelEndsQueuedExecutionsAndSendsCancelPush) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  register_online("a", "1.0.0");
  ASSERT_EQ(register_device("b", "1.0.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(register_device("c", "1.0.0").status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_NOTIFIED);
  ASSERT_EQ(execution_of(id, "b").state(), v1::EXECUTION_STATE_QUEUED);
  auto r = cancel(id);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto cancels = gateway.pushes->cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].product_key(), test::product);
  EXPECT_EQ(cancels[0].device_key(), "a");
  EXPECT_EQ(cancels[0].execution_id(), execution_id(id, 1));
  auto s = task_summary(id);
  EXPECT_EQ(s.status(), v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(s.counters().canceled(), 3u);
  EXPECT_EQ(executions_in(s.counters()), 3u);
  EXPECT_EQ(device_keys_of(details(id, v1::EXECUTION_STATE_CANCELED)),
            (std::vector<std::string>{"a", "b", "c"}));
  for (const auto& k : {"a", "b", "c"})
    EXPECT_EQ(get_device(k).active_execution_id(), 0u) << k;
  // A canceled execution is not pushed when its device comes online.
  ASSERT_EQ(online("b").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  EXPECT_EQ(cancel(id).status(), v1::STATUS_CODE_FAILED_PRECONDITION);
  // The devices are free for a new task.
  auto created = create_task(snapshot_spec("1.0.0", "3.0.0"));
  ASSERT_EQ(created.status(), v1::STATUS_CODE_OK) << created.message();
  auto next = created.task().task_id();
  EXPECT_TRUE(skipped(next).empty());
  EXPECT_EQ(device_keys_of(details(next)),
            (std::vector<std::string>{"a", "b", "c"}));
  auto ups = gateway.pushes->upgrades();
  ASSERT_EQ(ups.size(), 3u);
  EXPECT_EQ(ups[1].device_key(), "a");
  EXPECT_EQ(ups[1].execution_id(), execution_id(next, 1));
  EXPECT_EQ(ups[2].device_key(), "b");
  EXPECT_EQ(ups[2].execution_id(), execution_id(next, 2));
}

// -- restart ------------------------------------------------------------------

TEST_F(Node, RestartRebuildsState) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c", "d"})
    register_online(k, "1.0.0");
  for (const auto& k : {"e", "f"})
    ASSERT_EQ(register_device(k, "1.0.0").status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(gateway.pushes->upgrades().size(), 4u);
  upgrade("a", execution_id(id, 1), "2.0.0");
  upgrade("b", execution_id(id, 2), "2.0.0");
  ASSERT_EQ(report_progress("c", execution_id(id, 3), 40, "writing").status(),
            v1::STATUS_CODE_OK);
  auto before = task_summary(id);
  auto before_details = details(id);
  ASSERT_EQ(before.counters().succeeded(), 2u);
  ASSERT_EQ(before.counters().in_progress(), 1u);
  ASSERT_EQ(before.counters().notified(), 1u);
  ASSERT_EQ(before.counters().queued(), 2u);
  stop_node();
  start_node();
  EXPECT_EQ(the_node->recovery().devices, 6u);
  EXPECT_EQ(the_node->recovery().tasks, 1u);
  EXPECT_EQ(the_node->recovery().firmware, 1u);
  // Summary, executions, devices and firmware are as they were.
  auto after = task_summary(id);
  EXPECT_TRUE(MessageDifferencer::Equals(before, after))
      << before.DebugString() << "\n"
      << after.DebugString();
  auto after_details = details(id);
  ASSERT_EQ(after_details.executions_size(), before_details.executions_size());
  for (int i = 0; i < after_details.executions_size(); ++i)
    EXPECT_TRUE(MessageDifferencer::Equals(before_details.executions(i),
                                           after_details.executions(i)))
        << before_details.executions(i).DebugString() << "\n"
        << after_details.executions(i).DebugString();
  for (const auto& k : {"a", "b"})
    EXPECT_EQ(get_device(k).version(), "2.0.0") << k;
  for (const auto& k : {"c", "d", "e", "f"})
    EXPECT_EQ(get_device(k).version(), "1.0.0") << k;
  // No session survives a restart; the active executions do.
  for (const auto& k : {"a", "b", "c", "d", "e", "f"})
    EXPECT_FALSE(get_device(k).online()) << k;
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  for (uint64_t s = 3; s <= 6; ++s)
    EXPECT_EQ(get_device(std::string(1, static_cast<char>('a' + s - 1)))
                  .active_execution_id(),
              execution_id(id, s));
  EXPECT_EQ(get_firmware("2.0.0").status(), v1::FIRMWARE_STATUS_VERIFIED);
  // Reconnected devices get their pushes: NOTIFIED and IN_PROGRESS ones
  // again, with the same execution and attempt, QUEUED ones for the first
  // time.
  auto s2 = new_session();
  for (const auto& k : {"c", "d", "e", "f"})
    ASSERT_EQ(online(k, s2).status(), v1::STATUS_CODE_OK) << k;
  auto ups = s2.pushes->upgrades();
  ASSERT_EQ(ups.size(), 4u);
  for (size_t i = 0; i < ups.size(); ++i) {
    SCOPED_TRACE(ups[i].device_key());
    EXPECT_EQ(ups[i].device_key(), std::string(1, static_cast<char>('c' + i)));
    EXPECT_EQ(ups[i].execution_id(), execution_id(id, i + 3));
    EXPECT_EQ(ups[i].attempt(), 1u);
    EXPECT_EQ(ups[i].firmware().version(), "2.0.0");
  }
  EXPECT_EQ(gateway.pushes->upgrades().size(), 4u);
  EXPECT_EQ(execution_of(id, "c").state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(execution_of(id, "d").state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(execution_of(id, "e").state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(execution_of(id, "f").state(), v1::EXECUTION_STATE_NOTIFIED);
  for (uint64_t s = 3; s <= 6; ++s)
    upgrade(std::string(1, static_cast<char>('a' + s - 1)), execution_id(id, s),
            "2.0.0");
  auto done = task_summary(id);
  EXPECT_EQ(done.status(), v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(done.counters().succeeded(), 6u);
  EXPECT_EQ(executions_in(done.counters()), 6u);
  EXPECT_EQ(details(id, v1::EXECUTION_STATE_SUCCEEDED).executions_size(), 6);
}

TEST_F(Node, TheGaugesFollowDevicesAndTasksAcrossARestart) {
  // What a scrape reads, without a message to any actor.
  auto registered = [&] {
    return ctx().metrics->products.of(fota::test::product).registered.load();
  };
  auto online_now = [&] {
    return ctx().metrics->products.of(fota::test::product).online.load();
  };
  auto statuses = [&] {
    std::map<int, int> out;
    ctx().metrics->tasks.each(
        [&](const fota::task_summary& t) { ++out[t.status]; });
    return out;
  };
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  ASSERT_EQ(register_device("d", "1.0.0").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(registered(), 4);
  EXPECT_EQ(online_now(), 3);
  // Online again counts once; offline counts down.
  ASSERT_EQ(online("a").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(online_now(), 3);
  ASSERT_EQ(offline("c").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(online_now(), 2);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  EXPECT_EQ(statuses(), (std::map<int, int>{{v1::TASK_STATUS_RUNNING, 1}}));
  ASSERT_EQ(pause(id).status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(statuses(), (std::map<int, int>{{v1::TASK_STATUS_PAUSED, 1}}));
  uint64_t executions = 0;
  ctx().metrics->tasks.each([&](const fota::task_summary& t) {
    executions = t.counters.queued + t.counters.notified;
  });
  EXPECT_EQ(executions, 4u);
  // A restart counts the recovered devices and tasks; no device is online.
  stop_node();
  start_node();
  EXPECT_EQ(registered(), 4);
  EXPECT_EQ(online_now(), 0);
  EXPECT_EQ(statuses(), (std::map<int, int>{{v1::TASK_STATUS_PAUSED, 1}}));
}

TEST_F(Node, AnUpgradeWritesThreeEventsAndTheSuccessRecordsTheVersion) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(gateway.pushes->upgrades().size(), 1u);
  auto before = state_digest().last_sequence();
  upgrade("a", execution_id(id, 1), "2.0.0");
  EXPECT_EQ(get_device("a").version(), "2.0.0");
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_COMPLETED);
  // Going offline and online again writes nothing: online state is volatile.
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(online("a").status(), v1::STATUS_CODE_OK);
  stop_node();
  storage::options opts;
  opts.path = (dir / "db").string();
  auto log = storage::event_log::open(opts);
  ASSERT_TRUE(log) << log.error().message;
  std::vector<event::PayloadCase> written;
  std::string recorded;
  (*log)->read(sequence_number{1}, [&](sequence_number, std::string_view b) {
    event e;
    EXPECT_TRUE(e.ParseFromArray(b.data(), static_cast<int>(b.size())));
    EXPECT_FALSE(e.has_device_connected() || e.has_device_disconnected());
    if (e.sequence() > before) {
      written.push_back(e.payload_case());
      if (e.has_execution_succeeded())
        recorded = e.execution_succeeded().device_version();
    }
    return true;
  });
  log->reset();
  // After the push's ExecutionNotified: the start with its first step and
  // the success with the version; the task completes with its last
  // execution.
  EXPECT_EQ(written, (std::vector<event::PayloadCase>{
                         event::kExecutionStarted, event::kExecutionSucceeded,
                         event::kTaskCompleted}));
  EXPECT_EQ(recorded, "2.0.0");
  // Replay sets the device's version from the success.
  start_node();
  EXPECT_EQ(get_device("a").version(), "2.0.0");
  EXPECT_EQ(execution_of(id, "a").progress_step(), 100u);
}

TEST_F(Node, AVersionThatCompletesNothingIsRecordedByTheDevice) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(report_progress("a", execution_id(id, 1), 10).status(),
            v1::STATUS_CODE_OK);
  // 1.5.0 is not the target: the task says no, the device records it.
  ASSERT_EQ(report_version("a", "1.5.0").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(get_device("a").version(), "1.5.0");
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_IN_PROGRESS);
  ASSERT_EQ(report_version("a", "2.0.0").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_SUCCEEDED);
  auto live = state_digest();
  stop_node();
  start_node();
  auto replayed = state_digest();
  EXPECT_EQ(replayed.sha256(), live.sha256());
  EXPECT_EQ(get_device("a").version(), "2.0.0");
}

// -- routing and roles --------------------------------------------------------

TEST_F(Node, UnknownTaskIdIsNotFound) {
  v1::ClientFrame frame;
  frame.mutable_get_task()->set_task_id(4242);
  auto r = route(v1::ROLE_OPERATOR, frame);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_NE(r.message().find("4242"), std::string::npos) << r.message();
  frame.mutable_get_task_details()->set_task_id(4242);
  EXPECT_EQ(route(v1::ROLE_OPERATOR, frame).status(),
            v1::STATUS_CODE_NOT_FOUND);
  frame.mutable_cancel_task()->set_task_id(4242);
  EXPECT_EQ(route(v1::ROLE_OPERATOR, frame).status(),
            v1::STATUS_CODE_NOT_FOUND);
}

TEST_F(Node, UnknownDeviceIsNotFound) {
  v1::ClientFrame frame;
  auto* rv = frame.mutable_report_version();
  rv->set_product_key(test::product);
  rv->set_device_key("ghost");
  rv->set_version("2.0.0");
  auto r = route(v1::ROLE_GATEWAY, frame);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_NE(r.message().find("ghost"), std::string::npos) << r.message();
  auto* get = frame.mutable_get_device();
  get->set_product_key(test::product);
  get->set_device_key("ghost");
  EXPECT_EQ(route(v1::ROLE_OPERATOR, frame).status(),
            v1::STATUS_CODE_NOT_FOUND);
  // The failed report registered nothing.
  v1::ClientFrame list;
  list.mutable_list_devices()->set_product_key(test::product);
  r = route(v1::ROLE_OPERATOR, list);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.device_list().devices_size(), 0);
}

TEST_F(Node, GatewayRequestFromOperatorRoleIsPermissionDenied) {
  v1::ClientFrame frame;
  auto* reg = frame.mutable_register_device();
  reg->set_product_key(test::product);
  reg->set_device_key("a");
  reg->set_version("1.0.0");
  auto r = route(v1::ROLE_OPERATOR, frame);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_NE(r.message().find("register_device"), std::string::npos)
      << r.message();
  v1::ClientFrame get;
  get.mutable_get_device()->set_product_key(test::product);
  get.mutable_get_device()->set_device_key("a");
  EXPECT_EQ(route(v1::ROLE_OPERATOR, get).status(), v1::STATUS_CODE_NOT_FOUND);
  // And the other way round.
  v1::ClientFrame tasks;
  tasks.mutable_list_tasks();
  EXPECT_EQ(route(v1::ROLE_GATEWAY, tasks).status(),
            v1::STATUS_CODE_PERMISSION_DENIED);
  // The same request with the gateway role is accepted.
  r = route(v1::ROLE_GATEWAY, frame);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
}

TEST_F(Node, RouterSendsPushesToTheInProcessGatewayOfADevice) {
  create_firmware_verified("2.0.0");
  auto embedded = new_session();
  v1::ClientFrame reg;
  auto* batch = reg.mutable_register_devices();
  batch->set_online(true);
  for (const auto* key : {"a", "b"}) {
    auto* d = batch->add_devices();
    d->set_product_key(test::product);
    d->set_device_key(key);
    d->set_version("1.0.0");
  }
  auto r = route(v1::ROLE_GATEWAY, reg, embedded.actor);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  ASSERT_EQ(r.registered().failed(), 0u);
  // A device brought online without a gateway gets no push.
  register_device("c", "1.0.0");
  v1::ClientFrame online;
  online.mutable_device_online()->set_product_key(test::product);
  online.mutable_device_online()->set_device_key("c");
  ASSERT_EQ(route(v1::ROLE_GATEWAY, online).status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto ups = embedded.pushes->upgrades();
  ASSERT_EQ(device_keys_of(ups), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ups[0].execution_id(), execution_id(id, 1));
  EXPECT_TRUE(gateway.pushes->frames.empty());
  // The gateway answers through the router too.
  v1::ClientFrame progress;
  auto* p = progress.mutable_report_progress();
  p->set_product_key(test::product);
  p->set_device_key("a");
  p->set_execution_id(ups[0].execution_id());
  p->set_step(50);
  ASSERT_EQ(route(v1::ROLE_GATEWAY, progress, embedded.actor).status(),
            v1::STATUS_CODE_OK);
  v1::ClientFrame done;
  auto* v = done.mutable_report_version();
  v->set_product_key(test::product);
  v->set_device_key("a");
  v->set_version("2.0.0");
  ASSERT_EQ(route(v1::ROLE_GATEWAY, done, embedded.actor).status(),
            v1::STATUS_CODE_OK);
  EXPECT_EQ(task_summary(id).counters().succeeded(), 1u);
}

TEST_F(Node, AFreshTaskPushesEachDeviceOnce) {
  // The devices answer their binds only after the pushes went out (as on a
  // busy node, where the device actors run later than the task): each
  // answer names the session the task already knows, and sends nothing.
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  register_online("b", "1.0.0");
  // A device actor that granted the task's claim but is not yet bound
  // waits: its mailbox then holds the bind and, behind it, the push. (The
  // device's state is looked at, not its mailbox: peeking into a mailbox
  // from outside trips UBSan's vptr check inside CAF's queues.)
  using device_impl = std::remove_pointer_t<device_actor_state::self_pointer>;
  auto binding = [](caf::resumable* job) {
    auto* device = dynamic_cast<device_impl*>(job);
    return device != nullptr &&
           is_enrolling_claim(device->state.device.active_execution);
  };
  auto created =
      send_request(create_task_frame(snapshot_spec("1.0.0", "2.0.0")));
  while (sched.run_jobs_filtered(
             [&](caf::resumable* job) { return !binding(job); }) > 0) {
  }
  ASSERT_TRUE(*created);
  ASSERT_EQ((*created)->status(), v1::STATUS_CODE_OK) << (*created)->message();
  ASSERT_TRUE(gateway.pushes->upgrades().empty())
      << "the pushes wait behind the binds in the devices' mailboxes";
  sched.run();
  auto ups = gateway.pushes->upgrades();
  EXPECT_EQ(device_keys_of(ups), (std::vector<std::string>{"a", "b"}))
      << "each device is pushed exactly once";
}

TEST_F(Node, RequestBeforeHelloIsUnauthenticated) {
  v1::ClientFrame frame;
  auto* reg = frame.mutable_register_device();
  reg->set_product_key(test::product);
  reg->set_device_key("a");
  reg->set_version("1.0.0");
  EXPECT_EQ(route(v1::ROLE_UNSPECIFIED, frame).status(),
            v1::STATUS_CODE_UNAUTHENTICATED);
  v1::ClientFrame tasks;
  tasks.mutable_list_tasks();
  EXPECT_EQ(route(v1::ROLE_UNSPECIFIED, tasks).status(),
            v1::STATUS_CODE_UNAUTHENTICATED);
  v1::ClientFrame get;
  get.mutable_get_device()->set_product_key(test::product);
  get.mutable_get_device()->set_device_key("a");
  EXPECT_EQ(route(v1::ROLE_OPERATOR, get).status(), v1::STATUS_CODE_NOT_FOUND);
}

} // namespace
