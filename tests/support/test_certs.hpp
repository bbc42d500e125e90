/// Certificates for the TLS tests, made with OpenSSL's C API so the tests
/// need no `openssl` command: a CA, a server certificate for "localhost" and
/// 127.0.0.1, a client certificate for the gateway "gw-1", and a second,
/// unrelated CA with its own server and client certificates. All keys are
/// P-256; everything is written as PEM files into one directory.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace fota::test {

/// The files `make_test_certs` writes, and the fingerprint of the client
/// certificate.
struct test_certs {
  /// The CA that issued the server and client certificates.
  std::string ca;
  /// Server certificate (CN and SAN "localhost", SAN IP 127.0.0.1) and key.
  std::string server_cert;
  std::string server_key;
  /// Client certificate with CN "gw-1" and its key.
  std::string client_cert;
  std::string client_key;
  /// SHA-256 of the client certificate's DER, lowercase hex.
  std::string client_fingerprint;
  /// Another CA, which trusts none of the above.
  std::string other_ca;
  /// A server certificate for "localhost" and a client certificate "gw-1"
  /// from the other CA, with their keys.
  std::string other_server_cert;
  std::string other_server_key;
  std::string other_client_cert;
  std::string other_client_key;
};

namespace detail {

struct pkey_deleter {
  void operator()(EVP_PKEY* x) const noexcept { EVP_PKEY_free(x); }
};

struct x509_deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};

struct file_deleter {
  void operator()(std::FILE* x) const noexcept { std::fclose(x); }
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

[[noreturn]] inline void openssl_failed(const std::string& what) {
  char buf[256] = "no reason given";
  if (auto code = ERR_get_error())
    ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  throw std::runtime_error("test certificates: " + what + ": " + buf);
}

inline pkey_ptr make_key() {
  pkey_ptr key{EVP_EC_gen("P-256")};
  if (!key)
    openssl_failed("cannot make a P-256 key");
  return key;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr)
    openssl_failed(std::string{"cannot make extension "} + value);
  auto ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1)
    openssl_failed(std::string{"cannot add extension "} + value);
}

/// A certificate for `key` named `cn`, signed by `issuer_key` as `issuer`
/// (self-signed when `issuer` is null), valid from an hour ago for a day.
inline x509_ptr make_cert(EVP_PKEY* key, const std::string& cn, bool ca,
                          const char* usage, const char* san, X509* issuer,
                          EVP_PKEY* issuer_key) {
  x509_ptr cert{X509_new()};
  if (!cert)
    openssl_failed("cannot make a certificate");
  auto* x = cert.get();
  X509_set_version(x, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1)
    openssl_failed("cannot make a serial number");
  serial[0] &= 0x7f;
  auto* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  auto* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fota "
                                                                    "tests"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  auto* signer = issuer != nullptr ? issuer : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  add_ext(x, signer, NID_basic_constraints,
          ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, signer, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
  if (usage != nullptr)
    add_ext(x, signer, NID_ext_key_usage, usage);
  if (san != nullptr)
    add_ext(x, signer, NID_subject_alt_name, san);
  if (X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0)
    openssl_failed("cannot sign the certificate for " + cn);
  return cert;
}

inline std::unique_ptr<std::FILE, file_deleter>
open_for_writing(const std::string& path) {
  std::unique_ptr<std::FILE, file_deleter> f{std::fopen(path.c_str(), "wb")};
  if (!f)
    throw std::runtime_error("test certificates: cannot write " + path);
  return f;
}

inline void write_cert(const std::string& path, X509* cert) {
  auto f = open_for_writing(path);
  if (PEM_write_X509(f.get(), cert) != 1)
    openssl_failed("cannot write " + path);
}

inline void write_key(const std::string& path, EVP_PKEY* key) {
  auto f = open_for_writing(path);
  if (PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr,
                           nullptr) != 1)
    openssl_failed("cannot write " + path);
}

inline std::string fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1)
    openssl_failed("cannot digest a certificate");
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  for (unsigned i = 0; i < len; ++i) {
    result += digits[md[i] >> 4];
    result += digits[md[i] & 0xf];
  }
  return result;
}

/// A CA with a server and a client certificate, written as
/// `<prefix>ca.pem`, `<prefix>server.pem` and so on.
struct issued {
  std::string ca, server_cert, server_key, client_cert, client_key;
  std::string client_fingerprint;
};

inline issued make_pki(const std::filesystem::path& dir,
                       const std::string& prefix) {
  auto file = [&](const char* name) {
    return (dir / (prefix + name)).string();
  };
  issued result;
  auto ca_key = make_key();
  auto ca = make_cert(ca_key.get(), prefix + "fota test CA", true, nullptr,
                      nullptr, nullptr, nullptr);
  auto server_key = make_key();
  auto server = make_cert(server_key.get(), "localhost", false, "serverAuth",
                          "DNS:localhost,IP:127.0.0.1", ca.get(), ca_key.get());
  auto client_key = make_key();
  auto client = make_cert(client_key.get(), "gw-1", false, "clientAuth",
                          nullptr, ca.get(), ca_key.get());
  result.ca = file("ca.pem");
  result.server_cert = file("server.pem");
  result.server_key = file("server.key");
  result.client_cert = file("client.pem");
  result.client_key = file("client.key");
  write_cert(result.ca, ca.get());
  write_cert(result.server_cert, server.get());
  write_key(result.server_key, server_key.get());
  write_cert(result.client_cert, client.get());
  write_key(result.client_key, client_key.get());
  result.client_fingerprint = fingerprint(client.get());
  return result;
}

} // namespace detail

/// Makes the certificates and keys in `dir`; throws when OpenSSL fails.
inline test_certs make_test_certs(const std::filesystem::path& dir) {
  auto mine = detail::make_pki(dir, "");
  auto other = detail::make_pki(dir, "other-");
  test_certs result;
  result.ca = mine.ca;
  result.server_cert = mine.server_cert;
  result.server_key = mine.server_key;
  result.client_cert = mine.client_cert;
  result.client_key = mine.client_key;
  result.client_fingerprint = mine.client_fingerprint;
  result.other_ca = other.ca;
  result.other_server_cert = other.server_cert;
  result.other_server_key = other.server_key;
  result.other_client_cert = other.client_cert;
  result.other_client_key = other.client_key;
  return result;
}

} // namespace fota::test
