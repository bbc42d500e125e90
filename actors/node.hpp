/// A fota node: opens the data directory, rebuilds every aggregate by
/// replaying the event log through the domain's `apply()`, spawns the
/// actors, and serves requests in-process. Embedders create one per
/// `caf::actor_system`; the network edge (api/) talks to the same router.
#pragma once

#include "actors/context.hpp"
#include "events/error.hpp"
#include "events/firmware.hpp"
#include "storage/event_log.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

namespace fota {

class snapshotter;

/// Everything a node is started with.
struct node_config {
  std::string data_dir = "./fota-data";
  /// fsync every group commit. Off only for benchmarks.
  bool sync = true;
  /// Writes are refused while the data directory has fewer free bytes than
  /// this; 0 turns the guard off. See `storage::default_min_free_space`.
  uint64_t min_free_space = storage::default_min_free_space;
  /// Tells the free bytes of the data directory; statvfs when empty.
  storage::free_space_probe free_space;
  /// How long one free-space probe answers; 0 probes on every check.
  std::chrono::milliseconds free_space_interval =
      storage::default_probe_interval;
  node_limits limits;
  /// The gateways the node knows, and the quotas of gateways and products.
  edge_policy edge;
  /// What new firmware must satisfy: URL schemes (https by default) and the
  /// trusted signing keys of each product.
  firmware_policy firmware;
  /// Wall clock; the system clock when null.
  std::shared_ptr<fota::clock> clock;
  /// Gives the journal its own thread (blocking fsync), and the history
  /// reader its own (long log reads). Off for the deterministic test
  /// scheduler.
  bool detach_journal = true;
  /// Starts from the latest snapshot plus the events after it. Off: replays
  /// the whole log from its first event.
  bool use_snapshots = true;
  /// Writes a snapshot in the background after this many appended events;
  /// 0 writes none.
  uint64_t snapshot_every_events = 1'000'000;
};

/// What recovery found.
struct recovery_stats {
  /// Events replayed: after the snapshot when one was used, else all.
  uint64_t events = 0;
  /// The snapshot recovery started from, if one was used.
  std::optional<sequence_number> snapshot;
  uint64_t snapshot_bytes = 0;
  /// Why a stored snapshot was not used (full replay instead); empty when
  /// there was none or it was used.
  std::string snapshot_ignored;
  uint64_t devices = 0;
  uint64_t tasks = 0;
  uint64_t firmware = 0;
  std::chrono::milliseconds duration{0};
  /// The log's last event, its high-water mark and a torn WAL tail dropped
  /// at open.
  storage::open_report log;
};

/// What `fotad --check` found in a data directory.
struct data_dir_check {
  /// Whether the log opened; when not, `problems` says why.
  bool opened = false;
  storage::open_report log;
  /// Events that replayed, from the first.
  uint64_t events = 0;
  uint64_t devices = 0;
  uint64_t tasks = 0;
  uint64_t firmware = 0;
  /// The newest snapshot's position and size, if there is one.
  std::optional<sequence_number> snapshot;
  uint64_t snapshot_bytes = 0;
  /// Whether the snapshot decoded and, with the events after it, gave the
  /// state digest of the full replay.
  bool snapshot_verified = false;
  /// Events after the snapshot.
  uint64_t snapshot_tail = 0;
  /// What is wrong, one sentence each; empty for a healthy directory.
  std::vector<std::string> problems;

  bool healthy() const noexcept { return opened && problems.empty(); }
};

/// Checks the data directory `dir` offline, the way a start would and
/// without serving: opens the log read-only (RocksDB's WAL recovery and
/// manifest checks), replays every event through `apply()` (sequence
/// continuity, envelopes that decode, the domain's rules), compares the last
/// event with the high-water mark, and checks the newest snapshot: it must
/// decode, and with the events after it give the state digest of the full
/// replay. Writes nothing.
data_dir_check check_data_dir(const std::string& dir);

class node {
public:
  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Opens the data directory, replays the log and spawns the actors. A log
  /// that does not replay (an event that violates the rules, an unknown
  /// event type) stops the start with an error naming the event's sequence.
  static expected<std::unique_ptr<node>> start(caf::actor_system& sys,
                                               node_config cfg);

  /// The in-process API: `(request_atom, role, ClientFrame bytes)` replies
  /// with `Response` bytes.
  const router_actor& router() const noexcept { return router_; }

  /// Handles of the node's actors.
  const context_ptr& context() const noexcept { return ctx_; }

  const recovery_stats& recovery() const noexcept { return recovery_; }

  /// The background snapshot writer; stopped with the node.
  snapshotter* snapshots() const noexcept { return snapshots_.get(); }

  /// Sends a request and waits for its response (blocking; not for use on
  /// the deterministic test scheduler). `gateway`, when given, is the
  /// in-process gateway the request comes from (see `router_actor`).
  v1::Response call(const v1::ClientFrame& frame,
                    v1::Role role = v1::ROLE_OPERATOR,
                    const caf::actor& gateway = caf::actor{});

  /// Stops the actors; the journal writes what it holds first. Blocks until
  /// the journal is gone, unless the journal is not detached (the
  /// deterministic test scheduler): then the caller runs the scheduler
  /// before destroying the node.
  void stop();

private:
  node(caf::actor_system& sys, std::unique_ptr<storage::event_log> log);

  caf::actor_system& sys_;
  std::unique_ptr<storage::event_log> log_;
  /// Declared after the log: joined and destroyed before it.
  std::unique_ptr<snapshotter> snapshots_;
  context_ptr ctx_;
  router_actor router_;
  /// The history reader, stopped (and, detached, awaited) before the log
  /// closes; `history_cancel_` ends a read under way.
  caf::actor history_;
  std::shared_ptr<std::atomic<bool>> history_cancel_;
  std::vector<caf::actor> actors_;
  recovery_stats recovery_;
  bool stopped_ = false;
  bool detached_journal_ = true;
};

/// Registers fota's message types with a CAF configuration.
void add_message_types(caf::actor_system_config& cfg);

} // namespace fota
