/// Tests of the event codec, for every payload case of
/// `fota.v1.EventEnvelope` (found through the descriptor, so a new event type
/// without an example and a golden file fails here):
/// - round trip: serialize, parse, compare; once with the fixed example and
///   once with every field of the schema set by reflection;
/// - golden bytes: `golden/<field>.bin` holds the bytes of the fixed example
///   as they were written when the event type was introduced; decoding them
///   must give the example back, so renumbering or retyping a field fails.
///
/// Run with FOTA_WRITE_GOLDEN=1 to (re)write the golden files. Only do so
/// for a new event type: rewriting an existing file hides the very change
/// this test is there to catch. When a field is added to an event, the old
/// file still decodes to the old example; extend the example and rewrite
/// the file only if the new field needs golden coverage.
#include "events/event.hpp"
#include "fota/v1/events.pb.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

// -- fixed examples ----------------------------------------------------------

// Every value below is a literal: the examples must never depend on the
// clock, the environment or iteration order.

constexpr int64_t example_time_ms = 1'767'225'600'123; // 2026-01-01T00:00:00Z

void fill_firmware(v1::Firmware& fw) {
  fw.set_product_key("p1");
  fw.set_version("2.0.1");
  fw.set_url("https://fw.example/p1/2.0.1.bin");
  fw.set_size(1'048'576);
  fw.set_sha256(
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  fw.set_signature(std::string("\x00\x01\xfe\xff sig", 8));
  fw.set_description("fixes the watchdog");
  fw.set_status(v1::FIRMWARE_STATUS_VERIFIED);
  fw.set_created_at_ms(1'767'225'000'000);
  fw.add_verification_device_keys("d1");
  fw.add_verification_device_keys("d2");
  fw.set_verification_failure("d3 timed out");
}

void fill_spec(v1::TaskSpec& s) {
  s.set_name("roll out 2.0.1");
  s.set_product_key("p1");
  s.set_target_version("2.0.1");
  s.add_source_versions("1.9");
  s.add_source_versions("2.0.0");
  s.set_strategy(v1::STRATEGY_INCREMENT);
  // The codec carries every filter, even though validation allows only one.
  auto* scope = s.mutable_scope();
  scope->set_kind(v1::SCOPE_KIND_TARGET);
  scope->mutable_device_keys()->add_device_keys("d1");
  scope->mutable_device_keys()->add_device_keys("d2");
  scope->mutable_tag()->set_key("site");
  scope->mutable_tag()->set_value("berlin");
  scope->mutable_attribute()->set_name("hw");
  scope->mutable_attribute()->set_value("rev-b");
  auto* tree = scope->mutable_asset_trees()->add_trees();
  tree->set_tree_id("t1");
  tree->add_node_ids("root");
  tree->add_node_ids("n1");
  s.set_method(v1::METHOD_CLOUD_PUSH);
  s.mutable_schedule()->set_time_zone("Europe/Berlin");
  auto* w = s.mutable_schedule()->add_windows();
  w->set_start_minute(1320);
  w->set_end_minute(120);
  w = s.mutable_schedule()->add_windows();
  w->set_start_minute(600);
  w->set_end_minute(660);
  s.mutable_rate()->set_max_per_minute(1000);
  s.mutable_rate()->mutable_ramp_up()->set_base_per_minute(10);
  s.mutable_rate()->mutable_ramp_up()->set_factor(2.5);
  s.mutable_rate()->mutable_ramp_up()->set_successes_per_step(50);
  s.set_timeout_seconds(3600);
  s.mutable_retry()->set_max_retries(3);
  s.mutable_retry()->set_interval_seconds(120);
  s.mutable_abort()->set_failure_percent(12.5);
  s.mutable_abort()->set_min_finished(20);
  s.mutable_abort()->set_action(v1::ABORT_ACTION_CANCEL);
  s.set_end_time_ms(1'767'312'000'000);
  s.set_priority(-3);
}

using example_map = std::map<std::string, std::function<void(event&)>>;

/// One fixed, fully populated example per payload field name.
const example_map& examples() {
  static const example_map xs = {
      // -- firmware --
      {"firmware_created",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         fill_firmware(*e.mutable_firmware_created()->mutable_firmware());
       }},
      {"firmware_verification_started",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         auto* x = e.mutable_firmware_verification_started();
         x->set_product_key("p1");
         x->set_version("2.0.1");
         x->add_device_keys("d1");
         x->add_device_keys("d2");
         x->set_timeout_seconds(900);
       }},
      {"firmware_verified",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         e.mutable_firmware_verified()->set_product_key("p1");
         e.mutable_firmware_verified()->set_version("2.0.1");
       }},
      {"firmware_verification_failed",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         auto* x = e.mutable_firmware_verification_failed();
         x->set_product_key("p1");
         x->set_version("2.0.1");
         x->set_reason("d2 failed: E_FLASH");
       }},
      {"firmware_verification_skipped",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         auto* x = e.mutable_firmware_verification_skipped();
         x->set_product_key("p1");
         x->set_version("2.0.1");
         x->set_reason("attested: same image as 2.0.0, signed by QA");
       }},
      {"firmware_deleted",
       [](event& e) {
         e.set_stream("firmware/p1/2.0.1");
         e.mutable_firmware_deleted()->set_product_key("p1");
         e.mutable_firmware_deleted()->set_version("2.0.1");
       }},
      // -- devices --
      {"device_registered",
       [](event& e) {
         e.set_stream("device/p1/d1");
         auto* x = e.mutable_device_registered();
         x->set_product_key("p1");
         x->set_device_key("d1");
         x->set_version("1.9");
         (*x->mutable_tags())["site"] = "berlin";
         (*x->mutable_tags())["floor"] = "3";
         (*x->mutable_attributes())["hw"] = "rev-b";
         (*x->mutable_attributes())["serial"] = "SN-0001";
       }},
      {"device_version_reported",
       [](event& e) {
         e.set_stream("device/p1/d1");
         auto* x = e.mutable_device_version_reported();
         x->set_product_key("p1");
         x->set_device_key("d1");
         x->set_version("2.0.1");
       }},
      {"device_connected",
       [](event& e) {
         e.set_stream("device/p1/d1");
         e.mutable_device_connected()->set_product_key("p1");
         e.mutable_device_connected()->set_device_key("d1");
       }},
      {"device_disconnected",
       [](event& e) {
         e.set_stream("device/p1/d1");
         e.mutable_device_disconnected()->set_product_key("p1");
         e.mutable_device_disconnected()->set_device_key("d1");
       }},
      {"device_tags_changed",
       [](event& e) {
         e.set_stream("device/p1/d1");
         auto* x = e.mutable_device_tags_changed();
         x->set_product_key("p1");
         x->set_device_key("d1");
         (*x->mutable_tags())["site"] = "hamburg";
         (*x->mutable_tags())["floor"] = ""; // removes the tag
       }},
      {"device_attributes_changed",
       [](event& e) {
         e.set_stream("device/p1/d1");
         auto* x = e.mutable_device_attributes_changed();
         x->set_product_key("p1");
         x->set_device_key("d1");
         (*x->mutable_attributes())["hw"] = "rev-c";
         (*x->mutable_attributes())["serial"] = "";
       }},
      {"device_gateway_changed",
       [](event& e) {
         e.set_stream("device/p1/d1");
         auto* x = e.mutable_device_gateway_changed();
         x->set_product_key("p1");
         x->set_device_key("d1");
         x->set_gateway("plant-2");
         x->set_previous_gateway("plant-1");
       }},
      // -- asset trees --
      {"asset_tree_created",
       [](event& e) {
         e.set_stream("tree/p1/t1");
         auto* t = e.mutable_asset_tree_created()->mutable_tree();
         t->set_tree_id("t1");
         t->set_product_key("p1");
         t->set_name("plant");
         auto* root = t->add_nodes();
         root->set_node_id("root");
         root->set_parent_id("");
         root->set_name("site");
         root->set_device_key("gw1");
         auto* leaf = t->add_nodes();
         leaf->set_node_id("n1");
         leaf->set_parent_id("root");
         leaf->set_name("line 1");
         leaf->set_device_key("d1");
       }},
      {"asset_tree_deleted",
       [](event& e) {
         e.set_stream("tree/p1/t1");
         e.mutable_asset_tree_deleted()->set_product_key("p1");
         e.mutable_asset_tree_deleted()->set_tree_id("t1");
       }},
      // -- tasks --
      {"task_created",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_task_created();
         x->set_task_id(42);
         fill_spec(*x->mutable_spec());
         fill_firmware(*x->mutable_firmware());
       }},
      {"devices_enrolled",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_devices_enrolled();
         x->set_task_id(42);
         x->set_first_sequence(4097);
         x->add_device_keys("d1");
         x->add_device_keys("d2");
         x->add_device_keys("d3");
       }},
      {"devices_skipped",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_devices_skipped();
         x->set_task_id(42);
         auto* d = x->add_devices();
         d->set_device_key("d4");
         d->set_reason("busy in task 41");
         d = x->add_devices();
         d->set_device_key("d5");
         d->set_reason("unknown device");
       }},
      {"execution_notified",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_execution_notified();
         x->set_task_id(42);
         x->set_sequence(7);
         x->set_attempt(2);
       }},
      {"execution_started",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_execution_started()->set_task_id(42);
         e.mutable_execution_started()->set_sequence(7);
       }},
      {"execution_progressed",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_execution_progressed();
         x->set_task_id(42);
         x->set_sequence(7);
         x->set_step(55);
         x->set_text("flashing bank B");
       }},
      {"execution_succeeded",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_execution_succeeded()->set_task_id(42);
         e.mutable_execution_succeeded()->set_sequence(7);
       }},
      {"execution_failed",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_execution_failed();
         x->set_task_id(42);
         x->set_sequence(7);
         x->set_code("E_FLASH");
         x->set_text("write failed at block 12");
       }},
      {"execution_timed_out",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_execution_timed_out()->set_task_id(42);
         e.mutable_execution_timed_out()->set_sequence(7);
       }},
      {"execution_requeued",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_execution_requeued();
         x->set_task_id(42);
         x->set_sequence(7);
         x->set_attempt(3);
       }},
      {"executions_canceled",
       [](event& e) {
         e.set_stream("task/42");
         auto* x = e.mutable_executions_canceled();
         x->set_task_id(42);
         x->add_sequences(1);
         x->add_sequences(7);
         x->add_sequences(300000);
       }},
      {"task_paused",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_task_paused()->set_task_id(42);
         e.mutable_task_paused()->set_reason("abort rule: 12.5% failed");
       }},
      {"task_resumed",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_task_resumed()->set_task_id(42);
       }},
      {"task_canceled",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_task_canceled()->set_task_id(42);
         e.mutable_task_canceled()->set_reason("canceled by operator");
       }},
      {"task_completed",
       [](event& e) {
         e.set_stream("task/42");
         e.mutable_task_completed()->set_task_id(42);
       }},
  };
  return xs;
}

