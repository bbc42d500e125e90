/// How fotad, fotactl and fota-sim say which build they are.
#pragma once

#include "fota/version.hpp"

#include <string>

namespace fota {

/// "fotad 0.1.0 (commit 1a2b3c4d5e6f)", or without the commit when the
/// build did not know it.
inline std::string version_line(const std::string& program) {
  std::string out = program + " " + build::version;
  if (*build::git_commit != '\0')
    out += std::string{" (commit "} + build::git_commit + ")";
  return out;
}

} // namespace fota
