#include "api/session.hpp"

#include "actors/router.hpp"
#include "events/status.hpp"
#include "fota/version.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <google/protobuf/io/coded_stream.h>
#include <spdlog/spdlog.h>

namespace fota {

namespace {

void release_devices(session_broker* self);
void arm_timer(session_broker* self);
void maybe_resume(session_broker* self);

// -- output -------------------------------------------------------------------

/// Hands bytes to the connection and counts them until the peer takes them.
void send_bytes(session_broker* self, const void* data, size_t size) {
  auto& st = self->state;
  self->write(st.hdl, size, data);
  st.unsent += size;
}

/// Writes what TLS has for the peer: records, handshake messages, alerts.
void write_tls_output(session_broker* self) {
  auto& st = self->state;
  auto cipher = st.tls->take_output();
  if (!cipher.empty())
    send_bytes(self, cipher.data(), cipher.size());
}

/// Bytes out: writes `prefix` and `payload` to the connection, encrypted
/// when the session runs TLS.
void write_out(session_broker* self, std::string_view prefix,
               std::string_view payload) {
  auto& st = self->state;
  if (!st.tls) {
    send_bytes(self, prefix.data(), prefix.size());
    send_bytes(self, payload.data(), payload.size());
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
  m.respond(frame.response().status());
  write_frame(self, bytes);
}

/// Answers request `id`, a `ClientFrame.body` field `type` that arrived at
/// `since`, and records how long it took.
void answer(session_broker* self, uint64_t id, int type,
            std::chrono::steady_clock::time_point since,
            const v1::Response& response) {
  auto& st = self->state;
  respond(self, id, response);
  ++st.answered;
  auto took = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - since);
  st.ctx->metrics->answered(type, static_cast<uint64_t>(took.count()));
}

// -- the log ------------------------------------------------------------------

/// A name the client chose, as the log may show it: at most 64 bytes,
/// control characters replaced, so that it cannot forge log lines.
std::string printable(std::string_view x) {
  std::string out{x.substr(0, 64)};
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return out;
}

/// "operator", "gateway" or "none".
std::string_view role_name(v1::Role role) {
  switch (role) {
  case v1::ROLE_OPERATOR:
    return "operator";
  case v1::ROLE_GATEWAY:
    return "gateway";
  default:
    return "none";
  }
}

/// Who is on the other end, as the log names a session: "peer
/// 127.0.0.1:40210, role gateway, gateway plant-1, client fota-sim".
std::string describe(const session_state& st) {
  std::string out = "peer " + st.peer_name + ", role ";
  out += role_name(st.who.role);
  if (!st.who.gateway.empty())
    out += ", gateway " + st.who.gateway;
  if (!st.client_name.empty())
    out += ", client " + st.client_name;
  return out;
}

/// Says that the session ends and why: at info for a session that said
/// Hello, at debug for a connection that never authenticated (why it
/// failed, if it did, is logged where it happened).
void log_closed(const session_state& st, std::string_view why) {
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            st.started)
                  .count();
  if (st.who.role == v1::ROLE_UNSPECIFIED)
    spdlog::debug("connection from {} closed before a Hello: {}", st.peer_name,
                  why);
  else
    spdlog::info("session closed: {}: {} (after {:.1f} s, {} requests)",
                 describe(st), why, secs, st.answered);
}

// -- closing ------------------------------------------------------------------

/// Closes the connection and ends the session, saying `why` in the log;
/// close() sends no connection_closed_msg.
void close_session(session_broker* self, std::string_view why) {
  auto& st = self->state;
  if (st.closing)
    return;
  log_closed(st, why);
  st.closing = true;
  self->close(st.hdl);
  release_devices(self);
  self->quit();
}

/// Answers with `err` and closes the connection: after a framing error the
/// stream cannot be trusted, after a failed Hello the session is useless.
void fail_and_close(session_broker* self, const failure& err,
                    uint64_t request_id = 0) {
  auto& st = self->state;
  if (st.closing)
    return;
  node_metrics::add(st.ctx->metrics->frames_refused);
  spdlog::warn("refused a frame from {}: {}; closing the connection",
               describe(st), err.message);
  respond(self, request_id, error_response(err));
  close_session(self, "a frame was refused");
}

/// Takes devices offline that this session brought online.
void release_devices(session_broker* self) {
  auto& st = self->state;
  if (!st.ctx || !st.ctx->fleet)
    return;
  auto me = caf::actor_cast<caf::actor>(self);
  for (const auto& [ref, actor] : st.online) {
    const auto& [product, key] = ref;
    device_offline cmd{product, key, st.who.gateway};
    caf::anon_send(st.ctx->fleet, std::move(cmd), me);
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
  spdlog::info("TLS with {} failed: {}", st.peer_name, tls.error());
  close_session(self, "TLS failed");
  return false;
}

// -- authentication -----------------------------------------------------------

void hello(session_broker* self, uint64_t request_id, const v1::Hello& h) {
  auto& st = self->state;
  auto who = st.opts.logins->by_token(h.token());
  // A gateway may prove who it is by its TLS client certificate instead.
  if (!who && h.token().empty() && st.peer)
    who = st.opts.logins->by_certificate(st.peer->sha256_fingerprint);
  if (!who) {
    node_metrics::add(st.ctx->metrics->auth_failures);
    if (st.opts.throttle)
      st.opts.throttle->failed(st.peer_address);
    spdlog::warn("authentication failed from {} (client \"{}\"): neither "
                 "the token nor a client certificate is valid for any role; "
                 "closing the connection",
                 st.peer_name, printable(h.client_name()));
    respond(self, request_id,
            error_response(make_failure(errc::unauthenticated,
                                        "token is not valid for any role; "
                                        "the connection is closed")));
    close_session(self, "authentication failed");
    return;
  }
  if (st.opts.throttle)
    st.opts.throttle->succeeded(st.peer_address);
  st.who = *who;
  st.gateway = st.ctx->edge->find(st.who.gateway);
  st.client_name = printable(h.client_name());
  spdlog::info("session opened: {}", describe(st));
  v1::Response r;
  r.set_status(v1::STATUS_CODE_OK);
  auto* x = r.mutable_hello();
  x->set_role(st.who.role);
  x->set_node_version(std::string{"fota "} + build::version);
  x->set_gateway(st.who.gateway);
  x->set_idle_timeout_seconds(static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(st.opts.idle_timeout)
          .count()));
  respond(self, request_id, r);
  arm_timer(self);
}

/// A Hello, held back while the peer is throttled.
void greet(session_broker* self, uint64_t request_id, const v1::Hello& h) {
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
  auto wait = st.opts.throttle ? st.opts.throttle->wait(st.peer_address)
                               : std::chrono::milliseconds{0};
  if (wait.count() == 0) {
    hello(self, request_id, h);
    return;
  }
  // Nothing else is handled until the Hello is answered.
  st.held_hello.emplace(request_id, h);
  st.paused = true;
  self->delayed_send(self, wait, get_atom_v);
}

// -- requests -----------------------------------------------------------------

/// The answer to a batch registration, within the frame limit: without the
/// devices of OK results if need be, and then with shortened messages.
v1::Response batch_response(const session_state& st,
                            const registration_results& results) {
  // The ServerFrame around the response: its request id and field tags.
  constexpr size_t envelope = 32;
  auto fits = [&](const v1::Response& r) {
    return r.ByteSizeLong() + envelope <= st.opts.max_frame_size;
  };
  auto r = to_response(results);
  if (fits(r))
    return r;
  r = to_response(results, false);
  if (fits(r))
    return r;
  constexpr size_t short_message = 96;
  for (auto& item : *r.mutable_registered()->mutable_results())
    if (item.message().size() > short_message)
      item.mutable_message()->resize(short_message);
  return r;
}

/// A batch registration from a gateway: an item for a product the gateway
/// does not serve is refused on its own; devices brought online here are
/// tracked with their actors, as after a DeviceOnline.
void register_many(session_broker* self, uint64_t id,
                   std::chrono::steady_clock::time_point since,
                   register_devices cmd) {
  auto& st = self->state;
  if (st.gateway != nullptr)
    for (size_t i = 0; i < cmd.devices.size(); ++i)
      if (!cmd.is_refused(i))
        if (auto err = check_serves(*st.gateway, cmd.devices[i].product))
          cmd.refuse(i, std::move(*err));
  cmd.gateway = st.who.gateway;
  for (auto& item : cmd.devices)
    item.gateway = st.who.gateway;
  auto online = cmd.online;
  ++st.in_flight;
  register_batch(
      self, *st.ctx, std::move(cmd), caf::actor_cast<caf::actor>(self),
      [self, id, since, online](expected<registered_batch> r) {
        auto& st = self->state;
        --st.in_flight;
        constexpr auto type =
            static_cast<int>(v1::ClientFrame::kRegisterDevices);
        if (!r) {
          if (!st.closing)
            answer(self, id, type, since, error_response(r.error()));
          maybe_resume(self);
          return;
        }
        if (online) {
          auto me = caf::actor_cast<caf::actor>(self);
          for (size_t i = 0; i < r->results.size(); ++i) {
            const auto& x = r->results[i];
            if (x.error.code != errc::none)
              continue;
            auto ref = std::make_pair(x.device.product, x.device.key);
            if (st.closing) {
              // Came online on a session that has closed meanwhile.
              device_offline off{ref.first, ref.second, st.who.gateway};
              caf::anon_send(st.ctx->fleet, std::move(off), me);
              continue;
            }
            st.online.insert_or_assign(std::move(ref), r->actors[i]);
          }
        }
        if (st.closing)
          return;
        answer(self, id, type, since, batch_response(st, r->results));
        maybe_resume(self);
      });
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
    greet(self, id, frame.hello());
    return;
  }
  auto type = static_cast<int>(frame.body_case());
  auto since = std::chrono::steady_clock::now();
  if (frame.has_ping() && st.who.role != v1::ROLE_UNSPECIFIED) {
    v1::Response r;
    r.set_status(v1::STATUS_CODE_OK);
    answer(self, id, type, since, r);
    return;
  }
  // The one parse of the request.
  auto req = decode(frame);
  if (!req) {
    answer(self, id, type, since, error_response(req.error()));
    return;
  }
  if (auto* batch = std::get_if<register_devices>(&*req);
      batch && st.who.role == v1::ROLE_GATEWAY) {
    register_many(self, id, since, std::move(*batch));
    return;
  }
  // Track devices going online/offline on this session; reports of devices
  // online here go straight to their actor.
  std::optional<std::pair<std::string, std::string>> went_online;
  device_actor device;
  if (auto ref = device_of(*req); ref && st.who.role == v1::ROLE_GATEWAY) {
    if (st.gateway != nullptr)
      if (auto err = check_serves(*st.gateway, ref->first)) {
        answer(self, id, type, since, error_response(*err));
        return;
      }
    stamp_gateway(*req, st.who.gateway);
    if (std::holds_alternative<device_online>(*req)) {
      went_online = *ref;
    } else if (std::holds_alternative<device_offline>(*req)) {
      st.online.erase(*ref);
    } else if (auto i = st.online.find(*ref); i != st.online.end()) {
      device = i->second;
    }
  }
  ++st.in_flight;
  route(
      self, *st.ctx, st.who.role, std::move(*req),
      caf::actor_cast<caf::actor>(self),
      [self, id, type, since, went_online](const v1::Response& r) {
        auto& st = self->state;
        --st.in_flight;
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
        answer(self, id, type, since, r);
        maybe_resume(self);
      },
      device);
}

