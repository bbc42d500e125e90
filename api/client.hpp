/// A client of the node's wire API over one TCP connection, for fotactl,
/// fota-sim and the end-to-end tests. Plain POSIX sockets, no CAF.
#pragma once

#include "api/frame_codec.hpp"
#include "api/tls.hpp"
#include "events/error.hpp"
#include "fota/v1/api.pb.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace fota {

/// Returns the name of `x` without its prefix, e.g. "INVALID_ARGUMENT".
const char* to_string(v1::StatusCode x) noexcept;

/// Reads a token from the file at `path`, without surrounding white space,
/// so that tokens need not be on a command line. Fails naming the file
/// when it cannot be read or holds nothing.
expected<std::string> read_token_file(const std::string& path);

/// One connection to a node, used in either of two modes.
///
/// Blocking: `call()` sends a request and waits for its response. Pushes
/// that arrive meanwhile are queued; they go to the `on_push()` handler when
/// `call()` returns, or wait for `poll_push()` when there is no handler.
///
/// Pipelined: `send()` queues a request without waiting and returns its id;
/// `poll()` writes what it can, reads whatever arrived and hands every
/// response and push to the given handlers. Nothing blocks for longer than
/// the timeout passed to `poll()`.
///
/// A response with a status other than OK is still a response. Transport
/// problems (connect, closed connection, broken frames, TLS) are failures
/// with `errc::unavailable`; they are sticky, and the connection is closed.
///
/// Over TLS, frames queue as plaintext and are encrypted when written, so
/// that frames queued together share records; what the socket delivers is
/// decrypted as it is read, and whatever TLS must answer goes out with the
/// next write, which `poll()` and `call()` wait for as for any output.
class client {
public:
  // -- member types ----------------------------------------------------------

  using push_handler = std::function<void(const v1::Push&)>;

  using response_handler =
      std::function<void(uint64_t request_id, const v1::Response&)>;

  // -- constants -------------------------------------------------------------

  /// How long `call()` waits for a response unless told otherwise.
  static constexpr std::chrono::milliseconds default_call_timeout =
      std::chrono::seconds{30};

  // -- constructors, destructors, and assignment operators -------------------

  client(client&& other) noexcept;

  client& operator=(client&& other) noexcept;

  client(const client&) = delete;

  client& operator=(const client&) = delete;

  ~client();

  /// Connects to `host:port`, trying each address `host` resolves to. With
  /// `tls`, also completes a TLS handshake within `timeout` that verifies
  /// the node as `tls->server_name`, or as `host` when that is empty.
  static expected<client> connect(const std::string& host, uint16_t port,
                                  std::chrono::milliseconds timeout,
                                  const tls_client_options* tls = nullptr);

  /// Takes ownership of a connected stream socket, e.g. one end of a
  /// `socketpair()`.
  static client from_fd(int fd, size_t max_frame_size = default_max_frame_size);

  // -- properties ------------------------------------------------------------

  /// The socket, or -1 after `close()` or a transport failure.
  int fd() const noexcept { return fd_; }

  /// Whether the connection is usable.
  bool connected() const noexcept { return fd_ >= 0 && !broken_; }

  /// Requests sent and not answered yet.
  size_t outstanding() const noexcept { return outstanding_; }

  /// Bytes queued for the socket and not written yet (over TLS, plaintext
  /// and ciphertext together).
  size_t pending_output() const noexcept;

  /// Whether the connection runs over TLS.
  bool secure() const noexcept { return tls_.has_value(); }

  /// The TLS protocol in use, e.g. "TLSv1.3", or empty without TLS.
  std::string tls_protocol() const { return tls_ ? tls_->protocol() : ""; }

  /// The request id the next `send()` or `call()` will use.
  uint64_t next_request_id() const noexcept { return next_id_; }

  // -- blocking mode ---------------------------------------------------------

  /// Presents `token`; the response's `hello` result names the role.
  expected<v1::Response> hello(const std::string& token,
                               const std::string& client_name = "");

  /// Registers `devices` with one `RegisterDevices` request and waits for
  /// its response: one `DeviceResult` per device, in order. With `online`,
  /// each device registered is online on this connection: its pushes come
  /// here.
  expected<v1::Response>
  register_devices(std::vector<v1::RegisterDevice> devices, bool online,
                   std::chrono::milliseconds timeout = default_call_timeout);

