#include "actors/node.hpp"

#include "actors/device.hpp"
#include "actors/dispatcher.hpp"
#include "actors/firmware.hpp"
#include "actors/fleet.hpp"
#include "actors/journal.hpp"
#include "actors/router.hpp"
#include "actors/task.hpp"
#include "actors/task_registry.hpp"
#include "events/replay.hpp"
#include "events/status.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

namespace fota {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<event_batch>("fota::event_batch");
  cfg.add_message_type<sequence_number>("fota::sequence_number");
  cfg.add_message_type<command>("fota::command");
  cfg.add_message_type<device_handle>("fota::device_handle");
  cfg.add_message_type<device_handles>("fota::device_handles");
  cfg.add_message_type<push_order>("fota::push_order");
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

expected<std::unique_ptr<node>> node::start(caf::actor_system& sys,
                                            node_config cfg) {
  auto started = std::chrono::steady_clock::now();
  storage::options opts;
  opts.path = cfg.data_dir;
  opts.sync = cfg.sync;
  auto log = storage::event_log::open(opts);
  if (!log)
    return std::move(log).error();
  std::unique_ptr<node> n{new node(sys, std::move(*log))};
  // Replay.
  world w;
  uint64_t replayed = 0;
  std::optional<failure> decode_error;
  auto st = n->log_->read(sequence_number{1}, [&](sequence_number seq,
                                                  std::string_view bytes) {
    event e;
    if (!e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      decode_error =
          make_failure(errc::corrupted, "event " + std::to_string(seq.value()) +
                                            " does not decode");
      return false;
    }
    apply(w, e);
    ++replayed;
    return true;
  });
  if (st)
    return std::move(*st);
  if (decode_error)
    return std::move(*decode_error);
  finish_replay(w);
  // Wiring.
  auto& ctx = *n->ctx_;
  ctx.clock = cfg.clock ? cfg.clock : std::make_shared<system_clock>();
  ctx.limits = cfg.limits;
  auto* log_ptr = n->log_.get();
  n->detached_journal_ = cfg.detach_journal;
  if (cfg.detach_journal)
    ctx.journal = caf::actor_cast<journal_actor>(
        sys.spawn<caf::detached>(journal, log_ptr));
  else
    ctx.journal = caf::actor_cast<journal_actor>(sys.spawn(journal, log_ptr));
  ctx.firmware = sys.spawn(firmware_actor, n->ctx_, w.firmware);
  ctx.dispatcher = sys.spawn(dispatcher_actor, n->ctx_);
  std::vector<caf::actor> device_actors;
  device_actors.reserve(w.devices.size());
  for (const auto& d : w.devices)
    device_actors.push_back(sys.spawn(device_actor, n->ctx_, d));
  std::map<uint64_t, caf::actor> tasks;
  for (auto& [id, t] : w.tasks) {
    auto start = std::make_shared<task_start>();
    start->devices.reserve(t.executions.size());
    for (const auto& x : t.executions) {
      auto i =
          w.device_index.find(device_ref(t.spec.product_key(), x.device_key));
      start->devices.push_back(
          i == w.device_index.end() ? caf::actor{} : device_actors[i->second]);
    }
    std::vector<std::pair<caf::actor, uint64_t>> held;
    for (uint64_t s = 1; s <= t.executions.size(); ++s)
      if (t.holds_device(t.executions[s - 1]) && start->devices[s - 1])
        held.emplace_back(start->devices[s - 1], (id << 32) | s);
    start->recovered = std::move(t);
    auto task = sys.spawn(task_actor, n->ctx_, start);
    // Bind each held device to its task now, before any session can send a
    // report for it.
    for (auto& [device, execution] : held)
      caf::anon_send(device, claim_atom_v, execution, task);
    tasks.emplace(id, std::move(task));
  }
  std::vector<std::pair<device_state, caf::actor>> fleet_devices;
  fleet_devices.reserve(w.devices.size());
  for (size_t i = 0; i < w.devices.size(); ++i)
    fleet_devices.emplace_back(std::move(w.devices[i]), device_actors[i]);
  ctx.fleet = sys.spawn(fleet_actor, n->ctx_, std::move(fleet_devices),
                        std::move(w.trees));
  ctx.tasks = sys.spawn(task_registry, n->ctx_, std::move(tasks));
  n->router_ = sys.spawn(router_actor, n->ctx_);
  anon_send(ctx.firmware, tick_atom_v); // Wiring done: check verifications.
  n->actors_ = {caf::actor_cast<caf::actor>(ctx.journal),
                ctx.firmware,
                ctx.dispatcher,
                ctx.fleet,
                ctx.tasks,
                n->router_};
  n->recovery_.events = replayed;
  n->recovery_.devices = device_actors.size();
  n->recovery_.tasks = w.tasks.size();
  n->recovery_.firmware = w.firmware.entries.size();
  n->recovery_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  return n;
}

v1::Response node::call(const v1::ClientFrame& frame, v1::Role role) {
  caf::scoped_actor self{sys_};
  v1::Response out;
  self->request(router_, caf::infinite, request_atom_v,
                static_cast<int32_t>(role), frame.SerializeAsString())
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
