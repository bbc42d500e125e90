#include "actors/dispatcher.hpp"

#include <algorithm>
#include <cmath>

#include <caf/event_based_actor.hpp>

namespace fota {

// -- rate_limiter -------------------------------------------------------------

rate_limiter::rate_limiter(uint32_t per_minute, timestamp now)
  : per_minute_(per_minute), tokens_(0),
    capacity_(std::max(1.0, per_minute / 60.0)), last_(now) {
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

void rate_limiter::set_rate(uint32_t per_minute, timestamp now) {
  if (per_minute == per_minute_)
    return;
  available(now);
  per_minute_ = per_minute;
  capacity_ = std::max(1.0, per_minute / 60.0);
  tokens_ = std::min(tokens_, capacity_);
  last_ = now;
}

uint32_t ramp_rate(const v1::RateLimit& rate, uint64_t successes) {
  if (!rate.has_ramp_up())
    return rate.max_per_minute();
  const auto& r = rate.ramp_up();
  auto steps =
      r.successes_per_step() == 0 ? 0 : successes / r.successes_per_step();
  double x =
      r.base_per_minute() * std::pow(r.factor(), static_cast<double>(steps));
  double cap = rate.max_per_minute() == 0 ? 1e9 : rate.max_per_minute();
  return static_cast<uint32_t>(std::min(x, cap));
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

/// Grants credit to tasks until nothing more can be granted now, and sets a
/// timer for the earliest moment a blocked task can go on.
void dispatch(self_ptr self) {
  auto& st = self->state;
  auto now = st.ctx->now();
  std::optional<timestamp> wake;
  auto wake_at = [&](timestamp t) {
    if (!wake || t < *wake)
      wake = t;
  };
  bool granted = true;
  while (granted) {
    granted = false;
    if (st.in_flight >= st.ctx->limits.max_pushes_in_flight)
      return; // Resumes on settled.
    // Highest priority with demand first; round robin among equals.
    int32_t best = INT32_MIN;
    for (const auto& d : st.tasks)
      if (d.pending > 0)
        best = std::max(best, d.priority);
    if (best == INT32_MIN)
      break; // Nobody waits: no timer either.
    auto global = st.global.available(now);
    if (global == 0) {
      wake_at(st.global.next_token(now));
      break;
    }
    for (size_t i = 0; i < st.tasks.size(); ++i) {
      auto idx = (st.next + i) % st.tasks.size();
      auto& d = st.tasks[idx];
      if (d.pending == 0 || d.priority != best)
        continue;
      if (!d.windows.is_open(now)) {
        if (auto edge = d.windows.next_edge(now))
          wake_at(*edge);
        continue;
      }
      auto own = d.limiter.available(now);
      if (own == 0) {
        wake_at(d.limiter.next_token(now));
        continue;
      }
      auto room = st.ctx->limits.max_pushes_in_flight - st.in_flight;
      auto grant = std::min({d.pending, own, global, room, max_grant});
      d.pending = 0; // The task announces again after using the credit.
      d.limiter.take(grant);
      st.global.take(grant);
      st.in_flight += grant;
      st.next = idx + 1;
      self->send(d.task, credit_atom_v, grant);
      granted = true;
      break;
    }
  }
  if (wake)
    schedule_wake(self, *wake);
}

} // namespace

caf::behavior dispatcher_actor(self_ptr self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.global = rate_limiter{st.ctx->limits.max_pushes_per_minute, st.ctx->now()};
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
          const std::string& spec_bytes) {
        auto& st = self->state;
        auto i = std::find_if(st.tasks.begin(), st.tasks.end(),
                              [&](const auto& d) { return d.task == task; });
        if (i == st.tasks.end()) {
          v1::TaskSpec spec;
          spec.ParseFromString(spec_bytes);
          dispatcher_state::demand d;
          d.task = task;
          d.priority = spec.priority();
          d.rate = spec.rate();
          if (spec.has_schedule())
            d.windows = schedule{spec.schedule()};
          d.limiter = rate_limiter{ramp_rate(d.rate, 0), st.ctx->now()};
          st.tasks.push_back(std::move(d));
          self->monitor(task);
          i = st.tasks.end() - 1;
        }
        i->pending = pending;
        dispatch(self);
      },
      [=](success_atom, const caf::actor& task) {
        auto& st = self->state;
        for (auto& d : st.tasks)
          if (d.task == task) {
            ++d.successes;
            d.limiter.set_rate(ramp_rate(d.rate, d.successes), st.ctx->now());
          }
        dispatch(self); // A faster rate may allow a push before the timer.
      },
      [=](settled_atom, uint32_t delivered, uint32_t returned) {
        auto& st = self->state;
        auto n = static_cast<uint64_t>(delivered) + returned;
        st.in_flight -= std::min(st.in_flight, n);
        st.global.give_back(returned);
        if (returned > 0) {
          auto sender = self->current_sender();
          for (auto& d : st.tasks)
            if (d.task.address() == sender)
              d.limiter.give_back(returned);
        }
        dispatch(self);
      },
      [=](tick_atom) {
        auto& st = self->state;
        if (st.wake_at && *st.wake_at > st.ctx->now())
          return; // A stale timer; the pending one is later.
        st.wake_at.reset();
        dispatch(self);
      },
  };
}

} // namespace fota
