/// fota-mqtt: the MQTT bridge. It connects to an MQTT broker as a client and
/// to a fota node as a gateway, and maps the devices' OTA topics
/// (docs/protocol.md, "MQTT devices") to native requests and the node's
/// pushes and responses back to topics. It keeps nothing the node does not
/// keep: after a restart of the bridge, of the node or of the broker, the
/// devices' retained statuses bring them online again and the node sends
/// again whatever pushes were not acknowledged.
///
/// Threads: Paho's callbacks only hand messages to the bridge's thread
/// through a bounded queue (a full queue holds Paho's receiving thread back,
/// and with it the broker); the bridge's thread owns the node connection
/// and does everything else.
#include "api/client.hpp"
#include "apps/logging.hpp"
#include "apps/settings.hpp"
#include "apps/version.hpp"
#include "fota/v1/api.pb.h"
#include "mqtt/codec.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mqtt/async_client.h>
#include <mutex>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

namespace {

using namespace fota;
namespace paho = ::mqtt;
namespace codec = fota::mqtt;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
  stop_requested.store(true);
}

// -- settings -----------------------------------------------------------------

struct bridge_settings {
  // [broker]
  std::string broker = "tcp://127.0.0.1:1883";
  std::string client_id = "fota-mqtt";
  std::string username;
  std::string password_file;
  std::string broker_ca;
  std::string broker_cert;
  std::string broker_key;
  std::string shared_group = "fota";
  uint32_t keep_alive = 30;
  uint32_t max_inflight = 1024;
  // [node]
  std::string node = "127.0.0.1:7411";
  std::string token_file;
  bool node_tls = false;
  std::string node_ca;
  std::string node_cert;
  std::string node_key;
  std::string node_server_name;
  uint32_t max_requests = 4096;
  uint32_t max_batch = 1000;
  // [log]
  std::string log_level = "info";
  std::string log_format = "text";
  // where it came from
  std::string config;
};

refusal check_broker_url(const std::string& x) {
  for (const char* scheme :
       {"tcp://", "ssl://", "mqtt://", "mqtts://", "ws://", "wss://"})
    if (x.rfind(scheme, 0) == 0 && x.size() > std::string_view{scheme}.size())
      return std::nullopt;
  return "must be a broker URL such as tcp://127.0.0.1:1883 or "
         "ssl://broker:8883, got " +
         in_quotes(x);
}

refusal check_group(const std::string& x) {
  if (x.find_first_of("/+#") != std::string::npos)
    return "must not hold /, + or #, got " + in_quotes(x);
  return std::nullopt;
}

std::vector<setting> settings_table(bridge_settings& s) {
  return {
      text("--broker", "broker", "url", s.broker,
           "the MQTT broker: tcp://HOST:PORT, or ssl://HOST:PORT for TLS",
           check_broker_url),
      text("--client-id", "broker", "client_id", s.client_id,
           "MQTT client id; every bridge on a broker needs its own",
           check_not_empty),
      text("--username", "broker", "username", s.username,
           "MQTT user name (empty: none)"),
      text("--password-file", "broker", "password_file", s.password_file,
           "file holding the MQTT password (or $FOTA_MQTT_PASSWORD)"),
      text("--broker-ca", "broker", "ca_file", s.broker_ca,
           "PEM CAs that verify the broker's certificate (ssl:// URLs; "
           "default: the system's)"),
      text("--broker-cert", "broker", "cert_file", s.broker_cert,
           "PEM client certificate for the broker"),
      text("--broker-key", "broker", "key_file", s.broker_key,
           "PEM private key of --broker-cert"),
      text("--shared-group", "broker", "shared_group", s.shared_group,
           "share the device topics among the bridges of this group "
           "($share/GROUP/...); empty: every bridge hears every message",
           check_group),
      number("--keep-alive", "broker", "keep_alive", s.keep_alive, 5, 3600,
             "seconds between MQTT keep-alive pings"),
      number("--max-inflight", "broker", "max_inflight", s.max_inflight, 1,
             65535, "QoS 1 messages to the broker not yet acknowledged"),
      text("--node", "node", "address", s.node,
           "HOST:PORT of the fota node's API", check_address),
      text("--token-file", "node", "token_file", s.token_file,
           "file holding the bridge's gateway token (or "
           "$FOTA_GATEWAY_TOKEN; default: gateway-token)"),
      toggle("--node-tls", "node", "tls", s.node_tls,
             "connect to the node over TLS"),
      text("--node-ca", "node", "ca_file", s.node_ca,
           "PEM CAs that verify the node's certificate; implies --node-tls"),
      text("--node-cert", "node", "cert_file", s.node_cert,
           "PEM client certificate presented to the node; implies "
           "--node-tls"),
      text("--node-key", "node", "key_file", s.node_key,
           "PEM private key of --node-cert"),
      text("--node-server-name", "node", "server_name", s.node_server_name,
           "name the node's certificate must carry (default: its host); "
           "implies --node-tls"),
      number("--max-requests", "node", "max_requests", s.max_requests, 1,
             1u << 20, "requests to the node awaiting an answer"),
      number("--max-batch", "node", "max_batch", s.max_batch, 1, 10000,
             "informs registered together in one RegisterDevices"),
      choice("--log-level", "log", "level", s.log_level,
             {"trace", "debug", "info", "warn", "error", "critical", "off"},
             "least severe messages logged"),
      choice("--log-format", "log", "format", s.log_format, {"text", "json"},
             "text lines, or one JSON object per line"),
  };
}

