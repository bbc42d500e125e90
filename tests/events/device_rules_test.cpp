/// Tests of the device rules: registration validation, idempotent
/// re-registration, version reports, online/offline changes, tags and
/// attributes, and the sorted label map that keeps devices compact.
#include "events/device.hpp"
#include "tests/events/test_support.hpp"

#include <functional>
#include <string>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace {

using namespace fota;
using test::at;
using test::cases_of;
using test::events_of;
using test::failure_of;

v1::RegisterDevice register_cmd() {
  v1::RegisterDevice cmd;
  cmd.set_product_key("p1");
  cmd.set_device_key("d1");
  cmd.set_version("1.0");
  (*cmd.mutable_tags())["site"] = "berlin";
  (*cmd.mutable_tags())["floor"] = "3";
  (*cmd.mutable_attributes())["hw"] = "rev-b";
  return cmd;
}

/// The state that registering `register_cmd()` at t0 leaves.
device_state registered() {
  auto xs = events_of(decide(nullptr, test::cmd(register_cmd()), at()));
  EXPECT_EQ(xs.size(), 1u);
  if (xs.empty())
    return {};
  return make_device(xs[0]);
}

v1::ReportVersion report(const std::string& version) {
  v1::ReportVersion cmd;
  cmd.set_product_key("p1");
  cmd.set_device_key("d1");
  cmd.set_version(version);
  return cmd;
}

// -- register ----------------------------------------------------------------

