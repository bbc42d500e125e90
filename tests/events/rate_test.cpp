/// Tests of push rates: the token bucket over an injected clock and the
/// ramp-up, which follows the durable count of successes so that a restart
/// resumes at the rate it had reached.
#include "events/codec.hpp"
#include "events/rate.hpp"
#include "tests/events/test_support.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace std::chrono_literals;
using test::at;

rate_spec ramp(uint32_t base, double factor, uint32_t step, uint32_t cap) {
  rate_spec r;
  r.max_per_minute = cap;
  r.has_ramp_up = true;
  r.ramp_up = ramp_up_spec{base, factor, step};
  return r;
}

TEST(PushRates, RampUpFollowsTheDurableSuccesses) {
  auto r = ramp(10, 2.0, 50, 600);
  EXPECT_EQ(ramp_rate(r, 0), 10u);
  EXPECT_EQ(ramp_rate(r, 49), 10u);
  EXPECT_EQ(ramp_rate(r, 50), 20u);
  EXPECT_EQ(ramp_rate(r, 149), 40u);
  EXPECT_EQ(ramp_rate(r, 200), 160u);
  // Capped by the task's maximum.
  EXPECT_EQ(ramp_rate(r, 5000), 600u);
  // Without a maximum, capped only by the range of the rate.
  EXPECT_EQ(ramp_rate(ramp(10, 10.0, 1, 0), 100), 1'000'000'000u);
  // Without a ramp-up, the maximum (0: unlimited).
  rate_spec flat;
  flat.max_per_minute = 120;
  EXPECT_EQ(ramp_rate(flat, 1000), 120u);
  EXPECT_EQ(ramp_rate(rate_spec{}, 1000), 0u);
}

TEST(PushRates, RateAfterARestartIsTheRateReachedBefore) {
  // The rate is a function of the count of successes the log holds, so a
  // node replaying 150 successes resumes at the rate of 150 successes.
  auto r = ramp(10, 2.0, 50, 0);
  uint64_t successes_before_crash = 150;
  uint64_t successes_after_replay = successes_before_crash;
  EXPECT_EQ(ramp_rate(r, successes_after_replay), 80u);
}

TEST(PushRates, BucketHoldsOneSecondOfTokensAndRefillsOverTime) {
  rate_limiter l{600, at()}; // 10 a second
  EXPECT_EQ(l.available(at()), 10u);
  l.take(10);
  EXPECT_EQ(l.available(at()), 0u);
  EXPECT_EQ(l.next_token(at()), at(100));
  EXPECT_EQ(l.available(at(99)), 0u);
  EXPECT_EQ(l.available(at(100)), 1u);
  // It never holds more than a second's worth.
  EXPECT_EQ(l.available(at(60'000)), 10u);
  l.take(3);
  l.give_back(5);
  EXPECT_EQ(l.available(at(60'000)), 10u);
}

TEST(PushRates, SlowRateHoldsAtLeastOneToken) {
  rate_limiter l{2, at()}; // one every 30 s
  EXPECT_EQ(l.available(at()), 1u);
  l.take(1);
  EXPECT_EQ(l.next_token(at()), at(30'000));
  EXPECT_EQ(l.available(at(29'999)), 0u);
  EXPECT_EQ(l.available(at(30'000)), 1u);
}

TEST(PushRates, ZeroIsUnlimitedAndChangingTheRateKeepsTokensEarned) {
  rate_limiter unlimited{0, at()};
  EXPECT_TRUE(unlimited.unlimited());
  EXPECT_EQ(unlimited.available(at()), UINT64_MAX);
  rate_limiter l{60, at()}; // one a second
  l.take(1);
  EXPECT_EQ(l.available(at(500)), 0u);
  l.set_rate(600, at(500)); // half a token earned at the old rate
  EXPECT_EQ(l.per_minute(), 600u);
  EXPECT_EQ(l.available(at(550)), 1u);
}

} // namespace
