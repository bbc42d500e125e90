#include "storage/high_water_mark.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <utility>

namespace fota::storage {

namespace {

// -- file format --------------------------------------------------------------
//
// Two slots of 16 bytes: a magic number, a check over magic and sequence,
// and the sequence, little-endian. A slot of zeros holds no mark.

constexpr size_t slot_size = 16;
constexpr size_t slot_count = 2;
constexpr uint32_t magic = 0x31574846; // "FHW1"

using slot_bytes = std::array<unsigned char, slot_size>;

void put_u32(unsigned char* out, uint32_t x) {
  for (size_t i = 0; i < 4; ++i)
    out[i] = static_cast<unsigned char>(x >> (8 * i));
}

void put_u64(unsigned char* out, uint64_t x) {
  for (size_t i = 0; i < 8; ++i)
    out[i] = static_cast<unsigned char>(x >> (8 * i));
}

uint32_t get_u32(const unsigned char* in) {
  uint32_t x = 0;
  for (size_t i = 0; i < 4; ++i)
    x |= static_cast<uint32_t>(in[i]) << (8 * i);
  return x;
}

uint64_t get_u64(const unsigned char* in) {
  uint64_t x = 0;
  for (size_t i = 0; i < 8; ++i)
    x |= static_cast<uint64_t>(in[i]) << (8 * i);
  return x;
}

/// FNV-1a over the magic and the sequence: enough to tell a whole slot from
/// a torn or foreign one.
uint32_t check_of(uint64_t seq) {
  unsigned char bytes[12];
  put_u32(bytes, magic);
  put_u64(bytes + 4, seq);
  uint32_t h = 2166136261u;
  for (auto b : bytes) {
    h ^= b;
    h *= 16777619u;
  }
  return h;
}

slot_bytes encode_slot(uint64_t seq) {
  slot_bytes out{};
  put_u32(out.data(), magic);
  put_u32(out.data() + 4, check_of(seq));
  put_u64(out.data() + 8, seq);
  return out;
}

enum class slot_state { empty, valid, damaged };

slot_state decode_slot(const slot_bytes& in, uint64_t& seq) {
  bool zeros = true;
  for (auto b : in)
    zeros = zeros && b == 0;
  if (zeros)
    return slot_state::empty;
  seq = get_u64(in.data() + 8);
  if (get_u32(in.data()) != magic || get_u32(in.data() + 4) != check_of(seq))
    return slot_state::damaged;
  return slot_state::valid;
}

failure io_failure(const std::string& what, const std::string& path) {
  return failure{errc::storage_error,
                 what + " '" + path + "': " + std::strerror(errno)};
}

/// Makes a newly created file's directory entry durable.
status sync_dir(const std::string& dir) {
  auto fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return io_failure("open directory", dir);
  auto rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return io_failure("fsync directory", dir);
  return std::nullopt;
}

} // namespace

high_water_mark::high_water_mark(high_water_mark&& other) noexcept
  : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)),
    value_(other.value_), next_slot_(other.next_slot_) {
  // nop
}

high_water_mark& high_water_mark::operator=(high_water_mark&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    value_ = other.value_;
    next_slot_ = other.next_slot_;
  }
  return *this;
}

high_water_mark::~high_water_mark() {
  if (fd_ >= 0)
    ::close(fd_);
}

expected<high_water_mark> high_water_mark::open(const std::string& dir,
                                                bool writable) {
  high_water_mark out;
  out.path_ = dir + "/" + file_name;
  bool created = false;
  if (writable) {
    out.fd_ = ::open(out.path_.c_str(), O_RDWR | O_CLOEXEC);
    if (out.fd_ < 0 && errno == ENOENT) {
      out.fd_ = ::open(out.path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                       0644);
      created = true;
    }
  } else {
    // No directory, no mark: opening the database says what is wrong.
    out.fd_ = ::open(out.path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (out.fd_ < 0 && (errno == ENOENT || errno == ENOTDIR))
      return out;
  }
  if (out.fd_ < 0)
    return io_failure("open", out.path_);
  if (created) {
    std::array<unsigned char, slot_size * slot_count> zeros{};
    if (::pwrite(out.fd_, zeros.data(), zeros.size(), 0) !=
            static_cast<ssize_t>(zeros.size()) ||
        ::fsync(out.fd_) != 0)
      return io_failure("initialize", out.path_);
    if (auto err = sync_dir(dir))
      return std::move(*err);
    return out;
  }
  size_t damaged = 0;
  for (size_t i = 0; i < slot_count; ++i) {
    slot_bytes bytes{};
    auto n = ::pread(out.fd_, bytes.data(), bytes.size(),
                     static_cast<off_t>(i * slot_size));
    if (n < 0)
      return io_failure("read", out.path_);
    uint64_t seq = 0;
    switch (decode_slot(bytes, seq)) {
    case slot_state::empty:
      break;
    case slot_state::damaged:
      ++damaged;
      break;
    case slot_state::valid:
      if (!out.value_ || out.value_->value() < seq) {
        out.value_ = sequence_number{seq};
        out.next_slot_ = static_cast<int>(1 - i);
      }
      break;
    }
  }
  if (damaged == slot_count)
    return failure{errc::corrupted,
                   "the high-water mark '" + out.path_ +
                       "' is damaged in both of its slots; it records the "
                       "newest acknowledged event, so it cannot be guessed"};
  if (!writable) {
    ::close(out.fd_);
    out.fd_ = -1;
  }
  return out;
}

status high_water_mark::record(sequence_number seq) {
  if (value_ && !(value_->value() < seq.value()))
    return std::nullopt;
  if (fd_ < 0)
    return failure{errc::failed_precondition,
                   "the high-water mark is open read-only"};
  auto bytes = encode_slot(seq.value());
  auto offset = static_cast<off_t>(next_slot_) * slot_size;
  if (::pwrite(fd_, bytes.data(), bytes.size(), offset) !=
      static_cast<ssize_t>(bytes.size()))
    return io_failure("write", path_);
  if (::fdatasync(fd_) != 0)
    return io_failure("fdatasync", path_);
  value_ = seq;
  next_slot_ = 1 - next_slot_;
  return std::nullopt;
}

} // namespace fota::storage
