/// Snapshots on a whole node: a world replayed from a realistic log
/// round-trips through the snapshot format; a node started from a snapshot
/// and the events after it has the digest of a full replay; a snapshot in a
/// newer format, garbage, one beyond the log's end or one that contradicts
/// itself is refused with a precise reason and the node replays from zero;
/// and a process killed while it writes snapshots loses nothing.
#include "actors/snapshotter.hpp"
#include "events/device.hpp"
#include "events/digest.hpp"
#include "events/event.hpp"
#include "events/replay.hpp"
#include "events/snapshot.hpp"
#include "fota/v1/snapshot.pb.h"
#include "storage/event_log.hpp"
#include "tests/actors/test_node.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using fota::test::execution_id;
using fota::test::product;

/// Opens the log at `path` for writing (without fsync).
std::unique_ptr<storage::event_log> open_log(const std::string& path,
                                             bool sync = false) {
  storage::options opts{path, sync};
  opts.min_free_space = 0;
  auto log = storage::event_log::open(opts);
  EXPECT_TRUE(log) << log.error().message;
  return log ? std::move(*log) : nullptr;
}

/// The whole log at `path` replayed from its first event.
world replay_all(const storage::event_log& log) {
  world w;
  auto st = log.read(sequence_number{1},
                     [&](sequence_number seq, std::string_view bytes) {
                       auto err = replay(w, seq, bytes);
                       EXPECT_FALSE(err) << err->message;
                       return !err;
                     });
  EXPECT_FALSE(st) << st->message;
  return w;
}

class Snapshots : public fota::test::node_fixture {
protected:
  std::string db() const { return (dir / "db").string(); }

  /// A log with what a node meets in practice: verified and unverified
  /// firmware, a verification run, devices with tags, attributes and
  /// trees, a snapshot task with a success, progress, a failure waiting for
  /// its retry, an increment task that is paused, a device-request task
  /// with an offer out, and a canceled task.
  void build_history() {
    start_node();
    create_firmware_verified("2.0.0");
    create_firmware_verified("3.0.0");
    v1::CreateFirmware unverified;
    *unverified.mutable_firmware() = firmware_of("4.0.0");
    ASSERT_EQ(call(unverified).status(), v1::STATUS_CODE_OK);
    for (const auto* k : {"a", "b", "c", "d", "e", "f", "v"})
      register_online(k, "1.0.0");
    ASSERT_EQ(register_device("g", "1.0.0").status(), v1::STATUS_CODE_OK);
    ASSERT_EQ(register_device("h", "2.0.0").status(), v1::STATUS_CODE_OK);
    v1::SetDeviceTags tags;
    tags.set_product_key(product);
    tags.set_device_key("a");
    (*tags.mutable_tags())["ring"] = "canary";
    (*tags.mutable_tags())["site"] = "berlin";
    ASSERT_EQ(call(tags).status(), v1::STATUS_CODE_OK);
    v1::SetDeviceAttributes attributes;
    attributes.set_product_key(product);
    attributes.set_device_key("g");
    (*attributes.mutable_attributes())["model"] = "x1";
    ASSERT_EQ(call(attributes).status(), v1::STATUS_CODE_OK);
    v1::CreateAssetTree tree;
    auto* t = tree.mutable_tree();
    t->set_tree_id("plant");
    t->set_product_key(product);
    t->set_name("Plant");
    auto* root = t->add_nodes();
    root->set_node_id("root");
    root->set_name("Root");
    auto* child = t->add_nodes();
    child->set_node_id("n1");
    child->set_parent_id("root");
    child->set_name("Line 1");
    child->set_device_key("e");
    ASSERT_EQ(call(tree).status(), v1::STATUS_CODE_OK);
    v1::VerifyFirmware verify;
    verify.set_product_key(product);
    verify.set_version("4.0.0");
    verify.add_device_keys("v");
    ASSERT_EQ(call(verify).status(), v1::STATUS_CODE_OK);
    auto spec = snapshot_spec("1.0.0", "2.0.0");
    spec.mutable_retry()->set_max_retries(2);
    spec.mutable_retry()->set_interval_seconds(600);
    one = create_task_id(spec);
    upgrade("a", execution_id(one, 1), "2.0.0");
    ASSERT_EQ(
        report_progress("b", execution_id(one, 2), 30, "copying").status(),
        v1::STATUS_CODE_OK);
    ASSERT_EQ(report_failure("c", execution_id(one, 3), "E_FLASH", "bad block")
                  .status(),
              v1::STATUS_CODE_OK);
    auto inc = snapshot_spec("2.0.0", "3.0.0");
    inc.set_strategy(v1::STRATEGY_INCREMENT);
    two = create_task_id(inc);
    ASSERT_EQ(pause(two).status(), v1::STATUS_CODE_OK);
    auto dr = snapshot_spec("2.0.0", "3.0.0");
    dr.set_method(v1::METHOD_DEVICE_REQUEST);
    three = create_task_id(dr);
    v1::RequestUpgrade ask;
    ask.set_product_key(product);
    ask.set_device_key("h");
    auto offered = call(ask);
    ASSERT_EQ(offered.status(), v1::STATUS_CODE_OK) << offered.message();
    auto canceled = snapshot_spec("1.0.0", "3.0.0");
    canceled.set_method(v1::METHOD_DEVICE_REQUEST);
    auto four = create_task_id(canceled);
    ASSERT_EQ(cancel(four).status(), v1::STATUS_CODE_OK);
  }

