/// The edge between the wire and the actors, shared by network sessions and
/// the in-process API so that both take one code path: a `ClientFrame` is
/// parsed once into its command (`events/codec.hpp`), checked against the
/// sender's role, and sent as a typed message to the actor that owns the
/// entity; the typed reply becomes the `Response`.
#pragma once

#include "actors/context.hpp"
#include "events/codec.hpp"
#include "events/status.hpp"

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// Combines the digests of the node's actors into the state digest.
template <class Self, class Done>
void state_digest_of(Self* self, const node_context& ctx, Done done);

namespace detail {

/// Sends `cmd` (and `xs...`) to `dest` and hands the response to `reply`.
template <class Self, class Dest, class Command, class Reply, class... Ts>
void ask_owner(Self* self, const Dest& dest, Command cmd, Reply reply,
               Ts... xs) {
  using result = typename Command::reply;
  self->request(dest, caf::infinite, std::move(cmd), std::move(xs)...)
      .then([reply](result& r) mutable { reply(to_response(r)); },
            [reply](caf::error& err) mutable {
              reply(error_response(from_error(err)));
            });
}

template <class T, class... Ts>
inline constexpr bool is_one_of = (std::is_same_v<T, Ts> || ...);

/// Commands that write no event. They are served while storage refuses
/// writes; every other command is refused then, before its owner decides
/// it, so that no actor applies an event the log cannot take.
template <class T>
inline constexpr bool writes_nothing =
    is_one_of<T, get_firmware, list_firmware, get_task, list_tasks,
              get_task_details, list_devices, get_device, list_asset_trees,
              get_state_digest, ack_push, get_device_history, get_task_history,
              preview_task>;

} // namespace detail

/// Sends a batch registration from the gateway session `origin` (none
/// in-process) to the fleet and calls `done(expected<registered_batch>)`.
/// Refused at once, like every command that writes, while storage refuses
/// writes.
template <class Self, class Done>
void register_batch(Self* self, const node_context& ctx, register_devices cmd,
                    const caf::actor& origin, Done done) {
  if (ctx.space) {
    if (auto refusal = ctx.space->check()) {
      node_metrics::add(ctx.metrics->writes_refused);
      done(expected<registered_batch>{std::move(*refusal)});
      return;
    }
  }
  self->request(ctx.fleet, caf::infinite, std::move(cmd), origin)
      .then(
          [done](registered_batch& r) mutable {
            done(expected<registered_batch>{std::move(r)});
          },
          [done](caf::error& err) mutable {
            done(expected<registered_batch>{from_error(err)});
          });
}

/// Answers a device's history: the fleet says whether the device exists
/// (NOT_FOUND naming it), then the history reader reads the log.
template <class Self, class Reply>
void history_of(Self* self, const node_context& ctx, get_device_history cmd,
                Reply reply) {
  auto reader = ctx.history;
  self->request(ctx.fleet, caf::infinite, get_device{cmd.product, cmd.device})
      .then(
          [self, reader, cmd, reply](device_state&) mutable {
            detail::ask_owner(self, reader, std::move(cmd), reply);
          },
          [reply](caf::error& err) mutable {
            reply(error_response(from_error(err)));
          });
}

/// Answers a task's history: the task registry says whether the task
/// exists (NOT_FOUND naming it) and its method, then the history reader
/// reads the log.
template <class Self, class Reply>
void history_of(Self* self, const node_context& ctx, get_task_history cmd,
                Reply reply) {
  auto reader = ctx.history;
  self->request(ctx.tasks, caf::infinite, get_task{cmd.task})
      .then(
          [self, reader, cmd, reply](task_summary& t) mutable {
            detail::ask_owner(self, reader, std::move(cmd), reply,
                              static_cast<int32_t>(t.spec.method));
          },
          [reply](caf::error& err) mutable {
            reply(error_response(from_error(err)));
          });
}

