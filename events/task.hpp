/// A batch upgrade task: its spec, its executions (one per device in scope,
/// in sequence order), counters by state, and the task lifecycle
/// RUNNING ⇄ PAUSED → CANCELED | COMPLETED. Also the rules that decide
/// about one task: the device-request offer and the verification outcome.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "events/firmware.hpp"
#include "events/ids.hpp"
#include "events/task_spec.hpp"
#include "events/values.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fota {

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
  task_id id;
  task_spec spec;
  firmware_record firmware;
  v1::TaskStatus status = v1::TASK_STATUS_UNSPECIFIED;
  std::string status_reason;
  int64_t created_at_ms = 0;
  int64_t finished_at_ms = 0;
  /// Execution with sequence `s` is `executions[s - 1]`.
  std::vector<execution> executions;
  std::vector<skipped_device> skipped;
  std::unordered_map<uint64_t, failure_info> failures;
  std::unordered_map<uint64_t, std::string> progress_texts;
  /// Executions by state, indexed by v1::ExecutionState.
  std::array<uint64_t, 8> counts{};
  /// FAILED or TIMED_OUT executions that will be retried.
  uint64_t retries_pending = 0;
  /// Device-request and increment tasks: the sequences of each device key's
  /// hash, so that a device's request or join is no scan of the executions.
  std::unordered_multimap<size_t, uint64_t> by_device;

  // -- lookups ----------------------------------------------------------------

  /// Returns the execution with this sequence, or nullptr.
  const execution* find(execution_seq sequence) const;

  /// The sequence of `device`'s execution, if it has one (device-request and
  /// increment tasks only).
  std::optional<execution_seq> sequence_of(const std::string& device) const;

  /// Whether devices are looked up by key in this task.
  bool indexes_devices() const noexcept;

  /// Rebuilds `by_device` from the executions (after loading a snapshot).
  void index_devices();

  /// The id of the execution with this sequence.
  execution_id id_of(execution_seq sequence) const {
    return execution_id{id, sequence};
  }

  // -- properties -------------------------------------------------------------

  /// Number of executions not yet terminal.
  uint64_t active() const noexcept;

  /// Whether a FAILED or TIMED_OUT execution gets another attempt.
  bool will_retry(const execution& x) const noexcept;

  /// Whether the execution holds its device, so that no other execution may:
  /// a cloud-push execution from enrolment until it ends for good (a retry
  /// still to come keeps it); a device-request execution only from the offer
  /// (NOTIFIED) until it ends.
  bool holds_device(const execution& x) const noexcept;

  /// The per-device timeout in milliseconds.
  int64_t timeout_ms() const noexcept;

  /// When the execution times out, or 0 when it cannot: a notified or
  /// started execution after the timeout without progress; a verification
  /// device that never came online after the timeout from the run's start.
  int64_t deadline_ms(const execution& x) const noexcept;

  /// When a retry of the execution is due, or 0 when none will come.
  int64_t retry_at_ms(const execution& x) const noexcept;

  // -- views ------------------------------------------------------------------

  execution_counters counters() const;
  task_summary summary() const;
  execution_view view(execution_seq sequence) const;
};

// -- decide ------------------------------------------------------------------

/// Checks every field of `spec` against the target firmware `target` (null
/// when it does not exist). Errors are INVALID_ARGUMENT naming the field, or
/// FAILED_PRECONDITION when the target firmware is not VERIFIED.
status validate(const task_spec& spec, const firmware_record* target,
                timestamp now);

/// Validates and returns TaskCreated.
expected<event_list> decide_create(task_id id, const task_spec& spec,
                                   const firmware_record* target,
                                   timestamp now);

/// Enrols `device_keys` (in sequence order) and records `skipped` devices.
/// Emits TaskCompleted too when a snapshot task ends up with no active
/// executions.
event_list decide_enroll(const task_state& state,
                         const std::vector<std::string>& device_keys,
                         const std::vector<skipped_device>& skipped,
                         timestamp now);

/// The push of an execution leaves for the device: QUEUED → NOTIFIED.
expected<event_list> decide_notified(const task_state& state,
                                     execution_seq sequence, timestamp now);

/// The device reports progress: NOTIFIED → IN_PROGRESS, then progress. A
/// report about an execution that has ended for good changes nothing (a
/// late or repeated report); one about a QUEUED execution, or one waiting
/// for its retry, is refused.
expected<event_list> decide_progress(const task_state& state,
                                     execution_seq sequence, uint32_t step,
                                     const std::string& text, timestamp now);

/// The device confirms an offered upgrade: NOTIFIED → IN_PROGRESS. A
/// confirmation of an execution already IN_PROGRESS changes nothing.
expected<event_list> decide_confirm(const task_state& state,
                                    execution_seq sequence, timestamp now);

/// The device reports `version`. Only the target version counts as success;
/// a report for an execution already ended changes nothing. With
/// `records_version`, the success also records `version` as the device's
/// (the device wrote no event of its own for the report).
expected<event_list> decide_version(const task_state& state,
                                    execution_seq sequence,
                                    const std::string& version, timestamp now,
                                    bool records_version = false);

/// The device reports failure with its code and text. A report about an
/// execution that has ended for good changes nothing (a duplicate).
expected<event_list> decide_failure(const task_state& state,
                                    execution_seq sequence,
                                    const std::string& code,
                                    const std::string& text, timestamp now);

/// The execution made no progress within the timeout: TIMED_OUT. Empty
/// when it is not due.
event_list decide_timeout(const task_state& state, execution_seq sequence,
                          timestamp now);

/// A FAILED or TIMED_OUT execution with retries left is queued again once
/// the retry interval has passed. Empty when it is not due.
event_list decide_retry(const task_state& state, execution_seq sequence,
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

// -- the device-request offer ------------------------------------------------

/// What a device that asks is told, and the events that go with it.
struct offer_decision {
  upgrade_offer offer;
  event_list events;
};

/// The device-request offer: the device of execution `sequence`, running
/// `device_version`, asks for its upgrade. It is offered the target
/// firmware when the task is a RUNNING device-request task, the execution is
/// QUEUED (a first offer: NOTIFIED) or NOTIFIED (the same offer again), and
/// the device runs a source version. Otherwise the offer is unavailable and
/// says why; an execution IN_PROGRESS or waiting for a retry is "busy".
offer_decision decide_offer(const task_state& state, execution_seq sequence,
                            const std::string& device_version, timestamp now);

// -- the verification outcome ------------------------------------------------

/// A verification run ends at its first failure: when a device of a running
/// verification run failed, timed out or was skipped, the run is canceled
/// with that device named as the reason. Empty otherwise.
event_list decide_verification_failure(const task_state& state, timestamp now);

/// The outcome of a finished verification run.
struct verification_result {
  bool verified = false;
  std::string reason;
};

/// VERIFIED when every named device succeeded; VERIFICATION_FAILED naming
/// the first device that did not. Nullopt while the run goes on, or for a
/// task that is no verification run.
std::optional<verification_result>
verification_outcome(const task_state& state);

// -- apply -------------------------------------------------------------------

/// Creates the state from a TaskCreated event.
task_state make_task(const event& created);

/// Applies an event of this task's stream after checking it against the
/// state: TaskCreated only on a fresh state, enrolments continue the
/// sequence, every transition is one the rules allow. A violation changes
/// nothing and says what is wrong.
status apply(task_state& state, const event& e);

} // namespace fota