/// The text of the file at `path`, trimmed; the problem when it has none.
expected<std::string> secret_of(const std::string& path, const char* env,
                                const char* fallback) {
  if (!path.empty())
    return read_token_file(path);
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0')
    return std::string{v};
  return std::string{fallback};
}

// -- the queue from Paho's threads --------------------------------------------

/// What Paho's threads tell the bridge's thread.
class mailbox {
public:
  explicit mailbox(size_t capacity)
    : capacity_(capacity), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    // Nothing else to do.
  }

  ~mailbox() { ::close(wake_); }

  mailbox(const mailbox&) = delete;

  mailbox& operator=(const mailbox&) = delete;

  /// The descriptor that becomes readable when something arrived.
  int fd() const noexcept { return wake_; }

  /// Queues `msg`, waiting while the queue is full (which holds back the
  /// broker) unless the bridge stops.
  void put(paho::const_message_ptr msg) {
    std::unique_lock guard{mtx_};
    not_full_.wait(guard,
                   [this] { return messages_.size() < capacity_ || closed_; });
    if (closed_)
      return;
    messages_.push_back(std::move(msg));
    signal();
  }

  /// Notes that the broker connection (re)opened, so that the bridge
  /// subscribes.
  void connected() {
    std::lock_guard guard{mtx_};
    broker_up_ = true;
    signal();
  }

  /// Takes up to `n` messages; also says whether the broker connection
  /// opened since the last call.
  bool take(std::vector<paho::const_message_ptr>& out, size_t n) {
    uint64_t ignored = 0;
    (void)!::read(wake_, &ignored, sizeof(ignored));
    std::lock_guard guard{mtx_};
    while (n-- > 0 && !messages_.empty()) {
      out.push_back(std::move(messages_.front()));
      messages_.pop_front();
    }
    if (!messages_.empty())
      signal();
    not_full_.notify_all();
    return std::exchange(broker_up_, false);
  }

  /// Releases a waiting `put()` for good.
  void close() {
    std::lock_guard guard{mtx_};
    closed_ = true;
    not_full_.notify_all();
  }

private:
  void signal() {
    uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof(one));
  }

  size_t capacity_;
  int wake_;
  std::mutex mtx_;
  std::condition_variable not_full_;
  std::deque<paho::const_message_ptr> messages_;
  bool broker_up_ = false;
  bool closed_ = false;
};

// -- the bridge ---------------------------------------------------------------

/// Where a request came from: the device, the topic (its reply topic is
/// this plus `_reply`), the request id as JSON text, and whether it is
/// answered.
struct origin {
  std::string device;
  std::string topic;
  std::string id;
  bool replies = false;
};

/// A request to the node and whom its answer goes to: one origin, or one
/// per item of a RegisterDevices batch.
struct pending_request {
  std::vector<origin> origins;
};

/// A device's message waiting for the answer to its previous one.
struct held_message {
  v1::ClientFrame frame;
  origin from;
};

