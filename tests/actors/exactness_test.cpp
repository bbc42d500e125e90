/// Persist, then act, and a replay that checks itself, tested on a whole
/// node: no reply, push or release leaves an actor before the events behind
/// it are durable (the journal is held back to show it), the log's order
/// follows the rules, a crafted log stops the node naming the event, and a
/// running node and its log replayed into a fresh node have one digest.
#include "events/codec.hpp"
#include "events/device.hpp"
#include "events/firmware.hpp"
#include "events/task.hpp"
#include "storage/event_log.hpp"
#include "tests/actors/test_node.hpp"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::execution_id;
using fota::test::product;

class PersistThenAct : public fota::test::node_fixture {
protected:
  void SetUp() override { start_node(); }
};

class ReplayChecksItself : public fota::test::node_fixture {
protected:
  /// Firmware p/2.0.0, verified, a device and a task over it: a log that
  /// replays, to which a test adds crafted events.
  event_list valid_log();
};

std::vector<std::string> keys_of(const std::vector<v1::UpgradePush>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs)
    out.push_back(x.device_key());
  return out;
}

// -- persist, then act --------------------------------------------------------

TEST_F(PersistThenAct, ClientHearsOkOnlyOnceItsEventsAreDurable) {
  v1::RegisterDevice req;
  req.set_product_key(product);
  req.set_device_key("a");
  req.set_version("1.0.0");
  auto reply = send_request(frame_of(req));
  run_holding_journal();
  EXPECT_FALSE(*reply) << "a reply left before DeviceRegistered was durable";
  run_journal();
  run_holding_journal();
  ASSERT_TRUE(*reply);
  EXPECT_EQ((*reply)->status(), v1::STATUS_CODE_OK) << (*reply)->message();
}

TEST_F(PersistThenAct, PushLeavesOnlyOnceItsNotifiedEventIsDurable) {
  create_firmware_verified("2.0.0");
  ASSERT_EQ(register_device("b", "1.0.0").status(), v1::STATUS_CODE_OK);
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_TRUE(gateway.pushes->upgrades().empty());
  // b comes online (volatile, no event): the task hears it and decides to
  // push, which writes ExecutionNotified first.
  v1::DeviceOnline req;
  req.set_product_key(product);
  req.set_device_key("b");
  auto reply = send_request(frame_of(req), gateway.actor);
  run_holding_journal();
  EXPECT_TRUE(gateway.pushes->upgrades().empty())
      << "the push left before its ExecutionNotified was durable";
  run_journal();
  run_holding_journal();
  sched.run();
  EXPECT_EQ(keys_of(gateway.pushes->upgrades()),
            (std::vector<std::string>{"b"}));
  EXPECT_EQ(execution_of(id, "b").state(), v1::EXECUTION_STATE_NOTIFIED);
}

TEST_F(PersistThenAct, DeviceIsFreeOnlyOnceItsTerminalEventIsDurable) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  register_online("a", "1.0.0");
  auto first = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(report_progress("a", execution_id(first, 1), 50).status(),
            v1::STATUS_CODE_OK);
  // a reports 2.0.0: the task decides success, and ExecutionSucceeded (which
  // records a's version too) waits for the journal.
  v1::ReportVersion req;
  req.set_product_key(product);
  req.set_device_key("a");
  req.set_version("2.0.0");
  auto reply = send_request(frame_of(req));
  run_holding_journal();
  EXPECT_FALSE(*reply) << "a reply left before ExecutionSucceeded was durable";
  // Meanwhile a second task wants a, still on 1.0.0 as far as anything
  // durable says. The first task has not released it: its terminal event is
  // not durable yet.
  auto second =
      send_request(create_task_frame(snapshot_spec("1.0.0", "3.0.0")));
  run_holding_journal();
  sched.run();
  ASSERT_TRUE(*second);
  ASSERT_EQ((*second)->status(), v1::STATUS_CODE_OK) << (*second)->message();
  auto id2 = (*second)->task().task_id();
  auto s = skipped(id2);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].device_key(), "a");
  EXPECT_NE(
      s[0].reason().find("busy in execution " + std::to_string(first) + "/1"),
      std::string::npos)
      << s[0].reason();
  // Now durable, it is released.
  EXPECT_EQ(execution_of(first, "a").state(), v1::EXECUTION_STATE_SUCCEEDED);
  EXPECT_EQ(get_device("a").active_execution_id(), 0u);
}

