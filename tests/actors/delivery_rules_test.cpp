/// The rules of delivery, tested on a whole node on CAF's deterministic test
/// coordinator: a push is sent again only within the rules of a first push
/// (task RUNNING, cloud push, window open, rate and credit), pushes are
/// acknowledged and sent again when they are not, reports are idempotent, an
/// increment task does not lose a device that was busy when it qualified, a
/// device-request task holds no device until the device asks, and the
/// ramp-up resumes after a restart at the rate it had reached.
#include "tests/actors/rollout_fixture.hpp"

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

class ResendRules : public fota::test::rollout_fixture {};
class PushAcks : public fota::test::rollout_fixture {};
class Reports : public fota::test::rollout_fixture {};
class IncrementJoins : public fota::test::rollout_fixture {};
class DeviceRequestHolds : public fota::test::rollout_fixture {};
class RampUpRestart : public fota::test::rollout_fixture {};

/// A node that pushes at most once a second.
class RateLimitedResends : public fota::test::rollout_fixture {
protected:
  RateLimitedResends() { limits.max_pushes_per_minute = 60; }
};

/// The upgrade pushes `s` received, for `key`.
std::vector<v1::UpgradePush> pushes_for(const fota::test::session& s,
                                        const std::string& key) {
  std::vector<v1::UpgradePush> out;
  for (const auto& u : s.pushes->upgrades())
    if (u.device_key() == key)
      out.push_back(u);
  return out;
}

// -- sending again ------------------------------------------------------------

TEST_F(ResendRules, NotifiedDeviceComingBackOnlineIsPushedAgain) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_EQ(pushes_for(gateway, "a").size(), 1u);
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  auto later = new_session();
  ASSERT_EQ(online("a", later).status(), v1::STATUS_CODE_OK);
  auto again = pushes_for(later, "a");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].execution_id(), execution_id(id, 1));
  EXPECT_EQ(again[0].attempt(), 1u);
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_NOTIFIED);
}

TEST_F(ResendRules, NoResendWhileTheTaskIsPaused) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(pause(id).status(), v1::STATUS_CODE_OK);
  auto later = new_session();
  ASSERT_EQ(online("a", later).status(), v1::STATUS_CODE_OK);
  run_for(10min);
  EXPECT_TRUE(pushes_for(later, "a").empty());
  ASSERT_EQ(resume(id).status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(pushes_for(later, "a").size(), 1u);
}

TEST_F(ResendRules, NoResendOutsideTheScheduleWindow) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  // 08:00-09:00 UTC; the test starts at 08:00.
  auto* w = spec.mutable_schedule()->add_windows();
  w->set_start_minute(8 * 60);
  w->set_end_minute(9 * 60);
  spec.set_timeout_seconds(48 * 3600); // no timeout before the next window
  auto id = create_task_id(spec);
  ASSERT_EQ(pushes_for(gateway, "a").size(), 1u);
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  run_until(wall_clock_base_ms + hour_ms + 5 * minute_ms); // 09:05
  auto later = new_session();
  ASSERT_EQ(online("a", later).status(), v1::STATUS_CODE_OK);
  run_until(wall_clock_base_ms + 24 * hour_ms - 1); // 07:59 the next day
  EXPECT_TRUE(pushes_for(later, "a").empty())
      << "a push was sent again outside the window";
  run_until(wall_clock_base_ms + 24 * hour_ms); // 08:00
  ASSERT_EQ(pushes_for(later, "a").size(), 1u);
  EXPECT_EQ(pushes_for(later, "a")[0].execution_id(), execution_id(id, 1));
}

TEST_F(ResendRules, DeviceRequestOfferIsNeverPushed) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  auto id = create_task_id(spec);
  auto offer = request_upgrade("a");
  ASSERT_TRUE(offer.offer().available()) << offer.offer().reason();
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  auto later = new_session();
  ASSERT_EQ(online("a", later).status(), v1::STATUS_CODE_OK);
  run_for(10min);
  EXPECT_TRUE(later.pushes->upgrades().empty());
  EXPECT_TRUE(gateway.pushes->upgrades().empty());
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_NOTIFIED);
  // It asks again and gets the same offer.
  auto again = request_upgrade("a");
  ASSERT_TRUE(again.offer().available());
  EXPECT_EQ(again.offer().execution_id(), offer.offer().execution_id());
}

TEST_F(RateLimitedResends, ResendTakesCreditLikeAFirstPush) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  register_online("b", "1.0");
  register_online("c", "1.0");
  auto t0 = now_ms();
  ASSERT_NE(create_task_id(snapshot_spec("1.0", "2.0")), 0u);
  // One push a second: a at once, b a second later.
  run_until(t0 + 1500);
  ASSERT_EQ(pushed_keys(), (keys{"a", "b"}));
  // a comes back and needs its push again: it waits for a token like c.
  ASSERT_EQ(offline("a").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(online("a").status(), v1::STATUS_CODE_OK);
  run_until(t0 + 5000);
  auto pushed = timed_upgrades();
  ASSERT_EQ(pushed.size(), 4u);
  for (size_t i = 1; i < pushed.size(); ++i)
    EXPECT_GE(pushed[i].at_ms - pushed[i - 1].at_ms, 1000)
        << pushed[i].push.device_key() << " at " << pushed[i].at_ms - t0;
}

