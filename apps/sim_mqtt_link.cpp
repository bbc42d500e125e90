#include "apps/sim_mqtt_link.hpp"

#include "mqtt/codec.hpp"
#include "mqtt/device_codec.hpp"

#include <charconv>
#include <chrono>
#include <mqtt/async_client.h>

#include <fmt/core.h>

namespace fota {

namespace {

using namespace std::chrono_literals;

/// The topics a simulated device hears on: pushes, cancels and the replies
/// to its requests, for every device of the product.
std::vector<std::string> device_filters(const std::string& product) {
  std::vector<std::string> out;
  for (const char* kind : {"upgrade", "cancel", "inform_reply",
                           "progress_reply", "getversion_reply"})
    out.push_back(mqtt::topic_name(product, "+", kind));
  return out;
}

bool ends_with(const std::string& x, std::string_view suffix) {
  return x.size() >= suffix.size() &&
         x.compare(x.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// How many unread or unparsable messages are reported on stderr.
constexpr uint64_t max_complaints = 10;

} // namespace

// -- Paho's callbacks ---------------------------------------------------------

/// Turns the outcome of a publish into an event; the token's user context
/// is the request id.
class sim_mqtt_link::listener : public ::mqtt::iaction_listener {
public:
  explicit listener(sim_mqtt_link& link) : link_(link) {
    // nop
  }

  void on_success(const ::mqtt::token& tok) override {
    link_.push_event(event{event::delivered, id_of(tok), {}, {}});
  }

  void on_failure(const ::mqtt::token& tok) override {
    link_.push_event(event{event::failed, id_of(tok), {}, {}});
  }

private:
  static uint64_t id_of(const ::mqtt::token& tok) {
    return static_cast<uint64_t>(
        reinterpret_cast<uintptr_t>(tok.get_user_context()));
  }

  sim_mqtt_link& link_;
};

// -- the link -----------------------------------------------------------------

sim_mqtt_link::sim_mqtt_link(sim_mqtt_options opts)
  : opts_(std::move(opts)), listener_(std::make_unique<listener>(*this)) {
  // No persistence: a simulator that restarts starts over. Paho counts
  // publishes it has not written yet as buffered, and the simulator has
  // at most `max_in_flight` of those.
  auto create =
      ::mqtt::create_options_builder()
          .max_buffered_messages(static_cast<int>(opts_.max_in_flight) * 2 + 64)
          .finalize();
  client_ = std::make_unique<::mqtt::async_client>(
      opts_.broker, opts_.client_id, create, nullptr);
  client_->set_message_callback([this](::mqtt::const_message_ptr m) {
    push_event(event{event::message, 0, m->get_topic(), m->get_payload_str()});
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    connected_ = false;
    push_event(
        event{event::lost, 0, cause.empty() ? "connection lost" : cause, {}});
  });
}

expected<std::unique_ptr<sim_mqtt_link>>
sim_mqtt_link::make(sim_mqtt_options opts) {
  auto broker = opts.broker;
  try {
    return std::make_unique<sim_mqtt_link>(std::move(opts));
  } catch (const ::mqtt::exception& e) {
    return make_failure(errc::invalid_argument,
                        "--mqtt: cannot use the broker URL '" + broker +
                            "': " + e.what());
  }
}

sim_mqtt_link::~sim_mqtt_link() {
  close();
  // Paho's threads may still call back until the client is gone.
  client_.reset();
}

void sim_mqtt_link::push_event(event x) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    events_.push_back(std::move(x));
  }
  ready_.notify_one();
}

status sim_mqtt_link::reconnect() {
  auto where = "broker " + opts_.broker + ": ";
  try {
    auto builder = ::mqtt::connect_options_builder()
                       .clean_session(true)
                       .keep_alive_interval(20s)
                       .connect_timeout(5s)
                       .max_inflight(static_cast<int>(opts_.max_in_flight));
    if (!opts_.username.empty())
      builder.user_name(opts_.username).password(opts_.password);
    auto connect_opts = builder.finalize();
    if (!client_->connect(connect_opts)->wait_for(10s))
      return make_failure(errc::unavailable, where + "no answer to CONNECT");
    auto filters = device_filters(opts_.product);
    ::mqtt::iasync_client::qos_collection qos(filters.size(), 1);
    auto tok =
        client_->subscribe(::mqtt::string_collection::create(filters), qos);
    if (!tok->wait_for(10s))
      return make_failure(errc::unavailable, where + "no answer to SUBSCRIBE");
    auto granted = tok->get_subscribe_response();
    for (auto rc : granted.get_reason_codes())
      if (rc >= 0x80)
        return make_failure(errc::permission_denied,
                            where + "refused the subscription to " +
                                filters.front() +
                                " and the other reply topics");
  } catch (const ::mqtt::exception& e) {
    return make_failure(errc::unavailable, where + e.what());
  }
  connected_ = true;
  return std::nullopt;
}

uint64_t sim_mqtt_link::queue(v1::ClientFrame frame) {
  auto id = next_id_++;
  outbox_.emplace_back(id, std::move(frame));
  return id;
}

status sim_mqtt_link::publish_queued(const response_handler& on_response) {
  while (!outbox_.empty()) {
    auto [id, frame] = std::move(outbox_.front());
    outbox_.pop_front();
    auto msg = mqtt::encode_request(frame, id);
    if (!msg) {
      v1::Response r;
      r.set_status(v1::STATUS_CODE_INVALID_ARGUMENT);
      r.set_message(msg.error().message);
      on_response(id, r);
      continue;
    }
    sent s;
    s.replied = msg->replied;
    if (frame.has_device_online() || frame.has_device_offline()) {
      s.status = true;
      s.online = frame.has_device_online();
      s.topic = msg->topic;
    }
    if (s.replied)
      awaited_.emplace_back(id, std::chrono::steady_clock::now());
    unanswered_.emplace(id, std::move(s));
    try {
      auto m = ::mqtt::make_message(msg->topic, msg->payload, 1, msg->retained);
      client_->publish(m, reinterpret_cast<void*>(static_cast<uintptr_t>(id)),
                       *listener_);
    } catch (const ::mqtt::exception& e) {
      return make_failure(errc::unavailable,
                          std::string{"publish refused: "} + e.what());
    }
  }
  return std::nullopt;
}

void sim_mqtt_link::complain(const std::string& topic, const std::string& why) {
  if (++complaints_ <= max_complaints)
    fmt::print(stderr, "fota-sim: ignored a message on {}: {}\n", topic, why);
}

status sim_mqtt_link::dispatch(event& x, const response_handler& on_response,
                               const push_handler& on_push, size_t& handed) {
  switch (x.kind) {
  case event::lost:
    return make_failure(errc::unavailable,
                        "broker " + opts_.broker + ": " + x.topic);
  case event::failed:
    if (unanswered_.count(x.id) != 0)
      return make_failure(errc::unavailable,
                          "broker " + opts_.broker + ": a publish failed");
    return std::nullopt;
  case event::delivered: {
    auto i = unanswered_.find(x.id);
    if (i == unanswered_.end() || i->second.replied)
      return std::nullopt;
    if (i->second.status) {
      if (i->second.online)
        online_.insert(i->second.topic);
      else
        online_.erase(i->second.topic);
    }
    unanswered_.erase(i);
    v1::Response ok;
    ok.set_status(v1::STATUS_CODE_OK);
    ++handed;
    on_response(x.id, ok);
    return std::nullopt;
  }
  case event::message:
    break;
  }
  auto topic = mqtt::parse_topic(x.topic);
  if (!topic) {
    complain(x.topic, "not a device topic");
    return std::nullopt;
  }
  if (ends_with(topic->kind, "_reply")) {
    auto reply = mqtt::decode_reply(*topic, x.payload);
    if (!reply) {
      complain(x.topic, reply.error().message);
      return std::nullopt;
    }
    uint64_t id = 0;
    const auto* end = reply->id.data() + reply->id.size();
    if (auto [p, ec] = std::from_chars(reply->id.data(), end, id);
        ec != std::errc{} || p != end)
      return std::nullopt; // Not one of ours.
    auto i = unanswered_.find(id);
    if (i == unanswered_.end() || !i->second.replied)
      return std::nullopt; // Answered before, or sent on an older session.
    unanswered_.erase(i);
    ++handed;
    on_response(id, reply->response);
    return std::nullopt;
  }
  auto push = mqtt::decode_push(*topic, x.payload);
  if (!push) {
    complain(x.topic, push.error().message);
    return std::nullopt;
  }
  ++handed;
  on_push(*push);
  return std::nullopt;
}

expected<size_t> sim_mqtt_link::poll(int timeout_ms,
                                     const response_handler& on_response,
                                     const push_handler& on_push) {
  if (auto err = publish_queued(on_response))
    return *err;
  std::deque<event> arrived;
  {
    std::unique_lock<std::mutex> guard{mutex_};
    if (events_.empty() && timeout_ms > 0)
      ready_.wait_for(guard, std::chrono::milliseconds{timeout_ms},
                      [this] { return !events_.empty(); });
    arrived.swap(events_);
  }
  size_t handed = 0;
  for (auto& x : arrived)
    if (auto err = dispatch(x, on_response, on_push, handed))
      return *err;
  while (!awaited_.empty() && unanswered_.count(awaited_.front().first) == 0)
    awaited_.pop_front();
  if (!awaited_.empty() &&
      std::chrono::steady_clock::now() - awaited_.front().second >
          reply_timeout)
    return make_failure(errc::unavailable,
                        fmt::format("no reply to a request in {} s; is the "
                                    "bridge (fota-mqtt) running?",
                                    reply_timeout.count()));
  return handed;
}

void sim_mqtt_link::close() {
  connected_ = false;
  try {
    if (client_ && client_->is_connected())
      client_->disconnect(0)->wait_for(2s);
  } catch (const ::mqtt::exception&) {
    // Closing anyway.
  }
  outbox_.clear();
  unanswered_.clear();
  awaited_.clear();
  online_.clear();
  std::lock_guard<std::mutex> guard{mutex_};
  events_.clear();
}

void sim_mqtt_link::finish() {
  if (!connected_ || online_.empty())
    return;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::deque<::mqtt::delivery_token_ptr> in_flight;
  auto payload = std::string{R"({"online":false})"};
  try {
    for (const auto& topic : online_) {
      if (in_flight.size() >= opts_.max_in_flight) {
        in_flight.front()->wait_until(deadline);
        in_flight.pop_front();
      }
      in_flight.push_back(
          client_->publish(topic, payload.data(), payload.size(), 1, true));
    }
    for (auto& tok : in_flight)
      tok->wait_until(deadline);
  } catch (const ::mqtt::exception& e) {
    fmt::print(stderr,
               "fota-sim: the offline statuses did not all reach the "
               "broker: {}\n",
               e.what());
  }
  online_.clear();
}

} // namespace fota
