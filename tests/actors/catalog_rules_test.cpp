/// The remaining rules of the catalog, tested on a whole node: verification
/// needs 1 to 5 devices and skipping it is explicit and recorded, an offline
/// verification device fails the run at its timeout, firmware a task is
/// still being created for cannot be deleted, every list is paged, and a
/// product with trusted keys takes only signed firmware, whose pushes and
/// offers carry what a device verifies and nothing a client smuggled in.
#include "events/manifest.hpp"
#include "tests/actors/rollout_fixture.hpp"

#include <chrono>
#include <string>
#include <vector>

#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using namespace fota;
using fota::test::product;

class VerificationRules : public fota::test::rollout_fixture {};
class FirmwareDeletion : public fota::test::rollout_fixture {};
class Paging : public fota::test::rollout_fixture {};

/// A node on which product `p` trusts one signing key.
class SignedFirmware : public fota::test::rollout_fixture {
protected:
  SignedFirmware() {
    auto k = generate_key_pair();
    EXPECT_TRUE(k);
    if (k)
      keys = *k;
    firmware_rules.signing_keys[product] = {keys.public_raw};
  }

  /// Firmware `version`, signed with the trusted key.
  v1::Firmware signed_firmware(const std::string& version) {
    auto fw = firmware_of(version);
    auto sig = sign_message(keys.private_pem, manifest_of(fw));
    EXPECT_TRUE(sig);
    if (sig)
      fw.set_signature(*sig);
    return fw;
  }

  /// Whether a device holding the trusted key accepts what it was given.
  bool device_accepts(const v1::Firmware& fw, const std::string& manifest) {
    return manifest == manifest_of(fw) &&
           verify_signature(keys.public_raw, manifest, fw.signature());
  }

  key_pair keys;
};

TEST_F(VerificationRules, VerifyingWithoutDevicesIsRefused) {
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  auto r = verify_firmware("2.0", {});
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("verification needs 1 to 5 devices"),
            std::string::npos)
      << r.message();
  EXPECT_EQ(get_firmware("2.0").status(), v1::FIRMWARE_STATUS_UNVERIFIED);
}

TEST_F(VerificationRules, SkippedVerificationKeepsItsReasonWithTheFirmware) {
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  v1::SkipVerification skip;
  skip.set_product_key(product);
  skip.set_version("2.0");
  skip.set_reason("same image as the 1.9 field test");
  auto r = call(skip);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.firmware().status(), v1::FIRMWARE_STATUS_VERIFIED);
  auto fw = get_firmware("2.0");
  EXPECT_EQ(fw.verification_skip_reason(), "same image as the 1.9 field test");
  // It survives a restart: the reason is in the log.
  stop_node();
  start_node();
  EXPECT_EQ(get_firmware("2.0").verification_skip_reason(),
            "same image as the 1.9 field test");
}

TEST_F(VerificationRules, OfflineVerificationDeviceFailsAtTheTimeout) {
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  register_online("up", "1.0");
  ASSERT_EQ(register_device("down", "1.0").status(), v1::STATUS_CODE_OK);
  auto r = verify_firmware("2.0", {"up", "down"}, 600);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  EXPECT_EQ(r.firmware().status(), v1::FIRMWARE_STATUS_VERIFYING);
  run_for(9min);
  EXPECT_EQ(get_firmware("2.0").status(), v1::FIRMWARE_STATUS_VERIFYING);
  run_for(1min);
  auto fw = get_firmware("2.0");
  EXPECT_EQ(fw.status(), v1::FIRMWARE_STATUS_VERIFICATION_FAILED);
  EXPECT_NE(fw.verification_failure().find("device "), std::string::npos)
      << fw.verification_failure();
  EXPECT_NE(fw.verification_failure().find("timed out"), std::string::npos)
      << fw.verification_failure();
}

