/// Helpers shared by the benchmarks: a fresh data directory per run, and
/// the process's memory as Linux reports it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace fota::bench {

/// Creates a fresh directory under the system's temp directory (TMPDIR),
/// named `prefix` plus a unique suffix; empty on failure.
inline std::string make_temp_dir(const std::string& prefix) {
  auto pattern =
      (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr)
    return {};
  return pattern;
}

inline void remove_dir(const std::string& path) {
  std::error_code ec;
  if (!path.empty())
    std::filesystem::remove_all(path, ec);
}

/// Reads a `kB` field such as VmRSS or VmHWM from /proc/self/status, in
/// bytes; 0 when not found.
inline uint64_t proc_status_bytes(const std::string& field) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, field.size() + 1, field + ":") == 0)
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
  return 0;
}

/// Resets VmHWM to the current RSS (Linux 4.0 and later).
inline void reset_peak_rss() {
  std::ofstream out{"/proc/self/clear_refs"};
  out << "5";
}

} // namespace fota::bench
