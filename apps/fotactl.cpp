/// fotactl: the operator CLI. Each subcommand becomes one request over the
/// wire API; the response is printed as a table for people or, with
/// `--json`, as JSON for scripts.
///
/// Exit codes: 0 OK, 1 the node answered with a non-OK status, 2 usage
/// error, 3 the node cannot be reached. `task wait` and `task watch` end
/// with the task: 0 COMPLETED without failures, 4 COMPLETED with failed or
/// timed-out executions, 5 CANCELED, 6 still running at --timeout.
#include "api/client.hpp"
#include "api/json.hpp"
#include "apps/image_digest.hpp"
#include "apps/rollout_curve.hpp"
#include "apps/tls_options.hpp"
#include "apps/version.hpp"
#include "events/manifest.hpp"
#include "fota/v1/api.pb.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

namespace {

using namespace fota;
using namespace std::chrono_literals;

// -- exit codes --------------------------------------------------------------

constexpr int exit_ok = 0;
constexpr int exit_status = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
/// `task wait` and `task watch`: how the task ended.
constexpr int exit_completed_with_failures = 4;
constexpr int exit_canceled = 5;
constexpr int exit_timeout = 6;

// -- usage errors ------------------------------------------------------------

/// A command-line value that does not parse; the message names the option.
class usage_error : public std::runtime_error {
public:
  usage_error(const std::string& option, const std::string& what)
    : std::runtime_error(option + ": " + what) {
    // Nothing else to do.
  }
};

std::string in_quotes(const std::string& x) {
  return "'" + x + "'";
}

uint64_t parse_uint(const std::string& option, const std::string& text,
                    uint64_t max = std::numeric_limits<uint64_t>::max()) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    throw usage_error(option, "expected a non-negative integer, got " +
                                  in_quotes(text));
  errno = 0;
  auto value = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE || value > max)
    throw usage_error(option, in_quotes(text) + " is larger than " +
                                  std::to_string(max));
  return value;
}

double parse_double(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    auto value = std::stod(text, &used);
    if (used == text.size())
      return value;
  } catch (const std::exception&) {
    // Reported below.
  }
  throw usage_error(option, "expected a number, got " + in_quotes(text));
}

/// Splits "KEY=VALUE"; the value may be empty, the key may not.
std::pair<std::string, std::string> parse_pair(const std::string& option,
                                               const std::string& text,
                                               const char* what) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw usage_error(option, std::string{"expected "} + what + ", got " +
                                  in_quotes(text));
  return {text.substr(0, eq), text.substr(eq + 1)};
}

/// Parses "7200", "90s", "30m", "2h", "1h30m" or "2d" into seconds.
uint32_t parse_duration(const std::string& option, const std::string& text) {
  static const std::regex plain{R"(\d+)"};
  static const std::regex units{R"((\d+[dhms])+)"};
  auto bad = [&] {
    return usage_error(option, "expected a duration such as 2h, 30m, 90s or "
                               "a number of seconds, got " +
                                   in_quotes(text));
  };
  if (std::regex_match(text, plain))
    return static_cast<uint32_t>(parse_uint(option, text, UINT32_MAX));
  if (!std::regex_match(text, units))
    throw bad();
  uint64_t total = 0;
  uint64_t number = 0;
  for (auto c : text) {
    if (c >= '0' && c <= '9') {
      number = number * 10 + static_cast<uint64_t>(c - '0');
      if (number > UINT32_MAX)
        throw bad();
      continue;
    }
    uint64_t factor = c == 'd' ? 86400 : c == 'h' ? 3600 : c == 'm' ? 60 : 1;
    total += number * factor;
    number = 0;
    if (total > UINT32_MAX)
      throw bad();
  }
  return static_cast<uint32_t>(total);
}

/// Parses "250ms" or a duration as `parse_duration` does into milliseconds.
std::chrono::milliseconds parse_interval(const std::string& option,
                                         const std::string& text) {
  static const std::regex millis{R"((\d+)ms)"};
  std::smatch m;
  if (std::regex_match(text, m, millis))
    return std::chrono::milliseconds{
        parse_uint(option, m[1].str(), UINT32_MAX)};
  try {
    return std::chrono::seconds{parse_duration(option, text)};
  } catch (const usage_error&) {
    throw usage_error(option, "expected a duration such as 500ms, 2s, 30m "
                              "or a number of seconds, got " +
                                  in_quotes(text));
  }
}

/// Parses "HH:MM-HH:MM" into a window in minutes after midnight. "24:00"
/// ends a window at midnight.
v1::ScheduleWindow parse_window(const std::string& option,
                                const std::string& text) {
  static const std::regex re{R"((\d{1,2}):(\d{2})-(\d{1,2}):(\d{2}))"};
  std::smatch m;
  auto bad = [&](const std::string& why) {
    return usage_error(option, why + ", got " + in_quotes(text));
  };
  if (!std::regex_match(text, m, re))
    throw bad("expected a window HH:MM-HH:MM");
  auto minute_of = [&](const std::string& hh, const std::string& mm) {
    auto h = std::stoi(hh);
    auto mi = std::stoi(mm);
    if (mi > 59 || h > 24 || (h == 24 && mi != 0))
      throw bad("expected times from 00:00 to 24:00");
    return static_cast<uint32_t>((h * 60 + mi) % 1440);
  };
  v1::ScheduleWindow result;
  result.set_start_minute(minute_of(m[1], m[2]));
  result.set_end_minute(minute_of(m[3], m[4]));
  return result;
}

/// Parses an ISO-8601 time ("2025-01-31T18:00:00Z", "2025-01-31T18:00+01:00",
/// "2025-01-31"; UTC when there is no offset) into milliseconds since the
/// epoch.
int64_t parse_time_ms(const std::string& option, const std::string& text) {
  static const std::regex re{
      R"((\d{4})-(\d{2})-(\d{2}))"
      R"((?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)"
      R"((Z|[+-]\d{2}:?\d{2})?)"};
  std::smatch m;
  auto bad = [&] {
    return usage_error(option, "expected an ISO-8601 time such as "
                               "2025-01-31T18:00:00Z, got " +
                                   in_quotes(text));
  };
  if (!std::regex_match(text, m, re))
    throw bad();
  auto num = [&](int i) { return m[i].matched ? std::stoi(m[i]) : 0; };
  std::tm tm{};
  tm.tm_year = num(1) - 1900;
  tm.tm_mon = num(2) - 1;
  tm.tm_mday = num(3);
  tm.tm_hour = num(4);
  tm.tm_min = num(5);
  tm.tm_sec = num(6);
  auto expected_tm = tm;
  auto secs = ::timegm(&tm);
  if (tm.tm_year != expected_tm.tm_year || tm.tm_mon != expected_tm.tm_mon ||
      tm.tm_mday != expected_tm.tm_mday || tm.tm_hour != expected_tm.tm_hour ||
      tm.tm_min != expected_tm.tm_min || tm.tm_sec != expected_tm.tm_sec)
    throw bad();
  int64_t ms = 0;
  if (m[7].matched) {
    auto frac = m[7].str();
    frac.resize(3, '0');
    ms = std::stoi(frac);
  }
  if (m[8].matched && m[8] != "Z") {
    auto off = m[8].str();
    auto sign = off[0] == '-' ? -1 : 1;
    auto digits = off.substr(1);
    digits.erase(std::remove(digits.begin(), digits.end(), ':'), digits.end());
    auto hours = std::stoi(digits.substr(0, 2));
    auto minutes = std::stoi(digits.substr(2, 2));
    if (hours > 23 || minutes > 59)
      throw bad();
    secs -= sign * (hours * 3600 + minutes * 60);
  }
  return static_cast<int64_t>(secs) * 1000 + ms;
}

