/// Rules of asset trees: what a valid tree is, and which nodes a task's
/// asset-tree filter may select (the root or a direct child of the root).
#include "events/asset_tree.hpp"
#include "test_support.hpp"

namespace fota {
namespace {

using test::at;
using test::events_of;
using test::failure_of;

v1::AssetNode* node(v1::AssetTree& t, std::string id, std::string parent,
                    std::string device = "") {
  auto* n = t.add_nodes();
  n->set_node_id(std::move(id));
  n->set_parent_id(std::move(parent));
  n->set_name(n->node_id());
  n->set_device_key(std::move(device));
  return n;
}

/// plant: root (gateway-1) → line-a (cam-a) → cell-1 (cam-deep); → line-b.
v1::AssetTree plant() {
  v1::AssetTree t;
  t.set_product_key("cam");
  t.set_tree_id("plant");
  node(t, "root", "", "gateway-1");
  node(t, "line-a", "root", "cam-a");
  node(t, "line-b", "root");
  node(t, "cell-1", "line-a", "cam-deep");
  return t;
}

std::vector<std::string> ids(std::initializer_list<const char*> xs) {
  return {xs.begin(), xs.end()};
}

status validate_tree_of(const v1::AssetTree& t) {
  return validate_tree(from_proto(t));
}

TEST(AssetTreeRules, ValidTreeIsAccepted) {
  EXPECT_FALSE(validate_tree_of(plant()).has_value());
}

TEST(AssetTreeRules, TreeNeedsExactlyOneRoot) {
  auto t = plant();
  node(t, "other-root", "");
  auto err = validate_tree_of(t);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, errc::invalid_argument);
  EXPECT_NE(err->message.find("exactly one root"), std::string::npos);
}

TEST(AssetTreeRules, NodesNeedKnownParentsAndNoCycles) {
  auto t = plant();
  node(t, "orphan", "nowhere");
  ASSERT_TRUE(validate_tree_of(t).has_value());
  EXPECT_NE(validate_tree_of(t)->message.find("unknown parent"),
            std::string::npos);
  auto c = plant();
  node(c, "x", "y");
  node(c, "y", "x");
  ASSERT_TRUE(validate_tree_of(c).has_value());
  EXPECT_NE(validate_tree_of(c)->message.find("cycle"), std::string::npos);
}

TEST(AssetTreeRules, NodeIdsAndDevicePlacementsAreUnique) {
  auto t = plant();
  node(t, "line-a", "root");
  EXPECT_TRUE(validate_tree_of(t).has_value());
  auto d = plant();
  node(d, "line-c", "root", "cam-a");
  ASSERT_TRUE(validate_tree_of(d).has_value());
  EXPECT_NE(validate_tree_of(d)->message.find("placed twice"),
            std::string::npos);
}

TEST(AssetTreeRules, SelectedRootAndChildDevicesAreInScope) {
  auto devices =
      selected_devices(from_proto(plant()), ids({"root", "line-a", "line-b"}));
  ASSERT_TRUE(devices);
  // line-b is not a device; the device deeper down is not selected.
  EXPECT_EQ(*devices, (std::vector<std::string>{"gateway-1", "cam-a"}));
}

TEST(AssetTreeRules, SelectedNodeMustBeRootOrDirectChild) {
  auto devices = selected_devices(from_proto(plant()), ids({"cell-1"}));
  ASSERT_FALSE(devices);
  EXPECT_EQ(devices.error().code, errc::invalid_argument);
  EXPECT_EQ(devices.error().message.rfind("scope.asset_trees[plant]", 0), 0u)
      << devices.error().message;
}

TEST(AssetTreeRules, UnknownSelectedNodeIsRefused) {
  auto devices = selected_devices(from_proto(plant()), ids({"nope"}));
  ASSERT_FALSE(devices);
  EXPECT_NE(devices.error().message.find("does not exist"), std::string::npos);
}

TEST(AssetTreeRules, CreateDeleteAndApply) {
  tree_catalog trees;
  v1::CreateAssetTree create;
  *create.mutable_tree() = plant();
  auto created = events_of(decide(trees, test::cmd(create), at(1)));
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].stream(), "tree/cam/plant");
  EXPECT_FALSE(fota::apply(trees, created[0]));
  EXPECT_EQ(trees.size(), 1u);
  // Created twice, the log is inconsistent.
  EXPECT_TRUE(fota::apply(trees, created[0]));
  EXPECT_EQ(failure_of(decide(trees, test::cmd(create), at(2))).code,
            errc::already_exists);
  v1::DeleteAssetTree del;
  del.set_product_key("cam");
  del.set_tree_id("plant");
  auto deleted = events_of(decide(trees, test::cmd(del), at(3)));
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_FALSE(fota::apply(trees, deleted[0]));
  EXPECT_TRUE(trees.empty());
  EXPECT_TRUE(fota::apply(trees, deleted[0]));
  EXPECT_EQ(failure_of(decide(trees, test::cmd(del), at(4))).code,
            errc::not_found);
}

} // namespace
} // namespace fota
