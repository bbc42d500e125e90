#include "api/metrics.hpp"

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

namespace fota {

namespace {

class collector : public prometheus::Collectable {
public:
  explicit collector(std::shared_ptr<node_metrics> m) : m_(std::move(m)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto counter =
        [&](std::string name, std::string help, const node_metrics::counter& c,
            std::vector<prometheus::ClientMetric::Label> labels = {}) {
          for (auto& f : out)
            if (f.name == name) {
              prometheus::ClientMetric cm;
              cm.label = std::move(labels);
              cm.counter.value = static_cast<double>(c.load());
              f.metric.push_back(std::move(cm));
              return;
            }
          prometheus::MetricFamily f;
          f.name = std::move(name);
          f.help = std::move(help);
          f.type = prometheus::MetricType::Counter;
          prometheus::ClientMetric cm;
          cm.label = std::move(labels);
          cm.counter.value = static_cast<double>(c.load());
          f.metric.push_back(std::move(cm));
          out.push_back(std::move(f));
        };
    counter("fota_events_persisted_total", "Events made durable by the journal",
            m_->events_persisted);
    counter("fota_journal_appends_total", "Journal appends acknowledged",
            m_->appends);
    counter("fota_pushes_total", "Upgrade pushes handed to gateways",
            m_->pushes);
    const char* help = "Executions that ended, by final state";
    counter("fota_executions_ended_total", help, m_->succeeded,
            {{"state", "succeeded"}});
    counter("fota_executions_ended_total", help, m_->failed,
            {{"state", "failed"}});
    counter("fota_executions_ended_total", help, m_->timed_out,
            {{"state", "timed_out"}});
    counter("fota_executions_ended_total", help, m_->canceled,
            {{"state", "canceled"}});
    counter("fota_device_registrations_total", "Devices registered",
            m_->registrations);
    counter("fota_responses_total", "API responses by outcome",
            m_->responses_ok, {{"outcome", "ok"}});
    counter("fota_responses_total", "API responses by outcome",
            m_->responses_error, {{"outcome", "error"}});
    counter("fota_frames_refused_total",
            "Frames refused as malformed or oversized", m_->frames_refused);
    counter("fota_auth_failures_total",
            "Hello frames whose credential matched no role", m_->auth_failures);
    counter("fota_connections_refused_total",
            "Connections closed at once over the connection limit",
            m_->connections_refused);
    counter("fota_sessions_timed_out_total",
            "Sessions closed for no Hello, idleness or an unfinished frame",
            m_->sessions_timed_out);
    counter("fota_pushes_deferred_total",
            "Pushes held back while their session's output was full",
            m_->pushes_deferred);
    counter("fota_writes_refused_total",
            "Commands refused while the data directory is below its "
            "free-space reserve",
            m_->writes_refused);
    return out;
  }

private:
  std::shared_ptr<node_metrics> m_;
};

} // namespace

metrics_endpoint::~metrics_endpoint() = default;

expected<std::unique_ptr<metrics_endpoint>>
metrics_endpoint::start(const std::string& bind,
                        std::shared_ptr<node_metrics> metrics) {
  std::unique_ptr<metrics_endpoint> ep{new metrics_endpoint};
  try {
    ep->exposer_ = std::make_unique<prometheus::Exposer>(bind);
  } catch (const std::exception& e) {
    return make_failure(errc::unavailable,
                        "cannot serve metrics on " + bind + ": " + e.what());
  }
  ep->collector_ = std::make_shared<collector>(std::move(metrics));
  ep->exposer_->RegisterCollectable(ep->collector_);
  return ep;
}

} // namespace fota
