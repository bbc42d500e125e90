/// The task actor, one per batch upgrade task: spec, scope, the execution
/// table and counters. It enrols the devices in scope, asks the dispatcher
/// for push credit, pushes in sequence order once each push's NOTIFIED event
/// is durable, re-sends pushes that were not acknowledged, and turns device
/// reports into execution events. Every reply, push, release and credit
/// leaves through its outbox, after the events behind it are durable.
#pragma once

#include "actors/context.hpp"
#include "actors/outbox.hpp"
#include "actors/summary_board.hpp"
#include "events/schedule.hpp"
#include "events/task.hpp"

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

namespace fota {

/// The task as implemented: `task_actor` plus the messages it sends itself.
/// `create_task` comes once, from the registry that spawned the task.
using task_impl = task_actor::extend<
    caf::replies_to<create_task>::with<task_summary>,
    caf::reacts_to<flush_atom>, caf::reacts_to<deadline_atom>,
    caf::reacts_to<resend_atom>, caf::reacts_to<settled_atom>>;

/// How a task actor starts.
struct task_start {
  /// Set for a new task, which then waits for its `create_task`: resolve
  /// the scope, enrol, persist, then answer with the summary.
  bool is_new = false;
  task_id id;
  /// Set for a recovered task.
  task_state recovered;
  std::vector<device_actor> devices;
  /// A finished verification run whose outcome the firmware may not have
  /// heard: tell it again.
  bool report_outcome = false;
  /// Where the task publishes its durable summary for readers.
  std::shared_ptr<summary_board> board;
};

struct task_actor_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = task_impl::stateful_pointer<task_actor_state>;

  /// Times at which something is due, by sequence.
  struct timer_set {
    std::set<std::pair<int64_t, uint64_t>> due;
    std::unordered_map<uint64_t, int64_t> due_of;
    /// When the pending timer fires, or 0.
    int64_t wake_at_ms = 0;

    /// Sets (or with 0, clears) the time `seq` is due; returns whether a
    /// timer must be armed for it.
    bool set(uint64_t seq, int64_t at_ms);
  };

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.task";

  // -- constructors -----------------------------------------------------------

  explicit task_actor_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- operator commands ------------------------------------------------------

  caf::result<task_summary> operator()(get_task& cmd);
  caf::result<task_details> operator()(get_task_details& cmd);
  caf::result<accepted> operator()(pause_task& cmd);
  caf::result<accepted> operator()(resume_task& cmd);
  caf::result<accepted> operator()(cancel_task& cmd);
  caf::result<task_summary> operator()(get_atom);

  // -- device reports (through the device actor) ------------------------------

  caf::result<accepted> operator()(report_progress& cmd);
  caf::result<accepted> operator()(report_failure& cmd);
  caf::result<accepted> operator()(confirm_upgrade& cmd);
  caf::result<accepted> operator()(ack_push& cmd);

  /// The device-request offer of execution `seq`.
  caf::result<upgrade_offer> operator()(offer_atom, execution_seq seq,
                                        const std::string& device_version);

  /// The device of `x` came online on `session`, or went offline.
  void operator()(status_atom, execution_id x, caf::actor& session);

  /// The device of `x` answers its bind with its session (none when
  /// offline): a push goes out only when the task did not know it.
  void operator()(bind_atom, execution_id x, caf::actor& session);

  /// The device of `x` reported `version`, durably.
  void operator()(version_atom, execution_id x, const std::string& version);

  /// The device of `x` reports `version`, which no event records yet: when
  /// it completes `x`, the success records it (one event for both), and the
  /// answer is that event, encoded, once durable; otherwise empty.
  caf::result<std::string> operator()(record_atom, execution_id x,
                                      const std::string& version);

  /// The push of `x` did not leave: the session's output is full.
  void operator()(deferred_atom, execution_id x);

  // -- from the registry, the fleet and the dispatcher ------------------------

  caf::result<offer_candidates> operator()(candidate_atom,
                                           const std::string& device);

  /// A device entered an increment task's scope.
  void operator()(join_atom, device_handle& dev);

