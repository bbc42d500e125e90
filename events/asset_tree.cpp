#include "events/asset_tree.hpp"

#include "events/codec.hpp"

#include <set>
#include <unordered_map>

namespace fota {

namespace {

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

} // namespace

status validate_tree(const asset_tree& tree) {
  if (tree.product.empty())
    return invalid("tree.product_key", "must not be empty");
  if (tree.id.empty())
    return invalid("tree.tree_id", "must not be empty");
  if (tree.nodes.empty())
    return invalid("tree.nodes", "must hold at least the root");
  std::unordered_map<std::string, std::string> parent_of;
  std::set<std::string> devices;
  int roots = 0;
  for (const auto& n : tree.nodes) {
    if (n.id.empty())
      return invalid("tree.nodes", "a node has no node_id");
    if (!parent_of.emplace(n.id, n.parent).second)
      return invalid("tree.nodes", "node " + n.id + " appears twice");
    if (n.parent.empty())
      ++roots;
    if (!n.device_key.empty() && !devices.insert(n.device_key).second)
      return invalid("tree.nodes",
                     "device " + n.device_key + " is placed twice in the tree");
  }
  if (roots != 1)
    return invalid("tree.nodes", "must have exactly one root, found " +
                                     std::to_string(roots));
  for (const auto& [id, parent] : parent_of) {
    if (!parent.empty() && parent_of.count(parent) == 0)
      return invalid("tree.nodes",
                     "node " + id + " has unknown parent " + parent);
    // Walk up; more steps than nodes means a cycle.
    auto cur = id;
    size_t steps = 0;
    while (!parent_of[cur].empty()) {
      cur = parent_of[cur];
      if (++steps > parent_of.size())
        return invalid("tree.nodes", "node " + id + " is part of a cycle");
    }
  }
  return std::nullopt;
}

expected<std::vector<std::string>>
selected_devices(const asset_tree& tree,
                 const std::vector<std::string>& nodes) {
  std::unordered_map<std::string, const asset_node*> by_id;
  std::string root;
  for (const auto& n : tree.nodes) {
    by_id.emplace(n.id, &n);
    if (n.parent.empty())
      root = n.id;
  }
  std::vector<std::string> out;
  auto field = "scope.asset_trees[" + tree.id + "].node_ids";
  for (const auto& id : nodes) {
    auto i = by_id.find(id);
    if (i == by_id.end())
      return invalid(field,
                     "node " + id + " does not exist in tree " + tree.id);
    const auto& n = *i->second;
    if (n.id != root && n.parent != root)
      return invalid(field, "node " + id +
                                " is neither the root nor a child of the "
                                "root; target deeper devices by device key");
    if (!n.device_key.empty())
      out.push_back(n.device_key);
  }
  return out;
}

expected<event_list> decide(const tree_catalog& trees,
                            const create_asset_tree& cmd, timestamp now) {
  if (auto err = validate_tree(cmd.tree))
    return std::move(*err);
  const auto& t = cmd.tree;
  if (trees.count({t.product, t.id}) > 0)
    return make_failure(errc::already_exists, "asset tree " + t.product + "/" +
                                                  t.id + " already exists");
  auto e = make_event(tree_stream(t.product, t.id), now);
  *e.mutable_asset_tree_created()->mutable_tree() = to_proto(t);
  return event_list{std::move(e)};
}

expected<event_list> decide(const tree_catalog& trees,
                            const delete_asset_tree& cmd, timestamp now) {
  if (trees.count({cmd.product, cmd.tree}) == 0)
    return make_failure(errc::not_found, "asset tree " + cmd.product + "/" +
                                             cmd.tree + " does not exist");
  auto e = make_event(tree_stream(cmd.product, cmd.tree), now);
  e.mutable_asset_tree_deleted()->set_product_key(cmd.product);
  e.mutable_asset_tree_deleted()->set_tree_id(cmd.tree);
  return event_list{std::move(e)};
}

status apply(tree_catalog& trees, const event& e) {
  if (e.has_asset_tree_created()) {
    auto t = from_proto(e.asset_tree_created().tree());
    auto key = std::make_pair(t.product, t.id);
    if (!trees.emplace(std::move(key), std::move(t)).second)
      return make_failure(errc::corrupted,
                          "asset tree " +
                              e.asset_tree_created().tree().product_key() +
                              "/" + e.asset_tree_created().tree().tree_id() +
                              " is created a second time");
    return std::nullopt;
  }
  if (e.has_asset_tree_deleted()) {
    const auto& x = e.asset_tree_deleted();
    if (trees.erase({x.product_key(), x.tree_id()}) == 0)
      return make_failure(errc::corrupted, "asset tree " + x.product_key() +
                                               "/" + x.tree_id() +
                                               " does not exist");
    return std::nullopt;
  }
  return make_failure(errc::corrupted, "not an asset tree event");
}

} // namespace fota
