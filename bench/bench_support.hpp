/// Helpers shared by the benchmarks: a fresh data directory per run.
#pragma once

#include <cstdlib>
#include <filesystem>
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

} // namespace fota::bench