TEST_F(PersistThenAct, IncrementTaskNeverEnrolsBeforeItsCreationIsDurable) {
  create_firmware_verified("2.0.0");
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  // The task is being created while devices register and join it.
  auto created = send_request(create_task_frame(spec));
  std::vector<reply> registered;
  for (const auto* k : {"j1", "j2", "j3"}) {
    v1::RegisterDevice req;
    req.set_product_key(product);
    req.set_device_key(k);
    req.set_version("1.0.0");
    registered.push_back(send_request(frame_of(req)));
    run_holding_journal();
    run_journal();
  }
  sched.run();
  ASSERT_TRUE(*created);
  auto id = (*created)->task().task_id();
  EXPECT_EQ(details(id).executions_size(), 3);
  // In the log, the task's creation precedes every enrolment of it.
  stop_node();
  storage::options opts;
  opts.path = (dir / "db").string();
  auto log = storage::event_log::open(opts);
  ASSERT_TRUE(log) << log.error().message;
  int64_t created_at = -1;
  std::vector<int64_t> enrolled_at;
  (*log)->read(
      sequence_number{1}, [&](sequence_number seq, std::string_view bytes) {
        event e;
        e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
        if (e.has_task_created() && e.task_created().task_id() == id)
          created_at = static_cast<int64_t>(seq.value());
        if (e.has_devices_enrolled() && e.devices_enrolled().task_id() == id)
          enrolled_at.push_back(static_cast<int64_t>(seq.value()));
        return true;
      });
  log->reset();
  ASSERT_GT(created_at, 0);
  ASSERT_FALSE(enrolled_at.empty());
  for (auto at : enrolled_at)
    EXPECT_GT(at, created_at);
  // And the log replays.
  start_node();
  EXPECT_EQ(details(id).executions_size(), 3);
}

// -- replay checks itself -----------------------------------------------------

/// Writes `events` (sequences stamped by the log) into a fresh database in
/// the fixture's directory.
void write_log(const std::filesystem::path& dir, const event_list& events) {
  storage::options opts;
  opts.path = (dir / "db").string();
  auto log = storage::event_log::open(opts);
  ASSERT_TRUE(log) << log.error().message;
  auto appended = (*log)->append(encode(events));
  ASSERT_TRUE(appended) << appended.error().message;
}

event_list ReplayChecksItself::valid_log() {
  auto t = from_millis(test::wall_clock_base_ms);
  event_list out;
  firmware_catalog catalog;
  v1::Firmware fw = firmware_of("2.0.0");
  create_firmware cf{fw.product_key(), fw.version(), fw.url(), fw.size(),
                     fw.sha256(),      "",           ""};
  auto created = std::move(decide(catalog, cf, firmware_policy{}, t)).value();
  apply(catalog, created[0]);
  out.insert(out.end(), created.begin(), created.end());
  auto skipped =
      std::move(decide(catalog, skip_verification{product, "2.0.0", "lab"}, t))
          .value();
  apply(catalog, skipped[0]);
  out.insert(out.end(), skipped.begin(), skipped.end());
  auto reg =
      std::move(
          decide(nullptr,
                 fota::register_device{product, "d1", "1.0.0", {}, {}, {}}, t))
          .value();
  out.insert(out.end(), reg.begin(), reg.end());
  auto spec = from_proto(snapshot_spec("1.0.0", "2.0.0"));
  auto task = std::move(decide_create(task_id{1}, spec,
                                      catalog.find(product, "2.0.0"), t))
                  .value();
  out.insert(out.end(), task.begin(), task.end());
  return out;
}

TEST_F(ReplayChecksItself, CraftedEnrolmentStopsTheNodeNamingTheSequence) {
  for (uint64_t first : {uint64_t{0}, uint64_t{1} << 40}) {
    SCOPED_TRACE(first);
    std::filesystem::remove_all(dir / "db");
    auto log = valid_log();
    auto e = make_event(task_stream(1), from_millis(test::wall_clock_base_ms));
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(1);
    x->set_first_sequence(first);
    x->add_device_keys("d1");
    log.push_back(e);
    write_log(dir, log);
    node_config nc;
    nc.data_dir = (dir / "db").string();
    nc.detach_journal = false;
    nc.clock = clock;
    auto n = node::start(sys, nc);
    ASSERT_FALSE(n) << "the node started on a crafted log";
    EXPECT_EQ(n.error().code, errc::corrupted);
    EXPECT_NE(n.error().message.find("event 5 (DevicesEnrolled): task 1 "
                                     "enrols from sequence " +
                                     std::to_string(first) + ", expected 1"),
              std::string::npos)
        << n.error().message;
  }
}

