#include "events/event.hpp"

namespace fota {

std::string firmware_stream(std::string_view product,
                            std::string_view version) {
  std::string s = "firmware/";
  s.append(product).append("/").append(version);
  return s;
}

std::string device_stream(std::string_view product, std::string_view device) {
  std::string s = "device/";
  s.append(product).append("/").append(device);
  return s;
}

std::string tree_stream(std::string_view product, std::string_view tree) {
  std::string s = "tree/";
  s.append(product).append("/").append(tree);
  return s;
}

std::string task_stream(uint64_t task) {
  return "task/" + std::to_string(task);
}

event make_event(std::string stream, timestamp now) {
  event e;
  e.set_stream(std::move(stream));
  e.set_time_ms(to_millis(now));
  return e;
}

std::vector<std::string> encode(const event_list& xs) {
  std::vector<std::string> out;
  out.reserve(xs.size());
  for (const auto& x : xs)
    out.emplace_back(x.SerializeAsString());
  return out;
}

} // namespace fota
