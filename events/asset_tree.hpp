/// Asset trees: trees of nodes, where a node may be a device. A task's
/// asset-tree filter selects nodes that are the root or direct children of
/// the root; the selected nodes that are devices are in scope.
#pragma once

#include "events/commands.hpp"
#include "events/error.hpp"
#include "events/event.hpp"
#include "events/values.hpp"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fota {

/// The asset trees of a node: (product, tree id) → tree.
using tree_catalog = std::map<std::pair<std::string, std::string>, asset_tree>;

/// Checks a tree: ids present and unique, exactly one root, every parent
/// exists, every node reaches the root, device keys unique.
status validate_tree(const asset_tree& tree);

/// The device keys of the selected nodes of `tree`. Every selected node must
/// exist and be the root or a direct child of the root.
expected<std::vector<std::string>>
selected_devices(const asset_tree& tree, const std::vector<std::string>& nodes);

expected<event_list> decide(const tree_catalog& trees,
                            const create_asset_tree& cmd, timestamp now);

expected<event_list> decide(const tree_catalog& trees,
                            const delete_asset_tree& cmd, timestamp now);

/// Applies a tree event; a tree created twice or deleted while unknown is
/// refused.
status apply(tree_catalog& trees, const event& e);

} // namespace fota
