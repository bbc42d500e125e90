/// Signed firmware: the canonical manifest that an Ed25519 signature covers,
/// the trusted public keys of a product, and the signing and verifying that
/// fota, fotactl, fota-sim and devices share. A product's signature covers
/// the exact manifest bytes, and every push and offer carries those bytes,
/// so a device verifies exactly what fota verified.
///
/// The manifest (docs/firmware-signing.md) is a fixed text that any language
/// rebuilds from the firmware's fields:
///
///     fota-firmware-manifest-v1\n
///     product=<product key>\n
///     version=<version>\n
///     size=<size in bytes, decimal>\n
///     sha256=<64 lower-case hex digits>\n
///     url=<url>\n
///
/// No field may hold a control character (a byte below 0x20, or 0x7f), so
/// the text has exactly one reading; `decide(create_firmware)` refuses such
/// fields.
#pragma once

#include "events/error.hpp"
#include "events/values.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct evp_md_ctx_st;

namespace fota {

// -- manifest -----------------------------------------------------------------

/// The first line of every manifest of this format.
inline constexpr std::string_view manifest_magic = "fota-firmware-manifest-v1";

/// The canonical manifest of these fields.
std::string canonical_manifest(std::string_view product,
                               std::string_view version, uint64_t size,
                               std::string_view sha256, std::string_view url);

/// The canonical manifest of a firmware record.
std::string manifest_of(const firmware_record& x);

/// The canonical manifest of firmware as a push or an offer carries it.
std::string manifest_of(const v1::Firmware& x);

/// Whether `x` holds a control character, which no manifest field may.
bool has_control_character(std::string_view x) noexcept;

// -- keys ---------------------------------------------------------------------

/// An Ed25519 public key: its 32 raw bytes (RFC 8032).
struct public_key {
  std::array<unsigned char, 32> raw{};

  friend bool operator==(const public_key& x, const public_key& y) {
    return x.raw == y.raw;
  }
};

/// Bytes in an Ed25519 signature.
inline constexpr size_t ed25519_signature_size = 64;

/// Reads an Ed25519 public key from a PEM text ("-----BEGIN PUBLIC KEY-----",
/// as `fotactl firmware keygen` and `openssl pkey -pubout` write it) or from
/// the base64 of its 32 raw bytes. Surrounding white space is ignored.
expected<public_key> parse_public_key(std::string_view text);

/// The base64 of the key's 32 raw bytes.
std::string to_base64(const public_key& x);

/// Whether `signature` is an Ed25519 signature of `message` by `key`.
bool verify_signature(const public_key& key, std::string_view message,
                      std::string_view signature);

/// Whether any of `keys` verifies `signature` over `message` (several keys:
/// rotation).
bool signed_by_any(const std::vector<public_key>& keys,
                   std::string_view message, std::string_view signature);

// -- signing (operators and tests) -------------------------------------------

/// Signs `message` with an Ed25519 private key given as PEM ("-----BEGIN
/// PRIVATE KEY-----", PKCS#8) or as the base64 of its 32-byte seed. Returns
/// the 64-byte signature.
expected<std::string> sign_message(std::string_view private_key,
                                   std::string_view message);

/// The public key that belongs to a private key given as for
/// `sign_message`.
expected<public_key> public_key_of(std::string_view private_key);

/// A new Ed25519 key pair as PEM texts.
struct key_pair {
  std::string private_pem;
  std::string public_pem;
  public_key public_raw;
};

/// Generates a key pair from the system's random source.
expected<key_pair> generate_key_pair();

// -- encodings ----------------------------------------------------------------

/// Standard base64 (RFC 4648) with padding.
std::string to_base64(std::string_view bytes);

/// Decodes standard base64 with padding; nullopt when `text` is not that.
std::optional<std::string> from_base64(std::string_view text);

/// Lower-case hex of `bytes`.
std::string to_hex(std::string_view bytes);

/// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);

/// SHA-256 over bytes that arrive in pieces, e.g. an image read from disk.
class sha256_hasher {
public:
  sha256_hasher();
  ~sha256_hasher();

  sha256_hasher(const sha256_hasher&) = delete;
  sha256_hasher& operator=(const sha256_hasher&) = delete;

  void update(std::string_view bytes);

  /// Lower-case hex of the digest of everything added.
  std::string hex_digest();

private:
  evp_md_ctx_st* ctx_;
};

} // namespace fota
