/// fota-sim: a fleet of simulated devices behind one gateway connection.
///
/// It registers N devices with a mix of versions, tags and attributes,
/// brings them online, and answers every upgrade push the way a device
/// would: confirm, report progress, then report the new version or a
/// failure. Each gateway connection (`--connections`) has one thread, its
/// share of the devices, a pipelined client, a timer heap and poll(2); the
/// state per device is a few dozen bytes, so a million devices fit. Devices
/// are registered and brought online in batches (`RegisterDevices`,
/// `--batch`).
///
/// With `--probe-get-task`, it is an operator instead: it asks for one task
/// (`GetTask`) again and again until the task ends, and prints the latency
/// percentiles of those calls and the task's rollout figures.
///
/// The devices outlive the connection: when it breaks, the simulator keeps
/// every device's state, reconnects with backoff, registers every device
/// again with the version it runs now, brings it online and re-sends the
/// reports the node did not acknowledge. A redelivered push for an upgrade
/// that already finished gets its final report again.
///
/// With `--mqtt BROKER`, the devices speak MQTT instead (docs/protocol.md,
/// "MQTT devices"), all on one broker connection, to the bridge fota-mqtt;
/// the simulator sends the same native requests either way, and its link
/// (apps/sim_link.hpp) carries them.
///
/// Given the product's public keys (`--trusted-key`), a device verifies
/// each push or offer as docs/firmware-signing.md says: the manifest is the
/// one the firmware's fields give, and a trusted key verifies its signature;
/// given `--image`, the "downloaded" image's size and SHA-256 match. A
/// device that refuses reports `verification_failed`.
#include "api/client.hpp"
#include "apps/image_digest.hpp"
#include "apps/sim_mqtt_link.hpp"
#include "apps/sim_native_link.hpp"
#include "apps/tls_options.hpp"
#include "apps/version.hpp"
#include "events/manifest.hpp"
#include "fota/v1/api.pb.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <unordered_map>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

namespace {

using namespace fota;
using namespace std::chrono_literals;

// -- signals -----------------------------------------------------------------

volatile std::sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) {
  stop_requested = 1;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: poll(2) returns EINTR and the main loop sees the flag.
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// -- options -----------------------------------------------------------------

/// An inclusive range of milliseconds.
struct ms_range {
  uint32_t min = 0;
  uint32_t max = 0;
};

/// A version and its share of the fleet.
struct version_weight {
  std::string version;
  double weight = 1;
};

struct sim_options {
  std::string host = "127.0.0.1";
  uint16_t port = 7411;
  std::string token;
  tls_cli_options tls;
  std::string product = "demo-product";
  std::string device_prefix = "dev-";
  uint32_t devices = 10000;
  std::string versions = "1.0.0:70,1.1.0:30";
  std::string target;
  std::string duration = "200-2000";
  std::string start_delay = "0-200";
  double failure_rate = 0.05;
  uint64_t seed = 0;
  uint32_t max_in_flight = 512;
  /// Devices per RegisterDevices; 1: RegisterDevice, then DeviceOnline.
  uint32_t batch = 1000;
  /// Gateway connections, each with its share of the devices.
  uint32_t connections = 1;
  /// MQTT instead of the native protocol: the broker's URL, the client id
  /// (default fota-sim-PID) and credentials.
  std::string mqtt;
  std::string mqtt_client_id;
  std::string mqtt_username;
  std::string mqtt_password;
  /// Operator mode: the task to ask for, its token, the pause between
  /// calls, and the calls made at least.
  uint64_t probe_task = 0;
  std::string operator_token;
  uint32_t probe_interval_ms = 2;
  uint32_t probe_min_calls = 1000;
  double exit_when_idle = 0;
  /// Give up when the node stays unreachable this long.
  double reconnect_seconds = 30;
  /// Written once every device is registered and online.
  std::string ready_file;
  /// Gets one line per upgrade result the node acknowledged.
  std::string results_file;
  /// Device-request mode: devices ask for their upgrade (RequestUpgrade) and
  /// confirm an offer (ConfirmUpgrade) instead of waiting for pushes.
  bool request_mode = false;
  std::string request_every = "500-2000";
  /// Requests answered "no upgrade" before a device stops asking.
  uint32_t request_attempts = 5;
  /// Share of devices that go offline and come back, again and again.
  double churn = 0;
  std::string churn_period = "2000-8000";
  /// Public keys of the product (PEM files or base64): devices verify the
  /// manifest signature of every push and offer.
  std::vector<std::string> trusted_keys;
  /// The image every upgrade "downloads": its size and SHA-256 must match.
  std::string image;
  // Parsed from the strings above.
  std::vector<version_weight> version_mix;
  ms_range duration_ms;
  ms_range start_delay_ms;
  ms_range request_every_ms;
  ms_range churn_ms;
  std::vector<public_key> keys;
  uint64_t image_size = 0;
  std::string image_sha256;
};

/// Thrown for an option value that does not parse; names the option.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

ms_range parse_range(const std::string& option, const std::string& text) {
  auto bad = [&] {
    return usage_error(option + ": expected MIN-MAX in milliseconds, got '" +
                       text + "'");
  };
  auto parse = [&](const std::string& x) -> uint32_t {
    if (x.empty() || x.find_first_not_of("0123456789") != std::string::npos ||
        x.size() > 9)
      throw bad();
    return static_cast<uint32_t>(std::stoul(x));
  };
  auto dash = text.find('-');
  ms_range result;
  if (dash == std::string::npos) {
    result.min = result.max = parse(text);
  } else {
    result.min = parse(text.substr(0, dash));
    result.max = parse(text.substr(dash + 1));
  }
  if (result.min > result.max)
    throw bad();
  return result;
}

/// A public key given as PEM or base64 text, or as the path of a file
/// holding either.
public_key load_key(const std::string& text) {
  if (auto key = parse_public_key(text))
    return *key;
  std::ifstream in{text, std::ios::binary};
  if (!in)
    throw usage_error("--trusted-key: '" + text +
                      "' is neither a public key nor a readable file");
  std::string content{std::istreambuf_iterator<char>{in}, {}};
  auto key = parse_public_key(content);
  if (!key)
    throw usage_error("--trusted-key: " + text + ": " + key.error().message);
  return *key;
}

/// The size and SHA-256 of the image file at `path`.
std::pair<uint64_t, std::string> image_facts(const std::string& path) {
  auto digest = image_digest(path);
  if (!digest)
    throw usage_error("--image: cannot open '" + path + "'");
  return *digest;
}

std::vector<version_weight> parse_versions(const std::string& text) {
  std::vector<version_weight> result;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    auto item = text.substr(pos, comma - pos);
    auto colon = item.find(':');
    version_weight vw;
    vw.version = item.substr(0, colon);
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        vw.weight = std::stod(item.substr(colon + 1), &used);
        if (used != item.size() - colon - 1)
          throw std::invalid_argument("trailing characters");
      } catch (const std::exception&) {
        throw usage_error("--versions: bad weight in '" + item + "'");
      }
    }
    if (vw.version.empty() || !(vw.weight > 0))
      throw usage_error("--versions: expected VERSION[:WEIGHT],..., got '" +
                        text + "'");
    result.push_back(std::move(vw));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return result;
}

// -- simulator ---------------------------------------------------------------

/// Milliseconds since the simulator started.
using sim_time = int64_t;

/// How far a device's upgrade has come.
enum class phase : uint8_t {
  idle,
  /// Pushed; waiting out the start delay.
  starting,
  downloading,
  installing,
};

/// Where a device stands on the current connection.
enum class link : uint8_t {
  unregistered,
  registering,
  offline,
  going_online,
  online,
};

/// How the device's current or last upgrade ended on the device.
enum class outcome : uint8_t {
  none,
  succeeded,
  failed,
};

