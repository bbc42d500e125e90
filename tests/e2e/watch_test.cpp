/// End-to-end tests of following a task with the real fotad and fotactl:
/// `task wait` ends with a code for each outcome (completed clean,
/// completed with failures, canceled, timeout); `task watch` without a
/// terminal prints a line per interval; `task show` carries the forecast
/// and says why nothing moves; `task list` filters; `task create --dry-run`
/// previews and creates nothing. A gateway on the wire
/// client plays the devices, so every outcome is chosen, not random. Waits
/// poll a condition with a deadline; no assertion rests on a fixed sleep.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/processes.hpp"

#include <cstdint>
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

constexpr const char* product = "watch-product";
constexpr const char* target = "2.0.0";

class Watch : public ::testing::Test {
protected:
  void SetUp() override {
    auto out = dir_ / "fotad.out";
    node_ = process{bin_dir() / "fotad",
                    {"--data-dir", (dir_ / "data").string(), "--listen", "0"},
                    out,
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
    auto hello = cl->hello("gateway-token", "watch-gateway");
    ASSERT_TRUE(hello && hello->status() == v1::STATUS_CODE_OK);
    gateway_.emplace(std::move(*cl));
  }

  void TearDown() override {
    if (HasFailure())
      dir_.keep();
  }

  run_result ctl(std::vector<std::string> args) {
    return run_fotactl(port_, dir_.path(), ctl_runs_, std::move(args));
  }

  /// Registers `keys` on 1.0.0; online ones get their pushes here.
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
    ASSERT_EQ(r->registered().failed(), 0u);
  }

  /// Creates a snapshot cloud-push task from 1.0.0; returns its id.
  uint64_t create_task(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--json", "task",     "create", "--product",
                                  product,  "--target", target,   "--source",
                                  "1.0.0",  "--scope",  "all"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto x = json::parse(r.out, nullptr, false);
    return x.is_object() ? x.value("task_id", uint64_t{0}) : 0;
  }

  v1::Response gateway_call(v1::ClientFrame f) {
    auto r = gateway_->call(std::move(f));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : v1::Response{};
  }

  void report_version(const std::string& device, const std::string& version) {
    v1::ClientFrame f;
    auto* x = f.mutable_report_version();
    x->set_product_key(product);
    x->set_device_key(device);
    x->set_version(version);
    EXPECT_EQ(gateway_call(f).status(), v1::STATUS_CODE_OK);
  }

  /// Waits for the push to `device`.
  std::optional<v1::UpgradePush> push_for(const std::string& device) {
    std::optional<v1::UpgradePush> found;
    eventually([&] {
      v1::ClientFrame ping;
      ping.mutable_ping();
      gateway_call(ping);
      while (auto p = gateway_->poll_push())
        if (p->has_upgrade() && p->upgrade().device_key() == device)
          found = p->upgrade();
      return found.has_value();
    });
    return found;
  }

  json show(uint64_t task) {
    auto r = ctl({"--json", "task", "show", std::to_string(task)});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto x = json::parse(r.out, nullptr, false);
    return x.is_object() ? x : json::object();
  }

  temp_dir dir_{"fota-watch"};
  process node_;
  uint16_t port_ = 0;
  int ctl_runs_ = 0;
  std::optional<client> gateway_;
};

