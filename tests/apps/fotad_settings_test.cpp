/// fotad's settings: the example config file loads and names every setting;
/// unknown keys, wrong types and out-of-range values are refused with the
/// key named, through the same checks as the flags.
#include "apps/fotad_settings.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

namespace {

using namespace fota;

const std::string example = FOTA_SOURCE_DIR "/packaging/fotad.toml";

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Loads `text` as the file "fotad.toml", with the flags in `given` set.
std::vector<std::string> load(fotad_settings& s, const std::string& text,
                              std::vector<std::string> given = {}) {
  auto table = settings_table(s);
  auto doc = toml::parse(text, std::string{"fotad.toml"});
  return load_config(
      s, table, doc, "fotad.toml", [&given](const std::string& flag) {
        return std::find(given.begin(), given.end(), flag) != given.end();
      });
}

std::vector<std::string> load(const std::string& text) {
  fotad_settings s;
  return load(s, text);
}

/// What the command line says about `args`: empty when it parses.
std::string parse_flags(fotad_settings& s, std::vector<std::string> args) {
  CLI::App app;
  auto table = settings_table(s);
  add_flags(app, table);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return {};
}

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += x + "\n";
  return out;
}

// -- the example --------------------------------------------------------------

TEST(FotadSettings, ExampleConfigLoadsAndNamesEverySetting) {
  auto text = read_file(example);
  ASSERT_FALSE(text.empty()) << example;
  fotad_settings s;
  auto problems = load(s, text);
  EXPECT_TRUE(problems.empty()) << joined(problems);
  auto doc = toml::parse(text, example);
  for (const auto& x : settings_table(s))
    EXPECT_TRUE(doc.at_path(x.section + "." + x.key))
        << x.config_name() << " is missing from " << example;
  EXPECT_EQ(s.data_dir, "/var/lib/fota");
  EXPECT_EQ(s.metrics, "127.0.0.1:9464");
  EXPECT_EQ(s.min_free_space, 256u << 20);
  EXPECT_EQ(s.url_schemes, std::vector<std::string>{"https"});
}

TEST(FotadSettings, ExampleConfigDefaultsAreFotadsDefaults) {
  // Every value the example sets, other than the three it changes on
  // purpose, is the default a node has without it.
  fotad_settings defaults;
  fotad_settings loaded;
  ASSERT_TRUE(load(loaded, read_file(example)).empty());
  loaded.data_dir = defaults.data_dir;
  loaded.metrics = defaults.metrics;
  loaded.config_dir = defaults.config_dir;
  auto a = settings_table(defaults);
  auto b = settings_table(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].default_text, b[i].default_text) << a[i].config_name();
}

TEST(FotadSettings, ExampleConfigExamplesAreValidToo) {
  // Lines like "#name = ..." are examples to uncomment: uncommented, the
  // file still loads, and names every key of gateways and products.
  auto text = read_file(example);
  static const std::regex commented{R"(^#([^ \n].*)$)", std::regex::multiline};
  auto uncommented = std::regex_replace(text, commented, "$1");
  ASSERT_NE(uncommented, text);
  fotad_settings s;
  auto problems = load(s, uncommented);
  EXPECT_TRUE(problems.empty()) << joined(problems);
  ASSERT_EQ(s.gateways.size(), 1u);
  const auto& g = s.gateways.front();
  EXPECT_EQ(g.policy.name, "plant-1");
  EXPECT_EQ(g.token_file, "/run/credentials/fotad.service/plant-1.token");
  EXPECT_EQ(g.policy.products, (std::vector<std::string>{"cam", "lamp"}));
  EXPECT_EQ(g.policy.quota.max_devices, 100000u);
  ASSERT_EQ(s.products.count("cam"), 1u);
  EXPECT_EQ(s.products["cam"].max_devices, 500000u);
  EXPECT_EQ(s.config_keys["cam"],
            std::vector<std::string>{"/etc/fota/cam-signing.pub"});
}

// -- refusals -----------------------------------------------------------------

TEST(FotadSettings, OutOfRangeValueIsRefusedWithTheKeyAndTheRange) {
  auto problems = load("[node]\nmax_frame_size = 10\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "config fotad.toml: [node] max_frame_size: must be "
                         "8192..67108864, got 10 (line 2)");
  EXPECT_EQ(load("[dispatch]\npush_ack_timeout = 0\n").at(0),
            "config fotad.toml: [dispatch] push_ack_timeout: must be "
            "1..3600, got 0 (line 2)");
  EXPECT_NE(load("[node]\nmax_connections = -5\n")
                .at(0)
                .find("[node] max_connections: must be 1..1048576, got -5"),
            std::string::npos);
}

