#include "actors/snapshotter.hpp"

#include "events/snapshot.hpp"

#include <utility>

namespace fota {

snapshot_load load_snapshot(const storage::event_log& log, world& w) {
  snapshot_load out;
  auto snap = log.latest_snapshot();
  if (!snap) {
    out.ignored = snap.error().message;
    return out;
  }
  if (!*snap)
    return out;
  auto& s = **snap;
  out.bytes = s.bytes.size();
  auto at = std::to_string(s.sequence.value());
  auto last = log.last_sequence().value();
  if (s.sequence.value() > last) {
    out.ignored = "the snapshot after event " + at +
                  " lies beyond the log's last event " + std::to_string(last);
    return out;
  }
  auto decoded = decode_snapshot(s.bytes);
  if (!decoded) {
    out.ignored = "the snapshot after event " + at +
                  " is not used: " + decoded.error().message;
    return out;
  }
  if (decoded->last_sequence != s.sequence) {
    out.ignored = "the snapshot stored after event " + at +
                  " says it was taken after event " +
                  std::to_string(decoded->last_sequence.value());
    return out;
  }
  w = std::move(*decoded);
  out.sequence = s.sequence;
  return out;
}

expected<std::optional<snapshot_written>>
write_snapshot(storage::event_log& log, const std::atomic<bool>& cancel) {
  // Only what was appended before the fold starts: every event up to here
  // is durable (the log advances its last sequence after the synced write).
  auto upto = log.last_sequence();
  world w;
  load_snapshot(log, w);
  auto from = w.last_sequence.value();
  if (from >= upto.value())
    return std::optional<snapshot_written>{};
  status violation;
  bool canceled = false;
  uint64_t applied = 0;
  auto st = log.read_range(sequence_number{from + 1}, upto,
                           [&](sequence_number seq, std::string_view bytes) {
                             if (cancel.load(std::memory_order_relaxed)) {
                               canceled = true;
                               return false;
                             }
                             violation = replay(w, seq, bytes);
                             ++applied;
                             return !violation;
                           });
  if (st)
    return std::move(*st);
  if (violation)
    return make_failure(errc::corrupted, "the log does not fold into a "
                                         "snapshot: " +
                                             violation->message);
  if (canceled || cancel.load())
    return std::optional<snapshot_written>{};
  auto bytes = encode_snapshot(w);
  if (cancel.load())
    return std::optional<snapshot_written>{};
  snapshot_written out{upto, applied, bytes.size()};
  if (auto err = log.put_snapshot(storage::snapshot{upto, std::move(bytes)}))
    return std::move(*err);
  return std::optional<snapshot_written>{out};
}

// -- snapshotter --------------------------------------------------------------

snapshotter::snapshotter(storage::event_log& log, uint64_t every_events,
                         sequence_number base)
  : log_(log), every_(every_events), base_(base.value()) {
  thread_ = std::thread{[this] { run(); }};
}

snapshotter::~snapshotter() {
  stop();
}

void snapshotter::appended(sequence_number last) noexcept {
  if (every_ == 0 ||
      last.value() - base_.load(std::memory_order_relaxed) < every_ ||
      due_.load(std::memory_order_relaxed) || due_.exchange(true))
    return;
  std::lock_guard<std::mutex> guard{mtx_};
  requested_ = true;
  cv_.notify_all();
}

void snapshotter::request() {
  due_ = true;
  std::lock_guard<std::mutex> guard{mtx_};
  requested_ = true;
  cv_.notify_all();
}

void snapshotter::wait_idle() {
  std::unique_lock<std::mutex> guard{mtx_};
  cv_.wait(guard, [this] { return stopping_ || (!requested_ && !busy_); });
}

void snapshotter::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_ && !thread_.joinable())
      return;
    stopping_ = true;
    cancel_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable())
    thread_.join();
}

snapshot_stats snapshotter::stats() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return stats_;
}

void snapshotter::run() {
  std::unique_lock<std::mutex> guard{mtx_};
  for (;;) {
    cv_.wait(guard, [this] { return stopping_ || requested_; });
    if (stopping_)
      return;
    requested_ = false;
    busy_ = true;
    guard.unlock();
    auto res = write_snapshot(log_, cancel_);
    auto reached = log_.last_sequence().value();
    guard.lock();
    busy_ = false;
    if (!res) {
      ++stats_.failed;
      stats_.last_error = res.error().message;
      // Try again after another interval, not at once.
      base_ = reached;
    } else if (*res) {
      ++stats_.written;
      stats_.last = (*res)->sequence;
      stats_.last_error.clear();
      base_ = (*res)->sequence.value();
    }
    due_ = false;
    cv_.notify_all();
  }
}

} // namespace fota
