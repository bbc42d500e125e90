#include "actors/task.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<task_actor_state>*;

void commit_quietly(self_ptr self, const event_list& events);

constexpr uint32_t default_page_size = 100;
constexpr uint32_t max_page_size = 1000;

uint64_t execution_of(const task_state& t, uint64_t sequence) {
  return (t.id << 32) | sequence;
}

/// Announces this task's pushable executions to the dispatcher.
void announce(self_ptr self) {
  auto& st = self->state;
  if (st.demand_pending || st.ready.empty() ||
      st.task.status != v1::TASK_STATUS_RUNNING ||
      st.task.spec.method() != v1::METHOD_CLOUD_PUSH)
    return;
  st.demand_pending = true;
  self->send(
      st.ctx->dispatcher, demand_atom_v, caf::actor_cast<caf::actor>(self),
      static_cast<uint64_t>(st.ready.size()), st.task.spec.SerializeAsString());
}

/// Arms the deadline timer for `due_ms` unless an earlier one is pending.
void arm(self_ptr self, int64_t due_ms) {
  auto& st = self->state;
  if (st.wake_at_ms != 0 && st.wake_at_ms <= due_ms)
    return;
  st.wake_at_ms = due_ms;
  auto delay = std::chrono::milliseconds{
      std::max<int64_t>(0, due_ms - to_millis(st.ctx->now()))};
  self->delayed_send(self, delay, deadline_atom_v);
}

/// Keeps the timeout or retry of `seq` in the deadline set.
void track(self_ptr self, uint64_t seq) {
  auto& st = self->state;
  const auto* x = st.task.find(seq);
  int64_t due = 0;
  if (x != nullptr) {
    due = st.task.deadline_ms(*x);
    if (due == 0)
      due = st.task.retry_at_ms(*x);
  }
  auto i = st.due_of.find(seq);
  if (i != st.due_of.end()) {
    if (i->second == due)
      return;
    st.deadlines.erase({i->second, seq});
    st.due_of.erase(i);
  }
  if (due == 0)
    return;
  st.deadlines.emplace(due, seq);
  st.due_of.emplace(seq, due);
  arm(self, due);
}

/// A verification run ends at the first failure; its outcome goes to the
/// firmware actor when the task ends.
void verification_effects(self_ptr self, const event_list& events) {
  auto& st = self->state;
  const auto& t = st.task;
  if (!t.spec.verification())
    return;
  std::string failed;
  const event* ended = nullptr;
  for (const auto& e : events) {
    if (!failed.empty()) {
      // Keep the first failure.
    } else if (e.has_devices_skipped() &&
               !e.devices_skipped().devices().empty()) {
      const auto& d = e.devices_skipped().devices(0);
      failed = "device " + d.device_key() + " skipped: " + d.reason();
    } else if (e.has_execution_failed()) {
      const auto& f = e.execution_failed();
      failed = "device " + t.executions[f.sequence() - 1].device_key +
               " failed: " + f.code() + " " + f.text();
    } else if (e.has_execution_timed_out()) {
      failed = "device " +
               t.executions[e.execution_timed_out().sequence() - 1].device_key +
               " timed out";
    }
    if (e.has_task_completed() || e.has_task_canceled())
      ended = &e;
  }
  if (ended == nullptr) {
    if (!failed.empty() && !is_finished(t.status)) {
      auto cancel = decide_cancel(t, failed, st.ctx->now());
      if (cancel)
        commit_quietly(self, *cancel);
    }
    return;
  }
  bool ok = ended->has_task_completed() && failed.empty();
  std::string reason =
      ended->has_task_canceled() ? ended->task_canceled().reason() : failed;
  auto named = t.spec.scope().device_keys().device_keys_size();
  if (ok &&
      t.counts[v1::EXECUTION_STATE_SUCCEEDED] != static_cast<uint64_t>(named)) {
    ok = false;
    reason = std::to_string(t.counts[v1::EXECUTION_STATE_SUCCEEDED]) + " of " +
             std::to_string(named) +
             " devices upgraded; a device already on the target version "
             "cannot verify it";
  }
  self->send(st.ctx->firmware, verified_atom_v, t.spec.product_key(),
             t.spec.target_version(), ok, reason);
}

