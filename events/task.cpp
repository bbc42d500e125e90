#include "events/task.hpp"

#include "events/codec.hpp"
#include "events/schedule.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>

namespace fota {

namespace {

using es = v1::ExecutionState;

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

failure inconsistent(std::string what) {
  return make_failure(errc::corrupted, std::move(what));
}

std::string task_name(const task_state& t) {
  return "task " + std::to_string(t.id.value());
}

std::string execution_name(const task_state& t, execution_seq sequence) {
  return "execution " + t.id_of(sequence).to_string();
}

std::string state_name(es x) {
  auto name = v1::ExecutionState_Name(x);
  constexpr std::string_view prefix = "EXECUTION_STATE_";
  return name.compare(0, prefix.size(), prefix) == 0
             ? name.substr(prefix.size())
             : name;
}

event task_event(const task_state& t, timestamp now) {
  return make_event(task_stream(t.id.value()), now);
}

expected<const execution*> lookup(const task_state& t, execution_seq sequence) {
  const auto* x = t.find(sequence);
  if (x == nullptr)
    return make_failure(errc::not_found,
                        execution_name(t, sequence) + " does not exist");
  return x;
}

failure not_active(const task_state& t, execution_seq sequence,
                   const execution& x) {
  return make_failure(errc::failed_precondition,
                      execution_name(t, sequence) + " is " +
                          v1::ExecutionState_Name(x.state));
}

/// Appends TaskCompleted when `out`, applied on `t`, leaves a snapshot task
/// with no execution that is active or waits for a retry.
void complete_if_done(const task_state& t, event_list& out, timestamp now) {
  if (t.spec.strategy != v1::STRATEGY_SNAPSHOT || is_finished(t.status))
    return;
  auto retries = t.spec.retry.max_retries;
  auto final_attempt = [&](uint64_t seq) {
    const auto* x = t.find(execution_seq{seq});
    return x == nullptr || x->attempt > retries;
  };
  int64_t holding = static_cast<int64_t>(t.active() + t.retries_pending);
  for (const auto& e : out) {
    switch (e.payload_case()) {
    case event::kDevicesEnrolled:
      holding += e.devices_enrolled().device_keys_size();
      break;
    case event::kExecutionSucceeded:
      --holding;
      break;
    case event::kExecutionFailed:
      holding -= final_attempt(e.execution_failed().sequence()) ? 1 : 0;
      break;
    case event::kExecutionTimedOut:
      holding -= final_attempt(e.execution_timed_out().sequence()) ? 1 : 0;
      break;
    case event::kExecutionsCanceled:
      holding -= e.executions_canceled().sequences_size();
      break;
    case event::kTaskCanceled:
    case event::kTaskCompleted:
      return;
    default:
      break;
    }
  }
  if (holding > 0)
    return;
  auto e = task_event(t, now);
  e.mutable_task_completed()->set_task_id(t.id.value());
  out.push_back(std::move(e));
}

/// Appends ExecutionsCanceled for the QUEUED executions (`queued_only`) or
/// for every execution not yet terminal, when there are any.
void cancel_executions(const task_state& state, event_list& out, timestamp now,
                       bool queued_only) {
  auto e = task_event(state, now);
  auto* canceled = e.mutable_executions_canceled();
  canceled->set_task_id(state.id.value());
  for (uint64_t s = 1; s <= state.executions.size(); ++s) {
    auto x = state.executions[s - 1].state;
    if (queued_only ? x == v1::EXECUTION_STATE_QUEUED : !is_terminal(x))
      canceled->add_sequences(s);
  }
  if (canceled->sequences_size() > 0)
    out.push_back(std::move(e));
}

status validate_scope(const task_spec& spec) {
  const auto& scope = spec.scope;
  int filters = (scope.has(task_scope::device_keys_filter) ? 1 : 0) +
                (scope.has(task_scope::tag_filter) ? 1 : 0) +
                (scope.has(task_scope::attribute_filter) ? 1 : 0) +
                (scope.has(task_scope::asset_trees_filter) ? 1 : 0);
  switch (scope.kind) {
  case v1::SCOPE_KIND_ALL:
    if (filters != 0)
      return invalid("scope", "ALL takes no filter");
    return std::nullopt;
  case v1::SCOPE_KIND_TARGET:
    break;
  default:
    return invalid("scope.kind", "must be ALL or TARGET");
  }
  if (filters != 1)
    return invalid("scope", "TARGET needs exactly one filter, got " +
                                std::to_string(filters));
  if (spec.method == v1::METHOD_DEVICE_REQUEST)
    return invalid("method", "TARGET scope allows only CLOUD_PUSH");
  if (scope.has(task_scope::device_keys_filter)) {
    if (scope.device_keys.empty())
      return invalid("scope.device_keys", "must name at least one device");
    std::set<std::string> seen;
    for (const auto& k : scope.device_keys) {
      if (k.empty())
        return invalid("scope.device_keys", "must not contain an empty key");
      if (!seen.insert(k).second)
        return invalid("scope.device_keys", "names " + k + " twice");
    }
  }
  if (scope.has(task_scope::tag_filter) && scope.tag_key.empty())
    return invalid("scope.tag.key", "must not be empty");
  if (scope.has(task_scope::attribute_filter) && scope.attribute_name.empty())
    return invalid("scope.attribute.name", "must not be empty");
  if (scope.has(task_scope::asset_trees_filter)) {
    const auto& trees = scope.trees;
    if (trees.empty())
      return invalid("scope.asset_trees", "must select at least one tree");
    if (trees.size() > static_cast<size_t>(max_selected_trees))
      return invalid("scope.asset_trees", "selects " +
                                              std::to_string(trees.size()) +
                                              " trees, at most 5 are allowed");
    for (const auto& t : trees) {
      if (t.tree.empty())
        return invalid("scope.asset_trees.tree_id", "must not be empty");
      if (t.nodes.empty())
        return invalid("scope.asset_trees[" + t.tree + "].node_ids",
                       "must select at least one node");
    }
  }
  return std::nullopt;
}

size_t key_hash(const std::string& key) {
  return std::hash<std::string>{}(key);
}

} // namespace

// -- task_spec ----------------------------------------------------------------

bool task_spec::upgrades_from(const std::string& version) const {
  if (version == target_version)
    return false;
  if (source_versions.empty())
    return verification; // Verification runs take devices on any version.
  return std::find(source_versions.begin(), source_versions.end(), version) !=
         source_versions.end();
}

bool operator==(const task_spec& x, const task_spec& y) {
  return x.name == y.name && x.product == y.product &&
         x.target_version == y.target_version &&
         x.source_versions == y.source_versions && x.strategy == y.strategy &&
         x.scope == y.scope && x.method == y.method &&
         x.schedule == y.schedule && x.rate == y.rate &&
         x.timeout_seconds == y.timeout_seconds && x.retry == y.retry &&
         x.abort == y.abort && x.end_time_ms == y.end_time_ms &&
         x.priority == y.priority && x.verification == y.verification;
}

// -- task_state ---------------------------------------------------------------

bool is_terminal(v1::ExecutionState x) noexcept {
  return x == v1::EXECUTION_STATE_SUCCEEDED ||
         x == v1::EXECUTION_STATE_FAILED ||
         x == v1::EXECUTION_STATE_TIMED_OUT ||
         x == v1::EXECUTION_STATE_CANCELED;
}

bool is_finished(v1::TaskStatus x) noexcept {
  return x == v1::TASK_STATUS_CANCELED || x == v1::TASK_STATUS_COMPLETED;
}

const execution* task_state::find(execution_seq sequence) const {
  auto s = sequence.value();
  if (s == 0 || s > executions.size())
    return nullptr;
  return &executions[s - 1];
}

bool task_state::indexes_devices() const noexcept {
  return spec.method == v1::METHOD_DEVICE_REQUEST || spec.is_increment();
}

std::optional<execution_seq>
task_state::sequence_of(const std::string& device) const {
  auto [first, last] = by_device.equal_range(key_hash(device));
  for (auto i = first; i != last; ++i)
    if (executions[i->second - 1].device_key == device)
      return execution_seq{i->second};
  return std::nullopt;
}

void task_state::index_devices() {
  by_device.clear();
  if (!indexes_devices())
    return;
  by_device.reserve(executions.size());
  for (uint64_t s = 1; s <= executions.size(); ++s)
    by_device.emplace(key_hash(executions[s - 1].device_key), s);
}

uint64_t task_state::active() const noexcept {
  return counts[v1::EXECUTION_STATE_QUEUED] +
         counts[v1::EXECUTION_STATE_NOTIFIED] +
         counts[v1::EXECUTION_STATE_IN_PROGRESS];
}

bool task_state::will_retry(const execution& x) const noexcept {
  return (x.state == v1::EXECUTION_STATE_FAILED ||
          x.state == v1::EXECUTION_STATE_TIMED_OUT) &&
         x.attempt <= spec.retry.max_retries && !is_finished(status);
}

bool task_state::holds_device(const execution& x) const noexcept {
  if (spec.method == v1::METHOD_DEVICE_REQUEST)
    return x.state == v1::EXECUTION_STATE_NOTIFIED ||
           x.state == v1::EXECUTION_STATE_IN_PROGRESS;
  // A finished task retries nothing, but an upgrade under way keeps its
  // device until it ends or times out.
  return !is_terminal(x.state) || will_retry(x);
}

int64_t task_state::timeout_ms() const noexcept {
  auto s = spec.timeout_seconds == 0 ? default_timeout_seconds
                                     : spec.timeout_seconds;
  return int64_t{s} * 1000;
}

int64_t task_state::deadline_ms(const execution& x) const noexcept {
  if (x.state == v1::EXECUTION_STATE_QUEUED)
    return spec.verification ? created_at_ms + timeout_ms() : 0;
  if (x.state != v1::EXECUTION_STATE_NOTIFIED &&
      x.state != v1::EXECUTION_STATE_IN_PROGRESS)
    return 0;
  return x.updated_at_ms + timeout_ms();
}

int64_t task_state::retry_at_ms(const execution& x) const noexcept {
  if (!will_retry(x))
    return 0;
  return x.finished_at_ms + int64_t{spec.retry.interval_seconds} * 1000;
}

execution_counters task_state::counters() const {
  execution_counters c;
  c.queued = counts[v1::EXECUTION_STATE_QUEUED];
  c.notified = counts[v1::EXECUTION_STATE_NOTIFIED];
  c.in_progress = counts[v1::EXECUTION_STATE_IN_PROGRESS];
  c.succeeded = counts[v1::EXECUTION_STATE_SUCCEEDED];
  c.failed = counts[v1::EXECUTION_STATE_FAILED];
  c.timed_out = counts[v1::EXECUTION_STATE_TIMED_OUT];
  c.canceled = counts[v1::EXECUTION_STATE_CANCELED];
  c.skipped = skipped.size();
  return c;
}

task_summary task_state::summary() const {
  task_summary s;
  s.id = id;
  s.spec = spec;
  s.status = status;
  s.counters = counters();
  s.created_at_ms = created_at_ms;
  s.finished_at_ms = finished_at_ms;
  s.status_reason = status_reason;
  return s;
}

execution_view task_state::view(execution_seq sequence) const {
  execution_view out;
  const auto* x = find(sequence);
  if (x == nullptr)
    return out;
  out.id = id_of(sequence);
  out.device_key = x->device_key;
  out.state = x->state;
  out.attempt = x->attempt;
  out.queued_at_ms = x->queued_at_ms;
  out.notified_at_ms = x->notified_at_ms;
  out.started_at_ms = x->started_at_ms;
  out.finished_at_ms = x->finished_at_ms;
  out.progress_step = x->progress_step;
  auto s = sequence.value();
  if (auto i = progress_texts.find(s); i != progress_texts.end())
    out.progress_text = i->second;
  if (auto i = failures.find(s); i != failures.end()) {
    out.failure_code = i->second.code;
    out.failure_text = i->second.text;
  }
  return out;
}

// -- decide ------------------------------------------------------------------

status validate(const task_spec& spec, const firmware_record* fw,
                timestamp now) {
  if (spec.product.empty())
    return invalid("product_key", "must not be empty");
  if (spec.target_version.empty())
    return invalid("target_version", "must not be empty");
  if (fw == nullptr)
    return make_failure(errc::invalid_argument,
                        "target_version: firmware " + spec.product + "/" +
                            spec.target_version + " does not exist");
  if (spec.verification) {
    if (fw->status != v1::FIRMWARE_STATUS_VERIFYING)
      return make_failure(errc::failed_precondition,
                          "target_version: firmware " + spec.product + "/" +
                              spec.target_version + " is " +
                              v1::FirmwareStatus_Name(fw->status) +
                              ", not VERIFYING");
    if (spec.strategy != v1::STRATEGY_SNAPSHOT ||
        spec.method != v1::METHOD_CLOUD_PUSH ||
        spec.scope.kind != v1::SCOPE_KIND_TARGET ||
        !spec.scope.has(task_scope::device_keys_filter) ||
        spec.scope.device_keys.size() >
            static_cast<size_t>(max_verification_devices))
      return invalid("verification",
                     "a verification run is a snapshot cloud push to at most "
                     "5 named devices");
  } else if (fw->status != v1::FIRMWARE_STATUS_VERIFIED) {
    return make_failure(errc::failed_precondition,
                        "target_version: firmware " + spec.product + "/" +
                            spec.target_version + " is " +
                            v1::FirmwareStatus_Name(fw->status) +
                            ", only VERIFIED firmware can be a target");
  }
  if (spec.source_versions.empty() && !spec.verification)
    return invalid("source_versions", "must name at least one version");
  std::set<std::string> sources;
  for (const auto& v : spec.source_versions) {
    if (v.empty())
      return invalid("source_versions", "must not contain an empty version");
    if (v == spec.target_version)
      return invalid("source_versions",
                     "must not contain the target version " + v);
    if (!sources.insert(v).second)
      return invalid("source_versions", "names " + v + " twice");
  }
  if (spec.strategy != v1::STRATEGY_SNAPSHOT &&
      spec.strategy != v1::STRATEGY_INCREMENT)
    return invalid("strategy", "must be SNAPSHOT or INCREMENT");
  if (spec.method != v1::METHOD_CLOUD_PUSH &&
      spec.method != v1::METHOD_DEVICE_REQUEST)
    return invalid("method", "must be CLOUD_PUSH or DEVICE_REQUEST");
  if (auto err = validate_scope(spec))
    return err;
  if (spec.method == v1::METHOD_DEVICE_REQUEST &&
      (spec.schedule.set || spec.rate.max_per_minute != 0 ||
       spec.rate.has_ramp_up))
    return invalid(spec.schedule.set ? "schedule" : "rate",
                   "applies to CLOUD_PUSH only");
  if (spec.schedule.set)
    if (auto err = validate_schedule(spec.schedule))
      return err;
  if (spec.rate.has_ramp_up) {
    const auto& r = spec.rate.ramp_up;
    if (r.base_per_minute == 0)
      return invalid("rate.ramp_up.base_per_minute", "must be at least 1");
    if (!(r.factor > 1.0 && r.factor <= 10.0))
      return invalid("rate.ramp_up.factor", "must be in (1, 10]");
    if (r.successes_per_step == 0)
      return invalid("rate.ramp_up.successes_per_step", "must be at least 1");
    if (spec.rate.max_per_minute != 0 &&
        r.base_per_minute > spec.rate.max_per_minute)
      return invalid("rate.ramp_up.base_per_minute",
                     "must not exceed rate.max_per_minute");
  }
  if (spec.timeout_seconds != 0 &&
      (spec.timeout_seconds < min_timeout_seconds ||
       spec.timeout_seconds > max_timeout_seconds))
    return invalid("timeout_seconds",
                   "must be between 300 (5 min) and 172800 (48 h), got " +
                       std::to_string(spec.timeout_seconds));
  if (spec.retry.max_retries > max_retries)
    return invalid("retry.max_retries",
                   "must be between 0 and 10, got " +
                       std::to_string(spec.retry.max_retries));
  if (spec.retry.max_retries > 0 && spec.retry.interval_seconds == 0)
    return invalid("retry.interval_seconds", "must be at least 1 with retries");
  const auto& abort = spec.abort;
  if (!(abort.failure_percent >= 0.0 && abort.failure_percent <= 100.0))
    return invalid("abort.failure_percent", "must be between 0 and 100");
  if (abort.failure_percent > 0.0 && abort.action != v1::ABORT_ACTION_PAUSE &&
      abort.action != v1::ABORT_ACTION_CANCEL)
    return invalid("abort.action", "must be PAUSE or CANCEL");
  if (spec.end_time_ms != 0) {
    if (spec.strategy != v1::STRATEGY_INCREMENT)
      return invalid("end_time_ms", "applies to INCREMENT tasks only");
    if (spec.end_time_ms <= to_millis(now))
      return invalid("end_time_ms", "must be in the future");
  }
  return std::nullopt;
}

expected<event_list> decide_create(task_id id, const task_spec& spec,
                                   const firmware_record* target,
                                   timestamp now) {
  if (id.value() == 0 || id.value() > max_task_id)
    return make_failure(errc::resource_exhausted,
                        "task ids are exhausted: " +
                            std::to_string(id.value()) + " exceeds 2^32 - 1");
  if (auto err = validate(spec, target, now))
    return std::move(*err);
  auto e = make_event(task_stream(id.value()), now);
  auto* x = e.mutable_task_created();
  x->set_task_id(id.value());
  *x->mutable_spec() = to_proto(spec);
  if (spec.timeout_seconds == 0)
    x->mutable_spec()->set_timeout_seconds(default_timeout_seconds);
  *x->mutable_firmware() = to_proto(*target);
  return event_list{std::move(e)};
}

event_list decide_enroll(const task_state& state,
                         const std::vector<std::string>& device_keys,
                         const std::vector<skipped_device>& skipped,
                         timestamp now) {
  event_list out;
  uint64_t next = state.executions.size() + 1;
  for (size_t i = 0; i < device_keys.size(); i += enrollment_chunk) {
    auto e = task_event(state, now);
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(state.id.value());
    x->set_first_sequence(next + i);
    auto end = std::min(device_keys.size(), i + enrollment_chunk);
    for (size_t j = i; j < end; ++j)
      x->add_device_keys(device_keys[j]);
    out.push_back(std::move(e));
  }
  for (size_t i = 0; i < skipped.size(); i += enrollment_chunk) {
    auto e = task_event(state, now);
    auto* x = e.mutable_devices_skipped();
    x->set_task_id(state.id.value());
    auto end = std::min(skipped.size(), i + enrollment_chunk);
    for (size_t j = i; j < end; ++j) {
      auto* d = x->add_devices();
      d->set_device_key(skipped[j].device_key);
      d->set_reason(skipped[j].reason);
    }
    out.push_back(std::move(e));
  }
  complete_if_done(state, out, now);
  return out;
}

expected<event_list> decide_notified(const task_state& state,
                                     execution_seq sequence, timestamp now) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  if ((*x)->state != v1::EXECUTION_STATE_QUEUED)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  auto* n = e.mutable_execution_notified();
  n->set_task_id(state.id.value());
  n->set_sequence(sequence.value());
  n->set_attempt((*x)->attempt);
  return event_list{std::move(e)};
}

