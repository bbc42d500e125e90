/// A histogram that actors on any thread observe into without a lock, for
/// the latencies and sizes a node measures (`node_metrics`).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace fota {

/// A relaxed atomic count per bucket and an atomic sum. A scrape reads the
/// buckets one by one, so it may see an observation in the count and not
/// yet in the sum; the next scrape sees both.
class histogram {
public:
  /// `bounds`: the inclusive upper bounds of the buckets, ascending, in the
  /// unit of the observations; `unit` converts that unit to the one
  /// exposed (1e-6 for microseconds exposed as seconds).
  explicit histogram(std::vector<uint64_t> bounds, double unit = 1.0)
    : bounds_(std::move(bounds)), unit_(unit),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i)
      counts_[i].store(0, std::memory_order_relaxed);
  }

  void observe(uint64_t x) noexcept {
    size_t i = 0;
    while (i < bounds_.size() && x > bounds_[i])
      ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(x, std::memory_order_relaxed);
  }

  /// The buckets as a scrape exposes them: cumulative counts, the last one
  /// (+Inf) the total.
  struct reading {
    std::vector<uint64_t> cumulative;
    uint64_t sum = 0;
  };

  reading read() const {
    reading r;
    r.cumulative.resize(bounds_.size() + 1);
    uint64_t total = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      total += counts_[i].load(std::memory_order_relaxed);
      r.cumulative[i] = total;
    }
    r.sum = sum_.load(std::memory_order_relaxed);
    return r;
  }

  const std::vector<uint64_t>& bounds() const noexcept { return bounds_; }

  double unit() const noexcept { return unit_; }

private:
  std::vector<uint64_t> bounds_;
  double unit_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> sum_{0};
};

} // namespace fota
