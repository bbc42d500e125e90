/// Time for the domain. Every rule that depends on time (schedule windows,
/// rate limits, timeouts, retries) reads it from an injected `clock`, so tests
/// step through time without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace fota {

/// Wall-clock time with millisecond resolution (UTC).
using timestamp = std::chrono::time_point<std::chrono::system_clock,
                                          std::chrono::milliseconds>;

/// Milliseconds since the UNIX epoch, as stored in events and on the wire.
inline int64_t to_millis(timestamp x) noexcept {
  return x.time_since_epoch().count();
}

inline timestamp from_millis(int64_t x) noexcept {
  return timestamp{std::chrono::milliseconds{x}};
}

/// A source of wall-clock time.
class clock {
public:
  virtual ~clock() = default;

  virtual timestamp now() const noexcept = 0;
};

/// Reads the system clock.
class system_clock final : public clock {
public:
  timestamp now() const noexcept override {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
  }
};

/// A clock that only moves when told to; for tests and replays.
class manual_clock final : public clock {
public:
  explicit manual_clock(timestamp start = timestamp{})
    : now_(to_millis(start)) {}

  timestamp now() const noexcept override {
    return from_millis(now_.load(std::memory_order_relaxed));
  }

  void set(timestamp x) noexcept { now_.store(to_millis(x)); }

  void advance(std::chrono::milliseconds d) noexcept { now_ += d.count(); }

private:
  std::atomic<int64_t> now_;
};

} // namespace fota
