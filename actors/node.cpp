#include "actors/node.hpp"

#include "actors/device.hpp"
#include "actors/dispatcher.hpp"
#include "actors/firmware.hpp"
#include "actors/fleet.hpp"
#include "actors/history.hpp"
#include "actors/journal.hpp"
#include "actors/router.hpp"
#include "actors/snapshotter.hpp"
#include "actors/task.hpp"
#include "actors/task_registry.hpp"
#include "events/digest.hpp"
#include "events/replay.hpp"
#include "events/status.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

namespace fota {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::fota>();
  cfg.add_error_category(caf::atom("fota"), [](uint8_t code, caf::atom_value,
                                               const caf::message& ctx) {
    std::string out = "fota::";
    out += to_string(static_cast<errc>(code));
    if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
      out += ": ";
      out += ctx.get_as<std::string>(0);
    }
    return out;
  });
}

node::node(caf::actor_system& sys, std::unique_ptr<storage::event_log> log)
  : sys_(sys), log_(std::move(log)), ctx_(std::make_shared<node_context>()) {}

node::~node() {
  stop();
}

namespace {

/// What the firmware actor needs to know about the recovered tasks.
struct firmware_usage {
  std::map<firmware_catalog::key, std::set<task_id>> users;
  std::set<firmware_catalog::key> running_verifications;
  /// Finished verification runs whose outcome the firmware may not have
  /// heard before the node stopped.
  std::set<uint64_t> report_outcome;
};

firmware_usage usage_of(const world& w) {
  firmware_usage out;
  for (const auto& [id, t] : w.tasks) {
    firmware_catalog::key key{t.spec.product, t.spec.target_version};
    if (!is_finished(t.status))
      out.users[key].insert(task_id{id});
    if (!t.spec.verification)
      continue;
    // The run of the firmware's latest verification is the task created
    // after that verification started.
    auto started = w.verification_started_at.find(key);
    auto created = w.task_created_at.find(id);
    if (started == w.verification_started_at.end() ||
        created == w.task_created_at.end() || created->second < started->second)
      continue;
    const auto* fw = w.firmware.find(key.first, key.second);
    if (fw == nullptr || fw->status != v1::FIRMWARE_STATUS_VERIFYING)
      continue;
    out.running_verifications.insert(key);
    if (is_finished(t.status))
      out.report_outcome.insert(id);
  }
  return out;
}

} // namespace

