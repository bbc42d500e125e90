/// The wire API client: connecting, framing requests, matching responses and
/// queueing pushes over a non-blocking socket driven by poll(2).
#include "api/client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <utility>

namespace fota {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

/// How much one read pass takes from the socket before handing frames out.
constexpr size_t read_chunk_size = size_t{64} << 10;
constexpr int max_reads_per_pass = 16;

/// Output larger than this is released once it has been written.
constexpr size_t keep_output_capacity = size_t{1} << 20;

std::string errno_text(int code) {
  return std::strerror(code);
}

/// Milliseconds left until `deadline`, rounded up, at least 0.
int remaining_ms(steady_clock::time_point deadline) {
  auto now = steady_clock::now();
  if (now >= deadline)
    return 0;
  auto left = std::chrono::ceil<milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<long long>(left, INT32_MAX));
}

void set_nonblocking(int fd) {
  auto flags = ::fcntl(fd, F_GETFL, 0);
  if (flags >= 0)
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

} // namespace

expected<std::string> read_token_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_failure(errc::invalid_argument,
                        "cannot read the token file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  auto x = buf.str();
  auto first = x.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return make_failure(errc::invalid_argument,
                        "the token file " + path + " is empty");
  auto last = x.find_last_not_of(" \t\r\n");
  return x.substr(first, last - first + 1);
}

const char* to_string(v1::StatusCode x) noexcept {
  switch (x) {
  case v1::STATUS_CODE_UNSPECIFIED:
    return "UNSPECIFIED";
  case v1::STATUS_CODE_OK:
    return "OK";
  case v1::STATUS_CODE_INVALID_ARGUMENT:
    return "INVALID_ARGUMENT";
  case v1::STATUS_CODE_NOT_FOUND:
    return "NOT_FOUND";
  case v1::STATUS_CODE_ALREADY_EXISTS:
    return "ALREADY_EXISTS";
  case v1::STATUS_CODE_FAILED_PRECONDITION:
    return "FAILED_PRECONDITION";
  case v1::STATUS_CODE_RESOURCE_EXHAUSTED:
    return "RESOURCE_EXHAUSTED";
  case v1::STATUS_CODE_UNAUTHENTICATED:
    return "UNAUTHENTICATED";
  case v1::STATUS_CODE_PERMISSION_DENIED:
    return "PERMISSION_DENIED";
  case v1::STATUS_CODE_INTERNAL:
    return "INTERNAL";
  case v1::STATUS_CODE_UNAVAILABLE:
    return "UNAVAILABLE";
  default:
    return "UNKNOWN";
  }
}

// -- constructors, destructors, and assignment operators ---------------------

client::client(int fd, size_t max_frame_size)
  : fd_(fd), decoder_(max_frame_size) {
  set_nonblocking(fd_);
}

client::client(client&& other) noexcept
  : fd_(std::exchange(other.fd_, -1)), broken_(other.broken_),
    error_(std::move(other.error_)),
    session_error_(std::move(other.session_error_)), next_id_(other.next_id_),
    outstanding_(other.outstanding_), out_(std::move(other.out_)),
    out_pos_(std::exchange(other.out_pos_, 0)),
    tls_(std::exchange(other.tls_, std::nullopt)),
    wire_(std::move(other.wire_)), wire_pos_(std::exchange(other.wire_pos_, 0)),
    decoder_(std::move(other.decoder_)), inbox_(std::move(other.inbox_)),
    push_handler_(std::move(other.push_handler_)), keepalive_(other.keepalive_),
    last_sent_(other.last_sent_), pings_(std::move(other.pings_)) {
  // Nothing else to do.
}

client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    close_fd();
    fd_ = std::exchange(other.fd_, -1);
    broken_ = other.broken_;
    error_ = std::move(other.error_);
    session_error_ = std::move(other.session_error_);
    next_id_ = other.next_id_;
    outstanding_ = other.outstanding_;
    out_ = std::move(other.out_);
    out_pos_ = std::exchange(other.out_pos_, 0);
    tls_ = std::exchange(other.tls_, std::nullopt);
    wire_ = std::move(other.wire_);
    wire_pos_ = std::exchange(other.wire_pos_, 0);
    decoder_ = std::move(other.decoder_);
    inbox_ = std::move(other.inbox_);
    push_handler_ = std::move(other.push_handler_);
    keepalive_ = other.keepalive_;
    last_sent_ = other.last_sent_;
    pings_ = std::move(other.pings_);
  }
  return *this;
}

