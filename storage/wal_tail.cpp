/// RocksDB's WAL format (db/log_format.h, stable since LevelDB): the file is
/// a sequence of 32 KiB blocks; a block holds records, each with a 7-byte
/// header (masked CRC32C: 4, length: 2, little-endian, type: 1) and its
/// payload. A write larger than what is left of a block is split into
/// FIRST, MIDDLE... and LAST fragments. Fewer than 7 bytes left at the end
/// of a block are zero padding. The scan checks the structure, not the
/// checksums: RocksDB itself refuses to open on a checksum mismatch, and
/// tolerates only a tail cut short or zeroed.
#include "storage/wal_tail.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace fota::storage {

namespace {

constexpr size_t block_size = 32768;
constexpr size_t header_size = 7;

enum record_type : uint8_t {
  zero_type = 0,
  full_type = 1,
  first_type = 2,
  middle_type = 3,
  last_type = 4,
  /// Sets the compression of the records after it (`wal_compression`).
  set_compression_type = 9,
};

/// The number of a WAL file name ("000009.log"), or 0 for other files.
uint64_t wal_number(const std::string& name) {
  static constexpr std::string_view suffix = ".log";
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return 0;
  uint64_t x = 0;
  for (size_t i = 0; i + suffix.size() < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9')
      return 0;
    x = x * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return x;
}

bool all_zero(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (data[i] != 0)
      return false;
  return true;
}

} // namespace

expected<wal_tail> scan_wal_tail(const std::string& dir) {
  namespace fs = std::filesystem;
  wal_tail out;
  std::error_code ec;
  uint64_t newest = 0;
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end;
       it.increment(ec)) {
    auto name = it->path().filename().string();
    if (auto n = wal_number(name); n > newest) {
      newest = n;
      out.file = name;
    }
  }
  // No directory, no WAL: opening the database says what is wrong.
  if (ec && ec != std::errc::no_such_file_or_directory &&
      ec != std::errc::not_a_directory)
    return failure{errc::storage_error, "list '" + dir + "': " + ec.message()};
  if (out.file.empty())
    return out;
  auto path = dir + "/" + out.file;
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return failure{errc::storage_error,
                   "open '" + path + "': " + std::strerror(errno)};
  std::vector<char> block(block_size);
  uint64_t offset = 0;
  bool in_fragment = false;
  uint64_t record_start = 0;
  // Sets the torn tail to everything from `start` (or from the record's
  // first fragment) to the end of the file.
  auto torn_from = [&](uint64_t start, uint64_t file_size) {
    out.torn_bytes = file_size - (in_fragment ? record_start : start);
  };
  for (;;) {
    in.read(block.data(), static_cast<std::streamsize>(block_size));
    auto n = static_cast<size_t>(in.gcount());
    out.size = offset + n;
    if (n == 0)
      break;
    bool last_block = n < block_size;
    if (last_block) {
      // Whatever follows is the file's end: find its size now.
      in.clear();
      in.seekg(0, std::ios::end);
      out.size = static_cast<uint64_t>(in.tellg());
      if (out.size != offset + n) {
        out.understood = false; // The file grew while we read it.
        return out;
      }
    }
    size_t pos = 0;
    for (;;) {
      auto left = n - pos;
      if (left < header_size) {
        // Padding at the end of a whole block; in the last block, a header
        // cut short unless it is zeros.
        if (last_block && left > 0 && !all_zero(block.data() + pos, left))
          torn_from(offset + pos, out.size);
        else if (last_block && in_fragment)
          torn_from(offset + pos, out.size);
        break;
      }
      const auto* h =
          reinterpret_cast<const unsigned char*>(block.data() + pos);
      size_t length = h[4] | (static_cast<size_t>(h[5]) << 8);
      auto type = h[6];
      if (type == zero_type && length == 0) {
        // Zeros: preallocated space or padding. Nothing follows in this
        // block; a fragment before them never completed.
        if (last_block && in_fragment)
          torn_from(offset + pos, out.size);
        if (last_block)
          return out;
        break;
      }
      if (pos + header_size + length > n) {
        if (!last_block) {
          out.understood = false; // A record crossing a block boundary.
          out.torn_bytes = 0;
          return out;
        }
        torn_from(offset + pos, out.size);
        return out;
      }
      switch (type) {
      case full_type:
      case set_compression_type:
        in_fragment = false;
        break;
      case first_type:
        in_fragment = true;
        record_start = offset + pos;
        break;
      case middle_type:
        break;
      case last_type:
        in_fragment = false;
        break;
      default:
        // Recyclable records (11-byte headers) or a newer record type.
        out.understood = false;
        out.torn_bytes = 0;
        return out;
      }
      pos += header_size + length;
    }
    offset += n;
    if (last_block)
      return out;
  }
  // The file ends at a block boundary.
  if (in_fragment)
    torn_from(out.size, out.size);
  return out;
}

} // namespace fota::storage