class bridge {
public:
  bridge(bridge_settings settings, std::string token, std::string password)
    : s_(std::move(settings)), token_(std::move(token)),
      password_(std::move(password)),
      inbox_(std::max<size_t>(1024, s_.max_requests)),
      mqtt_(s_.broker, s_.client_id,
            paho::create_options(MQTTVERSION_3_1_1, 1 << 20)) {
    auto addr = parse_listen(s_.node, "127.0.0.1");
    host_ = addr->first;
    port_ = addr->second;
    tls_.ca_file = s_.node_ca;
    tls_.cert_file = s_.node_cert;
    tls_.key_file = s_.node_key;
    tls_.server_name = s_.node_server_name;
    use_tls_ = s_.node_tls || !s_.node_ca.empty() || !s_.node_cert.empty() ||
               !s_.node_server_name.empty();
  }

  /// Runs until a stop signal; returns the exit code.
  int run() {
    mqtt_.set_message_callback(
        [this](paho::const_message_ptr msg) { inbox_.put(std::move(msg)); });
    mqtt_.set_connected_handler([this](const std::string&) {
      spdlog::info("connected to the broker at {}", s_.broker);
      inbox_.connected();
    });
    mqtt_.set_connection_lost_handler([this](const std::string& why) {
      spdlog::warn("lost the broker at {}: {}; reconnecting", s_.broker,
                   why.empty() ? "connection closed" : why);
    });
    // The node first: the devices' messages are answered only with a
    // node behind the bridge.
    while (!stop_requested.load() && !connect_node())
      backoff();
    if (stop_requested.load())
      return 0;
    if (!connect_broker())
      return 1;
    std::vector<paho::const_message_ptr> batch;
    while (!stop_requested.load()) {
      auto room = intake();
      wait(room > 0);
      if (!node_ && steady_clock::now() >= next_node_attempt_ && connect_node())
        resubscribe_status();
      if (node_)
        pump_node();
      batch.clear();
      room = intake();
      if (inbox_.take(batch, room))
        subscribe();
      for (auto& msg : batch)
        handle(*msg);
      if (node_) {
        flush_informs();
        pump_node();
        flush_informs();
      }
    }
    spdlog::info("stopping");
    inbox_.close();
    try {
      mqtt_.disconnect(2s)->wait_for(3s);
    } catch (const paho::exception& e) {
      spdlog::warn("disconnecting from the broker: {}", e.what());
    }
    if (node_) {
      (void)node_->flush(2s);
      node_->close();
    }
    return 0;
  }

private:
  // -- node ------------------------------------------------------------------

  /// Connects and says Hello as a gateway; false (with the next attempt
  /// scheduled) when it cannot.
  bool connect_node() {
    auto cl = client::connect(host_, port_, 5s, use_tls_ ? &tls_ : nullptr);
    if (!cl) {
      node_failed("cannot reach the node at " + s_.node + ": " +
                  cl.error().message);
      return false;
    }
    auto hello = cl->hello(token_, "fota-mqtt");
    if (!hello) {
      node_failed("the node at " + s_.node +
                  " closed the session: " + hello.error().message);
      return false;
    }
    if (hello->status() != v1::STATUS_CODE_OK) {
      node_failed("the node refused the bridge's token: " +
                  std::string{to_string(hello->status())} + ": " +
                  hello->message());
      return false;
    }
    if (hello->hello().role() != v1::ROLE_GATEWAY) {
      node_failed("the token gives the role " +
                  v1::Role_Name(hello->hello().role()) +
                  "; the bridge needs a gateway token");
      return false;
    }
    node_ = std::move(*cl);
    delay_ = 100ms;
    spdlog::info("connected to the node at {} as gateway {}", s_.node,
                 hello->hello().gateway());
    if (!announced_) {
      announced_ = true;
      std::printf("fota-mqtt connected to node %s as gateway %s\n",
                  s_.node.c_str(), hello->hello().gateway().c_str());
      std::fflush(stdout);
    }
    return true;
  }

  void node_failed(const std::string& why) {
    spdlog::warn("{}; retrying in {} ms", why, delay_.count());
    next_node_attempt_ = steady_clock::now() + delay_;
  }