  /// Writes a snapshot of the running node's log and waits for it.
  void snapshot_now() {
    auto* s = the_node->snapshots();
    ASSERT_NE(s, nullptr);
    s->request();
    s->wait_idle();
    auto stats = s->stats();
    ASSERT_TRUE(stats.last_error.empty()) << stats.last_error;
  }

  /// Replaces the stored snapshot with `bytes` under `sequence`.
  void store_snapshot(uint64_t sequence, std::string bytes) {
    auto log = open_log(db());
    ASSERT_TRUE(log);
    auto err = log->put_snapshot(
        storage::snapshot{sequence_number{sequence}, std::move(bytes)});
    ASSERT_FALSE(err) << err->message;
  }

  /// The snapshot of the whole log as it is now (the node stopped).
  v1::Snapshot current_snapshot() {
    auto log = open_log(db());
    auto w = replay_all(*log);
    v1::Snapshot out;
    EXPECT_TRUE(out.ParseFromString(encode_snapshot(w)));
    return out;
  }

  /// Starts the node and checks that it ignored its snapshot for `why`,
  /// replayed every event and has the digest `expected`.
  void expect_full_replay(const std::string& why,
                          const v1::StateDigest& expected) {
    start_node();
    const auto& rec = the_node->recovery();
    EXPECT_FALSE(rec.snapshot);
    EXPECT_NE(rec.snapshot_ignored.find(why), std::string::npos)
        << rec.snapshot_ignored;
    EXPECT_EQ(rec.events, expected.last_sequence());
    EXPECT_EQ(state_digest().sha256(), expected.sha256());
  }

  uint64_t one = 0;
  uint64_t two = 0;
  uint64_t three = 0;
};

// -- the format ---------------------------------------------------------------

