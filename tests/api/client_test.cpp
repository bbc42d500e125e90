/// Tests of the client against a scripted peer on the other end of a
/// socketpair: the peer's frames are written before the client reads, so the
/// tests need neither threads nor sleeps.
#include "api/client.hpp"

#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace fota {
namespace {

using namespace std::chrono_literals;

/// The node's end of the connection.
class fake_node {
public:
  fake_node() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
      throw std::runtime_error("socketpair failed");
    client_fd_ = fds[0];
    fd_ = fds[1];
  }

  ~fake_node() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  /// Hands the client's end to a `client`.
  client make_client(size_t max_frame_size = default_max_frame_size) {
    return client::from_fd(client_fd_, max_frame_size);
  }

  void write(const std::string& bytes) {
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }

  void respond(uint64_t id, v1::StatusCode code, std::string message = {}) {
    v1::ServerFrame frame;
    frame.set_request_id(id);
    frame.mutable_response()->set_status(code);
    frame.mutable_response()->set_message(std::move(message));
    write(encode_frame(frame));
  }

  void push_upgrade(uint64_t execution_id, uint32_t attempt) {
    v1::ServerFrame frame;
    auto* push = frame.mutable_push()->mutable_upgrade();
    push->set_device_key("dev-1");
    push->set_execution_id(execution_id);
    push->set_attempt(attempt);
    write(encode_frame(frame));
  }

  /// Returns the frames the client has written so far.
  std::vector<v1::ClientFrame> received() {
    std::vector<v1::ClientFrame> result;
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0)
        break;
      decoder_.feed(buf, static_cast<size_t>(n));
    }
    for (auto res = decoder_.next(); res.status == decode_status::frame;
         res = decoder_.next()) {
      v1::ClientFrame frame;
      EXPECT_FALSE(parse_frame(res.payload, frame));
      result.push_back(std::move(frame));
    }
    return result;
  }

  void close() {
    ::close(fd_);
    fd_ = -1;
  }

private:
  int client_fd_ = -1;
  int fd_ = -1;
  frame_decoder decoder_;
};

TEST(Client, StatusCodeNamesDropThePrefix) {
  EXPECT_STREQ(to_string(v1::STATUS_CODE_OK), "OK");
  EXPECT_STREQ(to_string(v1::STATUS_CODE_INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_STREQ(to_string(v1::STATUS_CODE_UNAVAILABLE), "UNAVAILABLE");
}

TEST(Client, CallReturnsTheResponseWithTheMatchingRequestId) {
  fake_node node;
  auto cl = node.make_client();
  // Request 1 is the hello; a response to some other id comes first.
  node.respond(99, v1::STATUS_CODE_OK);
  node.respond(1, v1::STATUS_CODE_OK, "hello back");
  auto res = cl.hello("operator-token", "test");
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->message(), "hello back");
  auto sent = node.received();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].request_id(), 1u);
  EXPECT_EQ(sent[0].hello().token(), "operator-token");
  EXPECT_EQ(sent[0].hello().client_name(), "test");
  EXPECT_EQ(cl.next_request_id(), 2u);
}

TEST(Client, NonOkStatusIsStillAResponse) {
  fake_node node;
  auto cl = node.make_client();
  node.respond(1, v1::STATUS_CODE_NOT_FOUND, "no firmware demo/9.9");
  v1::ClientFrame req;
  req.mutable_get_firmware()->set_product_key("demo");
  auto res = cl.call(req);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status(), v1::STATUS_CODE_NOT_FOUND);
  EXPECT_EQ(res->message(), "no firmware demo/9.9");
}

TEST(Client, PushesReceivedDuringACallAreQueued) {
  fake_node node;
  auto cl = node.make_client();
  node.push_upgrade(5, 1);
  node.respond(1, v1::STATUS_CODE_OK);
  node.push_upgrade(6, 1);
  ASSERT_TRUE(cl.hello("gateway-token"));
  auto first = cl.poll_push();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->upgrade().execution_id(), 5u);
  // The second push may or may not have been read yet; a poll reads it.
  auto handled = cl.poll(0, nullptr, [](const v1::Push& p) {
    EXPECT_EQ(p.upgrade().execution_id(), 6u);
  });
  ASSERT_TRUE(handled);
  EXPECT_FALSE(cl.poll_push());
}

TEST(Client, PushHandlerReceivesPushesWhenCallReturns) {
  fake_node node;
  auto cl = node.make_client();
  std::vector<uint64_t> seen;
  cl.on_push(
      [&](const v1::Push& p) { seen.push_back(p.upgrade().execution_id()); });
  node.push_upgrade(5, 1);
  node.push_upgrade(5, 2);
  node.respond(1, v1::STATUS_CODE_OK);
  ASSERT_TRUE(cl.hello("gateway-token"));
  EXPECT_EQ(seen, (std::vector<uint64_t>{5, 5}));
  EXPECT_FALSE(cl.poll_push());
}

TEST(Client, PipelinedSendAndPollDeliverEveryFrameInOrder) {
  fake_node node;
  auto cl = node.make_client();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100; ++i) {
    v1::ClientFrame req;
    req.mutable_device_online()->set_device_key("dev-" + std::to_string(i));
    ids.push_back(cl.send(req));
  }
  EXPECT_EQ(ids.front(), 1u);
  EXPECT_EQ(ids.back(), 100u);
  EXPECT_EQ(cl.outstanding(), 100u);
  auto sent = node.received();
  ASSERT_EQ(sent.size(), 100u);
  EXPECT_EQ(sent[42].device_online().device_key(), "dev-42");
  for (auto id : ids)
    node.respond(id, v1::STATUS_CODE_OK);
  node.push_upgrade(7, 1);
  std::vector<uint64_t> answered;
  size_t pushes = 0;
  while (answered.size() < ids.size() || pushes == 0) {
    auto n = cl.poll(
        1000, [&](uint64_t id, const v1::Response&) { answered.push_back(id); },
        [&](const v1::Push&) { ++pushes; });
    ASSERT_TRUE(n) << n.error().message;
  }
  EXPECT_EQ(answered, ids);
  EXPECT_EQ(pushes, 1u);
  EXPECT_EQ(cl.outstanding(), 0u);
}

