/// The task actor, one per batch upgrade task: spec, scope, the execution
/// table and counters. It enrols the devices in scope, asks the dispatcher
/// for push credit, pushes in sequence order, and turns device reports into
/// execution events.
#pragma once

#include "actors/context.hpp"
#include "events/schedule.hpp"
#include "events/task.hpp"

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <caf/stateful_actor.hpp>

namespace fota {

struct task_actor_state {
  context_ptr ctx;
  task_state task;
  /// Device actor of each execution, indexed by sequence - 1.
  std::vector<caf::actor> devices;
  /// QUEUED executions to push, lowest sequence first.
  std::set<uint64_t> ready;
  /// QUEUED executions whose device was offline at push time.
  std::unordered_set<uint64_t> waiting;
  /// Demand announced to the dispatcher and not yet answered by credit.
  bool demand_pending = false;
  /// The task's schedule windows; no push leaves outside them.
  schedule windows;
  /// Timeouts and retries due, as (due ms, sequence), and the due time of
  /// each tracked sequence.
  std::set<std::pair<int64_t, uint64_t>> deadlines;
  std::unordered_map<uint64_t, int64_t> due_of;
  /// When the pending deadline timer fires.
  int64_t wake_at_ms = 0;
  /// INCREMENT tasks: devices enrolled or skipped, so that a device joins
  /// at most once.
  std::unordered_set<std::string> members;
  /// Next provisional claim id (see task.cpp).
  uint32_t next_provisional = 0;

  /// Group commit of the task's own events: everything committed while a
  /// flush is on its way goes to the journal as one append.
  struct waiter {
    caf::response_promise promise;
    std::function<void(caf::response_promise&)> done;
  };
  event_list batch;
  std::vector<waiter> waiters;
  bool flush_scheduled = false;

  /// Push outcomes not yet reported to the dispatcher, sent in one message.
  uint32_t settled_delivered = 0;
  uint32_t settled_returned = 0;
  bool settle_scheduled = false;

  static inline constexpr const char* name = "fota.task";
};

/// How a task actor starts.
struct task_start {
  /// Set for a new task: resolve scope, enrol, persist, then reply to
  /// `created` with the serialized `v1::Response`.
  bool is_new = false;
  uint64_t id = 0;
  v1::TaskSpec spec;
  caf::response_promise created;
  /// Set for a recovered task.
  task_state recovered;
  std::vector<caf::actor> devices;
};

/// Handles task commands (GetTask, GetTaskDetails, PauseTask, ResumeTask,
/// CancelTask, and device reports delegated by device actors), credit from
/// the dispatcher, device notifications (`online_atom`, `version_atom`), and
/// for INCREMENT tasks `(join_atom, device_handle)` from the fleet.
caf::behavior task_actor(caf::stateful_actor<task_actor_state>* self,
                         context_ptr ctx, std::shared_ptr<task_start> start);

} // namespace fota
