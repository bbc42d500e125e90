/// Counters a node keeps about itself, cheap enough for the hot path
/// (relaxed atomics) and read by the Prometheus endpoint in api/.
#pragma once

#include <atomic>
#include <cstdint>

namespace fota {

struct node_metrics {
  using counter = std::atomic<uint64_t>;

  /// Events acknowledged durable by the journal.
  counter events_persisted{0};
  /// Journal appends acknowledged (one per persisting command).
  counter appends{0};
  /// Upgrade pushes handed to gateway sessions.
  counter pushes{0};
  /// Executions that reached SUCCEEDED, FAILED, TIMED_OUT, CANCELED.
  counter succeeded{0};
  counter failed{0};
  counter timed_out{0};
  counter canceled{0};
  /// Devices registered since start.
  counter registrations{0};
  /// API responses by outcome.
  counter responses_ok{0};
  counter responses_error{0};
  /// Frames refused by sessions (malformed, oversized).
  counter frames_refused{0};
  /// Hello frames whose token or certificate matched no role.
  counter auth_failures{0};
  /// Connections closed at once: over the connection limit.
  counter connections_refused{0};
  /// Sessions closed by a timeout: no Hello in time, idle, or a frame that
  /// did not complete in time.
  counter sessions_timed_out{0};
  /// Pushes held back because their session's output was full.
  counter pushes_deferred{0};
  /// Commands refused because the data directory is below its free-space
  /// reserve.
  counter writes_refused{0};

  static void add(counter& c, uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

} // namespace fota
