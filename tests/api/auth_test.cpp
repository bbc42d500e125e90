/// Tests of who a Hello authenticates and of the throttle that slows down a
/// peer that keeps failing, on a manual clock.
#include "api/auth.hpp"

#include <memory>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace std::chrono_literals;

credentials logins() {
  return credentials{"op-secret",
                     {{"gw-a", "a-secret", ""}, {"gw-b", "", "ab12"}},
                     "shared-secret"};
}

TEST(Auth, EachTokenAuthenticatesItsOwnRole) {
  auto c = logins();
  auto op = c.by_token("op-secret");
  ASSERT_TRUE(op);
  EXPECT_EQ(op->role, v1::ROLE_OPERATOR);
  auto a = c.by_token("a-secret");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->role, v1::ROLE_GATEWAY);
  EXPECT_EQ(a->gateway, "gw-a");
  auto shared = c.by_token("shared-secret");
  ASSERT_TRUE(shared);
  EXPECT_EQ(shared->gateway, shared_gateway_name);
}

TEST(Auth, WrongEmptyAndPrefixTokensAuthenticateNothing) {
  auto c = logins();
  EXPECT_FALSE(c.by_token(""));
  EXPECT_FALSE(c.by_token("op-secre"));
  EXPECT_FALSE(c.by_token("op-secret "));
  EXPECT_FALSE(c.by_token("a-secret-and-more"));
  // A gateway with a certificate only has no token.
  EXPECT_FALSE(credentials("", {{"gw", "", "ff"}}).by_token(""));
}

TEST(Auth, ClientCertificatesIdentifyTheirGateway) {
  auto c = logins();
  auto b = c.by_certificate("ab12");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->gateway, "gw-b");
  EXPECT_FALSE(c.by_certificate("ab13"));
  EXPECT_FALSE(c.by_certificate(""));
}

TEST(Auth, NoSharedTokenWithoutDevelopmentMode) {
  credentials c{"op", {{"gw-a", "a", ""}}};
  EXPECT_FALSE(c.by_token("gateway-token"));
  EXPECT_TRUE(c.by_token("a"));
}

TEST(AuthThrottle, RepeatedFailuresWaitLongerUpToTheCap) {
  auto clock = std::make_shared<manual_clock>(from_millis(1'000'000));
  auth_throttle t{clock, {100ms, 1'000ms, 60'000ms, 16}};
  EXPECT_EQ(t.wait("10.0.0.1"), 0ms);
  t.failed("10.0.0.1");
  EXPECT_EQ(t.wait("10.0.0.1"), 100ms);
  t.failed("10.0.0.1");
  EXPECT_EQ(t.wait("10.0.0.1"), 200ms);
  t.failed("10.0.0.1");
  t.failed("10.0.0.1");
  EXPECT_EQ(t.wait("10.0.0.1"), 800ms);
  t.failed("10.0.0.1");
  EXPECT_EQ(t.wait("10.0.0.1"), 1'000ms);
  // Other peers are not slowed down.
  EXPECT_EQ(t.wait("10.0.0.2"), 0ms);
  clock->advance(400ms);
  EXPECT_EQ(t.wait("10.0.0.1"), 600ms);
  clock->advance(600ms);
  EXPECT_EQ(t.wait("10.0.0.1"), 0ms);
}

TEST(AuthThrottle, SuccessAndTimeForgetFailures) {
  auto clock = std::make_shared<manual_clock>(from_millis(1'000'000));
  auth_throttle t{clock, {100ms, 1'000ms, 60'000ms, 16}};
  t.failed("p");
  t.failed("p");
  t.succeeded("p");
  EXPECT_EQ(t.wait("p"), 0ms);
  t.failed("p");
  t.failed("p");
  clock->advance(61'000ms);
  t.failed("p");
  EXPECT_EQ(t.wait("p"), 100ms);
}

TEST(AuthThrottle, RemembersABoundedNumberOfPeers) {
  auto clock = std::make_shared<manual_clock>(from_millis(1'000'000));
  auth_throttle t{clock, {100ms, 1'000ms, 60'000ms, 4}};
  for (int i = 0; i < 100; ++i) {
    clock->advance(1ms);
    t.failed("peer-" + std::to_string(i));
  }
  // The newest peers are remembered, the oldest forgotten.
  EXPECT_GT(t.wait("peer-99"), 0ms);
  EXPECT_EQ(t.wait("peer-0"), 0ms);
}

} // namespace
