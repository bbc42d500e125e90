/// fota-torture: the crash-consistency harness. Each trial runs a real
/// fotad, a simulated fleet (fota-sim) and several concurrent tasks (snapshot
/// and increment, chained, with pauses and cancels), kills the node with
/// SIGKILL at a random moment, restarts it, lets the fleet finish, and checks
/// the invariants:
/// - every report the node acknowledged is counted exactly once;
/// - no device is held by two active executions, and each device's active
///   execution is the one that holds it;
/// - nothing is stuck: every execution ends, and every device is free;
/// - each task's counters equal its lists of executions and skipped devices;
/// - the node's state digest equals the digest of its log replayed into a
///   fresh node;
/// - the fleet got no error for a legitimate report.
///
/// Usage: fota-torture [--trials N] [--seed S] [--devices N] [--bin-dir DIR]
/// Exit code 0 when every trial held every invariant.
#include "api/client.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/processes.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

namespace {

using namespace fota;
using namespace fota::test;

constexpr const char* product = "torture";

struct options {
  uint32_t trials = 1;
  uint64_t seed = 0;
  uint32_t devices = 500;
  std::string bin_dir;
  bool keep_failed = true;
};

/// What one trial found.
struct trial_result {
  std::vector<std::string> violations;
  int64_t kill_after_ms = 0;
  size_t acked_results = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t canceled = 0;
  uint64_t skipped = 0;
  uint64_t reports_resent = 0;
  double seconds = 0;
};

class trial {
public:
  trial(const options& opts, uint64_t seed)
    : opts_(opts), seed_(seed), rng_(seed), dir_("fota-torture") {}

  trial_result run() {
    auto t0 = steady_clock::now();
    try {
      body();
    } catch (const std::exception& e) {
      violation(std::string{"harness: "} + e.what());
    }
    result_.seconds =
        std::chrono::duration<double>(steady_clock::now() - t0).count();
    if (!result_.violations.empty() && opts_.keep_failed)
      dir_.keep();
    if (sim_.running())
      sim_.stop(5s);
    if (node_.running())
      node_.stop(5s);
    return result_;
  }

private:
  // -- the scenario -----------------------------------------------------------

  void body() {
    start_node(0);
    auto op = operator_client();
    for (const auto* v : {"1.1.0", "2.0.0", "3.0.0"})
      add_firmware(op, v);
    start_sim();
    if (!eventually([&] { return fs::exists(dir_ / "ready"); }, 90s))
      throw std::runtime_error("the fleet did not come up: " + sim_.err());
    // The tasks, created back to back.
    auto t1 = snapshot("1.0.0", "1.1.0");
    t1.mutable_retry()->set_max_retries(1);
    t1.mutable_retry()->set_interval_seconds(1);
    auto t2 = snapshot("1.1.0", "2.0.0"); // chained after t1
    t2.set_strategy(v1::STRATEGY_INCREMENT);
    auto t3 = snapshot("0.9.0", "3.0.0");
    t3.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    t3.mutable_scope()->mutable_tag()->set_key("ring");
    t3.mutable_scope()->mutable_tag()->set_value("canary");
    t3.mutable_rate()->set_max_per_minute(1200);
    auto t4 = snapshot("0.9.0", "2.0.0"); // competes with t3
    auto t5 = snapshot("1.0.0", "3.0.0"); // takes what t1 lets go
    t5.set_strategy(v1::STRATEGY_INCREMENT);
    auto started = steady_clock::now();
    for (auto* spec : {&t1, &t2, &t3, &t4, &t5})
      tasks_.push_back(create_task(op, *spec));
    // Operators at work, and the crash at a random moment.
    std::uniform_int_distribution<int64_t> kill_at{50, 2500};
    auto kill_after = milliseconds{kill_at(rng_)};
    result_.kill_after_ms = kill_after.count();
    std::uniform_int_distribution<int> coin{0, 1};
    bool paused = false;
    if (coin(rng_))
      paused = control(op, &v1::ClientFrame::mutable_pause_task, tasks_[2]);
    if (coin(rng_))
      control(op, &v1::ClientFrame::mutable_cancel_task, tasks_[3]);
    std::this_thread::sleep_until(started + kill_after / 2);
    if (paused && coin(rng_))
      paused = !control(op, &v1::ClientFrame::mutable_resume_task, tasks_[2]);
    std::this_thread::sleep_until(started + kill_after);
    node_.signal(SIGKILL);
    node_.wait_for(10s);
    restart_node();
    // The restart itself checked that no device has two holders: the node
    // does not start from a log where one has.
    auto op2 = operator_client();
    if (paused)
      control(op2, &v1::ClientFrame::mutable_resume_task, tasks_[2]);
    wait_quiet(op2);
    // End the increment tasks; everything is over.
    for (auto id : {tasks_[1], tasks_[4]})
      control(op2, &v1::ClientFrame::mutable_cancel_task, id);
    wait_quiet(op2);
    sim_.stop(10s);
    check_everything(op2);
    check_digest();
  }

