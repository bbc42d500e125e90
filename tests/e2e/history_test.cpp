/// End-to-end tests of histories and pictures with the real fotad and
/// fotactl: `device history` and `task history` print the log's events in
/// order, page, and show the state at a past moment; `task curve` writes
/// the per-second bins and the SVG, and says so clearly when gnuplot is
/// missing. A gateway on the wire client plays the devices.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/processes.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
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

constexpr const char* product = "history-product";
constexpr const char* target = "2.0.0";

class HistoryCli : public ::testing::Test {
protected:
  void SetUp() override {
    node_ = process{bin_dir() / "fotad",
                    {"--data-dir", (dir_ / "data").string(), "--listen", "0"},
                    dir_ / "fotad.out",
                    dir_ / "fotad.err"};
    static const std::regex line{R"(fotad listening on port (\d+))"};
    std::smatch m;
    std::string text;
    ASSERT_TRUE(eventually(
        [&] {
          text = node_.out();
          return std::regex_search(text, m, line) || !node_.running();
        },
        30s));
    ASSERT_TRUE(std::regex_search(text, m, line)) << node_.err();
    port_ = static_cast<uint16_t>(std::stoul(m[1]));
    auto r = ctl({"firmware", "add", "--product", product, "--version", target,
                  "--url", "https://firmware.example/2.0.0", "--size", "4096",
                  "--sha256", std::string(64, 'a')});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    r = ctl({"firmware", "skip-verification", "--product", product, "--version",
             target, "--reason", "e2e image"});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl) << cl.error().message;
    auto hello = cl->hello("gateway-token", "history-gateway");
    ASSERT_TRUE(hello && hello->status() == v1::STATUS_CODE_OK);
    gateway_.emplace(std::move(*cl));
  }

  void TearDown() override {
    if (HasFailure())
      dir_.keep();
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

  json ctl_json(std::vector<std::string> args) {
    args.insert(args.begin(), "--json");
    auto r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto x = json::parse(r.out, nullptr, false);
    return x.is_object() ? x : json::object();
  }

  v1::Response gateway_call(v1::ClientFrame f) {
    auto r = gateway_->call(std::move(f));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : v1::Response{};
  }

  /// Registers `keys` on 1.0.0, online or not.
  void register_devices(const std::vector<std::string>& keys, bool online) {
    std::vector<v1::RegisterDevice> xs;
    for (const auto& k : keys) {
      v1::RegisterDevice d;
      d.set_product_key(product);
      d.set_device_key(k);
      d.set_version("1.0.0");
      xs.push_back(std::move(d));
    }
    auto r = gateway_->register_devices(std::move(xs), online);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status(), v1::STATUS_CODE_OK) << r->message();
  }

  /// Waits for the push to `device`; keeps the pushes for other devices.
  std::optional<v1::UpgradePush> push_for(const std::string& device) {
    eventually([&] {
      if (pushes_.count(device) > 0)
        return true;
      v1::ClientFrame ping;
      ping.mutable_ping();
      gateway_call(ping);
      while (auto p = gateway_->poll_push())
        if (p->has_upgrade())
          pushes_[p->upgrade().device_key()] = p->upgrade();
      return pushes_.count(device) > 0;
    });
    auto i = pushes_.find(device);
    return i == pushes_.end() ? std::nullopt
                              : std::optional<v1::UpgradePush>{i->second};
  }

  /// A task over a (online, upgraded to success) and b (online, fails) and
  /// c (offline, queued); returns its id.
  uint64_t run_task() {
    register_devices({"a", "b"}, true);
    register_devices({"c"}, false);
    auto created = ctl_json({"task", "create", "--product", product, "--target",
                             target, "--source", "1.0.0", "--scope", "all"});
    auto task = created.value("task_id", uint64_t{0});
    EXPECT_NE(task, 0u);
    auto pa = push_for("a");
    auto pb = push_for("b");
    EXPECT_TRUE(pa && pb);
    if (!pa || !pb)
      return task;
    v1::ClientFrame f;
    auto* v = f.mutable_report_version();
    v->set_product_key(product);
    v->set_device_key("a");
    v->set_version(target);
    EXPECT_EQ(gateway_call(f).status(), v1::STATUS_CODE_OK);
    v1::ClientFrame g;
    auto* x = g.mutable_report_failure();
    x->set_product_key(product);
    x->set_device_key("b");
    x->set_execution_id(pb->execution_id());
    x->set_code("E_FLASH");
    x->set_text("flash write failed");
    EXPECT_EQ(gateway_call(g).status(), v1::STATUS_CODE_OK);
    return task;
  }

  temp_dir dir_{"fota-history"};
  process node_;
  uint16_t port_ = 0;
  int ctl_runs_ = 0;
  std::optional<client> gateway_;
  std::map<std::string, v1::UpgradePush> pushes_;
};