std::string read_file(const std::string& option, const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw usage_error(option, "cannot open " + in_quotes(path) + ": " +
                                  std::strerror(errno));
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

// -- output helpers ----------------------------------------------------------

/// Drops `prefix` from an enum value name, e.g. "TASK_STATUS_RUNNING".
std::string strip(const std::string& name, const char* prefix) {
  auto len = std::strlen(prefix);
  if (name.compare(0, len, prefix) == 0)
    return name.substr(len);
  return name.empty() ? "?" : name;
}

std::string name_of(v1::FirmwareStatus x) {
  return strip(v1::FirmwareStatus_Name(x), "FIRMWARE_STATUS_");
}

std::string name_of(v1::TaskStatus x) {
  return strip(v1::TaskStatus_Name(x), "TASK_STATUS_");
}

std::string name_of(v1::ExecutionState x) {
  return strip(v1::ExecutionState_Name(x), "EXECUTION_STATE_");
}

std::string name_of(v1::Strategy x) {
  return strip(v1::Strategy_Name(x), "STRATEGY_");
}

std::string name_of(v1::Method x) {
  return strip(v1::Method_Name(x), "METHOD_");
}

std::string name_of(v1::ScopeKind x) {
  return strip(v1::ScopeKind_Name(x), "SCOPE_KIND_");
}

/// Formats milliseconds since the epoch as ISO-8601 UTC; 0 is "-".
std::string iso8601(int64_t ms) {
  if (ms == 0)
    return "-";
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string hhmm(uint32_t minute) {
  return fmt::format("{:02}:{:02}", minute / 60, minute % 60);
}

template <class Container>
std::string join(const Container& xs, const char* sep = ", ") {
  std::string result;
  for (const auto& x : xs) {
    if (!result.empty())
      result += sep;
    result += x;
  }
  return result;
}

template <class Map>
std::string join_map(const Map& xs) {
  std::vector<std::string> items;
  for (const auto& [k, v] : xs)
    items.push_back(k + "=" + v);
  std::sort(items.begin(), items.end());
  return join(items, ",");
}

/// Columns aligned on the widest cell; numbers may be right-aligned.
class table {
public:
  explicit table(std::vector<std::string> header)
    : right_(header.size(), false) {
    rows_.push_back(std::move(header));
  }

  table& align_right(size_t column) {
    right_.at(column) = true;
    return *this;
  }

  void add(std::vector<std::string> row) {
    row.resize(rows_.front().size());
    rows_.push_back(std::move(row));
  }

  bool empty() const noexcept { return rows_.size() == 1; }

  void print() const {
    std::vector<size_t> widths(rows_.front().size(), 0);
    for (const auto& row : rows_)
      for (size_t i = 0; i < row.size(); ++i)
        widths[i] = std::max(widths[i], row[i].size());
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        auto last = i + 1 == row.size();
        if (i > 0)
          line += "  ";
        auto pad = std::string(widths[i] - row[i].size(), ' ');
        if (right_[i])
          line += pad + row[i];
        else
          line += last ? row[i] : row[i] + pad;
      }
      fmt::print("{}\n", line);
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

/// Two columns: a name and its value.
using properties = std::vector<std::pair<std::string, std::string>>;

void print_properties(const properties& xs) {
  size_t width = 0;
  for (const auto& x : xs)
    width = std::max(width, x.first.size());
  for (const auto& [k, v] : xs)
    fmt::print("{:<{}}  {}\n", k, width, v);
}

// -- printers ----------------------------------------------------------------

void print_firmware(const v1::Firmware& x) {
  properties props{
      {"product", x.product_key()},
      {"version", x.version()},
      {"status", name_of(x.status())},
      {"url", x.url()},
      {"size", std::to_string(x.size())},
      {"sha256", x.sha256()},
      {"signature", x.signature().empty()
                        ? "-"
                        : std::to_string(x.signature().size()) + " bytes"},
      {"description", x.description().empty() ? "-" : x.description()},
      {"created", iso8601(x.created_at_ms())},
  };
  if (x.verification_device_keys_size() > 0)
    props.emplace_back("verified on", join(x.verification_device_keys()));
  if (!x.verification_failure().empty())
    props.emplace_back("verification failure", x.verification_failure());
  if (!x.verification_skip_reason().empty())
    props.emplace_back("verification skipped", x.verification_skip_reason());
  print_properties(props);
}

/// Prints where the next page starts, if there is one.
void print_next_page(const std::string& token) {
  if (!token.empty())
    fmt::print("\nnext page: --page-token {}\n", token);
}

void print_firmware_list(const v1::FirmwareList& x) {
  table out{{"PRODUCT", "VERSION", "STATUS", "SIZE", "SHA256"}};
  out.align_right(3);
  for (const auto& fw : x.firmwares())
    out.add({fw.product_key(), fw.version(), name_of(fw.status()),
             std::to_string(fw.size()), fw.sha256().substr(0, 12)});
  out.print();
  print_next_page(x.next_page_token());
}

uint64_t total_executions(const v1::ExecutionCounters& c) {
  return c.queued() + c.notified() + c.in_progress() + c.succeeded() +
         c.failed() + c.timed_out() + c.canceled();
}

std::string describe_scope(const v1::Scope& x) {
  auto kind = name_of(x.kind());
  if (x.device_keys().device_keys_size() > 0)
    return kind + " devices " + join(x.device_keys().device_keys());
  if (!x.tag().key().empty())
    return kind + " tag " + x.tag().key() + "=" + x.tag().value();
  if (!x.attribute().name().empty())
    return kind + " attribute " + x.attribute().name() + "=" +
           x.attribute().value();
  if (x.asset_trees().trees_size() > 0) {
    std::vector<std::string> trees;
    for (const auto& t : x.asset_trees().trees())
      trees.push_back(t.tree_id() + ":" + join(t.node_ids(), ","));
    return kind + " asset trees " + join(trees, " ");
  }
  return kind;
}

void print_task(const v1::TaskSummary& x) {
  const auto& spec = x.spec();
  properties props{
      {"task", std::to_string(x.task_id())},
      {"name", spec.name().empty() ? "-" : spec.name()},
      {"product", spec.product_key()},
      {"target", spec.target_version()},
      {"sources", join(spec.source_versions())},
      {"strategy", name_of(spec.strategy())},
      {"scope", describe_scope(spec.scope())},
      {"method", name_of(spec.method())},
      {"status",
       name_of(x.status()) +
           (x.status_reason().empty() ? "" : " (" + x.status_reason() + ")")},
      {"created", iso8601(x.created_at_ms())},
      {"finished", iso8601(x.finished_at_ms())},
  };
  if (spec.schedule().windows_size() > 0) {
    std::vector<std::string> windows;
    for (const auto& w : spec.schedule().windows())
      windows.push_back(hhmm(w.start_minute()) + "-" + hhmm(w.end_minute()));
    auto zone = spec.schedule().time_zone();
    props.emplace_back("windows",
                       join(windows) + " " + (zone.empty() ? "UTC" : zone));
  }
  if (spec.rate().max_per_minute() > 0)
    props.emplace_back("rate",
                       std::to_string(spec.rate().max_per_minute()) + "/min");
  const auto& ramp = spec.rate().ramp_up();
  if (ramp.base_per_minute() > 0)
    props.emplace_back("ramp-up",
                       fmt::format("{}/min x{} every {} successes",
                                   ramp.base_per_minute(), ramp.factor(),
                                   ramp.successes_per_step()));
  if (spec.timeout_seconds() != 0)
    props.emplace_back("timeout", fmt::format("{} s", spec.timeout_seconds()));
  if (spec.retry().max_retries() != 0)
    props.emplace_back("retries",
                       fmt::format("{} every {} s", spec.retry().max_retries(),
                                   spec.retry().interval_seconds()));
  if (spec.abort().failure_percent() > 0)
    props.emplace_back(
        "abort",
        fmt::format("{} at {}% failed after {} finished",
                    spec.abort().action() == v1::ABORT_ACTION_CANCEL ? "cancel"
                                                                     : "pause",
                    spec.abort().failure_percent(),
                    spec.abort().min_finished()));
  if (spec.end_time_ms() != 0)
    props.emplace_back("end time", iso8601(spec.end_time_ms()));
  if (spec.priority() != 0)
    props.emplace_back("priority", std::to_string(spec.priority()));
  print_properties(props);
  const auto& c = x.counters();
  fmt::print("\n");
  table counters{{"STATE", "COUNT"}};
  counters.align_right(1);
  counters.add({"queued", std::to_string(c.queued())});
  counters.add({"notified", std::to_string(c.notified())});
  counters.add({"in-progress", std::to_string(c.in_progress())});
  counters.add({"succeeded", std::to_string(c.succeeded())});
  counters.add({"failed", std::to_string(c.failed())});
  counters.add({"timed-out", std::to_string(c.timed_out())});
  counters.add({"canceled", std::to_string(c.canceled())});
  counters.add({"skipped", std::to_string(c.skipped())});
  counters.add({"total", std::to_string(total_executions(c))});
  counters.print();
}

void print_task_list(const v1::TaskList& x) {
  table out{{"ID", "NAME", "PRODUCT", "TARGET", "STATUS", "SUCCEEDED", "FAILED",
             "TOTAL"}};
  out.align_right(0).align_right(5).align_right(6).align_right(7);
  for (const auto& t : x.tasks()) {
    const auto& c = t.counters();
    out.add({std::to_string(t.task_id()), t.spec().name(),
             t.spec().product_key(), t.spec().target_version(),
             name_of(t.status()), std::to_string(c.succeeded()),
             std::to_string(c.failed() + c.timed_out()),
             std::to_string(total_executions(c))});
  }
  out.print();
  print_next_page(x.next_page_token());
}

// -- forecast, wait and watch -------------------------------------------------

std::string name_of(v1::IdleReason x) {
  auto s = strip(v1::IdleReason_Name(x), "IDLE_REASON_");
  std::transform(s.begin(), s.end(), s.begin(), [](char c) {
    return c == '_' ? ' '
                    : static_cast<char>(std::tolower(static_cast<int>(c)));
  });
  return s;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// "in 9m 57s", "in 2h 5m", "in 3d 4h"; "now" when not in the future.
std::string from_now(int64_t at_ms, int64_t now) {
  auto secs = (at_ms - now + 999) / 1000;
  if (secs <= 0)
    return "now";
  if (secs < 60)
    return fmt::format("in {}s", secs);
  if (secs < 3600)
    return fmt::format("in {}m {}s", secs / 60, secs % 60);
  if (secs < 86400)
    return fmt::format("in {}h {}m", secs / 3600, secs % 3600 / 60);
  return fmt::format("in {}d {}h", secs / 86400, secs % 86400 / 3600);
}

std::string at_and_from_now(int64_t at_ms, int64_t now) {
  return iso8601(at_ms) + " (" + from_now(at_ms, now) + ")";
}

/// The forecast of a task, as name-value lines.
properties forecast_properties(const v1::TaskSummary& task,
                               const v1::TaskForecast& f, int64_t now) {
  properties props;
  auto reason = name_of(f.idle_reason()) + ": " + f.idle_text();
  if (task.status() == v1::TASK_STATUS_COMPLETED ||
      task.status() == v1::TASK_STATUS_CANCELED) {
    props.emplace_back("idle", reason);
    return props;
  }
  props.emplace_back("pushes/min",
                     fmt::format("{} now, {} allowed", f.pushes_last_minute(),
                                 f.allowed_per_minute() == 0
                                     ? std::string{"unlimited"}
                                     : std::to_string(f.allowed_per_minute())));
  if (task.spec().rate().ramp_up().base_per_minute() > 0)
    props.emplace_back("ramp-up",
                       fmt::format("stage {}{}", f.ramp_stage(),
                                   f.ramp_at_max() ? ", at the maximum" : ""));
  if (f.next_window_edge_ms() == 0)
    props.emplace_back("window", "always open");
  else if (f.window_open())
    props.emplace_back("window",
                       "open, closes " +
                           at_and_from_now(f.next_window_edge_ms(), now));
  else
    props.emplace_back("window",
                       "closed, opens " +
                           at_and_from_now(f.next_window_edge_ms(), now));
  if (f.retries_waiting() > 0)
    props.emplace_back(
        "retries",
        fmt::format("{} waiting{}", f.retries_waiting(),
                    f.next_retry_ms() == 0
                        ? std::string{}
                        : ", next " + at_and_from_now(f.next_retry_ms(), now)));
  props.emplace_back("online", fmt::format("{:.0f}% of {} queued ({} online)",
                                           f.online_share() * 100.0, f.queued(),
                                           f.queued_online()));
  if (f.eta_known())
    props.emplace_back("eta", "last push " + at_and_from_now(f.eta_ms(), now));
  else if (f.online_eta_ms() != 0)
    props.emplace_back(
        "eta", fmt::format("unknown: {} queued devices offline; the online "
                           "ones pushed by {}",
                           f.queued() - f.queued_online(),
                           at_and_from_now(f.online_eta_ms(), now)));
  else
    props.emplace_back("eta", "unknown");
  props.emplace_back(f.pushes_last_minute() == 0 ? "idle" : "held by", reason);
  return props;
}

/// `task show`: the task, its counters and its forecast.
void print_task_response(const v1::Response& r) {
  print_task(r.task());
  if (!r.has_forecast())
    return;
  fmt::print("\n");
  print_properties(forecast_properties(r.task(), r.forecast(), now_ms()));
}

bool is_finished(v1::TaskStatus x) {
  return x == v1::TASK_STATUS_COMPLETED || x == v1::TASK_STATUS_CANCELED;
}

/// The exit code of `task wait` for a finished task.
int exit_code_of(const v1::TaskSummary& x) {
  if (x.status() == v1::TASK_STATUS_CANCELED)
    return exit_canceled;
  const auto& c = x.counters();
  return c.failed() + c.timed_out() > 0 ? exit_completed_with_failures
                                        : exit_ok;
}

/// One line for a log: time, status, counters, rate, window, ETA, reason.
std::string watch_line(const v1::Response& r, int64_t now) {
  const auto& t = r.task();
  const auto& c = t.counters();
  auto line = fmt::format(
      "{} task {} {} queued={} notified={} in-progress={} succeeded={} "
      "failed={} timed-out={} canceled={} skipped={}",
      iso8601(now), t.task_id(), name_of(t.status()), c.queued(), c.notified(),
      c.in_progress(), c.succeeded(), c.failed(), c.timed_out(), c.canceled(),
      c.skipped());
  if (!r.has_forecast() || is_finished(t.status()))
    return line;
  const auto& f = r.forecast();
  line += fmt::format(
      " pushes/min={}/{} window={} online={:.0f}% retries={} eta={} idle={}",
      f.pushes_last_minute(),
      f.allowed_per_minute() == 0 ? std::string{"unlimited"}
                                  : std::to_string(f.allowed_per_minute()),
      f.window_open() ? "open" : "closed", f.online_share() * 100.0,
      f.retries_waiting(), f.eta_known() ? iso8601(f.eta_ms()) : "unknown",
      in_quotes(name_of(f.idle_reason())));
  return line;
}

/// The full-screen view: a bar per state and the forecast.
void print_watch_screen(const v1::Response& r, int64_t now) {
  const auto& t = r.task();
  const auto& c = t.counters();
  // Home and clear, then draw.
  fmt::print("\033[H\033[2J");
  fmt::print("task {} {} {} -> {}  {}   {}\n\n", t.task_id(),
             t.spec().name().empty() ? "" : in_quotes(t.spec().name()),
             t.spec().product_key(), t.spec().target_version(),
             name_of(t.status()), iso8601(now));
  uint64_t total = total_executions(c) + c.skipped();
  constexpr size_t width = 40;
  auto bar = [&](const char* name, uint64_t n) {
    auto filled =
        total == 0 ? size_t{0} : static_cast<size_t>(n * width / total);
    std::string b;
    for (size_t i = 0; i < width; ++i)
      b += i < filled ? "#" : ".";
    fmt::print("{:<12} {} {:>8}\n", name, b, n);
  };
  bar("queued", c.queued());
  bar("notified", c.notified());
  bar("in-progress", c.in_progress());
  bar("succeeded", c.succeeded());
  bar("failed", c.failed());
  bar("timed-out", c.timed_out());
  bar("canceled", c.canceled());
  bar("skipped", c.skipped());
  if (r.has_forecast()) {
    fmt::print("\n");
    print_properties(forecast_properties(t, r.forecast(), now));
  }
  std::fflush(stdout);
}

void print_task_details(const v1::TaskDetails& x) {
  table out{{"DEVICE", "STATE", "ATTEMPT", "QUEUED", "NOTIFIED", "STARTED",
             "FINISHED", "FAILURE"}};
  out.align_right(2);
  for (const auto& e : x.executions()) {
    auto state = name_of(e.state());
    if (e.waiting_for_device())
      state += " (waiting)";
    auto failure = e.failure_code();
    if (!e.failure_text().empty())
      failure += (failure.empty() ? "" : ": ") + e.failure_text();
    out.add({e.device_key(), state, std::to_string(e.attempt()),
             iso8601(e.queued_at_ms()), iso8601(e.notified_at_ms()),
             iso8601(e.started_at_ms()), iso8601(e.finished_at_ms()),
             failure.empty() ? "-" : failure});
  }
  out.print();
  if (x.skipped_size() > 0) {
    fmt::print("\n");
    table skipped{{"SKIPPED DEVICE", "REASON"}};
    for (const auto& s : x.skipped())
      skipped.add({s.device_key(), s.reason()});
    skipped.print();
  }
  if (x.next_page_token() != 0)
    fmt::print("\nnext page: --page-token {}\n", x.next_page_token());
}

void print_device(const v1::Device& x) {
  print_properties({
      {"product", x.product_key()},
      {"device", x.device_key()},
      {"version", x.version()},
      {"online", x.online() ? "yes" : "no"},
      {"gateway", x.gateway().empty() ? "-" : x.gateway()},
      {"tags", x.tags().empty() ? "-" : join_map(x.tags())},
      {"attributes", x.attributes().empty() ? "-" : join_map(x.attributes())},
      {"active execution", x.active_execution_id() == 0
                               ? "-"
                               : std::to_string(x.active_execution_id())},
      {"registered", iso8601(x.registered_at_ms())},
  });
}

void print_device_list(const v1::DeviceList& x) {
  table out{{"DEVICE", "VERSION", "ONLINE", "EXECUTION", "TAGS"}};
  for (const auto& d : x.devices())
    out.add({d.device_key(), d.version(), d.online() ? "yes" : "no",
             d.active_execution_id() == 0
                 ? "-"
                 : std::to_string(d.active_execution_id()),
             d.tags().empty() ? "-" : join_map(d.tags())});
  out.print();
  if (!x.next_page_token().empty())
    fmt::print("\nnext page: --page-token {}\n", x.next_page_token());
}

void print_tree(const v1::AssetTree& x) {
  fmt::print("tree {} ({}) of {}\n", x.tree_id(),
             x.name().empty() ? "-" : x.name(), x.product_key());
  table out{{"NODE", "PARENT", "NAME", "DEVICE"}};
  for (const auto& n : x.nodes())
    out.add({n.node_id(), n.parent_id().empty() ? "-" : n.parent_id(),
             n.name().empty() ? "-" : n.name(),
             n.device_key().empty() ? "-" : n.device_key()});
  out.print();
}

void print_tree_list(const v1::AssetTreeList& x) {
  table out{{"TREE", "NAME", "NODES", "DEVICES"}};
  out.align_right(2).align_right(3);
  for (const auto& t : x.trees()) {
    size_t devices = 0;
    for (const auto& n : t.nodes())
      devices += n.device_key().empty() ? 0 : 1;
    out.add({t.tree_id(), t.name().empty() ? "-" : t.name(),
             std::to_string(t.nodes_size()), std::to_string(devices)});
  }
  out.print();
  print_next_page(x.next_page_token());
}

// -- history ---------------------------------------------------------------

/// Formats milliseconds since the epoch as ISO-8601 UTC with milliseconds.
std::string iso8601_ms(int64_t ms) {
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

/// Prints a page of a device's or a task's history and, with --at, the
/// state at that moment.
void print_history(const v1::History& x, bool task) {
  if (x.at_ms() != 0 || x.existed()) {
    fmt::print("at {}:\n", iso8601_ms(x.at_ms()));
    if (!x.existed())
      fmt::print("  the {} did not exist yet\n", task ? "task" : "device");
    else if (task)
      print_task(x.task());
    else
      print_device(x.device());
    fmt::print("\n");
  }
  table out{{"SEQ", "TIME", "EVENT", "WHAT"}};
  out.align_right(0);
  for (const auto& e : x.entries())
    out.add({std::to_string(e.sequence()), iso8601_ms(e.time_ms()), e.kind(),
             e.text()});
  out.print();
  print_next_page(x.next_page_token());
}

// -- task preview (task create --dry-run) -------------------------------------

/// What `task create` would do, for people: the devices in scope and how
/// they stand, what the task would enrol and skip, and when its last push
/// would leave.
void print_task_preview(const v1::TaskPreview& x) {
  auto now = now_ms();
  std::vector<std::string> versions;
  for (const auto& v : x.versions())
    versions.push_back(fmt::format("{} on {}", v.devices(), v.version()));
  properties props{
      {"in scope", fmt::format("{} devices", x.devices())},
  };
  if (!versions.empty())
    props.emplace_back("versions", join(versions));
  props.emplace_back(
      "online", fmt::format("{} online, {} offline", x.online(), x.offline()));
  if (x.busy() > 0) {
    std::vector<std::string> tasks;
    for (const auto& t : x.busy_tasks())
      tasks.push_back(fmt::format("task {} ({})", t.task_id(), t.devices()));
    if (x.busy_tasks_unlisted() > 0)
      tasks.push_back(fmt::format("{} more tasks", x.busy_tasks_unlisted()));
    props.emplace_back(
        "busy", fmt::format("{} in another task: {}", x.busy(), join(tasks)));
  } else {
    props.emplace_back("busy", "0");
  }
  props.emplace_back("enrolled", fmt::format("{} devices", x.enrolled()));
  props.emplace_back(
      "skipped", x.skipped() == 0
                     ? std::string{"0"}
                     : fmt::format("{} (busy in another task)", x.skipped()));
  props.emplace_back(
      "on target",
      fmt::format("{} devices already on the target version (not in scope)",
                  x.on_target_version()));
  const auto& f = x.forecast();
  if (f.idle_reason() == v1::IDLE_REASON_FINISHED) {
    props.emplace_back("eta", "none: nothing to enrol, the task would "
                              "complete as it is created");
    print_properties(props);
    return;
  }
  if (f.idle_reason() == v1::IDLE_REASON_DEVICE_REQUESTS) {
    props.emplace_back("eta", "none: " + f.idle_text());
    print_properties(props);
    return;
  }
  props.emplace_back("pushes/min",
                     f.allowed_per_minute() == 0
                         ? std::string{"unlimited"}
                         : std::to_string(f.allowed_per_minute()));
  if (f.next_window_edge_ms() == 0)
    props.emplace_back("window", "always open");
  else
    props.emplace_back(
        "window",
        std::string{f.window_open() ? "open, closes " : "closed, opens "} +
            at_and_from_now(f.next_window_edge_ms(), now));
  if (f.eta_known())
    props.emplace_back("eta", "last push " + at_and_from_now(f.eta_ms(), now));
  else if (f.online_eta_ms() != 0)
    props.emplace_back(
        "eta", fmt::format("unknown: {} enrolled devices offline; the online "
                           "ones pushed by {}",
                           f.queued() - f.queued_online(),
                           at_and_from_now(f.online_eta_ms(), now)));
  else
    props.emplace_back("eta", "unknown: " + f.idle_text());
  print_properties(props);
}

/// Prints the result a response carries, for responses without a printer of
/// their own.
void print_result(const v1::Response& x) {
  switch (x.result_case()) {
  case v1::Response::kFirmware:
    print_firmware(x.firmware());
    break;
  case v1::Response::kFirmwareList:
    print_firmware_list(x.firmware_list());
    break;
  case v1::Response::kTask:
    print_task(x.task());
    break;
  case v1::Response::kTaskList:
    print_task_list(x.task_list());
    break;
  case v1::Response::kTaskDetails:
    print_task_details(x.task_details());
    break;
  case v1::Response::kDeviceList:
    print_device_list(x.device_list());
    break;
  case v1::Response::kDevice:
    print_device(x.device());
    break;
  case v1::Response::kAssetTree:
    print_tree(x.asset_tree());
    break;
  case v1::Response::kAssetTreeList:
    print_tree_list(x.asset_tree_list());
    break;
  case v1::Response::kPreview:
    print_task_preview(x.preview());
    break;
  case v1::Response::kStateDigest: {
    const auto& d = x.state_digest();
    print_properties({
        {"sha256", d.sha256()},
        {"devices", std::to_string(d.devices())},
        {"firmware", std::to_string(d.firmware())},
        {"tasks", std::to_string(d.tasks())},
        {"executions", std::to_string(d.executions())},
        {"last sequence", std::to_string(d.last_sequence())},
    });
    break;
  }
  default:
    break;
  }
}

/// Returns the result message of `x`, or nullptr when it carries none.
const google::protobuf::Message* result_of(const v1::Response& x) {
  static const auto* oneof =
      v1::Response::descriptor()->FindOneofByName("result");
  const auto* refl = x.GetReflection();
  const auto* field = refl->GetOneofFieldDescriptor(x, oneof);
  return field != nullptr ? &refl->GetMessage(x, field) : nullptr;
}

void print_json(const v1::Response& x) {
  const auto* result = result_of(x);
  if (result == nullptr) {
    nlohmann::json out{{"status", to_string(x.status())},
                       {"message", x.message()}};
    fmt::print("{}\n", out.dump(2));
    return;
  }
  auto out = to_json(*result);
  if (out && x.has_forecast()) {
    // GetTask: the task with its forecast as one more member.
    auto forecast = to_json(x.forecast());
    if (!forecast) {
      out = forecast;
    } else {
      auto task = nlohmann::json::parse(*out);
      task["forecast"] = nlohmann::json::parse(*forecast);
      out = task.dump(2);
    }
  }
  if (!out) {
    fmt::print("{}\n", nlohmann::json{{"status", "INTERNAL"},
                                      {"message", out.error().message}}
                           .dump(2));
    return;
  }
  fmt::print("{}\n", *out);
}

/// Reports a non-OK status or a transport failure.
void print_error(bool json, const std::string& status,
                 const std::string& message) {
  if (json)
    fmt::print(
        "{}\n",
        nlohmann::json{{"status", status}, {"message", message}}.dump(2));
  else
    fmt::print(stderr, "error: {}: {}\n", status, message);
}

// -- commands ----------------------------------------------------------------

/// One leaf subcommand: how to build its request and print its response,
/// or, for a command that needs no node (signing, key generation), what it
/// runs locally.
struct command {
  CLI::App* app;
  std::function<v1::ClientFrame()> build;
  /// Prints an OK response for people; nullptr uses `print_result`.
  std::function<void(const v1::Response&)> print;
  /// Runs the command without a node and returns the exit code.
  std::function<int()> local;
};

/// The options of every subcommand, bound to CLI11.
struct options {
  // Global.
  std::string host = "127.0.0.1";
  uint16_t port = 7411;
  std::string token;
  std::string token_file;
  tls_cli_options tls;
  bool json = false;
  uint32_t call_timeout = 60;
  // Shared by several subcommands.
  std::string product;
  std::string version;
  std::string device;
  std::vector<std::string> devices;
  uint64_t task_id = 0;
  uint32_t page_size = 0;
  std::string page_token;
  std::vector<std::string> pairs;
  // device move
  std::string gateway;
  // firmware add, sign, keygen
  std::string url;
  uint64_t size = 0;
  std::string sha256;
  std::string signature_file;
  std::string signature;
  std::string description;
  std::string image;
  std::string key_file;
  std::string out_prefix;
  // firmware verify, skip-verification
  std::string verify_timeout;
  std::string reason;
  // task create
  std::string name;
  std::string target;
  std::vector<std::string> sources;
  std::string strategy = "snapshot";
  std::string scope;
  std::string tag;
  std::string attribute;
  std::vector<std::string> asset_trees;
  std::string method = "cloud-push";
  std::vector<std::string> windows;
  std::string time_zone;
  std::string rate;
  std::string ramp_up;
  std::string timeout;
  std::string retries;
  std::string retry_interval;
  std::string abort_percent;
  std::string abort_min;
  std::string abort_action;
  std::string end_time;
  std::string priority;
  bool dry_run = false;
  // task list
  std::vector<std::string> statuses;
  std::string firmware;
  // task wait, watch
  std::string wait_timeout;
  std::string interval = "2s";
  // device history, task history, task curve
  std::string at;
  std::string svg_file;
  std::string csv_file;
  // task details
  std::vector<std::string> states;
  bool skipped = false;
  // tree create
  std::string tree_id;
  std::string file;
  std::string tree_name;
};

v1::ExecutionState parse_state(const std::string& x) {
  if (x == "queued")
    return v1::EXECUTION_STATE_QUEUED;
  if (x == "notified")
    return v1::EXECUTION_STATE_NOTIFIED;
  if (x == "in-progress")
    return v1::EXECUTION_STATE_IN_PROGRESS;
  if (x == "succeeded")
    return v1::EXECUTION_STATE_SUCCEEDED;
  if (x == "failed")
    return v1::EXECUTION_STATE_FAILED;
  if (x == "timed-out")
    return v1::EXECUTION_STATE_TIMED_OUT;
  if (x == "canceled")
    return v1::EXECUTION_STATE_CANCELED;
  throw usage_error("--state", "unknown state " + in_quotes(x));
}

v1::TaskSpec build_task_spec(const options& o) {
  v1::TaskSpec spec;
  spec.set_name(o.name);
  spec.set_product_key(o.product);
  spec.set_target_version(o.target);
  for (const auto& s : o.sources)
    spec.add_source_versions(s);
  spec.set_strategy(o.strategy == "increment" ? v1::STRATEGY_INCREMENT
                                              : v1::STRATEGY_SNAPSHOT);
  // Scope: explicit, or TARGET as soon as a filter is given.
  auto* scope = spec.mutable_scope();
  auto has_filter = !o.devices.empty() || !o.tag.empty() ||
                    !o.attribute.empty() || !o.asset_trees.empty();
  if (o.scope.empty())
    scope->set_kind(has_filter ? v1::SCOPE_KIND_TARGET : v1::SCOPE_KIND_ALL);
  else
    scope->set_kind(o.scope == "target" ? v1::SCOPE_KIND_TARGET
                                        : v1::SCOPE_KIND_ALL);
  for (const auto& d : o.devices)
    scope->mutable_device_keys()->add_device_keys(d);
  if (!o.tag.empty()) {
    auto [k, v] = parse_pair("--tag", o.tag, "KEY=VALUE");
    scope->mutable_tag()->set_key(k);
    scope->mutable_tag()->set_value(v);
  }
  if (!o.attribute.empty()) {
    auto [k, v] = parse_pair("--attribute", o.attribute, "NAME=VALUE");
    scope->mutable_attribute()->set_name(k);
    scope->mutable_attribute()->set_value(v);
  }
  for (const auto& t : o.asset_trees) {
    auto colon = t.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == t.size())
      throw usage_error("--asset-tree",
                        "expected TREE:NODE[,NODE...], got " + in_quotes(t));
    auto* sel = scope->mutable_asset_trees()->add_trees();
    sel->set_tree_id(t.substr(0, colon));
    std::string rest = t.substr(colon + 1);
    size_t pos = 0;
    for (;;) {
      auto comma = rest.find(',', pos);
      auto node = rest.substr(pos, comma - pos);
      if (node.empty())
        throw usage_error("--asset-tree", "empty node id in " + in_quotes(t));
      sel->add_node_ids(node);
      if (comma == std::string::npos)
        break;
      pos = comma + 1;
    }
  }
  spec.set_method(o.method == "device-request" ? v1::METHOD_DEVICE_REQUEST
                                               : v1::METHOD_CLOUD_PUSH);
  if (!o.time_zone.empty() || !o.windows.empty()) {
    auto* schedule = spec.mutable_schedule();
    schedule->set_time_zone(o.time_zone);
    for (const auto& w : o.windows)
      *schedule->add_windows() = parse_window("--window", w);
  }
  if (!o.rate.empty())
    spec.mutable_rate()->set_max_per_minute(
        static_cast<uint32_t>(parse_uint("--rate", o.rate, UINT32_MAX)));
  if (!o.ramp_up.empty()) {
    static const std::regex re{R"(([^,]+),([^,]+),([^,]+))"};
    std::smatch m;
    if (!std::regex_match(o.ramp_up, m, re))
      throw usage_error("--ramp-up", "expected BASE,FACTOR,STEP, got " +
                                         in_quotes(o.ramp_up));
    auto* ramp = spec.mutable_rate()->mutable_ramp_up();
    ramp->set_base_per_minute(
        static_cast<uint32_t>(parse_uint("--ramp-up", m[1], UINT32_MAX)));
    ramp->set_factor(parse_double("--ramp-up", m[2]));
    ramp->set_successes_per_step(
        static_cast<uint32_t>(parse_uint("--ramp-up", m[3], UINT32_MAX)));
  }
  if (!o.timeout.empty())
    spec.set_timeout_seconds(parse_duration("--timeout", o.timeout));
  if (!o.retries.empty())
    spec.mutable_retry()->set_max_retries(
        static_cast<uint32_t>(parse_uint("--retries", o.retries, UINT32_MAX)));
  if (!o.retry_interval.empty())
    spec.mutable_retry()->set_interval_seconds(
        parse_duration("--retry-interval", o.retry_interval));
  if (!o.abort_percent.empty()) {
    auto percent = parse_double("--abort-percent", o.abort_percent);
    if (percent < 0 || percent > 100)
      throw usage_error("--abort-percent", "expected a percentage from 0 to "
                                           "100, got " +
                                               in_quotes(o.abort_percent));
    spec.mutable_abort()->set_failure_percent(percent);
    spec.mutable_abort()->set_action(o.abort_action == "cancel"
                                         ? v1::ABORT_ACTION_CANCEL
                                         : v1::ABORT_ACTION_PAUSE);
  } else if (!o.abort_min.empty() || !o.abort_action.empty()) {
    throw usage_error(o.abort_min.empty() ? "--abort-action" : "--abort-min",
                      "requires --abort-percent");
  }
  if (!o.abort_min.empty())
    spec.mutable_abort()->set_min_finished(static_cast<uint32_t>(
        parse_uint("--abort-min", o.abort_min, UINT32_MAX)));
  if (!o.end_time.empty())
    spec.set_end_time_ms(parse_time_ms("--end-time", o.end_time));
  if (!o.priority.empty()) {
    auto neg = o.priority[0] == '-';
    auto magnitude = parse_uint(
        "--priority", neg ? o.priority.substr(1) : o.priority, INT32_MAX);
    spec.set_priority(static_cast<int32_t>(
        neg ? -static_cast<int64_t>(magnitude) : magnitude));
  }
  return spec;
}

/// Reads an asset tree from JSON: either an object in the protobuf JSON
/// mapping of `AssetTree` or a bare array of nodes.
v1::AssetTree read_tree(const options& o) {
  auto text = read_file("--file", o.file);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw usage_error("--file",
                      in_quotes(o.file) + " is not JSON: " + e.what());
  }
  if (doc.is_array())
    doc = nlohmann::json{{"nodes", doc}};
  if (!doc.is_object())
    throw usage_error("--file",
                      in_quotes(o.file) +
                          " must hold an object or an array of nodes");
  v1::AssetTree tree;
  auto st = google::protobuf::util::JsonStringToMessage(doc.dump(), &tree);
  if (!st.ok())
    throw usage_error("--file", in_quotes(o.file) + " is not an asset tree: " +
                                    std::string{st.message()});
  tree.set_product_key(o.product);
  tree.set_tree_id(o.tree_id);
  if (!o.tree_name.empty())
    tree.set_name(o.tree_name);
  return tree;
}

/// The size and lower-case hex SHA-256 of the image: read from `--file`, or
/// as given by `--size` and `--sha256`.
std::pair<uint64_t, std::string> image_facts(const options& o) {
  if (!o.image.empty()) {
    if (o.size != 0 || !o.sha256.empty())
      throw usage_error("--file", "give either --file or --size and --sha256");
    auto digest = image_digest(o.image);
    if (!digest)
      throw usage_error("--file", "cannot open " + in_quotes(o.image) + ": " +
                                      std::strerror(errno));
    return *digest;
  }
  if (o.size == 0 || o.sha256.empty())
    throw usage_error("--size", "give --size and --sha256, or --file IMAGE");
  static const std::regex hex{"[0-9a-fA-F]{64}"};
  if (!std::regex_match(o.sha256, hex))
    throw usage_error("--sha256",
                      "expected 64 hex digits, got " + in_quotes(o.sha256));
  std::string digest = o.sha256;
  for (auto& c : digest)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {o.size, digest};
}

/// Writes `text` to a new file `path` with `mode`; refuses to overwrite.
void write_new_file(const std::string& path, const std::string& text,
                    mode_t mode) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    throw usage_error("--out", in_quotes(path) + " exists; not overwriting");
  {
    std::ofstream out{path, std::ios::binary};
    if (!out)
      throw usage_error("--out", "cannot create " + in_quotes(path) + ": " +
                                     std::strerror(errno));
    out << text;
  }
  ::chmod(path.c_str(), mode);
}

/// Adds every subcommand to `app`, binding its options into `o`.
int follow_task(const options& o, bool watch);
int draw_curve(const options& o);

std::vector<command> add_commands(CLI::App& app, options& o) {
  std::vector<command> cmds;
  auto add = [&](CLI::App* sub, std::function<v1::ClientFrame()> build,
                 std::function<void(const v1::Response&)> print = nullptr,
                 std::function<int()> local = nullptr) {
    cmds.push_back(
        command{sub, std::move(build), std::move(print), std::move(local)});
  };
  auto product = [&](CLI::App* sub) {
    sub->add_option("--product", o.product, "product key")->required();
  };
  auto task_id = [&](CLI::App* sub) {
    sub->add_option("id", o.task_id, "task id")->required();
  };
  // `token` says what the page token is, for this list.
  auto paged = [&](CLI::App* sub, const std::string& what,
                   const std::string& token) {
    sub->add_option("--page-size", o.page_size,
                    what + " per page (default 100, at most 1000)");
    sub->add_option("--page-token", o.page_token,
                    token + "; the token printed by the previous page");
  };

  // -- firmware --------------------------------------------------------------

  auto* fw = app.add_subcommand("firmware", "manage the firmware catalog");
  fw->require_subcommand(1);

  // The image: --size and --sha256, or --file to compute them.
  auto image = [&](CLI::App* sub) {
    sub->add_option("--size", o.size, "image size in bytes");
    sub->add_option("--sha256", o.sha256, "SHA-256 of the image, hex");
    sub->add_option("--file", o.image,
                    "the image: its size and SHA-256 are computed");
  };

  auto* fw_add = fw->add_subcommand("add", "register a firmware image");
  product(fw_add);
  fw_add->add_option("--version", o.version, "version string")->required();
  fw_add->add_option("--url", o.url, "where devices download the image")
      ->required();
  image(fw_add);
  auto* sig_text = fw_add->add_option(
      "--signature", o.signature,
      "base64 signature over the manifest, as `firmware sign` prints it");
  fw_add
      ->add_option("--signature-file", o.signature_file,
                   "file holding the raw signature bytes")
      ->excludes(sig_text);
  fw_add->add_option("--description", o.description, "free text");
  add(fw_add, [&] {
    auto [size, digest] = image_facts(o);
    v1::ClientFrame f;
    auto* x = f.mutable_create_firmware()->mutable_firmware();
    x->set_product_key(o.product);
    x->set_version(o.version);
    x->set_url(o.url);
    x->set_size(size);
    x->set_sha256(digest);
    if (!o.signature.empty()) {
      auto raw = from_base64(o.signature);
      if (!raw)
        throw usage_error("--signature",
                          "expected base64, got " + in_quotes(o.signature));
      x->set_signature(*raw);
    }
    if (!o.signature_file.empty())
      x->set_signature(read_file("--signature-file", o.signature_file));
    x->set_description(o.description);
    return f;
  });

  auto* fw_sign = fw->add_subcommand(
      "sign", "sign a firmware manifest with an Ed25519 private key (no node "
              "needed); prints the base64 signature for `firmware add "
              "--signature`");
  fw_sign
      ->add_option("--key", o.key_file,
                   "private key file: PEM, as `firmware keygen` writes it")
      ->required();
  product(fw_sign);
  fw_sign->add_option("--version", o.version, "version string")->required();
  fw_sign->add_option("--url", o.url, "where devices download the image")
      ->required();
  image(fw_sign);
  add(fw_sign, nullptr, nullptr, [&] {
    auto [size, digest] = image_facts(o);
    for (const auto& [option, value] :
         {std::pair{"--product", &o.product},
          std::pair{"--version", &o.version}, std::pair{"--url", &o.url}})
      if (has_control_character(*value))
        throw usage_error(option, "must not contain control characters");
    auto manifest =
        canonical_manifest(o.product, o.version, size, digest, o.url);
    auto sig = sign_message(read_file("--key", o.key_file), manifest);
    if (!sig)
      throw usage_error("--key",
                        in_quotes(o.key_file) + ": " + sig.error().message);
    if (o.json)
      fmt::print("{}\n", nlohmann::json{{"signature", to_base64(*sig)},
                                        {"manifest", manifest},
                                        {"size", size},
                                        {"sha256", digest}}
                             .dump(2));
    else
      fmt::print("{}\n", to_base64(*sig));
    return exit_ok;
  });

  auto* fw_keygen = fw->add_subcommand(
      "keygen", "write a new Ed25519 key pair: PREFIX.key (private, PEM, "
                "mode 0600) and PREFIX.pub (public, PEM) (no node needed)");
  fw_keygen->add_option("--out", o.out_prefix, "path prefix of the two files")
      ->required();
  add(fw_keygen, nullptr, nullptr, [&] {
    auto keys = generate_key_pair();
    if (!keys)
      throw usage_error("keygen", keys.error().message);
    auto priv = o.out_prefix + ".key";
    auto pub = o.out_prefix + ".pub";
    if (std::filesystem::exists(pub))
      throw usage_error("--out", in_quotes(pub) + " exists; not overwriting");
    write_new_file(priv, keys->private_pem, 0600);
    write_new_file(pub, keys->public_pem, 0644);
    auto raw = to_base64(keys->public_raw);
    if (o.json)
      fmt::print("{}\n", nlohmann::json{{"private_key_file", priv},
                                        {"public_key_file", pub},
                                        {"public_key", raw}}
                             .dump(2));
    else
      fmt::print("wrote {} (keep it secret) and {}\npublic key (base64): {}\n",
                 priv, pub, raw);
    return exit_ok;
  });

  auto* fw_verify = fw->add_subcommand(
      "verify", "verify firmware by pushing it to 1 to 5 devices");
  product(fw_verify);
  fw_verify->add_option("--version", o.version, "version string")->required();
  fw_verify->add_option("--device", o.devices, "device key (repeatable, 1-5)")
      ->required();
  fw_verify->add_option("--timeout", o.verify_timeout,
                        "per-device timeout: SECONDS, 30m, 2h");
  add(fw_verify, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_verify_firmware();
    x->set_product_key(o.product);
    x->set_version(o.version);
    for (const auto& d : o.devices)
      x->add_device_keys(d);
    if (!o.verify_timeout.empty())
      x->set_timeout_seconds(parse_duration("--timeout", o.verify_timeout));
    return f;
  });

  auto* fw_skip = fw->add_subcommand(
      "skip-verification",
      "attest firmware without a verification run; the reason is recorded");
  product(fw_skip);
  fw_skip->add_option("--version", o.version, "version string")->required();
  fw_skip->add_option("--reason", o.reason, "why no run is needed (required)")
      ->required();
  add(fw_skip, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_skip_verification();
    x->set_product_key(o.product);
    x->set_version(o.version);
    x->set_reason(o.reason);
    return f;
  });

  auto* fw_show = fw->add_subcommand("show", "show one firmware");
  product(fw_show);
  fw_show->add_option("--version", o.version, "version string")->required();
  add(fw_show, [&] {
    v1::ClientFrame f;
    f.mutable_get_firmware()->set_product_key(o.product);
    f.mutable_get_firmware()->set_version(o.version);
    return f;
  });

  auto* fw_list = fw->add_subcommand("list", "list firmware");
  fw_list->add_option("--product", o.product, "only this product");
  paged(fw_list, "firmware",
        "offset: the number of firmware (of --product) on the pages before");
  add(fw_list, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_list_firmware();
    x->set_product_key(o.product);
    x->set_page_size(o.page_size);
    x->set_page_token(o.page_token);
    return f;
  });

  auto* fw_delete = fw->add_subcommand("delete", "delete a firmware");
  product(fw_delete);
  fw_delete->add_option("--version", o.version, "version string")->required();
  add(
      fw_delete,
      [&] {
        v1::ClientFrame f;
        f.mutable_delete_firmware()->set_product_key(o.product);
        f.mutable_delete_firmware()->set_version(o.version);
        return f;
      },
      [&](const v1::Response&) {
        fmt::print("deleted firmware {} {}\n", o.product, o.version);
      });

  // -- task ------------------------------------------------------------------

  auto* task = app.add_subcommand("task", "manage batch upgrade tasks");
  task->require_subcommand(1);

  auto* t_create = task->add_subcommand("create", "create a batch upgrade");
  product(t_create);
  t_create->add_option("--target", o.target, "target firmware version")
      ->required();
  t_create->add_option("--source", o.sources, "source version (repeatable)")
      ->required();
  t_create->add_option("--strategy", o.strategy, "snapshot or increment")
      ->check(CLI::IsMember({"snapshot", "increment"}));
  t_create
      ->add_option("--scope", o.scope,
                   "all or target (default: target when a filter is "
                   "given)")
      ->check(CLI::IsMember({"all", "target"}));
  t_create->add_option("--device", o.devices, "device key filter (repeatable)");
  t_create->add_option("--tag", o.tag, "tag filter KEY=VALUE");
  t_create->add_option("--attribute", o.attribute,
                       "attribute filter NAME=VALUE");
  t_create->add_option("--asset-tree", o.asset_trees,
                       "asset tree filter TREE:NODE[,NODE] (repeatable)");
  t_create->add_option("--method", o.method, "cloud-push or device-request")
      ->check(CLI::IsMember({"cloud-push", "device-request"}));
  t_create->add_option("--window", o.windows,
                       "daily window HH:MM-HH:MM (repeatable)");
  t_create->add_option("--time-zone", o.time_zone,
                       "IANA time zone of the windows (default UTC)");
  t_create->add_option("--rate", o.rate, "maximum pushes per minute");
  t_create->add_option("--ramp-up", o.ramp_up,
                       "exponential ramp-up BASE,FACTOR,STEP");
  t_create->add_option("--timeout", o.timeout,
                       "per-device timeout: SECONDS, 30m, 2h");
  t_create->add_option("--retries", o.retries, "retries (0-10)");
  t_create->add_option("--retry-interval", o.retry_interval,
                       "pause before a retry: SECONDS, 30m, 2h");
  t_create->add_option("--abort-percent", o.abort_percent,
                       "abort when this percentage of finished executions "
                       "failed");
  t_create->add_option("--abort-min", o.abort_min,
                       "finished executions before the abort rule applies");
  t_create->add_option("--abort-action", o.abort_action, "pause or cancel")
      ->check(CLI::IsMember({"pause", "cancel"}));
  t_create->add_option("--end-time", o.end_time,
                       "end of an increment task, ISO-8601");
  t_create->add_option("--priority", o.priority, "priority between tasks");
  t_create->add_option("--name", o.name, "task name");
  t_create->add_flag("--dry-run", o.dry_run,
                     "validate and show what the task would do (devices in "
                     "scope by version, online, busy, ETA); creates nothing");
  add(t_create, [&] {
    v1::ClientFrame f;
    if (o.dry_run)
      *f.mutable_preview_task()->mutable_spec() = build_task_spec(o);
    else
      *f.mutable_create_task()->mutable_spec() = build_task_spec(o);
    return f;
  });

  auto* t_show = task->add_subcommand(
      "show", "show a task, its counters and its forecast (rate, window, "
              "retries, online share, ETA, what holds it back)");
  task_id(t_show);
  add(
      t_show,
      [&] {
        v1::ClientFrame f;
        f.mutable_get_task()->set_task_id(o.task_id);
        return f;
      },
      print_task_response);

  auto* t_list = task->add_subcommand("list", "list tasks");
  paged(t_list, "tasks", "the task id to continue after");
  t_list->add_option("--product", o.product, "only tasks of this product");
  t_list
      ->add_option("--status", o.statuses,
                   "only tasks in this status (repeatable): running, paused, "
                   "canceled, completed")
      ->check(CLI::IsMember({"running", "paused", "canceled", "completed"}));
  t_list->add_option("--firmware", o.firmware,
                     "only tasks with this target version");
  add(t_list, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_list_tasks();
    x->set_page_size(o.page_size);
    x->set_page_token(o.page_token);
    x->set_product_key(o.product);
    x->set_target_version(o.firmware);
    for (const auto& s : o.statuses) {
      auto upper = s;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](char c) { return static_cast<char>(std::toupper(c)); });
      v1::TaskStatus status{};
      v1::TaskStatus_Parse("TASK_STATUS_" + upper, &status);
      x->add_statuses(status);
    }
    return f;
  });

  auto* t_details =
      task->add_subcommand("details", "list the executions of a task");
  task_id(t_details);
  t_details
      ->add_option("--state", o.states,
                   "only this state (repeatable): queued, notified, "
                   "in-progress, succeeded, failed, timed-out, canceled")
      ->check(CLI::IsMember({"queued", "notified", "in-progress", "succeeded",
                             "failed", "timed-out", "canceled"}));
  t_details
      ->add_flag("--skipped", o.skipped,
                 "list the devices the task skipped, and why, instead of "
                 "its executions; replaces the --state filter, so not with "
                 "--state")
      ->excludes("--state");
  t_details->add_option("--page-size", o.page_size,
                        "executions (or skipped devices) per page (default "
                        "100, at most 1000)");
  t_details->add_option(
      "--page-token", o.page_token,
      "the execution sequence to continue after; with --skipped, offset: "
      "the number of skipped devices on the pages before; the token "
      "printed by the previous page");
  add(t_details, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_get_task_details();
    x->set_task_id(o.task_id);
    for (const auto& s : o.states)
      x->add_states(parse_state(s));
    x->set_skipped(o.skipped);
    x->set_page_size(o.page_size);
    if (!o.page_token.empty())
      x->set_page_token(parse_uint("--page-token", o.page_token));
    return f;
  });

  auto control = [&](const char* name, const char* help, const char* done,
                     void (*fill)(v1::ClientFrame&, uint64_t)) {
    auto* sub = task->add_subcommand(name, help);
    task_id(sub);
    add(
        sub,
        [&o, fill] {
          v1::ClientFrame f;
          fill(f, o.task_id);
          return f;
        },
        [&o, done](const v1::Response& r) {
          if (r.has_task())
            fmt::print("task {} {}: {}\n", o.task_id, done,
                       name_of(r.task().status()));
          else
            fmt::print("task {} {}\n", o.task_id, done);
        });
  };
  control("pause", "pause a task", "paused",
          [](v1::ClientFrame& f, uint64_t id) {
            f.mutable_pause_task()->set_task_id(id);
          });
  control("resume", "resume a paused task", "resumed",
          [](v1::ClientFrame& f, uint64_t id) {
            f.mutable_resume_task()->set_task_id(id);
          });
  control("cancel", "cancel a task", "canceled",
          [](v1::ClientFrame& f, uint64_t id) {
            f.mutable_cancel_task()->set_task_id(id);
          });

  auto* t_wait = task->add_subcommand(
      "wait", "wait until a task ends; exit 0 COMPLETED without failures, 4 "
              "COMPLETED with failures, 5 CANCELED, 6 timeout");
  task_id(t_wait);
  t_wait->add_option("--timeout", o.wait_timeout,
                     "give up after this long: 500ms, 90s, 30m, 2h (default: "
                     "wait for ever)");
  t_wait
      ->add_option("--interval", o.interval,
                   "how often to ask the node: 500ms, 2s, ...")
      ->capture_default_str();
  cmds.push_back(command{t_wait, nullptr, nullptr,
                         [&o] { return follow_task(o, false); }});

  auto* t_watch = task->add_subcommand(
      "watch", "follow a task live until it ends: a view that refreshes in "
               "place on a terminal, a line every interval otherwise; exit "
               "codes as task wait");
  task_id(t_watch);
  t_watch->add_option("--timeout", o.wait_timeout,
                      "stop after this long (exit 6): 500ms, 90s, 30m, 2h");
  t_watch
      ->add_option("--interval", o.interval,
                   "how often to refresh: 500ms, 2s, ...")
      ->capture_default_str();
  cmds.push_back(command{t_watch, nullptr, nullptr,
                         [&o] { return follow_task(o, true); }});

  auto* t_history = task->add_subcommand(
      "history", "the task's events from the event log, in order, with "
                 "times; with --at, the task as it was then");
  task_id(t_history);
  paged(t_history, "events", "the log sequence to continue at");
  t_history->add_option("--at", o.at,
                        "show only the events up to this time and the "
                        "task's status and counts then (RFC 3339, e.g. "
                        "2026-03-01T08:00:00Z)");
  add(
      t_history,
      [&] {
        v1::ClientFrame f;
        auto* x = f.mutable_get_task_history();
        x->set_task_id(o.task_id);
        x->set_page_size(o.page_size);
        x->set_page_token(o.page_token);
        if (!o.at.empty())
          x->set_at_ms(parse_time_ms("--at", o.at));
        return f;
      },
      [](const v1::Response& r) { print_history(r.history(), true); });

  auto* t_curve = task->add_subcommand(
      "curve", "draw the task's rollout curve (pushes, successes and "
               "failures per second) from its event history, as the fleet "
               "benchmark's curves");
  task_id(t_curve);
  t_curve->add_option("--svg", o.svg_file,
                      "write the curve as SVG (runs gnuplot; Debian: "
                      "gnuplot-nox)");
  t_curve->add_option("--csv", o.csv_file, "write the per-second bins as CSV");
  cmds.push_back(
      command{t_curve, nullptr, nullptr, [&o] { return draw_curve(o); }});

  // -- device ----------------------------------------------------------------

  auto* dev = app.add_subcommand("device", "inspect and label devices");
  dev->require_subcommand(1);

  auto* d_list = dev->add_subcommand("list", "list the devices of a product");
  product(d_list);
  d_list->add_option("--version", o.version, "only devices on this version");
  paged(d_list, "devices",
        "offset into the node's device index (all products, in order of "
        "registration) to start at; not a device key");
  add(d_list, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_list_devices();
    x->set_product_key(o.product);
    x->set_version(o.version);
    x->set_page_size(o.page_size);
    x->set_page_token(o.page_token);
    return f;
  });

  auto* d_show = dev->add_subcommand("show", "show one device");
  product(d_show);
  d_show->add_option("--device", o.device, "device key")->required();
  add(d_show, [&] {
    v1::ClientFrame f;
    f.mutable_get_device()->set_product_key(o.product);
    f.mutable_get_device()->set_device_key(o.device);
    return f;
  });

  auto* d_tag =
      dev->add_subcommand("tag", "set tags; an empty value removes one");
  product(d_tag);
  d_tag->add_option("--device", o.device, "device key")->required();
  d_tag->add_option("tags", o.pairs, "KEY=VALUE ...")->required();
  add(
      d_tag,
      [&] {
        v1::ClientFrame f;
        auto* x = f.mutable_set_device_tags();
        x->set_product_key(o.product);
        x->set_device_key(o.device);
        for (const auto& p : o.pairs) {
          auto [k, v] = parse_pair("tags", p, "KEY=VALUE");
          (*x->mutable_tags())[k] = v;
        }
        return f;
      },
      [&](const v1::Response& r) {
        if (r.has_device())
          print_device(r.device());
        else
          fmt::print("tagged device {}\n", o.device);
      });

  auto* d_attr = dev->add_subcommand(
      "attribute", "set attributes; an empty value removes one");
  product(d_attr);
  d_attr->add_option("--device", o.device, "device key")->required();
  d_attr->add_option("attributes", o.pairs, "NAME=VALUE ...")->required();
  add(
      d_attr,
      [&] {
        v1::ClientFrame f;
        auto* x = f.mutable_set_device_attributes();
        x->set_product_key(o.product);
        x->set_device_key(o.device);
        for (const auto& p : o.pairs) {
          auto [k, v] = parse_pair("attributes", p, "NAME=VALUE");
          (*x->mutable_attributes())[k] = v;
        }
        return f;
      },
      [&](const v1::Response& r) {
        if (r.has_device())
          print_device(r.device());
        else
          fmt::print("set attributes of device {}\n", o.device);
      });

  auto* d_move = dev->add_subcommand(
      "move", "hand a device to another configured gateway");
  product(d_move);
  d_move->add_option("--device", o.device, "device key")->required();
  d_move->add_option("--gateway", o.gateway, "name of the new gateway")
      ->required();
  add(
      d_move,
      [&] {
        v1::ClientFrame f;
        auto* x = f.mutable_move_device();
        x->set_product_key(o.product);
        x->set_device_key(o.device);
        x->set_gateway(o.gateway);
        return f;
      },
      [&](const v1::Response& r) {
        if (r.has_device())
          print_device(r.device());
      });

  auto* d_history = dev->add_subcommand(
      "history", "the device's events from the event log, in order, with "
                 "times; with --at, the device as it was then");
  product(d_history);
  d_history->add_option("--device", o.device, "device key")->required();
  paged(d_history, "events", "the log sequence to continue at");
  d_history->add_option("--at", o.at,
                        "show only the events up to this time and the "
                        "device's version and execution then (RFC 3339, "
                        "e.g. 2026-03-01T08:00:00Z)");
  add(
      d_history,
      [&] {
        v1::ClientFrame f;
        auto* x = f.mutable_get_device_history();
        x->set_product_key(o.product);
        x->set_device_key(o.device);
        x->set_page_size(o.page_size);
        x->set_page_token(o.page_token);
        if (!o.at.empty())
          x->set_at_ms(parse_time_ms("--at", o.at));
        return f;
      },
      [](const v1::Response& r) { print_history(r.history(), false); });

  // -- tree ------------------------------------------------------------------

  // -- node ------------------------------------------------------------------

  auto* node = app.add_subcommand("node", "inspect the node");
  node->require_subcommand(1);
  auto* n_digest = node->add_subcommand(
      "digest",
      "digest of the node's durable state; a node and its log replayed into "
      "a fresh node give the same");
  add(n_digest, [&] {
    v1::ClientFrame f;
    f.mutable_get_state_digest();
    return f;
  });

  auto* tree = app.add_subcommand("tree", "manage asset trees");
  tree->require_subcommand(1);

  auto* tr_create =
      tree->add_subcommand("create", "create an asset tree from JSON");
  product(tr_create);
  tr_create->add_option("--id", o.tree_id, "tree id")->required();
  tr_create
      ->add_option("--file", o.file,
                   "JSON: an AssetTree object or an array of nodes "
                   "{node_id, parent_id, name, device_key}")
      ->required();
  tr_create->add_option("--name", o.tree_name, "tree name");
  add(
      tr_create,
      [&] {
        v1::ClientFrame f;
        *f.mutable_create_asset_tree()->mutable_tree() = read_tree(o);
        return f;
      },
      [&](const v1::Response& r) {
        if (r.has_asset_tree())
          print_tree(r.asset_tree());
        else
          fmt::print("created asset tree {}\n", o.tree_id);
      });

  auto* tr_list = tree->add_subcommand("list", "list asset trees");
  product(tr_list);
  paged(tr_list, "trees",
        "offset: the number of trees (of --product) on the pages before");
  add(tr_list, [&] {
    v1::ClientFrame f;
    auto* x = f.mutable_list_asset_trees();
    x->set_product_key(o.product);
    x->set_page_size(o.page_size);
    x->set_page_token(o.page_token);
    return f;
  });

  auto* tr_delete = tree->add_subcommand("delete", "delete an asset tree");
  product(tr_delete);
  tr_delete->add_option("--id", o.tree_id, "tree id")->required();
  add(
      tr_delete,
      [&] {
        v1::ClientFrame f;
        f.mutable_delete_asset_tree()->set_product_key(o.product);
        f.mutable_delete_asset_tree()->set_tree_id(o.tree_id);
        return f;
      },
      [&](const v1::Response&) {
        fmt::print("deleted asset tree {}\n", o.tree_id);
      });

  return cmds;
}

