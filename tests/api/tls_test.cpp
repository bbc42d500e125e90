/// Tests of the TLS engine: a client and a server channel pass ciphertext to
/// each other in memory, so the handshake, verification and records are
/// checked without sockets, threads or sleeps.
#include "api/frame_codec.hpp"
#include "api/tls.hpp"
#include "fota/v1/api.pb.h"
#include "tests/support/processes.hpp"
#include "tests/support/test_certs.hpp"

#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace fota {
namespace {

using test::make_test_certs;
using test::temp_dir;
using test::test_certs;

/// Hands `bytes` to `to` in pieces of at most `chunk` bytes.
void feed(tls_channel& to, const std::string& bytes, size_t chunk) {
  for (size_t pos = 0; pos < bytes.size(); pos += chunk)
    to.feed(bytes.data() + pos, std::min(chunk, bytes.size() - pos));
}

/// Moves ciphertext both ways until neither side has more to send.
void exchange(tls_channel& client, tls_channel& server,
              size_t chunk = size_t{1} << 30) {
  for (int round = 0; round < 100; ++round) {
    auto to_server = client.take_output();
    auto to_client = server.take_output();
    if (to_server.empty() && to_client.empty())
      return;
    feed(server, to_server, chunk);
    feed(client, to_client, chunk);
  }
  FAIL() << "the channels kept talking";
}

std::string read_all(tls_channel& x) {
  std::string result;
  x.read(result);
  return result;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen{seed};
  std::string result(n, '\0');
  for (auto& c : result)
    c = static_cast<char>(gen());
  return result;
}

class Tls : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<temp_dir>("fota-tls-test");
    certs_ = make_test_certs(dir_->path());
  }

  static void TearDownTestSuite() { dir_.reset(); }

  /// A server context; with `client_ca`, it asks for client certificates.
  static std::shared_ptr<tls_context> server_context(bool client_ca = false,
                                                     bool require = false) {
    tls_server_options opts;
    opts.cert_file = certs_.server_cert;
    opts.key_file = certs_.server_key;
    if (client_ca)
      opts.client_ca_file = certs_.ca;
    opts.require_client_cert = require;
    auto ctx = tls_context::server(opts);
    EXPECT_TRUE(ctx) << ctx.error().message;
    return ctx ? *ctx : nullptr;
  }

  static std::shared_ptr<tls_context> client_context(tls_client_options opts) {
    auto ctx = tls_context::client(opts);
    EXPECT_TRUE(ctx) << ctx.error().message;
    return ctx ? *ctx : nullptr;
  }

  /// A client context that trusts the test CA, with the gateway certificate
  /// when `with_cert`.
  static std::shared_ptr<tls_context> client_context(bool with_cert = false) {
    tls_client_options opts;
    opts.ca_file = certs_.ca;
    if (with_cert) {
      opts.cert_file = certs_.client_cert;
      opts.key_file = certs_.client_key;
    }
    return client_context(opts);
  }

  /// A connected pair after the handshake ran as far as it goes.
  struct pair {
    tls_channel client;
    tls_channel server;
  };

  static pair connect(const tls_context& client_ctx,
                      const tls_context& server_ctx,
                      const std::string& server_name = "localhost") {
    auto client = tls_channel::connect(client_ctx, server_name);
    auto server = tls_channel::accept(server_ctx);
    if (!client || !server)
      throw std::runtime_error("cannot make the channels");
    pair result{std::move(*client), std::move(*server)};
    exchange(result.client, result.server);
    return result;
  }

  static inline std::unique_ptr<temp_dir> dir_;
  static inline test_certs certs_;
};

// -- handshake and data ------------------------------------------------------

