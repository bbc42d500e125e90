#include "events/task.hpp"

#include "events/schedule.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

namespace fota {

namespace {

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

std::string task_name(const task_state& t) {
  return "task " + std::to_string(t.id);
}

std::string execution_name(const task_state& t, uint64_t sequence) {
  return "execution " + std::to_string(t.id) + "/" + std::to_string(sequence);
}

event task_event(const task_state& t, timestamp now) {
  return make_event(task_stream(t.id), now);
}

expected<const execution*> lookup(const task_state& t, uint64_t sequence) {
  const auto* x = t.find(sequence);
  if (x == nullptr)
    return make_failure(errc::not_found,
                        execution_name(t, sequence) + " does not exist");
  return x;
}

failure not_active(const task_state& t, uint64_t sequence, const execution& x) {
  return make_failure(errc::failed_precondition,
                      execution_name(t, sequence) + " is " +
                          v1::ExecutionState_Name(x.state));
}

/// Appends TaskCompleted when `out`, applied on `t`, leaves a snapshot task
/// with no execution that holds its device.
void complete_if_done(const task_state& t, event_list& out, timestamp now) {
  if (t.spec.strategy() != v1::STRATEGY_SNAPSHOT || is_finished(t.status))
    return;
  auto retries = t.spec.retry().max_retries();
  auto final_attempt = [&](uint64_t seq) {
    const auto* x = t.find(seq);
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
  e.mutable_task_completed()->set_task_id(t.id);
  out.push_back(std::move(e));
}

/// Appends ExecutionsCanceled for the QUEUED executions (`queued_only`) or
/// for every execution not yet terminal, when there are any.
void cancel_executions(const task_state& state, event_list& out, timestamp now,
                       bool queued_only) {
  auto e = task_event(state, now);
  auto* canceled = e.mutable_executions_canceled();
  canceled->set_task_id(state.id);
  for (uint64_t s = 1; s <= state.executions.size(); ++s) {
    auto x = state.executions[s - 1].state;
    if (queued_only ? x == v1::EXECUTION_STATE_QUEUED : !is_terminal(x))
      canceled->add_sequences(s);
  }
  if (canceled->sequences_size() > 0)
    out.push_back(std::move(e));
}

status validate_scope(const v1::TaskSpec& spec) {
  const auto& scope = spec.scope();
  int filters = (scope.has_device_keys() ? 1 : 0) + (scope.has_tag() ? 1 : 0) +
                (scope.has_attribute() ? 1 : 0) +
                (scope.has_asset_trees() ? 1 : 0);
  switch (scope.kind()) {
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
  if (spec.method() == v1::METHOD_DEVICE_REQUEST)
    return invalid("method", "TARGET scope allows only CLOUD_PUSH");
  if (scope.has_device_keys()) {
    if (scope.device_keys().device_keys().empty())
      return invalid("scope.device_keys", "must name at least one device");
    std::set<std::string> seen;
    for (const auto& k : scope.device_keys().device_keys()) {
      if (k.empty())
        return invalid("scope.device_keys", "must not contain an empty key");
      if (!seen.insert(k).second)
        return invalid("scope.device_keys", "names " + k + " twice");
    }
  }
  if (scope.has_tag() && scope.tag().key().empty())
    return invalid("scope.tag.key", "must not be empty");
  if (scope.has_attribute() && scope.attribute().name().empty())
    return invalid("scope.attribute.name", "must not be empty");
  if (scope.has_asset_trees()) {
    const auto& trees = scope.asset_trees().trees();
    if (trees.empty())
      return invalid("scope.asset_trees", "must select at least one tree");
    if (trees.size() > 5)
      return invalid("scope.asset_trees", "selects " +
                                              std::to_string(trees.size()) +
                                              " trees, at most 5 are allowed");
    for (const auto& t : trees) {
      if (t.tree_id().empty())
        return invalid("scope.asset_trees.tree_id", "must not be empty");
      if (t.node_ids().empty())
        return invalid("scope.asset_trees[" + t.tree_id() + "].node_ids",
                       "must select at least one node");
    }
  }
  return std::nullopt;
}

} // namespace

bool is_terminal(v1::ExecutionState x) noexcept {
  return x == v1::EXECUTION_STATE_SUCCEEDED ||
         x == v1::EXECUTION_STATE_FAILED ||
         x == v1::EXECUTION_STATE_TIMED_OUT ||
         x == v1::EXECUTION_STATE_CANCELED;
}

bool is_finished(v1::TaskStatus x) noexcept {
  return x == v1::TASK_STATUS_CANCELED || x == v1::TASK_STATUS_COMPLETED;
}

bool task_state::will_retry(const execution& x) const noexcept {
  return (x.state == v1::EXECUTION_STATE_FAILED ||
          x.state == v1::EXECUTION_STATE_TIMED_OUT) &&
         x.attempt <= spec.retry().max_retries() && !is_finished(status);
}

bool task_state::holds_device(const execution& x) const noexcept {
  // A finished task retries nothing, but an upgrade under way keeps its
  // device until it ends or times out.
  return !is_terminal(x.state) || will_retry(x);
}

int64_t task_state::timeout_ms() const noexcept {
  auto s = spec.timeout_seconds() == 0 ? default_timeout_seconds
                                       : spec.timeout_seconds();
  return int64_t{s} * 1000;
}

int64_t task_state::deadline_ms(const execution& x) const noexcept {
  if (x.state != v1::EXECUTION_STATE_NOTIFIED &&
      x.state != v1::EXECUTION_STATE_IN_PROGRESS)
    return 0;
  return x.updated_at_ms + timeout_ms();
}

int64_t task_state::retry_at_ms(const execution& x) const noexcept {
  if (!will_retry(x))
    return 0;
  return x.finished_at_ms + int64_t{spec.retry().interval_seconds()} * 1000;
}

const execution* task_state::find(uint64_t sequence) const {
  if (sequence == 0 || sequence > executions.size())
    return nullptr;
  return &executions[sequence - 1];
}

uint64_t task_state::active() const noexcept {
  return counts[v1::EXECUTION_STATE_QUEUED] +
         counts[v1::EXECUTION_STATE_NOTIFIED] +
         counts[v1::EXECUTION_STATE_IN_PROGRESS];
}

v1::ExecutionCounters task_state::counters() const {
  v1::ExecutionCounters c;
  c.set_queued(counts[v1::EXECUTION_STATE_QUEUED]);
  c.set_notified(counts[v1::EXECUTION_STATE_NOTIFIED]);
  c.set_in_progress(counts[v1::EXECUTION_STATE_IN_PROGRESS]);
  c.set_succeeded(counts[v1::EXECUTION_STATE_SUCCEEDED]);
  c.set_failed(counts[v1::EXECUTION_STATE_FAILED]);
  c.set_timed_out(counts[v1::EXECUTION_STATE_TIMED_OUT]);
  c.set_canceled(counts[v1::EXECUTION_STATE_CANCELED]);
  c.set_skipped(skipped.size());
  return c;
}

v1::TaskSummary task_state::summary() const {
  v1::TaskSummary s;
  s.set_task_id(id);
  *s.mutable_spec() = spec;
  s.set_status(status);
  *s.mutable_counters() = counters();
  s.set_created_at_ms(created_at_ms);
  s.set_finished_at_ms(finished_at_ms);
  s.set_status_reason(status_reason);
  return s;
}

v1::Execution task_state::execution_proto(uint64_t sequence) const {
  v1::Execution out;
  const auto* x = find(sequence);
  if (x == nullptr)
    return out;
  out.set_execution_id((id << 32) | sequence);
  out.set_task_id(id);
  out.set_device_key(x->device_key);
  out.set_state(x->state);
  out.set_attempt(x->attempt);
  out.set_sequence(sequence);
  out.set_queued_at_ms(x->queued_at_ms);
  out.set_notified_at_ms(x->notified_at_ms);
  out.set_started_at_ms(x->started_at_ms);
  out.set_finished_at_ms(x->finished_at_ms);
  out.set_progress_step(x->progress_step);
  if (auto i = progress_texts.find(sequence); i != progress_texts.end())
    out.set_progress_text(i->second);
  if (auto i = failures.find(sequence); i != failures.end()) {
    out.set_failure_code(i->second.code);
    out.set_failure_text(i->second.text);
  }
  return out;
}

status validate(const v1::TaskSpec& spec, const spec_context& ctx,
                timestamp now) {
  if (spec.product_key().empty())
    return invalid("product_key", "must not be empty");
  if (spec.target_version().empty())
    return invalid("target_version", "must not be empty");
  const auto* fw = ctx.find_firmware ? ctx.find_firmware(spec.product_key(),
                                                         spec.target_version())
                                     : nullptr;
  if (fw == nullptr)
    return make_failure(errc::invalid_argument,
                        "target_version: firmware " + spec.product_key() + "/" +
                            spec.target_version() + " does not exist");
  if (spec.verification()) {
    if (fw->status() != v1::FIRMWARE_STATUS_VERIFYING)
      return make_failure(errc::failed_precondition,
                          "target_version: firmware " + spec.product_key() +
                              "/" + spec.target_version() + " is " +
                              v1::FirmwareStatus_Name(fw->status()) +
                              ", not VERIFYING");
    if (spec.strategy() != v1::STRATEGY_SNAPSHOT ||
        spec.method() != v1::METHOD_CLOUD_PUSH ||
        spec.scope().kind() != v1::SCOPE_KIND_TARGET ||
        !spec.scope().has_device_keys() ||
        spec.scope().device_keys().device_keys_size() > 5)
      return invalid("verification",
                     "a verification run is a snapshot cloud push to at most "
                     "5 named devices");
  } else if (fw->status() != v1::FIRMWARE_STATUS_VERIFIED) {
    return make_failure(errc::failed_precondition,
                        "target_version: firmware " + spec.product_key() + "/" +
                            spec.target_version() + " is " +
                            v1::FirmwareStatus_Name(fw->status()) +
                            ", only VERIFIED firmware can be a target");
  }
  if (spec.source_versions().empty() && !spec.verification())
    return invalid("source_versions", "must name at least one version");
  std::set<std::string> sources;
  for (const auto& v : spec.source_versions()) {
    if (v.empty())
      return invalid("source_versions", "must not contain an empty version");
    if (v == spec.target_version())
      return invalid("source_versions",
                     "must not contain the target version " + v);
    if (!sources.insert(v).second)
      return invalid("source_versions", "names " + v + " twice");
  }
  if (spec.strategy() != v1::STRATEGY_SNAPSHOT &&
      spec.strategy() != v1::STRATEGY_INCREMENT)
    return invalid("strategy", "must be SNAPSHOT or INCREMENT");
  if (spec.method() != v1::METHOD_CLOUD_PUSH &&
      spec.method() != v1::METHOD_DEVICE_REQUEST)
    return invalid("method", "must be CLOUD_PUSH or DEVICE_REQUEST");
  if (auto err = validate_scope(spec))
    return err;
  if (spec.method() == v1::METHOD_DEVICE_REQUEST &&
      (spec.has_schedule() || spec.rate().max_per_minute() != 0 ||
       spec.rate().has_ramp_up()))
    return invalid(spec.has_schedule() ? "schedule" : "rate",
                   "applies to CLOUD_PUSH only");
  if (spec.has_schedule())
    if (auto err = validate_schedule(spec.schedule()))
      return err;
  if (spec.rate().has_ramp_up()) {
    const auto& r = spec.rate().ramp_up();
    if (r.base_per_minute() == 0)
      return invalid("rate.ramp_up.base_per_minute", "must be at least 1");
    if (!(r.factor() > 1.0 && r.factor() <= 10.0))
      return invalid("rate.ramp_up.factor", "must be in (1, 10]");
    if (r.successes_per_step() == 0)
      return invalid("rate.ramp_up.successes_per_step", "must be at least 1");
    if (spec.rate().max_per_minute() != 0 &&
        r.base_per_minute() > spec.rate().max_per_minute())
      return invalid("rate.ramp_up.base_per_minute",
                     "must not exceed rate.max_per_minute");
  }
  if (spec.timeout_seconds() != 0 &&
      (spec.timeout_seconds() < min_timeout_seconds ||
       spec.timeout_seconds() > max_timeout_seconds))
    return invalid("timeout_seconds",
                   "must be between 300 (5 min) and 172800 (48 h), got " +
                       std::to_string(spec.timeout_seconds()));
  if (spec.retry().max_retries() > max_retries)
    return invalid("retry.max_retries",
                   "must be between 0 and 10, got " +
                       std::to_string(spec.retry().max_retries()));
  if (spec.retry().max_retries() > 0 && spec.retry().interval_seconds() == 0)
    return invalid("retry.interval_seconds", "must be at least 1 with retries");
  const auto& abort = spec.abort();
  if (!(abort.failure_percent() >= 0.0 && abort.failure_percent() <= 100.0))
    return invalid("abort.failure_percent", "must be between 0 and 100");
  if (abort.failure_percent() > 0.0 &&
      abort.action() != v1::ABORT_ACTION_PAUSE &&
      abort.action() != v1::ABORT_ACTION_CANCEL)
    return invalid("abort.action", "must be PAUSE or CANCEL");
  if (spec.end_time_ms() != 0) {
    if (spec.strategy() != v1::STRATEGY_INCREMENT)
      return invalid("end_time_ms", "applies to INCREMENT tasks only");
    if (spec.end_time_ms() <= to_millis(now))
      return invalid("end_time_ms", "must be in the future");
  }
  return std::nullopt;
}

expected<event_list> decide_create(uint64_t id, const v1::TaskSpec& spec,
                                   const spec_context& ctx, timestamp now) {
  if (auto err = validate(spec, ctx, now))
    return std::move(*err);
  auto e = make_event(task_stream(id), now);
  auto* x = e.mutable_task_created();
  x->set_task_id(id);
  *x->mutable_spec() = spec;
  if (x->spec().timeout_seconds() == 0)
    x->mutable_spec()->set_timeout_seconds(default_timeout_seconds);
  *x->mutable_firmware() =
      *ctx.find_firmware(spec.product_key(), spec.target_version());
  return event_list{std::move(e)};
}

event_list decide_enroll(const task_state& state,
                         const std::vector<std::string>& device_keys,
                         const std::vector<v1::SkippedDevice>& skipped,
                         timestamp now) {
  event_list out;
  uint64_t next = state.executions.size() + 1;
  for (size_t i = 0; i < device_keys.size(); i += enrollment_chunk) {
    auto e = task_event(state, now);
    auto* x = e.mutable_devices_enrolled();
    x->set_task_id(state.id);
    x->set_first_sequence(next + i);
    auto end = std::min(device_keys.size(), i + enrollment_chunk);
    for (size_t j = i; j < end; ++j)
      x->add_device_keys(device_keys[j]);
    out.push_back(std::move(e));
  }
  for (size_t i = 0; i < skipped.size(); i += enrollment_chunk) {
    auto e = task_event(state, now);
    auto* x = e.mutable_devices_skipped();
    x->set_task_id(state.id);
    auto end = std::min(skipped.size(), i + enrollment_chunk);
    for (size_t j = i; j < end; ++j)
      *x->add_devices() = skipped[j];
    out.push_back(std::move(e));
  }
  complete_if_done(state, out, now);
  return out;
}

expected<event_list> decide_notified(const task_state& state, uint64_t sequence,
                                     timestamp now) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  if ((*x)->state != v1::EXECUTION_STATE_QUEUED)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  auto* n = e.mutable_execution_notified();
  n->set_task_id(state.id);
  n->set_sequence(sequence);
  n->set_attempt((*x)->attempt);
  return event_list{std::move(e)};
}

expected<event_list> decide_progress(const task_state& state, uint64_t sequence,
                                     uint32_t step, const std::string& text,
                                     timestamp now) {
  if (step > 100)
    return invalid("step",
                   "must be between 0 and 100, got " + std::to_string(step));
  if (text.size() > 256)
    return invalid("text", "is longer than 256 characters");
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  auto st = (*x)->state;
  if (st != v1::EXECUTION_STATE_NOTIFIED &&
      st != v1::EXECUTION_STATE_IN_PROGRESS)
    return not_active(state, sequence, **x);
  event_list out;
  if (st == v1::EXECUTION_STATE_NOTIFIED) {
    auto e = task_event(state, now);
    e.mutable_execution_started()->set_task_id(state.id);
    e.mutable_execution_started()->set_sequence(sequence);
    out.push_back(std::move(e));
  }
  auto e = task_event(state, now);
  auto* p = e.mutable_execution_progressed();
  p->set_task_id(state.id);
  p->set_sequence(sequence);
  p->set_step(step);
  p->set_text(text);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide_confirm(const task_state& state, uint64_t sequence,
                                    timestamp now) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  event_list out;
  if ((*x)->state == v1::EXECUTION_STATE_IN_PROGRESS)
    return out;
  if ((*x)->state != v1::EXECUTION_STATE_NOTIFIED)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  e.mutable_execution_started()->set_task_id(state.id);
  e.mutable_execution_started()->set_sequence(sequence);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide_version(const task_state& state, uint64_t sequence,
                                    const std::string& version, timestamp now) {
  auto x = lookup(state, sequence);
  if (!x)
    return std::move(x).error();
  event_list out;
  if (is_terminal((*x)->state) || version != state.spec.target_version())
    return out;
  auto e = task_event(state, now);
  e.mutable_execution_succeeded()->set_task_id(state.id);
  e.mutable_execution_succeeded()->set_sequence(sequence);
  out.push_back(std::move(e));
  complete_if_done(state, out, now);
  return out;
}

expected<event_list> decide_failure(const task_state& state, uint64_t sequence,
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
  if (st != v1::EXECUTION_STATE_NOTIFIED &&
      st != v1::EXECUTION_STATE_IN_PROGRESS)
    return not_active(state, sequence, **x);
  auto e = task_event(state, now);
  auto* f = e.mutable_execution_failed();
  f->set_task_id(state.id);
  f->set_sequence(sequence);
  f->set_code(code);
  f->set_text(text);
  event_list out{std::move(e)};
  complete_if_done(state, out, now);
  return out;
}

event_list decide_timeout(const task_state& state, uint64_t sequence,
                          timestamp now) {
  event_list out;
  const auto* x = state.find(sequence);
  if (x == nullptr)
    return out;
  auto deadline = state.deadline_ms(*x);
  if (deadline == 0 || deadline > to_millis(now))
    return out;
  auto e = task_event(state, now);
  e.mutable_execution_timed_out()->set_task_id(state.id);
  e.mutable_execution_timed_out()->set_sequence(sequence);
  out.push_back(std::move(e));
  complete_if_done(state, out, now);
  return out;
}

event_list decide_retry(const task_state& state, uint64_t sequence,
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
  r->set_task_id(state.id);
  r->set_sequence(sequence);
  r->set_attempt(x->attempt + 1u);
  out.push_back(std::move(e));
  return out;
}

event_list decide_abort(const task_state& state, timestamp now) {
  event_list out;
  const auto& rule = state.spec.abort();
  if (!(rule.failure_percent() > 0.0) ||
      state.status != v1::TASK_STATUS_RUNNING)
    return out;
  auto failures = state.counts[v1::EXECUTION_STATE_FAILED] +
                  state.counts[v1::EXECUTION_STATE_TIMED_OUT] -
                  state.retries_pending;
  auto finished = failures + state.counts[v1::EXECUTION_STATE_SUCCEEDED];
  if (finished == 0 || finished < rule.min_finished())
    return out;
  auto percent =
      100.0 * static_cast<double>(failures) / static_cast<double>(finished);
  if (percent < rule.failure_percent())
    return out;
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "abort rule: %llu of %llu finished executions failed "
                "(%.1f%% >= %.1f%%)",
                static_cast<unsigned long long>(failures),
                static_cast<unsigned long long>(finished), percent,
                rule.failure_percent());
  if (rule.action() == v1::ABORT_ACTION_PAUSE) {
    auto e = task_event(state, now);
    e.mutable_task_paused()->set_task_id(state.id);
    e.mutable_task_paused()->set_reason(buf);
    out.push_back(std::move(e));
    return out;
  }
  cancel_executions(state, out, now, true);
  auto e = task_event(state, now);
  e.mutable_task_canceled()->set_task_id(state.id);
  e.mutable_task_canceled()->set_reason(buf);
  out.push_back(std::move(e));
  return out;
}

event_list decide_end(const task_state& state, timestamp now) {
  event_list out;
  if (state.spec.strategy() != v1::STRATEGY_INCREMENT ||
      state.spec.end_time_ms() == 0 || is_finished(state.status) ||
      state.spec.end_time_ms() > to_millis(now))
    return out;
  cancel_executions(state, out, now, true);
  auto e = task_event(state, now);
  e.mutable_task_completed()->set_task_id(state.id);
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
  e.mutable_task_paused()->set_task_id(state.id);
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
  e.mutable_task_resumed()->set_task_id(state.id);
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
  e.mutable_task_canceled()->set_task_id(state.id);
  e.mutable_task_canceled()->set_reason(reason);
  out.push_back(std::move(e));
  return out;
}

task_state make_task(const event& created) {
  const auto& x = created.task_created();
  task_state t;
  t.id = x.task_id();
  t.spec = x.spec();
  t.firmware = x.firmware();
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

execution* mutable_find(task_state& t, uint64_t sequence) {
  return const_cast<execution*>(t.find(sequence));
}

} // namespace

void apply(task_state& t, const event& e) {
  int64_t at = e.time_ms();
  switch (e.payload_case()) {
  case event::kTaskCreated:
    t = make_task(e);
    break;
  case event::kDevicesEnrolled: {
    const auto& x = e.devices_enrolled();
    t.executions.reserve(x.first_sequence() - 1 + x.device_keys_size());
    t.executions.resize(x.first_sequence() - 1);
    for (const auto& k : x.device_keys()) {
      execution ex;
      ex.device_key = k;
      ex.queued_at_ms = at;
      t.executions.push_back(std::move(ex));
    }
    t.counts[v1::EXECUTION_STATE_QUEUED] += x.device_keys_size();
    break;
  }
  case event::kDevicesSkipped:
    for (const auto& d : e.devices_skipped().devices())
      t.skipped.push_back(d);
    break;
  case event::kExecutionNotified:
    if (auto* x = mutable_find(t, e.execution_notified().sequence())) {
      move_to(t, *x, v1::EXECUTION_STATE_NOTIFIED);
      x->attempt = static_cast<uint16_t>(e.execution_notified().attempt());
      x->notified_at_ms = at;
      x->updated_at_ms = at;
    }
    break;
  case event::kExecutionStarted:
    if (auto* x = mutable_find(t, e.execution_started().sequence())) {
      move_to(t, *x, v1::EXECUTION_STATE_IN_PROGRESS);
      x->started_at_ms = at;
      x->updated_at_ms = at;
    }
    break;
  case event::kExecutionProgressed: {
    const auto& p = e.execution_progressed();
    if (auto* x = mutable_find(t, p.sequence())) {
      x->progress_step = static_cast<uint8_t>(p.step());
      x->updated_at_ms = at;
      if (p.text().empty())
        t.progress_texts.erase(p.sequence());
      else
        t.progress_texts[p.sequence()] = p.text();
    }
    break;
  }
  case event::kExecutionSucceeded: {
    auto seq = e.execution_succeeded().sequence();
    if (auto* x = mutable_find(t, seq)) {
      move_to(t, *x, v1::EXECUTION_STATE_SUCCEEDED);
      x->finished_at_ms = at;
      x->progress_step = 100;
      t.progress_texts.erase(seq);
    }
    break;
  }
  case event::kExecutionFailed: {
    const auto& f = e.execution_failed();
    if (auto* x = mutable_find(t, f.sequence())) {
      move_to(t, *x, v1::EXECUTION_STATE_FAILED);
      x->finished_at_ms = at;
      t.failures[f.sequence()] = failure_info{f.code(), f.text()};
      if (t.will_retry(*x))
        ++t.retries_pending;
    }
    break;
  }
  case event::kExecutionTimedOut:
    if (auto* x = mutable_find(t, e.execution_timed_out().sequence())) {
      move_to(t, *x, v1::EXECUTION_STATE_TIMED_OUT);
      x->finished_at_ms = at;
      if (t.will_retry(*x))
        ++t.retries_pending;
    }
    break;
  case event::kExecutionRequeued: {
    const auto& r = e.execution_requeued();
    if (auto* x = mutable_find(t, r.sequence())) {
      if (t.will_retry(*x) && t.retries_pending > 0)
        --t.retries_pending;
      move_to(t, *x, v1::EXECUTION_STATE_QUEUED);
      x->attempt = static_cast<uint16_t>(r.attempt());
      x->queued_at_ms = at;
      x->notified_at_ms = x->started_at_ms = x->finished_at_ms = 0;
      x->updated_at_ms = 0;
      x->progress_step = 0;
      t.progress_texts.erase(r.sequence());
      t.failures.erase(r.sequence());
    }
    break;
  }
  case event::kExecutionsCanceled:
    for (auto seq : e.executions_canceled().sequences())
      if (auto* x = mutable_find(t, seq)) {
        move_to(t, *x, v1::EXECUTION_STATE_CANCELED);
        x->finished_at_ms = at;
      }
    break;
  case event::kTaskPaused:
    t.status = v1::TASK_STATUS_PAUSED;
    t.status_reason = e.task_paused().reason();
    break;
  case event::kTaskResumed:
    t.status = v1::TASK_STATUS_RUNNING;
    t.status_reason.clear();
    break;
  case event::kTaskCanceled:
    t.status = v1::TASK_STATUS_CANCELED;
    t.status_reason = e.task_canceled().reason();
    t.finished_at_ms = at;
    t.retries_pending = 0;
    break;
  case event::kTaskCompleted:
    t.status = v1::TASK_STATUS_COMPLETED;
    t.finished_at_ms = at;
    t.retries_pending = 0;
    break;
  default:
    break;
  }
}

} // namespace fota
