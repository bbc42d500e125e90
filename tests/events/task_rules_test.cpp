/// Tests of the batch upgrade task rules of DESIGN.md §1: spec validation
/// (one test per rule, plus a table over every validation branch), the
/// execution state machine, task completion, the task lifecycle, counters
/// and enrolment in chunks.
#include "events/ids.hpp"
#include "events/task.hpp"
#include "tests/events/test_support.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
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

constexpr uint64_t task_no = 7;

/// Decides creation of `spec` against the standard catalog.
expected<event_list> create(const v1::TaskSpec& spec) {
  auto catalog = test::make_catalog();
  return test::create_in(catalog, task_no, spec, at());
}

/// Returns the failure that creating `spec` is refused with.
failure refusal(const v1::TaskSpec& spec) {
  return failure_of(create(spec));
}

/// Returns whether creating `spec` is accepted.
bool accepted(const v1::TaskSpec& spec) {
  auto x = create(spec);
  if (!x)
    ADD_FAILURE() << "refused: " << x.error().message;
  return static_cast<bool>(x);
}

/// A task created from `spec` at t0 with devices d1 … d<n> enrolled at t0+1.
task_state running_task(const v1::TaskSpec& spec, size_t n) {
  task_state t;
  test::apply_all(t, events_of(create(spec)));
  test::apply_all(t, decide_enroll(t, test::device_keys(n), {}, at(1)));
  return t;
}

task_state running_task(size_t n) {
  return running_task(make_spec(), n);
}

/// Applies the events of a decision that must succeed and returns them.
event_list step(task_state& t, expected<event_list> x) {
  auto xs = events_of(std::move(x));
  test::apply_all(t, xs);
  return xs;
}

/// Brings execution `seq` to IN_PROGRESS.
void start(task_state& t, uint64_t seq, int64_t ms = 10) {
  step(t, decide_notified(t, test::seq(seq), at(ms)));
  step(t, decide_progress(t, test::seq(seq), 0, "", at(ms + 1)));
}

v1::ExecutionState state_of(const task_state& t, uint64_t seq) {
  const auto* x = t.find(test::seq(seq));
  return x == nullptr ? v1::EXECUTION_STATE_UNSPECIFIED : x->state;
}

/// ExecutionTimedOut, which the domain has no decide function for yet.
event timed_out(uint64_t seq, int64_t ms) {
  auto e = make_event(task_stream(task_no), at(ms));
  e.mutable_execution_timed_out()->set_task_id(task_no);
  e.mutable_execution_timed_out()->set_sequence(seq);
  return e;
}

/// ExecutionRequeued, which the domain has no decide function for yet.
event requeued(uint64_t seq, uint32_t attempt, int64_t ms) {
  auto e = make_event(task_stream(task_no), at(ms));
  e.mutable_execution_requeued()->set_task_id(task_no);
  e.mutable_execution_requeued()->set_sequence(seq);
  e.mutable_execution_requeued()->set_attempt(attempt);
  return e;
}

/// ExecutionsCanceled for one execution, as an abort rule would cancel it.
event canceled(uint64_t seq, int64_t ms) {
  auto e = make_event(task_stream(task_no), at(ms));
  e.mutable_executions_canceled()->set_task_id(task_no);
  e.mutable_executions_canceled()->add_sequences(seq);
  return e;
}

// -- spec rules --------------------------------------------------------------

TEST(TaskRules, OnlyVerifiedFirmwareCanBeTarget) {
  for (auto status :
       {v1::FIRMWARE_STATUS_UNVERIFIED, v1::FIRMWARE_STATUS_VERIFYING,
        v1::FIRMWARE_STATUS_VERIFICATION_FAILED}) {
    SCOPED_TRACE(v1::FirmwareStatus_Name(status));
    auto catalog = test::make_catalog();
    catalog.entries[{"p1", "2.0"}].status = status;
    auto err = failure_of(test::create_in(catalog, task_no, make_spec(), at()));
    EXPECT_EQ(err.code, errc::failed_precondition);
    EXPECT_NE(err.message.find("target_version"), std::string::npos)
        << err.message;
  }
  auto xs = events_of(create(make_spec()));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_task_created());
  EXPECT_EQ(xs[0].stream(), "task/7");
  EXPECT_EQ(xs[0].task_created().task_id(), task_no);
  EXPECT_EQ(xs[0].task_created().firmware().version(), "2.0");
  EXPECT_EQ(xs[0].task_created().firmware().status(),
            v1::FIRMWARE_STATUS_VERIFIED);
}

TEST(TaskRules, SourceVersionsMustNotBeEmpty) {
  auto spec = make_spec();
  spec.clear_source_versions();
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("source_versions"), std::string::npos);
}

TEST(TaskRules, TargetVersionMustNotBeASource) {
  auto spec = make_spec();
  spec.add_source_versions("2.0");
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("source_versions"), std::string::npos);
  EXPECT_NE(err.message.find("2.0"), std::string::npos);
}

TEST(TaskRules, TargetScopeAllowsOnlyCloudPush) {
  auto spec = make_spec();
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_tag()->set_key("site");
  spec.mutable_scope()->mutable_tag()->set_value("berlin");
  EXPECT_TRUE(accepted(spec));
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("method"), std::string::npos);
  // Scope ALL may use either method.
  auto all = make_spec();
  all.set_method(v1::METHOD_DEVICE_REQUEST);
  EXPECT_TRUE(accepted(all));
}

