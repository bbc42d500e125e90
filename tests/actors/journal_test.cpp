/// Tests of the journal actor on CAF's deterministic test coordinator: group
/// commit, durability across a reopen, its answers after a storage failure,
/// and what it does while the disk is full.
#include "actors/journal.hpp"
#include "fota/v1/events.pb.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <gtest/gtest.h>

namespace {

using fota::append_atom_v;
using fota::errc;
using fota::event_batch;
using fota::sequence_number;
using fota::storage::event_log;

// -- helpers ------------------------------------------------------------------

/// A fresh directory under the system's temp directory, removed at the end.
class temp_dir {
public:
  temp_dir() {
    auto pattern =
        (std::filesystem::temp_directory_path() / "fota-journal-XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = pattern;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  std::string db() const { return (path_ / "db").string(); }

private:
  std::filesystem::path path_;
};

/// An encoded envelope without a sequence, as actors send it.
std::string make_envelope(const std::string& stream) {
  fota::v1::EventEnvelope envelope;
  envelope.set_time_ms(1'700'000'000'000);
  envelope.set_stream(stream);
  envelope.mutable_task_completed()->set_task_id(1);
  return envelope.SerializeAsString();
}

/// A batch of `n` envelopes on stream `stream`.
event_batch make_batch(const std::string& stream, size_t n) {
  event_batch batch;
  for (size_t i = 0; i < n; ++i)
    batch.envelopes.push_back(make_envelope(stream));
  return batch;
}

/// What a requester received from the journal.
struct reply {
  std::optional<uint64_t> sequence;
  std::optional<caf::error> error;
};

/// Sends one append to the journal and records the answer in `out`.
caf::behavior requester(caf::event_based_actor* self,
                        const fota::journal_actor& journal, event_batch batch,
                        const std::shared_ptr<reply>& out) {
  self->request(journal, caf::infinite, append_atom_v, std::move(batch))
      .then([out](sequence_number seq) { out->sequence = seq.value(); },
            [out](caf::error& err) { out->error = std::move(err); });
  return {};
}

/// An actor system on the deterministic test coordinator.
struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.file-verbosity", caf::atom("quiet"));
    add_message_types<caf::id_block::fota>();
    // CAF 0.17.6's add_error_category<T> does not compile; pass a renderer.
    add_error_category(caf::atom("fota"), [](uint8_t code, caf::atom_value,
                                             const caf::message& context) {
      return std::string{"fota::"} + fota::to_string(static_cast<errc>(code)) +
             caf::deep_to_string(context);
    });
  }
};

// -- fixture ------------------------------------------------------------------

class Journal : public ::testing::Test {
protected:
  Journal()
    : log(open_log()), sys(cfg),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    journal = sys.spawn(fota::journal, log.get(), metrics);
    sched.run();
  }

  ~Journal() override { stop_journal(); }

  std::unique_ptr<event_log> open_log() {
    fota::storage::options opts;
    opts.path = dir.db();
    opts.min_free_space = 64 << 20;
    opts.free_space = [this]() -> fota::expected<uint64_t> {
      return free_space.load();
    };
    opts.probe_interval = std::chrono::milliseconds{0};
    auto res = event_log::open(opts);
    if (!res) {
      ADD_FAILURE() << res.error().message;
      return nullptr;
    }
    return std::move(res).value();
  }

  /// Spawns a requester for `batch`; it runs at the coordinator's next turn.
  std::shared_ptr<reply> append(event_batch batch) {
    auto out = std::make_shared<reply>();
    sys.spawn(requester, journal, std::move(batch), out);
    return out;
  }

  /// Lets exactly the `n` requesters spawned last send their appends, so that
  /// they wait in the journal's mailbox.
  void run_requesters(size_t n) {
    for (size_t i = 0; i < n; ++i)
      ASSERT_TRUE(sched.try_run_once());
  }

  void stop_journal() {
    if (journal) {
      caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
      sched.run();
      journal = nullptr;
    }
  }

  static errc code_of(const caf::error& err) {
    EXPECT_EQ(err.category(), caf::atom("fota"));
    return static_cast<errc>(err.code());
  }

  static std::string message_of(const caf::error& err) {
    if (err.context().match_elements<std::string>())
      return err.context().get_as<std::string>(0);
    return {};
  }

  temp_dir dir;
  /// What the data directory's disk has free; plenty unless a test fills it.
  std::atomic<uint64_t> free_space{uint64_t{1} << 30};
  std::unique_ptr<event_log> log;
  std::shared_ptr<fota::node_metrics> metrics =
      std::make_shared<fota::node_metrics>();
  test_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  fota::journal_actor journal;
};