TEST(Client, ClosedConnectionIsUnavailable) {
  fake_node node;
  auto cl = node.make_client();
  node.close();
  auto res = cl.hello("operator-token");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  // Depending on timing the write or the read notices first.
  EXPECT_TRUE(res.error().message == "connection closed by the node" ||
              res.error().message == "connection reset by the node" ||
              res.error().message.rfind("write failed: ", 0) == 0)
      << res.error().message;
  EXPECT_FALSE(cl.connected());
  // The failure is sticky.
  auto again = cl.hello("operator-token");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, res.error().message);
}

TEST(Client, SessionErrorBeforeCloseIsReported) {
  fake_node node;
  auto cl = node.make_client();
  node.respond(0, v1::STATUS_CODE_UNAUTHENTICATED, "unknown token");
  node.close();
  auto res = cl.hello("bad-token");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_EQ(res.error().message, "the node reported a session error: "
                                 "UNAUTHENTICATED: unknown token");
}

TEST(Client, PollReportsTheCloseAfterDeliveringEarlierFrames) {
  fake_node node;
  auto cl = node.make_client();
  auto id = cl.send(v1::ClientFrame{});
  node.respond(id, v1::STATUS_CODE_OK);
  // Reading first makes the close orderly; closing with unread data would
  // reset the connection instead.
  ASSERT_EQ(node.received().size(), 1u);
  node.close();
  size_t responses = 0;
  auto on_response = [&](uint64_t, const v1::Response&) { ++responses; };
  expected<size_t> res = size_t{0};
  while (res && responses == 0)
    res = cl.poll(1000, on_response, nullptr);
  EXPECT_EQ(responses, 1u);
  while (res)
    res = cl.poll(1000, on_response, nullptr);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_EQ(res.error().message, "connection closed by the node");
}

TEST(Client, OversizedFrameFromTheNodeBreaksTheConnection) {
  fake_node node;
  auto cl = node.make_client(64);
  node.respond(1, v1::STATUS_CODE_OK, std::string(100, 'x'));
  auto res = cl.hello("operator-token");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_EQ(
      res.error().message.rfind("broken frame from the node: frame of ", 0), 0u)
      << res.error().message;
}

TEST(Client, GarbageFrameFromTheNodeBreaksTheConnection) {
  fake_node node;
  auto cl = node.make_client();
  node.write(std::string{'\x03', '\xff', '\xff', '\xff'});
  auto res = cl.hello("operator-token");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().message, "broken frame from the node: frame does not "
                                 "parse as fota.v1.ServerFrame");
}

TEST(Client, CallWithoutAResponseTimesOut) {
  fake_node node;
  auto cl = node.make_client();
  auto res = cl.call(v1::ClientFrame{}, 0ms);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_EQ(res.error().message, "no response to request 1 within 0 ms");
  // A late response still reaches poll().
  node.respond(1, v1::STATUS_CODE_OK);
  uint64_t answered = 0;
  while (answered == 0) {
    auto n = cl.poll(
        1000, [&](uint64_t id, const v1::Response&) { answered = id; },
        nullptr);
    ASSERT_TRUE(n);
  }
  EXPECT_EQ(answered, 1u);
}

TEST(Client, ConnectToAClosedPortIsUnavailable) {
  // Port 1 on the loopback is reserved and not listening in a test sandbox.
  auto res = client::connect("127.0.0.1", 1, 1000ms);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, errc::unavailable);
  EXPECT_EQ(res.error().message.rfind("cannot connect to 127.0.0.1:1: ", 0), 0u)
      << res.error().message;
}

TEST(Client, PollPingsAQuietSessionAndKeepsTheAnswer) {
  fake_node node;
  auto cl = node.make_client();
  v1::ServerFrame hello;
  hello.set_request_id(1);
  hello.mutable_response()->set_status(v1::STATUS_CODE_OK);
  hello.mutable_response()->mutable_hello()->set_idle_timeout_seconds(1);
  node.write(encode_frame(hello));
  ASSERT_TRUE(cl.hello("t", "test"));
  // A third of a second of quiet: poll() sends a Ping.
  std::vector<v1::ClientFrame> sent;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::vector<uint64_t> answered;
  auto record = [&](uint64_t id, const v1::Response&) {
    answered.push_back(id);
  };
  while (sent.empty() && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(cl.poll(50, record, nullptr));
    for (auto& f : node.received())
      if (!f.has_hello())
        sent.push_back(std::move(f));
  }
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(sent[0].has_ping());
  // Its answer is not handed out.
  node.respond(sent[0].request_id(), v1::STATUS_CODE_OK);
  node.respond(77, v1::STATUS_CODE_OK);
  deadline = std::chrono::steady_clock::now() + 10s;
  while (answered.empty() && std::chrono::steady_clock::now() < deadline)
    ASSERT_TRUE(cl.poll(50, record, nullptr));
  EXPECT_EQ(answered, std::vector<uint64_t>{77});
}

} // namespace
} // namespace fota
