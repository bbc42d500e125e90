/// The network edge: one broker per TCP connection (a session) that reads
/// varint-delimited ClientFrames, authenticates the Hello (operator token,
/// a gateway's own token, or the shared token of development mode), checks
/// the role and the gateway's products, routes requests, and writes
/// responses and pushes back. A session bounds what it holds: it stops
/// reading and defers pushes while its output is full, and closes a
/// connection that says no Hello in time, stays idle, or leaves a frame
/// unfinished.
#pragma once

#include "actors/context.hpp"
#include "api/auth.hpp"
#include "api/frame_codec.hpp"
#include "api/tls.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <caf/io/broker.hpp>
#include <caf/stateful_actor.hpp>

namespace fota {

/// What the server needs besides the node.
struct server_options {
  /// TCP port; 0 picks a free one.
  uint16_t port = 7411;
  /// Address to bind: loopback unless told otherwise.
  std::string host = "127.0.0.1";
  /// Who may connect and as what.
  std::shared_ptr<const credentials> logins = std::make_shared<credentials>(
      "operator-token", std::vector<gateway_credential>{}, "gateway-token");
  size_t max_frame_size = default_max_frame_size;
  /// Open connections at most; more are answered UNAVAILABLE and closed.
  size_t max_connections = 10'000;
  /// A connection must authenticate within this time.
  std::chrono::milliseconds hello_timeout{10'000};
  /// A session that receives nothing for this long is closed.
  std::chrono::milliseconds idle_timeout{300'000};
  /// A frame must complete within this time once its first byte arrived.
  std::chrono::milliseconds frame_timeout{30'000};
  /// Bytes written and not yet taken by the peer, above which the session
  /// handles no more requests and defers pushes; it resumes below half.
  /// Requests that wait beyond this bound plus a frame close the session.
  size_t max_output_buffer = 4u << 20;
  /// Requests of one session being answered at once; further frames wait
  /// in the socket.
  size_t max_requests_in_flight = 256;
  /// Slows down peers that fail to authenticate; shared by all sessions.
  std::shared_ptr<auth_throttle> throttle;
  /// A server context: every connection speaks TLS. Null: plain TCP.
  std::shared_ptr<tls_context> tls;
};

struct session_state {
  context_ptr ctx;
  server_options opts;
  caf::io::connection_handle hdl;
  frame_decoder decoder;
  /// The peer's address, for the throttle.
  std::string peer_address;
  /// The peer's address and port, for the log.
  std::string peer_name;
  /// The client's name from its Hello, for the log.
  std::string client_name;
  /// Requests answered, and when the connection opened by the steady
  /// clock, for the log.
  uint64_t answered = 0;
  std::chrono::steady_clock::time_point started;
  /// Who the Hello authenticated; ROLE_UNSPECIFIED before.
  principal who;
  /// The policy of the gateway this session acts as, if it has one.
  const gateway_policy* gateway = nullptr;
  /// Devices this session brought online, by (product, device key), with
  /// their actors once the fleet named them: reports go straight there.
  std::map<std::pair<std::string, std::string>, device_actor> online;
  /// Whether the client sent its Hello; a second one closes the session.
  bool greeted = false;
  /// A Hello held back by the throttle.
  std::optional<std::pair<uint64_t, v1::Hello>> held_hello;
  /// The connection's TLS when the server runs TLS.
  std::optional<tls_channel> tls;
  /// The client certificate, verified, once the TLS handshake completed, if
  /// the client sent one.
  std::optional<tls_peer> peer;
  bool closing = false;
  /// Bytes written and not yet transferred to the peer.
  uint64_t unsent = 0;
  /// Requests routed and not answered yet.
  size_t in_flight = 0;
  /// Whether frames wait in the decoder: too many requests in flight,
  /// output above its bound, or a Hello held back.
  bool paused = false;
  /// Devices whose pushes were deferred while the output was full.
  std::vector<caf::actor> stalled;
  std::unordered_set<caf::actor_id> stalled_ids;
  /// When the connection opened, when the last bytes arrived, and when the
  /// unfinished frame began.
  timestamp opened;
  timestamp last_input;
  std::optional<timestamp> partial_since;
  /// The deadline the pending timer was armed for, if any.
  std::optional<timestamp> timer_due;

  static inline constexpr const char* name = "fota.session";
};

using session_broker = caf::stateful_actor<session_state, caf::io::broker>;

/// The behaviour of one connection; `refuse` answers UNAVAILABLE and closes
/// (over the connection limit).
caf::behavior session(session_broker* self, caf::io::connection_handle hdl,
                      context_ptr ctx, server_options opts, bool refuse);

/// A listening server.
struct server {
  /// The acceptor; an exit message to it closes the listener and every
  /// connection.
  caf::actor acceptor;
  uint16_t port = 0;
};

/// Listens on `opts.host:opts.port` and forks a session per connection.
expected<server> start_server(caf::actor_system& sys, context_ptr ctx,
                              server_options opts);

/// Closes the listener and every session, and waits until they are gone.
void stop_server(caf::actor_system& sys, const server& srv);

} // namespace fota
