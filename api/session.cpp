#include "api/session.hpp"

#include "actors/router.hpp"
#include "events/status.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <google/protobuf/io/coded_stream.h>

namespace fota {

namespace {

/// Writes what TLS has for the peer: records, handshake messages, alerts.
void write_tls_output(session_broker* self) {
  auto& st = self->state;
  auto cipher = st.tls->take_output();
  if (!cipher.empty())
    self->write(st.hdl, cipher.size(), cipher.data());
}

/// Bytes out: writes `prefix` and `payload` to the connection, encrypted
/// when the session runs TLS.
void write_out(session_broker* self, std::string_view prefix,
               std::string_view payload) {
  auto& st = self->state;
  if (!st.tls) {
    self->write(st.hdl, prefix.size(), prefix.data());
    self->write(st.hdl, payload.size(), payload.data());
    return;
  }
  // One write, so that the prefix shares a record with the payload.
  std::string plain;
  plain.reserve(prefix.size() + payload.size());
  plain.append(prefix).append(payload);
  st.tls->write(plain.data(), plain.size());
  write_tls_output(self);
}

/// Writes `payload`, an encoded ServerFrame, with its length prefix.
void write_frame(session_broker* self, const std::string& payload) {
  auto& st = self->state;
  uint8_t prefix[5];
  auto* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(payload.size()), prefix);
  write_out(
      self,
      {reinterpret_cast<char*>(prefix), static_cast<size_t>(end - prefix)},
      payload);
  self->flush(st.hdl);
}

void respond(session_broker* self, uint64_t request_id,
             const v1::Response& response) {
  auto& st = self->state;
  auto& m = *st.ctx->metrics;
  v1::ServerFrame frame;
  frame.set_request_id(request_id);
  *frame.mutable_response() = response;
  auto bytes = frame.SerializeAsString();
  if (bytes.size() > st.opts.max_frame_size) {
    // A client must refuse a frame beyond the limit: say so instead.
    frame.mutable_response()->Clear();
    frame.mutable_response()->set_status(v1::STATUS_CODE_RESOURCE_EXHAUSTED);
    frame.mutable_response()->set_message(
        "the response of " + std::to_string(bytes.size()) +
        " bytes exceeds the frame limit of " +
        std::to_string(st.opts.max_frame_size) +
        " bytes; ask for a smaller page");
    bytes = frame.SerializeAsString();
  }
  node_metrics::add(frame.response().status() == v1::STATUS_CODE_OK
                        ? m.responses_ok
                        : m.responses_error);
  write_frame(self, bytes);
}

/// Answers with `err` and closes the connection: the stream cannot be
/// trusted after a framing error.
void release_devices(session_broker* self);

void fail_and_close(session_broker* self, const failure& err,
                    uint64_t request_id = 0) {
  auto& st = self->state;
  if (st.closing)
    return;
  node_metrics::add(st.ctx->metrics->frames_refused);
  respond(self, request_id, error_response(err));
  st.closing = true;
  self->close(st.hdl);
  // close() sends no connection_closed_msg: end the session here.
  release_devices(self);
  self->quit();
}

/// Takes devices offline that this session brought online.
void release_devices(session_broker* self) {
  auto& st = self->state;
  if (!st.ctx || !st.ctx->fleet)
    return;
  auto me = caf::actor_cast<caf::actor>(self);
  for (const auto& [ref, actor] : st.online) {
    const auto& [product, key] = ref;
    caf::anon_send(st.ctx->fleet, device_offline{product, key}, me);
  }
  st.online.clear();
}

/// Bytes in: passes what the connection delivered to the frame decoder,
/// decrypted when the session runs TLS. Returns false when TLS failed,
/// e.g. a plain-text client on a TLS port: no frame can reach such a peer,
/// so the session sends only OpenSSL's alert and closes.
bool read_in(session_broker* self, const std::vector<char>& bytes) {
  auto& st = self->state;
  if (!st.tls) {
    st.decoder.feed(bytes.data(), bytes.size());
    return true;
  }
  auto& tls = *st.tls;
  tls.feed(bytes.data(), bytes.size());
  if (tls.established() && !st.peer)
    st.peer = tls.peer_identity();
  std::string plain;
  tls.read(plain);
  st.decoder.feed(plain);
  write_tls_output(self);
  self->flush(st.hdl);
  if (!tls.failed())
    return true;
  st.closing = true;
  self->close(st.hdl);
  release_devices(self);
  self->quit();
  return false;
}

void hello(session_broker* self, uint64_t request_id, const v1::Hello& h) {
  auto& st = self->state;
  if (st.greeted) {
    fail_and_close(self,
                   make_failure(errc::failed_precondition,
                                "Hello was already sent on this session; a "
                                "second Hello closes the connection"),
                   request_id);
    return;
  }
  st.greeted = true;
  v1::Response r;
  if (!h.token().empty() && h.token() == st.opts.operator_token)
    st.role = v1::ROLE_OPERATOR;
  else if (!h.token().empty() && h.token() == st.opts.gateway_token)
    st.role = v1::ROLE_GATEWAY;
  else {
    st.role = v1::ROLE_UNSPECIFIED;
    respond(self, request_id,
            error_response(make_failure(errc::unauthenticated,
                                        "token is not valid for any role")));
    return;
  }
  r.set_status(v1::STATUS_CODE_OK);
  r.mutable_hello()->set_role(st.role);
  r.mutable_hello()->set_node_version("fota 0.1.0");
  respond(self, request_id, r);
}

void handle_frame(session_broker* self, std::string_view payload) {
  auto& st = self->state;
  v1::ClientFrame frame;
  if (auto err = parse_frame(payload, frame)) {
    fail_and_close(self, *err);
    return;
  }
  auto id = frame.request_id();
  if (frame.has_hello()) {
    hello(self, id, frame.hello());
    return;
  }
  // The one parse of the request.
  auto req = decode(frame);
  if (!req) {
    respond(self, id, error_response(req.error()));
    return;
  }
  // Track devices going online/offline on this session; reports of devices
  // online here go straight to their actor.
  std::optional<std::pair<std::string, std::string>> went_online;
  device_actor device;
  if (auto ref = device_of(*req); ref && st.role == v1::ROLE_GATEWAY) {
    if (std::holds_alternative<device_online>(*req)) {
      went_online = *ref;
    } else if (std::holds_alternative<device_offline>(*req)) {
      st.online.erase(*ref);
    } else if (auto i = st.online.find(*ref); i != st.online.end()) {
      device = i->second;
    }
  }
  route(
      self, *st.ctx, st.role, std::move(*req),
      caf::actor_cast<caf::actor>(self),
      [self, id, went_online](const v1::Response& r) {
        auto& st = self->state;
        if (st.closing)
          return;
        if (went_online && r.status() == v1::STATUS_CODE_OK) {
          st.online.emplace(*went_online, device_actor{});
          self->request(st.ctx->fleet, caf::infinite, lookup_atom_v,
                        went_online->first, went_online->second)
              .then(
                  [self, ref = *went_online](device_actor& a) {
                    auto i = self->state.online.find(ref);
                    if (i != self->state.online.end())
                      i->second = std::move(a);
                  },
                  [](caf::error&) {});
        }
        respond(self, id, r);
      },
      device);
}

} // namespace