/// What the device found when it checked the firmware it was given.
enum class verdict : uint8_t {
  /// Verified, or nothing to verify with.
  accepted,
  /// The manifest is not the one the firmware's fields give.
  manifest_differs,
  /// The firmware carries no signature.
  not_signed,
  /// No trusted key verifies the manifest's signature.
  bad_signature,
  /// The image's size or SHA-256 is not the manifest's.
  image_differs,
};

/// The failure text a device reports for `x`.
const char* text_of(verdict x) {
  switch (x) {
  case verdict::accepted:
    return "accepted";
  case verdict::manifest_differs:
    return "the manifest does not match the firmware's product, version, "
           "size, sha256 and url";
  case verdict::not_signed:
    return "the firmware is not signed";
  case verdict::bad_signature:
    return "the manifest signature does not verify with a trusted key";
  case verdict::image_differs:
    return "the downloaded image does not match the manifest's size and "
           "sha256";
  }
  return "?";
}

/// The state of one simulated device, kept small on purpose. It survives
/// reconnects; only `conn` starts over on a new connection.
struct device_state {
  /// The current or last execution pushed to the device.
  uint64_t execution_id = 0;
  uint32_t attempt = 0;
  /// Incremented by every push and cancel; a timer or queued report with an
  /// older generation is stale.
  uint32_t generation = 0;
  /// When the current upgrade was pushed.
  uint32_t pushed_at = 0;
  /// Indexes into `simulator::versions_`: what the device runs, and what the
  /// current or last upgrade installs.
  uint16_t version = 0;
  uint16_t firmware = 0;
  /// The block a failed upgrade names, so that a re-sent failure says the
  /// same.
  uint16_t failed_block = 0;
  phase state = phase::idle;
  link conn = link::unregistered;
  outcome result = outcome::none;
  /// Why the device refused the current or last firmware, if it did.
  verdict check = verdict::accepted;
  /// Device-request mode: "no upgrade" answers in a row.
  uint8_t refused = 0;
};

/// What a request or a timer does.
enum class action : uint8_t {
  register_device,
  register_batch,
  device_online,
  confirm,
  progress,
  report_version,
  report_failure,
  request_upgrade,
  confirm_upgrade,
  device_offline,
  ack_push,
};

const char* name_of(action x) {
  switch (x) {
  case action::register_device:
    return "RegisterDevice";
  case action::register_batch:
    return "RegisterDevices";
  case action::device_online:
    return "DeviceOnline";
  case action::confirm:
    return "ReportProgress(0)";
  case action::progress:
    return "ReportProgress(50)";
  case action::report_version:
    return "ReportVersion";
  case action::report_failure:
    return "ReportFailure";
  case action::request_upgrade:
    return "RequestUpgrade";
  case action::confirm_upgrade:
    return "ConfirmUpgrade";
  case action::device_offline:
    return "DeviceOffline";
  case action::ack_push:
    return "AckPush";
  }
  return "?";
}

/// An upgrade step that is due at a time.
struct timer {
  sim_time due;
  uint32_t device;
  uint32_t generation;
  /// For the progress step: the rest of the upgrade's duration.
  uint32_t rest;
  action what;

  friend bool operator>(const timer& x, const timer& y) {
    return x.due > y.due;
  }
};

/// A report waiting for a free slot.
struct job {
  uint32_t device;
  uint32_t generation;
  action what;
  /// Sent before and not acknowledged, or asked for again by a redelivered
  /// push: the node may have handled it already.
  bool resent;
};

/// A request the node has not answered yet.
struct pending {
  uint32_t device;
  uint32_t generation;
  action what;
  bool resent;
  /// The execution and attempt the request was about, when it was sent.
  uint64_t execution;
  uint32_t attempt;
  /// A batch: the devices `device` .. `device + count - 1`.
  uint32_t count = 1;
};

/// Counters for the progress line and the summary.
struct stats {
  uint64_t registered = 0;
  uint64_t online = 0;
  uint64_t pushes = 0;
  uint64_t offers = 0;
  uint64_t no_upgrade = 0;
  uint64_t went_offline = 0;
  uint64_t duplicates = 0;
  uint64_t cancel_pushes = 0;
  uint64_t canceled = 0;
  uint64_t unknown_pushes = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t errors = 0;
  uint64_t finished = 0;
  uint64_t upgrade_ms_total = 0;
  uint64_t reconnects = 0;
  /// Pushes and offers whose firmware the device refused.
  uint64_t refused = 0;
  uint64_t resent = 0;
  /// Re-sent reports the node had no use for any more.
  uint64_t stale = 0;
  /// Milliseconds from the start until every device was online the first
  /// time; 0: not yet.
  uint64_t bring_up_ms = 0;

  stats& operator+=(const stats& x) {
    registered += x.registered;
    online += x.online;
    pushes += x.pushes;
    offers += x.offers;
    no_upgrade += x.no_upgrade;
    went_offline += x.went_offline;
    duplicates += x.duplicates;
    cancel_pushes += x.cancel_pushes;
    canceled += x.canceled;
    unknown_pushes += x.unknown_pushes;
    succeeded += x.succeeded;
    failed += x.failed;
    errors += x.errors;
    finished += x.finished;
    upgrade_ms_total += x.upgrade_ms_total;
    reconnects += x.reconnects;
    refused += x.refused;
    resent += x.resent;
    stale += x.stale;
    bring_up_ms = std::max(bring_up_ms, x.bring_up_ms);
    return *this;
  }
};

/// What the simulators of several connections share: the figures of each
/// for the one progress line, and the count of devices online for the
/// ready file.
struct shared_view {
  /// Registered, online, pushes, upgrading, succeeded, failed, errors.
  static constexpr size_t figures = 7;

  explicit shared_view(size_t simulators, uint64_t devices)
    : slots(simulators * figures), total(devices) {
    // nop
  }

  void publish(size_t simulator, const std::array<uint64_t, figures>& xs) {
    for (size_t i = 0; i < figures; ++i)
      slots[simulator * figures + i].store(xs[i], std::memory_order_relaxed);
  }

  std::array<uint64_t, figures> sum() const {
    std::array<uint64_t, figures> out{};
    for (size_t i = 0; i < slots.size(); ++i)
      out[i % figures] += slots[i].load(std::memory_order_relaxed);
    return out;
  }

  std::vector<std::atomic<uint64_t>> slots;
  uint64_t total;
  std::atomic<uint64_t> online{0};
  std::atomic<bool> ready_written{false};
  /// `--results-file`, opened once for every simulator.
  std::FILE* results = nullptr;
};

class simulator {
public:
  /// Simulates the devices `offset` .. `offset + opts.devices - 1` of the
  /// fleet as simulator `index` of `view`, on `link`.
  simulator(sim_options opts, std::unique_ptr<sim_link> link,
            uint32_t offset = 0, size_t index = 0,
            std::shared_ptr<shared_view> view = nullptr)
    : opts_(std::move(opts)), link_(std::move(link)), rng_(opts_.seed),
      devices_(opts_.devices), start_(std::chrono::steady_clock::now()),
      tty_(::isatty(STDOUT_FILENO) == 1), offset_(offset), index_(index),
      view_(std::move(view)) {
    std::vector<double> weights;
    for (const auto& vw : opts_.version_mix) {
      intern(vw.version);
      weights.push_back(vw.weight);
    }
    std::discrete_distribution<size_t> pick{weights.begin(), weights.end()};
    for (auto& d : devices_)
      d.version = static_cast<uint16_t>(pick(rng_));
    if (!opts_.target.empty())
      target_ = intern(opts_.target);
  }

  ~simulator() {
    if (results_ != nullptr && !(view_ && view_->results == results_))
      std::fclose(results_);
  }

  simulator(const simulator&) = delete;

  simulator& operator=(const simulator&) = delete;

  /// The counters so far.
  const stats& totals() const noexcept { return stats_; }

