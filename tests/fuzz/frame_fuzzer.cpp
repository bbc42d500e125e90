/// libFuzzer target: arbitrary bytes as what a client sends a session. The
/// frame decoder splits them (fed in chunks whose sizes the input chooses),
/// each frame is parsed once as a `ClientFrame` and decoded into its command
/// at the edge. Nothing may crash; a bad frame or request is an error.
#include "api/frame_codec.hpp"
#include "events/codec.hpp"
#include "fota/v1/api.pb.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  // The first byte chooses the chunk size, as reads from a socket would.
  size_t chunk = 1 + data[0] % 64;
  fota::frame_decoder decoder{size_t{64} << 10};
  for (size_t pos = 1; pos < size; pos += chunk) {
    decoder.feed(reinterpret_cast<const char*>(data) + pos,
                 std::min(chunk, size - pos));
    for (;;) {
      auto r = decoder.next();
      if (r.status == fota::decode_status::need_more)
        break;
      if (r.status == fota::decode_status::error)
        return 0; // The session answers and closes.
      fota::v1::ClientFrame frame;
      if (fota::parse_frame(r.payload, frame))
        continue;
      auto req = fota::decode(frame);
      if (req) {
        (void) fota::name_of(*req);
        (void) fota::required_role(*req);
        (void) fota::device_of(*req);
      }
    }
  }
  return 0;
}