/// Whether the session takes no more requests for now: too many are being
/// answered, or the peer does not take the answers.
bool saturated(const session_state& st) {
  return st.in_flight >= st.opts.max_requests_in_flight ||
         st.unsent > st.opts.max_output_buffer;
}

/// What a saturated session keeps of the requests that wait: beyond it, the
/// client sends without reading the answers, and the session closes.
size_t input_bound(const session_state& st) {
  return st.opts.max_output_buffer + st.opts.max_frame_size;
}

/// Handles the complete frames the decoder holds, as long as the session
/// is not saturated; the rest wait in the decoder until it is no longer.
void process_frames(session_broker* self) {
  auto& st = self->state;
  bool completed = false;
  while (!st.closing && !st.held_hello) {
    if (saturated(st)) {
      st.paused = true;
      break;
    }
    auto r = st.decoder.next();
    if (r.status == decode_status::need_more)
      break;
    if (r.status == decode_status::error) {
      fail_and_close(self, r.error);
      return;
    }
    handle_frame(self, r.payload);
    completed = true;
  }
  if (st.closing)
    return;
  if (st.decoder.buffered() > input_bound(st)) {
    node_metrics::add(st.ctx->metrics->frames_refused);
    spdlog::warn("refused the requests of {}: {} bytes of them wait while it "
                 "does not read its answers; closing the connection",
                 describe(st), st.decoder.buffered());
    if (st.unsent <= st.opts.max_output_buffer)
      respond(self, 0,
              error_response(make_failure(
                  errc::resource_exhausted,
                  "closing: " + std::to_string(st.decoder.buffered()) +
                      " bytes of requests wait while the answers are not "
                      "read; read the answers, or send fewer requests at "
                      "once")));
    close_session(self, "requests piled up while their answers were not read");
    return;
  }
  // The frame timeout measures the frame the client is sending: it starts
  // again with each completed frame, and does not run while the node holds
  // complete frames back (saturated, or a Hello waiting).
  if (st.decoder.buffered() == 0 || st.paused || st.held_hello)
    st.partial_since.reset();
  else if (!st.partial_since || completed)
    st.partial_since = st.ctx->now();
}