/// Runs the effects of applied events: releases devices of executions that
/// ended for good, tracks timeouts and retries, queues requeued executions,
/// and counts outcomes. Returns whether an execution failed or timed out,
/// the only events that can trip the abort rule (after an operator resumes
/// a task the rule paused, successes alone do not pause it again).
bool after_apply(self_ptr self, const event_list& events) {
  auto& st = self->state;
  auto& m = *st.ctx->metrics;
  bool failed = false;
  auto release = [&](uint64_t seq) {
    if (seq >= 1 && seq <= st.devices.size() && st.devices[seq - 1])
      self->send(st.devices[seq - 1], release_atom_v,
                 execution_of(st.task, seq));
    st.ready.erase(seq);
    st.waiting.erase(seq);
    track(self, seq);
  };
  auto ended = [&](uint64_t seq) {
    failed = true;
    const auto* x = st.task.find(seq);
    if (x != nullptr && st.task.holds_device(*x))
      track(self, seq); // A retry follows.
    else
      release(seq);
  };
  for (const auto& e : events) {
    switch (e.payload_case()) {
    case event::kExecutionNotified:
      track(self, e.execution_notified().sequence());
      break;
    case event::kExecutionStarted:
      track(self, e.execution_started().sequence());
      break;
    case event::kExecutionProgressed:
      track(self, e.execution_progressed().sequence());
      break;
    case event::kExecutionSucceeded:
      release(e.execution_succeeded().sequence());
      node_metrics::add(m.succeeded);
      self->send(st.ctx->dispatcher, success_atom_v,
                 caf::actor_cast<caf::actor>(self));
      break;
    case event::kExecutionFailed:
      ended(e.execution_failed().sequence());
      node_metrics::add(m.failed);
      break;
    case event::kExecutionTimedOut:
      ended(e.execution_timed_out().sequence());
      node_metrics::add(m.timed_out);
      break;
    case event::kExecutionRequeued: {
      auto seq = e.execution_requeued().sequence();
      track(self, seq);
      st.ready.insert(seq);
      break;
    }
    case event::kExecutionsCanceled:
      for (auto s : e.executions_canceled().sequences())
        release(s);
      node_metrics::add(m.canceled, e.executions_canceled().sequences_size());
      break;
    case event::kTaskCanceled:
    case event::kTaskCompleted:
      // Retries are abandoned: release the devices that waited for one.
      for (uint64_t s = 1; s <= st.task.executions.size(); ++s) {
        auto state = st.task.executions[s - 1].state;
        if (state == v1::EXECUTION_STATE_FAILED ||
            state == v1::EXECUTION_STATE_TIMED_OUT)
          release(s);
      }
      st.ready.clear();
      st.waiting.clear();
      if (st.task.spec.strategy() == v1::STRATEGY_INCREMENT)
        self->send(st.ctx->fleet, forget_atom_v);
      break;
    default:
      break;
    }
  }
  return failed;
}

void commit_quietly(self_ptr self, const event_list& events);

/// Before canceled executions are applied: a device already notified or
/// upgrading gets a cancel push.
void send_cancel_pushes(self_ptr self, const event_list& events) {
  auto& st = self->state;
  for (const auto& e : events) {
    if (!e.has_executions_canceled())
      continue;
    for (auto s : e.executions_canceled().sequences()) {
      const auto* x = st.task.find(s);
      if (x == nullptr || x->state == v1::EXECUTION_STATE_QUEUED ||
          is_terminal(x->state) || !st.devices[s - 1])
        continue;
      v1::ServerFrame frame;
      auto* c = frame.mutable_push()->mutable_cancel();
      c->set_product_key(st.task.spec.product_key());
      c->set_device_key(x->device_key);
      c->set_execution_id(execution_of(st.task, s));
      self->request(st.devices[s - 1], caf::infinite,
                    push_order{execution_of(st.task, s), x->attempt,
                               frame.SerializeAsString()})
          .then([](bool) {}, [](caf::error&) {});
    }
  }
}

