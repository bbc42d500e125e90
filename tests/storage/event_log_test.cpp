/// Tests of the RocksDB event log: sequences, stamping, reopen, snapshots,
/// metadata, the errors it reports, and storage faults: a full disk, a WAL
/// cut short, lost, torn or corrupted.
#include "fota/v1/events.pb.h"
#include "storage/event_log.hpp"
#include "storage/high_water_mark.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

namespace {

using fota::errc;
using fota::sequence_number;
using fota::storage::event_log;

/// A fresh directory under the system's temp directory, removed at the end.
class temp_dir {
public:
  temp_dir() {
    auto pattern =
        (std::filesystem::temp_directory_path() / "fota-storage-XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = pattern;
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }

  /// The database directory inside this directory.
  std::string db() const { return (path_ / "db").string(); }

private:
  std::filesystem::path path_;
};

/// An encoded envelope without a sequence, as the journal receives it.
std::string make_envelope(const std::string& stream, uint64_t task) {
  fota::v1::EventEnvelope envelope;
  envelope.set_time_ms(1'700'000'000'000);
  envelope.set_stream(stream);
  auto* payload = envelope.mutable_execution_succeeded();
  payload->set_task_id(task);
  payload->set_sequence(7);
  return envelope.SerializeAsString();
}

std::unique_ptr<event_log> open_log(const std::string& path) {
  auto log = event_log::open({path, true});
  if (!log) {
    ADD_FAILURE() << "open failed: " << log.error().message;
    return nullptr;
  }
  return std::move(log).value();
}

/// Reads every event with a sequence >= `from`.
std::vector<std::pair<uint64_t, std::string>> read_all(const event_log& log,
                                                       uint64_t from) {
  std::vector<std::pair<uint64_t, std::string>> result;
  auto err = log.read(sequence_number{from},
                      [&](sequence_number seq, std::string_view bytes) {
                        result.emplace_back(seq.value(), std::string{bytes});
                        return true;
                      });
  EXPECT_FALSE(err) << err->message;
  return result;
}

/// The keys of column family `cf`, read with RocksDB itself.
std::vector<std::string> raw_keys(const std::string& path,
                                  const std::string& cf) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
      {rocksdb::kDefaultColumnFamilyName, {}}, {cf, {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly({}, path, descriptors, &handles, &db);
  if (!st.ok()) {
    ADD_FAILURE() << st.ToString();
    return {};
  }
  std::vector<std::string> keys;
  {
    std::unique_ptr<rocksdb::Iterator> it{
        db->NewIterator(rocksdb::ReadOptions{}, handles[1])};
    for (it->SeekToFirst(); it->Valid(); it->Next())
      keys.push_back(it->key().ToString());
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  }
  for (auto* handle : handles)
    db->DestroyColumnFamilyHandle(handle);
  delete db;
  return keys;
}

TEST(EventLog, EmptyLogHasLastSequenceZero) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_sequence().value(), 0u);
  EXPECT_TRUE(read_all(*log, 0).empty());
}

TEST(EventLog, AppendAssignsConsecutiveSequences) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  auto first = log->append({make_envelope("task/1", 1)});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->value(), 1u);
  auto second =
      log->append({make_envelope("task/1", 1), make_envelope("task/2", 2),
                   make_envelope("task/3", 3)});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->value(), 4u);
  EXPECT_EQ(log->last_sequence().value(), 4u);
  EXPECT_EQ(log->writes(), 2u);
  std::vector<uint64_t> seqs;
  for (auto& [seq, bytes] : read_all(*log, 0))
    seqs.push_back(seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST(EventLog, EmptyAppendWritesNothingAndReturnsLastSequence) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append({make_envelope("task/1", 1)}));
  auto res = log->append({});
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->value(), 1u);
  EXPECT_EQ(log->writes(), 1u);
}

TEST(EventLog, ReadStartsAtTheGivenSequence) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  std::vector<std::string> batch;
  for (uint64_t i = 1; i <= 10; ++i)
    batch.push_back(make_envelope("task/" + std::to_string(i), i));
  ASSERT_TRUE(log->append(batch));
  auto events = read_all(*log, 6);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events.front().first, 6u);
  EXPECT_EQ(events.back().first, 10u);
}

TEST(EventLog, ReadStopsWhenTheCallbackReturnsFalse) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append(
      {make_envelope("a", 1), make_envelope("b", 2), make_envelope("c", 3)}));
  std::vector<uint64_t> seen;
  auto err =
      log->read(sequence_number{1}, [&](sequence_number seq, std::string_view) {
        seen.push_back(seq.value());
        return seen.size() < 2;
      });
  EXPECT_FALSE(err);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
}

