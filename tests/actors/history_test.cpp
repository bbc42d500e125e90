/// Tests of device and task histories on a whole node: GetDeviceHistory and
/// GetTaskHistory read the event log in order, page through it, show the
/// state at a past moment by applying the log up to it, and refuse unknown
/// subjects, bad arguments and the gateway role.
#include "tests/actors/test_node.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::execution_id;

class History : public fota::test::node_fixture {
protected:
  void SetUp() override { start_node(); }

  v1::Response device_history(const std::string& key, uint32_t page_size = 0,
                              const std::string& token = {},
                              std::optional<int64_t> at_ms = std::nullopt) {
    v1::GetDeviceHistory req;
    req.set_product_key(test::product);
    req.set_device_key(key);
    req.set_page_size(page_size);
    req.set_page_token(token);
    if (at_ms)
      req.set_at_ms(*at_ms);
    return call(req);
  }

  v1::Response task_history(uint64_t id, uint32_t page_size = 0,
                            const std::string& token = {},
                            std::optional<int64_t> at_ms = std::nullopt) {
    v1::GetTaskHistory req;
    req.set_task_id(id);
    req.set_page_size(page_size);
    req.set_page_token(token);
    if (at_ms)
      req.set_at_ms(*at_ms);
    return call(req);
  }

  int64_t now_ms() const { return to_millis(clock->now()); }
};

std::vector<std::string> kinds_of(const v1::History& h) {
  std::vector<std::string> out;
  for (const auto& e : h.entries())
    out.push_back(e.kind());
  return out;
}

TEST_F(History, ADeviceHistoryShowsItsOwnEventsInLogOrderWithTimes) {
  create_firmware_verified("2.0.0");
  auto t0 = now_ms();
  register_online("a", "1.0.0");
  register_online("b", "1.0.0");
  advance(1s);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  advance(1s);
  ASSERT_EQ(
      report_progress("a", execution_id(id, 1), 30, "downloading").status(),
      v1::STATUS_CODE_OK);
  advance(1s);
  ASSERT_EQ(report_version("a", "2.0.0").status(), v1::STATUS_CODE_OK);
  auto r = device_history("a");
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  const auto& h = r.history();
  EXPECT_EQ(kinds_of(h),
            (std::vector<std::string>{"DeviceRegistered", "DevicesEnrolled",
                                      "ExecutionNotified", "ExecutionStarted",
                                      "ExecutionSucceeded"}));
  EXPECT_TRUE(h.next_page_token().empty());
  for (int i = 1; i < h.entries_size(); ++i) {
    EXPECT_LT(h.entries(i - 1).sequence(), h.entries(i).sequence());
    EXPECT_LE(h.entries(i - 1).time_ms(), h.entries(i).time_ms());
  }
  EXPECT_EQ(h.entries(0).time_ms(), t0);
  EXPECT_EQ(h.entries(0).version(), "1.0.0");
  EXPECT_EQ(h.entries(0).text(), "registered on version 1.0.0");
  EXPECT_EQ(h.entries(1).text(), "enrolled in task " + std::to_string(id) +
                                     " as execution " + std::to_string(id) +
                                     "/1");
  EXPECT_EQ(h.entries(2).text(),
            "pushed execution " + std::to_string(id) + "/1 (attempt 1)");
  EXPECT_EQ(h.entries(2).attempt(), 1u);
  EXPECT_EQ(h.entries(3).step(), 30u);
  EXPECT_EQ(h.entries(3).time_ms(), t0 + 2000);
  EXPECT_EQ(h.entries(4).version(), "2.0.0");
  EXPECT_EQ(h.entries(4).time_ms(), t0 + 3000);
  for (const auto& e : h.entries()) {
    EXPECT_EQ(e.device_key(), "a");
    if (e.kind() != "DeviceRegistered") {
      EXPECT_EQ(e.task_id(), id);
      EXPECT_EQ(e.execution_sequence(), 1u);
    }
  }
  // Device b's history has its own execution, not a's progress.
  auto b = device_history("b");
  ASSERT_EQ(b.status(), v1::STATUS_CODE_OK) << b.message();
  EXPECT_EQ(kinds_of(b.history()),
            (std::vector<std::string>{"DeviceRegistered", "DevicesEnrolled",
                                      "ExecutionNotified"}));
  EXPECT_EQ(b.history().entries(2).execution_sequence(), 2u);
}

TEST_F(History, ATaskHistoryPagesThroughItsEventsInOrder) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(
      report_failure("b", execution_id(id, 2), "E42", "disk full").status(),
      v1::STATUS_CODE_OK);
  ASSERT_EQ(cancel(id).status(), v1::STATUS_CODE_OK);
  auto all = task_history(id, 1000);
  ASSERT_EQ(all.status(), v1::STATUS_CODE_OK) << all.message();
  auto kinds = kinds_of(all.history());
  ASSERT_GE(kinds.size(), 6u);
  EXPECT_EQ(kinds.front(), "TaskCreated");
  EXPECT_EQ(kinds[1], "DevicesEnrolled");
  EXPECT_EQ(all.history().entries(1).device_count(), 3u);
  EXPECT_EQ(kinds.back(), "TaskCanceled");
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "ExecutionNotified"), 3);
  auto failed = std::find(kinds.begin(), kinds.end(), "ExecutionFailed");
  ASSERT_NE(failed, kinds.end());
  const auto& f = all.history().entries(
      static_cast<int>(std::distance(kinds.begin(), failed)));
  EXPECT_EQ(f.code(), "E42");
  EXPECT_EQ(f.execution_sequence(), 2u);
  EXPECT_EQ(f.text(),
            "failed execution " + std::to_string(id) + "/2: E42 disk full");
  // Pages of two give the same entries, in the same order, and end.
  std::vector<uint64_t> paged;
  std::string token;
  int pages = 0;
  do {
    auto r = task_history(id, 2, token);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    ASSERT_LE(r.history().entries_size(), 2);
    for (const auto& e : r.history().entries())
      paged.push_back(e.sequence());
    token = r.history().next_page_token();
    ASSERT_LT(++pages, 100);
  } while (!token.empty());
  std::vector<uint64_t> whole;
  for (const auto& e : all.history().entries())
    whole.push_back(e.sequence());
  EXPECT_EQ(paged, whole);
  EXPECT_EQ(pages, static_cast<int>((whole.size() + 1) / 2));
  // A device's history pages the same way.
  auto first = device_history("b", 2);
  ASSERT_EQ(first.status(), v1::STATUS_CODE_OK) << first.message();
  EXPECT_EQ(kinds_of(first.history()),
            (std::vector<std::string>{"DeviceRegistered", "DevicesEnrolled"}));
  ASSERT_FALSE(first.history().next_page_token().empty());
  auto second = device_history("b", 2, first.history().next_page_token());
  ASSERT_EQ(second.status(), v1::STATUS_CODE_OK) << second.message();
  EXPECT_EQ(kinds_of(second.history()),
            (std::vector<std::string>{"ExecutionNotified", "ExecutionFailed"}));
}

