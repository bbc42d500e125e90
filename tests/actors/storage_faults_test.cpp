/// Storage faults in a whole node on CAF's deterministic test coordinator,
/// with an injected free-space probe: below the reserve every command that
/// writes is refused with RESOURCE_EXHAUSTED before it is decided, reads go
/// on, no push leaves, and writes resume by themselves once space is freed.
/// And `check_data_dir`, the offline check behind `fotad --check`.
#include "actors/journal.hpp"
#include "storage/event_log.hpp"
#include "tests/actors/test_node.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::execution_id;

constexpr uint64_t mib = uint64_t{1} << 20;

/// What the data directory's disk has free, as the test sets it.
struct fake_disk {
  std::atomic<uint64_t> free{1024 * mib};
};

/// A node whose data directory has a 64 MiB reserve on a fake disk, probed
/// on every check.
class FullDisk : public fota::test::node_fixture {
protected:
  void SetUp() override {
    disk = std::make_shared<fake_disk>();
    min_free_space = 64 * mib;
    free_space = [d = disk]() -> expected<uint64_t> { return d->free.load(); };
    free_space_interval = 0ms;
    start_node();
  }

  void fill() { disk->free = 3 * mib; }

  void free_up() { disk->free = 1024 * mib; }

  /// Expects `r` to be the refusal for lack of space.
  static void expect_refused(const v1::Response& r) {
    EXPECT_EQ(r.status(), v1::STATUS_CODE_RESOURCE_EXHAUSTED) << r.message();
    EXPECT_NE(r.message().find("has 3 MiB free, below the reserve of 64 MiB; "
                               "writes resume when space is freed"),
              std::string::npos)
        << r.message();
  }

  std::shared_ptr<fake_disk> disk;
};

/// Like `FullDisk`, pushing at most once a second.
class FullDiskRateLimited : public FullDisk {
protected:
  void SetUp() override {
    limits.max_pushes_per_minute = 60;
    FullDisk::SetUp();
  }
};

TEST_F(FullDisk, EveryWriteIsRefusedWhileReadsGoOn) {
  create_firmware_verified("2.0.0");
  register_online("a", "1.0.0");
  ASSERT_EQ(register_device("b", "1.0.0").status(), v1::STATUS_CODE_OK);
  auto digest_before = state_digest();
  auto writes_before = ctx().metrics->events_persisted.load();
  fill();

  // Operator and gateway commands that write are refused, naming the cause.
  expect_refused(register_device("c", "1.0.0"));
  expect_refused(report_version("b", "1.1.0"));
  expect_refused(online("b"));
  expect_refused(offline("a"));
  v1::CreateFirmware create;
  *create.mutable_firmware() = firmware_of("3.0.0");
  expect_refused(call(create));
  expect_refused(create_task(snapshot_spec("1.0.0", "2.0.0")));
  v1::SetDeviceTags tags;
  tags.set_product_key(fota::test::product);
  tags.set_device_key("a");
  (*tags.mutable_tags())["ring"] = "canary";
  expect_refused(call(tags));
  EXPECT_EQ(ctx().metrics->writes_refused.load(), 7u);
  EXPECT_EQ(ctx().metrics->events_persisted.load(), writes_before);

  // Reads are served.
  EXPECT_EQ(get_device("a").version(), "1.0.0");
  EXPECT_TRUE(get_device("a").online());
  EXPECT_EQ(get_device("b").version(), "1.0.0");
  EXPECT_EQ(get_firmware("2.0.0").status(), v1::FIRMWARE_STATUS_VERIFIED);
  v1::ListDevices list;
  list.set_product_key(fota::test::product);
  auto listed = call(list);
  ASSERT_EQ(listed.status(), v1::STATUS_CODE_OK) << listed.message();
  EXPECT_EQ(listed.device_list().devices_size(), 2);
  v1::GetDevice missing;
  missing.set_product_key(fota::test::product);
  missing.set_device_key("c");
  EXPECT_EQ(call(missing).status(), v1::STATUS_CODE_NOT_FOUND);
  auto digest_full = state_digest();
  EXPECT_EQ(digest_full.sha256(), digest_before.sha256());

  // Space returns: writes resume without a restart.
  free_up();
  ASSERT_EQ(register_device("c", "1.0.0").status(), v1::STATUS_CODE_OK);
  ASSERT_EQ(report_version("b", "1.1.0").status(), v1::STATUS_CODE_OK);
  auto r = call(create);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(get_device("c").version(), "1.0.0");
  EXPECT_EQ(get_device("b").version(), "1.1.0");

  // The log holds what was acknowledged and nothing that was refused.
  auto digest_after = state_digest();
  stop_node();
  start_node();
  EXPECT_EQ(the_node->recovery().devices, 3u);
  EXPECT_EQ(the_node->recovery().firmware, 2u);
  EXPECT_EQ(get_device("a").tags().count("ring"), 0u);
  EXPECT_EQ(state_digest().sha256(), digest_after.sha256());
}

