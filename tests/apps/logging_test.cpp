/// fotad's JSON log: one object per line that parses, whatever bytes a
/// message holds.
#include "apps/logging.hpp"

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

namespace {

using json = nlohmann::json;

/// A logger that writes JSON lines into `out`.
std::shared_ptr<spdlog::logger> json_logger(std::ostringstream& out) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto logger = std::make_shared<spdlog::logger>("test", sink);
  logger->set_formatter(std::make_unique<fota::json_log_formatter>());
  logger->set_level(spdlog::level::trace);
  return logger;
}

std::vector<json> lines_of(const std::string& text) {
  std::vector<json> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    out.push_back(json::parse(line));
  return out;
}

TEST(JsonLog, EachMessageIsOneObjectWithTimeLevelAndMessage) {
  std::ostringstream out;
  auto log = json_logger(out);
  log->info("session opened: peer {}", "127.0.0.1:4000");
  log->warn("authentication failed");
  log->error("journal: writing failed");
  auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(lines[1]["level"], "warn");
  EXPECT_EQ(lines[2]["level"], "error");
  EXPECT_EQ(lines[0]["message"], "session opened: peer 127.0.0.1:4000");
  // ISO-8601 in UTC with milliseconds.
  auto time = lines[0]["time"].get<std::string>();
  ASSERT_EQ(time.size(), 24u) << time;
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time.back(), 'Z');
}

TEST(JsonLog, QuotesControlCharactersAndNewlinesAreEscaped) {
  std::ostringstream out;
  auto log = json_logger(out);
  std::string nasty = "a \"quoted\" \\ path\nsecond line\r\t\x01\x7f end";
  log->info("{}", nasty);
  auto text = out.str();
  // One line: the newline in the message did not end it.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["message"], nasty);
}

TEST(JsonLog, UnicodeIsKeptAndBytesThatAreNotUtf8AreReplaced) {
  std::ostringstream out;
  auto log = json_logger(out);
  log->info("device \xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80");
  // A lone continuation byte, a truncated sequence, an overlong slash and
  // an encoded surrogate.
  log->info("bad \x80 x \xe2\x9c y \xc0\xaf z \xed\xa0\x80 end");
  auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["message"],
            "device \xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80");
  auto bad = lines[1]["message"].get<std::string>();
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(bad, "bad " + fffd + " x " + fffd + fffd + " y " + fffd + fffd +
                     " z " + fffd + fffd + fffd + " end");
}

TEST(JsonLog, LevelWordsAreTheFlagsWords) {
  for (auto word :
       {"trace", "debug", "info", "warn", "error", "critical", "off"})
    EXPECT_TRUE(fota::log_level_of(word)) << word;
  EXPECT_EQ(fota::log_level_of("warn"), spdlog::level::warn);
  EXPECT_FALSE(fota::log_level_of("warning"));
  EXPECT_FALSE(fota::log_level_of("loud"));
}

} // namespace
