/// Tests of the firmware rules: field validation, unique versions within a
/// product, the verification lifecycle, deletion and `apply` of every
/// firmware event.
#include "events/firmware.hpp"
#include "tests/events/test_support.hpp"

#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::events_of;
using test::failure_of;
using test::make_firmware;

v1::CreateFirmware create_cmd(const std::string& product,
                              const std::string& version) {
  v1::CreateFirmware cmd;
  *cmd.mutable_firmware() = make_firmware(product, version);
  return cmd;
}

v1::VerifyFirmware verify_cmd(const std::string& product,
                              const std::string& version) {
  v1::VerifyFirmware cmd;
  cmd.set_product_key(product);
  cmd.set_version(version);
  return cmd;
}

v1::SkipVerification skip_cmd(const std::string& product,
                              const std::string& version,
                              const std::string& reason) {
  v1::SkipVerification cmd;
  cmd.set_product_key(product);
  cmd.set_version(version);
  cmd.set_reason(reason);
  return cmd;
}

v1::DeleteFirmware delete_cmd(const std::string& product,
                              const std::string& version) {
  v1::DeleteFirmware cmd;
  cmd.set_product_key(product);
  cmd.set_version(version);
  return cmd;
}

/// A catalog in which `p1/1.0` was created at t0.
firmware_catalog with_created() {
  firmware_catalog c;
  test::apply_all(
      c, events_of(decide(c, test::cmd(create_cmd("p1", "1.0")), at())));
  return c;
}

event firmware_event(std::function<void(event&)> fill) {
  auto e = make_event(firmware_stream("p1", "1.0"), at(5));
  fill(e);
  return e;
}

// -- create ------------------------------------------------------------------

TEST(FirmwareRules, CreateValidatesEachField) {
  struct row {
    const char* name;
    std::function<void(v1::Firmware&)> mutate;
    const char* field;
  };
  const row rows[] = {
      {"empty product", [](auto& f) { f.clear_product_key(); },
       "firmware.product_key"},
      {"empty version", [](auto& f) { f.clear_version(); }, "firmware.version"},
      {"empty url", [](auto& f) { f.clear_url(); }, "firmware.url"},
      {"size 0", [](auto& f) { f.set_size(0); }, "firmware.size"},
      {"empty sha256", [](auto& f) { f.clear_sha256(); }, "firmware.sha256"},
      {"short sha256", [](auto& f) { f.mutable_sha256()->pop_back(); },
       "firmware.sha256"},
      {"long sha256", [](auto& f) { f.mutable_sha256()->push_back('0'); },
       "firmware.sha256"},
      {"upper-case sha256", [](auto& f) { (*f.mutable_sha256())[1] = 'F'; },
       "firmware.sha256"},
      {"non-hex sha256", [](auto& f) { (*f.mutable_sha256())[0] = 'g'; },
       "firmware.sha256"},
  };
  firmware_catalog empty;
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    auto cmd = create_cmd("p1", "1.0");
    r.mutate(*cmd.mutable_firmware());
    auto err = failure_of(decide(empty, test::cmd(cmd), at()));
    EXPECT_EQ(err.code, errc::invalid_argument);
    EXPECT_NE(err.message.find(r.field), std::string::npos) << err.message;
  }
}

