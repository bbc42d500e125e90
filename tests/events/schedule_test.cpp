/// Tests of schedule windows: the default (always open), windows [start, end)
/// in UTC, windows crossing midnight, the exact next edge, and windows in
/// time zones on the days their clocks change.
#include "events/codec.hpp"
#include "events/schedule.hpp"
#include "tests/events/test_support.hpp"

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>

#include <date/date.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace std::chrono_literals;
using test::utc;

/// A validated schedule with `windows` as (start, end) minutes in `zone`.
schedule
make_schedule(const std::string& zone,
              std::initializer_list<std::pair<uint32_t, uint32_t>> windows) {
  v1::Schedule x;
  x.set_time_zone(zone);
  for (auto [start, end] : windows) {
    auto* w = x.add_windows();
    w->set_start_minute(start);
    w->set_end_minute(end);
  }
  auto spec = from_proto(x);
  auto err = validate_schedule(spec);
  EXPECT_FALSE(err.has_value()) << err->message;
  return schedule{spec};
}

constexpr uint32_t hh(uint32_t hours) {
  return hours * 60;
}

std::string show(std::optional<timestamp> t) {
  return t ? date::format("%FT%TZ", *t) : std::string{"never"};
}

/// Checks that `next_edge(from)` is `expected`, printing instants readably.
#define EXPECT_NEXT_EDGE(s, from, expected)                                    \
  EXPECT_EQ(show((s).next_edge(from)), show(expected))

TEST(Schedule, DefaultIsAlwaysOpenWithoutEdges) {
  schedule whole_day;
  for (auto t : {utc(2026, 1, 1), utc(2026, 3, 29, 1, 30),
                 utc(2026, 12, 31, 23, 59, 59)}) {
    EXPECT_TRUE(whole_day.is_open(t));
    EXPECT_EQ(whole_day.next_edge(t), std::nullopt);
  }
  // A time zone without windows is the whole day too.
  auto zoned = make_schedule("Europe/Berlin", {});
  EXPECT_TRUE(zoned.is_open(utc(2026, 3, 29, 1, 30)));
  EXPECT_EQ(zoned.next_edge(utc(2026, 3, 29, 1, 30)), std::nullopt);
}

TEST(Schedule, WindowIsOpenFromStartUntilBeforeEnd) {
  auto s = make_schedule("", {{hh(9), hh(17)}});
  auto day = utc(2026, 5, 4);
  EXPECT_FALSE(s.is_open(day + 9h - 1ms));
  EXPECT_TRUE(s.is_open(day + 9h));
  EXPECT_TRUE(s.is_open(day + 12h));
  EXPECT_TRUE(s.is_open(day + 17h - 1ms));
  EXPECT_FALSE(s.is_open(day + 17h));
  EXPECT_FALSE(s.is_open(day));
  EXPECT_FALSE(s.is_open(day + 24h - 1ms));
}

TEST(Schedule, NextEdgeIsTheExactOpeningOrClosingInstant) {
  auto s = make_schedule("UTC", {{hh(9), hh(17)}});
  auto day = utc(2026, 5, 4);
  EXPECT_NEXT_EDGE(s, day, day + 9h);
  EXPECT_NEXT_EDGE(s, day + 9h - 1ms, day + 9h);
  // From an edge, the next one.
  EXPECT_NEXT_EDGE(s, day + 9h, day + 17h);
  EXPECT_NEXT_EDGE(s, day + 12h + 34min + 56789ms, day + 17h);
  EXPECT_NEXT_EDGE(s, day + 17h, day + 24h + 9h);
  EXPECT_NEXT_EDGE(s, day + 23h + 59min, day + 24h + 9h);
}

TEST(Schedule, NextEdgeWithSeveralWindows) {
  auto s = make_schedule("", {{hh(10), hh(11)}, {hh(1), hh(2)}});
  auto day = utc(2026, 5, 4);
  EXPECT_NEXT_EDGE(s, day, day + 1h);
  EXPECT_NEXT_EDGE(s, day + 1h, day + 2h);
  EXPECT_NEXT_EDGE(s, day + 2h, day + 10h);
  EXPECT_NEXT_EDGE(s, day + 10h, day + 11h);
  EXPECT_NEXT_EDGE(s, day + 11h, day + 25h);
  // Adjacent windows have no edge between them.
  auto adjacent = make_schedule("", {{hh(9), hh(10)}, {hh(10), hh(11)}});
  EXPECT_TRUE(adjacent.is_open(day + 10h));
  EXPECT_NEXT_EDGE(adjacent, day + 9h, day + 11h);
}

