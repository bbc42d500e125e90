/// TLS for the wire API as a transport-independent engine: OpenSSL with
/// memory BIOs, so the owner of the socket (a CAF broker in the node, a
/// poll(2) loop in the client) moves ciphertext and the engine never touches
/// a file descriptor.
#pragma once

#include "events/error.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <openssl/types.h>

namespace fota {

// -- options -----------------------------------------------------------------

/// What a node needs to accept TLS connections.
struct tls_server_options {
  /// PEM file with the server's certificate, then any intermediates.
  std::string cert_file;
  /// PEM file with the server's private key.
  std::string key_file;
  /// PEM file with the CAs that issue client certificates. When set, the
  /// node asks every client for a certificate and verifies the one it gets;
  /// when empty, it asks for none.
  std::string client_ca_file;
  /// Refuse clients without a certificate (needs `client_ca_file`).
  bool require_client_cert = false;
};

/// What a client needs to connect over TLS.
struct tls_client_options {
  /// PEM file with the CAs that issue the node's certificate; empty uses the
  /// system's trust store.
  std::string ca_file;
  /// PEM files with the client's certificate chain and private key, both or
  /// neither.
  std::string cert_file;
  std::string key_file;
  /// The name the node's certificate must carry (DNS name or IP address),
  /// also sent as SNI; empty means the host connected to.
  std::string server_name;
};

/// Who the peer is, from a certificate that verified against the trusted
/// CAs.
struct tls_peer {
  /// The subject's (last) common name, e.g. a gateway's name; empty when it
  /// has none or it holds a NUL.
  std::string common_name;
  /// SHA-256 of the certificate (DER), lowercase hex without separators.
  std::string sha256_fingerprint;
};

// -- context -----------------------------------------------------------------

/// Certificates, keys and policy shared by every connection of one side:
/// TLS 1.2 at least (1.3 when both sides can), peers verified, no
/// renegotiation. Build it once; channels of any thread may share it, and
/// each channel keeps it alive as long as it needs it.
class tls_context {
public:
  // -- member types ----------------------------------------------------------

  struct deleter {
    void operator()(SSL_CTX* x) const noexcept;
  };

  // -- constructors ----------------------------------------------------------

  /// Loads the node's certificate and key, and the client CAs if any.
  /// Failures name the file and OpenSSL's reason.
  static expected<std::shared_ptr<tls_context>>
  server(const tls_server_options& opts);

  /// Loads the CAs that verify the node, and the client certificate if any.
  static expected<std::shared_ptr<tls_context>>
  client(const tls_client_options& opts);

  // -- properties ------------------------------------------------------------

  bool is_server() const noexcept { return server_; }

  SSL_CTX* native_handle() const noexcept { return ctx_.get(); }

private:
  tls_context(std::unique_ptr<SSL_CTX, deleter> ctx, bool server) noexcept;

  std::unique_ptr<SSL_CTX, deleter> ctx_;
  bool server_;
};

// -- channel -----------------------------------------------------------------

/// One TLS connection without a socket. The owner feeds it what it reads,
/// sends what `take_output()` returns, and reads plaintext back; the
/// handshake advances by itself as bytes arrive.
///
/// After each `feed()`, a caller sends `take_output()` (the handshake, alerts
/// and post-handshake messages need answers even when the caller only
/// reads), then drains `read()`. Plaintext written before the handshake
/// completes is kept and encrypted once it has. A failure is sticky:
/// `failed()` holds, `error()` says why, and `take_output()` may still hold
/// an alert for the peer before the owner closes the connection.
class tls_channel {
public:
  // -- member types ----------------------------------------------------------

  struct deleter {
    void operator()(SSL* x) const noexcept;
  };

  // -- constructors, destructors, and assignment operators -------------------

  /// The server side of a new connection.
  static expected<tls_channel> accept(const tls_context& ctx);

  /// The client side of a new connection that verifies the node as
  /// `server_name`, a DNS name or an IP address, and starts the handshake.
  static expected<tls_channel> connect(const tls_context& ctx,
                                       const std::string& server_name);

  tls_channel(tls_channel&&) noexcept = default;

  tls_channel& operator=(tls_channel&&) noexcept = default;

  // -- properties ------------------------------------------------------------

  /// Whether the handshake completed; the peer is verified from then on.
  bool established() const noexcept { return established_; }

  /// Whether the connection broke: a failed handshake or a bad record.
  bool failed() const noexcept { return failed_; }

  /// Why the connection broke.
  const std::string& error() const noexcept { return error_; }

  /// Whether the peer ended the session with a close_notify alert.
  bool peer_closed() const noexcept { return peer_closed_; }

  /// Ciphertext waiting for `take_output()`.
  size_t pending_output() const noexcept;

  /// Plaintext waiting for `read()`.
  size_t pending_input() const noexcept { return plain_in_.size(); }

  /// The verified certificate of the peer, once established. Empty when the
  /// peer sent none, which only a server allows.
  const std::optional<tls_peer>& peer_identity() const noexcept {
    return peer_;
  }

  /// The negotiated protocol, e.g. "TLSv1.3".
  std::string protocol() const;

  // -- transfer --------------------------------------------------------------

  /// Takes `n` bytes the peer sent; ignored after a failure.
  void feed(const void* cipher, size_t n);

  /// Appends the plaintext received so far to `plain` (cheaply when `plain`
  /// is empty) and returns how many bytes it appended.
  size_t read(std::string& plain);

  /// Encrypts `n` bytes for the peer, or keeps them until the handshake
  /// completes; ignored after a failure or `close()`.
  void write(const void* plain, size_t n);

  /// Appends the ciphertext for the peer to `out` and returns how many bytes
  /// it appended.
  size_t take_output(std::string& out);

  /// Returns the ciphertext for the peer.
  std::string take_output();

  /// Ends the session with a close_notify alert, which `take_output()`
  /// returns; later writes are dropped.
  void close();

private:
  explicit tls_channel(std::unique_ptr<SSL, deleter> ssl) noexcept;

  /// Moves the handshake on, then reads and writes what it can.
  void advance();

  /// Marks the channel failed with `what` and the reasons OpenSSL queued.
  void fail(const std::string& what);

  /// Reads what the peer sent from one memory BIO and writes what goes to
  /// the peer into another; both belong to it.
  std::unique_ptr<SSL, deleter> ssl_;
  /// Decrypted and not read yet.
  std::string plain_in_;
  /// Written before the handshake completed.
  std::string plain_out_;
  std::optional<tls_peer> peer_;
  std::string error_;
  bool established_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool closed_ = false;
};

} // namespace fota
