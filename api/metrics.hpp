/// The Prometheus endpoint of a node: the text exposition format over HTTP,
/// read at each scrape from `node_metrics` (counters, histograms, and the
/// tables the gauges come from) without a message to any actor.
#pragma once

#include "actors/metrics.hpp"
#include "events/error.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
class Exposer;
class Collectable;
} // namespace prometheus

namespace fota {

class metrics_endpoint {
public:
  ~metrics_endpoint();

  /// Serves `metrics` at http://`bind`/metrics, e.g. bind = "127.0.0.1:9464".
  static expected<std::unique_ptr<metrics_endpoint>>
  start(const std::string& bind, std::shared_ptr<node_metrics> metrics);

private:
  metrics_endpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> collector_;
};

} // namespace fota