TEST(FirmwareRules, CreateRecordsUnverifiedFirmware) {
  firmware_catalog empty;
  auto cmd = create_cmd("p1", "1.0");
  // Status and verification fields come from the node, not the client.
  cmd.mutable_firmware()->set_status(v1::FIRMWARE_STATUS_VERIFIED);
  cmd.mutable_firmware()->add_verification_device_keys("d1");
  cmd.mutable_firmware()->set_verification_failure("x");
  cmd.mutable_firmware()->set_created_at_ms(1);
  auto xs = events_of(decide(empty, test::cmd(cmd), at(42)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_firmware_created());
  EXPECT_EQ(xs[0].stream(), "firmware/p1/1.0");
  EXPECT_EQ(xs[0].time_ms(), test::t0_ms + 42);
  const auto& fw = xs[0].firmware_created().firmware();
  EXPECT_EQ(fw.status(), v1::FIRMWARE_STATUS_UNVERIFIED);
  EXPECT_EQ(fw.created_at_ms(), test::t0_ms + 42);
  EXPECT_EQ(fw.verification_device_keys_size(), 0);
  EXPECT_TRUE(fw.verification_failure().empty());
  EXPECT_EQ(fw.url(), cmd.firmware().url());
  EXPECT_EQ(fw.size(), cmd.firmware().size());
  EXPECT_EQ(fw.sha256(), cmd.firmware().sha256());
}

TEST(FirmwareRules, VersionIsUniqueWithinProduct) {
  auto c = with_created();
  auto err = failure_of(decide(c, test::cmd(create_cmd("p1", "1.0")), at(1)));
  EXPECT_EQ(err.code, errc::already_exists);
  EXPECT_NE(err.message.find("p1/1.0"), std::string::npos) << err.message;
  // The same version in another product is another firmware.
  auto xs = events_of(decide(c, test::cmd(create_cmd("p2", "1.0")), at(1)));
  ASSERT_EQ(xs.size(), 1u);
  test::apply_all(c, xs);
  EXPECT_EQ(c.entries.size(), 2u);
  ASSERT_NE(c.find("p2", "1.0"), nullptr);
}

// -- verify ------------------------------------------------------------------

TEST(FirmwareRules, VerificationWithoutDevicesIsRefused) {
  auto c = with_created();
  auto err = failure_of(decide(c, test::cmd(verify_cmd("p1", "1.0")), at(1)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message.rfind("device_keys: verification needs 1 to 5", 0), 0u)
      << err.message;
  EXPECT_EQ(c.find("p1", "1.0")->status, v1::FIRMWARE_STATUS_UNVERIFIED);
}

TEST(FirmwareRules, SkippingVerificationIsExplicitAndKeepsItsReason) {
  auto c = with_created();
  auto err =
      failure_of(decide(c, test::cmd(skip_cmd("p1", "1.0", " ")), at(1)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message.rfind("reason:", 0), 0u) << err.message;
  auto xs = events_of(decide(
      c, test::cmd(skip_cmd("p1", "1.0", "signed build of 2.0-rc3")), at(1)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_firmware_verification_skipped());
  EXPECT_EQ(xs[0].stream(), "firmware/p1/1.0");
  EXPECT_EQ(xs[0].firmware_verification_skipped().reason(),
            "signed build of 2.0-rc3");
  test::apply_all(c, xs);
  EXPECT_EQ(c.find("p1", "1.0")->status, v1::FIRMWARE_STATUS_VERIFIED);
  EXPECT_EQ(c.find("p1", "1.0")->verification_skip_reason,
            "signed build of 2.0-rc3");
  // Verified firmware is neither skipped nor verified again.
  EXPECT_EQ(
      failure_of(decide(c, test::cmd(skip_cmd("p1", "1.0", "again")), at(2)))
          .code,
      errc::failed_precondition);
  EXPECT_EQ(
      failure_of(decide(c, test::cmd(skip_cmd("p1", "9.9", "x")), at(2))).code,
      errc::not_found);
}

TEST(FirmwareRules, VerifyTwiceIsRefused) {
  auto c = with_created();
  test::apply_all(
      c, events_of(
             decide(c, test::cmd(skip_cmd("p1", "1.0", "lab tested")), at(1))));
  auto cmd = verify_cmd("p1", "1.0");
  cmd.add_device_keys("d1");
  auto err = failure_of(decide(c, test::cmd(cmd), at(2)));
  EXPECT_EQ(err.code, errc::failed_precondition);
  EXPECT_NE(err.message.find("already verified"), std::string::npos)
      << err.message;
}

TEST(FirmwareRules, VerifyWhileVerifyingIsRefused) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_started();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->add_device_keys("d1");
        }));
  auto cmd = verify_cmd("p1", "1.0");
  cmd.add_device_keys("d2");
  auto err = failure_of(decide(c, test::cmd(cmd), at(2)));
  EXPECT_EQ(err.code, errc::failed_precondition);
}

TEST(FirmwareRules, VerificationCanRunAgainAfterItFails) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_failed();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->set_reason("d1 timed out");
        }));
  auto cmd = verify_cmd("p1", "1.0");
  cmd.add_device_keys("d1");
  auto xs = events_of(decide(c, test::cmd(cmd), at(2)));
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_TRUE(xs[0].has_firmware_verification_started());
}

