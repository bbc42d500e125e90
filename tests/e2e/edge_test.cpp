/// End-to-end tests of the node's edge with the real fotad: gateway
/// identities and device ownership, product scopes and quotas, bad tokens,
/// loopback binding, timeouts, the connection limit, and the bounds on what
/// a peer that does not read can make the node hold. Waits poll a
/// condition with a deadline; no assertion rests on a fixed sleep, and
/// times are only ever checked as lower bounds.
#include "api/client.hpp"
#include "api/frame_codec.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/loopback.hpp"
#include "tests/support/processes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <set>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace fota;
using namespace fota::test;

constexpr const char* cam = "cam";

/// Two gateways: gw-a serves cam (at most 3 devices, 2 labels each), gw-b
/// serves cam and lamp.
constexpr const char* two_gateways = R"(
[[gateways]]
name = "gw-a"
token = "token-a"
products = ["cam"]
max_devices = 3
max_labels = 2

[[gateways]]
name = "gw-b"
token_env = "FOTA_E2E_TOKEN_B"
products = ["cam", "lamp"]
)";

/// The value of an unlabelled metric in Prometheus text, or -1.
double metric(const std::string& text, const std::string& name) {
  std::regex line{"\\n" + name + " ([0-9.e+]+)"};
  std::smatch m;
  if (!std::regex_search(text, m, line))
    return -1;
  return std::stod(m[1]);
}

/// The resident set size of process `pid`, in KiB.
uint64_t rss_kib(pid_t pid) {
  auto status = slurp("/proc/" + std::to_string(pid) + "/status");
  std::smatch m;
  static const std::regex line{R"(VmRSS:\s+(\d+) kB)"};
  return std::regex_search(status, m, line) ? std::stoull(m[1]) : 0;
}

/// Whether the node closed `fd`: a read sees the end within `timeout`.
bool closed_within(int fd, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  char buf[4096];
  while (steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
  }
  return false;
}

v1::ClientFrame registration(const std::string& product,
                             const std::string& device,
                             const std::string& version = "1.0.0") {
  v1::ClientFrame f;
  auto* r = f.mutable_register_device();
  r->set_product_key(product);
  r->set_device_key(device);
  r->set_version(version);
  return f;
}

v1::ClientFrame online(const std::string& product, const std::string& device) {
  v1::ClientFrame f;
  f.mutable_device_online()->set_product_key(product);
  f.mutable_device_online()->set_device_key(device);
  return f;
}

class Edge : public ::testing::Test {
protected:
  void TearDown() override {
    ::unsetenv("FOTA_E2E_TOKEN_B");
    if (HasFailure())
      dir_.keep();
  }

  /// Starts fotad with `args`; returns it once it listens, or once it ended.
  process start_node(std::vector<std::string> args, bool expect_up = true) {
    auto n = starts_++;
    std::vector<std::string> all{"--data-dir", (dir_ / "data").string()};
    bool has_listen = false;
    for (const auto& a : args)
      has_listen = has_listen || a == "--listen";
    if (!has_listen)
      all.insert(all.end(), {"--listen", "0"});
    all.insert(all.end(), args.begin(), args.end());
    process p{bin_dir() / "fotad", all,
              dir_ / ("fotad-" + std::to_string(n) + ".out"),
              dir_ / ("fotad-" + std::to_string(n) + ".err")};
    if (auto port = listening_port(p))
      port_ = *port;
    else if (expect_up)
      ADD_FAILURE() << "fotad did not start: " << p.err();
    return p;
  }

  std::string write_config(const std::string& text) {
    auto path = dir_ / "fotad.toml";
    std::ofstream{path} << text;
    return path.string();
  }

  /// A client authenticated with `token`.
  client login(const std::string& token) {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    EXPECT_TRUE(cl) << (cl ? "" : cl.error().message);
    auto h = cl->hello(token, "edge-test");
    EXPECT_TRUE(h && h->status() == v1::STATUS_CODE_OK)
        << (h ? h->message() : h.error().message);
    return std::move(*cl);
  }

  static v1::StatusCode status_of(client& cl, const v1::ClientFrame& f) {
    auto r = cl.call(f, 10s);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? r->status() : v1::STATUS_CODE_UNSPECIFIED;
  }

  static std::string message_of(client& cl, const v1::ClientFrame& f) {
    auto r = cl.call(f, 10s);
    return r ? r->message() : r.error().message;
  }

