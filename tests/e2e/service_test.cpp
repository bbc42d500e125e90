/// End-to-end tests of fotad as a service: its version, its config file
/// refused at start with the key named, readiness and stopping told to
/// systemd over $NOTIFY_SOCKET, the metrics of a real rollout checked by
/// promtool, and the log of one (JSON lines, lifecycle, no line per device).
/// Real processes: waits poll with a deadline, no assertion rests on a sleep.
#include "api/client.hpp"
#include "apps/version.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/loopback.hpp"
#include "tests/support/processes.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdlib>
#include <map>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using namespace fota;
using namespace fota::test;
using json = nlohmann::json;

constexpr const char* product = "svc";

const fs::path example_config =
    fs::path{FOTA_SOURCE_DIR} / "packaging" / "fotad.toml";

/// The body of GET /metrics on loopback `port`, or empty.
std::string scrape(uint16_t port) {
  auto out = http_get(port, "/metrics");
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? std::string{} : out.substr(body + 4);
}

/// The samples of a scrape by their name and labels as written, e.g.
/// `fota_tasks{status="paused"}`.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    auto space = line.rfind(' ');
    if (space == std::string::npos)
      continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

/// A sample's value, or -1 when the scrape does not have it.
double value(const std::map<std::string, double>& xs, const std::string& key) {
  auto i = xs.find(key);
  return i == xs.end() ? -1 : i->second;
}

/// A datagram socket standing in for systemd's notification socket.
class notify_socket {
public:
  explicit notify_socket(const fs::path& path) : path_(path.string()) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, sizeof(a.sun_path) - 1);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }

  ~notify_socket() { ::close(fd_); }

  const std::string& path() const noexcept { return path_; }

  /// The next message, or empty when none comes within `timeout`.
  std::string next(milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
      return {};
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
  }

  /// Waits for a message holding `line` as one of its lines; returns the
  /// messages seen before and with it.
  std::string wait_for(const std::string& line, milliseconds timeout) {
    std::string seen;
    auto deadline = steady_clock::now() + timeout;
    while (steady_clock::now() < deadline) {
      auto m = next(100ms);
      if (m.empty())
        continue;
      seen += m + "\n";
      if (("\n" + m + "\n").find("\n" + line + "\n") != std::string::npos)
        return seen;
    }
    ADD_FAILURE() << "no " << line << " within the deadline; seen:\n" << seen;
    return seen;
  }

private:
  std::string path_;
  int fd_ = -1;
};

class Service : public ::testing::Test {
protected:
  void TearDown() override {
    if (HasFailure())
      dir_.keep();
  }

  /// Runs `exe` with `args` to its end.
  run_result run(const std::string& exe, const std::vector<std::string>& args) {
    auto n = runs_++;
    auto out = dir_ / (exe + "-" + std::to_string(n) + ".out");
    auto err = dir_ / (exe + "-" + std::to_string(n) + ".err");
    process p{bin_dir() / exe, args, out, err};
    run_result r;
    r.code = p.wait_for(60s).value_or(-1);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  /// Starts fotad on a free port with `extra` flags; waits until it listens.
  process start_node(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--data-dir", (dir_ / "data").string(),
                                  "--listen", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    process p{bin_dir() / "fotad", args, dir_ / "fotad.out",
              dir_ / "fotad.err"};
    port_ = listening_port(p).value_or(0);
    if (port_ == 0)
      ADD_FAILURE() << "fotad did not start: " << p.err();
    return p;
  }

  /// `fotactl --json ARGS` against the node.
  json ctl(std::vector<std::string> args, int expected_code = 0) {
    args.insert(args.begin(), {"--port", std::to_string(port_), "--json"});
    auto r = run("fotactl", args);
    EXPECT_EQ(r.code, expected_code) << r.out << r.err;
    return json::parse(r.out, nullptr, false);
  }

  /// A fleet of `n` devices on 1.0.0 named PREFIX000000...; returns once
  /// every device is registered and online.
  process start_fleet(const std::string& prefix, int n) {
    auto ready = dir_ / (prefix + "ready");
    process sim{bin_dir() / "fota-sim",
                {"--port", std::to_string(port_), "--product", product,
                 "--device-prefix", prefix, "--devices", std::to_string(n),
                 "--versions", "1.0.0:100", "--duration-ms", "10-30",
                 "--failure-rate", "0", "--ready-file", ready.string()},
                dir_ / (prefix + "sim.out"),
                dir_ / (prefix + "sim.err")};
    EXPECT_TRUE(eventually([&] { return fs::exists(ready) || !sim.running(); },
                           default_deadline) &&
                fs::exists(ready))
        << "fota-sim did not get ready: " << sim.err();
    return sim;
  }

  /// Adds `version` of the product, verified by an operator's word.
  void add_firmware(const std::string& version) {
    ctl({"firmware", "add", "--product", product, "--version", version, "--url",
         "https://firmware.example/" + version, "--size", "4096", "--sha256",
         std::string(64, 'a')});
    ctl({"firmware", "skip-verification", "--product", product, "--version",
         version, "--reason", "service test image"});
  }

  /// Creates a task from `source` to `target` with `extra` options.
  std::string create_task(const std::string& source, const std::string& target,
                          std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"task",     "create", "--product", product,
                                  "--target", target,   "--source",  source};
    args.insert(args.end(), extra.begin(), extra.end());
    auto t = ctl(args);
    auto id = t.value("task_id", json{});
    return id.is_string() ? id.get<std::string>() : id.dump();
  }

