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

using refusal = std::optional<std::string>;

// -- describing values --------------------------------------------------------

std::string in_quotes(const std::string& x) {
  return "\"" + x + "\"";
}

/// A config value as a refusal shows it: `10`, `"abc"`, `true`, `an array`.
std::string shown(const toml::node& n) {
  switch (n.type()) {
  case toml::node_type::string:
    return in_quotes(*n.value<std::string>());
  case toml::node_type::integer:
    return std::to_string(*n.value<int64_t>());
  case toml::node_type::floating_point: {
    std::ostringstream out;
    out << *n.value<double>();
    return out.str();
  }
  case toml::node_type::boolean:
    return *n.value<bool>() ? "true" : "false";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::table:
    return "a table";
  default:
    return "a date or time";
  }
}

/// " (line 3)" for a value the parser knows the place of.
std::string line_of(const toml::node& n) {
  const auto& src = n.source();
  if (src.begin.line == 0)
    return {};
  return " (line " + std::to_string(src.begin.line) + ")";
}

// -- checks shared by flags and the file --------------------------------------

/// Parses a whole decimal number, nothing else.
std::optional<uint64_t> parse_digits(const std::string& text) {
  uint64_t x = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, x);
  if (text.empty() || ec != std::errc{} || ptr != end)
    return std::nullopt;
  return x;
}

std::string range_text(uint64_t min, uint64_t max) {
  return std::to_string(min) + ".." + std::to_string(max);
}

/// Whether `x` is within [min, max]; why not otherwise.
refusal check_range(uint64_t x, uint64_t min, uint64_t max) {
  if (x < min || x > max)
    return "must be " + range_text(min, max) + ", got " + std::to_string(x);
  return std::nullopt;
}

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

// -- kinds of settings --------------------------------------------------------

/// A setting's names and help; its kind fills in the rest.
setting named(std::string flag, std::string section, std::string key,
              std::string help) {
  setting s;
  s.flag = std::move(flag);
  s.section = std::move(section);
  s.key = std::move(key);
  s.help = std::move(help);
  return s;
}

/// An unsigned number within [min, max].
template <class T>
setting number(std::string flag, std::string section, std::string key, T& field,
               uint64_t min, uint64_t max, std::string help) {
  auto s = named(std::move(flag), std::move(section), std::move(key),
                 std::move(help) + " (" + range_text(min, max) + ")");
  s.type_name = "UINT";
  s.default_text = std::to_string(field);
  auto store = [&field, min, max](uint64_t x) -> refusal {
    if (auto err = check_range(x, min, max))
      return err;
    field = static_cast<T>(x);
    return std::nullopt;
  };
  s.from_text = [store, min, max](const std::string& text) -> refusal {
    auto x = parse_digits(text);
    if (!x)
      return "must be an integer " + range_text(min, max) + ", got " +
             in_quotes(text);
    return store(*x);
  };
  s.from_toml = [&field, min, max](const toml::node& n, bool set) -> refusal {
    auto x = n.value_exact<int64_t>();
    if (!x)
      return "must be an integer " + range_text(min, max) + ", got " + shown(n);
    if (*x < 0)
      return "must be " + range_text(min, max) + ", got " + std::to_string(*x);
    if (auto err = check_range(static_cast<uint64_t>(*x), min, max))
      return err;
    if (set)
      field = static_cast<T>(*x);
    return std::nullopt;
  };
  return s;
}

/// Text, with a check of its own (none: any text).
setting text(std::string flag, std::string section, std::string key,
             std::string& field, std::string help,
             std::function<refusal(const std::string&)> check = {}) {
  auto s = named(std::move(flag), std::move(section), std::move(key),
                 std::move(help));
  s.type_name = "TEXT";
  s.default_text = field;
  s.from_text = [&field, check](const std::string& x) -> refusal {
    if (check)
      if (auto err = check(x))
        return err;
    field = x;
    return std::nullopt;
  };
  s.from_toml = [&field, check](const toml::node& n, bool set) -> refusal {
    auto x = n.value_exact<std::string>();
    if (!x)
      return "must be a string, got " + shown(n);
    if (check)
      if (auto err = check(*x))
        return err;
    if (set)
      field = *x;
    return std::nullopt;
  };
  return s;
}

