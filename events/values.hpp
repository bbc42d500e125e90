/// The values of the fota domain that commands carry and requests return:
/// firmware records, devices, asset trees, task summaries, executions and
/// offers. Plain structs with an `inspect()`, so that actors pass them as
/// messages; `events/codec.hpp` converts them to and from protobuf at the
/// edges (wire and storage).
#pragma once

#include "events/error.hpp"
#include "events/forecast.hpp"
#include "events/ids.hpp"
#include "events/task_spec.hpp"
#include "fota/v1/model.pb.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fota {

// -- labels -------------------------------------------------------------------

/// A small sorted map; devices carry a handful of tags, and a million
/// devices must stay compact.
using label_map = std::vector<std::pair<std::string, std::string>>;

/// Returns the value of `key` in `xs`, or nullptr.
const std::string* find_label(const label_map& xs, const std::string& key);

/// Sets (or with an empty value, removes) `key` in `xs`.
void set_label(label_map& xs, const std::string& key, const std::string& value);

// -- firmware -----------------------------------------------------------------

/// One firmware image of a product, with its verification state.
struct firmware_record {
  std::string product;
  std::string version;
  std::string url;
  uint64_t size = 0;
  /// Lower-case hex SHA-256 of the image (64 characters).
  std::string sha256;
  /// Opaque bytes.
  std::string signature;
  std::string description;
  v1::FirmwareStatus status = v1::FIRMWARE_STATUS_UNSPECIFIED;
  int64_t created_at_ms = 0;
  /// Devices of the latest verification run, if any.
  std::vector<std::string> verification_devices;
  std::string verification_failure;
  /// Why an operator skipped verification; empty unless skipped.
  std::string verification_skip_reason;

  friend bool operator==(const firmware_record& x, const firmware_record& y);

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 firmware_record& x) {
    return f(x.product, x.version, x.url, x.size, x.sha256, x.signature,
             x.description, x.status, x.created_at_ms, x.verification_devices,
             x.verification_failure, x.verification_skip_reason);
  }
};

// -- devices ------------------------------------------------------------------

/// A device: its reported firmware version, online state, tags, attributes
/// and the one execution it may be in.
struct device_state {
  std::string product;
  std::string key;
  std::string version;
  /// Volatile: true while a gateway session has it online.
  bool online = false;
  label_map tags;
  label_map attributes;
  /// The execution holding this device, or none. Rebuilt from task events
  /// on recovery.
  execution_id active_execution;
  int64_t registered_at_ms = 0;
  /// The gateway the device belongs to: only it may register, report for or
  /// bring the device online. Empty: registered in-process or before
  /// gateways had names; the first named gateway that registers it claims
  /// it.
  std::string gateway;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 device_state& x) {
    return f(x.product, x.key, x.version, x.online, x.tags, x.attributes,
             x.active_execution, x.registered_at_ms, x.gateway);
  }
};

// -- asset trees --------------------------------------------------------------

/// A node of an asset tree; it may itself be a device.
struct asset_node {
  std::string id;
  /// Empty for the root.
  std::string parent;
  std::string name;
  /// Set when this node is a device.
  std::string device_key;

  friend bool operator==(const asset_node& x, const asset_node& y) {
    return x.id == y.id && x.parent == y.parent && x.name == y.name &&
           x.device_key == y.device_key;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, asset_node& x) {
    return f(x.id, x.parent, x.name, x.device_key);
  }
};

struct asset_tree {
  std::string id;
  std::string product;
  std::string name;
  std::vector<asset_node> nodes;

  friend bool operator==(const asset_tree& x, const asset_tree& y) {
    return x.id == y.id && x.product == y.product && x.name == y.name &&
           x.nodes == y.nodes;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, asset_tree& x) {
    return f(x.id, x.product, x.name, x.nodes);
  }
};

// -- tasks --------------------------------------------------------------------

/// A device that a task did not enrol, and why.
struct skipped_device {
  std::string device_key;
  std::string reason;

  friend bool operator==(const skipped_device& x, const skipped_device& y) {
    return x.device_key == y.device_key && x.reason == y.reason;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 skipped_device& x) {
    return f(x.device_key, x.reason);
  }
};

/// Executions of a task by state, and the skipped devices.
struct execution_counters {
  uint64_t queued = 0;
  uint64_t notified = 0;
  uint64_t in_progress = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t timed_out = 0;
  uint64_t canceled = 0;
  uint64_t skipped = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 execution_counters& x) {
    return f(x.queued, x.notified, x.in_progress, x.succeeded, x.failed,
             x.timed_out, x.canceled, x.skipped);
  }
};