TEST(Schedule, WindowMayCrossMidnight) {
  auto s = make_schedule("", {{hh(22), hh(2)}});
  auto day = utc(2026, 5, 4);
  EXPECT_FALSE(s.is_open(day + 22h - 1ms));
  EXPECT_TRUE(s.is_open(day + 22h));
  EXPECT_TRUE(s.is_open(day + 24h - 1ms));
  EXPECT_TRUE(s.is_open(day + 24h));
  EXPECT_TRUE(s.is_open(day + 26h - 1ms));
  EXPECT_FALSE(s.is_open(day + 26h));
  EXPECT_TRUE(s.is_open(day + 1h)); // the window that began the day before
  EXPECT_FALSE(s.is_open(day + 12h));
  EXPECT_NEXT_EDGE(s, day + 12h, day + 22h);
  EXPECT_NEXT_EDGE(s, day + 22h, day + 26h);
  EXPECT_NEXT_EDGE(s, day + 23h, day + 26h);
  EXPECT_NEXT_EDGE(s, day + 26h, day + 46h);
}

TEST(Schedule, WindowEndingAtMidnight) {
  auto s = make_schedule("", {{hh(23), hh(24)}});
  auto day = utc(2026, 5, 4);
  EXPECT_TRUE(s.is_open(day + 24h - 1ms));
  EXPECT_FALSE(s.is_open(day + 24h));
  EXPECT_NEXT_EDGE(s, day + 23h, day + 24h);
}

// Europe/Berlin is CET (UTC+1) in winter and CEST (UTC+2) in summer.
//
// Spring, Sunday 2026-03-29: at 02:00 CET (01:00Z) the clocks jump to 03:00
// CEST, so local 02:00-02:59 does not exist that day. The window 01:00-04:00
// local therefore opens at 01:00 CET = 00:00Z and closes at 04:00 CEST =
// 02:00Z: it is open for only two real hours. The day before (CET) it is
// 00:00Z-03:00Z on 03-28; the day after (CEST) it opens at 23:00Z on 03-29.
//
// Autumn, Sunday 2026-10-25: at 03:00 CEST (01:00Z) the clocks go back to
// 02:00 CET, so local 02:00-02:59 happens twice. The window opens at 01:00
// CEST = 23:00Z on 10-24 and closes at 04:00 CET = 03:00Z: open for four real
// hours. The day after (CET) it opens at 00:00Z on 10-26.
TEST(Schedule, BerlinWindowOnSpringForwardDay) {
  auto s = make_schedule("Europe/Berlin", {{hh(1), hh(4)}});
  EXPECT_TRUE(s.is_open(utc(2026, 3, 28, 0, 0)));  // 01:00 CET
  EXPECT_FALSE(s.is_open(utc(2026, 3, 28, 3, 0))); // 04:00 CET
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 0, 0));
  EXPECT_FALSE(s.is_open(utc(2026, 3, 28, 23, 59))); // 00:59 CET
  EXPECT_TRUE(s.is_open(utc(2026, 3, 29, 0, 0)));    // 01:00 CET
  EXPECT_TRUE(s.is_open(utc(2026, 3, 29, 0, 59)));   // 01:59 CET
  EXPECT_TRUE(s.is_open(utc(2026, 3, 29, 1, 0)));    // 03:00 CEST
  EXPECT_TRUE(s.is_open(utc(2026, 3, 29, 1, 59)));   // 03:59 CEST
  EXPECT_FALSE(s.is_open(utc(2026, 3, 29, 2, 0)));   // 04:00 CEST
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0));
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 23, 0));
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 29, 23, 0), utc(2026, 3, 30, 2, 0));
}

TEST(Schedule, BerlinWindowOnFallBackDay) {
  auto s = make_schedule("Europe/Berlin", {{hh(1), hh(4)}});
  EXPECT_NEXT_EDGE(s, utc(2026, 10, 24, 12), utc(2026, 10, 24, 23, 0));
  EXPECT_FALSE(s.is_open(utc(2026, 10, 24, 22, 59))); // 00:59 CEST
  EXPECT_TRUE(s.is_open(utc(2026, 10, 24, 23, 0)));   // 01:00 CEST
  EXPECT_TRUE(s.is_open(utc(2026, 10, 25, 0, 30)));   // 02:30 CEST
  EXPECT_TRUE(s.is_open(utc(2026, 10, 25, 1, 30)));   // 02:30 CET
  EXPECT_TRUE(s.is_open(utc(2026, 10, 25, 2, 59)));   // 03:59 CET
  EXPECT_FALSE(s.is_open(utc(2026, 10, 25, 3, 0)));   // 04:00 CET
  EXPECT_NEXT_EDGE(s, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0));
  EXPECT_NEXT_EDGE(s, utc(2026, 10, 25, 3, 0), utc(2026, 10, 26, 0, 0));
}

