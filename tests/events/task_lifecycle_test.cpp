/// Tests of the time-driven and rule-driven task transitions of DESIGN.md §1:
/// per-device timeouts, retries of FAILED and TIMED_OUT executions (and how
/// an execution waiting for its retry keeps its device and keeps a snapshot
/// task running), the abort rule, the end time of INCREMENT tasks and the
/// confirmation of an offered upgrade.
#include "events/device.hpp"
#include "events/ids.hpp"
#include "events/replay.hpp"
#include "events/task.hpp"
#include "tests/events/test_support.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::cases_of;
using test::events_of;
using test::failure_of;
using test::make_spec;

using cases = std::vector<event::PayloadCase>;
using sequences = std::vector<uint64_t>;

constexpr uint64_t task_no = 7;

constexpr int64_t second = 1000;
constexpr int64_t minute = 60 * second;
constexpr int64_t hour = 60 * minute;

/// Decides creation of `spec` against the standard catalog.
expected<event_list> create(const v1::TaskSpec& spec) {
  auto catalog = test::make_catalog();
  return test::create_in(catalog, task_no, spec, at());
}

/// A task created from `spec` at t0 with devices d1 … d<n> enrolled at t0+1.
task_state running_task(const v1::TaskSpec& spec, size_t n) {
  task_state t;
  test::apply_all(t, events_of(create(spec)));
  test::apply_all(t, decide_enroll(t, test::device_keys(n), {}, at(1)));
  return t;
}

/// `spec` with `n` retries `interval_s` seconds apart.
v1::TaskSpec with_retries(v1::TaskSpec spec, uint32_t n, uint32_t interval_s) {
  spec.mutable_retry()->set_max_retries(n);
  spec.mutable_retry()->set_interval_seconds(interval_s);
  return spec;
}

/// `spec` with an abort rule.
v1::TaskSpec with_abort(v1::TaskSpec spec, double percent,
                        uint32_t min_finished, v1::AbortAction action) {
  spec.mutable_abort()->set_failure_percent(percent);
  spec.mutable_abort()->set_min_finished(min_finished);
  spec.mutable_abort()->set_action(action);
  return spec;
}

/// An INCREMENT spec that ends `end_ms` after t0.
v1::TaskSpec increment_until(int64_t end_ms) {
  auto spec = make_spec();
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  spec.set_end_time_ms(test::t0_ms + end_ms);
  return spec;
}

/// Applies the events of a decision that must succeed and returns them.
event_list step(task_state& t, expected<event_list> x) {
  auto xs = events_of(std::move(x));
  test::apply_all(t, xs);
  return xs;
}

/// Applies the events of a decision that cannot fail and returns them.
event_list step(task_state& t, event_list xs) {
  test::apply_all(t, xs);
  return xs;
}

/// Brings execution `seq` to IN_PROGRESS: notified at `ms`, progress at
/// `ms` + 1.
void start(task_state& t, uint64_t seq, int64_t ms = 10) {
  step(t, decide_notified(t, test::seq(seq), at(ms)));
  step(t, decide_progress(t, test::seq(seq), 0, "", at(ms + 1)));
}

/// Starts execution `seq` and has the device fail it at `ms`.
void fail(task_state& t, uint64_t seq, int64_t ms) {
  start(t, seq, ms - 2);
  step(t, decide_failure(t, test::seq(seq), "E_FLASH", "bad block", at(ms)));
}

/// Starts execution `seq` and has the device reach the target at `ms`.
void succeed(task_state& t, uint64_t seq, int64_t ms) {
  start(t, seq, ms - 2);
  step(t, decide_version(t, test::seq(seq), "2.0", at(ms)));
}

/// Notifies execution `seq` at `ms` and lets it time out.
void time_out(task_state& t, uint64_t seq, int64_t ms) {
  step(t, decide_notified(t, test::seq(seq), at(ms)));
  auto xs = step(
      t, decide_timeout(t, test::seq(seq),
                        from_millis(t.deadline_ms(*t.find(test::seq(seq))))));
  ASSERT_FALSE(xs.empty());
  ASSERT_EQ(xs[0].payload_case(), event::kExecutionTimedOut);
}

/// Requeues execution `seq` at its retry time and returns that time.
int64_t retry(task_state& t, uint64_t seq) {
  auto due = t.retry_at_ms(*t.find(test::seq(seq)));
  EXPECT_NE(due, 0) << "no retry for " << seq;
  auto xs = step(t, decide_retry(t, test::seq(seq), from_millis(due)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionRequeued});
  return due - test::t0_ms;
}

v1::ExecutionState state_of(const task_state& t, uint64_t seq) {
  const auto* x = t.find(test::seq(seq));
  return x == nullptr ? v1::EXECUTION_STATE_UNSPECIFIED : x->state;
}

