/// Tests of PreviewTask on a whole node: what CreateTask would do with a
/// spec (devices in scope by version, online, busy in which task, enrolled,
/// skipped, on the target already, the forecast), that a preview writes
/// nothing and takes no task id, and that it refuses exactly what
/// CreateTask refuses, with the same status and message.
#include "tests/actors/test_node.hpp"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;

/// A node without a rate limit.
class Preview : public fota::test::node_fixture {
protected:
  void SetUp() override { start_node(); }

  v1::Response preview(const v1::TaskSpec& spec) {
    v1::PreviewTask req;
    *req.mutable_spec() = spec;
    return call(req);
  }

  v1::StateDigest digest() {
    auto r = call(v1::GetStateDigest{});
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.state_digest();
  }

  /// A cloud-push task over the devices `keys`, from 1.0.0 to `target`.
  static v1::TaskSpec devices_spec(std::vector<std::string> keys,
                                   const std::string& target) {
    auto spec = snapshot_spec("1.0.0", target);
    spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    for (const auto& k : keys)
      spec.mutable_scope()->mutable_device_keys()->add_device_keys(k);
    return spec;
  }
};

/// A node that pushes at most once a second.
class RateLimitedPreview : public Preview {
protected:
  void SetUp() override {
    limits.max_pushes_per_minute = 60;
    start_node();
  }
};

TEST_F(Preview, CountsTheScopeByVersionOnlineAndBusyWithTheTaskHoldingIt) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  ASSERT_EQ(register_device("d", "1.0.0").status(), v1::STATUS_CODE_OK);
  register_online("e", "1.1.0");
  register_online("f", "2.0.0");
  register_online("g", "0.9.0");
  // Task 1 holds a and b.
  auto holder = create_task_id(devices_spec({"a", "b"}, "3.0.0"));
  ASSERT_EQ(holder, 1u);
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  spec.add_source_versions("1.1.0");
  auto r = preview(spec);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  ASSERT_TRUE(r.has_preview());
  const auto& p = r.preview();
  EXPECT_EQ(p.devices(), 5u); // a, b, c, d on 1.0.0; e on 1.1.0
  ASSERT_EQ(p.versions_size(), 2);
  EXPECT_EQ(p.versions(0).version(), "1.0.0");
  EXPECT_EQ(p.versions(0).devices(), 4u);
  EXPECT_EQ(p.versions(1).version(), "1.1.0");
  EXPECT_EQ(p.versions(1).devices(), 1u);
  EXPECT_EQ(p.online(), 4u);
  EXPECT_EQ(p.offline(), 1u); // d
  EXPECT_EQ(p.busy(), 2u);
  ASSERT_EQ(p.busy_tasks_size(), 1);
  EXPECT_EQ(p.busy_tasks(0).task_id(), holder);
  EXPECT_EQ(p.busy_tasks(0).devices(), 2u);
  EXPECT_EQ(p.busy_tasks_unlisted(), 0u);
  EXPECT_EQ(p.enrolled(), 3u); // c, d, e
  EXPECT_EQ(p.skipped(), 2u);
  EXPECT_EQ(p.on_target_version(), 1u); // f
  // The enrolled devices online (c, e) leave at once; d is offline.
  const auto& f = p.forecast();
  EXPECT_EQ(f.queued(), 3u);
  EXPECT_EQ(f.queued_online(), 2u);
  EXPECT_EQ(f.allowed_per_minute(), 0u);
  EXPECT_FALSE(f.eta_known());
  EXPECT_EQ(f.online_eta_ms(), to_millis(clock->now()));
  // What the preview said is what the creation does.
  auto created = create_task(spec);
  ASSERT_EQ(created.status(), v1::STATUS_CODE_OK) << created.message();
  EXPECT_EQ(created.task().counters().skipped(), p.skipped());
  EXPECT_EQ(created.task().counters().queued() +
                created.task().counters().notified(),
            p.enrolled());
}

