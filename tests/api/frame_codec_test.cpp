/// Tests of the wire framing: encoding, incremental decoding in arbitrary
/// chunks, the frame size limit and malformed input.
#include "api/frame_codec.hpp"
#include "fota/v1/api.pb.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fota {
namespace {

v1::ClientFrame make_hello(uint64_t id, std::string token) {
  v1::ClientFrame frame;
  frame.set_request_id(id);
  frame.mutable_hello()->set_token(std::move(token));
  return frame;
}

/// Feeds `bytes` to `dec` in chunks of `chunk` bytes and collects the frames.
std::vector<std::string> decode_all(frame_decoder& dec,
                                    const std::string& bytes, size_t chunk) {
  std::vector<std::string> result;
  for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
    dec.feed(bytes.data() + pos, std::min(chunk, bytes.size() - pos));
    for (;;) {
      auto res = dec.next();
      if (res.status != decode_status::frame) {
        EXPECT_EQ(res.status, decode_status::need_more) << res.error.message;
        break;
      }
      result.emplace_back(res.payload);
    }
  }
  return result;
}

TEST(FrameCodec, RoundTripPreservesTheMessage) {
  auto in = make_hello(42, "operator-token");
  auto bytes = encode_frame(in);
  EXPECT_EQ(bytes.size(), 1 + in.ByteSizeLong());
  frame_decoder dec;
  dec.feed(bytes);
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::frame);
  v1::ClientFrame out;
  ASSERT_FALSE(parse_frame(res.payload, out));
  EXPECT_EQ(out.request_id(), 42u);
  EXPECT_EQ(out.hello().token(), "operator-token");
  EXPECT_EQ(dec.next().status, decode_status::need_more);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(FrameCodec, AppendFrameConcatenatesFrames) {
  std::string bytes;
  append_frame(bytes, make_hello(1, "a"));
  append_frame(bytes, make_hello(2, "b"));
  EXPECT_EQ(bytes, encode_frame(make_hello(1, "a")) +
                       encode_frame(make_hello(2, "b")));
}

TEST(FrameCodec, LengthPrefixIsAMultiByteVarintForLargeFrames) {
  auto in = make_hello(7, std::string(300, 'x'));
  auto bytes = encode_frame(in);
  // 300-odd bytes need a two-byte prefix: low 7 bits with the continuation
  // bit, then the rest.
  auto size = in.ByteSizeLong();
  ASSERT_EQ(bytes.size(), 2 + size);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), (size & 0x7f) | 0x80);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), size >> 7);
}

TEST(FrameCodec, EmptyMessageIsAnEmptyFrame) {
  v1::ClientFrame empty;
  auto bytes = encode_frame(empty);
  ASSERT_EQ(bytes, std::string(1, '\0'));
  frame_decoder dec;
  dec.feed(bytes);
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::frame);
  EXPECT_TRUE(res.payload.empty());
}