/// Queues `events` for the task's next journal append and calls `done` once
/// they are durable. The first write of a group schedules the flush, so
/// everything committed until the task reads its flush message travels as
/// one append.
void write(self_ptr self, const event_list& events, caf::response_promise rp,
           std::function<void(caf::response_promise&)> done) {
  auto& st = self->state;
  if (events.empty() && st.waiters.empty()) {
    done(rp);
    return;
  }
  st.batch.insert(st.batch.end(), events.begin(), events.end());
  st.waiters.push_back({std::move(rp), std::move(done)});
  if (!st.flush_scheduled) {
    st.flush_scheduled = true;
    self->send(self, flush_atom_v);
  }
}

void flush(self_ptr self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  auto waiters = std::make_shared<std::vector<task_actor_state::waiter>>(
      std::move(st.waiters));
  st.waiters.clear();
  auto batch = std::move(st.batch);
  st.batch.clear();
  auto metrics = st.ctx->metrics;
  auto n = batch.size();
  auto run = [waiters] {
    for (auto& w : *waiters)
      w.done(w.promise);
  };
  if (batch.empty()) {
    run();
    return;
  }
  self->request(st.ctx->journal, caf::infinite, append_atom_v,
                event_batch{encode(batch)})
      .then(
          [run, metrics, n](sequence_number) {
            node_metrics::add(metrics->events_persisted, n);
            node_metrics::add(metrics->appends);
            run();
          },
          [waiters](caf::error& err) {
            for (auto& w : *waiters)
              w.promise.deliver(err);
          });
}

/// Counts a push outcome for the dispatcher; one message carries them all.
void settle(self_ptr self, uint32_t delivered, uint32_t returned) {
  auto& st = self->state;
  st.settled_delivered += delivered;
  st.settled_returned += returned;
  if (!st.settle_scheduled) {
    st.settle_scheduled = true;
    self->send(self, settled_atom_v);
  }
}

/// Applies `events` to the task at once, persists them, releases devices of
/// finished executions, and calls `done` once durable.
template <class Done>
void commit(self_ptr self, const event_list& events, caf::response_promise rp,
            Done done) {
  auto& st = self->state;
  send_cancel_pushes(self, events);
  for (const auto& e : events)
    apply(st.task, e);
  bool failed = after_apply(self, events);
  write(self, events, std::move(rp), std::move(done));
  verification_effects(self, events);
  if (failed) {
    // The abort rule looks at every finished execution.
    commit_quietly(self, decide_abort(st.task, st.ctx->now()));
  }
  announce(self);
}

/// Commits events that no client waits for.
void commit_quietly(self_ptr self, const event_list& events) {
  if (!events.empty())
    commit(self, events, caf::response_promise{},
           [](caf::response_promise&) {});
}

/// Handles every timeout and retry that is due, then re-arms the timer.
void on_deadline(self_ptr self) {
  auto& st = self->state;
  auto now = st.ctx->now();
  auto now_ms = to_millis(now);
  if (st.wake_at_ms > now_ms)
    return; // A stale timer; a later one is armed.
  st.wake_at_ms = 0;
  commit_quietly(self, decide_end(st.task, now));
  while (!st.deadlines.empty() && st.deadlines.begin()->first <= now_ms) {
    auto seq = st.deadlines.begin()->second;
    st.deadlines.erase(st.deadlines.begin());
    st.due_of.erase(seq);
    auto events = decide_timeout(st.task, seq, now);
    if (events.empty())
      events = decide_retry(st.task, seq, now);
    commit_quietly(self, events);
    if (events.empty())
      track(self, seq); // Not due after all, e.g. paused: look again later.
  }
  if (!st.deadlines.empty())
    arm(self, st.deadlines.begin()->first);
  if (st.task.spec.end_time_ms() != 0 && !is_finished(st.task.status))
    arm(self, st.task.spec.end_time_ms());
}