/// The execution with sequence `seq`, which must exist.
const execution& ex(const task_state& t, uint64_t seq) {
  const auto* x = t.find(test::seq(seq));
  EXPECT_NE(x, nullptr) << "no execution " << seq;
  static const execution none;
  return x == nullptr ? none : *x;
}

sequences sequences_of(const event& e) {
  const auto& xs = e.executions_canceled().sequences();
  return sequences(xs.begin(), xs.end());
}

// -- timeouts ----------------------------------------------------------------

TEST(TaskLifecycle, PerDeviceTimeoutDefaultsToTwoHours) {
  auto spec = make_spec();
  ASSERT_EQ(spec.timeout_seconds(), 0u);
  auto t = running_task(spec, 3);
  // TaskCreated stores the default, and a spec without one (an older log)
  // falls back to it as well.
  EXPECT_EQ(t.spec.timeout_seconds, 7200u);
  EXPECT_EQ(t.timeout_ms(), 2 * hour);
  auto bare = t;
  bare.spec.timeout_seconds = 0;
  EXPECT_EQ(bare.timeout_ms(), 2 * hour);

  // Silent since its notification: due exactly two hours later.
  step(t, decide_notified(t, test::seq(1), at(10)));
  EXPECT_EQ(t.deadline_ms(ex(t, 1)), test::t0_ms + 10 + 2 * hour);
  EXPECT_EQ(bare.deadline_ms(ex(t, 1)), test::t0_ms + 10 + 2 * hour);
  EXPECT_TRUE(decide_timeout(t, test::seq(1), at(10 + 2 * hour - 1)).empty());
  auto xs = decide_timeout(t, test::seq(1), at(10 + 2 * hour));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionTimedOut});
  EXPECT_EQ(xs[0].execution_timed_out().task_id(), task_no);
  EXPECT_EQ(xs[0].execution_timed_out().sequence(), 1u);
  EXPECT_EQ(xs[0].stream(), "task/7");
  step(t, xs);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_EQ(ex(t, 1).finished_at_ms, test::t0_ms + 10 + 2 * hour);

  // Progress pushes the deadline: it runs from the last sign of life.
  step(t, decide_notified(t, test::seq(2), at(10)));
  step(t, decide_progress(t, test::seq(2), 10, "downloading", at(10 + hour)));
  EXPECT_EQ(t.deadline_ms(ex(t, 2)), test::t0_ms + 10 + 3 * hour);
  EXPECT_TRUE(decide_timeout(t, test::seq(2), at(10 + 2 * hour)).empty());
  step(t, decide_progress(t, test::seq(2), 50, "flashing", at(10 + 2 * hour)));
  EXPECT_EQ(t.deadline_ms(ex(t, 2)), test::t0_ms + 10 + 4 * hour);
  EXPECT_TRUE(decide_timeout(t, test::seq(2), at(10 + 4 * hour - 1)).empty());
  EXPECT_EQ(cases_of(decide_timeout(t, test::seq(2), at(10 + 4 * hour))),
            cases{event::kExecutionTimedOut});
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_IN_PROGRESS);

  // A spec's own timeout replaces the default.
  auto five = make_spec();
  five.set_timeout_seconds(300);
  auto u = running_task(five, 1);
  step(u, decide_notified(u, test::seq(1), at(10)));
  EXPECT_EQ(u.deadline_ms(ex(u, 1)), test::t0_ms + 10 + 5 * minute);
  EXPECT_TRUE(decide_timeout(u, test::seq(1), at(10 + 5 * minute - 1)).empty());
  EXPECT_FALSE(decide_timeout(u, test::seq(1), at(10 + 5 * minute)).empty());
}

