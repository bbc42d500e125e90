#include "actors/dispatcher.hpp"

#include <algorithm>
#include <climits>

#include <caf/event_based_actor.hpp>

namespace fota {

void dispatcher_state::schedule_wake(timestamp at) {
  if (wake_at && *wake_at <= at)
    return;
  wake_at = at;
  auto delay = at - ctx->now();
  if (delay.count() < 0)
    delay = std::chrono::milliseconds{0};
  self->delayed_send(self, delay, tick_atom_v);
}

void dispatcher_state::dispatch() {
  auto now = ctx->now();
  std::optional<timestamp> wake;
  auto wake_for = [&](timestamp t) {
    if (!wake || t < *wake)
      wake = t;
  };
  bool granted = true;
  while (granted) {
    granted = false;
    if (in_flight >= ctx->limits.max_pushes_in_flight)
      return; // Resumes on settled.
    // Highest priority with demand first; round robin among equals.
    int32_t best = INT32_MIN;
    bool any = false;
    for (const auto& d : tasks)
      if (d.pending > 0) {
        best = std::max(best, d.priority);
        any = true;
      }
    if (!any)
      break; // Nobody waits: no timer either.
    if (ctx->space && ctx->space->check()) {
      wake_for(now + space_recheck);
      break;
    }
    auto available = global.available(now);
    if (available == 0) {
      wake_for(global.next_token(now));
      break;
    }
    for (size_t i = 0; i < tasks.size(); ++i) {
      auto idx = (next + i) % tasks.size();
      auto& d = tasks[idx];
      if (d.pending == 0 || d.priority != best)
        continue;
      if (d.closed_until && now < *d.closed_until) {
        wake_for(*d.closed_until);
        continue;
      }
      d.closed_until.reset();
      if (!d.windows.is_open(now)) {
        d.closed_until = d.windows.next_edge(now);
        if (d.closed_until)
          wake_for(*d.closed_until);
        continue;
      }
      auto own = d.limiter.available(now);
      if (own == 0) {
        wake_for(d.limiter.next_token(now));
        continue;
      }
      auto room = ctx->limits.max_pushes_in_flight - in_flight;
      auto grant = std::min({d.pending, own, available, room, max_grant});
      d.pending = 0; // The task announces again after using the credit.
      d.limiter.take(grant);
      global.take(grant);
      in_flight += grant;
      ctx->metrics->pushes_in_flight.store(static_cast<int64_t>(in_flight),
                                           std::memory_order_relaxed);
      next = idx + 1;
      self->send(d.task, credit_atom_v, grant);
      granted = true;
      break;
    }
  }
  if (wake)
    schedule_wake(*wake);
}

void dispatcher_state::operator()(demand_atom, push_demand& x) {
  auto now = ctx->now();
  auto i = std::find_if(tasks.begin(), tasks.end(),
                        [&](const demand& d) { return d.task == x.task; });
  if (i == tasks.end()) {
    demand d;
    d.task = x.task;
    d.priority = x.priority;
    d.rate = x.rate;
    if (x.schedule.set)
      d.windows = schedule{x.schedule};
    d.limiter = rate_limiter{ramp_rate(x.rate, x.successes), now};
    tasks.push_back(std::move(d));
    self->monitor(x.task);
    i = tasks.end() - 1;
  }
  // The ramp-up follows the task's durable successes, so that a restart
  // resumes at the rate reached before.
  i->limiter.set_rate(ramp_rate(i->rate, x.successes), now);
  i->pending = x.pending;
  dispatch();
}

void dispatcher_state::operator()(settled_atom, const credit_sink& task,
                                  uint64_t pushes, uint64_t unused) {
  in_flight -= std::min(in_flight, pushes + unused);
  ctx->metrics->pushes_in_flight.store(static_cast<int64_t>(in_flight),
                                       std::memory_order_relaxed);
  global.give_back(unused);
  if (unused > 0)
    for (auto& d : tasks)
      if (d.task == task)
        d.limiter.give_back(unused);
  dispatch();
}

void dispatcher_state::operator()(tick_atom) {
  if (wake_at && *wake_at > ctx->now())
    return; // A stale timer; the pending one is later.
  wake_at.reset();
  dispatch();
}

dispatcher_impl::behavior_type
dispatcher_behavior(dispatcher_state::self_pointer self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.global = rate_limiter{st.ctx->limits.max_pushes_per_minute, st.ctx->now()};
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& xs = self->state.tasks;
    xs.erase(std::remove_if(xs.begin(), xs.end(),
                            [&](const auto& d) {
                              return d.task.address() == down.source;
                            }),
             xs.end());
  });
  return {
      [self](demand_atom tag, push_demand& d) { self->state(tag, d); },
      [self](settled_atom tag, const credit_sink& t, uint64_t pushes,
             uint64_t unused) { self->state(tag, t, pushes, unused); },
      [self](tick_atom tag) { self->state(tag); },
  };
}

} // namespace fota
