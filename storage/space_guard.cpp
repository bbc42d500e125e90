#include "storage/space_guard.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/statvfs.h>
#include <utility>

namespace fota::storage {

free_space_probe statvfs_probe(std::string dir) {
  return [dir = std::move(dir)]() -> expected<uint64_t> {
    struct statvfs st;
    if (::statvfs(dir.c_str(), &st) != 0)
      return failure{errc::unavailable,
                     "statvfs('" + dir + "'): " + std::strerror(errno)};
    return static_cast<uint64_t>(st.f_bavail) *
           static_cast<uint64_t>(st.f_frsize);
  };
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  auto x = static_cast<double>(bytes);
  while (x >= 1024.0 && unit + 1 < std::size(units)) {
    x /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0 || x == static_cast<double>(static_cast<uint64_t>(x)))
    std::snprintf(buf, sizeof(buf), "%.0f %s", x, units[unit]);
  else
    std::snprintf(buf, sizeof(buf), "%.1f %s", x, units[unit]);
  return buf;
}

space_guard::space_guard(std::string dir, uint64_t reserve,
                         free_space_probe probe,
                         std::chrono::milliseconds probe_interval)
  : dir_(std::move(dir)), reserve_(reserve), probe_(std::move(probe)),
    interval_(probe_interval) {
  if (!probe_)
    probe_ = statvfs_probe(dir_);
  if (reserve_ > 0) {
    std::lock_guard<std::mutex> guard{probing_};
    this->probe(std::chrono::steady_clock::now());
  }
}

void space_guard::probe(std::chrono::steady_clock::time_point now) {
  auto res = probe_();
  if (res) {
    free_ = *res;
    verdict_ = *res < reserve_ ? verdict::below_reserve : verdict::enough;
  } else {
    {
      std::lock_guard<std::mutex> guard{error_mtx_};
      error_ = res.error().message;
    }
    verdict_ = verdict::probe_failed;
  }
  next_probe_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       (now + interval_).time_since_epoch())
                       .count();
}

status space_guard::check() {
  if (reserve_ == 0)
    return std::nullopt;
  auto now = std::chrono::steady_clock::now();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                now.time_since_epoch())
                .count();
  if (ns >= next_probe_ns_.load()) {
    std::unique_lock<std::mutex> guard{probing_, std::try_to_lock};
    if (guard.owns_lock() && ns >= next_probe_ns_.load())
      probe(now);
  }
  switch (verdict_.load()) {
  case verdict::enough:
    return std::nullopt;
  case verdict::below_reserve:
    return failure{errc::resource_exhausted,
                   "data directory " + dir_ + " has " +
                       format_bytes(free_.load()) +
                       " free, below the reserve of " + format_bytes(reserve_) +
                       "; writes resume when space is freed"};
  case verdict::probe_failed: {
    std::lock_guard<std::mutex> guard{error_mtx_};
    return failure{errc::resource_exhausted,
                   "cannot tell the free space of data directory " + dir_ +
                       " (" + error_ +
                       "); writes resume once it can be read again"};
  }
  }
  return std::nullopt;
}

} // namespace fota::storage
