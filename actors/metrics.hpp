/// What a node measures about itself, cheap enough for the hot path and
/// safe to read from any thread: counters and histograms the actors update
/// with relaxed atomics, and the tables the gauges are read from at scrape
/// time (devices by product, task summaries). The Prometheus endpoint in
/// api/ reads it; reading it sends no message to any actor.
#pragma once

#include "actors/histogram.hpp"
#include "actors/summary_board.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace fota {

/// The device gauges of one product.
struct product_gauges {
  /// Devices whose registration is durable.
  std::atomic<int64_t> registered{0};
  /// Devices online on a gateway session now.
  std::atomic<int64_t> online{0};
};

/// The device gauges of every product, created at a product's first use.
/// A device actor looks its product up once and keeps the reference: the
/// entries never move.
class product_table {
public:
  product_gauges& of(const std::string& product) {
    std::lock_guard<std::mutex> guard{mtx_};
    return entries_[product];
  }

  /// Calls `f(product, gauges)` for every product, in order.
  template <class F>
  void each(F f) const {
    std::lock_guard<std::mutex> guard{mtx_};
    for (const auto& [product, gauges] : entries_)
      f(product, gauges);
  }

private:
  mutable std::mutex mtx_;
  std::map<std::string, product_gauges> entries_;
};

/// The summary boards of the node's tasks, by task id, for the task and
/// execution gauges; kept by the task registry.
class task_table {
public:
  void add(uint64_t id, std::shared_ptr<const summary_board> board) {
    std::lock_guard<std::mutex> guard{mtx_};
    boards_[id] = std::move(board);
  }

  void remove(uint64_t id) {
    std::lock_guard<std::mutex> guard{mtx_};
    boards_.erase(id);
  }

  /// Calls `f(summary)` for every task whose creation is durable, in id
  /// order, while its board is locked.
  template <class F>
  void each(F f) const {
    std::lock_guard<std::mutex> guard{mtx_};
    for (const auto& [id, board] : boards_)
      board->visit(f);
  }

private:
  mutable std::mutex mtx_;
  std::map<uint64_t, std::shared_ptr<const summary_board>> boards_;
};

struct node_metrics {
  using counter = std::atomic<uint64_t>;

  // -- constants --------------------------------------------------------------

  /// Wire status codes are below this (`fota.v1.StatusCode`).
  static constexpr size_t status_codes = 16;

  /// Request types are the field numbers of `ClientFrame.body`, below this.
  static constexpr size_t request_types = 64;

  /// Bucket bounds of latencies, in microseconds: 50 µs to 10 s.
  static std::vector<uint64_t> latency_bounds() {
    return {50,      100,       250,       500,       1'000,     2'500,
            5'000,   10'000,    25'000,    50'000,    100'000,   250'000,
            500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
  }

  /// Bucket bounds of events per journal write: 1 to the write limit.
  static std::vector<uint64_t> batch_bounds() {
    return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  }

  // -- counters ---------------------------------------------------------------

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
  /// API responses by wire status code (`fota.v1.StatusCode`).
  std::array<counter, status_codes> responses{};
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

  // -- gauges -----------------------------------------------------------------

  /// Pushes granted by the dispatcher and not yet answered, node-wide.
  std::atomic<int64_t> pushes_in_flight{0};
  /// Device actors running. A registered device without one is dormant
  /// (docs/storage.md): its actor is spawned at its first message.
  std::atomic<int64_t> device_actors{0};
  /// Devices registered and online, by product.
  product_table products;
  /// Every task's summary, for tasks by status and executions by state.
  task_table tasks;

  // -- histograms -------------------------------------------------------------

  /// Seconds one journal write takes (RocksDB write, with fsync when on).
  histogram commit_latency{latency_bounds(), 1e-6};
  /// Events in one journal write.
  histogram commit_events{batch_bounds()};
  /// Seconds from a request frame to its response, by request type (the
  /// field number of `ClientFrame.body`).
  std::array<histogram, request_types> requests = make_requests();

  // -- updating ---------------------------------------------------------------

  static void add(counter& c, uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  /// Counts a response with wire status `code`.
  void respond(int code) noexcept {
    auto i = static_cast<size_t>(code);
    add(responses[i < status_codes ? i : 0]);
  }

  /// Records that a request of type `field` (the number of its
  /// `ClientFrame.body` field) was answered after `micros` microseconds.
  void answered(int field, uint64_t micros) noexcept {
    auto i = static_cast<size_t>(field);
    if (i < request_types)
      requests[i].observe(micros);
  }

private:
  template <size_t... Is>
  static std::array<histogram, request_types>
  make_requests(std::index_sequence<Is...>) {
    return {((void)Is, histogram{latency_bounds(), 1e-6})...};
  }

  static std::array<histogram, request_types> make_requests() {
    return make_requests(std::make_index_sequence<request_types>{});
  }
};

} // namespace fota