TEST(FirmwareRules, VerificationRunsOnAtMostFiveNamedDevices) {
  auto c = with_created();
  auto cmd = verify_cmd("p1", "1.0");
  for (auto k : {"d1", "d2", "d3", "d4", "d5", "d6"})
    cmd.add_device_keys(k);
  auto err = failure_of(decide(c, test::cmd(cmd), at(1)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message.rfind("device_keys", 0), 0u) << err.message;
  cmd.mutable_device_keys()->RemoveLast();
  cmd.set_timeout_seconds(600);
  auto xs = events_of(decide(c, test::cmd(cmd), at(1)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_firmware_verification_started());
  EXPECT_EQ(xs[0].firmware_verification_started().device_keys_size(), 5);
  EXPECT_EQ(xs[0].firmware_verification_started().timeout_seconds(), 600u);
  apply(c, xs[0]);
  EXPECT_EQ(c.find("p1", "1.0")->status, v1::FIRMWARE_STATUS_VERIFYING);
  // A run in progress cannot be started again.
  EXPECT_EQ(failure_of(decide(c, test::cmd(cmd), at(2))).code,
            errc::failed_precondition);
}

TEST(FirmwareRules, VerificationNamesEachDeviceOnceWithinTimeoutRange) {
  auto c = with_created();
  auto cmd = verify_cmd("p1", "1.0");
  cmd.add_device_keys("d1");
  cmd.add_device_keys("d1");
  EXPECT_EQ(failure_of(decide(c, test::cmd(cmd), at(1))).code,
            errc::invalid_argument);
  cmd.mutable_device_keys()->RemoveLast();
  cmd.set_timeout_seconds(299);
  EXPECT_EQ(failure_of(decide(c, test::cmd(cmd), at(1))).code,
            errc::invalid_argument);
}

TEST(FirmwareRules, VerifiedWhenEveryDeviceSucceededFailedOtherwise) {
  auto c = with_created();
  auto cmd = verify_cmd("p1", "1.0");
  cmd.add_device_keys("d1");
  apply(c, events_of(decide(c, test::cmd(cmd), at(1)))[0]);
  auto failed = decide_verification_result(c, "p1", "1.0", false,
                                           "device d1 failed: E1 boom", at(2));
  ASSERT_EQ(failed.size(), 1u);
  apply(c, failed[0]);
  EXPECT_EQ(c.find("p1", "1.0")->status,
            v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_EQ(c.find("p1", "1.0")->verification_failure,
            "device d1 failed: E1 boom");
  // Not VERIFYING any more: a late result changes nothing.
  EXPECT_TRUE(
      decide_verification_result(c, "p1", "1.0", true, "", at(3)).empty());
  // Verification can run again after it failed, and then succeed.
  apply(c, events_of(decide(c, test::cmd(cmd), at(4)))[0]);
  auto ok = decide_verification_result(c, "p1", "1.0", true, "", at(5));
  ASSERT_EQ(ok.size(), 1u);
  apply(c, ok[0]);
  EXPECT_EQ(c.find("p1", "1.0")->status, v1::FIRMWARE_STATUS_VERIFIED);
}

TEST(FirmwareRules, VerifyUnknownFirmwareIsNotFound) {
  auto c = with_created();
  EXPECT_EQ(
      failure_of(decide(c, test::cmd(verify_cmd("p1", "9.9")), at())).code,
      errc::not_found);
  EXPECT_EQ(
      failure_of(decide(c, test::cmd(verify_cmd("p2", "1.0")), at())).code,
      errc::not_found);
}

// -- delete ------------------------------------------------------------------

TEST(FirmwareRules, DeleteIsRefusedWhileInUse) {
  auto c = with_created();
  auto err =
      failure_of(decide(c, test::cmd(delete_cmd("p1", "1.0")), true, at(1)));
  EXPECT_EQ(err.code, errc::failed_precondition);
  EXPECT_NE(err.message.find("p1/1.0"), std::string::npos) << err.message;
}

TEST(FirmwareRules, DeleteIsRefusedDuringVerification) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_started();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->add_device_keys("d1");
        }));
  auto err =
      failure_of(decide(c, test::cmd(delete_cmd("p1", "1.0")), false, at(1)));
  EXPECT_EQ(err.code, errc::failed_precondition);
}

TEST(FirmwareRules, DeleteUnknownIsNotFound) {
  auto c = with_created();
  auto err =
      failure_of(decide(c, test::cmd(delete_cmd("p1", "9.9")), false, at(1)));
  EXPECT_EQ(err.code, errc::not_found);
}