expected<std::unique_ptr<node>> node::start(caf::actor_system& sys,
                                            node_config cfg) {
  auto started = std::chrono::steady_clock::now();
  storage::options opts;
  opts.path = cfg.data_dir;
  opts.sync = cfg.sync;
  opts.min_free_space = cfg.min_free_space;
  opts.free_space = cfg.free_space;
  opts.probe_interval = cfg.free_space_interval;
  auto log = storage::event_log::open(opts);
  if (!log)
    return std::move(log).error();
  std::unique_ptr<node> n{new node(sys, std::move(*log))};
  // The latest snapshot, if usable, then the events after it, checking
  // every event; the first violation stops the start.
  world w;
  uint64_t replayed = 0;
  snapshot_load snap;
  if (cfg.use_snapshots)
    snap = load_snapshot(*n->log_, w);
  if (auto err = replay_log(*n->log_, w, replayed)) {
    if (!snap.sequence)
      return std::move(*err);
    // The snapshot and its tail disagree: replay from zero, whose verdict
    // is the one that counts.
    snap.ignored = "the events after the snapshot after event " +
                   std::to_string(snap.sequence->value()) +
                   " do not apply to it (" + err->message + ")";
    snap.sequence.reset();
    w = world{};
    replayed = 0;
    if (auto again = replay_log(*n->log_, w, replayed))
      return std::move(*again);
  }
  finish_replay(w);
  n->snapshots_ = std::make_unique<snapshotter>(
      *n->log_, cfg.snapshot_every_events, w.last_sequence);
  n->log_->on_append(
      [s = n->snapshots_.get()](sequence_number last) { s->appended(last); });
  auto usage = usage_of(w);
  // Wiring.
  auto& ctx = *n->ctx_;
  ctx.clock = cfg.clock ? cfg.clock : std::make_shared<system_clock>();
  ctx.limits = cfg.limits;
  ctx.edge = std::make_shared<const edge_policy>(cfg.edge);
  ctx.space = n->log_->space();
  auto* log_ptr = n->log_.get();
  n->detached_journal_ = cfg.detach_journal;
  if (cfg.detach_journal)
    ctx.journal = sys.spawn<caf::detached>(journal, log_ptr, ctx.metrics);
  else
    ctx.journal = sys.spawn(journal, log_ptr, ctx.metrics);
  n->history_cancel_ = std::make_shared<std::atomic<bool>>(false);
  if (cfg.detach_journal)
    ctx.history =
        sys.spawn<caf::detached>(history_behavior, log_ptr, n->history_cancel_);
  else
    ctx.history = sys.spawn(history_behavior, log_ptr, n->history_cancel_);
  n->history_ = caf::actor_cast<caf::actor>(ctx.history);
  ctx.firmware =
      sys.spawn(firmware_behavior, n->ctx_, std::move(cfg.firmware), w.firmware,
                std::move(usage.users), std::move(usage.running_verifications));
  ctx.dispatcher = sys.spawn(dispatcher_behavior, n->ctx_);
  // A recovered device runs once it has something to do: its actors are
  // spawned here only for the devices of running tasks (which bind them
  // now, or may push to them); the fleet spawns the others at their first
  // message. Most of a large fleet has none until its gateway reconnects,
  // and a million spawns up front delay serving by seconds.
  std::vector<device_actor> device_actors(w.devices.size());
  auto actor_for = [&](size_t i) -> const device_actor& {
    if (!device_actors[i])
      device_actors[i] = sys.spawn<caf::lazy_init>(device_behavior, n->ctx_,
                                                   w.devices[i], event_list{});
    return device_actors[i];
  };
  std::map<uint64_t, task_registry_state::entry> tasks;
  for (auto& [id, t] : w.tasks) {
    auto start = std::make_shared<task_start>();
    start->devices.reserve(t.executions.size());
    std::vector<std::pair<uint64_t, device_actor>> held;
    // A finished task pushes to, binds and releases none of its devices.
    bool running = !is_finished(t.status);
    for (uint64_t s = 1; s <= t.executions.size(); ++s) {
      const auto& x = t.executions[s - 1];
      auto i = w.device_index.find(device_ref(t.spec.product, x.device_key));
      auto actor = i == w.device_index.end() ? device_actor{}
                   : running                 ? actor_for(i->second)
                                             : device_actors[i->second];
      start->devices.push_back(actor);
      if (t.holds_device(x) && actor)
        held.emplace_back(s, actor);
    }
    task_registry_state::entry e;
    e.product = t.spec.product;
    e.device_request = t.spec.method == v1::METHOD_DEVICE_REQUEST;
    e.board = std::make_shared<summary_board>();
    start->board = e.board;
    auto tid = t.id;
    start->recovered = std::move(t);
    start->report_outcome = usage.report_outcome.count(id) > 0;
    e.actor = sys.spawn(task_behavior, n->ctx_, start);
    // Bind each held device to its task now, before any session can send a
    // report for it.
    auto sink = caf::actor_cast<task_sink>(e.actor);
    for (auto& [s, device] : held)
      caf::anon_send(device, bind_atom_v, execution_id{tid, execution_seq{s}},
                     sink);
    tasks.emplace(id, std::move(e));
  }
  std::vector<std::pair<device_state, device_actor>> fleet_devices;
  fleet_devices.reserve(w.devices.size());
  for (size_t i = 0; i < w.devices.size(); ++i)
    fleet_devices.emplace_back(std::move(w.devices[i]), device_actors[i]);
  ctx.fleet = sys.spawn(fleet_behavior, n->ctx_, std::move(fleet_devices),
                        std::move(w.trees));
  ctx.tasks = sys.spawn(task_registry_behavior, n->ctx_, std::move(tasks));
  n->router_ = sys.spawn(router_behavior, n->ctx_);
  n->actors_ = {caf::actor_cast<caf::actor>(ctx.journal),
                caf::actor_cast<caf::actor>(ctx.firmware),
                caf::actor_cast<caf::actor>(ctx.dispatcher),
                caf::actor_cast<caf::actor>(ctx.fleet),
                caf::actor_cast<caf::actor>(ctx.tasks),
                caf::actor_cast<caf::actor>(n->router_)};
  n->recovery_.events = replayed;
  n->recovery_.snapshot = snap.sequence;
  n->recovery_.snapshot_bytes = snap.bytes;
  n->recovery_.snapshot_ignored = std::move(snap.ignored);
  n->recovery_.devices = device_actors.size();
  n->recovery_.tasks = w.tasks.size();
  n->recovery_.firmware = w.firmware.entries.size();
  n->recovery_.log = n->log_->recovered();
  n->recovery_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  return n;
}

