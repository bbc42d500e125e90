/// libFuzzer target: arbitrary bytes as a node's event log, replayed the way
/// `node::start` replays it. The input is a sequence of varint-delimited
/// envelopes (the wire framing); envelope i is stored under sequence i + 1.
/// Replay must refuse what violates the rules with an error naming the
/// event, never crash, abort or allocate without bound.
#include "api/frame_codec.hpp"
#include "events/digest.hpp"
#include "events/replay.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fota::frame_decoder frames{size_t{1} << 20};
  frames.feed(reinterpret_cast<const char*>(data), size);
  fota::world w;
  uint64_t seq = 0;
  for (;;) {
    auto r = frames.next();
    if (r.status != fota::decode_status::frame)
      break;
    if (fota::replay(w, fota::sequence_number{++seq}, r.payload))
      return 0; // Refused, naming the event: the node would stop here.
  }
  fota::finish_replay(w);
  auto d = fota::digest(w);
  return d.sha256.size() == 64 ? 0 : 1;
}