TEST_F(Snapshots, ReplayedWorldRoundTripsThroughTheFormat) {
  build_history();
  stop_node();
  auto log = open_log(db());
  auto w = replay_all(*log);
  ASSERT_GT(w.last_sequence.value(), 30u);
  auto bytes = encode_snapshot(w);
  auto back = decode_snapshot(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(digest(*back).sha256, digest(w).sha256);
  EXPECT_EQ(back->last_sequence, w.last_sequence);
  // What the digest leaves out comes back as well: byte for byte.
  EXPECT_EQ(encode_snapshot(*back), bytes);
  EXPECT_EQ(back->device_index, w.device_index);
  EXPECT_EQ(back->task_created_at, w.task_created_at);
  EXPECT_EQ(back->verification_started_at, w.verification_started_at);
  ASSERT_EQ(back->devices.size(), w.devices.size());
  for (size_t i = 0; i < w.devices.size(); ++i) {
    SCOPED_TRACE(w.devices[i].key);
    EXPECT_EQ(back->devices[i].online, w.devices[i].online);
    EXPECT_EQ(back->devices[i].tags, w.devices[i].tags);
    EXPECT_EQ(back->devices[i].attributes, w.devices[i].attributes);
    EXPECT_EQ(back->devices[i].active_execution, w.devices[i].active_execution);
  }
  ASSERT_EQ(back->tasks.size(), 5u);
  for (const auto& [id, t] : w.tasks) {
    SCOPED_TRACE(id);
    const auto& u = back->tasks.at(id);
    EXPECT_EQ(u.counts, t.counts);
    EXPECT_EQ(u.retries_pending, t.retries_pending);
    EXPECT_EQ(u.skipped, t.skipped);
    EXPECT_EQ(u.by_device.size(), t.by_device.size());
    EXPECT_EQ(u.progress_texts, t.progress_texts);
    EXPECT_EQ(u.failures.size(), t.failures.size());
    if (t.indexes_devices()) {
      for (uint64_t s = 1; s <= t.executions.size(); ++s) {
        EXPECT_EQ(u.sequence_of(t.executions[s - 1].device_key),
                  execution_seq{s});
      }
    }
  }
  EXPECT_EQ(back->tasks.at(one).retries_pending, 1u);
  EXPECT_EQ(back->tasks.at(one).failures.at(3).code, "E_FLASH");
}

TEST_F(Snapshots, EmptyWorldRoundTrips) {
  world w;
  auto back = decode_snapshot(encode_snapshot(w));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(digest(*back).sha256, digest(w).sha256);
}

TEST_F(Snapshots, SnapshotThreadRunsBelowTheActorsAndIsNamed) {
  start_node();
  ASSERT_NE(the_node->snapshots(), nullptr);
  // Its thread sets its name and nice value as it starts.
  the_node->snapshots()->request();
  the_node->snapshots()->wait_idle();
  int found = 0;
  for (const auto& t : std::filesystem::directory_iterator{"/proc/self/task"}) {
    std::ifstream comm{t.path() / "comm"};
    std::string name;
    std::getline(comm, name);
    if (name != snapshotter::thread_name)
      continue;
    ++found;
    // Field 19 of stat, counted after the parenthesised name, is the nice.
    std::ifstream stat{t.path() / "stat"};
    std::string line;
    std::getline(stat, line);
    std::istringstream rest{line.substr(line.rfind(')') + 2)};
    std::string field;
    for (int i = 3; i <= 19; ++i)
      rest >> field;
    EXPECT_EQ(field, std::to_string(snapshotter::background_nice));
  }
  EXPECT_EQ(found, 1);
}

// -- dormant devices ----------------------------------------------------------

TEST_F(Snapshots, RecoveredIdleDevicesStayDormantUntilTheirFirstMessage) {
  start_node();
  create_firmware_verified("2.0.0");
  ASSERT_EQ(register_device("a", "1.0.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(register_device("b", "1.0.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(register_device("c", "0.9.0").status(), v1::STATUS_CODE_OK);
  v1::SetDeviceTags tags;
  tags.set_product_key(product);
  tags.set_device_key("a");
  (*tags.mutable_tags())["ring"] = "canary";
  ASSERT_EQ(call(tags).status(), v1::STATUS_CODE_OK);
  // A running task holds c (offline, queued).
  auto task = create_task_id(snapshot_spec("0.9.0", "2.0.0"));
  ASSERT_NE(task, 0u);
  auto before = state_digest();
  v1::ListDevices list;
  list.set_product_key(product);
  auto listed = call(list);
  ASSERT_EQ(listed.status(), v1::STATUS_CODE_OK) << listed.message();
  stop_node();

  start_node();
  const auto& running = the_node->context()->metrics->device_actors;
  // Only the running task's device has an actor (the task bound it).
  EXPECT_EQ(running.load(), 1);
  EXPECT_EQ(state_digest().sha256(), before.sha256());
  EXPECT_EQ(running.load(), 1);

  // Listing reads the dormant rows, as they were, and wakes none.
  auto page = call(list);
  ASSERT_EQ(page.status(), v1::STATUS_CODE_OK) << page.message();
  const auto& items = page.device_list().devices();
  ASSERT_EQ(items.size(), 3);
  EXPECT_EQ(items[0].device_key(), "a");
  EXPECT_EQ(items[0].tags().at("ring"), "canary");
  EXPECT_EQ(items[1].device_key(), "b");
  EXPECT_EQ(items[2].device_key(), "c");
  EXPECT_EQ(items[2].version(), "0.9.0");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      page.device_list(), listed.device_list()))
      << page.device_list().DebugString() << " against "
      << listed.device_list().DebugString();
  EXPECT_EQ(running.load(), 1);

  // A command to a dormant device wakes it, with its state as stored.
  v1::GetDevice get;
  get.set_product_key(product);
  get.set_device_key("a");
  auto got = call(get);
  ASSERT_EQ(got.status(), v1::STATUS_CODE_OK) << got.message();
  EXPECT_EQ(got.device().tags().at("ring"), "canary");
  EXPECT_EQ(got.device().version(), "1.0.0");
  EXPECT_EQ(running.load(), 2);
  ASSERT_EQ(online("b").status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(running.load(), 3);
  // And c, held by the task, gets its push once online.
  register_online("c", "0.9.0");
  EXPECT_EQ(task_summary(task).counters().notified(), 1u);
  EXPECT_EQ(state_digest().last_sequence(), before.last_sequence() + 1);
}

// -- replay, read ahead -------------------------------------------------------

/// The registrations of `n` devices named `prefix0`, `prefix1`, ...
std::vector<std::string> registrations(const std::string& prefix, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    auto x =
        decide(nullptr,
               register_device{
                   product, prefix + std::to_string(i), "1.0.0", {}, {}, ""},
               from_millis(1'700'000'000'000));
    EXPECT_TRUE(x) << x.error().message;
    for (const auto& e : *x)
      out.push_back(e.SerializeAsString());
  }
  return out;
}

/// Appends `xs` to `log`.
void append_all(storage::event_log& log, const std::vector<std::string>& xs) {
  auto res = log.append(xs);
  ASSERT_TRUE(res) << res.error().message;
}

TEST_F(Snapshots, ReplayReadingAheadAppliesEveryEventInOrder) {
  // More events than the batches in flight hold, ending inside a batch.
  auto log = open_log(db());
  ASSERT_TRUE(log);
  append_all(*log, registrations("d", 9000));
  world w;
  uint64_t replayed = 0;
  auto err = replay_log(*log, w, replayed);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(replayed, 9000u);
  EXPECT_EQ(w.last_sequence, sequence_number{9000});
  ASSERT_EQ(w.devices.size(), 9000u);
  EXPECT_EQ(w.devices.front().key, "d0");
  EXPECT_EQ(w.devices.back().key, "d8999");
  EXPECT_EQ(digest(w).sha256, digest(replay_all(*log)).sha256);
  // From where a snapshot left off: only the tail.
  world tail;
  auto head = log->read_range(sequence_number{1}, sequence_number{4000},
                              [&](sequence_number seq, std::string_view b) {
                                return !replay(tail, seq, b);
                              });
  ASSERT_FALSE(head) << head->message;
  replayed = 0;
  err = replay_log(*log, tail, replayed);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(replayed, 5000u);
  EXPECT_EQ(digest(tail).sha256, digest(w).sha256);
}

TEST_F(Snapshots, ReplayReadingAheadStopsAtAnEventThatDoesNotDecode) {
  auto log = open_log(db());
  ASSERT_TRUE(log);
  append_all(*log, registrations("d", 3000));
  append_all(*log, {std::string{"\xff\xff\xff"}});
  append_all(*log, registrations("e", 3000));
  world w;
  uint64_t replayed = 0;
  auto err = replay_log(*log, w, replayed);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::corrupted);
  EXPECT_EQ(err->message, "the log does not replay: event 3001 does not "
                          "decode as fota.v1.EventEnvelope");
  // Everything before it applied, nothing after it.
  EXPECT_EQ(replayed, 3000u);
  EXPECT_EQ(w.last_sequence, sequence_number{3000});
  EXPECT_EQ(w.devices.size(), 3000u);
}

