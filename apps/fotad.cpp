/// fotad: a fota node with its embedded RocksDB, serving the protobuf API
/// over TCP until SIGINT or SIGTERM, and telling systemd when it is ready
/// and when it stops. `fotad --check` verifies a data directory offline
/// instead, `fotad --check-config` its settings.
#include "actors/node.hpp"
#include "api/client.hpp"
#include "api/metrics.hpp"
#include "api/session.hpp"
#include "apps/fotad_settings.hpp"
#include "apps/logging.hpp"
#include "apps/version.hpp"
#include "events/manifest.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <spdlog/spdlog.h>

namespace {

constexpr const char* default_operator_token = "operator-token";
constexpr const char* default_gateway_token = "gateway-token";

/// The token files and the environment, read once the settings are
/// complete.
struct tokens {
  std::string operator_token;
  /// The shared token of development mode; empty: off.
  std::string gateway_token;
};

/// Reads a token file, saying on stderr why it cannot.
std::optional<std::string> read_token(const std::string& path,
                                      const std::string& what) {
  auto x = fota::read_token_file(path);
  if (!x) {
    std::fprintf(stderr, "fotad: %s: %s\n", what.c_str(),
                 x.error().message.c_str());
    return std::nullopt;
  }
  return *x;
}

/// Whether `host` is a loopback address (or "localhost").
bool is_loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

/// Raises the soft limit on open files to the hard one, so that the
/// connection limit can be reached; says so when it cannot.
void raise_fd_limit(uint32_t max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("cannot read the open-file limit: {}", std::strerror(errno));
    return;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    auto wanted = lim;
    wanted.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &wanted) == 0)
      lim = wanted;
    else
      spdlog::warn("cannot raise the open-file limit from {} to {}: {}",
                   lim.rlim_cur, lim.rlim_max, std::strerror(errno));
  }
  // RocksDB, the listener and the metrics endpoint need some too.
  constexpr rlim_t reserve = 256;
  if (lim.rlim_cur != RLIM_INFINITY &&
      lim.rlim_cur < static_cast<rlim_t>(max_connections) + reserve)
    spdlog::warn("the open-file limit is {}: fewer than --max-connections {} "
                 "connections can be served; raise it (ulimit -n, or "
                 "LimitNOFILE= in the unit file)",
                 lim.rlim_cur, max_connections);
  else
    spdlog::info("open-file limit {}", lim.rlim_cur);
}

/// Reads the operator token and the shared gateway token from their files
/// or the environment, never from the command line. Without configured
/// gateways, the node runs in development mode with the shared token.
std::optional<tokens> load_tokens(const fota::fotad_settings& s) {
  auto from = [](const std::string& file, const char* env,
                 const char* what) -> std::optional<std::string> {
    if (!file.empty())
      return read_token(file, what);
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0')
      return std::string{v};
    return std::string{};
  };
  tokens out;
  auto op = from(s.operator_token_file, "FOTA_TOKEN", "--operator-token-file");
  if (!op)
    return std::nullopt;
  out.operator_token = op->empty() ? default_operator_token : *op;
  auto gw =
      from(s.gateway_token_file, "FOTA_GATEWAY_TOKEN", "--gateway-token-file");
  if (!gw)
    return std::nullopt;
  out.gateway_token = *gw;
  if (out.gateway_token.empty() && s.gateways.empty())
    out.gateway_token = default_gateway_token;
  return out;
}

/// A trusted key given as PEM text, base64 of the 32 raw bytes, or the path
/// of a file holding either (relative paths start at `base`).
fota::expected<fota::public_key>
load_public_key(const std::string& text, const std::filesystem::path& base) {
  if (auto key = fota::parse_public_key(text))
    return key;
  auto path = std::filesystem::path{text};
  if (path.is_relative())
    path = base / path;
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return fota::make_failure(fota::errc::invalid_argument,
                              "neither a key nor a readable file: " +
                                  path.string());
  std::stringstream content;
  content << in.rdbuf();
  auto key = fota::parse_public_key(content.str());
  if (!key)
    return fota::make_failure(fota::errc::invalid_argument,
                              path.string() + ": " + key.error().message);
  return key;
}