TEST_F(FullDiskRateLimited, NoPushLeavesWhileWritesAreRefused) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  auto id = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
  ASSERT_EQ(gateway.pushes->upgrades().size(), 1u);
  fill();
  // Every push writes its ExecutionNotified first: none leaves.
  advance_in_steps(10s, 500ms);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 1u);
  EXPECT_EQ(task_summary(id).counters().queued(), 2u);
  // The device already notified cannot report either: that writes too.
  auto r = report_progress("a", execution_id(id, 1), 10);
  expect_refused(r);
  free_up();
  advance(1s);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 2u);
  advance(1s);
  EXPECT_EQ(gateway.pushes->upgrades().size(), 3u);
  EXPECT_EQ(task_summary(id).counters().notified(), 3u);
}

// A command decided just before the disk filled has its events applied by
// its actor already. The journal holds them rather than refusing (which
// would leave the actor ahead of its log); the client hears OK once they are
// written, after space returns.
TEST_F(FullDisk, ACommandDecidedBeforeTheDiskFilledIsAnsweredOnceWritten) {
  auto reply = send_request(frame_of([] {
                              v1::RegisterDevice req;
                              req.set_product_key(fota::test::product);
                              req.set_device_key("early");
                              req.set_version("1.0.0");
                              return req;
                            }()),
                            gateway.actor);
  run_holding_journal();
  fill();
  sched.run();
  EXPECT_FALSE(*reply) << "no answer before the events are durable";
  advance(1s);
  EXPECT_FALSE(*reply);
  free_up();
  advance(fota::journal_state::space_retry);
  ASSERT_TRUE(*reply);
  EXPECT_EQ((*reply)->status(), v1::STATUS_CODE_OK) << (*reply)->message();
  EXPECT_EQ(get_device("early").version(), "1.0.0");
}

// -- check_data_dir -----------------------------------------------------------

/// A node that fsyncs, so that it keeps a high-water mark.
class DataDirCheck : public fota::test::node_fixture {
protected:
  void SetUp() override {
    sync = true;
    start_node();
    create_firmware_verified("2.0.0");
    for (const auto& k : {"a", "b"})
      register_online(k, "1.0.0");
    task = create_task_id(snapshot_spec("1.0.0", "2.0.0"));
    stop_node();
  }

  std::string db() const { return (dir / "db").string(); }

  uint64_t task = 0;
};

TEST_F(DataDirCheck, AHealthyDirectoryIsReportedAsSuch) {
  auto found = check_data_dir(db());
  EXPECT_TRUE(found.healthy());
  EXPECT_TRUE(found.problems.empty()) << found.problems.front();
  EXPECT_GT(found.events, 0u);
  EXPECT_EQ(found.events, found.log.last_sequence.value());
  EXPECT_EQ(found.log.high_water, found.log.last_sequence);
  EXPECT_EQ(found.firmware, 1u);
  EXPECT_EQ(found.devices, 2u);
  EXPECT_EQ(found.tasks, 1u);
  EXPECT_FALSE(found.snapshot);
  EXPECT_EQ(found.log.wal.torn_bytes, 0u);
  // The check wrote nothing: the node starts as before.
  start_node();
  EXPECT_EQ(the_node->recovery().events, found.events);
}

TEST_F(DataDirCheck, AcknowledgedEventsMissingFromTheLogAreAProblem) {
  auto healthy = check_data_dir(db());
  ASSERT_TRUE(healthy.healthy());
  auto last = healthy.log.last_sequence.value();
  for (const auto& e : std::filesystem::directory_iterator{db()})
    if (e.path().extension() == ".log")
      std::filesystem::remove(e.path());
  auto found = check_data_dir(db());
  EXPECT_TRUE(found.opened);
  EXPECT_FALSE(found.healthy());
  ASSERT_EQ(found.problems.size(), 1u);
  EXPECT_EQ(found.problems[0],
            "events 1.." + std::to_string(last) +
                " were acknowledged (high-water mark " + std::to_string(last) +
                ") but are missing from the log, which ends at event 0: the "
                "WAL was truncated or lost");
  // A start refuses the same directory.
  node_config nc;
  nc.data_dir = db();
  nc.detach_journal = false;
  auto started = node::start(sys, nc);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::data_loss);
}

TEST_F(DataDirCheck, AnEventThatDoesNotReplayIsAProblem) {
  {
    auto log = storage::event_log::open({db(), true});
    ASSERT_TRUE(log) << log.error().message;
    ASSERT_TRUE((*log)->append({std::string{"\x12\x03\xff\xff\xff", 5}}));
  }
  auto found = check_data_dir(db());
  EXPECT_FALSE(found.healthy());
  ASSERT_EQ(found.problems.size(), 1u);
  EXPECT_NE(found.problems[0].find("the log does not replay: event " +
                                   std::to_string(found.events + 1)),
            std::string::npos)
      << found.problems[0];
}

TEST_F(DataDirCheck, AMissingDirectoryIsAProblem) {
  auto found = check_data_dir((dir / "nowhere").string());
  EXPECT_FALSE(found.opened);
  EXPECT_FALSE(found.healthy());
  ASSERT_EQ(found.problems.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / "nowhere"))
      << "the check creates nothing";
}

} // namespace
