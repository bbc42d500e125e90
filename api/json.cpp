#include "api/json.hpp"

#include <charconv>
#include <system_error>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

namespace fota {

namespace {

using json = nlohmann::ordered_json;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

void integers_as_numbers(const Descriptor& type, json& object);

/// Parses all of `text` as a decimal integer.
template <class Int>
bool parse_integer(const std::string& text, Int& out) {
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

/// Turns one value `x` of field `f`, as protobuf's mapping printed it, into
/// a number where it is a 64-bit integer within 2^53.
void number_value(const FieldDescriptor& f, json& x) {
  if (f.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    // Well-known types (google.protobuf.*) have JSON forms of their own.
    if (x.is_object() &&
        f.message_type()->file()->package() != "google.protobuf")
      integers_as_numbers(*f.message_type(), x);
    return;
  }
  if (!x.is_string())
    return;
  constexpr auto max = static_cast<int64_t>(max_exact_json_integer);
  const auto& text = x.get_ref<const std::string&>();
  if (f.cpp_type() == FieldDescriptor::CPPTYPE_UINT64) {
    uint64_t v = 0;
    if (parse_integer(text, v) && v <= max_exact_json_integer)
      x = v;
  } else if (f.cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
    int64_t v = 0;
    if (parse_integer(text, v) && v >= -max && v <= max)
      x = v;
  }
}

/// Walks the fields of `type` in `object`.
void integers_as_numbers(const Descriptor& type, json& object) {
  for (int i = 0; i < type.field_count(); ++i) {
    const auto& f = *type.field(i);
    auto j = object.find(f.name());
    if (j == object.end())
      continue;
    if (f.is_map()) {
      const auto& value = *f.message_type()->map_value();
      for (auto& [key, x] : j->items())
        number_value(value, x);
    } else if (f.is_repeated()) {
      for (auto& x : *j)
        number_value(f, x);
    } else {
      number_value(f, *j);
    }
  }
}

} // namespace

expected<std::string> to_json(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string text;
  auto st = google::protobuf::util::MessageToJsonString(msg, &text, opts);
  if (!st.ok())
    return make_failure(errc::internal, "cannot print " +
                                            msg.GetDescriptor()->full_name() +
                                            " as JSON: " + st.ToString());
  auto out = json::parse(text);
  integers_as_numbers(*msg.GetDescriptor(), out);
  return out.dump(2);
}

} // namespace fota
