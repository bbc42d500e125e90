/// The TLS options of the command-line clients (fotactl, fota-sim), so both
/// spell and document them the same way.
#pragma once

#include "api/tls.hpp"

#include <CLI/CLI.hpp>

namespace fota {

/// How a command-line client connects: plain TCP unless `--tls` or any other
/// TLS option is given.
struct tls_cli_options {
  bool enabled = false;
  tls_client_options tls;

  /// The options for `client::connect()`, or null for plain TCP.
  const tls_client_options* get() const {
    auto any = enabled || !tls.ca_file.empty() || !tls.cert_file.empty() ||
               !tls.server_name.empty();
    return any ? &tls : nullptr;
  }
};

/// Adds --tls, --ca, --cert, --key and --server-name to `app`.
inline void add_tls_options(CLI::App& app, tls_cli_options& o) {
  app.add_flag("--tls", o.enabled, "connect over TLS");
  app.add_option("--ca", o.tls.ca_file,
                 "PEM CAs that verify the node's certificate (default: the "
                 "system's); implies --tls");
  auto* cert = app.add_option("--cert", o.tls.cert_file,
                              "PEM client certificate chain; implies --tls");
  auto* key =
      app.add_option("--key", o.tls.key_file, "PEM private key of --cert");
  cert->needs(key);
  key->needs(cert);
  app.add_option("--server-name", o.tls.server_name,
                 "name the node's certificate must carry (default: --host); "
                 "implies --tls");
}

} // namespace fota