TEST_F(FirmwareDeletion, TaskBeingCreatedUsesItsFirmware) {
  create_firmware_verified("2.0");
  register_online("a", "1.0");
  // The task has reserved its firmware, but nothing of it is durable yet.
  auto created = send_request(create_task_frame(snapshot_spec("1.0", "2.0")));
  run_holding_journal();
  ASSERT_FALSE(*created);
  v1::DeleteFirmware del;
  del.set_product_key(product);
  del.set_version("2.0");
  auto deleted = send_request(frame_of(del));
  sched.run();
  ASSERT_TRUE(*deleted);
  EXPECT_EQ((*deleted)->status(), v1::STATUS_CODE_FAILED_PRECONDITION)
      << (*deleted)->message();
  ASSERT_TRUE(*created);
  EXPECT_EQ((*created)->status(), v1::STATUS_CODE_OK);
  // Once the task has ended, the firmware can go.
  ASSERT_EQ(cancel((*created)->task().task_id()).status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(call(del).status(), v1::STATUS_CODE_OK);
}

TEST_F(FirmwareDeletion, RefusedTaskLetsGoOfItsFirmware) {
  ASSERT_EQ(create_firmware("2.0").status(), v1::STATUS_CODE_OK);
  // Not verified: the task is refused after it reserved the firmware.
  EXPECT_EQ(create_task(snapshot_spec("1.0", "2.0")).status(),
            v1::STATUS_CODE_FAILED_PRECONDITION);
  v1::DeleteFirmware del;
  del.set_product_key(product);
  del.set_version("2.0");
  EXPECT_EQ(call(del).status(), v1::STATUS_CODE_OK);
}

/// Reads every page of a list with `page(token)`, which returns the items
/// and the next token, and returns the pages' sizes.
template <class Page>
std::vector<size_t> read_pages(Page page) {
  std::vector<size_t> sizes;
  std::string token;
  for (int guard = 0; guard < 100; ++guard) {
    auto [n, next] = page(token);
    sizes.push_back(n);
    if (next.empty())
      break;
    token = next;
  }
  return sizes;
}

TEST_F(Paging, FirmwareTasksAndTreesArePaged) {
  for (const auto* v : {"2.0", "2.1", "2.2", "2.3", "2.4"})
    create_firmware_verified(v);
  auto firmware = read_pages([&](const std::string& token) {
    v1::ListFirmware req;
    req.set_page_size(2);
    req.set_page_token(token);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return std::make_pair(
        static_cast<size_t>(r.firmware_list().firmwares_size()),
        r.firmware_list().next_page_token());
  });
  EXPECT_EQ(firmware, (std::vector<size_t>{2, 2, 1}));
  for (const auto* v : {"2.0", "2.1", "2.2"})
    ASSERT_NE(create_task_id(snapshot_spec("1.0", v)), 0u);
  auto tasks = read_pages([&](const std::string& token) {
    v1::ListTasks req;
    req.set_page_size(2);
    req.set_page_token(token);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return std::make_pair(static_cast<size_t>(r.task_list().tasks_size()),
                          r.task_list().next_page_token());
  });
  EXPECT_EQ(tasks, (std::vector<size_t>{2, 1}));
  for (const auto* id : {"t1", "t2", "t3"}) {
    v1::AssetTree tree;
    tree.set_tree_id(id);
    tree.set_product_key(product);
    tree.add_nodes()->set_node_id("root");
    ASSERT_EQ(create_tree(tree).status(), v1::STATUS_CODE_OK);
  }
  auto trees = read_pages([&](const std::string& token) {
    v1::ListAssetTrees req;
    req.set_product_key(product);
    req.set_page_size(1);
    req.set_page_token(token);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return std::make_pair(static_cast<size_t>(r.asset_tree_list().trees_size()),
                          r.asset_tree_list().next_page_token());
  });
  EXPECT_EQ(trees, (std::vector<size_t>{1, 1, 1}));
}

TEST_F(Paging, PageSizeAndTokensAreChecked) {
  v1::ListTasks big;
  big.set_page_size(1001);
  auto r = call(big);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("page_size"), std::string::npos) << r.message();
  v1::ListFirmware bad;
  bad.set_page_token("not-a-token");
  r = call(bad);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("page_token"), std::string::npos) << r.message();
}

// -- signed firmware ---------------------------------------------------------