TEST(TaskLifecycle, SilentExecutionBecomesTimedOut) {
  auto spec = make_spec();
  spec.set_timeout_seconds(300);
  auto t = running_task(spec, 6);
  step(t, decide_notified(t, test::seq(1), at(10))); // 1 NOTIFIED
  start(t, 2, 10);                                   // 2 IN_PROGRESS
  succeed(t, 4, 20);                                 // 4 SUCCEEDED
  fail(t, 5, 20);                                    // 5 FAILED
  time_out(t, 6, 10);                                // 6 TIMED_OUT
  ASSERT_EQ(state_of(t, 3), v1::EXECUTION_STATE_QUEUED);
  auto late = at(48 * hour);
  // NOTIFIED and IN_PROGRESS executions time out.
  for (uint64_t s : {1u, 2u}) {
    SCOPED_TRACE(s);
    EXPECT_NE(t.deadline_ms(ex(t, s)), 0);
    auto xs = decide_timeout(t, test::seq(s), late);
    ASSERT_EQ(cases_of(xs), cases{event::kExecutionTimedOut});
    EXPECT_EQ(xs[0].execution_timed_out().sequence(), s);
  }
  // QUEUED and terminal executions never do, however late.
  for (uint64_t s : {3u, 4u, 5u, 6u}) {
    SCOPED_TRACE(s);
    EXPECT_EQ(t.deadline_ms(ex(t, s)), 0);
    EXPECT_TRUE(decide_timeout(t, test::seq(s), late).empty());
  }
  EXPECT_TRUE(decide_timeout(t, test::seq(0), late).empty());
  EXPECT_TRUE(decide_timeout(t, test::seq(7), late).empty());
  step(t, decide_timeout(t, test::seq(1), late));
  step(t, decide_timeout(t, test::seq(2), late));
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_EQ(t.counters().timed_out, 3u);
  EXPECT_EQ(t.active(), 1u);
  // Once timed out, it is not timed out again.
  EXPECT_TRUE(decide_timeout(t, test::seq(1), at(96 * hour)).empty());

  // An execution still NOTIFIED when its INCREMENT task ended keeps its
  // device, and still times out, so that no device is held for good.
  auto u = running_task(increment_until(hour), 1);
  step(u, decide_notified(u, test::seq(1), at(10)));
  step(u, decide_end(u, at(hour)));
  ASSERT_EQ(u.status, v1::TASK_STATUS_COMPLETED);
  ASSERT_EQ(state_of(u, 1), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_TRUE(u.holds_device(ex(u, 1)));
  step(u, decide_timeout(u, test::seq(1), late));
  EXPECT_EQ(state_of(u, 1), v1::EXECUTION_STATE_TIMED_OUT);
  EXPECT_FALSE(u.holds_device(ex(u, 1)));
}

// -- retries -----------------------------------------------------------------

TEST(TaskLifecycle, RetriesRequeueFailedAndTimedOutAfterInterval) {
  auto t = running_task(with_retries(make_spec(), 2, 60), 2);
  // Attempt 1 fails at T.
  const int64_t T = 100;
  fail(t, 1, T);
  ASSERT_EQ(state_of(t, 1), v1::EXECUTION_STATE_FAILED);
  EXPECT_TRUE(t.will_retry(ex(t, 1)));
  EXPECT_EQ(t.retries_pending, 1u);
  EXPECT_EQ(t.retry_at_ms(ex(t, 1)), test::t0_ms + T + 60 * second);
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(T + 59 * second)).empty());
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(T + 60 * second - 1)).empty());
  auto xs = decide_retry(t, test::seq(1), at(T + 60 * second));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionRequeued});
  EXPECT_EQ(xs[0].execution_requeued().task_id(), task_no);
  EXPECT_EQ(xs[0].execution_requeued().sequence(), 1u);
  EXPECT_EQ(xs[0].execution_requeued().attempt(), 2u);
  step(t, xs);
  // Requeued: attempt 2 starts over, the failure of attempt 1 is gone.
  auto x = test::execution_proto(t, 1);
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(x.attempt(), 2u);
  EXPECT_EQ(x.queued_at_ms(), test::t0_ms + T + 60 * second);
  EXPECT_EQ(x.finished_at_ms(), 0);
  EXPECT_TRUE(x.failure_code().empty());
  EXPECT_TRUE(x.failure_text().empty());
  EXPECT_EQ(t.retries_pending, 0u);
  EXPECT_FALSE(t.will_retry(ex(t, 1)));
  EXPECT_EQ(t.retry_at_ms(ex(t, 1)), 0);
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(T + 10 * minute)).empty());

  // Attempt 2 is pushed as attempt 2 and times out: TIMED_OUT retries too.
  xs = step(t, decide_notified(t, test::seq(1), at(2 * minute)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionNotified});
  EXPECT_EQ(xs[0].execution_notified().attempt(), 2u);
  xs = step(t, decide_timeout(t, test::seq(1), at(2 * minute + 2 * hour)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionTimedOut});
  EXPECT_TRUE(t.will_retry(ex(t, 1)));
  EXPECT_EQ(t.retries_pending, 1u);
  const int64_t U = 2 * minute + 2 * hour;
  EXPECT_EQ(t.retry_at_ms(ex(t, 1)), test::t0_ms + U + 60 * second);
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(U + 59 * second)).empty());
  xs = step(t, decide_retry(t, test::seq(1), at(U + 60 * second)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionRequeued});
  EXPECT_EQ(xs[0].execution_requeued().attempt(), 3u);
  EXPECT_EQ(ex(t, 1).attempt, 3u);

  // Attempt 3 > 2 retries: its failure is final.
  fail(t, 1, U + 2 * minute);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_FAILED);
  EXPECT_FALSE(t.will_retry(ex(t, 1)));
  EXPECT_EQ(t.retry_at_ms(ex(t, 1)), 0);
  EXPECT_EQ(t.retries_pending, 0u);
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(U + 48 * hour)).empty());
  EXPECT_EQ(test::execution_proto(t, 1).failure_code(), "E_FLASH");
  EXPECT_EQ(test::execution_proto(t, 1).attempt(), 3u);
}

