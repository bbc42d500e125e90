/// End-to-end tests of the MQTT side: a real Mosquitto, the real fotad and
/// fota-mqtt as separate processes, and devices that know only the topic
/// contract (docs/protocol.md, "MQTT devices"): a Paho client in the test
/// and the example device (examples/device/fota_device.py). Cloud push, an
/// offline device pushed when it comes back, device request, failure codes,
/// an unacknowledged push sent again, a bridge restart mid-rollout, and bad
/// payloads answered with 4xx and not forwarded. Waits poll a condition
/// with a deadline; no assertion rests on a fixed sleep.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/mosquitto.hpp"
#include "tests/support/processes.hpp"

#include <csignal>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mqtt/async_client.h>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using namespace fota;
using namespace fota::test;
using json = nlohmann::json;

constexpr const char* product = "mqtt-product";
constexpr const char* target = "2.0.0";
constexpr auto wait_time = 30s;

/// A device that knows only the topic contract, on its own MQTT
/// connection, with `{"online": false}` as its retained last will.
class mqtt_device {
public:
  mqtt_device(const std::string& url, std::string key)
    : key_(std::move(key)),
      cli_(url, std::string{product} + "." + key_ + ".test",
           mqtt::create_options(MQTTVERSION_3_1_1)) {
    mqtt::connect_options opts;
    opts.set_clean_session(true);
    opts.set_will(mqtt::will_options(topic("status"),
                                     std::string{R"({"online":false})"}, 1,
                                     true));
    cli_.start_consuming();
    cli_.connect(opts)->wait();
    cli_.subscribe(
            "/sys/" + std::string{product} + "/" + key_ + "/ota/device/+", 1)
        ->wait();
  }

  ~mqtt_device() {
    try {
      if (cli_.is_connected())
        cli_.disconnect()->wait_for(2s);
    } catch (const mqtt::exception&) {
      // Closing anyway.
    }
  }

  mqtt_device(const mqtt_device&) = delete;

  mqtt_device& operator=(const mqtt_device&) = delete;

  const std::string& key() const noexcept { return key_; }

  std::string topic(const std::string& kind) const {
    return "/sys/" + std::string{product} + "/" + key_ + "/ota/device/" + kind;
  }

  void publish_raw(const std::string& kind, const std::string& payload,
                   bool retained = false) {
    cli_.publish(topic(kind), payload.data(), payload.size(), 1, retained)
        ->wait();
  }

  void online() { publish_raw("status", R"({"online":true})", true); }

  /// Publishes a request on `kind` and returns its reply (null on timeout).
  json request(const std::string& kind, const std::string& method,
               json params) {
    auto id = std::to_string(++next_id_);
    json msg{{"id", id},
             {"version", "1.0"},
             {"method", method},
             {"params", std::move(params)}};
    publish_raw(kind, msg.dump());
    return reply_to(kind, id);
  }

  /// Publishes `payload` as it is on `kind` and returns the reply with id
  /// `id` (null on timeout).
  json raw_request(const std::string& kind, const std::string& payload,
                   const std::string& id) {
    publish_raw(kind, payload);
    return reply_to(kind, id);
  }

  json inform(const std::string& version) {
    return request("inform", "ota.device.inform", {{"version", version}});
  }

  json progress(int step, const std::string& desc = "") {
    return request("progress", "ota.device.progress",
                   {{"step", step}, {"desc", desc}});
  }

  /// The next message on `kind` (null when none comes in time).
  json next(const std::string& kind,
            std::chrono::milliseconds timeout = wait_time) {
    auto deadline = steady_clock::now() + timeout;
    for (;;) {
      for (auto i = inbox_.begin(); i != inbox_.end(); ++i)
        if (i->first == topic(kind)) {
          auto x = std::move(i->second);
          inbox_.erase(i);
          return x;
        }
      auto left = deadline - steady_clock::now();
      if (left <= 0s)
        return nullptr;
      mqtt::const_message_ptr msg;
      if (cli_.try_consume_message_for(
              &msg, std::chrono::duration_cast<milliseconds>(left)) &&
          msg)
        inbox_.emplace_back(
            msg->get_topic(),
            json::parse(msg->get_payload_str(), nullptr, false));
    }
  }

