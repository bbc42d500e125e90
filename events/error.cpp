#include "events/error.hpp"

namespace fota {

const char* to_string(errc x) noexcept {
  switch (x) {
  case errc::none:
    return "none";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::not_found:
    return "not_found";
  case errc::already_exists:
    return "already_exists";
  case errc::failed_precondition:
    return "failed_precondition";
  case errc::resource_exhausted:
    return "resource_exhausted";
  case errc::unauthenticated:
    return "unauthenticated";
  case errc::permission_denied:
    return "permission_denied";
  case errc::internal:
    return "internal";
  case errc::unavailable:
    return "unavailable";
  case errc::device_busy:
    return "device_busy";
  case errc::storage_error:
    return "storage_error";
  case errc::corrupted:
    return "corrupted";
  case errc::data_loss:
    return "data_loss";
  }
  return "unknown";
}

} // namespace fota
