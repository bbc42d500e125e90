#include "events/codec.hpp"

#include "events/limits.hpp"
#include "events/manifest.hpp"
#include "events/status.hpp"

#include <algorithm>
#include <string>

namespace fota {

namespace {

template <class Map>
label_map labels_of(const Map& xs) {
  label_map out(xs.begin(), xs.end());
  std::sort(out.begin(), out.end());
  return out;
}

template <class Repeated>
std::vector<std::string> strings_of(const Repeated& xs) {
  return {xs.begin(), xs.end()};
}

// -- limits -------------------------------------------------------------------

/// Checks the sizes of a request's fields; keeps the first violation.
class limit_check {
public:
  void text(const char* field, const std::string& x, size_t max) {
    if (!err_ && x.size() > max)
      err_ = make_failure(
          errc::invalid_argument,
          std::string{field} + ": is " + std::to_string(x.size()) +
              " bytes long, at most " + std::to_string(max) + " are allowed");
  }

  void key(const char* field, const std::string& x) {
    text(field, x, limits::key);
  }

  template <class Repeated>
  void list(const char* field, const Repeated& xs, size_t max) {
    if (!err_ && static_cast<size_t>(xs.size()) > max)
      err_ = make_failure(errc::invalid_argument,
                          std::string{field} + ": holds " +
                              std::to_string(xs.size()) + " entries, at most " +
                              std::to_string(max) + " are allowed");
  }

  template <class Repeated>
  void keys(const char* field, const Repeated& xs, size_t max) {
    list(field, xs, max);
    for (const auto& x : xs)
      key(field, x);
  }

  template <class Map>
  void labels(const char* field, const Map& xs) {
    list(field, xs, limits::labels);
    for (const auto& [k, v] : xs) {
      key(field, k);
      key(field, v);
    }
  }

  void page(uint32_t size) {
    if (!err_ && size > limits::max_page_size)
      err_ = make_failure(errc::invalid_argument,
                          "page_size: must be at most " +
                              std::to_string(limits::max_page_size) + ", got " +
                              std::to_string(size));
  }

  void device(const std::string& product, const std::string& device) {
    key("product_key", product);
    key("device_key", device);
  }