/// Handles what arrived, once `read_in` passed it to the decoder.
void receive_bytes(session_broker* self) {
  auto& st = self->state;
  st.last_input = st.ctx->now();
  process_frames(self);
}

/// Frames that wait are handled again once fewer than half the allowed
/// requests are in flight and the output is below half its bound.
void maybe_resume(session_broker* self) {
  auto& st = self->state;
  if (!st.paused || st.held_hello || st.closing ||
      st.in_flight > st.opts.max_requests_in_flight / 2 ||
      st.unsent > st.opts.max_output_buffer / 2)
    return;
  st.paused = false;
  process_frames(self);
}

// -- pushes -------------------------------------------------------------------

void push(session_broker* self, push_frame& p, const caf::actor& device) {
  auto& st = self->state;
  if (st.closing)
    return;
  if (st.unsent > st.opts.max_output_buffer) {
    // The gateway does not read: the push waits, and its credit goes to
    // other sessions. A cancel is dropped and not sent again: the
    // execution is CANCELED, and the device's later reports about it are
    // answered OK and change nothing.
    if (!p.cancel && device) {
      if (st.stalled_ids.insert(device.id()).second)
        st.stalled.push_back(device);
      self->send(device, deferred_atom_v, p.execution);
    }
    return;
  }
  write_frame(self, p.frame);
  if (!p.cancel)
    node_metrics::add(st.ctx->metrics->pushes);
}

