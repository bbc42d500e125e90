/// Snapshots: the whole `world` after one log sequence, encoded as
/// `fota.v1.Snapshot` (columnar, see proto/fota/v1/snapshot.proto). A node
/// starts from the latest snapshot and replays only the events after it.
/// Decoding checks everything it reads, so that a snapshot that is damaged,
/// inconsistent or written in a format this version does not know is
/// refused with a precise error, and the node replays from zero instead:
/// a snapshot is never misread.
#pragma once

#include "events/error.hpp"
#include "events/replay.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace fota {

/// The layout `encode_snapshot` writes and the only one `decode_snapshot`
/// reads. Raise it whenever the meaning of a field changes or a field that
/// a reader must not skip is added.
constexpr uint32_t snapshot_format_version = 1;

/// Encodes `w` (every aggregate, the device holders, where tasks were
/// created and verifications started, and `w.last_sequence`).
std::string encode_snapshot(const world& w);

/// Decodes a snapshot and rebuilds the indexes it does not store (the
/// device directory, each task's device lookup). Fails with
/// `errc::corrupted` naming what is wrong: bytes that do not parse, a
/// format version other than `snapshot_format_version`, a column of the
/// wrong length, an index out of range, a device registered twice, an
/// execution state that does not exist, counters that do not match the
/// executions, a device held by an execution that does not hold it.
expected<world> decode_snapshot(std::string_view bytes);

/// The format version and last sequence a snapshot claims, read without
/// decoding the rest; fails when even that does not parse.
struct snapshot_header {
  uint32_t format_version = 0;
  sequence_number last_sequence;
};
expected<snapshot_header> peek_snapshot(std::string_view bytes);

} // namespace fota
