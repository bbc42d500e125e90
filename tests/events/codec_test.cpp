/// Tests of the edge codec: every request body decodes to its command (the
/// one parse of a request), every documented limit is enforced with the
/// field named, and values survive the trip to protobuf and back.
#include "events/codec.hpp"
#include "events/limits.hpp"
#include "events/manifest.hpp"
#include "tests/events/test_support.hpp"

#include <cstdint>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using google::protobuf::util::MessageDifferencer;

TEST(Codec, EveryRequestBodyDecodesToTheCommandOfItsName) {
  const auto* oneof = v1::ClientFrame::descriptor()->FindOneofByName("body");
  ASSERT_NE(oneof, nullptr);
  int commands = 0;
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    v1::ClientFrame f;
    f.GetReflection()->MutableMessage(&f, field);
    auto r = decode(f);
    if (field->name() == "hello") {
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().message, "Hello is only valid as the first frame");
      continue;
    }
    if (field->name() == "ping") {
      // The session answers it; it is no command.
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().message, "Ping is only valid on a network session");
      continue;
    }
    ASSERT_TRUE(r) << field->name() << ": " << r.error().message;
    EXPECT_EQ(name_of(*r), field->name());
    ++commands;
  }
  EXPECT_EQ(commands, static_cast<int>(std::variant_size_v<request>));
  auto none = decode(v1::ClientFrame{});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::invalid_argument);
}

TEST(Codec, TheEdgeStampsTheGatewayOnGatewayCommandsOnly) {
  v1::ClientFrame f;
  f.mutable_report_progress()->set_device_key("d1");
  auto r = decode(f);
  ASSERT_TRUE(r);
  stamp_gateway(*r, "gw-a");
  EXPECT_EQ(std::get<report_progress>(*r).gateway, "gw-a");
  // A gateway field can not come from the wire: the command has none.
  v1::ClientFrame move;
  move.mutable_move_device()->set_product_key("p1");
  move.mutable_move_device()->set_device_key("d1");
  move.mutable_move_device()->set_gateway("gw-b");
  auto m = decode(move);
  ASSERT_TRUE(m);
  stamp_gateway(*m, "gw-a");
  EXPECT_EQ(std::get<move_device>(*m).gateway, "gw-b");
  EXPECT_EQ(required_role(*m), v1::ROLE_OPERATOR);
}

TEST(Codec, RolesFollowTheCommand) {
  v1::ClientFrame f;
  f.mutable_report_progress()->set_device_key("d1");
  EXPECT_EQ(required_role(*decode(f)), v1::ROLE_GATEWAY);
  auto ref = device_of(*decode(f));
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->second, "d1");
  f.mutable_get_task()->set_task_id(3);
  EXPECT_EQ(required_role(*decode(f)), v1::ROLE_OPERATOR);
  EXPECT_FALSE(device_of(*decode(f)));
}

/// Decodes `f` and returns why it is refused.
failure refusal(const v1::ClientFrame& f) {
  auto r = decode(f);
  if (r) {
    ADD_FAILURE() << "accepted";
    return {};
  }
  return r.error();
}

TEST(Codec, EveryLimitIsEnforcedNamingTheField) {
  const std::string key(limits::key + 1, 'k');
  struct row {
    const char* field;
    std::function<void(v1::ClientFrame&)> fill;
  };
  const row rows[] = {
      {"product_key",
       [&](auto& f) { f.mutable_register_device()->set_product_key(key); }},
      {"device_key",
       [&](auto& f) { f.mutable_report_version()->set_device_key(key); }},
      {"tags",
       [&](auto& f) {
         auto* x = f.mutable_register_device();
         for (size_t i = 0; i <= limits::labels; ++i)
           (*x->mutable_tags())["t" + std::to_string(i)] = "v";
       }},
      {"firmware.url",
       [](auto& f) {
         f.mutable_create_firmware()->mutable_firmware()->set_url(
             std::string(limits::url + 1, 'u'));
       }},
      {"firmware.signature",
       [](auto& f) {
         f.mutable_create_firmware()->mutable_firmware()->set_signature(
             std::string(limits::signature + 1, 's'));
       }},
      {"firmware.description",
       [](auto& f) {
         f.mutable_create_firmware()->mutable_firmware()->set_description(
             std::string(limits::text + 1, 'd'));
       }},
      {"reason",
       [](auto& f) {
         f.mutable_skip_verification()->set_reason(
             std::string(limits::text + 1, 'r'));
       }},
      {"text",
       [](auto& f) {
         f.mutable_report_progress()->set_text(
             std::string(limits::progress_text + 1, 't'));
       }},
      {"code",
       [](auto& f) {
         f.mutable_report_failure()->set_code(
             std::string(limits::failure_code + 1, 'c'));
       }},
      {"spec.source_versions",
       [](auto& f) {
         auto* s = f.mutable_create_task()->mutable_spec();
         for (size_t i = 0; i <= limits::source_versions; ++i)
           s->add_source_versions("v" + std::to_string(i));
       }},
      {"spec.scope.device_keys",
       [](auto& f) {
         auto* k = f.mutable_create_task()
                       ->mutable_spec()
                       ->mutable_scope()
                       ->mutable_device_keys();
         for (size_t i = 0; i <= limits::scope_devices; ++i)
           k->add_device_keys("d");
       }},
      {"spec.schedule.windows",
       [](auto& f) {
         auto* s = f.mutable_create_task()->mutable_spec()->mutable_schedule();
         for (size_t i = 0; i <= limits::windows; ++i)
           s->add_windows();
       }},
      {"tree.nodes",
       [](auto& f) {
         auto* t = f.mutable_create_asset_tree()->mutable_tree();
         for (size_t i = 0; i <= limits::tree_nodes; ++i)
           t->add_nodes();
       }},
      {"page_size",
       [](auto& f) {
         f.mutable_list_tasks()->set_page_size(limits::max_page_size + 1);
       }},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.field);
    v1::ClientFrame f;
    r.fill(f);
    auto err = refusal(f);
    EXPECT_EQ(err.code, errc::invalid_argument);
    EXPECT_EQ(err.message.rfind(std::string{r.field} + ":", 0), 0u)
        << err.message;
  }
  // At the limit, accepted.
  v1::ClientFrame ok;
  ok.mutable_register_device()->set_product_key(std::string(limits::key, 'k'));
  EXPECT_TRUE(decode(ok));
}

