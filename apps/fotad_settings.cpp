#include "apps/fotad_settings.hpp"

#include "api/client.hpp"
#include "events/limits.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include <CLI/CLI.hpp>

namespace fota {

namespace {

/// A URL scheme as RFC 3986 spells it: a letter, then letters, digits,
/// "+", "-" or ".".
bool is_scheme(const std::string& x) {
  if (x.empty() || !std::isalpha(static_cast<unsigned char>(x[0])))
    return false;
  return std::all_of(x.begin(), x.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '+' || c == '-' || c == '.';
  });
}

/// Checks and normalises a list of URL schemes: trimmed, lower case, at
/// least one.
refusal check_schemes(std::vector<std::string>& xs) {
  std::vector<std::string> out;
  for (auto x : xs) {
    auto space = [](unsigned char c) { return std::isspace(c) != 0; };
    x.erase(std::find_if_not(x.rbegin(), x.rend(), space).base(), x.end());
    x.erase(x.begin(), std::find_if_not(x.begin(), x.end(), space));
    std::transform(x.begin(), x.end(), x.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (x.empty())
      continue;
    if (!is_scheme(x))
      return in_quotes(x) + " is not a URL scheme";
    out.push_back(x);
  }
  if (out.empty())
    return std::string{"must name at least one URL scheme, e.g. https"};
  xs = std::move(out);
  return std::nullopt;
}

/// URL schemes: comma-separated on the command line, an array of strings
/// in the file.
setting schemes(std::string flag, std::string section, std::string key,
                std::vector<std::string>& field, std::string help) {
  auto s = named(std::move(flag), std::move(section), std::move(key),
                 std::move(help));
  s.type_name = "LIST";
  for (const auto& x : field)
    s.default_text += (s.default_text.empty() ? "" : ",") + x;
  s.from_text = [&field](const std::string& text) -> refusal {
    std::vector<std::string> xs;
    std::stringstream in{text};
    for (std::string x; std::getline(in, x, ',');)
      xs.push_back(x);
    if (auto err = check_schemes(xs))
      return err;
    field = std::move(xs);
    return std::nullopt;
  };
  s.from_toml = [&field](const toml::node& n, bool set) -> refusal {
    const auto* arr = n.as_array();
    if (arr == nullptr)
      return "must be an array of strings such as [\"https\"], got " + shown(n);
    std::vector<std::string> xs;
    for (const auto& x : *arr) {
      auto v = x.value_exact<std::string>();
      if (!v)
        return "must hold strings only, got " + shown(x);
      xs.push_back(*v);
    }
    if (auto err = check_schemes(xs))
      return err;
    if (set)
      field = std::move(xs);
    return std::nullopt;
  };
  return s;
}

/// The quota keys of a `[quota]`, `[products.X]` or `[[gateways]]` table.
void read_quota(config_reader& r, const toml::table& t,
                const std::string& where, device_quota& q) {
  r.number(t, "max_devices", where, q.max_devices,
           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  r.number(t, "max_labels", where, q.max_labels);
  r.number(t, "max_label_bytes", where, q.max_label_bytes);
}

const std::vector<std::string> quota_keys{"max_devices", "max_labels",
                                          "max_label_bytes"};

void load_gateways(fotad_settings& s, config_reader& r, const toml::node& n) {
  const auto* arr = n.as_array();
  if (arr == nullptr || (!arr->empty() && !arr->is_array_of_tables())) {
    r.say("gateways must be an array of tables ([[gateways]]), got " + shown(n),
          &n);
    return;
  }
  std::vector<std::string> known{
      "name",    "token", "token_file", "token_env", "certificate_sha256",
      "products"};
  known.insert(known.end(), quota_keys.begin(), quota_keys.end());
  std::set<std::string> names;
  for (size_t i = 0; i < arr->size(); ++i) {
    const auto& g = *arr->get(i)->as_table();
    auto where = "[[gateways]] #" + std::to_string(i + 1);
    r.only(g, where, known);
    gateway_settings x;
    r.string(g, "name", where, x.policy.name);
    if (x.policy.name.empty() || x.policy.name == shared_gateway_name) {
      r.say(where + ": every gateway needs a name other than " +
                in_quotes(shared_gateway_name),
            &g);
      continue;
    }
    where += " (" + x.policy.name + ")";
    if (!names.insert(x.policy.name).second) {
      r.say(where + ": gateway " + x.policy.name + " is configured twice", &g);
      continue;
    }
    x.credential.name = x.policy.name;
    r.string(g, "token", where, x.credential.token);
    r.string(g, "token_file", where, x.token_file);
    r.string(g, "token_env", where, x.token_env);
    r.string(g, "certificate_sha256", where, x.credential.certificate_sha256);
    if (x.credential.token.empty() && x.token_file.empty() &&
        x.token_env.empty() && x.credential.certificate_sha256.empty())
      r.say(where + ": give token, token_file, token_env or "
                    "certificate_sha256",
            &g);
    r.strings(g, "products", where, x.policy.products);
    read_quota(r, g, where, x.policy.quota);
    s.gateways.push_back(std::move(x));
  }
}

void load_products(fotad_settings& s, config_reader& r, const toml::node& n) {
  const auto* ps = r.table(n, "[products]");
  if (ps == nullptr)
    return;
  auto known = quota_keys;
  known.push_back("signing_keys");
  for (const auto& [key, value] : *ps) {
    std::string product{key.str()};
    auto where = "[products." + product + "]";
    const auto* t = r.table(value, where);
    if (t == nullptr)
      continue;
    r.only(*t, where, known);
    auto q = s.product_default;
    read_quota(r, *t, where, q);
    s.products[product] = q;
    std::vector<std::string> keys;
    r.strings(*t, "signing_keys", where, keys);
    if (!keys.empty())
      s.config_keys[product] = std::move(keys);
  }
}

} // namespace
// -- the table ----------------------------------------------------------------

std::vector<setting> settings_table(fotad_settings& s) {
  return {
      text("--data-dir", "node", "data_dir", s.data_dir,
           "RocksDB data directory (created when missing)", check_not_empty),
      text("--listen", "node", "listen", s.listen,
           "[ADDRESS:]PORT of the API; loopback unless an address is given "
           "(port 0: any free port, printed on stdout)",
           check_address),
      text("--metrics", "node", "metrics", s.metrics,
           "[ADDRESS:]PORT to serve Prometheus metrics at /metrics; loopback "
           "unless an address is given (empty: off)",
           [](const std::string& x) -> refusal {
             return x.empty() ? std::nullopt : check_address(x);
           }),
      text("--operator-token-file", "node", "operator_token_file",
           s.operator_token_file,
           "file holding the token that grants the operator role (or "
           "$FOTA_TOKEN)"),
      text("--gateway-token-file", "node", "gateway_token_file",
           s.gateway_token_file,
           "file holding the shared gateway token of development mode, "
           "acting as gateway \"shared\" (or $FOTA_GATEWAY_TOKEN)"),
      number("--max-frame-size", "node", "max_frame_size", s.max_frame_size,
             limits::min_frame_size, 64u << 20,
             "largest frame in either direction, in bytes"),
      number("--max-connections", "node", "max_connections", s.max_connections,
             1, 1u << 20, "open connections at most"),
      number("--hello-timeout", "node", "hello_timeout", s.hello_timeout, 1,
             3600, "seconds a new connection has to authenticate"),
      number("--idle-timeout", "node", "idle_timeout", s.idle_timeout, 1, 86400,
             "seconds a session may receive nothing before it is "
             "closed"),
      number("--frame-timeout", "node", "frame_timeout", s.frame_timeout, 1,
             3600, "seconds a frame may take to arrive once begun"),
      number("--max-output-buffer", "node", "max_output_buffer",
             s.max_output_buffer, 64u << 10, 1u << 30,
             "bytes a session holds for a peer that does not read, before "
             "it stops reading and defers pushes"),
      number("--max-session-requests", "node", "max_session_requests",
             s.max_session_requests, 1, 65536,
             "requests of one session answered at once; more wait"),
      number("--snapshot-every-events", "node", "snapshot_every_events",
             s.snapshot_every_events, 0, 1'000'000'000,
             "write a snapshot in the background after this many appended "
             "events (0: none)"),
      toggle("--no-snapshots", "node", "no_snapshots", s.no_snapshots,
             "start by replaying the whole log, ignoring snapshots"),
      size("--min-free-space", "node", "min_free_space", s.min_free_space,
           "refuse writes while the data directory has less free space "
           "(bytes, or with a unit: 256MiB, 1GiB; 0: never)"),
      toggle("--no-sync", "node", "no_sync", s.no_sync,
             "do not fsync group commits (benchmarks only)"),
      number("--threads", "node", "threads", s.threads, 0, 1024,
             "scheduler threads (0: one per core)"),
      number("--max-pushes-per-minute", "dispatch", "max_pushes_per_minute",
             s.max_pushes_per_minute, 0, std::numeric_limits<uint32_t>::max(),
             "node-wide push rate (0: unlimited)"),
      number("--max-pushes-in-flight", "dispatch", "max_pushes_in_flight",
             s.max_pushes_in_flight, 1, 1u << 20,
             "pushes awaiting a device's answer, node-wide"),
      number("--push-ack-timeout", "dispatch", "push_ack_timeout",
             s.push_ack_timeout, 1, 3600,
             "seconds until an unacknowledged push is sent again"),
      text("--tls-cert", "tls", "cert", s.tls_cert,
           "serve the API over TLS with this PEM certificate chain"),
      text("--tls-key", "tls", "key", s.tls_key,
           "PEM private key of the certificate"),
      text("--tls-client-ca", "tls", "client_ca", s.tls_client_ca,
           "PEM CAs that issue client certificates; clients are asked for "
           "one and a certificate they send must verify"),
      schemes("--firmware-url-schemes", "firmware", "url_schemes",
              s.url_schemes,
              "URL schemes firmware may be downloaded from (comma-separated "
              "on the command line)"),
      choice("--log-level", "log", "level", s.log_level,
             {"trace", "debug", "info", "warn", "error", "critical", "off"},
             "least severe messages logged"),
      choice("--log-format", "log", "format", s.log_format, {"text", "json"},
             "text lines, or one JSON object per line"),
  };
}

std::vector<std::string>
load_config(fotad_settings& s, const std::vector<setting>& table,
            const toml::table& doc, const std::string& file,
            const std::function<bool(const std::string&)>& given) {
  config_reader r{file};
  s.config_dir = std::filesystem::absolute(file).parent_path();
  // [quota] first: [products.X] start from it.
  if (const auto* q = doc.get("quota"))
    if (const auto* t = r.table(*q, "[quota]")) {
      r.only(*t, "[quota]", quota_keys);
      read_quota(r, *t, "[quota]", s.product_default);
    }
  load_settings(
      r, table, doc, given,
      {{"quota", nullptr},
       {"gateways", [&s](config_reader& r,
                         const toml::node& n) { load_gateways(s, r, n); }},
       {"products", [&s](config_reader& r, const toml::node& n) {
          load_products(s, r, n);
        }}});
  return r.take();
}

std::vector<std::string> load_config(fotad_settings& s,
                                     const std::vector<setting>& table,
                                     const CLI::App& app) {
  if (s.config.empty())
    return {};
  toml::table doc;
  if (auto err = parse_config_file(s.config, doc))
    return {*err};
  return load_config(s, table, doc, s.config, [&app](const std::string& flag) {
    return app.count(flag) > 0;
  });
}

std::optional<std::string> resolve_gateway_tokens(fotad_settings& s) {
  for (auto& g : s.gateways) {
    auto what = "gateway " + g.policy.name;
    if (!g.token_file.empty()) {
      auto token = read_token_file(g.token_file);
      if (!token)
        return "config: " + what + " token_file: " + token.error().message;
      g.credential.token = *token;
    }
    if (!g.token_env.empty()) {
      const char* v = std::getenv(g.token_env.c_str());
      if (v == nullptr || *v == '\0')
        return "config: " + what + ": token_env " + g.token_env + " is not set";
      g.credential.token = v;
    }
  }
  return std::nullopt;
}

} // namespace fota