  /// Waits until `fotactl task show ID` says `status`.
  void wait_status(const std::string& id, const std::string& status) {
    json shown;
    auto reached = eventually(
        [&] {
          shown = ctl({"task", "show", id});
          return shown.is_object() && shown.value("status", "") == status;
        },
        default_deadline);
    EXPECT_TRUE(reached) << "task " << id << " is not " << status << ": "
                         << shown.dump();
  }

  /// A rollout 1.0.0 -> 2.0.0 runs to completion; a second task, 2.0.0 ->
  /// 3.0.0 at one push a minute, keeps its executions queued and is
  /// paused. Returns both task ids.
  std::pair<std::string, std::string> complete_one_task_and_pause_another() {
    add_firmware("2.0.0");
    auto first = create_task("1.0.0", "2.0.0");
    wait_status(first, "TASK_STATUS_COMPLETED");
    add_firmware("3.0.0");
    auto second = create_task("2.0.0", "3.0.0", {"--rate", "1"});
    ctl({"task", "pause", second});
    return {first, second};
  }

  /// Says Hello with a token no role has, as client "intruder".
  void knock_with_a_wrong_token() {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl) << cl.error().message;
    auto h = cl->hello("not-a-token", "intruder");
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_EQ(h->status(), v1::STATUS_CODE_UNAUTHENTICATED);
  }

  temp_dir dir_{"fota-service"};
  uint16_t port_ = 0;
  int runs_ = 0;
};

// -- version and configuration ------------------------------------------------

TEST_F(Service, EveryBinaryNamesItsVersion) {
  for (const auto* exe : {"fotad", "fotactl", "fota-sim"}) {
    auto r = run(exe, {"--version"});
    EXPECT_EQ(r.code, 0) << exe << ": " << r.err;
    EXPECT_EQ(r.out, version_line(exe) + "\n") << exe;
    EXPECT_NE(r.out.find(std::string{" "} + build::version), std::string::npos)
        << r.out;
  }
}

