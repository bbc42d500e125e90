/// The dispatcher: grants push credit to tasks with pushes to send, in
/// priority order and round robin between tasks of equal priority, under the
/// node's rate limit, each task's own rate (with its ramp-up, which follows
/// the task's durable successes) and schedule windows, and a bound on pushes
/// in flight. It wakes on timers at window edges and token refills, and
/// never polls.
#pragma once

#include "actors/context.hpp"
#include "events/rate.hpp"
#include "events/schedule.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// The dispatcher as implemented: `dispatcher_actor` plus its timer.
using dispatcher_impl = dispatcher_actor::extend<caf::reacts_to<tick_atom>>;

struct dispatcher_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = dispatcher_impl::stateful_pointer<dispatcher_state>;

  /// What the dispatcher knows about one task.
  struct demand {
    credit_sink task;
    uint64_t pending = 0;
    int32_t priority = 0;
    rate_spec rate;
    schedule windows;
    /// While the task's windows are closed: when the next one opens. The
    /// edge is computed once per closed stretch, not on every dispatch.
    std::optional<timestamp> closed_until;
    rate_limiter limiter;
  };

  // -- constants --------------------------------------------------------------

  static inline constexpr const char* name = "fota.dispatcher";

  /// Largest credit granted at once, so that tasks interleave.
  static constexpr uint64_t max_grant = 256;

  /// While storage refuses writes for lack of space no credit is granted
  /// (every push writes its `ExecutionNotified` first); the dispatcher looks
  /// again this often.
  static constexpr std::chrono::milliseconds space_recheck{1000};

  // -- constructors -----------------------------------------------------------

  explicit dispatcher_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- message handlers -------------------------------------------------------

  void operator()(demand_atom, push_demand& d);
  void operator()(settled_atom, const credit_sink& task, uint64_t pushes,
                  uint64_t unused);
  void operator()(tick_atom);

  // -- member variables -------------------------------------------------------

  self_pointer self;
  context_ptr ctx;
  std::vector<demand> tasks;
  /// Round-robin position among tasks.
  size_t next = 0;
  uint64_t in_flight = 0;
  rate_limiter global;
  /// When the pending wake-up timer fires, if one is set.
  std::optional<timestamp> wake_at;

private:
  /// Grants credit until nothing more can be granted now, and sets a timer
  /// for the earliest moment a blocked task can go on.
  void dispatch();

  void schedule_wake(timestamp at);
};

dispatcher_impl::behavior_type
dispatcher_behavior(dispatcher_state::self_pointer self, context_ptr ctx);

} // namespace fota