  // -- processes --------------------------------------------------------------

  void start_node(uint16_t port) {
    auto n = node_starts_++;
    node_ = process{fs::path{opts_.bin_dir} / "fotad",
                    {"--data-dir", (dir_ / "data").string(), "--listen",
                     std::to_string(port), "--push-ack-timeout", "2"},
                    dir_ / fmt::format("fotad-{}.out", n),
                    dir_ / fmt::format("fotad-{}.err", n)};
    auto listening = listening_port(node_, 60s);
    if (!listening)
      throw std::runtime_error("fotad did not start: " + node_.err());
    port_ = *listening;
  }

  void restart_node() {
    auto port = port_;
    std::string why;
    // The dead node's port may be held for a moment.
    if (!eventually(
            [&] {
              try {
                start_node(port);
                return true;
              } catch (const std::exception& e) {
                why = e.what();
                return false;
              }
            },
            90s))
      throw std::runtime_error("fotad did not restart: " + why);
  }

  void start_sim() {
    sim_ = process{fs::path{opts_.bin_dir} / "fota-sim",
                   {"--port",
                    std::to_string(port_),
                    "--token",
                    "gateway-token",
                    "--product",
                    product,
                    "--devices",
                    std::to_string(opts_.devices),
                    "--versions",
                    "1.0.0:50,1.1.0:20,0.9.0:30",
                    "--duration-ms",
                    "100-1500",
                    "--start-delay-ms",
                    "0-50",
                    "--failure-rate",
                    "0.15",
                    "--churn",
                    "0.1",
                    "--churn-ms",
                    "300-1500",
                    "--seed",
                    std::to_string(seed_),
                    "--reconnect-seconds",
                    "120",
                    "--ready-file",
                    (dir_ / "ready").string(),
                    "--results-file",
                    (dir_ / "results").string()},
                   dir_ / "sim.out",
                   dir_ / "sim.err"};
  }

  client operator_client() {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    if (!cl)
      throw std::runtime_error(cl.error().message);
    auto hello = cl->hello("operator-token", "fota-torture");
    if (!hello || hello->status() != v1::STATUS_CODE_OK)
      throw std::runtime_error("operator Hello refused");
    return std::move(*cl);
  }

  v1::Response must(client& cl, v1::ClientFrame f, const char* what) {
    auto r = cl.call(std::move(f), 60s);
    if (!r)
      throw std::runtime_error(std::string{what} + ": " + r.error().message);
    if (r->status() != v1::STATUS_CODE_OK)
      throw std::runtime_error(std::string{what} + ": " +
                               to_string(r->status()) + " " + r->message());
    return std::move(*r);
  }

  // -- operator actions -------------------------------------------------------

  void add_firmware(client& cl, const std::string& version) {
    v1::ClientFrame f;
    auto* fw = f.mutable_create_firmware()->mutable_firmware();
    fw->set_product_key(product);
    fw->set_version(version);
    fw->set_url("https://firmware.example/" + version);
    fw->set_size(4096);
    fw->set_sha256(std::string(64, 'a'));
    must(cl, f, "CreateFirmware");
    f.Clear();
    auto* skip = f.mutable_skip_verification();
    skip->set_product_key(product);
    skip->set_version(version);
    skip->set_reason("torture image");
    must(cl, f, "SkipVerification");
  }

  static v1::TaskSpec snapshot(const std::string& source,
                               const std::string& target) {
    v1::TaskSpec spec;
    spec.set_name(source + " to " + target);
    spec.set_product_key(product);
    spec.set_target_version(target);
    spec.add_source_versions(source);
    spec.set_strategy(v1::STRATEGY_SNAPSHOT);
    spec.mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
    spec.set_method(v1::METHOD_CLOUD_PUSH);
    return spec;
  }