TEST_F(Service, TheExampleConfigIsAccepted) {
  auto r =
      run("fotad", {"--config", example_config.string(), "--check-config"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("the configuration is valid"), std::string::npos)
      << r.out;
}

TEST_F(Service, ABadConfigFileStopsTheStartNamingEachKey) {
  auto config = dir_ / "fotad.toml";
  std::ofstream{config} << "[node]\nmax_frame_sise = 8192\n"
                           "max_frame_size = 10\n"
                           "[dispatch]\nmax_pushes_in_flight = \"many\"\n";
  auto data = dir_ / "data";
  auto r = run("fotad", {"--config", config.string(), "--data-dir",
                         data.string(), "--listen", "0"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  auto file = config.string();
  EXPECT_NE(r.err.find("config " + file +
                       ": unknown key [node] "
                       "max_frame_sise (did you mean max_frame_size?)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("config " + file +
                       ": [node] max_frame_size: must be "
                       "8192..67108864, got 10"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("config " + file +
                       ": [dispatch] "
                       "max_pushes_in_flight: must be an integer "
                       "1..1048576, got \"many\""),
            std::string::npos)
      << r.err;
  // Refused before anything was touched or served.
  EXPECT_FALSE(fs::exists(data));
  EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;
  // --check-config says the same and exits the same way.
  auto checked = run("fotad", {"--config", file, "--check-config"});
  EXPECT_EQ(checked.code, 2);
  EXPECT_EQ(checked.err, r.err);
}

TEST_F(Service, ABadFlagIsRefusedInTheWordsOfTheFile) {
  auto r = run("fotad", {"--max-frame-size", "10", "--listen", "0"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--max-frame-size: must be 8192..67108864, got 10"),
            std::string::npos)
      << r.err;
}

// -- systemd ------------------------------------------------------------------

TEST_F(Service, TellsSystemdWhenItServesAndWhenItStops) {
  notify_socket sock{dir_ / "notify"};
  ::setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  auto node = start_node();
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_NE(port_, 0);
  auto seen = sock.wait_for("READY=1", 30s);
  EXPECT_NE(seen.find("STATUS=replaying the log in "), std::string::npos)
      << seen;
  EXPECT_NE(seen.find("STATUS=serving on 127.0.0.1:" + std::to_string(port_)),
            std::string::npos)
      << seen;
  // Ready means serving: a Hello is answered.
  auto cl = client::connect("127.0.0.1", port_, 5s);
  ASSERT_TRUE(cl) << cl.error().message;
  auto h = cl->hello("operator-token", "service-test");
  ASSERT_TRUE(h && h->status() == v1::STATUS_CODE_OK);
  node.signal(SIGTERM);
  sock.wait_for("STOPPING=1", 30s);
  EXPECT_EQ(node.wait_for(30s).value_or(-1), 0);
}

// -- metrics ------------------------------------------------------------------

TEST_F(Service, ARolloutShowsInTheMetricsAndPassesPromtool) {
  auto metrics_port = free_port();
  auto node = start_node({"--metrics", std::to_string(metrics_port)});
  ASSERT_NE(port_, 0);
  constexpr int fleet = 30;
  auto sim = start_fleet("m-", fleet);
  auto registered = "fota_devices_registered{product=\"svc\"}";
  auto online = "fota_devices_online{product=\"svc\"}";
  std::map<std::string, double> m;
  EXPECT_TRUE(eventually([&] {
    m = samples(scrape(metrics_port));
    return value(m, registered) == fleet && value(m, online) == fleet;
  })) << value(m, registered)
      << " " << value(m, online);

  auto [first, second] = complete_one_task_and_pause_another();
  ctl({"task", "show", "9999"}, 1);

  auto exec = [&](const std::string& task, const std::string& state) {
    return value(m, "fota_executions{product=\"svc\",state=\"" + state +
                        "\",task=\"" + task + "\"}");
  };
  // Once the node is quiet, the counters and the gauges agree: every event
  // written is counted as persisted, and the successes counted are the
  // first task's and those of the paused one (its one push, sent before
  // the pause, runs its course).
  std::string text;
  auto quiet = [&] {
    text = scrape(metrics_port);
    m = samples(text);
    return value(m, "fota_journal_commit_events_sum") ==
               value(m, "fota_events_persisted_total") &&
           value(m, "fota_tasks{status=\"paused\"}") == 1 &&
           exec(second, "notified") == 0 && exec(second, "in_progress") == 0 &&
           value(m, "fota_executions_ended_total{state=\"succeeded\"}") ==
               fleet + exec(second, "succeeded");
  };
  ASSERT_TRUE(eventually(quiet, 10s)) << text;
  EXPECT_EQ(value(m, "fota_build_info{commit=\"" +
                         std::string{build::git_commit} + "\",version=\"" +
                         build::version + "\"}"),
            1)
      << text;
  EXPECT_EQ(value(m, "fota_tasks{status=\"completed\"}"), 1);
  EXPECT_EQ(value(m, "fota_tasks{status=\"running\"}"), 0);
  EXPECT_EQ(value(m, "fota_tasks{status=\"canceled\"}"), 0);
  // Executions of the paused task by state, all of its devices; none of
  // the finished one.
  double total = 0;
  for (auto state : {"queued", "notified", "in_progress", "succeeded", "failed",
                     "timed_out", "canceled"})
    total += exec(second, state);
  EXPECT_EQ(total, fleet) << text;
  EXPECT_GE(exec(second, "queued"), fleet - 2) << text;
  EXPECT_EQ(exec(first, "succeeded"), -1) << text;
  // Requests by type, responses by code, the journal's writes.
  EXPECT_GE(
      value(m, "fota_request_duration_seconds_count{type=\"CreateTask\"}"), 2)
      << text;
  EXPECT_GE(value(m, "fota_request_duration_seconds_count{type="
                     "\"ReportVersion\"}"),
            fleet)
      << text;
  EXPECT_GE(value(m, "fota_responses_total{code=\"NOT_FOUND\"}"), 1) << text;
  EXPECT_GT(value(m, "fota_responses_total{code=\"OK\"}"), fleet) << text;
  EXPECT_GT(value(m, "fota_journal_commit_duration_seconds_count"), 0) << text;
  EXPECT_EQ(value(m, "fota_journal_commit_duration_seconds_count"),
            value(m, "fota_journal_commit_events_count"));
  EXPECT_GE(value(m, "fota_pushes_in_flight"), 0) << text;

  // promtool checks the exposition and its conventions.
  auto scraped = dir_ / "scrape.txt";
  std::ofstream{scraped} << text;
  process promtool{
      "/bin/sh",
      {"-c", "promtool check metrics < '" + scraped.string() + "'"},
      dir_ / "promtool.out",
      dir_ / "promtool.err"};
  auto rc = promtool.wait_for(60s).value_or(-1);
  EXPECT_EQ(rc, 0) << "promtool check metrics:\n"
                   << promtool.out() << promtool.err() << "\n"
                   << text;

  // The fleet goes away: its devices are no longer online.
  sim.stop();
  EXPECT_TRUE(eventually([&] {
    m = samples(scrape(metrics_port));
    return value(m, online) == 0;
  })) << value(m, online);
  EXPECT_EQ(value(m, registered), fleet);
}

// -- the log ------------------------------------------------------------------

TEST_F(Service, TheLogTellsTheLifecycleInJsonLinesWithNoLinePerDevice) {
  auto node = start_node({"--log-format", "json"});
  ASSERT_NE(port_, 0);
  auto sim = start_fleet("l-", 20);
  auto [first, second] = complete_one_task_and_pause_another();
  ctl({"task", "resume", second});
  ctl({"task", "cancel", second});
  // A wrong token and a frame that does not parse.
  knock_with_a_wrong_token();
  {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl);
    std::string garbage = "\x05\xff\xff\xff\xff\xff";
    (void)!::write(cl->fd(), garbage.data(), garbage.size());
    char buf[256];
    while (::read(cl->fd(), buf, sizeof(buf)) > 0) {
    }
  }
  sim.stop();
  EXPECT_EQ(node.stop(), 0);

  std::vector<std::string> messages;
  std::map<std::string, int> levels;
  std::istringstream in{node.err()};
  for (std::string line; std::getline(in, line);) {
    auto x = json::parse(line, nullptr, false);
    ASSERT_TRUE(x.is_object()) << "not a JSON object: " << line;
    ASSERT_TRUE(x.contains("time") && x.contains("level") &&
                x.contains("message"))
        << line;
    ++levels[x["level"].get<std::string>()];
    messages.push_back(x["message"].get<std::string>());
  }
  auto logged = [&](const std::string& pattern) {
    std::regex re{pattern};
    return std::any_of(
        messages.begin(), messages.end(),
        [&](const std::string& m) { return std::regex_search(m, re); });
  };
  std::string all;
  for (const auto& m : messages)
    all += m + "\n";
  EXPECT_TRUE(logged(R"(^fotad \S+ .*starting$)")) << all;
  EXPECT_TRUE(logged(R"(^firmware svc/2\.0\.0 created: 4096 bytes)")) << all;
  EXPECT_TRUE(logged(R"(^firmware svc/2\.0\.0 verification skipped: service )"
                     R"(test image$)"))
      << all;
  EXPECT_TRUE(logged("^task " + first +
                     R"( created: svc 1\.0\.0 -> 2\.0\.0, snapshot, cloud )"
                     R"(push; 20 devices enrolled, 0 skipped$)"))
      << all;
  EXPECT_TRUE(logged("^task " + first +
                     " completed: 20 succeeded, 0 failed, 0 timed out"))
      << all;
  EXPECT_TRUE(logged("^task " + second + " paused: paused by operator$"))
      << all;
  EXPECT_TRUE(logged("^task " + second + " resumed$")) << all;
  EXPECT_TRUE(logged("^task " + second + " canceled: canceled by operator"))
      << all;
  EXPECT_TRUE(logged(R"(^session opened: peer 127\.0\.0\.1:\d+, role )"
                     R"(gateway, gateway shared, client fota-sim$)"))
      << all;
  EXPECT_TRUE(logged(R"(^session closed: peer 127\.0\.0\.1:\d+, role )"
                     R"(operator, client fotactl: the peer closed the )"
                     R"(connection)"))
      << all;
  EXPECT_TRUE(logged(R"(^authentication failed from 127\.0\.0\.1:\d+ )"
                     R"(\(client "intruder"\))"))
      << all;
  EXPECT_TRUE(logged(R"(^refused a frame from peer 127\.0\.0\.1:\d+, role )"
                     R"(none: )"))
      << all;
  // Nothing names a device: the log grows with tasks and sessions, not
  // with the fleet.
  EXPECT_FALSE(logged("l-0")) << all;
  EXPECT_GE(levels["info"], 10) << all;
  EXPECT_EQ(levels["error"], 0) << all;
}

TEST_F(Service, AtLevelWarnOnlyWarningsAndErrorsAreLogged) {
  auto node = start_node({"--log-level", "warn"});
  ASSERT_NE(port_, 0);
  knock_with_a_wrong_token();
  EXPECT_EQ(node.stop(), 0);
  auto err = node.err();
  EXPECT_NE(err.find("[warning] authentication failed"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("[info]"), std::string::npos) << err;
}

} // namespace