TEST(TaskLifecycle, WithoutRetriesFailureIsFinal) {
  auto t = running_task(make_spec(), 3);
  fail(t, 1, 100);
  time_out(t, 2, 10);
  for (uint64_t s : {1u, 2u}) {
    SCOPED_TRACE(s);
    EXPECT_FALSE(t.will_retry(ex(t, s)));
    EXPECT_EQ(t.retry_at_ms(ex(t, s)), 0);
    EXPECT_TRUE(decide_retry(t, test::seq(s), at(48 * hour)).empty());
  }
  EXPECT_EQ(t.retries_pending, 0u);
}

TEST(TaskLifecycle, OnlyFailedAndTimedOutExecutionsAreRetried) {
  auto t = running_task(with_retries(make_spec(), 3, 1), 4);
  succeed(t, 1, 20);                                 // SUCCEEDED
  step(t, decide_notified(t, test::seq(2), at(10))); // NOTIFIED
  start(t, 3, 10);                                   // IN_PROGRESS
  // 4 QUEUED
  for (uint64_t s : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(s);
    EXPECT_FALSE(t.will_retry(ex(t, s)));
    EXPECT_EQ(t.retry_at_ms(ex(t, s)), 0);
    EXPECT_TRUE(decide_retry(t, test::seq(s), at(48 * hour)).empty());
  }
  EXPECT_TRUE(decide_retry(t, test::seq(0), at(48 * hour)).empty());
  EXPECT_TRUE(decide_retry(t, test::seq(5), at(48 * hour)).empty());
}

TEST(TaskLifecycle, RetriesPendingCountsExecutionsWaitingForRetry) {
  auto t = running_task(with_retries(make_spec(), 1, 60), 4);
  EXPECT_EQ(t.retries_pending, 0u);
  time_out(t, 2, 10); // at 2 h + 10 ms
  EXPECT_EQ(t.retries_pending, 1u);
  fail(t, 1, 3 * hour);
  EXPECT_EQ(t.retries_pending, 2u);
  retry(t, 1);
  EXPECT_EQ(t.retries_pending, 1u);
  // Attempt 2 of 1 + 1 retry is final: not pending.
  fail(t, 1, 4 * hour);
  EXPECT_EQ(t.retries_pending, 1u);
  EXPECT_FALSE(t.will_retry(ex(t, 1)));
  // Counters still show both as FAILED / TIMED_OUT.
  EXPECT_EQ(t.counters().failed, 1u);
  EXPECT_EQ(t.counters().timed_out, 1u);
  // Pausing changes nothing; canceling the task ends every wait.
  step(t, decide_pause(t, "look", at(5 * hour)));
  EXPECT_EQ(t.retries_pending, 1u);
  step(t, decide_cancel(t, "stop", at(6 * hour)));
  EXPECT_EQ(t.retries_pending, 0u);
  EXPECT_FALSE(t.will_retry(ex(t, 2)));
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_TIMED_OUT);
}

TEST(TaskLifecycle, NoRetryWhilePaused) {
  auto t = running_task(with_retries(make_spec(), 1, 60), 2);
  fail(t, 1, 100);
  auto due = 100 + 60 * second;
  step(t, decide_pause(t, "maintenance", at(200)));
  // Still waiting for its retry, but none is made while paused.
  EXPECT_TRUE(t.will_retry(ex(t, 1)));
  EXPECT_EQ(t.retry_at_ms(ex(t, 1)), test::t0_ms + due);
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(due)).empty());
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(due + hour)).empty());
  // Resumed, the overdue retry is made.
  step(t, decide_resume(t, at(due + hour)));
  auto xs = step(t, decide_retry(t, test::seq(1), at(due + hour)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionRequeued});
  EXPECT_EQ(xs[0].execution_requeued().attempt(), 2u);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_QUEUED);

  // A canceled task makes none either.
  auto u = running_task(with_retries(make_spec(), 1, 60), 2);
  fail(u, 1, 100);
  step(u, decide_cancel(u, "stop", at(200)));
  EXPECT_FALSE(u.will_retry(ex(u, 1)));
  EXPECT_EQ(u.retry_at_ms(ex(u, 1)), 0);
  EXPECT_TRUE(decide_retry(u, test::seq(1), at(due + hour)).empty());
}

// -- holding devices ---------------------------------------------------------

/// A world with firmware p1/2.0 VERIFIED and devices p1/d1 … p1/d<n> on 1.0,
/// to which events are applied as replay applies them.
struct replayed {
  world w;

  explicit replayed(size_t n) {
    w.firmware = test::make_catalog();
    for (const auto& key : test::device_keys(n)) {
      v1::RegisterDevice cmd;
      cmd.set_product_key("p1");
      cmd.set_device_key(key);
      cmd.set_version("1.0");
      record(decide(nullptr, test::cmd(cmd), at()));
    }
  }

  void record(event_list xs) {
    for (auto& e : xs) {
      e.set_sequence(w.last_sequence.value() + 1);
      if (auto err = apply(w, e))
        ADD_FAILURE() << err->message;
    }
  }

