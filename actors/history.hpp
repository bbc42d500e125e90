/// The history reader: answers GetDeviceHistory and GetTaskHistory from the
/// event log. The log is keyed by its global sequence only, so each page is
/// derived while the log is read in order (`events/history.hpp`), as one
/// consistent RocksDB view that never blocks the journal's appends. It runs
/// on a thread of its own (detached) so that a long read delays no other
/// actor; the node stops it, and waits for it, before the log closes.
#pragma once

#include "actors/fwd.hpp"
#include "events/history.hpp"
#include "storage/event_log.hpp"

#include <atomic>
#include <memory>

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace fota {

/// Reads one page of a history from `log`, from the first event the page
/// needs up to the log's last event when the read starts. Stops early,
/// with `errc::unavailable`, once `cancel` is set.
expected<history_page> read_history(const storage::event_log& log,
                                    history_request req,
                                    const std::atomic<bool>& cancel);

struct history_state {
  static inline constexpr const char* name = "fota.history";
  const storage::event_log* log = nullptr;
  /// Set by the node when it stops: a read under way ends.
  std::shared_ptr<std::atomic<bool>> cancel;
};

history_actor::behavior_type
history_behavior(history_actor::stateful_pointer<history_state> self,
                 const storage::event_log* log,
                 std::shared_ptr<std::atomic<bool>> cancel);

} // namespace fota
