/// A batch upgrade task: its spec, its executions (one per device in scope,
/// in sequence order), counters by state, and the task lifecycle
/// RUNNING ⇄ PAUSED → CANCELED | COMPLETED.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "events/firmware.hpp"
#include "fota/v1/api.pb.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fota {

/// Default per-device timeout: 2 hours.
constexpr uint32_t default_timeout_seconds = 2 * 60 * 60;
constexpr uint32_t min_timeout_seconds = 5 * 60;
constexpr uint32_t max_timeout_seconds = 48 * 60 * 60;
constexpr uint32_t max_retries = 10;
/// Device keys per DevicesEnrolled event.
constexpr size_t enrollment_chunk = 4096;

/// One device in one task. Compact: a task may hold a million of them.
struct execution {
  std::string device_key;
  v1::ExecutionState state = v1::EXECUTION_STATE_QUEUED;
  uint16_t attempt = 1;
  uint8_t progress_step = 0;
  int64_t queued_at_ms = 0;
  int64_t notified_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  /// Last sign of life: notified, started or progressed. The timeout runs
  /// from here.
  int64_t updated_at_ms = 0;
};

/// Why an execution failed, as the device said.
struct failure_info {
  std::string code;
  std::string text;
};

/// Returns whether `x` is SUCCEEDED, FAILED, TIMED_OUT or CANCELED.
bool is_terminal(v1::ExecutionState x) noexcept;

/// Returns whether the task no longer changes.
bool is_finished(v1::TaskStatus x) noexcept;

/// State of one task.
struct task_state {
  uint64_t id = 0;
  v1::TaskSpec spec;
  v1::Firmware firmware;
  v1::TaskStatus status = v1::TASK_STATUS_UNSPECIFIED;
  std::string status_reason;
  int64_t created_at_ms = 0;
  int64_t finished_at_ms = 0;
  /// Execution with sequence `s` is `executions[s - 1]`.
  std::vector<execution> executions;
  std::vector<v1::SkippedDevice> skipped;
  std::unordered_map<uint64_t, failure_info> failures;
  std::unordered_map<uint64_t, std::string> progress_texts;
  /// Executions by state, indexed by v1::ExecutionState.
  std::array<uint64_t, 8> counts{};
  /// FAILED or TIMED_OUT executions that will be retried.
  uint64_t retries_pending = 0;

  /// Returns the execution with this sequence, or nullptr.
  const execution* find(uint64_t sequence) const;

  /// Number of executions not yet terminal.
  uint64_t active() const noexcept;

  /// Whether a FAILED or TIMED_OUT execution gets another attempt.
  bool will_retry(const execution& x) const noexcept;

  /// Whether the execution still holds its device: not terminal, or
  /// waiting for a retry.
  bool holds_device(const execution& x) const noexcept;

  /// The per-device timeout in milliseconds.
  int64_t timeout_ms() const noexcept;

  /// When the execution times out, or 0 when it cannot.
  int64_t deadline_ms(const execution& x) const noexcept;

  /// When a retry of the execution is due, or 0 when none will come.
  int64_t retry_at_ms(const execution& x) const noexcept;

  v1::ExecutionCounters counters() const;
  v1::TaskSummary summary() const;
  v1::Execution execution_proto(uint64_t sequence) const;
};

/// Looks up what validation of a task spec needs to know about the node.
struct spec_context {
  std::function<const v1::Firmware*(const std::string& product,
                                    const std::string& version)>
      find_firmware;
};

// -- decide ------------------------------------------------------------------

/// Checks every field of `spec`. Errors are INVALID_ARGUMENT naming the
/// field, or FAILED_PRECONDITION when the target firmware is not VERIFIED.
status validate(const v1::TaskSpec& spec, const spec_context& ctx,
                timestamp now);

/// Validates and returns TaskCreated.
expected<event_list> decide_create(uint64_t id, const v1::TaskSpec& spec,
                                   const spec_context& ctx, timestamp now);

/// Enrols `device_keys` (in sequence order) and records `skipped` devices.
/// Emits TaskCompleted too when a snapshot task ends up with no active
/// executions.
event_list decide_enroll(const task_state& state,
                         const std::vector<std::string>& device_keys,
                         const std::vector<v1::SkippedDevice>& skipped,
                         timestamp now);

/// The push of an execution reached the device: QUEUED → NOTIFIED.
expected<event_list> decide_notified(const task_state& state, uint64_t sequence,
                                     timestamp now);

/// The device reports progress: NOTIFIED → IN_PROGRESS, then progress.
expected<event_list> decide_progress(const task_state& state, uint64_t sequence,
                                     uint32_t step, const std::string& text,
                                     timestamp now);

/// The device confirms an offered upgrade: NOTIFIED → IN_PROGRESS. A
/// confirmation of an execution already IN_PROGRESS changes nothing.
expected<event_list> decide_confirm(const task_state& state, uint64_t sequence,
                                    timestamp now);

/// The device reports `version`. Only the target version counts as success.
expected<event_list> decide_version(const task_state& state, uint64_t sequence,
                                    const std::string& version, timestamp now);

/// The device reports failure with its code and text.
expected<event_list> decide_failure(const task_state& state, uint64_t sequence,
                                    const std::string& code,
                                    const std::string& text, timestamp now);

/// The execution made no progress within the timeout: TIMED_OUT. Empty
/// when it is not due (or not NOTIFIED / IN_PROGRESS).
event_list decide_timeout(const task_state& state, uint64_t sequence,
                          timestamp now);

/// A FAILED or TIMED_OUT execution with retries left is queued again once
/// the retry interval has passed. Empty when it is not due.
event_list decide_retry(const task_state& state, uint64_t sequence,
                        timestamp now);

/// The abort rule: once `min_finished` executions have finished for good,
/// a failure share at or above `failure_percent` pauses the task or cancels
/// its queued executions and the task. Empty when it does not trip.
event_list decide_abort(const task_state& state, timestamp now);

/// An INCREMENT task completes at its end time. Empty before.
event_list decide_end(const task_state& state, timestamp now);

expected<event_list> decide_pause(const task_state& state,
                                  const std::string& reason, timestamp now);
expected<event_list> decide_resume(const task_state& state, timestamp now);
expected<event_list> decide_cancel(const task_state& state,
                                   const std::string& reason, timestamp now);

// -- apply -------------------------------------------------------------------

/// Creates the state from a TaskCreated event.
task_state make_task(const event& created);

/// Applies an event of this task's stream.
void apply(task_state& state, const event& e);

} // namespace fota
