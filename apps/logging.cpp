#include "apps/logging.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <utility>

#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace fota {

namespace {

/// The words of `--log-level`, by spdlog level.
constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 7>
    levels{{
        {"trace", spdlog::level::trace},
        {"debug", spdlog::level::debug},
        {"info", spdlog::level::info},
        {"warn", spdlog::level::warn},
        {"error", spdlog::level::err},
        {"critical", spdlog::level::critical},
        {"off", spdlog::level::off},
    }};

std::string_view word_of(spdlog::level::level_enum x) {
  for (const auto& [word, level] : levels)
    if (level == x)
      return word;
  return "info";
}

void append(spdlog::memory_buf_t& out, std::string_view x) {
  out.append(x.data(), x.data() + x.size());
}

/// The length of the UTF-8 sequence at `p` (at most `left` bytes), or 0
/// when it is not well-formed (overlong forms and surrogates included).
size_t utf8_length(const unsigned char* p, size_t left) {
  auto c = p[0];
  size_t n = 0;
  uint32_t min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (left < n)
    return 0;
  uint32_t cp = c & (0x7f >> n);
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

} // namespace

std::optional<spdlog::level::level_enum> log_level_of(std::string_view word) {
  for (const auto& [w, level] : levels)
    if (w == word)
      return level;
  return std::nullopt;
}

void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t size = text.size();
  for (size_t i = 0; i < size;) {
    auto c = p[i];
    if (c >= 0x80) {
      auto n = utf8_length(p + i, size - i);
      if (n == 0) {
        append(out, "\\ufffd");
        ++i;
      } else {
        out.append(text.data() + i, text.data() + i + n);
        i += n;
      }
      continue;
    }
    switch (c) {
    case '"':
      append(out, "\\\"");
      break;
    case '\\':
      append(out, "\\\\");
      break;
    case '\n':
      append(out, "\\n");
      break;
    case '\r':
      append(out, "\\r");
      break;
    case '\t':
      append(out, "\\t");
      break;
    default:
      if (c < 0x20 || c == 0x7f) {
        char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        out.append(esc, esc + sizeof(esc));
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
    ++i;
  }
}

void json_log_formatter::format(const spdlog::details::log_msg& msg,
                                spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  auto t = system_clock::to_time_t(msg.time);
  auto ms =
      duration_cast<milliseconds>(msg.time.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&t, &utc);
  char stamp[40];
  auto n = std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", static_cast<int>(ms));
  append(dest, "{\"time\":\"");
  append(dest, stamp);
  append(dest, "\",\"level\":\"");
  append(dest, word_of(msg.level));
  append(dest, "\",\"message\":\"");
  append_json_escaped({msg.payload.data(), msg.payload.size()}, dest);
  append(dest, "\"}\n");
}

std::unique_ptr<spdlog::formatter> json_log_formatter::clone() const {
  return std::make_unique<json_log_formatter>();
}

void setup_logging(const std::string& level, const std::string& format) {
  auto logger = std::make_shared<spdlog::logger>(
      "fotad", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json")
    logger->set_formatter(std::make_unique<json_log_formatter>());
  else
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  logger->set_level(log_level_of(level).value_or(spdlog::level::info));
  // Each line reaches stderr at once: a crash loses none, and journald
  // stamps them when they come.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

} // namespace fota
