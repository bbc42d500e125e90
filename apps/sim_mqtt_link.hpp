/// fota-sim's devices on MQTT: one broker connection (Paho's async client)
/// carries the requests of every simulated device on that device's topics,
/// as docs/protocol.md ("MQTT devices") says, and the bridge (fota-mqtt)
/// takes them to the node. One connection for many devices, because tens
/// of thousands of MQTT connections from one process are not practical;
/// the price is that the connection's last will cannot take each device
/// offline, so a clean stop publishes each device's offline status instead.
#pragma once

#include "apps/sim_link.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace mqtt {
class async_client;
} // namespace mqtt

namespace fota {

/// Where and how the MQTT link connects.
struct sim_mqtt_options {
  /// The broker, e.g. tcp://127.0.0.1:1883.
  std::string broker;
  std::string client_id;
  std::string username;
  std::string password;
  /// The product whose device topics the link subscribes to.
  std::string product;
  /// QoS 1 publishes the broker has not acknowledged, at most.
  uint32_t max_in_flight = 512;
};

/// Native device requests as MQTT messages on one broker connection.
/// Requests answered on `_reply` topics (inform, progress, getversion) get
/// their response from the reply; a status and a push acknowledgement,
/// which get no reply, count as done when the broker acknowledges them.
/// A request without a reply for `reply_timeout` (no bridge was
/// subscribed, or it lost the request) breaks the link, so that the
/// simulator reconnects and sends again what is unanswered.
class sim_mqtt_link : public sim_link {
public:
  /// A link to `opts.broker`, not connected yet; fails naming the broker
  /// when Paho refuses its URL.
  static expected<std::unique_ptr<sim_mqtt_link>> make(sim_mqtt_options opts);

  explicit sim_mqtt_link(sim_mqtt_options opts);

  ~sim_mqtt_link() override;

  status reconnect() override;

  uint64_t queue(v1::ClientFrame frame) override;

  expected<size_t> poll(int timeout_ms, const response_handler& on_response,
                        const push_handler& on_push) override;

  void close() override;

  bool batches() const noexcept override { return false; }

  /// Publishes `{"online": false}` for every device it brought online and
  /// waits (a few seconds at most) until the broker has them.
  void finish() override;

private:
  // -- member types ----------------------------------------------------------

  /// What Paho's threads hand to the simulator's thread.
  struct event {
    enum kind_t : uint8_t { message, delivered, failed, lost } kind;
    /// The request id of a delivered or failed publish.
    uint64_t id = 0;
    std::string topic;
    std::string payload;
  };

  /// A publish the broker or the bridge has not answered yet.
  struct sent {
    bool replied = false;
    /// For a status: its topic and whether it said online.
    bool status = false;
    bool online = false;
    std::string topic;
  };

  class listener;

  // -- implementation --------------------------------------------------------

  void push_event(event x);

  /// Publishes the queued requests; fails when the client refuses one.
  status publish_queued(const response_handler& on_response);

  /// Hands one event to the handlers; fails for a lost connection.
  status dispatch(event& x, const response_handler& on_response,
                  const push_handler& on_push, size_t& handed);

  /// Reports a message the link cannot read, the first few times.
  void complain(const std::string& topic, const std::string& why);

  // -- constants -------------------------------------------------------------

  static constexpr std::chrono::seconds reply_timeout{30};

  // -- member variables ------------------------------------------------------

  sim_mqtt_options opts_;
  std::unique_ptr<listener> listener_;
  std::unique_ptr<::mqtt::async_client> client_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<event> events_;
  /// Requests queued and not published yet.
  std::deque<std::pair<uint64_t, v1::ClientFrame>> outbox_;
  std::unordered_map<uint64_t, sent> unanswered_;
  /// Requests that wait for a reply, oldest first, with when they were
  /// published; some may have been answered since.
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>>
      awaited_;
  /// The status topics of the devices online now.
  std::unordered_set<std::string> online_;
  uint64_t next_id_ = 1;
  uint64_t complaints_ = 0;
  std::atomic<bool> connected_{false};
};

} // namespace fota
