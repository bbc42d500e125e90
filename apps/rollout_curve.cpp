#include "apps/rollout_curve.hpp"

#include "apps/rollout_curve_gp.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <sys/wait.h>
#include <unistd.h>

namespace fota::curve {

std::vector<bin> bin_rollout(const std::vector<v1::HistoryEntry>& entries) {
  std::vector<bin> out;
  if (entries.empty())
    return out;
  auto start = entries.front().time_ms();
  for (const auto& e : entries) {
    auto second = e.time_ms() <= start ? 0 : (e.time_ms() - start) / 1000;
    while (static_cast<int64_t>(out.size()) <= second) {
      bin b;
      b.second = static_cast<int64_t>(out.size());
      out.push_back(b);
    }
    auto& b = out[static_cast<size_t>(second)];
    const auto& kind = e.kind();
    if (kind == "ExecutionNotified")
      ++b.pushes;
    else if (kind == "ExecutionSucceeded")
      ++b.successes;
    else if (kind == "ExecutionFailed" || kind == "ExecutionTimedOut")
      ++b.failures;
  }
  uint64_t pushes = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  for (auto& b : out) {
    b.total_pushes = pushes += b.pushes;
    b.total_successes = successes += b.successes;
    b.total_failures = failures += b.failures;
  }
  return out;
}

std::string to_csv(const std::vector<bin>& bins) {
  std::string out = "t_s,pushes_per_s,successes_per_s,failures_per_s,pushes,"
                    "successes,failures\n";
  for (const auto& b : bins) {
    out += std::to_string(b.second) + "," + std::to_string(b.pushes) + "," +
           std::to_string(b.successes) + "," + std::to_string(b.failures) +
           "," + std::to_string(b.total_pushes) + "," +
           std::to_string(b.total_successes) + "," +
           std::to_string(b.total_failures) + "\n";
  }
  return out;
}

const char* gnuplot_program() {
  return rollout_curve_gp;
}

std::string gnuplot_quote(const std::string& x) {
  std::string out = "'";
  for (char c : x) {
    if (c == '\'')
      out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  if (path == nullptr)
    return {};
  std::string_view rest{path};
  while (true) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    std::string candidate{dir.empty() ? std::string_view{"."} : dir};
    candidate += "/gnuplot";
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string_view::npos)
      return {};
    rest.remove_prefix(colon + 1);
  }
}

std::string plot(const std::string& gnuplot, const std::string& csv,
                 const std::string& svg, const std::string& title) {
  auto command = "'" + gnuplot + "' 2>&1";
  FILE* p = ::popen(command.c_str(), "w");
  if (p == nullptr)
    return "cannot run " + gnuplot + ": " + std::strerror(errno);
  auto program =
      "csv = " + gnuplot_quote(csv) + "\nsvg = " + gnuplot_quote(svg) +
      "\ntitle = " + gnuplot_quote(title) + "\nrss = 0\n" + gnuplot_program();
  auto written = std::fwrite(program.data(), 1, program.size(), p);
  auto rc = ::pclose(p);
  if (written != program.size())
    return "cannot write the program to " + gnuplot;
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
    return gnuplot + " failed (exit status " +
           std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : rc) + ")";
  return {};
}

} // namespace fota::curve
