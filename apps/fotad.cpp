/// fotad: a fota node with its embedded RocksDB, serving the protobuf API
/// over TCP until SIGINT or SIGTERM.
#include "actors/node.hpp"
#include "api/metrics.hpp"
#include "api/session.hpp"

#include <csignal>
#include <cstdio>
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
  size_t threads = 0;
  std::string scheduler = "sharing";
};

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
    set("tls.cert", s.tls_cert, "--tls-cert");
    set("tls.key", s.tls_key, "--tls-key");
    set("tls.client_ca", s.tls_client_ca, "--tls-client-ca");
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
      ->check(CLI::Range(4096u, 64u << 20));
  app.add_option("--tls-cert", s.tls_cert,
                 "serve the API over TLS with this PEM certificate chain");
  app.add_option("--tls-key", s.tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", s.tls_client_ca,
                 "PEM CAs that issue client certificates; clients are asked "
                 "for one and a certificate they send must verify");
  app.add_flag("--no-sync", s.no_sync,
               "do not fsync group commits (benchmarks only)");
  app.add_option("--threads", s.threads, "scheduler threads (0: one per core)");
  CLI11_PARSE(app, argc, argv);
  if (!load_config(s, app))
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
  fota::server_options sopts;
  sopts.port = port;
  sopts.host = host;
  sopts.operator_token = s.operator_token;
  sopts.gateway_token = s.gateway_token;
  sopts.max_frame_size = s.max_frame_size;
  sopts.tls = tls;
  auto listening = fota::start_server(sys, (*node)->context(), sopts);
  if (!listening) {
    spdlog::error("{}", listening.error().message);
    (*node)->stop();
    return 1;
  }
  spdlog::info("listening on port {}{}", listening->port, tls ? " (TLS)" : "");
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
