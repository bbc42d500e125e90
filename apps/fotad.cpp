/// fotad: a fota node with its embedded RocksDB, serving the protobuf API
/// over TCP until SIGINT or SIGTERM.
#include "actors/node.hpp"
#include "api/metrics.hpp"
#include "api/session.hpp"
#include "events/limits.hpp"
#include "events/manifest.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <toml++/toml.h>
#include <vector>

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
    return true;
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "fotad: config %s: %s\n", s.config.c_str(),
                 std::string{e.description()}.c_str());
    return false;
  }
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
      ->check(CLI::Range(static_cast<uint32_t>(fota::limits::min_frame_size),
                         64u << 20));
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
  app.add_option("--threads", s.threads, "scheduler threads (0: one per core)");
  CLI11_PARSE(app, argc, argv);
  if (!load_config(s, app))
    return 2;
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
  ncfg.limits.max_pushes_per_minute = s.max_pushes_per_minute;
  ncfg.limits.max_pushes_in_flight = s.max_pushes_in_flight;
  ncfg.limits.push_ack_timeout = std::chrono::seconds{s.push_ack_timeout};
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