TEST(FrameCodec, DecodesFramesFedByteByByte) {
  std::string bytes;
  std::vector<v1::ClientFrame> in;
  for (uint64_t i = 1; i <= 20; ++i) {
    in.push_back(make_hello(i, std::string(i * 17, 'a' + i % 26)));
    append_frame(bytes, in.back());
  }
  frame_decoder dec;
  auto frames = decode_all(dec, bytes, 1);
  ASSERT_EQ(frames.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    v1::ClientFrame out;
    ASSERT_FALSE(parse_frame(frames[i], out));
    EXPECT_EQ(out.request_id(), in[i].request_id());
    EXPECT_EQ(out.hello().token(), in[i].hello().token());
  }
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(FrameCodec, DecodesFramesSplitAtEveryChunkSize) {
  std::string bytes;
  for (uint64_t i = 1; i <= 10; ++i)
    append_frame(bytes, make_hello(i, std::string(i * 31, 't')));
  for (size_t chunk = 1; chunk <= bytes.size(); ++chunk) {
    frame_decoder dec;
    auto frames = decode_all(dec, bytes, chunk);
    ASSERT_EQ(frames.size(), 10u) << "chunk size " << chunk;
    v1::ClientFrame last;
    ASSERT_FALSE(parse_frame(frames.back(), last));
    EXPECT_EQ(last.request_id(), 10u);
  }
}

TEST(FrameCodec, DecodesManyFramesFromOneChunk) {
  std::string bytes;
  constexpr uint64_t n = 10000;
  for (uint64_t i = 1; i <= n; ++i)
    append_frame(bytes, make_hello(i, "token"));
  frame_decoder dec;
  dec.feed(bytes);
  uint64_t expected_id = 1;
  for (;;) {
    auto res = dec.next();
    if (res.status != decode_status::frame)
      break;
    v1::ClientFrame out;
    ASSERT_FALSE(parse_frame(res.payload, out));
    ASSERT_EQ(out.request_id(), expected_id++);
  }
  EXPECT_EQ(expected_id, n + 1);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(FrameCodec, CompactsItsBufferAfterConsumedFrames) {
  auto frame = encode_frame(make_hello(1, std::string(1000, 'z')));
  frame_decoder dec;
  for (int i = 0; i < 1000; ++i) {
    // Every frame arrives in two halves; the decoder must keep only the
    // unconsumed half, not the history.
    dec.feed(frame.data(), frame.size() / 2);
    EXPECT_EQ(dec.next().status, decode_status::need_more);
    EXPECT_LE(dec.buffered(), frame.size());
    dec.feed(frame.data() + frame.size() / 2, frame.size() - frame.size() / 2);
    ASSERT_EQ(dec.next().status, decode_status::frame);
    EXPECT_EQ(dec.buffered(), 0u);
  }
}

TEST(FrameCodec, OversizedFrameFailsAsSoonAsItsLengthIsKnown) {
  frame_decoder dec{1024};
  auto bytes = encode_frame(make_hello(1, std::string(2000, 'x')));
  // Only the length prefix (two bytes) arrives; the body never does.
  dec.feed(bytes.data(), 1);
  EXPECT_EQ(dec.next().status, decode_status::need_more);
  dec.feed(bytes.data() + 1, 1);
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::error);
  EXPECT_EQ(res.error.code, errc::resource_exhausted);
  auto size = std::to_string(bytes.size() - 2);
  EXPECT_EQ(res.error.message,
            "frame of " + size + " bytes exceeds the maximum of 1024 bytes");
  EXPECT_TRUE(dec.failed());
  // The error is sticky and further input is dropped.
  dec.feed(bytes.data() + 2, bytes.size() - 2);
  EXPECT_EQ(dec.buffered(), 0u);
  EXPECT_EQ(dec.next().error.code, errc::resource_exhausted);
}

TEST(FrameCodec, FrameOfExactlyTheMaximumIsAccepted) {
  auto in = make_hello(1, std::string(100, 'x'));
  auto size = in.ByteSizeLong();
  frame_decoder dec{size};
  dec.feed(encode_frame(in));
  EXPECT_EQ(dec.next().status, decode_status::frame);
}

TEST(FrameCodec, DefaultMaximumIsFourMebibytes) {
  frame_decoder dec;
  EXPECT_EQ(dec.max_frame_size(), size_t{4} << 20);
  // Prefix announcing 4 MiB + 1 bytes: 0x81 0x80 0x80 0x02.
  const char prefix[] = {'\x81', '\x80', '\x80', '\x02'};
  dec.feed(prefix, sizeof(prefix));
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::error);
  EXPECT_EQ(res.error.code, errc::resource_exhausted);
  EXPECT_EQ(res.error.message,
            "frame of 4194305 bytes exceeds the maximum of 4194304 bytes");
}

TEST(FrameCodec, VarintLongerThanFiveBytesIsMalformed) {
  frame_decoder dec;
  const char prefix[] = {'\x80', '\x80', '\x80', '\x80', '\x80', '\x01'};
  dec.feed(prefix, 4);
  EXPECT_EQ(dec.next().status, decode_status::need_more);
  dec.feed(prefix + 4, 2);
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::error);
  EXPECT_EQ(res.error.code, errc::invalid_argument);
  EXPECT_EQ(res.error.message,
            "malformed frame length: varint32 longer than 5 bytes");
}

TEST(FrameCodec, VarintOverflowingThirtyTwoBitsIsMalformed) {
  frame_decoder dec;
  const char prefix[] = {'\xff', '\xff', '\xff', '\xff', '\x1f'};
  dec.feed(prefix, sizeof(prefix));
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::error);
  EXPECT_EQ(res.error.code, errc::invalid_argument);
  EXPECT_EQ(res.error.message,
            "malformed frame length: varint exceeds 32 bits");
}

TEST(FrameCodec, GarbagePayloadDoesNotParse) {
  // A well-formed frame whose payload is not a protobuf message: field 31
  // with the invalid wire type 7.
  std::string bytes = {'\x03', '\xff', '\xff', '\xff'};
  frame_decoder dec;
  dec.feed(bytes);
  auto res = dec.next();
  ASSERT_EQ(res.status, decode_status::frame);
  v1::ClientFrame out;
  auto err = parse_frame(res.payload, out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::invalid_argument);
  EXPECT_EQ(err->message, "frame does not parse as fota.v1.ClientFrame");
  v1::ServerFrame server_out;
  err = parse_frame(res.payload, server_out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "frame does not parse as fota.v1.ServerFrame");
}

TEST(FrameCodec, TruncatedPayloadDoesNotParse) {
  auto bytes = make_hello(1, "operator-token").SerializeAsString();
  v1::ClientFrame out;
  auto err =
      parse_frame(std::string_view{bytes}.substr(0, bytes.size() - 3), out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::invalid_argument);
}

} // namespace
} // namespace fota