  void backoff() {
    auto until = next_node_attempt_;
    while (!stop_requested.load() && steady_clock::now() < until)
      std::this_thread::sleep_for(50ms);
    delay_ = std::min<milliseconds>(delay_ * 2, 5s);
  }

  /// Writes and reads what the node connection has, without waiting.
  void pump_node() {
    auto on_response = [this](uint64_t id, const v1::Response& r) {
      answer(id, r);
    };
    auto on_push = [this](const v1::Push& p) { forward(p); };
    for (;;) {
      auto n = node_->poll(0, on_response, on_push);
      if (!n) {
        lose_node(n.error().message);
        return;
      }
      if (*n == 0)
        return;
    }
  }

  /// The node went away: every request waiting for it is answered 503,
  /// and the next attempt to reconnect is scheduled.
  void lose_node(const std::string& why) {
    spdlog::warn("lost the node at {}: {}; the requests waiting for it are "
                 "answered 503",
                 s_.node, why);
    node_.reset();
    for (auto& [id, p] : pending_)
      for (auto& o : p.origins)
        if (o.replies)
          reply(o, 503, "the node is not reachable: " + why);
    pending_.clear();
    for (auto& o : inform_origins_.origins)
      reply(o, 503, "the node is not reachable: " + why);
    informs_.Clear();
    inform_origins_ = {};
    for (auto& [device, xs] : held_)
      for (auto& x : xs)
        if (x.from.replies)
          reply(x.from, 503, "the node is not reachable: " + why);
    held_.clear();
    held_count_ = 0;
    next_node_attempt_ = steady_clock::now() + delay_;
    delay_ = std::min<milliseconds>(delay_ * 2, 5s);
  }

  /// Sends `frame` for `origins`.
  void send(v1::ClientFrame frame, pending_request request) {
    auto id = node_->queue(std::move(frame));
    pending_.emplace(id, std::move(request));
  }

  // -- broker ----------------------------------------------------------------

