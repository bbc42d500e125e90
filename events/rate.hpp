/// Push rates: a token bucket over the injected clock, and the exponential
/// ramp-up of a task's rate with its successes. Pure, so that the rules are
/// tested without an actor.
#pragma once

#include "events/clock.hpp"
#include "events/task_spec.hpp"

#include <cstdint>

namespace fota {

/// A token bucket: `per_minute` tokens a minute, holding at most one
/// second's worth (at least one token).
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
/// (0 = unlimited). Derived from the durable count of successes, so that a
/// restart resumes at the rate reached before.
uint32_t ramp_rate(const rate_spec& rate, uint64_t successes);

} // namespace fota