  status result() && { return std::move(err_); }

private:
  status err_;
};

void check(limit_check& c, const v1::TaskSpec& s) {
  c.key("spec.name", s.name());
  c.key("spec.product_key", s.product_key());
  c.key("spec.target_version", s.target_version());
  c.keys("spec.source_versions", s.source_versions(), limits::source_versions);
  const auto& scope = s.scope();
  c.keys("spec.scope.device_keys", scope.device_keys().device_keys(),
         limits::scope_devices);
  c.key("spec.scope.tag.key", scope.tag().key());
  c.key("spec.scope.tag.value", scope.tag().value());
  c.key("spec.scope.attribute.name", scope.attribute().name());
  c.key("spec.scope.attribute.value", scope.attribute().value());
  c.list("spec.scope.asset_trees", scope.asset_trees().trees(),
         max_selected_trees);
  for (const auto& t : scope.asset_trees().trees()) {
    c.key("spec.scope.asset_trees.tree_id", t.tree_id());
    c.keys("spec.scope.asset_trees.node_ids", t.node_ids(),
           limits::selected_nodes);
  }
  c.key("spec.schedule.time_zone", s.schedule().time_zone());
  c.list("spec.schedule.windows", s.schedule().windows(), limits::windows);
}

void check(limit_check& c, const v1::AssetTree& t) {
  c.key("tree.tree_id", t.tree_id());
  c.key("tree.product_key", t.product_key());
  c.key("tree.name", t.name());
  c.list("tree.nodes", t.nodes(), limits::tree_nodes);
  for (const auto& n : t.nodes()) {
    c.key("tree.nodes.node_id", n.node_id());
    c.key("tree.nodes.parent_id", n.parent_id());
    c.key("tree.nodes.name", n.name());
    c.key("tree.nodes.device_key", n.device_key());
  }
}

failure no_body() {
  return make_failure(errc::invalid_argument,
                      "frame has no request body (unknown request type?)");
}

} // namespace

// -- values -------------------------------------------------------------------

v1::Firmware to_device_proto(const firmware_record& x) {
  v1::Firmware out;
  out.set_product_key(x.product);
  out.set_version(x.version);
  out.set_url(x.url);
  out.set_size(x.size);
  out.set_sha256(x.sha256);
  out.set_signature(x.signature);
  out.set_description(x.description);
  return out;
}

v1::Firmware to_proto(const firmware_record& x) {
  auto out = to_device_proto(x);
  out.set_status(x.status);
  out.set_created_at_ms(x.created_at_ms);
  for (const auto& d : x.verification_devices)
    out.add_verification_device_keys(d);
  out.set_verification_failure(x.verification_failure);
  out.set_verification_skip_reason(x.verification_skip_reason);
  return out;
}

firmware_record from_proto(const v1::Firmware& x) {
  firmware_record out;
  out.product = x.product_key();
  out.version = x.version();
  out.url = x.url();
  out.size = x.size();
  out.sha256 = x.sha256();
  out.signature = x.signature();
  out.description = x.description();
  out.status = x.status();
  out.created_at_ms = x.created_at_ms();
  out.verification_devices = strings_of(x.verification_device_keys());
  out.verification_failure = x.verification_failure();
  out.verification_skip_reason = x.verification_skip_reason();
  return out;
}

v1::TaskSpec to_proto(const task_spec& x) {
  v1::TaskSpec out;
  out.set_name(x.name);
  out.set_product_key(x.product);
  out.set_target_version(x.target_version);
  for (const auto& v : x.source_versions)
    out.add_source_versions(v);
  out.set_strategy(x.strategy);
  auto* scope = out.mutable_scope();
  scope->set_kind(x.scope.kind);
  if (x.scope.has(task_scope::device_keys_filter)) {
    auto* keys = scope->mutable_device_keys();
    for (const auto& k : x.scope.device_keys)
      keys->add_device_keys(k);
  }
  if (x.scope.has(task_scope::tag_filter)) {
    scope->mutable_tag()->set_key(x.scope.tag_key);
    scope->mutable_tag()->set_value(x.scope.tag_value);
  }
  if (x.scope.has(task_scope::attribute_filter)) {
    scope->mutable_attribute()->set_name(x.scope.attribute_name);
    scope->mutable_attribute()->set_value(x.scope.attribute_value);
  }
  if (x.scope.has(task_scope::asset_trees_filter)) {
    auto* trees = scope->mutable_asset_trees();
    for (const auto& t : x.scope.trees) {
      auto* sel = trees->add_trees();
      sel->set_tree_id(t.tree);
      for (const auto& n : t.nodes)
        sel->add_node_ids(n);
    }
  }
  out.set_method(x.method);
  if (x.schedule.set) {
    auto* schedule = out.mutable_schedule();
    schedule->set_time_zone(x.schedule.time_zone);
    for (const auto& w : x.schedule.windows) {
      auto* window = schedule->add_windows();
      window->set_start_minute(w.start_minute);
      window->set_end_minute(w.end_minute);
    }
  }
  if (x.rate.max_per_minute != 0 || x.rate.has_ramp_up) {
    auto* rate = out.mutable_rate();
    rate->set_max_per_minute(x.rate.max_per_minute);
    if (x.rate.has_ramp_up) {
      auto* r = rate->mutable_ramp_up();
      r->set_base_per_minute(x.rate.ramp_up.base_per_minute);
      r->set_factor(x.rate.ramp_up.factor);
      r->set_successes_per_step(x.rate.ramp_up.successes_per_step);
    }
  }
  out.set_timeout_seconds(x.timeout_seconds);
  if (x.retry.max_retries != 0 || x.retry.interval_seconds != 0) {
    out.mutable_retry()->set_max_retries(x.retry.max_retries);
    out.mutable_retry()->set_interval_seconds(x.retry.interval_seconds);
  }
  if (x.abort.failure_percent != 0 || x.abort.min_finished != 0 ||
      x.abort.action != v1::ABORT_ACTION_UNSPECIFIED) {
    auto* abort = out.mutable_abort();
    abort->set_failure_percent(x.abort.failure_percent);
    abort->set_min_finished(x.abort.min_finished);
    abort->set_action(x.abort.action);
  }
  out.set_end_time_ms(x.end_time_ms);
  out.set_priority(x.priority);
  out.set_verification(x.verification);
  return out;
}

task_spec from_proto(const v1::TaskSpec& x) {
  task_spec out;
  out.name = x.name();
  out.product = x.product_key();
  out.target_version = x.target_version();
  out.source_versions = strings_of(x.source_versions());
  out.strategy = x.strategy();
  const auto& scope = x.scope();
  out.scope.kind = scope.kind();
  if (scope.has_device_keys()) {
    out.scope.filters |= task_scope::device_keys_filter;
    out.scope.device_keys = strings_of(scope.device_keys().device_keys());
  }
  if (scope.has_tag()) {
    out.scope.filters |= task_scope::tag_filter;
    out.scope.tag_key = scope.tag().key();
    out.scope.tag_value = scope.tag().value();
  }
  if (scope.has_attribute()) {
    out.scope.filters |= task_scope::attribute_filter;
    out.scope.attribute_name = scope.attribute().name();
    out.scope.attribute_value = scope.attribute().value();
  }
  if (scope.has_asset_trees()) {
    out.scope.filters |= task_scope::asset_trees_filter;
    for (const auto& t : scope.asset_trees().trees())
      out.scope.trees.push_back(
          tree_selection{t.tree_id(), strings_of(t.node_ids())});
  }
  out.method = x.method();
  if (x.has_schedule())
    out.schedule = from_proto(x.schedule());
  out.rate.max_per_minute = x.rate().max_per_minute();
  if (x.rate().has_ramp_up()) {
    const auto& r = x.rate().ramp_up();
    out.rate.has_ramp_up = true;
    out.rate.ramp_up =
        ramp_up_spec{r.base_per_minute(), r.factor(), r.successes_per_step()};
  }
  out.timeout_seconds = x.timeout_seconds();
  out.retry = retry_spec{x.retry().max_retries(), x.retry().interval_seconds()};
  out.abort = abort_spec{x.abort().failure_percent(), x.abort().min_finished(),
                         x.abort().action()};
  out.end_time_ms = x.end_time_ms();
  out.priority = x.priority();
  out.verification = x.verification();
  return out;
}

schedule_spec from_proto(const v1::Schedule& x) {
  schedule_spec out;
  out.set = true;
  out.time_zone = x.time_zone();
  for (const auto& w : x.windows())
    out.windows.push_back(schedule_window{w.start_minute(), w.end_minute()});
  return out;
}

v1::AssetTree to_proto(const asset_tree& x) {
  v1::AssetTree out;
  out.set_tree_id(x.id);
  out.set_product_key(x.product);
  out.set_name(x.name);
  for (const auto& n : x.nodes) {
    auto* node = out.add_nodes();
    node->set_node_id(n.id);
    node->set_parent_id(n.parent);
    node->set_name(n.name);
    node->set_device_key(n.device_key);
  }
  return out;
}

asset_tree from_proto(const v1::AssetTree& x) {
  asset_tree out;
  out.id = x.tree_id();
  out.product = x.product_key();
  out.name = x.name();
  out.nodes.reserve(x.nodes_size());
  for (const auto& n : x.nodes())
    out.nodes.push_back(
        asset_node{n.node_id(), n.parent_id(), n.name(), n.device_key()});
  return out;
}

v1::Device to_proto(const device_state& x) {
  v1::Device out;
  out.set_product_key(x.product);
  out.set_device_key(x.key);
  out.set_version(x.version);
  out.set_online(x.online);
  for (const auto& [k, v] : x.tags)
    (*out.mutable_tags())[k] = v;
  for (const auto& [k, v] : x.attributes)
    (*out.mutable_attributes())[k] = v;
  out.set_active_execution_id(x.active_execution.value());
  out.set_registered_at_ms(x.registered_at_ms);
  out.set_gateway(x.gateway);
  return out;
}

v1::TaskSummary to_proto(const task_summary& x) {
  v1::TaskSummary out;
  out.set_task_id(x.id.value());
  *out.mutable_spec() = to_proto(x.spec);
  out.set_status(x.status);
  auto* c = out.mutable_counters();
  c->set_queued(x.counters.queued);
  c->set_notified(x.counters.notified);
  c->set_in_progress(x.counters.in_progress);
  c->set_succeeded(x.counters.succeeded);
  c->set_failed(x.counters.failed);
  c->set_timed_out(x.counters.timed_out);
  c->set_canceled(x.counters.canceled);
  c->set_skipped(x.counters.skipped);
  out.set_created_at_ms(x.created_at_ms);
  out.set_finished_at_ms(x.finished_at_ms);
  out.set_status_reason(x.status_reason);
  return out;
}

v1::Execution to_proto(const execution_view& x) {
  v1::Execution out;
  out.set_execution_id(x.id.value());
  out.set_task_id(x.id.task().value());
  out.set_device_key(x.device_key);
  out.set_state(x.state);
  out.set_attempt(x.attempt);
  out.set_sequence(x.id.sequence().value());
  out.set_queued_at_ms(x.queued_at_ms);
  out.set_notified_at_ms(x.notified_at_ms);
  out.set_started_at_ms(x.started_at_ms);
  out.set_finished_at_ms(x.finished_at_ms);
  out.set_progress_step(x.progress_step);
  out.set_progress_text(x.progress_text);
  out.set_failure_code(x.failure_code);
  out.set_failure_text(x.failure_text);
  out.set_waiting_for_device(x.waiting_for_device);
  return out;
}

v1::UpgradeOffer to_proto(const upgrade_offer& x) {
  v1::UpgradeOffer out;
  out.set_available(x.available);
  if (x.available) {
    out.set_execution_id(x.execution.value());
    out.set_attempt(x.attempt);
    *out.mutable_firmware() = to_device_proto(x.firmware);
    out.set_manifest(manifest_of(x.firmware));
  }
  out.set_reason(x.reason);
  return out;
}

v1::UpgradePush to_upgrade_push(const std::string& product,
                                const std::string& device, execution_id id,
                                uint32_t attempt, const firmware_record& fw) {
  v1::UpgradePush out;
  out.set_product_key(product);
  out.set_device_key(device);
  out.set_execution_id(id.value());
  out.set_attempt(attempt);
  *out.mutable_firmware() = to_device_proto(fw);
  out.set_manifest(manifest_of(fw));
  return out;
}

// -- requests -----------------------------------------------------------------

std::string name_of(const request& x) {
  // In the order of the alternatives of `request`.
  static constexpr const char* names[] = {
      "create_firmware",  "verify_firmware",   "skip_verification",
      "get_firmware",     "list_firmware",     "delete_firmware",
      "create_task",      "get_task",          "list_tasks",
      "get_task_details", "pause_task",        "resume_task",
      "cancel_task",      "get_state_digest",  "list_devices",
      "get_device",       "set_device_tags",   "set_device_attributes",
      "move_device",      "create_asset_tree", "delete_asset_tree",
      "list_asset_trees", "register_device",   "device_online",
      "device_offline",   "report_version",    "report_progress",
      "report_failure",   "request_upgrade",   "confirm_upgrade",
      "ack_push",         "register_devices",  "get_device_history",
      "get_task_history", "preview_task",
  };
  static_assert(std::size(names) == std::variant_size_v<request>);
  return names[x.index()];
}

void stamp_gateway(request& x, const std::string& gateway) {
  std::visit(
      [&](auto& cmd) {
        using command = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<command, register_devices>) {
          cmd.gateway = gateway;
          for (auto& item : cmd.devices)
            item.gateway = gateway;
        } else if constexpr (command::role == v1::ROLE_GATEWAY) {
          cmd.gateway = gateway;
        }
      },
      x);
}