  /// Runs until a signal, an idle period, or until the node stays
  /// unreachable for longer than `--reconnect-seconds`. Returns the process
  /// exit code.
  int run() {
    if (view_ && view_->results != nullptr) {
      results_ = view_->results;
    } else if (!opts_.results_file.empty()) {
      results_ = std::fopen(opts_.results_file.c_str(), "w");
      if (results_ == nullptr) {
        fmt::print(stderr, "error: --results-file: cannot open '{}'\n",
                   opts_.results_file);
        return 2;
      }
      std::setvbuf(results_, nullptr, _IOLBF, 0);
    }
    int rc = 0;
    last_activity_ = now();
    while (stop_requested == 0) {
      auto t = now();
      fire_timers(t);
      if (!connected_) {
        if (t - lost_at_ >
            static_cast<sim_time>(opts_.reconnect_seconds * 1000)) {
          finish_display();
          fmt::print(stderr,
                     "fota-sim: node unreachable for {:.1f} s, giving up: "
                     "{}\n",
                     (t - lost_at_) / 1000.0, last_error_);
          rc = 1;
          break;
        }
        if (t >= next_attempt_ && !reconnect()) {
          rc = 1;
          break;
        }
        if (!connected_) {
          wait_disconnected(t);
          continue;
        }
      }
      send_ready();
      auto n = link_->poll(
          poll_timeout(t),
          [this](uint64_t id, const v1::Response& r) { on_response(id, r); },
          [this](const v1::Push& p) { on_push(p); });
      if (!n) {
        on_disconnect(n.error().message);
        continue;
      }
      t = now();
      display(t);
      if (idle_for(t)) {
        finish_display();
        fmt::print("fota-sim: idle for {} s, stopping\n", opts_.exit_when_idle);
        break;
      }
    }
    finish_display();
    if (rc == 0)
      link_->finish();
    if (!view_)
      print_summary(opts_, devices_.size(), stats_, now());
    return rc;
  }

private:
  // -- time ------------------------------------------------------------------