TEST(TaskRules, TargetScopeNeedsExactlyOneFilter) {
  auto spec = make_spec();
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  auto none = refusal(spec);
  EXPECT_EQ(none.code, errc::invalid_argument);
  EXPECT_NE(none.message.find("exactly one filter, got 0"), std::string::npos)
      << none.message;
  spec.mutable_scope()->mutable_device_keys()->add_device_keys("d1");
  EXPECT_TRUE(accepted(spec));
  spec.mutable_scope()->mutable_attribute()->set_name("hw");
  auto two = refusal(spec);
  EXPECT_EQ(two.code, errc::invalid_argument);
  EXPECT_NE(two.message.find("exactly one filter, got 2"), std::string::npos)
      << two.message;
}

TEST(TaskRules, AtMostFiveAssetTrees) {
  auto spec = make_spec();
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  auto* trees = spec.mutable_scope()->mutable_asset_trees();
  for (int i = 1; i <= 5; ++i) {
    auto* t = trees->add_trees();
    t->set_tree_id("t" + std::to_string(i));
    t->add_node_ids("root");
  }
  EXPECT_TRUE(accepted(spec));
  auto* sixth = trees->add_trees();
  sixth->set_tree_id("t6");
  sixth->add_node_ids("root");
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("scope.asset_trees"), std::string::npos);
  EXPECT_NE(err.message.find("at most 5"), std::string::npos);
}

TEST(TaskRules, TimeoutRange) {
  auto spec = make_spec();
  for (uint32_t refused : {299u, 172801u}) {
    spec.set_timeout_seconds(refused);
    auto err = refusal(spec);
    EXPECT_EQ(err.code, errc::invalid_argument) << refused;
    EXPECT_NE(err.message.find("timeout_seconds"), std::string::npos);
  }
  for (uint32_t ok : {300u, 172800u}) {
    spec.set_timeout_seconds(ok);
    auto xs = events_of(create(spec));
    ASSERT_EQ(xs.size(), 1u);
    EXPECT_EQ(xs[0].task_created().spec().timeout_seconds(), ok);
  }
  // 0 asks for the default of 2 hours, which TaskCreated records.
  spec.set_timeout_seconds(0);
  auto xs = events_of(create(spec));
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].task_created().spec().timeout_seconds(), 7200u);
  EXPECT_EQ(default_timeout_seconds, 7200u);
}

TEST(TaskRules, RetriesRange) {
  auto spec = make_spec();
  spec.mutable_retry()->set_interval_seconds(60);
  spec.mutable_retry()->set_max_retries(10);
  EXPECT_TRUE(accepted(spec));
  spec.mutable_retry()->set_max_retries(11);
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("retry.max_retries"), std::string::npos);
}

TEST(TaskRules, ScheduleOnlyForCloudPush) {
  auto spec = make_spec();
  auto* w = spec.mutable_schedule()->add_windows();
  w->set_start_minute(60);
  w->set_end_minute(120);
  EXPECT_TRUE(accepted(spec));
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("schedule"), std::string::npos);
}

TEST(TaskRules, EndTimeOnlyForIncrement) {
  auto spec = make_spec();
  spec.set_end_time_ms(test::t0_ms + 3'600'000);
  auto err = refusal(spec);
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("end_time_ms"), std::string::npos);
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  EXPECT_TRUE(accepted(spec));
}

// -- every validation branch -------------------------------------------------

/// One refused spec: how it differs from `make_spec()`, and how it is
/// refused.
struct invalid_spec {
  const char* name;
  std::function<void(v1::TaskSpec&)> mutate;
  errc code;
  const char* field;
};

std::ostream& operator<<(std::ostream& os, const invalid_spec& x) {
  return os << x.name;
}

void target(v1::TaskSpec& s) {
  s.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
}

void window(v1::TaskSpec& s, uint32_t start, uint32_t end) {
  auto* w = s.mutable_schedule()->add_windows();
  w->set_start_minute(start);
  w->set_end_minute(end);
}

void ramp_up(v1::TaskSpec& s, uint32_t base, double factor, uint32_t step) {
  auto* r = s.mutable_rate()->mutable_ramp_up();
  r->set_base_per_minute(base);
  r->set_factor(factor);
  r->set_successes_per_step(step);
}

void trees(v1::TaskSpec& s, int n) {
  target(s);
  for (int i = 1; i <= n; ++i) {
    auto* t = s.mutable_scope()->mutable_asset_trees()->add_trees();
    t->set_tree_id("t" + std::to_string(i));
    t->add_node_ids("root");
  }
}

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