TEST(DeviceRules, RegisterValidatesEachField) {
  struct row {
    const char* name;
    std::function<void(v1::RegisterDevice&)> mutate;
    const char* field;
  };
  const std::string too_long(max_key_length + 1, 'x');
  const row rows[] = {
      {"empty product", [](auto& c) { c.clear_product_key(); }, "product_key"},
      {"long product", [&](auto& c) { c.set_product_key(too_long); },
       "product_key"},
      {"empty device key", [](auto& c) { c.clear_device_key(); }, "device_key"},
      {"long device key", [&](auto& c) { c.set_device_key(too_long); },
       "device_key"},
      {"empty version", [](auto& c) { c.clear_version(); }, "version"},
      {"long version", [&](auto& c) { c.set_version(too_long); }, "version"},
      {"empty tag key", [](auto& c) { (*c.mutable_tags())[""] = "v"; },
       "tags key"},
      {"long tag key", [&](auto& c) { (*c.mutable_tags())[too_long] = "v"; },
       "tags key"},
      {"long tag value",
       [&](auto& c) { (*c.mutable_tags())["site"] = too_long; }, "tags[site]"},
      {"empty attribute name",
       [](auto& c) { (*c.mutable_attributes())[""] = "v"; }, "attributes key"},
      {"long attribute value",
       [&](auto& c) { (*c.mutable_attributes())["hw"] = too_long; },
       "attributes[hw]"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    auto cmd = register_cmd();
    r.mutate(cmd);
    auto err = failure_of(decide(nullptr, test::cmd(cmd), at()));
    EXPECT_EQ(err.code, errc::invalid_argument);
    EXPECT_NE(err.message.find(r.field), std::string::npos) << err.message;
  }
}

TEST(DeviceRules, KeysOfMaximumLengthAreAccepted) {
  auto cmd = register_cmd();
  cmd.set_product_key(std::string(max_key_length, 'p'));
  cmd.set_device_key(std::string(max_key_length, 'd'));
  cmd.set_version(std::string(max_key_length, 'v'));
  EXPECT_EQ(events_of(decide(nullptr, test::cmd(cmd), at())).size(), 1u);
}

TEST(DeviceRules, RegisterNewDeviceRecordsDeviceRegistered) {
  auto cmd = register_cmd();
  (*cmd.mutable_tags())["empty"] = ""; // an empty value sets nothing
  auto xs = events_of(decide(nullptr, test::cmd(cmd), at(7)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_device_registered());
  EXPECT_EQ(xs[0].stream(), "device/p1/d1");
  const auto& x = xs[0].device_registered();
  EXPECT_EQ(x.product_key(), "p1");
  EXPECT_EQ(x.device_key(), "d1");
  EXPECT_EQ(x.version(), "1.0");
  EXPECT_EQ(x.tags().size(), 2u);
  EXPECT_EQ(x.tags().count("empty"), 0u);
  EXPECT_EQ(x.attributes().at("hw"), "rev-b");

  auto d = make_device(xs[0]);
  EXPECT_EQ(d.product, "p1");
  EXPECT_EQ(d.key, "d1");
  EXPECT_EQ(d.version, "1.0");
  EXPECT_FALSE(d.online);
  EXPECT_FALSE(d.active_execution);
  EXPECT_EQ(d.registered_at_ms, test::t0_ms + 7);
  label_map tags{{"floor", "3"}, {"site", "berlin"}};
  EXPECT_EQ(d.tags, tags);
  label_map attributes{{"hw", "rev-b"}};
  EXPECT_EQ(d.attributes, attributes);
}

TEST(DeviceRules, ReRegisterUnchangedRecordsNothing) {
  auto d = registered();
  auto xs = events_of(decide(&d, test::cmd(register_cmd()), at(1)));
  EXPECT_TRUE(xs.empty());
}

TEST(DeviceRules, ReRegisterWithNewVersionReportsVersion) {
  auto d = registered();
  auto cmd = register_cmd();
  cmd.set_version("1.1");
  auto xs = events_of(decide(&d, test::cmd(cmd), at(1)));
  ASSERT_EQ(cases_of(xs),
            std::vector<event::PayloadCase>{event::kDeviceVersionReported});
  EXPECT_EQ(xs[0].device_version_reported().version(), "1.1");
  EXPECT_EQ(xs[0].device_version_reported().device_key(), "d1");
  test::apply_all(d, xs);
  EXPECT_EQ(d.version, "1.1");
}

TEST(DeviceRules, ReRegisterWithNewTagsChangesTags) {
  auto d = registered();
  auto cmd = register_cmd();
  (*cmd.mutable_tags())["site"] = "hamburg";
  auto xs = events_of(decide(&d, test::cmd(cmd), at(1)));
  ASSERT_EQ(cases_of(xs),
            std::vector<event::PayloadCase>{event::kDeviceTagsChanged});
  test::apply_all(d, xs);
  ASSERT_NE(find_label(d.tags, "site"), nullptr);
  EXPECT_EQ(*find_label(d.tags, "site"), "hamburg");
  EXPECT_EQ(d.version, "1.0");
}

TEST(DeviceRules, ReRegisterWithNewAttributesChangesAttributes) {
  auto d = registered();
  auto cmd = register_cmd();
  (*cmd.mutable_attributes())["hw"] = "rev-c";
  cmd.set_version("1.1");
  auto xs = events_of(decide(&d, test::cmd(cmd), at(1)));
  EXPECT_EQ(cases_of(xs),
            (std::vector<event::PayloadCase>{event::kDeviceVersionReported,
                                             event::kDeviceAttributesChanged}));
  test::apply_all(d, xs);
  EXPECT_EQ(*find_label(d.attributes, "hw"), "rev-c");
  EXPECT_EQ(d.version, "1.1");
}

// -- version reports ---------------------------------------------------------

TEST(DeviceRules, ReportSameVersionRecordsNothing) {
  auto d = registered();
  EXPECT_TRUE(events_of(decide(d, test::cmd(report("1.0")), at(1))).empty());
}

TEST(DeviceRules, ReportNewVersionRecordsDeviceVersionReported) {
  auto d = registered();
  auto xs = events_of(decide(d, test::cmd(report("2.0")), at(1)));
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].has_device_version_reported());
  EXPECT_EQ(xs[0].stream(), "device/p1/d1");
  EXPECT_EQ(xs[0].device_version_reported().product_key(), "p1");
  EXPECT_EQ(xs[0].device_version_reported().version(), "2.0");
  test::apply_all(d, xs);
  EXPECT_EQ(d.version, "2.0");
}

