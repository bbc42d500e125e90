/// Fleet load in one process: a real node (fsync on, detached journal) and a
/// simulated gateway (session actors, the origin of every device command)
/// that registers N devices, brings them online and answers every upgrade
/// push at once with progress and then the target version. Phases are timed
/// separately: registration, task creation over the whole fleet (CreateTask
/// until its OK reply), the upgrade run until the task is COMPLETED with N
/// successes and durable, and the node's stop. While the upgrades run, a few
/// operators, each on its own thread, call GetTask every millisecond
/// (gettask_* counters). Each run validates its outcome. The counters are the
/// figures of issue 8; scripts/bench_fleet.sh runs each size several times and
/// takes medians.
///
/// Environment: FOTA_BENCH_CURVE=path.csv (the rollout curve every ~100 ms:
/// pushes, successes and failures per second and RSS; off by default),
/// FOTA_BENCH_GETTASK (operator threads, default 2; 0 for none),
/// FOTA_BENCH_GETTASK_INTERVAL_MS (pause between one operator's calls,
/// default 1), FOTA_BENCH_PERF_CTL and FOTA_BENCH_PERF_ACK (perf's control
/// FIFOs, to profile the upgrade phase alone; with FOTA_BENCH_PERF_CREATE=1
/// the task creation instead). For experiments:
/// FOTA_BENCH_REGISTER_BATCH (devices per RegisterDevices request, brought
/// online in it, default 1000; 1: a RegisterDevice and a DeviceOnline per
/// device), FOTA_BENCH_WINDOW (gateway requests in flight, default 4096),
/// FOTA_BENCH_SESSIONS (default 16), FOTA_BENCH_PROBE=1 (mailbox delay of
/// the busy actors as p1_*/p3_* counters).
#include "actors/node.hpp"
#include "bench/bench_support.hpp"
#include "fota/v1/api.pb.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <malloc.h>
#include <memory>
#include <mutex>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

namespace {

using fota::bench::proc_status_bytes;
using fota::bench::reset_peak_rss;

// -- helpers ------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

/// Asks the gateway to register and bring online N devices.
using register_atom = caf::atom_constant<caf::atom("fbregister")>;

/// Asks the gateway to reply once N upgrades are done.
using wait_atom = caf::atom_constant<caf::atom("fbwait")>;

constexpr const char* product = "bench-product";
constexpr const char* source_version = "1.0.0";
constexpr const char* target_version = "2.0.0";

/// Requests the gateway keeps in flight at most, over all its sessions;
/// FOTA_BENCH_WINDOW overrides it for experiments.
size_t window() {
  static const size_t value = [] {
    const char* env = std::getenv("FOTA_BENCH_WINDOW");
    auto x = env != nullptr ? std::strtoull(env, nullptr, 10) : 0;
    return x > 0 ? static_cast<size_t>(x) : size_t{4096};
  }();
  return value;
}

/// Devices per registration request (RegisterDevices, online); 1 registers
/// each device with RegisterDevice and then DeviceOnline.
uint64_t register_batch() {
  static const uint64_t value = [] {
    const char* env = std::getenv("FOTA_BENCH_REGISTER_BATCH");
    auto x = env != nullptr ? std::strtoull(env, nullptr, 10) : 0;
    return x > 0 ? x : uint64_t{1000};
  }();
  return value;
}

/// Batch registrations one session keeps in flight.
constexpr size_t batches_in_flight = 2;

/// Gateway sessions the devices are spread over (device i is on session
/// i % sessions); FOTA_BENCH_SESSIONS overrides it. CAF 0.17 keeps an
/// actor's pending responses in a flat vector, so one session with
/// thousands of outstanding requests costs O(outstanding) per reply; a few
/// sessions with a share of the window each are both cheaper and closer to
/// a real fleet.
size_t sessions() {
  static const size_t value = [] {
    const char* env = std::getenv("FOTA_BENCH_SESSIONS");
    auto x = env != nullptr ? std::strtoull(env, nullptr, 10) : 0;
    return x > 0 ? static_cast<size_t>(x) : size_t{16};
  }();
  return value;
}

/// How long the benchmark waits for one phase of `n` devices before it
/// gives up: far longer than a healthy run takes, even on a loaded machine.
std::chrono::milliseconds phase_timeout(uint64_t n) {
  return std::chrono::milliseconds{120'000 + 2 * n};
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// CPU time of the whole process (all threads, user + system), in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto sec = [](const timeval& x) {
    return static_cast<double>(x.tv_sec) + static_cast<double>(x.tv_usec) / 1e6;
  };
  return sec(usage.ru_utime) + sec(usage.ru_stime);
}

std::string make_temp_dir() {
  return fota::bench::make_temp_dir("fota-fleet-bench");
}

using fota::bench::remove_dir;

std::string device_key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "dev-%08llu",
                static_cast<unsigned long long>(i));
  return buf;
}

// -- gateway ------------------------------------------------------------------

/// What every gateway session has seen so far, read while the rollout runs
/// by the curve writer (relaxed: a sample needs no order with the rest).
struct rollout_progress {
  std::atomic<uint64_t> pushes{0};
  std::atomic<uint64_t> successes{0};
  std::atomic<uint64_t> failures{0};
  /// When the first push reached a session (steady clock, ns); 0 before.
  std::atomic<int64_t> first_push_ns{0};
};