expected<event_list> decide_progress(const task_state& state,
                                     execution_seq sequence, uint32_t step,
                                     const std::string& text, timestamp now) {
  if (step > 100)
    return invalid("step",
                   "must be between 0 and 100, got " + std::to_string(step));
  if (text.size() > 256)
    return invalid("text", "is longer than 256 characters");
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  auto st = (*x)->state;
  if (is_terminal(st) && !state.will_retry(**x))
    return event_list{}; // A late or repeated report: nothing changes.
  if (st != v1::EXECUTION_STATE_NOTIFIED &&
      st != v1::EXECUTION_STATE_IN_PROGRESS)
    return not_active(state, sequence, **x);
  event_list out;
  if (st == v1::EXECUTION_STATE_NOTIFIED) {
    // The first report starts the execution and carries its step.
    auto e = task_event(state, now);
    auto* s = e.mutable_execution_started();
    s->set_task_id(state.id.value());
    s->set_sequence(sequence.value());
    s->set_step(step);
    s->set_text(text);
    out.push_back(std::move(e));
    return out;
  }
  auto e = task_event(state, now);
  auto* p = e.mutable_execution_progressed();
  p->set_task_id(state.id.value());
  p->set_sequence(sequence.value());
  p->set_step(step);
  p->set_text(text);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide_confirm(const task_state& state,
                                    execution_seq sequence, timestamp now) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  event_list out;
  if ((*x)->state == v1::EXECUTION_STATE_IN_PROGRESS)
    return out;
  if (is_terminal((*x)->state) && !state.will_retry(**x))
    return out; // A late or repeated confirmation: nothing changes.
  if ((*x)->state != v1::EXECUTION_STATE_NOTIFIED)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  e.mutable_execution_started()->set_task_id(state.id.value());
  e.mutable_execution_started()->set_sequence(sequence.value());
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide_version(const task_state& state,
                                    execution_seq sequence,
                                    const std::string& version, timestamp now,
                                    bool records_version) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  event_list out;
  if (is_terminal((*x)->state) || version != state.spec.target_version)
    return out;
  // A device-request execution that was never offered does not hold its
  // device: the device got its version elsewhere.
  if (state.spec.method == v1::METHOD_DEVICE_REQUEST &&
      (*x)->state == v1::EXECUTION_STATE_QUEUED)
    return out;
  auto e = task_event(state, now);
  e.mutable_execution_succeeded()->set_task_id(state.id.value());
  e.mutable_execution_succeeded()->set_sequence(sequence.value());
  if (records_version)
    e.mutable_execution_succeeded()->set_device_version(version);
  out.push_back(std::move(e));
  complete_if_done(state, out, now);
  return out;
}

