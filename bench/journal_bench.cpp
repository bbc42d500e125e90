/// Durable write throughput with fsync on: synced RocksDB batches as the
/// baseline, and the journal's group commit under concurrent writers that
/// each wait for their acknowledgement before sending the next event.
#include "actors/journal.hpp"
#include "bench/bench_support.hpp"
#include "fota/v1/events.pb.h"
#include "storage/event_log.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

namespace {

// -- helpers ------------------------------------------------------------------

/// An `ExecutionProgressed` envelope of about 150 bytes, without a sequence.
std::string make_envelope() {
  fota::v1::EventEnvelope envelope;
  envelope.set_time_ms(1'700'000'000'000);
  envelope.set_stream("task/4711");
  auto* payload = envelope.mutable_execution_progressed();
  payload->set_task_id(4711);
  payload->set_sequence(123'456);
  payload->set_step(3);
  payload->set_text(
      "downloading firmware 2.4.1 for product sensor-ab12: "
      "62 percent of 4.2 MiB received, flash verify pending (attempt 2)");
  return envelope.SerializeAsString();
}

std::string make_temp_dir() {
  return fota::bench::make_temp_dir("fota-bench");
}

using fota::bench::remove_dir;

std::string big_endian_key(uint64_t x) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i, x >>= 8)
    key[static_cast<size_t>(i)] = static_cast<char>(x & 0xFF);
  return key;
}

// -- raw RocksDB --------------------------------------------------------------

/// A plain RocksDB database in a fresh directory for each run.
class RawRocksDB : public benchmark::Fixture {
public:
  void SetUp(benchmark::State& state) override {
    dir_ = make_temp_dir();
    if (dir_.empty()) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    rocksdb::Options opts;
    opts.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    auto st = rocksdb::DB::Open(opts, dir_, &db);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      return;
    }
    db_.reset(db);
  }

  void TearDown(benchmark::State&) override {
    if (db_)
      db_->Close().PermitUncheckedError();
    db_.reset();
    remove_dir(dir_);
  }

protected:
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
};

BENCHMARK_DEFINE_F(RawRocksDB, SyncedBatch)(benchmark::State& state) {
  auto batch_size = static_cast<uint64_t>(state.range(0));
  auto envelope = make_envelope();
  rocksdb::WriteOptions opts;
  opts.sync = true;
  uint64_t seq = 0;
  for (auto _ : state) {
    rocksdb::WriteBatch batch;
    for (uint64_t i = 0; i < batch_size; ++i)
      batch.Put(big_endian_key(++seq), envelope);
    auto st = db_->Write(opts, &batch);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(seq * envelope.size()));
}

BENCHMARK_REGISTER_F(RawRocksDB, SyncedBatch)
    ->ArgNames({"batch"})
    ->Arg(1)
    ->Arg(256)
    ->Arg(4096)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// -- journal ------------------------------------------------------------------

/// One writer: sends single-event appends, each after the previous one was
/// acknowledged, then reports to `sink` (an empty string for success).
struct writer_state {
  fota::journal_actor journal;
  fota::event_batch batch;
  size_t remaining = 0;
  caf::actor sink;

  static inline constexpr const char* name = "bench.writer";
};

using writer_pointer = caf::stateful_actor<writer_state>*;

void write_next(writer_pointer self) {
  self->request(self->state.journal, caf::infinite, fota::append_atom_v,
                self->state.batch)
      .then(
          [self](fota::sequence_number) {
            if (--self->state.remaining > 0) {
              write_next(self);
              return;
            }
            self->send(self->state.sink, std::string{});
            self->quit();
          },
          [self](caf::error& err) {
            self->send(self->state.sink, self->system().render(err));
            self->quit();
          });
}

caf::behavior writer(writer_pointer self, fota::journal_actor journal,
                     fota::event_batch batch, size_t count, caf::actor sink) {
  self->state.journal = std::move(journal);
  self->state.batch = std::move(batch);
  self->state.remaining = count;
  self->state.sink = std::move(sink);
  write_next(self);
  return {};
}

/// The event log in a fresh directory, a CAF system with the work-sharing
/// scheduler and a detached journal, for each run.
class Journal : public benchmark::Fixture {
public:
  void SetUp(benchmark::State& state) override {
    dir_ = make_temp_dir();
    if (dir_.empty()) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    auto log = fota::storage::event_log::open({dir_, true});
    if (!log) {
      state.SkipWithError(log.error().message.c_str());
      return;
    }
    log_ = std::move(log).value();
    cfg_ = std::make_unique<caf::actor_system_config>();
    cfg_->set("scheduler.policy", caf::atom("sharing"));
    cfg_->set("logger.file-verbosity", caf::atom("quiet"));
    cfg_->add_message_types<caf::id_block::fota>();
    sys_ = std::make_unique<caf::actor_system>(*cfg_);
    journal_ = sys_->spawn<caf::detached>(
        fota::journal, log_.get(), std::make_shared<fota::node_metrics>());
  }

  void TearDown(benchmark::State&) override {
    if (journal_)
      caf::anon_send_exit(journal_, caf::exit_reason::user_shutdown);
    journal_ = nullptr;
    sys_.reset(); // Waits for the journal, which uses the log.
    cfg_.reset();
    log_.reset();
    remove_dir(dir_);
  }

protected:
  std::string dir_;
  std::unique_ptr<fota::storage::event_log> log_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  fota::journal_actor journal_;
};

BENCHMARK_DEFINE_F(Journal, GroupCommit)(benchmark::State& state) {
  constexpr size_t appends_per_writer = 64;
  auto writers = static_cast<size_t>(state.range(0));
  fota::event_batch batch{{make_envelope()}};
  auto envelope_size = batch.envelopes.front().size();
  uint64_t events = 0;
  uint64_t writes_before = log_ ? log_->writes() : 0;
  std::unique_ptr<caf::scoped_actor> self;
  if (sys_)
    self = std::make_unique<caf::scoped_actor>(*sys_);
  for (auto _ : state) {
    auto sink = caf::actor_cast<caf::actor>(*self);
    for (size_t i = 0; i < writers; ++i)
      sys_->spawn(writer, journal_, batch, appends_per_writer, sink);
    std::string error;
    size_t done = 0;
    (*self)->receive_for(done, writers)([&](std::string& err) {
      if (error.empty())
        error = std::move(err);
    });
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      break;
    }
    events += writers * appends_per_writer;
  }
  if (!log_)
    return;
  auto writes = log_->writes() - writes_before;
  state.counters["events/s"] = benchmark::Counter(static_cast<double>(events),
                                                  benchmark::Counter::kIsRate);
  state.counters["avg_batch"] =
      writes > 0 ? static_cast<double>(events) / static_cast<double>(writes)
                 : 0;
  state.SetBytesProcessed(static_cast<int64_t>(events * envelope_size));
}

BENCHMARK_REGISTER_F(Journal, GroupCommit)
    ->ArgNames({"writers"})
    ->Arg(1)
    ->Arg(64)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
