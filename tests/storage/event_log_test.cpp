/// Tests of the RocksDB event log: sequences, stamping, reopen, snapshots,
/// metadata and the errors it reports.
#include "fota/v1/events.pb.h"
#include "storage/event_log.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

} // namespace