  void record(expected<event_list> xs) { record(events_of(std::move(xs))); }

  task_state& task() { return w.tasks.at(task_no); }

  uint64_t active_of(const std::string& key) {
    auto* d = w.find_device("p1", key);
    EXPECT_NE(d, nullptr) << key;
    return d == nullptr ? 0 : d->active_execution.value();
  }
};

uint64_t execution_of(uint64_t sequence) {
  return execution_id{task_id{task_no}, execution_seq{sequence}}.value();
}

TEST(TaskLifecycle, ExecutionWaitingForRetryStillHoldsItsDevice) {
  auto spec = with_retries(make_spec(), 1, 60);
  auto t = running_task(spec, 5);
  fail(t, 1, 100);        // 1 FAILED, waiting for attempt 2
  succeed(t, 2, 100);     // 2 SUCCEEDED
  start(t, 3, 10);        // 3 IN_PROGRESS
  fail(t, 4, 100);        // 4 FAILED …
  retry(t, 4);            // … requeued …
  fail(t, 4, 5 * minute); // … and failed for good
  // 5 QUEUED
  EXPECT_TRUE(t.holds_device(ex(t, 1)));
  EXPECT_FALSE(t.holds_device(ex(t, 2)));
  EXPECT_TRUE(t.holds_device(ex(t, 3)));
  EXPECT_FALSE(t.holds_device(ex(t, 4)));
  EXPECT_TRUE(t.holds_device(ex(t, 5)));

  // Replay rebuilds the same, and gives the waiting execution its device.
  replayed r(5);
  auto catalog = test::make_catalog();
  r.record(test::create_in(catalog, task_no, spec, at()));
  r.record(decide_enroll(r.task(), test::device_keys(5), {}, at(1)));
  auto& rt = r.task();
  r.record(decide_notified(rt, test::seq(1), at(10)));
  r.record(decide_failure(rt, test::seq(1), "E_FLASH", "", at(100)));
  r.record(decide_notified(rt, test::seq(2), at(10)));
  r.record(decide_progress(rt, test::seq(2), 0, "", at(11)));
  r.record(decide_version(rt, test::seq(2), "2.0", at(100)));
  r.record(decide_notified(rt, test::seq(3), at(10)));
  ASSERT_EQ(state_of(rt, 1), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(rt.retries_pending, 1u);
  finish_replay(r.w);
  EXPECT_EQ(r.active_of("d1"), execution_of(1));
  EXPECT_EQ(r.active_of("d2"), 0u);
  EXPECT_EQ(r.active_of("d3"), execution_of(3));
  EXPECT_EQ(r.active_of("d4"), execution_of(4));
  EXPECT_EQ(r.active_of("d5"), execution_of(5));

  // Paused, it still holds it.
  r.record(decide_pause(rt, "look", at(200)));
  EXPECT_TRUE(rt.holds_device(ex(rt, 1)));
  finish_replay(r.w);
  EXPECT_EQ(r.active_of("d1"), execution_of(1));

  // Once the task is canceled, nothing holds a device any more.
  r.record(decide_cancel(rt, "stop", at(300)));
  EXPECT_FALSE(rt.holds_device(ex(rt, 1)));
  EXPECT_EQ(state_of(rt, 1), v1::EXECUTION_STATE_FAILED);
  finish_replay(r.w);
  for (const auto& key : test::device_keys(5))
    EXPECT_EQ(r.active_of(key), 0u) << key;
  step(t, decide_cancel(t, "stop", at(300)));
  for (uint64_t s = 1; s <= 5; ++s)
    EXPECT_FALSE(t.holds_device(ex(t, s))) << s;
}

// -- completion with retries -------------------------------------------------

TEST(TaskLifecycle, SnapshotTaskDoesNotCompleteWhileRetriesArePending) {
  auto t = running_task(with_retries(make_spec(), 1, 60), 3);
  // 1 fails, waiting for its retry.
  start(t, 1, 10);
  auto xs = step(t, decide_failure(t, test::seq(1), "E", "", at(100)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionFailed});
  // 2 times out, waiting for its retry.
  step(t, decide_notified(t, test::seq(2), at(10)));
  xs = step(t, decide_timeout(t, test::seq(2), at(10 + 2 * hour)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionTimedOut});
  // 3, the last one not terminal, succeeds: the task keeps running.
  start(t, 3, 10);
  xs = step(t, decide_version(t, test::seq(3), "2.0", at(3 * hour)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionSucceeded});
  EXPECT_EQ(t.active(), 0u);
  EXPECT_EQ(t.retries_pending, 2u);
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  // The retries come.
  retry(t, 1);
  retry(t, 2);
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(t.active(), 2u);
}

TEST(TaskLifecycle, SnapshotTaskCompletesAfterFinalAttemptFails) {
  auto t = running_task(with_retries(make_spec(), 1, 60), 2);
  fail(t, 1, 100);
  time_out(t, 2, 10);
  retry(t, 1);
  retry(t, 2);
  // Attempt 2 of 1 fails for good; 2 is still active.
  start(t, 1, 3 * hour);
  auto xs =
      step(t, decide_failure(t, test::seq(1), "E", "", at(3 * hour + 10)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionFailed});
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  // The final attempt of the last one times out: the task completes.
  step(t, decide_notified(t, test::seq(2), at(3 * hour)));
  xs = step(t, decide_timeout(t, test::seq(2), at(5 * hour)));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionTimedOut, event::kTaskCompleted}));
  EXPECT_EQ(xs[1].task_completed().task_id(), task_no);
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(t.finished_at_ms, test::t0_ms + 5 * hour);
  EXPECT_EQ(t.retries_pending, 0u);

  // The same when the last final attempt is a device failure.
  auto u = running_task(with_retries(make_spec(), 1, 60), 1);
  fail(u, 1, 100);
  EXPECT_EQ(u.status, v1::TASK_STATUS_RUNNING);
  retry(u, 1);
  start(u, 1, 3 * hour);
  xs = step(u, decide_failure(u, test::seq(1), "E", "", at(3 * hour + 10)));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionFailed, event::kTaskCompleted}));
  EXPECT_EQ(u.status, v1::TASK_STATUS_COMPLETED);
}