TEST(FirmwareRules, DeleteRemovesFirmwareAndFreesItsVersion) {
  auto c = with_created();
  auto xs =
      events_of(decide(c, test::cmd(delete_cmd("p1", "1.0")), false, at(1)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_firmware_deleted());
  EXPECT_EQ(xs[0].firmware_deleted().product_key(), "p1");
  EXPECT_EQ(xs[0].firmware_deleted().version(), "1.0");
  test::apply_all(c, xs);
  EXPECT_EQ(c.find("p1", "1.0"), nullptr);
  // Once deleted, the version can be created again.
  EXPECT_EQ(
      events_of(decide(c, test::cmd(create_cmd("p1", "1.0")), at(2))).size(),
      1u);
}

// -- apply -------------------------------------------------------------------

TEST(FirmwareApply, FirmwareCreatedAddsEntry) {
  firmware_catalog c;
  auto fw = make_firmware("p1", "1.0");
  fw.set_status(v1::FIRMWARE_STATUS_UNVERIFIED);
  apply(c, firmware_event([&](event& e) {
          *e.mutable_firmware_created()->mutable_firmware() = fw;
        }));
  ASSERT_NE(c.find("p1", "1.0"), nullptr);
  EXPECT_EQ(to_proto(*c.find("p1", "1.0")).SerializeAsString(),
            fw.SerializeAsString());
}

TEST(FirmwareApply, VerificationStartedMarksVerifying) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_failed();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->set_reason("old failure");
        }));
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_started();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->add_device_keys("d1");
          x->add_device_keys("d2");
          x->set_timeout_seconds(600);
        }));
  const auto* fw = c.find("p1", "1.0");
  EXPECT_EQ(fw->status, v1::FIRMWARE_STATUS_VERIFYING);
  ASSERT_EQ(fw->verification_devices.size(), 2u);
  EXPECT_EQ(fw->verification_devices[0], "d1");
  EXPECT_EQ(fw->verification_devices[1], "d2");
  EXPECT_TRUE(fw->verification_failure.empty());
}

TEST(FirmwareApply, VerifiedMarksVerified) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          e.mutable_firmware_verified()->set_product_key("p1");
          e.mutable_firmware_verified()->set_version("1.0");
        }));
  EXPECT_EQ(c.find("p1", "1.0")->status, v1::FIRMWARE_STATUS_VERIFIED);
}

TEST(FirmwareApply, VerificationFailedKeepsReason) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          auto* x = e.mutable_firmware_verification_failed();
          x->set_product_key("p1");
          x->set_version("1.0");
          x->set_reason("d2 failed: E_FLASH");
        }));
  const auto* fw = c.find("p1", "1.0");
  EXPECT_EQ(fw->status, v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_EQ(fw->verification_failure, "d2 failed: E_FLASH");
}

TEST(FirmwareApply, DeletedRemovesEntry) {
  auto c = with_created();
  apply(c, firmware_event([](event& e) {
          e.mutable_firmware_deleted()->set_product_key("p1");
          e.mutable_firmware_deleted()->set_version("1.0");
        }));
  EXPECT_TRUE(c.entries.empty());
}

TEST(FirmwareApply, EventsForUnknownFirmwareOrOtherStreamsAreRefused) {
  auto c = with_created();
  auto before = to_proto(*c.find("p1", "1.0")).SerializeAsString();
  auto err = apply(c, firmware_event([](event& e) {
                     e.mutable_firmware_verified()->set_product_key("p1");
                     e.mutable_firmware_verified()->set_version("9.9");
                   }));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::corrupted);
  EXPECT_NE(err->message.find("p1/9.9 does not exist"), std::string::npos);
  EXPECT_TRUE(apply(c, firmware_event([](event& e) {
                      e.mutable_device_connected()->set_product_key("p1");
                      e.mutable_device_connected()->set_device_key("d1");
                    })));
  // Created twice.
  EXPECT_TRUE(apply(c, firmware_event([](event& e) {
                      *e.mutable_firmware_created()->mutable_firmware() =
                          make_firmware("p1", "1.0");
                    })));
  ASSERT_EQ(c.entries.size(), 1u);
  EXPECT_EQ(to_proto(*c.find("p1", "1.0")).SerializeAsString(), before);
}

} // namespace