  sim_time now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - start_)
        .count();
  }

  uint32_t random_in(ms_range r) {
    return std::uniform_int_distribution<uint32_t>{r.min, r.max}(rng_);
  }

  // -- devices and versions --------------------------------------------------

  uint16_t intern(const std::string& version) {
    auto i = std::find(versions_.begin(), versions_.end(), version);
    if (i != versions_.end())
      return static_cast<uint16_t>(i - versions_.begin());
    if (versions_.size() == UINT16_MAX)
      return 0;
    versions_.push_back(version);
    return static_cast<uint16_t>(versions_.size() - 1);
  }

  std::string key_of(uint32_t device) const {
    return fmt::format("{}{:06}", opts_.device_prefix, offset_ + device);
  }

  /// Returns the index of `key`, or -1 when it is not one of ours.
  int64_t index_of(const std::string& key) const {
    const auto& prefix = opts_.device_prefix;
    if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix))
      return -1;
    auto digits = key.substr(prefix.size());
    if (digits.size() > 10 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      return -1;
    auto i = std::stoll(digits) - offset_;
    return i >= 0 && i < static_cast<int64_t>(devices_.size()) ? i : -1;
  }

  static bool upgrading(phase x) { return x != phase::idle; }

  /// Whether an unanswered request goes out again after a reconnect.
  static bool is_report(action x) {
    return x != action::register_device && x != action::register_batch &&
           x != action::device_online && x != action::request_upgrade &&
           x != action::device_offline && x != action::ack_push;
  }

  /// Timers that belong to an upgrade (not to churn).
  static bool is_upgrade_step(action x) {
    return x != action::device_offline && x != action::device_online;
  }

  /// Whether `device` is one of the devices that go offline now and then.
  bool churns(uint32_t device) const {
    return opts_.churn > 0 &&
           (device * 2654435761u % 10000) < opts_.churn * 10000;
  }

  // -- connection ------------------------------------------------------------

  /// Keeps every device's state and the reports the node did not answer,
  /// and starts reconnecting.
  void on_disconnect(const std::string& why) {
    finish_display();
    auto t = now();
    fmt::print(stderr,
               "fota-sim: connection lost: {}; reconnecting for up to {} s\n",
               why, opts_.reconnect_seconds);
    connected_ = false;
    link_->close();
    lost_at_ = t;
    last_error_ = why;
    backoff_ms_ = initial_backoff_ms;
    next_attempt_ = t + backoff_ms_;
    // Unanswered reports go out again first, in the order they were sent.
    std::vector<std::pair<uint64_t, pending>> unanswered(pending_.begin(),
                                                         pending_.end());
    pending_.clear();
    std::sort(unanswered.begin(), unanswered.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto i = unanswered.rbegin(); i != unanswered.rend(); ++i) {
      const auto& p = i->second;
      if (is_report(p.what))
        ready_.push_front(job{p.device, p.generation, p.what, true});
    }
    // Registration and bring-up start over on the next connection.
    online_queue_.clear();
    next_register_ = 0;
    for (auto& d : devices_)
      d.conn = link::unregistered;
    stats_.registered = 0;
    if (view_)
      view_->online -= stats_.online;
    stats_.online = 0;
  }

  /// Tries to connect (and say hello) once; on failure, schedules the next
  /// attempt with a doubled backoff. Returns false when the node refused
  /// the token, which retrying does not change.
  bool reconnect() {
    if (auto err = link_->reconnect()) {
      if (err->code != errc::unavailable) {
        fmt::print(stderr, "fota-sim: reconnect refused: {}\n", err->message);
        return false;
      }
      last_error_ = err->message;
      next_attempt_ = now() + backoff_ms_;
      backoff_ms_ = std::min(backoff_ms_ * 2, max_backoff_ms);
      return true;
    }
    connected_ = true;
    ++stats_.reconnects;
    last_activity_ = now();
    fmt::print(stderr, "fota-sim: reconnected after {} ms\n",
               last_activity_ - lost_at_);
    return true;
  }

  /// Waits for the next reconnect attempt or upgrade step, whichever comes
  /// first.
  void wait_disconnected(sim_time t) {
    auto until = next_attempt_;
    if (!timers_.empty())
      until = std::min(until, timers_.top().due);
    auto ms = std::clamp<sim_time>(until - t, 0, 100);
    if (ms > 0)
      ::usleep(static_cast<useconds_t>(ms * 1000));
  }

  // -- outgoing requests -----------------------------------------------------

  bool has_slot() const { return pending_.size() < opts_.max_in_flight; }

  bool has_work() const {
    return !ready_.empty() || !online_queue_.empty() ||
           next_register_ < devices_.size();
  }

  /// Sends queued work while slots are free: upgrade reports first, then
  /// devices going online, then registrations.
  void send_ready() {
    while (has_slot()) {
      if (!ready_.empty()) {
        auto j = ready_.front();
        ready_.pop_front();
        if (devices_[j.device].generation == j.generation)
          send(j.device, j.what, j.resent);
      } else if (!online_queue_.empty()) {
        auto d = online_queue_.front();
        online_queue_.pop_front();
        devices_[d].conn = link::going_online;
        send(d, action::device_online, false);
      } else if (next_register_ < devices_.size() && opts_.batch > 1 &&
                 link_->batches()) {
        send_batch();
      } else if (next_register_ < devices_.size()) {
        auto d = next_register_++;
        devices_[d].conn = link::registering;
        send(d, action::register_device, false);
      } else {
        break;
      }
    }
  }

  /// What `device` registers with: the version it runs now, which after an
  /// upgrade during a broken connection tells the node about its success.
  void describe(uint32_t device, v1::RegisterDevice& x) const {
    auto global = offset_ + device;
    x.set_product_key(opts_.product);
    x.set_device_key(key_of(device));
    x.set_version(versions_[devices_[device].version]);
    (*x.mutable_tags())["ring"] = global % 10 == 0 ? "canary" : "main";
    static const char* regions[] = {"eu", "us", "ap"};
    (*x.mutable_attributes())["region"] = regions[global % 3];
  }

  /// Registers the next devices, up to `--batch`, and brings them online,
  /// with one RegisterDevices.
  void send_batch() {
    v1::ClientFrame f;
    auto* x = f.mutable_register_devices();
    x->set_online(true);
    auto first = next_register_;
    auto n = std::min<uint32_t>(opts_.batch,
                                static_cast<uint32_t>(devices_.size()) - first);
    x->mutable_devices()->Reserve(static_cast<int>(n));
    for (uint32_t i = first; i < first + n; ++i) {
      devices_[i].conn = link::registering;
      describe(i, *x->add_devices());
    }
    next_register_ += n;
    auto id = link_->queue(std::move(f));
    pending p{first, 0, action::register_batch, false, 0, 0};
    p.count = n;
    pending_.emplace(id, p);
  }

  void send(uint32_t device, action what, bool resent) {
    auto& d = devices_[device];
    v1::ClientFrame f;
    auto key = key_of(device);
    switch (what) {
    case action::register_device:
    case action::register_batch:
      describe(device, *f.mutable_register_device());
      break;
    case action::device_online: {
      auto* x = f.mutable_device_online();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      break;
    }
    case action::confirm_upgrade:
    case action::confirm:
      if (opts_.request_mode) {
        auto* x = f.mutable_confirm_upgrade();
        x->set_product_key(opts_.product);
        x->set_device_key(key);
        x->set_execution_id(d.execution_id);
        break;
      }
      [[fallthrough]];
    case action::progress: {
      auto* x = f.mutable_report_progress();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      x->set_execution_id(d.execution_id);
      x->set_step(what == action::confirm ? 0 : 50);
      x->set_text(what == action::confirm ? "downloading" : "installing");
      break;
    }
    case action::report_version: {
      auto* x = f.mutable_report_version();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      x->set_version(versions_[d.firmware]);
      break;
    }
    case action::request_upgrade: {
      auto* x = f.mutable_request_upgrade();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      break;
    }
    case action::device_offline: {
      auto* x = f.mutable_device_offline();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      break;
    }
    case action::ack_push: {
      auto* x = f.mutable_ack_push();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      x->set_execution_id(d.execution_id);
      x->set_attempt(d.attempt);
      break;
    }
    case action::report_failure: {
      auto* x = f.mutable_report_failure();
      x->set_product_key(opts_.product);
      x->set_device_key(key);
      x->set_execution_id(d.execution_id);
      if (d.check != verdict::accepted) {
        x->set_code("verification_failed");
        x->set_text(text_of(d.check));
        break;
      }
      x->set_code("E_FLASH");
      x->set_text(
          fmt::format("flash write failed at block {}", d.failed_block));
      break;
    }
    }
    if (resent)
      ++stats_.resent;
    auto id = link_->queue(std::move(f));
    pending_.emplace(id, pending{device, d.generation, what, resent,
                                 d.execution_id, d.attempt});
  }

  // -- timers ----------------------------------------------------------------

  void schedule(sim_time due, uint32_t device, action what, uint32_t rest = 0) {
    timers_.push(timer{due, device, devices_[device].generation, rest, what});
    if (is_upgrade_step(what))
      ++upgrade_timers_;
  }

  /// Device-request mode: the device asks again after a while.
  void schedule_request(sim_time t, uint32_t device) {
    schedule(t + random_in(opts_.request_every_ms), device,
             action::request_upgrade);
  }

  /// Moves due upgrade steps to the ready queue and advances the devices.
  /// Devices go on upgrading while the connection is down; their reports
  /// wait for the next one.
  void fire_timers(sim_time t) {
    while (!timers_.empty() && timers_.top().due <= t) {
      auto tm = timers_.top();
      timers_.pop();
      if (is_upgrade_step(tm.what))
        --upgrade_timers_;
      auto& d = devices_[tm.device];
      // Churn: offline and back, only while the device is not upgrading.
      if (tm.what == action::device_offline) {
        if (d.conn != link::online)
          continue;
        if (upgrading(d.state))
          schedule(t + random_in(opts_.churn_ms), tm.device,
                   action::device_offline);
        else
          ready_.push_back(job{tm.device, d.generation, tm.what, false});
        continue;
      }
      if (tm.what == action::device_online) {
        if (d.conn == link::offline)
          online_queue_.push_back(tm.device);
        continue;
      }
      if (d.generation != tm.generation)
        continue;
      if (tm.what == action::request_upgrade &&
          (d.conn != link::online || upgrading(d.state)))
        continue;
      ready_.push_back(job{tm.device, tm.generation, tm.what, false});
      switch (tm.what) {
      case action::confirm: {
        d.state = phase::downloading;
        auto duration = random_in(opts_.duration_ms);
        schedule(t + duration / 2, tm.device, action::progress,
                 duration - duration / 2);
        break;
      }
      case action::progress: {
        d.state = phase::installing;
        auto fails = std::bernoulli_distribution{opts_.failure_rate}(rng_);
        schedule(t + tm.rest, tm.device,
                 fails ? action::report_failure : action::report_version);
        break;
      }
      case action::report_version:
      case action::report_failure:
        if (tm.what == action::report_version) {
          d.result = outcome::succeeded;
          d.version = d.firmware;
        } else {
          d.result = outcome::failed;
          d.failed_block = static_cast<uint16_t>(
              std::uniform_int_distribution<uint32_t>{0, 4095}(rng_));
        }
        d.state = phase::idle;
        --active_;
        ++stats_.finished;
        stats_.upgrade_ms_total += static_cast<uint64_t>(t - d.pushed_at);
        if (opts_.request_mode && d.result == outcome::failed)
          schedule_request(t, tm.device); // A retry may be offered.
        break;
      default:
        break;
      }
    }
  }

  int poll_timeout(sim_time t) const {
    if (has_slot() && has_work())
      return 0;
    sim_time timeout = 100;
    if (!timers_.empty())
      timeout = std::min(timeout, std::max<sim_time>(0, timers_.top().due - t));
    return static_cast<int>(timeout);
  }

  // -- incoming frames -------------------------------------------------------

  /// Counts the result of `device`'s current upgrade once, however often the
  /// node acknowledges it.
  /// Counts the result of one attempt of an execution once, however often
  /// the node acknowledges it (a re-sent report, a late answer to a report
  /// sent before the device moved on to another upgrade).
  void count_result(const pending& p, outcome result) {
    if (!counted_.emplace(p.execution, p.attempt).second)
      return;
    if (result == outcome::succeeded)
      ++stats_.succeeded;
    else
      ++stats_.failed;
    if (results_ != nullptr)
      fmt::print(results_, "{} {} {} {}\n", key_of(p.device),
                 result == outcome::succeeded ? "succeeded" : "failed",
                 p.execution, p.attempt);
  }

  void on_response(uint64_t id, const v1::Response& r) {
    auto i = pending_.find(id);
    if (i == pending_.end() || is_upgrade_step(i->second.what))
      last_activity_ = now(); // Churn alone is not activity.
    if (i == pending_.end()) {
      if (r.status() != v1::STATUS_CODE_OK)
        report_error(
            fmt::format("session: {}: {}", to_string(r.status()), r.message()));
      return;
    }
    auto p = i->second;
    pending_.erase(i);
    auto& d = devices_[p.device];
    auto ok = r.status() == v1::STATUS_CODE_OK;
    switch (p.what) {
    case action::register_device:
      if (ok || r.status() == v1::STATUS_CODE_ALREADY_EXISTS) {
        ++stats_.registered;
        d.conn = link::offline;
        online_queue_.push_back(p.device);
        return;
      }
      d.conn = link::unregistered;
      break;
    case action::register_batch:
      on_batch(p, r);
      return;
    case action::device_online:
      if (ok) {
        came_online(p.device);
        return;
      }
      d.conn = link::offline;
      break;
    case action::device_offline:
      if (ok) {
        d.conn = link::offline;
        --stats_.online;
        ++stats_.went_offline;
        schedule(now() + random_in(opts_.churn_ms), p.device,
                 action::device_online);
        return;
      }
      break;
    case action::request_upgrade:
      if (ok) {
        on_offer(p.device, r.offer(), now());
        return;
      }
      schedule_request(now(), p.device);
      break;
    case action::report_version:
      if (ok) {
        count_result(p, outcome::succeeded);
        return;
      }
      break;
    case action::ack_push:
      // An acknowledgement that arrives after the device moved on is stale,
      // not an error.
      if (ok || r.status() == v1::STATUS_CODE_FAILED_PRECONDITION) {
        if (!ok)
          ++stats_.stale;
        return;
      }
      break;
    case action::report_failure:
      if (ok) {
        count_result(p, outcome::failed);
        return;
      }
      // The node ended this execution before the connection broke and
      // the acknowledgement was lost; a redelivered push re-sends it should
      // the node still wait for it.
      if (p.resent && r.status() == v1::STATUS_CODE_FAILED_PRECONDITION) {
        ++stats_.stale;
        count_result(p, outcome::failed);
        return;
      }
      break;
    default:
      if (ok)
        return;
      if (p.resent) {
        ++stats_.stale;
        return;
      }
      break;
    }
    report_error(fmt::format("{} {}: {}: {}", name_of(p.what), key_of(p.device),
                             to_string(r.status()), r.message()));
  }

  /// `device` is online on this connection.
  void came_online(uint32_t device) {
    auto& d = devices_[device];
    d.conn = link::online;
    ++stats_.online;
    if (view_)
      ++view_->online;
    if (stats_.online == devices_.size() && stats_.bring_up_ms == 0)
      stats_.bring_up_ms = static_cast<uint64_t>(std::max<sim_time>(now(), 1));
    if (view_ ? view_->online.load() == view_->total
              : stats_.online == devices_.size())
      write_ready_file();
    auto t = now();
    if (opts_.request_mode && !upgrading(d.state) &&
        d.result != outcome::succeeded && d.refused < opts_.request_attempts)
      schedule_request(t, device);
    if (churns(device))
      schedule(t + random_in(opts_.churn_ms), device, action::device_offline);
  }

  /// The answer to a RegisterDevices: each device registered is online;
  /// a refused one is counted as an error and left unregistered.
  void on_batch(const pending& p, const v1::Response& r) {
    if (r.status() != v1::STATUS_CODE_OK) {
      for (uint32_t i = p.device; i < p.device + p.count; ++i)
        devices_[i].conn = link::unregistered;
      report_error(fmt::format("RegisterDevices of {} devices from {}: {}: {}",
                               p.count, key_of(p.device), to_string(r.status()),
                               r.message()));
      return;
    }
    const auto& results = r.registered().results();
    for (uint32_t k = 0; k < p.count; ++k) {
      auto device = p.device + k;
      if (k >= static_cast<uint32_t>(results.size())) {
        devices_[device].conn = link::unregistered;
        report_error(
            fmt::format("RegisterDevices: no result for {}", key_of(device)));
        continue;
      }
      const auto& x = results[static_cast<int>(k)];
      if (x.status() != v1::STATUS_CODE_OK) {
        devices_[device].conn = link::unregistered;
        report_error(fmt::format("RegisterDevices {}: {}: {}", key_of(device),
                                 to_string(x.status()), x.message()));
        continue;
      }
      ++stats_.registered;
      came_online(device);
    }
  }

  void on_push(const v1::Push& p) {
    auto t = now();
    last_activity_ = t;
    if (p.has_upgrade())
      on_upgrade(p.upgrade(), t);
    else if (p.has_cancel())
      on_cancel(p.cancel());
  }

  void on_upgrade(const v1::UpgradePush& p, sim_time t) {
    ++stats_.pushes;
    auto device =
        p.product_key() == opts_.product ? index_of(p.device_key()) : -1;
    if (device < 0) {
      ++stats_.unknown_pushes;
      report_error(fmt::format("upgrade push for unknown device {}/{}",
                               p.product_key(), p.device_key()));
      return;
    }
    auto index = static_cast<uint32_t>(device);
    auto& d = devices_[index];
    if (d.execution_id == p.execution_id() && d.attempt >= p.attempt()) {
      // Seen before. Still upgrading: the reports follow. Finished: the node
      // missed the final report, so it goes out again. Either way the
      // gateway acknowledges it.
      ++stats_.duplicates;
      if (d.attempt == p.attempt())
        ready_.push_front(job{index, d.generation, action::ack_push, false});
      if (!upgrading(d.state) && d.result != outcome::none)
        ready_.push_back(job{index, d.generation,
                             d.result == outcome::succeeded
                                 ? action::report_version
                                 : action::report_failure,
                             true});
      return;
    }
    begin_upgrade(index, p.execution_id(), p.attempt(), p.firmware(),
                  p.manifest(), t);
    // The gateway has the push: acknowledged at once, before the reports.
    ready_.push_front(
        job{index, devices_[index].generation, action::ack_push, false});
  }

  /// Checks firmware as a device does before it installs it: the manifest
  /// is the firmware's, a trusted key signed it, and the image matches it.
  verdict check(const v1::Firmware& fw, const std::string& manifest) const {
    if (!opts_.keys.empty()) {
      if (manifest != manifest_of(fw))
        return verdict::manifest_differs;
      if (fw.signature().empty())
        return verdict::not_signed;
      if (!signed_by_any(opts_.keys, manifest, fw.signature()))
        return verdict::bad_signature;
    }
    if (!opts_.image.empty() &&
        (fw.size() != opts_.image_size || fw.sha256() != opts_.image_sha256))
      return verdict::image_differs;
    return verdict::accepted;
  }

  /// Starts an upgrade pushed or offered to the device; one that fails the
  /// device's checks ends at once with `verification_failed`.
  void begin_upgrade(uint32_t index, uint64_t execution, uint32_t attempt,
                     const v1::Firmware& fw, const std::string& manifest,
                     sim_time t) {
    auto& d = devices_[index];
    if (!upgrading(d.state))
      ++active_;
    d.execution_id = execution;
    d.attempt = attempt;
    ++d.generation;
    d.pushed_at = static_cast<uint32_t>(t);
    d.firmware = target_ ? *target_ : intern(fw.version());
    d.state = phase::starting;
    d.result = outcome::none;
    d.refused = 0;
    d.check = check(fw, manifest);
    if (d.check != verdict::accepted) {
      ++stats_.refused;
      d.state = phase::installing;
      schedule(t, index, action::report_failure);
      return;
    }
    schedule(t + random_in(opts_.start_delay_ms), index, action::confirm);
  }

  /// Device-request mode: the node answered a RequestUpgrade.
  void on_offer(uint32_t index, const v1::UpgradeOffer& offer, sim_time t) {
    auto& d = devices_[index];
    if (!offer.available()) {
      ++stats_.no_upgrade;
      if (++d.refused < opts_.request_attempts &&
          d.result != outcome::succeeded)
        schedule_request(t, index);
      return;
    }
    ++stats_.offers;
    if (d.execution_id == offer.execution_id() &&
        d.attempt >= offer.attempt() && upgrading(d.state))
      return; // The same offer again; the upgrade is under way.
    begin_upgrade(index, offer.execution_id(), offer.attempt(),
                  offer.firmware(), offer.manifest(), t);
  }

  void on_cancel(const v1::CancelPush& p) {
    ++stats_.cancel_pushes;
    auto device =
        p.product_key() == opts_.product ? index_of(p.device_key()) : -1;
    if (device < 0)
      return;
    auto& d = devices_[static_cast<size_t>(device)];
    if (d.execution_id != p.execution_id() || !upgrading(d.state))
      return;
    ++d.generation;
    d.state = phase::idle;
    --active_;
    ++stats_.canceled;
  }

  void report_error(const std::string& what) {
    ++stats_.errors;
    if (stats_.errors <= max_printed_errors) {
      finish_display();
      fmt::print(stderr, "fota-sim: {}\n", what);
    } else if (stats_.errors == max_printed_errors + 1) {
      finish_display();
      fmt::print(stderr, "fota-sim: further errors are only counted\n");
    }
  }

  /// Tells scripts waiting on `--ready-file` that the fleet is up; written
  /// under a temporary name and renamed, so a reader never sees half of it.
  void write_ready_file() {
    if (opts_.ready_file.empty() || ready_written_)
      return;
    ready_written_ = true;
    if (view_ && view_->ready_written.exchange(true))
      return;
    auto tmp = opts_.ready_file + ".tmp";
    auto* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      report_error("cannot write " + tmp);
      return;
    }
    fmt::print(f, "{}\n", devices_.size());
    std::fclose(f);
    if (std::rename(tmp.c_str(), opts_.ready_file.c_str()) != 0)
      report_error("cannot rename " + tmp + " to " + opts_.ready_file);
  }

  // -- progress and summary --------------------------------------------------

  /// Idle: connected, at least one upgrade seen, all of them finished and
  /// acknowledged, and nothing received for `--exit-when-idle` seconds.
  bool idle_for(sim_time t) const {
    if (opts_.exit_when_idle <= 0 || !connected_ ||
        stats_.pushes + stats_.offers == 0 || active_ > 0 ||
        upgrade_timers_ > 0 || next_register_ < devices_.size())
      return false;
    // Churn goes on for ever; only upgrade work keeps the simulator busy.
    for (const auto& [id, p] : pending_)
      if (is_upgrade_step(p.what))
        return false;
    for (const auto& j : ready_)
      if (is_upgrade_step(j.what))
        return false;
    return static_cast<double>(t - last_activity_) >=
           opts_.exit_when_idle * 1000;
  }

  std::string status_line() const {
    return fmt::format("registered {}/{}  online {}  pushes {}  upgrading {}  "
                       "succeeded {}  failed {}  errors {}",
                       stats_.registered, devices_.size(), stats_.online,
                       stats_.pushes, active_, stats_.succeeded, stats_.failed,
                       stats_.errors);
  }

  void display(sim_time t) {
    if (view_) {
      view_->publish(index_,
                     {stats_.registered, stats_.online, stats_.pushes, active_,
                      stats_.succeeded, stats_.failed, stats_.errors});
      // The first simulator shows everyone's figures.
      if (index_ != 0 || t - last_display_ < 5000)
        return;
      last_display_ = t;
      auto x = view_->sum();
      fmt::print("{:.1f}s  registered {}/{}  online {}  pushes {}  "
                 "upgrading {}  succeeded {}  failed {}  errors {}\n",
                 t / 1000.0, x[0], view_->total, x[1], x[2], x[3], x[4], x[5],
                 x[6]);
      std::fflush(stdout);
      return;
    }
    if (tty_) {
      if (t - last_display_ < 100)
        return;
      last_display_ = t;
      // Bring-up first, then the upgrades that finished out of those pushed.
      auto bring_up = stats_.online < devices_.size();
      auto accepted = stats_.pushes - stats_.duplicates - stats_.unknown_pushes;
      double done =
          bring_up ? static_cast<double>(stats_.online)
                   : static_cast<double>(stats_.finished + stats_.canceled);
      double total = bring_up
                         ? static_cast<double>(devices_.size())
                         : static_cast<double>(std::max<uint64_t>(accepted, 1));
      constexpr int width = 20;
      auto filled = static_cast<int>(width * std::min(1.0, done / total));
      fmt::print("\r\033[K[{}{}] {}", std::string(filled, '#'),
                 std::string(width - filled, '-'), status_line());
      std::fflush(stdout);
      line_open_ = true;
    } else if (t - last_display_ >= 5000) {
      last_display_ = t;
      fmt::print("{:.1f}s  {}\n", t / 1000.0, status_line());
      std::fflush(stdout);
    }
  }

  /// Ends an open progress line so the next output starts on its own line.
  void finish_display() {
    if (line_open_) {
      fmt::print("\n");
      line_open_ = false;
    }
  }