caf::result<std::string> commit_reply(self_ptr self,
                                      expected<event_list> decided) {
  if (!decided)
    return to_error(decided.error());
  auto rp = self->make_response_promise();
  commit(self, *decided, rp,
         [](caf::response_promise& rp) { rp.deliver(ok_response()); });
  return rp;
}

std::string push_frame(const task_state& t, uint64_t sequence) {
  const auto& x = t.executions[sequence - 1];
  v1::ServerFrame frame;
  auto* up = frame.mutable_push()->mutable_upgrade();
  up->set_product_key(t.spec.product_key());
  up->set_device_key(x.device_key);
  up->set_execution_id(execution_of(t, sequence));
  up->set_attempt(x.attempt);
  *up->mutable_firmware() = t.firmware;
  return frame.SerializeAsString();
}

/// Sends the push of `sequence` to its device. Counts against credit unless
/// it is a redelivery of an already notified execution.
void push(self_ptr self, uint64_t sequence, bool redelivery) {
  auto& st = self->state;
  const auto& x = st.task.executions[sequence - 1];
  auto order = push_order{execution_of(st.task, sequence), x.attempt,
                          push_frame(st.task, sequence)};
  self->request(st.devices[sequence - 1], caf::infinite, std::move(order))
      .then(
          [=](bool delivered) {
            auto& st = self->state;
            if (!redelivery)
              settle(self, delivered ? 1 : 0, delivered ? 0 : 1);
            if (redelivery)
              return;
            const auto* x = st.task.find(sequence);
            if (x == nullptr || x->state != v1::EXECUTION_STATE_QUEUED)
              return;
            if (!delivered) {
              st.waiting.insert(sequence);
              return;
            }
            auto decided = decide_notified(st.task, sequence, st.ctx->now());
            if (decided)
              commit_quietly(self, *decided);
          },
          [=](caf::error&) {
            if (!redelivery)
              settle(self, 0, 1);
          });
}

void on_credit(self_ptr self, uint64_t credit) {
  auto& st = self->state;
  st.demand_pending = false;
  uint64_t used = 0;
  // The dispatcher granted inside a window; re-check, so that no push leaves
  // after the window closed meanwhile.
  if (st.task.status == v1::TASK_STATUS_RUNNING &&
      st.windows.is_open(st.ctx->now())) {
    while (used < credit && !st.ready.empty()) {
      auto seq = *st.ready.begin();
      st.ready.erase(st.ready.begin());
      push(self, seq, false);
      ++used;
    }
  }
  if (used < credit)
    settle(self, 0, static_cast<uint32_t>(credit - used));
  announce(self);
}

/// Claims sent to devices and not yet answered, during task creation.
constexpr size_t max_claims_in_flight = 256;

/// A claim id that no execution has (sequences stay below 2^31), used while
/// the devices in scope are claimed; replaced by the final execution id once
/// the skipped devices are known.
uint64_t provisional(self_ptr self) {
  auto& st = self->state;
  auto index = st.next_provisional++ & 0x7FFFFFFFu;
  return execution_of(st.task, 0x80000000u | index);
}

