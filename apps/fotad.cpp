/// fotad: a fota node with its embedded RocksDB, serving the protobuf API
/// over TCP until SIGINT or SIGTERM. `fotad --check` verifies a data
/// directory offline instead.
#include "actors/node.hpp"
#include "api/metrics.hpp"
#include "api/session.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <spdlog/spdlog.h>

namespace {

struct settings {
  std::string data_dir = "./fota-data";
  std::string listen = "7411";
  std::string config;
  std::string metrics;
  std::string operator_token = "operator-token";
  std::string gateway_token = "gateway-token";
  uint32_t max_pushes_per_minute = 0;
  uint32_t max_pushes_in_flight = 4096;
  uint32_t push_ack_timeout = 30;
  uint32_t max_frame_size = 4u << 20;
  bool no_sync = false;
  uint64_t min_free_space = fota::storage::default_min_free_space;
  bool check = false;
  size_t threads = 0;
  std::string scheduler = "sharing";
};

/// Sizes with units, all powers of 1024: "64MiB", "64MB", "64m", "1g".
CLI::AsSizeValue size_with_units() {
  return CLI::AsSizeValue{false};
}

/// Reads `node.min_free_space`: bytes, or a string with units.
bool load_min_free_space(settings& s, const toml::table& t) {
  auto node = t.at_path("node.min_free_space");
  if (!node)
    return true;
  if (auto v = node.value<int64_t>(); v && *v >= 0) {
    s.min_free_space = static_cast<uint64_t>(*v);
    return true;
  }
  if (auto v = node.value<std::string>()) {
    // CLI11's unit parser throws on a unit it does not know.
    try {
      auto text = *v;
      if (size_with_units()(text).empty()) {
        s.min_free_space = std::stoull(text);
        return true;
      }
    } catch (const std::exception&) {
      // Reported below.
    }
  }
  std::fprintf(stderr,
               "fotad: config %s: node.min_free_space must be a byte count "
               "or a size such as \"256MiB\"\n",
               s.config.c_str());
  return false;
}

/// Reads the TOML file; command-line flags given explicitly win.
bool load_config(settings& s, const CLI::App& app) {
  if (s.config.empty())
    return true;
  try {
    auto t = toml::parse_file(s.config);
    auto set = [&](const char* key, auto& field, const char* flag) {
      using T = std::decay_t<decltype(field)>;
      if (app.count(flag) > 0)
        return;
      if (auto v = t.at_path(key).value<T>())
        field = *v;
    };
    set("node.data_dir", s.data_dir, "--data-dir");
    set("node.listen", s.listen, "--listen");
    set("node.metrics", s.metrics, "--metrics");
    set("node.operator_token", s.operator_token, "--operator-token");
    set("node.gateway_token", s.gateway_token, "--gateway-token");
    set("dispatch.max_pushes_per_minute", s.max_pushes_per_minute,
        "--max-pushes-per-minute");
    set("dispatch.max_pushes_in_flight", s.max_pushes_in_flight,
        "--max-pushes-in-flight");
    set("dispatch.push_ack_timeout", s.push_ack_timeout, "--push-ack-timeout");
    set("node.max_frame_size", s.max_frame_size, "--max-frame-size");
    if (app.count("--min-free-space") == 0 && !load_min_free_space(s, t))
      return false;
    return true;
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "fotad: config %s: %s\n", s.config.c_str(),
                 std::string{e.description()}.c_str());
    return false;
  }
}

/// Test-only: when `FOTA_TEST_FREE_SPACE_FILE` names a file, the free space
/// of the data directory is read from it (a decimal byte count) instead of
/// statvfs, so that end-to-end tests can fill the disk where mounting a
/// small file system is not allowed. Never set it in production.
fota::storage::free_space_probe test_free_space_probe() {
  const auto* path = std::getenv("FOTA_TEST_FREE_SPACE_FILE");
  if (path == nullptr || *path == '\0')
    return {};
  return [file = std::string{path}]() -> fota::expected<uint64_t> {
    std::ifstream in{file};
    unsigned long long bytes = 0;
    if (!(in >> bytes))
      return fota::failure{fota::errc::unavailable,
                           "FOTA_TEST_FREE_SPACE_FILE '" + file +
                               "' holds no byte count"};
    return static_cast<uint64_t>(bytes);
  };
}