const invalid_spec invalid_specs[] = {
    // target firmware
    {"EmptyProductKey", [](auto& s) { s.clear_product_key(); },
     errc::invalid_argument, "product_key:"},
    {"EmptyTargetVersion", [](auto& s) { s.clear_target_version(); },
     errc::invalid_argument, "target_version:"},
    {"UnknownTargetFirmware", [](auto& s) { s.set_target_version("9.9"); },
     errc::invalid_argument, "target_version:"},
    {"UnknownProduct", [](auto& s) { s.set_product_key("p2"); },
     errc::invalid_argument, "target_version:"},
    {"UnverifiedTargetFirmware", [](auto& s) { s.set_target_version("3.0"); },
     errc::failed_precondition, "target_version:"},
    // source versions
    {"NoSourceVersions", [](auto& s) { s.clear_source_versions(); },
     errc::invalid_argument, "source_versions:"},
    {"EmptySourceVersion", [](auto& s) { s.add_source_versions(""); },
     errc::invalid_argument, "source_versions:"},
    {"TargetIsSource", [](auto& s) { s.add_source_versions("2.0"); },
     errc::invalid_argument, "source_versions:"},
    {"DuplicateSources", [](auto& s) { s.add_source_versions("1.0"); },
     errc::invalid_argument, "source_versions:"},
    // strategy and method
    {"UnspecifiedStrategy",
     [](auto& s) { s.set_strategy(v1::STRATEGY_UNSPECIFIED); },
     errc::invalid_argument, "strategy:"},
    {"UnspecifiedMethod", [](auto& s) { s.set_method(v1::METHOD_UNSPECIFIED); },
     errc::invalid_argument, "method:"},
    // scope
    {"UnspecifiedScopeKind", [](auto& s) { s.clear_scope(); },
     errc::invalid_argument, "scope.kind:"},
    {"AllScopeWithFilter",
     [](auto& s) { s.mutable_scope()->mutable_tag()->set_key("site"); },
     errc::invalid_argument, "scope:"},
    {"TargetScopeWithoutFilter", [](auto& s) { target(s); },
     errc::invalid_argument, "scope:"},
    {"TargetScopeWithTwoFilters",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_tag()->set_key("site");
       s.mutable_scope()->mutable_device_keys()->add_device_keys("d1");
     },
     errc::invalid_argument, "scope:"},
    {"TargetScopeWithDeviceRequest",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_tag()->set_key("site");
       s.set_method(v1::METHOD_DEVICE_REQUEST);
     },
     errc::invalid_argument, "method:"},
    {"NoDeviceKeys",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_device_keys();
     },
     errc::invalid_argument, "scope.device_keys:"},
    {"EmptyDeviceKey",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_device_keys()->add_device_keys("");
     },
     errc::invalid_argument, "scope.device_keys:"},
    {"DuplicateDeviceKeys",
     [](auto& s) {
       target(s);
       auto* keys = s.mutable_scope()->mutable_device_keys();
       keys->add_device_keys("d1");
       keys->add_device_keys("d2");
       keys->add_device_keys("d1");
     },
     errc::invalid_argument, "scope.device_keys:"},
    {"EmptyTagKey",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_tag()->set_value("berlin");
     },
     errc::invalid_argument, "scope.tag.key:"},
    {"EmptyAttributeName",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_attribute()->set_value("rev-b");
     },
     errc::invalid_argument, "scope.attribute.name:"},
    {"NoAssetTrees",
     [](auto& s) {
       target(s);
       s.mutable_scope()->mutable_asset_trees();
     },
     errc::invalid_argument, "scope.asset_trees:"},
    {"SixAssetTrees", [](auto& s) { trees(s, 6); }, errc::invalid_argument,
     "scope.asset_trees:"},
    {"EmptyAssetTreeId",
     [](auto& s) {
       trees(s, 2);
       s.mutable_scope()
           ->mutable_asset_trees()
           ->mutable_trees(1)
           ->clear_tree_id();
     },
     errc::invalid_argument, "scope.asset_trees.tree_id:"},
    {"AssetTreeWithoutNodes",
     [](auto& s) {
       trees(s, 2);
       s.mutable_scope()
           ->mutable_asset_trees()
           ->mutable_trees(1)
           ->clear_node_ids();
     },
     errc::invalid_argument, "scope.asset_trees[t2].node_ids:"},
    // cloud push only
    {"ScheduleWithDeviceRequest",
     [](auto& s) {
       s.set_method(v1::METHOD_DEVICE_REQUEST);
       window(s, 60, 120);
     },
     errc::invalid_argument, "schedule:"},
    {"RateWithDeviceRequest",
     [](auto& s) {
       s.set_method(v1::METHOD_DEVICE_REQUEST);
       s.mutable_rate()->set_max_per_minute(100);
     },
     errc::invalid_argument, "rate:"},
    {"RampUpWithDeviceRequest",
     [](auto& s) {
       s.set_method(v1::METHOD_DEVICE_REQUEST);
       ramp_up(s, 10, 2.0, 100);
     },
     errc::invalid_argument, "rate:"},
    // schedule
    {"UnknownTimeZone",
     [](auto& s) {
       s.mutable_schedule()->set_time_zone("Mars/Olympus");
       window(s, 60, 120);
     },
     errc::invalid_argument, "schedule.time_zone:"},
    {"WindowStartAt1440", [](auto& s) { window(s, 1440, 60); },
     errc::invalid_argument, "schedule.windows[0].start_minute:"},
    {"WindowEndAbove1440", [](auto& s) { window(s, 1380, 1441); },
     errc::invalid_argument, "schedule.windows[0].end_minute:"},
    {"EmptyWindow", [](auto& s) { window(s, 600, 600); },
     errc::invalid_argument, "schedule.windows[0]:"},
    {"WindowOf29Minutes", [](auto& s) { window(s, 600, 629); },
     errc::invalid_argument, "schedule.windows[0]:"},
    {"MidnightWindowOf25Minutes", [](auto& s) { window(s, 1430, 15); },
     errc::invalid_argument, "schedule.windows[0]:"},
    {"SecondWindowTooShort",
     [](auto& s) {
       window(s, 60, 120);
       window(s, 600, 620);
     },
     errc::invalid_argument, "schedule.windows[1]:"},
    {"OverlappingWindows",
     [](auto& s) {
       window(s, 540, 1020);
       window(s, 1000, 1100);
     },
     errc::invalid_argument, "schedule.windows:"},
    {"ContainedWindow",
     [](auto& s) {
       window(s, 600, 900);
       window(s, 660, 720);
     },
     errc::invalid_argument, "schedule.windows:"},
    {"OverlapAcrossMidnight",
     [](auto& s) {
       window(s, 1320, 120); // 22:00-02:00
       window(s, 60, 180);   // 01:00-03:00
     },
     errc::invalid_argument, "schedule.windows:"},
    {"OverlapBeforeMidnight",
     [](auto& s) {
       window(s, 1380, 1440); // 23:00-24:00
       window(s, 1320, 60);   // 22:00-01:00
     },
     errc::invalid_argument, "schedule.windows:"},
    {"ThirdWindowOverlapsFirst",
     [](auto& s) {
       window(s, 0, 60);
       window(s, 120, 180);
       window(s, 1410, 30); // 23:30-00:30
     },
     errc::invalid_argument, "schedule.windows:"},
    // rate
    {"RampUpBaseZero", [](auto& s) { ramp_up(s, 0, 2.0, 100); },
     errc::invalid_argument, "rate.ramp_up.base_per_minute:"},
    {"RampUpFactorOne", [](auto& s) { ramp_up(s, 10, 1.0, 100); },
     errc::invalid_argument, "rate.ramp_up.factor:"},
    {"RampUpFactorAboveTen", [](auto& s) { ramp_up(s, 10, 10.5, 100); },
     errc::invalid_argument, "rate.ramp_up.factor:"},
    {"RampUpFactorNaN", [](auto& s) { ramp_up(s, 10, nan, 100); },
     errc::invalid_argument, "rate.ramp_up.factor:"},
    {"RampUpZeroStep", [](auto& s) { ramp_up(s, 10, 2.0, 0); },
     errc::invalid_argument, "rate.ramp_up.successes_per_step:"},
    {"RampUpBaseAboveMax",
     [](auto& s) {
       s.mutable_rate()->set_max_per_minute(50);
       ramp_up(s, 100, 2.0, 10);
     },
     errc::invalid_argument, "rate.ramp_up.base_per_minute:"},
    // timeout and retries
    {"TimeoutBelow5Minutes", [](auto& s) { s.set_timeout_seconds(299); },
     errc::invalid_argument, "timeout_seconds:"},
    {"TimeoutAbove48Hours", [](auto& s) { s.set_timeout_seconds(172801); },
     errc::invalid_argument, "timeout_seconds:"},
    {"ElevenRetries",
     [](auto& s) {
       s.mutable_retry()->set_max_retries(11);
       s.mutable_retry()->set_interval_seconds(60);
     },
     errc::invalid_argument, "retry.max_retries:"},
    {"RetriesWithoutInterval",
     [](auto& s) { s.mutable_retry()->set_max_retries(3); },
     errc::invalid_argument, "retry.interval_seconds:"},
    // abort rule
    {"AbortPercentNegative",
     [](auto& s) {
       s.mutable_abort()->set_failure_percent(-1);
       s.mutable_abort()->set_action(v1::ABORT_ACTION_PAUSE);
     },
     errc::invalid_argument, "abort.failure_percent:"},
    {"AbortPercentAbove100",
     [](auto& s) {
       s.mutable_abort()->set_failure_percent(100.5);
       s.mutable_abort()->set_action(v1::ABORT_ACTION_PAUSE);
     },
     errc::invalid_argument, "abort.failure_percent:"},
    // NaN is out of every range; DESIGN.md §1: "Validate every field".
    // KNOWN BUG (events/task.cpp validate(), the abort.failure_percent
    // check): `< 0.0 || > 100.0` are both false for NaN, so NaN is accepted,
    // the abort.action check (`> 0.0`) is skipped as well, and decide_abort
    // then trips on the first finished execution (`percent < NaN` is false).
    // This row fails until validate() refuses NaN (e.g. `!(x >= 0 && x <=
    // 100)`).
    {"AbortPercentNaN",
     [](auto& s) {
       s.mutable_abort()->set_failure_percent(nan);
       s.mutable_abort()->set_action(v1::ABORT_ACTION_PAUSE);
     },
     errc::invalid_argument, "abort.failure_percent:"},
    {"AbortActionMissing",
     [](auto& s) { s.mutable_abort()->set_failure_percent(20); },
     errc::invalid_argument, "abort.action:"},
    // end time
    {"EndTimeOnSnapshot",
     [](auto& s) { s.set_end_time_ms(test::t0_ms + 1000); },
     errc::invalid_argument, "end_time_ms:"},
    {"EndTimeNow",
     [](auto& s) {
       s.set_strategy(v1::STRATEGY_INCREMENT);
       s.set_end_time_ms(test::t0_ms);
     },
     errc::invalid_argument, "end_time_ms:"},
    {"EndTimeInPast",
     [](auto& s) {
       s.set_strategy(v1::STRATEGY_INCREMENT);
       s.set_end_time_ms(test::t0_ms - 1);
     },
     errc::invalid_argument, "end_time_ms:"},
};