// -- tests --------------------------------------------------------------------

TEST_F(Journal, AppendsWaitingInTheMailboxAreWrittenAsOneBatch) {
  auto first = append(make_batch("task/1", 2));
  auto second = append(make_batch("task/2", 1));
  auto third = append(make_batch("task/3", 3));
  run_requesters(3);
  EXPECT_EQ(log->writes(), 0u);
  sched.run();
  EXPECT_EQ(log->writes(), 1u);
  ASSERT_TRUE(first->sequence) << sys.render(first->error.value_or(caf::none));
  ASSERT_TRUE(second->sequence);
  ASSERT_TRUE(third->sequence);
  EXPECT_EQ(*first->sequence, 2u);
  EXPECT_EQ(*second->sequence, 3u);
  EXPECT_EQ(*third->sequence, 6u);
  EXPECT_EQ(log->last_sequence().value(), 6u);
}

TEST_F(Journal, EachWriteIsMeasuredByItsEventsAndItsLatency) {
  auto first = append(make_batch("task/1", 2));
  auto second = append(make_batch("task/2", 3));
  run_requesters(2);
  sched.run();
  auto third = append(make_batch("task/3", 1));
  sched.run();
  ASSERT_EQ(third->sequence, 6u);
  // Two writes: one of 5 events (both requests), one of 1.
  auto events = metrics->commit_events.read();
  const auto& bounds = metrics->commit_events.bounds();
  EXPECT_EQ(events.cumulative.back(), 2u);
  EXPECT_EQ(events.sum, 6u);
  ASSERT_EQ(bounds[0], 1u);
  EXPECT_EQ(events.cumulative[0], 1u); // le 1
  EXPECT_EQ(events.cumulative[2], 1u); // le 4
  EXPECT_EQ(events.cumulative[3], 2u); // le 8
  EXPECT_EQ(metrics->commit_latency.read().cumulative.back(), 2u);
}

TEST_F(Journal, AppendsAfterAWriteStartANewGroup) {
  auto first = append(make_batch("task/1", 1));
  sched.run();
  auto second = append(make_batch("task/2", 1));
  sched.run();
  EXPECT_EQ(log->writes(), 2u);
  EXPECT_EQ(first->sequence, 1u);
  EXPECT_EQ(second->sequence, 2u);
}

TEST_F(Journal, LargeBacklogIsWrittenInSeveralBatchesWithoutSplittingRequests) {
  constexpr size_t n = fota::journal_state::max_write_events / 2 - 1;
  auto first = append(make_batch("task/1", n));
  auto second = append(make_batch("task/2", n));
  auto third = append(make_batch("task/3", n));
  run_requesters(3);
  sched.run();
  // The first two requests fit the limit together, the third does not.
  EXPECT_EQ(log->writes(), 2u);
  EXPECT_EQ(first->sequence, n);
  EXPECT_EQ(second->sequence, 2 * n);
  EXPECT_EQ(third->sequence, 3 * n);
}

TEST_F(Journal, EmptyBatchGetsTheLastSequence) {
  append(make_batch("task/1", 4));
  sched.run();
  auto empty = append(event_batch{});
  sched.run();
  EXPECT_EQ(empty->sequence, 4u);
  EXPECT_EQ(log->writes(), 1u);
}

TEST_F(Journal, InvalidRequestFailsAloneAndItsGroupIsWritten) {
  fota::v1::EventEnvelope stamped;
  stamped.set_sequence(99);
  auto good = append(make_batch("task/1", 1));
  auto bad = append(event_batch{{stamped.SerializeAsString()}});
  auto also_good = append(make_batch("task/2", 1));
  run_requesters(3);
  sched.run();
  ASSERT_TRUE(bad->error);
  EXPECT_EQ(code_of(*bad->error), errc::invalid_argument);
  EXPECT_EQ(good->sequence, 1u);
  EXPECT_EQ(also_good->sequence, 2u);
  EXPECT_EQ(log->writes(), 1u);
}

