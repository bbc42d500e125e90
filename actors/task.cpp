#include "actors/task.hpp"

#include "actors/gather.hpp"
#include "events/codec.hpp"
#include "events/device.hpp"
#include "events/limits.hpp"
#include "fota/v1/api.pb.h"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>
#include <spdlog/spdlog.h>

namespace fota {

namespace {

using es = v1::ExecutionState;

/// Largest number of executions whose state a details page looks at before
/// it answers with what it found: a filtered page never scans the whole
/// table.
constexpr uint64_t max_details_scan = 100'000;

std::string upgrade_frame(const task_state& t, uint64_t seq) {
  const auto& x = t.executions[seq - 1];
  v1::ServerFrame frame;
  *frame.mutable_push()->mutable_upgrade() =
      to_upgrade_push(t.spec.product, x.device_key, t.id_of(execution_seq{seq}),
                      x.attempt, t.firmware);
  return frame.SerializeAsString();
}

std::string cancel_frame(const task_state& t, uint64_t seq) {
  const auto& x = t.executions[seq - 1];
  v1::ServerFrame frame;
  auto* c = frame.mutable_push()->mutable_cancel();
  c->set_product_key(t.spec.product);
  c->set_device_key(x.device_key);
  c->set_execution_id(t.id_of(execution_seq{seq}).value());
  return frame.SerializeAsString();
}

/// How the log names a task: "task 7", or "task 7 (verification of
/// cam/2.0.0)" when it has a name.
std::string task_label(const task_state& t) {
  auto out = "task " + std::to_string(t.id.value());
  if (!t.spec.name.empty())
    out += " (" + t.spec.name + ")";
  return out;
}

/// The log line of a task's creation: what it upgrades and how, and the
/// devices it took.
std::string created_line(const task_state& t, size_t enrolled, size_t skipped) {
  std::string sources;
  for (const auto& v : t.spec.source_versions)
    sources += (sources.empty() ? "" : ", ") + v;
  return fmt::format(
      "{} created: {} {} -> {}, {}, {}; {} devices enrolled, {} skipped",
      task_label(t), t.spec.product, sources.empty() ? "any version" : sources,
      t.spec.target_version, t.spec.is_increment() ? "increment" : "snapshot",
      t.spec.is_cloud_push() ? "cloud push" : "device request", enrolled,
      skipped);
}

/// The log line of a lifecycle event `e` just applied to `t`: paused,
/// resumed, canceled, completed; empty for every other event.
std::string lifecycle_line(const task_state& t, const event& e) {
  auto c = t.counters();
  switch (e.payload_case()) {
  case event::kTaskPaused:
    return task_label(t) + " paused: " + e.task_paused().reason();
  case event::kTaskResumed:
    return task_label(t) + " resumed";
  case event::kTaskCanceled:
    return fmt::format("{} canceled: {}; {} succeeded, {} failed, {} timed "
                       "out, {} canceled",
                       task_label(t), e.task_canceled().reason(), c.succeeded,
                       c.failed, c.timed_out, c.canceled);
  case event::kTaskCompleted:
    return fmt::format("{} completed: {} succeeded, {} failed, {} timed out, "
                       "{} canceled, {} skipped",
                       task_label(t), c.succeeded, c.failed, c.timed_out,
                       c.canceled, c.skipped);
  default:
    return {};
  }
}

} // namespace

// -- timer_set ----------------------------------------------------------------

bool task_actor_state::timer_set::set(uint64_t seq, int64_t at_ms) {
  auto i = due_of.find(seq);
  if (i != due_of.end()) {
    if (i->second == at_ms)
      return false;
    due.erase({i->second, seq});
    due_of.erase(i);
  }
  if (at_ms == 0)
    return false;
  due.emplace(at_ms, seq);
  due_of.emplace(seq, at_ms);
  return wake_at_ms == 0 || at_ms < wake_at_ms;
}

void task_actor_state::arm(timer_set& timers, int64_t due_ms, bool resend) {
  if (timers.wake_at_ms != 0 && timers.wake_at_ms <= due_ms)
    return;
  timers.wake_at_ms = due_ms;
  auto delay = std::chrono::milliseconds{
      std::max<int64_t>(0, due_ms - to_millis(ctx->now()))};
  if (resend)
    self->delayed_send(self, delay, resend_atom_v);
  else
    self->delayed_send(self, delay, deadline_atom_v);
}

void task_actor_state::track(uint64_t seq) {
  const auto* x = task.find(execution_seq{seq});
  int64_t due = 0;
  if (x != nullptr) {
    due = task.deadline_ms(*x);
    if (due == 0)
      due = task.retry_at_ms(*x);
  }
  if (deadlines.set(seq, due))
    arm(deadlines, due, false);
}

// -- effects ------------------------------------------------------------------

const execution* task_actor_state::find(execution_id x) const {
  if (x.task() != task.id)
    return nullptr;
  return task.find(x.sequence());
}

void task_actor_state::release(uint64_t seq) {
  if (seq == 0 || seq > devices.size() || !devices[seq - 1])
    return;
  out.then([this, d = devices[seq - 1], x = task.id_of(execution_seq{seq})] {
    self->send(d, release_atom_v, x);
  });
}

void task_actor_state::settle(uint64_t pushes, uint64_t credit) {
  settled_pushes += pushes;
  unused_credit += credit;
  if (!settle_scheduled && settled_pushes + unused_credit > 0) {
    settle_scheduled = true;
    self->send(self, settled_atom_v);
  }
}

void task_actor_state::settle_push(uint64_t seq) {
  if (flying.erase(seq) > 0)
    settle(1, 0);
}

void task_actor_state::forget_push(uint64_t seq) {
  settle_push(seq);
  acks.set(seq, 0);
  resends.erase(seq);
  ready.erase(seq);
}

void task_actor_state::make_ready(uint64_t seq) {
  const auto* x = task.find(execution_seq{seq});
  if (x == nullptr || !task.spec.is_cloud_push() || !sessions[seq - 1])
    return;
  if (x->state == es::EXECUTION_STATE_QUEUED) {
    ready.insert(seq);
  } else if (x->state == es::EXECUTION_STATE_NOTIFIED ||
             x->state == es::EXECUTION_STATE_IN_PROGRESS) {
    // Sent again: the device may have lost it (a rebooted gateway); a
    // device recognises a push it has by its execution and attempt.
    resends.insert(seq);
    ready.insert(seq);
  }
}

void task_actor_state::after(const event& e, bool& failed) {
  switch (e.payload_case()) {
  case event::kDevicesEnrolled: {
    if (!task.spec.is_cloud_push())
      break; // A device-request task holds no device until the device asks.
    // The claims become executions once the enrolment is durable.
    const auto& x = e.devices_enrolled();
    auto me = caf::actor_cast<task_sink>(self);
    for (auto s = x.first_sequence();
         s < x.first_sequence() + x.device_keys_size(); ++s)
      if (s <= devices.size() && devices[s - 1])
        out.then(
            [this, d = devices[s - 1], me, id = task.id_of(execution_seq{s})] {
              self->send(d, bind_atom_v, id, me);
            });
    break;
  }
  case event::kExecutionNotified:
    track(e.execution_notified().sequence());
    break;
  case event::kExecutionStarted:
    // The device has the upgrade: its push needs no acknowledgement.
    forget_push(e.execution_started().sequence());
    track(e.execution_started().sequence());
    break;
  case event::kExecutionProgressed:
    settle_push(e.execution_progressed().sequence());
    track(e.execution_progressed().sequence());
    break;
  case event::kExecutionSucceeded: {
    auto seq = e.execution_succeeded().sequence();
    forget_push(seq);
    track(seq);
    release(seq);
    node_metrics::add(ctx->metrics->succeeded);
    break;
  }
  case event::kExecutionFailed:
  case event::kExecutionTimedOut: {
    auto seq = e.has_execution_failed() ? e.execution_failed().sequence()
                                        : e.execution_timed_out().sequence();
    failed = true;
    forget_push(seq);
    track(seq);
    const auto* x = task.find(execution_seq{seq});
    if (x != nullptr && !task.holds_device(*x))
      release(seq);
    node_metrics::add(e.has_execution_failed() ? ctx->metrics->failed
                                               : ctx->metrics->timed_out);
    break;
  }
  case event::kExecutionRequeued: {
    auto seq = e.execution_requeued().sequence();
    track(seq);
    make_ready(seq);
    break;
  }
  case event::kExecutionsCanceled:
    for (auto seq : e.executions_canceled().sequences()) {
      forget_push(seq);
      track(seq);
      release(seq);
    }
    node_metrics::add(ctx->metrics->canceled,
                      e.executions_canceled().sequences_size());
    break;
  default:
    break;
  }
}

status task_actor_state::commit(const event_list& events) {
  if (events.empty())
    return std::nullopt;
  bool was_finished = is_finished(task.status);
  bool failed = false;
  for (const auto& e : events) {
    // A device already notified or upgrading gets a cancel push, once the
    // cancel is durable and before its device is released.
    std::vector<uint64_t> cancel_pushes;
    if (e.has_executions_canceled())
      for (auto seq : e.executions_canceled().sequences())
        if (const auto* x = task.find(execution_seq{seq});
            x != nullptr && (x->state == es::EXECUTION_STATE_NOTIFIED ||
                             x->state == es::EXECUTION_STATE_IN_PROGRESS))
          cancel_pushes.push_back(seq);
    // Executions waiting for a retry let go of their device when the task
    // ends.
    std::vector<uint64_t> abandoned;
    if (e.has_task_canceled() || e.has_task_completed())
      for (uint64_t s = 1; s <= task.executions.size(); ++s) {
        const auto& x = task.executions[s - 1];
        if (is_terminal(x.state) && task.holds_device(x))
          abandoned.push_back(s);
      }
    if (auto err = apply(task, e))
      return make_failure(errc::internal, err->message);
    out.add(event_list{e});
    if (auto line = lifecycle_line(task, e); !line.empty())
      out.then([line = std::move(line)] { spdlog::info("{}", line); });
    for (auto seq : cancel_pushes)
      if (devices[seq - 1])
        out.then([this, d = devices[seq - 1],
                  x = task.id_of(execution_seq{seq}),
                  frame = cancel_frame(task, seq)]() mutable {
          self->send(d, push_atom_v, push_frame{x, true, std::move(frame)});
        });
    after(e, failed);
    for (auto seq : abandoned) {
      track(seq);
      release(seq);
    }
  }
  board_stale = true;
  schedule_flush();
  // The abort rule looks at every finished execution.
  if (failed)
    if (auto err = commit(decide_abort(task, ctx->now())))
      return err;
  // A verification run ends at its first failure or skipped device.
  if (task.spec.verification)
    if (auto err = commit(decide_verification_failure(task, ctx->now())))
      return err;
  if (!was_finished && is_finished(task.status))
    finished();
  announce();
  return std::nullopt;
}

void task_actor_state::finished() {
  ready.clear();
  resends.clear();
  if (task.spec.is_increment())
    out.then([this] {
      self->send(ctx->fleet, forget_atom_v,
                 task_joiner{caf::actor_cast<task_joiner>(self)});
    });
  out.then([this] { self->send(ctx->firmware, release_atom_v, task.id); });
  if (auto outcome = verification_outcome(task))
    out.then([this, r = *outcome] {
      self->send(ctx->firmware, verified_atom_v, task.spec.product,
                 task.spec.target_version, r.verified, r.reason);
    });
}

caf::result<accepted>
task_actor_state::commit_reply(expected<event_list> decided) {
  if (!decided)
    return to_error(decided.error());
  if (auto err = commit(*decided))
    return to_error(*err);
  auto rp = self->make_response_promise<accepted>();
  out.reply(rp, accepted{});
  return rp;
}

void task_actor_state::schedule_flush() {
  if (out.batch_full())
    flush();
  else
    out.schedule_flush(self);
}

void task_actor_state::publish_live() {
  if (!board || !created)
    return;
  task_live live;
  auto resending = std::min(resends.size(), ready.size());
  live.queued_online = ready.size() - resending;
  live.retries_waiting = task.retries_pending;
  // The first retry due; timeouts share the timers, so look a little way.
  size_t looked = 0;
  for (auto& [due, seq] : deadlines.due) {
    if (live.retries_waiting == 0)
      break;
    if (++looked > 64)
      break;
    const auto* x = task.find(execution_seq{seq});
    if (x != nullptr && (x->state == es::EXECUTION_STATE_FAILED ||
                         x->state == es::EXECUTION_STATE_TIMED_OUT)) {
      live.next_retry_ms = due;
      break;
    }
  }
  live.pushes = pushes;
  board->update(live);
}

void task_actor_state::flush() {
  publish_live();
  if (board && board_stale && created) {
    board_stale = false;
    task_progress p;
    p.status = task.status;
    p.counters = task.counters();
    p.finished_at_ms = task.finished_at_ms;
    p.status_reason = task.status_reason;
    out.then(
        [b = board, p = std::move(p)]() mutable { b->update(std::move(p)); });
  }
  out.flush(self);
}

// -- pushes -------------------------------------------------------------------

void task_actor_state::push(uint64_t seq) {
  flying.insert(seq);
  auto x = task.id_of(execution_seq{seq});
  out.then([this, seq, x, frame = upgrade_frame(task, seq)]() mutable {
    self->send(devices[seq - 1], push_atom_v,
               push_frame{x, false, std::move(frame)});
    pushes.record(ctx->now());
    publish_live();
    // A NOTIFIED execution's push is sent again unless acknowledged in time.
    const auto* ex = task.find(execution_seq{seq});
    if (ex == nullptr || ex->state != es::EXECUTION_STATE_NOTIFIED)
      return;
    auto due = to_millis(ctx->now()) + ctx->limits.push_ack_timeout.count();
    if (acks.set(seq, due))
      arm(acks, due, true);
  });
}

void task_actor_state::announce() {
  if (ready.empty() || task.status != v1::TASK_STATUS_RUNNING ||
      !task.spec.is_cloud_push())
    return;
  auto successes = task.counts[es::EXECUTION_STATE_SUCCEEDED];
  // A new success may raise a ramping rate: tell the dispatcher even while
  // the last demand waits.
  if (demand_pending &&
      !(task.spec.rate.has_ramp_up && successes != announced_successes))
    return;
  demand_pending = true;
  announced_successes = successes;
  push_demand d;
  d.task = caf::actor_cast<credit_sink>(self);
  d.pending = ready.size();
  d.priority = task.spec.priority;
  d.rate = task.spec.rate;
  d.schedule = task.spec.schedule;
  d.successes = successes;
  // The successes the ramp-up follows must be durable.
  out.then([this, d = std::move(d)]() mutable {
    self->send(ctx->dispatcher, demand_atom_v, std::move(d));
  });
}

void task_actor_state::operator()(credit_atom, uint64_t credit) {
  // No demand leaves while the credit is used; the one below says what is
  // left.
  demand_pending = true;
  uint64_t used = 0;
  event_list notified;
  // The dispatcher granted inside a window; check again, so that no push
  // leaves after the window closed meanwhile.
  if (task.status == v1::TASK_STATUS_RUNNING && task.spec.is_cloud_push() &&
      windows.is_open(ctx->now())) {
    auto now = ctx->now();
    while (used < credit && !ready.empty()) {
      auto seq = *ready.begin();
      ready.erase(ready.begin());
      const auto* x = task.find(execution_seq{seq});
      if (x == nullptr || !sessions[seq - 1])
        continue;
      if (x->state == es::EXECUTION_STATE_QUEUED) {
        auto decided = decide_notified(task, execution_seq{seq}, now);
        if (!decided || commit(*decided))
          continue;
      } else if ((x->state != es::EXECUTION_STATE_NOTIFIED &&
                  x->state != es::EXECUTION_STATE_IN_PROGRESS) ||
                 resends.erase(seq) == 0) {
        continue;
      }
      push(seq);
      ++used;
    }
  }
  if (used < credit)
    settle(0, credit - used);
  demand_pending = false;
  announce();
}

void task_actor_state::operator()(settled_atom) {
  settle_scheduled = false;
  auto pushes = std::exchange(settled_pushes, 0);
  auto credit = std::exchange(unused_credit, 0);
  out.then([this, pushes, credit] {
    self->send(ctx->dispatcher, settled_atom_v,
               caf::actor_cast<credit_sink>(self), pushes, credit);
  });
}

void task_actor_state::operator()(resend_atom) {
  auto now_ms = to_millis(ctx->now());
  if (acks.wake_at_ms > now_ms)
    return; // A stale timer; a later one is armed.
  acks.wake_at_ms = 0;
  while (!acks.due.empty() && acks.due.begin()->first <= now_ms) {
    auto seq = acks.due.begin()->second;
    acks.set(seq, 0);
    // Not acknowledged in time: the push is lost or the gateway is slow.
    // It counts as answered, and goes out again within the rules.
    settle_push(seq);
    make_ready(seq);
  }
  if (!acks.due.empty())
    arm(acks, acks.due.begin()->first, true);
  announce();
}

void task_actor_state::operator()(status_atom, execution_id x,
                                  caf::actor& session) {
  const auto* ex = find(x);
  if (ex == nullptr)
    return;
  auto seq = x.sequence().value();
  sessions[seq - 1] = session;
  if (!session) {
    ready.erase(seq);
    resends.erase(seq);
    publish_live();
    return;
  }
  // A device that comes back online while NOTIFIED gets its push again.
  make_ready(seq);
  announce();
  publish_live();
}

void task_actor_state::operator()(bind_atom, execution_id x,
                                  caf::actor& session) {
  const auto* ex = find(x);
  if (ex == nullptr)
    return;
  auto seq = x.sequence().value();
  // The session the claim granted, once more: the push may have left
  // already, and must not leave twice.
  if (sessions[seq - 1] == session)
    return;
  (*this)(status_atom_v, x, session);
}

void task_actor_state::operator()(deferred_atom, execution_id x) {
  const auto* ex = find(x);
  if (ex == nullptr)
    return;
  auto seq = x.sequence().value();
  // The gateway's session is not reading: the push did not leave. Its
  // credit goes to other sessions; the device says it is online again once
  // the session drains, and the push goes out then, within the rules.
  acks.set(seq, 0);
  settle_push(seq);
  ready.erase(seq);
  resends.erase(seq);
  node_metrics::add(ctx->metrics->pushes_deferred);
}

void task_actor_state::operator()(version_atom, execution_id x,
                                  const std::string& version) {
  if (find(x) == nullptr)
    return;
  auto decided = decide_version(task, x.sequence(), version, ctx->now());
  if (decided)
    commit(*decided);
}

caf::result<std::string>
task_actor_state::operator()(record_atom, execution_id x,
                             const std::string& version) {
  std::string recorded;
  if (find(x) != nullptr) {
    auto decided = decide_version(task, x.sequence(), version, ctx->now(),
                                  /*records_version=*/true);
    if (decided && !decided->empty()) {
      if (auto err = commit(*decided))
        return to_error(*err);
      recorded = decided->front().SerializeAsString();
    }
  }
  auto rp = self->make_response_promise<std::string>();
  out.reply(rp, std::move(recorded));
  return rp;
}

// -- operator commands --------------------------------------------------------

caf::result<task_summary> task_actor_state::operator()(get_task&) {
  auto rp = self->make_response_promise<task_summary>();
  out.reply(rp, task.summary());
  return rp;
}

caf::result<task_summary> task_actor_state::operator()(get_atom) {
  auto rp = self->make_response_promise<task_summary>();
  out.reply(rp, task.summary());
  return rp;
}

caf::result<task_details> task_actor_state::operator()(get_task_details& cmd) {
  auto size = cmd.page_size == 0 ? limits::default_page_size : cmd.page_size;
  std::set<int> states;
  for (auto s : cmd.states) {
    if (s <= es::EXECUTION_STATE_UNSPECIFIED ||
        s > es::EXECUTION_STATE_CANCELED)
      return to_error(make_failure(errc::invalid_argument,
                                   "states: " + std::to_string(s) +
                                       " is not an execution state"));
    states.insert(s);
  }
  task_details d;
  d.summary = task.summary();
  if (cmd.skipped) {
    auto from = std::min<uint64_t>(cmd.page_token, task.skipped.size());
    auto end = std::min<uint64_t>(from + size, task.skipped.size());
    d.skipped.assign(task.skipped.begin() + from, task.skipped.begin() + end);
    d.next_page_token = end < task.skipped.size() ? end : 0;
  } else {
    uint64_t scanned = 0;
    for (uint64_t s = cmd.page_token + 1; s <= task.executions.size(); ++s) {
      const auto& x = task.executions[s - 1];
      if (!states.empty() && states.count(x.state) == 0) {
        if (++scanned == max_details_scan) {
          d.next_page_token = s;
          break;
        }
        continue;
      }
      if (d.executions.size() == size) {
        d.next_page_token = s - 1;
        break;
      }
      auto v = task.view(execution_seq{s});
      v.waiting_for_device = x.state == es::EXECUTION_STATE_QUEUED &&
                             task.spec.is_cloud_push() && !sessions[s - 1];
      d.executions.push_back(std::move(v));
    }
  }
  auto rp = self->make_response_promise<task_details>();
  out.reply(rp, std::move(d));
  return rp;
}

caf::result<accepted> task_actor_state::operator()(pause_task&) {
  return commit_reply(decide_pause(task, "paused by operator", ctx->now()));
}

caf::result<accepted> task_actor_state::operator()(resume_task&) {
  return commit_reply(decide_resume(task, ctx->now()));
}

caf::result<accepted> task_actor_state::operator()(cancel_task&) {
  return commit_reply(decide_cancel(task, "canceled by operator", ctx->now()));
}

// -- device reports -----------------------------------------------------------

caf::result<accepted> task_actor_state::operator()(report_progress& cmd) {
  return commit_reply(decide_progress(task, cmd.execution.sequence(), cmd.step,
                                      cmd.text, ctx->now()));
}

caf::result<accepted> task_actor_state::operator()(report_failure& cmd) {
  return commit_reply(decide_failure(task, cmd.execution.sequence(), cmd.code,
                                     cmd.text, ctx->now()));
}

caf::result<accepted> task_actor_state::operator()(confirm_upgrade& cmd) {
  return commit_reply(
      decide_confirm(task, cmd.execution.sequence(), ctx->now()));
}

caf::result<accepted> task_actor_state::operator()(ack_push& cmd) {
  const auto* x = find(cmd.execution);
  if (x == nullptr)
    return to_error(
        make_failure(errc::not_found, "execution " + cmd.execution.to_string() +
                                          " does not exist"));
  // A duplicate, or an acknowledgement of an older attempt, changes nothing.
  auto seq = cmd.execution.sequence().value();
  if (x->attempt == cmd.attempt) {
    acks.set(seq, 0);
    settle_push(seq);
  }
  auto rp = self->make_response_promise<accepted>();
  out.reply(rp, accepted{});
  return rp;
}

caf::result<upgrade_offer>
task_actor_state::operator()(offer_atom, execution_seq seq,
                             const std::string& device_version) {
  auto decided = decide_offer(task, seq, device_version, ctx->now());
  if (auto err = commit(decided.events))
    return to_error(*err);
  auto rp = self->make_response_promise<upgrade_offer>();
  out.reply(rp, std::move(decided.offer));
  return rp;
}

caf::result<offer_candidates>
task_actor_state::operator()(candidate_atom, const std::string& device) {
  offer_candidates out_list;
  if (!created || task.spec.method != v1::METHOD_DEVICE_REQUEST ||
      task.status != v1::TASK_STATUS_RUNNING)
    return out_list;
  auto seq = task.sequence_of(device);
  if (!seq)
    return out_list;
  const auto* x = task.find(*seq);
  if (x == nullptr || x->state != es::EXECUTION_STATE_QUEUED)
    return out_list;
  out_list.push_back(offer_candidate{caf::actor_cast<task_sink>(self), task.id,
                                     *seq, task.spec.priority});
  return out_list;
}

caf::result<digest_sum> task_actor_state::operator()(digest_atom) {
  auto rp = self->make_response_promise<digest_sum>();
  out.then([this, rp]() mutable {
    digest_sum sum;
    sum.add(task);
    rp.deliver(sum);
  });
  return rp;
}

// -- timers -------------------------------------------------------------------

void task_actor_state::operator()(deadline_atom) {
  auto now = ctx->now();
  auto now_ms = to_millis(now);
  if (deadlines.wake_at_ms > now_ms)
    return; // A stale timer; a later one is armed.
  deadlines.wake_at_ms = 0;
  commit(decide_end(task, now));
  while (!deadlines.due.empty() && deadlines.due.begin()->first <= now_ms) {
    auto seq = deadlines.due.begin()->second;
    deadlines.set(seq, 0);
    auto events = decide_timeout(task, execution_seq{seq}, now);
    if (events.empty())
      events = decide_retry(task, execution_seq{seq}, now);
    commit(events);
    if (events.empty())
      track(seq); // Not due after all, e.g. paused: look again later.
  }
  if (!deadlines.due.empty())
    arm(deadlines, deadlines.due.begin()->first, false);
  if (task.spec.end_time_ms != 0 && !is_finished(task.status))
    arm(deadlines, task.spec.end_time_ms, false);
}

// -- enrolment ----------------------------------------------------------------

void task_actor_state::enrol(const device_handles& granted,
                             const std::vector<caf::actor>& granted_sessions,
                             const std::vector<skipped_device>& skipped) {
  std::vector<std::string> keys;
  keys.reserve(granted.size());
  for (const auto& d : granted)
    keys.push_back(d.key);
  auto first = task.executions.size() + 1;
  auto events = decide_enroll(task, keys, skipped, ctx->now());
  // Volatile state first: the effects of the enrolment (a snapshot task
  // without devices completes) find it in place.
  // Grows geometrically: an increment task enrols one device at a time.
  for (size_t i = 0; i < granted.size(); ++i) {
    devices.push_back(granted[i].actor);
    sessions.push_back(i < granted_sessions.size() ? granted_sessions[i]
                                                   : caf::actor{});
  }
  if (auto err = commit(events)) {
    devices.resize(first - 1);
    sessions.resize(first - 1);
    return;
  }
  for (uint64_t s = first; s < first + granted.size(); ++s)
    make_ready(s);
  announce();
}

void task_actor_state::operator()(join_atom, device_handle& dev) {
  if (!created) {
    early_joins.push_back(std::move(dev));
    return;
  }
  if (is_finished(task.status) || task.sequence_of(dev.key) ||
      joining.count(dev.key) > 0)
    return;
  if (!task.spec.is_cloud_push()) {
    // A device-request task holds no device until the device asks.
    enrol(device_handles{dev}, {}, {});
    return;
  }
  joining.insert(dev.key);
  self->request(dev.actor, caf::infinite, claim_atom_v,
                enrolling_claim(task.id))
      .then(
          [this, dev](claim_result& r) {
            joining.erase(dev.key);
            if (!r.granted)
              return; // Busy: the fleet offers it again once it is free.
            if (is_finished(task.status) || task.sequence_of(dev.key)) {
              self->send(dev.actor, release_atom_v, enrolling_claim(task.id));
              return;
            }
            enrol(device_handles{dev}, {r.session}, {});
          },
          [this, dev](caf::error&) { joining.erase(dev.key); });
}

// -- starting -----------------------------------------------------------------

caf::result<task_summary> task_actor_state::operator()(create_task& cmd) {
  if (starting || created)
    return to_error(
        make_failure(errc::failed_precondition,
                     "task " + std::to_string(id.value()) + " exists already"));
  starting = true;
  auto rp = self->make_response_promise<task_summary>();
  auto fail = [this, rp](caf::error err) {
    self->send(ctx->firmware, release_atom_v, id);
    auto p = rp;
    p.deliver(std::move(err));
    self->quit();
  };
  self->request(ctx->firmware, caf::infinite, reserve_atom_v, id,
                cmd.spec.product, cmd.spec.target_version)
      .then(
          [this, rp, spec = std::move(cmd.spec), fail](firmware_record& fw) {
            auto decided = decide_create(id, spec, &fw, ctx->now());
            if (!decided) {
              fail(to_error(decided.error()));
              return;
            }
            // Creation and enrolment are written together; nothing of the
            // task reaches the log before its TaskCreated.
            task = make_task(decided->front());
            out.add(*decided);
            if (task.spec.schedule.set)
              windows = schedule{task.spec.schedule};
            auto joiner = task.spec.is_increment()
                              ? caf::actor_cast<task_joiner>(self)
                              : task_joiner{};
            self->request(ctx->fleet, caf::infinite, scope_atom_v, task.spec,
                          joiner)
                .then(
                    [this, rp](device_handles& scope) {
                      auto done = [this, rp] {
                        created = true;
                        schedule_flush();
                        out.reply(rp, task.summary());
                        if (board)
                          out.then([b = board, s = task.summary()]() mutable {
                            b->reset(std::move(s));
                          });
                        if (task.spec.end_time_ms != 0)
                          arm(deadlines, task.spec.end_time_ms, false);
                        auto joins = std::move(early_joins);
                        early_joins.clear();
                        for (auto& d : joins)
                          (*this)(join_atom_v, d);
                      };
                      if (!task.spec.is_cloud_push()) {
                        // A device-request task holds no device until the
                        // device asks: every device in scope is enrolled.
                        log_created(scope.size(), 0);
                        enrol(scope, {}, {});
                        done();
                        return;
                      }
                      std::vector<device_actor> actors;
                      actors.reserve(scope.size());
                      for (const auto& d : scope)
                        actors.push_back(d.actor);
                      gather<claim_result>(
                          self, std::move(actors),
                          [this, scope = std::move(scope),
                           done](std::vector<claim_result>& claims, size_t) {
                            device_handles granted;
                            std::vector<caf::actor> sessions_of;
                            std::vector<skipped_device> skipped;
                            for (size_t i = 0; i < scope.size(); ++i) {
                              auto& c = claims[i];
                              if (c.granted) {
                                granted.push_back(scope[i]);
                                sessions_of.push_back(c.session);
                              } else if (!task.spec.is_increment()) {
                                // An increment task takes a busy device once
                                // it is free; a snapshot task skips it.
                                skipped.push_back(skipped_device{
                                    scope[i].key,
                                    c.reason.empty()
                                        ? "device actor is not available"
                                        : c.reason});
                              }
                            }
                            log_created(granted.size(), skipped.size());
                            enrol(granted, sessions_of, skipped);
                            done();
                          },
                          claim_atom_v, enrolling_claim(task.id));
                    },
                    [fail](caf::error& err) { fail(std::move(err)); });
          },
          [fail](caf::error& err) { fail(std::move(err)); });
  return rp;
}

void task_actor_state::log_created(size_t enrolled, size_t skipped) {
  // Before the enrolment's effects: an empty snapshot task completes at
  // once, and says so after it says it was created.
  out.then([line = created_line(task, enrolled, skipped)] {
    spdlog::info("{}", line);
  });
}

void task_actor_state::recover(std::shared_ptr<task_start> start) {
  task = std::move(start->recovered);
  devices = std::move(start->devices);
  if (board)
    board->reset(task.summary()); // Replayed: durable.
  sessions.assign(devices.size(), caf::actor{});
  created = true;
  bool done = is_finished(task.status);
  if (task.spec.schedule.set)
    windows = schedule{task.spec.schedule};
  // Devices are offline until they come back: nothing is ready to push.
  // The node binds every held device to this task before it serves.
  for (uint64_t s = 1; s <= task.executions.size(); ++s)
    track(s);
  if (task.spec.end_time_ms != 0 && !done)
    arm(deadlines, task.spec.end_time_ms, false);
  if (done) {
    // The outcome of a finished run may not have reached the firmware
    // before a crash.
    if (auto outcome = verification_outcome(task);
        outcome && start->report_outcome)
      self->send(ctx->firmware, verified_atom_v, task.spec.product,
                 task.spec.target_version, outcome->verified, outcome->reason);
    return;
  }
  if (task.spec.is_increment()) {
    // Devices that entered the scope while the node was down join now.
    self->request(ctx->fleet, caf::infinite, scope_atom_v, task.spec,
                  caf::actor_cast<task_joiner>(self))
        .then(
            [this](device_handles& scope) {
              for (auto& d : scope)
                (*this)(join_atom_v, d);
            },
            [](caf::error&) {});
  }
}

// -- behavior -----------------------------------------------------------------

task_impl::behavior_type task_behavior(task_actor_state::self_pointer self,
                                       context_ptr ctx,
                                       std::shared_ptr<task_start> start) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.id = start->id;
  st.board = start->board;
  st.out.init(st.ctx->journal, st.ctx->metrics);
  ignore_stray_errors(self);
  if (!start->is_new)
    st.recover(start);
  return {
      [self](create_task& x) { return self->state(x); },
      [self](get_task& x) { return self->state(x); },
      [self](get_task_details& x) { return self->state(x); },
      [self](pause_task& x) { return self->state(x); },
      [self](resume_task& x) { return self->state(x); },
      [self](cancel_task& x) { return self->state(x); },
      [self](get_atom tag) { return self->state(tag); },
      [self](report_progress& x) { return self->state(x); },
      [self](report_failure& x) { return self->state(x); },
      [self](confirm_upgrade& x) { return self->state(x); },
      [self](ack_push& x) { return self->state(x); },
      [self](offer_atom tag, execution_seq seq, const std::string& v) {
        return self->state(tag, seq, v);
      },
      [self](status_atom tag, execution_id x, caf::actor& s) {
        self->state(tag, x, s);
      },
      [self](bind_atom tag, execution_id x, caf::actor& s) {
        self->state(tag, x, s);
      },
      [self](deferred_atom tag, execution_id x) { self->state(tag, x); },
      [self](version_atom tag, execution_id x, const std::string& v) {
        self->state(tag, x, v);
      },
      [self](record_atom tag, execution_id x, const std::string& v) {
        return self->state(tag, x, v);
      },
      [self](candidate_atom tag, const std::string& device) {
        return self->state(tag, device);
      },
      [self](join_atom tag, device_handle& d) { self->state(tag, d); },
      [self](credit_atom tag, uint64_t n) { self->state(tag, n); },
      [self](digest_atom tag) { return self->state(tag); },
      [self](deadline_atom tag) { self->state(tag); },
      [self](resend_atom tag) { self->state(tag); },
      [self](settled_atom tag) { self->state(tag); },
      [self](flush_atom) { self->state.flush(); },
  };
}

} // namespace fota