TEST(FotadSettings, UnknownKeyIsRefusedWithANearMiss) {
  auto problems = load("[node]\nmax_frame_sise = 8192\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "config fotad.toml: unknown key [node] "
                         "max_frame_sise (did you mean max_frame_size?) "
                         "(line 2)");
  // A key in the wrong table, a setting outside any, an unknown table.
  EXPECT_NE(load("[node]\npush_ack_timeout = 5\n")
                .at(0)
                .find("unknown key [node] push_ack_timeout (it is [dispatch] "
                      "push_ack_timeout)"),
            std::string::npos);
  EXPECT_NE(load("data_dir = \"/x\"\n")
                .at(0)
                .find("unknown key data_dir (it belongs in [node] data_dir)"),
            std::string::npos);
  EXPECT_NE(load("[nodes]\n")
                .at(0)
                .find("unknown table [nodes] (did you mean [node]?)"),
            std::string::npos);
  EXPECT_NE(load("colour = \"red\"\n").at(0).find("unknown key colour"),
            std::string::npos);
  EXPECT_NE(
      load("[quota]\nmax_device = 5\n")
          .at(0)
          .find("unknown key [quota] max_device (did you mean max_devices?)"),
      std::string::npos);
  EXPECT_NE(load("[products.cam]\nsigning_key = []\n")
                .at(0)
                .find("unknown key [products.cam] signing_key (did you mean "
                      "signing_keys?)"),
            std::string::npos);
}

TEST(FotadSettings, WrongTypeIsRefusedWithWhatWasGiven) {
  EXPECT_EQ(load("[node]\nmax_frame_size = \"4MiB\"\n").at(0),
            "config fotad.toml: [node] max_frame_size: must be an integer "
            "8192..67108864, got \"4MiB\" (line 2)");
  EXPECT_NE(load("[node]\nno_sync = \"yes\"\n")
                .at(0)
                .find("[node] no_sync: must be true or false, got \"yes\""),
            std::string::npos);
  EXPECT_NE(load("[node]\nlisten = 7411\n")
                .at(0)
                .find("[node] listen: must be a string, got 7411"),
            std::string::npos);
  EXPECT_NE(
      load("[node]\nhello_timeout = 1.5\n")
          .at(0)
          .find("[node] hello_timeout: must be an integer 1..3600, got 1.5"),
      std::string::npos);
  EXPECT_NE(load("[firmware]\nurl_schemes = \"https\"\n")
                .at(0)
                .find("[firmware] url_schemes: must be an array of strings"),
            std::string::npos);
  EXPECT_NE(load("node = 3\n").at(0).find("[node] must be a table, got 3"),
            std::string::npos);
  EXPECT_NE(load("[node]\nmin_free_space = \"lots\"\n")
                .at(0)
                .find("[node] min_free_space: must be a byte count or a size "
                      "such as \"256MiB\", got \"lots\""),
            std::string::npos);
}

TEST(FotadSettings, ValuesAreCheckedBeyondTheirType) {
  EXPECT_NE(load("[node]\nlisten = \"localhost:http\"\n")
                .at(0)
                .find("[node] listen: must be [ADDRESS:]PORT with a port "
                      "0..65535, got \"localhost:http\""),
            std::string::npos);
  EXPECT_NE(load("[log]\nlevel = \"loud\"\n")
                .at(0)
                .find("[log] level: must be one of trace, debug, info, warn, "
                      "error, critical, off, got \"loud\""),
            std::string::npos);
  EXPECT_NE(load("[firmware]\nurl_schemes = [\"ht tp\"]\n")
                .at(0)
                .find("\"ht tp\" is not a URL scheme"),
            std::string::npos);
  EXPECT_NE(load("[firmware]\nurl_schemes = []\n")
                .at(0)
                .find("must name at least one URL scheme"),
            std::string::npos);
  EXPECT_NE(load("[node]\ndata_dir = \"\"\n")
                .at(0)
                .find("[node] data_dir: must not be empty"),
            std::string::npos);
}