  temp_dir dir_{"fota-edge"};
  uint16_t port_ = 0;
  int starts_ = 0;
};

// -- gateway identity and ownership -------------------------------------------

TEST_F(Edge, ASecondGatewayCannotForgeRegistrationOnlineOrReports) {
  ::setenv("FOTA_E2E_TOKEN_B", "token-b", 1);
  auto node = start_node({"--config", write_config(two_gateways)});
  ASSERT_NE(port_, 0);
  auto a = login("token-a");
  auto b = login("token-b");
  ASSERT_EQ(status_of(a, registration(cam, "d1")), v1::STATUS_CODE_OK);
  ASSERT_EQ(status_of(a, online(cam, "d1")), v1::STATUS_CODE_OK);

  // gw-b may not re-register d1 (to rewrite its version), bring it online
  // (to take its pushes), or report for it.
  EXPECT_EQ(status_of(b, registration(cam, "d1", "6.6.6")),
            v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_NE(message_of(b, registration(cam, "d1"))
                .find("belongs to gateway "
                      "gw-a"),
            std::string::npos);
  EXPECT_EQ(status_of(b, online(cam, "d1")), v1::STATUS_CODE_PERMISSION_DENIED);
  v1::ClientFrame version;
  version.mutable_report_version()->set_product_key(cam);
  version.mutable_report_version()->set_device_key("d1");
  version.mutable_report_version()->set_version("2.0.0");
  EXPECT_EQ(status_of(b, version), v1::STATUS_CODE_PERMISSION_DENIED);
  v1::ClientFrame progress;
  auto* p = progress.mutable_report_progress();
  p->set_product_key(cam);
  p->set_device_key("d1");
  p->set_execution_id((uint64_t{1} << 32) | 1);
  p->set_step(100);
  EXPECT_EQ(status_of(b, progress), v1::STATUS_CODE_PERMISSION_DENIED);
  v1::ClientFrame ask;
  ask.mutable_request_upgrade()->set_product_key(cam);
  ask.mutable_request_upgrade()->set_device_key("d1");
  EXPECT_EQ(status_of(b, ask), v1::STATUS_CODE_PERMISSION_DENIED);

  // The device kept its version and its gateway.
  auto op = login("operator-token");
  v1::ClientFrame get;
  get.mutable_get_device()->set_product_key(cam);
  get.mutable_get_device()->set_device_key("d1");
  auto d = op.call(get, 10s);
  ASSERT_TRUE(d && d->status() == v1::STATUS_CODE_OK);
  EXPECT_EQ(d->device().version(), "1.0.0");
  EXPECT_EQ(d->device().gateway(), "gw-a");
  EXPECT_TRUE(d->device().online());

  // An operator moves it: now gw-b may act for it and gw-a may not.
  v1::ClientFrame move;
  move.mutable_move_device()->set_product_key(cam);
  move.mutable_move_device()->set_device_key("d1");
  move.mutable_move_device()->set_gateway("gw-b");
  auto moved = op.call(move, 10s);
  ASSERT_TRUE(moved && moved->status() == v1::STATUS_CODE_OK)
      << (moved ? moved->message() : moved.error().message);
  EXPECT_EQ(moved->device().gateway(), "gw-b");
  EXPECT_FALSE(moved->device().online());
  EXPECT_EQ(status_of(b, online(cam, "d1")), v1::STATUS_CODE_OK);
  EXPECT_EQ(status_of(a, version), v1::STATUS_CODE_PERMISSION_DENIED);
  move.mutable_move_device()->set_gateway("gw-nowhere");
  EXPECT_EQ(status_of(op, move), v1::STATUS_CODE_NOT_FOUND);

  // The ownership is durable: after a restart gw-a is still refused.
  node.stop();
  node = start_node({"--config", write_config(two_gateways)});
  ASSERT_NE(port_, 0);
  auto a2 = login("token-a");
  EXPECT_EQ(status_of(a2, online(cam, "d1")),
            v1::STATUS_CODE_PERMISSION_DENIED);
}

TEST_F(Edge, GatewaysServeTheirProductsWithinTheirQuotas) {
  ::setenv("FOTA_E2E_TOKEN_B", "token-b", 1);
  auto node = start_node({"--config", write_config(two_gateways)});
  ASSERT_NE(port_, 0);
  auto a = login("token-a");
  EXPECT_EQ(status_of(a, registration("lamp", "l1")),
            v1::STATUS_CODE_PERMISSION_DENIED);
  EXPECT_NE(message_of(a, registration("lamp", "l1"))
                .find("gateway gw-a may not serve product lamp"),
            std::string::npos);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(status_of(a, registration(cam, "q" + std::to_string(i))),
              v1::STATUS_CODE_OK);
  EXPECT_EQ(status_of(a, registration(cam, "q3")),
            v1::STATUS_CODE_RESOURCE_EXHAUSTED);
  EXPECT_NE(message_of(a, registration(cam, "q3"))
                .find("gateway gw-a holds 3 devices"),
            std::string::npos);
  // Three labels on a device of gw-a, which allows two.
  auto labelled = registration(cam, "q0");
  auto& tags = *labelled.mutable_register_device()->mutable_tags();
  tags["a"] = "1";
  tags["b"] = "2";
  tags["c"] = "3";
  EXPECT_EQ(status_of(a, labelled), v1::STATUS_CODE_RESOURCE_EXHAUSTED);
  // gw-b has room of its own.
  auto b = login("token-b");
  EXPECT_EQ(status_of(b, registration("lamp", "l1")), v1::STATUS_CODE_OK);
}

// -- tokens and binding -------------------------------------------------------

TEST_F(Edge, BadTokensAreCountedClosedAndSlowedDown) {
  auto metrics_port = free_port();
  auto node = start_node({"--metrics", std::to_string(metrics_port)});
  ASSERT_NE(port_, 0);
  std::vector<milliseconds> answered;
  for (int i = 0; i < 4; ++i) {
    auto cl = client::connect("127.0.0.1", port_, 5s);
    ASSERT_TRUE(cl);
    auto start = steady_clock::now();
    auto h = cl->hello("guess-" + std::to_string(i), "attacker");
    answered.push_back(
        std::chrono::duration_cast<milliseconds>(steady_clock::now() - start));
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_EQ(h->status(), v1::STATUS_CODE_UNAUTHENTICATED);
    ASSERT_TRUE(closed_within(cl->fd(), 10s));
  }
  // The fourth guess waited at least 100 + 200 + 400 ms less what the
  // earlier round trips took; a generous lower bound is 300 ms.
  EXPECT_GE(answered[3].count(), 300) << answered[3].count();
  double failures = -1;
  eventually(
      [&] {
        failures = metric(http_get(metrics_port, "/metrics"),
                          "fota_auth_failures_total");
        return failures >= 4;
      },
      10s);
  EXPECT_EQ(failures, 4);
  // The node binds loopback when no address is given.
  EXPECT_NE(node.err().find("listening on 127.0.0.1:"), std::string::npos)
      << node.err();
}

TEST_F(Edge, ExposedAddressNeedsTokensOfItsOwn) {
  auto refused = start_node({"--listen", "0.0.0.0:0"}, false);
  auto code = refused.wait_for(30s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 2);
  EXPECT_NE(refused.err().find("refusing to listen on 0.0.0.0:0 with a "
                               "default token"),
            std::string::npos)
      << refused.err();
  auto token_file = dir_ / "operator.token";
  std::ofstream{token_file} << "s3cret-operator\n";
  ::setenv("FOTA_E2E_TOKEN_B", "token-b", 1);
  auto node =
      start_node({"--listen", "0.0.0.0:0", "--operator-token-file",
                  token_file.string(), "--config", write_config(two_gateways)});
  ASSERT_NE(port_, 0);
  auto op = login("s3cret-operator");
  v1::ClientFrame list;
  list.mutable_list_tasks();
  EXPECT_EQ(status_of(op, list), v1::STATUS_CODE_OK);
  // No shared gateway token once gateways are configured.
  auto cl = client::connect("127.0.0.1", port_, 5s);
  ASSERT_TRUE(cl);
  auto h = cl->hello("gateway-token", "old-habit");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status(), v1::STATUS_CODE_UNAUTHENTICATED);
}

