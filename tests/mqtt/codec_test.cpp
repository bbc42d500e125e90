#include "mqtt/codec.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace fota;
using namespace fota::mqtt;
using json = nlohmann::json;

namespace {

const device_topic progress_topic{"pk", "dk", "progress"};
const device_topic inform_topic{"pk", "dk", "inform"};

/// The error for `payload` on `topic`, expecting no frame.
std::string refusal(const device_topic& topic, std::string_view payload) {
  auto x = decode(topic, payload);
  EXPECT_FALSE(x.frame.has_value()) << payload;
  return x.error;
}

} // namespace

// -- topics -------------------------------------------------------------------

TEST(MqttCodec, TopicsSplitIntoProductDeviceAndKind) {
  auto t = parse_topic("/sys/pk-1/dev-7/ota/device/progress");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->product_key, "pk-1");
  EXPECT_EQ(t->device_key, "dev-7");
  EXPECT_EQ(t->kind, "progress");
  EXPECT_EQ(topic_name("pk-1", "dev-7", "progress"),
            "/sys/pk-1/dev-7/ota/device/progress");
}

TEST(MqttCodec, OtherTopicsAreNotDeviceTopics) {
  EXPECT_FALSE(parse_topic("sys/pk/dk/ota/device/progress"));
  EXPECT_FALSE(parse_topic("/sys/pk/dk/ota/device"));
  EXPECT_FALSE(parse_topic("/sys/pk/dk/ota/device/progress/x"));
  EXPECT_FALSE(parse_topic("/sys//dk/ota/device/progress"));
  EXPECT_FALSE(parse_topic("/sys/pk//ota/device/progress"));
  EXPECT_FALSE(parse_topic("/sys/pk/dk/ota/device/"));
  EXPECT_FALSE(parse_topic("/dev/pk/dk/ota/device/progress"));
  EXPECT_FALSE(parse_topic("/sys/pk/dk/fw/device/progress"));
}

// -- requests -----------------------------------------------------------------

TEST(MqttCodec, InformRegistersTheDeviceWithItsVersion) {
  auto x = decode(inform_topic, R"({"id":"7","version":"1.0",)"
                                R"("method":"ota.device.inform",)"
                                R"("params":{"version":"1.2.3"}})");
  ASSERT_EQ(x.error, "");
  ASSERT_TRUE(x.frame);
  EXPECT_TRUE(x.replies);
  EXPECT_EQ(x.id, "\"7\"");
  const auto& r = x.frame->register_device();
  EXPECT_EQ(r.product_key(), "pk");
  EXPECT_EQ(r.device_key(), "dk");
  EXPECT_EQ(r.version(), "1.2.3");
}

TEST(MqttCodec, ProgressStepsBecomeProgressOrFailure) {
  auto x = decode(progress_topic,
                  R"({"id":12,"params":{"step":40,"desc":"writing"}})");
  ASSERT_TRUE(x.frame) << x.error;
  EXPECT_EQ(x.id, "12");
  ASSERT_TRUE(x.frame->has_report_progress());
  EXPECT_EQ(x.frame->report_progress().step(), 40u);
  EXPECT_EQ(x.frame->report_progress().text(), "writing");
  EXPECT_EQ(x.frame->report_progress().execution_id(), 0u);
  const char* codes[] = {"UPGRADE_FAILED", "DOWNLOAD_FAILED", "VERIFY_FAILED",
                         "FLASH_FAILED"};
  for (int step = -1; step >= -4; --step) {
    auto payload =
        json{{"id", "f"},
             {"params",
              {{"step", step}, {"desc", "no"}, {"executionId", 4294967297u}}}}
            .dump();
    auto f = decode(progress_topic, payload);
    ASSERT_TRUE(f.frame) << f.error;
    ASSERT_TRUE(f.frame->has_report_failure());
    EXPECT_EQ(f.frame->report_failure().code(), codes[-step - 1]);
    EXPECT_EQ(f.frame->report_failure().text(), "no");
    EXPECT_EQ(f.frame->report_failure().execution_id(), 4294967297u);
  }
}

TEST(MqttCodec, GetversionAsksForAnUpgrade) {
  auto x = decode({"pk", "dk", "getversion"},
                  R"({"id":"g","method":"ota.device.getversion"})");
  ASSERT_TRUE(x.frame) << x.error;
  EXPECT_TRUE(x.frame->has_request_upgrade());
  EXPECT_EQ(x.frame->request_upgrade().device_key(), "dk");
}