client::~client() {
  close_fd();
}

expected<client> client::connect(const std::string& host, uint16_t port,
                                 milliseconds timeout,
                                 const tls_client_options* tls) {
  auto where = host + ":" + std::to_string(port);
  auto deadline = steady_clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  auto port_str = std::to_string(port);
  if (auto rc = ::getaddrinfo(host.c_str(), port_str.c_str(), &hints, &addrs);
      rc != 0)
    return make_failure(errc::unavailable, "cannot resolve host '" + host +
                                               "': " + ::gai_strerror(rc));
  std::string last_error = "no address";
  int fd = -1;
  for (auto* ai = addrs; ai != nullptr && fd < 0; ai = ai->ai_next) {
    auto sock =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (sock < 0) {
      last_error = errno_text(errno);
      continue;
    }
    auto rc = ::connect(sock, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{sock, POLLOUT, 0};
      int ready;
      do {
        ready = ::poll(&pfd, 1, remaining_ms(deadline));
      } while (ready < 0 && errno == EINTR);
      if (ready == 0) {
        last_error =
            "timed out after " + std::to_string(timeout.count()) + " ms";
        ::close(sock);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      if (ready < 0)
        err = errno;
      else if (::getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = errno_text(errno);
      ::close(sock);
      continue;
    }
    fd = sock;
  }
  ::freeaddrinfo(addrs);
  if (fd < 0)
    return make_failure(errc::unavailable,
                        "cannot connect to " + where + ": " + last_error);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  client result{fd, default_max_frame_size};
  if (tls == nullptr)
    return result;
  auto ctx = tls_context::client(*tls);
  if (!ctx)
    return std::move(ctx).error();
  auto channel = tls_channel::connect(
      **ctx, tls->server_name.empty() ? host : tls->server_name);
  if (!channel)
    return std::move(channel).error();
  result.tls_ = std::move(*channel);
  if (auto err = result.handshake(deadline))
    return make_failure(errc::unavailable, "cannot connect to " + where +
                                               " over TLS: " + err->message);
  return result;
}

client client::from_fd(int fd, size_t max_frame_size) {
  return client{fd, max_frame_size};
}

// -- properties --------------------------------------------------------------

size_t client::pending_output() const noexcept {
  auto result = out_.size() - out_pos_;
  if (tls_)
    result += wire_.size() - wire_pos_ + tls_->pending_output();
  return result;
}

// -- blocking mode -----------------------------------------------------------

expected<v1::Response>
client::register_devices(std::vector<v1::RegisterDevice> devices, bool online,
                         milliseconds timeout) {
  v1::ClientFrame frame;
  auto* body = frame.mutable_register_devices();
  body->mutable_devices()->Reserve(static_cast<int>(devices.size()));
  for (auto& d : devices)
    *body->add_devices() = std::move(d);
  body->set_online(online);
  return call(std::move(frame), timeout);
}

expected<v1::Response> client::hello(const std::string& token,
                                     const std::string& client_name) {
  v1::ClientFrame frame;
  auto* body = frame.mutable_hello();
  body->set_token(token);
  body->set_client_name(client_name);
  auto r = call(std::move(frame));
  // The node closes a session that stays quiet for its idle timeout: poll()
  // pings at a third of it.
  if (r && r->status() == v1::STATUS_CODE_OK)
    keepalive_ =
        milliseconds{int64_t{r->hello().idle_timeout_seconds()} * 1000 / 3};
  return r;
}

expected<v1::Response> client::call(v1::ClientFrame frame,
                                    milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  if (broken_)
    return broken_error();
  auto id = append_request(frame);
  // A write error marks the connection broken; the loop reports it after
  // looking at what the node sent before it closed.
  write_some();
  for (;;) {
    // A response to this request, or a session error the node reports with
    // request id 0 before it closes the connection.
    auto i = std::find_if(inbox_.begin(), inbox_.end(), [id](auto& x) {
      return x.has_response() &&
             (x.request_id() == id ||
              (x.request_id() == 0 &&
               x.response().status() != v1::STATUS_CODE_OK));
    });
    if (i != inbox_.end()) {
      auto frame_id = i->request_id();
      auto response = std::move(*i->mutable_response());
      inbox_.erase(i);
      deliver_pushes();
      if (frame_id == 0)
        return make_failure(errc::unavailable,
                            std::string{"the node reported a session error: "} +
                                to_string(response.status()) + ": " +
                                response.message());
      --outstanding_;
      return response;
    }
    if (broken_) {
      deliver_pushes();
      return broken_error();
    }
    auto left = remaining_ms(deadline);
    if (left == 0) {
      deliver_pushes();
      return make_failure(errc::unavailable,
                          "no response to request " + std::to_string(id) +
                              " within " + std::to_string(timeout.count()) +
                              " ms");
    }
    // Errors mark the connection broken; the loop reports them.
    pump(left);
  }
}

void client::on_push(push_handler f) {
  push_handler_ = std::move(f);
  deliver_pushes();
}

std::optional<v1::Push> client::poll_push() {
  auto i = std::find_if(inbox_.begin(), inbox_.end(),
                        [](auto& x) { return x.has_push(); });
  if (i == inbox_.end())
    return std::nullopt;
  auto result = std::move(*i->mutable_push());
  inbox_.erase(i);
  return result;
}

// -- pipelined mode ----------------------------------------------------------

uint64_t client::send(v1::ClientFrame frame) {
  auto id = append_request(frame);
  if (!broken_)
    write_some();
  return id;
}

uint64_t client::queue(v1::ClientFrame frame) {
  return append_request(frame);
}

expected<size_t> client::poll(int timeout_ms,
                              const response_handler& on_response,
                              const push_handler& on_push) {
  if (keepalive_.count() > 0 && !broken_) {
    auto quiet = steady_clock::now() - last_sent_;
    if (quiet >= keepalive_) {
      v1::ClientFrame ping;
      ping.mutable_ping();
      pings_.insert(append_request(ping));
      quiet = milliseconds{0};
    }
    // Wake up in time for the next ping.
    auto until_ping =
        std::chrono::duration_cast<milliseconds>(keepalive_ - quiet);
    if (timeout_ms < 0 || until_ping.count() < timeout_ms)
      timeout_ms = static_cast<int>(std::max<int64_t>(until_ping.count(), 0));
  }
  if (!broken_)
    pump(inbox_.empty() ? timeout_ms : 0);
  size_t handled = 0;
  while (!inbox_.empty()) {
    auto frame = std::move(inbox_.front());
    inbox_.pop_front();
    ++handled;
    if (frame.has_response()) {
      if (frame.request_id() != 0 && outstanding_ > 0)
        --outstanding_;
      if (pings_.erase(frame.request_id()) > 0)
        continue; // Answers a keepalive: nobody asked.
      if (on_response)
        on_response(frame.request_id(), frame.response());
    } else if (frame.has_push()) {
      if (on_push)
        on_push(frame.push());
    }
  }
  if (handled == 0 && broken_)
    return broken_error();
  return handled;
}

status client::flush(milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  while (!broken_ && pending_output() > 0) {
    auto left = remaining_ms(deadline);
    if (left == 0)
      return make_failure(errc::unavailable,
                          std::to_string(pending_output()) +
                              " bytes still unwritten after " +
                              std::to_string(timeout.count()) + " ms");
    pump(left);
  }
  if (broken_)
    return broken_error();
  return std::nullopt;
}

void client::close() {
  // Says goodbye over TLS unless that would cut into a record.
  if (!broken_ && tls_ && fd_ >= 0 && wire_pos_ == wire_.size()) {
    tls_->close();
    auto bye = tls_->take_output();
    if (!bye.empty())
      ::send(fd_, bye.data(), bye.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (!broken_) {
    broken_ = true;
    error_ = "connection closed by the client";
  }
  close_fd();
}

// -- implementation details --------------------------------------------------

uint64_t client::append_request(v1::ClientFrame& frame) {
  auto id = next_id_++;
  frame.set_request_id(id);
  ++outstanding_;
  last_sent_ = steady_clock::now();
  if (!broken_)
    append_frame(out_, frame);
  return id;
}

status client::handshake(steady_clock::time_point deadline) {
  while (!tls_->established()) {
    if (broken_)
      return broken_error();
    auto left = remaining_ms(deadline);
    if (left == 0)
      return fail("the TLS handshake did not complete in time");
    pump(left);
  }
  return std::nullopt;
}

status client::seal_output() {
  if (out_pos_ < out_.size())
    tls_->write(out_.data() + out_pos_, out_.size() - out_pos_);
  out_.clear();
  out_pos_ = 0;
  if (out_.capacity() > keep_output_capacity)
    std::string{}.swap(out_);
  tls_->take_output(wire_);
  if (tls_->failed())
    return fail(tls_->error());
  return std::nullopt;
}

void client::open_input(const char* data, size_t n) {
  tls_->feed(data, n);
  std::string plain;
  tls_->read(plain);
  decoder_.feed(plain);
  // Handshake messages, key updates and alerts.
  tls_->take_output(wire_);
}

status client::write_some() {
  if (broken_)
    return broken_error();
  if (tls_)
    if (auto err = seal_output())
      return err;
  // Over TLS the socket gets ciphertext; without, the frames themselves.
  auto& out = tls_ ? wire_ : out_;
  auto& out_pos = tls_ ? wire_pos_ : out_pos_;
  while (out_pos < out.size()) {
    auto n = ::send(fd_, out.data() + out_pos, out.size() - out_pos,
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      // The node may have explained why it closed the connection.
      auto what = "write failed: " + errno_text(errno);
      read_some();
      return fail(std::move(what));
    }
    out_pos += static_cast<size_t>(n);
  }
  if (out_pos == out.size()) {
    out.clear();
    out_pos = 0;
    if (out.capacity() > keep_output_capacity)
      std::string{}.swap(out);
  } else if (out_pos > out.size() / 2) {
    out.erase(0, out_pos);
    out_pos = 0;
  }
  return std::nullopt;
}

status client::read_some() {
  char buf[read_chunk_size];
  for (int i = 0; i < max_reads_per_pass; ++i) {
    auto n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return std::nullopt;
      if (errno != ECONNRESET)
        return fail("read failed: " + errno_text(errno));
    }
    if (n <= 0) {
      auto what = std::string{n == 0 ? "connection closed by the node"
                                     : "connection reset by the node"};
      if (!session_error_.empty())
        what += " after: " + session_error_;
      return fail(std::move(what));
    }
    if (tls_)
      open_input(buf, static_cast<size_t>(n));
    else
      decoder_.feed(buf, static_cast<size_t>(n));
    for (;;) {
      auto res = decoder_.next();
      if (res.status == decode_status::need_more)
        break;
      if (res.status == decode_status::error)
        return fail("broken frame from the node: " + res.error.message);
      v1::ServerFrame frame;
      if (auto err = parse_frame(res.payload, frame))
        return fail("broken frame from the node: " + err->message);
      if (frame.has_response() && frame.request_id() == 0 &&
          frame.response().status() != v1::STATUS_CODE_OK)
        session_error_ = std::string{to_string(frame.response().status())} +
                         ": " + frame.response().message();
      inbox_.push_back(std::move(frame));
    }
    // Frames decrypted before TLS broke or ended are kept.
    if (tls_ && tls_->failed())
      return fail(tls_->error());
    if (tls_ && tls_->peer_closed()) {
      auto what = std::string{"connection closed by the node"};
      if (!session_error_.empty())
        what += " after: " + session_error_;
      return fail(std::move(what));
    }
    if (static_cast<size_t>(n) < sizeof(buf))
      return std::nullopt;
  }
  return std::nullopt;
}

status client::pump(int timeout_ms) {
  if (broken_)
    return broken_error();
  pollfd pfd{fd_, POLLIN, 0};
  if (pending_output() > 0)
    pfd.events |= POLLOUT;
  auto ready = ::poll(&pfd, 1, timeout_ms);
  if (ready < 0) {
    if (errno == EINTR)
      return std::nullopt;
    return fail("poll failed: " + errno_text(errno));
  }
  if (ready == 0)
    return std::nullopt;
  if (pfd.revents & POLLOUT)
    if (auto err = write_some())
      return err;
  if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
    return read_some();
  if (pfd.revents & POLLNVAL)
    return fail("socket is not open");
  return std::nullopt;
}

void client::close_fd() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

failure client::fail(std::string message) {
  if (!broken_) {
    broken_ = true;
    error_ = std::move(message);
  }
  close_fd();
  return broken_error();
}

failure client::broken_error() const {
  return make_failure(errc::unavailable, error_);
}

void client::deliver_pushes() {
  if (!push_handler_)
    return;
  while (auto push = poll_push())
    push_handler_(*push);
}

} // namespace fota
