#include "events/status.hpp"

namespace fota {

v1::StatusCode to_status(errc x) noexcept {
  switch (x) {
  case errc::none:
    return v1::STATUS_CODE_OK;
  case errc::invalid_argument:
    return v1::STATUS_CODE_INVALID_ARGUMENT;
  case errc::not_found:
    return v1::STATUS_CODE_NOT_FOUND;
  case errc::already_exists:
    return v1::STATUS_CODE_ALREADY_EXISTS;
  case errc::failed_precondition:
  case errc::device_busy:
    return v1::STATUS_CODE_FAILED_PRECONDITION;
  case errc::resource_exhausted:
    return v1::STATUS_CODE_RESOURCE_EXHAUSTED;
  case errc::unauthenticated:
    return v1::STATUS_CODE_UNAUTHENTICATED;
  case errc::permission_denied:
    return v1::STATUS_CODE_PERMISSION_DENIED;
  case errc::unavailable:
  case errc::storage_error:
    return v1::STATUS_CODE_UNAVAILABLE;
  case errc::internal:
  case errc::corrupted:
  case errc::data_loss:
    return v1::STATUS_CODE_INTERNAL;
  }
  return v1::STATUS_CODE_INTERNAL;
}

v1::Response error_response(const failure& x) {
  v1::Response r;
  r.set_status(to_status(x.code));
  r.set_message(x.message);
  return r;
}

} // namespace fota
