/// What every actor of a node shares: the handles of the singleton actors,
/// the injected clock, the node's limits and metrics, and the translation
/// between domain failures and CAF errors.
#pragma once

#include "actors/fwd.hpp"
#include "actors/metrics.hpp"
#include "events/clock.hpp"
#include "events/error.hpp"
#include "events/gateway.hpp"
#include "storage/space_guard.hpp"

#include <chrono>
#include <cstdint>
#include <memory>

#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

namespace fota {

/// Tunables of a node that actors read.
struct node_limits {
  /// Pushes per minute for the whole node; 0 means unlimited.
  uint32_t max_pushes_per_minute = 0;
  /// Pushes sent and not yet answered (acknowledged, or overtaken by the
  /// device's progress), across all tasks.
  uint32_t max_pushes_in_flight = 4096;
  /// An UpgradePush the gateway has not acknowledged within this time is
  /// sent again, within the same rules as a first push.
  std::chrono::milliseconds push_ack_timeout{30'000};
};

/// Handles of a node's singleton actors, filled in before any request.
struct node_context {
  journal_actor journal;
  fleet_actor fleet;
  firmware_actor firmware;
  task_registry_actor tasks;
  dispatcher_actor dispatcher;
  /// Reads histories from the log; none in a node without one.
  history_actor history;
  /// Free space of the data directory: while it is below the reserve,
  /// commands that write are refused before they are decided, and no push
  /// credit is granted. None: never refuse.
  std::shared_ptr<storage::space_guard> space;
  std::shared_ptr<fota::clock> clock;
  node_limits limits;
  /// The gateways the node knows and the quotas of gateways and products.
  std::shared_ptr<const edge_policy> edge = std::make_shared<edge_policy>();
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();

  timestamp now() const { return clock->now(); }
};

using context_ptr = std::shared_ptr<node_context>;

/// Turns a domain failure into a CAF error carrying code and message.
caf::error to_error(const failure& x);

/// Reads the code and message back from an error made by `to_error`, or
/// maps other CAF errors to `errc::internal` / `errc::unavailable`.
failure from_error(const caf::error& x);

/// Makes a supervisor keep running when a linked child fails: only an exit
/// that stops the node (user_shutdown, kill) stops it.
template <class Self>
void survive_children(Self* self) {
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    if (msg.reason == caf::exit_reason::user_shutdown ||
        msg.reason == caf::exit_reason::kill)
      self->quit(msg.reason);
  });
}

/// Makes an actor ignore error messages nobody waits for, instead of quitting.
template <class Self>
void ignore_stray_errors(Self* self) {
  self->set_error_handler([](caf::error&) {});
}

} // namespace fota
