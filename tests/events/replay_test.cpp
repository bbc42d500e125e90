/// Tests of replay: events of every aggregate applied to a `world`, the
/// checks replay makes (every violation names the event's sequence, and
/// nothing is guessed or dropped), and "restart rebuilds state": the log
/// encoded to bytes, decoded and replayed into a fresh world has the digest
/// of the world built live.
#include "events/digest.hpp"
#include "events/ids.hpp"
#include "events/replay.hpp"
#include "tests/events/test_support.hpp"

#include <functional>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using google::protobuf::util::MessageDifferencer;
using test::at;
using test::events_of;

/// Builds a world the way the node does at run time: decide against the
/// current state, stamp each event with the next log sequence, apply it, and
/// keep it as the log a restart would read.
class scenario {
public:
  world w;
  event_list log;

  void record(event_list xs) {
    for (auto& e : xs) {
      e.set_sequence(log.size() + 1);
      if (auto err = apply(w, e))
        ADD_FAILURE() << err->message;
      log.push_back(std::move(e));
    }
  }

  void record(expected<event_list> xs) { record(events_of(std::move(xs))); }

  /// Records one hand-made event for transitions without a decide function.
  void record(const std::string& stream, std::function<void(event&)> fill) {
    auto e = make_event(stream, at(++tick_));
    fill(e);
    record(event_list{std::move(e)});
  }

  timestamp now() { return at(++tick_); }

  void create_firmware(const std::string& version) {
    v1::CreateFirmware cmd;
    *cmd.mutable_firmware() = test::make_firmware("p1", version);
    record(decide(w.firmware, test::cmd(cmd), firmware_policy{}, now()));
  }

  void register_device(const std::string& product, const std::string& key,
                       const std::string& version) {
    v1::RegisterDevice cmd;
    cmd.set_product_key(product);
    cmd.set_device_key(key);
    cmd.set_version(version);
    record(decide(w.find_device(product, key), test::cmd(cmd), now()));
  }

  device_state& device(const std::string& key) {
    return *w.find_device("p1", key);
  }

  task_state& task(uint64_t id) { return w.tasks.at(id); }

  /// Creates task `id` from `spec` and enrols `keys`.
  void create_task(uint64_t id, const v1::TaskSpec& spec,
                   const std::vector<std::string>& keys,
                   const std::vector<skipped_device>& skipped = {}) {
    record(test::create_in(w.firmware, id, spec, now()));
    record(decide_enroll(task(id), keys, skipped, now()));
  }

private:
  int64_t tick_ = 0;
};