TEST(MqttCodec, BadPayloadsAreRefusedNamingTheField) {
  EXPECT_EQ(refusal(progress_topic, "not json"), "payload: not JSON");
  EXPECT_EQ(refusal(progress_topic, ""), "payload: not JSON");
  EXPECT_EQ(refusal(progress_topic, "[1,2]"), "payload: must be a JSON object");
  EXPECT_EQ(refusal(progress_topic, R"({"params":{"step":1}})"), "id: missing");
  EXPECT_EQ(refusal(progress_topic, R"({"id":true,"params":{"step":1}})"),
            "id: must be a string or an integer");
  EXPECT_EQ(refusal(progress_topic, R"({"id":"1"})"), "params: missing");
  EXPECT_EQ(refusal(progress_topic, R"({"id":"1","params":3})"),
            "params: must be an object");
  EXPECT_EQ(refusal(progress_topic, R"({"id":"1","params":{}})"),
            "params.step: missing");
  for (auto step : {"101", "-5", "1.5", "\"10\"", "null"})
    EXPECT_EQ(
        refusal(progress_topic,
                std::string{R"({"id":"1","params":{"step":)"} + step + "}}"),
        "params.step: must be an integer from -4 to 100")
        << step;
  EXPECT_EQ(
      refusal(progress_topic, R"({"id":"1","params":{"step":1,"desc":2}})"),
      "params.desc: must be a string");
  EXPECT_EQ(refusal(progress_topic,
                    R"({"id":"1","params":{"step":1,"executionId":-1}})"),
            "params.executionId: must be a non-negative integer");
  EXPECT_EQ(refusal(progress_topic,
                    R"({"id":"1","params":{"step":1,"executionId":"7"}})"),
            "params.executionId: must be a non-negative integer");
  EXPECT_EQ(
      refusal(progress_topic,
              R"({"id":"1","method":"ota.device.inform","params":{"step":1}})"),
      "method: must be \"ota.device.progress\"");
  EXPECT_EQ(refusal(inform_topic, R"({"id":"1","params":{}})"),
            "params.version: missing");
  EXPECT_EQ(refusal(inform_topic, R"({"id":"1","params":{"version":2}})"),
            "params.version: must be a non-empty string");
  EXPECT_EQ(refusal(inform_topic, R"({"id":"1","params":{"version":""}})"),
            "params.version: must be a non-empty string");
}

TEST(MqttCodec, ARefusedRequestKeepsItsIdForTheReply) {
  auto x = decode(progress_topic, R"({"id":"abc","params":{"step":500}})");
  EXPECT_EQ(x.id, "\"abc\"");
  EXPECT_TRUE(x.replies);
  auto reply = json::parse(encode_reply(x.id, 400, x.error));
  EXPECT_EQ(reply["id"], "abc");
  EXPECT_EQ(reply["code"], 400);
  EXPECT_EQ(reply["message"], "params.step: must be an integer from -4 to 100");
  auto missing = decode(progress_topic, "{}");
  EXPECT_EQ(json::parse(encode_reply(missing.id, 400, missing.error))["id"],
            "");
}

// -- status and acknowledgements ---------------------------------------------

TEST(MqttCodec, StatusBringsTheDeviceOnlineOrOfflineWithoutAReply) {
  device_topic t{"pk", "dk", "status"};
  auto on = decode(t, R"({"online":true})");
  ASSERT_TRUE(on.frame) << on.error;
  EXPECT_TRUE(on.frame->has_device_online());
  EXPECT_FALSE(on.replies);
  auto off = decode(t, R"({"online":false})");
  ASSERT_TRUE(off.frame) << off.error;
  EXPECT_TRUE(off.frame->has_device_offline());
  EXPECT_EQ(off.frame->device_offline().device_key(), "dk");
  // An empty retained message clears the status: nothing happens.
  auto cleared = decode(t, "");
  EXPECT_FALSE(cleared.frame);
  EXPECT_EQ(cleared.error, "");
  EXPECT_EQ(refusal(t, R"({"online":"yes"})"), "online: must be true or false");
  EXPECT_EQ(refusal(t, R"({})"), "online: missing");
}

TEST(MqttCodec, UpgradeReplyAcknowledgesThePushItNames) {
  device_topic t{"pk", "dk", "upgrade_reply"};
  auto x = decode(t, R"({"id":"4294967297.2","code":200})");
  ASSERT_TRUE(x.frame) << x.error;
  EXPECT_FALSE(x.replies);
  EXPECT_EQ(x.frame->ack_push().execution_id(), 4294967297u);
  EXPECT_EQ(x.frame->ack_push().attempt(), 2u);
  EXPECT_EQ(refusal(t, R"({"id":"4294967297","code":200})"),
            "id: must be \"<executionId>.<attempt>\"");
  EXPECT_EQ(refusal(t, R"({"id":"4294967297.1"})"), "code: missing");
  EXPECT_EQ(refusal(t, R"({"id":"4294967297.1","code":500})"),
            "code: 500 does not acknowledge the push");
}

TEST(MqttCodec, PushIdsParseIntoExecutionAndAttempt) {
  auto x = parse_push_id("4294967297.3");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->first, 4294967297u);
  EXPECT_EQ(x->second, 3u);
  for (auto bad : {"", ".", "1.", ".1", "1.2.3", "a.1", "1.b", "0.1", "1.0",
                   "1.99999999999", "-1.1", "1 .1"})
    EXPECT_FALSE(parse_push_id(bad)) << bad;
}