/// A device entered an INCREMENT task's scope: claim it, then enrol it or
/// record why it was skipped.
void join(self_ptr self, const device_handle& dev) {
  auto& st = self->state;
  if (is_finished(st.task.status) || !st.members.insert(dev.key).second)
    return;
  auto claim = provisional(self);
  auto me = caf::actor_cast<caf::actor>(self);
  self->request(dev.actor, caf::infinite, claim_atom_v, claim, me)
      .then(
          [self, dev, claim, me](std::string& reason) {
            auto& st = self->state;
            auto now = st.ctx->now();
            if (is_finished(st.task.status)) {
              if (reason.empty())
                self->send(dev.actor, release_atom_v, claim);
              return;
            }
            if (!reason.empty()) {
              v1::SkippedDevice skipped;
              skipped.set_device_key(dev.key);
              skipped.set_reason(std::move(reason));
              commit_quietly(self, decide_enroll(st.task, {}, {skipped}, now));
              return;
            }
            auto seq = st.task.executions.size() + 1;
            self->send(dev.actor, claim_atom_v, claim,
                       execution_of(st.task, seq), me);
            st.devices.resize(seq);
            st.devices[seq - 1] = dev.actor;
            commit_quietly(self, decide_enroll(st.task, {dev.key}, {}, now));
            st.ready.insert(seq);
            announce(self);
          },
          [](caf::error&) {});
}

/// Claims the devices in scope in order, then persists creation and
/// enrolment as one batch.
void enrol(self_ptr self, std::shared_ptr<task_start> start,
           device_handles scope, event_list created) {
  struct claims {
    device_handles scope;
    std::vector<uint64_t> claims;
    std::vector<std::string> reasons;
    size_t pending;
    event_list created;
    std::shared_ptr<std::function<void()>> keep_alive;
  };
  auto acc = std::make_shared<claims>();
  acc->reasons.resize(scope.size());
  for (size_t i = 0; i < scope.size(); ++i)
    acc->claims.push_back(provisional(self));
  acc->pending = scope.size();
  acc->scope = std::move(scope);
  acc->created = std::move(created);
  auto finish = [self, start, acc]() {
    acc->keep_alive.reset(); // Breaks the cycle through the sender.
    auto& st = self->state;
    std::vector<std::string> keys;
    std::vector<v1::SkippedDevice> skipped;
    std::vector<caf::actor> actors;
    uint64_t next = st.task.executions.size() + 1;
    for (size_t i = 0; i < acc->scope.size(); ++i) {
      if (acc->reasons[i].empty()) {
        keys.push_back(acc->scope[i].key);
        actors.push_back(acc->scope[i].actor);
      } else {
        v1::SkippedDevice s;
        s.set_device_key(acc->scope[i].key);
        s.set_reason(acc->reasons[i]);
        skipped.push_back(std::move(s));
      }
    }
    // Claims were made with sequences in scope order; re-claim the enrolled
    // devices with their final sequences.
    auto me = caf::actor_cast<caf::actor>(self);
    for (size_t i = 0, k = 0; i < acc->scope.size(); ++i) {
      if (!acc->reasons[i].empty())
        continue;
      self->send(acc->scope[i].actor, claim_atom_v, acc->claims[i],
                 execution_of(st.task, next + k++), me);
    }
    if (st.task.spec.strategy() == v1::STRATEGY_INCREMENT)
      for (const auto& d : acc->scope)
        st.members.insert(d.key);
    auto events = std::move(acc->created);
    auto enrolled = decide_enroll(st.task, keys, skipped, st.ctx->now());
    events.insert(events.end(), enrolled.begin(), enrolled.end());
    for (const auto& e : enrolled)
      apply(st.task, e);
    st.devices.insert(st.devices.end(), actors.begin(), actors.end());
    for (uint64_t s = next; s < next + keys.size(); ++s)
      st.ready.insert(s);
    write(self, events, start->created, [self](caf::response_promise& rp) {
      v1::Response r;
      *r.mutable_task() = self->state.task.summary();
      rp.deliver(ok_response(r));
      announce(self);
    });
    verification_effects(self, enrolled);
  };
  if (acc->scope.empty()) {
    finish();
    return;
  }
  // CAF 0.17 keeps pending replies in a flat map, so each request costs time
  // proportional to those outstanding: keep a window of claims in flight.
  auto me = caf::actor_cast<caf::actor>(self);
  auto next = std::make_shared<size_t>(0);
  auto send_next = std::make_shared<std::function<void()>>();
  *send_next = [self, acc, me, next, finish,
                send_next_weak =
                    std::weak_ptr<std::function<void()>>(send_next)] {
    if (*next >= acc->scope.size())
      return;
    auto i = (*next)++;
    auto again = send_next_weak.lock();
    self->request(acc->scope[i].actor, caf::infinite, claim_atom_v,
                  acc->claims[i], me)
        .then(
            [acc, i, finish, again](std::string& reason) {
              acc->reasons[i] = std::move(reason);
              if (--acc->pending == 0)
                finish();
              else if (again)
                (*again)();
            },
            [acc, i, finish, again](caf::error&) {
              acc->reasons[i] = "device actor is not available";
              if (--acc->pending == 0)
                finish();
              else if (again)
                (*again)();
            });
  };
  for (size_t k = 0; k < max_claims_in_flight && k < acc->scope.size(); ++k)
    (*send_next)();
  // Keep the sender alive until every claim is answered.
  acc->keep_alive = send_next;
}