  bool connect_broker() {
    paho::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(false);
    opts.set_keep_alive_interval(static_cast<int>(s_.keep_alive));
    opts.set_max_inflight(static_cast<int>(s_.max_inflight));
    opts.set_automatic_reconnect(1, 30);
    opts.set_connect_timeout(10);
    if (!s_.username.empty())
      opts.set_user_name(s_.username);
    if (!password_.empty())
      opts.set_password(password_);
    if (s_.broker.rfind("ssl://", 0) == 0 ||
        s_.broker.rfind("mqtts://", 0) == 0 ||
        s_.broker.rfind("wss://", 0) == 0) {
      paho::ssl_options ssl;
      if (!s_.broker_ca.empty())
        ssl.set_trust_store(s_.broker_ca);
      if (!s_.broker_cert.empty()) {
        ssl.set_key_store(s_.broker_cert);
        ssl.set_private_key(s_.broker_key);
      }
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);
      opts.set_ssl(std::move(ssl));
    }
    // The first connection is retried like the later ones.
    for (auto delay = 100ms; !stop_requested.load();
         delay = std::min<milliseconds>(delay * 2, 5s)) {
      try {
        mqtt_.connect(opts)->wait();
        return true;
      } catch (const paho::exception& e) {
        spdlog::warn("cannot connect to the broker at {}: {}; retrying in "
                     "{} ms",
                     s_.broker, e.what(), delay.count());
      }
      auto until = steady_clock::now() + delay;
      while (!stop_requested.load() && steady_clock::now() < until)
        std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  /// The filters the bridge reads: the requests shared among the group,
  /// and the statuses unshared, so that their retained messages arrive.
  void subscribe() {
    static constexpr std::string_view kinds[] = {"inform", "progress",
                                                 "getversion", "upgrade_reply"};
    try {
      for (auto kind : kinds) {
        auto filter = "/sys/+/+/ota/device/" + std::string{kind};
        if (!s_.shared_group.empty())
          filter = "$share/" + s_.shared_group + "/" + filter;
        mqtt_.subscribe(filter, 1);
      }
      resubscribe_status();
      if (!ready_) {
        ready_ = true;
        std::printf("fota-mqtt ready\n");
        std::fflush(stdout);
      }
    } catch (const paho::exception& e) {
      spdlog::warn("subscribing at the broker: {}", e.what());
    }
  }

  /// Subscribes to the devices' statuses again, which makes the broker send
  /// every retained status anew: the devices online bind to this session.
  void resubscribe_status() {
    if (!mqtt_.is_connected())
      return;
    try {
      mqtt_.subscribe("/sys/+/+/ota/device/status", 1);
    } catch (const paho::exception& e) {
      spdlog::warn("subscribing to the statuses: {}", e.what());
    }
  }

  void publish(const std::string& topic, const std::string& payload) {
    try {
      mqtt_.publish(topic, payload.data(), payload.size(), 1, false);
    } catch (const paho::exception& e) {
      // The node sends an unacknowledged push again; a device asks again.
      spdlog::warn("cannot publish on {}: {}", topic, e.what());
    }
  }

  void reply(const origin& o, int code, const std::string& message) {
    publish(o.topic + "_reply", codec::encode_reply(o.id, code, message));
  }

  // -- the work --------------------------------------------------------------

  /// How many messages to take from the broker now: as many as the node
  /// may have requests waiting, less those waiting already.
  size_t intake() const {
    if (!node_)
      return 4096;
    auto used = pending_.size() + held_count_ + inform_origins_.origins.size();
    return used >= s_.max_requests ? 0 : s_.max_requests - used;
  }

  /// Waits until the broker (when `inbox`) or the node has something, or a
  /// keep-alive or reconnect is due.
  void wait(bool inbox) {
    pollfd fds[2] = {{inbox ? inbox_.fd() : -1, POLLIN, 0}, {-1, 0, 0}};
    nfds_t n = 1;
    if (node_) {
      fds[1] = {node_->fd(),
                static_cast<short>(POLLIN |
                                   (node_->pending_output() > 0 ? POLLOUT : 0)),
                0};
      n = 2;
    }
    (void)::poll(fds, n, node_ ? 1000 : 100);
  }

  /// One message from the broker. A device's messages reach the node in
  /// the order it published them: while one waits for the node's answer,
  /// the next ones of the same device wait here.
  void handle(const paho::message& msg) {
    auto topic = codec::parse_topic(msg.get_topic());
    if (!topic)
      return;
    const auto& payload = msg.get_payload_ref();
    auto in =
        codec::decode(*topic, std::string_view{payload.data(), payload.size()});
    origin o{topic->product_key + "/" + topic->device_key, msg.get_topic(),
             in.id, in.replies};
    if (!in.error.empty()) {
      spdlog::debug("refused a message on {}: {}", o.topic, in.error);
      if (in.replies)
        reply(o, 400, in.error);
      return;
    }
    if (!in.frame)
      return;
    if (!node_) {
      if (in.replies)
        reply(o, 503, "the node is not reachable; try again later");
      return;
    }
    if (auto i = held_.find(o.device); i != held_.end()) {
      i->second.push_back({std::move(*in.frame), std::move(o)});
      ++held_count_;
      return;
    }
    held_.emplace(o.device, std::deque<held_message>{});
    dispatch(std::move(*in.frame), std::move(o));
  }

  /// Sends the message of a device that has nothing else before the node.
  void dispatch(v1::ClientFrame frame, origin o) {
    if (frame.has_register_device()) {
      // Informs of different devices travel together: one RegisterDevices
      // registers and brings online many devices on this session.
      auto* item = informs_.mutable_register_devices()->add_devices();
      *item = std::move(*frame.mutable_register_device());
      inform_origins_.origins.push_back(std::move(o));
      if (inform_origins_.origins.size() >= s_.max_batch)
        flush_informs();
      return;
    }
    pending_request p;
    p.origins.push_back(std::move(o));
    send(std::move(frame), std::move(p));
  }

  /// The node answered the device's message: its next one may go.
  void release(const std::string& device) {
    auto i = held_.find(device);
    if (i == held_.end())
      return;
    if (i->second.empty()) {
      held_.erase(i);
      return;
    }
    auto next = std::move(i->second.front());
    i->second.pop_front();
    --held_count_;
    dispatch(std::move(next.frame), std::move(next.from));
  }

  void flush_informs() {
    if (inform_origins_.origins.empty())
      return;
    informs_.mutable_register_devices()->set_online(true);
    send(std::move(informs_), std::move(inform_origins_));
    informs_.Clear();
    inform_origins_ = {};
  }

  /// The node's answer to request `id`.
  void answer(uint64_t id, const v1::Response& r) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    auto request = std::move(i->second);
    pending_.erase(i);
    if (r.has_registered() && r.status() == v1::STATUS_CODE_OK) {
      for (const auto& item : r.registered().results()) {
        if (item.index() >= request.origins.size())
          continue;
        auto& o = request.origins[item.index()];
        reply(o, codec::reply_code(item.status()), item.message());
      }
    } else {
      for (auto& o : request.origins) {
        if (o.replies)
          publish(o.topic + "_reply", codec::encode_reply(o.id, r));
        else if (r.status() != v1::STATUS_CODE_OK)
          spdlog::debug("{}: {}: {}", o.topic, to_string(r.status()),
                        r.message());
      }
    }
    for (auto& o : request.origins)
      release(o.device);
  }