std::vector<std::string> kinds_of(const json& history) {
  std::vector<std::string> out;
  for (const auto& e : history.value("entries", json::array()))
    out.push_back(e.value("kind", ""));
  return out;
}

TEST_F(HistoryCli, DeviceAndTaskHistoriesPrintTheLogInOrder) {
  auto task = run_task();
  ASSERT_NE(task, 0u);
  auto a =
      ctl_json({"device", "history", "--product", product, "--device", "a"});
  EXPECT_EQ(kinds_of(a), (std::vector<std::string>{
                             "DeviceRegistered", "DevicesEnrolled",
                             "ExecutionNotified", "ExecutionSucceeded"}));
  // The table for people: one line per event, with the readable text.
  auto r = ctl({"device", "history", "--product", product, "--device", "b"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // b's execution is whichever sequence enrolment gave it: its push says.
  ASSERT_EQ(pushes_.count("b"), 1u);
  auto b_sequence = pushes_["b"].execution_id() & 0xffffffffu;
  EXPECT_NE(r.out.find("pushed execution " + std::to_string(task) + "/" +
                       std::to_string(b_sequence) + " (attempt 1)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("E_FLASH flash write failed"), std::string::npos)
      << r.out;
  // The task's history pages: page after page gives every event once.
  auto all = ctl_json({"task", "history", std::to_string(task)});
  auto kinds = kinds_of(all);
  ASSERT_GE(kinds.size(), 5u);
  EXPECT_EQ(kinds.front(), "TaskCreated");
  std::vector<std::string> paged;
  std::string token;
  for (int pages = 0; pages < 50; ++pages) {
    std::vector<std::string> args{"task", "history", std::to_string(task),
                                  "--page-size", "2"};
    if (!token.empty()) {
      args.push_back("--page-token");
      args.push_back(token);
    }
    auto page = ctl_json(args);
    for (const auto& k : kinds_of(page))
      paged.push_back(k);
    token = page.value("next_page_token", "");
    if (token.empty())
      break;
  }
  EXPECT_EQ(paged, kinds);
  // --at: the device as it is after every event; the task before it was
  // created did not exist.
  auto then = ctl_json({"device", "history", "--product", product, "--device",
                        "c", "--at", "2999-01-01T00:00:00Z"});
  EXPECT_EQ(then.value("existed", false), true);
  EXPECT_EQ(then["device"].value("version", ""), "1.0.0");
  auto before = ctl_json({"task", "history", std::to_string(task), "--at",
                          "2000-01-01T00:00:00Z"});
  EXPECT_EQ(before.value("existed", true), false);
  EXPECT_TRUE(kinds_of(before).empty());
}

TEST_F(HistoryCli, BadOrUnknownSubjectsAreRefusedByName) {
  auto r =
      ctl({"device", "history", "--product", product, "--device", "ghost"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ghost"), std::string::npos) << r.err;
  r = ctl({"task", "history", "99"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("task 99 does not exist"), std::string::npos) << r.err;
  r = ctl({"task", "history", "1", "--at", "yesterday"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--at"), std::string::npos) << r.err;
}

TEST_F(HistoryCli, TaskCurveWritesTheBinsAndTheSvg) {
  auto task = run_task();
  ASSERT_NE(task, 0u);
  auto csv = dir_ / "curve.csv";
  auto svg = dir_ / "curve.svg";
  auto r = ctl({"task", "curve", std::to_string(task), "--csv", csv.string(),
                "--svg", svg.string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto text = slurp(csv);
  EXPECT_EQ(text.rfind("t_s,pushes_per_s,successes_per_s,failures_per_s,"
                       "pushes,successes,failures\n",
                       0),
            0u)
      << text;
  // The last row's running totals: two pushes, one success, one failure.
  auto last = text.substr(text.rfind('\n', text.size() - 2) + 1);
  EXPECT_NE(last.find(",2,1,1\n"), std::string::npos) << text;
  EXPECT_NE(slurp(svg).find("<svg"), std::string::npos);
  EXPECT_NE(r.out.find("2 pushes, 1 successes, 1 failures"), std::string::npos)
      << r.out;
  // Without gnuplot on PATH, --svg fails and says what is missing.
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  ::setenv("PATH", (dir_ / "empty").c_str(), 1);
  r = ctl({"task", "curve", std::to_string(task), "--svg",
           (dir_ / "other.svg").string()});
  ::setenv("PATH", path.c_str(), 1);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("gnuplot is not installed"), std::string::npos) << r.err;
  r = ctl({"task", "curve", std::to_string(task)});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--svg FILE, --csv FILE"), std::string::npos) << r.err;
}

} // namespace
