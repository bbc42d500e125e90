/// The network edge: one broker per TCP connection (a session) that reads
/// varint-delimited ClientFrames, checks the role chosen by Hello, routes
/// requests, and writes responses and pushes back.
#pragma once

#include "actors/context.hpp"
#include "api/frame_codec.hpp"
#include "api/tls.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <caf/io/broker.hpp>
#include <caf/stateful_actor.hpp>

namespace fota {

/// What the server needs besides the node.
struct server_options {
  /// TCP port; 0 picks a free one.
  uint16_t port = 7411;
  /// Address to bind; empty means every interface.
  std::string host;
  std::string operator_token = "operator-token";
  std::string gateway_token = "gateway-token";
  size_t max_frame_size = default_max_frame_size;
  /// A server context: every connection speaks TLS. Null: plain TCP.
  std::shared_ptr<tls_context> tls;
};

struct session_state {
  context_ptr ctx;
  server_options opts;
  caf::io::connection_handle hdl;
  frame_decoder decoder;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  /// Devices this session brought online, by (product, device key), with
  /// their actors once the fleet named them: reports go straight there.
  std::map<std::pair<std::string, std::string>, device_actor> online;
  /// Whether the client sent its Hello; a second one closes the session.
  bool greeted = false;
  /// The connection's TLS when the server runs TLS.
  std::optional<tls_channel> tls;
  /// The client certificate, verified, once the TLS handshake completed, if
  /// the client sent one.
  std::optional<tls_peer> peer;
  bool closing = false;

  static inline constexpr const char* name = "fota.session";
};

using session_broker = caf::stateful_actor<session_state, caf::io::broker>;

/// The behaviour of one connection.
caf::behavior session(session_broker* self, caf::io::connection_handle hdl,
                      context_ptr ctx, server_options opts);

/// A listening server.
struct server {
  /// The acceptor; an exit message to it closes the listener and every
  /// connection.
  caf::actor acceptor;
  uint16_t port = 0;
};

/// Listens on `opts.port` and forks a session per connection.
expected<server> start_server(caf::actor_system& sys, context_ptr ctx,
                              server_options opts);

/// Closes the listener and every session, and waits until they are gone.
void stop_server(caf::actor_system& sys, const server& srv);

} // namespace fota