  uint64_t create_task(client& cl, const v1::TaskSpec& spec) {
    v1::ClientFrame f;
    *f.mutable_create_task()->mutable_spec() = spec;
    return must(cl, f, "CreateTask").task().task_id();
  }

  /// Pauses, resumes or cancels; returns whether the node accepted it (a
  /// task that ended meanwhile refuses).
  template <class Mutable>
  bool control(client& cl, Mutable body, uint64_t id) {
    v1::ClientFrame f;
    (f.*body)()->set_task_id(id);
    auto r = cl.call(std::move(f), 60s);
    return r && r->status() == v1::STATUS_CODE_OK;
  }

  // -- reading the node -------------------------------------------------------

  v1::TaskSummary summary(client& cl, uint64_t id) {
    v1::ClientFrame f;
    f.mutable_get_task()->set_task_id(id);
    return must(cl, f, "GetTask").task();
  }

  std::vector<v1::Execution> executions(client& cl, uint64_t id) {
    std::vector<v1::Execution> out;
    uint64_t token = 0;
    for (;;) {
      v1::ClientFrame f;
      auto* x = f.mutable_get_task_details();
      x->set_task_id(id);
      x->set_page_size(1000);
      x->set_page_token(token);
      auto d = must(cl, f, "GetTaskDetails").task_details();
      out.insert(out.end(), d.executions().begin(), d.executions().end());
      if (d.next_page_token() == 0)
        return out;
      token = d.next_page_token();
    }
  }

  std::vector<v1::SkippedDevice> skipped(client& cl, uint64_t id) {
    std::vector<v1::SkippedDevice> out;
    uint64_t token = 0;
    for (;;) {
      v1::ClientFrame f;
      auto* x = f.mutable_get_task_details();
      x->set_task_id(id);
      x->set_skipped(true);
      x->set_page_size(1000);
      x->set_page_token(token);
      auto d = must(cl, f, "GetTaskDetails").task_details();
      out.insert(out.end(), d.skipped().begin(), d.skipped().end());
      if (d.next_page_token() == 0)
        return out;
      token = d.next_page_token();
    }
  }

  std::vector<v1::Device> devices(client& cl) {
    std::vector<v1::Device> out;
    std::string token;
    for (;;) {
      v1::ClientFrame f;
      auto* x = f.mutable_list_devices();
      x->set_product_key(product);
      x->set_page_size(1000);
      x->set_page_token(token);
      auto list = must(cl, f, "ListDevices").device_list();
      out.insert(out.end(), list.devices().begin(), list.devices().end());
      if (list.next_page_token().empty())
        return out;
      token = list.next_page_token();
    }
  }

  static bool active(v1::ExecutionState x) {
    return x == v1::EXECUTION_STATE_QUEUED ||
           x == v1::EXECUTION_STATE_NOTIFIED ||
           x == v1::EXECUTION_STATE_IN_PROGRESS;
  }

  /// Waits until no execution of any task is active and nothing changed
  /// for a while; a deadline passing is a stuck execution.
  void wait_quiet(client& cl) {
    std::string last;
    int calm = 0;
    auto ok = eventually(
        [&] {
          std::string state;
          bool busy = false;
          for (auto id : tasks_) {
            auto s = summary(cl, id);
            const auto& c = s.counters();
            busy = busy || c.queued() + c.notified() + c.in_progress() > 0 ||
                   s.status() == v1::TASK_STATUS_PAUSED;
            state += s.ShortDebugString();
          }
          calm = (!busy && state == last) ? calm + 1 : 0;
          last = state;
          return calm >= 10;
        },
        150s);
    if (!ok) {
      std::string stuck;
      for (auto id : tasks_)
        for (const auto& x : executions(cl, id))
          if (active(x.state()) && stuck.size() < 2000)
            stuck += fmt::format(" {}:{}={}", id, x.device_key(),
                                 v1::ExecutionState_Name(x.state()));
      violation("stuck: executions still active after 150 s:" + stuck);
    }
  }

  // -- the invariants ---------------------------------------------------------

  void violation(std::string what) {
    result_.violations.push_back(std::move(what));
  }

