#include "apps/settings.hpp"

#include "storage/space_guard.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

namespace fota {

// -- values -------------------------------------------------------------------

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

/// Text, with a check of its own (none: any text).
setting text(std::string flag, std::string section, std::string key,
             std::string& field, std::string help,
             std::function<refusal(const std::string&)> check) {
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

// -- config files -------------------------------------------------------------

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

void load_settings(config_reader& r, const std::vector<setting>& table,
                   const toml::table& doc,
                   const std::function<bool(const std::string&)>& given,
                   const std::vector<config_extra>& extras) {
  // Sections of the table, and every key of them for suggestions.
  std::map<std::string, std::vector<const setting*>> sections;
  for (const auto& x : table)
    sections[x.section].push_back(&x);
  std::vector<std::string> top;
  for (const auto& x : extras)
    top.push_back(x.name);
  for (const auto& [name, xs] : sections)
    top.push_back(name);
  for (const auto& [k, v] : doc) {
    std::string name{k.str()};
    auto extra = std::find_if(extras.begin(), extras.end(),
                              [&](const auto& x) { return x.name == name; });
    if (extra != extras.end()) {
      if (extra->load)
        extra->load(r, v);
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
}

refusal parse_config_file(const std::string& path, toml::table& doc) {
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return "config " + path + ": " + std::string{e.description()} + " (line " +
           std::to_string(e.source().begin.line) + ")";
  }
  return std::nullopt;
}

} // namespace fota