/// One of a few words.
setting choice(std::string flag, std::string section, std::string key,
               std::string& field, std::vector<std::string> words,
               std::string help) {
  std::string list;
  for (const auto& w : words)
    list += (list.empty() ? "" : ", ") + w;
  auto s = text(std::move(flag), std::move(section), std::move(key), field,
                std::move(help) + " (" + list + ")",
                [words, list](const std::string& x) -> refusal {
                  if (std::find(words.begin(), words.end(), x) == words.end())
                    return "must be one of " + list + ", got " + in_quotes(x);
                  return std::nullopt;
                });
  return s;
}

/// A switch: a flag without a value, true or false in the file.
setting toggle(std::string flag, std::string section, std::string key,
               bool& field, std::string help) {
  auto s = named(std::move(flag), std::move(section), std::move(key),
                 std::move(help));
  s.from_text = [&field](const std::string&) -> refusal {
    field = true;
    return std::nullopt;
  };
  s.from_toml = [&field](const toml::node& n, bool set) -> refusal {
    auto x = n.value_exact<bool>();
    if (!x)
      return "must be true or false, got " + shown(n);
    if (set)
      field = *x;
    return std::nullopt;
  };
  return s;
}

/// A byte count, with a unit or without.
setting size(std::string flag, std::string section, std::string key,
             uint64_t& field, std::string help) {
  auto s = named(std::move(flag), std::move(section), std::move(key),
                 std::move(help));
  s.type_name = "SIZE";
  s.default_text = storage::format_bytes(field);
  static const std::string expected =
      "must be a byte count or a size such as \"256MiB\", got ";
  s.from_text = [&field](const std::string& x) -> refusal {
    auto bytes = parse_size(x);
    if (!bytes)
      return expected + in_quotes(x);
    field = *bytes;
    return std::nullopt;
  };
  s.from_toml = [&field](const toml::node& n, bool set) -> refusal {
    std::optional<uint64_t> bytes;
    if (auto i = n.value_exact<int64_t>(); i && *i >= 0)
      bytes = static_cast<uint64_t>(*i);
    else if (auto t = n.value_exact<std::string>())
      bytes = parse_size(*t);
    if (!bytes)
      return expected + shown(n);
    if (set)
      field = *bytes;
    return std::nullopt;
  };
  return s;
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

refusal check_not_empty(const std::string& x) {
  if (x.empty())
    return std::string{"must not be empty"};
  return std::nullopt;
}

refusal check_address(const std::string& x) {
  if (!parse_listen(x, "127.0.0.1"))
    return "must be [ADDRESS:]PORT with a port 0..65535, got " + in_quotes(x);
  return std::nullopt;
}

// -- the file -----------------------------------------------------------------

/// How many single-character edits turn `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    auto diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      auto up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// The entry of `known` at most two edits from `key`, the nearest first.
std::optional<std::string> nearest(const std::string& key,
                                   const std::vector<std::string>& known) {
  const std::string* best = nullptr;
  size_t best_distance = 3;
  for (const auto& k : known) {
    auto d = edit_distance(key, k);
    if (d < best_distance) {
      best = &k;
      best_distance = d;
    }
  }
  if (best == nullptr)
    return std::nullopt;
  return *best;
}

/// " (did you mean max_frame_size?)" for a near miss among `known`.
std::string suggestion(const std::string& key,
                       const std::vector<std::string>& known) {
  auto x = nearest(key, known);
  return x ? " (did you mean " + *x + "?)" : "";
}

/// Collects the problems of one file.
class reader {
public:
  explicit reader(const std::string& file) : file_(file) {}

  void say(const std::string& what, const toml::node* at = nullptr) {
    problems_.emplace_back(at != nullptr ? at->source().begin.line : 0,
                           "config " + file_ + ": " + what +
                               (at != nullptr ? line_of(*at) : ""));
  }

  /// Refuses every key of `t` that `known` does not name, with `where` in
  /// front (`[node]`, `[[gateways]] #1`).
  void only(const toml::table& t, const std::string& where,
            const std::vector<std::string>& known) {
    for (const auto& [k, v] : t) {
      std::string key{k.str()};
      if (std::find(known.begin(), known.end(), key) == known.end())
        say("unknown key " + where + " " + key + suggestion(key, known), &v);
    }
  }

  /// An unsigned number within [0, max] at `t[key]`, if present.
  template <class T>
  void number(const toml::table& t, const char* key, const std::string& where,
              T& field, uint64_t max = std::numeric_limits<T>::max()) {
    const auto* n = t.get(key);
    if (n == nullptr)
      return;
    auto x = n->value_exact<int64_t>();
    if (!x) {
      say(where + " " + key + ": must be an integer " + range_text(0, max) +
              ", got " + shown(*n),
          n);
      return;
    }
    if (*x < 0 || static_cast<uint64_t>(*x) > max) {
      say(where + " " + key + ": must be " + range_text(0, max) + ", got " +
              std::to_string(*x),
          n);
      return;
    }
    field = static_cast<T>(*x);
  }

  /// A string at `t[key]`, if present.
  void string(const toml::table& t, const char* key, const std::string& where,
              std::string& field) {
    const auto* n = t.get(key);
    if (n == nullptr)
      return;
    if (auto x = n->value_exact<std::string>())
      field = *x;
    else
      say(where + " " + key + ": must be a string, got " + shown(*n), n);
  }

  /// An array of strings at `t[key]`, if present.
  void strings(const toml::table& t, const char* key, const std::string& where,
               std::vector<std::string>& field) {
    const auto* n = t.get(key);
    if (n == nullptr)
      return;
    const auto* arr = n->as_array();
    if (arr == nullptr) {
      say(where + " " + key + ": must be an array of strings, got " + shown(*n),
          n);
      return;
    }
    field.clear();
    for (const auto& x : *arr) {
      if (auto v = x.value_exact<std::string>())
        field.push_back(*v);
      else
        say(where + " " + key + ": must hold strings only, got " + shown(x),
            &x);
    }
  }

  /// The quota keys of a `[quota]`, `[products.X]` or `[[gateways]]` table.
  void quota(const toml::table& t, const std::string& where, device_quota& q) {
    number(t, "max_devices", where, q.max_devices,
           static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    number(t, "max_labels", where, q.max_labels);
    number(t, "max_label_bytes", where, q.max_label_bytes);
  }

  /// A table at `n`, or a problem naming `where`.
  const toml::table* table(const toml::node& n, const std::string& where) {
    if (const auto* t = n.as_table())
      return t;
    say(where + " must be a table, got " + shown(n), &n);
    return nullptr;
  }

  /// The problems in the order of the file.
  std::vector<std::string> take() {
    std::stable_sort(
        problems_.begin(), problems_.end(),
        [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<std::string> out;
    for (auto& [line, text] : problems_)
      out.push_back(std::move(text));
    return out;
  }

private:
  std::string file_;
  /// By line (0: unknown).
  std::vector<std::pair<uint32_t, std::string>> problems_;
};

const std::vector<std::string> quota_keys{"max_devices", "max_labels",
                                          "max_label_bytes"};

void load_gateways(fotad_settings& s, reader& r, const toml::node& n) {
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
    r.quota(g, where, x.policy.quota);
    s.gateways.push_back(std::move(x));
  }
}

void load_products(fotad_settings& s, reader& r, const toml::node& n) {
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
    r.quota(*t, where, q);
    s.products[product] = q;
    std::vector<std::string> keys;
    r.strings(*t, "signing_keys", where, keys);
    if (!keys.empty())
      s.config_keys[product] = std::move(keys);
  }
}

} // namespace

// -- values -------------------------------------------------------------------

std::optional<uint64_t> parse_size(const std::string& text) {
  // CLI11's unit parser throws on a unit it does not know.
  try {
    auto x = text;
    if (!CLI::AsSizeValue{false}(x).empty())
      return std::nullopt;
    return parse_digits(x);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::pair<std::string, uint16_t>>
parse_listen(const std::string& text, const std::string& default_host) {
  auto colon = text.rfind(':');
  auto host = colon == std::string::npos ? default_host : text.substr(0, colon);
  auto port =
      parse_digits(colon == std::string::npos ? text : text.substr(colon + 1));
  if (!port || *port > 65535)
    return std::nullopt;
  return std::make_pair(host, static_cast<uint16_t>(*port));
}

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

void add_flags(CLI::App& app, const std::vector<setting>& table) {
  for (const auto& s : table) {
    auto from_text = s.from_text;
    auto flag = s.flag;
    if (s.type_name.empty()) {
      app.add_flag_callback(
          flag, [from_text] { from_text("true"); }, s.help);
      continue;
    }
    app.add_option_function<std::string>(
           flag,
           [from_text, flag](const std::string& x) {
             if (auto err = from_text(x))
               throw CLI::ValidationError(flag, *err);
           },
           s.help)
        ->type_name(s.type_name)
        ->default_str(s.default_text);
  }
}

std::vector<std::string>
load_config(fotad_settings& s, const std::vector<setting>& table,
            const toml::table& doc, const std::string& file,
            const std::function<bool(const std::string&)>& given) {
  reader r{file};
  s.config_dir = std::filesystem::absolute(file).parent_path();
  // Sections of the table, and every key of them for suggestions.
  std::map<std::string, std::vector<const setting*>> sections;
  for (const auto& x : table)
    sections[x.section].push_back(&x);
  std::vector<std::string> top{"gateways", "quota", "products"};
  for (const auto& [name, xs] : sections)
    top.push_back(name);
  // [quota] first: [products.X] start from it.
  if (const auto* q = doc.get("quota"))
    if (const auto* t = r.table(*q, "[quota]")) {
      r.only(*t, "[quota]", quota_keys);
      r.quota(*t, "[quota]", s.product_default);
    }
  for (const auto& [k, v] : doc) {
    std::string name{k.str()};
    if (name == "quota")
      continue;
    if (name == "gateways") {
      load_gateways(s, r, v);
      continue;
    }
    if (name == "products") {
      load_products(s, r, v);
      continue;
    }
    auto section = sections.find(name);
    if (section == sections.end()) {
      // A setting outside its table, e.g. `data_dir` above `[node]`.
      std::string hint;
      for (const auto& x : table)
        if (x.key == name)
          hint = " (it belongs in " + x.config_name() + ")";
      if (!hint.empty() || !v.is_table()) {
        r.say("unknown key " + name +
                  (hint.empty() ? suggestion(name, top) : hint),
              &v);
        continue;
      }
      auto near = nearest(name, top);
      r.say("unknown table [" + name + "]" +
                (near ? " (did you mean [" + *near + "]?)" : ""),
            &v);
      continue;
    }
    const auto* t = r.table(v, "[" + name + "]");
    if (t == nullptr)
      continue;
    for (const auto& [kk, vv] : *t) {
      std::string key{kk.str()};
      auto x = std::find_if(section->second.begin(), section->second.end(),
                            [&](const setting* y) { return y->key == key; });
      if (x == section->second.end()) {
        std::string hint;
        for (const auto& y : table)
          if (y.key == key)
            hint = " (it is " + y.config_name() + ")";
        if (hint.empty()) {
          std::vector<std::string> keys;
          for (const auto* y : section->second)
            keys.push_back(y->key);
          hint = suggestion(key, keys);
        }
        r.say("unknown key [" + name + "] " + key + hint, &vv);
        continue;
      }
      if (auto err = (*x)->from_toml(vv, !given((*x)->flag)))
        r.say((*x)->config_name() + ": " + *err, &vv);
    }
  }
  return r.take();
}

std::vector<std::string> load_config(fotad_settings& s,
                                     const std::vector<setting>& table,
                                     const CLI::App& app) {
  if (s.config.empty())
    return {};
  toml::table doc;
  try {
    doc = toml::parse_file(s.config);
  } catch (const toml::parse_error& e) {
    return {"config " + s.config + ": " + std::string{e.description()} +
            " (line " + std::to_string(e.source().begin.line) + ")"};
  }
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
