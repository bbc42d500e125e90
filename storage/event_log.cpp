/// The RocksDB implementation of the event log. This is the one place where
/// `rocksdb::Status` exists; `to_failure` turns it into `fota::failure`.
#include "storage/event_log.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <utility>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>

namespace fota::storage {

namespace {

// -- constants ----------------------------------------------------------------

constexpr const char* events_cf_name = "events";
constexpr const char* snapshots_cf_name = "snapshots";
constexpr const char* meta_cf_name = "meta";

/// A key is an 8-byte big-endian sequence, so that byte order is log order.
constexpr size_t key_size = 8;

using key_bytes = std::array<char, key_size>;

/// Tag of field 1 (`sequence`, varint) in an `EventEnvelope`.
constexpr uint8_t sequence_tag = 0x08;

/// The stamp is the tag plus a varint of at most 10 bytes.
constexpr size_t max_stamp_size = 11;

// -- status translation -------------------------------------------------------

/// Turns a RocksDB status into the project's error. `operation` names what
/// was attempted, e.g. "append".
failure to_failure(const rocksdb::Status& st, std::string_view operation) {
  auto code = errc::storage_error;
  if (st.IsCorruption())
    code = errc::corrupted;
  else if (st.IsIOError() || st.IsBusy() || st.IsTimedOut() || st.IsTryAgain())
    code = errc::unavailable;
  std::string msg{operation};
  msg += " failed: ";
  msg += st.ToString();
  return failure{code, std::move(msg)};
}

// -- encoding -----------------------------------------------------------------

key_bytes encode_key(uint64_t x) {
  key_bytes buf;
  for (size_t i = 0; i < key_size; ++i)
    buf[i] = static_cast<char>((x >> (8 * (key_size - 1 - i))) & 0xFF);
  return buf;
}

expected<uint64_t> decode_key(const rocksdb::Slice& key, const char* cf) {
  if (key.size() != key_size) {
    std::string msg = "a key in column family '";
    msg += cf;
    msg += "' has ";
    msg += std::to_string(key.size());
    msg += " bytes instead of 8";
    return failure{errc::corrupted, std::move(msg)};
  }
  uint64_t x = 0;
  for (size_t i = 0; i < key_size; ++i)
    x = (x << 8) | static_cast<uint8_t>(key[i]);
  return x;
}

/// Writes the protobuf encoding of field 1 = `seq` into `buf`; returns its
/// size.
size_t encode_stamp(uint64_t seq, std::array<char, max_stamp_size>& buf) {
  size_t n = 0;
  buf[n++] = static_cast<char>(sequence_tag);
  while (seq >= 0x80) {
    buf[n++] = static_cast<char>((seq & 0x7F) | 0x80);
    seq >>= 7;
  }
  buf[n++] = static_cast<char>(seq);
  return n;
}

rocksdb::Slice as_slice(const key_bytes& x) {
  return rocksdb::Slice{x.data(), x.size()};
}

rocksdb::Slice as_slice(std::string_view x) {
  return rocksdb::Slice{x.data(), x.size()};
}

// -- fault injection ----------------------------------------------------------

/// A writable file that fails every write once its file system is armed.
class faulty_file : public rocksdb::FSWritableFileOwnerWrapper {
public:
  faulty_file(std::unique_ptr<rocksdb::FSWritableFile> file,
              const std::atomic<bool>& armed)
    : FSWritableFileOwnerWrapper(std::move(file)), armed_(armed) {
    // nop
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& opts,
                           rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::Append(data, opts, dbg);
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& opts,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::Append(data, opts, info, dbg);
  }

  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& opts,
                                     rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, opts,
                                                        dbg);
  }

  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data,
                                     uint64_t offset,
                                     const rocksdb::IOOptions& opts,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, opts,
                                                        info, dbg);
  }

  rocksdb::IOStatus Sync(const rocksdb::IOOptions& opts,
                         rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::Sync(opts, dbg);
  }

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& opts,
                          rocksdb::IODebugContext* dbg) override {
    if (armed_)
      return injected();
    return FSWritableFileOwnerWrapper::Fsync(opts, dbg);
  }

  static rocksdb::IOStatus injected() {
    return rocksdb::IOStatus::NoSpace("injected by fail_writes_for_testing");
  }

