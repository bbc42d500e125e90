/// What every actor of a node shares: the handles of the singleton actors,
/// the injected clock, and helpers for the decide → persist → reply loop.
#pragma once

#include "actors/fwd.hpp"
#include "actors/metrics.hpp"
#include "events/clock.hpp"
#include "events/event.hpp"
#include "fota/v1/api.pb.h"

#include <memory>
#include <string>
#include <utility>

#include <caf/actor.hpp>
#include <caf/delegated.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>

namespace fota {

/// Tunables of a node that actors read.
struct node_limits {
  /// Pushes per minute for the whole node; 0 means unlimited.
  uint32_t max_pushes_per_minute = 0;
  /// Pushes sent but not yet answered by devices, across all tasks.
  uint32_t max_pushes_in_flight = 4096;
};

/// Handles of a node's singleton actors, filled in before any request.
struct node_context {
  journal_actor journal;
  caf::actor fleet;
  caf::actor firmware;
  caf::actor tasks;
  caf::actor dispatcher;
  std::shared_ptr<fota::clock> clock;
  node_limits limits;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();

  timestamp now() const { return clock->now(); }
};

using context_ptr = std::shared_ptr<node_context>;

/// Turns a domain failure into a CAF error carrying code and message.
caf::error to_error(const failure& x);

/// Reads the code and message back from an error made by `to_error`, or
/// maps other CAF errors to `errc::internal` / `errc::unavailable`.
failure from_error(const caf::error& x);

/// An OK response, serialized; `fill` may set the result.
std::string ok_response();
std::string ok_response(const v1::Response& filled);

/// Parses a command body into `out`; false when it does not parse.
template <class Message>
bool parse_body(const command& cmd, Message& out) {
  return out.ParseFromString(cmd.body);
}

/// Sends `events` to the journal and calls `on_durable()` once they are
/// durable; a journal error goes to `rp`. With no events, calls
/// `on_durable()` at once. The caller has already applied the events: state
/// runs ahead of the disk only while the journal is writing, and a journal
/// failure makes the node refuse all further writes.
template <class OnDurable>
void persist(caf::event_based_actor* self, const node_context& ctx,
             const event_list& events, caf::response_promise rp,
             OnDurable on_durable) {
  if (events.empty()) {
    on_durable(rp);
    return;
  }
  auto metrics = ctx.metrics;
  auto n = events.size();
  self->request(ctx.journal, caf::infinite, append_atom_v,
                event_batch{encode(events)})
      .then(
          [rp, f = std::move(on_durable), metrics, n](sequence_number) mutable {
            node_metrics::add(metrics->events_persisted, n);
            node_metrics::add(metrics->appends);
            f(rp);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

/// Makes a supervisor keep running when a linked child fails: only an exit
/// that stops the node (user_shutdown, kill) stops it.
inline void survive_children(caf::event_based_actor* self) {
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    if (msg.reason == caf::exit_reason::user_shutdown ||
        msg.reason == caf::exit_reason::kill)
      self->quit(msg.reason);
  });
}

/// Makes an actor ignore error messages nobody waits for, instead of quitting.
inline void ignore_stray_errors(caf::event_based_actor* self) {
  self->set_error_handler([](caf::error&) {});
}

/// Hands `cmd` to `dest`, which answers the original requester.
inline caf::result<std::string> forward(caf::event_based_actor* self,
                                        const caf::actor& dest, command cmd) {
  self->delegate(dest, std::move(cmd));
  return caf::delegated<std::string>{};
}

/// Sends `(xs...)` to every actor in `to` and calls `done(replies)` once
/// all have answered with a string; failed requests leave an empty string.
template <class Done, class... Ts>
void gather(caf::event_based_actor* self, const std::vector<caf::actor>& to,
            Done done, Ts... xs) {
  struct acc_t {
    std::vector<std::string> replies;
    size_t pending;
    Done done;
  };
  auto acc = std::make_shared<acc_t>(
      acc_t{std::vector<std::string>(to.size()), to.size(), std::move(done)});
  if (to.empty()) {
    acc->done(acc->replies);
    return;
  }
  for (size_t i = 0; i < to.size(); ++i)
    self->request(to[i], caf::infinite, xs...)
        .then(
            [acc, i](std::string& x) {
              acc->replies[i] = std::move(x);
              if (--acc->pending == 0)
                acc->done(acc->replies);
            },
            [acc](caf::error&) {
              if (--acc->pending == 0)
                acc->done(acc->replies);
            });
}

} // namespace fota