public:
  /// Prints the summary of `devices` simulated devices after `elapsed_ms`.
  static void print_summary(const sim_options& opts, size_t devices,
                            const stats& st, sim_time elapsed_ms) {
    const auto& stats_ = st;
    auto mean =
        stats_.finished == 0
            ? std::string{"-"}
            : fmt::format("{} ms", stats_.upgrade_ms_total / stats_.finished);
    auto bring_up =
        stats_.bring_up_ms == 0
            ? std::string{"-"}
            : fmt::format("{:.2f} s, {:.0f} devices/s (batch {}, {} "
                          "connection{})",
                          stats_.bring_up_ms / 1000.0,
                          devices * 1000.0 / stats_.bring_up_ms, opts.batch,
                          opts.connections, opts.connections == 1 ? "" : "s");
    fmt::print("fota-sim summary (seed {})\n"
               "  devices                  {}\n"
               "  registered               {}\n"
               "  online                   {}\n"
               "  pushes received          {}\n"
               "  offers received          {}\n"
               "  no-upgrade answers       {}\n"
               "  went offline (churn)     {}\n"
               "  duplicate pushes         {}\n"
               "  cancel pushes            {}\n"
               "  upgrades canceled        {}\n"
               "  succeeded                {}\n"
               "  failed                   {}\n"
               "  error responses          {}\n"
               "  refused firmware         {}\n"
               "  reconnects               {}\n"
               "  reports re-sent          {}\n"
               "  stale re-sent reports    {}\n"
               "  mean upgrade time        {}\n"
               "  registered and online in {}\n"
               "  elapsed                  {:.1f} s\n",
               opts.seed, devices, stats_.registered, stats_.online,
               stats_.pushes, stats_.offers, stats_.no_upgrade,
               stats_.went_offline, stats_.duplicates, stats_.cancel_pushes,
               stats_.canceled, stats_.succeeded, stats_.failed, stats_.errors,
               stats_.refused, stats_.reconnects, stats_.resent, stats_.stale,
               mean, bring_up, elapsed_ms / 1000.0);
    std::fflush(stdout);
  }