/// Sends `req`, from a client with `role`, to the actor that owns it as
/// `self`, and calls `reply(response)` with the response, whatever the
/// outcome. `origin` is the session of a gateway (pushes for devices it
/// brings online go there). A session that knows the actor of a device
/// passes it as `device`, which skips the fleet's directory.
template <class Self, class Reply>
void route(Self* self, const node_context& ctx, v1::Role role, request req,
           const caf::actor& origin, Reply reply,
           const device_actor& device = device_actor{}) {
  auto needed = required_role(req);
  if (role == v1::ROLE_UNSPECIFIED) {
    reply(error_response(make_failure(errc::unauthenticated,
                                      "send Hello with a valid token first")));
    return;
  }
  if (role != needed) {
    reply(error_response(make_failure(errc::permission_denied,
                                      "role " + v1::Role_Name(role) +
                                          " may not send " + name_of(req))));
    return;
  }
  std::visit(
      [&](auto& cmd) {
        using command = std::decay_t<decltype(cmd)>;
        using namespace detail;
        // A batch checks the space itself (`register_batch`).
        if constexpr (!writes_nothing<command> &&
                      !std::is_same_v<command, register_devices>) {
          if (ctx.space) {
            if (auto refusal = ctx.space->check()) {
              node_metrics::add(ctx.metrics->writes_refused);
              reply(error_response(*refusal));
              return;
            }
          }
        }
        if constexpr (is_one_of<command, create_firmware, verify_firmware,
                                skip_verification, get_firmware, list_firmware,
                                delete_firmware>) {
          ask_owner(self, ctx.firmware, std::move(cmd), reply);
        } else if constexpr (is_one_of<command, create_task, preview_task,
                                       get_task, list_tasks, get_task_details,
                                       pause_task, resume_task, cancel_task>) {
          ask_owner(self, ctx.tasks, std::move(cmd), reply);
        } else if constexpr (is_one_of<command, get_device_history,
                                       get_task_history>) {
          history_of(self, ctx, std::move(cmd), reply);
        } else if constexpr (std::is_same_v<command, get_state_digest>) {
          state_digest_of(self, ctx, [reply](expected<state_digest> x) mutable {
            reply(x ? to_response(*x) : error_response(x.error()));
          });
        } else if constexpr (std::is_same_v<command, register_devices>) {
          register_batch(self, ctx, std::move(cmd), origin,
                         [reply](expected<registered_batch> r) mutable {
                           reply(r ? to_response(r->results)
                                   : error_response(r.error()));
                         });
        } else if constexpr (is_one_of<command, device_online,
                                       device_offline>) {
          if (device)
            ask_owner(self, device, std::move(cmd), reply, origin);
          else
            ask_owner(self, ctx.fleet, std::move(cmd), reply, origin);
        } else if constexpr (command::role == v1::ROLE_GATEWAY) {
          if (device)
            ask_owner(self, device, std::move(cmd), reply);
          else
            ask_owner(self, ctx.fleet, std::move(cmd), reply);
        } else {
          ask_owner(self, ctx.fleet, std::move(cmd), reply);
        }
      },
      req);
}

/// Parses the command of `frame` and routes it.
template <class Self, class Reply>
void route(Self* self, const node_context& ctx, v1::Role role,
           const v1::ClientFrame& frame, const caf::actor& origin,
           Reply reply) {
  auto req = decode(frame);
  if (!req) {
    reply(error_response(req.error()));
    return;
  }
  route(self, ctx, role, std::move(*req), origin, std::move(reply));
}

template <class Self, class Done>
void state_digest_of(Self* self, const node_context& ctx, Done done) {
  struct acc_t {
    digest_sum sum;
    int pending = 3;
    std::optional<failure> error;
    Done done;
    journal_actor journal;

    acc_t(Done d, journal_actor j) : done(std::move(d)), journal(std::move(j)) {
      // nop
    }
  };
  auto acc = std::make_shared<acc_t>(std::move(done), ctx.journal);
  auto part = [self, acc](digest_sum& x) {
    acc->sum.add(x);
    if (--acc->pending == 0) {
      if (acc->error) {
        acc->done(*acc->error);
        return;
      }
      // Everything the parts include is durable: the log's last sequence
      // covers it.
      self->request(acc->journal, caf::infinite, append_atom_v, event_batch{})
          .then(
              [acc](sequence_number last) { acc->done(acc->sum.finish(last)); },
              [acc](caf::error& err) { acc->done(from_error(err)); });
    }
  };
  auto failed = [self, acc](caf::error& err) {
    acc->error = from_error(err);
    if (--acc->pending == 0)
      acc->done(*acc->error);
  };
  self->request(ctx.firmware, caf::infinite, digest_atom_v).then(part, failed);
  self->request(ctx.fleet, caf::infinite, digest_atom_v).then(part, failed);
  self->request(ctx.tasks, caf::infinite, digest_atom_v).then(part, failed);
}

struct router_state {
  static inline constexpr const char* name = "fota.router";
  context_ptr ctx;
};

/// The in-process API: `(request_atom, role, ClientFrame bytes)` replies
/// with `Response` bytes, the same code path as the network; with an
/// in-process gateway as a fourth element, pushes for the devices it brings
/// online go to that actor.
router_actor::behavior_type
router_behavior(router_actor::stateful_pointer<router_state> self,
                context_ptr ctx);

} // namespace fota
