/// Restart to serving: a data directory with N devices registered and a
/// finished snapshot task over all of them (each device notified, started,
/// succeeded and reporting the target version), restarted from its snapshot
/// and from zero. Measures the time from `node::start` until a `GetTask`
/// answers, the state recovery alone (snapshot load plus tail replay, or
/// the full replay), the events replayed and the RSS.
///
/// The data directory is built once per N by appending valid events straight
/// to the log (each applied to a world first, so the log replays cleanly),
/// by a separate process so that its memory does not count, and is kept under
/// TMPDIR as fota-restart-bench-<N> for the next run.
#include "actors/node.hpp"
#include "actors/snapshotter.hpp"
#include "bench/bench_support.hpp"
#include "events/codec.hpp"
#include "events/device.hpp"
#include "events/firmware.hpp"
#include "events/replay.hpp"
#include "events/task.hpp"
#include "fota/v1/api.pb.h"
#include "storage/event_log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

namespace {

using fota::bench::proc_status_bytes;
using fota::bench::reset_peak_rss;

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

constexpr const char* product = "bench";
constexpr int64_t base_ms = 1'772'352'000'000;

/// CPU time of the calling thread, in seconds.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::string device_key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "dev-%08llu",
                static_cast<unsigned long long>(i));
  return buf;
}

/// Appends events to the log in large batches, applying each to `w` first:
/// what does not apply is a bug of this generator, not a log to measure.
class writer {
public:
  explicit writer(fota::storage::event_log& log) : log_(log) {}

  bool add(const fota::event_list& xs) {
    for (const auto& e : xs) {
      auto stamped = e;
      stamped.set_sequence(w.last_sequence.value() + 1);
      if (auto err = fota::apply(w, stamped)) {
        error = err->message;
        return false;
      }
      pending_.push_back(e.SerializeAsString());
    }
    return pending_.size() < 8192 || flush();
  }

  bool flush() {
    if (pending_.empty())
      return true;
    auto res = log_.append(pending_);
    pending_.clear();
    if (!res) {
      error = res.error().message;
      return false;
    }
    return true;
  }

  fota::world w;
  std::string error;

private:
  fota::storage::event_log& log_;
  std::vector<std::string> pending_;
};

/// Builds the log of `n` devices and a finished task over them, then a
/// snapshot of it. Returns an error message, empty on success.
std::string build(const std::string& path, uint64_t n) {
  using namespace fota;
  fs::remove_all(path);
  storage::options opts{path, false};
  opts.min_free_space = 0;
  auto log = storage::event_log::open(opts);
  if (!log)
    return log.error().message;
  writer out{**log};
  auto t = from_millis(base_ms);
  auto take = [&](expected<event_list> x, const char* what) {
    if (!x) {
      out.error = std::string{what} + ": " + x.error().message;
      return false;
    }
    return out.add(*x);
  };
  std::string sha(64, 'a');
  if (!take(decide(out.w.firmware,
                   create_firmware{product, "2.0.0", "https://x/fw.bin", 1024,
                                   sha, "", ""},
                   firmware_policy{}, t),
            "create firmware") ||
      !take(decide(out.w.firmware,
                   skip_verification{product, "2.0.0", "benchmark"}, t),
            "skip verification"))
    return out.error;
  for (uint64_t i = 0; i < n; ++i)
    if (!take(
            decide(nullptr,
                   register_device{product, device_key(i), "1.0.0", {}, {}, ""},
                   t),
            "register"))
      return out.error;
  v1::TaskSpec proto;
  proto.set_name("bench");
  proto.set_product_key(product);
  proto.set_target_version("2.0.0");
  proto.add_source_versions("1.0.0");
  proto.set_strategy(v1::STRATEGY_SNAPSHOT);
  proto.mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
  proto.set_method(v1::METHOD_CLOUD_PUSH);
  auto spec = from_proto(proto);
  if (!take(decide_create(task_id{1}, spec,
                          out.w.firmware.find(product, "2.0.0"), t),
            "create task"))
    return out.error;
  auto& task = out.w.tasks.at(1);
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < n; i += enrollment_chunk) {
    keys.clear();
    for (uint64_t k = i; k < std::min(n, i + enrollment_chunk); ++k)
      keys.push_back(device_key(k));
    if (!out.add(decide_enroll(task, keys, {}, t)))
      return out.error;
  }
  for (uint64_t s = 1; s <= n; ++s) {
    auto at = from_millis(base_ms + static_cast<int64_t>(s));
    execution_seq seq{s};
    if (!take(decide_notified(task, seq, at), "notified") ||
        !take(decide_progress(task, seq, 50, "", at), "progress") ||
        !take(decide_version(task, seq, "2.0.0", at), "succeeded"))
      return out.error;
    auto* d = out.w.find_device(product, device_key(s - 1));
    if (!take(decide(*d,
                     report_version{product, device_key(s - 1), "2.0.0", ""},
                     at),
              "report version"))
      return out.error;
  }
  if (task.status != v1::TASK_STATUS_COMPLETED)
    return "the task did not complete";
  if (!out.flush())
    return out.error;
  std::atomic<bool> cancel{false};
  auto started = clock_type::now();
  auto snap = write_snapshot(**log, cancel);
  if (!snap)
    return snap.error().message;
  std::fprintf(stderr,
               "restart_bench: %llu events; snapshot of %llu bytes written "
               "in %.2f s\n",
               static_cast<unsigned long long>(out.w.last_sequence.value()),
               static_cast<unsigned long long>(*snap ? (*snap)->bytes : 0),
               seconds_since(started));
  return {};
}

