#include "events/manifest.hpp"
#include "mqtt/codec.hpp"
#include "mqtt/device_codec.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace fota;
using namespace fota::mqtt;
using json = nlohmann::json;

namespace {

/// What the bridge makes of the message a device publishes for `f`.
inbound through_bridge(const v1::ClientFrame& f, uint64_t id = 7) {
  auto msg = encode_request(f, id);
  EXPECT_TRUE(msg) << (msg ? "" : msg.error().message);
  if (!msg)
    return {};
  auto topic = parse_topic(msg->topic);
  EXPECT_TRUE(topic) << msg->topic;
  if (!topic)
    return {};
  auto x = decode(*topic, msg->payload);
  EXPECT_EQ(x.error, "") << msg->payload;
  return x;
}

v1::Firmware firmware() {
  v1::Firmware fw;
  fw.set_product_key("pk");
  fw.set_version("2.0.0");
  fw.set_url("https://firmware.example/2.0.0.bin");
  fw.set_size(1048576);
  fw.set_sha256(std::string(64, 'a'));
  fw.set_signature(std::string("\x01\x02\x00\xff", 4));
  fw.set_description("the release");
  return fw;
}

device_topic reply_topic(const char* kind) {
  return device_topic{"pk", "dk", kind};
}

} // namespace

// -- requests: what the bridge reads is the native request -------------------

TEST(MqttDeviceCodec, RegistrationAndVersionReportsAreInforms) {
  v1::ClientFrame reg;
  auto* r = reg.mutable_register_device();
  r->set_product_key("pk");
  r->set_device_key("dk");
  r->set_version("1.0.0");
  auto x = through_bridge(reg, 41);
  ASSERT_TRUE(x.frame);
  EXPECT_TRUE(x.replies);
  EXPECT_EQ(x.id, "\"41\"");
  EXPECT_EQ(x.frame->register_device().device_key(), "dk");
  EXPECT_EQ(x.frame->register_device().version(), "1.0.0");

  v1::ClientFrame report;
  auto* v = report.mutable_report_version();
  v->set_product_key("pk");
  v->set_device_key("dk");
  v->set_version("2.0.0");
  auto msg = encode_request(report, 42);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->topic, "/sys/pk/dk/ota/device/inform");
  EXPECT_TRUE(msg->replied);
  auto y = through_bridge(report);
  ASSERT_TRUE(y.frame);
  EXPECT_EQ(y.frame->register_device().version(), "2.0.0");
}

TEST(MqttDeviceCodec, StatusesAreRetainedAndUnanswered) {
  for (bool online : {true, false}) {
    v1::ClientFrame f;
    if (online) {
      f.mutable_device_online()->set_product_key("pk");
      f.mutable_device_online()->set_device_key("dk");
    } else {
      f.mutable_device_offline()->set_product_key("pk");
      f.mutable_device_offline()->set_device_key("dk");
    }
    auto msg = encode_request(f, 1);
    ASSERT_TRUE(msg);
    EXPECT_EQ(msg->topic, "/sys/pk/dk/ota/device/status");
    EXPECT_TRUE(msg->retained);
    EXPECT_FALSE(msg->replied);
    auto x = through_bridge(f);
    ASSERT_TRUE(x.frame);
    EXPECT_FALSE(x.replies);
    EXPECT_EQ(x.frame->has_device_online(), online);
    EXPECT_EQ(x.frame->has_device_offline(), !online);
  }
}

TEST(MqttDeviceCodec, ProgressAndConfirmationCarryTheExecution) {
  v1::ClientFrame p;
  auto* x = p.mutable_report_progress();
  x->set_product_key("pk");
  x->set_device_key("dk");
  x->set_execution_id(4294967297u);
  x->set_step(50);
  x->set_text("installing");
  auto a = through_bridge(p);
  ASSERT_TRUE(a.frame);
  EXPECT_EQ(a.frame->report_progress().execution_id(), 4294967297u);
  EXPECT_EQ(a.frame->report_progress().step(), 50u);
  EXPECT_EQ(a.frame->report_progress().text(), "installing");

  // A confirmation of an offer is the first progress report, step 0.
  v1::ClientFrame c;
  auto* y = c.mutable_confirm_upgrade();
  y->set_product_key("pk");
  y->set_device_key("dk");
  y->set_execution_id(4294967298u);
  auto b = through_bridge(c);
  ASSERT_TRUE(b.frame);
  ASSERT_TRUE(b.frame->has_report_progress());
  EXPECT_EQ(b.frame->report_progress().execution_id(), 4294967298u);
  EXPECT_EQ(b.frame->report_progress().step(), 0u);
}

