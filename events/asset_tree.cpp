#include "events/asset_tree.hpp"

#include <set>
#include <unordered_map>

namespace fota {

namespace {

failure invalid(const std::string& field, const std::string& what) {
  return make_failure(errc::invalid_argument, field + ": " + what);
}

} // namespace

status validate_tree(const v1::AssetTree& tree) {
  if (tree.product_key().empty())
    return invalid("tree.product_key", "must not be empty");
  if (tree.tree_id().empty())
    return invalid("tree.tree_id", "must not be empty");
  if (tree.nodes().empty())
    return invalid("tree.nodes", "must hold at least the root");
  std::unordered_map<std::string, std::string> parent_of;
  std::set<std::string> devices;
  int roots = 0;
  for (const auto& n : tree.nodes()) {
    if (n.node_id().empty())
      return invalid("tree.nodes", "a node has no node_id");
    if (!parent_of.emplace(n.node_id(), n.parent_id()).second)
      return invalid("tree.nodes", "node " + n.node_id() + " appears twice");
    if (n.parent_id().empty())
      ++roots;
    if (!n.device_key().empty() && !devices.insert(n.device_key()).second)
      return invalid("tree.nodes", "device " + n.device_key() +
                                       " is placed twice in the tree");
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
selected_devices(const v1::AssetTree& tree,
                 const google::protobuf::RepeatedPtrField<std::string>& nodes) {
  std::unordered_map<std::string, const v1::AssetNode*> by_id;
  std::string root;
  for (const auto& n : tree.nodes()) {
    by_id.emplace(n.node_id(), &n);
    if (n.parent_id().empty())
      root = n.node_id();
  }
  std::vector<std::string> out;
  auto field = "scope.asset_trees[" + tree.tree_id() + "].node_ids";
  for (const auto& id : nodes) {
    auto i = by_id.find(id);
    if (i == by_id.end())
      return invalid(field, "node " + id + " does not exist in tree " +
                                tree.tree_id());
    const auto& n = *i->second;
    if (n.node_id() != root && n.parent_id() != root)
      return invalid(field, "node " + id +
                                " is neither the root nor a child of the "
                                "root; target deeper devices by device key");
    if (!n.device_key().empty())
      out.push_back(n.device_key());
  }
  return out;
}

expected<event_list> decide(const tree_catalog& trees,
                            const v1::CreateAssetTree& cmd, timestamp now) {
  if (auto err = validate_tree(cmd.tree()))
    return std::move(*err);
  const auto& t = cmd.tree();
  if (trees.count({t.product_key(), t.tree_id()}) > 0)
    return make_failure(errc::already_exists, "asset tree " + t.product_key() +
                                                  "/" + t.tree_id() +
                                                  " already exists");
  auto e = make_event(tree_stream(t.product_key(), t.tree_id()), now);
  *e.mutable_asset_tree_created()->mutable_tree() = t;
  return event_list{std::move(e)};
}

expected<event_list> decide(const tree_catalog& trees,
                            const v1::DeleteAssetTree& cmd, timestamp now) {
  if (trees.count({cmd.product_key(), cmd.tree_id()}) == 0)
    return make_failure(errc::not_found, "asset tree " + cmd.product_key() +
                                             "/" + cmd.tree_id() +
                                             " does not exist");
  auto e = make_event(tree_stream(cmd.product_key(), cmd.tree_id()), now);
  e.mutable_asset_tree_deleted()->set_product_key(cmd.product_key());
  e.mutable_asset_tree_deleted()->set_tree_id(cmd.tree_id());
  return event_list{std::move(e)};
}

void apply(tree_catalog& trees, const event& e) {
  if (e.has_asset_tree_created()) {
    const auto& t = e.asset_tree_created().tree();
    trees[{t.product_key(), t.tree_id()}] = t;
  } else if (e.has_asset_tree_deleted()) {
    trees.erase({e.asset_tree_deleted().product_key(),
                 e.asset_tree_deleted().tree_id()});
  }
}

} // namespace fota
