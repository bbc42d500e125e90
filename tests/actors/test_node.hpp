/// A whole fota node on CAF's deterministic test coordinator, driven the way
/// a gateway session and an operator drive it. Time moves only when a test
/// advances CAF's test clock, and the node's wall clock follows it, so rate
/// limits and timers are stepped without sleeping.
#pragma once

#include "actors/context.hpp"
#include "actors/fwd.hpp"
#include "actors/node.hpp"
#include "actors/router.hpp"
#include "events/clock.hpp"
#include "events/codec.hpp"
#include "events/status.hpp"
#include "fota/v1/api.pb.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <gtest/gtest.h>

namespace fota::test {

// -- constants ----------------------------------------------------------------

/// The product of every device and firmware in these tests.
inline constexpr const char* product = "p";

/// 2026-03-01T08:00:00Z: the node's wall-clock time when a test starts.
inline constexpr int64_t wall_clock_base_ms = 1'772'352'000'000;

// -- clock --------------------------------------------------------------------

/// Wall-clock time that follows CAF's test clock: a fixed base plus the time
/// the test clock has advanced since the fixture started, so that
/// `advance_time` moves the node's timers and its wall time together.
class test_clock final : public fota::clock {
public:
  test_clock(const caf::detail::test_actor_clock& source, timestamp base)
    : source_(source), start_(source.now()), base_(base) {
    // nop
  }

  timestamp now() const noexcept override {
    return base_ + std::chrono::duration_cast<std::chrono::milliseconds>(
                       source_.now() - start_);
  }

private:
  const caf::detail::test_actor_clock& source_;
  caf::actor_clock::time_point start_;
  timestamp base_;
};

// -- gateway session stand-in -------------------------------------------------

/// What a gateway session received: every pushed `ServerFrame`, in order.
struct recording {
  std::vector<v1::ServerFrame> frames;

  /// The upgrade pushes, in order.
  std::vector<v1::UpgradePush> upgrades() const {
    std::vector<v1::UpgradePush> out;
    for (const auto& f : frames)
      if (f.push().has_upgrade())
        out.push_back(f.push().upgrade());
    return out;
  }

  /// The cancel pushes, in order.
  std::vector<v1::CancelPush> cancels() const {
    std::vector<v1::CancelPush> out;
    for (const auto& f : frames)
      if (f.push().has_cancel())
        out.push_back(f.push().cancel());
    return out;
  }
};

/// Where a gateway stand-in sends its acknowledgements: the fleet of the
/// node running now, or none (a gateway that never acknowledges).
using ack_target = std::function<fleet_actor()>;

/// Acknowledges an upgrade push as a gateway does.
inline void acknowledge(caf::event_based_actor* self, const ack_target& to,
                        const v1::ServerFrame& frame) {
  if (!to || !frame.push().has_upgrade())
    return;
  const auto& up = frame.push().upgrade();
  auto fleet = to();
  if (!fleet)
    return;
  self->request(fleet, caf::infinite,
                ack_push{up.product_key(),
                         up.device_key(),
                         fota::execution_id{up.execution_id()},
                         up.attempt(),
                         {}})
      .then([](accepted) {}, [](caf::error&) {});
}

/// Records each `(push_atom, frame)` it receives, as a session would forward
/// it to its gateway, and acknowledges upgrade pushes through `ack` (unless
/// it is empty).
inline caf::behavior recorder(caf::event_based_actor* self,
                              std::shared_ptr<recording> out, ack_target ack) {
  return {
      [self, out, ack](push_atom, const fota::push_frame& push,
                       const caf::actor&) {
        const auto& bytes = push.frame;
        v1::ServerFrame frame;
        EXPECT_TRUE(frame.ParseFromString(bytes)) << "push does not parse";
        acknowledge(self, ack, frame);
        out->frames.push_back(std::move(frame));
      },
  };
}

/// A spawned recorder and what it received.
struct session {
  caf::actor actor;
  std::shared_ptr<recording> pushes;
};

// -- fixture ------------------------------------------------------------------

/// An actor system on the test coordinator with one fota node in a fresh
/// data directory, and the requests of an operator and a gateway as
/// one-line helpers. Every helper runs the coordinator until idle.
class node_fixture : public ::testing::Test {
protected:
  // -- member types -----------------------------------------------------------