TEST(DeviceRules, ReportEmptyVersionIsRefused) {
  auto d = registered();
  auto err = failure_of(decide(d, test::cmd(report("")), at(1)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("version"), std::string::npos);
}

// -- online / offline --------------------------------------------------------

TEST(DeviceRules, OnlineAndOfflineWriteNoEvents) {
  // Online state is volatile: a restart ends every session.
  auto d = registered();
  v1::DeviceOnline on;
  v1::DeviceOffline off;
  EXPECT_TRUE(events_of(decide(d, test::cmd(off), at(1))).empty());
  EXPECT_TRUE(events_of(decide(d, test::cmd(on), at(1))).empty());
  d.online = true;
  EXPECT_TRUE(events_of(decide(d, test::cmd(on), at(2))).empty());
  EXPECT_TRUE(events_of(decide(d, test::cmd(off), at(3))).empty());
}

// -- tags and attributes -----------------------------------------------------

TEST(DeviceRules, SetTagsNeedsAtLeastOneTag) {
  auto d = registered();
  auto err = failure_of(decide(d, test::cmd(v1::SetDeviceTags{}), at(1)));
  EXPECT_EQ(err.code, errc::invalid_argument);
  EXPECT_NE(err.message.find("tags"), std::string::npos);
}

TEST(DeviceRules, SetTagsSetsAndRemoves) {
  auto d = registered();
  v1::SetDeviceTags cmd;
  (*cmd.mutable_tags())["site"] = "";   // removes
  (*cmd.mutable_tags())["zone"] = "a";  // adds
  (*cmd.mutable_tags())["floor"] = "3"; // unchanged
  auto xs = events_of(decide(d, test::cmd(cmd), at(1)));
  ASSERT_EQ(cases_of(xs),
            std::vector<event::PayloadCase>{event::kDeviceTagsChanged});
  test::apply_all(d, xs);
  label_map expected{{"floor", "3"}, {"zone", "a"}};
  EXPECT_EQ(d.tags, expected);
  // Removing a tag that is not there changes nothing.
  v1::SetDeviceTags again;
  (*again.mutable_tags())["site"] = "";
  EXPECT_TRUE(events_of(decide(d, test::cmd(again), at(2))).empty());
}

TEST(DeviceRules, SetAttributesRecordsOnlyChanges) {
  auto d = registered();
  v1::SetDeviceAttributes same;
  (*same.mutable_attributes())["hw"] = "rev-b";
  EXPECT_TRUE(events_of(decide(d, test::cmd(same), at(1))).empty());
  v1::SetDeviceAttributes cmd;
  (*cmd.mutable_attributes())["hw"] = "rev-c";
  auto xs = events_of(decide(d, test::cmd(cmd), at(1)));
  ASSERT_EQ(cases_of(xs),
            std::vector<event::PayloadCase>{event::kDeviceAttributesChanged});
  test::apply_all(d, xs);
  EXPECT_EQ(*find_label(d.attributes, "hw"), "rev-c");
  auto err = failure_of(decide(d, test::cmd(v1::SetDeviceAttributes{}), at(2)));
  EXPECT_EQ(err.code, errc::invalid_argument);
}

TEST(DeviceRules, DeviceRefNeedsProductAndKey) {
  EXPECT_FALSE(validate_device_ref("p1", "d1").has_value());
  auto err = validate_device_ref("", "d1");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("product_key"), std::string::npos);
  err = validate_device_ref("p1", std::string(max_key_length + 1, 'd'));
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("device_key"), std::string::npos);
}

TEST(DeviceRules, ToProtoCarriesEveryField) {
  auto d = registered();
  d.online = true;
  d.active_execution = execution_id{task_id{7}, execution_seq{3}};
  auto p = to_proto(d);
  EXPECT_EQ(p.product_key(), "p1");
  EXPECT_EQ(p.device_key(), "d1");
  EXPECT_EQ(p.version(), "1.0");
  EXPECT_TRUE(p.online());
  EXPECT_EQ(p.tags().at("site"), "berlin");
  EXPECT_EQ(p.attributes().at("hw"), "rev-b");
  EXPECT_EQ(p.active_execution_id(),
            (uint64_t{7} << 32) | 3); // the wire layout
  EXPECT_EQ(p.registered_at_ms(), test::t0_ms);
}

// -- label_map ---------------------------------------------------------------

TEST(LabelMap, SetRemoveFindKeepItSorted) {
  label_map xs;
  set_label(xs, "m", "1");
  set_label(xs, "c", "2");
  set_label(xs, "x", "3");
  set_label(xs, "a", "4");
  EXPECT_EQ(xs, (label_map{{"a", "4"}, {"c", "2"}, {"m", "1"}, {"x", "3"}}));
  set_label(xs, "c", "20"); // overwrite in place
  EXPECT_EQ(xs, (label_map{{"a", "4"}, {"c", "20"}, {"m", "1"}, {"x", "3"}}));
  set_label(xs, "m", "");  // remove
  set_label(xs, "zz", ""); // remove absent: no-op
  EXPECT_EQ(xs, (label_map{{"a", "4"}, {"c", "20"}, {"x", "3"}}));
  ASSERT_NE(find_label(xs, "a"), nullptr);
  EXPECT_EQ(*find_label(xs, "a"), "4");
  EXPECT_EQ(*find_label(xs, "x"), "3");
  EXPECT_EQ(find_label(xs, "m"), nullptr);
  EXPECT_EQ(find_label(xs, "b"), nullptr);
  EXPECT_EQ(find_label(xs, "zzz"), nullptr);
  EXPECT_EQ(find_label(label_map{}, "a"), nullptr);
}

