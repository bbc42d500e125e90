#include "actors/router.hpp"

#include <caf/event_based_actor.hpp>

namespace fota {

namespace {

/// Answers the `ClientFrame` in `bytes` from a client with `role`, sent by
/// the in-process gateway `origin` (or none), with `Response` bytes.
caf::result<std::string>
answer(router_actor::stateful_pointer<router_state> self, int32_t role,
       const std::string& bytes, const caf::actor& origin) {
  auto rp = self->make_response_promise<std::string>();
  v1::ClientFrame frame;
  if (!frame.ParseFromString(bytes)) {
    rp.deliver(error_response(make_failure(errc::invalid_argument,
                                           "frame does not parse as "
                                           "fota.v1.ClientFrame"))
                   .SerializeAsString());
    return rp;
  }
  route(self, *self->state.ctx, static_cast<v1::Role>(role), frame, origin,
        [rp](const v1::Response& r) mutable {
          rp.deliver(r.SerializeAsString());
        });
  return rp;
}

} // namespace

router_actor::behavior_type
router_behavior(router_actor::stateful_pointer<router_state> self,
                context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  return {
      [self](request_atom, int32_t role, const std::string& bytes) {
        return answer(self, role, bytes, caf::actor{});
      },
      [self](request_atom, int32_t role, const std::string& bytes,
             const caf::actor& gateway) {
        return answer(self, role, bytes, gateway);
      },
  };
}

} // namespace fota