/// The fixed example envelope for payload field `name`.
event example(const std::string& name) {
  event e;
  e.set_sequence(1'000'000'007);
  e.set_time_ms(example_time_ms);
  examples().at(name)(e);
  return e;
}

// -- reflection helpers ------------------------------------------------------

/// The fields of the payload oneof, in declaration order.
std::vector<const FieldDescriptor*> payload_fields() {
  const auto* oneof = event::descriptor()->FindOneofByName("payload");
  std::vector<const FieldDescriptor*> out;
  if (oneof == nullptr)
    return out;
  for (int i = 0; i < oneof->field_count(); ++i)
    out.push_back(oneof->field(i));
  return out;
}

std::vector<std::string> payload_names() {
  std::vector<std::string> out;
  for (const auto* f : payload_fields())
    out.push_back(f->name());
  return out;
}

/// Appends the paths of fields of `m` that hold their default value.
void collect_unset(const Message& m, const std::string& prefix,
                   std::vector<std::string>& out) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    // Of a oneof, only the case that is set counts.
    if (f->real_containing_oneof() != nullptr && !r->HasField(m, f))
      continue;
    auto path = prefix + f->name();
    if (f->is_repeated()) {
      if (r->FieldSize(m, f) == 0)
        out.push_back(path);
      else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
               !f->is_map())
        for (int k = 0; k < r->FieldSize(m, f); ++k)
          collect_unset(r->GetRepeatedMessage(m, f, k),
                        path + "[" + std::to_string(k) + "].", out);
    } else if (!r->HasField(m, f)) {
      out.push_back(path);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      collect_unset(r->GetMessage(m, f), path + ".", out);
    }
  }
}

