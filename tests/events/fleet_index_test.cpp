/// Tests of scope selection: which registered devices a task's scope takes,
/// in registration order, and which devices that register or report a
/// version later are in an increment task's scope.
#include "events/codec.hpp"
#include "events/fleet_index.hpp"
#include "tests/events/test_support.hpp"

#include <string>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;

device_state device(const std::string& key, const std::string& version,
                    label_map tags = {}, label_map attributes = {},
                    const std::string& product = "p1") {
  device_state d;
  d.product = product;
  d.key = key;
  d.version = version;
  d.tags = std::move(tags);
  d.attributes = std::move(attributes);
  return d;
}

/// d1 (1.0, ring=canary), d2 (1.1), d3 (2.0, ring=canary), d4 (1.0, hw=b),
/// and d1 of product p2 (1.0).
fleet_index fleet() {
  fleet_index f;
  f.add(device("d1", "1.0", {{"ring", "canary"}}));
  f.add(device("d2", "1.1"));
  f.add(device("d3", "2.0", {{"ring", "canary"}}));
  f.add(device("d4", "1.0", {}, {{"hw", "b"}}));
  f.add(device("d1", "1.0", {}, {}, "p2"));
  return f;
}

std::vector<std::string> keys(const fleet_index& f,
                              const std::vector<fleet_index::ordinal>& xs) {
  std::vector<std::string> out;
  for (auto x : xs)
    out.push_back(f.at(x).product + "/" + f.at(x).key);
  return out;
}

std::vector<std::string> select(const fleet_index& f, const v1::TaskSpec& spec,
                                const tree_catalog& trees = {}) {
  std::unordered_set<std::string> named;
  auto xs = f.select(from_proto(spec), trees, named);
  if (!xs) {
    ADD_FAILURE() << xs.error().message;
    return {};
  }
  return keys(f, *xs);
}

using list = std::vector<std::string>;

TEST(ScopeSelection, AllTakesTheProductsDevicesOnSourceVersions) {
  auto f = fleet();
  auto spec = test::make_spec(); // 1.0 -> 2.0
  EXPECT_EQ(select(f, spec), (list{"p1/d1", "p1/d4"}));
  spec.add_source_versions("1.1");
  EXPECT_EQ(select(f, spec), (list{"p1/d1", "p1/d2", "p1/d4"}));
}

TEST(ScopeSelection, TagAndAttributeFiltersKeepToSourceVersions) {
  auto f = fleet();
  auto spec = test::make_spec();
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_tag()->set_key("ring");
  spec.mutable_scope()->mutable_tag()->set_value("canary");
  // d3 is tagged but already on the target.
  EXPECT_EQ(select(f, spec), (list{"p1/d1"}));
  spec.mutable_scope()->clear_tag();
  spec.mutable_scope()->mutable_attribute()->set_name("hw");
  spec.mutable_scope()->mutable_attribute()->set_value("b");
  EXPECT_EQ(select(f, spec), (list{"p1/d4"}));
}

TEST(ScopeSelection, DeviceKeysMustBeRegistered) {
  auto f = fleet();
  auto spec = test::make_spec();
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  auto* keys = spec.mutable_scope()->mutable_device_keys();
  keys->add_device_keys("d4");
  keys->add_device_keys("d1");
  keys->add_device_keys("d3");
  std::unordered_set<std::string> named;
  auto xs = f.select(from_proto(spec), {}, named);
  ASSERT_TRUE(xs);
  // In registration order, not in the order named; d3 is on the target.
  EXPECT_EQ(::keys(f, *xs), (list{"p1/d1", "p1/d4"}));
  EXPECT_EQ(named, (std::unordered_set<std::string>{"d1", "d3", "d4"}));
  keys->add_device_keys("d9");
  auto err = f.select(from_proto(spec), {}, named);
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().message,
            "scope.device_keys: device d9 is not registered for product p1");
}

