/// Tests of `fotactl task curve`'s binning: a task's history entries become
/// per-second bins of pushes, successes and failures, written as the CSV
/// the fleet benchmark's curves use.
#include "apps/rollout_curve.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;

v1::HistoryEntry entry(int64_t time_ms, const std::string& kind) {
  v1::HistoryEntry e;
  e.set_time_ms(time_ms);
  e.set_kind(kind);
  return e;
}

TEST(RolloutCurve, EventsAreBinnedPerSecondFromTheTasksCreation) {
  const int64_t t0 = 1'772'352'000'500;
  std::vector<v1::HistoryEntry> xs{
      entry(t0, "TaskCreated"),
      entry(t0, "DevicesEnrolled"),
      entry(t0 + 10, "ExecutionNotified"),
      entry(t0 + 999, "ExecutionNotified"),
      entry(t0 + 1000, "ExecutionNotified"),
      entry(t0 + 1500, "ExecutionStarted"),
      entry(t0 + 1999, "ExecutionSucceeded"),
      // Second 2 is empty; it still has a bin.
      entry(t0 + 3000, "ExecutionFailed"),
      entry(t0 + 3001, "ExecutionTimedOut"),
      entry(t0 + 3002, "ExecutionRequeued"),
      entry(t0 + 3500, "ExecutionSucceeded"),
  };
  auto bins = curve::bin_rollout(xs);
  ASSERT_EQ(bins.size(), 4u);
  EXPECT_EQ(bins[0].second, 0);
  EXPECT_EQ(bins[0].pushes, 2u);
  EXPECT_EQ(bins[0].successes, 0u);
  EXPECT_EQ(bins[1].pushes, 1u);
  EXPECT_EQ(bins[1].successes, 1u);
  EXPECT_EQ(bins[2].pushes + bins[2].successes + bins[2].failures, 0u);
  EXPECT_EQ(bins[3].failures, 2u);
  EXPECT_EQ(bins[3].successes, 1u);
  EXPECT_EQ(bins[3].total_pushes, 3u);
  EXPECT_EQ(bins[3].total_successes, 2u);
  EXPECT_EQ(bins[3].total_failures, 2u);
  EXPECT_EQ(curve::to_csv(bins),
            "t_s,pushes_per_s,successes_per_s,failures_per_s,pushes,"
            "successes,failures\n"
            "0,2,0,0,2,0,0\n"
            "1,1,1,0,3,1,0\n"
            "2,0,0,0,3,1,0\n"
            "3,0,1,2,3,2,2\n");
}

TEST(RolloutCurve, AnEntryStampedBeforeTheCreationCountsInTheFirstSecond) {
  std::vector<v1::HistoryEntry> xs{entry(5000, "TaskCreated"),
                                   entry(4000, "ExecutionNotified")};
  auto bins = curve::bin_rollout(xs);
  ASSERT_EQ(bins.size(), 1u);
  EXPECT_EQ(bins[0].pushes, 1u);
  EXPECT_TRUE(curve::bin_rollout({}).empty());
}

TEST(RolloutCurve, TheGnuplotProgramIsTheSharedOne) {
  std::string gp = curve::gnuplot_program();
  // The same program as scripts/rollout_curve.gp, embedded at build time.
  EXPECT_NE(gp.find("successes/s"), std::string::npos);
  EXPECT_NE(gp.find("if (rss)"), std::string::npos);
  EXPECT_EQ(curve::gnuplot_quote("it's"), "'it''s'");
}

} // namespace