/// The cached data directory for `n` devices, built by a fresh process of
/// this binary when missing (not a fork: RocksDB's background threads do not
/// survive one); empty on failure.
std::string data_dir(uint64_t n, std::string& error) {
  auto dir =
      (fs::temp_directory_path() / ("fota-restart-bench-" + std::to_string(n)))
          .string();
  auto done = dir + ".complete";
  if (fs::exists(done))
    return dir;
  std::fprintf(stderr, "restart_bench: building %s (once)\n", dir.c_str());
  auto count = std::to_string(n);
  auto pid = ::fork();
  if (pid == 0) {
    const char* argv[] = {"fota_bench_restart", "--prepare", count.c_str(),
                          dir.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char**>(argv));
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error = "building the data directory failed";
    return {};
  }
  std::ofstream{done} << "ok\n";
  return dir;
}

class Restart : public benchmark::Fixture {};

BENCHMARK_DEFINE_F(Restart, ToServing)(benchmark::State& state) {
  auto n = static_cast<uint64_t>(state.range(0));
  bool from_snapshot = state.range(1) != 0;
  std::string error;
  auto dir = data_dir(n, error);
  if (dir.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  double serving_s = 0;
  double recover_s = 0;
  double recover_cpu_s = 0;
  uint64_t replayed = 0;
  uint64_t rss = 0;
  for (auto _ : state) {
    // The state alone: the snapshot and the tail, or every event.
    {
      fota::storage::options opts{dir, false};
      opts.read_only = true;
      opts.verify_high_water = false;
      auto log = fota::storage::event_log::open(opts);
      if (!log) {
        state.SkipWithError(log.error().message.c_str());
        return;
      }
      auto started = clock_type::now();
      auto cpu = thread_cpu_s();
      fota::world w;
      if (from_snapshot) {
        auto loaded = fota::load_snapshot(**log, w);
        if (!loaded.sequence) {
          state.SkipWithError(("no snapshot: " + loaded.ignored).c_str());
          return;
        }
      }
      // As the node replays: the log read and decoded ahead on a second
      // thread.
      uint64_t events = 0;
      if (auto err = fota::replay_log(**log, w, events)) {
        state.SkipWithError(err->message.c_str());
        return;
      }
      recover_s = seconds_since(started);
      recover_cpu_s = thread_cpu_s() - cpu; // The applying thread's.
    }
    reset_peak_rss();
    caf::actor_system_config cfg;
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    fota::add_message_types(cfg);
    caf::actor_system sys{cfg};
    fota::node_config ncfg;
    ncfg.data_dir = dir;
    ncfg.sync = false;
    ncfg.min_free_space = 0;
    ncfg.use_snapshots = from_snapshot;
    ncfg.snapshot_every_events = 0;
    auto started = clock_type::now();
    auto node = fota::node::start(sys, ncfg);
    if (!node) {
      state.SkipWithError(node.error().message.c_str());
      return;
    }
    fota::v1::ClientFrame frame;
    frame.mutable_get_task()->set_task_id(1);
    auto r = (*node)->call(frame);
    serving_s = seconds_since(started);
    if (r.status() != fota::v1::STATUS_CODE_OK ||
        r.task().counters().succeeded() != n) {
      state.SkipWithError(("GetTask: " + r.message()).c_str());
      return;
    }
    state.SetIterationTime(serving_s);
    replayed = (*node)->recovery().events;
    rss = proc_status_bytes("VmRSS");
    (*node)->stop();
  }
  state.counters["serving_s"] = serving_s;
  state.counters["recover_state_s"] = recover_s;
  state.counters["recover_state_cpu_s"] = recover_cpu_s;
  state.counters["events_replayed"] = static_cast<double>(replayed);
  state.counters["rss_MB"] = static_cast<double>(rss) / (1 << 20);
  state.counters["peak_rss_MB"] =
      static_cast<double>(proc_status_bytes("VmHWM")) / (1 << 20);
}

BENCHMARK_REGISTER_F(Restart, ToServing)
    ->ArgNames({"devices", "snapshot"})
    ->Args({100'000, 0})
    ->Args({100'000, 1})
    ->Args({1'000'000, 0})
    ->Args({1'000'000, 1})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

} // namespace

/// `fota_bench_restart --prepare N DIR` builds the data directory of N
/// devices; otherwise the benchmarks run.
int main(int argc, char** argv) {
  if (argc == 4 && std::string{argv[1]} == "--prepare") {
    auto err = build(argv[3], std::strtoull(argv[2], nullptr, 10));
    if (!err.empty())
      std::fprintf(stderr, "restart_bench: %s\n", err.c_str());
    return err.empty() ? 0 : 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
