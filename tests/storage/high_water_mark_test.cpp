/// Tests of the durable high-water mark: it survives reopening, only moves
/// forward, and a torn write of one slot leaves the previous mark.
#include "storage/high_water_mark.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace {

using fota::errc;
using fota::sequence_number;
using fota::storage::high_water_mark;
namespace fs = std::filesystem;

class temp_dir {
public:
  temp_dir() {
    auto pattern = (fs::temp_directory_path() / "fota-hwm-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    path_ = pattern;
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  std::string str() const { return path_.string(); }

  fs::path file() const { return path_ / high_water_mark::file_name; }

private:
  fs::path path_;
};

TEST(HighWaterMark, ANewDirectoryHasNoMark) {
  temp_dir dir;
  auto read_only = high_water_mark::open(dir.str(), false);
  ASSERT_TRUE(read_only) << read_only.error().message;
  EXPECT_FALSE(read_only->value());
  EXPECT_FALSE(fs::exists(dir.file())) << "a read-only open creates nothing";
  auto writable = high_water_mark::open(dir.str(), true);
  ASSERT_TRUE(writable) << writable.error().message;
  EXPECT_FALSE(writable->value());
  EXPECT_TRUE(fs::exists(dir.file()));
}

TEST(HighWaterMark, RecordedMarkSurvivesReopening) {
  temp_dir dir;
  {
    auto mark = high_water_mark::open(dir.str(), true);
    ASSERT_TRUE(mark);
    EXPECT_FALSE(mark->record(sequence_number{10}));
    EXPECT_FALSE(mark->record(sequence_number{25}));
    EXPECT_FALSE(mark->record(sequence_number{1450}));
    EXPECT_EQ(mark->value(), sequence_number{1450});
  }
  auto mark = high_water_mark::open(dir.str(), false);
  ASSERT_TRUE(mark) << mark.error().message;
  EXPECT_EQ(mark->value(), sequence_number{1450});
}

TEST(HighWaterMark, OnlyMovesForward) {
  temp_dir dir;
  auto mark = high_water_mark::open(dir.str(), true);
  ASSERT_TRUE(mark);
  EXPECT_FALSE(mark->record(sequence_number{100}));
  EXPECT_FALSE(mark->record(sequence_number{40}));
  EXPECT_EQ(mark->value(), sequence_number{100});
  auto again = high_water_mark::open(dir.str(), false);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->value(), sequence_number{100});
}

TEST(HighWaterMark, ATornSlotLeavesThePreviousMark) {
  temp_dir dir;
  {
    auto mark = high_water_mark::open(dir.str(), true);
    ASSERT_TRUE(mark);
    ASSERT_FALSE(mark->record(sequence_number{7}));   // slot 0
    ASSERT_FALSE(mark->record(sequence_number{900})); // slot 1
  }
  // Damage the slot written last, as a torn write would.
  {
    std::fstream f{dir.file(), std::ios::in | std::ios::out | std::ios::binary};
    f.seekp(16 + 9);
    f.put('\x5a');
  }
  auto mark = high_water_mark::open(dir.str(), true);
  ASSERT_TRUE(mark) << mark.error().message;
  EXPECT_EQ(mark->value(), sequence_number{7});
  // The next record goes to the damaged slot, keeping the good one.
  EXPECT_FALSE(mark->record(sequence_number{950}));
  auto again = high_water_mark::open(dir.str(), false);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->value(), sequence_number{950});
}

TEST(HighWaterMark, BothSlotsDamagedIsAnError) {
  temp_dir dir;
  {
    std::ofstream f{dir.file(), std::ios::binary};
    f << std::string(32, 'x');
  }
  auto mark = high_water_mark::open(dir.str(), false);
  ASSERT_FALSE(mark);
  EXPECT_EQ(mark.error().code, errc::corrupted);
  EXPECT_NE(mark.error().message.find("damaged in both of its slots"),
            std::string::npos)
      << mark.error().message;
}

TEST(HighWaterMark, AReadOnlyMarkRefusesToRecord) {
  temp_dir dir;
  {
    auto mark = high_water_mark::open(dir.str(), true);
    ASSERT_TRUE(mark);
    ASSERT_FALSE(mark->record(sequence_number{3}));
  }
  auto mark = high_water_mark::open(dir.str(), false);
  ASSERT_TRUE(mark);
  auto err = mark->record(sequence_number{4});
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::failed_precondition);
}

} // namespace