TEST_F(Tls, HandshakeCompletesAndDataFlowsBothWays) {
  auto p = connect(*client_context(), *server_context());
  ASSERT_TRUE(p.client.established()) << p.client.error();
  ASSERT_TRUE(p.server.established()) << p.server.error();
  EXPECT_EQ(p.client.protocol(), "TLSv1.3");
  ASSERT_TRUE(p.client.peer_identity());
  EXPECT_EQ(p.client.peer_identity()->common_name, "localhost");
  EXPECT_FALSE(p.server.peer_identity());
  p.client.write("ping", 4);
  exchange(p.client, p.server);
  EXPECT_EQ(read_all(p.server), "ping");
  p.server.write("pong", 4);
  exchange(p.client, p.server);
  EXPECT_EQ(read_all(p.client), "pong");
  EXPECT_FALSE(p.client.failed());
  EXPECT_FALSE(p.server.failed());
}

TEST_F(Tls, WritesBeforeTheHandshakeGoOutOnceItCompletes) {
  auto client = tls_channel::connect(*client_context(), "localhost");
  auto server = tls_channel::accept(*server_context());
  ASSERT_TRUE(client && server);
  client->write("early", 5);
  server->write("also early", 10);
  exchange(*client, *server);
  EXPECT_EQ(read_all(*server), "early");
  EXPECT_EQ(read_all(*client), "also early");
}

TEST_F(Tls, MegabyteWritesArriveIntactInOddPieces) {
  auto p = connect(*client_context(), *server_context());
  ASSERT_TRUE(p.client.established());
  auto up = random_bytes(size_t{1} << 20, 1);
  auto down = random_bytes(size_t{1} << 20, 2);
  p.client.write(up.data(), up.size());
  p.server.write(down.data(), down.size());
  std::string got_up;
  std::string got_down;
  for (int round = 0; round < 10; ++round) {
    exchange(p.client, p.server, 4093);
    p.server.read(got_up);
    p.client.read(got_down);
  }
  EXPECT_EQ(got_up.size(), up.size());
  EXPECT_TRUE(got_up == up);
  EXPECT_EQ(got_down.size(), down.size());
  EXPECT_TRUE(got_down == down);
}

TEST_F(Tls, TlsOneTwoStillWorks) {
  auto client_ctx = client_context(true);
  SSL_CTX_set_max_proto_version(client_ctx->native_handle(), TLS1_2_VERSION);
  auto p = connect(*client_ctx, *server_context(true));
  ASSERT_TRUE(p.server.established()) << p.server.error();
  EXPECT_EQ(p.client.protocol(), "TLSv1.2");
  ASSERT_TRUE(p.server.peer_identity());
  EXPECT_EQ(p.server.peer_identity()->common_name, "gw-1");
  p.client.write("ping", 4);
  exchange(p.client, p.server);
  EXPECT_EQ(read_all(p.server), "ping");
}

