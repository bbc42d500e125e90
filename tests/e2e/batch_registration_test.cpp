/// End-to-end tests of batched registration (`RegisterDevices`) with the
/// real fotad: each item decided as its own RegisterDevice would be (keys,
/// ownership, products, quotas), one result per item, nothing written for a
/// refused item, the devices registered online on the calling session and
/// durable across a restart, and the batch's own limits.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/processes.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace fota::test;

constexpr const char* cam = "cam";

/// gw-a serves cam, at most 4 devices; gw-b serves cam and lamp.
constexpr const char* two_gateways = R"(
[[gateways]]
name = "gw-a"
token = "token-a"
products = ["cam"]
max_devices = 4

[[gateways]]
name = "gw-b"
token = "token-b"
products = ["cam", "lamp"]
)";

v1::RegisterDevice item(const std::string& product, const std::string& device,
                        const std::string& version = "1.0.0") {
  v1::RegisterDevice x;
  x.set_product_key(product);
  x.set_device_key(device);
  x.set_version(version);
  return x;
}

class BatchRegistration : public ::testing::Test {
protected:
  void TearDown() override {
    if (HasFailure())
      dir_.keep();
  }

  /// Starts fotad with the two gateways; returns it once it listens.
  process start_node() {
    auto n = starts_++;
    auto config = dir_ / "fotad.toml";
    std::ofstream{config} << two_gateways;
    process p{bin_dir() / "fotad",
              {"--data-dir", (dir_ / "data").string(), "--listen", "0",
               "--config", config.string()},
              dir_ / ("fotad-" + std::to_string(n) + ".out"),
              dir_ / ("fotad-" + std::to_string(n) + ".err")};
    port_ = listening_port(p).value_or(0);
    if (port_ == 0)
      ADD_FAILURE() << "fotad did not start: " << p.err();
    return p;
  }

  /// A client authenticated with `token`.
  client login(const std::string& token) {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    EXPECT_TRUE(cl) << (cl ? "" : cl.error().message);
    auto h = cl->hello(token, "batch-test");
    EXPECT_TRUE(h && h->status() == v1::STATUS_CODE_OK)
        << (h ? h->message() : h.error().message);
    return std::move(*cl);
  }

  /// The device as the operator sees it, or the response's status.
  static v1::Response get_device(client& op, const std::string& product,
                                 const std::string& device) {
    v1::ClientFrame f;
    f.mutable_get_device()->set_product_key(product);
    f.mutable_get_device()->set_device_key(device);
    auto r = op.call(f, 10s);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : v1::Response{};
  }

  static v1::StatusCode status_of(client& cl, const v1::ClientFrame& f) {
    auto r = cl.call(f, 10s);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? r->status() : v1::STATUS_CODE_UNSPECIFIED;
  }

  temp_dir dir_{"fota-batch"};
  uint16_t port_ = 0;
  int starts_ = 0;
};