std::optional<std::pair<std::string, std::string>> device_of(const request& x) {
  return std::visit(
      [](const auto& cmd)
          -> std::optional<std::pair<std::string, std::string>> {
        using command = std::decay_t<decltype(cmd)>;
        if constexpr (command::role == v1::ROLE_GATEWAY &&
                      !std::is_same_v<command, register_devices>)
          return std::make_pair(cmd.product, cmd.device);
        else
          return std::nullopt;
      },
      x);
}

v1::Role required_role(const request& x) noexcept {
  return std::visit([](const auto& cmd) { return cmd.role; }, x);
}

namespace {

/// Copies a history request's `at_ms` into `cmd`; refuses a moment before
/// the Unix epoch.
template <class Request, class Command>
status take_at(const Request& x, Command& cmd) {
  if (!x.has_at_ms())
    return std::nullopt;
  if (x.at_ms() < 0)
    return make_failure(errc::invalid_argument,
                        "at_ms: " + std::to_string(x.at_ms()) +
                            " is before the Unix epoch");
  cmd.has_at = true;
  cmd.at_ms = x.at_ms();
  return std::nullopt;
}

} // namespace

expected<request> decode(const v1::ClientFrame& frame, bool enforce_limits) {
  using f = v1::ClientFrame;
  limit_check c;
  auto done = [&](request x) -> expected<request> {
    if (auto err = std::move(c).result(); err && enforce_limits)
      return std::move(*err);
    return x;
  };
  switch (frame.body_case()) {
  case f::BODY_NOT_SET:
    return no_body();
  case f::kHello:
    return make_failure(errc::invalid_argument,
                        "Hello is only valid as the first frame");
  case f::kPing:
    return make_failure(errc::invalid_argument,
                        "Ping is only valid on a network session");
  // -- firmware
  case f::kCreateFirmware: {
    const auto& fw = frame.create_firmware().firmware();
    c.key("firmware.product_key", fw.product_key());
    c.key("firmware.version", fw.version());
    c.text("firmware.url", fw.url(), limits::url);
    c.text("firmware.sha256", fw.sha256(), 64);
    c.text("firmware.signature", fw.signature(), limits::signature);
    c.text("firmware.description", fw.description(), limits::text);
    return done(create_firmware{fw.product_key(), fw.version(), fw.url(),
                                fw.size(), fw.sha256(), fw.signature(),
                                fw.description()});
  }
  case f::kVerifyFirmware: {
    const auto& x = frame.verify_firmware();
    c.key("product_key", x.product_key());
    c.key("version", x.version());
    c.keys("device_keys", x.device_keys(), 64);
    return done(verify_firmware{x.product_key(), x.version(),
                                strings_of(x.device_keys()),
                                x.timeout_seconds()});
  }
  case f::kSkipVerification: {
    const auto& x = frame.skip_verification();
    c.key("product_key", x.product_key());
    c.key("version", x.version());
    c.text("reason", x.reason(), limits::text);
    return done(skip_verification{x.product_key(), x.version(), x.reason()});
  }
  case f::kGetFirmware: {
    const auto& x = frame.get_firmware();
    c.key("product_key", x.product_key());
    c.key("version", x.version());
    return done(get_firmware{x.product_key(), x.version()});
  }
  case f::kListFirmware: {
    const auto& x = frame.list_firmware();
    c.key("product_key", x.product_key());
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    return done(list_firmware{x.product_key(), x.page_size(), x.page_token()});
  }
  case f::kDeleteFirmware: {
    const auto& x = frame.delete_firmware();
    c.key("product_key", x.product_key());
    c.key("version", x.version());
    return done(delete_firmware{x.product_key(), x.version()});
  }
  // -- tasks
  case f::kCreateTask: {
    const auto& spec = frame.create_task().spec();
    check(c, spec);
    return done(create_task{from_proto(spec)});
  }
  case f::kPreviewTask: {
    // Checked exactly as CreateTask's spec is.
    const auto& spec = frame.preview_task().spec();
    check(c, spec);
    return done(preview_task{from_proto(spec)});
  }
  case f::kGetTask:
    return done(get_task{task_id{frame.get_task().task_id()}});
  case f::kListTasks: {
    const auto& x = frame.list_tasks();
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    c.key("product_key", x.product_key());
    c.key("target_version", x.target_version());
    c.list("statuses", x.statuses(), limits::states);
    list_tasks cmd;
    cmd.page_size = x.page_size();
    cmd.page_token = x.page_token();
    cmd.product = x.product_key();
    cmd.target_version = x.target_version();
    for (auto s : x.statuses()) {
      if (!v1::TaskStatus_IsValid(s) || s == v1::TASK_STATUS_UNSPECIFIED)
        return make_failure(errc::invalid_argument,
                            "statuses: " + std::to_string(s) +
                                " is not a task status");
      cmd.statuses.push_back(static_cast<v1::TaskStatus>(s));
    }
    return done(std::move(cmd));
  }
  case f::kGetTaskDetails: {
    const auto& x = frame.get_task_details();
    c.page(x.page_size());
    c.list("states", x.states(), limits::states);
    get_task_details cmd;
    cmd.task = task_id{x.task_id()};
    for (auto s : x.states())
      cmd.states.push_back(static_cast<v1::ExecutionState>(s));
    cmd.skipped = x.skipped();
    cmd.page_size = x.page_size();
    cmd.page_token = x.page_token();
    return done(std::move(cmd));
  }
  case f::kPauseTask:
    return done(pause_task{task_id{frame.pause_task().task_id()}});
  case f::kResumeTask:
    return done(resume_task{task_id{frame.resume_task().task_id()}});
  case f::kCancelTask:
    return done(cancel_task{task_id{frame.cancel_task().task_id()}});
  case f::kGetStateDigest:
    return done(get_state_digest{});
  // -- devices and trees
  case f::kListDevices: {
    const auto& x = frame.list_devices();
    c.key("product_key", x.product_key());
    c.key("version", x.version());
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    return done(list_devices{x.product_key(), x.version(), x.page_size(),
                             x.page_token()});
  }
  case f::kGetDevice: {
    const auto& x = frame.get_device();
    c.device(x.product_key(), x.device_key());
    return done(get_device{x.product_key(), x.device_key()});
  }
  case f::kSetDeviceTags: {
    const auto& x = frame.set_device_tags();
    c.device(x.product_key(), x.device_key());
    c.labels("tags", x.tags());
    return done(
        set_device_tags{x.product_key(), x.device_key(), labels_of(x.tags())});
  }
  case f::kSetDeviceAttributes: {
    const auto& x = frame.set_device_attributes();
    c.device(x.product_key(), x.device_key());
    c.labels("attributes", x.attributes());
    return done(set_device_attributes{x.product_key(), x.device_key(),
                                      labels_of(x.attributes())});
  }
  case f::kMoveDevice: {
    const auto& x = frame.move_device();
    c.device(x.product_key(), x.device_key());
    c.key("gateway", x.gateway());
    return done(move_device{x.product_key(), x.device_key(), x.gateway()});
  }
  case f::kCreateAssetTree: {
    const auto& tree = frame.create_asset_tree().tree();
    check(c, tree);
    return done(create_asset_tree{from_proto(tree)});
  }
  case f::kDeleteAssetTree: {
    const auto& x = frame.delete_asset_tree();
    c.key("product_key", x.product_key());
    c.key("tree_id", x.tree_id());
    return done(delete_asset_tree{x.product_key(), x.tree_id()});
  }
  case f::kListAssetTrees: {
    const auto& x = frame.list_asset_trees();
    c.key("product_key", x.product_key());
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    return done(
        list_asset_trees{x.product_key(), x.page_size(), x.page_token()});
  }
  // -- gateway
  case f::kRegisterDevice: {
    const auto& x = frame.register_device();
    c.device(x.product_key(), x.device_key());
    c.key("version", x.version());
    c.labels("tags", x.tags());
    c.labels("attributes", x.attributes());
    return done(register_device{x.product_key(), x.device_key(), x.version(),
                                labels_of(x.tags()),
                                labels_of(x.attributes())});
  }
  case f::kRegisterDevices: {
    // Each item is checked on its own: one beyond a limit is refused, the
    // others go on.
    const auto& x = frame.register_devices();
    if (static_cast<size_t>(x.devices_size()) > limits::batch_devices)
      return make_failure(errc::invalid_argument,
                          "devices: holds " + std::to_string(x.devices_size()) +
                              " devices, at most " +
                              std::to_string(limits::batch_devices) +
                              " are allowed in one RegisterDevices");
    register_devices cmd;
    cmd.online = x.online();
    cmd.devices.reserve(static_cast<size_t>(x.devices_size()));
    for (const auto& d : x.devices()) {
      limit_check item;
      item.device(d.product_key(), d.device_key());
      item.key("version", d.version());
      item.labels("tags", d.tags());
      item.labels("attributes", d.attributes());
      cmd.devices.push_back(register_device{d.product_key(), d.device_key(),
                                            d.version(), labels_of(d.tags()),
                                            labels_of(d.attributes())});
      if (auto err = std::move(item).result(); err && enforce_limits)
        cmd.refuse(cmd.devices.size() - 1, std::move(*err));
    }
    return request{std::move(cmd)};
  }
  case f::kDeviceOnline: {
    const auto& x = frame.device_online();
    c.device(x.product_key(), x.device_key());
    return done(device_online{x.product_key(), x.device_key()});
  }
  case f::kDeviceOffline: {
    const auto& x = frame.device_offline();
    c.device(x.product_key(), x.device_key());
    return done(device_offline{x.product_key(), x.device_key()});
  }
  case f::kReportVersion: {
    const auto& x = frame.report_version();
    c.device(x.product_key(), x.device_key());
    c.key("version", x.version());
    return done(report_version{x.product_key(), x.device_key(), x.version()});
  }
  case f::kReportProgress: {
    const auto& x = frame.report_progress();
    c.device(x.product_key(), x.device_key());
    c.text("text", x.text(), limits::progress_text);
    return done(report_progress{x.product_key(), x.device_key(),
                                execution_id{x.execution_id()}, x.step(),
                                x.text()});
  }
  case f::kReportFailure: {
    const auto& x = frame.report_failure();
    c.device(x.product_key(), x.device_key());
    c.text("code", x.code(), limits::failure_code);
    c.text("text", x.text(), limits::text);
    return done(report_failure{x.product_key(), x.device_key(),
                               execution_id{x.execution_id()}, x.code(),
                               x.text()});
  }
  case f::kRequestUpgrade: {
    const auto& x = frame.request_upgrade();
    c.device(x.product_key(), x.device_key());
    return done(request_upgrade{x.product_key(), x.device_key()});
  }
  case f::kConfirmUpgrade: {
    const auto& x = frame.confirm_upgrade();
    c.device(x.product_key(), x.device_key());
    return done(confirm_upgrade{x.product_key(), x.device_key(),
                                execution_id{x.execution_id()}});
  }
  // -- history
  case f::kGetDeviceHistory: {
    const auto& x = frame.get_device_history();
    c.device(x.product_key(), x.device_key());
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    get_device_history cmd;
    cmd.product = x.product_key();
    cmd.device = x.device_key();
    cmd.page_size = x.page_size();
    cmd.page_token = x.page_token();
    if (auto err = take_at(x, cmd))
      return std::move(*err);
    return done(std::move(cmd));
  }
  case f::kGetTaskHistory: {
    const auto& x = frame.get_task_history();
    c.page(x.page_size());
    c.key("page_token", x.page_token());
    get_task_history cmd;
    cmd.task = task_id{x.task_id()};
    cmd.page_size = x.page_size();
    cmd.page_token = x.page_token();
    if (auto err = take_at(x, cmd))
      return std::move(*err);
    return done(std::move(cmd));
  }
  case f::kAckPush: {
    const auto& x = frame.ack_push();
    c.device(x.product_key(), x.device_key());
    return done(ack_push{x.product_key(), x.device_key(),
                         execution_id{x.execution_id()}, x.attempt()});
  }
  }
  return no_body();
}