TEST_F(Preview, AnIncrementTaskShowsItsScopeNowAndSkipsNoBusyDevice) {
  create_firmware_verified("2.0.0");
  create_firmware_verified("3.0.0");
  for (const auto& k : {"a", "b", "c"})
    register_online(k, "1.0.0");
  auto holder = create_task_id(devices_spec({"a"}, "3.0.0"));
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  auto r = preview(spec);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  const auto& p = r.preview();
  EXPECT_EQ(p.devices(), 3u);
  EXPECT_EQ(p.busy(), 1u);
  ASSERT_EQ(p.busy_tasks_size(), 1);
  EXPECT_EQ(p.busy_tasks(0).task_id(), holder);
  // The busy device joins once it is free: enrolled later, never skipped.
  EXPECT_EQ(p.enrolled(), 2u);
  EXPECT_EQ(p.skipped(), 0u);
  EXPECT_TRUE(p.forecast().eta_known());
  // A device-request task enrols every device in scope.
  spec.set_strategy(v1::STRATEGY_SNAPSHOT);
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  r = preview(spec);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.preview().enrolled(), 3u);
  EXPECT_EQ(r.preview().skipped(), 0u);
  EXPECT_EQ(r.preview().forecast().idle_reason(),
            v1::IDLE_REASON_DEVICE_REQUESTS);
}

TEST_F(Preview, WritesNothingAndLeavesTheTaskIdToTheNextCreation) {
  create_firmware_verified("2.0.0");
  for (const auto& k : {"a", "b"})
    register_online(k, "1.0.0");
  auto before = digest();
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  auto increment = spec;
  increment.set_strategy(v1::STRATEGY_INCREMENT);
  for (const auto& s : {spec, increment}) {
    auto r = preview(s);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    EXPECT_EQ(r.preview().devices(), 2u);
  }
  auto after = digest();
  EXPECT_EQ(after.last_sequence(), before.last_sequence());
  EXPECT_EQ(after.sha256(), before.sha256());
  EXPECT_EQ(after.tasks(), 0u);
  // No device was claimed: both are free.
  for (const auto& k : {"a", "b"})
    EXPECT_EQ(get_device(k).active_execution_id(), 0u) << k;
  // The firmware was not reserved: no task uses it, so it can go.
  v1::DeleteFirmware del;
  del.set_product_key(test::product);
  del.set_version("2.0.0");
  auto deleted = call(del);
  EXPECT_EQ(deleted.status(), v1::STATUS_CODE_OK) << deleted.message();
  create_firmware_verified("2.0.1");
  // The first task created after the previews is task 1, and the increment
  // preview subscribed nothing: a device registered now joins no task.
  EXPECT_EQ(create_task_id(snapshot_spec("1.0.0", "2.0.1")), 1u);
  register_online("c", "1.0.0");
  EXPECT_EQ(get_device("c").active_execution_id(), 0u);
}

