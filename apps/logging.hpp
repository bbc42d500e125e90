/// fotad's log: spdlog's default logger on stderr, as text lines or as one
/// JSON object per line (for journald, Loki, Elasticsearch and the like),
/// at the level the operator chose.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/common.h>
#include <spdlog/formatter.h>

namespace fota {

/// spdlog's level for a `--log-level` word: trace, debug, info, warn, error,
/// critical, off; none for another word.
std::optional<spdlog::level::level_enum> log_level_of(std::string_view word);

/// Writes each message as one line holding one JSON object:
/// `{"time":"2025-01-31T12:00:00.123Z","level":"info","message":"..."}`.
/// The message is escaped; bytes that are not UTF-8 become U+FFFD, so that
/// every line parses whatever a peer put into a message.
class json_log_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override;

  std::unique_ptr<spdlog::formatter> clone() const override;
};

/// Appends `text` to `out` as the body of a JSON string (without quotes).
void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out);

/// Points spdlog's default logger at stderr with `level` and `format`
/// ("text" or "json"), both already checked by the settings.
void setup_logging(const std::string& level, const std::string& format);

} // namespace fota
