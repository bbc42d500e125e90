/// The snapshotter writes snapshots in the background, off the hot path. The
/// live state is spread over many actors, so it is not collected from them:
/// the snapshotter folds the log instead. It loads the latest snapshot (or
/// starts from nothing), applies the durable events after it with the same
/// checked `apply()` that recovery uses, encodes the result and stores it.
/// It runs on a thread of its own, started every N appended events; the
/// node joins it before the log closes.
#pragma once

#include "events/error.hpp"
#include "events/replay.hpp"
#include "storage/event_log.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace fota {

/// What loading the latest snapshot found.
struct snapshot_load {
  /// The sequence of the snapshot that was loaded; none when there is no
  /// snapshot or it was ignored.
  std::optional<sequence_number> sequence;
  uint64_t bytes = 0;
  /// Why a stored snapshot was not used; empty when there was none or it
  /// was used.
  std::string ignored;
};

/// Loads the latest snapshot of `log` into `w`, which must be empty. A
/// snapshot that does not decode, is in a format this version does not
/// read, claims another sequence than the one it is stored under, or lies
/// beyond the log's last event is ignored (`w` stays empty) and
/// `ignored` says why.
snapshot_load load_snapshot(const storage::event_log& log, world& w);

/// Replays the events of `log` after `w.last_sequence` into `w`, adding
/// their number to `replayed`. A second thread reads and decodes the log
/// ahead, in batches, while this one applies: the checks and the verdict
/// are those of `replay()` event by event, and the first event that does not
/// decode or apply stops it with an error naming the event.
status replay_log(const storage::event_log& log, world& w, uint64_t& replayed);

/// A snapshot that was written.
struct snapshot_written {
  sequence_number sequence;
  /// Events applied on top of the previous snapshot.
  uint64_t events = 0;
  uint64_t bytes = 0;
};

/// Folds the log into a new snapshot: the latest usable snapshot plus the
/// events after it, up to the last event appended when the fold starts
/// (read as one consistent view), then `put_snapshot`. Nothing when the
/// latest snapshot is current. Stops without writing once `cancel` is set.
/// A log that does not fold (an event that does not apply) fails with an
/// error naming the event.
expected<std::optional<snapshot_written>>
write_snapshot(storage::event_log& log, const std::atomic<bool>& cancel);

/// Counters of a snapshotter, for the node's report.
struct snapshot_stats {
  uint64_t written = 0;
  uint64_t failed = 0;
  /// The newest snapshot written, if any.
  std::optional<sequence_number> last;
  /// Why the latest attempt failed; empty after a success.
  std::string last_error;
};

/// Owns the snapshot thread of a node. The thread is named `thread_name`
/// (as `top -H` shows it) and runs at nice `background_nice`, below the
/// actors and the journal.
class snapshotter {
public:
  static constexpr const char* thread_name = "fota-snapshot";
  static constexpr int background_nice = 19;

  // -- constructors -----------------------------------------------------------

  /// Writes a snapshot of `log` whenever `every_events` (0: never by
  /// itself) events were appended after sequence `base`, the newest
  /// snapshot at start. `log` must outlive the snapshotter.
  snapshotter(storage::event_log& log, uint64_t every_events,
              sequence_number base);

  /// Cancels a snapshot in progress and joins the thread.
  ~snapshotter();

  snapshotter(const snapshotter&) = delete;
  snapshotter& operator=(const snapshotter&) = delete;

  // -- triggers ---------------------------------------------------------------

  /// Tells that the log now ends at `last`. Cheap: an atomic load and a
  /// compare, unless a snapshot is due.
  void appended(sequence_number last) noexcept;

  /// Asks for a snapshot now (once the current one, if any, is done).
  void request();

  // -- control ----------------------------------------------------------------

  /// Blocks until no snapshot is requested or being written.
  void wait_idle();

  /// Abandons a snapshot in progress (nothing is written) and joins the
  /// thread; later triggers do nothing. Idempotent.
  void stop();

  // -- properties -------------------------------------------------------------

  snapshot_stats stats() const;

private:
  void run();

  storage::event_log& log_;
  const uint64_t every_;
  /// The sequence that the next snapshot is counted from.
  std::atomic<uint64_t> base_;
  /// Set while a snapshot is requested or being written.
  std::atomic<bool> due_{false};
  std::atomic<bool> cancel_{false};
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool busy_ = false;
  bool stopping_ = false;
  snapshot_stats stats_;
  std::thread thread_;
};

} // namespace fota