private:
  const std::atomic<bool>& armed_;
};

/// The default file system, with writes that fail on demand. Unarmed, it
/// costs one atomic load per write.
class faulty_file_system : public rocksdb::FileSystemWrapper {
public:
  faulty_file_system() : FileSystemWrapper(rocksdb::FileSystem::Default()) {
    // nop
  }

  const char* Name() const override { return "fota.faulty_file_system"; }

  void arm() noexcept { armed_ = true; }

  rocksdb::IOStatus
  NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                  std::unique_ptr<rocksdb::FSWritableFile>* result,
                  rocksdb::IODebugContext* dbg) override {
    return wrap(target()->NewWritableFile(fname, opts, result, dbg), result);
  }

  rocksdb::IOStatus
  ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                     rocksdb::IODebugContext* dbg) override {
    return wrap(target()->ReopenWritableFile(fname, opts, result, dbg), result);
  }

  rocksdb::IOStatus
  ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                    const rocksdb::FileOptions& opts,
                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                    rocksdb::IODebugContext* dbg) override {
    return wrap(
        target()->ReuseWritableFile(fname, old_fname, opts, result, dbg),
        result);
  }

private:
  rocksdb::IOStatus wrap(rocksdb::IOStatus st,
                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (!st.ok())
      return st;
    if (armed_) {
      result->reset();
      return faulty_file::injected();
    }
    *result = std::make_unique<faulty_file>(std::move(*result), armed_);
    return st;
  }

  std::atomic<bool> armed_{false};
};

// -- tuning -------------------------------------------------------------------

/// The best compression this RocksDB build supports: LZ4 for speed, none if
/// the build has no LZ4 (so that opening never fails for a missing library).
rocksdb::CompressionType pick_compression() {
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType x) {
    return std::find(supported.begin(), supported.end(), x) != supported.end();
  };
  if (has(rocksdb::kLZ4Compression))
    return rocksdb::kLZ4Compression;
  if (has(rocksdb::kSnappyCompression))
    return rocksdb::kSnappyCompression;
  return rocksdb::kNoCompression;
}

rocksdb::ColumnFamilyOptions cf_options(const std::string& name,
                                        rocksdb::CompressionType compression) {
  rocksdb::ColumnFamilyOptions opts;
  opts.compression = compression;
  opts.level_compaction_dynamic_level_bytes = true;
  if (name == events_cf_name) {
    // The write path: large memtables absorb bursts of group commits.
    opts.write_buffer_size = 128 << 20;
    opts.max_write_buffer_number = 4;
    opts.min_write_buffer_number_to_merge = 1;
  } else {
    opts.write_buffer_size = 16 << 20;
  }
  return opts;
}

} // namespace

// -- impl ---------------------------------------------------------------------

struct event_log::impl {
  /// Destroys the column family handles before the database: Debian's
  /// RocksDB asserts on any other order. Iterators never outlive a call.
  ~impl() {
    if (db) {
      for (auto* handle : handles)
        db->DestroyColumnFamilyHandle(handle);
      handles.clear();
      db->Close().PermitUncheckedError();
      db.reset();
    }
  }

  /// Fails with `errc::unavailable` once a write has failed.
  status check_writable() const {
    if (write_failure)
      return failure{errc::unavailable, "storage refuses writes after a "
                                        "failed write (" +
                                            *write_failure + ")"};
    return std::nullopt;
  }

  /// Records a failed write so that later writes are refused.
  failure write_failed(const rocksdb::Status& st, std::string_view operation) {
    auto err = to_failure(st, operation);
    if (!write_failure)
      write_failure = err.message;
    return err;
  }