/// The peer took `written` bytes: below half the bound, reading resumes and
/// deferred pushes may come again.
void transferred(session_broker* self, uint64_t written) {
  auto& st = self->state;
  st.unsent -= std::min(st.unsent, written);
  if (st.unsent > st.opts.max_output_buffer / 2)
    return;
  maybe_resume(self);
  if (st.stalled.empty())
    return;
  for (auto& d : st.stalled)
    self->send(d, resume_atom_v);
  st.stalled.clear();
  st.stalled_ids.clear();
}

// -- timeouts -----------------------------------------------------------------

/// The earliest moment a timeout could close the session.
timestamp next_deadline(const session_state& st) {
  auto due = st.last_input + st.opts.idle_timeout;
  if (!st.greeted)
    due = std::min(due, st.opened + st.opts.hello_timeout);
  if (st.partial_since)
    due = std::min(due, *st.partial_since + st.opts.frame_timeout);
  return due;
}

void arm_timer(session_broker* self) {
  auto& st = self->state;
  auto due = next_deadline(st);
  if (st.timer_due && *st.timer_due <= due)
    return;
  st.timer_due = due;
  auto delay = std::max(due - st.ctx->now(), timestamp::duration{0});
  self->delayed_send(self, delay, timeout_atom_v);
}

void on_timer(session_broker* self) {
  auto& st = self->state;
  st.timer_due.reset();
  if (st.closing)
    return;
  auto now = st.ctx->now();
  const char* why = nullptr;
  if (!st.greeted && now >= st.opened + st.opts.hello_timeout)
    why = "no Hello within the handshake timeout";
  else if (st.partial_since && now >= *st.partial_since + st.opts.frame_timeout)
    why = "a frame did not complete within the frame timeout";
  else if (now >= st.last_input + st.opts.idle_timeout)
    why = "nothing received within the idle timeout";
  if (why == nullptr) {
    arm_timer(self);
    return;
  }
  node_metrics::add(st.ctx->metrics->sessions_timed_out);
  if (st.unsent <= st.opts.max_output_buffer)
    respond(self, 0,
            error_response(make_failure(errc::unavailable,
                                        std::string{"closing: "} + why)));
  close_session(self, why);
}

} // namespace

