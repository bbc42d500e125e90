/// The RocksDB implementation of the event log. This is the one place where
/// `rocksdb::Status` exists; `to_failure` turns it into `fota::failure`.
#include "storage/event_log.hpp"

#include "storage/high_water_mark.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <utility>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>
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

// -- recovery -----------------------------------------------------------------

/// How RocksDB replays the WAL at open. Measured with RocksDB 7.8 on a WAL
/// of 100 synced writes, reopened after a kill (a throwaway program; the
/// tests in tests/storage/event_log_test.cpp pin what fota relies on).
/// "loss": opens, without the records after the damage, silently.
///
/// | damage to the WAL         | TolerateTail | Absolute   | PointInTime |
/// |---------------------------|--------------|------------|-------------|
/// | last record cut (torn)    | drops it     | fails open | drops it    |
/// | cut inside a record       | loss         | fails open | loss        |
/// | cut at a record boundary  | loss         | loss       | loss        |
/// | cut, zeros after it       | loss         | loss       | loss        |
/// | a flipped byte mid-WAL    | fails open   | fails open | loss        |
/// | the WAL deleted           | loss (empty) | loss       | loss        |
///
/// (kSkipAnyCorruptedRecords skips a damaged record and goes on.) So
/// `kAbsoluteConsistency` refuses the torn last record a crash leaves
/// behind, which was never acknowledged, and still misses a clean cut;
/// `kPointInTimeRecovery` drops everything after a damaged record without a
/// word. fota uses `kTolerateCorruptedTailRecords`: damage inside the WAL
/// stops the open, a torn tail is dropped (and reported, see
/// `scan_wal_tail`). What no mode sees, a WAL cut short or lost, the
/// high-water mark catches; a closed WAL missing from the directory,
/// `track_and_verify_wals_in_manifest`.
constexpr auto wal_recovery_mode =
    rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;

/// RocksDB's info log, discarded: a read-only open must not create or
/// rotate the `LOG` file of the directory it inspects.
class discard_logger : public rocksdb::Logger {
public:
  using rocksdb::Logger::Logv;

  void Logv(const char*, va_list) override {
    // nop
  }
};

/// The newest event of an open database, or 0.
expected<uint64_t> last_event(rocksdb::DB& db,
                              rocksdb::ColumnFamilyHandle* events) {
  std::unique_ptr<rocksdb::Iterator> it{
      db.NewIterator(rocksdb::ReadOptions{}, events)};
  it->SeekToLast();
  if (it->Valid())
    return decode_key(it->key(), events_cf_name);
  if (!it->status().ok())
    return to_failure(it->status(), "find the last sequence");
  return uint64_t{0};
}

/// Where a log that fails to open reads up to, past the damage: RocksDB's
/// point-in-time recovery, read-only, without the manifest's WAL check.
std::optional<uint64_t>
readable_end(rocksdb::DBOptions db_opts, const std::string& path,
             const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors) {
  db_opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_opts.track_and_verify_wals_in_manifest = false;
  db_opts.info_log = std::make_shared<discard_logger>();
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s =
      rocksdb::DB::OpenForReadOnly(db_opts, path, descriptors, &handles, &raw);
  if (!s.ok())
    return std::nullopt;
  std::unique_ptr<rocksdb::DB> db{raw};
  std::optional<uint64_t> result;
  for (size_t i = 0; i < descriptors.size(); ++i)
    if (descriptors[i].name == events_cf_name)
      if (auto last = last_event(*db, handles[i]))
        result = *last;
  for (auto* handle : handles)
    db->DestroyColumnFamilyHandle(handle);
  db->Close().PermitUncheckedError();
  return result;
}

