/// Tests of the free-space guard: the reserve, its message, probing at most
/// once per interval, and a refusal that lifts by itself.
#include "storage/space_guard.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace {

using fota::errc;
using fota::expected;
using fota::failure;
using fota::storage::format_bytes;
using fota::storage::space_guard;

constexpr uint64_t mib = uint64_t{1} << 20;

/// A probe that answers what the test sets, and counts its calls.
struct fake_disk {
  std::atomic<uint64_t> free{1024 * mib};
  std::atomic<bool> broken{false};
  std::atomic<int> probes{0};

  fota::storage::free_space_probe probe() {
    return [this]() -> expected<uint64_t> {
      ++probes;
      if (broken)
        return failure{errc::unavailable, "statvfs('/data'): I/O error"};
      return free.load();
    };
  }
};

TEST(SpaceGuard, AboveTheReserveWritesGoOn) {
  fake_disk disk;
  space_guard guard{"/data", 64 * mib, disk.probe(),
                    std::chrono::milliseconds{0}};
  EXPECT_FALSE(guard.check());
  disk.free = 64 * mib; // Exactly the reserve is enough.
  EXPECT_FALSE(guard.check());
}

TEST(SpaceGuard, BelowTheReserveRefusesNamingDirectoryFreeSpaceAndReserve) {
  fake_disk disk;
  disk.free = 3 * mib + mib / 10;
  space_guard guard{"/data", 64 * mib, disk.probe(),
                    std::chrono::milliseconds{0}};
  auto refusal = guard.check();
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, errc::resource_exhausted);
  EXPECT_EQ(refusal->message,
            "data directory /data has 3.1 MiB free, below the reserve of 64 "
            "MiB; writes resume when space is freed");
  EXPECT_EQ(guard.last_free(), 3 * mib + mib / 10);
}

TEST(SpaceGuard, RefusalLiftsOnceSpaceIsFreed) {
  fake_disk disk;
  disk.free = mib;
  space_guard guard{"/data", 64 * mib, disk.probe(),
                    std::chrono::milliseconds{0}};
  ASSERT_TRUE(guard.check());
  ASSERT_TRUE(guard.check());
  disk.free = 200 * mib;
  EXPECT_FALSE(guard.check());
}

TEST(SpaceGuard, AFailingProbeRefusesNamingItsError) {
  fake_disk disk;
  disk.broken = true;
  space_guard guard{"/data", 64 * mib, disk.probe(),
                    std::chrono::milliseconds{0}};
  auto refusal = guard.check();
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, errc::resource_exhausted);
  EXPECT_NE(refusal->message.find("cannot tell the free space of data "
                                  "directory /data (statvfs('/data'): I/O "
                                  "error)"),
            std::string::npos)
      << refusal->message;
  disk.broken = false;
  EXPECT_FALSE(guard.check());
}

TEST(SpaceGuard, ProbesAtMostOncePerInterval) {
  fake_disk disk;
  space_guard guard{"/data", 64 * mib, disk.probe(), std::chrono::hours{1}};
  auto after_construction = disk.probes.load();
  EXPECT_EQ(after_construction, 1);
  for (int i = 0; i < 1000; ++i)
    EXPECT_FALSE(guard.check());
  EXPECT_EQ(disk.probes.load(), after_construction);
  // The answer of the last probe holds until the next one.
  disk.free = mib;
  EXPECT_FALSE(guard.check());
}

TEST(SpaceGuard, ProbesAgainAfterTheInterval) {
  fake_disk disk;
  space_guard guard{"/data", 64 * mib, disk.probe(),
                    std::chrono::milliseconds{1}};
  disk.free = mib;
  std::this_thread::sleep_for(std::chrono::milliseconds{5});
  EXPECT_TRUE(guard.check());
}

TEST(SpaceGuard, AZeroReserveNeverRefusesNorProbes) {
  fake_disk disk;
  disk.free = 0;
  space_guard guard{"/data", 0, disk.probe(), std::chrono::milliseconds{0}};
  EXPECT_FALSE(guard.check());
  EXPECT_EQ(disk.probes.load(), 0);
}

TEST(SpaceGuard, TheRealProbeReadsTheFileSystem) {
  auto probe = fota::storage::statvfs_probe("/");
  auto free = probe();
  ASSERT_TRUE(free) << free.error().message;
  auto missing = fota::storage::statvfs_probe("/no/such/dir/for/fota")();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos)
      << missing.error().message;
}

TEST(SpaceGuard, BytesAreFormattedForPeople) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(64 * mib), "64 MiB");
  EXPECT_EQ(format_bytes(256 * mib), "256 MiB");
  EXPECT_EQ(format_bytes(3 * 1024 * mib), "3 GiB");
}

} // namespace
