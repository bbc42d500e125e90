/// The node's RocksDB database: the event log (`events` column family, keyed
/// by 8-byte big-endian sequence), snapshots and metadata. Every
/// `rocksdb::Status` is translated to `fota::failure` in this file's
/// implementation and nowhere else.
#pragma once

#include "events/error.hpp"
#include "events/ids.hpp"
#include "storage/space_guard.hpp"
#include "storage/wal_tail.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fota::storage {

/// How to open the database.
struct options {
  options() = default;

  /// A synced (or, for benchmarks, unsynced) log at `path` with the
  /// defaults below.
  options(std::string path, bool sync) : path(std::move(path)), sync(sync) {
    // nop
  }

  /// Directory of the RocksDB database; created when missing.
  std::string path;
  /// fsync every append (the default). Off only for benchmarks. Without it
  /// the high-water mark is not advanced: acknowledged events are not
  /// durable then, and a crash may lose them.
  bool sync = true;
  /// Opens without writing anything, for inspection (`fotad --check`):
  /// every write is refused, the database must exist.
  bool read_only = false;
  /// Refuses to open a log that ends before its high-water mark, that is,
  /// one that lost acknowledged events. Off only for inspection.
  bool verify_high_water = true;
  /// Writes are refused while the data directory has fewer free bytes than
  /// this; 0 turns the guard off.
  uint64_t min_free_space = default_min_free_space;
  /// Tells the free bytes of the data directory; statvfs when empty.
  free_space_probe free_space;
  /// How long the free-space guard answers from one probe.
  std::chrono::milliseconds probe_interval = default_probe_interval;
  /// The high-water mark advances at most this often (one fdatasync each),
  /// and at a clean close.
  std::chrono::milliseconds high_water_interval{100};
};

/// What opening the log found, for the node's recovery line and for
/// `fotad --check`.
struct open_report {
  /// The newest event in the log.
  sequence_number last_sequence;
  /// The newest event known acknowledged when the log was last written;
  /// none in a log that never had one (new, or written without sync).
  std::optional<sequence_number> high_water;
  /// The newest WAL file at open and the bytes at its end that were a write
  /// torn by a crash. RocksDB drops them; they were never acknowledged
  /// (otherwise the log would end before the high-water mark).
  wal_tail wal;
};

/// A snapshot of the whole node state, taken after `sequence`.
struct snapshot {
  sequence_number sequence;
  std::string bytes;
};

/// Append-only event log plus snapshots. Not thread-safe for writers: the
/// journal actor is the only writer of events. Reads may run before writers
/// start; `read_range`, `last_sequence`, `latest_snapshot` and
/// `put_snapshot` may also run on another thread (the snapshotter) while
/// the journal appends.
class event_log {
public:
  ~event_log();

  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  /// Opens (or creates) the database at `opts.path`. Corruption in the
  /// WAL's acknowledged part, a WAL missing from the manifest's record, and
  /// a log that ends before its high-water mark fail the open with an error
  /// naming what was lost (`errc::corrupted`, `errc::data_loss`). A torn
  /// tail is dropped and reported in `recovered()`.
  static expected<std::unique_ptr<event_log>> open(const options& opts);

  /// Appends encoded `EventEnvelope`s as one atomic, durable batch. Stamps
  /// each envelope with its sequence number (field 1), starting right after
  /// `last_sequence()`. Returns the sequence of the last envelope. Below the
  /// free-space reserve, writes nothing and fails with
  /// `errc::resource_exhausted`; the next append tries again. After a failed
  /// write, every later write fails with `errc::unavailable`.
  expected<sequence_number> append(const std::vector<std::string>& envelopes);

  /// Calls `fn(sequence, envelope_bytes)` for every event with a sequence
  /// >= `from`, in order, until `fn` returns false. The bytes are valid only
  /// during the call.
  status
  read(sequence_number from,
       const std::function<bool(sequence_number, std::string_view)>& fn) const;

  /// Calls `fn(last)` after each successful append with the sequence of its
  /// last event, on the appending thread. It must be cheap and must not
  /// call into the log. Set before the first append; empty: none.
  void on_append(std::function<void(sequence_number)> fn);

  /// Calls `fn(sequence, envelope_bytes)` for every event from `from` to
  /// `to` (inclusive), in order, until `fn` returns false. Reads one
  /// consistent view of the database (a RocksDB snapshot): appends that run
  /// meanwhile are not seen. Fails when an event in the range is missing.
  status read_range(
      sequence_number from, sequence_number to,
      const std::function<bool(sequence_number, std::string_view)>& fn) const;

  /// The sequence of the newest event; 0 when the log is empty.
  sequence_number last_sequence() const noexcept;

  /// Stores a snapshot taken after `snap.sequence` and drops older ones, in
  /// one synced write. Refused, like appends, below the free-space reserve
  /// and after a failed write; a failure here does not fail later appends.
  status put_snapshot(const snapshot& snap);

  /// The newest snapshot, if any.
  expected<std::optional<snapshot>> latest_snapshot() const;

  /// Stores a small value in the `meta` column family.
  status put_meta(std::string_view key, std::string_view value);

  /// Reads a value from the `meta` column family.
  expected<std::optional<std::string>> get_meta(std::string_view key) const;

  /// What opening the log found.
  const open_report& recovered() const noexcept;

  /// The high-water mark as recorded now.
  std::optional<sequence_number> high_water() const noexcept;

  /// The free-space guard of the data directory, shared with whatever
  /// admits writes before they reach the log.
  const std::shared_ptr<space_guard>& space() const noexcept;

  /// The number of appends written to RocksDB since open, one per batch.
  /// Shows how well the journal's group commit batches.
  uint64_t writes() const noexcept;

  /// Checks that `envelope` can be stamped: it must not set field 1
  /// (`sequence`) itself. `append` refuses a batch with such an envelope;
  /// the journal checks each request so that one bad request does not fail
  /// the others of its group.
  static status check_envelope(std::string_view envelope);

  // -- testing ----------------------------------------------------------------

  /// Makes the file system under RocksDB fail every later write with "no
  /// space left on device", as a full disk would, so that tests see RocksDB
  /// report a real write failure. There is no way back: reopen the database.
  void fail_writes_for_testing() noexcept;

private:
  struct impl;
  explicit event_log(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace fota::storage
