/// Routing of API requests to the actors that own them, shared by network
/// sessions and the in-process API so that both take one code path.
#pragma once

#include "actors/context.hpp"
#include "events/status.hpp"

#include <string>

#include <caf/stateful_actor.hpp>

namespace fota {

/// Returns the role a request needs, or ROLE_UNSPECIFIED for Hello and
/// unknown bodies.
v1::Role required_role(v1::ClientFrame::BodyCase kind) noexcept;

/// Checks the role and builds the command for the owning actor, or returns
/// why the request is refused.
expected<std::pair<caf::actor, command>>
make_command(const node_context& ctx, v1::Role role,
             const v1::ClientFrame& frame, caf::actor origin);

/// Sends `frame` to its owner as `self` and calls `reply(response)` with
/// the response, whatever the outcome.
/// A session that knows the device actor of a device request passes it as
/// `device`, which skips the fleet's directory lookup.
template <class Self, class Reply>
void route(Self* self, const node_context& ctx, v1::Role role,
           const v1::ClientFrame& frame, caf::actor origin, Reply reply,
           const caf::actor& device = caf::actor{}) {
  auto routed = make_command(ctx, role, frame, std::move(origin));
  if (!routed) {
    reply(error_response(routed.error()));
    return;
  }
  auto& [dest, cmd] = *routed;
  if (device && dest == ctx.fleet)
    dest = device;
  self->request(dest, caf::infinite, std::move(cmd))
      .then(
          [reply](std::string& bytes) mutable {
            v1::Response r;
            if (!r.ParseFromString(bytes))
              r = error_response(
                  make_failure(errc::internal, "owner replied with bad bytes"));
            reply(r);
          },
          [reply](caf::error& err) mutable {
            reply(error_response(from_error(err)));
          });
}

struct router_state {
  context_ptr ctx;
  static inline constexpr const char* name = "fota.router";
};

/// The in-process API: `(request_atom, role, frame bytes) -> response bytes`.
caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           context_ptr ctx);

} // namespace fota