  /// A push of the node, to its device's topic.
  void forward(const v1::Push& p) {
    if (p.has_upgrade()) {
      auto out = codec::encode_push(p.upgrade());
      publish(out.topic, out.payload);
    } else if (p.has_cancel()) {
      auto out = codec::encode_cancel(p.cancel());
      publish(out.topic, out.payload);
    }
  }

  bridge_settings s_;
  std::string token_;
  std::string password_;
  std::string host_;
  uint16_t port_ = 0;
  bool use_tls_ = false;
  tls_client_options tls_;
  mailbox inbox_;
  paho::async_client mqtt_;
  std::optional<client> node_;
  milliseconds delay_ = 100ms;
  steady_clock::time_point next_node_attempt_;
  std::unordered_map<uint64_t, pending_request> pending_;
  /// Devices with a message before the node, and their next messages.
  std::unordered_map<std::string, std::deque<held_message>> held_;
  size_t held_count_ = 0;
  v1::ClientFrame informs_;
  pending_request inform_origins_;
  bool announced_ = false;
  bool ready_ = false;
};

} // namespace

int main(int argc, char** argv) {
  bridge_settings s;
  auto table = settings_table(s);
  CLI::App app{"fota-mqtt: devices on an MQTT broker reach a fota node "
               "through this bridge (docs/protocol.md, \"MQTT devices\")"};
  app.set_version_flag("--version", version_line("fota-mqtt"));
  app.add_option("--config", s.config,
                 "TOML file with the settings ([broker], [node], [log]); "
                 "flags win over it");
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "check the flags and the config file, then exit");
  add_flags(app, table);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!s.config.empty()) {
    toml::table doc;
    std::vector<std::string> problems;
    if (auto err = parse_config_file(s.config, doc)) {
      problems.push_back(*err);
    } else {
      config_reader r{s.config};
      load_settings(r, table, doc, [&app](const std::string& flag) {
        return app.count(flag) > 0;
      });
      problems = r.take();
    }
    for (const auto& p : problems)
      std::fprintf(stderr, "error: %s\n", p.c_str());
    if (!problems.empty())
      return 2;
  }
  if (!s.broker_cert.empty() && s.broker_key.empty()) {
    std::fprintf(stderr, "error: --broker-cert needs --broker-key\n");
    return 2;
  }
  if (!s.node_cert.empty() && s.node_key.empty()) {
    std::fprintf(stderr, "error: --node-cert needs --node-key\n");
    return 2;
  }
  if (check_config) {
    std::printf("config ok\n");
    return 0;
  }
  setup_logging(s.log_level, s.log_format);
  auto token = secret_of(s.token_file, "FOTA_GATEWAY_TOKEN", "gateway-token");
  if (!token) {
    std::fprintf(stderr, "error: %s\n", token.error().message.c_str());
    return 2;
  }
  auto password = secret_of(s.password_file, "FOTA_MQTT_PASSWORD", "");
  if (!password) {
    std::fprintf(stderr, "error: %s\n", password.error().message.c_str());
    return 2;
  }
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    bridge b{std::move(s), std::move(*token), std::move(*password)};
    return b.run();
  } catch (const paho::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