/// `fotad --check`: prints what `check_data_dir` found; 0 when healthy.
int check(const std::string& dir) {
  auto found = fota::check_data_dir(dir);
  std::printf("fotad --check %s\n", dir.c_str());
  if (found.opened) {
    const auto& log = found.log;
    auto last = log.last_sequence.value();
    std::printf("  log         %llu events replayed, last sequence %llu\n",
                static_cast<unsigned long long>(found.events),
                static_cast<unsigned long long>(last));
    if (log.high_water)
      std::printf("  high-water  %llu (newest event known acknowledged; a "
                  "lower bound)\n",
                  static_cast<unsigned long long>(log.high_water->value()));
    else
      std::printf("  high-water  none (never written with sync)\n");
    if (log.wal.file.empty())
      std::printf("  WAL         none\n");
    else if (log.wal.torn_bytes > 0)
      std::printf("  WAL         %s, %llu bytes; ends in %llu bytes of a "
                  "torn write, never acknowledged (dropped at recovery)\n",
                  log.wal.file.c_str(),
                  static_cast<unsigned long long>(log.wal.size),
                  static_cast<unsigned long long>(log.wal.torn_bytes));
    else
      std::printf("  WAL         %s, %llu bytes, %s\n", log.wal.file.c_str(),
                  static_cast<unsigned long long>(log.wal.size),
                  log.wal.understood ? "ends with a whole record"
                                     : "in a format this check does not read");
    std::printf("  state       %llu firmware, %llu devices, %llu tasks\n",
                static_cast<unsigned long long>(found.firmware),
                static_cast<unsigned long long>(found.devices),
                static_cast<unsigned long long>(found.tasks));
    if (found.snapshot)
      std::printf("  snapshot    after event %llu, %llu bytes\n",
                  static_cast<unsigned long long>(found.snapshot->value()),
                  static_cast<unsigned long long>(found.snapshot_bytes));
    else
      std::printf("  snapshot    none\n");
  }
  if (found.problems.empty()) {
    std::printf("  problems    none\nhealthy\n");
    return 0;
  }
  std::printf("  problems    %zu\n", found.problems.size());
  for (const auto& p : found.problems)
    std::printf("    - %s\n", p.c_str());
  std::printf("DAMAGED\n");
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  settings s;
  CLI::App app{"fotad: firmware over-the-air batch-upgrade node"};
  app.add_option("--data-dir", s.data_dir, "RocksDB data directory");
  app.add_option("--listen", s.listen,
                 "[ADDRESS:]PORT to listen on (port 0: any free port)");
  app.add_option("--config", s.config, "TOML configuration file");
  app.add_option("--metrics", s.metrics,
                 "serve Prometheus metrics at ADDRESS:PORT/metrics");
  app.add_option("--operator-token", s.operator_token,
                 "token that grants the operator role")
      ->envname("FOTA_TOKEN");
  app.add_option("--gateway-token", s.gateway_token,
                 "token that grants the gateway role")
      ->envname("FOTA_GATEWAY_TOKEN");
  app.add_option("--max-pushes-per-minute", s.max_pushes_per_minute,
                 "node-wide push rate (0: unlimited)");
  app.add_option("--max-pushes-in-flight", s.max_pushes_in_flight,
                 "pushes awaiting a device's answer, node-wide")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--push-ack-timeout", s.push_ack_timeout,
                 "seconds until an unacknowledged push is sent again")
      ->check(CLI::Range(1u, 3600u));
  app.add_option("--max-frame-size", s.max_frame_size,
                 "largest frame in either direction, in bytes")
      ->check(CLI::Range(4096u, 64u << 20));
  app.add_flag("--no-sync", s.no_sync,
               "do not fsync group commits (benchmarks only)");
  app.add_option("--min-free-space", s.min_free_space,
                 "refuse writes while the data directory has less free "
                 "space (bytes, or with a unit: 256MiB, 1GiB; 0: never)")
      ->transform(size_with_units());
  app.add_flag("--check", s.check,
               "verify the data directory offline, print what was found and "
               "exit (0: healthy, 1: damaged)");
  app.add_option("--threads", s.threads, "scheduler threads (0: one per core)");
  CLI11_PARSE(app, argc, argv);
  if (!load_config(s, app))
    return 2;
  if (s.check)
    return check(s.data_dir);
  uint16_t port = 0;
  std::string host;
  try {
    auto colon = s.listen.rfind(':');
    if (colon != std::string::npos)
      host = s.listen.substr(0, colon);
    auto p = std::stoul(
        colon == std::string::npos ? s.listen : s.listen.substr(colon + 1));
    if (p > 65535)
      throw std::out_of_range("port");
    port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    std::fprintf(stderr, "fotad: --listen: \"%s\" is not a port\n",
                 s.listen.c_str());
    return 2;
  }

  // Block the signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.policy", caf::atom("sharing"));
  if (s.threads > 0)
    cfg.set("scheduler.max-threads", s.threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  fota::add_message_types(cfg);
  caf::actor_system sys{cfg};

  fota::node_config ncfg;
  ncfg.data_dir = s.data_dir;
  ncfg.sync = !s.no_sync;
  ncfg.min_free_space = s.min_free_space;
  ncfg.free_space = test_free_space_probe();
  if (ncfg.free_space)
    spdlog::warn("free space is read from FOTA_TEST_FREE_SPACE_FILE (tests "
                 "only)");
  ncfg.limits.max_pushes_per_minute = s.max_pushes_per_minute;
  ncfg.limits.max_pushes_in_flight = s.max_pushes_in_flight;
  ncfg.limits.push_ack_timeout = std::chrono::seconds{s.push_ack_timeout};
  auto node = fota::node::start(sys, ncfg);
  if (!node) {
    spdlog::error("cannot start: {}: {}", fota::to_string(node.error().code),
                  node.error().message);
    return 1;
  }
  const auto& rec = (*node)->recovery();
  spdlog::info("recovered {} events ({} firmware, {} devices, {} tasks) in "
               "{} ms from {}",
               rec.events, rec.firmware, rec.devices, rec.tasks,
               rec.duration.count(), s.data_dir);
  if (rec.log.high_water)
    spdlog::info("the log ends at event {}; high-water mark {}",
                 rec.log.last_sequence.value(), rec.log.high_water->value());
  if (rec.log.wal.torn_bytes > 0)
    spdlog::warn("the WAL {} ended in {} bytes of a write torn by a crash, "
                 "beyond every acknowledged event; dropped",
                 rec.log.wal.file, rec.log.wal.torn_bytes);
  if (s.min_free_space > 0)
    spdlog::info("writes are refused while {} has less than {} free",
                 s.data_dir, fota::storage::format_bytes(s.min_free_space));
  fota::server_options sopts;
  sopts.port = port;
  sopts.host = host;
  sopts.operator_token = s.operator_token;
  sopts.gateway_token = s.gateway_token;
  sopts.max_frame_size = s.max_frame_size;
  auto listening = fota::start_server(sys, (*node)->context(), sopts);
  if (!listening) {
    spdlog::error("{}", listening.error().message);
    (*node)->stop();
    return 1;
  }
  spdlog::info("listening on port {}", listening->port);
  std::unique_ptr<fota::metrics_endpoint> metrics;
  if (!s.metrics.empty()) {
    auto ep =
        fota::metrics_endpoint::start(s.metrics, (*node)->context()->metrics);
    if (!ep) {
      spdlog::error("{}", ep.error().message);
      (*node)->stop();
      return 1;
    }
    metrics = std::move(*ep);
    spdlog::info("metrics at http://{}/metrics", s.metrics);
  }
  std::printf("fotad listening on port %u\n", listening->port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("stopping on signal {}", sig);
  fota::stop_server(sys, *listening);
  (*node)->stop();
  spdlog::info("stopped");
  return 0;
}