TEST_F(Tls, ProtocolsBelowTlsOneTwoAreRefused) {
  auto client_ctx = client_context();
  SSL_CTX_set_min_proto_version(client_ctx->native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(client_ctx->native_handle(), TLS1_1_VERSION);
  auto client = tls_channel::connect(*client_ctx, "localhost");
  auto server = tls_channel::accept(*server_context());
  ASSERT_TRUE(client && server);
  exchange(*client, *server);
  EXPECT_FALSE(server->established());
  EXPECT_FALSE(client->established());
  EXPECT_TRUE(client->failed() || server->failed());
}

TEST_F(Tls, CloseNotifyReachesThePeer) {
  auto p = connect(*client_context(), *server_context());
  p.client.write("last words", 10);
  p.client.close();
  p.client.write("ignored", 7);
  exchange(p.client, p.server);
  EXPECT_EQ(read_all(p.server), "last words");
  EXPECT_TRUE(p.server.peer_closed());
  EXPECT_FALSE(p.server.failed());
}

// -- client certificates -----------------------------------------------------

TEST_F(Tls, ClientCertificateNamesTheGateway) {
  auto p = connect(*client_context(true), *server_context(true));
  ASSERT_TRUE(p.server.established()) << p.server.error();
  ASSERT_TRUE(p.server.peer_identity());
  EXPECT_EQ(p.server.peer_identity()->common_name, "gw-1");
  EXPECT_EQ(p.server.peer_identity()->sha256_fingerprint,
            certs_.client_fingerprint);
  EXPECT_EQ(p.server.peer_identity()->sha256_fingerprint.size(), 64u);
}

TEST_F(Tls, ClientWithoutCertificateIsAcceptedUnlessOneIsRequired) {
  auto p = connect(*client_context(), *server_context(true));
  ASSERT_TRUE(p.server.established()) << p.server.error();
  EXPECT_FALSE(p.server.peer_identity());
}

TEST_F(Tls, ClientWithoutCertificateIsRefusedWhenOneIsRequired) {
  auto p = connect(*client_context(), *server_context(true, true));
  EXPECT_TRUE(p.server.failed());
  EXPECT_FALSE(p.server.established());
  EXPECT_FALSE(p.server.peer_identity());
  EXPECT_NE(p.server.error().find("certificate"), std::string::npos)
      << p.server.error();
  // TLS 1.3 clients finish first and learn it from the server's alert.
  EXPECT_TRUE(p.client.failed());
}

TEST_F(Tls, ClientCertificateFromAnotherCaIsRefused) {
  tls_client_options opts;
  opts.ca_file = certs_.ca;
  opts.cert_file = certs_.other_client_cert;
  opts.key_file = certs_.other_client_key;
  auto p = connect(*client_context(opts), *server_context(true));
  EXPECT_TRUE(p.server.failed());
  EXPECT_FALSE(p.server.peer_identity());
  EXPECT_NE(p.server.error().find("certificate verify failed"),
            std::string::npos)
      << p.server.error();
  EXPECT_TRUE(p.client.failed());
}

// -- server verification -----------------------------------------------------

TEST_F(Tls, ServerCertificateFromAnotherCaIsRejected) {
  tls_client_options opts;
  opts.ca_file = certs_.other_ca;
  auto p = connect(*client_context(opts), *server_context());
  EXPECT_TRUE(p.client.failed());
  EXPECT_FALSE(p.client.established());
  EXPECT_NE(p.client.error().find("certificate verify failed"),
            std::string::npos)
      << p.client.error();
  EXPECT_NE(p.client.error().find("unable to get local issuer certificate"),
            std::string::npos)
      << p.client.error();
  // The client's alert ends the server's handshake too.
  EXPECT_TRUE(p.server.failed());
}

TEST_F(Tls, HostnameMismatchIsRejected) {
  auto p = connect(*client_context(), *server_context(), "fota.example");
  EXPECT_TRUE(p.client.failed());
  EXPECT_NE(p.client.error().find("hostname mismatch"), std::string::npos)
      << p.client.error();
}

TEST_F(Tls, IpAddressIsCheckedAgainstTheCertificate) {
  auto ok = connect(*client_context(), *server_context(), "127.0.0.1");
  EXPECT_TRUE(ok.client.established()) << ok.client.error();
  auto bad = connect(*client_context(), *server_context(), "127.0.0.2");
  EXPECT_TRUE(bad.client.failed());
  EXPECT_NE(bad.client.error().find("IP address mismatch"), std::string::npos)
      << bad.client.error();
}

// -- broken input ------------------------------------------------------------

TEST_F(Tls, PlainTextClientFailsTheHandshake) {
  auto server = tls_channel::accept(*server_context());
  ASSERT_TRUE(server);
  v1::ClientFrame hello;
  hello.set_request_id(1);
  hello.mutable_hello()->set_token("operator-token");
  auto bytes = encode_frame(hello);
  server->feed(bytes.data(), bytes.size());
  EXPECT_TRUE(server->failed());
  EXPECT_FALSE(server->established());
  EXPECT_NE(server->error().find("TLS handshake failed: error:"),
            std::string::npos)
      << server->error();
  EXPECT_EQ(read_all(*server), "");
  // More input changes nothing.
  server->feed(bytes.data(), bytes.size());
  server->write("x", 1);
  EXPECT_TRUE(server->failed());
  EXPECT_EQ(read_all(*server), "");
}

TEST_F(Tls, GarbageAfterTheHandshakeFailsCleanly) {
  auto p = connect(*client_context(), *server_context());
  ASSERT_TRUE(p.server.established());
  auto garbage = random_bytes(1000, 3);
  // A plausible record header, so the garbage is taken as a record.
  garbage.replace(0, 5, "\x17\x03\x03\x03\xe3", 5);
  p.server.feed(garbage.data(), garbage.size());
  EXPECT_TRUE(p.server.failed());
  EXPECT_FALSE(p.server.error().empty());
  EXPECT_EQ(read_all(p.server), "");
  p.server.write("x", 1);
  exchange(p.client, p.server);
  // The server's alert, if any, fails the client; no data gets through.
  EXPECT_EQ(read_all(p.client), "");
}

TEST_F(Tls, RandomBytesNeverCrashTheServer) {
  for (uint32_t seed = 0; seed < 64; ++seed) {
    auto server = tls_channel::accept(*server_context());
    ASSERT_TRUE(server);
    auto bytes = random_bytes(1 + seed * 37, seed);
    feed(*server, bytes, 1 + seed % 7);
    EXPECT_EQ(read_all(*server), "");
    EXPECT_FALSE(server->established());
    server->take_output();
  }
}

// -- configuration errors ----------------------------------------------------

TEST_F(Tls, MissingFileIsNamedWithOpenSslsReason) {
  tls_server_options opts;
  opts.cert_file = (dir_->path() / "missing.pem").string();
  opts.key_file = certs_.server_key;
  auto ctx = tls_context::server(opts);
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error().code, errc::invalid_argument);
  EXPECT_NE(ctx.error().message.find(opts.cert_file), std::string::npos)
      << ctx.error().message;
  EXPECT_NE(ctx.error().message.find("error:"), std::string::npos)
      << ctx.error().message;
}

