/// OpenSSL behind the TLS engine: contexts from PEM files, and channels that
/// run an SSL over two memory BIOs.
#include "api/tls.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <utility>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace fota {

namespace {

/// Plaintext taken out of the SSL per call.
constexpr size_t read_chunk_size = 16 * 1024;

/// Sent with every session so that a server verifying client certificates
/// can tell its sessions apart from another application's.
constexpr unsigned char session_id_context[] = "fota";

/// The reasons OpenSSL queued on this thread, oldest first, and clears
/// them.
std::string openssl_errors() {
  std::string result;
  const char* data = nullptr;
  int flags = 0;
  while (auto code =
             ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!result.empty())
      result += "; ";
    result += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      result += " (";
      result += data;
      result += ')';
    }
  }
  return result.empty() ? std::string{"no reason given"} : result;
}

failure config_error(const std::string& what) {
  return make_failure(errc::invalid_argument, what + ": " + openssl_errors());
}

/// Settings both sides share.
expected<std::unique_ptr<SSL_CTX, tls_context::deleter>>
new_context(const SSL_METHOD* method) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, tls_context::deleter> ctx{SSL_CTX_new(method)};
  if (!ctx)
    return make_failure(errc::internal,
                        "cannot create a TLS context: " + openssl_errors());
  auto* x = ctx.get();
  if (SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) != 1)
    return make_failure(errc::internal,
                        "cannot require TLS 1.2: " + openssl_errors());
  SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Many idle gateway sessions: no buffers while nothing is in transit.
  SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

/// Loads a certificate chain and its key into `ctx`.
status use_certificate(SSL_CTX* ctx, const std::string& cert_file,
                       const std::string& key_file) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1)
    return config_error("cannot load the certificate chain from '" + cert_file +
                        "'");
  auto mismatch = [&] {
    return config_error("the private key in '" + key_file +
                        "' does not match the certificate in '" + cert_file +
                        "'");
  };
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
      return mismatch();
    return config_error("cannot load the private key from '" + key_file + "'");
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    return mismatch();
  return std::nullopt;
}

/// The verified certificate of the peer, if it sent one.
std::optional<tls_peer> identity_of(const SSL* ssl) {
  auto* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK)
    return std::nullopt;
  tls_peer result;
  auto* subject = X509_get_subject_name(cert);
  int last = -1;
  for (int i = -1;
       (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
    last = i;
  if (last >= 0) {
    auto* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last));
    unsigned char* utf8 = nullptr;
    auto len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0 &&
        std::memchr(utf8, '\0', static_cast<size_t>(len)) == nullptr)
      result.common_name.assign(reinterpret_cast<char*>(utf8),
                                static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
    static constexpr char digits[] = "0123456789abcdef";
    result.sha256_fingerprint.reserve(2 * md_len);
    for (unsigned i = 0; i < md_len; ++i) {
      result.sha256_fingerprint += digits[md[i] >> 4];
      result.sha256_fingerprint += digits[md[i] & 0xf];
    }
  }
  return result;
}

bool is_ip_address(const std::string& x) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, x.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, x.c_str(), buf) == 1;
}

/// A new SSL on `ctx` between two memory BIOs.
expected<std::unique_ptr<SSL, tls_channel::deleter>>
new_ssl(const tls_context& ctx) {
  ERR_clear_error();
  std::unique_ptr<SSL, tls_channel::deleter> ssl{SSL_new(ctx.native_handle())};
  if (!ssl)
    return make_failure(errc::internal,
                        "cannot create a TLS connection: " + openssl_errors());
  auto* in = BIO_new(BIO_s_mem());
  auto* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    return make_failure(errc::internal,
                        "cannot create TLS buffers: " + openssl_errors());
  }
  // An empty BIO means "wait for more", not end of stream.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(ssl.get(), in, out);
  return ssl;
}

} // namespace

// -- context -----------------------------------------------------------------

void tls_context::deleter::operator()(SSL_CTX* x) const noexcept {
  SSL_CTX_free(x);
}