TEST_F(Journal, AcknowledgedEventsAreReadableAfterReopeningTheLog) {
  auto first = append(make_batch("device/p/a", 2));
  auto second = append(make_batch("device/p/b", 1));
  run_requesters(2);
  sched.run();
  ASSERT_EQ(first->sequence, 2u);
  ASSERT_EQ(second->sequence, 3u);
  stop_journal();
  log.reset();
  log = open_log();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_sequence().value(), 3u);
  std::vector<std::pair<uint64_t, std::string>> streams;
  auto err = log->read(sequence_number{1},
                       [&](sequence_number seq, std::string_view bytes) {
                         fota::v1::EventEnvelope envelope;
                         EXPECT_TRUE(envelope.ParseFromArray(
                             bytes.data(), static_cast<int>(bytes.size())));
                         EXPECT_EQ(envelope.sequence(), seq.value());
                         streams.emplace_back(seq.value(), envelope.stream());
                         return true;
                       });
  ASSERT_FALSE(err) << err->message;
  using entry = std::pair<uint64_t, std::string>;
  EXPECT_EQ(streams,
            (std::vector<entry>{
                {1, "device/p/a"}, {2, "device/p/a"}, {3, "device/p/b"}}));
}

TEST_F(Journal, PendingAppendsAreWrittenWhenTheJournalIsStopped) {
  auto first = append(make_batch("task/1", 1));
  auto second = append(make_batch("task/2", 1));
  run_requesters(2);
  // The exit message lands behind both appends and ahead of the flush that
  // the first append schedules.
  caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
  sched.run();
  EXPECT_EQ(first->sequence, 1u);
  EXPECT_EQ(second->sequence, 2u);
  EXPECT_EQ(log->writes(), 1u);
  journal = nullptr;
}

// The failure is real: `fail_writes_for_testing` makes the file system under
// RocksDB return ENOSPC for every write, so RocksDB itself fails the WAL
// write and the event log translates its status.
TEST_F(Journal, AfterAStorageFailureTheJournalAnswersUnavailable) {
  auto before = append(make_batch("task/1", 1));
  sched.run();
  ASSERT_EQ(before->sequence, 1u);
  log->fail_writes_for_testing();
  auto failed = append(make_batch("task/1", 1));
  sched.run();
  ASSERT_TRUE(failed->error);
  EXPECT_EQ(code_of(*failed->error), errc::unavailable);
  EXPECT_NE(message_of(*failed->error).find("No space left on device"),
            std::string::npos)
      << sys.render(*failed->error);
  auto refused = append(make_batch("task/1", 1));
  sched.run();
  ASSERT_TRUE(refused->error);
  EXPECT_EQ(code_of(*refused->error), errc::unavailable);
  EXPECT_EQ(message_of(*refused->error).rfind("storage refuses writes", 0), 0u)
      << sys.render(*refused->error);
  EXPECT_EQ(log->last_sequence().value(), 1u);
}

// Below the reserve, storage writes nothing. The journal does not refuse
// what it holds: its requesters applied those events when they decided them.
TEST_F(Journal, AGroupRefusedForLackOfSpaceIsHeldAndWrittenOnceSpaceReturns) {
  auto before = append(make_batch("task/1", 1));
  sched.run();
  ASSERT_EQ(before->sequence, 1u);
  free_space = 3 << 20;
  auto held = append(make_batch("task/2", 2));
  sched.run();
  EXPECT_FALSE(held->sequence);
  EXPECT_FALSE(held->error) << sys.render(*held->error);
  EXPECT_EQ(log->writes(), 1u);
  // Still short of space at the retry: still held. Appends meanwhile join.
  EXPECT_EQ(sched.advance_time(fota::journal_state::space_retry), 1u);
  sched.run();
  EXPECT_FALSE(held->sequence);
  auto later = append(make_batch("task/3", 1));
  sched.run();
  EXPECT_FALSE(later->sequence);
  EXPECT_EQ(log->writes(), 1u);
  // Space returns: the next retry writes both, in order.
  free_space = uint64_t{1} << 30;
  EXPECT_EQ(sched.advance_time(fota::journal_state::space_retry), 1u);
  sched.run();
  EXPECT_EQ(held->sequence, 3u);
  EXPECT_EQ(later->sequence, 4u);
  EXPECT_EQ(log->last_sequence().value(), 4u);
  // Nothing is left to retry.
  EXPECT_EQ(sched.advance_time(fota::journal_state::space_retry), 0u);
}

TEST_F(Journal, WhatStorageStillRefusesAtStopIsAnsweredWithTheRefusal) {
  free_space = 3 << 20;
  auto held = append(make_batch("task/1", 1));
  sched.run();
  ASSERT_FALSE(held->sequence);
  stop_journal();
  ASSERT_TRUE(held->error);
  EXPECT_EQ(code_of(*held->error), errc::resource_exhausted);
  EXPECT_EQ(
      message_of(*held->error)
          .rfind("not written before the node stopped: data directory ", 0),
      0u)
      << sys.render(*held->error);
  EXPECT_EQ(log->last_sequence().value(), 0u);
}

} // namespace