/// Connects and says hello: the session, or the exit code of a failure
/// (reported).
std::variant<client, int> open_session(const options& o) {
  auto fail_unreachable = [&](const failure& err) {
    print_error(o.json, "UNAVAILABLE", err.message);
    return exit_unreachable;
  };
  auto cl = client::connect(o.host, o.port, 5s, o.tls.get());
  if (!cl)
    return fail_unreachable(cl.error());
  auto token = o.token;
  if (!o.token_file.empty()) {
    auto t = read_token_file(o.token_file);
    if (!t) {
      print_error(o.json, "INVALID_ARGUMENT", t.error().message);
      return exit_status;
    }
    token = *t;
  }
  auto hello = cl->hello(token, "fotactl");
  if (!hello)
    return fail_unreachable(hello.error());
  if (hello->status() != v1::STATUS_CODE_OK) {
    print_error(o.json, to_string(hello->status()), hello->message());
    return exit_status;
  }
  return std::move(*cl);
}

/// `task wait` and `task watch`: asks for the task every interval until it
/// ends or the timeout passes; watch draws each answer.
int follow_task(const options& o, bool watch) {
  auto interval = parse_interval("--interval", o.interval);
  if (interval.count() == 0)
    throw usage_error("--interval", "must be longer than 0");
  std::optional<std::chrono::milliseconds> timeout;
  if (!o.wait_timeout.empty())
    timeout = parse_interval("--timeout", o.wait_timeout);
  auto session = open_session(o);
  if (auto* code = std::get_if<int>(&session))
    return *code;
  auto& cl = std::get<client>(session);
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout)
    deadline = std::chrono::steady_clock::now() + *timeout;
  bool screen = watch && !o.json && ::isatty(STDOUT_FILENO) == 1;
  for (;;) {
    v1::ClientFrame f;
    f.mutable_get_task()->set_task_id(o.task_id);
    auto res = cl.call(std::move(f), std::chrono::seconds{o.call_timeout});
    if (!res) {
      print_error(o.json, "UNAVAILABLE", res.error().message);
      return exit_unreachable;
    }
    if (res->status() != v1::STATUS_CODE_OK) {
      print_error(o.json, to_string(res->status()), res->message());
      return exit_status;
    }
    const auto& t = res->task();
    auto now = now_ms();
    if (watch && !o.json) {
      if (screen)
        print_watch_screen(*res, now);
      else
        fmt::print("{}\n", watch_line(*res, now));
      std::fflush(stdout);
    }
    if (is_finished(t.status())) {
      auto code = exit_code_of(t);
      const auto& c = t.counters();
      if (o.json)
        print_json(*res);
      else
        fmt::print("task {} {}: {} succeeded, {} failed, {} timed out, {} "
                   "canceled, {} skipped\n",
                   t.task_id(), name_of(t.status()), c.succeeded(), c.failed(),
                   c.timed_out(), c.canceled(), c.skipped());
      return code;
    }
    auto left = deadline ? *deadline - std::chrono::steady_clock::now()
                         : std::chrono::steady_clock::duration::max();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      print_error(o.json, "TIMEOUT",
                  fmt::format("task {} is still {} after {}", o.task_id,
                              name_of(t.status()), o.wait_timeout));
      return exit_timeout;
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(interval, left));
  }
}