  /// An actor system configuration with the testing scheduler.
  struct test_config : caf::actor_system_config {
    test_config() {
      set("scheduler.policy", caf::atom("testing"));
      set("logger.file-verbosity", caf::atom("quiet"));
      set("logger.console-verbosity", caf::atom("quiet"));
      fota::add_message_types(*this);
    }
  };

  /// The answer to one request; empty until it arrives.
  using reply = std::shared_ptr<std::optional<v1::Response>>;

  // -- constructors and destructors -------------------------------------------

  node_fixture()
    : sys(cfg),
      sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())),
      clock(std::make_shared<test_clock>(sched.clock(),
                                         from_millis(wall_clock_base_ms))) {
    auto pattern =
        (std::filesystem::temp_directory_path() / "fota-node-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    dir = pattern;
    gateway = new_session();
  }

  ~node_fixture() override {
    stop_node();
    for (auto& s : sessions)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    sched.run();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // -- node lifecycle ---------------------------------------------------------

  /// Starts a node on `dir` (replaying whatever it holds) and lets its
  /// actors initialize.
  void start_node() {
    node_config nc;
    nc.data_dir = (dir / "db").string();
    nc.sync = sync;
    nc.detach_journal = false;
    nc.clock = clock;
    nc.limits = limits;
    nc.firmware = firmware_rules;
    nc.min_free_space = min_free_space;
    nc.free_space = free_space;
    nc.free_space_interval = free_space_interval;
    nc.use_snapshots = use_snapshots;
    auto started = node::start(sys, nc);
    ASSERT_TRUE(started) << started.error().message;
    the_node = std::move(*started);
    sched.run();
  }

  /// Stops the node without blocking the test coordinator.
  ///
  /// `node::stop()` waits for the journal's down message in a
  /// `scoped_actor::receive`, which nothing can deliver while this thread
  /// blocks: the exit message sits in the coordinator's queue until someone
  /// runs it. So the fixture terminates the actors itself, writers first and
  /// the journal last, and runs the coordinator. Then `node::stop()` finds
  /// the journal already down (monitoring a terminated actor delivers the
  /// down message at once) and only closes the log.
  void stop_node() {
    if (!the_node)
      return;
    const auto& ctx = *the_node->context();
    for (const auto& a : {caf::actor_cast<caf::actor>(the_node->router()),
                          caf::actor_cast<caf::actor>(ctx.fleet),
                          caf::actor_cast<caf::actor>(ctx.tasks),
                          caf::actor_cast<caf::actor>(ctx.firmware),
                          caf::actor_cast<caf::actor>(ctx.dispatcher)})
      if (a)
        caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
    if (ctx.journal)
      caf::anon_send_exit(ctx.journal, caf::exit_reason::user_shutdown);
    sched.run();
    the_node->stop();
    sched.run();
    the_node.reset();
  }

  // -- sessions ---------------------------------------------------------------

  /// Acknowledgements go to the fleet of whichever node runs.
  ack_target acker() {
    return [this]() -> fleet_actor {
      return the_node ? the_node->context()->fleet : fleet_actor{};
    };
  }

  /// Spawns a new gateway session stand-in.
  /// Spawns a new gateway session stand-in; with `acks`, it acknowledges
  /// every upgrade push as a real gateway does.
  session new_session(bool acks = true) {
    auto pushes = std::make_shared<recording>();
    auto actor = sys.spawn(recorder, pushes, acks ? acker() : ack_target{});
    sessions.push_back(actor);
    sched.run();
    return session{actor, pushes};
  }

  // -- requests ---------------------------------------------------------------

  /// Sends `frame` from a fresh actor the way a session does: parsed once
  /// into its command, routed to the actor that owns it (`route()`, the code
  /// path of sessions and the in-process API), with `origin` as the sending
  /// session and the role the request needs. Does not run the coordinator;
  /// the response lands in the result.
  reply send_request(const v1::ClientFrame& frame,
                     const caf::actor& origin = {}) {
    auto out = std::make_shared<std::optional<v1::Response>>();
    // Arguments, not lambda captures: CAF 0.17.6 dereferences a null
    // argument tuple when spawning a function without arguments (UBSan).
    sys.spawn(requester, the_node->context(), frame.SerializeAsString(), origin,
              out);
    return out;
  }

  /// The body of the actor that `send_request` spawns.
  static caf::behavior requester(caf::event_based_actor* self, context_ptr ctx,
                                 std::string bytes, caf::actor origin,
                                 reply out) {
    v1::ClientFrame frame;
    frame.ParseFromString(bytes);
    auto req = decode(frame);
    if (!req) {
      *out = error_response(req.error());
      return {};
    }
    auto role = required_role(*req);
    fota::route(self, *ctx, role, std::move(*req), origin,
                [out](const v1::Response& r) { *out = r; });
    return {};
  }

  /// Sends `frame`, runs the coordinator until idle, and returns the
  /// response; INTERNAL when none arrived.
  v1::Response call_frame(const v1::ClientFrame& frame,
                          const caf::actor& origin = {}) {
    auto out = send_request(frame, origin);
    sched.run();
    if (!*out) {
      ADD_FAILURE() << "no reply";
      return error_response(make_failure(errc::internal, "no reply"));
    }
    return **out;
  }

  /// A `ClientFrame` with `body` as its request.
  template <class Proto>
  static v1::ClientFrame frame_of(const Proto& body) {
    v1::ClientFrame f;
    const auto* d = f.GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* field = d->field(i);
      if (field->message_type() == Proto::descriptor()) {
        f.GetReflection()->MutableMessage(&f, field)->CopyFrom(body);
        return f;
      }
    }
    ADD_FAILURE() << Proto::descriptor()->name() << " is no request";
    return f;
  }

  /// Sends the request `body` from session `origin` and returns the
  /// response.
  template <class Proto>
  v1::Response call(const Proto& body, const caf::actor& origin = {}) {
    return call_frame(frame_of(body), origin);
  }

  /// Sends `frame` through the node's router with `role`, as an embedder
  /// does; from the in-process gateway `gateway`, if given.
  v1::Response route(v1::Role role, const v1::ClientFrame& frame,
                     const caf::actor& gateway = {}) {
    auto out = std::make_shared<std::optional<v1::Response>>();
    sys.spawn(router_requester, the_node->router(), static_cast<int32_t>(role),
              frame.SerializeAsString(), gateway, out);
    sched.run();
    if (!*out) {
      ADD_FAILURE() << "no reply";
      return error_response(make_failure(errc::internal, "no reply"));
    }
    return **out;
  }

  static caf::behavior router_requester(caf::event_based_actor* self,
                                        router_actor router, int32_t role,
                                        std::string bytes, caf::actor gateway,
                                        reply out) {
    auto sent = gateway ? self->request(router, caf::infinite, request_atom_v,
                                        role, bytes, gateway)
                        : self->request(router, caf::infinite, request_atom_v,
                                        role, bytes);
    sent.then(
        [out](const std::string& r) {
          v1::Response resp;
          if (!resp.ParseFromString(r))
            ADD_FAILURE() << "reply does not parse as fota.v1.Response";
          *out = std::move(resp);
        },
        [out](caf::error& err) { *out = error_response(from_error(err)); });
    return {};
  }

  const node_context& ctx() const { return *the_node->context(); }

  // -- gateway helpers --------------------------------------------------------

  v1::Response register_device(const std::string& key,
                               const std::string& version) {
    v1::RegisterDevice req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_version(version);
    return call(req);
  }

  /// Brings `key` online on session `s` (the default gateway).
  v1::Response online(const std::string& key,
                      const std::optional<session>& s = std::nullopt) {
    v1::DeviceOnline req;
    req.set_product_key(product);
    req.set_device_key(key);
    return call(req, (s ? *s : gateway).actor);
  }

  /// Takes `key` offline from session `s` (the default gateway).
  v1::Response offline(const std::string& key,
                       const std::optional<session>& s = std::nullopt) {
    v1::DeviceOffline req;
    req.set_product_key(product);
    req.set_device_key(key);
    return call(req, (s ? *s : gateway).actor);
  }

  /// Acknowledges the push of `execution`, attempt `attempt`, for `key`.
  v1::Response ack(const std::string& key, uint64_t execution,
                   uint32_t attempt = 1) {
    v1::AckPush req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_execution_id(execution);
    req.set_attempt(attempt);
    return call(req);
  }

  /// Registers `key` on `version` and brings it online.
  void register_online(const std::string& key, const std::string& version) {
    auto r = register_device(key, version);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    r = online(key);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  }

  v1::Response report_progress(const std::string& key, uint64_t execution,
                               uint32_t step, const std::string& text = {}) {
    v1::ReportProgress req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_execution_id(execution);
    req.set_step(step);
    req.set_text(text);
    return call(req);
  }

  v1::Response report_version(const std::string& key,
                              const std::string& version) {
    v1::ReportVersion req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_version(version);
    return call(req);
  }

  v1::Response report_failure(const std::string& key, uint64_t execution,
                              const std::string& code,
                              const std::string& text) {
    v1::ReportFailure req;
    req.set_product_key(product);
    req.set_device_key(key);
    req.set_execution_id(execution);
    req.set_code(code);
    req.set_text(text);
    return call(req);
  }

  /// Runs an upgrade on `key` to success: progress 50, then the version.
  void upgrade(const std::string& key, uint64_t execution,
               const std::string& version) {
    auto r = report_progress(key, execution, 50, "flashing");
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    r = report_version(key, version);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
  }

  // -- operator helpers -------------------------------------------------------

  v1::Device get_device(const std::string& key) {
    v1::GetDevice req;
    req.set_product_key(product);
    req.set_device_key(key);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.device();
  }

  v1::Firmware get_firmware(const std::string& version) {
    v1::GetFirmware req;
    req.set_product_key(product);
    req.set_version(version);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.firmware();
  }

  /// The firmware that a test creates for `version`.
  static v1::Firmware firmware_of(const std::string& version) {
    v1::Firmware fw;
    fw.set_product_key(product);
    fw.set_version(version);
    fw.set_url("https://firmware.example/p/" + version + ".bin");
    fw.set_size(1 << 20);
    fw.set_sha256(std::string(64, 'a'));
    fw.set_description("release " + version);
    return fw;
  }

  /// Creates firmware `version` and attests it without a verification run.
  void create_firmware_verified(const std::string& version) {
    v1::CreateFirmware create;
    *create.mutable_firmware() = firmware_of(version);
    auto r = call(create);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    v1::SkipVerification skip;
    skip.set_product_key(product);
    skip.set_version(version);
    skip.set_reason("tested in the lab");
    r = call(skip);
    ASSERT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    ASSERT_EQ(r.firmware().status(), v1::FIRMWARE_STATUS_VERIFIED);
  }

  /// A snapshot cloud-push task over ALL devices on `source`.
  static v1::TaskSpec snapshot_spec(const std::string& source,
                                    const std::string& target) {
    v1::TaskSpec spec;
    spec.set_name("upgrade " + source + " to " + target);
    spec.set_product_key(product);
    spec.set_target_version(target);
    spec.add_source_versions(source);
    spec.set_strategy(v1::STRATEGY_SNAPSHOT);
    spec.mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
    spec.set_method(v1::METHOD_CLOUD_PUSH);
    return spec;
  }

  static v1::ClientFrame create_task_frame(const v1::TaskSpec& spec) {
    v1::CreateTask req;
    *req.mutable_spec() = spec;
    return frame_of(req);
  }

  v1::Response create_task(const v1::TaskSpec& spec) {
    return call_frame(create_task_frame(spec));
  }

  /// Creates a task and returns its id; 0 on failure.
  uint64_t create_task_id(const v1::TaskSpec& spec) {
    auto r = create_task(spec);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.task().task_id();
  }

  v1::TaskSummary task_summary(uint64_t id) {
    v1::GetTask req;
    req.set_task_id(id);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.task();
  }

  /// The executions of task `id`, in sequence order; all of them when
  /// `states` is empty.
  v1::TaskDetails details(uint64_t id,
                          std::vector<v1::ExecutionState> states = {}) {
    v1::GetTaskDetails req;
    req.set_task_id(id);
    req.set_page_size(1000);
    for (auto s : states)
      req.add_states(s);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.task_details();
  }

  v1::TaskDetails details(uint64_t id, v1::ExecutionState state) {
    return details(id, std::vector<v1::ExecutionState>{state});
  }

  /// The devices task `id` skipped.
  std::vector<v1::SkippedDevice> skipped(uint64_t id) {
    v1::GetTaskDetails req;
    req.set_task_id(id);
    req.set_skipped(true);
    req.set_page_size(1000);
    auto r = call(req);
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return {r.task_details().skipped().begin(),
            r.task_details().skipped().end()};
  }

  /// The execution of `key` in task `id`, or an empty one.
  v1::Execution execution_of(uint64_t id, const std::string& key) {
    auto d = details(id);
    for (const auto& x : d.executions())
      if (x.device_key() == key)
        return x;
    return {};
  }

  template <class Message>
  v1::Response task_control(uint64_t id) {
    Message req;
    req.set_task_id(id);
    return call(req);
  }

  v1::Response pause(uint64_t id) { return task_control<v1::PauseTask>(id); }

  v1::Response resume(uint64_t id) { return task_control<v1::ResumeTask>(id); }

  v1::Response cancel(uint64_t id) { return task_control<v1::CancelTask>(id); }

  // -- durability -------------------------------------------------------------

  /// Whether `job` is the journal's.
  bool is_journal(caf::resumable* job) const {
    auto* actor = dynamic_cast<caf::abstract_actor*>(job);
    return actor != nullptr &&
           actor == caf::actor_cast<caf::abstract_actor*>(ctx().journal);
  }

  /// Runs every job but the journal's: appends wait, so nothing becomes
  /// durable. Returns the jobs run.
  size_t run_holding_journal() {
    return sched.run_jobs_filtered(
        [this](caf::resumable* job) { return !is_journal(job); });
  }

  /// Lets the journal write what waits for it, and nothing else.
  size_t run_journal() {
    return sched.run_jobs_filtered(
        [this](caf::resumable* job) { return is_journal(job); });
  }

  /// The digest of the node's durable state, as `GetStateDigest` answers.
  v1::StateDigest state_digest() {
    auto r = call(v1::GetStateDigest{});
    EXPECT_EQ(r.status(), v1::STATUS_CODE_OK) << r.message();
    return r.state_digest();
  }

  // -- time -------------------------------------------------------------------

  /// Advances CAF's test clock (and so the node's wall clock), fires the
  /// timers that became due, runs until idle, and returns how many timers
  /// fired.
  size_t advance(std::chrono::milliseconds d) {
    auto fired = sched.advance_time(d);
    sched.run();
    return fired;
  }

  /// Advances by `total` in steps of `step`, running after each, and
  /// returns how many timers fired in all.
  size_t advance_in_steps(std::chrono::milliseconds total,
                          std::chrono::milliseconds step) {
    size_t fired = 0;
    for (auto t = std::chrono::milliseconds{0}; t < total; t += step)
      fired += advance(step);
    return fired;
  }

  // -- member variables -------------------------------------------------------

  std::filesystem::path dir;
  test_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::shared_ptr<test_clock> clock;
  node_limits limits;
  /// URL schemes and trusted signing keys of the node's firmware.
  firmware_policy firmware_rules;
  /// Whether the next `start_node` fsyncs (and keeps a high-water mark).
  bool sync = false;
  /// The free-space guard of the next `start_node`: the real file system
  /// unless a test injects a probe.
  uint64_t min_free_space = storage::default_min_free_space;
  storage::free_space_probe free_space;
  std::chrono::milliseconds free_space_interval =
      storage::default_probe_interval;
  /// Whether the next `start_node` starts from the latest snapshot.
  bool use_snapshots = true;
  std::unique_ptr<node> the_node;
  std::vector<caf::actor> sessions;
  /// The default gateway session.
  session gateway;
};

/// The execution id of sequence `s` in task `task`, as the wire carries it.
inline uint64_t execution_id(uint64_t task, uint64_t s) {
  return fota::execution_id{task_id{task}, execution_seq{s}}.value();
}

} // namespace fota::test
