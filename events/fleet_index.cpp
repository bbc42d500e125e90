#include "events/fleet_index.hpp"

#include <algorithm>
#include <initializer_list>
#include <string_view>

namespace fota {

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
                  fleet_index::ordinal x, bool insert) {
  for (const auto& [k, v] : xs) {
    auto key = join_key({product, k, v});
    if (insert) {
      index[key].insert(x);
    } else if (auto i = index.find(key); i != index.end()) {
      i->second.erase(x);
      if (i->second.empty())
        index.erase(i);
    }
  }
}

template <class Map>
const typename Map::mapped_type* lookup(const Map& index,
                                        const std::string& key) {
  auto i = index.find(key);
  return i == index.end() ? nullptr : &i->second;
}

} // namespace

fleet_index::ordinal fleet_index::add(const device_state& d) {
  auto x = static_cast<ordinal>(devices_.size());
  devices_.push_back(entry{d.product, d.key, d.version, d.tags, d.attributes});
  directory_.emplace(join_key({d.product, d.key}), x);
  by_version_[join_key({d.product, d.version})].insert(x);
  index_labels(by_tag_, d.product, d.tags, x, true);
  index_labels(by_attribute_, d.product, d.attributes, x, true);
  return x;
}

void fleet_index::update(ordinal x, const device_state& d) {
  auto& e = devices_[x];
  if (e.version != d.version) {
    auto old = by_version_.find(join_key({e.product, e.version}));
    if (old != by_version_.end()) {
      old->second.erase(x);
      if (old->second.empty())
        by_version_.erase(old);
    }
    e.version = d.version;
    by_version_[join_key({e.product, e.version})].insert(x);
  }
  if (d.tags != e.tags) {
    index_labels(by_tag_, e.product, e.tags, x, false);
    e.tags = d.tags;
    index_labels(by_tag_, e.product, e.tags, x, true);
  }
  if (d.attributes != e.attributes) {
    index_labels(by_attribute_, e.product, e.attributes, x, false);
    e.attributes = d.attributes;
    index_labels(by_attribute_, e.product, e.attributes, x, true);
  }
}

std::optional<fleet_index::ordinal>
fleet_index::find(const std::string& product, const std::string& key) const {
  auto i = directory_.find(join_key({product, key}));
  if (i == directory_.end())
    return std::nullopt;
  return i->second;
}

template <class Candidate>
expected<std::vector<fleet_index::ordinal>>
fleet_index::select_where(const task_spec& spec, const tree_catalog& trees,
                          std::unordered_set<std::string>& named,
                          const std::vector<std::string>& versions,
                          Candidate candidate) const {
  const auto& p = spec.product;
  const auto& scope = spec.scope;
  std::vector<ordinal> out;
  auto take = [&](const ordinals* xs) {
    if (xs != nullptr)
      for (auto x : *xs)
        if (candidate(x))
          out.push_back(x);
  };
  if (scope.kind == v1::SCOPE_KIND_ALL) {
    for (const auto& v : versions)
      take(lookup(by_version_, join_key({p, v})));
  } else if (scope.has(task_scope::tag_filter)) {
    take(lookup(by_tag_, join_key({p, scope.tag_key, scope.tag_value})));
  } else if (scope.has(task_scope::attribute_filter)) {
    take(lookup(by_attribute_,
                join_key({p, scope.attribute_name, scope.attribute_value})));
  } else if (scope.has(task_scope::device_keys_filter)) {
    for (const auto& k : scope.device_keys) {
      auto x = find(p, k);
      if (!x)
        return make_failure(errc::invalid_argument,
                            "scope.device_keys: device " + k +
                                " is not registered for product " + p);
      named.insert(k);
      if (candidate(*x))
        out.push_back(*x);
    }
  } else if (scope.has(task_scope::asset_trees_filter)) {
    for (const auto& sel : scope.trees) {
      auto t = trees.find({p, sel.tree});
      if (t == trees.end())
        return make_failure(errc::invalid_argument,
                            "scope.asset_trees: tree " + sel.tree +
                                " does not exist for product " + p);
      auto devices = selected_devices(t->second, sel.nodes);
      if (!devices)
        return std::move(devices).error();
      for (const auto& k : *devices) {
        named.insert(k);
        if (auto x = find(p, k); x && candidate(*x))
          out.push_back(*x);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

expected<std::vector<fleet_index::ordinal>>
fleet_index::select(const task_spec& spec, const tree_catalog& trees,
                    std::unordered_set<std::string>& named) const {
  if (spec.scope.kind == v1::SCOPE_KIND_ALL && spec.source_versions.empty())
    return make_failure(errc::invalid_argument,
                        "source_versions: must name at least one version");
  return select_where(spec, trees, named, spec.source_versions, [&](ordinal x) {
    return spec.upgrades_from(devices_[x].version);
  });
}

expected<std::vector<fleet_index::ordinal>>
fleet_index::select_on_version(const task_spec& spec, const tree_catalog& trees,
                               const std::string& version) const {
  std::unordered_set<std::string> named;
  return select_where(spec, trees, named, {version}, [&](ordinal x) {
    return devices_[x].version == version;
  });
}

bool in_scope(const task_spec& spec,
              const std::unordered_set<std::string>& named,
              const fleet_index::entry& e) {
  if (e.product != spec.product || !spec.upgrades_from(e.version))
    return false;
  const auto& scope = spec.scope;
  if (scope.kind == v1::SCOPE_KIND_ALL)
    return true;
  if (scope.has(task_scope::tag_filter)) {
    const auto* v = find_label(e.tags, scope.tag_key);
    return v != nullptr && *v == scope.tag_value;
  }
  if (scope.has(task_scope::attribute_filter)) {
    const auto* v = find_label(e.attributes, scope.attribute_name);
    return v != nullptr && *v == scope.attribute_value;
  }
  return named.count(e.key) > 0;
}

} // namespace fota