  void operator()(credit_atom, uint64_t credit);

  caf::result<digest_sum> operator()(digest_atom);

  // -- timers -----------------------------------------------------------------

  /// Timeouts, retries and the end time that are due.
  void operator()(deadline_atom);

  /// Pushes whose acknowledgement is overdue.
  void operator()(resend_atom);

  /// Reports settled pushes and unused credit to the dispatcher.
  void operator()(settled_atom);

  // -- starting ---------------------------------------------------------------

  /// Creates the new task: sent once, by the registry that spawned it.
  caf::result<task_summary> operator()(create_task& cmd);

  void recover(std::shared_ptr<task_start> start);

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  task_id id;
  task_state task;
  /// Whether the creation started, and whether TaskCreated is applied;
  /// joins wait until then.
  bool starting = false;
  bool created = false;
  /// The device actor and, while it is online, the gateway session of each
  /// execution, indexed by sequence - 1.
  std::vector<device_actor> devices;
  std::vector<caf::actor> sessions;
  /// Executions to push, lowest sequence first: QUEUED with the device
  /// online, or NOTIFIED and due for a re-send (in `resends`).
  std::set<uint64_t> ready;
  std::unordered_set<uint64_t> resends;
  /// Pushes sent and counted against the node's bound on pushes in flight.
  std::unordered_set<uint64_t> flying;
  /// Pushes sent and not acknowledged: when each is sent again.
  timer_set acks;
  /// Timeouts and retries.
  timer_set deadlines;
  /// Increment tasks: devices whose claim is on its way, and joins that
  /// arrived before TaskCreated was applied.
  std::unordered_set<std::string> joining;
  std::vector<device_handle> early_joins;
  /// Demand announced to the dispatcher and not yet answered by credit, and
  /// the successes it told.
  bool demand_pending = false;
  uint64_t announced_successes = 0;
  /// The task's schedule windows; no push leaves outside them.
  schedule windows;
  /// Push outcomes not yet reported to the dispatcher.
  uint64_t settled_pushes = 0;
  uint64_t unused_credit = 0;
  bool settle_scheduled = false;
  /// Where the durable summary goes, and whether events were applied since
  /// it was last published.
  std::shared_ptr<summary_board> board;
  bool board_stale = false;
  /// Pushes sent, for the forecast's pushes in the last minute.
  push_meter pushes;
  outbox out;

  /// Publishes the summary once the events applied so far are durable, then
  /// sends them to the journal.
  void flush();

  /// Flushes a full batch at once, or sends `flush_atom` to itself.
  void schedule_flush();

  /// Publishes what the forecast needs beyond the durable summary.
  void publish_live();

private:
  /// Applies `events`, persists them, and queues their effects.
  status commit(const event_list& events);

  /// Commits decided events and replies `accepted` once durable.
  caf::result<accepted> commit_reply(expected<event_list> decided);

  /// The effects of one applied event.
  void after(const event& e, bool& failed);

  /// Effects of the task ending.
  void finished();

  /// Logs the task's creation, with the devices it enrolled and skipped,
  /// once its events so far are durable.
  void log_created(size_t enrolled, size_t skipped);

  /// The execution of `x` if it belongs to this task.
  const execution* find(execution_id x) const;

  void track(uint64_t seq);
  void arm(timer_set& timers, int64_t due_ms, bool resend);
  void release(uint64_t seq);
  void push(uint64_t seq);
  void settle(uint64_t pushes, uint64_t credit);
  void settle_push(uint64_t seq);
  void forget_push(uint64_t seq);
  void announce();
  void make_ready(uint64_t seq);

  /// Enrols devices whose claims were granted (or, for device-request
  /// tasks, every device in scope).
  void enrol(const device_handles& granted,
             const std::vector<caf::actor>& granted_sessions,
             const std::vector<skipped_device>& skipped);
};

task_impl::behavior_type task_behavior(task_actor_state::self_pointer self,
                                       context_ptr ctx,
                                       std::shared_ptr<task_start> start);

} // namespace fota