TEST(MqttCodec, TheBridgesOwnTopicsAreIgnored) {
  for (auto kind : {"upgrade", "cancel", "progress_reply", "inform_reply"}) {
    auto x = decode({"pk", "dk", kind}, "{}");
    EXPECT_FALSE(x.frame) << kind;
    EXPECT_EQ(x.error, "") << kind;
    EXPECT_FALSE(x.replies) << kind;
  }
}

// -- cloud to device ----------------------------------------------------------

TEST(MqttCodec, NodeStatusesMapToReplyCodes) {
  EXPECT_EQ(reply_code(v1::STATUS_CODE_OK), 200);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_INVALID_ARGUMENT), 400);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_PERMISSION_DENIED), 403);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_NOT_FOUND), 404);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_FAILED_PRECONDITION), 409);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_ALREADY_EXISTS), 409);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_UNAVAILABLE), 503);
  EXPECT_EQ(reply_code(v1::STATUS_CODE_INTERNAL), 500);
  v1::Response r;
  r.set_status(v1::STATUS_CODE_NOT_FOUND);
  r.set_message("device dk is not registered");
  auto reply = json::parse(encode_reply("\"q\"", r));
  EXPECT_EQ(reply["id"], "q");
  EXPECT_EQ(reply["code"], 404);
  EXPECT_EQ(reply["message"], "device dk is not registered");
  EXPECT_EQ(reply["data"], json::object());
}

TEST(MqttCodec, AnOfferIsTheGetversionReplysData) {
  v1::Response r;
  r.set_status(v1::STATUS_CODE_OK);
  auto* o = r.mutable_offer();
  o->set_available(true);
  o->set_execution_id(4294967297u);
  o->set_attempt(1);
  o->mutable_firmware()->set_version("2.0.0");
  o->mutable_firmware()->set_url("https://fw/2.bin");
  o->mutable_firmware()->set_size(1024);
  o->mutable_firmware()->set_sha256(std::string(64, 'a'));
  o->set_manifest("abc");
  auto reply = json::parse(encode_reply("5", r));
  EXPECT_EQ(reply["id"], 5);
  EXPECT_EQ(reply["code"], 200);
  EXPECT_EQ(reply["message"], "");
  const auto& d = reply["data"];
  EXPECT_EQ(d["version"], "2.0.0");
  EXPECT_EQ(d["fileUrl"], "https://fw/2.bin");
  EXPECT_EQ(d["fileSize"], 1024);
  EXPECT_EQ(d["sign"], std::string(64, 'a'));
  EXPECT_EQ(d["signMethod"], "sha256");
  EXPECT_EQ(d["manifest"], "YWJj");
  EXPECT_EQ(d["signature"], "");
  EXPECT_EQ(d["executionId"], 4294967297u);
  EXPECT_EQ(d["attempt"], 1);
  o->Clear();
  o->set_reason("no upgrade available for dk");
  reply = json::parse(encode_reply("5", r));
  EXPECT_EQ(reply["code"], 200);
  EXPECT_EQ(reply["data"], json::object());
  EXPECT_EQ(reply["message"], "no upgrade available for dk");
}

TEST(MqttCodec, PushesGoToTheDevicesUpgradeTopic) {
  v1::UpgradePush p;
  p.set_product_key("pk");
  p.set_device_key("dk");
  p.set_execution_id(4294967298u);
  p.set_attempt(2);
  p.mutable_firmware()->set_version("2.0.0");
  p.mutable_firmware()->set_signature(std::string(2, '\xff'));
  auto out = encode_push(p);
  EXPECT_EQ(out.topic, "/sys/pk/dk/ota/device/upgrade");
  auto x = json::parse(out.payload);
  EXPECT_EQ(x["id"], "4294967298.2");
  EXPECT_EQ(x["version"], "1.0");
  EXPECT_EQ(x["method"], "ota.device.upgrade");
  EXPECT_EQ(x["params"]["executionId"], 4294967298u);
  EXPECT_EQ(x["params"]["attempt"], 2);
  EXPECT_EQ(x["params"]["signature"], "//8=");
  auto id = parse_push_id(x["id"].get<std::string>());
  ASSERT_TRUE(id);
  EXPECT_EQ(id->first, 4294967298u);
  v1::CancelPush c;
  c.set_product_key("pk");
  c.set_device_key("dk");
  c.set_execution_id(4294967298u);
  auto cancel = encode_cancel(c);
  EXPECT_EQ(cancel.topic, "/sys/pk/dk/ota/device/cancel");
  auto y = json::parse(cancel.payload);
  EXPECT_EQ(y["method"], "ota.device.cancel");
  EXPECT_EQ(y["params"]["executionId"], 4294967298u);
}