/// An upgrade push waiting for a free request slot.
struct pending_upgrade {
  std::string device_key;
  uint64_t execution_id = 0;
};

/// The simulated gateway session: the origin of every device command, so
/// that the node pushes to it.
struct gateway_state {
  fota::fleet_actor fleet;
  std::shared_ptr<rollout_progress> progress;
  /// This session's devices: `first`, `first + stride`, ...
  uint64_t first = 0;
  uint64_t stride = 1;
  /// Requests this session keeps in flight at most.
  size_t window = 1;
  size_t outstanding = 0;
  size_t max_queue = 0;
  // Registration.
  uint64_t register_target = 0;
  uint64_t next_register = 0;
  uint64_t registered = 0;
  caf::response_promise registered_rp;
  // Upgrades.
  std::deque<pending_upgrade> queue;
  uint64_t pushes = 0;
  uint64_t upgraded = 0;
  uint64_t upgrade_target = 0;
  bool waiting = false;
  caf::response_promise upgraded_rp;
  // Failures.
  uint64_t errors = 0;
  std::string first_error;

  static inline constexpr const char* name = "bench.gateway";
};

using gateway_pointer = caf::stateful_actor<gateway_state>*;

/// What the gateway's sessions saw, for counters and for error messages.
struct gateway_stats {
  uint64_t errors = 0;
  std::string first_error;
  uint64_t pushes = 0;
  uint64_t upgraded = 0;
  size_t outstanding = 0;
  size_t queued = 0;
  size_t max_queue = 0;

  /// Adds the stats of one more session.
  void add(uint64_t errors, std::string& first, uint64_t pushes,
           uint64_t upgraded, uint64_t outstanding, uint64_t queued,
           uint64_t max_queue) {
    if (this->errors == 0 && errors > 0)
      first_error = std::move(first);
    this->errors += errors;
    this->pushes += pushes;
    this->upgraded += upgraded;
    this->outstanding += outstanding;
    this->queued += queued;
    this->max_queue = std::max(this->max_queue, size_t{max_queue});
  }

  std::string to_string() const {
    return "gateway: " + std::to_string(pushes) + " pushes, " +
           std::to_string(upgraded) + " answered, " +
           std::to_string(outstanding) + " requests outstanding, " +
           std::to_string(queued) + " pushes queued, " +
           std::to_string(errors) + " errors";
  }
};

void note_error(gateway_pointer self, std::string what) {
  auto& st = self->state;
  if (st.errors++ == 0)
    st.first_error = std::move(what);
}

/// Sends a device command to the fleet, from this session, and calls
/// `then(ok)` with whether it succeeded.
template <class Command, class Then>
void send_command(gateway_pointer self, Command cmd, const char* what,
                  Then then) {
  auto on_error = [self, what, then](caf::error& err) {
    note_error(self, std::string{what} + ": " + self->system().render(err));
    then(false);
  };
  using reply = typename Command::reply;
  if constexpr (std::is_same_v<Command, fota::device_online>)
    self->request(self->state.fleet, caf::infinite, std::move(cmd),
                  caf::actor_cast<caf::actor>(self))
        .then([then](reply&) { then(true); }, on_error);
  else
    self->request(self->state.fleet, caf::infinite, std::move(cmd))
        .then([then](reply&) { then(true); }, on_error);
}

void register_next(gateway_pointer self);

void registration_done(gateway_pointer self) {
  auto& st = self->state;
  --st.outstanding;
  if (++st.registered == st.register_target)
    st.registered_rp.deliver(st.registered);
  else
    register_next(self);
}

/// Registers devices and brings them online in RegisterDevices requests of
/// `register_batch()` devices, at most `batches_in_flight` at a time.
void register_batches(gateway_pointer self) {
  auto& st = self->state;
  while (st.outstanding < batches_in_flight &&
         st.next_register < st.register_target) {
    fota::register_devices cmd;
    cmd.online = true;
    auto n = std::min(register_batch(), st.register_target - st.next_register);
    cmd.devices.reserve(n);
    for (uint64_t i = 0; i < n; ++i)
      cmd.devices.push_back(fota::register_device{
          product,
          device_key(st.first + st.stride * st.next_register++),
          source_version,
          {},
          {},
          {}});
    ++st.outstanding;
    auto done = [self, n] {
      auto& st = self->state;
      --st.outstanding;
      st.registered += n;
      if (st.registered == st.register_target)
        st.registered_rp.deliver(st.registered);
      else
        register_batches(self);
    };
    self->request(st.fleet, caf::infinite, std::move(cmd),
                  caf::actor_cast<caf::actor>(self))
        .then(
            [self, done](fota::registered_batch& r) {
              for (const auto& x : r.results)
                if (x.error.code != fota::errc::none)
                  note_error(self, "RegisterDevices: " + x.error.message);
              done();
            },
            [self, done](caf::error& err) {
              note_error(self,
                         "RegisterDevices: " + self->system().render(err));
              done();
            });
  }
}