TEST(Codec, TaskSpecsSurviveTheTripToProtobufAndBack) {
  auto spec = test::make_spec();
  spec.set_strategy(v1::STRATEGY_INCREMENT);
  spec.set_end_time_ms(123);
  spec.set_priority(-3);
  auto* w = spec.mutable_schedule()->add_windows();
  w->set_start_minute(60);
  w->set_end_minute(120);
  spec.mutable_schedule()->set_time_zone("Europe/Berlin");
  spec.mutable_rate()->set_max_per_minute(600);
  spec.mutable_rate()->mutable_ramp_up()->set_base_per_minute(10);
  spec.mutable_rate()->mutable_ramp_up()->set_factor(2.5);
  spec.mutable_rate()->mutable_ramp_up()->set_successes_per_step(7);
  spec.set_timeout_seconds(900);
  spec.mutable_retry()->set_max_retries(2);
  spec.mutable_retry()->set_interval_seconds(30);
  spec.mutable_abort()->set_failure_percent(12.5);
  spec.mutable_abort()->set_min_finished(8);
  spec.mutable_abort()->set_action(v1::ABORT_ACTION_CANCEL);
  spec.mutable_scope()->set_kind(v1::SCOPE_KIND_TARGET);
  auto* sel = spec.mutable_scope()->mutable_asset_trees()->add_trees();
  sel->set_tree_id("t");
  sel->add_node_ids("n");
  auto back = to_proto(from_proto(spec));
  EXPECT_TRUE(MessageDifferencer::Equals(spec, back))
      << spec.DebugString() << back.DebugString();
  // An empty filter is kept apart from a missing one.
  v1::TaskSpec empty_filter;
  empty_filter.mutable_scope()->mutable_device_keys();
  EXPECT_TRUE(
      from_proto(empty_filter).scope.has(task_scope::device_keys_filter));
  EXPECT_FALSE(
      from_proto(v1::TaskSpec{}).scope.has(task_scope::device_keys_filter));
}

TEST(Codec, FirmwareIsBuiltFieldByField) {
  v1::ClientFrame f;
  auto* fw = f.mutable_create_firmware()->mutable_firmware();
  fw->set_product_key("p1");
  fw->set_version("2.0");
  fw->set_status(v1::FIRMWARE_STATUS_VERIFIED); // not the client's to set
  fw->set_verification_failure("made up");
  auto cmd = std::get<create_firmware>(*decode(f));
  EXPECT_EQ(cmd.product, "p1");
  auto record = from_proto(*fw);
  EXPECT_TRUE(MessageDifferencer::Equals(to_proto(record), *fw));
}

// Generated proto3 classes keep unknown fields but have no accessors for
// them: reflection reaches them.
const google::protobuf::UnknownFieldSet&
unknown_fields_of(const google::protobuf::Message& m) {
  return m.GetReflection()->GetUnknownFields(m);
}

google::protobuf::UnknownFieldSet*
unknown_fields_of(google::protobuf::Message* m) {
  return m->GetReflection()->MutableUnknownFields(m);
}