/// Fields the example leaves unset, with a few that legitimately hold their
/// default (an empty parent id marks the root; an empty tag value removes).
std::vector<std::string> unset_fields(const Message& m) {
  static const std::set<std::string> allowed = {
      "asset_tree_created.tree.nodes[0].parent_id",
  };
  std::vector<std::string> all;
  collect_unset(m, "", all);
  std::vector<std::string> out;
  for (auto& x : all)
    if (allowed.count(x) == 0)
      out.push_back(x);
  return out;
}

/// Sets every field of `m`, recursively, to distinct non-default values.
void fill_everything(Message& m, int& counter, int depth = 0) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->real_containing_oneof() != nullptr && f->index_in_oneof() != 0)
      continue; // set one case of each oneof
    int n = f->is_repeated() ? 2 : 1;
    for (int k = 0; k < n; ++k) {
      int v = ++counter;
      switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        if (depth > 6)
          break;
        Message* child =
            f->is_repeated() ? r->AddMessage(&m, f) : r->MutableMessage(&m, f);
        fill_everything(*child, counter, depth + 1);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        auto s = f->type() == FieldDescriptor::TYPE_BYTES
                     ? std::string("\x00\xff", 2) + std::to_string(v)
                     : f->name() + "-" + std::to_string(v);
        f->is_repeated() ? r->AddString(&m, f, s) : r->SetString(&m, f, s);
        break;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = f->enum_type();
        const auto* last = e->value(e->value_count() - 1);
        f->is_repeated() ? r->AddEnum(&m, f, last) : r->SetEnum(&m, f, last);
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        f->is_repeated() ? r->AddBool(&m, f, true) : r->SetBool(&m, f, true);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        f->is_repeated() ? r->AddInt32(&m, f, -v) : r->SetInt32(&m, f, -v);
        break;
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t x = -int64_t{v} * 1'000'000'007;
        f->is_repeated() ? r->AddInt64(&m, f, x) : r->SetInt64(&m, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        auto x = static_cast<uint32_t>(v) | 0x80000000u;
        f->is_repeated() ? r->AddUInt32(&m, f, x) : r->SetUInt32(&m, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t x = (uint64_t{1} << 40) + static_cast<uint64_t>(v);
        f->is_repeated() ? r->AddUInt64(&m, f, x) : r->SetUInt64(&m, f, x);
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
        f->is_repeated() ? r->AddDouble(&m, f, v + 0.25)
                         : r->SetDouble(&m, f, v + 0.25);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        f->is_repeated() ? r->AddFloat(&m, f, v + 0.5f)
                         : r->SetFloat(&m, f, v + 0.5f);
        break;
      }
    }
  }
}