class InvalidTaskSpecs : public testing::TestWithParam<invalid_spec> {};

TEST_P(InvalidTaskSpecs, AreRefusedNamingTheField) {
  const auto& row = GetParam();
  auto spec = make_spec();
  row.mutate(spec);
  auto catalog = test::make_catalog();
  auto err =
      validate(from_proto(spec),
               catalog.find(spec.product_key(), spec.target_version()), at());
  ASSERT_TRUE(err.has_value()) << "accepted";
  EXPECT_EQ(err->code, row.code)
      << to_string(err->code) << ": " << err->message;
  EXPECT_EQ(err->message.rfind(row.field, 0), 0u)
      << "message does not start with \"" << row.field
      << "\": " << err->message;
  // decide_create refuses the same way and writes no event.
  auto decided = test::create_in(catalog, task_no, spec, at());
  ASSERT_FALSE(decided);
  EXPECT_EQ(decided.error().message, err->message);
}

INSTANTIATE_TEST_SUITE_P(TaskRules, InvalidTaskSpecs,
                         testing::ValuesIn(invalid_specs),
                         [](const testing::TestParamInfo<invalid_spec>& info) {
                           return std::string{info.param.name};
                         });

/// Specs at the edges of every rule that must still be accepted.
TEST(TaskRules, ValidSpecsAtTheEdgesAreAccepted) {
  struct row {
    const char* name;
    std::function<void(v1::TaskSpec&)> mutate;
  };
  const row rows[] = {
      {"defaults", [](auto&) {}},
      {"several sources",
       [](auto& s) {
         s.add_source_versions("1.1");
         s.add_source_versions("1.2");
       }},
      {"increment", [](auto& s) { s.set_strategy(v1::STRATEGY_INCREMENT); }},
      {"device request",
       [](auto& s) { s.set_method(v1::METHOD_DEVICE_REQUEST); }},
      {"device keys",
       [](auto& s) {
         target(s);
         s.mutable_scope()->mutable_device_keys()->add_device_keys("d1");
         s.mutable_scope()->mutable_device_keys()->add_device_keys("d2");
       }},
      {"attribute",
       [](auto& s) {
         target(s);
         s.mutable_scope()->mutable_attribute()->set_name("hw");
       }},
      {"five trees", [](auto& s) { trees(s, 5); }},
      {"30-minute window", [](auto& s) { window(s, 600, 630); }},
      {"window ending at 24:00", [](auto& s) { window(s, 1380, 1440); }},
      {"window crossing midnight", [](auto& s) { window(s, 1320, 120); }},
      {"adjacent windows",
       [](auto& s) {
         window(s, 540, 600);
         window(s, 600, 660);
         window(s, 1410, 540); // 23:30-09:00, touches both
       }},
      {"time zone only",
       [](auto& s) { s.mutable_schedule()->set_time_zone("Europe/Berlin"); }},
      {"zoned window",
       [](auto& s) {
         s.mutable_schedule()->set_time_zone("America/New_York");
         window(s, 60, 240);
       }},
      {"UTC by name",
       [](auto& s) {
         s.mutable_schedule()->set_time_zone("UTC");
         window(s, 60, 240);
       }},
      {"rate", [](auto& s) { s.mutable_rate()->set_max_per_minute(1000); }},
      {"ramp-up at the limits",
       [](auto& s) {
         s.mutable_rate()->set_max_per_minute(100);
         ramp_up(s, 100, 10.0, 1);
       }},
      {"ramp-up without maximum", [](auto& s) { ramp_up(s, 5, 1.5, 10); }},
      {"timeout 5 min", [](auto& s) { s.set_timeout_seconds(300); }},
      {"timeout 48 h", [](auto& s) { s.set_timeout_seconds(172800); }},
      {"ten retries",
       [](auto& s) {
         s.mutable_retry()->set_max_retries(10);
         s.mutable_retry()->set_interval_seconds(1);
       }},
      {"abort at 100%",
       [](auto& s) {
         s.mutable_abort()->set_failure_percent(100);
         s.mutable_abort()->set_action(v1::ABORT_ACTION_CANCEL);
         s.mutable_abort()->set_min_finished(10);
       }},
      {"end time",
       [](auto& s) {
         s.set_strategy(v1::STRATEGY_INCREMENT);
         s.set_end_time_ms(test::t0_ms + 1);
       }},
      {"priority", [](auto& s) { s.set_priority(-5); }},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    auto spec = make_spec();
    r.mutate(spec);
    auto xs = events_of(create(spec));
    ASSERT_EQ(xs.size(), 1u);
    // TaskCreated keeps the spec as given, but for the default timeout.
    auto stored = xs[0].task_created().spec();
    stored.set_timeout_seconds(spec.timeout_seconds());
    EXPECT_EQ(stored.SerializeAsString(), spec.SerializeAsString());
  }
}

