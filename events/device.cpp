#include "events/device.hpp"

#include "events/gateway.hpp"

#include <algorithm>

namespace fota {

namespace {

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

status check_text(const std::string& field, const std::string& x,
                  bool may_be_empty = false) {
  if (x.empty() && !may_be_empty)
    return invalid(field, "must not be empty");
  if (x.size() > max_key_length)
    return invalid(field, "is longer than " + std::to_string(max_key_length) +
                              " characters");
  return std::nullopt;
}

status check_labels(const std::string& field, const label_map& xs) {
  for (const auto& [k, v] : xs) {
    if (auto err = check_text(field + " key", k))
      return err;
    if (auto err = check_text(field + "[" + k + "]", v, true))
      return err;
  }
  return std::nullopt;
}

/// The non-empty labels of `xs`, sorted.
label_map without_removals(const label_map& xs) {
  label_map out;
  for (const auto& [k, v] : xs)
    if (!v.empty())
      set_label(out, k, v);
  return out;
}

template <class Map>
label_map to_labels(const Map& xs) {
  label_map out;
  for (const auto& [k, v] : xs)
    if (!v.empty())
      out.emplace_back(k, v);
  std::sort(out.begin(), out.end());
  return out;
}

bool changes(const label_map& current, const label_map& update) {
  for (const auto& [k, v] : update) {
    const auto* old = find_label(current, k);
    if (v.empty() ? old != nullptr : (old == nullptr || *old != v))
      return true;
  }
  return false;
}

template <class Map>
void set_labels(Map& out, const label_map& xs) {
  for (const auto& [k, v] : xs)
    out[k] = v;
}

event device_event(const device_state& d, timestamp now) {
  return make_event(device_stream(d.product, d.key), now);
}

/// Fills the product and device key of any device event.
template <class Event>
Event* with_ref(Event* x, const device_state& d) {
  x->set_product_key(d.product);
  x->set_device_key(d.key);
  return x;
}

} // namespace

std::string device_name(const std::string& product, const std::string& key) {
  return "device " + product + "/" + key;
}

const std::string* find_label(const label_map& xs, const std::string& key) {
  auto i = std::lower_bound(
      xs.begin(), xs.end(), key,
      [](const auto& x, const std::string& k) { return x.first < k; });
  return i != xs.end() && i->first == key ? &i->second : nullptr;
}

void set_label(label_map& xs, const std::string& key,
               const std::string& value) {
  auto i = std::lower_bound(
      xs.begin(), xs.end(), key,
      [](const auto& x, const std::string& k) { return x.first < k; });
  bool found = i != xs.end() && i->first == key;
  if (value.empty()) {
    if (found)
      xs.erase(i);
  } else if (found) {
    i->second = value;
  } else {
    xs.emplace(i, key, value);
  }
}

// -- the busy claim -----------------------------------------------------------

execution_id enrolling_claim(task_id task) {
  return execution_id{task, execution_seq{0}};
}

bool is_enrolling_claim(execution_id x) noexcept {
  return x && x.sequence().value() == 0;
}

status decide_claim(const device_state& d, execution_id claimant) {
  if (!d.active_execution || d.active_execution == claimant)
    return std::nullopt;
  // A task that claimed the device while enrolling it now binds the
  // execution it enrolled it with.
  if (is_enrolling_claim(d.active_execution) &&
      d.active_execution.task() == claimant.task())
    return std::nullopt;
  return make_failure(errc::device_busy, busy_reason(d));
}

std::string busy_reason(const device_state& d) {
  const auto& x = d.active_execution;
  if (is_enrolling_claim(x))
    return "device " + d.key + " is busy: being enrolled in task " +
           std::to_string(x.task().value());
  return "device " + d.key + " is busy in execution " + x.to_string();
}

// -- decide ------------------------------------------------------------------

status validate_device_ref(const std::string& product,
                           const std::string& device) {
  if (auto err = check_text("product_key", product))
    return err;
  return check_text("device_key", device);
}

expected<event_list> decide(const device_state* existing,
                            const register_device& cmd, timestamp now) {
  if (auto err = validate_device_ref(cmd.product, cmd.device))
    return std::move(*err);
  if (auto err = check_text("version", cmd.version))
    return std::move(*err);
  if (auto err = check_labels("tags", cmd.tags))
    return std::move(*err);
  if (auto err = check_labels("attributes", cmd.attributes))
    return std::move(*err);
  event_list out;
  if (existing == nullptr) {
    auto e = make_event(device_stream(cmd.product, cmd.device), now);
    auto* x = e.mutable_device_registered();
    x->set_product_key(cmd.product);
    x->set_device_key(cmd.device);
    x->set_version(cmd.version);
    set_labels(*x->mutable_tags(), without_removals(cmd.tags));
    set_labels(*x->mutable_attributes(), without_removals(cmd.attributes));
    x->set_gateway(cmd.gateway);
    out.push_back(std::move(e));
    return out;
  }
  if (auto err = check_owner(*existing, cmd.gateway))
    return std::move(*err);
  if (existing->gateway.empty() && !cmd.gateway.empty()) {
    // A device without an owner belongs to the first named gateway that
    // registers it.
    auto e = device_event(*existing, now);
    with_ref(e.mutable_device_gateway_changed(), *existing)
        ->set_gateway(cmd.gateway);
    out.push_back(std::move(e));
  }
  if (existing->version != cmd.version) {
    auto e = device_event(*existing, now);
    with_ref(e.mutable_device_version_reported(), *existing)
        ->set_version(cmd.version);
    out.push_back(std::move(e));
  }
  if (changes(existing->tags, cmd.tags)) {
    auto e = device_event(*existing, now);
    set_labels(
        *with_ref(e.mutable_device_tags_changed(), *existing)->mutable_tags(),
        cmd.tags);
    out.push_back(std::move(e));
  }
  if (changes(existing->attributes, cmd.attributes)) {
    auto e = device_event(*existing, now);
    set_labels(*with_ref(e.mutable_device_attributes_changed(), *existing)
                    ->mutable_attributes(),
               cmd.attributes);
    out.push_back(std::move(e));
  }
  return out;
}

expected<event_list> decide(const device_state& state,
                            const report_version& cmd, timestamp now) {
  if (auto err = check_owner(state, cmd.gateway))
    return std::move(*err);
  if (auto err = check_text("version", cmd.version))
    return std::move(*err);
  event_list out;
  if (state.version == cmd.version)
    return out;
  auto e = device_event(state, now);
  with_ref(e.mutable_device_version_reported(), state)
      ->set_version(cmd.version);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state, const device_online& cmd,
                            timestamp) {
  if (auto err = check_owner(state, cmd.gateway))
    return std::move(*err);
  // Online state is volatile: a restart ends every session, so nothing
  // about it is worth an event (docs/events.md).
  return event_list{};
}

expected<event_list> decide(const device_state& state,
                            const device_offline& cmd, timestamp) {
  if (auto err = check_owner(state, cmd.gateway))
    return std::move(*err);
  return event_list{};
}

expected<event_list> decide(const device_state& state,
                            const set_device_tags& cmd, timestamp now) {
  if (cmd.tags.empty())
    return invalid("tags", "must name at least one tag");
  if (auto err = check_labels("tags", cmd.tags))
    return std::move(*err);
  event_list out;
  if (!changes(state.tags, cmd.tags))
    return out;
  auto e = device_event(state, now);
  set_labels(*with_ref(e.mutable_device_tags_changed(), state)->mutable_tags(),
             cmd.tags);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state,
                            const set_device_attributes& cmd, timestamp now) {
  if (cmd.attributes.empty())
    return invalid("attributes", "must name at least one attribute");
  if (auto err = check_labels("attributes", cmd.attributes))
    return std::move(*err);
  event_list out;
  if (!changes(state.attributes, cmd.attributes))
    return out;
  auto e = device_event(state, now);
  set_labels(*with_ref(e.mutable_device_attributes_changed(), state)
                  ->mutable_attributes(),
             cmd.attributes);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state, const move_device& cmd,
                            timestamp now) {
  if (auto err = check_text("gateway", cmd.gateway))
    return std::move(*err);
  event_list out;
  if (state.gateway == cmd.gateway)
    return out;
  auto e = device_event(state, now);
  auto* x = with_ref(e.mutable_device_gateway_changed(), state);
  x->set_gateway(cmd.gateway);
  x->set_previous_gateway(state.gateway);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> within(const device_state& state,
                            expected<event_list> decided,
                            const device_quota& quota) {
  if (!decided || decided->empty())
    return decided;
  auto after = state;
  for (const auto& e : *decided)
    if (auto err = apply(after, e))
      return std::move(*err);
  if (auto err = check_labels(after, quota))
    return std::move(*err);
  return decided;
}

// -- apply -------------------------------------------------------------------

device_state make_device(const event& registered) {
  const auto& x = registered.device_registered();
  device_state d;
  d.product = x.product_key();
  d.key = x.device_key();
  d.version = x.version();
  d.tags = to_labels(x.tags());
  d.attributes = to_labels(x.attributes());
  d.registered_at_ms = registered.time_ms();
  d.gateway = x.gateway();
  return d;
}

status apply(device_state& state, const event& e) {
  switch (e.payload_case()) {
  case event::kDeviceRegistered:
    if (!state.key.empty())
      return make_failure(errc::corrupted,
                          device_name(state.product, state.key) +
                              " is registered a second time");
    state = make_device(e);
    return std::nullopt;
  case event::kDeviceVersionReported:
    state.version = e.device_version_reported().version();
    return std::nullopt;
  case event::kDeviceConnected:
    // Written by versions before online state became volatile; a restart
    // ends every session anyway.
    state.online = true;
    return std::nullopt;
  case event::kDeviceDisconnected:
    state.online = false;
    return std::nullopt;
  case event::kExecutionSucceeded: {
    // The success of the execution holding the device, which its version
    // report completed: the report's version is recorded here.
    const auto& v = e.execution_succeeded().device_version();
    if (v.empty() || v.size() > max_key_length)
      return make_failure(errc::corrupted,
                          "a success records no valid version for " +
                              device_name(state.product, state.key));
    state.version = v;
    return std::nullopt;
  }
  case event::kDeviceTagsChanged:
    for (const auto& [k, v] : e.device_tags_changed().tags())
      set_label(state.tags, k, v);
    return std::nullopt;
  case event::kDeviceAttributesChanged:
    for (const auto& [k, v] : e.device_attributes_changed().attributes())
      set_label(state.attributes, k, v);
    return std::nullopt;
  case event::kDeviceGatewayChanged:
    state.gateway = e.device_gateway_changed().gateway();
    return std::nullopt;
  default:
    return make_failure(errc::corrupted, "not a device event");
  }
}

} // namespace fota