/// A task as `GetTask` and `ListTasks` show it.
struct task_summary {
  task_id id;
  task_spec spec;
  v1::TaskStatus status = v1::TASK_STATUS_UNSPECIFIED;
  execution_counters counters;
  int64_t created_at_ms = 0;
  int64_t finished_at_ms = 0;
  std::string status_reason;
  /// Set by GetTask only: the task's forecast now.
  bool has_forecast = false;
  task_forecast forecast;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 task_summary& x) {
    return f(x.id, x.spec, x.status, x.counters, x.created_at_ms,
             x.finished_at_ms, x.status_reason, x.has_forecast, x.forecast);
  }
};

/// One device in one task, as the details show it.
struct execution_view {
  execution_id id;
  std::string device_key;
  v1::ExecutionState state = v1::EXECUTION_STATE_UNSPECIFIED;
  uint32_t attempt = 0;
  int64_t queued_at_ms = 0;
  int64_t notified_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  uint32_t progress_step = 0;
  std::string progress_text;
  std::string failure_code;
  std::string failure_text;
  /// QUEUED and waiting for the device to come online.
  bool waiting_for_device = false;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 execution_view& x) {
    return f(x.id, x.device_key, x.state, x.attempt, x.queued_at_ms,
             x.notified_at_ms, x.started_at_ms, x.finished_at_ms,
             x.progress_step, x.progress_text, x.failure_code, x.failure_text,
             x.waiting_for_device);
  }
};

/// One page of a task's executions or skipped devices.
struct task_details {
  task_summary summary;
  std::vector<execution_view> executions;
  std::vector<skipped_device> skipped;
  /// 0 when there is no further page.
  uint64_t next_page_token = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 task_details& x) {
    return f(x.summary, x.executions, x.skipped, x.next_page_token);
  }
};

/// What a device is offered when it asks for an upgrade.
struct upgrade_offer {
  /// False: no upgrade for this device now; `reason` says why.
  bool available = false;
  execution_id execution;
  uint32_t attempt = 0;
  firmware_record firmware;
  std::string reason;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 upgrade_offer& x) {
    return f(x.available, x.execution, x.attempt, x.firmware, x.reason);
  }
};

// -- pages --------------------------------------------------------------------

/// One page of a list and the token of the next one (empty: no more).
template <class T>
struct page {
  std::vector<T> items;
  std::string next_page_token;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, page& x) {
    return f(x.items, x.next_page_token);
  }
};

using firmware_page = page<firmware_record>;
using device_page = page<device_state>;

/// The outcome of one item of a batch registration: the device, or why the
/// item was refused (`error.code` is `errc::none` on success).
struct registration_result {
  device_state device;
  failure error;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 registration_result& x) {
    return f(x.device, x.error);
  }
};

/// One result per item of a batch registration, in the order of the items.
using registration_results = std::vector<registration_result>;
using task_page = page<task_summary>;
using asset_tree_page = page<asset_tree>;

// -- history ------------------------------------------------------------------

/// One event of the log as a device's or a task's history shows it: where
/// and when it is, its type, one readable line and the fields an operator
/// looks for (each empty or 0 when the event has none).
struct history_entry {
  sequence_number sequence;
  int64_t time_ms = 0;
  std::string kind;
  std::string text;
  uint64_t task = 0;
  uint64_t execution = 0;
  std::string device_key;
  uint32_t attempt = 0;
  uint32_t step = 0;
  std::string version;
  std::string code;
  uint32_t device_count = 0;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 history_entry& x) {
    return f(x.sequence, x.time_ms, x.kind, x.text, x.task, x.execution,
             x.device_key, x.attempt, x.step, x.version, x.code,
             x.device_count);
  }
};

/// A page of a history and, when asked for a past moment, the state then.
struct history_page {
  std::vector<history_entry> entries;
  std::string next_page_token;
  /// Set when the request named a moment (`at_ms`).
  bool has_state = false;
  int64_t at_ms = 0;
  /// Whether the device or task existed at `at_ms`; its state then.
  bool existed = false;
  device_state device;
  bool has_task = false;
  task_summary task;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 history_page& x) {
    return f(x.entries, x.next_page_token, x.has_state, x.at_ms, x.existed,
             x.device, x.has_task, x.task);
  }
};

// -- outcomes -----------------------------------------------------------------

/// The reply of a command that returns nothing but its success, which comes
/// once its events are durable.
struct accepted {
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, accepted&) {
    return f();
  }
};

/// A digest of a node's durable state (devices, firmware, trees, tasks,
/// executions, counters and holders), equal for a node and for the same
/// log replayed into a fresh node.
struct state_digest {
  /// Lower-case hex SHA-256 of the canonical state text.
  std::string sha256;
  uint64_t devices = 0;
  uint64_t tasks = 0;
  uint64_t executions = 0;
  uint64_t firmware = 0;
  /// The last log sequence the state includes.
  sequence_number last_sequence;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 state_digest& x) {
    return f(x.sha256, x.devices, x.tasks, x.executions, x.firmware,
             x.last_sequence);
  }
};

} // namespace fota