private:
  static constexpr uint64_t max_printed_errors = 10;
  static constexpr sim_time initial_backoff_ms = 100;
  static constexpr sim_time max_backoff_ms = 2000;

  sim_options opts_;
  std::unique_ptr<sim_link> link_;
  bool connected_ = true;
  /// When the connection broke, and when to try again.
  sim_time lost_at_ = 0;
  sim_time next_attempt_ = 0;
  sim_time backoff_ms_ = initial_backoff_ms;
  /// Why the last reconnect attempt failed.
  std::string last_error_;
  std::mt19937_64 rng_;
  std::vector<device_state> devices_;
  std::vector<std::string> versions_;
  /// The version a successful upgrade reports, when fixed by --target.
  std::optional<uint16_t> target_;
  std::priority_queue<timer, std::vector<timer>, std::greater<>> timers_;
  /// Timers in `timers_` that belong to upgrades rather than churn.
  uint64_t upgrade_timers_ = 0;
  std::deque<job> ready_;
  std::deque<uint32_t> online_queue_;
  uint32_t next_register_ = 0;
  std::unordered_map<uint64_t, pending> pending_;
  /// Attempts of executions whose result is counted.
  std::set<std::pair<uint64_t, uint32_t>> counted_;
  /// Devices pushed and not finished.
  uint64_t active_ = 0;
  stats stats_;
  std::chrono::steady_clock::time_point start_;
  sim_time last_activity_ = 0;
  sim_time last_display_ = 0;
  bool tty_;
  bool line_open_ = false;
  bool ready_written_ = false;
  std::FILE* results_ = nullptr;
  /// The first device's number in the fleet, this simulator's number, and
  /// what the simulators of all connections share (none when alone).
  uint32_t offset_ = 0;
  size_t index_ = 0;
  std::shared_ptr<shared_view> view_;
};