TEST(EventLog, EnvelopesDecodeWithTheirSequenceStamped) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append({make_envelope("task/1", 1)}));
  // A sequence above 127 needs a multi-byte varint.
  std::vector<std::string> batch(200, make_envelope("task/2", 2));
  ASSERT_TRUE(log->append(batch));
  auto events = read_all(*log, 0);
  ASSERT_EQ(events.size(), 201u);
  for (auto& [seq, bytes] : events) {
    fota::v1::EventEnvelope envelope;
    ASSERT_TRUE(envelope.ParseFromString(bytes)) << "sequence " << seq;
    EXPECT_EQ(envelope.sequence(), seq);
    EXPECT_EQ(envelope.time_ms(), 1'700'000'000'000);
    EXPECT_EQ(envelope.stream(), seq == 1 ? "task/1" : "task/2");
    ASSERT_TRUE(envelope.has_execution_succeeded());
    EXPECT_EQ(envelope.execution_succeeded().task_id(), seq == 1 ? 1u : 2u);
  }
}

TEST(EventLog, AppendRefusesAnEnvelopeThatSetsItsOwnSequence) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  fota::v1::EventEnvelope envelope;
  envelope.set_sequence(42);
  envelope.set_stream("task/1");
  auto res =
      log->append({make_envelope("task/1", 1), envelope.SerializeAsString()});
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::invalid_argument);
  EXPECT_EQ(log->last_sequence().value(), 0u);
  // A refused request is not a storage failure: the log still writes.
  EXPECT_TRUE(log->append({make_envelope("task/1", 1)}));
}

TEST(EventLog, CleanReopenKeepsEventsAndLastSequence) {
  temp_dir dir;
  {
    auto log = open_log(dir.db());
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->append({make_envelope("a", 1), make_envelope("b", 2)}));
    ASSERT_TRUE(log->append({make_envelope("c", 3)}));
  }
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->last_sequence().value(), 3u);
  auto events = read_all(*log, 0);
  ASSERT_EQ(events.size(), 3u);
  fota::v1::EventEnvelope envelope;
  ASSERT_TRUE(envelope.ParseFromString(events[2].second));
  EXPECT_EQ(envelope.stream(), "c");
  EXPECT_EQ(envelope.sequence(), 3u);
  // Appending continues after the last sequence.
  auto res = log->append({make_envelope("d", 4)});
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->value(), 4u);
}

TEST(EventLog, LatestSnapshotWinsAndOlderOnesAreDropped) {
  temp_dir dir;
  {
    auto log = open_log(dir.db());
    ASSERT_TRUE(log);
    auto none = log->latest_snapshot();
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_FALSE(none->has_value());
    EXPECT_FALSE(log->put_snapshot({sequence_number{10}, "state@10"}));
    EXPECT_FALSE(log->put_snapshot({sequence_number{20}, "state@20"}));
    auto latest = log->latest_snapshot();
    ASSERT_TRUE(latest) << latest.error().message;
    ASSERT_TRUE(latest->has_value());
    EXPECT_EQ((*latest)->sequence.value(), 20u);
    EXPECT_EQ((*latest)->bytes, "state@20");
    EXPECT_FALSE(log->put_snapshot({sequence_number{30}, "state@30"}));
  }
  // Reopen to check what is durable, including the range deletion.
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  auto latest = log->latest_snapshot();
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ((*latest)->sequence.value(), 30u);
  EXPECT_EQ((*latest)->bytes, "state@30");
  log.reset();
  // Look under the API: only the newest snapshot is left.
  EXPECT_EQ(raw_keys(dir.db(), "snapshots"),
            (std::vector<std::string>{std::string{"\0\0\0\0\0\0\0\x1e", 8}}));
}

TEST(EventLog, MetaRoundTrips) {
  temp_dir dir;
  {
    auto log = open_log(dir.db());
    ASSERT_TRUE(log);
    auto missing = log->get_meta("node_id");
    ASSERT_TRUE(missing) << missing.error().message;
    EXPECT_FALSE(missing->has_value());
    EXPECT_FALSE(log->put_meta("node_id", "node-1"));
    EXPECT_FALSE(log->put_meta("format", std::string{"v1\0x", 4}));
  }
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  auto node_id = log->get_meta("node_id");
  ASSERT_TRUE(node_id && node_id->has_value());
  EXPECT_EQ(**node_id, "node-1");
  auto format = log->get_meta("format");
  ASSERT_TRUE(format && format->has_value());
  EXPECT_EQ(**format, (std::string{"v1\0x", 4}));
}

