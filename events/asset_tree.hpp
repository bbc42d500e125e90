/// Asset trees: trees of nodes, where a node may be a device. A task's
/// asset-tree filter selects nodes that are the root or direct children of
/// the root; the selected nodes that are devices are in scope.
#pragma once

#include "events/error.hpp"
#include "events/event.hpp"
#include "fota/v1/api.pb.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fota {

/// Most trees one task may select.
constexpr int max_selected_trees = 5;

/// The asset trees of a node: (product, tree id) → tree.
using tree_catalog =
    std::map<std::pair<std::string, std::string>, v1::AssetTree>;

/// Checks a tree: ids present and unique, exactly one root, every parent
/// exists, every node reaches the root, device keys unique.
status validate_tree(const v1::AssetTree& tree);

/// The device keys of the selected nodes of `tree`. Every selected node must
/// exist and be the root or a direct child of the root.
expected<std::vector<std::string>>
selected_devices(const v1::AssetTree& tree,
                 const google::protobuf::RepeatedPtrField<std::string>& nodes);

expected<event_list> decide(const tree_catalog& trees,
                            const v1::CreateAssetTree& cmd, timestamp now);

expected<event_list> decide(const tree_catalog& trees,
                            const v1::DeleteAssetTree& cmd, timestamp now);

void apply(tree_catalog& trees, const event& e);

} // namespace fota