/// Registers devices and brings them online, keeping at most
/// `window` devices in progress.
void register_next(gateway_pointer self) {
  auto& st = self->state;
  if (register_batch() > 1) {
    register_batches(self);
    return;
  }
  while (st.outstanding < st.window && st.next_register < st.register_target) {
    auto key = device_key(st.first + st.stride * st.next_register++);
    ++st.outstanding;
    // No gateway name: in-process sessions are not an edge connection.
    fota::register_device reg{product, key, source_version, {}, {}, {}};
    send_command(self, std::move(reg), "RegisterDevice", [self, key](bool ok) {
      if (!ok) {
        registration_done(self);
        return;
      }
      send_command(self, fota::device_online{product, key, {}}, "DeviceOnline",
                   [self](bool) { registration_done(self); });
    });
  }
}

void upgrade_next(gateway_pointer self);

void upgrade_done(gateway_pointer self, bool ok) {
  auto& st = self->state;
  (ok ? st.progress->successes : st.progress->failures)
      .fetch_add(1, std::memory_order_relaxed);
  --st.outstanding;
  ++st.upgraded;
  if (st.waiting && st.upgraded >= st.upgrade_target) {
    st.waiting = false;
    st.upgraded_rp.deliver(st.upgraded);
  }
  upgrade_next(self);
}

/// Answers queued pushes: progress at step 50, then the target version.
void upgrade_next(gateway_pointer self) {
  auto& st = self->state;
  while (st.outstanding < st.window && !st.queue.empty()) {
    auto job = std::move(st.queue.front());
    st.queue.pop_front();
    ++st.outstanding;
    fota::report_progress progress{
        product, job.device_key, fota::execution_id{job.execution_id}, 50, {},
        {}};
    send_command(
        self, std::move(progress), "ReportProgress",
        [self, key = job.device_key](bool ok) {
          if (!ok) {
            upgrade_done(self, false);
            return;
          }
          send_command(
              self, fota::report_version{product, key, target_version, {}},
              "ReportVersion", [self](bool ok) { upgrade_done(self, ok); });
        });
  }
}

/// Devices of a fleet of `n` on the session with `first` and `stride`.
uint64_t devices_of(uint64_t n, uint64_t first, uint64_t stride) {
  return n > first ? (n - first + stride - 1) / stride : 0;
}

caf::behavior gateway(gateway_pointer self, fota::fleet_actor fleet,
                      std::shared_ptr<rollout_progress> progress,
                      uint64_t first, uint64_t stride, size_t window) {
  auto& st = self->state;
  st.fleet = std::move(fleet);
  st.progress = std::move(progress);
  st.first = first;
  st.stride = stride;
  st.window = window;
  return {
      [=](register_atom, uint64_t fleet_size) {
        auto& st = self->state;
        auto n = devices_of(fleet_size, st.first, st.stride);
        st.register_target = n;
        st.registered_rp = self->make_response_promise();
        if (n == 0)
          st.registered_rp.deliver(uint64_t{0});
        else
          register_next(self);
        return st.registered_rp;
      },
      [=](wait_atom, uint64_t fleet_size) {
        auto& st = self->state;
        auto n = devices_of(fleet_size, st.first, st.stride);
        st.upgrade_target = n;
        st.upgraded_rp = self->make_response_promise();
        if (st.upgraded >= n) {
          st.upgraded_rp.deliver(st.upgraded);
        } else {
          st.waiting = true;
        }
        return st.upgraded_rp;
      },
      [=](fota::push_atom, const fota::push_frame& push, const caf::actor&) {
        const auto& bytes = push.frame;
        auto& st = self->state;
        fota::v1::ServerFrame frame;
        if (!frame.ParseFromString(bytes) || !frame.has_push() ||
            !frame.push().has_upgrade()) {
          note_error(self, "gateway got a frame that is no upgrade push");
          return;
        }
        ++st.pushes;
        if (st.progress->pushes.fetch_add(1, std::memory_order_relaxed) == 0)
          st.progress->first_push_ns.store(
              clock_type::now().time_since_epoch().count(),
              std::memory_order_relaxed);
        const auto& up = frame.push().upgrade();
        st.queue.push_back(pending_upgrade{up.device_key(), up.execution_id()});
        st.max_queue = std::max(st.max_queue, st.queue.size());
        upgrade_next(self);
      },
      [=](caf::get_atom) {
        auto& st = self->state;
        return caf::make_message(st.errors, st.first_error, st.pushes,
                                 st.upgraded, uint64_t{st.outstanding},
                                 uint64_t{st.queue.size()},
                                 uint64_t{st.max_queue});
      },
  };
}

// -- prober -------------------------------------------------------------------

/// Where messages pile up: every few milliseconds the prober asks each
/// target a cheap question and records how long the answer takes, which is
/// mostly the time the question waits in the target's mailbox. Only with
/// FOTA_BENCH_PROBE=1.
using tick_atom = caf::atom_constant<caf::atom("fbtick")>;

/// Stops the prober; it replies once its results are final.
using stop_atom = caf::atom_constant<caf::atom("fbstop")>;

constexpr auto probe_interval = std::chrono::milliseconds{5};

bool probing() {
  static const bool value = [] {
    const char* env = std::getenv("FOTA_BENCH_PROBE");
    return env != nullptr && std::string{env} == "1";
  }();
  return value;
}

/// Latencies of one target's answers.
struct probe_result {
  std::string name;
  uint64_t count = 0;
  double sum_ms = 0;
  double max_ms = 0;
};

using probe_results = std::vector<probe_result>;

struct prober_state;

using prober_pointer = caf::stateful_actor<prober_state>*;

/// Sends one question; calls `probe_done(self, index)` on the answer.
using probe_fn = std::function<void(prober_pointer, size_t)>;