  /// Sends `frame` with a fresh request id and waits for its response.
  expected<v1::Response>
  call(v1::ClientFrame frame,
       std::chrono::milliseconds timeout = default_call_timeout);

  /// Sets the handler for pushes received while `call()` waits, and hands it
  /// the pushes queued so far.
  void on_push(push_handler f);

  /// Removes and returns the oldest queued push.
  std::optional<v1::Push> poll_push();

  // -- pipelined mode --------------------------------------------------------

  /// Queues `frame` with a fresh request id, tries to write it without
  /// blocking and returns the id. A transport failure shows up at the next
  /// `poll()`. A session quiet for a third of the node's idle timeout is
  /// kept open by a `Ping` that `poll()` sends, and whose answer it keeps.
  uint64_t send(v1::ClientFrame frame);

  /// Like `send()`, but leaves the writing to the next `poll()`, `send()` or
  /// `flush()`, so that many frames go out in one system call.
  uint64_t queue(v1::ClientFrame frame);

  /// Writes queued output, reads what arrived within `timeout_ms` (0: do not
  /// wait; negative: wait indefinitely) and calls `on_response` or `on_push`
  /// for every frame, including any that `call()` queued. Returns the number
  /// of frames handled; an interrupted wait (EINTR) returns 0.
  expected<size_t> poll(int timeout_ms, const response_handler& on_response,
                        const push_handler& on_push);

  /// Waits until all queued output is written or `timeout` passes.
  status flush(std::chrono::milliseconds timeout);

  /// Closes the connection; later calls fail. Queued output that was not
  /// written is lost.
  void close();

private:
  // -- implementation details ------------------------------------------------

  client(int fd, size_t max_frame_size);

  /// Assigns the next request id to `frame` and appends it to the output.
  uint64_t append_request(v1::ClientFrame& frame);

  /// Runs the TLS handshake until it completes, fails or `deadline`
  /// passes.
  status handshake(std::chrono::steady_clock::time_point deadline);

  /// Over TLS: encrypts the queued plaintext into `wire_`.
  status seal_output();

  /// Over TLS: decrypts `n` bytes read from the socket into the decoder,
  /// and queues what TLS answers.
  void open_input(const char* data, size_t n);

  /// Writes as much queued output as the socket takes.
  status write_some();

  /// Reads what the socket has (up to a bounded amount) and decodes it into
  /// `inbox_`.
  status read_some();

  /// Waits up to `timeout_ms` (as for `poll(2)`) for the socket, then writes
  /// and reads what it can. A timeout or EINTR is not an error.
  status pump(int timeout_ms);

  /// Closes the socket without marking the connection broken.
  void close_fd() noexcept;

  /// Marks the connection broken with `message`, closes it and returns the
  /// failure.
  failure fail(std::string message);

  /// Returns the failure that broke the connection.
  failure broken_error() const;

  /// Hands queued pushes to the push handler, if there is one.
  void deliver_pushes();

  int fd_ = -1;
  bool broken_ = false;
  /// Why the connection broke.
  std::string error_;
  /// The last error the node reported with request id 0, if any.
  std::string session_error_;
  uint64_t next_id_ = 1;
  size_t outstanding_ = 0;
  /// Encoded frames; over TLS, the plaintext not encrypted yet.
  std::string out_;
  size_t out_pos_ = 0;
  /// Over TLS: ciphertext for the socket.
  std::optional<tls_channel> tls_;
  std::string wire_;
  size_t wire_pos_ = 0;
  frame_decoder decoder_;
  /// Frames received and not handed out yet, in arrival order.
  std::deque<v1::ServerFrame> inbox_;
  push_handler push_handler_;
  /// How often poll() pings a quiet session (a third of the node's idle
  /// timeout); 0: never.
  std::chrono::milliseconds keepalive_{0};
  std::chrono::steady_clock::time_point last_sent_ =
      std::chrono::steady_clock::now();
  /// Request ids of pings not answered yet; their answers are not handed out.
  std::unordered_set<uint64_t> pings_;
};

} // namespace fota