// -- responses ----------------------------------------------------------------

namespace {

v1::Response ok() {
  v1::Response r;
  r.set_status(v1::STATUS_CODE_OK);
  return r;
}

} // namespace

v1::Response to_response(const firmware_record& x) {
  auto r = ok();
  *r.mutable_firmware() = to_proto(x);
  return r;
}

v1::Response to_response(const firmware_page& x) {
  auto r = ok();
  auto* list = r.mutable_firmware_list();
  for (const auto& fw : x.items)
    *list->add_firmwares() = to_proto(fw);
  list->set_next_page_token(x.next_page_token);
  return r;
}

v1::TaskForecast to_proto(const task_forecast& x) {
  v1::TaskForecast out;
  out.set_pushes_last_minute(x.pushes_last_minute);
  out.set_allowed_per_minute(x.allowed_per_minute);
  out.set_ramp_stage(x.ramp_stage);
  out.set_ramp_at_max(x.ramp_at_max);
  out.set_window_open(x.window_open);
  out.set_next_window_edge_ms(x.next_window_edge_ms);
  out.set_retries_waiting(x.retries_waiting);
  out.set_next_retry_ms(x.next_retry_ms);
  out.set_queued(x.queued);
  out.set_queued_online(x.queued_online);
  out.set_online_share(x.online_share);
  out.set_eta_ms(x.eta_ms);
  out.set_eta_known(x.eta_known);
  out.set_online_eta_ms(x.online_eta_ms);
  out.set_idle_reason(static_cast<v1::IdleReason>(x.idle));
  out.set_idle_text(x.idle_text);
  return out;
}

