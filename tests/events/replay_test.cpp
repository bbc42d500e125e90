/// Tests of replay: events of every aggregate applied to a `world`,
/// `finish_replay`, and "restart rebuilds state": the log encoded to bytes,
/// decoded and replayed into a fresh world equals the world built live.
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
      apply(w, e);
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
    record(decide(w.firmware, cmd, now()));
  }

  void register_device(const std::string& product, const std::string& key,
                       const std::string& version) {
    v1::RegisterDevice cmd;
    cmd.set_product_key(product);
    cmd.set_device_key(key);
    cmd.set_version(version);
    record(decide(w.find_device(product, key), cmd, now()));
  }

  device_state& device(const std::string& key) {
    return *w.find_device("p1", key);
  }

  task_state& task(uint64_t id) { return w.tasks.at(id); }

  /// Creates task `id` from `spec` and enrols `keys`.
  void create_task(uint64_t id, const v1::TaskSpec& spec,
                   const std::vector<std::string>& keys,
                   const std::vector<v1::SkippedDevice>& skipped = {}) {
    spec_context ctx;
    ctx.find_firmware = [this](const std::string& p, const std::string& v) {
      return w.firmware.find(p, v);
    };
    record(decide_create(id, spec, ctx, now()));
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
  v1::VerifyFirmware verify;
  verify.set_product_key("p1");
  verify.set_version("2.0");
  s.record(decide(s.w.firmware, verify, s.now()));
  v1::DeleteFirmware del;
  del.set_product_key("p1");
  del.set_version("3.0");
  s.record(decide(s.w.firmware, del, false, s.now()));
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
  s.record(decide(s.device("d1"), v1::DeviceOnline{}, s.now()));
  s.record(decide(s.device("d2"), v1::DeviceOnline{}, s.now()));
  s.record(decide(s.device("d2"), v1::DeviceOffline{}, s.now()));
  v1::SetDeviceTags tags;
  (*tags.mutable_tags())["site"] = "berlin";
  s.record(decide(s.device("d3"), tags, s.now()));
  v1::SetDeviceAttributes attributes;
  (*attributes.mutable_attributes())["hw"] = "rev-b";
  s.record(decide(s.device("d4"), attributes, s.now()));
  v1::ReportVersion report;
  report.set_version("1.1");
  s.record(decide(s.device("d6"), report, s.now()));

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
  v1::SkippedDevice skipped;
  skipped.set_device_key("d4");
  skipped.set_reason("already on 2.0");
  s.create_task(1, spec, {"d1", "d2", "d3"}, {skipped});
  s.record(decide_notified(s.task(1), 1, s.now()));
  s.record(decide_progress(s.task(1), 1, 40, "flashing", s.now()));
  s.record(decide_notified(s.task(1), 2, s.now()));
  s.record(decide_failure(s.task(1), 2, "E_FLASH", "bad block", s.now()));

  // Task 2, increment, completed at its end time with d4 still NOTIFIED.
  auto increment = test::make_spec();
  increment.set_strategy(v1::STRATEGY_INCREMENT);
  s.create_task(2, increment, {"d4"});
  s.record(decide_notified(s.task(2), 1, s.now()));
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

uint64_t execution_of(uint64_t task, uint64_t sequence) {
  return make_execution_id(task_id{task}, sequence).value();
}

/// Expects `x` and `y` to hold the same state, aggregate by aggregate.
void expect_same(const world& x, const world& y) {
  EXPECT_EQ(x.last_sequence, y.last_sequence);
  ASSERT_EQ(x.firmware.entries.size(), y.firmware.entries.size());
  for (const auto& [key, fw] : x.firmware.entries) {
    const auto* other = y.firmware.find(key.first, key.second);
    ASSERT_NE(other, nullptr) << key.first << "/" << key.second;
    EXPECT_TRUE(MessageDifferencer::Equals(fw, *other))
        << fw.DebugString() << other->DebugString();
  }
  ASSERT_EQ(x.devices.size(), y.devices.size());
  for (size_t i = 0; i < x.devices.size(); ++i) {
    const auto& a = x.devices[i];
    const auto& b = y.devices[i];
    EXPECT_TRUE(MessageDifferencer::Equals(a.to_proto(), b.to_proto()))
        << a.to_proto().DebugString() << b.to_proto().DebugString();
    EXPECT_EQ(a.tags, b.tags);
    EXPECT_EQ(a.attributes, b.attributes);
  }
  EXPECT_EQ(x.device_index, y.device_index);
  ASSERT_EQ(x.trees.size(), y.trees.size());
  for (const auto& [key, tree] : x.trees) {
    auto i = y.trees.find(key);
    ASSERT_NE(i, y.trees.end()) << key.second;
    EXPECT_TRUE(MessageDifferencer::Equals(tree, i->second));
  }
  ASSERT_EQ(x.tasks.size(), y.tasks.size());
  for (const auto& [id, a] : x.tasks) {
    SCOPED_TRACE("task " + std::to_string(id));
    auto i = y.tasks.find(id);
    ASSERT_NE(i, y.tasks.end());
    const auto& b = i->second;
    EXPECT_TRUE(MessageDifferencer::Equals(a.summary(), b.summary()))
        << a.summary().DebugString() << b.summary().DebugString();
    EXPECT_TRUE(MessageDifferencer::Equals(a.firmware, b.firmware));
    EXPECT_EQ(a.counts, b.counts);
    ASSERT_EQ(a.executions.size(), b.executions.size());
    for (uint64_t s = 1; s <= a.executions.size(); ++s)
      EXPECT_TRUE(MessageDifferencer::Equals(a.execution_proto(s),
                                             b.execution_proto(s)))
          << a.execution_proto(s).DebugString()
          << b.execution_proto(s).DebugString();
    ASSERT_EQ(a.skipped.size(), b.skipped.size());
    for (size_t k = 0; k < a.skipped.size(); ++k)
      EXPECT_TRUE(MessageDifferencer::Equals(a.skipped[k], b.skipped[k]));
  }
}

TEST(Replay, EventsOfEveryAggregateBuildExpectedState) {
  auto s = build();
  const auto& w = s.w;
  EXPECT_EQ(w.last_sequence, s.log.size());

  // Firmware.
  ASSERT_EQ(w.firmware.entries.size(), 2u);
  EXPECT_EQ(w.firmware.find("p1", "1.0")->status(),
            v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_EQ(w.firmware.find("p1", "1.0")->verification_failure(),
            "d1 timed out");
  EXPECT_EQ(w.firmware.find("p1", "2.0")->status(),
            v1::FIRMWARE_STATUS_VERIFIED);
  EXPECT_EQ(w.firmware.find("p1", "3.0"), nullptr);

  // Devices, in registration order.
  std::vector<std::string> order;
  for (const auto& d : w.devices)
    order.push_back(d.product + "/" + d.key);
  EXPECT_EQ(order, (std::vector<std::string>{"p1/d1", "p1/d2", "p1/d3", "p1/d5",
                                             "p1/d6", "p1/d4", "p2/d1"}));
  scenario& m = s;
  EXPECT_TRUE(m.device("d1").online);
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
  EXPECT_EQ(tree.nodes_size(), 2);
  EXPECT_EQ(tree.nodes(1).device_key(), "d3");

  // Tasks.
  ASSERT_EQ(w.tasks.size(), 4u);
  const auto& t1 = m.task(1);
  EXPECT_EQ(t1.status, v1::TASK_STATUS_RUNNING);
  EXPECT_EQ(t1.execution_proto(1).state(), v1::EXECUTION_STATE_IN_PROGRESS);
  EXPECT_EQ(t1.execution_proto(1).progress_text(), "flashing");
  EXPECT_EQ(t1.execution_proto(2).state(), v1::EXECUTION_STATE_FAILED);
  EXPECT_EQ(t1.execution_proto(2).failure_text(), "bad block");
  EXPECT_EQ(t1.execution_proto(3).state(), v1::EXECUTION_STATE_QUEUED);
  EXPECT_EQ(t1.counters().skipped(), 1u);
  EXPECT_EQ(t1.firmware.version(), "2.0");
  EXPECT_EQ(m.task(2).status, v1::TASK_STATUS_COMPLETED);
  EXPECT_EQ(m.task(2).execution_proto(1).state(), v1::EXECUTION_STATE_NOTIFIED);
  EXPECT_EQ(m.task(3).status, v1::TASK_STATUS_CANCELED);
  EXPECT_EQ(m.task(3).execution_proto(1).state(), v1::EXECUTION_STATE_CANCELED);
  EXPECT_EQ(m.task(4).status, v1::TASK_STATUS_PAUSED);
  EXPECT_EQ(m.task(4).status_reason, "window");
}

TEST(Replay, EventsWithoutTargetChangeNothing) {
  auto s = build();
  auto before = s.w;
  event nothing; // no payload
  nothing.set_sequence(1000);
  apply(s.w, nothing);
  auto unknown_task = make_event(task_stream(99), at());
  unknown_task.mutable_task_paused()->set_task_id(99);
  apply(s.w, unknown_task);
  auto unknown_device = make_event(device_stream("p1", "d99"), at());
  unknown_device.mutable_device_connected()->set_product_key("p1");
  unknown_device.mutable_device_connected()->set_device_key("d99");
  apply(s.w, unknown_device);
  before.last_sequence = 1000;
  expect_same(before, s.w);
  EXPECT_EQ(s.w.tasks.count(99), 0u);
}

TEST(Replay, ReRegisteredDeviceKeepsItsPlace) {
  scenario s;
  s.register_device("p1", "d1", "1.0");
  s.register_device("p1", "d2", "1.0");
  // A second DeviceRegistered for a known device (e.g. an older log) does
  // not add or move it.
  auto e = make_event(device_stream("p1", "d1"), at(9));
  e.mutable_device_registered()->set_product_key("p1");
  e.mutable_device_registered()->set_device_key("d1");
  e.mutable_device_registered()->set_version("0.5");
  s.record(event_list{e});
  ASSERT_EQ(s.w.devices.size(), 2u);
  EXPECT_EQ(s.w.devices[0].key, "d1");
}

TEST(Replay, FinishReplayTakesActiveExecutionsFromTasks) {
  auto s = build();
  // Live, the device actors set these; replay must rebuild them.
  s.device("d2").active_execution = 12345;
  finish_replay(s.w);
  for (const auto& d : s.w.devices)
    EXPECT_FALSE(d.online) << d.key;
  // Task 1 (running): IN_PROGRESS and QUEUED hold their devices, FAILED not.
  EXPECT_EQ(s.device("d1").active_execution, execution_of(1, 1));
  EXPECT_EQ(s.device("d2").active_execution, 0u);
  EXPECT_EQ(s.device("d3").active_execution, execution_of(1, 3));
  // Task 2 is completed, but its NOTIFIED execution is an upgrade under way:
  // it holds d4 until it ends or times out.
  EXPECT_EQ(s.device("d4").active_execution, execution_of(2, 1));
  // Task 3 is canceled.
  EXPECT_EQ(s.device("d5").active_execution, 0u);
  // Task 4 is paused, not finished: its QUEUED execution holds d6.
  EXPECT_EQ(s.device("d6").active_execution, execution_of(4, 1));
  // The same key in another product is another device.
  EXPECT_EQ(s.w.find_device("p2", "d1")->active_execution, 0u);
}

TEST(Replay, RestartRebuildsState) {
  auto s = build();
  // What the journal stores: one encoded envelope per sequence.
  auto stored = encode(s.log);
  ASSERT_EQ(stored.size(), s.log.size());

  world restarted;
  for (const auto& bytes : stored) {
    event e;
    ASSERT_TRUE(e.ParseFromString(bytes));
    apply(restarted, e);
  }
  finish_replay(restarted);
  finish_replay(s.w);
  expect_same(s.w, restarted);
  EXPECT_EQ(restarted.last_sequence, s.log.size());
}

/// Decodes the stored bytes of the events of `stream` and applies them to a
/// fresh `State`, as an aggregate restarting alone would.
template <class State>
State replay_stream(const event_list& log, const std::string& stream) {
  State state;
  for (const auto& bytes : encode(log)) {
    event e;
    EXPECT_TRUE(e.ParseFromString(bytes));
    if (e.stream() == stream)
      apply(state, e);
  }
  return state;
}

TEST(Replay, RestartRebuildsFirmwareCatalog) {
  auto s = build();
  firmware_catalog restarted;
  for (const auto& bytes : encode(s.log)) {
    event e;
    ASSERT_TRUE(e.ParseFromString(bytes));
    apply(restarted, e); // ignores other streams
  }
  ASSERT_EQ(restarted.entries.size(), s.w.firmware.entries.size());
  for (const auto& [key, fw] : s.w.firmware.entries)
    EXPECT_TRUE(
        MessageDifferencer::Equals(fw, *restarted.find(key.first, key.second)));
}

TEST(Replay, RestartRebuildsDevice) {
  auto s = build();
  for (const char* key : {"d1", "d2", "d3", "d4", "d6"}) {
    SCOPED_TRACE(key);
    auto restarted =
        replay_stream<device_state>(s.log, device_stream("p1", key));
    EXPECT_TRUE(MessageDifferencer::Equals(restarted.to_proto(),
                                           s.device(key).to_proto()))
        << restarted.to_proto().DebugString();
  }
}

TEST(Replay, RestartRebuildsTask) {
  auto s = build();
  for (uint64_t id = 1; id <= 4; ++id) {
    SCOPED_TRACE("task " + std::to_string(id));
    auto restarted = replay_stream<task_state>(s.log, task_stream(id));
    const auto& live = s.task(id);
    EXPECT_TRUE(
        MessageDifferencer::Equals(restarted.summary(), live.summary()));
    EXPECT_EQ(restarted.counts, live.counts);
    ASSERT_EQ(restarted.executions.size(), live.executions.size());
    for (uint64_t q = 1; q <= live.executions.size(); ++q)
      EXPECT_TRUE(MessageDifferencer::Equals(restarted.execution_proto(q),
                                             live.execution_proto(q)));
  }
}

} // namespace