  options opts;
  std::shared_ptr<faulty_file_system> fs;
  std::unique_ptr<rocksdb::Env> env;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* snapshots = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::WriteOptions append_opts;
  rocksdb::WriteOptions synced_opts;
  std::atomic<uint64_t> last_sequence{0};
  std::atomic<uint64_t> writes{0};
  std::optional<std::string> write_failure;
};

// -- construction -------------------------------------------------------------

event_log::event_log(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
  // nop
}

event_log::~event_log() = default;

expected<std::unique_ptr<event_log>> event_log::open(const options& opts) {
  auto st = std::make_unique<impl>();
  st->opts = opts;
  st->fs = std::make_shared<faulty_file_system>();
  st->env = rocksdb::NewCompositeEnv(st->fs);
  rocksdb::DBOptions db_opts;
  db_opts.env = st->env.get();
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.max_background_jobs = 4;
  db_opts.bytes_per_sync = 1 << 20;
  db_opts.max_total_wal_size = 512 << 20;
  db_opts.keep_log_file_num = 5;
  // Every column family the database has must be opened, plus ours.
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_opts, opts.path, &names).ok())
    names.clear(); // A new database, or DB::Open reports the problem below.
  for (const char* name : {rocksdb::kDefaultColumnFamilyName.c_str(),
                           events_cf_name, snapshots_cf_name, meta_cf_name})
    if (std::find(names.begin(), names.end(), name) == names.end())
      names.emplace_back(name);
  auto compression = pick_compression();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(names.size());
  for (auto& name : names)
    descriptors.emplace_back(name, cf_options(name, compression));
  rocksdb::DB* db = nullptr;
  auto s =
      rocksdb::DB::Open(db_opts, opts.path, descriptors, &st->handles, &db);
  if (!s.ok())
    return to_failure(s, "open '" + opts.path + "'");
  st->db.reset(db);
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == events_cf_name)
      st->events = st->handles[i];
    else if (names[i] == snapshots_cf_name)
      st->snapshots = st->handles[i];
    else if (names[i] == meta_cf_name)
      st->meta = st->handles[i];
  }
  st->append_opts.sync = opts.sync;
  st->synced_opts.sync = true;
  // The newest key of `events` holds the last sequence.
  {
    std::unique_ptr<rocksdb::Iterator> it{
        st->db->NewIterator(rocksdb::ReadOptions{}, st->events)};
    it->SeekToLast();
    if (it->Valid()) {
      auto seq = decode_key(it->key(), events_cf_name);
      if (!seq)
        return std::move(seq).error();
      st->last_sequence = *seq;
    }
    if (!it->status().ok())
      return to_failure(it->status(), "find the last sequence");
  }
  return std::unique_ptr<event_log>{new event_log(std::move(st))};
}

// -- events -------------------------------------------------------------------

status event_log::check_envelope(std::string_view envelope) {
  if (!envelope.empty() && (static_cast<uint8_t>(envelope.front()) >> 3) == 1)
    return failure{errc::invalid_argument,
                   "an envelope for the event log sets field 1 (sequence); "
                   "the log assigns it"};
  return std::nullopt;
}

expected<sequence_number>
event_log::append(const std::vector<std::string>& envelopes) {
  auto& st = *impl_;
  if (auto err = st.check_writable())
    return std::move(*err);
  auto last = st.last_sequence.load();
  if (envelopes.empty())
    return sequence_number{last};
  size_t reserve = 0;
  for (auto& envelope : envelopes) {
    if (auto err = check_envelope(envelope))
      return std::move(*err);
    reserve += envelope.size() + key_size + max_stamp_size + 8;
  }
  rocksdb::WriteBatch batch{reserve};
  std::array<char, max_stamp_size> stamp;
  auto seq = last;
  for (auto& envelope : envelopes) {
    ++seq;
    auto key = encode_key(seq);
    auto key_slice = as_slice(key);
    std::array<rocksdb::Slice, 2> value{
        rocksdb::Slice{stamp.data(), encode_stamp(seq, stamp)},
        as_slice(envelope)};
    auto s = batch.Put(st.events, rocksdb::SliceParts{&key_slice, 1},
                       rocksdb::SliceParts{value.data(), 2});
    if (!s.ok())
      return to_failure(s, "append (batching)");
  }
  auto s = st.db->Write(st.append_opts, &batch);
  if (!s.ok())
    return st.write_failed(s, "append");
  st.last_sequence = seq;
  ++st.writes;
  return sequence_number{seq};
}