/// The scenario every test here replays: three firmware, six devices in two
/// products, two asset trees (one deleted), and four tasks: running, an
/// increment task completed with an execution still NOTIFIED, canceled and
/// paused.
scenario build() {
  scenario s;
  // Firmware: 1.0 stays UNVERIFIED, 2.0 VERIFIED, 3.0 deleted.
  s.create_firmware("1.0");
  s.create_firmware("2.0");
  s.create_firmware("3.0");
  v1::SkipVerification skip;
  skip.set_product_key("p1");
  skip.set_version("2.0");
  skip.set_reason("lab tested");
  s.record(decide(s.w.firmware, test::cmd(skip), s.now()));
  v1::DeleteFirmware del;
  del.set_product_key("p1");
  del.set_version("3.0");
  s.record(decide(s.w.firmware, test::cmd(del), false, s.now()));
  s.record(firmware_stream("p1", "1.0"), [](event& e) {
    auto* x = e.mutable_firmware_verification_failed();
    x->set_product_key("p1");
    x->set_version("1.0");
    x->set_reason("d1 timed out");
  });

  // Devices.
  for (const char* key : {"d1", "d2", "d3", "d5", "d6"})
    s.register_device("p1", key, "1.0");
  s.register_device("p1", "d4", "2.0");
  s.register_device("p2", "d1", "1.0");
  s.record(decide(s.device("d1"), test::cmd(v1::DeviceOnline{}), s.now()));
  s.record(decide(s.device("d2"), test::cmd(v1::DeviceOnline{}), s.now()));
  s.record(decide(s.device("d2"), test::cmd(v1::DeviceOffline{}), s.now()));
  v1::SetDeviceTags tags;
  (*tags.mutable_tags())["site"] = "berlin";
  s.record(decide(s.device("d3"), test::cmd(tags), s.now()));
  v1::SetDeviceAttributes attributes;
  (*attributes.mutable_attributes())["hw"] = "rev-b";
  s.record(decide(s.device("d4"), test::cmd(attributes), s.now()));
  v1::ReportVersion report;
  report.set_version("1.1");
  s.record(decide(s.device("d6"), test::cmd(report), s.now()));

  // Asset trees.
  for (const char* id : {"t1", "t2"})
    s.record(tree_stream("p1", id), [id](event& e) {
      auto* t = e.mutable_asset_tree_created()->mutable_tree();
      t->set_tree_id(id);
      t->set_product_key("p1");
      t->set_name(std::string{"tree "} + id);
      auto* root = t->add_nodes();
      root->set_node_id("root");
      root->set_name("site");
      auto* leaf = t->add_nodes();
      leaf->set_node_id("n1");
      leaf->set_parent_id("root");
      leaf->set_device_key("d3");
    });
  s.record(tree_stream("p1", "t2"), [](event& e) {
    e.mutable_asset_tree_deleted()->set_product_key("p1");
    e.mutable_asset_tree_deleted()->set_tree_id("t2");
  });

  // Task 1, running: d1 IN_PROGRESS, d2 FAILED, d3 QUEUED, d4 skipped.
  auto spec = test::make_spec();
  spec.add_source_versions("1.1");
  s.create_task(1, spec, {"d1", "d2", "d3"}, {{"d4", "already on 2.0"}});
  s.record(decide_notified(s.task(1), test::seq(1), s.now()));
  s.record(decide_progress(s.task(1), test::seq(1), 40, "flashing", s.now()));
  s.record(decide_notified(s.task(1), test::seq(2), s.now()));
  s.record(
      decide_failure(s.task(1), test::seq(2), "E_FLASH", "bad block", s.now()));

  // Task 2, increment, completed at its end time with d4 still NOTIFIED.
  auto increment = test::make_spec();
  increment.set_strategy(v1::STRATEGY_INCREMENT);
  s.create_task(2, increment, {"d4"});
  s.record(decide_notified(s.task(2), test::seq(1), s.now()));
  s.record(task_stream(2),
           [](event& e) { e.mutable_task_completed()->set_task_id(2); });

  // Task 3, canceled: d5's execution canceled.
  s.create_task(3, test::make_spec(), {"d5"});
  s.record(decide_cancel(s.task(3), "operator", s.now()));

  // Task 4, paused: d6 QUEUED.
  s.create_task(4, test::make_spec(), {"d6"});
  s.record(decide_pause(s.task(4), "window", s.now()));
  return s;
}

execution_id execution_of(uint64_t task, uint64_t sequence) {
  return execution_id{task_id{task}, execution_seq{sequence}};
}

/// Replays `log` (as stored) into a fresh world; the first violation, if
/// any, is returned.
status replay_all(world& w, const event_list& log) {
  auto stored = encode(log);
  for (size_t i = 0; i < stored.size(); ++i)
    if (auto err = replay(w, sequence_number{i + 1}, stored[i]))
      return err;
  return std::nullopt;
}

/// Appends `e` to a copy of `log` with the next sequence and replays it;
/// returns the violation.
failure violation_of(const event_list& log, event e) {
  auto copy = log;
  e.set_sequence(copy.size() + 1);
  copy.push_back(std::move(e));
  world w;
  auto err = replay_all(w, copy);
  if (!err) {
    ADD_FAILURE() << "the event replays";
    return {};
  }
  return *err;
}

/// Expects `err` to name event `seq` of type `type`, and to say `what`.
void expect_names(const failure& err, uint64_t seq, const std::string& type,
                  const std::string& what) {
  EXPECT_EQ(err.code, errc::corrupted);
  auto prefix = "event " + std::to_string(seq) + " (" + type + "): ";
  EXPECT_EQ(err.message.rfind(prefix, 0), 0u) << err.message;
  EXPECT_NE(err.message.find(what), std::string::npos) << err.message;
}