struct prober_state {
  std::vector<probe_fn> probes;
  std::vector<bool> outstanding;
  std::vector<clock_type::time_point> sent;
  /// Written by the prober only; read by the benchmark after the prober
  /// answered `stop_atom`.
  std::shared_ptr<probe_results> results;
  bool running = true;

  static inline constexpr const char* name = "bench.prober";
};

void probe_done(prober_pointer self, size_t index) {
  auto& st = self->state;
  auto ms = std::chrono::duration<double, std::milli>(clock_type::now() -
                                                      st.sent[index])
                .count();
  auto& r = (*st.results)[index];
  ++r.count;
  r.sum_ms += ms;
  r.max_ms = std::max(r.max_ms, ms);
  st.outstanding[index] = false;
}

caf::behavior prober(prober_pointer self, std::vector<probe_fn> probes,
                     std::shared_ptr<probe_results> results) {
  auto& st = self->state;
  st.probes = std::move(probes);
  st.outstanding.assign(st.probes.size(), false);
  st.sent.resize(st.probes.size());
  st.results = std::move(results);
  self->send(self, tick_atom::value);
  return {
      [=](tick_atom) {
        auto& st = self->state;
        if (!st.running)
          return;
        for (size_t i = 0; i < st.probes.size(); ++i) {
          if (st.outstanding[i])
            continue;
          st.outstanding[i] = true;
          st.sent[i] = clock_type::now();
          st.probes[i](self, i);
        }
        self->delayed_send(self, probe_interval, tick_atom::value);
      },
      [=](stop_atom) {
        self->state.running = false;
        return true;
      },
  };
}

/// A probe that sends `(xs...)` to `dest` and takes any answer of type
/// `Answer...` (or an error) as done.
template <class... Answer, class Dest, class... Ts>
probe_fn make_probe(Dest dest, Ts... xs) {
  return [=](prober_pointer self, size_t index) {
    self->request(dest, caf::infinite, xs...)
        .then([self, index](Answer&...) { probe_done(self, index); },
              [self, index](caf::error&) { probe_done(self, index); });
  };
}

/// Starts a prober over `names` and `probes`; returns it with its results.
std::pair<caf::actor, std::shared_ptr<probe_results>>
start_prober(caf::actor_system& sys, std::vector<std::string> names,
             std::vector<probe_fn> probes) {
  auto results = std::make_shared<probe_results>(names.size());
  for (size_t i = 0; i < names.size(); ++i)
    (*results)[i].name = std::move(names[i]);
  return {sys.spawn(prober, std::move(probes), results), results};
}