  /// Each device is held by one active execution at most, and its active
  /// execution is that one; with `all_free`, no device is held at all. Only
  /// meaningful while nothing moves.
  void check_holders(client& cl, bool all_free) {
    std::map<std::string, std::vector<uint64_t>> holders;
    for (auto id : tasks_)
      for (const auto& x : executions(cl, id))
        if (active(x.state()))
          holders[x.device_key()].push_back(x.execution_id());
    for (const auto& [key, xs] : holders)
      if (xs.size() > 1)
        violation(fmt::format("device {} is in {} active executions", key,
                              xs.size()));
    for (const auto& d : devices(cl)) {
      auto i = holders.find(d.device_key());
      if (all_free && d.active_execution_id() != 0)
        violation(fmt::format("device {} is still held by execution {}",
                              d.device_key(), d.active_execution_id()));
      if (d.active_execution_id() != 0 &&
          (i == holders.end() ||
           std::find(i->second.begin(), i->second.end(),
                     d.active_execution_id()) == i->second.end())) {
        // A failed execution waiting for its retry keeps its device too.
        auto task = d.active_execution_id() >> 32;
        bool waiting = false;
        for (const auto& x : executions(cl, task))
          if (x.execution_id() == d.active_execution_id())
            waiting = x.state() == v1::EXECUTION_STATE_FAILED ||
                      x.state() == v1::EXECUTION_STATE_TIMED_OUT;
        if (!waiting)
          violation(fmt::format("device {} names execution {}, which does "
                                "not hold it",
                                d.device_key(), d.active_execution_id()));
      }
    }
  }

  void check_everything(client& cl) {
    // Nothing stuck, every device free.
    check_holders(cl, true);
    // Counters equal the lists.
    std::map<uint64_t, v1::Execution> by_id;
    for (auto id : tasks_) {
      auto s = summary(cl, id);
      auto xs = executions(cl, id);
      auto sk = skipped(cl, id);
      std::map<int, uint64_t> n;
      for (const auto& x : xs) {
        ++n[x.state()];
        by_id[x.execution_id()] = x;
      }
      const auto& c = s.counters();
      auto check = [&](const char* what, uint64_t counter, uint64_t listed) {
        if (counter != listed)
          violation(fmt::format("task {}: {} counter {} != {} listed", id, what,
                                counter, listed));
      };
      check("queued", c.queued(), n[v1::EXECUTION_STATE_QUEUED]);
      check("notified", c.notified(), n[v1::EXECUTION_STATE_NOTIFIED]);
      check("in_progress", c.in_progress(), n[v1::EXECUTION_STATE_IN_PROGRESS]);
      check("succeeded", c.succeeded(), n[v1::EXECUTION_STATE_SUCCEEDED]);
      check("failed", c.failed(), n[v1::EXECUTION_STATE_FAILED]);
      check("timed_out", c.timed_out(), n[v1::EXECUTION_STATE_TIMED_OUT]);
      check("canceled", c.canceled(), n[v1::EXECUTION_STATE_CANCELED]);
      check("skipped", c.skipped(), sk.size());
      if (s.status() != v1::TASK_STATUS_COMPLETED &&
          s.status() != v1::TASK_STATUS_CANCELED)
        violation(fmt::format("task {} is {} at the end", id,
                              v1::TaskStatus_Name(s.status())));
      result_.succeeded += c.succeeded();
      result_.failed += c.failed();
      result_.canceled += c.canceled();
      result_.skipped += c.skipped();
    }
    // Every acknowledged report counted exactly once.
    std::set<std::pair<uint64_t, uint32_t>> acked;
    std::set<uint64_t> acked_executions;
    std::ifstream in{dir_ / "results"};
    std::string key, outcome;
    uint64_t execution = 0;
    uint32_t attempt = 0;
    while (in >> key >> outcome >> execution >> attempt) {
      ++result_.acked_results;
      if (!acked.emplace(execution, attempt).second)
        violation(fmt::format("attempt {} of execution {} was acknowledged "
                              "twice",
                              attempt, execution));
      acked_executions.insert(execution);
      auto i = by_id.find(execution);
      if (i == by_id.end()) {
        violation(fmt::format("acknowledged {} of unknown execution {}",
                              outcome, execution));
        continue;
      }
      auto st = i->second.state();
      // A report after a cancel is acknowledged and changes nothing.
      if (st == v1::EXECUTION_STATE_CANCELED)
        continue;
      if (outcome == "succeeded" && st != v1::EXECUTION_STATE_SUCCEEDED)
        violation(fmt::format("acknowledged success of {} ({}) is {}",
                              execution, key, v1::ExecutionState_Name(st)));
      // A failed attempt may be followed by a retry.
      if (outcome == "failed" && st != v1::EXECUTION_STATE_FAILED &&
          i->second.attempt() <= attempt)
        violation(fmt::format("acknowledged failure of {} ({}) is {}",
                              execution, key, v1::ExecutionState_Name(st)));
    }
    for (const auto& [id, x] : by_id)
      if (x.state() == v1::EXECUTION_STATE_SUCCEEDED &&
          acked_executions.count(id) == 0)
        violation(fmt::format("execution {} ({}) SUCCEEDED without an "
                              "acknowledged report",
                              id, x.device_key()));
    // The fleet got no error for a legitimate report.
    static const std::regex line{R"(^  ([a-z -]+?) +(\d+)$)"};
    std::istringstream out{sim_.out()};
    std::string l;
    std::map<std::string, uint64_t> summary;
    while (std::getline(out, l)) {
      std::smatch m;
      if (std::regex_match(l, m, line))
        summary[m[1]] = std::stoull(m[2]);
    }
    if (summary.count("error responses") == 0)
      violation("fota-sim printed no summary: " + sim_.err());
    else if (summary["error responses"] != 0)
      violation(fmt::format("fota-sim got {} error responses: {}",
                            summary["error responses"], sim_.err()));
    result_.reports_resent = summary["reports re-sent"];
  }