/// `task curve`: fetches the task's whole history, page by page, bins it
/// per second and writes the CSV and/or the SVG (with gnuplot).
int draw_curve(const options& o) {
  if (o.svg_file.empty() && o.csv_file.empty())
    throw usage_error("--svg", "give --svg FILE, --csv FILE or both");
  std::string gnuplot;
  if (!o.svg_file.empty()) {
    gnuplot = curve::find_gnuplot();
    if (gnuplot.empty())
      throw usage_error("--svg", "gnuplot is not installed (on PATH); "
                                 "install it (Debian: apt-get install "
                                 "gnuplot-nox) or write --csv only");
  }
  auto session = open_session(o);
  if (auto* code = std::get_if<int>(&session))
    return *code;
  auto& cl = std::get<client>(session);
  std::vector<v1::HistoryEntry> entries;
  std::string token;
  do {
    v1::ClientFrame f;
    auto* x = f.mutable_get_task_history();
    x->set_task_id(o.task_id);
    x->set_page_size(1000);
    x->set_page_token(token);
    auto res = cl.call(std::move(f), std::chrono::seconds{o.call_timeout});
    if (!res) {
      print_error(o.json, "UNAVAILABLE", res.error().message);
      return exit_unreachable;
    }
    if (res->status() != v1::STATUS_CODE_OK) {
      print_error(o.json, to_string(res->status()), res->message());
      return exit_status;
    }
    for (auto& e : *res->mutable_history()->mutable_entries())
      entries.push_back(std::move(e));
    token = res->history().next_page_token();
  } while (!token.empty());
  auto bins = curve::bin_rollout(entries);
  auto csv_text = curve::to_csv(bins);
  // gnuplot reads the bins from a file: the one asked for, or a temporary.
  auto csv_path = o.csv_file;
  std::optional<std::filesystem::path> scratch;
  if (csv_path.empty()) {
    auto pattern =
        (std::filesystem::temp_directory_path() / "fotactl-curve-XXXXXX")
            .string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw usage_error("--svg", "cannot create a temporary directory: " +
                                     std::string{std::strerror(errno)});
    scratch = pattern;
    csv_path = (*scratch / "curve.csv").string();
  }
  {
    std::ofstream out{csv_path, std::ios::binary};
    out << csv_text;
    if (!out.flush())
      throw usage_error(o.csv_file.empty() ? "--svg" : "--csv",
                        "cannot write " + in_quotes(csv_path) + ": " +
                            std::strerror(errno));
  }
  std::string failed;
  if (!o.svg_file.empty())
    failed = curve::plot(gnuplot, csv_path, o.svg_file,
                         fmt::format("Rollout (task {}): from the event log, "
                                     "per second",
                                     o.task_id));
  if (scratch) {
    std::error_code ec;
    std::filesystem::remove_all(*scratch, ec);
  }
  if (!failed.empty()) {
    print_error(o.json, "GNUPLOT", failed);
    return exit_status;
  }
  uint64_t pushes = bins.empty() ? 0 : bins.back().total_pushes;
  uint64_t successes = bins.empty() ? 0 : bins.back().total_successes;
  uint64_t failures = bins.empty() ? 0 : bins.back().total_failures;
  if (o.json) {
    nlohmann::json out{{"task_id", o.task_id},   {"events", entries.size()},
                       {"seconds", bins.size()}, {"pushes", pushes},
                       {"successes", successes}, {"failures", failures}};
    if (!o.csv_file.empty())
      out["csv"] = o.csv_file;
    if (!o.svg_file.empty())
      out["svg"] = o.svg_file;
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("task {}: {} events over {} s: {} pushes, {} successes, {} "
               "failures\n",
               o.task_id, entries.size(), bins.size(), pushes, successes,
               failures);
    if (!o.csv_file.empty())
      fmt::print("wrote {}\n", o.csv_file);
    if (!o.svg_file.empty())
      fmt::print("wrote {}\n", o.svg_file);
  }
  return exit_ok;
}

