/// The wire framing shared by the node and its clients: each frame is a
/// varint32 length followed by that many bytes of one protobuf message, the
/// same framing as protobuf's delimited-message utilities.
#pragma once

#include "events/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/message_lite.h>

namespace fota {

/// The default limit on a frame's payload: 4 MiB.
inline constexpr size_t default_max_frame_size = size_t{4} << 20;

/// The longest varint32 length prefix.
inline constexpr size_t max_frame_prefix_size = 5;

/// Appends `msg` as one frame (length prefix and payload) to `out`.
void append_frame(std::string& out, const google::protobuf::MessageLite& msg);

/// Returns `msg` as one frame (length prefix and payload).
std::string encode_frame(const google::protobuf::MessageLite& msg);

/// What `frame_decoder::next()` found.
enum class decode_status : uint8_t {
  /// A complete frame; its payload is in `decode_result::payload`.
  frame,
  /// The buffered bytes hold no complete frame yet.
  need_more,
  /// The stream is broken; `decode_result::error` says why.
  error,
};

/// One step of a `frame_decoder`.
struct decode_result {
  decode_status status = decode_status::need_more;
  /// The frame's payload; valid until the next call to `feed()` or `next()`.
  std::string_view payload;
  /// Set when `status` is `decode_status::error`.
  failure error;
};

/// Splits a byte stream that arrives in arbitrary chunks into frames.
///
/// The decoder refuses a frame as soon as its length prefix is known to
/// exceed the maximum, before the body arrives, so a peer cannot make it
/// buffer more than one frame. A caller that drains `next()` after each
/// `feed()` keeps at most one frame, its prefix and one chunk buffered.
/// Errors are sticky: after one, `next()` repeats it and `feed()` drops input.
class frame_decoder {
public:
  // -- constructors ----------------------------------------------------------

  explicit frame_decoder(size_t max_frame_size = default_max_frame_size);

  // -- properties ------------------------------------------------------------

  size_t max_frame_size() const noexcept { return max_frame_size_; }

  /// Bytes received but not yet returned as frames.
  size_t buffered() const noexcept { return buf_.size() - pos_; }

  /// Whether the stream is broken.
  bool failed() const noexcept { return failed_; }

  // -- decoding --------------------------------------------------------------

  /// Adds received bytes.
  void feed(const char* data, size_t size);

  void feed(std::string_view bytes) { feed(bytes.data(), bytes.size()); }

  /// Returns the next complete frame, `need_more`, or an error.
  decode_result next();

private:
  /// Drops the bytes already returned and releases a grown buffer.
  void compact();

  decode_result fail(errc code, std::string message);

  size_t max_frame_size_;
  std::string buf_;
  /// Start of the first byte not yet returned as part of a frame.
  size_t pos_ = 0;
  bool failed_ = false;
  failure error_;
};

/// Parses a frame payload into `out`.
template <class Message>
status parse_frame(std::string_view payload, Message& out) {
  if (payload.size() > static_cast<size_t>(INT32_MAX) ||
      !out.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return make_failure(errc::invalid_argument,
                        "frame does not parse as " + out.GetTypeName());
  return std::nullopt;
}

} // namespace fota