void create(self_ptr self, std::shared_ptr<task_start> start) {
  auto& st = self->state;
  const auto& spec = start->spec;
  self->request(st.ctx->firmware, caf::infinite, get_atom_v, spec.product_key(),
                spec.target_version())
      .then(
          [=](const std::string& bytes) {
            auto& st = self->state;
            v1::Firmware fw;
            fw.ParseFromString(bytes);
            spec_context ctx;
            ctx.find_firmware = [&](const std::string&, const std::string&) {
              return &fw;
            };
            auto decided =
                decide_create(start->id, start->spec, ctx, st.ctx->now());
            if (!decided) {
              start->created.deliver(to_error(decided.error()));
              self->quit();
              return;
            }
            st.task = make_task(decided->front());
            if (spec.has_schedule())
              st.windows = schedule{spec.schedule()};
            if (spec.end_time_ms() != 0)
              arm(self, spec.end_time_ms());
            self->request(st.ctx->fleet, caf::infinite, scope_atom_v,
                          spec.SerializeAsString(),
                          spec.strategy() == v1::STRATEGY_INCREMENT)
                .then(
                    [=](device_handles& scope) {
                      enrol(self, start, std::move(scope), *decided);
                    },
                    [=](caf::error& err) {
                      start->created.deliver(std::move(err));
                      self->quit();
                    });
          },
          [=](caf::error& err) {
            start->created.deliver(std::move(err));
            self->quit();
          });
}

void recover(self_ptr self, std::shared_ptr<task_start> start) {
  auto& st = self->state;
  st.task = std::move(start->recovered);
  st.devices = std::move(start->devices);
  bool finished = is_finished(st.task.status);
  if (st.task.spec.has_schedule())
    st.windows = schedule{st.task.spec.schedule()};
  if (!finished && st.task.spec.strategy() == v1::STRATEGY_INCREMENT) {
    for (const auto& x : st.task.executions)
      st.members.insert(x.device_key);
    for (const auto& x : st.task.skipped)
      st.members.insert(x.device_key());
    // Devices that arrived while the node was down join now.
    self->request(st.ctx->fleet, caf::infinite, scope_atom_v,
                  st.task.spec.SerializeAsString(), true)
        .then(
            [self](device_handles& scope) {
              for (const auto& d : scope)
                join(self, d);
            },
            [](caf::error&) {});
  }
  // node::start binds the held devices back to this task.
  for (uint64_t s = 1; s <= st.task.executions.size(); ++s) {
    const auto& x = st.task.executions[s - 1];
    if (!st.task.holds_device(x) || !st.devices[s - 1])
      continue;
    if (x.state == v1::EXECUTION_STATE_QUEUED && !finished)
      st.ready.insert(s);
    track(self, s);
  }
  if (st.task.spec.end_time_ms() != 0 && !finished)
    arm(self, st.task.spec.end_time_ms());
  announce(self);
}