// A window inside the hour that spring skips never opens that day, and one
// inside the hour that autumn repeats stays open through both copies.
TEST(Schedule, BerlinWindowInsideTheChangedHour) {
  auto s = make_schedule("Europe/Berlin", {{hh(2), hh(3)}});
  // 03-28 (CET): 02:00-03:00 CET = 01:00Z-02:00Z, long past at 12:00Z.
  // 03-29: 02:00-03:00 local does not exist. 03-30 (CEST): 00:00Z.
  EXPECT_FALSE(s.is_open(utc(2026, 3, 29, 0, 59))); // 01:59 CET
  EXPECT_FALSE(s.is_open(utc(2026, 3, 29, 1, 0)));  // 03:00 CEST
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 28, 12), utc(2026, 3, 30, 0, 0));
  // 10-25: 02:00 CEST = 00:00Z, through 02:59 CET, closing at 03:00 CET =
  // 02:00Z.
  EXPECT_NEXT_EDGE(s, utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 0));
  EXPECT_TRUE(s.is_open(utc(2026, 10, 25, 0, 59))); // 02:59 CEST
  EXPECT_TRUE(s.is_open(utc(2026, 10, 25, 1, 0)));  // 02:00 CET
  EXPECT_NEXT_EDGE(s, utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0));
}

// America/New_York is EST (UTC-5) in winter and EDT (UTC-4) in summer.
//
// Spring, Sunday 2026-03-08: at 02:00 EST (07:00Z) the clocks jump to 03:00
// EDT. The window 01:00-04:00 opens at 01:00 EST = 06:00Z and closes at 04:00
// EDT = 08:00Z (two real hours). The day before (EST) it is 06:00Z-09:00Z;
// the day after (EDT) it opens at 05:00Z.
//
// Autumn, Sunday 2026-11-01: at 02:00 EDT (06:00Z) the clocks go back to
// 01:00 EST. The window opens at 01:00 EDT = 05:00Z and closes at 04:00 EST =
// 09:00Z (four real hours). The day after (EST) it opens at 06:00Z.
TEST(Schedule, NewYorkWindowOnClockChangeDays) {
  auto s = make_schedule("America/New_York", {{hh(1), hh(4)}});
  EXPECT_TRUE(s.is_open(utc(2026, 3, 7, 6, 0)));  // 01:00 EST
  EXPECT_FALSE(s.is_open(utc(2026, 3, 7, 9, 0))); // 04:00 EST
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 7, 9, 0), utc(2026, 3, 8, 6, 0));
  EXPECT_TRUE(s.is_open(utc(2026, 3, 8, 6, 59))); // 01:59 EST
  EXPECT_TRUE(s.is_open(utc(2026, 3, 8, 7, 0)));  // 03:00 EDT
  EXPECT_FALSE(s.is_open(utc(2026, 3, 8, 8, 0))); // 04:00 EDT
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 8, 0));
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 8, 8, 0), utc(2026, 3, 9, 5, 0));

  EXPECT_NEXT_EDGE(s, utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 0));
  EXPECT_TRUE(s.is_open(utc(2026, 11, 1, 5, 30))); // 01:30 EDT
  EXPECT_TRUE(s.is_open(utc(2026, 11, 1, 6, 30))); // 01:30 EST
  EXPECT_TRUE(s.is_open(utc(2026, 11, 1, 8, 59))); // 03:59 EST
  EXPECT_FALSE(s.is_open(utc(2026, 11, 1, 9, 0))); // 04:00 EST
  EXPECT_NEXT_EDGE(s, utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 9, 0));
  EXPECT_NEXT_EDGE(s, utc(2026, 11, 1, 9, 0), utc(2026, 11, 2, 6, 0));
}

// A window 22:00-02:00 that opens on Saturday 2026-03-07 at 22:00 EST =
// 03:00Z on 03-08 would close at 02:00 local, which does not exist: local
// time jumps from 01:59:59 EST (06:59:59Z) to 03:00 EDT (07:00Z), so the
// window closes at 07:00Z.
TEST(Schedule, NewYorkMidnightWindowClosingInTheSkippedHour) {
  auto s = make_schedule("America/New_York", {{hh(22), hh(2)}});
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 7, 12), utc(2026, 3, 8, 3, 0));
  EXPECT_TRUE(s.is_open(utc(2026, 3, 8, 6, 59, 59)));
  EXPECT_FALSE(s.is_open(utc(2026, 3, 8, 7, 0)));
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0));
  // Sunday 03-08 22:00 EDT = 03-09 02:00Z.
  EXPECT_NEXT_EDGE(s, utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 2, 0));
}

} // namespace
