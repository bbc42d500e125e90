/// Message types, atoms and typed interfaces shared by the actors. This is
/// the one CAF type id block of fota.
#pragma once

#include "events/error.hpp"
#include "events/ids.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

CAF_ERROR_CODE_ENUM(fota::errc, "fota")

namespace fota {

/// Encoded `fota.v1.EventEnvelope` messages, without their sequence numbers,
/// bound for the journal as one atomic append.
struct event_batch {
  std::vector<std::string> envelopes;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
    return f(caf::meta::type_name("event_batch"), x.envelopes);
  }
};

/// A request of the API on its way to the actor that owns the entity: the
/// `ClientFrame` body case and the serialized body message. The owner
/// replies with a serialized `fota.v1.Response`.
struct command {
  /// A `v1::ClientFrame::BodyCase`.
  int32_t kind = 0;
  std::string body;
  /// The session that sent it; pushes for devices it brings online go there.
  caf::actor origin;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, command& x) {
    return f(caf::meta::type_name("command"), x.kind, x.body, x.origin);
  }
};

/// A device in a scope query result: its key and its actor.
struct device_handle {
  std::string key;
  caf::actor actor;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 device_handle& x) {
    return f(caf::meta::type_name("device_handle"), x.key, x.actor);
  }
};

using device_handles = std::vector<device_handle>;

/// Tells a device to upgrade: the execution, its attempt and the encoded
/// `ServerFrame` push to hand to the device's gateway session.
struct push_order {
  uint64_t execution = 0;
  uint32_t attempt = 0;
  std::string frame;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, push_order& x) {
    return f(caf::meta::type_name("push_order"), x.execution, x.attempt,
             x.frame);
  }
};

} // namespace fota

CAF_BEGIN_TYPE_ID_BLOCK(fota, caf::first_custom_type_id)

CAF_ADD_TYPE_ID(fota, (fota::event_batch))
CAF_ADD_TYPE_ID(fota, (fota::sequence_number))

CAF_ADD_ATOM(fota, fota, append_atom, "append")
CAF_ADD_ATOM(fota, fota, flush_atom, "flush")

CAF_ADD_TYPE_ID(fota, (fota::command))
CAF_ADD_TYPE_ID(fota, (fota::device_handle))
CAF_ADD_TYPE_ID(fota, (fota::device_handles))
CAF_ADD_TYPE_ID(fota, (fota::push_order))

CAF_ADD_ATOM(fota, fota, claim_atom, "claim")
CAF_ADD_ATOM(fota, fota, release_atom, "release")
CAF_ADD_ATOM(fota, fota, push_atom, "push")
CAF_ADD_ATOM(fota, fota, online_atom, "online")
CAF_ADD_ATOM(fota, fota, offline_atom, "offline")
CAF_ADD_ATOM(fota, fota, scope_atom, "scope")
CAF_ADD_ATOM(fota, fota, version_atom, "version")
CAF_ADD_ATOM(fota, fota, demand_atom, "demand")
CAF_ADD_ATOM(fota, fota, credit_atom, "credit")
CAF_ADD_ATOM(fota, fota, settled_atom, "settled")
CAF_ADD_ATOM(fota, fota, tick_atom, "tick")
CAF_ADD_ATOM(fota, fota, get_atom, "get")
CAF_ADD_ATOM(fota, fota, lookup_atom, "lookup")
CAF_ADD_ATOM(fota, fota, spawn_atom, "spawn")
CAF_ADD_ATOM(fota, fota, forget_atom, "forget")
CAF_ADD_ATOM(fota, fota, request_atom, "request")
CAF_ADD_ATOM(fota, fota, cancel_atom, "cancel")
CAF_ADD_ATOM(fota, fota, success_atom, "success")
CAF_ADD_ATOM(fota, fota, deadline_atom, "deadline")
CAF_ADD_ATOM(fota, fota, changed_atom, "changed")
CAF_ADD_ATOM(fota, fota, join_atom, "join")
CAF_ADD_ATOM(fota, fota, verified_atom, "verified")

CAF_END_TYPE_ID_BLOCK(fota)

namespace fota {

/// The only writer of the event log. Replies with the sequence number of the
/// last event of the batch once the batch is durable, or with an error
/// (`errc::unavailable` once storage has failed).
using journal_actor = caf::typed_actor<
    caf::replies_to<append_atom, event_batch>::with<sequence_number>>;

} // namespace fota
