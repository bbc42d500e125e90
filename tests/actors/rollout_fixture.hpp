/// Helpers for the rollout rule tests: a gateway stand-in that stamps every
/// push with the node's wall-clock time, a walk through time that fires each
/// timer at its own instant (as a real clock would), and one-line requests
/// for what `node_fixture` does not cover (tags, attributes, asset trees,
/// device requests, firmware verification).
#pragma once

#include "tests/actors/test_node.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fota::test {

// -- timed gateway session stand-in -------------------------------------------

/// When each frame of a `recording` arrived: `at_ms[i]` belongs to
/// `frames[i]`.
struct arrival_times {
  std::vector<int64_t> at_ms;
};

/// Records each `(push_atom, frame)` with the node's wall-clock time, and
/// acknowledges upgrade pushes through `ack`.
inline caf::behavior timed_recorder(caf::event_based_actor* self,
                                    std::shared_ptr<recording> out,
                                    std::shared_ptr<arrival_times> times,
                                    std::shared_ptr<fota::clock> clk,
                                    ack_target ack) {
  return {
      [self, out, times, clk, ack](push_atom, const fota::push_frame& push,
                                   const caf::actor&) {
        const auto& bytes = push.frame;
        v1::ServerFrame frame;
        EXPECT_TRUE(frame.ParseFromString(bytes)) << "push does not parse";
        acknowledge(self, ack, frame);
        out->frames.push_back(std::move(frame));
        times->at_ms.push_back(to_millis(clk->now()));
      },
  };
}

/// An upgrade push and the wall-clock time it reached the gateway.
struct timed_upgrade {
  int64_t at_ms;
  v1::UpgradePush push;
};

// -- fixture ------------------------------------------------------------------

/// A node whose default gateway stamps pushes with their arrival time.
/// Derived fixtures set `wall_start_ms` or `limits` in their constructor;
/// `SetUp` starts the node.
class rollout_fixture : public node_fixture {
protected:
  // -- set-up -----------------------------------------------------------------

  void SetUp() override {
    if (wall_start_ms != wall_clock_base_ms)
      clock = std::make_shared<test_clock>(sched.clock(),
                                           from_millis(wall_start_ms));
    auto pushes = std::make_shared<recording>();
    auto actor = sys.spawn(timed_recorder, pushes, times,
                           std::shared_ptr<fota::clock>{clock}, acker());
    sessions.push_back(actor);
    gateway = session{actor, pushes};
    sched.run();
    start_node();
  }

  // -- time -------------------------------------------------------------------

  /// The node's wall-clock time in milliseconds.
  int64_t now_ms() const { return to_millis(clock->now()); }

  /// Moves time forward to `target_ms`, stopping at every pending timer on
  /// the way so that each fires at its own instant and sees the clock there
  /// (`advance` jumps, and fires every timer at the end of the jump).
  /// `after_step` runs after each stop, e.g. to answer pushes.
  void run_until(int64_t target_ms,
                 const std::function<void()>& after_step = {}) {
    auto& c = sched.clock();
    sched.run();
    if (after_step)
      after_step();
    for (int guard = 0; guard < 1'000'000; ++guard) {
      const auto& pending = c.schedule();
      if (pending.empty())
        break;
      auto due = pending.begin()->first;
      auto step =
          due > c.current_time ? due - c.current_time : caf::timespan{0};
      auto step_ms = std::chrono::ceil<std::chrono::milliseconds>(step).count();
      if (now_ms() + step_ms > target_ms)
        break;
      sched.advance_time(step);
      sched.run();
      if (after_step)
        after_step();
    }
    auto rest = target_ms - now_ms();
    if (rest > 0) {
      sched.advance_time(std::chrono::milliseconds{rest});
      sched.run();
      if (after_step)
        after_step();
    }
  }

  /// `run_until(now + d)`.
  void run_for(std::chrono::milliseconds d,
               const std::function<void()>& after_step = {}) {
    run_until(now_ms() + d.count(), after_step);
  }

  // -- what the gateway received ----------------------------------------------

  /// The upgrade pushes of the default gateway with their arrival times.
  std::vector<timed_upgrade> timed_upgrades() const {
    std::vector<timed_upgrade> out;
    const auto& frames = gateway.pushes->frames;
    for (size_t i = 0; i < frames.size(); ++i)
      if (frames[i].push().has_upgrade())
        out.push_back(
            timed_upgrade{times->at_ms[i], frames[i].push().upgrade()});
    return out;
  }

  std::vector<v1::UpgradePush> upgrades() const {
    return gateway.pushes->upgrades();
  }

