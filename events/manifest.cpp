#include "events/manifest.hpp"

#include <algorithm>
#include <memory>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

namespace fota {

namespace {

// -- OpenSSL handles ----------------------------------------------------------

struct pkey_free {
  void operator()(EVP_PKEY* x) const noexcept { EVP_PKEY_free(x); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* x) const noexcept { EVP_MD_CTX_free(x); }
};
struct pkey_ctx_free {
  void operator()(EVP_PKEY_CTX* x) const noexcept { EVP_PKEY_CTX_free(x); }
};
struct bio_free {
  void operator()(BIO* x) const noexcept { BIO_free(x); }
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

failure invalid_key(std::string what) {
  return make_failure(errc::invalid_argument, std::move(what));
}

std::string_view trim(std::string_view x) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!x.empty() && space(x.front()))
    x.remove_prefix(1);
  while (!x.empty() && space(x.back()))
    x.remove_suffix(1);
  return x;
}

bool is_pem(std::string_view x) {
  return x.substr(0, 11) == "-----BEGIN ";
}

/// Refuses encrypted PEM keys instead of prompting on the terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

bio_ptr memory_bio(std::string_view x) {
  return bio_ptr{BIO_new_mem_buf(x.data(), static_cast<int>(x.size()))};
}

/// Everything a PEM BIO holds.
std::string drain(BIO* bio) {
  char* data = nullptr;
  auto n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string{};
}

/// An Ed25519 key from PEM (public or private, by `read`) or raw base64 (by
/// `raw`).
template <class ReadPem, class FromRaw>
expected<pkey_ptr> load_key(std::string_view text, const char* what,
                            ReadPem read, FromRaw raw) {
  text = trim(text);
  if (text.empty())
    return invalid_key(std::string{what} + " is empty");
  pkey_ptr key;
  if (is_pem(text)) {
    auto bio = memory_bio(text);
    key.reset(read(bio.get()));
    if (!key)
      return invalid_key(std::string{what} + " is not a PEM " + what +
                         " that OpenSSL reads");
  } else {
    auto bytes = from_base64(text);
    if (!bytes)
      return invalid_key(std::string{what} +
                         " is neither PEM nor base64 of 32 raw bytes");
    if (bytes->size() != 32)
      return invalid_key(std::string{what} + " in base64 holds " +
                         std::to_string(bytes->size()) +
                         " bytes, an Ed25519 key has 32");
    key.reset(raw(reinterpret_cast<const unsigned char*>(bytes->data())));
    if (!key)
      return invalid_key(std::string{what} + " is not a valid Ed25519 key");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519)
    return invalid_key(
        std::string{what} + " is not an Ed25519 key (type " +
        std::string{OBJ_nid2sn(EVP_PKEY_get_base_id(key.get()))} + ")");
  return key;
}

expected<pkey_ptr> load_private_key(std::string_view text) {
  return load_key(
      text, "private key",
      [](BIO* b) {
        return PEM_read_bio_PrivateKey(b, nullptr, no_passphrase, nullptr);
      },
      [](const unsigned char* raw) {
        return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw, 32);
      });
}

expected<public_key> raw_public_key(EVP_PKEY* key) {
  public_key out;
  size_t n = out.raw.size();
  if (EVP_PKEY_get_raw_public_key(key, out.raw.data(), &n) != 1 ||
      n != out.raw.size())
    return make_failure(errc::internal, "cannot read the raw public key");
  return out;
}

constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

} // namespace

// -- manifest -----------------------------------------------------------------

std::string canonical_manifest(std::string_view product,
                               std::string_view version, uint64_t size,
                               std::string_view sha256, std::string_view url) {
  std::string out;
  out.reserve(manifest_magic.size() + product.size() + version.size() +
              sha256.size() + url.size() + 64);
  out += manifest_magic;
  out += "\nproduct=";
  out += product;
  out += "\nversion=";
  out += version;
  out += "\nsize=";
  out += std::to_string(size);
  out += "\nsha256=";
  out += sha256;
  out += "\nurl=";
  out += url;
  out += '\n';
  return out;
}

std::string manifest_of(const firmware_record& x) {
  return canonical_manifest(x.product, x.version, x.size, x.sha256, x.url);
}

std::string manifest_of(const v1::Firmware& x) {
  return canonical_manifest(x.product_key(), x.version(), x.size(), x.sha256(),
                            x.url());
}