TEST_F(BatchRegistration, EachItemIsDecidedOnItsOwnAndOnlyGoodOnesAreWritten) {
  auto node = start_node();
  ASSERT_NE(port_, 0);
  auto a = login("token-a");
  auto b = login("token-b");
  auto op = login("operator-token");
  // gw-b owns cam/foreign.
  auto owned = b.register_devices({item(cam, "foreign")}, true);
  ASSERT_TRUE(owned && owned->status() == v1::STATUS_CODE_OK);
  ASSERT_EQ(owned->registered().results(0).status(), v1::STATUS_CODE_OK);

  std::vector<v1::RegisterDevice> batch{
      item(cam, "g1"),                  // 0: OK
      item(cam, ""),                    // 1: invalid key
      item(cam, "foreign", "6.6.6"),    // 2: another gateway's
      item("lamp", "l1"),               // 3: a product gw-a does not serve
      item(cam, "g2"),                  // 4: OK
      item(cam, std::string(200, 'k')), // 5: key beyond its limit
      item(cam, "g3"),                  // 6: OK
      item(cam, "g4"),                  // 7: OK, gw-a's fourth device
      item(cam, "g5"),                  // 8: beyond gw-a's quota
      item(cam, "g1"),                  // 9: g1 again: idempotent
  };
  auto r = a.register_devices(batch, true);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status(), v1::STATUS_CODE_OK) << r->message();
  const auto& results = r->registered().results();
  ASSERT_EQ(results.size(), static_cast<int>(batch.size()));
  std::vector<v1::StatusCode> expected{
      v1::STATUS_CODE_OK,
      v1::STATUS_CODE_INVALID_ARGUMENT,
      v1::STATUS_CODE_PERMISSION_DENIED,
      v1::STATUS_CODE_PERMISSION_DENIED,
      v1::STATUS_CODE_OK,
      v1::STATUS_CODE_INVALID_ARGUMENT,
      v1::STATUS_CODE_OK,
      v1::STATUS_CODE_OK,
      v1::STATUS_CODE_RESOURCE_EXHAUSTED,
      v1::STATUS_CODE_OK,
  };
  for (int i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].index(), static_cast<uint32_t>(i));
    EXPECT_EQ(results[i].status(), expected[static_cast<size_t>(i)])
        << "item " << i << ": " << results[i].message();
    if (results[i].status() != v1::STATUS_CODE_OK) {
      EXPECT_EQ(
          results[i].message().rfind("devices[" + std::to_string(i) + "]: ", 0),
          0u)
          << results[i].message();
    }
  }
  EXPECT_EQ(r->registered().failed(), 5u);
  EXPECT_NE(results[1].message().find("device_key"), std::string::npos)
      << results[1].message();
  EXPECT_NE(results[2].message().find("belongs to gateway gw-b"),
            std::string::npos)
      << results[2].message();
  EXPECT_NE(results[3].message().find("gateway gw-a may not serve product "
                                      "lamp"),
            std::string::npos)
      << results[3].message();
  EXPECT_NE(results[5].message().find("at most 128"), std::string::npos)
      << results[5].message();
  EXPECT_NE(results[8].message().find("gateway gw-a holds 4 devices"),
            std::string::npos)
      << results[8].message();
  EXPECT_EQ(results[0].device().device_key(), "g1");
  EXPECT_TRUE(results[0].device().online());
  EXPECT_EQ(results[0].device().gateway(), "gw-a");

  // The good ones are registered and online, owned by gw-a; nothing was
  // written for the others.
  for (const char* key : {"g1", "g2", "g3", "g4"}) {
    auto d = get_device(op, cam, key);
    ASSERT_EQ(d.status(), v1::STATUS_CODE_OK) << key << ": " << d.message();
    EXPECT_TRUE(d.device().online()) << key;
    EXPECT_EQ(d.device().gateway(), "gw-a") << key;
  }
  auto foreign = get_device(op, cam, "foreign");
  EXPECT_EQ(foreign.device().version(), "1.0.0");
  EXPECT_EQ(foreign.device().gateway(), "gw-b");
  EXPECT_EQ(get_device(op, cam, "g5").status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_EQ(get_device(op, "lamp", "l1").status(), v1::STATUS_CODE_NOT_FOUND);

  // Online on gw-a's session: a push for g3 comes there.
  v1::ClientFrame fw;
  auto* f = fw.mutable_create_firmware()->mutable_firmware();
  f->set_product_key(cam);
  f->set_version("2.0.0");
  f->set_url("https://firmware.example/cam-2.0.0.bin");
  f->set_size(4096);
  f->set_sha256(std::string(64, 'a'));
  ASSERT_EQ(status_of(op, fw), v1::STATUS_CODE_OK);
  v1::ClientFrame skip;
  skip.mutable_skip_verification()->set_product_key(cam);
  skip.mutable_skip_verification()->set_version("2.0.0");
  skip.mutable_skip_verification()->set_reason("test image");
  ASSERT_EQ(status_of(op, skip), v1::STATUS_CODE_OK);
  v1::ClientFrame task;
  auto* spec = task.mutable_create_task()->mutable_spec();
  spec->set_name("batch push");
  spec->set_product_key(cam);
  spec->set_target_version("2.0.0");
  spec->add_source_versions("1.0.0");
  spec->set_strategy(v1::STRATEGY_SNAPSHOT);
  spec->set_method(v1::METHOD_CLOUD_PUSH);
  spec->mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  spec->mutable_scope()->mutable_device_keys()->add_device_keys("g3");
  ASSERT_EQ(status_of(op, task), v1::STATUS_CODE_OK);
  std::vector<std::string> pushed;
  auto collect = [&](const v1::Push& p) {
    if (p.has_upgrade())
      pushed.push_back(p.upgrade().device_key());
  };
  EXPECT_TRUE(eventually(
      [&] {
        auto n = a.poll(
            100, [](uint64_t, const v1::Response&) {}, collect);
        return !n || !pushed.empty();
      },
      30s));
  ASSERT_EQ(pushed.size(), 1u);
  EXPECT_EQ(pushed[0], "g3");

  // Durable: after a restart the devices are there, still gw-a's, and the
  // refused ones are not.
  node.stop();
  node = start_node();
  ASSERT_NE(port_, 0);
  auto op2 = login("operator-token");
  for (const char* key : {"g1", "g2", "g3", "g4"}) {
    auto d = get_device(op2, cam, key);
    ASSERT_EQ(d.status(), v1::STATUS_CODE_OK) << key << ": " << d.message();
    EXPECT_EQ(d.device().gateway(), "gw-a") << key;
  }
  EXPECT_EQ(get_device(op2, cam, "g5").status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_EQ(get_device(op2, cam, "foreign").device().gateway(), "gw-b");
  // The quota still counts them: gw-a has no room for a fifth.
  auto a2 = login("token-a");
  auto again = a2.register_devices({item(cam, "g5")}, false);
  ASSERT_TRUE(again && again->status() == v1::STATUS_CODE_OK);
  EXPECT_EQ(again->registered().results(0).status(),
            v1::STATUS_CODE_RESOURCE_EXHAUSTED);
}

TEST_F(BatchRegistration, ABatchBeyondItsLimitIsRefusedWhole) {
  auto node = start_node();
  ASSERT_NE(port_, 0);
  auto b = login("token-b");
  std::vector<v1::RegisterDevice> many;
  for (int i = 0; i < 10001; ++i)
    many.push_back(item("lamp", "l" + std::to_string(i)));
  auto r = b.register_devices(many, true);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status(), v1::STATUS_CODE_INVALID_ARGUMENT);
  EXPECT_NE(r->message().find("at most 10000"), std::string::npos)
      << r->message();
  // An empty batch has nothing to refuse: OK, no results.
  auto none = b.register_devices({}, true);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status(), v1::STATUS_CODE_OK);
  EXPECT_EQ(none->registered().results_size(), 0);
  // Nothing was registered; 10,000 at once is fine.
  auto op = login("operator-token");
  EXPECT_EQ(get_device(op, "lamp", "l0").status(), v1::STATUS_CODE_NOT_FOUND);
  many.pop_back();
  auto full = b.register_devices(many, true, 60s);
  ASSERT_TRUE(full) << full.error().message;
  ASSERT_EQ(full->status(), v1::STATUS_CODE_OK) << full->message();
  EXPECT_EQ(full->registered().results_size(), 10000);
  EXPECT_EQ(full->registered().failed(), 0u);
  auto last = get_device(op, "lamp", "l9999");
  EXPECT_EQ(last.status(), v1::STATUS_CODE_OK);
  EXPECT_TRUE(last.device().online());
}

TEST_F(BatchRegistration, OnlyAGatewayMaySendIt) {
  auto node = start_node();
  ASSERT_NE(port_, 0);
  auto op = login("operator-token");
  auto r = op.register_devices({item(cam, "x")}, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status(), v1::STATUS_CODE_PERMISSION_DENIED) << r->message();
}

} // namespace