/// A device asks for its upgrade. Only a RUNNING device-request task offers
/// it; anything else holding the device makes it busy.
caf::result<std::string> offer(self_ptr self, const command& cmd) {
  auto& st = self->state;
  v1::DeviceRef ref;
  ref.ParseFromString(cmd.body);
  const auto& t = st.task;
  uint64_t seq = 0;
  for (uint64_t s = 1; s <= t.executions.size(); ++s)
    if (t.executions[s - 1].device_key == ref.device_key() &&
        t.holds_device(t.executions[s - 1]))
      seq = s;
  v1::Response r;
  auto* o = r.mutable_offer();
  const auto* x = t.find(seq);
  auto busy = [&](const std::string& why) {
    o->set_available(false);
    o->set_reason("busy: device " + ref.device_key() + " is in execution " +
                  std::to_string(t.id) + "/" + std::to_string(seq) + " (" +
                  why + ")");
    return ok_response(r);
  };
  if (x == nullptr) {
    o->set_available(false);
    o->set_reason("no upgrade available for device " + ref.device_key());
    return ok_response(r);
  }
  if (t.spec.method() != v1::METHOD_DEVICE_REQUEST)
    return busy("a cloud-push task");
  if (t.status != v1::TASK_STATUS_RUNNING)
    return busy("task is " + v1::TaskStatus_Name(t.status));
  if (x->state == v1::EXECUTION_STATE_IN_PROGRESS)
    return busy("upgrade in progress");
  if (x->state != v1::EXECUTION_STATE_QUEUED &&
      x->state != v1::EXECUTION_STATE_NOTIFIED)
    return busy("waiting for a retry");
  o->set_available(true);
  o->set_execution_id(execution_of(t, seq));
  o->set_attempt(x->attempt);
  *o->mutable_firmware() = t.firmware;
  if (x->state == v1::EXECUTION_STATE_NOTIFIED)
    return ok_response(r); // The same offer again.
  auto decided = decide_notified(t, seq, st.ctx->now());
  if (!decided)
    return to_error(decided.error());
  auto rp = self->make_response_promise();
  auto reply = r.SerializeAsString();
  commit(self, *decided, rp, [reply](caf::response_promise& rp) {
    v1::Response r;
    r.ParseFromString(reply);
    rp.deliver(ok_response(r));
  });
  return rp;
}

caf::result<std::string> details(self_ptr self, const command& cmd) {
  auto& t = self->state.task;
  v1::GetTaskDetails req;
  if (!parse_body(cmd, req))
    return to_error(
        make_failure(errc::invalid_argument, "GetTaskDetails does not parse"));
  auto size = req.page_size() == 0 ? default_page_size : req.page_size();
  if (size > max_page_size)
    return to_error(make_failure(errc::invalid_argument,
                                 "page_size: must be at most 1000"));
  std::set<int> states(req.states().begin(), req.states().end());
  for (auto s : states)
    if (s <= v1::EXECUTION_STATE_UNSPECIFIED ||
        s > v1::EXECUTION_STATE_CANCELED)
      return to_error(make_failure(errc::invalid_argument,
                                   "states: " + std::to_string(s) +
                                       " is not an execution state"));
  v1::Response r;
  auto* d = r.mutable_task_details();
  *d->mutable_summary() = t.summary();
  if (req.skipped()) {
    auto from = std::min<uint64_t>(req.page_token(), t.skipped.size());
    auto end = std::min<uint64_t>(from + size, t.skipped.size());
    for (auto i = from; i < end; ++i)
      *d->add_skipped() = t.skipped[i];
    d->set_next_page_token(end < t.skipped.size() ? end : 0);
    return ok_response(r);
  }
  for (uint64_t s = req.page_token() + 1; s <= t.executions.size(); ++s) {
    if (!states.empty() && states.count(t.executions[s - 1].state) == 0)
      continue;
    if (static_cast<uint32_t>(d->executions_size()) == size) {
      d->set_next_page_token(s - 1);
      break;
    }
    auto* x = d->add_executions();
    *x = t.execution_proto(s);
    x->set_waiting_for_device(self->state.waiting.count(s) > 0);
  }
  return ok_response(r);
}

} // namespace