bool has_control_character(std::string_view x) noexcept {
  return std::any_of(x.begin(), x.end(), [](char c) {
    auto b = static_cast<unsigned char>(c);
    return b < 0x20 || b == 0x7f;
  });
}

// -- keys ---------------------------------------------------------------------

expected<public_key> parse_public_key(std::string_view text) {
  auto key = load_key(
      text, "public key",
      [](BIO* b) {
        return PEM_read_bio_PUBKEY(b, nullptr, no_passphrase, nullptr);
      },
      [](const unsigned char* raw) {
        return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw, 32);
      });
  if (!key)
    return std::move(key).error();
  return raw_public_key(key->get());
}

std::string to_base64(const public_key& x) {
  return to_base64(std::string_view{reinterpret_cast<const char*>(x.raw.data()),
                                    x.raw.size()});
}

bool verify_signature(const public_key& key, std::string_view message,
                      std::string_view signature) {
  if (signature.size() != ed25519_signature_size)
    return false;
  pkey_ptr pkey{EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                            key.raw.data(), key.raw.size())};
  md_ctx_ptr ctx{EVP_MD_CTX_new()};
  if (!pkey || !ctx ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) !=
          1)
    return false;
  return EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

bool signed_by_any(const std::vector<public_key>& keys,
                   std::string_view message, std::string_view signature) {
  return std::any_of(keys.begin(), keys.end(), [&](const public_key& k) {
    return verify_signature(k, message, signature);
  });
}

// -- signing ------------------------------------------------------------------

expected<std::string> sign_message(std::string_view private_key,
                                   std::string_view message) {
  auto key = load_private_key(private_key);
  if (!key)
    return std::move(key).error();
  md_ctx_ptr ctx{EVP_MD_CTX_new()};
  std::string out(ed25519_signature_size, '\0');
  size_t n = out.size();
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                     &n, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      n != ed25519_signature_size)
    return make_failure(errc::internal, "Ed25519 signing failed");
  return out;
}

expected<public_key> public_key_of(std::string_view private_key) {
  auto key = load_private_key(private_key);
  if (!key)
    return std::move(key).error();
  return raw_public_key(key->get());
}

expected<key_pair> generate_key_pair() {
  pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr)};
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return make_failure(errc::internal, "Ed25519 key generation failed");
  pkey_ptr key{raw};
  bio_ptr priv{BIO_new(BIO_s_mem())};
  bio_ptr pub{BIO_new(BIO_s_mem())};
  if (!priv || !pub ||
      PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1)
    return make_failure(errc::internal, "cannot write the key pair as PEM");
  auto raw_pub = raw_public_key(key.get());
  if (!raw_pub)
    return std::move(raw_pub).error();
  return key_pair{drain(priv.get()), drain(pub.get()), *raw_pub};
}

// -- encodings ----------------------------------------------------------------

std::string to_base64(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += base64_alphabet[(v >> 18) & 63];
    out += base64_alphabet[(v >> 12) & 63];
    out += base64_alphabet[(v >> 6) & 63];
    out += base64_alphabet[v & 63];
  }
  if (auto rest = bytes.size() - i; rest > 0) {
    uint32_t v = at(i) << 16;
    if (rest == 2)
      v |= at(i + 1) << 8;
    out += base64_alphabet[(v >> 18) & 63];
    out += base64_alphabet[(v >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      auto c = text[i + k];
      // Padding only at the very end, as the last one or two characters.
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0)
        return std::nullopt;
      v[k] = base64_value(c);
      if (v[k] < 0)
        return std::nullopt;
    }
    uint32_t n = (static_cast<uint32_t>(v[0]) << 18) |
                 (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) |
                 static_cast<uint32_t>(v[3]);
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2)
      out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1)
      out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto c : bytes) {
    auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  sha256_hasher h;
  h.update(bytes);
  return h.hex_digest();
}

sha256_hasher::sha256_hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ != nullptr)
    EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
}

sha256_hasher::~sha256_hasher() {
  EVP_MD_CTX_free(ctx_);
}

void sha256_hasher::update(std::string_view bytes) {
  if (ctx_ != nullptr)
    EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

std::string sha256_hasher::hex_digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (ctx_ == nullptr || EVP_DigestFinal_ex(ctx_, md, &n) != 1)
    return {};
  return to_hex(std::string_view{reinterpret_cast<const char*>(md), n});
}

} // namespace fota
