/// Daily schedule windows in an IANA time zone. No push is sent outside a
/// window; the dispatcher sleeps until the next window edge.
#pragma once

#include "events/clock.hpp"
#include "events/error.hpp"
#include "events/task_spec.hpp"

#include <optional>
#include <vector>

namespace fota {

/// Shortest allowed window.
constexpr uint32_t min_window_minutes = 30;
constexpr uint32_t minutes_per_day = 24 * 60;

/// Checks windows (each at least 30 minutes, no overlap, minutes within the
/// day) and the time zone. Errors name the field.
status validate_schedule(const schedule_spec& schedule);

/// A validated schedule, resolved against the time-zone database.
class schedule {
public:
  /// The whole day, UTC.
  schedule() = default;

  /// @pre `validate_schedule(x)` succeeded.
  explicit schedule(const schedule_spec& x);

  /// Returns whether a push may be sent at `t`.
  bool is_open(timestamp t) const;

  /// The next instant after `t` at which `is_open` changes; nullopt when the
  /// schedule is always open.
  std::optional<timestamp> next_edge(timestamp t) const;

private:
  struct window {
    uint32_t start;
    uint32_t end; // may be <= start: crosses midnight
  };
  std::vector<window> windows_;
  const void* zone_ = nullptr; // const date::time_zone*, null for UTC
};

} // namespace fota
