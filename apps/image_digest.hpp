/// The size and SHA-256 of a firmware image file, for the command-line tools
/// that sign (fotactl) and check (fota-sim) images.
#pragma once

#include "events/manifest.hpp"

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fota {

/// The size and lower-case hex SHA-256 of the file at `path`, or nullopt
/// when it cannot be opened.
inline std::optional<std::pair<uint64_t, std::string>>
image_digest(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return std::nullopt;
  sha256_hasher h;
  uint64_t size = 0;
  std::string buf(1 << 16, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    h.update(std::string_view{buf.data(), n});
    size += n;
  }
  return std::make_pair(size, h.hex_digest());
}

} // namespace fota
