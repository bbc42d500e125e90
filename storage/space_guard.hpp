/// The free-space guard of a data directory. Debian's RocksDB is built with
/// assertions: a write that fails for lack of space, followed by any later
/// write on the same file, aborts the process inside RocksDB. So the node
/// never lets RocksDB run out of space: below a reserve of free bytes it
/// stops writing, and it writes again by itself once space is freed.
#pragma once

#include "events/error.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace fota::storage {

/// Tells how many bytes are free for the data directory (what an
/// unprivileged process may still write). Must be thread-safe.
using free_space_probe = std::function<expected<uint64_t>()>;

/// Default reserve: 256 MiB. The events column family has 128 MiB
/// memtables; flushing a full one writes an SST of up to that size while
/// the WAL it replaces is still on disk. Twice that covers one flush with
/// room for the WAL tail, the MANIFEST and the small column families. A log
/// large enough for big compactions needs more; see the README.
inline constexpr uint64_t default_min_free_space = uint64_t{256} << 20;

/// How old a probe's answer may be before `check` probes again: statvfs is
/// a system call, and the guard is asked for every write command.
inline constexpr std::chrono::milliseconds default_probe_interval{100};

/// The probe of a real file system: `statvfs(dir)`, `f_bavail * f_frsize`.
free_space_probe statvfs_probe(std::string dir);

/// Formats a byte count for people: "3.1 MiB", "64 MiB", "512 B".
std::string format_bytes(uint64_t bytes);

/// Compares the free space of a data directory with its reserve. Shared by
/// everything that admits writes (the API edge, the dispatcher, the journal,
/// the event log); thread-safe. The refusal is never sticky: every check
/// after a new probe answers from that probe.
class space_guard {
public:
  // -- constructors -----------------------------------------------------------

  /// Guards `dir` with `reserve` bytes; a reserve of 0 turns the guard off.
  /// An empty `probe` means `statvfs_probe(dir)`. A `probe_interval` of 0
  /// probes on every check (tests).
  space_guard(
      std::string dir, uint64_t reserve, free_space_probe probe = {},
      std::chrono::milliseconds probe_interval = default_probe_interval);

  space_guard(const space_guard&) = delete;
  space_guard& operator=(const space_guard&) = delete;

  // -- checks -----------------------------------------------------------------

  /// Nothing while writes may go on. Below the reserve, a
  /// `resource_exhausted` failure naming the directory, its free space and
  /// the reserve; when the probe fails, one naming the probe's error.
  /// Probes at most once per probe interval and answers from the last probe
  /// in between.
  status check();

  // -- properties -------------------------------------------------------------

  uint64_t reserve() const noexcept { return reserve_; }

  const std::string& dir() const noexcept { return dir_; }

  /// Free bytes at the last successful probe.
  uint64_t last_free() const noexcept { return free_.load(); }

private:
  /// What the last probe found.
  enum class verdict : uint8_t { enough, below_reserve, probe_failed };

  /// Runs the probe and stores its answer; called under `probing_`.
  void probe(std::chrono::steady_clock::time_point now);

  std::string dir_;
  uint64_t reserve_;
  free_space_probe probe_;
  std::chrono::milliseconds interval_;
  /// Serializes probes; a check that finds a probe running answers from the
  /// previous one instead of waiting.
  std::mutex probing_;
  std::atomic<int64_t> next_probe_ns_{0};
  std::atomic<uint64_t> free_{0};
  std::atomic<verdict> verdict_{verdict::enough};
  /// The probe's error when it failed.
  mutable std::mutex error_mtx_;
  std::string error_;
};

} // namespace fota::storage