status event_log::read(
    sequence_number from,
    const std::function<bool(sequence_number, std::string_view)>& fn) const {
  auto& st = *impl_;
  std::unique_ptr<rocksdb::Iterator> it{
      st.db->NewIterator(rocksdb::ReadOptions{}, st.events)};
  auto start = encode_key(from.value());
  for (it->Seek(as_slice(start)); it->Valid(); it->Next()) {
    auto seq = decode_key(it->key(), events_cf_name);
    if (!seq)
      return std::move(seq).error();
    auto value = it->value();
    if (!fn(sequence_number{*seq},
            std::string_view{value.data(), value.size()}))
      return std::nullopt;
  }
  if (!it->status().ok())
    return to_failure(it->status(), "read");
  return std::nullopt;
}

sequence_number event_log::last_sequence() const noexcept {
  return sequence_number{impl_->last_sequence.load()};
}

uint64_t event_log::writes() const noexcept {
  return impl_->writes.load();
}

// -- snapshots ----------------------------------------------------------------

status event_log::put_snapshot(const snapshot& snap) {
  auto& st = *impl_;
  if (auto err = st.check_writable())
    return err;
  auto begin = encode_key(0);
  auto key = encode_key(snap.sequence.value());
  rocksdb::WriteBatch batch;
  // Older snapshots go in the same atomic write as the new one.
  auto s = batch.DeleteRange(st.snapshots, as_slice(begin), as_slice(key));
  if (s.ok())
    s = batch.Put(st.snapshots, as_slice(key), as_slice(snap.bytes));
  if (!s.ok())
    return to_failure(s, "put_snapshot (batching)");
  s = st.db->Write(st.synced_opts, &batch);
  if (!s.ok())
    return st.write_failed(s, "put_snapshot");
  return std::nullopt;
}

expected<std::optional<snapshot>> event_log::latest_snapshot() const {
  auto& st = *impl_;
  std::unique_ptr<rocksdb::Iterator> it{
      st.db->NewIterator(rocksdb::ReadOptions{}, st.snapshots)};
  it->SeekToLast();
  if (it->Valid()) {
    auto seq = decode_key(it->key(), snapshots_cf_name);
    if (!seq)
      return std::move(seq).error();
    return std::optional<snapshot>{
        snapshot{sequence_number{*seq}, it->value().ToString()}};
  }
  if (!it->status().ok())
    return to_failure(it->status(), "latest_snapshot");
  return std::optional<snapshot>{};
}

// -- meta ---------------------------------------------------------------------

status event_log::put_meta(std::string_view key, std::string_view value) {
  auto& st = *impl_;
  if (auto err = st.check_writable())
    return err;
  auto s = st.db->Put(st.synced_opts, st.meta, as_slice(key), as_slice(value));
  if (!s.ok())
    return st.write_failed(s, "put_meta");
  return std::nullopt;
}

expected<std::optional<std::string>>
event_log::get_meta(std::string_view key) const {
  auto& st = *impl_;
  std::string value;
  auto s = st.db->Get(rocksdb::ReadOptions{}, st.meta, as_slice(key), &value);
  if (s.IsNotFound())
    return std::optional<std::string>{};
  if (!s.ok())
    return to_failure(s, "get_meta");
  return std::optional<std::string>{std::move(value)};
}

// -- testing ------------------------------------------------------------------

void event_log::fail_writes_for_testing() noexcept {
  impl_->fs->arm();
}

} // namespace fota::storage