TEST(EventLog, OpeningARegularFileFailsWithAPreciseError) {
  temp_dir dir;
  auto file = (dir.path() / "not-a-directory").string();
  std::ofstream{file} << "hello";
  auto log = event_log::open({file, true});
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, errc::unavailable);
  // The message names the operation, the path and RocksDB's reason.
  EXPECT_NE(log.error().message.find("open '" + file + "' failed"),
            std::string::npos)
      << log.error().message;
  EXPECT_NE(log.error().message.find("IO error"), std::string::npos)
      << log.error().message;
  EXPECT_NE(log.error().message.find("is not a directory"), std::string::npos)
      << log.error().message;
}

TEST(EventLog, OpeningAnOpenDatabaseAgainFailsOnItsLock) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  auto second = event_log::open({dir.db(), true});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
  EXPECT_NE(second.error().message.find("LOCK"), std::string::npos)
      << second.error().message;
}

TEST(EventLog, FailedWriteIsReportedAndLaterWritesAreRefused) {
  temp_dir dir;
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append({make_envelope("a", 1)}));
  log->fail_writes_for_testing();
  auto failed = log->append({make_envelope("b", 2)});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, errc::unavailable);
  EXPECT_NE(failed.error().message.find("append failed: IO error: No space"),
            std::string::npos)
      << failed.error().message;
  EXPECT_EQ(log->last_sequence().value(), 1u);
  auto refused = log->append({make_envelope("c", 3)});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::unavailable);
  EXPECT_EQ(refused.error().message.rfind("storage refuses writes after", 0),
            0u)
      << refused.error().message;
  auto meta = log->put_meta("k", "v");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->code, errc::unavailable);
  // What was acknowledged is still readable.
  auto events = read_all(*log, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, 1u);
}

// -- storage faults -----------------------------------------------------------

constexpr uint64_t mib = uint64_t{1} << 20;

namespace fs = std::filesystem;

/// A data directory's disk whose free space the test sets.
struct fake_disk {
  std::atomic<uint64_t> free{1024 * mib};

  fota::storage::free_space_probe probe() {
    return [this]() -> fota::expected<uint64_t> { return free.load(); };
  }
};

/// Options for a synced log with a 64 MiB reserve on `disk`, probed on
/// every write.
fota::storage::options guarded(const std::string& path, fake_disk& disk) {
  fota::storage::options opts;
  opts.path = path;
  opts.min_free_space = 64 * mib;
  opts.free_space = disk.probe();
  opts.probe_interval = std::chrono::milliseconds{0};
  return opts;
}

/// The newest WAL file of the database at `db`.
fs::path newest_wal(const std::string& db) {
  fs::path newest;
  for (const auto& e : fs::directory_iterator{db})
    if (e.path().extension() == ".log" &&
        (newest.empty() || newest.filename() < e.path().filename()))
      newest = e.path();
  EXPECT_FALSE(newest.empty()) << "no WAL in " << db;
  return newest;
}

/// Appends the start of a record that never completed: a header announcing
/// 200 bytes and 50 of them, as a crash in the middle of a write leaves it.
/// Returns the bytes appended.
uint64_t append_torn_record(const fs::path& wal) {
  constexpr uint64_t block = 32768;
  auto size = fs::file_size(wal);
  std::string bytes;
  if (block - size % block < 7 + 50)
    bytes.append(block - size % block, '\0'); // RocksDB pads a block's end.
  bytes += std::string{"\x12\x34\x56\x78\xc8\x00\x01", 7};
  bytes += std::string(50, 'y');
  std::ofstream out{wal, std::ios::app | std::ios::binary};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return 7 + 50;
}

/// Writes 10 batches of 10 envelopes and closes the log cleanly, which
/// leaves the high-water mark at 100. Returns the WAL's size after each
/// batch.
std::vector<uint64_t> write_hundred_events(const std::string& path) {
  std::vector<uint64_t> sizes;
  auto log = open_log(path);
  if (!log)
    return sizes;
  for (uint64_t b = 0; b < 10; ++b) {
    std::vector<std::string> batch;
    for (uint64_t i = 0; i < 10; ++i)
      batch.push_back(make_envelope("task/" + std::to_string(b), b));
    EXPECT_TRUE(log->append(batch));
    sizes.push_back(fs::file_size(newest_wal(path)));
  }
  return sizes;
}