// -- connections -------------------------------------------------------------

/// A connection that said Hello with `token`, or the exit code with which
/// fota-sim stops (the error printed).
struct connected {
  std::optional<client> cl;
  int code = 0;

  explicit operator bool() const { return cl.has_value(); }
  client& operator*() { return *cl; }
  client* operator->() { return &*cl; }
  int error() const { return code; }
};

connected connect_as(const sim_options& opts, const std::string& token,
                     v1::Role wanted) {
  connected out;
  auto cl = client::connect(opts.host, opts.port, 5s, opts.tls.get());
  if (!cl) {
    fmt::print(stderr, "error: UNAVAILABLE: {}\n", cl.error().message);
    out.code = 3;
    return out;
  }
  auto hello = cl->hello(token, "fota-sim");
  if (!hello) {
    fmt::print(stderr, "error: UNAVAILABLE: {}\n", hello.error().message);
    out.code = 3;
    return out;
  }
  if (hello->status() != v1::STATUS_CODE_OK) {
    fmt::print(stderr, "error: {}: {}\n", to_string(hello->status()),
               hello->message());
    out.code = 1;
    return out;
  }
  auto role = hello->hello().role();
  if (role != wanted && role != v1::ROLE_UNSPECIFIED) {
    fmt::print(stderr,
               "error: the token chose the role {}; fota-sim needs {}\n",
               v1::Role_Name(role), v1::Role_Name(wanted));
    out.code = 1;
    return out;
  }
  out.cl = std::move(*cl);
  return out;
}

connected connect_gateway(const sim_options& opts) {
  return connect_as(opts, opts.token, v1::ROLE_GATEWAY);
}

// -- operator probe ----------------------------------------------------------

/// The `q` quantile of sorted `xs`, nearest rank.
double quantile(const std::vector<double>& xs, double q) {
  if (xs.empty())
    return 0;
  auto rank =
      static_cast<size_t>(std::ceil(q * static_cast<double>(xs.size())));
  return xs[std::clamp<size_t>(rank, 1, xs.size()) - 1];
}

/// Asks for the task `--probe-get-task` every `--probe-interval-ms` until it
/// has ended and at least `--probe-min-calls` calls were made; prints the
/// latency of the calls made while it ran and its rollout figures.
int probe_get_task(const sim_options& opts) {
  auto cl = connect_as(opts, opts.operator_token, v1::ROLE_OPERATOR);
  if (!cl)
    return cl.error();
  std::vector<double> running_ms;
  std::vector<double> all_ms;
  v1::TaskSummary last;
  auto ended = [](v1::TaskStatus x) {
    return x == v1::TASK_STATUS_COMPLETED || x == v1::TASK_STATUS_CANCELED;
  };
  while (stop_requested == 0) {
    v1::ClientFrame f;
    f.mutable_get_task()->set_task_id(opts.probe_task);
    auto t0 = std::chrono::steady_clock::now();
    auto r = cl->call(std::move(f));
    auto ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    if (!r) {
      fmt::print(stderr, "error: UNAVAILABLE: {}\n", r.error().message);
      return 3;
    }
    if (r->status() != v1::STATUS_CODE_OK) {
      fmt::print(stderr, "error: GetTask {}: {}: {}\n", opts.probe_task,
                 to_string(r->status()), r->message());
      return 1;
    }
    last = r->task();
    all_ms.push_back(ms);
    if (!ended(last.status()))
      running_ms.push_back(ms);
    if (ended(last.status()) && all_ms.size() >= opts.probe_min_calls)
      break;
    if (opts.probe_interval_ms > 0)
      std::this_thread::sleep_for(
          std::chrono::milliseconds{opts.probe_interval_ms});
  }
  std::sort(running_ms.begin(), running_ms.end());
  std::sort(all_ms.begin(), all_ms.end());
  const auto& c = last.counters();
  auto done = c.succeeded() + c.failed() + c.timed_out() + c.canceled();
  auto span_ms = last.finished_at_ms() - last.created_at_ms();
  fmt::print(
      "fota-sim probe of task {}\n"
      "  GetTask while running    {} calls, p50 {:.2f} ms, p99 {:.2f} "
      "ms, max {:.2f} ms\n"
      "  GetTask in all           {} calls, p50 {:.2f} ms, p99 {:.2f} "
      "ms, max {:.2f} ms\n"
      "  status                   {}\n"
      "  executions finished      {} (succeeded {}, failed {}, timed "
      "out {}, canceled {}, skipped {})\n"
      "  created to finished      {} ms\n"
      "  upgrades/s               {:.0f}\n",
      opts.probe_task, running_ms.size(), quantile(running_ms, 0.5),
      quantile(running_ms, 0.99), running_ms.empty() ? 0.0 : running_ms.back(),
      all_ms.size(), quantile(all_ms, 0.5), quantile(all_ms, 0.99),
      all_ms.empty() ? 0.0 : all_ms.back(), v1::TaskStatus_Name(last.status()),
      done, c.succeeded(), c.failed(), c.timed_out(), c.canceled(), c.skipped(),
      ended(last.status()) ? std::to_string(span_ms) : "-",
      ended(last.status()) && span_ms > 0
          ? static_cast<double>(done) * 1000.0 / static_cast<double>(span_ms)
          : 0.0);
  std::fflush(stdout);
  return ended(last.status()) ? 0 : 1;
}

// -- MQTT --------------------------------------------------------------------

/// Simulates the fleet on one connection to the broker `--mqtt`.
int run_mqtt(sim_options opts) {
  sim_mqtt_options mo;
  mo.broker = opts.mqtt;
  mo.client_id = opts.mqtt_client_id.empty()
                     ? fmt::format("fota-sim-{}", ::getpid())
                     : opts.mqtt_client_id;
  mo.username = opts.mqtt_username;
  mo.password = opts.mqtt_password;
  mo.product = opts.product;
  mo.max_in_flight = opts.max_in_flight;
  auto link = sim_mqtt_link::make(std::move(mo));
  if (!link) {
    fmt::print(stderr, "error: {}\n", link.error().message);
    return 2;
  }
  if (auto err = (*link)->reconnect()) {
    auto unavailable = err->code == errc::unavailable;
    fmt::print(stderr, "error: {}: {}\n",
               unavailable ? "UNAVAILABLE" : "PERMISSION_DENIED", err->message);
    return unavailable ? 3 : 1;
  }
  // Devices register one by one: inform, then their status.
  opts.batch = 1;
  simulator sim{std::move(opts), std::move(*link)};
  return sim.run();
}

} // namespace

