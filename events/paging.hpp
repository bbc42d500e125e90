/// Page tokens and page sizes of the list requests, read the same way by
/// every actor that answers one.
#pragma once

#include "events/error.hpp"
#include "events/limits.hpp"

#include <cstdint>
#include <string>

namespace fota {

/// Parses a page token, the decimal position (or key) a page starts after;
/// an empty token is 0, the first page.
inline expected<uint64_t> page_position(const std::string& token) {
  uint64_t x = 0;
  for (char c : token) {
    if (c < '0' || c > '9' || x > (UINT64_MAX - 9) / 10)
      return make_failure(errc::invalid_argument,
                          "page_token: \"" + token + "\" is not a page token");
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  return x;
}

/// The number of items on a page: 0 asks for the default.
inline uint32_t page_size_of(uint32_t requested) {
  return requested == 0 ? limits::default_page_size : requested;
}

} // namespace fota