  std::vector<v1::CancelPush> cancels() const {
    return gateway.pushes->cancels();
  }

  /// Device keys of the upgrade pushes, in order.
  std::vector<std::string> pushed_keys() const {
    std::vector<std::string> out;
    for (const auto& u : upgrades())
      out.push_back(u.device_key());
    return out;
  }

  // -- gateway helpers --------------------------------------------------------

  using labels = std::map<std::string, std::string>;

  /// Registers `key` on `version` with tags and attributes.
  v1::Response register_labelled(const std::string& key,
                                 const std::string& version, const labels& tags,
                                 const labels& attributes = {}) {
    v1::RegisterDevice req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_version(version);
    for (const auto& [k, v] : tags)
      (*req.mutable_tags())[k] = v;
    for (const auto& [k, v] : attributes)
      (*req.mutable_attributes())[k] = v;
    return call(req);
  }

  /// Registers devices `prefix-1` .. `prefix-n` on `version`, online.
  std::vector<std::string> register_online_many(const std::string& prefix,
                                                size_t n,
                                                const std::string& version) {
    std::vector<std::string> out;
    for (size_t i = 1; i <= n; ++i) {
      auto key = prefix + "-" + std::to_string(i);
      register_online(key, version);
      out.push_back(key);
    }
    return out;
  }

  v1::Response request_upgrade(const std::string& key) {
    v1::RequestUpgrade req;
    req.set_product_key(product);
    req.set_device_key(key);
    return call(req);
  }

  v1::Response confirm_upgrade(const std::string& key, uint64_t execution) {
    v1::ConfirmUpgrade req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_execution_id(execution);
    return call(req);
  }

  // -- operator helpers -------------------------------------------------------

  v1::Response set_tags(const std::string& key, const labels& tags) {
    v1::SetDeviceTags req;
    req.set_product_key(product);
    req.set_device_key(key);
    for (const auto& [k, v] : tags)
      (*req.mutable_tags())[k] = v;
    return call(req);
  }

  v1::Response set_attributes(const std::string& key,
                              const labels& attributes) {
    v1::SetDeviceAttributes req;
    req.set_product_key(product);
    req.set_device_key(key);
    for (const auto& [k, v] : attributes)
      (*req.mutable_attributes())[k] = v;
    return call(req);
  }

  v1::Response create_tree(const v1::AssetTree& tree) {
    v1::CreateAssetTree req;
    *req.mutable_tree() = tree;
    return call(req);
  }

  /// Creates firmware `version` without verifying it.
  v1::Response create_firmware(const std::string& version) {
    v1::CreateFirmware req;
    *req.mutable_firmware() = firmware_of(version);
    return call(req);
  }

  /// Starts a verification run of `version` on `keys`.
  v1::Response verify_firmware(const std::string& version,
                               const std::vector<std::string>& keys,
                               uint32_t timeout_seconds = 0) {
    v1::VerifyFirmware req;
    req.set_product_key(product);
    req.set_version(version);
    for (const auto& k : keys)
      req.add_device_keys(k);
    req.set_timeout_seconds(timeout_seconds);
    return call(req);
  }

  std::vector<v1::TaskSummary> list_tasks() {
    v1::ListTasks req;
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return {r.task_list().tasks().begin(), r.task_list().tasks().end()};
  }

  /// The device keys of task `id`'s executions, in sequence order.
  std::vector<std::string> enrolled(uint64_t id) {
    std::vector<std::string> out;
    auto d = details(id);
    for (const auto& x : d.executions())
      out.push_back(x.device_key());
    return out;
  }

  // -- spec builders ----------------------------------------------------------

  /// A cloud-push task over the devices tagged `key`=`value` on `source`.
  static v1::TaskSpec tag_spec(const std::string& source,
                               const std::string& target,
                               const std::string& key,
                               const std::string& value) {
    auto spec = snapshot_spec(source, target);
    spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
    spec.mutable_scope()->mutable_tag()->set_key(key);
    spec.mutable_scope()->mutable_tag()->set_value(value);
    return spec;
  }

  // -- member variables -------------------------------------------------------

  /// The node's wall-clock time when the test starts.
  int64_t wall_start_ms = wall_clock_base_ms;
  /// Arrival times of the default gateway's frames.
  std::shared_ptr<arrival_times> times = std::make_shared<arrival_times>();
};

/// Minutes since midnight UTC of `ms`.
inline int64_t utc_minute_of_day(int64_t ms) {
  constexpr int64_t day = 24 * 60 * 60 * 1000;
  return ((ms % day) + day) % day / 60'000;
}

} // namespace fota::test