// -- timeouts and limits ------------------------------------------------------

TEST_F(Edge, SilentUnfinishedAndIdleSessionsAreClosed) {
  auto node = start_node(
      {"--hello-timeout", "1", "--frame-timeout", "1", "--idle-timeout", "2"});
  ASSERT_NE(port_, 0);
  // No Hello at all.
  int silent = raw_connect(port_);
  ASSERT_GE(silent, 0);
  EXPECT_TRUE(closed_within(silent, 15s));
  ::close(silent);
  // A frame that never completes, after a good Hello.
  auto cl = login("operator-token");
  ASSERT_EQ(::send(cl.fd(), "\x10", 1, MSG_NOSIGNAL), 1);
  EXPECT_TRUE(closed_within(cl.fd(), 15s));
  // Idle: closed, unless it pings.
  auto idle = login("operator-token");
  auto pinging = login("operator-token");
  auto until = steady_clock::now() + 4s;
  while (steady_clock::now() < until) {
    v1::ClientFrame ping;
    ping.mutable_ping();
    auto r = pinging.call(ping, 5s);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status(), v1::STATUS_CODE_OK);
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_TRUE(closed_within(idle.fd(), 15s));
  v1::ClientFrame list;
  list.mutable_list_tasks();
  EXPECT_EQ(status_of(pinging, list), v1::STATUS_CODE_OK);
}