TEST_F(Snapshots, ReplayReadingAheadStopsAtAnEventThatDoesNotApply) {
  auto log = open_log(db());
  ASSERT_TRUE(log);
  append_all(*log, registrations("d", 2500));
  append_all(*log, registrations("d", 1)); // d0 once more: event 2501.
  append_all(*log, registrations("e", 6000));
  world w;
  uint64_t replayed = 0;
  auto err = replay_log(*log, w, replayed);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::corrupted);
  EXPECT_EQ(err->message.rfind("the log does not replay: event 2501 "
                               "(DeviceRegistered): ",
                               0),
            0u)
      << err->message;
  EXPECT_EQ(replayed, 2500u);
  EXPECT_EQ(w.last_sequence, sequence_number{2500});
}

// -- recovery -----------------------------------------------------------------

TEST_F(Snapshots, NodeFromSnapshotAndTailHasTheDigestOfAFullReplay) {
  build_history();
  snapshot_now();
  auto at = the_node->snapshots()->stats().last;
  ASSERT_TRUE(at);
  // The tail: more happens after the snapshot.
  upgrade("b", execution_id(one, 2), "2.0.0");
  ASSERT_EQ(register_device("late", "1.0.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(resume(two).status(), v1::STATUS_CODE_OK);
  auto live = state_digest();
  stop_node();
  start_node();
  const auto& rec = the_node->recovery();
  ASSERT_TRUE(rec.snapshot) << rec.snapshot_ignored;
  EXPECT_EQ(*rec.snapshot, *at);
  EXPECT_TRUE(rec.snapshot_ignored.empty()) << rec.snapshot_ignored;
  EXPECT_EQ(rec.events, live.last_sequence() - at->value());
  EXPECT_GT(rec.events, 0u);
  auto from_snapshot = state_digest();
  EXPECT_EQ(from_snapshot.sha256(), live.sha256());
  EXPECT_EQ(from_snapshot.last_sequence(), live.last_sequence());
  // The node goes on from there as it would after a full replay.
  upgrade("d", execution_id(one, 4), "2.0.0");
  auto after = state_digest();
  stop_node();
  use_snapshots = false;
  start_node();
  EXPECT_FALSE(the_node->recovery().snapshot);
  EXPECT_EQ(the_node->recovery().events, after.last_sequence());
  EXPECT_EQ(state_digest().sha256(), after.sha256());
}

TEST_F(Snapshots, SnapshotsAreWrittenEveryNEventsInTheBackground) {
  start_node();
  stop_node();
  // A node that writes a snapshot every 10 events.
  node_config nc;
  nc.data_dir = db();
  nc.sync = false;
  nc.detach_journal = false;
  nc.clock = clock;
  nc.snapshot_every_events = 10;
  auto started = node::start(sys, nc);
  ASSERT_TRUE(started) << started.error().message;
  the_node = std::move(*started);
  sched.run();
  for (int i = 0; i < 25; ++i)
    ASSERT_EQ(register_device("d" + std::to_string(i), "1.0.0").status(),
              v1::STATUS_CODE_OK);
  the_node->snapshots()->wait_idle();
  auto stats = the_node->snapshots()->stats();
  EXPECT_TRUE(stats.last_error.empty()) << stats.last_error;
  EXPECT_GE(stats.written, 1u);
  ASSERT_TRUE(stats.last);
  EXPECT_GE(stats.last->value(), 10u);
  auto live = state_digest();
  stop_node();
  start_node();
  ASSERT_TRUE(the_node->recovery().snapshot);
  EXPECT_EQ(state_digest().sha256(), live.sha256());
}

TEST_F(Snapshots, SnapshotOfANewerFormatIsIgnoredForAFullReplay) {
  build_history();
  auto live = state_digest();
  stop_node();
  auto snap = current_snapshot();
  snap.set_format_version(snapshot_format_version + 1);
  store_snapshot(snap.last_sequence(), snap.SerializeAsString());
  auto decoded = decode_snapshot(snap.SerializeAsString());
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code, errc::corrupted);
  expect_full_replay("is in format version 2; this version of fota reads "
                     "only version 1",
                     live);
}

TEST_F(Snapshots, GarbageSnapshotIsIgnoredForAFullReplay) {
  build_history();
  auto live = state_digest();
  stop_node();
  store_snapshot(live.last_sequence(), std::string("\xff\xff\xff garbage", 11));
  expect_full_replay("does not decode", live);
}

TEST_F(Snapshots, SnapshotBeyondTheLogEndIsRefused) {
  build_history();
  auto live = state_digest();
  stop_node();
  auto snap = current_snapshot();
  auto beyond = snap.last_sequence() + 5;
  snap.set_last_sequence(beyond);
  store_snapshot(beyond, snap.SerializeAsString());
  auto why = "the snapshot after event " + std::to_string(beyond) +
             " lies beyond the log's last event " +
             std::to_string(live.last_sequence());
  expect_full_replay(why, live);
  stop_node();
  auto check = check_data_dir(db());
  EXPECT_FALSE(check.healthy());
  ASSERT_EQ(check.problems.size(), 1u);
  EXPECT_EQ(check.problems[0], why);
}

TEST_F(Snapshots, SnapshotThatContradictsItselfIsRefusedNamingWhy) {
  build_history();
  auto live = state_digest();
  stop_node();
  auto good = current_snapshot();
  auto refused = [&](const v1::Snapshot& s, const std::string& why) {
    auto x = decode_snapshot(s.SerializeAsString());
    ASSERT_FALSE(x) << "decoded: " << why;
    EXPECT_EQ(x.error().code, errc::corrupted);
    EXPECT_NE(x.error().message.find(why), std::string::npos)
        << x.error().message;
  };
  auto task_of = [](v1::Snapshot& s, uint64_t id) -> v1::TaskSnapshot& {
    for (auto& t : *s.mutable_tasks())
      if (t.task_id() == id)
        return t;
    ADD_FAILURE() << "no task " << id;
    return *s.mutable_tasks(0);
  };
  {
    auto s = good;
    auto& t = task_of(s, one);
    t.set_counts(v1::EXECUTION_STATE_QUEUED, t.counts(1) + 1);
    refused(s, "counts " + std::to_string(t.counts(1)) +
                   " EXECUTION_STATE_QUEUED executions in task " +
                   std::to_string(one) + ", whose table has " +
                   std::to_string(t.counts(1) - 1));
  }
  {
    auto s = good;
    task_of(s, one).mutable_executions()->mutable_states()->at(0) = 9;
    refused(s, "gives execution " + std::to_string(one) +
                   "/1 state 9, which does not exist");
  }
  {
    auto s = good;
    task_of(s, one).mutable_executions()->set_devices(0, 1'000'000);
    refused(s, "device 1000000, beyond the device table");
  }
  {
    auto s = good;
    s.mutable_devices()->mutable_versions()->RemoveLast();
    refused(s, "device table's versions has");
  }
  {
    auto s = good;
    // Device "a" (index 0) claims to be held by a task that does not exist.
    s.mutable_devices()->set_active_executions(
        0, fota::execution_id{task_id{99}, execution_seq{1}}.value());
    refused(s, "says execution 99/1 holds device p/a, but it does not exist");
  }
  {
    auto s = good;
    s.mutable_devices()->set_products(0, 100'000);
    refused(s, "refers to string 100000");
  }
  {
    auto s = good;
    task_of(s, one).set_retries_pending(0);
    refused(s, "counts 0 pending retries in task " + std::to_string(one) +
                   ", whose table has 1");
  }
  // A snapshot stored under another sequence than it says it was taken at.
  auto moved = good;
  moved.set_last_sequence(good.last_sequence() - 1);
  store_snapshot(good.last_sequence(), moved.SerializeAsString());
  expect_full_replay("says it was taken after event " +
                         std::to_string(good.last_sequence() - 1),
                     live);
}

TEST_F(Snapshots, CheckVerifiesSnapshotAndTailAgainstAFullReplay) {
  build_history();
  snapshot_now();
  upgrade("b", execution_id(one, 2), "2.0.0");
  stop_node();
  auto check = check_data_dir(db());
  EXPECT_TRUE(check.healthy())
      << (check.problems.empty() ? "" : check.problems[0]);
  ASSERT_TRUE(check.snapshot);
  EXPECT_TRUE(check.snapshot_verified);
  EXPECT_GT(check.snapshot_tail, 0u);
  EXPECT_EQ(check.snapshot->value() + check.snapshot_tail, check.events);
}

// -- crashes ------------------------------------------------------------------

/// The child process of the crash test: appends device registrations
/// forever to the log at $FOTA_SNAPCRASH_DB, writing snapshots in the
/// background whenever 50 events were appended, and reports each
/// acknowledged sequence and the snapshots written so far on the file
/// descriptor $FOTA_SNAPCRASH_FD. Skipped in the suite. A fresh process,
/// not a fork: RocksDB's background threads do not survive a fork.
TEST(SnapshotCrashChild, AppendsAndWritesSnapshotsUntilKilled) {
  const char* path = std::getenv("FOTA_SNAPCRASH_DB");
  const char* fd_text = std::getenv("FOTA_SNAPCRASH_FD");
  if (path == nullptr || fd_text == nullptr)
    GTEST_SKIP() << "runs only as the child of the crash test";
  auto fd = std::atoi(fd_text);
  auto log = open_log(path, true);
  if (!log)
    std::_Exit(2);
  snapshotter snaps{*log, 50, log->last_sequence()};
  log->on_append([&](sequence_number last) { snaps.appended(last); });
  auto t = from_millis(fota::test::wall_clock_base_ms);
  for (uint64_t i = log->last_sequence().value();; i += 50) {
    event_list batch;
    for (uint64_t k = 0; k < 50; ++k) {
      auto xs =
          decide(nullptr,
                 register_device{
                     product, "d" + std::to_string(i + k), "1.0.0", {}, {}, ""},
                 t);
      if (!xs)
        std::_Exit(3);
      batch.insert(batch.end(), xs->begin(), xs->end());
    }
    auto seq = log->append(encode(batch));
    if (!seq)
      std::_Exit(4);
    uint64_t report[2] = {seq->value(), snaps.stats().written};
    if (::write(fd, report, sizeof report) != sizeof report)
      std::_Exit(5);
  }
}

/// Starts the child test in a fresh process of this binary, writing to
/// `fd`; returns its pid.
pid_t spawn_child(const std::string& db, int fd) {
  auto pid = ::fork();
  if (pid == 0) {
    ::setenv("FOTA_SNAPCRASH_DB", db.c_str(), 1);
    ::setenv("FOTA_SNAPCRASH_FD", std::to_string(fd).c_str(), 1);
    // Keep gtest's banner of the child out of the parent's output.
    auto quiet = ::open("/dev/null", O_WRONLY);
    if (quiet >= 0)
      ::dup2(quiet, STDOUT_FILENO);
    const char* argv[] = {"actor_tests",
                          "--gtest_filter=SnapshotCrashChild."
                          "AppendsAndWritesSnapshotsUntilKilled",
                          nullptr};
    ::execv("/proc/self/exe", const_cast<char**>(argv));
    std::_Exit(127);
  }
  return pid;
}

TEST(SnapshotCrash, KillWhileWritingSnapshotsLosesNothing) {
  auto pattern =
      (std::filesystem::temp_directory_path() / "fota-snapcrash-XXXXXX")
          .string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  std::filesystem::path dir = pattern;
  auto path = (dir / "db").string();
  bool saw_snapshot = false;
  // Kill at growing points of the log, once the child has written a
  // snapshot: from then on it folds the next one all the time, so the kill
  // lands inside a fold or a snapshot write.
  for (uint64_t kill_at : {1'200u, 2'600u, 4'100u, 6'300u}) {
    SCOPED_TRACE(kill_at);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    auto pid = spawn_child(path, fds[1]);
    ASSERT_GT(pid, 0);
    ::close(fds[1]);
    uint64_t acknowledged = 0;
    uint64_t report[2] = {0, 0};
    while ((acknowledged < kill_at || report[1] == 0) &&
           ::read(fds[0], report, sizeof report) == sizeof report)
      acknowledged = report[0];
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "the child exited with " << WEXITSTATUS(status);
    ASSERT_GE(acknowledged, kill_at);
    auto log = open_log(path);
    ASSERT_TRUE(log);
    EXPECT_GE(log->last_sequence().value(), acknowledged)
        << "an acknowledged event is lost";
    auto full = replay_all(*log);
    world w;
    auto loaded = load_snapshot(*log, w);
    EXPECT_TRUE(loaded.ignored.empty()) << loaded.ignored;
    saw_snapshot = saw_snapshot || loaded.sequence.has_value();
    auto st = log->read(sequence_number{w.last_sequence.value() + 1},
                        [&](sequence_number seq, std::string_view bytes) {
                          auto err = replay(w, seq, bytes);
                          EXPECT_FALSE(err) << err->message;
                          return !err;
                        });
    EXPECT_FALSE(st);
    EXPECT_EQ(digest(w).sha256, digest(full).sha256);
    EXPECT_EQ(w.last_sequence, full.last_sequence);
  }
  EXPECT_TRUE(saw_snapshot);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

} // namespace
