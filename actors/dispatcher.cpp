#include "actors/dispatcher.hpp"

#include <algorithm>
#include <cmath>

#include <caf/event_based_actor.hpp>

namespace fota {

// -- rate_limiter -------------------------------------------------------------

rate_limiter::rate_limiter(uint32_t per_minute, timestamp now)
  : per_minute_(per_minute),
    tokens_(0),
    capacity_(std::max(1.0, per_minute / 60.0)),
    last_(now) {
  tokens_ = capacity_;
}

uint64_t rate_limiter::available(timestamp now) {
  if (unlimited())
    return UINT64_MAX;
  if (now > last_) {
    auto ms = static_cast<double>((now - last_).count());
    tokens_ = std::min(capacity_, tokens_ + ms * per_minute_ / 60000.0);
    last_ = now;
  }
  return static_cast<uint64_t>(std::floor(tokens_ + 1e-9));
}

void rate_limiter::take(uint64_t n) noexcept {
  if (!unlimited())
    tokens_ -= static_cast<double>(n);
}

void rate_limiter::give_back(uint64_t n) noexcept {
  if (!unlimited())
    tokens_ = std::min(capacity_, tokens_ + static_cast<double>(n));
}

timestamp rate_limiter::next_token(timestamp now) const {
  if (unlimited() || tokens_ >= 1.0)
    return now;
  auto missing = 1.0 - tokens_;
  auto ms = static_cast<int64_t>(std::ceil(missing * 60000.0 / per_minute_));
  return last_ + std::chrono::milliseconds{std::max<int64_t>(ms, 1)};
}

// -- dispatcher ---------------------------------------------------------------

namespace {

using self_ptr = caf::stateful_actor<dispatcher_state>*;

/// Largest credit granted at once, so that tasks interleave.
constexpr uint64_t max_grant = 256;

void schedule_wake(self_ptr self, timestamp at) {
  auto& st = self->state;
  if (st.wake_at && *st.wake_at <= at)
    return;
  st.wake_at = at;
  auto delay = at - st.ctx->now();
  if (delay.count() < 0)
    delay = std::chrono::milliseconds{0};
  self->delayed_send(self, delay, tick_atom_v);
}

/// Picks the next task with demand: highest priority first, round robin
/// among equals.
dispatcher_state::demand* pick(dispatcher_state& st) {
  int32_t best = INT32_MIN;
  for (const auto& d : st.tasks)
    if (d.pending > 0)
      best = std::max(best, d.priority);
  if (best == INT32_MIN)
    return nullptr;
  for (size_t i = 0; i < st.tasks.size(); ++i) {
    auto idx = (st.next + i) % st.tasks.size();
    auto& d = st.tasks[idx];
    if (d.pending > 0 && d.priority == best) {
      st.next = idx + 1;
      return &d;
    }
  }
  return nullptr;
}

void dispatch(self_ptr self) {
  auto& st = self->state;
  auto now = st.ctx->now();
  for (;;) {
    if (st.in_flight >= st.ctx->limits.max_pushes_in_flight)
      return; // Resumes on settled.
    auto* d = pick(st);
    if (d == nullptr)
      return;
    auto tokens = st.global.available(now);
    if (tokens == 0) {
      schedule_wake(self, st.global.next_token(now));
      return;
    }
    auto room = st.ctx->limits.max_pushes_in_flight - st.in_flight;
    auto grant = std::min({d->pending, tokens, room, max_grant});
    d->pending = 0; // The task announces again after using the credit.
    st.global.take(grant);
    st.in_flight += grant;
    self->send(d->task, credit_atom_v, grant);
  }
}

} // namespace

caf::behavior dispatcher_actor(self_ptr self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.global = rate_limiter{st.ctx->limits.max_pushes_per_minute,
                           st.ctx->now()};
  self->set_down_handler([=](const caf::down_msg& down) {
    auto& st = self->state;
    st.tasks.erase(std::remove_if(st.tasks.begin(), st.tasks.end(),
                                  [&](const auto& d) {
                                    return d.task.address() == down.source;
                                  }),
                   st.tasks.end());
  });
  return {
    [=](demand_atom, const caf::actor& task, uint64_t pending,
        int32_t priority) {
      auto& st = self->state;
      auto i = std::find_if(st.tasks.begin(), st.tasks.end(),
                            [&](const auto& d) { return d.task == task; });
      if (i == st.tasks.end()) {
        st.tasks.push_back(dispatcher_state::demand{task, pending, priority});
        self->monitor(task);
      } else {
        i->pending = pending;
        i->priority = priority;
      }
      dispatch(self);
    },
    [=](settled_atom, uint32_t delivered, uint32_t returned) {
      auto& st = self->state;
      auto n = static_cast<uint64_t>(delivered) + returned;
      st.in_flight -= std::min(st.in_flight, n);
      st.global.give_back(returned);
      dispatch(self);
    },
    [=](tick_atom) {
      self->state.wake_at.reset();
      dispatch(self);
    },
  };
}

} // namespace fota