TEST(Codec, UnknownFieldsAClientSendsAreNeitherStoredNorForwarded) {
  v1::ClientFrame sent;
  auto* create = sent.mutable_create_firmware();
  *create->mutable_firmware() = test::make_firmware("p1", "2.0");
  unknown_fields_of(create->mutable_firmware())
      ->AddLengthDelimited(99, "smuggled-firmware-field");
  unknown_fields_of(create)->AddLengthDelimited(98, "smuggled-request");
  unknown_fields_of(&sent)->AddLengthDelimited(97, "smuggled-frame");
  // As a session receives it: parsed from the wire, unknown fields kept.
  v1::ClientFrame f;
  ASSERT_TRUE(f.ParseFromString(sent.SerializeAsString()));
  ASSERT_EQ(unknown_fields_of(f.create_firmware().firmware()).field_count(), 1);
  auto cmd = std::get<create_firmware>(*decode(f));
  auto xs = test::events_of(
      decide(firmware_catalog{}, cmd, firmware_policy{}, test::at()));
  ASSERT_EQ(xs.size(), 1u);
  auto smuggled = [](const std::string& bytes) {
    return bytes.find("smuggled") != std::string::npos;
  };
  // Not stored: the event holds only known fields.
  const auto& stored = xs[0].firmware_created().firmware();
  EXPECT_EQ(unknown_fields_of(stored).field_count(), 0);
  EXPECT_FALSE(smuggled(xs[0].SerializeAsString()));
  // Not forwarded: GetFirmware, a push and an offer carry none.
  firmware_catalog c;
  ASSERT_FALSE(apply(c, xs[0]));
  const auto& record = *c.find("p1", "2.0");
  EXPECT_FALSE(smuggled(to_response(record).SerializeAsString()));
  auto push = to_upgrade_push("p1", "d1", execution_id{1}, 1, record);
  EXPECT_EQ(unknown_fields_of(push.firmware()).field_count(), 0);
  EXPECT_FALSE(smuggled(push.SerializeAsString()));
  upgrade_offer offer;
  offer.available = true;
  offer.firmware = record;
  EXPECT_FALSE(smuggled(to_response(offer).SerializeAsString()));
}

/// Firmware with every field a client sets at its limit.
firmware_record firmware_at_limits() {
  firmware_record fw;
  fw.product = std::string(limits::key, 'p');
  fw.version = std::string(limits::key, 'v');
  fw.url = "https://" + std::string(limits::url - 8, 'u');
  fw.size = UINT64_MAX;
  fw.sha256 = std::string(64, 'a');
  fw.signature = std::string(limits::signature, 's');
  fw.description = std::string(limits::text, 'd');
  // The catalog's own state, which a device does not get.
  fw.status = v1::FIRMWARE_STATUS_VERIFIED;
  fw.created_at_ms = INT64_MAX;
  fw.verification_devices.assign(5, std::string(limits::key, 'k'));
  fw.verification_failure = std::string(2 * limits::text, 'f');
  fw.verification_skip_reason = std::string(limits::text, 'r');
  return fw;
}

TEST(Codec, EveryPushAndOfferFitsTheSmallestFrame) {
  auto fw = firmware_at_limits();
  v1::ServerFrame push;
  *push.mutable_push()->mutable_upgrade() =
      to_upgrade_push(fw.product, std::string(limits::key, 'k'),
                      execution_id{UINT64_MAX}, UINT32_MAX, fw);
  EXPECT_LE(push.ByteSizeLong(), limits::max_push_frame);
  EXPECT_LE(push.ByteSizeLong(), limits::min_frame_size);
  upgrade_offer offer;
  offer.available = true;
  offer.execution = execution_id{UINT64_MAX};
  offer.attempt = UINT32_MAX;
  offer.firmware = fw;
  v1::ServerFrame answer;
  answer.set_request_id(UINT64_MAX);
  *answer.mutable_response() = to_response(offer);
  EXPECT_LE(answer.ByteSizeLong(), limits::max_push_frame);
}

TEST(Codec, PushesCarryTheDeviceViewAndTheManifest) {
  auto fw = firmware_at_limits();
  auto push = to_upgrade_push(fw.product, "d1", execution_id{7}, 2, fw);
  EXPECT_EQ(push.manifest(), manifest_of(fw));
  EXPECT_EQ(push.manifest(), manifest_of(push.firmware()));
  EXPECT_EQ(push.firmware().signature(), fw.signature);
  EXPECT_EQ(push.firmware().description(), fw.description);
  EXPECT_EQ(push.firmware().status(), v1::FIRMWARE_STATUS_UNSPECIFIED);
  EXPECT_EQ(push.firmware().verification_device_keys_size(), 0);
  EXPECT_TRUE(push.firmware().verification_failure().empty());
  upgrade_offer offer;
  offer.available = true;
  offer.firmware = fw;
  auto o = to_proto(offer);
  EXPECT_EQ(o.manifest(), manifest_of(fw));
  EXPECT_TRUE(MessageDifferencer::Equals(o.firmware(), push.firmware()));
  // No offer, no manifest.
  EXPECT_TRUE(to_proto(upgrade_offer{}).manifest().empty());
}

} // namespace
