/// A task's summary as of its last durable event, published by the task
/// actor and read by the task registry without queuing behind the task's
/// mailbox: a GetTask or ListTasks during a rollout answers from here, not
/// behind thousands of device reports.
#pragma once

#include "events/forecast.hpp"
#include "events/values.hpp"

#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace fota {

/// What the task knows now beyond its durable summary, for the forecast.
struct task_live {
  /// QUEUED executions whose device is online.
  uint64_t queued_online = 0;
  /// FAILED or TIMED_OUT executions that will be retried, and when the
  /// first retry is due (0: none known).
  uint64_t retries_waiting = 0;
  int64_t next_retry_ms = 0;
  push_meter pushes;
};

/// What changes in a task's summary while it runs.
struct task_progress {
  v1::TaskStatus status = v1::TASK_STATUS_UNSPECIFIED;
  execution_counters counters;
  int64_t finished_at_ms = 0;
  std::string status_reason;
};

class summary_board {
public:
  /// Publishes the whole summary: the task's creation is durable.
  void reset(task_summary x) {
    std::lock_guard<std::mutex> guard{mtx_};
    summary_ = std::move(x);
  }

  /// Publishes what changed; nothing before the first `reset`.
  void update(task_progress x) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!summary_)
      return;
    summary_->status = x.status;
    summary_->counters = x.counters;
    summary_->finished_at_ms = x.finished_at_ms;
    summary_->status_reason = std::move(x.status_reason);
  }

  /// Publishes what the task knows now (devices online, retries, pushes),
  /// which no event records.
  void update(const task_live& x) {
    std::lock_guard<std::mutex> guard{mtx_};
    live_ = x;
  }

  /// The summary, as `get()`, with what the task knew when it last
  /// published.
  std::optional<std::pair<task_summary, task_live>> get_live() const {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!summary_)
      return std::nullopt;
    return std::make_pair(*summary_, live_);
  }

  /// The summary as of the last durable event published; none while the
  /// task is being created.
  std::optional<task_summary> get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return summary_;
  }

  /// Calls `f(summary)` with the summary as of the last durable event,
  /// under the lock and without copying it; not while the task is being
  /// created.
  template <class F>
  void visit(F&& f) const {
    std::lock_guard<std::mutex> guard{mtx_};
    if (summary_)
      f(*summary_);
  }

private:
  mutable std::mutex mtx_;
  std::optional<task_summary> summary_;
  task_live live_;
};

} // namespace fota