expected<event_list> decide_failure(const task_state& state,
                                    execution_seq sequence,
                                    const std::string& code,
                                    const std::string& text, timestamp now) {
  if (code.empty())
    return invalid("code", "must not be empty");
  if (code.size() > 64)
    return invalid("code", "is longer than 64 characters");
  if (text.size() > 1024)
    return invalid("text", "is longer than 1024 characters");
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  auto st = (*x)->state;
  if (is_terminal(st) && !state.will_retry(**x))
    return event_list{}; // A late or repeated report: nothing changes.
  if (st != v1::EXECUTION_STATE_NOTIFIED &&
      st != v1::EXECUTION_STATE_IN_PROGRESS)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  auto* f = e.mutable_execution_failed();
  f->set_task_id(state.id.value());
  f->set_sequence(sequence.value());
  f->set_code(code);
  f->set_text(text);
  event_list out{std::move(e)};
  complete_if_done(state, out, now);
  return out;
}

event_list decide_timeout(const task_state& state, execution_seq sequence,
                          timestamp now) {
  event_list out;
  const auto* x = state.find(sequence);
  if (x == nullptr)
    return out;
  auto deadline = state.deadline_ms(*x);
  if (deadline == 0 || deadline > to_millis(now))
    return out;
  auto e = task_event(state, now);
  e.mutable_execution_timed_out()->set_task_id(state.id.value());
  e.mutable_execution_timed_out()->set_sequence(sequence.value());
  out.push_back(std::move(e));
  complete_if_done(state, out, now);
  return out;
}

