/// Protobuf messages as JSON for scripts (`fotactl --json`). Protobuf's
/// JSON mapping prints every 64-bit integer as a string; here integers are
/// JSON numbers, except the few beyond 2^53 that readers holding numbers as
/// doubles would round.
#pragma once

#include "events/error.hpp"

#include <cstdint>
#include <string>

#include <google/protobuf/message.h>

namespace fota {

/// The largest integer that every JSON reader holds exactly (2^53).
inline constexpr uint64_t max_exact_json_integer = uint64_t{1} << 53;

/// Returns `msg` as indented JSON: fields under their proto names, every
/// field present (zero values too), enums by name, bytes as base64, times
/// (`*_ms`) as numbers of milliseconds, and integers as numbers when their
/// magnitude is at most 2^53, as decimal strings above it (only execution
/// ids of task ids from 2^21 get there).
expected<std::string> to_json(const google::protobuf::Message& msg);

} // namespace fota
