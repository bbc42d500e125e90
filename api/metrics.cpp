#include "api/metrics.hpp"

#include "fota/v1/api.pb.h"
#include "fota/version.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

namespace fota {

namespace {

using label = prometheus::ClientMetric::Label;
using labels = std::vector<label>;

/// An enum value's name without its prefix, e.g. TASK_STATUS_RUNNING with
/// prefix "TASK_STATUS_" as "running" (lower case) or "RUNNING".
std::string enum_label(const std::string& name, std::string_view prefix,
                       bool lower) {
  auto out = name.substr(std::min(prefix.size(), name.size()));
  if (lower)
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return std::tolower(c); });
  return out;
}

/// Builds the metric families of one scrape.
class scrape {
public:
  /// Adds a sample of family `name` (created with `help` and `type` at its
  /// first sample) and returns it to be filled in.
  prometheus::ClientMetric& sample(const std::string& name,
                                   const std::string& help,
                                   prometheus::MetricType type,
                                   labels ls = {}) {
    auto i = index_.find(name);
    if (i == index_.end()) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      out_.push_back(std::move(f));
      i = index_.emplace(name, out_.size() - 1).first;
    }
    auto& f = out_[i->second];
    f.metric.emplace_back();
    f.metric.back().label = std::move(ls);
    return f.metric.back();
  }

  void counter(const std::string& name, const std::string& help, uint64_t value,
               labels ls = {}) {
    sample(name, help, prometheus::MetricType::Counter, std::move(ls))
        .counter.value = static_cast<double>(value);
  }

  void gauge(const std::string& name, const std::string& help, double value,
             labels ls = {}) {
    sample(name, help, prometheus::MetricType::Gauge, std::move(ls))
        .gauge.value = value;
  }

  void histogram(const std::string& name, const std::string& help,
                 const fota::histogram& h, labels ls = {}) {
    auto r = h.read();
    auto& m =
        sample(name, help, prometheus::MetricType::Histogram, std::move(ls));
    m.histogram.sample_count = r.cumulative.back();
    m.histogram.sample_sum = static_cast<double>(r.sum) * h.unit();
    const auto& bounds = h.bounds();
    for (size_t i = 0; i < r.cumulative.size(); ++i) {
      prometheus::ClientMetric::Bucket b;
      b.cumulative_count = r.cumulative[i];
      b.upper_bound = i < bounds.size()
                          ? static_cast<double>(bounds[i]) * h.unit()
                          : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(b);
    }
  }

  std::vector<prometheus::MetricFamily> take() { return std::move(out_); }

private:
  std::vector<prometheus::MetricFamily> out_;
  std::map<std::string, size_t> index_;
};

/// Reads a node's metrics at each scrape: the counters and histograms the
/// actors keep, and the gauges from the tables they keep up to date. A
/// scrape sends no message to any actor.
class collector : public prometheus::Collectable {
public:
  explicit collector(std::shared_ptr<node_metrics> m) : m_(std::move(m)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    scrape s;
    build(s);
    counters(s);
    devices(s);
    tasks(s);
    latencies(s);
    return s.take();
  }

private:
  static void build(scrape& s) {
    s.gauge("fota_build_info",
            "The fota version of this node and the git commit it was built "
            "from (empty when unknown); always 1",
            1, {{"commit", build::git_commit}, {"version", build::version}});
  }

