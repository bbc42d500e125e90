/// A task's summary as of its last durable event, published by the task
/// actor and read by the task registry without queuing behind the task's
/// mailbox: a GetTask or ListTasks during a rollout answers from here, not
/// behind thousands of device reports.
#pragma once

#include "events/values.hpp"

#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace fota {

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
};

} // namespace fota