event_list decide_retry(const task_state& state, execution_seq sequence,
                        timestamp now) {
  event_list out;
  const auto* x = state.find(sequence);
  if (x == nullptr || state.status != v1::TASK_STATUS_RUNNING)
    return out;
  auto due = state.retry_at_ms(*x);
  if (due == 0 || due > to_millis(now))
    return out;
  auto e = task_event(state, now);
  auto* r = e.mutable_execution_requeued();
  r->set_task_id(state.id.value());
  r->set_sequence(sequence.value());
  r->set_attempt(x->attempt + 1u);
  out.push_back(std::move(e));
  return out;
}

event_list decide_abort(const task_state& state, timestamp now) {
  event_list out;
  const auto& rule = state.spec.abort;
  if (!(rule.failure_percent > 0.0) || state.status != v1::TASK_STATUS_RUNNING)
    return out;
  auto failures = state.counts[v1::EXECUTION_STATE_FAILED] +
                  state.counts[v1::EXECUTION_STATE_TIMED_OUT] -
                  state.retries_pending;
  auto finished = failures + state.counts[v1::EXECUTION_STATE_SUCCEEDED];
  if (finished == 0 || finished < rule.min_finished)
    return out;
  auto percent =
      100.0 * static_cast<double>(failures) / static_cast<double>(finished);
  if (percent < rule.failure_percent)
    return out;
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "abort rule: %llu of %llu finished executions failed "
                "(%.1f%% >= %.1f%%)",
                static_cast<unsigned long long>(failures),
                static_cast<unsigned long long>(finished), percent,
                rule.failure_percent);
  if (rule.action == v1::ABORT_ACTION_PAUSE) {
    auto e = task_event(state, now);
    e.mutable_task_paused()->set_task_id(state.id.value());
    e.mutable_task_paused()->set_reason(buf);
    out.push_back(std::move(e));
    return out;
  }
  cancel_executions(state, out, now, true);
  auto e = task_event(state, now);
  e.mutable_task_canceled()->set_task_id(state.id.value());
  e.mutable_task_canceled()->set_reason(buf);
  out.push_back(std::move(e));
  return out;
}