TEST_F(Preview, RefusesWhatCreateTaskRefusesWithTheSameStatusAndMessage) {
  create_firmware_verified("2.0.0");
  v1::CreateFirmware unverified;
  *unverified.mutable_firmware() = firmware_of("3.0.0");
  ASSERT_EQ(call(unverified).status(), v1::STATUS_CODE_OK);
  register_online("a", "1.0.0");
  auto good = snapshot_spec("1.0.0", "2.0.0");
  std::vector<std::pair<std::string, v1::TaskSpec>> bad;
  auto add = [&](std::string what, auto change) {
    auto spec = good;
    change(spec);
    bad.emplace_back(std::move(what), std::move(spec));
  };
  add("unknown target", [](v1::TaskSpec& s) { s.set_target_version("9.9"); });
  add("unverified target",
      [](v1::TaskSpec& s) { s.set_target_version("3.0.0"); });
  add("source is the target", [](v1::TaskSpec& s) {
    s.clear_source_versions();
    s.add_source_versions("2.0.0");
  });
  add("no source", [](v1::TaskSpec& s) { s.clear_source_versions(); });
  add("no product", [](v1::TaskSpec& s) { s.set_product_key(""); });
  add("no strategy",
      [](v1::TaskSpec& s) { s.set_strategy(v1::STRATEGY_UNSPECIFIED); });
  add("target scope by device request", [](v1::TaskSpec& s) {
    s.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    s.mutable_scope()->mutable_tag()->set_key("site");
    s.mutable_scope()->mutable_tag()->set_value("x");
    s.set_method(v1::METHOD_DEVICE_REQUEST);
  });
  add("unknown device key", [](v1::TaskSpec& s) {
    s.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    s.mutable_scope()->mutable_device_keys()->add_device_keys("nobody");
  });
  add("unknown asset tree", [](v1::TaskSpec& s) {
    s.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    auto* sel = s.mutable_scope()->mutable_asset_trees()->add_trees();
    sel->set_tree_id("nowhere");
    sel->add_node_ids("root");
  });
  add("short window", [](v1::TaskSpec& s) {
    auto* w = s.mutable_schedule()->add_windows();
    w->set_start_minute(60);
    w->set_end_minute(70);
  });
  add("unknown time zone", [](v1::TaskSpec& s) {
    s.mutable_schedule()->set_time_zone("Mars/Base");
  });
  add("timeout too short", [](v1::TaskSpec& s) { s.set_timeout_seconds(10); });
  add("verification run", [](v1::TaskSpec& s) { s.set_verification(true); });
  auto before = digest();
  for (const auto& [what, spec] : bad) {
    SCOPED_TRACE(what);
    auto p = preview(spec);
    auto c = create_task(spec);
    EXPECT_NE(c.status(), v1::STATUS_CODE_OK);
    EXPECT_EQ(p.status(), c.status()) << p.message() << " / " << c.message();
    EXPECT_EQ(p.message(), c.message());
    EXPECT_FALSE(p.has_preview());
  }
  EXPECT_EQ(digest().last_sequence(), before.last_sequence());
  // Both were refused without taking an id.
  EXPECT_EQ(create_task_id(good), 1u);
}

TEST_F(Preview, AGatewayMayNotPreviewAsItMayNotCreate) {
  create_firmware_verified("2.0.0");
  v1::ClientFrame previewing;
  *previewing.mutable_preview_task()->mutable_spec() =
      snapshot_spec("1.0.0", "2.0.0");
  auto p = route(v1::ROLE_GATEWAY, previewing);
  auto c = route(v1::ROLE_GATEWAY,
                 create_task_frame(snapshot_spec("1.0.0", "2.0.0")));
  EXPECT_EQ(p.status(), v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_EQ(c.status(), v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_NE(p.message().find("preview_task"), std::string::npos) << p.message();
  EXPECT_EQ(route(v1::ROLE_OPERATOR, previewing).status(), v1::STATUS_CODE_OK);
}

TEST_F(RateLimitedPreview, TheEtaFollowsTheTaskAndNodeRates) {
  create_firmware_verified("2.0.0");
  for (int i = 0; i < 4; ++i)
    register_online("on-" + std::to_string(i), "1.0.0");
  auto spec = snapshot_spec("1.0.0", "2.0.0");
  auto r = preview(spec);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto now = to_millis(clock->now());
  const auto& f = r.preview().forecast();
  EXPECT_EQ(f.allowed_per_minute(), 60u);
  EXPECT_EQ(f.queued(), 4u);
  EXPECT_EQ(f.queued_online(), 4u);
  EXPECT_DOUBLE_EQ(f.online_share(), 1.0);
  ASSERT_TRUE(f.eta_known());
  EXPECT_GT(f.eta_ms(), now);
  EXPECT_LE(f.eta_ms(), now + 4000);
  auto first_eta = f.eta_ms();
  // A slower task rate wins over the node's, and the ETA moves out.
  spec.mutable_rate()->set_max_per_minute(6);
  auto slower = preview(spec);
  ASSERT_EQ(slower.status(), v1::STATUS_CODE_OK) << slower.message();
  EXPECT_EQ(slower.preview().forecast().allowed_per_minute(), 6u);
  ASSERT_TRUE(slower.preview().forecast().eta_known());
  EXPECT_GT(slower.preview().forecast().eta_ms(), first_eta);
}

} // namespace