caf::behavior session(session_broker* self, caf::io::connection_handle hdl,
                      context_ptr ctx, server_options opts) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.hdl = hdl;
  st.decoder = frame_decoder{opts.max_frame_size};
  st.opts = std::move(opts);
  if (st.opts.tls) {
    // OpenSSL makes no channel only when memory runs out.
    auto channel = tls_channel::accept(*st.opts.tls);
    if (!channel) {
      self->close(hdl);
      self->quit();
      return {};
    }
    st.tls = std::move(*channel);
  }
  self->configure_read(hdl, caf::io::receive_policy::at_most(64 * 1024));
  return {
      [=](const caf::io::new_data_msg& msg) {
        auto& st = self->state;
        if (st.closing)
          return;
        if (!read_in(self, msg.buf))
          return;
        for (;;) {
          auto r = st.decoder.next();
          if (r.status == decode_status::need_more)
            return;
          if (r.status == decode_status::error) {
            fail_and_close(self, r.error);
            return;
          }
          handle_frame(self, r.payload);
          if (st.closing)
            return;
        }
      },
      [=](push_atom, const std::string& frame) {
        if (!self->state.closing)
          write_frame(self, frame);
      },
      [=](const caf::io::connection_closed_msg&) {
        release_devices(self);
        self->quit();
      },
  };
}

namespace {

struct acceptor_state {
  std::vector<caf::actor> sessions;
  /// The port listened on, or why listening failed.
  uint16_t port = 0;
  std::string error;
  static inline constexpr const char* name = "fota.acceptor";
};

/// Accepts connections and forks a session for each. Sessions are
/// monitored, not linked: one connection failing must not close the others.
/// An exit message closes the listener and every session.
caf::behavior
acceptor(caf::stateful_actor<acceptor_state, caf::io::broker>* self,
         context_ptr ctx, server_options opts) {
  // SO_REUSEADDR: a node restarted after a crash gets its port back while
  // old connections linger in TIME_WAIT.
  auto listening = self->add_tcp_doorman(
      opts.port, opts.host.empty() ? nullptr : opts.host.c_str(), true);
  if (listening)
    self->state.port = listening->second;
  else
    self->state.error = self->system().render(listening.error());
  self->set_down_handler([=](const caf::down_msg& down) {
    auto& xs = self->state.sessions;
    xs.erase(std::remove_if(xs.begin(), xs.end(),
                            [&](const caf::actor& x) {
                              return x.address() == down.source;
                            }),
             xs.end());
  });
  self->set_exit_handler([=](const caf::exit_msg& msg) {
    for (auto& s : self->state.sessions)
      self->send_exit(s, msg.reason);
    self->state.sessions.clear();
    self->quit(msg.reason);
  });
  return {
      [=](get_atom) -> caf::result<uint16_t> {
        if (self->state.port == 0)
          return to_error(
              make_failure(errc::unavailable, "cannot listen on port " +
                                                  std::to_string(opts.port) +
                                                  ": " + self->state.error));
        return self->state.port;
      },
      [=](const caf::io::new_connection_msg& msg) {
        auto s = self->fork(session, msg.handle, ctx, opts);
        self->monitor(s);
        self->state.sessions.push_back(std::move(s));
      },
  };
}

} // namespace

expected<server> start_server(caf::actor_system& sys, context_ptr ctx,
                              server_options opts) {
  auto acc = sys.middleman().spawn_broker(acceptor, ctx, opts);
  caf::scoped_actor self{sys};
  expected<server> result{make_failure(errc::internal, "no answer")};
  self->request(acc, caf::infinite, get_atom_v)
      .receive(
          [&](uint16_t port) {
            result = server{acc, port};
          },
          [&](caf::error& err) {
            result = from_error(err);
            self->send_exit(acc, caf::exit_reason::user_shutdown);
          });
  return result;
}

void stop_server(caf::actor_system& sys, const server& srv) {
  if (!srv.acceptor)
    return;
  caf::scoped_actor self{sys};
  self->monitor(srv.acceptor);
  self->send_exit(srv.acceptor, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) {});
}

} // namespace fota