event_list decide_end(const task_state& state, timestamp now) {
  event_list out;
  if (!state.spec.is_increment() || state.spec.end_time_ms == 0 ||
      is_finished(state.status) || state.spec.end_time_ms > to_millis(now))
    return out;
  cancel_executions(state, out, now, true);
  auto e = task_event(state, now);
  e.mutable_task_completed()->set_task_id(state.id.value());
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide_pause(const task_state& state,
                                  const std::string& reason, timestamp now) {
  if (state.status != v1::TASK_STATUS_RUNNING)
    return make_failure(errc::failed_precondition,
                        task_name(state) + " is " +
                            v1::TaskStatus_Name(state.status) +
                            ", only a RUNNING task can be paused");
  auto e = task_event(state, now);
  e.mutable_task_paused()->set_task_id(state.id.value());
  e.mutable_task_paused()->set_reason(reason);
  return event_list{std::move(e)};
}

expected<event_list> decide_resume(const task_state& state, timestamp now) {
  if (state.status != v1::TASK_STATUS_PAUSED)
    return make_failure(errc::failed_precondition,
                        task_name(state) + " is " +
                            v1::TaskStatus_Name(state.status) +
                            ", only a PAUSED task can be resumed");
  auto e = task_event(state, now);
  e.mutable_task_resumed()->set_task_id(state.id.value());
  return event_list{std::move(e)};
}

expected<event_list> decide_cancel(const task_state& state,
                                   const std::string& reason, timestamp now) {
  if (is_finished(state.status))
    return make_failure(errc::failed_precondition,
                        task_name(state) + " is already " +
                            v1::TaskStatus_Name(state.status));
  event_list out;
  cancel_executions(state, out, now, false);
  auto e = task_event(state, now);
  e.mutable_task_canceled()->set_task_id(state.id.value());
  e.mutable_task_canceled()->set_reason(reason);
  out.push_back(std::move(e));
  return out;
}

// -- the device-request offer ------------------------------------------------

offer_decision decide_offer(const task_state& t, execution_seq seq,
                            const std::string& device_version, timestamp now) {
  offer_decision out;
  auto& o = out.offer;
  const auto* x = t.find(seq);
  auto unavailable = [&](const std::string& why) {
    o.available = false;
    o.reason = "no upgrade available: " + why;
    return out;
  };
  auto busy = [&](const std::string& why) {
    o.available = false;
    o.reason = "busy: device " + x->device_key + " is in execution " +
               t.id_of(seq).to_string() + " (" + why + ")";
    return out;
  };
  if (x == nullptr)
    return unavailable(execution_name(t, seq) + " does not exist");
  if (t.spec.method != v1::METHOD_DEVICE_REQUEST)
    return busy("a cloud-push task");
  bool held = t.holds_device(*x);
  if (t.status != v1::TASK_STATUS_RUNNING &&
      x->state != es::EXECUTION_STATE_NOTIFIED) {
    auto why = "task is " + v1::TaskStatus_Name(t.status);
    return held ? busy(why)
                : unavailable(task_name(t) + " is " +
                              v1::TaskStatus_Name(t.status));
  }
  switch (x->state) {
  case v1::EXECUTION_STATE_IN_PROGRESS:
    return busy("upgrade in progress");
  case v1::EXECUTION_STATE_NOTIFIED:
    break; // The same offer again.
  case v1::EXECUTION_STATE_QUEUED:
    if (device_version == t.spec.target_version)
      return unavailable("device " + x->device_key + " already runs " +
                         device_version);
    if (!t.spec.upgrades_from(device_version))
      return unavailable("device " + x->device_key + " runs " + device_version +
                         ", which " + task_name(t) + " does not upgrade from");
    break;
  default:
    if (t.will_retry(*x))
      return unavailable(execution_name(t, seq) + " waits for a retry");
    return unavailable(execution_name(t, seq) + " is " + state_name(x->state));
  }
  o.available = true;
  o.execution = t.id_of(seq);
  o.attempt = x->attempt;
  o.firmware = t.firmware;
  if (x->state == v1::EXECUTION_STATE_QUEUED)
    out.events = std::move(decide_notified(t, seq, now)).value();
  return out;
}

// -- the verification outcome ------------------------------------------------

namespace {

/// The first device of a verification run that was skipped, failed or timed
/// out, described; empty when there is none.
std::string first_verification_failure(const task_state& t) {
  if (!t.skipped.empty()) {
    const auto& d = t.skipped.front();
    return "device " + d.device_key + " skipped: " + d.reason;
  }
  for (uint64_t s = 1; s <= t.executions.size(); ++s) {
    const auto& x = t.executions[s - 1];
    if (x.state == v1::EXECUTION_STATE_FAILED) {
      auto reason = "device " + x.device_key + " failed";
      if (auto i = t.failures.find(s); i != t.failures.end())
        reason += ": " + i->second.code + " " + i->second.text;
      return reason;
    }
    if (x.state == v1::EXECUTION_STATE_TIMED_OUT)
      return "device " + x.device_key + " timed out";
  }
  return {};
}

} // namespace

event_list decide_verification_failure(const task_state& t, timestamp now) {
  if (!t.spec.verification || is_finished(t.status))
    return {};
  auto reason = first_verification_failure(t);
  if (reason.empty())
    return {};
  return std::move(decide_cancel(t, reason, now)).value();
}

std::optional<verification_result> verification_outcome(const task_state& t) {
  if (!t.spec.verification || !is_finished(t.status))
    return std::nullopt;
  verification_result out;
  if (t.status == v1::TASK_STATUS_CANCELED) {
    out.reason = t.status_reason;
    return out;
  }
  // Completed: the last device may have failed in the same step.
  out.reason = first_verification_failure(t);
  if (!out.reason.empty())
    return out;
  auto named = t.spec.scope.device_keys.size();
  auto succeeded = t.counts[v1::EXECUTION_STATE_SUCCEEDED];
  if (succeeded != named) {
    out.reason = std::to_string(succeeded) + " of " + std::to_string(named) +
                 " devices upgraded; a device already on the target version "
                 "cannot verify it";
    return out;
  }
  out.verified = true;
  return out;
}

// -- apply -------------------------------------------------------------------

task_state make_task(const event& created) {
  const auto& x = created.task_created();
  task_state t;
  t.id = task_id{x.task_id()};
  t.spec = from_proto(x.spec());
  t.firmware = from_proto(x.firmware());
  t.status = v1::TASK_STATUS_RUNNING;
  t.created_at_ms = created.time_ms();
  return t;
}

namespace {

void move_to(task_state& t, execution& x, v1::ExecutionState to) {
  --t.counts[x.state];
  ++t.counts[to];
  x.state = to;
}

/// The execution an event names, if the transition to `to` is allowed from
/// its state by `allowed`.
template <class Allowed>
expected<execution*> transition(task_state& t, uint64_t sequence,
                                v1::ExecutionState to, Allowed allowed) {
  auto seq = execution_seq{sequence};
  const auto* x = t.find(seq);
  if (x == nullptr)
    return inconsistent(execution_name(t, seq) + " does not exist");
  if (!allowed(*x))
    return inconsistent(execution_name(t, seq) + " is " + state_name(x->state) +
                        " and cannot become " + state_name(to));
  return const_cast<execution*>(x);
}

bool is_any(const execution& x, std::initializer_list<es> states) {
  return std::find(states.begin(), states.end(), x.state) != states.end();
}

status check_running(const task_state& t, const char* what) {
  if (is_finished(t.status))
    return inconsistent(task_name(t) + " is " + v1::TaskStatus_Name(t.status) +
                        " and cannot " + what);
  return std::nullopt;
}

} // namespace

status apply(task_state& t, const event& e) {
  int64_t at = e.time_ms();
  switch (e.payload_case()) {
  case event::kTaskCreated:
    if (t.id.value() != 0)
      return inconsistent(task_name(t) + " is created a second time");
    t = make_task(e);
    return std::nullopt;
  case event::kDevicesEnrolled: {
    const auto& x = e.devices_enrolled();
    if (auto err = check_running(t, "enrol devices"))
      return err;
    auto expected_first = t.executions.size() + 1;
    if (x.first_sequence() != expected_first)
      return inconsistent(task_name(t) + " enrols from sequence " +
                          std::to_string(x.first_sequence()) + ", expected " +
                          std::to_string(expected_first));
    auto n = static_cast<uint64_t>(x.device_keys_size());
    if (n > max_execution_seq - t.executions.size())
      return inconsistent(task_name(t) + " enrols more than 2^32 - 1 devices");
    for (const auto& k : x.device_keys())
      if (k.empty())
        return inconsistent(task_name(t) + " enrols a device without a key");
    // No exact reserve: a task enrols in chunks, and growing to the exact
    // size each time would copy the whole table per chunk (quadratic).
    for (const auto& k : x.device_keys()) {
      execution ex;
      ex.device_key = k;
      ex.queued_at_ms = at;
      t.executions.push_back(std::move(ex));
      if (t.indexes_devices())
        t.by_device.emplace(key_hash(k), t.executions.size());
    }
    t.counts[v1::EXECUTION_STATE_QUEUED] += n;
    return std::nullopt;
  }
  case event::kDevicesSkipped:
    if (auto err = check_running(t, "skip devices"))
      return err;
    for (const auto& d : e.devices_skipped().devices())
      t.skipped.push_back(skipped_device{d.device_key(), d.reason()});
    return std::nullopt;
  case event::kExecutionNotified: {
    const auto& n = e.execution_notified();
    auto x = transition(t, n.sequence(), es::EXECUTION_STATE_NOTIFIED,
                        [&](const execution& x) {
                          return x.state == es::EXECUTION_STATE_QUEUED &&
                                 x.attempt == n.attempt();
                        });
    if (!x)
      return x.error();
    move_to(t, **x, v1::EXECUTION_STATE_NOTIFIED);
    (*x)->notified_at_ms = at;
    (*x)->updated_at_ms = at;
    return std::nullopt;
  }
  case event::kExecutionStarted: {
    auto x =
        transition(t, e.execution_started().sequence(),
                   es::EXECUTION_STATE_IN_PROGRESS, [](const execution& x) {
                     return x.state == es::EXECUTION_STATE_NOTIFIED;
                   });
    if (!x)
      return x.error();
    const auto& s = e.execution_started();
    if (s.step() > 100)
      return inconsistent(execution_name(t, execution_seq{s.sequence()}) +
                          " starts at step " + std::to_string(s.step()) +
                          ", beyond 100");
    move_to(t, **x, v1::EXECUTION_STATE_IN_PROGRESS);
    (*x)->started_at_ms = at;
    (*x)->updated_at_ms = at;
    (*x)->progress_step = static_cast<uint8_t>(s.step());
    if (!s.text().empty())
      t.progress_texts[s.sequence()] = s.text();
    return std::nullopt;
  }
  case event::kExecutionProgressed: {
    const auto& p = e.execution_progressed();
    auto x = transition(t, p.sequence(), es::EXECUTION_STATE_IN_PROGRESS,
                        [&](const execution& x) {
                          return x.state == es::EXECUTION_STATE_IN_PROGRESS &&
                                 p.step() <= 100;
                        });
    if (!x)
      return x.error();
    (*x)->progress_step = static_cast<uint8_t>(p.step());
    (*x)->updated_at_ms = at;
    if (p.text().empty())
      t.progress_texts.erase(p.sequence());
    else
      t.progress_texts[p.sequence()] = p.text();
    return std::nullopt;
  }
  case event::kExecutionSucceeded: {
    auto seq = e.execution_succeeded().sequence();
    auto x =
        transition(t, seq, es::EXECUTION_STATE_SUCCEEDED,
                   [](const execution& x) { return !is_terminal(x.state); });
    if (!x)
      return x.error();
    move_to(t, **x, v1::EXECUTION_STATE_SUCCEEDED);
    (*x)->finished_at_ms = at;
    (*x)->progress_step = 100;
    t.progress_texts.erase(seq);
    return std::nullopt;
  }
  case event::kExecutionFailed: {
    const auto& f = e.execution_failed();
    auto x = transition(t, f.sequence(), es::EXECUTION_STATE_FAILED,
                        [](const execution& x) {
                          return is_any(x, {es::EXECUTION_STATE_NOTIFIED,
                                            es::EXECUTION_STATE_IN_PROGRESS});
                        });
    if (!x)
      return x.error();
    move_to(t, **x, v1::EXECUTION_STATE_FAILED);
    (*x)->finished_at_ms = at;
    t.failures[f.sequence()] = failure_info{f.code(), f.text()};
    if (t.will_retry(**x))
      ++t.retries_pending;
    return std::nullopt;
  }
  case event::kExecutionTimedOut: {
    auto x = transition(t, e.execution_timed_out().sequence(),
                        es::EXECUTION_STATE_TIMED_OUT, [&](const execution& x) {
                          return is_any(x, {es::EXECUTION_STATE_NOTIFIED,
                                            es::EXECUTION_STATE_IN_PROGRESS}) ||
                                 (t.spec.verification &&
                                  x.state == es::EXECUTION_STATE_QUEUED);
                        });
    if (!x)
      return x.error();
    move_to(t, **x, v1::EXECUTION_STATE_TIMED_OUT);
    (*x)->finished_at_ms = at;
    if (t.will_retry(**x))
      ++t.retries_pending;
    return std::nullopt;
  }
  case event::kExecutionRequeued: {
    const auto& r = e.execution_requeued();
    auto x = transition(
        t, r.sequence(), es::EXECUTION_STATE_QUEUED, [&](const execution& x) {
          return t.will_retry(x) && r.attempt() == x.attempt + 1u;
        });
    if (!x)
      return x.error();
    --t.retries_pending;
    move_to(t, **x, v1::EXECUTION_STATE_QUEUED);
    (*x)->attempt = static_cast<uint16_t>(r.attempt());
    (*x)->queued_at_ms = at;
    (*x)->notified_at_ms = (*x)->started_at_ms = (*x)->finished_at_ms = 0;
    (*x)->updated_at_ms = 0;
    (*x)->progress_step = 0;
    t.progress_texts.erase(r.sequence());
    t.failures.erase(r.sequence());
    return std::nullopt;
  }
  case event::kExecutionsCanceled: {
    const auto& seqs = e.executions_canceled().sequences();
    // Check them all first, so that a bad event changes nothing.
    for (auto seq : seqs) {
      auto x =
          transition(t, seq, es::EXECUTION_STATE_CANCELED,
                     [](const execution& x) { return !is_terminal(x.state); });
      if (!x)
        return x.error();
    }
    std::set<uint64_t> seen(seqs.begin(), seqs.end());
    if (seen.size() != static_cast<size_t>(seqs.size()))
      return inconsistent(task_name(t) + " cancels an execution twice");
    for (auto seq : seqs) {
      auto& x = t.executions[seq - 1];
      move_to(t, x, v1::EXECUTION_STATE_CANCELED);
      x.finished_at_ms = at;
    }
    return std::nullopt;
  }
  case event::kTaskPaused:
    if (t.status != v1::TASK_STATUS_RUNNING)
      return inconsistent(task_name(t) + " is " +
                          v1::TaskStatus_Name(t.status) +
                          " and cannot be paused");
    t.status = v1::TASK_STATUS_PAUSED;
    t.status_reason = e.task_paused().reason();
    return std::nullopt;
  case event::kTaskResumed:
    if (t.status != v1::TASK_STATUS_PAUSED)
      return inconsistent(task_name(t) + " is " +
                          v1::TaskStatus_Name(t.status) +
                          " and cannot be resumed");
    t.status = v1::TASK_STATUS_RUNNING;
    t.status_reason.clear();
    return std::nullopt;
  case event::kTaskCanceled:
    if (auto err = check_running(t, "be canceled"))
      return err;
    t.status = v1::TASK_STATUS_CANCELED;
    t.status_reason = e.task_canceled().reason();
    t.finished_at_ms = at;
    t.retries_pending = 0;
    return std::nullopt;
  case event::kTaskCompleted:
    if (auto err = check_running(t, "complete"))
      return err;
    t.status = v1::TASK_STATUS_COMPLETED;
    t.finished_at_ms = at;
    t.retries_pending = 0;
    return std::nullopt;
  default:
    return inconsistent("not an event of " + task_name(t));
  }
}

} // namespace fota
