#include "events/device.hpp"

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

template <class Map>
status check_labels(const std::string& field, const Map& xs) {
  for (const auto& [k, v] : xs) {
    if (auto err = check_text(field + " key", k))
      return err;
    if (auto err = check_text(field + "[" + k + "]", v, true))
      return err;
  }
  return std::nullopt;
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

template <class Map>
bool changes(const label_map& current, const Map& update) {
  for (const auto& [k, v] : update) {
    const auto* old = find_label(current, k);
    if (v.empty() ? old != nullptr : (old == nullptr || *old != v))
      return true;
  }
  return false;
}

event device_event(const device_state& d, timestamp now) {
  return make_event(device_stream(d.product, d.key), now);
}

} // namespace

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

v1::Device device_state::to_proto() const {
  v1::Device d;
  d.set_product_key(product);
  d.set_device_key(key);
  d.set_version(version);
  d.set_online(online);
  for (const auto& [k, v] : tags)
    (*d.mutable_tags())[k] = v;
  for (const auto& [k, v] : attributes)
    (*d.mutable_attributes())[k] = v;
  d.set_active_execution_id(active_execution);
  d.set_registered_at_ms(registered_at_ms);
  return d;
}

status validate_device_ref(const std::string& product,
                           const std::string& device) {
  if (auto err = check_text("product_key", product))
    return err;
  return check_text("device_key", device);
}

expected<event_list> decide(const device_state* existing,
                            const v1::RegisterDevice& cmd, timestamp now) {
  if (auto err = validate_device_ref(cmd.product_key(), cmd.device_key()))
    return std::move(*err);
  if (auto err = check_text("version", cmd.version()))
    return std::move(*err);
  if (auto err = check_labels("tags", cmd.tags()))
    return std::move(*err);
  if (auto err = check_labels("attributes", cmd.attributes()))
    return std::move(*err);
  event_list out;
  if (existing == nullptr) {
    auto e =
        make_event(device_stream(cmd.product_key(), cmd.device_key()), now);
    auto* x = e.mutable_device_registered();
    x->set_product_key(cmd.product_key());
    x->set_device_key(cmd.device_key());
    x->set_version(cmd.version());
    for (const auto& [k, v] : cmd.tags())
      if (!v.empty())
        (*x->mutable_tags())[k] = v;
    for (const auto& [k, v] : cmd.attributes())
      if (!v.empty())
        (*x->mutable_attributes())[k] = v;
    out.push_back(std::move(e));
    return out;
  }
  if (existing->version != cmd.version()) {
    auto e = device_event(*existing, now);
    auto* x = e.mutable_device_version_reported();
    x->set_product_key(cmd.product_key());
    x->set_device_key(cmd.device_key());
    x->set_version(cmd.version());
    out.push_back(std::move(e));
  }
  if (changes(existing->tags, cmd.tags())) {
    auto e = device_event(*existing, now);
    auto* x = e.mutable_device_tags_changed();
    x->set_product_key(cmd.product_key());
    x->set_device_key(cmd.device_key());
    *x->mutable_tags() = cmd.tags();
    out.push_back(std::move(e));
  }
  if (changes(existing->attributes, cmd.attributes())) {
    auto e = device_event(*existing, now);
    auto* x = e.mutable_device_attributes_changed();
    x->set_product_key(cmd.product_key());
    x->set_device_key(cmd.device_key());
    *x->mutable_attributes() = cmd.attributes();
    out.push_back(std::move(e));
  }
  return out;
}

expected<event_list> decide(const device_state& state,
                            const v1::ReportVersion& cmd, timestamp now) {
  if (auto err = check_text("version", cmd.version()))
    return std::move(*err);
  event_list out;
  if (state.version == cmd.version())
    return out;
  auto e = device_event(state, now);
  auto* x = e.mutable_device_version_reported();
  x->set_product_key(state.product);
  x->set_device_key(state.key);
  x->set_version(cmd.version());
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state, const v1::DeviceOnline&,
                            timestamp now) {
  event_list out;
  if (state.online)
    return out;
  auto e = device_event(state, now);
  auto* x = e.mutable_device_connected();
  x->set_product_key(state.product);
  x->set_device_key(state.key);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state, const v1::DeviceOffline&,
                            timestamp now) {
  event_list out;
  if (!state.online)
    return out;
  auto e = device_event(state, now);
  auto* x = e.mutable_device_disconnected();
  x->set_product_key(state.product);
  x->set_device_key(state.key);
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state,
                            const v1::SetDeviceTags& cmd, timestamp now) {
  if (cmd.tags().empty())
    return invalid("tags", "must name at least one tag");
  if (auto err = check_labels("tags", cmd.tags()))
    return std::move(*err);
  event_list out;
  if (!changes(state.tags, cmd.tags()))
    return out;
  auto e = device_event(state, now);
  auto* x = e.mutable_device_tags_changed();
  x->set_product_key(state.product);
  x->set_device_key(state.key);
  *x->mutable_tags() = cmd.tags();
  out.push_back(std::move(e));
  return out;
}

expected<event_list> decide(const device_state& state,
                            const v1::SetDeviceAttributes& cmd, timestamp now) {
  if (cmd.attributes().empty())
    return invalid("attributes", "must name at least one attribute");
  if (auto err = check_labels("attributes", cmd.attributes()))
    return std::move(*err);
  event_list out;
  if (!changes(state.attributes, cmd.attributes()))
    return out;
  auto e = device_event(state, now);
  auto* x = e.mutable_device_attributes_changed();
  x->set_product_key(state.product);
  x->set_device_key(state.key);
  *x->mutable_attributes() = cmd.attributes();
  out.push_back(std::move(e));
  return out;
}

device_state make_device(const event& registered) {
  const auto& x = registered.device_registered();
  device_state d;
  d.product = x.product_key();
  d.key = x.device_key();
  d.version = x.version();
  d.tags = to_labels(x.tags());
  d.attributes = to_labels(x.attributes());
  d.registered_at_ms = registered.time_ms();
  return d;
}

void apply(device_state& state, const event& e) {
  switch (e.payload_case()) {
  case event::kDeviceRegistered:
    state = make_device(e);
    break;
  case event::kDeviceVersionReported:
    state.version = e.device_version_reported().version();
    break;
  case event::kDeviceConnected:
    state.online = true;
    break;
  case event::kDeviceDisconnected:
    state.online = false;
    break;
  case event::kDeviceTagsChanged:
    for (const auto& [k, v] : e.device_tags_changed().tags())
      set_label(state.tags, k, v);
    break;
  case event::kDeviceAttributesChanged:
    for (const auto& [k, v] : e.device_attributes_changed().attributes())
      set_label(state.attributes, k, v);
    break;
  default:
    break;
  }
}

} // namespace fota