tls_context::tls_context(std::unique_ptr<SSL_CTX, deleter> ctx,
                         bool server) noexcept
  : ctx_(std::move(ctx)), server_(server) {
  // Nothing else to do.
}

expected<std::shared_ptr<tls_context>>
tls_context::server(const tls_server_options& opts) {
  if (opts.cert_file.empty() || opts.key_file.empty())
    return make_failure(errc::invalid_argument,
                        "a TLS server needs a certificate and a key file");
  if (opts.require_client_cert && opts.client_ca_file.empty())
    return make_failure(errc::invalid_argument,
                        "requiring client certificates needs a client CA "
                        "file to verify them");
  auto ctx = new_context(TLS_server_method());
  if (!ctx)
    return std::move(ctx).error();
  auto* x = ctx->get();
  if (auto err = use_certificate(x, opts.cert_file, opts.key_file))
    return std::move(*err);
  // Clients do not resume sessions: no tickets, no cache.
  SSL_CTX_set_num_tickets(x, 0);
  SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(x, session_id_context,
                                 sizeof(session_id_context) - 1);
  SSL_CTX_set_options(x, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!opts.client_ca_file.empty()) {
    const auto& ca = opts.client_ca_file;
    if (SSL_CTX_load_verify_locations(x, ca.c_str(), nullptr) != 1)
      return config_error("cannot load the client CAs from '" + ca + "'");
    // The CAs' names go to the client with the certificate request.
    auto* names = SSL_load_client_CA_file(ca.c_str());
    if (names == nullptr)
      return config_error("cannot read the client CA names from '" + ca + "'");
    SSL_CTX_set_client_CA_list(x, names);
    SSL_CTX_set_verify(
        x,
        SSL_VERIFY_PEER |
            (opts.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  } else {
    SSL_CTX_set_verify(x, SSL_VERIFY_NONE, nullptr);
  }
  return std::shared_ptr<tls_context>{new tls_context{std::move(*ctx), true}};
}

expected<std::shared_ptr<tls_context>>
tls_context::client(const tls_client_options& opts) {
  if (opts.cert_file.empty() != opts.key_file.empty())
    return make_failure(errc::invalid_argument,
                        "a client certificate needs both a certificate and "
                        "a key file");
  auto ctx = new_context(TLS_client_method());
  if (!ctx)
    return std::move(ctx).error();
  auto* x = ctx->get();
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(x, opts.ca_file.c_str(), nullptr) != 1)
      return config_error("cannot load the CAs from '" + opts.ca_file + "'");
  } else if (SSL_CTX_set_default_verify_paths(x) != 1) {
    return config_error("cannot load the system's trusted CAs");
  }
  if (!opts.cert_file.empty())
    if (auto err = use_certificate(x, opts.cert_file, opts.key_file))
      return std::move(*err);
  SSL_CTX_set_verify(x, SSL_VERIFY_PEER, nullptr);
  return std::shared_ptr<tls_context>{new tls_context{std::move(*ctx), false}};
}

// -- channel: constructors ---------------------------------------------------

void tls_channel::deleter::operator()(SSL* x) const noexcept {
  SSL_free(x);
}

tls_channel::tls_channel(std::unique_ptr<SSL, deleter> ssl) noexcept
  : ssl_(std::move(ssl)) {
  // Nothing else to do.
}

expected<tls_channel> tls_channel::accept(const tls_context& ctx) {
  if (!ctx.is_server())
    return make_failure(errc::invalid_argument,
                        "accepting TLS connections needs a server context");
  auto ssl = new_ssl(ctx);
  if (!ssl)
    return std::move(ssl).error();
  SSL_set_accept_state(ssl->get());
  return tls_channel{std::move(*ssl)};
}