// -- apply -------------------------------------------------------------------

TEST(DeviceApply, RegisteredMakesAFreshDeviceAndOnlyOnce) {
  device_state d;
  auto e = make_event(device_stream("p1", "d1"), at(9));
  auto* x = e.mutable_device_registered();
  x->set_product_key("p1");
  x->set_device_key("d1");
  x->set_version("0.9");
  (*x->mutable_tags())["b"] = "2";
  (*x->mutable_tags())["a"] = "1";
  ASSERT_FALSE(apply(d, e));
  EXPECT_EQ(d.version, "0.9");
  EXPECT_FALSE(d.online);
  EXPECT_EQ(d.tags, (label_map{{"a", "1"}, {"b", "2"}}));
  EXPECT_TRUE(d.attributes.empty());
  EXPECT_EQ(d.registered_at_ms, test::t0_ms + 9);
  // A second registration is a log that lies.
  auto err = apply(d, e);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("registered a second time"), std::string::npos);
}

TEST(DeviceApply, EventsOfOtherStreamsAreRefusedAndChangeNothing) {
  auto d = registered();
  auto e = make_event(task_stream(1), at(9));
  e.mutable_task_completed()->set_task_id(1);
  auto err = apply(d, e);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->code, errc::corrupted);
  auto expected = registered();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      to_proto(d), to_proto(expected)));
}

} // namespace

// -- the busy claim ----------------------------------------------------------

namespace fota {
namespace {

execution_id exec(uint64_t task, uint64_t seq) {
  return execution_id{task_id{task}, execution_seq{seq}};
}

TEST(BusyClaim, FreeDeviceCanBeClaimed) {
  device_state d;
  d.key = "d1";
  EXPECT_FALSE(decide_claim(d, exec(3, 7)));
  EXPECT_FALSE(decide_claim(d, enrolling_claim(task_id{3})));
}

TEST(BusyClaim, HeldDeviceIsBusyAndTheHolderIsNamed) {
  device_state d;
  d.key = "d1";
  d.active_execution = exec(2, 5);
  auto err = decide_claim(d, exec(3, 1));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::device_busy);
  EXPECT_EQ(err->message, "device d1 is busy in execution 2/5");
  err = decide_claim(d, enrolling_claim(task_id{3}));
  ASSERT_TRUE(err);
  EXPECT_EQ(busy_reason(d), "device d1 is busy in execution 2/5");
  // The execution that holds it may claim it again (a rebind).
  EXPECT_FALSE(decide_claim(d, exec(2, 5)));
}

TEST(BusyClaim, TaskEnrollingTheDeviceBindsItsExecution) {
  device_state d;
  d.key = "d1";
  d.active_execution = enrolling_claim(task_id{4});
  EXPECT_TRUE(is_enrolling_claim(d.active_execution));
  EXPECT_FALSE(is_enrolling_claim(exec(4, 1)));
  EXPECT_EQ(busy_reason(d), "device d1 is busy: being enrolled in task 4");
  EXPECT_FALSE(decide_claim(d, exec(4, 9)));
  auto err = decide_claim(d, exec(5, 1));
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("being enrolled in task 4"), std::string::npos);
}

TEST(ExecutionIds, AreBuiltAndSplitInOnePlace) {
  auto x = exec(0xABCD, 0x1234);
  EXPECT_EQ(x.value(), (uint64_t{0xABCD} << 32) | 0x1234);
  EXPECT_EQ(x.task().value(), 0xABCDu);
  EXPECT_EQ(x.sequence().value(), 0x1234u);
  EXPECT_EQ(x.to_string(), "43981/4660");
  EXPECT_FALSE(execution_id{});
  EXPECT_EQ(execution_id{x.value()}, x);
}

} // namespace
} // namespace fota
