/// Settings of the programs (fotad, fota-mqtt): one table that names each
/// setting once, with its flag, its key in the TOML file, its type and its
/// range, so that a flag and a config value go through the same parsing and
/// the same checks and are refused in the same words. A config file is read
/// strictly: an unknown key, a value of the wrong type or out of range is
/// refused with the file, the key and the line named.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <toml++/toml.h>
#include <utility>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

namespace fota {

/// Why a value is refused, or nothing.
using refusal = std::optional<std::string>;

/// One setting: its flag, its key in the config file, and how a value of
/// either is parsed, checked and stored. `from_text` and `from_toml` return
/// why a value is refused, or nothing once it is stored.
struct setting {
  /// "--max-frame-size".
  std::string flag;
  /// "node" and "max_frame_size": `[node] max_frame_size` in the file.
  std::string section;
  std::string key;
  std::string help;
  /// What the help shows for the value: "UINT", "TEXT", "SIZE", "LIST";
  /// empty for a switch, which takes no value on the command line.
  std::string type_name;
  /// The default, as the help shows it.
  std::string default_text;
  std::function<std::optional<std::string>(const std::string&)> from_text;
  /// With `store` false the value is only checked: its flag was given, and
  /// flags win.
  std::function<std::optional<std::string>(const toml::node&, bool store)>
      from_toml;

  /// `[node] max_frame_size`.
  std::string config_name() const { return "[" + section + "] " + key; }
};

// -- values -------------------------------------------------------------------

/// `"x"`.
std::string in_quotes(const std::string& x);

/// A config value as a refusal shows it: `10`, `"abc"`, `true`, `an array`.
std::string shown(const toml::node& n);

/// " (line 3)" for a value the parser knows the place of.
std::string line_of(const toml::node& n);

/// Parses a whole decimal number, nothing else.
std::optional<uint64_t> parse_digits(const std::string& text);

/// `1..10`.
std::string range_text(uint64_t min, uint64_t max);

/// Whether `x` is within [min, max]; why not otherwise.
refusal check_range(uint64_t x, uint64_t min, uint64_t max);

/// Parses a byte count with an optional unit, all powers of 1024: "256MiB",
/// "1g", "512m", "4096".
std::optional<uint64_t> parse_size(const std::string& text);

/// Splits `[ADDRESS:]PORT` (an IPv6 address in brackets); none when the
/// port is not 0..65535.
std::optional<std::pair<std::string, uint16_t>>
parse_listen(const std::string& text, const std::string& default_host);

/// Refuses empty text.
refusal check_not_empty(const std::string& x);

/// Refuses what `parse_listen` cannot split.
refusal check_address(const std::string& x);

// -- kinds of settings --------------------------------------------------------

/// A setting's names and help; its kind fills in the rest.
setting named(std::string flag, std::string section, std::string key,
              std::string help);

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
             std::function<refusal(const std::string&)> check = {});

/// One of a few words.
setting choice(std::string flag, std::string section, std::string key,
               std::string& field, std::vector<std::string> words,
               std::string help);

/// A switch: a flag without a value, true or false in the file.
setting toggle(std::string flag, std::string section, std::string key,
               bool& field, std::string help);

/// A byte count, with a unit or without.
setting size(std::string flag, std::string section, std::string key,
             uint64_t& field, std::string help);

/// Adds a flag for every setting of `table` to `app`; a value a setting
/// refuses fails the parse with the flag and the reason.
void add_flags(CLI::App& app, const std::vector<setting>& table);

// -- config files -------------------------------------------------------------

/// The entry of `known` at most two edits from `key`, the nearest first.
std::optional<std::string> nearest(const std::string& key,
                                   const std::vector<std::string>& known);

/// " (did you mean max_frame_size?)" for a near miss among `known`.
std::string suggestion(const std::string& key,
                       const std::vector<std::string>& known);

/// Collects the problems of one config file, each naming the file, the
/// key and its line, in the order of the file.
class config_reader {
public:
  explicit config_reader(const std::string& file) : file_(file) {}

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

/// A top-level key of a config file that is not a section of the table,
/// e.g. fotad's `[[gateways]]`: `load` reads it (none: read elsewhere).
struct config_extra {
  std::string name;
  std::function<void(config_reader&, const toml::node&)> load;
};

/// Reads every section of `doc` that `table` names into its settings: for a
/// setting whose flag was given (`given(flag)`), the value is checked but
/// the flag's stays. Top-level keys in `extras` go to their loaders;
/// anything else is an unknown key or table, with a suggestion.
void load_settings(config_reader& r, const std::vector<setting>& table,
                   const toml::table& doc,
                   const std::function<bool(const std::string&)>& given,
                   const std::vector<config_extra>& extras = {});

/// Parses the TOML file at `path` into `doc`; the problem, naming the file
/// and the line, when it cannot.
refusal parse_config_file(const std::string& path, toml::table& doc);

} // namespace fota
