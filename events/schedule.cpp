#include "events/schedule.hpp"

#include <string>

#include <date/tz.h>

namespace fota {

namespace {

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

uint32_t duration_of(uint32_t start, uint32_t end) {
  return end > start ? end - start : end + minutes_per_day - start;
}

std::string hhmm(uint32_t minute) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%02u:%02u", minute / 60, minute % 60);
  return buf;
}

const date::time_zone* find_zone(const std::string& name) {
  if (name.empty() || name == "UTC" || name == "Etc/UTC")
    return nullptr;
  return date::locate_zone(name);
}

} // namespace

status validate_schedule(const schedule_spec& x) {
  if (!x.time_zone.empty()) {
    try {
      find_zone(x.time_zone);
    } catch (const std::exception&) {
      return invalid("schedule.time_zone",
                     "unknown time zone \"" + x.time_zone + "\"");
    }
  }
  const auto& ws = x.windows;
  for (size_t i = 0; i < ws.size(); ++i) {
    auto field = "schedule.windows[" + std::to_string(i) + "]";
    const auto& w = ws[i];
    if (w.start_minute >= minutes_per_day)
      return invalid(field + ".start_minute", "must be below 1440");
    if (w.end_minute > minutes_per_day)
      return invalid(field + ".end_minute", "must be at most 1440");
    auto end = w.end_minute % minutes_per_day;
    if (w.end_minute == w.start_minute)
      return invalid(field, "is empty; the whole day is the default");
    auto d = duration_of(w.start_minute, end);
    if (d < min_window_minutes)
      return invalid(field, hhmm(w.start_minute) + "-" + hhmm(end) + " lasts " +
                                std::to_string(d) +
                                " minutes, at least 30 are required");
  }
  for (size_t i = 0; i < ws.size(); ++i) {
    for (size_t j = i + 1; j < ws.size(); ++j) {
      auto as = ws[i].start_minute;
      auto ad = duration_of(as, ws[i].end_minute % minutes_per_day);
      auto bs = ws[j].start_minute;
      auto bd = duration_of(bs, ws[j].end_minute % minutes_per_day);
      auto b_after_a = (bs + minutes_per_day - as) % minutes_per_day;
      auto a_after_b = (as + minutes_per_day - bs) % minutes_per_day;
      if (b_after_a < ad || a_after_b < bd)
        return invalid("schedule.windows", "windows " + std::to_string(i) +
                                               " and " + std::to_string(j) +
                                               " overlap");
    }
  }
  return std::nullopt;
}

schedule::schedule(const schedule_spec& x) {
  for (const auto& w : x.windows)
    windows_.push_back(window{w.start_minute, w.end_minute % minutes_per_day});
  zone_ = find_zone(x.time_zone);
}

bool schedule::is_open(timestamp t) const {
  if (windows_.empty())
    return true;
  uint32_t minute;
  if (zone_ == nullptr) {
    auto since_midnight = t - date::floor<date::days>(t);
    minute = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::minutes>(since_midnight)
            .count());
  } else {
    auto local = static_cast<const date::time_zone*>(zone_)->to_local(t);
    auto since_midnight = local - date::floor<date::days>(local);
    minute = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::minutes>(since_midnight)
            .count());
  }
  for (const auto& w : windows_) {
    auto offset = (minute + minutes_per_day - w.start) % minutes_per_day;
    if (offset < duration_of(w.start, w.end))
      return true;
  }
  return false;
}

std::optional<timestamp> schedule::next_edge(timestamp t) const {
  if (windows_.empty())
    return std::nullopt;
  // Edges lie on local minute boundaries, and local minute boundaries are
  // UTC minute boundaries for every zone in use today (offsets are whole
  // minutes). Walking minute by minute is exact across DST changes, and at
  // most two days long.
  bool open = is_open(t);
  auto m = date::ceil<std::chrono::minutes>(t);
  if (m == t)
    m += std::chrono::minutes{1};
  for (int i = 0; i < 2 * 24 * 60 + 120; ++i, m += std::chrono::minutes{1}) {
    timestamp candidate{std::chrono::duration_cast<std::chrono::milliseconds>(
        m.time_since_epoch())};
    if (is_open(candidate) != open)
      return candidate;
  }
  return std::nullopt;
}

} // namespace fota
