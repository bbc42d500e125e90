/// Reads the end of RocksDB's newest write-ahead log to tell a write torn by
/// a crash from a clean end. RocksDB's recovery
/// (`kTolerateCorruptedTailRecords`) drops such a tail without a word; the
/// event log reports it.
#pragma once

#include "events/error.hpp"

#include <cstdint>
#include <string>

namespace fota::storage {

/// What the end of the newest WAL file holds.
struct wal_tail {
  /// The file's name, e.g. "000009.log"; empty when there is no WAL.
  std::string file;
  /// The file's size in bytes.
  uint64_t size = 0;
  /// Bytes at the end that are no whole record: the start of a write that
  /// never completed. RocksDB drops them at recovery.
  uint64_t torn_bytes = 0;
  /// Whether the file is in the record format this scan knows (RocksDB's
  /// legacy, non-recycled records); when not, `torn_bytes` is 0.
  bool understood = true;
};

/// Scans the newest `*.log` file in the RocksDB directory `dir` without
/// changing it. Reads the file once, block by block.
expected<wal_tail> scan_wal_tail(const std::string& dir);

} // namespace fota::storage