TEST(TaskLifecycle, SnapshotTaskCompletesWhenLastExecutionTimesOut) {
  auto t = running_task(make_spec(), 2);
  succeed(t, 1, 20);
  step(t, decide_notified(t, test::seq(2), at(10)));
  auto xs = step(t, decide_timeout(t, test::seq(2), at(10 + 2 * hour)));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionTimedOut, event::kTaskCompleted}));
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
}

// -- abort rule --------------------------------------------------------------

TEST(TaskLifecycle, AbortRulePausesTaskAtThreshold) {
  auto spec = with_abort(make_spec(), 50, 4, v1::ABORT_ACTION_PAUSE);
  auto t = running_task(spec, 6);
  EXPECT_TRUE(decide_abort(t, at(5)).empty());
  succeed(t, 1, 20);
  fail(t, 2, 30);
  // 1 of 2 finished failed: 50 %, but fewer than 4 have finished.
  EXPECT_TRUE(decide_abort(t, at(40)).empty());
  fail(t, 3, 50);
  EXPECT_TRUE(decide_abort(t, at(60)).empty());
  // A timeout counts as a failure: 3 of 4.
  time_out(t, 4, 70);
  auto xs = decide_abort(t, at(3 * hour));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_EQ(xs[0].task_paused().task_id(), task_no);
  const auto& reason = xs[0].task_paused().reason();
  EXPECT_NE(reason.find("3 of 4"), std::string::npos) << reason;
  EXPECT_NE(reason.find("75.0%"), std::string::npos) << reason;
  step(t, xs);
  EXPECT_EQ(t.status, v1::TASK_STATUS_PAUSED);
  EXPECT_EQ(t.status_reason, reason);
  // Nothing is canceled by a pause.
  EXPECT_EQ(state_of(t, 5), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(state_of(t, 6), v1::EXECUTION_STATE_QUEUED);
}

TEST(TaskLifecycle, AbortRuleTripsAtExactlyTheThreshold) {
  auto spec = with_abort(make_spec(), 50, 4, v1::ABORT_ACTION_PAUSE);
  auto t = running_task(spec, 7); // 7 stays QUEUED: the task keeps running
  succeed(t, 1, 20);
  succeed(t, 2, 20);
  succeed(t, 3, 20);
  fail(t, 4, 30);
  // 1 of 4: 25 %.
  EXPECT_TRUE(decide_abort(t, at(40)).empty());
  succeed(t, 5, 50);
  fail(t, 6, 60);
  // 2 of 6: 33.3 %, still below.
  EXPECT_TRUE(decide_abort(t, at(70)).empty());

  auto u = running_task(spec, 6);
  succeed(u, 1, 20);
  succeed(u, 2, 20);
  fail(u, 3, 30);
  fail(u, 4, 30);
  // 2 of 4: exactly 50 % trips.
  auto xs = decide_abort(u, at(40));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_NE(xs[0].task_paused().reason().find("2 of 4"), std::string::npos)
      << xs[0].task_paused().reason();
}

TEST(TaskLifecycle, AbortRuleDoesNotCountExecutionsWaitingForRetry) {
  auto spec = with_abort(with_retries(make_spec(), 1, 60), 50, 4,
                         v1::ABORT_ACTION_PAUSE);
  auto t = running_task(spec, 6);
  succeed(t, 1, 20);
  fail(t, 2, 30);
  fail(t, 3, 30);
  time_out(t, 4, 10);
  // Three failures, all waiting for a retry: only 1 has finished.
  ASSERT_EQ(t.retries_pending, 3u);
  EXPECT_TRUE(decide_abort(t, at(3 * hour)).empty());
  for (uint64_t s : {2u, 3u, 4u})
    retry(t, s);
  // The final attempts fail; the rule trips once 4 have finished.
  fail(t, 2, 4 * hour);
  EXPECT_TRUE(decide_abort(t, at(4 * hour + 1)).empty());
  fail(t, 3, 4 * hour);
  EXPECT_TRUE(decide_abort(t, at(4 * hour + 1)).empty());
  fail(t, 4, 4 * hour);
  auto xs = decide_abort(t, at(4 * hour + 1));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_NE(xs[0].task_paused().reason().find("3 of 4"), std::string::npos)
      << xs[0].task_paused().reason();

  // A final failure next to one waiting for its retry: 1 of 2 finished.
  auto u = running_task(with_abort(with_retries(make_spec(), 1, 60), 50, 2,
                                   v1::ABORT_ACTION_PAUSE),
                        4);
  succeed(u, 1, 20);
  fail(u, 2, 30);
  EXPECT_TRUE(decide_abort(u, at(40)).empty()); // 0 of 1
  retry(u, 2);
  fail(u, 2, 2 * minute);
  fail(u, 3, 2 * minute); // waiting
  xs = decide_abort(u, at(3 * minute));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_NE(xs[0].task_paused().reason().find("1 of 2"), std::string::npos)
      << xs[0].task_paused().reason();
}

TEST(TaskLifecycle, AbortRuleCancelsQueuedExecutions) {
  auto spec = with_abort(make_spec(), 50, 2, v1::ABORT_ACTION_CANCEL);
  auto t = running_task(spec, 6);
  step(t, decide_notified(t, test::seq(3), at(10))); // 3 NOTIFIED
  start(t, 4, 10);                                   // 4 IN_PROGRESS
  succeed(t, 1, 20);
  EXPECT_TRUE(decide_abort(t, at(25)).empty());
  fail(t, 2, 30);
  // 5 and 6 QUEUED.
  auto xs = decide_abort(t, at(40));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionsCanceled, event::kTaskCanceled}));
  EXPECT_EQ(xs[0].executions_canceled().task_id(), task_no);
  EXPECT_EQ(sequences_of(xs[0]), (sequences{5, 6}));
  EXPECT_EQ(xs[1].task_canceled().task_id(), task_no);
  const auto& reason = xs[1].task_canceled().reason();
  EXPECT_NE(reason.find("1 of 2"), std::string::npos) << reason;
  step(t, xs);
  EXPECT_EQ(t.status, v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(t.status_reason, reason);
  EXPECT_EQ(t.finished_at_ms, test::t0_ms + 40);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(state_of(t, 3), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(state_of(t, 4), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(state_of(t, 5), v1::EXECUTION_STATE_CANCELED);
  EXPECT_EQ(state_of(t, 6), v1::EXECUTION_STATE_CANCELED);
  EXPECT_TRUE(decide_abort(t, at(50)).empty());

  // With nothing queued, only the task is canceled.
  auto u = running_task(spec, 3);
  succeed(u, 1, 20);
  start(u, 3, 10);
  fail(u, 2, 30);
  xs = decide_abort(u, at(40));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskCanceled});
  step(u, xs);
  EXPECT_EQ(state_of(u, 3), v1::EXECUTION_STATE_IN_PROGRESS);
}