TEST(EventLog, WritesBelowTheReserveAreRefusedAndResumeOnceSpaceIsFreed) {
  temp_dir dir;
  fake_disk disk;
  auto opened = event_log::open(guarded(dir.db(), disk));
  ASSERT_TRUE(opened) << opened.error().message;
  auto log = std::move(*opened);
  ASSERT_TRUE(log->append({make_envelope("a", 1)}));
  disk.free = 3 * mib + mib / 10;
  auto refused = log->append({make_envelope("b", 2)});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::resource_exhausted);
  EXPECT_EQ(refused.error().message,
            "data directory " + dir.db() +
                " has 3.1 MiB free, below the reserve of 64 MiB; writes "
                "resume when space is freed");
  EXPECT_EQ(log->writes(), 1u) << "nothing reached RocksDB";
  EXPECT_EQ(log->last_sequence().value(), 1u);
  auto meta = log->put_meta("k", "v");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->code, errc::resource_exhausted);
  auto snap = log->put_snapshot({sequence_number{1}, "state"});
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->code, errc::resource_exhausted);
  // Reads go on.
  EXPECT_EQ(read_all(*log, 0).size(), 1u);
  EXPECT_TRUE(log->get_meta("k"));
  // The refusal is not sticky: once space is freed, writes resume.
  disk.free = 1024 * mib;
  auto resumed = log->append({make_envelope("c", 3)});
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_EQ(resumed->value(), 2u);
  log.reset();
  // Nothing already stored was lost, and there is no gap.
  auto reopened = open_log(dir.db());
  ASSERT_TRUE(reopened);
  std::vector<uint64_t> seqs;
  for (auto& [seq, bytes] : read_all(*reopened, 0))
    seqs.push_back(seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
}

TEST(EventLog, HighWaterMarkFollowsAppendsAtMostEveryIntervalAndACleanClose) {
  temp_dir dir;
  {
    fota::storage::options opts;
    opts.path = dir.db();
    opts.high_water_interval = std::chrono::hours{1};
    auto log = event_log::open(opts);
    ASSERT_TRUE(log) << log.error().message;
    EXPECT_FALSE((*log)->high_water());
    ASSERT_TRUE((*log)->append({make_envelope("a", 1)}));
    ASSERT_TRUE((*log)->append({make_envelope("b", 2)}));
    ASSERT_TRUE((*log)->append({make_envelope("c", 3)}));
    // The first append recorded the mark; the others fell in its interval.
    EXPECT_EQ((*log)->high_water(), sequence_number{1});
  }
  auto mark = fota::storage::high_water_mark::open(dir.db(), false);
  ASSERT_TRUE(mark) << mark.error().message;
  EXPECT_EQ(mark->value(), sequence_number{3}) << "a clean close records it";
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->recovered().high_water, sequence_number{3});
  EXPECT_EQ(log->recovered().last_sequence, sequence_number{3});
}

TEST(EventLog, WithoutSyncTheHighWaterMarkDoesNotMove) {
  temp_dir dir;
  {
    auto log = event_log::open({dir.db(), false});
    ASSERT_TRUE(log) << log.error().message;
    ASSERT_TRUE((*log)->append({make_envelope("a", 1)}));
  }
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->recovered().high_water);
  EXPECT_EQ(log->last_sequence().value(), 1u);
}

TEST(EventLog, AWalCutShortOfAcknowledgedEventsStopsTheOpenNamingThem) {
  temp_dir dir;
  write_hundred_events(dir.db());
  auto wal = newest_wal(dir.db());
  fs::resize_file(wal, fs::file_size(wal) / 2);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto log = event_log::open({dir.db(), true});
    ASSERT_FALSE(log);
    EXPECT_EQ(log.error().code, errc::data_loss);
    static const std::regex lost{
        R"(^events (\d+)\.\.100 were acknowledged but are missing from the )"
        R"(log in '.*': the WAL was truncated or lost.*; see fotad --check$)"};
    std::smatch m;
    ASSERT_TRUE(std::regex_match(log.error().message, m, lost))
        << log.error().message;
    EXPECT_GT(std::stoull(m[1]), 1u);
    EXPECT_LT(std::stoull(m[1]), 100u);
  }
}