/// An envelope with `payload` as its case and every field set.
event fully_populated(const FieldDescriptor* payload) {
  event e;
  int counter = 0;
  e.set_sequence(99);
  e.set_time_ms(example_time_ms);
  e.set_stream("stream");
  fill_everything(*e.GetReflection()->MutableMessage(&e, payload), counter);
  return e;
}

/// Returns whether `m` or any message inside it has unknown fields.
bool has_unknown_fields(const Message& m) {
  const auto* r = m.GetReflection();
  if (!r->GetUnknownFields(m).empty())
    return true;
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const auto* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE)
      continue;
    if (f->is_repeated()) {
      for (int k = 0; k < r->FieldSize(m, f); ++k)
        if (has_unknown_fields(r->GetRepeatedMessage(m, f, k)))
          return true;
    } else if (has_unknown_fields(r->GetMessage(m, f))) {
      return true;
    }
  }
  return false;
}

/// Serializes with a stable map order, so rewritten files only change when
/// the example does.
std::string deterministic_bytes(const Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::filesystem::path golden_dir() {
  return FOTA_GOLDEN_DIR;
}

bool write_golden() {
  const char* x = std::getenv("FOTA_WRITE_GOLDEN");
  return x != nullptr && std::string{x} == "1";
}

std::string differences(const Message& x, const Message& y) {
  std::string out;
  MessageDifferencer d;
  d.ReportDifferencesToString(&out);
  d.Compare(x, y);
  return out;
}

// -- tests -------------------------------------------------------------------

TEST(EventCodec, EnvelopeHasPayloadCases) {
  // Guards the iteration below against a renamed oneof.
  EXPECT_GE(payload_fields().size(), 28u);
}

TEST(EventCodec, ExamplesCoverExactlyThePayloadCases) {
  std::set<std::string> cases;
  for (const auto& name : payload_names())
    cases.insert(name);
  for (const auto& [name, fill] : examples())
    EXPECT_EQ(cases.count(name), 1u) << "example for unknown case " << name;
}

TEST(EventCodec, EveryGoldenFileNamesAPayloadCase) {
  std::set<std::string> cases;
  for (const auto& name : payload_names())
    cases.insert(name);
  ASSERT_TRUE(std::filesystem::is_directory(golden_dir())) << golden_dir();
  for (const auto& entry : std::filesystem::directory_iterator(golden_dir())) {
    auto p = entry.path();
    EXPECT_EQ(p.extension(), ".bin") << p;
    EXPECT_EQ(cases.count(p.stem().string()), 1u)
        << p << " belongs to no payload case of fota.v1.EventEnvelope";
  }
}

/// One instance per payload case of the envelope.
class EveryEvent : public testing::TestWithParam<std::string> {
protected:
  const FieldDescriptor* field() const {
    return event::descriptor()->FindFieldByName(GetParam());
  }
};

TEST_P(EveryEvent, HasExample) {
  ASSERT_EQ(examples().count(GetParam()), 1u)
      << "add an example for " << GetParam() << " to event_codec_test.cpp";
  auto e = example(GetParam());
  EXPECT_EQ(static_cast<int>(e.payload_case()), field()->number());
  EXPECT_TRUE(e.GetReflection()->HasField(e, field()));
}

TEST_P(EveryEvent, RoundTripsExample) {
  ASSERT_EQ(examples().count(GetParam()), 1u);
  auto original = example(GetParam());
  auto bytes = original.SerializeAsString();
  event decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_EQ(decoded.payload_case(), original.payload_case());
  EXPECT_TRUE(MessageDifferencer::Equals(original, decoded))
      << differences(original, decoded);
}

TEST_P(EveryEvent, RoundTripsEveryField) {
  auto original = fully_populated(field());
  std::vector<std::string> unset;
  collect_unset(original, "", unset);
  EXPECT_TRUE(unset.empty()) << "reflection left " << unset.front() << " unset";
  auto bytes = encode({original});
  ASSERT_EQ(bytes.size(), 1u);
  event decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes[0]));
  EXPECT_FALSE(has_unknown_fields(decoded));
  EXPECT_TRUE(MessageDifferencer::Equals(original, decoded))
      << differences(original, decoded);
}