TEST(TaskLifecycle, AbortRuleTripsOnlyWhileRunning) {
  auto spec = with_abort(make_spec(), 50, 2, v1::ABORT_ACTION_PAUSE);
  auto t = running_task(spec, 4);
  fail(t, 1, 20);
  fail(t, 2, 20);
  ASSERT_EQ(cases_of(decide_abort(t, at(30))), cases{event::kTaskPaused});
  // Paused by an operator: the rule does not trip (nor pause it again).
  step(t, decide_pause(t, "operator", at(30)));
  EXPECT_TRUE(decide_abort(t, at(31)).empty());
  // Resumed, it trips again.
  step(t, decide_resume(t, at(32)));
  auto xs = step(t, decide_abort(t, at(33)));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_EQ(t.status, v1::TASK_STATUS_PAUSED);
  EXPECT_TRUE(decide_abort(t, at(34)).empty());
  // Canceled: never.
  step(t, decide_cancel(t, "stop", at(35)));
  EXPECT_TRUE(decide_abort(t, at(36)).empty());

  // Completed: never.
  auto u = running_task(spec, 2);
  fail(u, 1, 20);
  fail(u, 2, 20);
  ASSERT_EQ(u.status, v1::TASK_STATUS_COMPLETED);
  EXPECT_TRUE(decide_abort(u, at(30)).empty());

  // Without a failure percent there is no rule.
  auto off = with_abort(make_spec(), 0, 1, v1::ABORT_ACTION_PAUSE);
  auto v = running_task(off, 3);
  fail(v, 1, 20);
  fail(v, 2, 20);
  EXPECT_TRUE(decide_abort(v, at(30)).empty());
}