TEST(MqttDeviceCodec, FailuresBecomeNegativeStepsByCode) {
  EXPECT_EQ(failure_step("verification_failed"), -3);
  EXPECT_EQ(failure_step("VERIFY_FAILED"), -3);
  EXPECT_EQ(failure_step("DOWNLOAD_FAILED"), -2);
  EXPECT_EQ(failure_step("E_FLASH"), -4);
  EXPECT_EQ(failure_step("FLASH_FAILED"), -4);
  EXPECT_EQ(failure_step("E_SOMETHING"), -1);
  v1::ClientFrame f;
  auto* x = f.mutable_report_failure();
  x->set_product_key("pk");
  x->set_device_key("dk");
  x->set_execution_id(9);
  x->set_code("E_FLASH");
  x->set_text("flash write failed at block 7");
  auto y = through_bridge(f);
  ASSERT_TRUE(y.frame);
  ASSERT_TRUE(y.frame->has_report_failure());
  EXPECT_EQ(y.frame->report_failure().code(), "FLASH_FAILED");
  EXPECT_EQ(y.frame->report_failure().execution_id(), 9u);
  EXPECT_EQ(y.frame->report_failure().text(), "flash write failed at block 7");
}

TEST(MqttDeviceCodec, RequestsAndAcknowledgementsReachTheBridge) {
  v1::ClientFrame r;
  r.mutable_request_upgrade()->set_product_key("pk");
  r.mutable_request_upgrade()->set_device_key("dk");
  auto x = through_bridge(r);
  ASSERT_TRUE(x.frame);
  EXPECT_TRUE(x.frame->has_request_upgrade());
  EXPECT_TRUE(x.replies);

  v1::ClientFrame a;
  auto* y = a.mutable_ack_push();
  y->set_product_key("pk");
  y->set_device_key("dk");
  y->set_execution_id(4294967297u);
  y->set_attempt(2);
  auto msg = encode_request(a, 1);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->topic, "/sys/pk/dk/ota/device/upgrade_reply");
  EXPECT_FALSE(msg->replied);
  auto z = through_bridge(a);
  ASSERT_TRUE(z.frame);
  EXPECT_EQ(z.frame->ack_push().execution_id(), 4294967297u);
  EXPECT_EQ(z.frame->ack_push().attempt(), 2u);
}

TEST(MqttDeviceCodec, RequestsWithoutATopicAreRefusedByName) {
  v1::ClientFrame f;
  f.mutable_register_devices();
  auto msg = encode_request(f, 1);
  ASSERT_FALSE(msg);
  EXPECT_EQ(msg.error().code, errc::invalid_argument);
  EXPECT_NE(msg.error().message.find("MQTT has no topic"), std::string::npos);
}

// -- replies and pushes: what the bridge sends is the native answer ----------

TEST(MqttDeviceCodec, RepliesCarryTheIdAndTheStatus) {
  v1::Response ok;
  ok.set_status(v1::STATUS_CODE_OK);
  auto a =
      decode_reply(reply_topic("inform_reply"), encode_reply("\"17\"", ok));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, "17");
  EXPECT_EQ(a->response.status(), v1::STATUS_CODE_OK);

  for (auto status :
       {v1::STATUS_CODE_INVALID_ARGUMENT, v1::STATUS_CODE_PERMISSION_DENIED,
        v1::STATUS_CODE_NOT_FOUND, v1::STATUS_CODE_FAILED_PRECONDITION,
        v1::STATUS_CODE_RESOURCE_EXHAUSTED, v1::STATUS_CODE_UNAVAILABLE,
        v1::STATUS_CODE_INTERNAL}) {
    v1::Response r;
    r.set_status(status);
    r.set_message("because");
    auto b = decode_reply(reply_topic("progress_reply"), encode_reply("18", r));
    ASSERT_TRUE(b);
    EXPECT_EQ(b->id, "18");
    EXPECT_EQ(b->response.status(), status);
    EXPECT_EQ(b->response.message(), "because");
  }
}

