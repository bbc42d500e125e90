/// fotad: a fota node with its embedded RocksDB, serving the protobuf API
/// over TCP until SIGINT or SIGTERM. `fotad --check` verifies a data
/// directory offline instead.
#include "actors/node.hpp"
#include "api/client.hpp"
#include "api/metrics.hpp"
#include "api/session.hpp"
#include "events/limits.hpp"
#include "events/manifest.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
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
#include <toml++/toml.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <spdlog/spdlog.h>

namespace {

constexpr const char* default_operator_token = "operator-token";
constexpr const char* default_gateway_token = "gateway-token";

/// A gateway as the config file names it.
struct gateway_settings {
  fota::gateway_credential credential;
  fota::gateway_policy policy;
};

struct settings {
  std::string data_dir = "./fota-data";
  std::string listen = "127.0.0.1:7411";
  std::string config;
  std::string metrics;
  std::string operator_token_file;
  std::string gateway_token_file;
  std::string operator_token;
  /// The shared token of development mode; empty: off.
  std::string gateway_token;
  std::vector<gateway_settings> gateways;
  std::map<std::string, fota::device_quota> products;
  fota::device_quota product_default;
  uint32_t max_connections = 10000;
  uint32_t hello_timeout = 10;
  uint32_t idle_timeout = 300;
  uint32_t frame_timeout = 30;
  uint32_t max_output_buffer = 4u << 20;
  uint32_t max_session_requests = 256;
  /// TLS: the server's certificate chain and key, and the CAs of client
  /// certificates; without a certificate the API is plain TCP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  uint32_t max_pushes_per_minute = 0;
  uint32_t max_pushes_in_flight = 4096;
  uint32_t push_ack_timeout = 30;
  uint32_t max_frame_size = 4u << 20;
  bool no_sync = false;
  uint64_t snapshot_every_events = 1'000'000;
  bool no_snapshots = false;
  uint64_t min_free_space = fota::storage::default_min_free_space;
  bool check = false;
  size_t threads = 0;
  std::string scheduler = "sharing";
  /// `--trusted-key PRODUCT=KEY`, repeatable.
  std::vector<std::string> trusted_keys;
  /// `--firmware-url-schemes`, comma-separated.
  std::string url_schemes = "https";
  /// Trusted keys by product, from the config file: key texts or paths.
  std::map<std::string, std::vector<std::string>> config_keys;
  /// Where relative key paths in the config file start.
  std::filesystem::path config_dir;
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

/// Reads the quota keys of a `[[gateways]]` entry or a `[products.X]`
/// table over `q`.
void load_quota(const toml::table& t, fota::device_quota& q) {
  if (auto v = t["max_devices"].value<uint64_t>())
    q.max_devices = *v;
  if (auto v = t["max_labels"].value<uint32_t>())
    q.max_labels = *v;
  if (auto v = t["max_label_bytes"].value<uint32_t>())
    q.max_label_bytes = *v;
}

/// Reads `[[gateways]]` (name, token / token_file / token_env,
/// certificate_sha256, products, quotas) and `[products.<key>]` quotas.
bool load_gateways(settings& s, const toml::table& t) {
  if (const auto* q = t["quota"].as_table())
    load_quota(*q, s.product_default);
  if (const auto* ps = t["products"].as_table())
    for (const auto& [key, value] : *ps)
      if (const auto* pt = value.as_table()) {
        auto q = s.product_default;
        load_quota(*pt, q);
        s.products[std::string{key.str()}] = q;
      }
  const auto* gs = t["gateways"].as_array();
  if (gs == nullptr)
    return true;
  for (const auto& node : *gs) {
    const auto* g = node.as_table();
    if (g == nullptr) {
      std::fprintf(stderr, "fotad: config: gateways: each entry must be a "
                           "table ([[gateways]])\n");
      return false;
    }
    gateway_settings x;
    x.policy.name = (*g)["name"].value_or(std::string{});
    if (x.policy.name.empty() || x.policy.name == fota::shared_gateway_name) {
      std::fprintf(stderr,
                   "fotad: config: gateways: every gateway needs a name other "
                   "than \"%s\"\n",
                   fota::shared_gateway_name);
      return false;
    }
    auto what = "gateway " + x.policy.name;
    x.credential.name = x.policy.name;
    x.credential.token = (*g)["token"].value_or(std::string{});
    if (auto f = (*g)["token_file"].value<std::string>()) {
      auto token = read_token(*f, what + " token_file");
      if (!token)
        return false;
      x.credential.token = *token;
    }
    if (auto e = (*g)["token_env"].value<std::string>()) {
      const char* v = std::getenv(e->c_str());
      if (v == nullptr || *v == '\0') {
        std::fprintf(stderr, "fotad: config: %s: token_env %s is not set\n",
                     what.c_str(), e->c_str());
        return false;
      }
      x.credential.token = v;
    }
    x.credential.certificate_sha256 =
        (*g)["certificate_sha256"].value_or(std::string{});
    if (x.credential.token.empty() && x.credential.certificate_sha256.empty()) {
      std::fprintf(stderr,
                   "fotad: config: %s: give token, token_file, token_env or "
                   "certificate_sha256\n",
                   what.c_str());
      return false;
    }
    if (const auto* ps = (*g)["products"].as_array())
      for (const auto& p : *ps)
        if (auto v = p.value<std::string>())
          x.policy.products.push_back(*v);
    load_quota(*g, x.policy.quota);
    for (const auto& other : s.gateways)
      if (other.policy.name == x.policy.name) {
        std::fprintf(stderr, "fotad: config: %s is configured twice\n",
                     what.c_str());
        return false;
      }
    s.gateways.push_back(std::move(x));
  }
  return true;
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

/// Fills the operator token and the shared gateway token from their files
/// or the environment, never from the command line. Without configured
/// gateways, the node runs in development mode with the shared token.
bool load_tokens(settings& s) {
  auto from = [](const std::string& file, const char* env,
                 const char* what) -> std::optional<std::string> {
    if (!file.empty())
      return read_token(file, what);
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0')
      return std::string{v};
    return std::string{};
  };
  auto op = from(s.operator_token_file, "FOTA_TOKEN", "--operator-token-file");
  if (!op)
    return false;
  s.operator_token = op->empty() ? default_operator_token : *op;
  auto gw =
      from(s.gateway_token_file, "FOTA_GATEWAY_TOKEN", "--gateway-token-file");
  if (!gw)
    return false;
  s.gateway_token = *gw;
  if (s.gateway_token.empty() && s.gateways.empty())
    s.gateway_token = default_gateway_token;
  return true;
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
/// wrong and returns nullopt when a key or scheme does not parse.
std::optional<fota::firmware_policy> firmware_policy_of(const settings& s) {
  fota::firmware_policy policy;
  policy.url_schemes.clear();
  std::stringstream schemes{s.url_schemes};
  for (std::string x; std::getline(schemes, x, ',');) {
    x.erase(std::remove_if(x.begin(), x.end(),
                           [](unsigned char c) { return std::isspace(c); }),
            x.end());
    std::transform(x.begin(), x.end(), x.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (!x.empty())
      policy.url_schemes.push_back(x);
  }
  if (policy.url_schemes.empty()) {
    std::fprintf(stderr, "fotad: --firmware-url-schemes: name at least one "
                         "scheme, e.g. https\n");
    return std::nullopt;
  }
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
    set("node.operator_token_file", s.operator_token_file,
        "--operator-token-file");
    set("node.gateway_token_file", s.gateway_token_file,
        "--gateway-token-file");
    set("node.max_connections", s.max_connections, "--max-connections");
    set("node.hello_timeout", s.hello_timeout, "--hello-timeout");
    set("node.idle_timeout", s.idle_timeout, "--idle-timeout");
    set("node.frame_timeout", s.frame_timeout, "--frame-timeout");
    set("node.max_output_buffer", s.max_output_buffer, "--max-output-buffer");
    set("node.max_session_requests", s.max_session_requests,
        "--max-session-requests");
    if (!load_gateways(s, t))
      return false;
    set("dispatch.max_pushes_per_minute", s.max_pushes_per_minute,
        "--max-pushes-per-minute");
    set("dispatch.max_pushes_in_flight", s.max_pushes_in_flight,
        "--max-pushes-in-flight");
    set("dispatch.push_ack_timeout", s.push_ack_timeout, "--push-ack-timeout");
    set("node.max_frame_size", s.max_frame_size, "--max-frame-size");
    set("node.snapshot_every_events", s.snapshot_every_events,
        "--snapshot-every-events");
    set("node.no_snapshots", s.no_snapshots, "--no-snapshots");
    set("tls.cert", s.tls_cert, "--tls-cert");
    set("tls.key", s.tls_key, "--tls-key");
    set("tls.client_ca", s.tls_client_ca, "--tls-client-ca");
    if (app.count("--firmware-url-schemes") == 0)
      if (const auto* xs = t.at_path("firmware.url_schemes").as_array()) {
        s.url_schemes.clear();
        for (const auto& x : *xs)
          if (auto v = x.value<std::string>())
            s.url_schemes += (s.url_schemes.empty() ? "" : ",") + *v;
      }
    s.config_dir = std::filesystem::absolute(s.config).parent_path();
    if (const auto* products = t["products"].as_table())
      for (const auto& [product, entry] : *products) {
        const auto* keys = entry.as_table() != nullptr
                               ? (*entry.as_table())["signing_keys"].as_array()
                               : nullptr;
        if (keys == nullptr)
          continue;
        auto& out = s.config_keys[std::string{product.str()}];
        for (const auto& k : *keys)
          if (auto v = k.value<std::string>())
            out.push_back(*v);
      }
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
  settings s;
  CLI::App app{"fotad: firmware over-the-air batch-upgrade node"};
  app.add_option("--data-dir", s.data_dir, "RocksDB data directory");
  app.add_option("--listen", s.listen,
                 "[ADDRESS:]PORT to listen on (port 0: any free port)");
  app.add_option("--config", s.config, "TOML configuration file");
  app.add_option("--metrics", s.metrics,
                 "serve Prometheus metrics at ADDRESS:PORT/metrics");
  app.add_option("--operator-token-file", s.operator_token_file,
                 "file holding the token that grants the operator role "
                 "(or $FOTA_TOKEN)");
  app.add_option("--gateway-token-file", s.gateway_token_file,
                 "file holding the shared gateway token of development mode, "
                 "acting as gateway \"shared\" (or $FOTA_GATEWAY_TOKEN)");
  app.add_option("--max-connections", s.max_connections,
                 "open connections at most")
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--hello-timeout", s.hello_timeout,
                 "seconds a new connection has to authenticate")
      ->check(CLI::Range(1u, 3600u));
  app.add_option("--idle-timeout", s.idle_timeout,
                 "seconds a session may receive nothing before it is closed")
      ->check(CLI::Range(1u, 86400u));
  app.add_option("--frame-timeout", s.frame_timeout,
                 "seconds a frame may take to arrive once begun")
      ->check(CLI::Range(1u, 3600u));
  app.add_option("--max-output-buffer", s.max_output_buffer,
                 "bytes a session holds for a peer that does not read, "
                 "before it stops reading and defers pushes")
      ->check(CLI::Range(64u << 10, 1u << 30));
  app.add_option("--max-session-requests", s.max_session_requests,
                 "requests of one session answered at once; more wait")
      ->check(CLI::Range(1u, 65536u));
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
      ->check(CLI::Range(static_cast<uint32_t>(fota::limits::min_frame_size),
                         64u << 20));
  app.add_option("--tls-cert", s.tls_cert,
                 "serve the API over TLS with this PEM certificate chain");
  app.add_option("--tls-key", s.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", s.tls_client_ca,
                 "PEM CAs that issue client certificates; clients are asked "
                 "for one and a certificate they send must verify");
  app.add_option("--trusted-key", s.trusted_keys,
                 "PRODUCT=KEY: an Ed25519 public key (PEM file, or base64 of "
                 "32 raw bytes) whose signature firmware of PRODUCT must "
                 "carry; repeatable, any one key verifies");
  app.add_option("--firmware-url-schemes", s.url_schemes,
                 "comma-separated URL schemes firmware may be downloaded "
                 "from")
      ->capture_default_str();
  app.add_flag("--no-sync", s.no_sync,
               "do not fsync group commits (benchmarks only)");
  app.add_option("--min-free-space", s.min_free_space,
                 "refuse writes while the data directory has less free "
                 "space (bytes, or with a unit: 256MiB, 1GiB; 0: never)")
      ->transform(size_with_units());
  app.add_option("--snapshot-every-events", s.snapshot_every_events,
                 "write a snapshot in the background after this many "
                 "appended events (0: none)");
  app.add_flag("--no-snapshots", s.no_snapshots,
               "start by replaying the whole log, ignoring snapshots");
  app.add_flag("--check", s.check,
               "verify the data directory offline, print what was found and "
               "exit (0: healthy, 1: damaged)");
  app.add_option("--threads", s.threads, "scheduler threads (0: one per core)");
  CLI11_PARSE(app, argc, argv);
  if (!load_config(s, app))
    return 2;
  if (s.check)
    return check(s.data_dir);
  if (!load_tokens(s))
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
  if (s.max_frame_size < fota::limits::min_frame_size ||
      s.max_frame_size > (64u << 20)) {
    std::fprintf(stderr,
                 "fotad: max_frame_size %u is outside %zu to 67108864 bytes\n",
                 s.max_frame_size, fota::limits::min_frame_size);
    return 2;
  }
  auto policy = firmware_policy_of(s);
  if (!policy)
    return 2;
  uint16_t port = 0;
  std::string host = "127.0.0.1";
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
  if (!s.metrics.empty() && s.metrics.find(':') == std::string::npos)
    s.metrics = "127.0.0.1:" + s.metrics;
  auto exposed = [&](const std::string& h) {
    return !h.empty() && !is_loopback(h.front() == '[' && h.back() == ']'
                                          ? h.substr(1, h.size() - 2)
                                          : h);
  };
  bool default_tokens = s.operator_token == default_operator_token ||
                        s.gateway_token == default_gateway_token;
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
  if (!s.gateway_token.empty()) {
    fota::gateway_policy shared;
    shared.name = fota::shared_gateway_name;
    shared.quota = s.product_default;
    shared.quota.max_devices = 0;
    ncfg.edge.gateways.emplace(shared.name, shared);
  }
  raise_fd_limit(s.max_connections);
  ncfg.firmware = *policy;
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
  sopts.logins = std::make_shared<fota::credentials>(s.operator_token, creds,
                                                     s.gateway_token);
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
  if (s.operator_token == default_operator_token)
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

  int sig = 0;
  sigwait(&signals, &sig);
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