  /// Acknowledges `push` on upgrade_reply.
  void ack(const json& push) {
    publish_raw("upgrade_reply",
                json{{"id", push["id"]}, {"code", 200}}.dump());
  }

private:
  json reply_to(const std::string& kind, const std::string& id) {
    auto deadline = steady_clock::now() + wait_time;
    while (steady_clock::now() < deadline) {
      auto x = next(kind + "_reply", std::chrono::duration_cast<milliseconds>(
                                         deadline - steady_clock::now()));
      if (x.is_object() && x.value("id", json{}) == json(id))
        return x;
    }
    return nullptr;
  }

  std::string key_;
  mqtt::async_client cli_;
  std::deque<std::pair<std::string, json>> inbox_;
  int next_id_ = 0;
};

class Mqtt : public ::testing::Test {
protected:
  void SetUp() override {
    if (mosquitto_binary().empty())
      GTEST_SKIP() << "mosquitto is not installed (scripts/setup.sh "
                      "installs it)";
    broker_.emplace(dir_.path());
    ASSERT_NE(broker_->port(), 0) << broker_->log();
    node_ = process{bin_dir() / "fotad",
                    {"--data-dir", (dir_ / "data").string(), "--listen", "0",
                     "--push-ack-timeout", "1", "--firmware-url-schemes",
                     "https,file"},
                    dir_ / "fotad.out",
                    dir_ / "fotad.err"};
    auto port = listening_port(node_);
    ASSERT_TRUE(port) << node_.err();
    port_ = *port;
    image_ = dir_ / "image-2.0.0.bin";
    std::ofstream{image_} << "fota mqtt e2e image " << target << "\n";
    auto r = ctl({"firmware", "add", "--product", product, "--version", target,
                  "--url", "file://" + image_.string(), "--file",
                  image_.string(), "--description", "e2e release"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    r = ctl({"firmware", "skip-verification", "--product", product, "--version",
             target, "--reason", "e2e image"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    start_bridge();
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl) << cl.error().message;
    auto hello = cl->hello("operator-token", "mqtt-e2e");
    ASSERT_TRUE(hello && hello->status() == v1::STATUS_CODE_OK);
    operator_.emplace(std::move(*cl));
  }

  void TearDown() override {
    if (HasFailure()) {
      dir_.keep();
      if (bridge_.pid() > 0)
        std::fprintf(stderr, "fota-mqtt log:\n%s\n", bridge_.err().c_str());
    }
  }

  void start_bridge() {
    auto n = bridge_runs_++;
    bridge_ = process{bin_dir() / "fota-mqtt",
                      {"--broker", broker_->url(), "--node",
                       "127.0.0.1:" + std::to_string(port_), "--client-id",
                       "fota-mqtt-e2e", "--log-level", "debug"},
                      dir_ / ("fota-mqtt-" + std::to_string(n) + ".out"),
                      dir_ / ("fota-mqtt-" + std::to_string(n) + ".err")};
    ASSERT_TRUE(eventually([&] {
      return bridge_.out().find("fota-mqtt ready") != std::string::npos ||
             !bridge_.running();
    })) << bridge_.err();
    ASSERT_TRUE(bridge_.running()) << bridge_.err();
  }

  run_result ctl(std::vector<std::string> args) {
    auto n = ctl_runs_++;
    auto out = dir_ / ("fotactl-" + std::to_string(n) + ".out");
    auto err = dir_ / ("fotactl-" + std::to_string(n) + ".err");
    args.insert(args.begin(), {"--port", std::to_string(port_)});
    process p{bin_dir() / "fotactl", args, out, err};
    run_result r;
    r.code = p.wait_for(60s).value_or(-1);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  /// Creates a snapshot task from 1.0.0 over `devices` (cloud push) or the
  /// whole product (device request); returns its id.
  uint64_t create_task(const std::vector<std::string>& devices,
                       const std::string& method = "cloud-push") {
    std::vector<std::string> args{"--json", "task",     "create", "--product",
                                  product,  "--target", target,   "--source",
                                  "1.0.0",  "--method", method};
    // A device-request task takes the whole product (a device list is a
    // cloud-push scope); each test's node holds only its own devices.
    if (method == "device-request") {
      args.push_back("--scope");
      args.push_back("all");
    } else {
      for (const auto& d : devices) {
        args.push_back("--device");
        args.push_back(d);
      }
    }
    auto r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto x = json::parse(r.out, nullptr, false);
    return x.is_object() ? x.value("task_id", uint64_t{0}) : 0;
  }

  v1::Response call(v1::ClientFrame f) {
    auto r = operator_->call(std::move(f));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : v1::Response{};
  }

  v1::TaskSummary task(uint64_t id) {
    v1::ClientFrame f;
    f.mutable_get_task()->set_task_id(id);
    return call(std::move(f)).task();
  }

  v1::Device device(const std::string& key) {
    v1::ClientFrame f;
    f.mutable_get_device()->set_product_key(product);
    f.mutable_get_device()->set_device_key(key);
    return call(std::move(f)).device();
  }

  bool device_known(const std::string& key) {
    v1::ClientFrame f;
    f.mutable_get_device()->set_product_key(product);
    f.mutable_get_device()->set_device_key(key);
    return call(std::move(f)).status() == v1::STATUS_CODE_OK;
  }

  std::vector<v1::Execution> executions(uint64_t id) {
    v1::ClientFrame f;
    f.mutable_get_task_details()->set_task_id(id);
    auto r = call(std::move(f));
    return {r.task_details().executions().begin(),
            r.task_details().executions().end()};
  }

  bool succeeded(uint64_t id, uint64_t n) {
    return eventually([&] { return task(id).counters().succeeded() == n; });
  }

  /// A device that informs 1.0.0 and says it is online.
  std::unique_ptr<mqtt_device> device_on_1(const std::string& key) {
    auto d = std::make_unique<mqtt_device>(broker_->url(), key);
    d->online();
    auto r = d->inform("1.0.0");
    EXPECT_EQ(r.value("code", 0), 200) << r.dump();
    return d;
  }

  /// Takes `push` to the end: acknowledge, progress, the new version.
  void complete(mqtt_device& d, const json& push) {
    d.ack(push);
    EXPECT_EQ(d.progress(50, "flashing").value("code", 0), 200);
    EXPECT_EQ(d.inform(target).value("code", 0), 200);
  }

  /// Runs the example device with `args`.
  process example_device(const std::string& key,
                         std::vector<std::string> args) {
    std::vector<std::string> all{FOTA_SOURCE_DIR
                                 "/examples/device/fota_device.py",
                                 "--port",
                                 std::to_string(broker_->port()),
                                 "--product",
                                 product,
                                 "--device",
                                 key,
                                 "--version",
                                 "1.0.0"};
    all.insert(all.end(), args.begin(), args.end());
    auto n = example_runs_++;
    return process{"/usr/bin/python3", all,
                   dir_ / ("device-" + std::to_string(n) + ".out"),
                   dir_ / ("device-" + std::to_string(n) + ".err")};
  }

  temp_dir dir_{"fota-mqtt-e2e"};
  std::optional<mosquitto> broker_;
  process node_;
  process bridge_;
  uint16_t port_ = 0;
  std::filesystem::path image_;
  std::optional<client> operator_;
  int ctl_runs_ = 0;
  int bridge_runs_ = 0;
  int example_runs_ = 0;
};

TEST_F(Mqtt, ACloudPushReachesTheDeviceAndItsNewVersionCompletesIt) {
  auto d = device_on_1("push-1");
  auto id = create_task({"push-1"});
  ASSERT_NE(id, 0u);
  auto push = d->next("upgrade");
  ASSERT_TRUE(push.is_object()) << "no push";
  EXPECT_EQ(push.value("method", ""), "ota.device.upgrade");
  const auto& p = push["params"];
  EXPECT_EQ(p.value("version", ""), target);
  EXPECT_EQ(p.value("fileUrl", ""), "file://" + image_.string());
  EXPECT_EQ(p.value("fileSize", uint64_t{0}),
            std::filesystem::file_size(image_));
  EXPECT_EQ(p.value("signMethod", ""), "sha256");
  EXPECT_EQ(p.value("sign", "").size(), 64u);
  ASSERT_TRUE(p["executionId"].is_number_unsigned());
  EXPECT_EQ(p.value("attempt", 0), 1);
  EXPECT_EQ(push.value("id", ""),
            std::to_string(p["executionId"].get<uint64_t>()) + ".1");
  complete(*d, push);
  ASSERT_TRUE(succeeded(id, 1));
  EXPECT_EQ(device("push-1").version(), target);
}

TEST_F(Mqtt, ADeviceRequestIsOfferedAndItsFirstProgressConfirmsIt) {
  auto d = device_on_1("ask-1");
  // Nothing to offer yet: 200 with empty data and the reason.
  auto none = d->request("getversion", "ota.device.getversion", json::object());
  EXPECT_EQ(none.value("code", 0), 200) << none.dump();
  EXPECT_TRUE(none["data"].empty()) << none.dump();
  EXPECT_FALSE(none.value("message", "").empty()) << none.dump();
  auto id = create_task({"ask-1"}, "device-request");
  ASSERT_NE(id, 0u);
  auto offer =
      d->request("getversion", "ota.device.getversion", json::object());
  ASSERT_EQ(offer.value("code", 0), 200) << offer.dump();
  EXPECT_EQ(offer["data"].value("version", ""), target) << offer.dump();
  EXPECT_TRUE(offer["data"]["executionId"].is_number_unsigned());
  // No executionId in the progress: the device's current execution.
  EXPECT_EQ(d->progress(10, "downloading").value("code", 0), 200);
  EXPECT_TRUE(
      eventually([&] { return task(id).counters().in_progress() == 1; }));
  EXPECT_EQ(d->inform(target).value("code", 0), 200);
  EXPECT_TRUE(succeeded(id, 1));
}

TEST_F(Mqtt, NegativeStepsFailTheExecutionWithTheirCodes) {
  std::vector<std::unique_ptr<mqtt_device>> ds;
  std::vector<std::string> keys{"fail-1", "fail-2", "fail-3", "fail-4"};
  for (const auto& k : keys)
    ds.push_back(device_on_1(k));
  auto id = create_task(keys);
  ASSERT_NE(id, 0u);
  for (int i = 0; i < 4; ++i) {
    auto push = ds[i]->next("upgrade");
    ASSERT_TRUE(push.is_object()) << keys[i];
    ds[i]->ack(push);
    auto r = ds[i]->progress(-(i + 1), "step " + std::to_string(-(i + 1)));
    EXPECT_EQ(r.value("code", 0), 200) << r.dump();
  }
  ASSERT_TRUE(eventually([&] { return task(id).counters().failed() == 4; }));
  std::map<std::string, std::string> codes;
  for (const auto& x : executions(id))
    codes[x.device_key()] = x.failure_code();
  EXPECT_EQ(codes["fail-1"], "UPGRADE_FAILED");
  EXPECT_EQ(codes["fail-2"], "DOWNLOAD_FAILED");
  EXPECT_EQ(codes["fail-3"], "VERIFY_FAILED");
  EXPECT_EQ(codes["fail-4"], "FLASH_FAILED");
}

TEST_F(Mqtt, AnUnacknowledgedPushIsSentAgainWithTheSameId) {
  auto d = device_on_1("quiet-1");
  auto id = create_task({"quiet-1"});
  ASSERT_NE(id, 0u);
  auto first = d->next("upgrade");
  ASSERT_TRUE(first.is_object());
  // No acknowledgement: the node sends it again after its ack timeout (1 s
  // here), the same execution and attempt.
  auto again = d->next("upgrade");
  ASSERT_TRUE(again.is_object()) << "the push was not sent again";
  EXPECT_EQ(again.value("id", ""), first.value("id", ""));
  complete(*d, again);
  EXPECT_TRUE(succeeded(id, 1));
}

TEST_F(Mqtt, BadPayloadsAreAnsweredWithAReasonAndNotForwarded) {
  mqtt_device d{broker_->url(), "bad-1"};
  auto r = d.raw_request("inform", "this is not json", "");
  EXPECT_EQ(r.value("code", 0), 400) << r.dump();
  EXPECT_EQ(r.value("message", ""), "payload: not JSON");
  r = d.raw_request(
      "inform", R"({"id":"7","method":"ota.device.inform","params":{}})", "7");
  EXPECT_EQ(r.value("code", 0), 400) << r.dump();
  EXPECT_EQ(r.value("message", ""), "params.version: missing");
  r = d.raw_request(
      "inform",
      R"({"id":"8","method":"ota.device.inform","params":{"version":3}})", "8");
  EXPECT_EQ(r.value("code", 0), 400) << r.dump();
  EXPECT_NE(r.value("message", "").find("params.version"), std::string::npos);
  r = d.raw_request(
      "progress",
      R"({"id":"9","method":"ota.device.progress","params":{"step":250}})",
      "9");
  EXPECT_EQ(r.value("code", 0), 400) << r.dump();
  EXPECT_NE(r.value("message", "").find("params.step"), std::string::npos);
  // None of it reached the node: the device is still unknown there ...
  EXPECT_FALSE(device_known("bad-1"));
  // ... and what does reach it is answered with the node's verdict.
  r = d.request("getversion", "ota.device.getversion", json::object());
  EXPECT_EQ(r.value("code", 0), 404) << r.dump();
  EXPECT_NE(r.value("message", "").find("bad-1"), std::string::npos);
}

TEST_F(Mqtt, ABridgeRestartMidRolloutLosesNoDevice) {
  std::vector<std::unique_ptr<mqtt_device>> ds;
  std::vector<std::string> keys{"r-1", "r-2", "r-3"};
  for (const auto& k : keys)
    ds.push_back(device_on_1(k));
  auto id = create_task(keys);
  ASSERT_NE(id, 0u);
  auto push = ds[0]->next("upgrade");
  ASSERT_TRUE(push.is_object());
  complete(*ds[0], push);
  ASSERT_TRUE(succeeded(id, 1));
  // The bridge dies with two devices in the middle of their upgrade.
  bridge_.signal(SIGKILL);
  ASSERT_TRUE(bridge_.wait_for(10s));
  start_bridge();
  // The restarted bridge reads the retained statuses again; the node sends
  // the unacknowledged pushes again through it.
  for (int i = 1; i < 3; ++i) {
    auto p = ds[i]->next("upgrade");
    ASSERT_TRUE(p.is_object()) << keys[i];
    complete(*ds[i], p);
  }
  EXPECT_TRUE(succeeded(id, 3));
}

TEST_F(Mqtt, TheExampleDeviceUpgradesByCloudPushAfterComingBackOnline) {
  // The example device informs, then dies without a word: its last will
  // takes it offline.
  auto dev = example_device("py-1", {});
  ASSERT_TRUE(eventually([&] {
    return (device_known("py-1") && device("py-1").online()) || !dev.running();
  }));
  ASSERT_TRUE(dev.running()) << dev.err();
  dev.signal(SIGKILL);
  ASSERT_TRUE(dev.wait_for(10s));
  ASSERT_TRUE(eventually([&] { return !device("py-1").online(); }))
      << "the last will did not take the device offline";
  auto id = create_task({"py-1"});
  ASSERT_NE(id, 0u);
  EXPECT_EQ(task(id).counters().queued(), 1u);
  // Back online, it is pushed, downloads, verifies and informs 2.0.0.
  auto again = example_device("py-1", {"--once", "--timeout", "30"});
  auto rc = again.wait_for(60s);
  ASSERT_TRUE(rc) << "the example device did not finish";
  EXPECT_EQ(*rc, 0) << again.out() << again.err();
  EXPECT_TRUE(succeeded(id, 1));
}

TEST_F(Mqtt, TheExampleDeviceUpgradesByRequest) {
  {
    auto d = device_on_1("py-2");
    d->publish_raw("status", R"({"online":false})", true);
  }
  auto id = create_task({"py-2"}, "device-request");
  ASSERT_NE(id, 0u);
  auto dev = example_device("py-2", {"--request", "--once", "--timeout", "30"});
  auto rc = dev.wait_for(60s);
  ASSERT_TRUE(rc) << "the example device did not finish";
  EXPECT_EQ(*rc, 0) << dev.out() << dev.err();
  EXPECT_TRUE(succeeded(id, 1));
}

} // namespace

namespace {

/// The bridge reads its config as strictly as fotad: an unknown key, a
/// wrong type and a value out of range each stop it with the key named.
TEST(MqttBridgeConfig, RefusesBadKeysTypesAndRangesNamingThem) {
  temp_dir dir{"fota-mqtt-config"};
  auto conf = dir / "bridge.toml";
  std::ofstream{conf} << "[broker]\n"
                         "url = \"http://broker\"\n"
                         "keep_alive = 2\n"
                         "clientid = \"x\"\n"
                         "[node]\n"
                         "max_batch = \"many\"\n";
  process p{bin_dir() / "fota-mqtt",
            {"--config", conf.string(), "--check-config"},
            dir / "out",
            dir / "err"};
  EXPECT_EQ(p.wait_for(30s), 2);
  auto err = p.err();
  EXPECT_NE(err.find("[broker] url: must be a broker URL"), std::string::npos)
      << err;
  EXPECT_NE(err.find("[broker] keep_alive: must be 5..3600, got 2"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("unknown key [broker] clientid (did you mean client_id?)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("[node] max_batch: must be an integer"), std::string::npos)
      << err;
}

} // namespace
