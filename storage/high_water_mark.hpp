/// The durable high-water mark of the event log: a sequence that the journal
/// has acknowledged as durable, kept outside RocksDB's WAL. RocksDB cannot
/// tell a WAL that was cut at a record boundary, or lost, from one that
/// simply ended there; comparing the log's last sequence with this mark at
/// start can. The mark is a lower bound: it is written at most every
/// `options::high_water_interval` and at a clean close, so the events of the
/// last interval before a crash may lie beyond it.
#pragma once

#include "events/error.hpp"
#include "events/ids.hpp"

#include <optional>
#include <string>

namespace fota::storage {

class high_water_mark {
public:
  // -- constants --------------------------------------------------------------

  /// The mark's file in the data directory. RocksDB leaves files whose names
  /// it does not know alone.
  static constexpr const char* file_name = "FOTA-HIGH-WATER";

  // -- constructors -----------------------------------------------------------

  high_water_mark() = default;

  high_water_mark(high_water_mark&& other) noexcept;

  high_water_mark& operator=(high_water_mark&& other) noexcept;

  high_water_mark(const high_water_mark&) = delete;

  high_water_mark& operator=(const high_water_mark&) = delete;

  ~high_water_mark();

  /// Reads the mark in `dir`. With `writable`, opens its file for
  /// `record`, creating it (without a mark) when missing; otherwise a
  /// missing file means no mark. A file whose slots are both damaged is an
  /// error.
  static expected<high_water_mark> open(const std::string& dir, bool writable);

  // -- properties -------------------------------------------------------------

  /// The recorded sequence, if any was ever recorded.
  std::optional<sequence_number> value() const noexcept { return value_; }

  // -- writing ----------------------------------------------------------------

  /// Records `seq` durably (one small write and fdatasync) unless the mark
  /// is already there. The file has two slots, written in turn, so that a
  /// torn write leaves the previous mark readable.
  status record(sequence_number seq);

private:
  std::string path_;
  int fd_ = -1;
  std::optional<sequence_number> value_;
  /// The slot the next `record` writes: the one not holding `value_`.
  int next_slot_ = 0;
};

} // namespace fota::storage
