/// The dispatcher: grants push credit to tasks with queued executions, in
/// priority order and round robin between tasks of equal priority, under the
/// node's rate limit, each task's own rate (with its ramp-up) and schedule
/// windows, and a bound on pushes in flight. It wakes on timers at window
/// edges and token refills, and never polls.
#pragma once

#include "actors/context.hpp"
#include "events/schedule.hpp"

#include <cstdint>
#include <optional>
#include <vector>

#include <caf/stateful_actor.hpp>

namespace fota {

/// A token bucket over an injected clock: `per_minute` tokens a minute,
/// holding at most one second's worth (at least one token).
class rate_limiter {
public:
  explicit rate_limiter(uint32_t per_minute = 0, timestamp now = {});

  /// Whole tokens available at `now`; unlimited when the rate is 0.
  uint64_t available(timestamp now);

  void take(uint64_t n) noexcept;
  void give_back(uint64_t n) noexcept;

  /// When the next token will be available, after `now`.
  timestamp next_token(timestamp now) const;

  bool unlimited() const noexcept { return per_minute_ == 0; }

  uint32_t per_minute() const noexcept { return per_minute_; }

  /// Changes the rate from `now` on, keeping the tokens already earned.
  void set_rate(uint32_t per_minute, timestamp now);

private:
  uint32_t per_minute_;
  double tokens_;
  double capacity_;
  timestamp last_;
};

/// The push rate of a task after `successes` successes: the ramp-up's base
/// times its factor for every completed step, capped by the task's maximum
/// (0 = unlimited).
uint32_t ramp_rate(const v1::RateLimit& rate, uint64_t successes);

struct dispatcher_state {
  struct demand {
    caf::actor task;
    uint64_t pending = 0;
    int32_t priority = 0;
    v1::RateLimit rate;
    schedule windows;
    rate_limiter limiter;
    uint64_t successes = 0;
  };

  context_ptr ctx;
  std::vector<demand> tasks;
  /// Round-robin position among tasks.
  size_t next = 0;
  uint64_t in_flight = 0;
  rate_limiter global;
  /// When the pending wake-up timer fires, if one is set.
  std::optional<timestamp> wake_at;

  static inline constexpr const char* name = "fota.dispatcher";
};

/// Messages:
/// - `(demand_atom, task, pending, spec bytes)` from tasks with executions
///   to push;
/// - `(settled_atom, delivered, returned)` when pushes are answered or credit
///   is returned;
/// - `(success_atom, task)` for the ramp-up;
/// - `(tick_atom)` from its own timer.
/// Sends `(credit_atom, n)` to tasks.
caf::behavior dispatcher_actor(caf::stateful_actor<dispatcher_state>* self,
                               context_ptr ctx);

} // namespace fota