// -- end time ----------------------------------------------------------------

TEST(TaskLifecycle, IncrementTaskCompletesAtEndTime) {
  auto t = running_task(increment_until(hour), 4);
  succeed(t, 1, 20);                                 // 1 SUCCEEDED
  start(t, 2, 10);                                   // 2 IN_PROGRESS
  step(t, decide_notified(t, test::seq(3), at(10))); // 3 NOTIFIED
  // 4 QUEUED
  EXPECT_TRUE(decide_end(t, at(0)).empty());
  EXPECT_TRUE(decide_end(t, at(hour - 1)).empty());
  auto xs = decide_end(t, at(hour));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionsCanceled, event::kTaskCompleted}));
  EXPECT_EQ(xs[0].executions_canceled().task_id(), task_no);
  EXPECT_EQ(sequences_of(xs[0]), sequences{4});
  EXPECT_EQ(xs[1].task_completed().task_id(), task_no);
  step(t, xs);
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(t.finished_at_ms, test::t0_ms + hour);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(state_of(t, 3), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(state_of(t, 4), v1::EXECUTION_STATE_CANCELED);
  // Once.
  EXPECT_TRUE(decide_end(t, at(2 * hour)).empty());

  // With nothing queued, only the task completes.
  auto u = running_task(increment_until(hour), 1);
  start(u, 1, 10);
  EXPECT_EQ(cases_of(decide_end(u, at(2 * hour))),
            cases{event::kTaskCompleted});

  // Without an end time it never ends.
  auto open = make_spec();
  open.set_strategy(v1::STRATEGY_INCREMENT);
  auto v = running_task(open, 1);
  EXPECT_TRUE(decide_end(v, at(1000 * hour)).empty());
}

TEST(TaskLifecycle, EndTimeEndsWaitingForRetry) {
  auto t = running_task(with_retries(increment_until(hour), 1, 60), 2);
  fail(t, 1, 100);
  ASSERT_TRUE(t.holds_device(ex(t, 1)));
  step(t, decide_end(t, at(hour)));
  ASSERT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(t.retries_pending, 0u);
  EXPECT_FALSE(t.will_retry(ex(t, 1)));
  EXPECT_FALSE(t.holds_device(ex(t, 1)));
  EXPECT_TRUE(decide_retry(t, test::seq(1), at(2 * hour)).empty());
}

TEST(TaskLifecycle, SnapshotTasksIgnoreEndTime) {
  auto t = running_task(make_spec(), 2);
  // Validation refuses an end time on a snapshot task; even if one is set
  // (an older log), it does not end the task.
  auto spec = make_spec();
  spec.set_end_time_ms(test::t0_ms + hour);
  EXPECT_EQ(failure_of(create(spec)).code, errc::invalid_argument);
  t.spec.end_time_ms = test::t0_ms + hour;
  EXPECT_TRUE(decide_end(t, at(hour)).empty());
  EXPECT_TRUE(decide_end(t, at(1000 * hour)).empty());
}

// -- device request ----------------------------------------------------------

TEST(TaskLifecycle, DeviceConfirmsOfferedUpgrade) {
  auto spec = make_spec();
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  auto t = running_task(spec, 3);
  step(t, decide_notified(t, test::seq(1), at(10)));
  auto xs = step(t, decide_confirm(t, test::seq(1), at(20)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionStarted});
  EXPECT_EQ(xs[0].execution_started().task_id(), task_no);
  EXPECT_EQ(xs[0].execution_started().sequence(), 1u);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(test::execution_proto(t, 1).started_at_ms(), test::t0_ms + 20);
  // The confirmation is a sign of life: the timeout runs from it.
  EXPECT_EQ(t.deadline_ms(ex(t, 1)), test::t0_ms + 20 + 2 * hour);
  // A second confirmation changes nothing.
  EXPECT_TRUE(events_of(decide_confirm(t, test::seq(1), at(30))).empty());
  EXPECT_EQ(test::execution_proto(t, 1).started_at_ms(), test::t0_ms + 20);
  // Nothing was offered to a QUEUED execution.
  auto err = failure_of(decide_confirm(t, test::seq(2), at(30)));
  EXPECT_EQ(err.code, errc::failed_precondition);
  EXPECT_NE(err.message.find("QUEUED"), std::string::npos) << err.message;
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_QUEUED);
  // A late confirmation of a finished one is acknowledged and changes
  // nothing.
  step(t, decide_version(t, test::seq(1), "2.0", at(40)));
  EXPECT_TRUE(events_of(decide_confirm(t, test::seq(1), at(50))).empty());
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(failure_of(decide_confirm(t, test::seq(9), at(50))).code,
            errc::not_found);
}

} // namespace