int main(int argc, char** argv) {
  sim_options opts;
  if (const auto* env = std::getenv("FOTA_GATEWAY_TOKEN"); env && *env)
    opts.token = env;
  else
    opts.token = "gateway-token";
  if (const auto* env = std::getenv("FOTA_OPERATOR_TOKEN"); env && *env)
    opts.operator_token = env;
  else
    opts.operator_token = "operator-token";
  opts.seed = std::random_device{}();
  CLI::App app{"fota-sim: simulate a fleet of devices behind one gateway"};
  app.set_version_flag("--version", version_line("fota-sim"));
  app.add_option("--host", opts.host, "node address")->capture_default_str();
  app.add_option("--port", opts.port, "node port")->capture_default_str();
  app.add_option("--token", opts.token,
                 "gateway token (default: $FOTA_GATEWAY_TOKEN or "
                 "gateway-token); prefer --token-file or the environment");
  std::string token_file;
  app.add_option("--token-file", token_file, "file holding the gateway token");
  add_tls_options(app, opts.tls);
  app.add_option("--product", opts.product, "product key")
      ->capture_default_str();
  app.add_option("--device-prefix", opts.device_prefix,
                 "device keys are PREFIX000001, PREFIX000002, ...")
      ->capture_default_str();
  app.add_option("--devices", opts.devices, "number of devices")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100'000'000u));
  app.add_option("--versions", opts.versions, "version mix VERSION:WEIGHT,...")
      ->capture_default_str();
  app.add_option("--target", opts.target,
                 "version a successful upgrade reports (default: the pushed "
                 "firmware's)");
  app.add_option("--duration-ms", opts.duration,
                 "upgrade duration range MIN-MAX")
      ->capture_default_str();
  app.add_option("--start-delay-ms", opts.start_delay,
                 "delay before a pushed device confirms, MIN-MAX")
      ->capture_default_str();
  app.add_option("--failure-rate", opts.failure_rate,
                 "probability that an upgrade fails")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", opts.seed, "random seed (default: random)");
  app.add_option("--max-in-flight", opts.max_in_flight,
                 "outstanding requests at most")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1'000'000u));
  app.add_option("--batch", opts.batch,
                 "devices registered and brought online per RegisterDevices "
                 "(1: RegisterDevice, then DeviceOnline, per device)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10'000u));
  app.add_option("--connections", opts.connections,
                 "gateway connections, each with its share of the devices "
                 "and its own thread")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_option("--mqtt", opts.mqtt,
                 "MQTT broker URL (e.g. tcp://127.0.0.1:1883): the devices "
                 "talk to the node through the broker and the bridge "
                 "(fota-mqtt), all on one MQTT connection, instead of the "
                 "native protocol; --host, --port, the token, TLS, --batch "
                 "and --connections do not apply");
  app.add_option("--mqtt-client-id", opts.mqtt_client_id,
                 "MQTT client id (default: fota-sim-PID)");
  app.add_option("--mqtt-username", opts.mqtt_username,
                 "MQTT user name, if the broker wants one");
  std::string mqtt_password_file;
  app.add_option("--mqtt-password-file", mqtt_password_file,
                 "file holding the MQTT password of --mqtt-username");
  app.add_option("--probe-get-task", opts.probe_task,
                 "operator mode: call GetTask for this task until it has "
                 "ended, and print the latency percentiles and the rollout "
                 "figures (no devices are simulated)");
  app.add_option("--operator-token", opts.operator_token,
                 "operator token of --probe-get-task (default: "
                 "$FOTA_OPERATOR_TOKEN or operator-token)");
  app.add_option("--probe-interval-ms", opts.probe_interval_ms,
                 "pause between GetTask calls")
      ->capture_default_str();
  app.add_option("--probe-min-calls", opts.probe_min_calls,
                 "GetTask calls at least, also after the task has ended")
      ->capture_default_str();
  app.add_option("--exit-when-idle", opts.exit_when_idle,
                 "exit once nothing happened for this many seconds after all "
                 "upgrades finished (0: run until SIGINT/SIGTERM)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--reconnect-seconds", opts.reconnect_seconds,
                 "give up when the node stays unreachable this long")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ready-file", opts.ready_file,
                 "write the number of devices to this file once every "
                 "device is registered and online");
  app.add_option("--results-file", opts.results_file,
                 "write a line 'DEVICE succeeded|failed EXECUTION' for every "
                 "upgrade result the node acknowledged");
  app.add_flag("--request", opts.request_mode,
               "device-request mode: devices ask for their upgrade and "
               "confirm the offer, instead of waiting for pushes");
  app.add_option("--request-every-ms", opts.request_every,
                 "pause between a device's upgrade requests, MIN-MAX")
      ->capture_default_str();
  app.add_option("--request-attempts", opts.request_attempts,
                 "'no upgrade' answers before a device stops asking")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--churn", opts.churn,
                 "share of devices that go offline and come back again and "
                 "again (0-1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--churn-ms", opts.churn_period,
                 "time a churning device stays online, and then offline, "
                 "MIN-MAX")
      ->capture_default_str();
  app.add_option("--trusted-key", opts.trusted_keys,
                 "public key of the product (PEM file or base64 of 32 raw "
                 "bytes; repeatable): devices verify the manifest signature "
                 "of every push and offer and refuse firmware that fails");
  app.add_option("--image", opts.image,
                 "the image devices \"download\": its size and SHA-256 must "
                 "match the firmware's");
  try {
    app.parse(argc, argv);
    for (const auto& k : opts.trusted_keys)
      opts.keys.push_back(load_key(k));
    if (!opts.image.empty())
      std::tie(opts.image_size, opts.image_sha256) = image_facts(opts.image);
    opts.version_mix = parse_versions(opts.versions);
    opts.duration_ms = parse_range("--duration-ms", opts.duration);
    opts.start_delay_ms = parse_range("--start-delay-ms", opts.start_delay);
    opts.request_every_ms =
        parse_range("--request-every-ms", opts.request_every);
    opts.churn_ms = parse_range("--churn-ms", opts.churn_period);
    if (!mqtt_password_file.empty()) {
      auto t = read_token_file(mqtt_password_file);
      if (!t)
        throw usage_error{t.error().message};
      opts.mqtt_password = *t;
    }
    if (!opts.mqtt.empty() && opts.connections > 1)
      throw usage_error{"--connections: with --mqtt, one MQTT connection "
                        "carries every device"};
    if (!opts.mqtt.empty() && opts.probe_task != 0)
      throw usage_error{"--probe-get-task: an operator speaks the native "
                        "protocol; drop --mqtt"};
    if (!token_file.empty()) {
      auto t = read_token_file(token_file);
      if (!t)
        throw usage_error{t.error().message};
      opts.token = *t;
    }
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "error: {}\nRun with --help for more information.\n",
               e.what());
    return 2;
  } catch (const usage_error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  install_signal_handlers();
  if (opts.probe_task != 0)
    return probe_get_task(opts);
  if (!opts.mqtt.empty())
    return run_mqtt(std::move(opts));
  // One connection per simulator, each with its share of the devices.
  auto n = std::min(opts.connections, opts.devices);
  std::vector<std::unique_ptr<sim_link>> links;
  for (uint32_t k = 0; k < n; ++k) {
    auto cl = connect_gateway(opts);
    if (!cl)
      return cl.error();
    links.push_back(std::make_unique<sim_native_link>(
        std::move(*cl), opts.host, opts.port, opts.token, opts.tls));
  }
  if (n == 1) {
    simulator sim{std::move(opts), std::move(links.front())};
    return sim.run();
  }
  auto view = std::make_shared<shared_view>(n, opts.devices);
  if (!opts.results_file.empty()) {
    view->results = std::fopen(opts.results_file.c_str(), "w");
    if (view->results == nullptr) {
      fmt::print(stderr, "error: --results-file: cannot open '{}'\n",
                 opts.results_file);
      return 2;
    }
    std::setvbuf(view->results, nullptr, _IOLBF, 0);
  }
  std::vector<std::unique_ptr<simulator>> sims;
  uint32_t offset = 0;
  for (uint32_t k = 0; k < n; ++k) {
    auto share = opts.devices / n + (k < opts.devices % n ? 1 : 0);
    auto mine = opts;
    mine.devices = share;
    mine.seed = opts.seed + k;
    sims.push_back(std::make_unique<simulator>(
        std::move(mine), std::move(links[k]), offset, k, view));
    offset += share;
  }
  auto started = std::chrono::steady_clock::now();
  std::vector<int> codes(n, 0);
  std::vector<std::thread> threads;
  for (uint32_t k = 0; k < n; ++k)
    threads.emplace_back([&, k] { codes[k] = sims[k]->run(); });
  for (auto& t : threads)
    t.join();
  stats total;
  for (const auto& sim : sims)
    total += sim->totals();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count();
  simulator::print_summary(opts, opts.devices, total, elapsed);
  sims.clear();
  if (view->results != nullptr)
    std::fclose(view->results);
  return *std::max_element(codes.begin(), codes.end());
}
