#include "events/gateway.hpp"

#include "events/device.hpp"

#include <algorithm>

namespace fota {

namespace {

/// The stricter of two limits where 0 means none.
uint64_t stricter_limit(uint64_t x, uint64_t y) {
  if (x == 0)
    return y;
  if (y == 0)
    return x;
  return std::min(x, y);
}

} // namespace

device_quota device_quota::stricter(const device_quota& x,
                                    const device_quota& y) {
  device_quota out;
  out.max_devices = stricter_limit(x.max_devices, y.max_devices);
  out.max_labels = std::min(x.max_labels, y.max_labels);
  out.max_label_bytes = std::min(x.max_label_bytes, y.max_label_bytes);
  return out;
}

bool gateway_policy::serves(const std::string& product) const {
  return products.empty() ||
         std::find(products.begin(), products.end(), product) != products.end();
}

const gateway_policy* edge_policy::find(const std::string& name) const {
  auto i = gateways.find(name);
  return i != gateways.end() ? &i->second : nullptr;
}

const device_quota&
edge_policy::product_quota(const std::string& product) const {
  auto i = products.find(product);
  return i != products.end() ? i->second : product_default;
}

device_quota edge_policy::device_limits(const std::string& product,
                                        const std::string& gateway) const {
  const auto& q = product_quota(product);
  if (const auto* g = find(gateway))
    return device_quota::stricter(q, g->quota);
  return q;
}

status check_owner(const device_state& d, const std::string& gateway) {
  if (gateway.empty() || d.gateway.empty() || d.gateway == gateway)
    return std::nullopt;
  return make_failure(errc::permission_denied,
                      device_name(d.product, d.key) + " belongs to gateway " +
                          d.gateway + "; gateway " + gateway +
                          " may not act for it");
}

status check_serves(const gateway_policy& g, const std::string& product) {
  if (g.serves(product))
    return std::nullopt;
  return make_failure(errc::permission_denied, "gateway " + g.name +
                                                   " may not serve product " +
                                                   product);
}

status check_labels(const device_state& d, const device_quota& q) {
  auto count = d.tags.size() + d.attributes.size();
  if (count > q.max_labels)
    return make_failure(errc::resource_exhausted,
                        device_name(d.product, d.key) + " would have " +
                            std::to_string(count) +
                            " tags and attributes; the limit is " +
                            std::to_string(q.max_labels));
  size_t bytes = 0;
  for (const auto* xs : {&d.tags, &d.attributes})
    for (const auto& [k, v] : *xs)
      bytes += k.size() + v.size();
  if (bytes > q.max_label_bytes)
    return make_failure(errc::resource_exhausted,
                        device_name(d.product, d.key) + " would have " +
                            std::to_string(bytes) +
                            " bytes of tags and attributes; the limit is " +
                            std::to_string(q.max_label_bytes));
  return std::nullopt;
}

status check_room(uint64_t held, const device_quota& q,
                  const std::string& holder) {
  if (q.max_devices == 0 || held < q.max_devices)
    return std::nullopt;
  return make_failure(errc::resource_exhausted, holder + " holds " +
                                                    std::to_string(held) +
                                                    " devices, its limit");
}

} // namespace fota
