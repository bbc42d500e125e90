/// Tests of the gateway rules: a device belongs to the gateway that
/// registered it, another gateway may not act for it, an operator moves it
/// explicitly, a gateway serves only its products, and quotas bound devices
/// and their tags and attributes.
#include "events/device.hpp"
#include "events/gateway.hpp"
#include "tests/events/test_support.hpp"

#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::cases_of;
using test::events_of;
using test::failure_of;

register_device registration(const std::string& gateway) {
  register_device cmd{"p1", "d1", "1.0", {{"site", "berlin"}}, {}};
  cmd.gateway = gateway;
  return cmd;
}

/// The device that `gateway` registered.
device_state owned_by(const std::string& gateway) {
  auto xs = events_of(decide(nullptr, registration(gateway), at()));
  EXPECT_EQ(xs.size(), 1u);
  return xs.empty() ? device_state{} : make_device(xs[0]);
}

TEST(GatewayRules, RegistrationRecordsTheGatewayAsOwner) {
  auto d = owned_by("gw-a");
  EXPECT_EQ(d.gateway, "gw-a");
}

TEST(GatewayRules, AnotherGatewaysRegistrationIsDenied) {
  auto d = owned_by("gw-a");
  auto cmd = registration("gw-b");
  cmd.version = "6.6.6";
  auto err = failure_of(decide(&d, cmd, at(1)));
  EXPECT_EQ(err.code, errc::permission_denied);
  EXPECT_NE(err.message.find("belongs to gateway gw-a"), std::string::npos)
      << err.message;
  EXPECT_NE(err.message.find("gw-b"), std::string::npos) << err.message;
}

TEST(GatewayRules, AnotherGatewaysReportsAndOnlineAreDenied) {
  auto d = owned_by("gw-a");
  report_version version{"p1", "d1", "9.9"};
  version.gateway = "gw-b";
  EXPECT_EQ(failure_of(decide(d, version, at(1))).code,
            errc::permission_denied);
  device_online online{"p1", "d1"};
  online.gateway = "gw-b";
  EXPECT_EQ(failure_of(decide(d, online, at(1))).code, errc::permission_denied);
  device_offline offline{"p1", "d1"};
  offline.gateway = "gw-b";
  EXPECT_EQ(failure_of(decide(d, offline, at(1))).code,
            errc::permission_denied);
  EXPECT_EQ(check_owner(d, "gw-b")->code, errc::permission_denied);
}

TEST(GatewayRules, TheOwnerAndTheInProcessApiMayAct) {
  auto d = owned_by("gw-a");
  EXPECT_FALSE(check_owner(d, "gw-a"));
  EXPECT_FALSE(check_owner(d, ""));
  report_version version{"p1", "d1", "2.0"};
  version.gateway = "gw-a";
  EXPECT_EQ(events_of(decide(d, version, at(1))).size(), 1u);
}

TEST(GatewayRules, FirstNamedGatewayClaimsADeviceWithoutOwner) {
  auto d = owned_by("");
  EXPECT_FALSE(check_owner(d, "gw-b"));
  auto xs = events_of(decide(&d, registration("gw-b"), at(1)));
  ASSERT_EQ(cases_of(xs),
            std::vector<event::PayloadCase>{event::kDeviceGatewayChanged});
  ASSERT_FALSE(apply(d, xs[0]));
  EXPECT_EQ(d.gateway, "gw-b");
  EXPECT_EQ(check_owner(d, "gw-a")->code, errc::permission_denied);
}

TEST(GatewayRules, MoveDeviceRecordsBothGatewaysAndIsIdempotent) {
  auto d = owned_by("gw-a");
  auto xs = events_of(decide(d, move_device{"p1", "d1", "gw-b"}, at(1)));
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].device_gateway_changed().gateway(), "gw-b");
  EXPECT_EQ(xs[0].device_gateway_changed().previous_gateway(), "gw-a");
  ASSERT_FALSE(apply(d, xs[0]));
  EXPECT_EQ(d.gateway, "gw-b");
  EXPECT_TRUE(
      events_of(decide(d, move_device{"p1", "d1", "gw-b"}, at(2))).empty());
  EXPECT_EQ(failure_of(decide(d, move_device{"p1", "d1", ""}, at(2))).code,
            errc::invalid_argument);
}

TEST(GatewayRules, AGatewayServesOnlyItsProducts) {
  gateway_policy g{"gw-a", {"cam"}, {}};
  EXPECT_FALSE(check_serves(g, "cam"));
  auto err = check_serves(g, "lamp");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::permission_denied);
  EXPECT_NE(err->message.find("lamp"), std::string::npos);
  EXPECT_FALSE(check_serves(gateway_policy{"gw-b", {}, {}}, "lamp"));
}

TEST(GatewayRules, LabelQuotaCountsTagsAndAttributesAndTheirBytes) {
  device_quota q;
  q.max_labels = 2;
  q.max_label_bytes = 20;
  auto d = owned_by("gw-a");
  EXPECT_FALSE(check_labels(d, q)); // site=berlin: 1 label, 10 bytes
  auto more = within(
      d, decide(d, set_device_tags{"p1", "d1", {{"floor", "3"}}}, at(1)), q);
  EXPECT_TRUE(more.has_value());
  auto over = within(
      d,
      decide(d, set_device_tags{"p1", "d1", {{"a", "1"}, {"b", "2"}}}, at(1)),
      q);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, errc::resource_exhausted);
  EXPECT_NE(over.error().message.find("3 tags and attributes"),
            std::string::npos)
      << over.error().message;
  auto big = within(
      d,
      decide(d,
             set_device_attributes{"p1", "d1", {{"hw", std::string(16, 'x')}}},
             at(1)),
      q);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, errc::resource_exhausted);
  EXPECT_NE(big.error().message.find("bytes"), std::string::npos);
}

TEST(GatewayRules, DeviceQuotaCountsWhatIsHeld) {
  device_quota q;
  q.max_devices = 2;
  EXPECT_FALSE(check_room(1, q, "gateway gw-a"));
  auto err = check_room(2, q, "gateway gw-a");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::resource_exhausted);
  EXPECT_NE(err->message.find("gateway gw-a holds 2 devices"),
            std::string::npos);
  EXPECT_FALSE(check_room(1'000'000, device_quota{}, "product p1"));
}

TEST(GatewayRules, DeviceLimitsAreTheStricterOfProductAndGateway) {
  edge_policy edge;
  edge.product_default.max_labels = 10;
  device_quota cam;
  cam.max_labels = 5;
  cam.max_label_bytes = 100;
  edge.products["cam"] = cam;
  gateway_policy g{"gw-a", {}, {}};
  g.quota.max_labels = 8;
  g.quota.max_label_bytes = 50;
  edge.gateways.emplace("gw-a", g);
  auto x = edge.device_limits("cam", "gw-a");
  EXPECT_EQ(x.max_labels, 5u);
  EXPECT_EQ(x.max_label_bytes, 50u);
  EXPECT_EQ(edge.device_limits("lamp", "gw-a").max_labels, 8u);
  EXPECT_EQ(edge.device_limits("lamp", "nobody").max_labels, 10u);
}

} // namespace
