/// Frame encoding and the incremental frame decoder.
#include "api/frame_codec.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace fota {

namespace {

/// A buffer larger than this is released once it no longer holds much.
constexpr size_t keep_capacity = size_t{64} << 10;

} // namespace

// -- encoding ----------------------------------------------------------------

void append_frame(std::string& out, const google::protobuf::MessageLite& msg) {
  auto size = msg.ByteSizeLong();
  uint8_t prefix[max_frame_prefix_size];
  size_t prefix_size = 0;
  auto rest = static_cast<uint32_t>(size);
  while (rest >= 0x80) {
    prefix[prefix_size++] = static_cast<uint8_t>(rest | 0x80);
    rest >>= 7;
  }
  prefix[prefix_size++] = static_cast<uint8_t>(rest);
  auto offset = out.size();
  out.resize(offset + prefix_size + size);
  auto* dst = reinterpret_cast<uint8_t*>(out.data()) + offset;
  std::copy(prefix, prefix + prefix_size, dst);
  // ByteSizeLong() above cached the sizes this call relies on.
  msg.SerializeWithCachedSizesToArray(dst + prefix_size);
}

std::string encode_frame(const google::protobuf::MessageLite& msg) {
  std::string result;
  append_frame(result, msg);
  return result;
}

// -- frame_decoder -----------------------------------------------------------

frame_decoder::frame_decoder(size_t max_frame_size)
  : max_frame_size_(max_frame_size) {
  // Nothing else to do.
}

void frame_decoder::feed(const char* data, size_t size) {
  if (failed_ || size == 0)
    return;
  compact();
  buf_.append(data, size);
}

decode_result frame_decoder::next() {
  if (failed_)
    return decode_result{decode_status::error, {}, error_};
  auto available = buf_.size() - pos_;
  auto* bytes = reinterpret_cast<const uint8_t*>(buf_.data()) + pos_;
  uint64_t length = 0;
  size_t prefix_size = 0;
  for (;;) {
    if (prefix_size == available)
      return decode_result{};
    auto byte = bytes[prefix_size];
    if (prefix_size == max_frame_prefix_size - 1) {
      if (byte & 0x80)
        return fail(errc::invalid_argument,
                    "malformed frame length: varint32 longer than 5 bytes");
      if (byte & 0x70)
        return fail(errc::invalid_argument,
                    "malformed frame length: varint exceeds 32 bits");
    }
    length |= uint64_t{byte & 0x7fu} << (7 * prefix_size);
    ++prefix_size;
    if ((byte & 0x80) == 0)
      break;
  }
  if (length > max_frame_size_)
    return fail(errc::resource_exhausted, "frame of " + std::to_string(length) +
                                              " bytes exceeds the maximum of " +
                                              std::to_string(max_frame_size_) +
                                              " bytes");
  if (available - prefix_size < length)
    return decode_result{};
  auto* payload = buf_.data() + pos_ + prefix_size;
  pos_ += prefix_size + length;
  return decode_result{decode_status::frame,
                       std::string_view{payload, static_cast<size_t>(length)},
                       {}};
}

void frame_decoder::compact() {
  if (pos_ == 0)
    return;
  buf_.erase(0, pos_);
  pos_ = 0;
  if (buf_.capacity() > keep_capacity &&
      buf_.capacity() > 4 * std::max(buf_.size(), keep_capacity))
    buf_.shrink_to_fit();
}

decode_result frame_decoder::fail(errc code, std::string message) {
  failed_ = true;
  error_ = make_failure(code, std::move(message));
  std::string{}.swap(buf_);
  pos_ = 0;
  return decode_result{decode_status::error, {}, error_};
}

} // namespace fota