caf::behavior session(session_broker* self, caf::io::connection_handle hdl,
                      context_ptr ctx, server_options opts, bool refuse) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.hdl = hdl;
  st.decoder = frame_decoder{opts.max_frame_size};
  st.opts = std::move(opts);
  st.peer_address = self->remote_addr(hdl);
  st.peer_name = st.peer_address + ":" + std::to_string(self->remote_port(hdl));
  st.started = std::chrono::steady_clock::now();
  st.opened = st.last_input = st.ctx->now();
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
  if (refuse) {
    node_metrics::add(st.ctx->metrics->connections_refused);
    // A TLS client could not read the answer before its handshake.
    if (!st.tls)
      respond(self, 0,
              error_response(make_failure(
                  errc::unavailable,
                  "the node serves " + std::to_string(st.opts.max_connections) +
                      " connections, its limit; try again later")));
    close_session(self, "over the connection limit");
    return {};
  }
  self->configure_read(hdl, caf::io::receive_policy::at_most(64 * 1024));
  self->ack_writes(hdl, true);
  arm_timer(self);
  spdlog::debug("connection from {}", st.peer_name);
  // The node stops: the listener closes every session.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!self->state.closing) {
      log_closed(self->state, "the node is stopping");
      self->state.closing = true;
    }
    self->quit(std::move(msg.reason));
  });
  return {
      [=](const caf::io::new_data_msg& msg) {
        if (self->state.closing)
          return;
        if (!read_in(self, msg.buf))
          return;
        receive_bytes(self);
        if (!self->state.closing)
          arm_timer(self);
      },
      [=](const caf::io::data_transferred_msg& msg) {
        transferred(self, msg.written);
      },
      [=](push_atom, push_frame& p, const caf::actor& device) {
        push(self, p, device);
      },
      [=](get_atom) {
        // The throttle's wait is over: the held Hello is looked at now.
        auto& st = self->state;
        if (st.closing || !st.held_hello)
          return;
        auto [id, h] = std::move(*st.held_hello);
        st.held_hello.reset();
        hello(self, id, h);
        // Frames that arrived with the Hello, then reading again.
        maybe_resume(self);
      },
      [=](timeout_atom) { on_timer(self); },
      [=](const caf::io::connection_closed_msg&) {
        if (!self->state.closing)
          log_closed(self->state, "the peer closed the connection");
        release_devices(self);
        self->quit();
      },
  };
}

namespace {

struct acceptor_state {
  std::vector<caf::actor> sessions;
  /// Connections refused over the limit since the log last said so, and
  /// when it did: at most one line a minute.
  uint64_t refused = 0;
  std::optional<timestamp> refusal_logged;
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
  if (!opts.throttle)
    opts.throttle = std::make_shared<auth_throttle>(ctx->clock);
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
          return to_error(make_failure(
              errc::unavailable,
              "cannot listen on " + (opts.host.empty() ? "*" : opts.host) +
                  ":" + std::to_string(opts.port) + ": " + self->state.error));
        return self->state.port;
      },
      [=](const caf::io::new_connection_msg& msg) {
        auto& st = self->state;
        bool refuse = st.sessions.size() >= opts.max_connections;
        auto s = self->fork(session, msg.handle, ctx, opts, refuse);
        if (refuse) {
          ++st.refused;
          auto now = ctx->now();
          if (!st.refusal_logged ||
              now - *st.refusal_logged >= std::chrono::minutes{1}) {
            spdlog::warn("refused {} connection(s) over the limit of {} "
                         "open connections",
                         st.refused, opts.max_connections);
            st.refused = 0;
            st.refusal_logged = now;
          }
          return;
        }
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
