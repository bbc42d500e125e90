/// The journal: the only writer of the event log. It commits in groups:
/// every append waiting in its mailbox goes into one durable RocksDB write,
/// so durable throughput comes from batching, not from skipping fsync.
///
/// When storage refuses a group for lack of free space, the journal keeps
/// it and tries again: its events were applied by their actors when they
/// were decided, so refusing them would leave those actors ahead of the
/// log. New commands are refused before they are decided (see `route` and
/// `space_guard`); what the journal holds is only what was decided before
/// space ran short, plus the node's own timers.
#pragma once

#include "actors/fwd.hpp"
#include "actors/metrics.hpp"
#include "storage/event_log.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/make_message.hpp>
#include <caf/result.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

namespace fota {

/// The journal as it is implemented: `journal_actor` plus the flush that it
/// sends only to itself to close a group. Spawning `journal` gives this
/// handle; it converts to `journal_actor`, which is what other actors hold.
using journal_impl_actor = journal_actor::extend<caf::reacts_to<flush_atom>>;

/// An append that waits for the next write.
struct pending_append {
  caf::typed_response_promise<sequence_number> promise;
  std::vector<std::string> envelopes;
  size_t bytes = 0;
};

/// The journal's state: the appends of the current group.
struct journal_state {
  // -- member types -----------------------------------------------------------

  using self_pointer = journal_impl_actor::stateful_pointer<journal_state>;

  // -- constants --------------------------------------------------------------

  /// At most this many envelopes go into one write; a larger backlog takes
  /// several writes. A single request is never split.
  static constexpr size_t max_write_events = 8192;

  /// At most this many envelope bytes go into one write, as above.
  static constexpr size_t max_write_bytes = size_t{4} << 20;

  /// While storage refuses writes for lack of space, the journal tries its
  /// held group again this often.
  static constexpr std::chrono::milliseconds space_retry{200};

  static inline constexpr const char* name = "fota.journal";

  // -- constructors -----------------------------------------------------------

  explicit journal_state(self_pointer ptr) : self(ptr) {
    // nop
  }

  // -- message handlers -------------------------------------------------------

  /// Adds `batch` to the current group and schedules its write. The reply,
  /// the sequence of the batch's last envelope, comes once it is durable. An
  /// empty batch gets the last durable sequence at once.
  caf::result<sequence_number> operator()(append_atom, event_batch& batch);

  /// Writes the current group and answers each of its requesters; while
  /// storage refuses for lack of space, tries again after `space_retry`.
  void operator()(flush_atom);

  // -- writing ----------------------------------------------------------------

  /// Writes the pending appends in groups and answers their requesters.
  /// When storage refuses a group for lack of space, stops there and
  /// returns the refusal; that group and the ones after it stay pending.
  status write_pending();

  // -- member variables -------------------------------------------------------

  self_pointer self;

  /// Not owned; must outlive the actor.
  storage::event_log* log = nullptr;

  /// Where each write's latency and size are recorded.
  std::shared_ptr<node_metrics> metrics;

  /// Whether storage refuses the held group for lack of space: said once
  /// in the log when it starts and once when writes resume.
  bool refused = false;

  /// The current group, in arrival order.
  std::vector<pending_append> pending;

  /// Whether a `flush_atom` is on its way to this actor.
  bool flush_scheduled = false;
};

/// Spawns as `sys.spawn(journal, log, metrics)` or, to give fsync its own
/// thread, `sys.spawn<caf::detached>(journal, log, metrics)`. On an exit
/// message the journal writes its current group before it quits; what
/// storage still refuses then is answered with the refusal.
journal_impl_actor::behavior_type
journal(journal_state::self_pointer self, storage::event_log* log,
        std::shared_ptr<node_metrics> metrics);

} // namespace fota