TEST(Replay, EventsOfEveryAggregateBuildExpectedState) {
  auto s = build();
  const auto& w = s.w;
  EXPECT_EQ(w.last_sequence.value(), s.log.size());

  // Firmware.
  ASSERT_EQ(w.firmware.entries.size(), 2u);
  EXPECT_EQ(w.firmware.find("p1", "1.0")->status,
            v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_EQ(w.firmware.find("p1", "1.0")->verification_failure, "d1 timed out");
  EXPECT_EQ(w.firmware.find("p1", "2.0")->status, v1::FIRMWARE_STATUS_VERIFIED);
  EXPECT_EQ(w.firmware.find("p1", "2.0")->verification_skip_reason,
            "lab tested");
  EXPECT_EQ(w.firmware.find("p1", "3.0"), nullptr);

  // Devices, in registration order.
  std::vector<std::string> order;
  for (const auto& d : w.devices)
    order.push_back(d.product + "/" + d.key);
  EXPECT_EQ(order, (std::vector<std::string>{"p1/d1", "p1/d2", "p1/d3", "p1/d5",
                                             "p1/d6", "p1/d4", "p2/d1"}));
  scenario& m = s;
  // Online state is volatile: no event records it.
  EXPECT_FALSE(m.device("d1").online);
  EXPECT_FALSE(m.device("d2").online);
  EXPECT_EQ(*find_label(m.device("d3").tags, "site"), "berlin");
  EXPECT_EQ(*find_label(m.device("d4").attributes, "hw"), "rev-b");
  EXPECT_EQ(m.device("d4").version, "2.0");
  EXPECT_EQ(m.device("d6").version, "1.1");
  EXPECT_EQ(s.w.find_device("p2", "d1")->version, "1.0");
  EXPECT_EQ(s.w.find_device("p3", "d1"), nullptr);

  // Asset trees.
  ASSERT_EQ(w.trees.size(), 1u);
  const auto& tree = w.trees.at({"p1", "t1"});
  EXPECT_EQ(tree.nodes.size(), 2u);
  EXPECT_EQ(tree.nodes[1].device_key, "d3");

  // Tasks.
  ASSERT_EQ(w.tasks.size(), 4u);
  const auto& t1 = m.task(1);
  EXPECT_EQ(t1.status, v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(test::execution_proto(t1, 1).state(),
            v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(test::execution_proto(t1, 1).progress_text(), "flashing");
  EXPECT_EQ(test::execution_proto(t1, 2).state(), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(test::execution_proto(t1, 2).failure_text(), "bad block");
  EXPECT_EQ(test::execution_proto(t1, 3).state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(t1.counters().skipped, 1u);
  EXPECT_EQ(t1.firmware.version, "2.0");
  EXPECT_EQ(m.task(2).status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(test::execution_proto(m.task(2), 1).state(),
            v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(m.task(3).status, v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(test::execution_proto(m.task(3), 1).state(),
            v1::EXECUTION_STATE_CANCELED);
  EXPECT_EQ(m.task(4).status, v1::TASK_STATUS_PAUSED);
  EXPECT_EQ(m.task(4).status_reason, "window");
}

TEST(Replay, HoldersFollowTheTasksAndOnlineStateIsDropped) {
  auto s = build();
  finish_replay(s.w);
  for (const auto& d : s.w.devices)
    EXPECT_FALSE(d.online) << d.key;
  // Task 1 (running): IN_PROGRESS and QUEUED hold their devices, FAILED not.
  EXPECT_EQ(s.device("d1").active_execution, execution_of(1, 1));
  EXPECT_FALSE(s.device("d2").active_execution);
  EXPECT_EQ(s.device("d3").active_execution, execution_of(1, 3));
  // Task 2 is completed, but its NOTIFIED execution is an upgrade under way:
  // it holds d4 until it ends or times out.
  EXPECT_EQ(s.device("d4").active_execution, execution_of(2, 1));
  // Task 3 is canceled.
  EXPECT_FALSE(s.device("d5").active_execution);
  // Task 4 is paused, not finished: its QUEUED execution holds d6.
  EXPECT_EQ(s.device("d6").active_execution, execution_of(4, 1));
  // The same key in another product is another device.
  EXPECT_FALSE(s.w.find_device("p2", "d1")->active_execution);
}

TEST(Replay, RestartRebuildsState) {
  auto s = build();
  world restarted;
  ASSERT_FALSE(replay_all(restarted, s.log));
  finish_replay(restarted);
  finish_replay(s.w);
  EXPECT_EQ(restarted.last_sequence.value(), s.log.size());
  auto live = digest(s.w);
  auto again = digest(restarted);
  EXPECT_EQ(live.sha256, again.sha256);
  EXPECT_EQ(live.devices, 7u);
  EXPECT_EQ(live.tasks, 4u);
  EXPECT_EQ(live.executions, 6u);
  EXPECT_EQ(live.firmware, 2u);
  EXPECT_EQ(again.executions, live.executions);
  EXPECT_EQ(restarted.device_index, s.w.device_index);
}

TEST(Replay, DigestSeesEveryDifference) {
  auto s = build();
  auto base = digest(s.w).sha256;
  auto changed = [&](std::function<void(world&)> f) {
    auto copy = s.w;
    f(copy);
    return digest(copy).sha256 != base;
  };
  EXPECT_TRUE(changed([](world& w) { w.devices[0].version = "9"; }));
  EXPECT_TRUE(changed(
      [](world& w) { w.devices[2].active_execution = execution_id{}; }));
  EXPECT_TRUE(changed([](world& w) { w.tasks.at(1).counts[1] += 1; }));
  EXPECT_TRUE(
      changed([](world& w) { w.tasks.at(1).executions[2].attempt = 2; }));
  EXPECT_TRUE(changed([](world& w) { w.tasks.at(4).status_reason = "x"; }));
  EXPECT_TRUE(
      changed([](world& w) { w.firmware.entries.begin()->second.url = "u"; }));
  EXPECT_TRUE(changed([](world& w) { w.trees.clear(); }));
  // Online is volatile: not part of the durable state.
  EXPECT_FALSE(changed([](world& w) { w.devices[0].online = false; }));
}

// -- what replay refuses
// -------------------------------------------------------

TEST(ReplayChecks, UnknownEventTypeStopsReplayNamingItsSequence) {
  auto s = build();
  event e; // What a newer version's event type decodes to here.
  e.set_stream("task/1");
  auto err = violation_of(s.log, e);
  expect_names(err, s.log.size() + 1, "unknown", "newer version");
}

TEST(ReplayChecks, EnrolmentMustContinueTheSequence) {
  auto s = build();
  for (uint64_t first : {uint64_t{0}, uint64_t{3}, uint64_t{1} << 40}) {
    SCOPED_TRACE(first);
    auto e = make_event(task_stream(4), at(900));
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(4);
    x->set_first_sequence(first);
    x->add_device_keys("d5");
    auto err = violation_of(s.log, e);
    expect_names(err, s.log.size() + 1, "DevicesEnrolled",
                 "enrols from sequence " + std::to_string(first) +
                     ", expected 2");
  }
}

TEST(ReplayChecks, DeviceHeldByTwoActiveExecutionsStopsReplay) {
  auto s = build();
  // d3 is held by execution 1/3; task 4 enrols it as well.
  auto e = make_event(task_stream(4), at(900));
  auto* x = e.mutable_devices_enrolled();
  x->set_task_id(4);
  x->set_first_sequence(2);
  x->add_device_keys("d3");
  expect_names(violation_of(s.log, e), s.log.size() + 1, "DevicesEnrolled",
               "while execution 1/3 holds it");
}

TEST(ReplayChecks, TransitionsTheRulesDoNotAllowStopReplay) {
  auto s = build();
  // Counters never go negative: an execution succeeds once.
  auto again = make_event(task_stream(3), at(900));
  again.mutable_executions_canceled()->set_task_id(3);
  again.mutable_executions_canceled()->add_sequences(1);
  expect_names(violation_of(s.log, again), s.log.size() + 1,
               "ExecutionsCanceled", "is CANCELED and cannot become CANCELED");
  auto started = make_event(task_stream(1), at(900));
  started.mutable_execution_started()->set_task_id(1);
  started.mutable_execution_started()->set_sequence(3);
  expect_names(violation_of(s.log, started), s.log.size() + 1,
               "ExecutionStarted", "is QUEUED and cannot become IN_PROGRESS");
  auto resumed = make_event(task_stream(1), at(900));
  resumed.mutable_task_resumed()->set_task_id(1);
  expect_names(violation_of(s.log, resumed), s.log.size() + 1, "TaskResumed",
               "cannot be resumed");
  auto unknown = make_event(task_stream(1), at(900));
  unknown.mutable_execution_succeeded()->set_task_id(1);
  unknown.mutable_execution_succeeded()->set_sequence(99);
  expect_names(violation_of(s.log, unknown), s.log.size() + 1,
               "ExecutionSucceeded", "execution 1/99 does not exist");
}

TEST(Replay, ASuccessThatRecordsTheVersionSetsTheDevicesVersion) {
  auto s = build();
  // d1 is IN_PROGRESS in task 1 and reports the target: one event.
  auto xs = events_of(decide_version(s.task(1), test::seq(1), "2.0", s.now(),
                                     /*records_version=*/true));
  ASSERT_FALSE(xs.empty());
  EXPECT_EQ(xs[0].execution_succeeded().device_version(), "2.0");
  s.record(xs);
  world w;
  ASSERT_FALSE(replay_all(w, s.log));
  EXPECT_EQ(w.find_device("p1", "d1")->version, "2.0");
  EXPECT_EQ(w.tasks.at(1).executions[0].state, v1::EXECUTION_STATE_SUCCEEDED);
  // Without it, the device keeps its version (it recorded the report).
  auto t = build();
  t.record(decide_version(t.task(1), test::seq(1), "2.0", t.now()));
  world v;
  ASSERT_FALSE(replay_all(v, t.log));
  EXPECT_EQ(v.find_device("p1", "d1")->version, "1.0");
}

TEST(ReplayChecks, ProgressAndRecordedVersionsOutOfRangeStopReplay) {
  auto s = build();
  // Task 4 is paused; task 1's d3 is QUEUED: notify it, then start it at
  // step 101.
  s.record(decide_notified(s.task(1), test::seq(3), s.now()));
  auto started = make_event(task_stream(1), at(900));
  started.mutable_execution_started()->set_task_id(1);
  started.mutable_execution_started()->set_sequence(3);
  started.mutable_execution_started()->set_step(101);
  expect_names(violation_of(s.log, started), s.log.size() + 1,
               "ExecutionStarted", "starts at step 101, beyond 100");
  auto succeeded = make_event(task_stream(1), at(900));
  succeeded.mutable_execution_succeeded()->set_task_id(1);
  succeeded.mutable_execution_succeeded()->set_sequence(1);
  succeeded.mutable_execution_succeeded()->set_device_version(
      std::string(200, 'v'));
  expect_names(violation_of(s.log, succeeded), s.log.size() + 1,
               "ExecutionSucceeded", "longer than 128 characters");
}

TEST(ReplayChecks, EventsForEntitiesThatDoNotExistStopReplay) {
  auto s = build();
  auto task = make_event(task_stream(99), at(900));
  task.mutable_task_paused()->set_task_id(99);
  expect_names(violation_of(s.log, task), s.log.size() + 1, "TaskPaused",
               "task 99 does not exist");
  auto device = make_event(device_stream("p1", "d99"), at(900));
  device.mutable_device_connected()->set_product_key("p1");
  device.mutable_device_connected()->set_device_key("d99");
  expect_names(violation_of(s.log, device), s.log.size() + 1, "DeviceConnected",
               "device p1/d99 is not registered");
  auto twice = make_event(device_stream("p1", "d1"), at(900));
  twice.mutable_device_registered()->set_product_key("p1");
  twice.mutable_device_registered()->set_device_key("d1");
  twice.mutable_device_registered()->set_version("0.5");
  expect_names(violation_of(s.log, twice), s.log.size() + 1, "DeviceRegistered",
               "registered a second time");
  auto unregistered = make_event(task_stream(4), at(900));
  unregistered.mutable_devices_enrolled()->set_task_id(4);
  unregistered.mutable_devices_enrolled()->set_first_sequence(2);
  unregistered.mutable_devices_enrolled()->add_device_keys("d77");
  expect_names(violation_of(s.log, unregistered), s.log.size() + 1,
               "DevicesEnrolled", "p1/d77, which is not registered");
}

TEST(ReplayChecks, FirmwareInUseIsNotDeleted) {
  auto s = build();
  auto e = make_event(firmware_stream("p1", "2.0"), at(900));
  e.mutable_firmware_deleted()->set_product_key("p1");
  e.mutable_firmware_deleted()->set_version("2.0");
  expect_names(violation_of(s.log, e), s.log.size() + 1, "FirmwareDeleted",
               "while task 1 uses it");
}

TEST(ReplayChecks, LogSequenceMustContinue) {
  auto s = build();
  world w;
  auto stored = encode(s.log);
  ASSERT_FALSE(replay(w, sequence_number{1}, stored[0]));
  // The envelope under key 3 says it is event 3, but 2 is missing.
  event third = s.log[2];
  auto err = replay(w, sequence_number{3}, third.SerializeAsString());
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("continues at sequence 2"), std::string::npos)
      << err->message;
  // Bytes that do not decode.
  err = replay(w, sequence_number{2}, "\xff\xff\xff");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "event 2 does not decode as fota.v1.EventEnvelope");
  // An envelope stored under another sequence than its own.
  err = replay(w, sequence_number{2}, third.SerializeAsString());
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "event 2 carries sequence 3");
}

TEST(ReplayChecks, AViolationLeavesTheWorldUnchanged) {
  auto s = build();
  auto before = digest(s.w).sha256;
  auto e = make_event(task_stream(4), at(900));
  e.set_sequence(s.log.size() + 1);
  auto* x = e.mutable_devices_enrolled();
  x->set_task_id(4);
  x->set_first_sequence(2);
  x->add_device_keys("d5");
  x->add_device_keys("d3"); // held by 1/3
  ASSERT_TRUE(apply(s.w, e));
  EXPECT_EQ(digest(s.w).sha256, before);
  EXPECT_EQ(s.w.last_sequence.value(), s.log.size());
}

/// Decodes the stored bytes of the events of `stream` and applies them to a
/// fresh `State`, as an aggregate restarting alone would.
template <class State>
State replay_stream(const event_list& log, const std::string& stream,
                    State state = {}) {
  for (const auto& bytes : encode(log)) {
    event e;
    EXPECT_TRUE(e.ParseFromString(bytes));
    if (e.stream() == stream) {
      EXPECT_FALSE(apply(state, e));
    }
  }
  return state;
}

TEST(Replay, RestartRebuildsDevice) {
  auto s = build();
  for (const char* key : {"d1", "d2", "d3", "d4", "d6"}) {
    SCOPED_TRACE(key);
    auto stream = device_stream("p1", key);
    // The first event of a device's stream makes it.
    event_list rest;
    device_state restarted;
    bool first = true;
    for (const auto& e : s.log) {
      if (e.stream() != stream)
        continue;
      if (first) {
        restarted = make_device(e);
        first = false;
      } else {
        rest.push_back(e);
      }
    }
    restarted = replay_stream(rest, stream, restarted);
    auto live = s.device(key);
    live.active_execution = execution_id{};
    EXPECT_TRUE(MessageDifferencer::Equals(to_proto(restarted), to_proto(live)))
        << to_proto(restarted).DebugString();
  }
}

TEST(Replay, RestartRebuildsTask) {
  auto s = build();
  for (uint64_t id = 1; id <= 4; ++id) {
    SCOPED_TRACE("task " + std::to_string(id));
    auto stream = task_stream(id);
    task_state restarted;
    event_list rest;
    for (const auto& e : s.log)
      if (e.stream() == stream) {
        if (e.has_task_created())
          restarted = make_task(e);
        else
          rest.push_back(e);
      }
    restarted = replay_stream(rest, stream, std::move(restarted));
    const auto& live = s.task(id);
    EXPECT_TRUE(MessageDifferencer::Equals(to_proto(restarted.summary()),
                                           to_proto(live.summary())));
    EXPECT_EQ(restarted.counts, live.counts);
    ASSERT_EQ(restarted.executions.size(), live.executions.size());
    for (uint64_t q = 1; q <= live.executions.size(); ++q)
      EXPECT_TRUE(MessageDifferencer::Equals(
          test::execution_proto(restarted, q), test::execution_proto(live, q)));
  }
}

} // namespace
