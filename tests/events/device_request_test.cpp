/// Tests of the device-request offer, decided when the device asks: who is
/// offered what, what makes the device busy, and that a device-request task
/// holds no device until the device asks.
#include "events/task.hpp"
#include "tests/events/test_support.hpp"

#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::events_of;
using test::seq;
using test::step;

/// A device-request task over ALL devices on 1.0 (target 2.0), with d1 … d3.
task_state device_request_task(uint32_t retries = 0) {
  auto spec = test::make_spec();
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  if (retries > 0) {
    spec.mutable_retry()->set_max_retries(retries);
    spec.mutable_retry()->set_interval_seconds(60);
  }
  return test::running_task(spec, 3);
}

TEST(DeviceRequestOffer, DeviceRequestTaskHoldsNoDeviceUntilItAsks) {
  auto t = device_request_task();
  EXPECT_FALSE(t.holds_device(t.executions[0]));
  auto d = decide_offer(t, seq(1), "1.0", at(10));
  test::apply_all(t, d.events);
  // The offer makes the execution NOTIFIED: now it holds the device.
  EXPECT_TRUE(t.holds_device(t.executions[0]));
  EXPECT_FALSE(t.holds_device(t.executions[1]));
}

TEST(DeviceRequestOffer, DeviceOnASourceVersionIsOfferedTheTarget) {
  auto t = device_request_task();
  auto d = decide_offer(t, seq(2), "1.0", at(10));
  ASSERT_TRUE(d.offer.available) << d.offer.reason;
  EXPECT_EQ(d.offer.execution, t.id_of(seq(2)));
  EXPECT_EQ(d.offer.attempt, 1u);
  EXPECT_EQ(d.offer.firmware.version, "2.0");
  EXPECT_EQ(d.offer.firmware.sha256, test::good_sha256());
  ASSERT_EQ(d.events.size(), 1u);
  ASSERT_TRUE(d.events[0].has_execution_notified());
  EXPECT_EQ(d.events[0].execution_notified().sequence(), 2u);
  EXPECT_EQ(d.events[0].execution_notified().attempt(), 1u);
}

TEST(DeviceRequestOffer, AskingAgainGetsTheSameOfferWithoutEvents) {
  auto t = device_request_task();
  auto first = decide_offer(t, seq(1), "1.0", at(10));
  test::apply_all(t, first.events);
  auto again = decide_offer(t, seq(1), "1.0", at(11));
  ASSERT_TRUE(again.offer.available);
  EXPECT_EQ(again.offer.execution, first.offer.execution);
  EXPECT_TRUE(again.events.empty());
}

TEST(DeviceRequestOffer, UpgradeInProgressIsBusy) {
  auto t = device_request_task();
  test::apply_all(t, decide_offer(t, seq(1), "1.0", at(10)).events);
  step(t, decide_confirm(t, seq(1), at(11)));
  auto d = decide_offer(t, seq(1), "1.0", at(12));
  EXPECT_FALSE(d.offer.available);
  EXPECT_EQ(d.offer.reason,
            "busy: device d1 is in execution 7/1 (upgrade in progress)");
  EXPECT_TRUE(d.events.empty());
}

TEST(DeviceRequestOffer, CloudPushExecutionMakesTheDeviceBusy) {
  auto t = test::running_task(test::make_spec(), 1);
  auto d = decide_offer(t, seq(1), "1.0", at(10));
  EXPECT_FALSE(d.offer.available);
  EXPECT_EQ(d.offer.reason,
            "busy: device d1 is in execution 7/1 (a cloud-push task)");
}

TEST(DeviceRequestOffer, DeviceNotOnASourceVersionIsNotOffered) {
  auto t = device_request_task();
  auto on_target = decide_offer(t, seq(1), "2.0", at(10));
  EXPECT_FALSE(on_target.offer.available);
  EXPECT_EQ(on_target.offer.reason,
            "no upgrade available: device d1 already runs 2.0");
  auto elsewhere = decide_offer(t, seq(1), "0.7", at(10));
  EXPECT_FALSE(elsewhere.offer.available);
  EXPECT_EQ(elsewhere.offer.reason,
            "no upgrade available: device d1 runs 0.7, which task 7 does not "
            "upgrade from");
  EXPECT_TRUE(elsewhere.events.empty());
}

TEST(DeviceRequestOffer, PausedTaskOffersNothing) {
  auto t = device_request_task();
  step(t, decide_pause(t, "look", at(5)));
  auto d = decide_offer(t, seq(1), "1.0", at(10));
  EXPECT_FALSE(d.offer.available);
  EXPECT_EQ(d.offer.reason,
            "no upgrade available: task 7 is TASK_STATUS_PAUSED");
  EXPECT_TRUE(d.events.empty());
}

TEST(DeviceRequestOffer, ExecutionWaitingForARetryIsOfferedOnceRequeued) {
  auto t = device_request_task(1);
  test::apply_all(t, decide_offer(t, seq(1), "1.0", at(10)).events);
  step(t, decide_confirm(t, seq(1), at(11)));
  step(t, decide_failure(t, seq(1), "E", "boom", at(12)));
  // Waiting for the retry, the device-request execution lets go of its
  // device; the device hears why nothing is offered.
  EXPECT_FALSE(t.holds_device(t.executions[0]));
  auto waiting = decide_offer(t, seq(1), "1.0", at(13));
  EXPECT_FALSE(waiting.offer.available);
  EXPECT_EQ(waiting.offer.reason,
            "no upgrade available: execution 7/1 waits for a retry");
  step(t, decide_retry(t, seq(1), at(12 + 60'000)));
  auto retried = decide_offer(t, seq(1), "1.0", at(12 + 60'001));
  ASSERT_TRUE(retried.offer.available);
  EXPECT_EQ(retried.offer.attempt, 2u);
}

TEST(DeviceRequestOffer, EndedExecutionOffersNothing) {
  auto t = device_request_task();
  test::apply_all(t, decide_offer(t, seq(1), "1.0", at(10)).events);
  step(t, decide_version(t, seq(1), "2.0", at(11)));
  auto d = decide_offer(t, seq(1), "2.0", at(12));
  EXPECT_FALSE(d.offer.available);
  EXPECT_EQ(d.offer.reason, "no upgrade available: execution 7/1 is SUCCEEDED");
}

TEST(DeviceRequestOffer, DevicesAreFoundByKeyWithoutAScan) {
  auto t = device_request_task();
  ASSERT_TRUE(t.indexes_devices());
  EXPECT_EQ(t.sequence_of("d2"), seq(2));
  EXPECT_EQ(t.sequence_of("d9"), std::nullopt);
  // Cloud-push snapshot tasks keep no such index.
  auto cloud = test::running_task(test::make_spec(), 2);
  EXPECT_FALSE(cloud.indexes_devices());
  EXPECT_TRUE(cloud.by_device.empty());
}

TEST(DeviceRequestOffer, VersionReportOfADeviceThatNeverAskedChangesNothing) {
  auto t = device_request_task();
  // d1 got 2.0 from elsewhere; its execution here never held it.
  auto xs = events_of(decide_version(t, seq(1), "2.0", at(10)));
  EXPECT_TRUE(xs.empty());
}

} // namespace