TEST(MqttDeviceCodec, GetversionRepliesCarryTheOfferOrItsAbsence) {
  v1::Response r;
  r.set_status(v1::STATUS_CODE_OK);
  auto* o = r.mutable_offer();
  o->set_available(true);
  o->set_execution_id(4294967297u);
  o->set_attempt(3);
  *o->mutable_firmware() = firmware();
  o->set_manifest(manifest_of(firmware()));
  auto a = decode_reply(reply_topic("getversion_reply"), encode_reply("5", r));
  ASSERT_TRUE(a) << a.error().message;
  const auto& offer = a->response.offer();
  EXPECT_TRUE(offer.available());
  EXPECT_EQ(offer.execution_id(), 4294967297u);
  EXPECT_EQ(offer.attempt(), 3u);
  EXPECT_EQ(offer.firmware().SerializeAsString(),
            firmware().SerializeAsString());
  EXPECT_EQ(offer.manifest(), manifest_of(firmware()));

  v1::Response none;
  none.set_status(v1::STATUS_CODE_OK);
  none.mutable_offer()->set_reason("no upgrade available for pk/dk");
  auto b =
      decode_reply(reply_topic("getversion_reply"), encode_reply("6", none));
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->response.offer().available());
  EXPECT_EQ(b->response.offer().reason(), "no upgrade available for pk/dk");
}

TEST(MqttDeviceCodec, PushesAndCancelsComeBackWhole) {
  v1::UpgradePush p;
  p.set_product_key("pk");
  p.set_device_key("dk");
  p.set_execution_id(4294967297u);
  p.set_attempt(2);
  *p.mutable_firmware() = firmware();
  p.set_manifest(manifest_of(firmware()));
  auto out = encode_push(p);
  auto topic = parse_topic(out.topic);
  ASSERT_TRUE(topic);
  auto x = decode_push(*topic, out.payload);
  ASSERT_TRUE(x) << x.error().message;
  ASSERT_TRUE(x->has_upgrade());
  EXPECT_EQ(x->upgrade().SerializeAsString(), p.SerializeAsString());

  v1::CancelPush c;
  c.set_product_key("pk");
  c.set_device_key("dk");
  c.set_execution_id(4294967297u);
  auto cancel = encode_cancel(c);
  auto y = decode_push(*parse_topic(cancel.topic), cancel.payload);
  ASSERT_TRUE(y) << y.error().message;
  ASSERT_TRUE(y->has_cancel());
  EXPECT_EQ(y->cancel().SerializeAsString(), c.SerializeAsString());
}

TEST(MqttDeviceCodec, BadRepliesAndPushesNameTheField) {
  auto reply = [](std::string_view payload) {
    auto x = decode_reply(reply_topic("getversion_reply"), payload);
    EXPECT_FALSE(x) << payload;
    return x ? std::string{} : x.error().message;
  };
  EXPECT_EQ(reply("nope"), "payload: not JSON");
  EXPECT_EQ(reply("[1]"), "payload: must be a JSON object");
  EXPECT_EQ(reply(R"({"code":200})"), "id: missing");
  EXPECT_EQ(reply(R"({"id":"1"})"), "code: missing");
  EXPECT_EQ(reply(R"({"id":"1","code":"200"})"), "code: must be an integer");
  EXPECT_EQ(reply(R"({"id":"1","code":200,"data":{"version":"2"}})"),
            "data.executionId: missing");

  const device_topic upgrade{"pk", "dk", "upgrade"};
  auto push = [&](const json& params) {
    auto x =
        decode_push(upgrade, json{{"id", "1.1"}, {"params", params}}.dump());
    EXPECT_FALSE(x) << params;
    return x ? std::string{} : x.error().message;
  };
  json good =
      json::parse(encode_params(1, 1, firmware(), manifest_of(firmware())));
  auto without = [&](const char* field) {
    auto x = good;
    x.erase(field);
    return x;
  };
  auto with = [&](const char* field, json value) {
    auto x = good;
    x[field] = std::move(value);
    return x;
  };
  EXPECT_EQ(push(without("version")), "params.version: missing");
  EXPECT_EQ(push(without("fileSize")), "params.fileSize: missing");
  EXPECT_EQ(push(with("attempt", -1)),
            "params.attempt: must be a non-negative integer");
  EXPECT_EQ(push(with("fileUrl", 5)), "params.fileUrl: must be a string");
  EXPECT_EQ(push(with("manifest", "%%%")), "params.manifest: not base64");
  EXPECT_EQ(push(json::array()), "params: must be an object");
}
