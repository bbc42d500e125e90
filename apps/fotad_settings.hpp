/// fotad's settings: one table that names each setting once, with its
/// flag, its key in the TOML file, its type and its range, so that a flag
/// and a config value go through the same parsing and the same checks and
/// are refused in the same words. The config file is read strictly: an
/// unknown key, a value of the wrong type or out of range stops fotad at
/// start with the key named.
#pragma once

#include "api/auth.hpp"
#include "apps/settings.hpp"
#include "events/gateway.hpp"
#include "storage/space_guard.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace fota {

/// A gateway as the config file names it. Its token is read from
/// `token_file` or `token_env` by `resolve_gateway_tokens`, at start.
struct gateway_settings {
  gateway_credential credential;
  gateway_policy policy;
  std::string token_file;
  std::string token_env;
};

/// Everything fotad is started with, from its flags and its config file.
struct fotad_settings {
  // -- the node ---------------------------------------------------------------

  std::string data_dir = "./fota-data";
  std::string listen = "127.0.0.1:7411";
  std::string metrics;
  std::string operator_token_file;
  std::string gateway_token_file;
  uint32_t max_frame_size = 4u << 20;
  uint32_t max_connections = 10000;
  uint32_t hello_timeout = 10;
  uint32_t idle_timeout = 300;
  uint32_t frame_timeout = 30;
  uint32_t max_output_buffer = 4u << 20;
  uint32_t max_session_requests = 256;
  uint64_t snapshot_every_events = 1'000'000;
  bool no_snapshots = false;
  uint64_t min_free_space = storage::default_min_free_space;
  bool no_sync = false;
  uint32_t threads = 0;

  // -- dispatch ---------------------------------------------------------------

  uint32_t max_pushes_per_minute = 0;
  uint32_t max_pushes_in_flight = 4096;
  uint32_t push_ack_timeout = 30;

  // -- TLS --------------------------------------------------------------------

  /// The server's certificate chain and key, and the CAs of client
  /// certificates; without a certificate the API is plain TCP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;

  // -- firmware ---------------------------------------------------------------

  /// URL schemes firmware may be downloaded from, lower case.
  std::vector<std::string> url_schemes{"https"};
  /// `--trusted-key PRODUCT=KEY`, repeatable.
  std::vector<std::string> trusted_keys;
  /// Trusted keys by product from the config file: key texts or paths.
  std::map<std::string, std::vector<std::string>> config_keys;

  // -- the log ----------------------------------------------------------------

  std::string log_level = "info";
  std::string log_format = "text";

  // -- gateways and quotas ----------------------------------------------------

  std::vector<gateway_settings> gateways;
  std::map<std::string, device_quota> products;
  device_quota product_default;

  // -- where it came from -----------------------------------------------------

  /// The config file, if any; relative key paths in it start at its folder.
  std::string config;
  std::filesystem::path config_dir;
};

/// The settings of fotad, each filling its field of `s`.
std::vector<setting> settings_table(fotad_settings& s);

/// Reads the config file `s.config` into `s`: for a setting whose flag
/// `app` saw, the value is checked but the flag's stays. Returns every
/// problem found, one line each, naming the file and the key, e.g.
/// `config fotad.toml: [node] max_frame_size: must be 8192..67108864, got 10
/// (line 3)`; empty when the file is good (or there is none).
std::vector<std::string> load_config(fotad_settings& s,
                                     const std::vector<setting>& table,
                                     const CLI::App& app);

/// The same, from the parsed document `doc` of the file named `file`; a
/// flag counts as given when `given(flag)`.
std::vector<std::string>
load_config(fotad_settings& s, const std::vector<setting>& table,
            const toml::table& doc, const std::string& file,
            const std::function<bool(const std::string&)>& given);

/// Reads each configured gateway's token from its `token_file` or
/// `token_env`; says on the way what is missing.
std::optional<std::string> resolve_gateway_tokens(fotad_settings& s);

} // namespace fota
