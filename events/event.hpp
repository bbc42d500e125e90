/// The unit of the event log: a `fota.v1.EventEnvelope` whose payload is one
/// past-tense event carrying the ids of its stream. `decide()` functions
/// return them; `apply()` functions consume them, at run time and on replay.
#pragma once

#include "events/clock.hpp"
#include "fota/v1/events.pb.h"

#include <string>
#include <string_view>
#include <vector>

namespace fota {

using event = v1::EventEnvelope;
using event_list = std::vector<event>;

/// Stream names, as stored in the envelope.
std::string firmware_stream(std::string_view product, std::string_view version);
std::string device_stream(std::string_view product, std::string_view device);
std::string tree_stream(std::string_view product, std::string_view tree);
std::string task_stream(uint64_t task);

/// Starts an envelope for `stream` at `now`; the caller sets the payload.
event make_event(std::string stream, timestamp now);

/// Encodes events for the journal (without sequence numbers).
std::vector<std::string> encode(const event_list& xs);

} // namespace fota