// -- executions --------------------------------------------------------------

TEST(TaskRules, EnrolledExecutionsStartQueued) {
  auto t = running_task(3);
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(t.created_at_ms, test::t0_ms);
  ASSERT_EQ(t.executions.size(), 3u);
  for (uint64_t s = 1; s <= 3; ++s) {
    auto x = test::execution_proto(t, s);
    EXPECT_EQ(x.device_key(), "d" + std::to_string(s));
    EXPECT_EQ(x.state(), v1::EXECUTION_STATE_QUEUED);
    EXPECT_EQ(x.attempt(), 1u);
    EXPECT_EQ(x.sequence(), s);
    EXPECT_EQ(x.task_id(), task_no);
    EXPECT_EQ(x.execution_id(),
              (execution_id{task_id{task_no}, execution_seq{s}}.value()));
    EXPECT_EQ(x.queued_at_ms(), test::t0_ms + 1);
  }
  EXPECT_EQ(t.active(), 3u);
}

TEST(TaskRules, NotifiedOnlyFromQueued) {
  auto t = running_task(2);
  auto xs = step(t, decide_notified(t, test::seq(1), at(10)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionNotified});
  EXPECT_EQ(xs[0].execution_notified().task_id(), task_no);
  EXPECT_EQ(xs[0].execution_notified().sequence(), 1u);
  EXPECT_EQ(xs[0].execution_notified().attempt(), 1u);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(test::execution_proto(t, 1).notified_at_ms(), test::t0_ms + 10);
  // Not again from NOTIFIED, nor from IN_PROGRESS or a terminal state.
  EXPECT_EQ(failure_of(decide_notified(t, test::seq(1), at(11))).code,
            errc::failed_precondition);
  step(t, decide_progress(t, test::seq(1), 5, "", at(12)));
  EXPECT_EQ(failure_of(decide_notified(t, test::seq(1), at(13))).code,
            errc::failed_precondition);
  step(t, decide_version(t, test::seq(1), "2.0", at(14)));
  EXPECT_EQ(failure_of(decide_notified(t, test::seq(1), at(15))).code,
            errc::failed_precondition);
  // Unknown sequences.
  EXPECT_EQ(failure_of(decide_notified(t, test::seq(0), at(16))).code,
            errc::not_found);
  EXPECT_EQ(failure_of(decide_notified(t, test::seq(3), at(16))).code,
            errc::not_found);
}

