/// The history of one device or one task, read from the event log: which
/// events concern it, one readable line for each, and its state at a past
/// moment. The log is keyed by its global sequence only, so a history is
/// derived while the log is read in order; the state at a moment comes from
/// applying the log's events up to that moment with the same checked
/// `apply()` that replay uses, never from a second state machine.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "events/ids.hpp"
#include "events/replay.hpp"
#include "events/values.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace fota {

/// Whose history: a device (product and key) or a task (id).
struct history_subject {
  std::string product;
  std::string device;
  task_id task;
  /// A task's method, which says whether a notification is a push or an
  /// offer.
  v1::Method method = v1::METHOD_UNSPECIFIED;

  static history_subject of_device(std::string product, std::string device) {
    return {std::move(product), std::move(device), task_id{},
            v1::METHOD_UNSPECIFIED};
  }

  static history_subject of_task(task_id id, v1::Method method) {
    return {std::string{}, std::string{}, id, method};
  }

  bool is_task() const noexcept { return task.value() != 0; }
};

/// What a page asks for.
struct history_request {
  history_subject subject;
  /// Entries on the page; 0 asks for the default.
  uint32_t page_size = 0;
  /// The log sequence to continue at (a page token); 0 starts at the
  /// beginning.
  uint64_t from = 0;
  /// With a moment: only the events up to it, and the state then.
  bool has_at = false;
  int64_t at_ms = 0;
};

/// Builds one page of a history from the log, fed in order from the
/// sequence `start()` names. Pure: the caller reads the log.
class history_builder {
public:
  explicit history_builder(history_request req);

  ~history_builder();

  history_builder(history_builder&&) noexcept;
  history_builder& operator=(history_builder&&) noexcept;

  /// The first log sequence the builder needs: the page token for a task
  /// without a moment; the log's first event otherwise (a device's history
  /// needs the enrolments before the page to know its executions, and a
  /// state needs every event before the moment).
  uint64_t start() const noexcept;

  /// Takes the event stored under `seq`. Returns whether the builder needs
  /// more of the log; fails when the event does not decode or, with a
  /// moment, does not apply (naming it).
  expected<bool> add(sequence_number seq, std::string_view bytes);

  /// The page: its entries, the token of the next page, and with a moment
  /// the state then.
  history_page finish();

private:
  bool concerns(const event& e, uint64_t& execution);
  history_entry describe(const event& e, uint64_t execution) const;

  history_request req_;
  uint32_t page_size_;
  history_page page_;
  bool page_full_ = false;
  bool past_moment_ = false;
  /// The tasks of the device's product, with their method.
  std::map<uint64_t, v1::Method> tasks_;
  /// The device's executions: (task, sequence).
  std::set<std::pair<uint64_t, uint64_t>> executions_;
  /// With a moment: the node as the log was then.
  std::unique_ptr<world> world_;
};

/// "ExecutionNotified", the type of an event's payload.
std::string kind_of(const event& e);

} // namespace fota