TEST_F(SignedFirmware, KeyedProductRefusesUnsignedFirmwareAndWritesNothing) {
  auto r = create_firmware("2.0");
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r.message().find("firmware p/2.0 is not signed"), std::string::npos)
      << r.message();
  v1::GetFirmware get;
  get.set_product_key(product);
  get.set_version("2.0");
  EXPECT_EQ(call(get).status(), v1::STATUS_CODE_NOT_FOUND);
  // Signed with another key: refused too.
  auto other = generate_key_pair();
  ASSERT_TRUE(other);
  v1::CreateFirmware create;
  *create.mutable_firmware() = firmware_of("2.0");
  create.mutable_firmware()->set_signature(
      *sign_message(other->private_pem, manifest_of(create.firmware())));
  r = call(create);
  EXPECT_EQ(r.status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_EQ(r.message(), "firmware.signature: firmware p/2.0: signature does "
                         "not verify with any trusted key of product p");
}

TEST_F(SignedFirmware,
       PushAndOfferCarryWhatTheDeviceVerifiesAndNoUnknownField) {
  v1::ClientFrame f;
  *f.mutable_create_firmware()->mutable_firmware() = signed_firmware("2.0");
  auto* sent = f.mutable_create_firmware()->mutable_firmware();
  sent->GetReflection()->MutableUnknownFields(sent)->AddLengthDelimited(
      99, "smuggled");
  auto r = call_frame(f);
  ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  auto smuggled = [](const google::protobuf::Message& m) {
    return m.SerializeAsString().find("smuggled") != std::string::npos;
  };
  EXPECT_FALSE(smuggled(r));
  auto fw = get_firmware("2.0");
  EXPECT_EQ(fw.GetReflection()->GetUnknownFields(fw).field_count(), 0);
  EXPECT_FALSE(smuggled(fw));
  v1::SkipVerification skip;
  skip.set_product_key(product);
  skip.set_version("2.0");
  skip.set_reason("signed build");
  ASSERT_EQ(call(skip).status(), v1::STATUS_CODE_OK);
  // Cloud push.
  register_online("pushed", "1.0");
  ASSERT_NE(create_task_id(snapshot_spec("1.0", "2.0")), 0u);
  auto ups = upgrades();
  ASSERT_EQ(ups.size(), 1u);
  EXPECT_TRUE(device_accepts(ups[0].firmware(), ups[0].manifest()));
  EXPECT_EQ(ups[0].firmware().signature(), fw.signature());
  EXPECT_FALSE(smuggled(ups[0]));
  // Device request: the offer carries the same.
  register_online("asking", "1.1");
  auto spec = snapshot_spec("1.1", "2.0");
  spec.set_method(v1::METHOD_DEVICE_REQUEST);
  ASSERT_NE(create_task_id(spec), 0u);
  auto answer = request_upgrade("asking");
  ASSERT_EQ(answer.status(), v1::STATUS_CODE_OK) << answer.message();
  ASSERT_TRUE(answer.offer().available()) << answer.offer().reason();
  EXPECT_TRUE(
      device_accepts(answer.offer().firmware(), answer.offer().manifest()));
  EXPECT_FALSE(smuggled(answer));
  // A tampered push is what a device refuses.
  auto tampered = ups[0];
  tampered.mutable_firmware()->set_url("https://evil.example/x.bin");
  EXPECT_FALSE(device_accepts(tampered.firmware(), tampered.manifest()));
  tampered.set_manifest(manifest_of(tampered.firmware()));
  EXPECT_FALSE(device_accepts(tampered.firmware(), tampered.manifest()));
}

TEST_F(SignedFirmware, AcceptedFirmwareReplaysWhateverTheKeysAreLater) {
  v1::CreateFirmware create;
  *create.mutable_firmware() = signed_firmware("2.0");
  ASSERT_EQ(call(create).status(), v1::STATUS_CODE_OK);
  // The key is rotated away: the log still replays, the record is intact.
  stop_node();
  auto replacement = generate_key_pair();
  ASSERT_TRUE(replacement);
  firmware_rules.signing_keys[product] = {replacement->public_raw};
  start_node();
  EXPECT_EQ(get_firmware("2.0").signature(), create.firmware().signature());
}

} // namespace