caf::behavior task_actor(self_ptr self, context_ptr ctx,
                         std::shared_ptr<task_start> start) {
  self->state.ctx = std::move(ctx);
  ignore_stray_errors(self);
  if (start->is_new)
    create(self, start);
  else
    recover(self, start);
  return {
      [=](command& cmd) -> caf::result<std::string> {
        auto& st = self->state;
        auto now = st.ctx->now();
        switch (cmd.kind) {
        case v1::ClientFrame::kGetTask: {
          v1::Response r;
          *r.mutable_task() = st.task.summary();
          return ok_response(r);
        }
        case v1::ClientFrame::kGetTaskDetails:
          return details(self, cmd);
        case v1::ClientFrame::kPauseTask:
          return commit_reply(self,
                              decide_pause(st.task, "paused by operator", now));
        case v1::ClientFrame::kResumeTask: {
          auto result = commit_reply(self, decide_resume(st.task, now));
          announce(self);
          return result;
        }
        case v1::ClientFrame::kCancelTask:
          return commit_reply(
              self, decide_cancel(st.task, "canceled by operator", now));
        case v1::ClientFrame::kReportProgress: {
          v1::ReportProgress req;
          if (!parse_body(cmd, req))
            break;
          return commit_reply(
              self, decide_progress(st.task, req.execution_id() & 0xFFFFFFFFu,
                                    req.step(), req.text(), now));
        }
        case v1::ClientFrame::kRequestUpgrade:
          return offer(self, cmd);
        case v1::ClientFrame::kConfirmUpgrade: {
          v1::ConfirmUpgrade req;
          if (!parse_body(cmd, req))
            break;
          return commit_reply(
              self,
              decide_confirm(st.task, req.execution_id() & 0xFFFFFFFFu, now));
        }
        case v1::ClientFrame::kReportFailure: {
          v1::ReportFailure req;
          if (!parse_body(cmd, req))
            break;
          return commit_reply(
              self, decide_failure(st.task, req.execution_id() & 0xFFFFFFFFu,
                                   req.code(), req.text(), now));
        }
        default:
          return to_error(
              make_failure(errc::internal, "task actor got command " +
                                               std::to_string(cmd.kind)));
        }
        return to_error(make_failure(errc::invalid_argument,
                                     "request body does not parse"));
      },
      [=](credit_atom, uint64_t credit) { on_credit(self, credit); },
      [=](flush_atom) { flush(self); },
      [=](settled_atom) {
        auto& st = self->state;
        st.settle_scheduled = false;
        self->send(st.ctx->dispatcher, settled_atom_v, st.settled_delivered,
                   st.settled_returned);
        st.settled_delivered = st.settled_returned = 0;
      },
      [=](join_atom, const device_handle& dev) { join(self, dev); },
      [=](deadline_atom) { on_deadline(self); },
      [=](online_atom, uint64_t execution) {
        auto& st = self->state;
        auto seq = execution & 0xFFFFFFFFu;
        const auto* x = st.task.find(seq);
        if (x == nullptr || is_finished(st.task.status))
          return;
        if (x->state == v1::EXECUTION_STATE_QUEUED) {
          if (st.waiting.erase(seq) > 0) {
            st.ready.insert(seq);
            announce(self);
          }
        } else if (x->state == v1::EXECUTION_STATE_NOTIFIED ||
                   x->state == v1::EXECUTION_STATE_IN_PROGRESS) {
          push(self, seq, true);
        }
      },
      [=](version_atom, uint64_t execution, const std::string& version) {
        auto& st = self->state;
        auto decided = decide_version(st.task, execution & 0xFFFFFFFFu, version,
                                      st.ctx->now());
        if (decided)
          commit_quietly(self, *decided);
      },
      [=](get_atom) { return self->state.task.summary().SerializeAsString(); },
  };
}

} // namespace fota