TEST(EventLog, AWalCutAtARecordBoundaryIsCaughtByTheHighWaterMark) {
  temp_dir dir;
  auto sizes = write_hundred_events(dir.db());
  ASSERT_EQ(sizes.size(), 10u);
  // RocksDB sees a clean end here: only the mark tells what is missing.
  fs::resize_file(newest_wal(dir.db()), sizes[4]);
  auto log = event_log::open({dir.db(), true});
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, errc::data_loss);
  EXPECT_EQ(log.error().message.rfind("events 51..100 were acknowledged but "
                                      "are missing from the log",
                                      0),
            0u)
      << log.error().message;
  EXPECT_EQ(log.error().message.find("torn"), std::string::npos)
      << log.error().message;
}

TEST(EventLog, ALostWalStopsTheOpenNamingEveryAcknowledgedEvent) {
  temp_dir dir;
  write_hundred_events(dir.db());
  fs::remove(newest_wal(dir.db()));
  auto log = event_log::open({dir.db(), true});
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, errc::data_loss);
  EXPECT_EQ(log.error().message.rfind(
                "events 1..100 were acknowledged but are missing", 0),
            0u)
      << log.error().message;
}

TEST(EventLog, ATornTailBeyondTheHighWaterMarkIsDroppedAndReported) {
  temp_dir dir;
  write_hundred_events(dir.db());
  auto wal = newest_wal(dir.db());
  auto torn = append_torn_record(wal);
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  const auto& found = log->recovered();
  EXPECT_EQ(found.wal.file, wal.filename().string());
  EXPECT_EQ(found.wal.torn_bytes, torn);
  EXPECT_TRUE(found.wal.understood);
  EXPECT_EQ(found.last_sequence, sequence_number{100});
  EXPECT_EQ(found.high_water, sequence_number{100});
  EXPECT_EQ(read_all(*log, 0).size(), 100u);
  auto next = log->append({make_envelope("after", 1)});
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->value(), 101u);
}

TEST(EventLog, AnIntactWalHasNoTornTail) {
  temp_dir dir;
  write_hundred_events(dir.db());
  auto log = open_log(dir.db());
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->recovered().wal.file.empty());
  EXPECT_EQ(log->recovered().wal.torn_bytes, 0u);
  EXPECT_TRUE(log->recovered().wal.understood);
}

TEST(EventLog, CorruptionInsideTheWalStopsTheOpenNamingWhatIsLost) {
  temp_dir dir;
  write_hundred_events(dir.db());
  auto wal = newest_wal(dir.db());
  {
    std::fstream f{wal, std::ios::in | std::ios::out | std::ios::binary};
    auto middle = static_cast<std::streamoff>(fs::file_size(wal) / 2);
    f.seekg(middle);
    char c = 0;
    f.get(c);
    f.seekp(middle);
    f.put(static_cast<char>(c ^ 0x55));
  }
  auto log = event_log::open({dir.db(), true});
  ASSERT_FALSE(log);
  EXPECT_EQ(log.error().code, errc::corrupted);
  static const std::regex damaged{
      R"(^open '.*' failed: Corruption: .*; read up to the damage, the log )"
      R"(ends at event (\d+); the high-water mark is 100: events (\d+)\.\.100 )"
      R"(were acknowledged and are damaged or missing; see fotad --check$)"};
  std::smatch m;
  ASSERT_TRUE(std::regex_match(log.error().message, m, damaged))
      << log.error().message;
  EXPECT_EQ(std::stoull(m[1]) + 1, std::stoull(m[2]));
}

TEST(EventLog, AReadOnlyOpenChangesNothingAndReportsTheDamage) {
  temp_dir dir;
  write_hundred_events(dir.db());
  auto wal = newest_wal(dir.db());
  fs::resize_file(wal, fs::file_size(wal) / 2);
  auto cut = fs::file_size(wal);
  fota::storage::options opts;
  opts.path = dir.db();
  opts.read_only = true;
  opts.verify_high_water = false;
  {
    auto log = event_log::open(opts);
    ASSERT_TRUE(log) << log.error().message;
    const auto& found = (*log)->recovered();
    EXPECT_LT(found.last_sequence.value(), 100u);
    EXPECT_EQ(found.high_water, sequence_number{100});
    EXPECT_GT(found.wal.torn_bytes, 0u);
    auto refused = (*log)->append({make_envelope("x", 1)});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, errc::failed_precondition);
  }
  EXPECT_EQ(fs::file_size(wal), cut) << "the WAL is left as it was";
  EXPECT_FALSE(event_log::open({dir.db(), true}));
}

} // namespace