TEST(TaskRules, ProgressFromNotifiedStartsExecution) {
  auto t = running_task(2);
  step(t, decide_notified(t, test::seq(1), at(10)));
  auto xs =
      step(t, decide_progress(t, test::seq(1), 10, "downloading", at(20)));
  // One event: the start carries the first step.
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionStarted});
  EXPECT_EQ(xs[0].execution_started().sequence(), 1u);
  EXPECT_EQ(xs[0].execution_started().step(), 10u);
  EXPECT_EQ(xs[0].execution_started().text(), "downloading");
  auto x = test::execution_proto(t, 1);
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(x.started_at_ms(), test::t0_ms + 20);
  EXPECT_EQ(x.progress_step(), 10u);
  EXPECT_EQ(x.progress_text(), "downloading");
  // Further progress only progresses.
  xs = step(t, decide_progress(t, test::seq(1), 60, "flashing", at(30)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionProgressed});
  EXPECT_EQ(test::execution_proto(t, 1).progress_step(), 60u);
  EXPECT_EQ(test::execution_proto(t, 1).progress_text(), "flashing");
  EXPECT_EQ(test::execution_proto(t, 1).started_at_ms(), test::t0_ms + 20);
  // A QUEUED execution has not been offered anything yet.
  EXPECT_EQ(failure_of(decide_progress(t, test::seq(2), 10, "", at(30))).code,
            errc::failed_precondition);
  EXPECT_EQ(failure_of(decide_progress(t, test::seq(9), 10, "", at(30))).code,
            errc::not_found);
}

TEST(TaskRules, ProgressStepAbove100IsRefused) {
  auto t = running_task(1);
  step(t, decide_notified(t, test::seq(1), at(10)));
  auto err = failure_of(decide_progress(t, test::seq(1), 101, "", at(20)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("step"), std::string::npos);
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_NOTIFIED);
  step(t, decide_progress(t, test::seq(1), 100, "", at(20)));
  EXPECT_EQ(test::execution_proto(t, 1).progress_step(), 100u);
  auto long_text = failure_of(
      decide_progress(t, test::seq(1), 50, std::string(257, 'x'), at(21)));
  EXPECT_EQ(long_text.code, errc::invalid_argument);
}

TEST(TaskRules, OnlyTargetVersionCountsAsSuccess) {
  auto t = running_task(2);
  start(t, 1);
  // Progress 100 is not success.
  auto xs = step(t, decide_progress(t, test::seq(1), 100, "done", at(20)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionProgressed});
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_IN_PROGRESS);
  // Neither is another version, the old one included.
  EXPECT_TRUE(
      events_of(decide_version(t, test::seq(1), "1.5", at(21))).empty());
  EXPECT_TRUE(
      events_of(decide_version(t, test::seq(1), "1.0", at(21))).empty());
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_IN_PROGRESS);
  // The target version is.
  xs = step(t, decide_version(t, test::seq(1), "2.0", at(22)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionSucceeded});
  EXPECT_EQ(xs[0].execution_succeeded().sequence(), 1u);
  auto x = test::execution_proto(t, 1);
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(x.finished_at_ms(), test::t0_ms + 22);
  EXPECT_EQ(x.progress_step(), 100u);
  EXPECT_TRUE(x.progress_text().empty());
  // Reporting it again changes nothing.
  EXPECT_TRUE(
      events_of(decide_version(t, test::seq(1), "2.0", at(23))).empty());
  EXPECT_EQ(failure_of(decide_version(t, test::seq(5), "2.0", at(23))).code,
            errc::not_found);
}

TEST(TaskRules, FailureKeepsDeviceCodeAndText) {
  auto t = running_task(2);
  start(t, 1);
  auto xs = step(t, decide_failure(t, test::seq(1), "E_FLASH",
                                   "flash write failed at block 7", at(30)));
  ASSERT_EQ(cases_of(xs), cases{event::kExecutionFailed});
  auto x = test::execution_proto(t, 1);
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(x.failure_code(), "E_FLASH");
  EXPECT_EQ(x.failure_text(), "flash write failed at block 7");
  EXPECT_EQ(x.finished_at_ms(), test::t0_ms + 30);
  // A NOTIFIED device may fail before it starts.
  step(t, decide_notified(t, test::seq(2), at(31)));
  step(t, decide_failure(t, test::seq(2), "E_SPACE", "", at(32)));
  EXPECT_EQ(test::execution_proto(t, 2).failure_code(), "E_SPACE");
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_FAILED);
}

TEST(TaskRules, FailureOnQueuedExecutionIsRefused) {
  auto t = running_task(2);
  auto err = failure_of(decide_failure(t, test::seq(1), "E_FLASH", "", at(30)));
  EXPECT_EQ(err.code, errc::failed_precondition);
  EXPECT_NE(err.message.find("QUEUED"), std::string::npos) << err.message;
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_QUEUED);
  start(t, 1);
  EXPECT_EQ(
      failure_of(decide_failure(t, test::seq(1), "", "no code", at(31))).code,
      errc::invalid_argument);
  EXPECT_EQ(failure_of(decide_failure(t, test::seq(1), std::string(65, 'E'), "",
                                      at(31)))
                .code,
            errc::invalid_argument);
  EXPECT_EQ(failure_of(decide_failure(t, test::seq(1), "E",
                                      std::string(1025, 'x'), at(31)))
                .code,
            errc::invalid_argument);
}

