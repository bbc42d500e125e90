/// What an operator asks a batch upgrade task to do: target, sources,
/// strategy, scope, method, schedule, rate, timeout, retries, abort rule,
/// end time and priority. A plain value; `events/codec.hpp` converts it to
/// and from `fota.v1.TaskSpec` at the edges.
#pragma once

#include "events/clock.hpp"
#include "events/error.hpp"
#include "fota/v1/model.pb.h"

#include <cstdint>
#include <string>
#include <vector>

namespace fota {

/// Default per-device timeout: 2 hours.
constexpr uint32_t default_timeout_seconds = 2 * 60 * 60;
constexpr uint32_t min_timeout_seconds = 5 * 60;
constexpr uint32_t max_timeout_seconds = 48 * 60 * 60;
constexpr uint32_t max_retries = 10;

/// Most trees one task may select.
constexpr int max_selected_trees = 5;

/// Most devices of one verification run.
constexpr int max_verification_devices = 5;

/// The nodes selected in one asset tree.
struct tree_selection {
  std::string tree;
  std::vector<std::string> nodes;

  friend bool operator==(const tree_selection& x, const tree_selection& y) {
    return x.tree == y.tree && x.nodes == y.nodes;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 tree_selection& x) {
    return f(x.tree, x.nodes);
  }
};

/// Which devices a task covers. With `TARGET`, exactly one filter is set;
/// `filters` records which ones the request set, so that validation can
/// tell an empty filter from a missing one.
struct task_scope {
  // -- member types -----------------------------------------------------------

  enum filter : uint8_t {
    device_keys_filter = 1,
    tag_filter = 2,
    attribute_filter = 4,
    asset_trees_filter = 8,
  };

  // -- member variables -------------------------------------------------------

  v1::ScopeKind kind = v1::SCOPE_KIND_UNSPECIFIED;
  uint8_t filters = 0;
  std::vector<std::string> device_keys;
  std::string tag_key;
  std::string tag_value;
  std::string attribute_name;
  std::string attribute_value;
  std::vector<tree_selection> trees;

  // -- properties -------------------------------------------------------------

  bool has(filter x) const noexcept { return (filters & x) != 0; }

  friend bool operator==(const task_scope& x, const task_scope& y) {
    return x.kind == y.kind && x.filters == y.filters &&
           x.device_keys == y.device_keys && x.tag_key == y.tag_key &&
           x.tag_value == y.tag_value && x.attribute_name == y.attribute_name &&
           x.attribute_value == y.attribute_value && x.trees == y.trees;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, task_scope& x) {
    return f(x.kind, x.filters, x.device_keys, x.tag_key, x.tag_value,
             x.attribute_name, x.attribute_value, x.trees);
  }
};

/// A daily window [start, end) in minutes after local midnight; end ≤ start
/// crosses midnight.
struct schedule_window {
  uint32_t start_minute = 0;
  uint32_t end_minute = 0;

  friend bool operator==(const schedule_window& x, const schedule_window& y) {
    return x.start_minute == y.start_minute && x.end_minute == y.end_minute;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 schedule_window& x) {
    return f(x.start_minute, x.end_minute);
  }
};

/// Daily windows in an IANA time zone; unset or without windows: the whole
/// day, UTC.
struct schedule_spec {
  /// Whether the request set a schedule at all.
  bool set = false;
  std::string time_zone;
  std::vector<schedule_window> windows;

  friend bool operator==(const schedule_spec& x, const schedule_spec& y) {
    return x.set == y.set && x.time_zone == y.time_zone &&
           x.windows == y.windows;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 schedule_spec& x) {
    return f(x.set, x.time_zone, x.windows);
  }
};

/// Exponential ramp-up: start at `base_per_minute`, multiply by `factor`
/// after every `successes_per_step` successes.
struct ramp_up_spec {
  uint32_t base_per_minute = 0;
  double factor = 0;
  uint32_t successes_per_step = 0;

  friend bool operator==(const ramp_up_spec& x, const ramp_up_spec& y) {
    return x.base_per_minute == y.base_per_minute && x.factor == y.factor &&
           x.successes_per_step == y.successes_per_step;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 ramp_up_spec& x) {
    return f(x.base_per_minute, x.factor, x.successes_per_step);
  }
};

/// Pushes per minute of one task; 0 is unlimited.
struct rate_spec {
  uint32_t max_per_minute = 0;
  bool has_ramp_up = false;
  ramp_up_spec ramp_up;

  friend bool operator==(const rate_spec& x, const rate_spec& y) {
    return x.max_per_minute == y.max_per_minute &&
           x.has_ramp_up == y.has_ramp_up && x.ramp_up == y.ramp_up;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, rate_spec& x) {
    return f(x.max_per_minute, x.has_ramp_up, x.ramp_up);
  }
};

struct retry_spec {
  uint32_t max_retries = 0;
  uint32_t interval_seconds = 0;

  friend bool operator==(const retry_spec& x, const retry_spec& y) {
    return x.max_retries == y.max_retries &&
           x.interval_seconds == y.interval_seconds;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, retry_spec& x) {
    return f(x.max_retries, x.interval_seconds);
  }
};

/// Once `min_finished` executions finished, a failure share of at least
/// `failure_percent` (0 disables) pauses or cancels the task.
struct abort_spec {
  double failure_percent = 0;
  uint32_t min_finished = 0;
  v1::AbortAction action = v1::ABORT_ACTION_UNSPECIFIED;

  friend bool operator==(const abort_spec& x, const abort_spec& y) {
    return x.failure_percent == y.failure_percent &&
           x.min_finished == y.min_finished && x.action == y.action;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, abort_spec& x) {
    return f(x.failure_percent, x.min_finished, x.action);
  }
};

/// A batch upgrade task as the operator specified it.
struct task_spec {
  std::string name;
  std::string product;
  std::string target_version;
  std::vector<std::string> source_versions;
  v1::Strategy strategy = v1::STRATEGY_UNSPECIFIED;
  task_scope scope;
  v1::Method method = v1::METHOD_UNSPECIFIED;
  schedule_spec schedule;
  rate_spec rate;
  /// 0 means the default of 2 hours.
  uint32_t timeout_seconds = 0;
  retry_spec retry;
  abort_spec abort;
  /// INCREMENT only; 0 means open-ended.
  int64_t end_time_ms = 0;
  int32_t priority = 0;
  /// A firmware verification run; only VerifyFirmware starts one.
  bool verification = false;

  bool is_cloud_push() const noexcept {
    return method == v1::METHOD_CLOUD_PUSH;
  }

  bool is_increment() const noexcept {
    return strategy == v1::STRATEGY_INCREMENT;
  }

  /// Whether a device on `version` is a candidate: not on the target and on
  /// a source version (any version for a verification run).
  bool upgrades_from(const std::string& version) const;

  friend bool operator==(const task_spec& x, const task_spec& y);

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, task_spec& x) {
    return f(x.name, x.product, x.target_version, x.source_versions, x.strategy,
             x.scope, x.method, x.schedule, x.rate, x.timeout_seconds, x.retry,
             x.abort, x.end_time_ms, x.priority, x.verification);
  }
};

/// Checks the fields of `spec` that need nothing but the spec and the
/// time; errors are INVALID_ARGUMENT naming the field. The target
/// firmware's status is checked by `decide_create`.
status validate(const task_spec& spec, timestamp now);

} // namespace fota