  void check_digest() {
    auto digest = [&] {
      auto cl = operator_client();
      v1::ClientFrame f;
      f.mutable_get_state_digest();
      return must(cl, f, "GetStateDigest").state_digest();
    };
    auto live = digest();
    node_.signal(SIGKILL);
    node_.wait_for(10s);
    restart_node();
    auto replayed = digest();
    if (replayed.sha256() != live.sha256())
      violation(fmt::format("digest {} of the running node differs from {} "
                            "of its replayed log",
                            live.ShortDebugString(),
                            replayed.ShortDebugString()));
  }

  const options& opts_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  temp_dir dir_;
  process node_;
  process sim_;
  uint16_t port_ = 0;
  int node_starts_ = 0;
  std::vector<uint64_t> tasks_;
  trial_result result_;
};

} // namespace

int main(int argc, char** argv) {
  options opts;
  CLI::App app{"fota-torture: kill -9 a node mid-rollout and check that "
               "nothing is lost, doubled or stuck"};
  app.add_option("--trials", opts.trials, "trials to run")
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--seed", opts.seed, "seed of the first trial (0: random)");
  app.add_option("--devices", opts.devices, "devices in the fleet")
      ->check(CLI::Range(10u, 100000u));
  app.add_option("--bin-dir", opts.bin_dir,
                 "directory of fotad and fota-sim (default: $FOTA_BIN_DIR "
                 "or the build tree)");
  CLI11_PARSE(app, argc, argv);
  if (opts.bin_dir.empty())
    opts.bin_dir = bin_dir().string();
  if (opts.seed == 0)
    opts.seed = std::random_device{}();
  uint32_t failed = 0;
  for (uint32_t i = 0; i < opts.trials; ++i) {
    auto seed = opts.seed + i;
    trial t{opts, seed};
    auto r = t.run();
    fmt::print("trial {} seed {}: {} (killed after {} ms; {} acknowledged "
               "results, {} re-sent; {} succeeded, {} failed, {} canceled, "
               "{} skipped; {:.1f} s)\n",
               i + 1, seed, r.violations.empty() ? "ok" : "VIOLATED",
               r.kill_after_ms, r.acked_results, r.reports_resent, r.succeeded,
               r.failed, r.canceled, r.skipped, r.seconds);
    for (const auto& v : r.violations)
      fmt::print("  violation: {}\n", v);
    std::fflush(stdout);
    if (!r.violations.empty())
      ++failed;
  }
  fmt::print("{} of {} trials held every invariant\n", opts.trials - failed,
             opts.trials);
  return failed == 0 ? 0 : 1;
}