// -- completion --------------------------------------------------------------

TEST(TaskRules, SnapshotTaskCompletesWhenLastExecutionIsTerminal) {
  auto t = running_task(3);
  start(t, 1);
  start(t, 2);
  start(t, 3);
  auto xs = step(t, decide_version(t, test::seq(1), "2.0", at(40)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionSucceeded});
  xs = step(t, decide_failure(t, test::seq(2), "E", "", at(41)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionFailed});
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  xs = step(t, decide_version(t, test::seq(3), "2.0", at(42)));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionSucceeded, event::kTaskCompleted}));
  EXPECT_EQ(xs[1].task_completed().task_id(), task_no);
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(t.finished_at_ms, test::t0_ms + 42);
}

TEST(TaskRules, SnapshotTaskCompletesWhenLastExecutionFails) {
  auto t = running_task(1);
  start(t, 1);
  auto xs = step(t, decide_failure(t, test::seq(1), "E", "", at(41)));
  EXPECT_EQ(cases_of(xs),
            (cases{event::kExecutionFailed, event::kTaskCompleted}));
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
}

TEST(TaskRules, IncrementTaskDoesNotCompleteWhenExecutionsFinish) {
  auto spec = make_spec();
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  auto t = running_task(spec, 1);
  start(t, 1);
  auto xs = step(t, decide_version(t, test::seq(1), "2.0", at(40)));
  EXPECT_EQ(cases_of(xs), cases{event::kExecutionSucceeded});
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
}

TEST(TaskRules, SnapshotEnrolWithNoDevicesCompletesAtOnce) {
  task_state t;
  test::apply_all(t, events_of(create(make_spec())));
  auto xs = decide_enroll(t, {}, {}, at(1));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskCompleted});
  test::apply_all(t, xs);
  EXPECT_EQ(t.status, v1::TASK_STATUS_COMPLETED);

  // Skipped devices alone do not keep it running either.
  task_state u;
  test::apply_all(u, events_of(create(make_spec())));
  skipped_device busy{"d9", "busy in task 3"};
  xs = decide_enroll(u, {}, {busy}, at(1));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kDevicesSkipped, event::kTaskCompleted}));
  test::apply_all(u, xs);
  EXPECT_EQ(u.status, v1::TASK_STATUS_COMPLETED);
  ASSERT_EQ(u.skipped.size(), 1u);
  EXPECT_EQ(u.skipped[0].reason, "busy in task 3");
  EXPECT_EQ(u.counters().skipped, 1u);
}

TEST(TaskRules, IncrementEnrolWithNoDevicesKeepsRunning) {
  auto spec = make_spec();
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  task_state t;
  test::apply_all(t, events_of(create(spec)));
  EXPECT_TRUE(decide_enroll(t, {}, {}, at(1)).empty());
}

// -- task lifecycle ----------------------------------------------------------

TEST(TaskRules, PauseResumeCancel) {
  auto t = running_task(1);
  EXPECT_EQ(failure_of(decide_resume(t, at(10))).code,
            errc::failed_precondition);
  auto xs = step(t, decide_pause(t, "maintenance", at(10)));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskPaused});
  EXPECT_EQ(t.status, v1::TASK_STATUS_PAUSED);
  EXPECT_EQ(t.status_reason, "maintenance");
  EXPECT_EQ(failure_of(decide_pause(t, "again", at(11))).code,
            errc::failed_precondition);
  xs = step(t, decide_resume(t, at(12)));
  ASSERT_EQ(cases_of(xs), cases{event::kTaskResumed});
  EXPECT_EQ(t.status, v1::TASK_STATUS_RUNNING);
  EXPECT_TRUE(t.status_reason.empty());
  step(t, decide_pause(t, "maintenance", at(13)));
  // A paused task can be canceled.
  xs = step(t, decide_cancel(t, "wrong image", at(14)));
  EXPECT_EQ(cases_of(xs),
            (cases{event::kExecutionsCanceled, event::kTaskCanceled}));
  EXPECT_EQ(t.status, v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(t.status_reason, "wrong image");
  EXPECT_EQ(t.finished_at_ms, test::t0_ms + 14);
  // A canceled task stays canceled.
  EXPECT_EQ(failure_of(decide_cancel(t, "", at(15))).code,
            errc::failed_precondition);
  EXPECT_EQ(failure_of(decide_pause(t, "", at(15))).code,
            errc::failed_precondition);
  EXPECT_EQ(failure_of(decide_resume(t, at(15))).code,
            errc::failed_precondition);
}

TEST(TaskRules, CancelOfCompletedTaskIsRefused) {
  auto t = running_task(1);
  start(t, 1);
  step(t, decide_version(t, test::seq(1), "2.0", at(20)));
  ASSERT_EQ(t.status, v1::TASK_STATUS_COMPLETED);
  auto err = failure_of(decide_cancel(t, "too late", at(21)));
  EXPECT_EQ(err.code, errc::failed_precondition);
  EXPECT_NE(err.message.find("COMPLETED"), std::string::npos) << err.message;
  EXPECT_EQ(failure_of(decide_pause(t, "", at(21))).code,
            errc::failed_precondition);
}