TEST(ScopeSelection, AssetTreesTakeTheSelectedDeviceNodes) {
  auto f = fleet();
  tree_catalog trees;
  asset_tree t{"site",
               "p1",
               "plant",
               {{"root", "", "plant", ""},
                {"a", "root", "cam", "d4"},
                {"b", "root", "cam", "d2"},
                {"c", "a", "deep", "d1"}}};
  trees[{"p1", "site"}] = t;
  auto spec = test::make_spec();
  spec.add_source_versions("1.1");
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  auto* sel = spec.mutable_scope()->mutable_asset_trees()->add_trees();
  sel->set_tree_id("site");
  sel->add_node_ids("a");
  sel->add_node_ids("b");
  EXPECT_EQ(select(f, spec, trees), (list{"p1/d2", "p1/d4"}));
  sel->set_tree_id("nowhere");
  std::unordered_set<std::string> named;
  auto err = f.select(from_proto(spec), trees, named);
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message.find("tree nowhere does not exist"),
            std::string::npos);
}

TEST(ScopeSelection, UpdateMovesADeviceBetweenIndexes) {
  auto f = fleet();
  auto d = device("d2", "1.0", {{"ring", "canary"}});
  f.update(*f.find("p1", "d2"), d);
  EXPECT_EQ(select(f, test::make_spec()), (list{"p1/d1", "p1/d2", "p1/d4"}));
  auto spec = test::make_spec();
  spec.add_source_versions("1.1");
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_tag()->set_key("ring");
  spec.mutable_scope()->mutable_tag()->set_value("canary");
  EXPECT_EQ(select(f, spec), (list{"p1/d1", "p1/d2"}));
  EXPECT_FALSE(f.find("p3", "d1"));
}

TEST(ScopeSelection, LaterDevicesJoinAnIncrementTaskTheyMatch) {
  auto spec = from_proto(test::make_spec()); // ALL, 1.0 -> 2.0
  std::unordered_set<std::string> none;
  fleet_index::entry e{"p1", "d7", "1.0", {}, {}};
  EXPECT_TRUE(in_scope(spec, none, e));
  e.version = "2.0";
  EXPECT_FALSE(in_scope(spec, none, e)); // on the target
  e.version = "0.9";
  EXPECT_FALSE(in_scope(spec, none, e)); // not a source version
  e.version = "1.0";
  e.product = "p2";
  EXPECT_FALSE(in_scope(spec, none, e));
  // A device-key filter takes only the devices it named.
  auto target = test::make_spec();
  target.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  target.mutable_scope()->mutable_device_keys()->add_device_keys("d7");
  fleet_index::entry d7{"p1", "d7", "1.0", {}, {}};
  fleet_index::entry d8{"p1", "d8", "1.0", {}, {}};
  EXPECT_TRUE(in_scope(from_proto(target), {"d7"}, d7));
  EXPECT_FALSE(in_scope(from_proto(target), {"d7"}, d8));
}

// -- on the target version (PreviewTask) --------------------------------------

TEST(ScopeSelection, OnVersionTakesWhatTheFilterSelectsOnThatVersion) {
  auto f = fleet();
  auto spec = test::make_spec(); // 1.0 -> 2.0
  auto on_target = [&](const v1::TaskSpec& s) {
    auto xs = f.select_on_version(from_proto(s), {}, s.target_version());
    EXPECT_TRUE(xs) << (xs ? "" : xs.error().message);
    return xs ? keys(f, *xs) : list{};
  };
  EXPECT_EQ(on_target(spec), (list{"p1/d3"}));
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec.mutable_scope()->mutable_attribute()->set_name("hw");
  spec.mutable_scope()->mutable_attribute()->set_value("b");
  EXPECT_EQ(on_target(spec), list{}); // d4 has hw=b but runs 1.0
  spec.mutable_scope()->clear_attribute();
  spec.mutable_scope()->mutable_tag()->set_key("ring");
  spec.mutable_scope()->mutable_tag()->set_value("canary");
  EXPECT_EQ(on_target(spec), (list{"p1/d3"}));
  // An unknown device key fails as select fails.
  spec.mutable_scope()->clear_tag();
  spec.mutable_scope()->mutable_device_keys()->add_device_keys("nobody");
  EXPECT_FALSE(f.select_on_version(from_proto(spec), {}, "2.0"));
}

} // namespace