TEST_F(ReplayChecksItself, EventOfANewerVersionStopsTheNode) {
  auto log = valid_log();
  // A payload this version does not know decodes as no payload at all.
  event unknown;
  unknown.set_stream("task/1");
  unknown.set_time_ms(test::wall_clock_base_ms);
  auto bytes = unknown.SerializeAsString();
  // Field 99, a newer event type: tag (99 << 3 | 2) as a varint, then an
  // empty length.
  bytes += std::string("\x9a\x06\x00", 3);
  event parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_EQ(parsed.payload_case(), event::PAYLOAD_NOT_SET);
  log.push_back(parsed);
  write_log(dir, log);
  node_config nc;
  nc.data_dir = (dir / "db").string();
  nc.detach_journal = false;
  nc.clock = clock;
  auto n = node::start(sys, nc);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("event 5 (unknown)"), std::string::npos)
      << n.error().message;
  EXPECT_NE(n.error().message.find("newer version"), std::string::npos);
}

TEST_F(ReplayChecksItself, DeviceHeldByTwoExecutionsStopsTheNode) {
  auto log = valid_log();
  auto t = from_millis(test::wall_clock_base_ms);
  auto enrol = [&](uint64_t task) {
    auto e = make_event(task_stream(task), t);
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(task);
    x->set_first_sequence(1);
    x->add_device_keys("d1");
    return e;
  };
  log.push_back(enrol(1));
  auto second = log[3]; // TaskCreated of task 1, as task 2
  second.mutable_task_created()->set_task_id(2);
  second.set_stream(task_stream(2));
  log.push_back(second);
  log.push_back(enrol(2));
  write_log(dir, log);
  node_config nc;
  nc.data_dir = (dir / "db").string();
  nc.detach_journal = false;
  nc.clock = clock;
  auto n = node::start(sys, nc);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("event 7 (DevicesEnrolled)"),
            std::string::npos)
      << n.error().message;
  EXPECT_NE(n.error().message.find("while execution 1/1 holds it"),
            std::string::npos)
      << n.error().message;
}

TEST_F(ReplayChecksItself, RunningNodeAndReplayedLogHaveOneDigest) {
  start_node();
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  for (const auto* k : {"a", "b", "c", "d", "e", "f"})
    register_online(k, "1.0.0");
  ASSERT_EQ(register_device("g", "1.0.0").status(), v1::STATUS_CODE_OK);
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  spec.mutable_retry()->set_max_retries(2);
  spec.mutable_retry()->set_interval_seconds(60);
  auto one = create_task_id(spec);
  upgrade("a", execution_id(one, 1), "2.0.0");
  ASSERT_EQ(report_progress("b", execution_id(one, 2), 30, "copying").status(),
            v1::STATUS_CODE_OK);
  ASSERT_EQ(report_failure("c", execution_id(one, 3), "E_FLASH", "bad block")
                .status(),
            v1::STATUS_CODE_OK);
  // An increment task over 2.0.0 picks up a as it is.
  auto inc = snapshot_spec("2.0.0", "3.0.0");
  inc.set_strategy(v1::STRATEGY_INCREMENT);
  auto two = create_task_id(inc);
  // A canceled and a paused task.
  auto dr = snapshot_spec("1.0.0", "3.0.0");
  dr.set_method(v1::METHOD_DEVICE_REQUEST);
  auto three = create_task_id(dr);
  ASSERT_EQ(cancel(three).status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(pause(two).status(), v1::STATUS_CODE_OK);
  auto live = state_digest();
  EXPECT_EQ(live.devices(), 7u);
  EXPECT_EQ(live.tasks(), 3u);
  EXPECT_EQ(live.firmware(), 2u);
  EXPECT_GT(live.executions(), 0u);
  EXPECT_EQ(live.sha256().size(), 64u);
  stop_node();
  start_node();
  auto replayed = state_digest();
  EXPECT_EQ(replayed.sha256(), live.sha256());
  EXPECT_EQ(replayed.executions(), live.executions());
  EXPECT_EQ(replayed.last_sequence(), live.last_sequence());
  // The digest sees a change.
  upgrade("b", execution_id(one, 2), "2.0.0");
  EXPECT_NE(state_digest().sha256(), live.sha256());
}

} // namespace