expected<tls_channel> tls_channel::connect(const tls_context& ctx,
                                           const std::string& server_name) {
  if (ctx.is_server())
    return make_failure(errc::invalid_argument,
                        "connecting over TLS needs a client context");
  if (server_name.empty())
    return make_failure(errc::invalid_argument,
                        "a TLS client needs the server's name to verify its "
                        "certificate");
  auto ssl = new_ssl(ctx);
  if (!ssl)
    return std::move(ssl).error();
  auto* x = ssl->get();
  if (is_ip_address(server_name)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(x), server_name.c_str()) !=
        1)
      return config_error("cannot verify the server as '" + server_name + "'");
  } else {
    SSL_set_hostflags(x, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set_tlsext_host_name(x, server_name.c_str()) != 1 ||
        SSL_set1_host(x, server_name.c_str()) != 1)
      return config_error("cannot verify the server as '" + server_name + "'");
  }
  SSL_set_connect_state(x);
  tls_channel result{std::move(*ssl)};
  // The ClientHello.
  result.advance();
  return result;
}

// -- channel: properties -----------------------------------------------------

size_t tls_channel::pending_output() const noexcept {
  return ssl_ ? BIO_ctrl_pending(SSL_get_wbio(ssl_.get())) : 0;
}

std::string tls_channel::protocol() const {
  return ssl_ ? SSL_get_version(ssl_.get()) : "";
}

// -- channel: transfer -------------------------------------------------------

void tls_channel::feed(const void* cipher, size_t n) {
  if (failed_ || n == 0)
    return;
  size_t written = 0;
  if (BIO_write_ex(SSL_get_rbio(ssl_.get()), cipher, n, &written) != 1 ||
      written != n) {
    fail("cannot buffer TLS input");
    return;
  }
  advance();
}

size_t tls_channel::read(std::string& plain) {
  auto n = plain_in_.size();
  if (plain.empty())
    plain.swap(plain_in_);
  else
    plain += plain_in_;
  plain_in_.clear();
  return n;
}

void tls_channel::write(const void* plain, size_t n) {
  if (failed_ || closed_ || n == 0)
    return;
  if (!established_) {
    plain_out_.append(static_cast<const char*>(plain), n);
    return;
  }
  // Memory BIOs take everything, so one call encrypts all of it.
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_.get(), plain, n, &written) != 1 || written != n)
    fail("TLS write failed");
}

size_t tls_channel::take_output(std::string& out) {
  auto n = pending_output();
  if (n == 0)
    return 0;
  auto old = out.size();
  out.resize(old + n);
  size_t got = 0;
  if (BIO_read_ex(SSL_get_wbio(ssl_.get()), out.data() + old, n, &got) != 1)
    got = 0;
  out.resize(old + got);
  return got;
}

std::string tls_channel::take_output() {
  std::string result;
  take_output(result);
  return result;
}

void tls_channel::close() {
  if (closed_ || !ssl_)
    return;
  closed_ = true;
  plain_out_.clear();
  if (established_ && !failed_) {
    ERR_clear_error();
    // Writes close_notify; the peer's answer is not awaited.
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
}

// -- channel: implementation details -----------------------------------------

void tls_channel::advance() {
  if (failed_)
    return;
  auto* ssl = ssl_.get();
  ERR_clear_error();
  if (!established_) {
    auto rc = SSL_do_handshake(ssl);
    if (rc != 1) {
      auto err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        fail("TLS handshake failed");
      return;
    }
    established_ = true;
    peer_ = identity_of(ssl);
    if (!plain_out_.empty()) {
      auto pending = std::move(plain_out_);
      plain_out_.clear();
      write(pending.data(), pending.size());
      if (failed_)
        return;
    }
  }
  // Application data may follow the handshake in the same input.
  char buf[read_chunk_size];
  for (;;) {
    size_t n = 0;
    if (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) {
      plain_in_.append(buf, n);
      continue;
    }
    auto err = SSL_get_error(ssl, 0);
    if (err == SSL_ERROR_ZERO_RETURN)
      peer_closed_ = true;
    else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
      fail("TLS connection failed");
    return;
  }
}

void tls_channel::fail(const std::string& what) {
  failed_ = true;
  error_ = what + ": " + openssl_errors();
  if (ssl_) {
    auto verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) {
      error_ += " (";
      error_ += X509_verify_cert_error_string(verify);
      error_ += ')';
    }
  }
  plain_out_.clear();
}

} // namespace fota
