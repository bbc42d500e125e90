/// Tests of the firmware rules: field validation, URL schemes, signatures of
/// products with trusted keys, unique versions within a product, the
/// verification lifecycle, deletion and `apply` of every firmware event.
#include "events/firmware.hpp"
#include "events/manifest.hpp"
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

/// The default policy: https only, no product with trusted keys.
const firmware_policy policy;

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
  test::apply_all(c, events_of(decide(c, test::cmd(create_cmd("p1", "1.0")),
                                      policy, at())));
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
    auto err = failure_of(decide(empty, test::cmd(cmd), policy, at()));
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
  auto xs = events_of(decide(empty, test::cmd(cmd), policy, at(42)));
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

// -- URL schemes and manifest fields
// -------------------------------------------

TEST(FirmwareRules, UrlSchemesAreHttpsByDefaultAndConfigurable) {
  firmware_catalog empty;
  auto with_url = [](const std::string& url) {
    auto cmd = create_cmd("p1", "1.0");
    cmd.mutable_firmware()->set_url(url);
    return test::cmd(cmd);
  };
  EXPECT_TRUE(
      decide(empty, with_url("https://fw.example/a.bin"), policy, at()));
  EXPECT_TRUE(
      decide(empty, with_url("HTTPS://fw.example/a.bin"), policy, at()));
  auto err = failure_of(
      decide(empty, with_url("http://fw.example/a.bin"), policy, at()));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message,
            "firmware.url: scheme http is not allowed; this node allows https");
  firmware_policy both;
  both.url_schemes = {"https", "http"};
  EXPECT_TRUE(decide(empty, with_url("http://fw.example/a.bin"), both, at()));
  EXPECT_FALSE(decide(empty, with_url("ftp://fw.example/a.bin"), both, at()));
  for (const char* bad :
       {"fw.example/a.bin", "https://", "://fw.example", "1x://fw.example",
        "https://fw.example/a b.bin", "https://fw.example/a.bin\nsize=1"}) {
    SCOPED_TRACE(bad);
    auto e = failure_of(decide(empty, with_url(bad), both, at()));
    EXPECT_EQ(e.code, errc::invalid_argument);
    EXPECT_EQ(e.message.rfind("firmware.url: ", 0), 0u) << e.message;
  }
}

TEST(FirmwareRules, ManifestFieldsHoldNoControlCharacters) {
  firmware_catalog empty;
  auto cmd = create_cmd("p1", "1.0\nurl=https://evil.example/");
  auto err = failure_of(decide(empty, test::cmd(cmd), policy, at()));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message,
            "firmware.version: must not contain control characters");
  cmd = create_cmd(std::string{"p\x01"}, "1.0");
  err = failure_of(decide(empty, test::cmd(cmd), policy, at()));
  EXPECT_EQ(err.message.rfind("firmware.product_key: ", 0), 0u) << err.message;
}

// -- signatures
// ----------------------------------------------------------------

/// A node policy in which product `cam` trusts two keys (rotation) and `p1`
/// none.
struct FirmwareSignatures : ::testing::Test {
  void SetUp() override {
    auto a = generate_key_pair();
    auto b = generate_key_pair();
    auto c = generate_key_pair();
    ASSERT_TRUE(a && b && c);
    current = *a;
    previous = *b;
    stranger = *c;
    keyed.signing_keys["cam"] = {previous.public_raw, current.public_raw};
  }

  /// CreateFirmware for cam/2.0.0, signed with `key` unless it is empty.
  create_firmware cam(const std::string& key) {
    auto cmd = test::cmd(create_cmd("cam", "2.0.0"));
    if (!key.empty()) {
      auto sig =
          sign_message(key, canonical_manifest(cmd.product, cmd.version,
                                               cmd.size, cmd.sha256, cmd.url));
      EXPECT_TRUE(sig);
      cmd.signature = *sig;
    }
    return cmd;
  }

  key_pair current;
  key_pair previous;
  key_pair stranger;
  firmware_policy keyed;
  firmware_catalog empty;
};

TEST_F(FirmwareSignatures, KeyedProductRefusesUnsignedFirmware) {
  auto err = failure_of(decide(empty, cam(""), keyed, at()));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message,
            "firmware.signature: firmware cam/2.0.0 is not signed; product cam "
            "accepts only firmware whose manifest is signed with one of its 2 "
            "trusted keys");
}

TEST_F(FirmwareSignatures, KeyedProductRefusesASignatureNoTrustedKeyVerifies) {
  auto err = failure_of(decide(empty, cam(stranger.private_pem), keyed, at()));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_EQ(err.message,
            "firmware.signature: firmware cam/2.0.0: signature does not verify "
            "with any trusted key of product cam");
  auto short_sig = cam("");
  short_sig.signature = "0123456789";
  err = failure_of(decide(empty, short_sig, keyed, at()));
  EXPECT_EQ(err.message, "firmware.signature: firmware cam/2.0.0: an Ed25519 "
                         "signature is 64 bytes, got 10");
}

TEST_F(FirmwareSignatures, SignatureCoversEveryManifestField) {
  struct row {
    const char* name;
    std::function<void(create_firmware&)> change;
  };
  const row rows[] = {
      {"version", [](auto& c) { c.version = "2.0.1"; }},
      {"size", [](auto& c) { c.size += 1; }},
      {"sha256", [](auto& c) { c.sha256[0] = c.sha256[0] == 'a' ? 'b' : 'a'; }},
      {"url", [](auto& c) { c.url = "https://evil.example/x.bin"; }},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    auto cmd = cam(current.private_pem);
    r.change(cmd);
    auto err = failure_of(decide(empty, cmd, keyed, at()));
    EXPECT_NE(err.message.find("does not verify"), std::string::npos)
        << err.message;
  }
  // The description is not part of the manifest.
  auto cmd = cam(current.private_pem);
  cmd.description = "changed";
  EXPECT_TRUE(decide(empty, cmd, keyed, at()));
}

TEST_F(FirmwareSignatures, AnyTrustedKeyVerifiesAndTheSignatureIsKept) {
  for (const auto* key : {&current, &previous}) {
    auto cmd = cam(key->private_pem);
    auto xs = events_of(decide(empty, cmd, keyed, at()));
    ASSERT_EQ(xs.size(), 1u);
    const auto& fw = xs[0].firmware_created().firmware();
    EXPECT_EQ(fw.signature(), cmd.signature);
    EXPECT_TRUE(
        verify_signature(key->public_raw, manifest_of(fw), fw.signature()));
  }
}

TEST_F(FirmwareSignatures,
       ProductWithoutKeysAcceptsUnsignedAndOpaqueSignatures) {
  auto cmd = test::cmd(create_cmd("p1", "1.0"));
  EXPECT_TRUE(decide(empty, cmd, keyed, at()));
  cmd.signature = "opaque, someone else's scheme";
  auto xs = events_of(decide(empty, cmd, keyed, at()));
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].firmware_created().firmware().signature(), cmd.signature);
}

TEST(FirmwareRules, VersionIsUniqueWithinProduct) {
  auto c = with_created();
  auto err =
      failure_of(decide(c, test::cmd(create_cmd("p1", "1.0")), policy, at(1)));
  EXPECT_EQ(err.code, errc::already_exists);
  EXPECT_NE(err.message.find("p1/1.0"), std::string::npos) << err.message;
  // The same version in another product is another firmware.
  auto xs =
      events_of(decide(c, test::cmd(create_cmd("p2", "1.0")), policy, at(1)));
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
      events_of(decide(c, test::cmd(create_cmd("p1", "1.0")), policy, at(2)))
          .size(),
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