data_dir_check check_data_dir(const std::string& dir) {
  data_dir_check out;
  storage::options opts;
  opts.path = dir;
  opts.read_only = true;
  opts.verify_high_water = false;
  auto log = storage::event_log::open(opts);
  if (!log) {
    out.problems.push_back(std::string{to_string(log.error().code)} + ": " +
                           log.error().message);
    return out;
  }
  out.opened = true;
  out.log = (*log)->recovered();
  auto last = out.log.last_sequence.value();
  if (out.log.high_water && last < out.log.high_water->value()) {
    auto hw = out.log.high_water->value();
    out.problems.push_back(
        (last + 1 == hw ? "event " + std::to_string(hw) + " was"
                        : "events " + std::to_string(last + 1) + ".." +
                              std::to_string(hw) + " were") +
        " acknowledged (high-water mark " + std::to_string(hw) +
        ") but are missing from the log, which ends at event " +
        std::to_string(last) + ": the WAL was truncated or lost");
  }
  world w;
  if (auto err = replay_log(**log, w, out.events))
    out.problems.push_back(err->message);
  else if (out.events != last)
    out.problems.push_back("the log ends at event " + std::to_string(last) +
                           " but only " + std::to_string(out.events) +
                           " events replayed");
  out.devices = w.devices.size();
  out.tasks = w.tasks.size();
  out.firmware = w.firmware.entries.size();
  auto snap = (*log)->latest_snapshot();
  if (!snap) {
    out.problems.push_back("snapshot: " + snap.error().message);
  } else if (*snap) {
    out.snapshot = (*snap)->sequence;
    out.snapshot_bytes = (*snap)->bytes.size();
    world from_snapshot;
    auto loaded = load_snapshot(**log, from_snapshot);
    if (!loaded.sequence) {
      out.problems.push_back(loaded.ignored);
    } else if (auto err = replay_log(**log, from_snapshot, out.snapshot_tail)) {
      out.problems.push_back("the events after the snapshot do not apply to "
                             "it: " +
                             err->message);
    } else if (out.problems.empty()) {
      auto full = digest(w);
      auto fast = digest(from_snapshot);
      if (full.sha256 != fast.sha256 ||
          full.last_sequence != fast.last_sequence)
        out.problems.push_back(
            "the snapshot after event " +
            std::to_string(out.snapshot->value()) +
            " and the events after it give state digest " + fast.sha256 +
            " at event " + std::to_string(fast.last_sequence.value()) +
            ", the full replay " + full.sha256 + " at event " +
            std::to_string(full.last_sequence.value()));
      else
        out.snapshot_verified = true;
    }
  }
  return out;
}

v1::Response node::call(const v1::ClientFrame& frame, v1::Role role,
                        const caf::actor& gateway) {
  caf::scoped_actor self{sys_};
  v1::Response out;
  self->request(router_, caf::infinite, request_atom_v,
                static_cast<int32_t>(role), frame.SerializeAsString(), gateway)
      .receive([&](const std::string& bytes) { out.ParseFromString(bytes); },
               [&](const caf::error& err) {
                 out = error_response(from_error(err));
               });
  return out;
}

void node::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  // A snapshot under way is abandoned, not awaited: stop stays fast.
  if (snapshots_)
    snapshots_->stop();
  // The history reader ends its read and is gone before the log closes:
  // a RocksDB iterator must not outlive its database.
  if (history_) {
    history_cancel_->store(true);
    if (detached_journal_) {
      caf::scoped_actor self{sys_};
      self->monitor(history_);
      self->send_exit(history_, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {});
    } else {
      caf::anon_send_exit(history_, caf::exit_reason::user_shutdown);
    }
    history_ = nullptr;
  }
  // Stop the writers first, the journal last, so that it writes what it
  // holds before the log closes.
  auto journal = caf::actor_cast<caf::actor>(ctx_->journal);
  for (auto& a : actors_)
    if (a != journal)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  if (journal) {
    if (detached_journal_) {
      caf::scoped_actor self{sys_};
      self->monitor(journal);
      self->send_exit(journal, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {});
    } else {
      // On the deterministic test scheduler nothing runs while we block:
      // the caller runs the scheduler before destroying the node.
      caf::anon_send_exit(journal, caf::exit_reason::user_shutdown);
    }
  }
  *ctx_ = node_context{};
  actors_.clear();
  router_ = nullptr;
}

} // namespace fota