TEST_F(History, AtShowsTheStateThenByApplyingTheLogUpToThatTime) {
  create_firmware_verified("2.0.0");
  auto before_all = now_ms() - 1;
  register_online("a", "1.0.0");
  register_online("b", "1.0.0");
  advance(1s);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto while_pushed = now_ms();
  advance(1s);
  ASSERT_EQ(report_progress("a", execution_id(id, 1), 30).status(),
            v1::STATUS_CODE_OK);
  ASSERT_EQ(report_version("a", "2.0.0").status(), v1::STATUS_CODE_OK);
  auto after_success = now_ms();
  advance(1s);
  ASSERT_EQ(cancel(id).status(), v1::STATUS_CODE_OK);
  // The device, while its push was out: old version, held by execution 1.
  auto r = device_history("a", 0, {}, while_pushed);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_TRUE(r.history().existed());
  EXPECT_EQ(r.history().at_ms(), while_pushed);
  EXPECT_EQ(r.history().device().version(), "1.0.0");
  EXPECT_EQ(r.history().device().active_execution_id(), execution_id(id, 1));
  EXPECT_EQ(kinds_of(r.history()),
            (std::vector<std::string>{"DeviceRegistered", "DevicesEnrolled",
                                      "ExecutionNotified"}));
  // After the success: the new version, free.
  r = device_history("a", 0, {}, after_success);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.history().device().version(), "2.0.0");
  EXPECT_EQ(r.history().device().active_execution_id(), 0u);
  // Before it was registered, it did not exist.
  r = device_history("a", 0, {}, before_all);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_FALSE(r.history().existed());
  EXPECT_EQ(r.history().entries_size(), 0);
  // The task: running with one success and one push out, then canceled.
  r = task_history(id, 0, {}, after_success);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  ASSERT_TRUE(r.history().existed());
  EXPECT_EQ(r.history().task().status(), v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(r.history().task().counters().succeeded(), 1u);
  EXPECT_EQ(r.history().task().counters().notified(), 1u);
  r = task_history(id, 0, {}, now_ms());
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.history().task().status(), v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(r.history().task().counters().canceled(), 1u);
  r = task_history(id, 0, {}, before_all);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_FALSE(r.history().existed());
  // Without a moment there is no state.
  r = task_history(id);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_FALSE(r.history().existed());
  EXPECT_FALSE(r.history().has_task());
}

TEST_F(History, HistoriesSurviveARestart) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  auto before = device_history("a");
  ASSERT_EQ(before.status(), v1::STATUS_CODE_OK) << before.message();
  stop_node();
  start_node();
  auto after = device_history("a");
  ASSERT_EQ(after.status(), v1::STATUS_CODE_OK) << after.message();
  EXPECT_EQ(kinds_of(after.history()), kinds_of(before.history()));
  auto t = task_history(id);
  ASSERT_EQ(t.status(), v1::STATUS_CODE_OK) << t.message();
  EXPECT_EQ(kinds_of(t.history()).front(), "TaskCreated");
}

TEST_F(History, AnUnknownDeviceOrTaskIsNotFoundByName) {
  auto r = device_history("ghost");
  EXPECT_EQ(r.status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_NE(r.message().find("ghost"), std::string::npos) << r.message();
  r = task_history(77);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_EQ(r.message(), "task 77 does not exist");
}

TEST_F(History, BadArgumentsAreNamed) {
  register_online("a", "1.0.0");
  auto r = device_history("a", 0, "x1");
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("page_token"), std::string::npos) << r.message();
  r = device_history("a", 1001);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("page_size"), std::string::npos) << r.message();
  r = device_history("a", 0, {}, -5);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("at_ms"), std::string::npos) << r.message();
}

TEST_F(History, OnlyTheOperatorRoleMayReadHistories) {
  register_online("a", "1.0.0");
  v1::GetDeviceHistory req;
  req.set_product_key(test::product);
  req.set_device_key("a");
  auto r = route(v1::ROLE_GATEWAY, frame_of(req));
  EXPECT_EQ(r.status(), v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_NE(r.message().find("get_device_history"), std::string::npos)
      << r.message();
  v1::GetTaskHistory task;
  task.set_task_id(1);
  r = route(v1::ROLE_GATEWAY, frame_of(task));
  EXPECT_EQ(r.status(), v1::STATUS_CODE_PERMISSION_DENIED);
  r = route(v1::ROLE_OPERATOR, frame_of(req));
  EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
}

} // namespace