TEST(TaskRules, CancelCancelsOnlyNonTerminalExecutions) {
  auto t = running_task(5);
  start(t, 1);
  step(t, decide_version(t, test::seq(1), "2.0", at(20))); // 1 SUCCEEDED
  start(t, 2);
  step(t, decide_failure(t, test::seq(2), "E", "", at(21))); // 2 FAILED
  step(t, decide_notified(t, test::seq(3), at(22)));         // 3 NOTIFIED
  start(t, 4);                                               // 4 IN_PROGRESS
  // 5 QUEUED
  auto xs = step(t, decide_cancel(t, "stop", at(30)));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kExecutionsCanceled, event::kTaskCanceled}));
  const auto& seqs = xs[0].executions_canceled().sequences();
  EXPECT_EQ(std::vector<uint64_t>(seqs.begin(), seqs.end()),
            (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(xs[1].task_canceled().reason(), "stop");
  EXPECT_EQ(state_of(t, 1), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(state_of(t, 2), v1::EXECUTION_STATE_FAILED);
  for (uint64_t s : {3, 4, 5}) {
    EXPECT_EQ(state_of(t, s), v1::EXECUTION_STATE_CANCELED);
    EXPECT_EQ(test::execution_proto(t, s).finished_at_ms(), test::t0_ms + 30);
  }
  EXPECT_EQ(t.active(), 0u);
}

TEST(TaskRules, CancelWithNothingActiveOnlyCancelsTask) {
  auto spec = make_spec();
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  auto t = running_task(spec, 1);
  start(t, 1);
  step(t, decide_version(t, test::seq(1), "2.0", at(20)));
  auto xs = step(t, decide_cancel(t, "done", at(21)));
  EXPECT_EQ(cases_of(xs), cases{event::kTaskCanceled});
  EXPECT_EQ(t.status, v1::TASK_STATUS_CANCELED);
}

// -- counters ----------------------------------------------------------------

TEST(TaskRules, CountersFollowEvents) {
  auto spec = make_spec();
  spec.mutable_retry()->set_max_retries(1);
  spec.mutable_retry()->set_interval_seconds(30);
  auto t = running_task(spec, 8);
  skipped_device busy{"d9", "busy"};
  test::apply_all(t, decide_enroll(t, {}, {busy, busy}, at(2)));
  start(t, 1);
  step(t, decide_version(t, test::seq(1), "2.0", at(20))); // 1 SUCCEEDED
  start(t, 2);
  step(t, decide_failure(t, test::seq(2), "E", "", at(21))); // 2 FAILED
  step(t, decide_notified(t, test::seq(3), at(22)));         // 3 NOTIFIED
  start(t, 4);                                               // 4 IN_PROGRESS
  start(t, 5);
  ASSERT_FALSE(apply(t, timed_out(5, 24))); // 5 TIMED_OUT
  start(t, 6);
  step(t, decide_failure(t, test::seq(6), "E", "", at(25)));
  ASSERT_FALSE(apply(t, requeued(6, 2, 60))); // 6 FAILED → QUEUED
  ASSERT_FALSE(apply(t, canceled(7, 61)));    // 7 CANCELED
  // 8 QUEUED
  auto c = t.counters();
  EXPECT_EQ(c.queued, 2u);
  EXPECT_EQ(c.notified, 1u);
  EXPECT_EQ(c.in_progress, 1u);
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.timed_out, 1u);
  EXPECT_EQ(c.canceled, 1u);
  EXPECT_EQ(c.skipped, 2u);
  EXPECT_EQ(t.active(), 4u);
  // The requeued execution starts over with its next attempt.
  auto x = test::execution_proto(t, 6);
  EXPECT_EQ(x.state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(x.attempt(), 2u);
  EXPECT_EQ(x.queued_at_ms(), test::t0_ms + 60);
  EXPECT_EQ(x.notified_at_ms(), 0);
  EXPECT_EQ(x.started_at_ms(), 0);
  EXPECT_EQ(x.finished_at_ms(), 0);
  EXPECT_EQ(x.progress_step(), 0u);
  // The summary carries the same counters.
  auto s = t.summary();
  EXPECT_EQ(s.id.value(), task_no);
  EXPECT_EQ(s.status, v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(s.counters.queued, c.queued);
  EXPECT_EQ(s.counters.failed, c.failed);
  EXPECT_EQ(s.counters.skipped, c.skipped);
  EXPECT_EQ(s.spec.target_version, "2.0");
}

// -- enrolment ---------------------------------------------------------------

TEST(TaskRules, EnrolChunksDeviceKeysWithConsecutiveSequences) {
  auto t = running_task(3);
  auto keys = test::device_keys(10003);
  keys.erase(keys.begin(), keys.begin() + 3); // d4 … d10003
  ASSERT_EQ(keys.size(), 10000u);
  auto xs = decide_enroll(t, keys, {}, at(5));
  ASSERT_EQ(cases_of(xs),
            (cases{event::kDevicesEnrolled, event::kDevicesEnrolled,
                   event::kDevicesEnrolled}));
  uint64_t expected_first = 4;
  for (const auto& e : xs) {
    const auto& x = e.devices_enrolled();
    EXPECT_EQ(x.task_id(), task_no);
    EXPECT_LE(x.device_keys_size(), 4096);
    EXPECT_EQ(x.first_sequence(), expected_first);
    EXPECT_EQ(x.device_keys(0), "d" + std::to_string(expected_first));
    expected_first += x.device_keys_size();
  }
  EXPECT_EQ(xs[0].devices_enrolled().device_keys_size(), 4096);
  EXPECT_EQ(xs[1].devices_enrolled().device_keys_size(), 4096);
  EXPECT_EQ(xs[2].devices_enrolled().device_keys_size(), 10000 - 2 * 4096);
  EXPECT_EQ(expected_first, 10004u);
  test::apply_all(t, xs);
  ASSERT_EQ(t.executions.size(), 10003u);
  EXPECT_EQ(t.counters().queued, 10003u);
  for (uint64_t s : {1u, 4u, 4099u, 4100u, 8195u, 10003u})
    EXPECT_EQ(t.find(test::seq(s))->device_key, "d" + std::to_string(s));
}

} // namespace