/// "event 7 was" or "events 7..9 were".
std::string event_range(uint64_t first, uint64_t last) {
  if (first == last)
    return "event " + std::to_string(first) + " was";
  return "events " + std::to_string(first) + ".." + std::to_string(last) +
         " were";
}

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
  /// A clean close advances the high-water mark to the last event.
  ~impl() {
    if (db) {
      for (auto* handle : handles)
        db->DestroyColumnFamilyHandle(handle);
      handles.clear();
      db->Close().PermitUncheckedError();
      db.reset();
      if (mark_writable)
        advance_mark(last_sequence.load(), true);
    }
  }

  /// Fails with `errc::unavailable` once a write has failed, and with
  /// `errc::resource_exhausted` while free space is below the reserve. Runs
  /// before every RocksDB write.
  status admit() const {
    if (opts.read_only)
      return failure{errc::failed_precondition,
                     "the event log at '" + opts.path + "' is open read-only"};
    if (write_failure)
      return failure{errc::unavailable, "storage refuses writes after a "
                                        "failed write (" +
                                            *write_failure + ")"};
    return space->check();
  }

  /// Records `seq`, durable now, as the high-water mark when the last
  /// record is older than the interval (or when `force`). A mark that
  /// cannot be written fails later writes: acknowledged events would no
  /// longer be protected.
  void advance_mark(uint64_t seq, bool force) {
    if (!mark_writable)
      return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_mark < opts.high_water_interval)
      return;
    if (auto err = mark.record(sequence_number{seq})) {
      if (!write_failure)
        write_failure = err->message;
      return;
    }
    last_mark = now;
  }

  /// Records a failed write so that later writes are refused.
  failure write_failed(const rocksdb::Status& st, std::string_view operation) {
    auto err = to_failure(st, operation);
    if (!write_failure)
      write_failure = err.message;
    writes_failed = true;
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
  /// Called after each successful append.
  std::function<void(sequence_number)> appended;
  /// Set with `write_failure`, for readers on other threads.
  std::atomic<bool> writes_failed{false};
  std::shared_ptr<space_guard> space;
  high_water_mark mark;
  /// Whether this log advances the mark: opened for writing, with sync.
  bool mark_writable = false;
  std::chrono::steady_clock::time_point last_mark;
  open_report report;
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
  // What the last run left, read before RocksDB recovers (and replaces) the
  // WAL: the high-water mark and the WAL's tail.
  auto mark = high_water_mark::open(opts.path, false);
  if (!mark)
    return std::move(mark).error();
  auto high_water = mark->value();
  auto tail = scan_wal_tail(opts.path);
  if (!tail)
    return std::move(tail).error();
  rocksdb::DBOptions db_opts;
  db_opts.env = st->env.get();
  db_opts.create_if_missing = !opts.read_only;
  db_opts.create_missing_column_families = !opts.read_only;
  db_opts.max_background_jobs = 4;
  db_opts.bytes_per_sync = 1 << 20;
  db_opts.max_total_wal_size = 512 << 20;
  db_opts.keep_log_file_num = 5;
  db_opts.wal_recovery_mode = wal_recovery_mode;
  db_opts.track_and_verify_wals_in_manifest = true;
  if (opts.read_only)
    db_opts.info_log = std::make_shared<discard_logger>();
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
  auto s = opts.read_only
               ? rocksdb::DB::OpenForReadOnly(db_opts, opts.path, descriptors,
                                              &st->handles, &db)
               : rocksdb::DB::Open(db_opts, opts.path, descriptors,
                                   &st->handles, &db);
  if (!s.ok()) {
    auto err = to_failure(s, "open '" + opts.path + "'");
    if (!s.IsCorruption())
      return err;
    // Say what the damage costs: where the log still reads to, and what
    // was acknowledged.
    auto end = readable_end(db_opts, opts.path, descriptors);
    if (end)
      err.message += "; read up to the damage, the log ends at event " +
                     std::to_string(*end);
    if (high_water) {
      auto hw = high_water->value();
      err.message += "; the high-water mark is " + std::to_string(hw);
      if (end && *end < hw)
        err.message += ": " + event_range(*end + 1, hw) +
                       " acknowledged and are damaged or missing";
    }
    err.message += "; see fotad --check";
    return err;
  }
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
  auto last = last_event(*st->db, st->events);
  if (!last)
    return std::move(last).error();
  st->last_sequence = *last;
  st->report.last_sequence = sequence_number{*last};
  st->report.high_water = high_water;
  st->report.wal = std::move(*tail);
  if (opts.verify_high_water && high_water && *last < high_water->value()) {
    std::string msg = event_range(*last + 1, high_water->value());
    msg += " acknowledged but are missing from the log in '" + opts.path +
           "': the WAL was truncated or lost";
    if (st->report.wal.torn_bytes > 0)
      msg += " (" + st->report.wal.file + " ends in " +
             std::to_string(st->report.wal.torn_bytes) +
             " bytes of a torn write)";
    msg += "; see fotad --check";
    return failure{errc::data_loss, std::move(msg)};
  }
  if (!opts.read_only && opts.sync) {
    auto writable = high_water_mark::open(opts.path, true);
    if (!writable)
      return std::move(writable).error();
    st->mark = std::move(*writable);
    st->mark_writable = true;
  } else {
    st->mark = std::move(*mark);
  }
  st->space = std::make_shared<space_guard>(
      opts.path, opts.read_only ? 0 : opts.min_free_space, opts.free_space,
      opts.probe_interval);
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
  auto last = st.last_sequence.load();
  if (envelopes.empty())
    return sequence_number{last};
  if (auto err = st.admit())
    return std::move(*err);
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
  st.advance_mark(seq, false);
  if (st.appended)
    st.appended(sequence_number{seq});
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

void event_log::on_append(std::function<void(sequence_number)> fn) {
  impl_->appended = std::move(fn);
}

status event_log::read_range(
    sequence_number from, sequence_number to,
    const std::function<bool(sequence_number, std::string_view)>& fn) const {
  auto& st = *impl_;
  if (to.value() < from.value())
    return std::nullopt;
  rocksdb::ManagedSnapshot view{st.db.get()};
  auto bound = encode_key(to.value() + 1);
  auto upper = as_slice(bound);
  rocksdb::ReadOptions opts;
  opts.snapshot = view.snapshot();
  opts.iterate_upper_bound = &upper;
  // The iterator goes before the snapshot it reads.
  std::unique_ptr<rocksdb::Iterator> it{st.db->NewIterator(opts, st.events)};
  auto start = encode_key(from.value());
  auto next = from.value();
  for (it->Seek(as_slice(start)); it->Valid(); it->Next()) {
    auto seq = decode_key(it->key(), events_cf_name);
    if (!seq)
      return std::move(seq).error();
    if (*seq != next)
      break;
    auto value = it->value();
    if (!fn(sequence_number{*seq},
            std::string_view{value.data(), value.size()}))
      return std::nullopt;
    ++next;
  }
  if (!it->status().ok())
    return to_failure(it->status(), "read_range");
  if (next != to.value() + 1)
    return failure{errc::corrupted,
                   "event " + std::to_string(next) +
                       " is missing from the log (read up to event " +
                       std::to_string(to.value()) + ")"};
  return std::nullopt;
}

sequence_number event_log::last_sequence() const noexcept {
  return sequence_number{impl_->last_sequence.load()};
}

uint64_t event_log::writes() const noexcept {
  return impl_->writes.load();
}

const open_report& event_log::recovered() const noexcept {
  return impl_->report;
}

std::optional<sequence_number> event_log::high_water() const noexcept {
  return impl_->mark.value();
}

const std::shared_ptr<space_guard>& event_log::space() const noexcept {
  return impl_->space;
}

// -- snapshots ----------------------------------------------------------------

status event_log::put_snapshot(const snapshot& snap) {
  auto& st = *impl_;
  // Runs beside the journal: reads only what is safe across threads.
  if (st.opts.read_only)
    return failure{errc::failed_precondition,
                   "the event log at '" + st.opts.path + "' is open read-only"};
  if (st.writes_failed)
    return failure{errc::unavailable,
                   "storage refuses writes after a failed write"};
  if (auto err = st.space->check())
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
  // Not through the WAL: a write of many megabytes there would hold up the
  // journal's appends queued behind it. The flush writes the column family
  // to its own synced table file instead; a crash before it ends leaves the
  // previous snapshot.
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;
  s = st.db->Write(unlogged, &batch);
  if (s.ok()) {
    rocksdb::FlushOptions flush;
    flush.wait = true;
    flush.allow_write_stall = true;
    s = st.db->Flush(flush, st.snapshots);
  }
  if (!s.ok())
    return to_failure(s, "put_snapshot");
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
  if (auto err = st.admit())
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