TEST_F(Edge, TheFrameTimeoutMeasuresEachFrameNotAPipeline) {
  // A client that pipelines keeps the node's input from ever running
  // empty: each write ends a frame and begins the next. Every frame
  // completes within the timeout, so the session stays open.
  auto node = start_node({"--frame-timeout", "2"});
  ASSERT_NE(port_, 0);
  int fd = raw_connect(port_);
  ASSERT_GE(fd, 0);
  v1::ClientFrame hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_token("operator-token");
  auto first = encode_frame(hello);
  auto ping = [](uint64_t id) {
    v1::ClientFrame f;
    f.set_request_id(id);
    f.mutable_ping();
    return encode_frame(f);
  };
  auto next = ping(2);
  auto sent = first + next.substr(0, 1);
  ASSERT_EQ(::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(sent.size()));
  uint64_t id = 2;
  auto until = steady_clock::now() + 5s;
  char sink[4096];
  while (steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
    auto following = ping(++id);
    auto bytes = next.substr(1) + following.substr(0, 1);
    next = following;
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()))
        << "the node closed a session whose frames each completed";
    while (::recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
  }
  EXPECT_FALSE(closed_within(fd, 1s))
      << "the node closed a session whose frames each completed";
  ::close(fd);
}

TEST_F(Edge, ConnectionsBeyondTheLimitAreRefused) {
  auto node = start_node({"--max-connections", "2"});
  ASSERT_NE(port_, 0);
  auto one = login("operator-token");
  auto two = login("operator-token");
  auto three = client::connect("127.0.0.1", port_, 5s);
  ASSERT_TRUE(three);
  auto h = three->hello("operator-token", "third");
  if (h) { // The refusal may arrive as the answer, or the close first.
    EXPECT_EQ(h->status(), v1::STATUS_CODE_UNAVAILABLE) << h->message();
  }
  EXPECT_TRUE(closed_within(three->fd(), 10s));
  // Once one closes, a new connection is served.
  one.close();
  EXPECT_TRUE(eventually(
      [&] {
        auto cl = client::connect("127.0.0.1", port_, 5s);
        if (!cl)
          return false;
        auto r = cl->hello("operator-token", "fourth");
        return r && r->status() == v1::STATUS_CODE_OK;
      },
      10s));
}

TEST_F(Edge, AClientThatNeverReadsLeavesTheNodeBounded) {
  auto node = start_node({"--max-output-buffer", "65536"});
  ASSERT_NE(port_, 0);
  auto gw = login("gateway-token");
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(status_of(gw, registration(cam, "n" + std::to_string(i))),
              v1::STATUS_CODE_OK);
  auto op = login("operator-token");
  auto before = rss_kib(node.pid());
  // Ask for 200 devices a time, again and again, and never read: each
  // answer is about 10 KB, so 20,000 of them would be 200 MB.
  v1::ClientFrame list;
  list.mutable_list_devices()->set_product_key(cam);
  list.mutable_list_devices()->set_page_size(200);
  auto bytes = encode_frame(list);
  int fd = op.fd();
  size_t sent = 0;
  auto until = steady_clock::now() + 5s;
  while (steady_clock::now() < until && sent < 20'000) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    auto n =
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(bytes.size()))
      ++sent;
    else if (n > 0)
      break; // A partial frame: stop here, the stream stays well-formed
             // only up to the last whole frame.
  }
  ASSERT_GT(sent, 1'000u);
  auto after = rss_kib(node.pid());
  EXPECT_LT(after, before + 64 * 1024)
      << "RSS grew from " << before << " to " << after << " KiB after " << sent
      << " requests";
  // Others are still served.
  auto other = login("operator-token");
  v1::ClientFrame tasks;
  tasks.mutable_list_tasks();
  EXPECT_EQ(status_of(other, tasks), v1::STATUS_CODE_OK);
}

