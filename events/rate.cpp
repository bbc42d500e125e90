#include "events/rate.hpp"

#include <algorithm>
#include <cmath>

namespace fota {

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

timestamp rate_limiter::next_token(timestamp now) const {
  if (unlimited() || tokens_ >= 1.0)
    return now;
  auto missing = 1.0 - tokens_;
  auto ms = static_cast<int64_t>(std::ceil(missing * 60000.0 / per_minute_));
  return last_ + std::chrono::milliseconds{std::max<int64_t>(ms, 1)};
}

uint32_t ramp_rate(const rate_spec& rate, uint64_t successes) {
  if (!rate.has_ramp_up)
    return rate.max_per_minute;
  const auto& r = rate.ramp_up;
  auto steps = r.successes_per_step == 0 ? 0 : successes / r.successes_per_step;
  double x = r.base_per_minute * std::pow(r.factor, static_cast<double>(steps));
  double cap = rate.max_per_minute == 0 ? 1e9 : rate.max_per_minute;
  return static_cast<uint32_t>(std::min(x, cap));
}

} // namespace fota