TEST(FotadSettings, GatewaysAreCheckedEntryByEntry) {
  auto problems = load(R"([[gateways]]
name = "gw-a"
token = "a"
max_devices = "many"
colour = "red"

[[gateways]]
token = "b"

[[gateways]]
name = "gw-a"
token = "c"

[[gateways]]
name = "gw-d"
)");
  auto all = joined(problems);
  EXPECT_EQ(problems.size(), 5u) << all;
  EXPECT_NE(all.find("unknown key [[gateways]] #1 colour"), std::string::npos)
      << all;
  EXPECT_NE(all.find("[[gateways]] #1 (gw-a) max_devices: must be an "
                     "integer"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("[[gateways]] #2: every gateway needs a name other "
                     "than \"shared\""),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("gateway gw-a is configured twice"), std::string::npos)
      << all;
  EXPECT_NE(all.find("[[gateways]] #4 (gw-d): give token, token_file, "
                     "token_env or certificate_sha256"),
            std::string::npos)
      << all;
  EXPECT_NE(
      load("gateways = 5\n").at(0).find("gateways must be an array of tables"),
      std::string::npos);
}

TEST(FotadSettings, EveryProblemIsReportedAtOnceInTheOrderOfTheFile) {
  auto problems = load(R"([node]
max_frame_sise = 1
hello_timeout = 0

[dispatch]
max_pushes_in_flight = "x"
)");
  ASSERT_EQ(problems.size(), 3u) << joined(problems);
  EXPECT_NE(problems[0].find("(line 2)"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("(line 3)"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find("(line 6)"), std::string::npos) << problems[2];
}

TEST(FotadSettings, ProductQuotasStartFromTheDefaultQuota) {
  fotad_settings s;
  auto problems = load(s, R"([products.cam]
max_devices = 10

[quota]
max_labels = 5
)");
  ASSERT_TRUE(problems.empty()) << joined(problems);
  EXPECT_EQ(s.product_default.max_labels, 5u);
  EXPECT_EQ(s.products["cam"].max_devices, 10u);
  EXPECT_EQ(s.products["cam"].max_labels, 5u);
}

// -- flags and the file -------------------------------------------------------

TEST(FotadSettings, FlagsAreRefusedInTheSameWordsAsTheFile) {
  fotad_settings s;
  EXPECT_EQ(parse_flags(s, {"--max-frame-size", "10"}),
            "--max-frame-size: must be 8192..67108864, got 10");
  EXPECT_EQ(parse_flags(s, {"--max-frame-size", "big"}),
            "--max-frame-size: must be an integer 8192..67108864, got "
            "\"big\"");
  EXPECT_EQ(parse_flags(s, {"--log-format", "xml"}),
            "--log-format: must be one of text, json, got \"xml\"");
  EXPECT_EQ(parse_flags(s, {"--listen", "99999"}),
            "--listen: must be [ADDRESS:]PORT with a port 0..65535, got "
            "\"99999\"");
  EXPECT_EQ(parse_flags(s, {"--min-free-space", "1GiB", "--no-sync",
                            "--firmware-url-schemes", "HTTPS, http"}),
            "");
  EXPECT_EQ(s.min_free_space, uint64_t{1} << 30);
  EXPECT_TRUE(s.no_sync);
  EXPECT_EQ(s.url_schemes, (std::vector<std::string>{"https", "http"}));
}

TEST(FotadSettings, AGivenFlagWinsButTheFileIsStillChecked) {
  fotad_settings s;
  ASSERT_EQ(parse_flags(s, {"--max-frame-size", "65536"}), "");
  auto problems = load(s, "[node]\nmax_frame_size = 16384\nidle_timeout = 60\n",
                       {"--max-frame-size"});
  EXPECT_TRUE(problems.empty()) << joined(problems);
  EXPECT_EQ(s.max_frame_size, 65536u);
  EXPECT_EQ(s.idle_timeout, 60u);
  // A bad value is refused even where its flag wins.
  EXPECT_EQ(
      load(s, "[node]\nmax_frame_size = 10\n", {"--max-frame-size"}).size(),
      1u);
  EXPECT_EQ(s.max_frame_size, 65536u);
}

TEST(FotadSettings, EveryFlagHasAConfigKeyAndBothAreUnique) {
  fotad_settings s;
  auto table = settings_table(s);
  std::set<std::string> flags;
  std::set<std::string> keys;
  for (const auto& x : table) {
    EXPECT_TRUE(flags.insert(x.flag).second) << x.flag;
    EXPECT_TRUE(keys.insert(x.config_name()).second) << x.config_name();
    EXPECT_EQ(x.flag.rfind("--", 0), 0u) << x.flag;
  }
}

// -- values -------------------------------------------------------------------

TEST(FotadSettings, SizesTakeUnitsInPowersOf1024) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("256MiB"), 256u << 20);
  EXPECT_EQ(parse_size("1g"), uint64_t{1} << 30);
  EXPECT_EQ(parse_size("512m"), 512u << 20);
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("12 parsecs"));
  EXPECT_FALSE(parse_size(""));
}

TEST(FotadSettings, ListenAddressesSplitIntoHostAndPort) {
  EXPECT_EQ(parse_listen("7411", "127.0.0.1"),
            std::make_pair(std::string{"127.0.0.1"}, uint16_t{7411}));
  EXPECT_EQ(parse_listen("0.0.0.0:0", "127.0.0.1"),
            std::make_pair(std::string{"0.0.0.0"}, uint16_t{0}));
  EXPECT_EQ(parse_listen("[::1]:9464", "127.0.0.1"),
            std::make_pair(std::string{"[::1]"}, uint16_t{9464}));
  EXPECT_FALSE(parse_listen("65536", "127.0.0.1"));
  EXPECT_FALSE(parse_listen("host:", "127.0.0.1"));
}

} // namespace