TEST_P(EveryEvent, DecodesGoldenBytes) {
  ASSERT_EQ(examples().count(GetParam()), 1u);
  auto expected = example(GetParam());
  auto path = golden_dir() / (GetParam() + ".bin");
  if (write_golden()) {
    auto unset = unset_fields(expected);
    std::string list;
    for (const auto& x : unset)
      list += " " + x;
    ASSERT_TRUE(unset.empty())
        << "not writing " << path << ": the example leaves unset:" << list;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << deterministic_bytes(expected);
    ASSERT_TRUE(out.good()) << "cannot write " << path;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in.good()) << "missing golden file " << path
                         << "; run events_tests with FOTA_WRITE_GOLDEN=1 "
                            "once to create it, then commit it";
  std::string bytes{std::istreambuf_iterator<char>(in),
                    std::istreambuf_iterator<char>()};
  ASSERT_FALSE(bytes.empty()) << path;
  event decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes)) << path;
  EXPECT_EQ(static_cast<int>(decoded.payload_case()), field()->number());
  EXPECT_FALSE(has_unknown_fields(decoded))
      << "stored bytes hold fields the schema no longer knows";
  EXPECT_TRUE(MessageDifferencer::Equals(expected, decoded))
      << differences(expected, decoded);
}

INSTANTIATE_TEST_SUITE_P(EventCodec, EveryEvent,
                         testing::ValuesIn(payload_names()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

} // namespace