TEST_F(Tls, KeyThatDoesNotMatchTheCertificateIsRefused) {
  tls_server_options opts;
  opts.cert_file = certs_.server_cert;
  opts.key_file = certs_.other_server_key;
  auto ctx = tls_context::server(opts);
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().message.find("does not match"), std::string::npos)
      << ctx.error().message;
}

TEST_F(Tls, FileThatIsNoCertificateIsRefused) {
  tls_client_options opts;
  opts.ca_file = certs_.client_key;
  auto ctx = tls_context::client(opts);
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().message.find(certs_.client_key), std::string::npos)
      << ctx.error().message;
}

TEST_F(Tls, IncompleteOptionsAreRefused) {
  tls_server_options no_key;
  no_key.cert_file = certs_.server_cert;
  EXPECT_FALSE(tls_context::server(no_key));
  tls_server_options require_without_ca;
  require_without_ca.cert_file = certs_.server_cert;
  require_without_ca.key_file = certs_.server_key;
  require_without_ca.require_client_cert = true;
  EXPECT_FALSE(tls_context::server(require_without_ca));
  tls_client_options cert_without_key;
  cert_without_key.ca_file = certs_.ca;
  cert_without_key.cert_file = certs_.client_cert;
  EXPECT_FALSE(tls_context::client(cert_without_key));
}

TEST_F(Tls, ChannelNeedsAContextOfItsSideAndAServerName) {
  auto server_ctx = server_context();
  auto client_ctx = client_context();
  EXPECT_FALSE(tls_channel::accept(*client_ctx));
  EXPECT_FALSE(tls_channel::connect(*server_ctx, "localhost"));
  EXPECT_FALSE(tls_channel::connect(*client_ctx, ""));
}

} // namespace
} // namespace fota