v1::TaskPreview to_proto(const task_preview& x) {
  v1::TaskPreview out;
  out.set_devices(x.devices);
  for (const auto& v : x.versions) {
    auto* c = out.add_versions();
    c->set_version(v.version);
    c->set_devices(v.devices);
  }
  out.set_online(x.online);
  out.set_offline(x.offline);
  out.set_busy(x.busy);
  for (const auto& t : x.busy_tasks) {
    auto* c = out.add_busy_tasks();
    c->set_task_id(t.task.value());
    c->set_devices(t.devices);
  }
  out.set_busy_tasks_unlisted(x.busy_tasks_unlisted);
  out.set_enrolled(x.enrolled);
  out.set_skipped(x.skipped);
  out.set_on_target_version(x.on_target_version);
  *out.mutable_forecast() = to_proto(x.forecast);
  return out;
}

v1::Response to_response(const task_preview& x) {
  auto r = ok();
  *r.mutable_preview() = to_proto(x);
  return r;
}

v1::Response to_response(const task_summary& x) {
  auto r = ok();
  *r.mutable_task() = to_proto(x);
  if (x.has_forecast)
    *r.mutable_forecast() = to_proto(x.forecast);
  return r;
}

v1::Response to_response(const task_page& x) {
  auto r = ok();
  auto* list = r.mutable_task_list();
  for (const auto& t : x.items)
    *list->add_tasks() = to_proto(t);
  list->set_next_page_token(x.next_page_token);
  return r;
}