/// Stops `p` and adds its results as counters named `prefix_target_...`.
void stop_prober(caf::scoped_actor& self, benchmark::State& state,
                 const std::string& prefix, const caf::actor& p,
                 const probe_results& results) {
  if (!p)
    return;
  self->request(p, caf::infinite, stop_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  self->send_exit(p, caf::exit_reason::user_shutdown);
  for (const auto& r : results) {
    auto name = prefix + "_" + r.name;
    state.counters[name + "_ms_avg"] =
        r.count > 0 ? r.sum_ms / static_cast<double>(r.count) : 0.0;
    state.counters[name + "_ms_max"] = r.max_ms;
  }
}

// -- rollout observers --------------------------------------------------------

/// Reads a non-negative integer from the environment; `fallback` when unset.
uint64_t env_uint(const char* name, uint64_t fallback) {
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? std::strtoull(env, nullptr, 10)
                                        : fallback;
}

/// Writes the rollout curve to the CSV file named by FOTA_BENCH_CURVE (off
/// when unset): every ~100 ms the time since the rollout started, the
/// pushes, successes and failures per second over the last interval as the
/// gateway saw them, and the RSS, from its own thread.
class curve_writer {
public:
  static constexpr auto interval = std::chrono::milliseconds{100};

  curve_writer(std::shared_ptr<rollout_progress> progress,
               clock_type::time_point start)
    : progress_(std::move(progress)), start_(start) {
    const char* path = std::getenv("FOTA_BENCH_CURVE");
    if (path == nullptr || *path == '\0')
      return;
    out_.open(path, std::ios::trunc);
    if (!out_)
      return;
    out_ << "t_s,pushes_per_s,successes_per_s,failures_per_s,rss_MB,"
            "pushes,successes,failures\n";
    sample(start_);
    thread_ = std::thread{[this] { loop(); }};
  }

  curve_writer(const curve_writer&) = delete;
  curve_writer& operator=(const curve_writer&) = delete;

  ~curve_writer() { stop(); }

  /// Writes a last line and closes the file.
  void stop() {
    if (!thread_.joinable())
      return;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
    sample(clock_type::now());
    out_.close();
  }

private:
  void loop() {
    std::unique_lock<std::mutex> guard{mtx_};
    auto next = start_ + interval;
    while (!cv_.wait_until(guard, next, [this] { return stopping_; })) {
      sample(clock_type::now());
      next += interval;
    }
  }

  void sample(clock_type::time_point now) {
    auto pushes = progress_->pushes.load(std::memory_order_relaxed);
    auto successes = progress_->successes.load(std::memory_order_relaxed);
    auto failures = progress_->failures.load(std::memory_order_relaxed);
    auto dt = std::chrono::duration<double>(now - last_time_).count();
    auto rate = [&](uint64_t now_count, uint64_t last_count) {
      return dt > 0 ? static_cast<double>(now_count - last_count) / dt : 0.0;
    };
    char line[160];
    std::snprintf(line, sizeof(line), "%.3f,%.0f,%.0f,%.0f,%.1f,%llu,%llu,%llu",
                  std::chrono::duration<double>(now - start_).count(),
                  rate(pushes, last_pushes_), rate(successes, last_successes_),
                  rate(failures, last_failures_),
                  static_cast<double>(proc_status_bytes("VmRSS")) /
                      (1024.0 * 1024.0),
                  static_cast<unsigned long long>(pushes),
                  static_cast<unsigned long long>(successes),
                  static_cast<unsigned long long>(failures));
    out_ << line << '\n';
    out_.flush();
    last_time_ = now;
    last_pushes_ = pushes;
    last_successes_ = successes;
    last_failures_ = failures;
  }

  std::shared_ptr<rollout_progress> progress_;
  clock_type::time_point start_;
  clock_type::time_point last_time_ = start_;
  uint64_t last_pushes_ = 0;
  uint64_t last_successes_ = 0;
  uint64_t last_failures_ = 0;
  std::ofstream out_;
  std::thread thread_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

/// Latencies of the operator's GetTask calls during the rollout.
struct operator_latency {
  std::vector<double> ms;
  uint64_t errors = 0;
  std::string first_error;

  /// The nearest-rank percentile `p` (0..1) of the latencies; 0 when none.
  double percentile(double p) const {
    if (ms.empty())
      return 0;
    auto sorted = ms;
    auto rank = static_cast<size_t>(std::ceil(p * sorted.size()));
    auto idx = std::min(sorted.size() - 1, rank > 0 ? rank - 1 : 0);
    std::nth_element(sorted.begin(), sorted.begin() + idx, sorted.end());
    return sorted[idx];
  }
};

/// Operators, each on its own thread, asking the router for GetTask over
/// and over while the rollout runs, the way `node::call` does (one request
/// with the operator role, the response parsed) but through one blocking
/// actor per thread rather than one per call. Each has one call in flight:
/// FOTA_BENCH_GETTASK sets how many operators (default 2; 0 turns them
/// off), FOTA_BENCH_GETTASK_INTERVAL_MS the pause between one operator's
/// calls (default 1 ms: an operator's pace, not a load generator; once
/// GetTask answers in microseconds, back-to-back callers would take the CPU
/// the rollout is measured on).
class operator_client {
public:
  operator_client(caf::actor_system& sys, fota::router_actor router,
                  uint64_t task_id)
    : results_(task_id != 0 ? env_uint("FOTA_BENCH_GETTASK", 2) : 0) {
    fota::v1::ClientFrame frame;
    frame.mutable_get_task()->set_task_id(task_id);
    auto bytes = frame.SerializeAsString();
    for (auto& result : results_)
      threads_.emplace_back([this, &sys, router, bytes, &result] {
        run(sys, router, bytes, result);
      });
  }

  operator_client(const operator_client&) = delete;
  operator_client& operator=(const operator_client&) = delete;

  ~operator_client() { stop(); }

  /// Lets the calls in flight finish and returns what was measured.
  operator_latency stop() {
    stopping_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
    operator_latency out;
    for (auto& r : results_) {
      out.ms.insert(out.ms.end(), r.ms.begin(), r.ms.end());
      if (out.errors == 0 && r.errors > 0)
        out.first_error = r.first_error;
      out.errors += r.errors;
    }
    return out;
  }

  size_t operators() const noexcept { return results_.size(); }

private:
  void run(caf::actor_system& sys, const fota::router_actor& router,
           const std::string& bytes, operator_latency& result) {
    auto gap = std::chrono::milliseconds{
        env_uint("FOTA_BENCH_GETTASK_INTERVAL_MS", 1)};
    caf::scoped_actor self{sys};
    while (!stopping_) {
      auto t0 = clock_type::now();
      fota::v1::Response response;
      std::string error;
      self->request(router, std::chrono::seconds{60}, fota::request_atom_v,
                    static_cast<int32_t>(fota::v1::ROLE_OPERATOR), bytes)
          .receive(
              [&](const std::string& out) {
                if (!response.ParseFromString(out))
                  error = "unparsable response";
                else if (response.status() != fota::v1::STATUS_CODE_OK)
                  error = fota::v1::StatusCode_Name(response.status()) + " " +
                          response.message();
              },
              [&](const caf::error& err) { error = sys.render(err); });
      result.ms.push_back(
          std::chrono::duration<double, std::milli>(clock_type::now() - t0)
              .count());
      if (!error.empty() && result.errors++ == 0)
        result.first_error = "GetTask: " + error;
      if (gap.count() > 0)
        std::this_thread::sleep_for(gap);
    }
  }

  /// One per operator; sized before the threads start.
  std::vector<operator_latency> results_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
};

/// Lets `perf record --control fifo:CTL,ACK -D -1` sample the rollout phase
/// only: FOTA_BENCH_PERF_CTL and FOTA_BENCH_PERF_ACK name the two FIFOs, and
/// `command("enable")` and `command("disable")` switch perf's events on and
/// off, waiting for its acknowledgement. Does nothing when unset.
class perf_control {
public:
  perf_control() {
    const char* ctl = std::getenv("FOTA_BENCH_PERF_CTL");
    const char* ack = std::getenv("FOTA_BENCH_PERF_ACK");
    if (ctl == nullptr || ack == nullptr)
      return;
    ctl_.open(ctl);
    ack_.open(ack);
  }

  void command(const char* what) {
    if (!ctl_ || !ack_ || !ctl_.is_open())
      return;
    ctl_ << what << '\n' << std::flush;
    std::string reply;
    std::getline(ack_, reply);
  }

private:
  std::ofstream ctl_;
  std::ifstream ack_;
};

/// Sends `(xs...)` to every actor in `to` at once and waits for all
/// answers (each an uint64_t); returns the first error, if any.
template <class... Ts>
std::string ask_all(caf::scoped_actor& self, const std::vector<caf::actor>& to,
                    std::chrono::milliseconds timeout, Ts... xs) {
  using handle = decltype(self->request(to.front(), timeout, xs...));
  std::vector<handle> handles;
  for (const auto& a : to)
    handles.push_back(self->request(a, timeout, xs...));
  std::string error;
  for (auto& h : handles)
    h.receive([](uint64_t) {},
              [&](caf::error& err) {
                if (error.empty())
                  error = self->system().render(err);
              });
  return error;
}

/// Collects the stats of every gateway session.
gateway_stats collect_stats(caf::scoped_actor& self,
                            const std::vector<caf::actor>& sessions) {
  gateway_stats out;
  for (const auto& gw : sessions)
    self->request(gw, caf::infinite, caf::get_atom::value)
        .receive(
            [&](uint64_t errors, std::string& first, uint64_t pushes,
                uint64_t upgraded, uint64_t outstanding, uint64_t queued,
                uint64_t max_queue) {
              out.add(errors, first, pushes, upgraded, outstanding, queued,
                      max_queue);
            },
            [](caf::error&) {});
  return out;
}

// -- fixture ------------------------------------------------------------------

/// One node in a fresh data directory per run; the scheduler policy comes
/// from the subclass.
class Fleet : public benchmark::Fixture {
public:
  void SetUp(benchmark::State& state) override {
    malloc_trim(0);
    reset_peak_rss();
    rss_before_ = proc_status_bytes("VmRSS");
    dir_ = make_temp_dir();
    if (dir_.empty())
      state.SkipWithError("mkdtemp failed");
  }

  void TearDown(benchmark::State&) override {
    remove_dir(dir_);
    dir_.clear();
    malloc_trim(0);
  }

  void run(benchmark::State& state, caf::atom_value policy);

protected:
  std::string dir_;
  uint64_t rss_before_ = 0;
};

/// Waits for the journal to make durable every append that reached it
/// before this call: the first (empty) append lands behind them, and the
/// second behind the flush the first group scheduled. Returns the last
/// durable sequence.
fota::expected<uint64_t> durable_sequence(caf::scoped_actor& self,
                                          const fota::node& node) {
  uint64_t seq = 0;
  std::string error;
  for (int i = 0; i < 2 && error.empty(); ++i)
    self->request(node.context()->journal, caf::infinite, fota::append_atom_v,
                  fota::event_batch{})
        .receive([&](fota::sequence_number s) { seq = s.value(); },
                 [&](caf::error& err) { error = self->system().render(err); });
  if (!error.empty())
    return fota::make_failure(fota::errc::internal, error);
  return seq;
}

void Fleet::run(benchmark::State& state, caf::atom_value policy) {
  if (dir_.empty())
    return;
  auto n = static_cast<uint64_t>(state.range(0));
  double register_s = 0, create_s = 0, upgrade_s = 0;
  double register_cpu = 0, create_cpu = 0, upgrade_cpu = 0;
  double stop_s = 0, shutdown_s = 0, first_push_s = 0;
  uint64_t rss_after_register = 0, rss_after_upgrade = 0, events_upgrade = 0;
  uint64_t gw_pushes = 0, gw_max_queue = 0;
  operator_latency get_task;
  size_t operators = 0;
  perf_control perf;
  for (auto _ : state) {
    caf::actor_system_config cfg;
    cfg.set("scheduler.policy", policy);
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    fota::add_message_types(cfg);
    // Held by pointer so that its shutdown can be timed.
    auto sys_ptr = std::make_unique<caf::actor_system>(cfg);
    auto& sys = *sys_ptr;
    fota::node_config ncfg;
    ncfg.data_dir = dir_;
    ncfg.sync = true;
    ncfg.detach_journal = true;
    auto started = fota::node::start(sys, ncfg);
    if (!started) {
      state.SkipWithError(started.error().message.c_str());
      return;
    }
    auto node = std::move(started).value();
    std::vector<caf::actor> gws;
    auto progress = std::make_shared<rollout_progress>();
    auto per_session = std::max<size_t>(1, window() / sessions());
    for (size_t i = 0; i < sessions(); ++i)
      gws.push_back(sys.spawn(gateway, node->context()->fleet, progress,
                              uint64_t{i}, uint64_t{sessions()}, per_session));
    std::string error;
    {
      caf::scoped_actor self{sys};
      std::string phase = "registration";
      // Phase 1: register and bring online.
      const auto& ctx = *node->context();
      const auto& journal = ctx.journal;
      auto probe_fleet = make_probe<fota::device_actor>(
          ctx.fleet, fota::lookup_atom_v, std::string{product}, device_key(0));
      auto probe_journal = make_probe<fota::sequence_number>(
          journal, fota::append_atom_v, fota::event_batch{});
      auto probe_gateway =
          make_probe<uint64_t, std::string, uint64_t, uint64_t, uint64_t,
                     uint64_t, uint64_t>(gws.front(), caf::get_atom::value);
      caf::actor p1;
      std::shared_ptr<probe_results> p1_results;
      if (probing())
        std::tie(p1, p1_results) =
            start_prober(sys, {"fleet", "journal", "gateway"},
                         {probe_fleet, probe_journal, probe_gateway});
      auto t0 = clock_type::now();
      auto c0 = process_cpu_seconds();
      error = ask_all(self, gws, phase_timeout(n), register_atom::value, n);
      if (!error.empty())
        error = phase + ": " + error;
      register_s = seconds_since(t0);
      register_cpu = process_cpu_seconds() - c0;
      if (p1)
        stop_prober(self, state, "p1", p1, *p1_results);
      rss_after_register = proc_status_bytes("VmRSS");
      // Phase 2: firmware, attestation, task creation.
      fota::v1::ClientFrame frame;
      auto* fw = frame.mutable_create_firmware()->mutable_firmware();
      fw->set_product_key(product);
      fw->set_version(target_version);
      fw->set_url("https://firmware.example/bench-2.0.0.bin");
      fw->set_size(4 << 20);
      fw->set_sha256(std::string(64, 'a'));
      auto check = [&](const fota::v1::Response& r, const char* what) {
        if (error.empty() && r.status() != fota::v1::STATUS_CODE_OK)
          error = std::string{what} + ": " +
                  fota::v1::StatusCode_Name(r.status()) + " " + r.message();
        return error.empty();
      };
      if (error.empty())
        check(node->call(frame), "CreateFirmware");
      frame.Clear();
      auto* skip = frame.mutable_skip_verification();
      skip->set_product_key(product);
      skip->set_version(target_version);
      skip->set_reason("benchmark image");
      if (error.empty())
        check(node->call(frame), "SkipVerification");
      uint64_t seq_before = 0;
      if (error.empty()) {
        auto seq = durable_sequence(self, *node);
        if (seq)
          seq_before = *seq;
        else
          error = seq.error().message;
      }
      frame.Clear();
      auto* spec = frame.mutable_create_task()->mutable_spec();
      spec->set_name("fleet bench");
      spec->set_product_key(product);
      spec->set_target_version(target_version);
      spec->add_source_versions(source_version);
      spec->set_strategy(fota::v1::STRATEGY_SNAPSHOT);
      spec->mutable_scope()->set_kind(fota::v1::SCOPE_KIND_ALL);
      spec->set_method(fota::v1::METHOD_CLOUD_PUSH);
      uint64_t task_id = 0;
      auto t1 = clock_type::now();
      auto c1 = process_cpu_seconds();
      // FOTA_BENCH_PERF_CREATE=1 profiles task creation instead of the
      // upgrades.
      const bool profile_create = env_uint("FOTA_BENCH_PERF_CREATE", 0) != 0;
      if (profile_create)
        perf.command("enable");
      if (error.empty()) {
        auto r = node->call(frame);
        if (check(r, "CreateTask")) {
          task_id = r.task().task_id();
          if (r.task().counters().queued() != n)
            error = "CreateTask enrolled " +
                    std::to_string(r.task().counters().queued()) +
                    " devices, expected " + std::to_string(n);
        }
      }
      if (profile_create)
        perf.command("disable");
      create_s = seconds_since(t1);
      create_cpu = process_cpu_seconds() - c1;
      // Phase 3: upgrades until COMPLETED, durable.
      auto t2 = clock_type::now();
      auto c2 = process_cpu_seconds();
      phase = "upgrades";
      caf::actor p3;
      std::shared_ptr<probe_results> p3_results;
      if (probing() && task_id != 0) {
        fota::v1::ClientFrame get;
        get.mutable_get_task()->set_task_id(task_id);
        auto probe_task = make_probe<std::string>(
            node->router(), fota::request_atom_v,
            static_cast<int32_t>(fota::v1::ROLE_OPERATOR),
            get.SerializeAsString());
        fota::device_actor device;
        self->request(ctx.fleet, caf::infinite, fota::lookup_atom_v,
                      std::string{product}, device_key(n - 1))
            .receive([&](fota::device_actor& x) { device = std::move(x); },
                     [](caf::error&) {});
        auto probe_device = make_probe<fota::device_state>(
            device, fota::get_device{std::string{product}, device_key(n - 1)});
        std::tie(p3, p3_results) =
            start_prober(sys, {"task", "fleet", "device", "journal", "gateway"},
                         {probe_task, probe_fleet, probe_device, probe_journal,
                          probe_gateway});
      }
      if (!profile_create)
        perf.command("enable");
      {
        curve_writer curve{progress, t2};
        operator_client op{sys, node->router(), error.empty() ? task_id : 0};
        if (error.empty()) {
          error = ask_all(self, gws, phase_timeout(n), wait_atom::value, n);
          if (!error.empty())
            error = phase + ": " + error;
        }
        get_task = op.stop();
        operators = op.operators();
        curve.stop();
      }
      if (error.empty() && get_task.errors > 0)
        error = std::to_string(get_task.errors) + " of " +
                std::to_string(get_task.ms.size()) +
                " operator calls failed, first: " + get_task.first_error;
      if (task_id != 0) {
        // Every ExecutionSucceeded was sent to the task before the last
        // ReportVersion reply, so GetTask sees all of them.
        frame.Clear();
        frame.mutable_get_task()->set_task_id(task_id);
        auto r = node->call(frame);
        const auto& t = r.task();
        const auto& c = t.counters();
        auto summary = "task is " + fota::v1::TaskStatus_Name(t.status()) +
                       " with " + std::to_string(c.succeeded()) + " of " +
                       std::to_string(n) + " succeeded (queued " +
                       std::to_string(c.queued()) + ", notified " +
                       std::to_string(c.notified()) + ", in progress " +
                       std::to_string(c.in_progress()) + ", failed " +
                       std::to_string(c.failed()) + ")";
        if (!error.empty())
          error += "; " + summary;
        else if (check(r, "GetTask") &&
                 (t.status() != fota::v1::TASK_STATUS_COMPLETED ||
                  c.succeeded() != n))
          error = summary;
      }
      if (error.empty()) {
        auto seq = durable_sequence(self, *node);
        if (seq)
          events_upgrade = *seq - seq_before;
        else
          error = seq.error().message;
      }
      upgrade_s = seconds_since(t2);
      upgrade_cpu = process_cpu_seconds() - c2;
      if (!profile_create)
        perf.command("disable");
      if (auto ns = progress->first_push_ns.load(); ns != 0)
        first_push_s =
            std::chrono::duration<double>(
                clock_type::time_point{clock_type::duration{ns}} - t2)
                .count();
      rss_after_upgrade = proc_status_bytes("VmRSS");
      if (p3)
        stop_prober(self, state, "p3", p3, *p3_results);
      auto stats = collect_stats(self, gws);
      gw_pushes = stats.pushes;
      gw_max_queue = stats.max_queue;
      if (!error.empty())
        error += "; " + stats.to_string();
      else if (stats.errors > 0)
        error = std::to_string(stats.errors) +
                " gateway requests failed, first: " + stats.first_error;
      for (const auto& gw : gws)
        self->send_exit(gw, caf::exit_reason::user_shutdown);
    }
    state.PauseTiming();
    auto t3 = clock_type::now();
    node->stop();
    node.reset();
    stop_s = seconds_since(t3);
    auto t4 = clock_type::now();
    sys_ptr.reset();
    shutdown_s = seconds_since(t4);
    state.ResumeTiming();
    if (!error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  auto nd = static_cast<double>(n);
  state.counters["devices/s"] = nd / register_s;
  state.counters["register_s"] = register_s;
  state.counters["register_batch"] = static_cast<double>(register_batch());
  state.counters["task_create_s"] = create_s;
  state.counters["upgrade_s"] = upgrade_s;
  state.counters["first_push_s"] = first_push_s;
  state.counters["upgrades/s"] = benchmark::Counter(nd / upgrade_s);
  state.counters["events/s"] = static_cast<double>(events_upgrade) / upgrade_s;
  state.counters["cpu_us/device"] = register_cpu * 1e6 / nd;
  state.counters["task_create_cpu_s"] = create_cpu;
  state.counters["cpu_us/upgrade"] = upgrade_cpu * 1e6 / nd;
  state.counters["events/upgrade"] = static_cast<double>(events_upgrade) / nd;
  auto per_device = [&](uint64_t rss) {
    return rss > rss_before_ ? static_cast<double>(rss - rss_before_) / nd
                             : 0.0;
  };
  state.counters["rss_per_device_bytes"] = per_device(rss_after_register);
  state.counters["rss_KB/device"] = per_device(rss_after_register) / 1024.0;
  state.counters["rss_KB/device_task"] = per_device(rss_after_upgrade) / 1024.0;
  state.counters["peak_rss_MB"] =
      static_cast<double>(proc_status_bytes("VmHWM")) / (1024.0 * 1024.0);
  state.counters["gw_max_queue"] = static_cast<double>(gw_max_queue);
  state.counters["pushes"] = static_cast<double>(gw_pushes);
  state.counters["stop_s"] = stop_s;
  state.counters["shutdown_s"] = shutdown_s;
  state.counters["stop_total_s"] = stop_s + shutdown_s;
  state.counters["gettask_operators"] = static_cast<double>(operators);
  state.counters["gettask_calls"] = static_cast<double>(get_task.ms.size());
  state.counters["gettask_p50_ms"] = get_task.percentile(0.50);
  state.counters["gettask_p99_ms"] = get_task.percentile(0.99);
  state.counters["gettask_max_ms"] = get_task.percentile(1.0);
}

BENCHMARK_DEFINE_F(Fleet, Sharing)(benchmark::State& state) {
  run(state, caf::atom("sharing"));
}

BENCHMARK_DEFINE_F(Fleet, Stealing)(benchmark::State& state) {
  run(state, caf::atom("stealing"));
}

BENCHMARK_REGISTER_F(Fleet, Sharing)
    ->ArgNames({"devices"})
    ->Arg(10000)
    ->Arg(100000)
    ->Arg(1000000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

BENCHMARK_REGISTER_F(Fleet, Stealing)
    ->ArgNames({"devices"})
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);

} // namespace

BENCHMARK_MAIN();
