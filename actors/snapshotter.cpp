#include "actors/snapshotter.hpp"

#include "events/snapshot.hpp"

#include <deque>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace fota {

namespace {

/// Decoded events on their way from the reading thread to the applying one.
struct decoded_batch {
  static constexpr size_t capacity = 1024;

  /// Reused from batch to batch: decoding into a used envelope keeps its
  /// allocations.
  std::vector<event> events = std::vector<event>(capacity);
  size_t size = 0;
  /// On the last batch, why reading stopped after the events above: the
  /// next event does not decode, or the log could not be read.
  status bad_event;
  status read_error;
  bool last = false;
};

/// The batches between the two threads: full ones in order, empty ones to
/// reuse. A fixed number circulate, so the reader stays a few batches ahead.
class batch_pipe {
public:
  explicit batch_pipe(size_t n) : pool_(n) {
    for (auto& b : pool_)
      empty_.push_back(&b);
  }

  /// An empty batch for the reader; nullptr once the applier gave up.
  decoded_batch* take_empty() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return abandoned_ || !empty_.empty(); });
    if (abandoned_)
      return nullptr;
    auto* b = empty_.front();
    empty_.pop_front();
    b->size = 0;
    return b;
  }

  void put_full(decoded_batch* b) {
    std::lock_guard<std::mutex> guard{mtx_};
    full_.push_back(b);
    cv_.notify_all();
  }

  decoded_batch* take_full() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return !full_.empty(); });
    auto* b = full_.front();
    full_.pop_front();
    return b;
  }

  void put_empty(decoded_batch* b) {
    std::lock_guard<std::mutex> guard{mtx_};
    empty_.push_back(b);
    cv_.notify_all();
  }

  /// The applier stops early: the reader stops at its next batch.
  void abandon() {
    std::lock_guard<std::mutex> guard{mtx_};
    abandoned_ = true;
    cv_.notify_all();
  }

  bool abandoned() {
    std::lock_guard<std::mutex> guard{mtx_};
    return abandoned_;
  }

private:
  std::vector<decoded_batch> pool_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<decoded_batch*> empty_;
  std::deque<decoded_batch*> full_;
  bool abandoned_ = false;
};

/// Reads the log from `from` into batches until it ends, an event does not
/// decode, reading fails or the applier gives up.
void read_ahead(const storage::event_log& log, sequence_number from,
                batch_pipe& pipe) {
  auto* batch = pipe.take_empty();
  if (batch == nullptr)
    return;
  status bad_event;
  auto st = log.read(from, [&](sequence_number seq, std::string_view bytes) {
    if (batch->size == decoded_batch::capacity) {
      pipe.put_full(batch);
      batch = pipe.take_empty();
      if (batch == nullptr)
        return false;
    }
    if (auto err = decode_stored(batch->events[batch->size], seq, bytes)) {
      bad_event = std::move(err);
      return false;
    }
    ++batch->size;
    return true;
  });
  if (batch == nullptr)
    return;
  batch->bad_event = std::move(bad_event);
  batch->read_error = std::move(st);
  batch->last = true;
  pipe.put_full(batch);
}

} // namespace

status replay_log(const storage::event_log& log, world& w, uint64_t& replayed) {
  batch_pipe pipe{4};
  std::thread reader{read_ahead, std::cref(log),
                     sequence_number{w.last_sequence.value() + 1},
                     std::ref(pipe)};
  status violation;
  status read_error;
  for (;;) {
    auto* batch = pipe.take_full();
    for (size_t i = 0; i < batch->size && !violation; ++i) {
      violation = apply(w, batch->events[i]);
      if (!violation)
        ++replayed;
    }
    if (!violation) {
      violation = std::move(batch->bad_event);
      read_error = std::move(batch->read_error);
    }
    bool last = batch->last;
    pipe.put_empty(batch);
    if (violation || read_error) {
      pipe.abandon();
      break;
    }
    if (last)
      break;
  }
  reader.join();
  if (read_error)
    return read_error;
  if (violation)
    return make_failure(errc::corrupted,
                        "the log does not replay: " + violation->message);
  return std::nullopt;
}

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
  // Background work: the thread takes a core only when serving leaves one
  // idle (Linux nice values are per thread; raising one needs no
  // privilege). A node busy without pause writes its snapshots late, never
  // its events.
  setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
              background_nice);
  pthread_setname_np(pthread_self(), thread_name);
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