  void counters(scrape& s) const {
    const auto& m = *m_;
    s.counter("fota_events_persisted_total",
              "Events made durable by the journal", m.events_persisted);
    s.counter("fota_journal_appends_total", "Journal appends acknowledged",
              m.appends);
    s.counter("fota_pushes_total", "Upgrade pushes handed to gateways",
              m.pushes);
    const char* ended = "Executions that ended, by final state";
    s.counter("fota_executions_ended_total", ended, m.succeeded,
              {{"state", "succeeded"}});
    s.counter("fota_executions_ended_total", ended, m.failed,
              {{"state", "failed"}});
    s.counter("fota_executions_ended_total", ended, m.timed_out,
              {{"state", "timed_out"}});
    s.counter("fota_executions_ended_total", ended, m.canceled,
              {{"state", "canceled"}});
    s.counter("fota_device_registrations_total", "Devices registered",
              m.registrations);
    const auto* codes = v1::StatusCode_descriptor();
    for (int i = 0; i < codes->value_count(); ++i) {
      const auto* v = codes->value(i);
      if (v->number() == v1::STATUS_CODE_UNSPECIFIED)
        continue;
      s.counter("fota_responses_total", "API responses by status code",
                m.responses[static_cast<size_t>(v->number())],
                {{"code", enum_label(v->name(), "STATUS_CODE_", false)}});
    }
    s.counter("fota_frames_refused_total",
              "Frames refused as malformed or oversized", m.frames_refused);
    s.counter("fota_auth_failures_total",
              "Hello frames whose credential matched no role", m.auth_failures);
    s.counter("fota_connections_refused_total",
              "Connections closed at once over the connection limit",
              m.connections_refused);
    s.counter("fota_sessions_timed_out_total",
              "Sessions closed for no Hello, idleness or an unfinished frame",
              m.sessions_timed_out);
    s.counter("fota_pushes_deferred_total",
              "Pushes held back while their session's output was full",
              m.pushes_deferred);
    s.counter("fota_writes_refused_total",
              "Commands refused while the data directory is below its "
              "free-space reserve",
              m.writes_refused);
    s.gauge("fota_pushes_in_flight",
            "Pushes granted and not yet answered by their device, node-wide",
            static_cast<double>(
                m.pushes_in_flight.load(std::memory_order_relaxed)));
    s.gauge(
        "fota_device_actors",
        "Device actors running; a registered device without one is "
        "dormant until its first message",
        static_cast<double>(m.device_actors.load(std::memory_order_relaxed)));
  }

  void devices(scrape& s) const {
    m_->products.each([&](const std::string& product, const auto& g) {
      s.gauge("fota_devices_registered",
              "Devices whose registration is durable, by product",
              static_cast<double>(g.registered.load(std::memory_order_relaxed)),
              {{"product", product}});
      s.gauge("fota_devices_online",
              "Devices online on a gateway session, by product",
              static_cast<double>(g.online.load(std::memory_order_relaxed)),
              {{"product", product}});
    });
  }

  void tasks(scrape& s) const {
    // Every status is there, also at zero, so that a query needs no absent().
    static constexpr std::array<v1::TaskStatus, 4> statuses{
        v1::TASK_STATUS_RUNNING, v1::TASK_STATUS_PAUSED,
        v1::TASK_STATUS_COMPLETED, v1::TASK_STATUS_CANCELED};
    std::map<int, uint64_t> by_status;
    struct active {
      std::string id;
      std::string product;
      execution_counters counters;
    };
    std::vector<active> running;
    m_->tasks.each([&](const task_summary& t) {
      ++by_status[t.status];
      if (t.status == v1::TASK_STATUS_RUNNING ||
          t.status == v1::TASK_STATUS_PAUSED)
        running.push_back(
            active{std::to_string(t.id.value()), t.spec.product, t.counters});
    });
    for (auto status : statuses)
      s.gauge("fota_tasks", "Tasks (verification runs included) by status",
              static_cast<double>(by_status[status]),
              {{"status", enum_label(v1::TaskStatus_Name(status),
                                     "TASK_STATUS_", true)}});
    const char* help =
        "Executions of each running or paused task by state (finished tasks "
        "are left out)";
    for (const auto& t : running) {
      const auto& c = t.counters;
      const std::array<std::pair<const char*, uint64_t>, 8> states{{
          {"queued", c.queued},
          {"notified", c.notified},
          {"in_progress", c.in_progress},
          {"succeeded", c.succeeded},
          {"failed", c.failed},
          {"timed_out", c.timed_out},
          {"canceled", c.canceled},
          {"skipped", c.skipped},
      }};
      for (const auto& [state, n] : states)
        s.gauge("fota_executions", help, static_cast<double>(n),
                {{"product", t.product}, {"state", state}, {"task", t.id}});
    }
  }

  void latencies(scrape& s) const {
    const auto& m = *m_;
    s.histogram("fota_journal_commit_duration_seconds",
                "Seconds one journal write takes, fsync included",
                m.commit_latency);
    s.histogram("fota_journal_commit_events", "Events in one journal write",
                m.commit_events);
    const auto* body = v1::ClientFrame::descriptor();
    for (size_t i = 0; i < node_metrics::request_types; ++i) {
      const auto& h = m.requests[i];
      if (h.read().cumulative.back() == 0)
        continue;
      const auto* field = body->FindFieldByNumber(static_cast<int>(i));
      if (field == nullptr || field->message_type() == nullptr)
        continue;
      s.histogram("fota_request_duration_seconds",
                  "Seconds from a request frame to its response, by request "
                  "type",
                  h, {{"type", field->message_type()->name()}});
    }
  }

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