TEST_F(Watch, WaitEndsWithZeroWhenTheTaskCompletesClean) {
  register_devices({"a", "b"}, false);
  auto task = create_task();
  ASSERT_NE(task, 0u);
  // Both devices report the target version: both succeed.
  report_version("a", target);
  report_version("b", target);
  auto r = ctl({"task", "wait", std::to_string(task), "--timeout", "30s",
                "--interval", "100ms"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("COMPLETED: 2 succeeded, 0 failed"), std::string::npos)
      << r.out;
}

TEST_F(Watch, WaitEndsWithFourWhenTheTaskCompletesWithFailures) {
  register_devices({"a"}, false);
  register_devices({"b"}, true);
  auto task = create_task();
  ASSERT_NE(task, 0u);
  auto push = push_for("b");
  ASSERT_TRUE(push);
  v1::ClientFrame f;
  auto* x = f.mutable_report_failure();
  x->set_product_key(product);
  x->set_device_key("b");
  x->set_execution_id(push->execution_id());
  x->set_code("E_FLASH");
  x->set_text("flash write failed");
  ASSERT_EQ(gateway_call(f).status(), v1::STATUS_CODE_OK);
  report_version("a", target);
  auto r = ctl({"--json", "task", "wait", std::to_string(task), "--timeout",
                "30s", "--interval", "100ms"});
  EXPECT_EQ(r.code, 4) << r.out << r.err;
  auto shown = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << r.out;
  EXPECT_EQ(shown.value("status", ""), "TASK_STATUS_COMPLETED");
  EXPECT_EQ(shown["counters"].value("failed", 0), 1);
}

TEST_F(Watch, WaitAndWatchEndWithFiveWhenTheTaskIsCanceled) {
  register_devices({"a", "b"}, false);
  auto task = create_task();
  ASSERT_NE(task, 0u);
  ASSERT_EQ(ctl({"task", "cancel", std::to_string(task)}).code, 0);
  auto r = ctl({"task", "wait", std::to_string(task), "--interval", "100ms"});
  EXPECT_EQ(r.code, 5) << r.out << r.err;
  EXPECT_NE(r.out.find("CANCELED"), std::string::npos) << r.out;
  r = ctl({"task", "watch", std::to_string(task), "--interval", "100ms"});
  EXPECT_EQ(r.code, 5) << r.out << r.err;
}

TEST_F(Watch, WaitTimesOutWithSixWhileDevicesAreOffline) {
  register_devices({"a", "b"}, false);
  auto task = create_task();
  ASSERT_NE(task, 0u);
  auto r = ctl({"task", "wait", std::to_string(task), "--timeout", "300ms",
                "--interval", "100ms"});
  EXPECT_EQ(r.code, 6) << r.out << r.err;
  EXPECT_NE(r.err.find("TIMEOUT: task " + std::to_string(task) +
                       " is still RUNNING after 300ms"),
            std::string::npos)
      << r.err;
}

TEST_F(Watch, WatchWithoutATerminalPrintsALinePerInterval) {
  register_devices({"a", "b"}, false);
  auto task = create_task({"--rate", "10"});
  ASSERT_NE(task, 0u);
  auto r = ctl({"task", "watch", std::to_string(task), "--timeout", "1s",
                "--interval", "200ms"});
  EXPECT_EQ(r.code, 6) << r.out << r.err;
  // No screen control without a terminal: plain lines, each naming the
  // task, its counters and why nothing moves.
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << r.out;
  std::regex line{"^\\S+ task " + std::to_string(task) +
                  " RUNNING queued=2 notified=0 .* pushes/min=0/10 "
                  "window=open online=0% retries=0 eta=unknown "
                  "idle='devices offline'$"};
  int lines = 0;
  std::istringstream in{r.out};
  for (std::string l; std::getline(in, l);) {
    EXPECT_TRUE(std::regex_match(l, line)) << l;
    ++lines;
  }
  EXPECT_GE(lines, 2) << r.out;
}

TEST_F(Watch, ShowCarriesTheForecastAndWhyNothingMoves) {
  register_devices({"a", "b"}, false);
  auto task = create_task({"--rate", "10"});
  ASSERT_NE(task, 0u);
  auto shown = show(task);
  ASSERT_TRUE(shown.contains("forecast")) << shown.dump(1);
  const auto& f = shown["forecast"];
  EXPECT_EQ(f.value("idle_reason", ""), "IDLE_REASON_DEVICES_OFFLINE");
  EXPECT_EQ(f.value("queued", 0), 2);
  EXPECT_EQ(f.value("queued_online", 0), 0);
  EXPECT_EQ(f.value("allowed_per_minute", 0), 10);
  EXPECT_FALSE(f.value("eta_known", true));
  // For people: the same, in words.
  auto r = ctl({"task", "show", std::to_string(task)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("devices offline: every queued device (2) is offline"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0 now, 10 allowed"), std::string::npos) << r.out;
  // Once they are done, nothing more moves because the task is finished.
  report_version("a", target);
  report_version("b", target);
  ASSERT_EQ(
      ctl({"task", "wait", std::to_string(task), "--interval", "100ms"}).code,
      0);
  EXPECT_EQ(show(task)["forecast"].value("idle_reason", ""),
            "IDLE_REASON_FINISHED");
}

TEST_F(Watch, ListFiltersByProductStatusAndFirmware) {
  // The second task finds the only device busy in the first: it skips it
  // and completes at once.
  register_devices({"a"}, false);
  auto first = create_task();
  auto second = create_task();
  ASSERT_NE(first, 0u);
  ASSERT_NE(second, 0u);
  ASSERT_EQ(ctl({"task", "cancel", std::to_string(first)}).code, 0);
  auto ids = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--json", "task", "list"});
    auto r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    std::vector<uint64_t> out;
    auto x = json::parse(r.out, nullptr, false);
    if (x.is_object())
      for (const auto& t : x.value("tasks", json::array()))
        out.push_back(t.value("task_id", uint64_t{0}));
    return out;
  };
  EXPECT_EQ(ids({"--status", "canceled"}), std::vector<uint64_t>{first});
  EXPECT_EQ(ids({"--status", "completed", "--product", product, "--firmware",
                 target}),
            std::vector<uint64_t>{second});
  EXPECT_EQ(ids({"--product", "other"}), std::vector<uint64_t>{});
  EXPECT_EQ(ids({"--firmware", "9.9.9"}), std::vector<uint64_t>{});
  // Paged: one a page, the filter holds across pages.
  auto page =
      ctl({"--json", "task", "list", "--product", product, "--page-size", "1"});
  auto x = json::parse(page.out, nullptr, false);
  ASSERT_TRUE(x.is_object()) << page.out;
  EXPECT_EQ(x["tasks"].size(), 1u);
  EXPECT_EQ(x.value("next_page_token", ""), std::to_string(first));
}

TEST_F(Watch, BadInputGetsPreciseErrors) {
  auto r = ctl({"task", "wait", "999", "--interval", "100ms"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("NOT_FOUND: task 999 does not exist"), std::string::npos)
      << r.err;
  r = ctl({"task", "wait", "1", "--timeout", "soon"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--timeout: expected a duration such as 500ms"),
            std::string::npos)
      << r.err;
  r = ctl({"task", "watch", "1", "--interval", "0"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--interval: must be longer than 0"), std::string::npos)
      << r.err;
  r = ctl({"task", "list", "--status", "finished"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
}

// -- task create --dry-run ----------------------------------------------------

TEST_F(Watch, CreateDryRunShowsWhatTheTaskWouldDoAndCreatesNothing) {
  register_devices({"a", "b"}, true);
  register_devices({"c"}, false);
  const std::vector<std::string> create{
      "task", "create",   "--product", product,   "--target",
      target, "--source", "1.0.0",     "--scope", "all"};
  auto with = [&](std::vector<std::string> head,
                  std::vector<std::string> tail) {
    head.insert(head.end(), create.begin(), create.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  auto r = ctl(with({"--json"}, {"--dry-run"}));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto p = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(p.is_object()) << r.out;
  ASSERT_TRUE(p["devices"].is_number_integer()) << r.out;
  EXPECT_EQ(p["devices"], 3);
  EXPECT_EQ(p["online"], 2);
  EXPECT_EQ(p["offline"], 1);
  EXPECT_EQ(p["busy"], 0);
  EXPECT_EQ(p["enrolled"], 3);
  EXPECT_EQ(p["skipped"], 0);
  ASSERT_EQ(p["versions"].size(), 1u) << r.out;
  EXPECT_EQ(p["versions"][0]["version"], "1.0.0");
  EXPECT_EQ(p["versions"][0]["devices"], 3);
  EXPECT_EQ(p["forecast"]["queued"], 3);
  EXPECT_EQ(p["forecast"]["queued_online"], 2);
  // For people.
  r = ctl(with({}, {"--dry-run"}));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 devices"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 online, 1 offline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 on 1.0.0"), std::string::npos) << r.out;
  // A spec the node refuses fails the dry run as it fails the creation.
  auto refused = ctl(with({}, {"--source", target, "--dry-run"}));
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  auto created = ctl(with({}, {"--source", target}));
  EXPECT_EQ(created.code, 1) << created.out << created.err;
  EXPECT_NE(refused.err.find("error: INVALID_ARGUMENT: "), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err, created.err);
  // Nothing was created: the first task is task 1.
  r = ctl({"--json", "task", "list"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(
      json::parse(r.out, nullptr, false).value("tasks", json::array()).empty())
      << r.out;
  EXPECT_EQ(create_task(), 1u);
}

} // namespace
