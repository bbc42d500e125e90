/// Tests of the verification outcome: a run ends at its first failure,
/// timeout or skipped device, VERIFIED needs every named device to succeed,
/// and a device that never comes online fails at the timeout measured from
/// the run's start.
#include "events/task.hpp"
#include "tests/events/test_support.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::events_of;
using test::seq;
using test::step;

constexpr int64_t minute = 60'000;

/// A verification run of VERIFYING firmware p1/3.0 naming d1 … d<n>, with
/// the first `enrolled` of them in scope (all by default).
task_state verification_run(size_t n, uint32_t timeout_seconds = 600,
                            size_t enrolled = SIZE_MAX) {
  auto catalog = test::make_catalog();
  catalog.entries[{"p1", "3.0"}].status = v1::FIRMWARE_STATUS_VERIFYING;
  auto spec = test::make_spec();
  spec.set_target_version("3.0");
  spec.clear_source_versions();
  spec.set_verification(true);
  spec.set_timeout_seconds(timeout_seconds);
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  for (const auto& k : test::device_keys(n))
    spec.mutable_scope()->mutable_device_keys()->add_device_keys(k);
  task_state t;
  test::apply_all(t, events_of(test::create_in(catalog, 9, spec, at())));
  test::apply_all(
      t, decide_enroll(t, test::device_keys(std::min(n, enrolled)), {}, at(1)));
  return t;
}

void succeed(task_state& t, uint64_t s, int64_t ms) {
  step(t, decide_notified(t, seq(s), at(ms)));
  step(t, decide_progress(t, seq(s), 50, "", at(ms + 1)));
  step(t, decide_version(t, seq(s), "3.0", at(ms + 2)));
}

TEST(VerificationOutcome, VerifiedWhenEveryNamedDeviceSucceeds) {
  auto t = verification_run(2);
  EXPECT_EQ(verification_outcome(t), std::nullopt);
  succeed(t, 1, 10);
  EXPECT_EQ(verification_outcome(t), std::nullopt);
  EXPECT_TRUE(decide_verification_failure(t, at(20)).empty());
  succeed(t, 2, 20);
  ASSERT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  auto outcome = verification_outcome(t);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->verified);
}

TEST(VerificationOutcome, RunEndsAtTheFirstFailureNamingTheDevice) {
  auto t = verification_run(3);
  step(t, decide_notified(t, seq(2), at(10)));
  step(t, decide_failure(t, seq(2), "E_SIG", "bad signature", at(11)));
  auto cancel = decide_verification_failure(t, at(12));
  ASSERT_FALSE(cancel.empty());
  test::apply_all(t, cancel);
  EXPECT_EQ(t.status, v1::TASK_STATUS_CANCELED);
  auto outcome = verification_outcome(t);
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->verified);
  EXPECT_EQ(outcome->reason, "device d2 failed: E_SIG bad signature");
}

TEST(VerificationOutcome, SkippedDeviceFailsTheRun) {
  auto catalog = test::make_catalog();
  auto t = verification_run(1);
  test::apply_all(
      t, decide_enroll(t, {}, {{"d9", "busy in execution 1/4"}}, at(2)));
  auto cancel = decide_verification_failure(t, at(3));
  test::apply_all(t, cancel);
  auto outcome = verification_outcome(t);
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->verified);
  EXPECT_EQ(outcome->reason, "device d9 skipped: busy in execution 1/4");
}

TEST(VerificationOutcome,
     OfflineVerificationDeviceFailsAtTheTimeoutFromTheStart) {
  auto t = verification_run(2, 600);
  // d1 never comes online: its execution stays QUEUED, and its deadline
  // runs from the run's start, not from a push that never happens.
  const auto& x = t.executions[0];
  EXPECT_EQ(t.deadline_ms(x), test::t0_ms + 10 * minute);
  EXPECT_TRUE(decide_timeout(t, seq(1), at(10 * minute - 1)).empty());
  step(t, decide_timeout(t, seq(1), at(10 * minute)));
  EXPECT_EQ(t.executions[0].state, v1::EXECUTION_STATE_TIMED_OUT);
  test::apply_all(t, decide_verification_failure(t, at(10 * minute)));
  auto outcome = verification_outcome(t);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->reason, "device d1 timed out");
  // A queued execution of an ordinary task has no deadline.
  auto batch = test::running_task(test::make_spec(), 1);
  EXPECT_EQ(batch.deadline_ms(batch.executions[0]), 0);
}

TEST(VerificationOutcome, DeviceAlreadyOnTheTargetCannotVerifyIt) {
  // d2 already runs 3.0: it is not in the run's scope.
  auto t = verification_run(2, 600, 1);
  succeed(t, 1, 10);
  ASSERT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  auto outcome = verification_outcome(t);
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->verified);
  EXPECT_NE(outcome->reason.find("1 of 2 devices upgraded"), std::string::npos)
      << outcome->reason;
}

TEST(VerificationOutcome, OrdinaryTasksHaveNone) {
  auto t = test::running_task(test::make_spec(), 1);
  step(t, decide_cancel(t, "stop", at(5)));
  EXPECT_EQ(verification_outcome(t), std::nullopt);
  EXPECT_TRUE(decide_verification_failure(t, at(6)).empty());
}

} // namespace