// -- acknowledgements ---------------------------------------------------------

TEST_F(PushAcks, UnacknowledgedPushIsSentAgainAfterTheAckTimeout) {
  create_firmware_verified("2.0");
  ASSERT_EQ(register_device("a", "1.0").status(), v1::STATUS_CODE_OK);
  auto silent = new_session(false); // never acknowledges
  ASSERT_EQ(online("a", silent).status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_EQ(pushes_for(silent, "a").size(), 1u);
  run_for(29s);
  EXPECT_EQ(pushes_for(silent, "a").size(), 1u);
  run_for(1s);
  auto pushes = pushes_for(silent, "a");
  ASSERT_EQ(pushes.size(), 2u);
  EXPECT_EQ(pushes[1].execution_id(), execution_id(id, 1));
  EXPECT_EQ(pushes[1].attempt(), 1u);
  // Still not acknowledged: again after another 30 s. A lost push does not
  // wait for the 2 h timeout.
  run_for(30s);
  EXPECT_EQ(pushes_for(silent, "a").size(), 3u);
  // Acknowledged at last: no more.
  ASSERT_EQ(ack("a", execution_id(id, 1)).status(), v1::STATUS_CODE_OK);
  run_for(10min);
  EXPECT_EQ(pushes_for(silent, "a").size(), 3u);
  EXPECT_EQ(execution_of(id, "a").state(), v1::EXECUTION_STATE_NOTIFIED);
}

TEST_F(PushAcks, AcknowledgedPushIsNotSentAgain) {
  create_firmware_verified("2.0");
  register_online("a", "1.0"); // the default gateway acknowledges
  ASSERT_NE(create_task_id(snapshot_spec("1.0", "2.0")), 0u);
  run_for(hour_ms * 1ms);
  EXPECT_EQ(pushes_for(gateway, "a").size(), 1u);
}

TEST_F(PushAcks, ProgressAnswersAPushAsWell) {
  create_firmware_verified("2.0");
  ASSERT_EQ(register_device("a", "1.0").status(), v1::STATUS_CODE_OK);
  auto silent = new_session(false);
  ASSERT_EQ(online("a", silent).status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  ASSERT_EQ(report_progress("a", execution_id(id, 1), 10).status(),
            v1::STATUS_CODE_OK);
  run_for(10min);
  EXPECT_EQ(pushes_for(silent, "a").size(), 1u);
}

TEST_F(PushAcks, DuplicateAcknowledgementsAreIdempotent) {
  create_firmware_verified("2.0");
  ASSERT_EQ(register_device("a", "1.0").status(), v1::STATUS_CODE_OK);
  auto silent = new_session(false);
  ASSERT_EQ(online("a", silent).status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(ack("a", execution_id(id, 1)).status(), v1::STATUS_CODE_OK);
  // An acknowledgement of another attempt changes nothing.
  EXPECT_EQ(ack("a", execution_id(id, 1), 7).status(), v1::STATUS_CODE_OK);
  // Of an execution that does not hold the device: refused, naming it.
  auto wrong = ack("a", execution_id(id, 9));
  EXPECT_EQ(wrong.status(), v1::STATUS_CODE_FAILED_PRECONDITION);
  EXPECT_NE(wrong.message().find("is not active on device a"),
            std::string::npos)
      << wrong.message();
  run_for(10min);
  EXPECT_EQ(pushes_for(silent, "a").size(), 1u);
}

// -- reports ------------------------------------------------------------------

TEST_F(Reports, DuplicateReportsAreIdempotent) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  register_online("b", "1.0");
  auto id = create_task_id(snapshot_spec("1.0", "2.0"));
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(report_progress("a", execution_id(id, 1), 50).status(),
              v1::STATUS_CODE_OK);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(report_version("a", "2.0").status(), v1::STATUS_CODE_OK);
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(
        report_failure("b", execution_id(id, 2), "E_FLASH", "bad").status(),
        v1::STATUS_CODE_OK);
  auto c = task_summary(id).counters();
  EXPECT_EQ(c.succeeded(), 1u);
  EXPECT_EQ(c.failed(), 1u);
  EXPECT_EQ(task_summary(id).status(), v1::TASK_STATUS_COMPLETED);
}

// -- increment tasks and busy devices -----------------------------------------

TEST_F(IncrementJoins, BusyDeviceJoinsOnceItsExecutionEnds) {
  create_firmware_verified("1.5");
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  // a is busy in A when B, an increment task over 1.0, starts.
  auto a_task = create_task_id(snapshot_spec("1.0", "1.5"));
  auto inc = snapshot_spec("1.0", "2.0");
  inc.set_strategy(v1::STRATEGY_INCREMENT);
  auto b_task = create_task_id(inc);
  EXPECT_TRUE(enrolled(b_task).empty());
  EXPECT_TRUE(skipped(b_task).empty()) << "B gave up on a busy device";
  // A's upgrade fails: a stays on 1.0, is free, and joins B.
  ASSERT_EQ(report_failure("a", execution_id(a_task, 1), "E", "no").status(),
            v1::STATUS_CODE_OK);
  EXPECT_EQ(enrolled(b_task), (keys{"a"}));
  EXPECT_EQ(execution_of(b_task, "a").state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(get_device("a").active_execution_id(), execution_id(b_task, 1));
}

TEST_F(IncrementJoins, ChainedTasksTakeADeviceFromOneToTwo) {
  create_firmware_verified("1.1");
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  auto first = create_task_id(snapshot_spec("1.0", "1.1"));
  auto next = snapshot_spec("1.1", "2.0");
  next.set_strategy(v1::STRATEGY_INCREMENT);
  auto second = create_task_id(next);
  upgrade("a", execution_id(first, 1), "1.1");
  EXPECT_EQ(task_summary(first).counters().succeeded(), 1u);
  // Free and on 1.1, a joins the second task and is pushed 2.0.
  ASSERT_EQ(enrolled(second), (keys{"a"}));
  upgrade("a", execution_id(second, 1), "2.0");
  EXPECT_EQ(task_summary(second).counters().succeeded(), 1u);
  EXPECT_EQ(get_device("a").version(), "2.0");
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
}

// -- device requests ----------------------------------------------------------

TEST_F(DeviceRequestHolds, TaskHoldsNoDeviceUntilTheDeviceAsks) {
  create_firmware_verified("2.0");
  create_firmware_verified("3.0");
  register_online("a", "1.0");
  auto dr = snapshot_spec("1.0", "2.0");
  dr.set_method(v1::METHOD_DEVICE_REQUEST);
  auto dr_task = create_task_id(dr);
  EXPECT_EQ(enrolled(dr_task), (keys{"a"}));
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
  // A cloud-push task may take a, which never asked.
  auto cloud = create_task_id(snapshot_spec("1.0", "3.0"));
  EXPECT_EQ(enrolled(cloud), (keys{"a"}));
  // Now a asks: it is busy in the cloud-push task.
  auto r = request_upgrade("a");
  EXPECT_FALSE(r.offer().available());
  EXPECT_NE(r.offer().reason().find("busy"), std::string::npos)
      << r.offer().reason();
  EXPECT_EQ(execution_of(dr_task, "a").state(), v1::EXECUTION_STATE_QUEUED);
}

TEST_F(DeviceRequestHolds, OfferHoldsTheDevice) {
  create_firmware_verified("2.0");
  create_firmware_verified("3.0");
  register_online("a", "1.0");
  auto dr = snapshot_spec("1.0", "2.0");
  dr.set_method(v1::METHOD_DEVICE_REQUEST);
  auto dr_task = create_task_id(dr);
  auto r = request_upgrade("a");
  ASSERT_TRUE(r.offer().available());
  EXPECT_EQ(get_device("a").active_execution_id(), execution_id(dr_task, 1));
  auto cloud = create_task_id(snapshot_spec("1.0", "3.0"));
  EXPECT_TRUE(enrolled(cloud).empty());
  ASSERT_EQ(skipped(cloud).size(), 1u);
}

// -- ramp-up
// --------------------------------------------------------------------

TEST_F(RampUpRestart, RampUpResumesAfterARestartAtTheRateReached) {
  create_firmware_verified("2.0");
  register_online_many("d", 10, "1.0");
  auto spec = snapshot_spec("1.0", "2.0");
  auto* ramp = spec.mutable_rate()->mutable_ramp_up();
  ramp->set_base_per_minute(1);
  ramp->set_factor(4.0);
  ramp->set_successes_per_step(2);
  auto t0 = now_ms();
  ASSERT_NE(create_task_id(spec), 0u);
  size_t answered = 0;
  auto answer = [&] {
    auto ups = upgrades();
    for (; answered < ups.size() && answered < 4; ++answered)
      upgrade(ups[answered].device_key(), ups[answered].execution_id(), "2.0");
  };
  answer();
  // 1/min until the 2nd success, then 4/min until the 4th, then 16/min.
  run_until(t0 + 2 * minute_ms, answer);
  ASSERT_GE(answered, 4u);
  auto before = upgrades().size();
  stop_node();
  start_node();
  for (int i = 1; i <= 10; ++i)
    ASSERT_EQ(online("d-" + std::to_string(i)).status(), v1::STATUS_CODE_OK);
  auto restart = now_ms();
  run_until(restart + minute_ms);
  std::vector<int64_t> at;
  auto timed = timed_upgrades();
  for (size_t i = before; i < timed.size(); ++i)
    if (timed[i].at_ms >= restart)
      at.push_back(timed[i].at_ms);
  // At 16/min, one push every 3.75 s; at the base rate it would be one a
  // minute.
  ASSERT_GE(at.size(), 4u);
  for (size_t i = 2; i < at.size(); ++i)
    EXPECT_LE(at[i] - at[i - 1], 3750) << "push " << i;
}

} // namespace
