#include "actors/fleet.hpp"

#include "actors/device.hpp"
#include "events/replay.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/result.hpp>

namespace fota {

namespace {

using self_ptr = caf::stateful_actor<fleet_state>*;

constexpr uint32_t default_page_size = 100;
constexpr uint32_t max_page_size = 1000;

caf::error unknown_device(const std::string& product, const std::string& key) {
  return to_error(make_failure(
      errc::not_found, "device " + product + "/" + key + " is not registered"));
}

void offer_to_subscribers(self_ptr self, uint32_t ordinal);

caf::result<std::string> register_device(self_ptr self, const command& cmd) {
  auto& st = self->state;
  v1::RegisterDevice req;
  if (!parse_body(cmd, req))
    return to_error(
        make_failure(errc::invalid_argument, "RegisterDevice does not parse"));
  auto decided = decide(nullptr, req, st.ctx->now());
  if (!decided)
    return to_error(decided.error());
  auto device = make_device(decided->front());
  auto actor = self->spawn<caf::linked>(device_actor, st.ctx, device);
  auto ordinal = st.add(actor, device);
  offer_to_subscribers(self, ordinal);
  node_metrics::add(st.ctx->metrics->registrations);
  auto rp = self->make_response_promise();
  persist(self, *st.ctx, *decided, rp, [device](caf::response_promise& rp) {
    v1::Response r;
    *r.mutable_device() = device.to_proto();
    rp.deliver(ok_response(r));
  });
  return rp;
}

caf::result<std::string> list_devices(self_ptr self, const command& cmd) {
  auto& st = self->state;
  v1::ListDevices req;
  if (!parse_body(cmd, req))
    return to_error(
        make_failure(errc::invalid_argument, "ListDevices does not parse"));
  if (req.product_key().empty())
    return to_error(
        make_failure(errc::invalid_argument, "product_key: must not be empty"));
  auto size = req.page_size() == 0 ? default_page_size : req.page_size();
  if (size > max_page_size)
    return to_error(make_failure(errc::invalid_argument,
                                 "page_size: must be at most 1000"));
  uint64_t from = 0;
  if (!req.page_token().empty()) {
    try {
      from = std::stoull(req.page_token());
    } catch (const std::exception&) {
      return to_error(make_failure(errc::invalid_argument,
                                   "page_token: \"" + req.page_token() +
                                       "\" is not a page token"));
    }
  }
  std::vector<caf::actor> page;
  uint64_t next = 0;
  for (uint64_t i = from; i < st.devices.size(); ++i) {
    const auto& d = st.devices[i];
    if (d.product != req.product_key() ||
        (!req.version().empty() && d.version != req.version()))
      continue;
    if (page.size() == size) {
      next = i;
      break;
    }
    page.push_back(d.actor);
  }
  auto rp = self->make_response_promise<std::string>();
  struct collect {
    v1::Response response;
    std::vector<std::string> parts;
    size_t pending;
  };
  auto acc = std::make_shared<collect>();
  acc->parts.resize(page.size());
  acc->pending = page.size();
  if (next != 0)
    acc->response.mutable_device_list()->set_next_page_token(
        std::to_string(next));
  auto finish = [acc, rp]() mutable {
    auto* list = acc->response.mutable_device_list();
    for (auto& p : acc->parts)
      list->add_devices()->ParseFromString(p);
    rp.deliver(ok_response(acc->response));
  };
  if (page.empty()) {
    finish();
    return rp;
  }
  for (size_t i = 0; i < page.size(); ++i)
    self->request(page[i], caf::infinite, get_atom_v)
        .then(
            [acc, i, finish](std::string& bytes) mutable {
              acc->parts[i] = std::move(bytes);
              if (--acc->pending == 0)
                finish();
            },
            [acc, finish](caf::error&) mutable {
              if (--acc->pending == 0)
                finish();
            });
  return rp;
}

} // namespace

namespace {

std::string join_key(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) {
    if (!out.empty())
      out.push_back('\0');
    out.append(p);
  }
  return out;
}

template <class Map>
void index_labels(Map& index, const std::string& product, const label_map& xs,
                  uint32_t ordinal, bool insert) {
  for (const auto& [k, v] : xs) {
    auto key = join_key({product, k, v});
    if (insert) {
      index[key].insert(ordinal);
    } else if (auto i = index.find(key); i != index.end()) {
      i->second.erase(ordinal);
      if (i->second.empty())
        index.erase(i);
    }
  }
}

template <class Map>
label_map labels_of(const Map& xs) {
  label_map out(xs.begin(), xs.end());
  std::sort(out.begin(), out.end());
  return out;
}

bool has_source_version(const v1::TaskSpec& spec, const std::string& version) {
  if (spec.source_versions().empty())
    return true; // Verification runs take devices on any version.
  for (const auto& v : spec.source_versions())
    if (v == version)
      return true;
  return false;
}

/// Whether a device matches a subscription's scope.
bool matches(const fleet_state::subscription& sub,
             const fleet_state::entry& e) {
  const auto& spec = sub.spec;
  if (e.product != spec.product_key() || e.version == spec.target_version() ||
      !has_source_version(spec, e.version))
    return false;
  const auto& scope = spec.scope();
  if (scope.kind() == v1::SCOPE_KIND_ALL)
    return true;
  if (scope.has_tag()) {
    const auto* v = find_label(e.tags, scope.tag().key());
    return v != nullptr && *v == scope.tag().value();
  }
  if (scope.has_attribute()) {
    const auto* v = find_label(e.attributes, scope.attribute().name());
    return v != nullptr && *v == scope.attribute().value();
  }
  return sub.keys.count(e.key) > 0;
}

/// The devices in a task's scope in registration order; `keys` receives the
/// device keys named by a device-key or asset-tree filter.
expected<std::vector<uint32_t>> resolve(const fleet_state& st,
                                        const v1::TaskSpec& spec,
                                        std::unordered_set<std::string>& keys) {
  const auto& p = spec.product_key();
  const auto& scope = spec.scope();
  std::vector<uint32_t> out;
  auto on_source = [&](uint32_t o) {
    const auto& e = st.devices[o];
    return e.version != spec.target_version() &&
           has_source_version(spec, e.version);
  };
  auto take = [&](const fleet_state::ordinals* xs) {
    if (xs != nullptr)
      for (auto o : *xs)
        if (on_source(o))
          out.push_back(o);
  };
  auto lookup = [](const auto& index,
                   const std::string& key) -> const fleet_state::ordinals* {
    auto i = index.find(key);
    return i == index.end() ? nullptr : &i->second;
  };
  if (scope.kind() == v1::SCOPE_KIND_ALL) {
    if (spec.source_versions().empty())
      return make_failure(errc::invalid_argument,
                          "source_versions: must name at least one version");
    for (const auto& v : spec.source_versions())
      take(lookup(st.by_version, join_key({p, v})));
  } else if (scope.has_tag()) {
    take(lookup(st.by_tag,
                join_key({p, scope.tag().key(), scope.tag().value()})));
  } else if (scope.has_attribute()) {
    take(lookup(st.by_attribute, join_key({p, scope.attribute().name(),
                                           scope.attribute().value()})));
  } else if (scope.has_device_keys()) {
    for (const auto& k : scope.device_keys().device_keys()) {
      auto i = st.directory.find(device_ref(p, k));
      if (i == st.directory.end())
        return make_failure(errc::invalid_argument,
                            "scope.device_keys: device " + k +
                                " is not registered for product " + p);
      keys.insert(k);
      if (on_source(i->second))
        out.push_back(i->second);
    }
  } else if (scope.has_asset_trees()) {
    for (const auto& sel : scope.asset_trees().trees()) {
      auto t = st.trees.find({p, sel.tree_id()});
      if (t == st.trees.end())
        return make_failure(errc::invalid_argument,
                            "scope.asset_trees: tree " + sel.tree_id() +
                                " does not exist for product " + p);
      auto devices = selected_devices(t->second, sel.node_ids());
      if (!devices)
        return std::move(devices).error();
      for (const auto& k : *devices) {
        keys.insert(k);
        auto i = st.directory.find(device_ref(p, k));
        if (i != st.directory.end() && on_source(i->second))
          out.push_back(i->second);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

/// Offers a device that registered or reported a new version to the
/// increment tasks whose scope it matches.
void offer_to_subscribers(self_ptr self, uint32_t ordinal) {
  auto& st = self->state;
  const auto& e = st.devices[ordinal];
  for (const auto& sub : st.subscriptions)
    if (matches(sub, e))
      self->send(sub.task, join_atom_v, device_handle{e.key, e.actor});
}

caf::result<std::string> tree_command(self_ptr self, const command& cmd) {
  auto& st = self->state;
  auto now = st.ctx->now();
  auto commit = [&](expected<event_list> decided,
                    v1::Response reply) -> caf::result<std::string> {
    if (!decided)
      return to_error(decided.error());
    for (const auto& e : *decided)
      apply(st.trees, e);
    auto rp = self->make_response_promise();
    persist(self, *st.ctx, *decided, rp, [reply](caf::response_promise& rp) {
      rp.deliver(ok_response(reply));
    });
    return rp;
  };
  switch (cmd.kind) {
  case v1::ClientFrame::kCreateAssetTree: {
    v1::CreateAssetTree req;
    if (!parse_body(cmd, req))
      break;
    v1::Response r;
    *r.mutable_asset_tree() = req.tree();
    return commit(decide(st.trees, req, now), r);
  }
  case v1::ClientFrame::kDeleteAssetTree: {
    v1::DeleteAssetTree req;
    if (!parse_body(cmd, req))
      break;
    return commit(decide(st.trees, req, now), v1::Response{});
  }
  case v1::ClientFrame::kListAssetTrees: {
    v1::ListAssetTrees req;
    if (!parse_body(cmd, req))
      break;
    v1::Response r;
    auto* list = r.mutable_asset_tree_list();
    for (const auto& [key, tree] : st.trees)
      if (req.product_key().empty() || key.first == req.product_key())
        *list->add_trees() = tree;
    return ok_response(r);
  }
  default:
    break;
  }
  return to_error(
      make_failure(errc::invalid_argument, "request body does not parse"));
}

} // namespace

uint32_t fleet_state::add(caf::actor actor, const device_state& d) {
  auto ordinal = static_cast<uint32_t>(devices.size());
  devices.push_back(entry{d.product, d.key, d.version, d.tags, d.attributes,
                          std::move(actor)});
  directory.emplace(device_ref(d.product, d.key), ordinal);
  by_version[join_key({d.product, d.version})].insert(ordinal);
  index_labels(by_tag, d.product, d.tags, ordinal, true);
  index_labels(by_attribute, d.product, d.attributes, ordinal, true);
  return ordinal;
}

void fleet_state::update(uint32_t ordinal, const v1::Device& d) {
  auto& e = devices[ordinal];
  if (e.version != d.version()) {
    auto old = by_version.find(join_key({e.product, e.version}));
    if (old != by_version.end()) {
      old->second.erase(ordinal);
      if (old->second.empty())
        by_version.erase(old);
    }
    e.version = d.version();
    by_version[join_key({e.product, e.version})].insert(ordinal);
  }
  auto tags = labels_of(d.tags());
  if (tags != e.tags) {
    index_labels(by_tag, e.product, e.tags, ordinal, false);
    e.tags = std::move(tags);
    index_labels(by_tag, e.product, e.tags, ordinal, true);
  }
  auto attributes = labels_of(d.attributes());
  if (attributes != e.attributes) {
    index_labels(by_attribute, e.product, e.attributes, ordinal, false);
    e.attributes = std::move(attributes);
    index_labels(by_attribute, e.product, e.attributes, ordinal, true);
  }
}

const fleet_state::entry* fleet_state::find(const std::string& product,
                                            const std::string& key) const {
  auto i = directory.find(device_ref(product, key));
  return i == directory.end() ? nullptr : &devices[i->second];
}

caf::behavior
fleet_actor(self_ptr self, context_ptr ctx,
            std::vector<std::pair<device_state, caf::actor>> devices,
            tree_catalog trees) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.trees = std::move(trees);
  survive_children(self);
  ignore_stray_errors(self);
  st.devices.reserve(devices.size());
  for (auto& [d, actor] : devices) {
    self->link_to(actor);
    st.add(std::move(actor), d);
  }
  self->set_down_handler([=](const caf::down_msg& down) {
    auto& subs = self->state.subscriptions;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](const auto& s) {
                                return s.task.address() == down.source;
                              }),
               subs.end());
  });
  return {
      [=](command& cmd) -> caf::result<std::string> {
        auto& st = self->state;
        switch (cmd.kind) {
        case v1::ClientFrame::kListDevices:
          return list_devices(self, cmd);
        case v1::ClientFrame::kCreateAssetTree:
        case v1::ClientFrame::kDeleteAssetTree:
        case v1::ClientFrame::kListAssetTrees:
          return tree_command(self, cmd);
        default:
          break;
        }
        v1::DeviceRef ref;
        if (!ref.ParseFromString(cmd.body))
          return to_error(make_failure(errc::invalid_argument,
                                       "request body does not parse"));
        if (auto err = validate_device_ref(ref.product_key(), ref.device_key()))
          return to_error(*err);
        const auto* e = st.find(ref.product_key(), ref.device_key());
        if (e != nullptr)
          return forward(self, e->actor, std::move(cmd));
        if (cmd.kind == v1::ClientFrame::kRegisterDevice)
          return register_device(self, cmd);
        return unknown_device(ref.product_key(), ref.device_key());
      },
      [=](scope_atom, const std::string& spec_bytes,
          bool subscribe) -> caf::result<device_handles> {
        auto& st = self->state;
        v1::TaskSpec spec;
        if (!spec.ParseFromString(spec_bytes))
          return to_error(make_failure(errc::internal, "spec does not parse"));
        fleet_state::subscription sub;
        auto ordinals = resolve(st, spec, sub.keys);
        if (!ordinals)
          return to_error(ordinals.error());
        device_handles out;
        out.reserve(ordinals->size());
        for (auto o : *ordinals)
          out.push_back(device_handle{st.devices[o].key, st.devices[o].actor});
        if (subscribe) {
          sub.task = caf::actor_cast<caf::actor>(self->current_sender());
          sub.spec = std::move(spec);
          self->monitor(sub.task);
          st.subscriptions.push_back(std::move(sub));
        }
        return out;
      },
      [=](forget_atom) {
        auto& subs = self->state.subscriptions;
        auto sender = self->current_sender();
        subs.erase(std::remove_if(subs.begin(), subs.end(),
                                  [&](const auto& s) {
                                    return s.task.address() == sender;
                                  }),
                   subs.end());
      },
      [=](changed_atom, const std::string& device_bytes) {
        auto& st = self->state;
        v1::Device d;
        if (!d.ParseFromString(device_bytes))
          return;
        auto i = st.directory.find(device_ref(d.product_key(), d.device_key()));
        if (i == st.directory.end())
          return;
        bool new_version = st.devices[i->second].version != d.version();
        st.update(i->second, d);
        if (new_version)
          offer_to_subscribers(self, i->second);
      },
      [=](lookup_atom, const std::string& product,
          const std::string& key) -> caf::result<caf::actor> {
        if (const auto* e = self->state.find(product, key))
          return e->actor;
        return unknown_device(product, key);
      },
  };
}

} // namespace fota
