/// The one table from error codes to wire status codes.
#pragma once

#include "events/error.hpp"
#include "fota/v1/api.pb.h"

namespace fota {

v1::StatusCode to_status(errc x) noexcept;

/// A response carrying `x` as status and message.
v1::Response error_response(const failure& x);

} // namespace fota