TEST_F(Edge, PushesWaitForAGatewayThatDoesNotReadAndGoOutWhenItDoes) {
  auto metrics_port = free_port();
  auto node = start_node({"--max-output-buffer", "65536", "--push-ack-timeout",
                          "3600", "--metrics", std::to_string(metrics_port)});
  ASSERT_NE(port_, 0);
  // Pushes of about 3 KB each, for 3,000 devices: about 9 MB, more than
  // the kernel's socket buffers hold.
  auto op = login("operator-token");
  v1::ClientFrame fw;
  auto* f = fw.mutable_create_firmware()->mutable_firmware();
  f->set_product_key(cam);
  f->set_version("2.0.0");
  f->set_url("https://firmware.example/" + std::string(1900, 'u'));
  f->set_size(4096);
  f->set_sha256(std::string(64, 'a'));
  f->set_description(std::string(1000, 'd'));
  ASSERT_EQ(status_of(op, fw), v1::STATUS_CODE_OK);
  v1::ClientFrame skip;
  skip.mutable_skip_verification()->set_product_key(cam);
  skip.mutable_skip_verification()->set_version("2.0.0");
  skip.mutable_skip_verification()->set_reason("test image");
  ASSERT_EQ(status_of(op, skip), v1::STATUS_CODE_OK);

  constexpr int devices = 3000;
  auto gw = login("gateway-token");
  size_t ok = 0;
  auto count_ok = [&](uint64_t, const v1::Response& r) {
    ok += r.status() == v1::STATUS_CODE_OK ? 1 : 0;
  };
  auto ignore_push = [](const v1::Push&) {};
  for (int i = 0; i < devices; ++i) {
    gw.queue(registration(cam, "p" + std::to_string(i)));
    gw.queue(online(cam, "p" + std::to_string(i)));
  }
  ASSERT_TRUE(eventually(
      [&] {
        auto n = gw.poll(100, count_ok, ignore_push);
        return !n || ok == 2 * devices;
      },
      120s));
  ASSERT_EQ(ok, 2u * devices);

  // The gateway stops reading; the task pushes to all of its devices.
  auto rss_before = rss_kib(node.pid());
  v1::ClientFrame task;
  auto* spec = task.mutable_create_task()->mutable_spec();
  spec->set_name("deferred pushes");
  spec->set_product_key(cam);
  spec->set_target_version("2.0.0");
  spec->add_source_versions("1.0.0");
  spec->set_strategy(v1::STRATEGY_SNAPSHOT);
  spec->set_method(v1::METHOD_CLOUD_PUSH);
  spec->mutable_scope()->set_kind(v1::SCOPE_KIND_ALL);
  auto created = op.call(task, 30s);
  ASSERT_TRUE(created && created->status() == v1::STATUS_CODE_OK)
      << (created ? created->message() : created.error().message);
  double deferred = -1;
  EXPECT_TRUE(eventually(
      [&] {
        deferred = metric(http_get(metrics_port, "/metrics"),
                          "fota_pushes_deferred_total");
        return deferred > 0;
      },
      60s))
      << deferred;
  EXPECT_LT(rss_kib(node.pid()), rss_before + 64 * 1024);

  // It reads again: every device gets its push.
  std::set<std::string> pushed;
  auto collect = [&](const v1::Push& p) {
    if (p.has_upgrade())
      pushed.insert(p.upgrade().device_key());
  };
  auto ignore = [](uint64_t, const v1::Response&) {};
  EXPECT_TRUE(eventually(
      [&] {
        auto n = gw.poll(100, ignore, collect);
        return !n || pushed.size() == devices;
      },
      120s));
  EXPECT_EQ(pushed.size(), static_cast<size_t>(devices));
}

} // namespace