v1::Response to_response(const task_details& x) {
  auto r = ok();
  auto* d = r.mutable_task_details();
  *d->mutable_summary() = to_proto(x.summary);
  for (const auto& e : x.executions)
    *d->add_executions() = to_proto(e);
  for (const auto& s : x.skipped) {
    auto* out = d->add_skipped();
    out->set_device_key(s.device_key);
    out->set_reason(s.reason);
  }
  d->set_next_page_token(x.next_page_token);
  return r;
}

v1::Response to_response(const device_state& x) {
  auto r = ok();
  *r.mutable_device() = to_proto(x);
  return r;
}

v1::Response to_response(const device_page& x) {
  auto r = ok();
  auto* list = r.mutable_device_list();
  for (const auto& d : x.items)
    *list->add_devices() = to_proto(d);
  list->set_next_page_token(x.next_page_token);
  return r;
}

v1::Response to_response(const history_page& x) {
  auto r = ok();
  auto* h = r.mutable_history();
  h->mutable_entries()->Reserve(static_cast<int>(x.entries.size()));
  for (const auto& e : x.entries) {
    auto* out = h->add_entries();
    out->set_sequence(e.sequence.value());
    out->set_time_ms(e.time_ms);
    out->set_kind(e.kind);
    out->set_text(e.text);
    out->set_task_id(e.task);
    out->set_execution_sequence(e.execution);
    out->set_device_key(e.device_key);
    out->set_attempt(e.attempt);
    out->set_step(e.step);
    out->set_version(e.version);
    out->set_code(e.code);
    out->set_device_count(e.device_count);
  }
  h->set_next_page_token(x.next_page_token);
  if (x.has_state) {
    h->set_at_ms(x.at_ms);
    h->set_existed(x.existed);
    if (x.existed && x.has_task)
      *h->mutable_task() = to_proto(x.task);
    else if (x.existed)
      *h->mutable_device() = to_proto(x.device);
  }
  return r;
}

