/// End-to-end tests of fota-sim --mqtt: a simulated fleet on one MQTT
/// connection through a real Mosquitto and the bridge fota-mqtt to fotad,
/// all as separate processes. A cloud-push rollout and a device-request
/// rollout run to completion, and the simulator's counts agree with the
/// node's. Waits poll a condition with a deadline; no assertion rests on a
/// fixed sleep.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/mosquitto.hpp"
#include "tests/support/processes.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using namespace fota;
using namespace fota::test;
using json = nlohmann::json;

constexpr const char* product = "sim-product";
constexpr const char* target = "2.0.0";
constexpr uint64_t fleet_size = 300;

/// The numbers fota-sim prints in its summary, by label.
std::map<std::string, uint64_t> parse_summary(const std::string& out) {
  std::map<std::string, uint64_t> result;
  static const std::regex line{R"(^  ([a-z -]+?) +(\d+)$)"};
  std::istringstream in{out};
  std::string l;
  bool inside = false;
  while (std::getline(in, l)) {
    if (l.rfind("fota-sim summary", 0) == 0)
      inside = true;
    std::smatch m;
    if (inside && std::regex_match(l, m, line))
      result[m[1]] = std::stoull(m[2]);
  }
  return result;
}

class MqttSim : public ::testing::Test {
protected:
  void SetUp() override {
    if (mosquitto_binary().empty())
      GTEST_SKIP() << "mosquitto is not installed (scripts/setup.sh "
                      "installs it)";
    broker_.emplace(dir_.path());
    ASSERT_NE(broker_->port(), 0) << broker_->log();
    node_ = process{bin_dir() / "fotad",
                    {"--data-dir", (dir_ / "data").string(), "--listen", "0"},
                    dir_ / "fotad.out",
                    dir_ / "fotad.err"};
    auto port = listening_port(node_);
    ASSERT_TRUE(port) << node_.err();
    port_ = *port;
    auto r = ctl({"firmware", "add", "--product", product, "--version", target,
                  "--url", "https://firmware.example/sim-2.0.0.bin", "--size",
                  "1048576", "--sha256", std::string(64, 'a')});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    r = ctl({"firmware", "skip-verification", "--product", product, "--version",
             target, "--reason", "e2e image"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    bridge_ = process{bin_dir() / "fota-mqtt",
                      {"--broker", broker_->url(), "--node",
                       "127.0.0.1:" + std::to_string(port_), "--client-id",
                       "fota-mqtt-sim-e2e"},
                      dir_ / "fota-mqtt.out",
                      dir_ / "fota-mqtt.err"};
    ASSERT_TRUE(eventually([&] {
      return bridge_.out().find("fota-mqtt ready") != std::string::npos ||
             !bridge_.running();
    })) << bridge_.err();
    ASSERT_TRUE(bridge_.running()) << bridge_.err();
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl) << cl.error().message;
    auto hello = cl->hello("operator-token", "mqtt-sim-e2e");
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

  /// Creates a task from 1.0.0 over the whole product; returns its id.
  uint64_t create_task(const std::string& strategy, const std::string& method) {
    auto r = ctl({"--json", "task", "create", "--product", product, "--target",
                  target, "--source", "1.0.0", "--strategy", strategy,
                  "--scope", "all", "--method", method});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto x = json::parse(r.out, nullptr, false);
    return x.is_object() ? x.value("task_id", uint64_t{0}) : 0;
  }

  /// fota-sim --mqtt with `fleet_size` devices on 1.0.0, a tenth of whose
  /// upgrades fail, and `args`.
  process start_sim(std::vector<std::string> args) {
    std::vector<std::string> all{
        "--mqtt",           broker_->url(),
        "--product",        product,
        "--devices",        std::to_string(fleet_size),
        "--versions",       "1.0.0",
        "--duration-ms",    "50-300",
        "--start-delay-ms", "0-20",
        "--failure-rate",   "0.1",
        "--seed",           "7",
        "--exit-when-idle", "2",
        "--results-file",   (dir_ / "results").string()};
    all.insert(all.end(), args.begin(), args.end());
    return process{bin_dir() / "fota-sim", all, dir_ / "sim.out",
                   dir_ / "sim.err"};
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

  size_t result_lines() {
    std::ifstream in{dir_ / "results"};
    size_t n = 0;
    for (std::string l; std::getline(in, l);)
      ++n;
    return n;
  }

  temp_dir dir_{"fota-mqtt-sim-e2e"};
  std::optional<mosquitto> broker_;
  process node_;
  process bridge_;
  uint16_t port_ = 0;
  std::optional<client> operator_;
  int ctl_runs_ = 0;
};

} // namespace

TEST_F(MqttSim, ACloudPushRolloutOfASimulatedFleetCompletesThroughTheBridge) {
  auto sim = start_sim({"--ready-file", (dir_ / "ready").string()});
  ASSERT_TRUE(eventually([&] {
    return std::filesystem::exists(dir_ / "ready") || !sim.running();
  })) << "fota-sim did not get ready: "
      << sim.err();
  ASSERT_TRUE(std::filesystem::exists(dir_ / "ready")) << sim.err();
  // Every device informed its version and is online at the node.
  EXPECT_TRUE(eventually([&] {
    auto d = device("dev-000299");
    return d.online() && d.version() == "1.0.0";
  })) << device("dev-000299").DebugString();

  auto id = create_task("snapshot", "cloud-push");
  ASSERT_NE(id, 0u);
  auto rc = sim.wait_for(60s);
  ASSERT_TRUE(rc) << "fota-sim did not stop: " << sim.out() << sim.err();
  EXPECT_EQ(*rc, 0) << sim.err();

  auto t = task(id);
  const auto& c = t.counters();
  EXPECT_EQ(t.status(), v1::TASK_STATUS_COMPLETED) << t.DebugString();
  EXPECT_EQ(c.succeeded() + c.failed(), fleet_size) << t.DebugString();
  EXPECT_GT(c.failed(), 0u) << "a 10% failure rate over 300 devices";

  // The simulator counted what the node counted, pushed once each, without
  // an error, and wrote one result line per upgrade.
  auto summary = parse_summary(sim.out());
  EXPECT_EQ(summary["pushes received"], fleet_size) << sim.out();
  EXPECT_EQ(summary["succeeded"], c.succeeded()) << sim.out() << sim.err();
  EXPECT_EQ(summary["failed"], c.failed()) << sim.out() << sim.err();
  EXPECT_EQ(summary["error responses"], 0u) << sim.out() << sim.err();
  EXPECT_EQ(result_lines(), fleet_size);

  // A failure arrived as progress step -4, and a success as an inform of
  // the new version.
  v1::ClientFrame f;
  f.mutable_get_task_details()->set_task_id(id);
  f.mutable_get_task_details()->set_page_size(500);
  auto details = call(std::move(f)).task_details();
  size_t flash_failed = 0;
  for (const auto& e : details.executions())
    if (e.state() == v1::EXECUTION_STATE_FAILED &&
        e.failure_code() == "FLASH_FAILED")
      ++flash_failed;
  EXPECT_EQ(flash_failed, c.failed()) << details.DebugString();

  // Stopping cleanly, the simulator took its devices offline: one
  // connection has no last will per device.
  EXPECT_TRUE(eventually([&] { return !device("dev-000000").online(); }))
      << device("dev-000000").DebugString();
  EXPECT_TRUE(eventually([&] { return !device("dev-000299").online(); }));
}

TEST_F(MqttSim,
       ADeviceRequestRolloutOfASimulatedFleetCompletesThroughTheBridge) {
  auto id = create_task("increment", "device-request");
  ASSERT_NE(id, 0u);
  auto sim = start_sim({"--request", "--request-every-ms", "100-400"});
  auto rc = sim.wait_for(60s);
  ASSERT_TRUE(rc) << "fota-sim did not stop: " << sim.out() << sim.err();
  EXPECT_EQ(*rc, 0) << sim.err();

  auto t = task(id);
  const auto& c = t.counters();
  EXPECT_EQ(c.succeeded() + c.failed(), fleet_size) << t.DebugString();
  EXPECT_EQ(c.queued() + c.notified() + c.in_progress(), 0u) << t.DebugString();

  // Every upgrade came as a getversion offer, none as a push.
  auto summary = parse_summary(sim.out());
  EXPECT_GE(summary["offers received"], fleet_size) << sim.out();
  EXPECT_EQ(summary["pushes received"], 0u) << sim.out();
  EXPECT_EQ(summary["succeeded"], c.succeeded()) << sim.out() << sim.err();
  EXPECT_EQ(summary["failed"], c.failed()) << sim.out() << sim.err();
  EXPECT_EQ(summary["error responses"], 0u) << sim.out() << sim.err();
}
