/// Gateways and what they and products may hold: which products a gateway
/// serves, who may act for a device (the gateway that owns it), and quotas
/// on devices and on each device's tags and attributes. Pure rules; the
/// node's configuration fills an `edge_policy`.
#pragma once

#include "events/error.hpp"
#include "events/values.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fota {

/// Limits on the devices a gateway or a product holds.
struct device_quota {
  /// Devices registered; 0 means no limit.
  uint64_t max_devices = 0;
  /// Tags plus attributes on one device.
  uint32_t max_labels = 64;
  /// Bytes of every tag and attribute key and value of one device.
  uint32_t max_label_bytes = 16 * 1024;

  /// The stricter of `x` and `y` in each limit.
  static device_quota stricter(const device_quota& x, const device_quota& y);
};

/// A gateway the node knows by name.
struct gateway_policy {
  std::string name;
  /// Products it may serve; empty: every product.
  std::vector<std::string> products;
  device_quota quota;

  bool serves(const std::string& product) const;
};

/// The gateways and product quotas of a node.
struct edge_policy {
  /// By name.
  std::map<std::string, gateway_policy> gateways;
  /// Quotas of products that have their own; others take `product_default`.
  std::map<std::string, device_quota> products;
  device_quota product_default;

  /// The gateway named `name`, or null.
  const gateway_policy* find(const std::string& name) const;

  const device_quota& product_quota(const std::string& product) const;

  /// What one device of `product` owned by `gateway` may hold: the stricter
  /// of the product's and the gateway's quota.
  device_quota device_limits(const std::string& product,
                             const std::string& gateway) const;
};

/// A gateway may act for a device it owns, or for one that has no owner.
/// An empty `gateway` is the in-process API, which acts for any device.
/// Otherwise PERMISSION_DENIED names the owner.
status check_owner(const device_state& d, const std::string& gateway);

/// PERMISSION_DENIED unless `g` serves `product`.
status check_serves(const gateway_policy& g, const std::string& product);

/// RESOURCE_EXHAUSTED when `d` holds more tags and attributes, or more
/// bytes of them, than `q` allows.
status check_labels(const device_state& d, const device_quota& q);

/// RESOURCE_EXHAUSTED when `holder` (e.g. "gateway gw-1"), which holds
/// `held` devices, may not take one more.
status check_room(uint64_t held, const device_quota& q,
                  const std::string& holder);

} // namespace fota