v1::Response to_response(const registration_results& x, bool with_devices) {
  auto r = ok();
  auto* out = r.mutable_registered();
  out->mutable_results()->Reserve(static_cast<int>(x.size()));
  uint32_t failed = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    auto* item = out->add_results();
    item->set_index(static_cast<uint32_t>(i));
    const auto& err = x[i].error;
    if (err.code != errc::none) {
      ++failed;
      item->set_status(to_status(err.code));
      item->set_message("devices[" + std::to_string(i) + "]: " + err.message);
      continue;
    }
    item->set_status(v1::STATUS_CODE_OK);
    if (!with_devices)
      continue;
    auto* d = item->mutable_device();
    const auto& dev = x[i].device;
    d->set_product_key(dev.product);
    d->set_device_key(dev.key);
    d->set_version(dev.version);
    d->set_online(dev.online);
    d->set_active_execution_id(dev.active_execution.value());
    d->set_registered_at_ms(dev.registered_at_ms);
    d->set_gateway(dev.gateway);
  }
  out->set_failed(failed);
  return r;
}

v1::Response to_response(const asset_tree& x) {
  auto r = ok();
  *r.mutable_asset_tree() = to_proto(x);
  return r;
}

v1::Response to_response(const asset_tree_page& x) {
  auto r = ok();
  auto* list = r.mutable_asset_tree_list();
  for (const auto& t : x.items)
    *list->add_trees() = to_proto(t);
  list->set_next_page_token(x.next_page_token);
  return r;
}

v1::Response to_response(const upgrade_offer& x) {
  auto r = ok();
  *r.mutable_offer() = to_proto(x);
  return r;
}

v1::Response to_response(const state_digest& x) {
  auto r = ok();
  auto* d = r.mutable_state_digest();
  d->set_sha256(x.sha256);
  d->set_devices(x.devices);
  d->set_tasks(x.tasks);
  d->set_executions(x.executions);
  d->set_firmware(x.firmware);
  d->set_last_sequence(x.last_sequence.value());
  return r;
}

v1::Response to_response(const accepted&) {
  return ok();
}

} // namespace fota
