/// Tests of the JSON that scripts read (`fotactl --json`): integers are JSON
/// numbers up to 2^53 and decimal strings beyond, in nested and repeated
/// fields too; everything else as protobuf's JSON mapping prints it.
#include "api/json.hpp"
#include "fota/v1/api.pb.h"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace fota {
namespace {

using json = nlohmann::json;

json parsed(const google::protobuf::Message& msg) {
  auto text = to_json(msg);
  EXPECT_TRUE(text) << text.error().message;
  return text ? json::parse(*text) : json{};
}

TEST(Json, IntegersUpTo2To53AreNumbers) {
  v1::TaskSummary t;
  t.set_task_id(7);
  t.set_created_at_ms(1'772'352'000'000);
  t.mutable_counters()->set_succeeded(max_exact_json_integer);
  t.mutable_spec()->set_timeout_seconds(3600);
  t.mutable_spec()->set_end_time_ms(-1);
  auto j = parsed(t);
  ASSERT_TRUE(j["task_id"].is_number_unsigned()) << j.dump();
  EXPECT_EQ(j["task_id"].get<uint64_t>(), 7u);
  ASSERT_TRUE(j["created_at_ms"].is_number_integer()) << j.dump();
  EXPECT_EQ(j["created_at_ms"].get<int64_t>(), 1'772'352'000'000);
  ASSERT_TRUE(j["counters"]["succeeded"].is_number()) << j.dump();
  EXPECT_EQ(j["counters"]["succeeded"].get<uint64_t>(),
            uint64_t{9'007'199'254'740'992});
  EXPECT_EQ(j["counters"]["failed"], 0) << "zero values are printed";
  EXPECT_EQ(j["spec"]["timeout_seconds"], 3600);
  EXPECT_EQ(j["spec"]["end_time_ms"], -1);
}

TEST(Json, IntegersBeyond2To53AreDecimalStrings) {
  v1::TaskDetails d;
  auto* x = d.add_executions();
  x->set_execution_id(max_exact_json_integer + 1);
  x->set_task_id(uint64_t{1} << 21);
  auto* y = d.add_executions();
  y->set_execution_id(UINT64_MAX);
  y->set_queued_at_ms(INT64_MIN);
  y->set_started_at_ms(-static_cast<int64_t>(max_exact_json_integer));
  d.set_next_page_token(uint64_t{1} << 60);
  auto j = parsed(d);
  const auto& xs = j["executions"];
  ASSERT_EQ(xs.size(), 2u) << j.dump();
  EXPECT_EQ(xs[0]["execution_id"], "9007199254740993");
  EXPECT_EQ(xs[0]["task_id"], 2097152);
  EXPECT_EQ(xs[1]["execution_id"], "18446744073709551615");
  EXPECT_EQ(xs[1]["queued_at_ms"], "-9223372036854775808");
  EXPECT_EQ(xs[1]["started_at_ms"], -9'007'199'254'740'992);
  EXPECT_EQ(j["next_page_token"], "1152921504606846976");
}

TEST(Json, StringsEnumsAndBytesKeepTheirMapping) {
  v1::Device dev;
  dev.set_version("123");
  dev.set_device_key("42");
  (*dev.mutable_tags())["ring"] = "7";
  dev.set_active_execution_id(4'294'967'297);
  auto j = parsed(dev);
  EXPECT_EQ(j["version"], "123") << "a string of digits stays a string";
  EXPECT_EQ(j["device_key"], "42");
  EXPECT_EQ(j["tags"]["ring"], "7");
  EXPECT_EQ(j["active_execution_id"], 4'294'967'297u);
  v1::Firmware fw;
  fw.set_signature(std::string{"\x01\x02\x03", 3});
  fw.set_status(v1::FIRMWARE_STATUS_VERIFIED);
  fw.set_size(1 << 20);
  auto f = parsed(fw);
  EXPECT_EQ(f["signature"], "AQID");
  EXPECT_EQ(f["status"], "FIRMWARE_STATUS_VERIFIED");
  EXPECT_EQ(f["size"], 1 << 20);
}

TEST(Json, FieldsKeepTheirProtoOrder) {
  v1::StateDigest d;
  d.set_sha256(std::string(64, 'a'));
  d.set_devices(3);
  auto text = to_json(d);
  ASSERT_TRUE(text);
  EXPECT_LT(text->find("\"sha256\""), text->find("\"devices\"")) << *text;
  EXPECT_LT(text->find("\"devices\""), text->find("\"last_sequence\""))
      << *text;
}

} // namespace
} // namespace fota