/// The firmware policy of the flags and the config file; prints what is
/// wrong and returns nullopt when a key does not parse.
std::optional<fota::firmware_policy>
firmware_policy_of(const fota::fotad_settings& s) {
  fota::firmware_policy policy;
  policy.url_schemes = s.url_schemes;
  auto add = [&](const std::string& product, const std::string& text,
                 const std::filesystem::path& base, const std::string& origin) {
    auto key = load_public_key(text, base);
    if (!key) {
      std::fprintf(stderr, "fotad: %s: %s\n", origin.c_str(),
                   key.error().message.c_str());
      return false;
    }
    policy.signing_keys[product].push_back(*key);
    return true;
  };
  // Flags win: a product named by --trusted-key takes only the flags' keys.
  std::map<std::string, std::vector<std::string>> flagged;
  for (const auto& x : s.trusted_keys) {
    auto eq = x.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == x.size()) {
      std::fprintf(stderr,
                   "fotad: --trusted-key: expected PRODUCT=KEY_FILE, got "
                   "'%s'\n",
                   x.c_str());
      return std::nullopt;
    }
    flagged[x.substr(0, eq)].push_back(x.substr(eq + 1));
  }
  for (const auto& [product, keys] : s.config_keys)
    if (flagged.count(product) == 0)
      for (const auto& k : keys)
        if (!add(product, k, s.config_dir,
                 "config products." + product + ".signing_keys"))
          return std::nullopt;
  for (const auto& [product, keys] : flagged)
    for (const auto& k : keys)
      if (!add(product, k, std::filesystem::current_path(),
               "--trusted-key " + product + "=" + k))
        return std::nullopt;
  return policy;
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
      std::printf("  snapshot    after event %llu, %llu bytes%s\n",
                  static_cast<unsigned long long>(found.snapshot->value()),
                  static_cast<unsigned long long>(found.snapshot_bytes),
                  found.snapshot_verified
                      ? (", decodes; with the " +
                         std::to_string(found.snapshot_tail) +
                         " events after it gives the full replay's state "
                         "digest")
                            .c_str()
                      : "");
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
  fota::fotad_settings s;
  bool check_only = false;
  bool check_config = false;
  CLI::App app{"fotad: firmware over-the-air batch-upgrade node"};
  app.set_version_flag("--version", fota::version_line("fotad"));
  app.add_option("--config", s.config,
                 "TOML configuration file; flags given win over it");
  auto table = fota::settings_table(s);
  fota::add_flags(app, table);
  app.add_option("--trusted-key", s.trusted_keys,
                 "PRODUCT=KEY: an Ed25519 public key (PEM file, or base64 of "
                 "32 raw bytes) whose signature firmware of PRODUCT must "
                 "carry; repeatable, any one key verifies");
  app.add_flag("--check", check_only,
               "verify the data directory offline, print what was found and "
               "exit (0: healthy, 1: damaged)");
  app.add_flag("--check-config", check_config,
               "check the flags and the config file (keys, types, ranges), "
               "say whether they are valid and exit (0: valid, 2: not)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e); // --help, --version
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "fotad: %s\nRun with --help for more information.\n",
                 e.what());
    return 2;
  }
  auto problems = fota::load_config(s, table, app);
  for (const auto& p : problems)
    std::fprintf(stderr, "fotad: %s\n", p.c_str());
  if (!problems.empty())
    return 2;
  if (check_config) {
    std::printf("fotad: the configuration is valid%s\n",
                s.config.empty() ? "" : (" (" + s.config + ")").c_str());
    return 0;
  }
  fota::setup_logging(s.log_level, s.log_format);
  if (check_only)
    return check(s.data_dir);
  if (auto err = fota::resolve_gateway_tokens(s)) {
    std::fprintf(stderr, "fotad: %s\n", err->c_str());
    return 2;
  }
  auto toks = load_tokens(s);
  if (!toks)
    return 2;
  std::shared_ptr<fota::tls_context> tls;
  if (!s.tls_cert.empty() || !s.tls_key.empty() || !s.tls_client_ca.empty()) {
    fota::tls_server_options topts;
    topts.cert_file = s.tls_cert;
    topts.key_file = s.tls_key;
    topts.client_ca_file = s.tls_client_ca;
    auto ctx = fota::tls_context::server(topts);
    if (!ctx) {
      std::fprintf(stderr, "fotad: TLS: %s\n", ctx.error().message.c_str());
      return 2;
    }
    tls = std::move(*ctx);
  }
  auto policy = firmware_policy_of(s);
  if (!policy)
    return 2;
  // Checked by the settings already.
  auto [host, port] = *fota::parse_listen(s.listen, "127.0.0.1");
  if (!s.metrics.empty() && s.metrics.find(':') == std::string::npos)
    s.metrics = "127.0.0.1:" + s.metrics;
  auto exposed = [&](const std::string& h) {
    return !h.empty() && !is_loopback(h.front() == '[' && h.back() == ']'
                                          ? h.substr(1, h.size() - 2)
                                          : h);
  };
  bool default_tokens = toks->operator_token == default_operator_token ||
                        toks->gateway_token == default_gateway_token;
  if (default_tokens &&
      (exposed(host) || (!s.metrics.empty() &&
                         exposed(s.metrics.substr(0, s.metrics.rfind(':')))))) {
    std::fprintf(stderr,
                 "fotad: refusing to listen on %s with a default token: give "
                 "the operator token (--operator-token-file or $FOTA_TOKEN) "
                 "and configure [[gateways]] (or a shared gateway token of "
                 "your own)\n",
                 s.listen.c_str());
    return 2;
  }
  spdlog::info("{} starting", fota::version_line("fotad"));

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
    cfg.set("scheduler.max-threads", static_cast<size_t>(s.threads));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  fota::add_message_types(cfg);
  caf::actor_system sys{cfg};

  fota::node_config ncfg;
  ncfg.data_dir = s.data_dir;
  ncfg.sync = !s.no_sync;
  ncfg.min_free_space = s.min_free_space;
  ncfg.use_snapshots = !s.no_snapshots;
  ncfg.snapshot_every_events = s.snapshot_every_events;
  ncfg.free_space = test_free_space_probe();
  if (ncfg.free_space)
    spdlog::warn("free space is read from FOTA_TEST_FREE_SPACE_FILE (tests "
                 "only)");
  ncfg.limits.max_pushes_per_minute = s.max_pushes_per_minute;
  ncfg.limits.max_pushes_in_flight = s.max_pushes_in_flight;
  ncfg.limits.push_ack_timeout = std::chrono::seconds{s.push_ack_timeout};
  ncfg.edge.product_default = s.product_default;
  ncfg.edge.products = s.products;
  std::vector<fota::gateway_credential> creds;
  for (const auto& g : s.gateways) {
    ncfg.edge.gateways.emplace(g.policy.name, g.policy);
    creds.push_back(g.credential);
  }
  if (!toks->gateway_token.empty()) {
    fota::gateway_policy shared;
    shared.name = fota::shared_gateway_name;
    shared.quota = s.product_default;
    shared.quota.max_devices = 0;
    ncfg.edge.gateways.emplace(shared.name, shared);
  }
  raise_fd_limit(s.max_connections);
  ncfg.firmware = *policy;
  sd_notifyf(0, "STATUS=replaying the log in %s", s.data_dir.c_str());
  auto node = fota::node::start(sys, ncfg);
  if (!node) {
    spdlog::error("cannot start: {}: {}", fota::to_string(node.error().code),
                  node.error().message);
    return 1;
  }
  for (const auto& [product, keys] : ncfg.firmware.signing_keys)
    spdlog::info("product {}: firmware must be signed with one of {} trusted "
                 "key(s)",
                 product, keys.size());
  const auto& rec = (*node)->recovery();
  spdlog::info("recovered {} events ({} firmware, {} devices, {} tasks) in "
               "{} ms from {}",
               rec.events, rec.firmware, rec.devices, rec.tasks,
               rec.duration.count(), s.data_dir);
  if (rec.snapshot)
    spdlog::info("started from the snapshot after event {} ({} bytes) and "
                 "replayed the {} events after it",
                 rec.snapshot->value(), rec.snapshot_bytes, rec.events);
  if (!rec.snapshot_ignored.empty())
    spdlog::warn("snapshot ignored, replayed the whole log: {}",
                 rec.snapshot_ignored);
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
  sopts.logins = std::make_shared<fota::credentials>(
      toks->operator_token, creds, toks->gateway_token);
  sopts.max_frame_size = s.max_frame_size;
  sopts.max_connections = s.max_connections;
  sopts.hello_timeout = std::chrono::seconds{s.hello_timeout};
  sopts.idle_timeout = std::chrono::seconds{s.idle_timeout};
  sopts.frame_timeout = std::chrono::seconds{s.frame_timeout};
  sopts.max_output_buffer = s.max_output_buffer;
  sopts.max_requests_in_flight = s.max_session_requests;
  sopts.tls = tls;
  auto listening = fota::start_server(sys, (*node)->context(), sopts);
  if (!listening) {
    spdlog::error("{}", listening.error().message);
    (*node)->stop();
    return 1;
  }
  spdlog::info("listening on {}:{}{}", host, listening->port,
               tls ? " (TLS)" : "");
  if (s.gateways.empty())
    spdlog::warn("development mode: every gateway shares one token and acts "
                 "as gateway \"{}\"; configure [[gateways]] for production",
                 fota::shared_gateway_name);
  if (toks->operator_token == default_operator_token)
    spdlog::warn("the operator token is the default; set "
                 "--operator-token-file or $FOTA_TOKEN");
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
  // systemd (Type=notify) hears that the node serves; without
  // $NOTIFY_SOCKET this does nothing.
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s:%u, %llu devices, %llu tasks",
             host.c_str(), listening->port,
             static_cast<unsigned long long>(rec.devices),
             static_cast<unsigned long long>(rec.tasks));

  int sig = 0;
  sigwait(&signals, &sig);
  sd_notify(0, "STOPPING=1\nSTATUS=stopping");
  spdlog::info("stopping on signal {}", sig);
  fota::stop_server(sys, *listening);
  (*node)->stop();
  metrics.reset();
  // Closes the log: everything acknowledged is durable and the high-water
  // mark is final.
  node->reset();
  spdlog::info("stopped");
  spdlog::shutdown();
  std::fflush(nullptr);
  // Nothing is left to save. Tearing down the actors one by one takes
  // about 30 s with a million devices; exiting now does not.
  std::_Exit(0);
}