/// Connects, says hello and sends the request; prints the outcome.
int run(const options& o, const command& cmd, v1::ClientFrame request) {
  auto session = open_session(o);
  if (auto* code = std::get_if<int>(&session))
    return *code;
  auto* cl = &std::get<client>(session);
  auto res = cl->call(std::move(request), std::chrono::seconds{o.call_timeout});
  if (!res) {
    print_error(o.json, "UNAVAILABLE", res.error().message);
    return exit_unreachable;
  }
  if (res->status() != v1::STATUS_CODE_OK) {
    print_error(o.json, to_string(res->status()), res->message());
    return exit_status;
  }
  if (o.json)
    print_json(*res);
  else if (cmd.print)
    cmd.print(*res);
  else
    print_result(*res);
  return exit_ok;
}

// -- unknown commands --------------------------------------------------------

/// The number of single-character edits that turn `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// Explains a parse error that stems from a missing or unknown subcommand,
/// naming the word and the commands that were expected, e.g. `fotactl
/// task: unknown command "frobnicate"; expected one of: create, show, ...`.
/// Returns nothing for any other error.
std::optional<std::string> command_error(CLI::App& app,
                                         const CLI::ParseError& e) {
  // The innermost command given.
  CLI::App* cur = &app;
  std::string path = "fotactl";
  for (auto parsed = cur->get_subcommands(); !parsed.empty();
       parsed = cur->get_subcommands()) {
    cur = parsed.front();
    path += " " + cur->get_name();
  }
  // Option groups are nameless subcommands.
  auto children =
      cur->get_subcommands([](CLI::App* c) { return !c->get_name().empty(); });
  if (children.empty())
    return std::nullopt;
  std::string expected;
  for (const auto* c : children)
    expected += (expected.empty() ? "" : ", ") + c->get_name();
  for (const auto& word : app.remaining(true)) {
    if (word.empty() || word[0] == '-')
      continue;
    auto out = path + ": unknown command \"" + word +
               "\"; expected one of: " + expected;
    // The closest command, if it is close: a prefix or two edits away.
    const CLI::App* best = nullptr;
    size_t best_distance = 3;
    for (const auto* c : children) {
      auto d = c->get_name().rfind(word, 0) == 0
                   ? 0
                   : edit_distance(word, c->get_name());
      if (d < best_distance && d < c->get_name().size()) {
        best = c;
        best_distance = d;
      }
    }
    if (best != nullptr)
      out += "; did you mean \"" + best->get_name() + "\"?";
    return out;
  }
  if (dynamic_cast<const CLI::RequiredError*>(&e) == nullptr)
    return std::nullopt;
  return path + ": a command is required; expected one of: " + expected;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (const auto* env = std::getenv("FOTA_TOKEN"); env != nullptr && *env)
    o.token = env;
  else
    o.token = "operator-token";
  CLI::App app{"fotactl: operate a fota node: firmware, tasks, devices and "
               "asset trees"};
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", version_line("fotactl"));
  app.add_option("--host", o.host, "node address")->capture_default_str();
  app.add_option("--port", o.port, "node port")->capture_default_str();
  app.add_option("--token", o.token,
                 "operator token (default: $FOTA_TOKEN or operator-token); "
                 "prefer --token-file or the environment: a command line is "
                 "visible to every user of the machine");
  app.add_option("--token-file", o.token_file,
                 "file holding the operator token");
  add_tls_options(app, o.tls);
  app.add_flag("--json", o.json, "print results as JSON");
  app.add_option("--call-timeout", o.call_timeout,
                 "seconds to wait for the node's answer")
      ->capture_default_str();
  auto cmds = add_commands(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    auto why = command_error(app, e);
    fmt::print(stderr, "error: {}\nRun with --help for more information.\n",
               why ? *why : std::string{e.what()});
    return exit_usage;
  }
  for (const auto& cmd : cmds) {
    if (!cmd.app->parsed())
      continue;
    v1::ClientFrame request;
    try {
      if (cmd.local)
        return cmd.local();
      request = cmd.build();
    } catch (const usage_error& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      return exit_usage;
    }
    return run(o, cmd, std::move(request));
  }
  fmt::print(stderr, "error: no command given\n");
  return exit_usage;
}
