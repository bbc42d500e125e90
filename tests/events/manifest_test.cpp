/// Tests of signed firmware's building blocks: the canonical manifest byte
/// for byte, the Ed25519 wrapper against RFC 8032's known answers, keys in
/// PEM and raw base64, and that changing any manifest field breaks the
/// signature.
#include "events/manifest.hpp"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace {

using namespace fota;

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

/// RFC 8032, section 7.1: a secret key (seed), its public key, a message and
/// the signature.
struct rfc8032_vector {
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};

constexpr rfc8032_vector test_1{
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"};

constexpr rfc8032_vector test_2{
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"};

constexpr const char* sha_abc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// -- manifest -----------------------------------------------------------------

TEST(Manifest, IsAFixedTextOfTheFiveFields) {
  EXPECT_EQ(canonical_manifest("cam", "2.0.0", 4194304, sha_abc,
                               "https://fw.example/cam-2.0.0.bin"),
            "fota-firmware-manifest-v1\n"
            "product=cam\n"
            "version=2.0.0\n"
            "size=4194304\n"
            "sha256=" +
                std::string{sha_abc} +
                "\n"
                "url=https://fw.example/cam-2.0.0.bin\n");
}

TEST(Manifest, RecordsAndWireFirmwareGiveTheSameBytes) {
  firmware_record r;
  r.product = "cam";
  r.version = "2.0.0";
  r.size = 18446744073709551615ull;
  r.sha256 = sha_abc;
  r.url = "https://fw.example/x";
  r.description = "not part of the manifest";
  v1::Firmware w;
  w.set_product_key(r.product);
  w.set_version(r.version);
  w.set_size(r.size);
  w.set_sha256(r.sha256);
  w.set_url(r.url);
  EXPECT_EQ(manifest_of(r), manifest_of(w));
  EXPECT_NE(manifest_of(r).find("size=18446744073709551615\n"),
            std::string::npos);
}

TEST(Manifest, ControlCharactersAreFound) {
  EXPECT_FALSE(has_control_character("2.0.0-rc1+build.7 ~ beta"));
  EXPECT_TRUE(has_control_character("2.0\n"));
  EXPECT_TRUE(has_control_character(std::string{"a\0b", 3}));
  EXPECT_TRUE(has_control_character("a\x7f"));
  EXPECT_FALSE(has_control_character("caf\xc3\xa9")); // UTF-8 is fine
}

// -- Ed25519 ------------------------------------------------------------------

TEST(Ed25519, SignsAndVerifiesRfc8032KnownAnswers) {
  for (const auto& v : {test_1, test_2}) {
    SCOPED_TRACE(v.public_key);
    auto secret = to_base64(from_hex(v.secret));
    auto message = from_hex(v.message);
    auto signature = sign_message(secret, message);
    ASSERT_TRUE(signature) << signature.error().message;
    EXPECT_EQ(to_hex(*signature), v.signature);
    auto pub = parse_public_key(to_base64(from_hex(v.public_key)));
    ASSERT_TRUE(pub) << pub.error().message;
    EXPECT_TRUE(verify_signature(*pub, message, from_hex(v.signature)));
    auto derived = public_key_of(secret);
    ASSERT_TRUE(derived);
    EXPECT_EQ(*derived, *pub);
  }
}

TEST(Ed25519, RefusesATamperedMessageOrSignature) {
  auto pub = parse_public_key(to_base64(from_hex(test_2.public_key)));
  ASSERT_TRUE(pub);
  auto sig = from_hex(test_2.signature);
  EXPECT_FALSE(verify_signature(*pub, "\x73", sig));
  EXPECT_FALSE(verify_signature(*pub, "", sig));
  auto flipped = sig;
  flipped[10] ^= 1;
  EXPECT_FALSE(verify_signature(*pub, "\x72", flipped));
  EXPECT_FALSE(verify_signature(*pub, "\x72", sig.substr(0, 63)));
  EXPECT_FALSE(verify_signature(*pub, "\x72", sig + "x"));
  EXPECT_FALSE(verify_signature(*pub, "\x72", ""));
}

TEST(Ed25519, AnyOfSeveralKeysVerifies) {
  auto old_key = generate_key_pair();
  auto new_key = generate_key_pair();
  ASSERT_TRUE(old_key && new_key);
  auto sig = sign_message(new_key->private_pem, "m");
  ASSERT_TRUE(sig);
  EXPECT_TRUE(
      signed_by_any({old_key->public_raw, new_key->public_raw}, "m", *sig));
  EXPECT_FALSE(signed_by_any({old_key->public_raw}, "m", *sig));
  EXPECT_FALSE(signed_by_any({}, "m", *sig));
}

TEST(Ed25519, ChangingAnyManifestFieldBreaksTheSignature) {
  auto keys = generate_key_pair();
  ASSERT_TRUE(keys);
  auto manifest = [](const std::string& p, const std::string& v, uint64_t n,
                     const std::string& h, const std::string& u) {
    return canonical_manifest(p, v, n, h, u);
  };
  const std::string url = "https://fw.example/cam.bin";
  auto signed_bytes = manifest("cam", "2.0.0", 4096, sha_abc, url);
  auto sig = sign_message(keys->private_pem, signed_bytes);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify_signature(keys->public_raw, signed_bytes, *sig));
  std::string other_sha = sha_abc;
  other_sha[0] = 'c';
  const std::string tampered[] = {
      manifest("cam2", "2.0.0", 4096, sha_abc, url),
      manifest("cam", "2.0.1", 4096, sha_abc, url),
      manifest("cam", "2.0.0", 4097, sha_abc, url),
      manifest("cam", "2.0.0", 4096, other_sha, url),
      manifest("cam", "2.0.0", 4096, sha_abc, url + "?evil"),
  };
  for (const auto& m : tampered)
    EXPECT_FALSE(verify_signature(keys->public_raw, m, *sig)) << m;
}

// -- keys ---------------------------------------------------------------------

TEST(Keys, PemAndRawBase64NameTheSameKey) {
  auto keys = generate_key_pair();
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->private_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(keys->public_pem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  auto from_pem = parse_public_key("\n  " + keys->public_pem + "\n\n");
  ASSERT_TRUE(from_pem) << from_pem.error().message;
  auto from_raw = parse_public_key(to_base64(keys->public_raw) + "\n");
  ASSERT_TRUE(from_raw) << from_raw.error().message;
  EXPECT_EQ(*from_pem, keys->public_raw);
  EXPECT_EQ(*from_raw, keys->public_raw);
  auto derived = public_key_of(keys->private_pem);
  ASSERT_TRUE(derived);
  EXPECT_EQ(*derived, keys->public_raw);
}

TEST(Keys, OtherTextIsRefusedWithAReason) {
  struct row {
    std::string text;
    const char* says;
  };
  const row rows[] = {
      {"", "empty"},
      {"not a key", "neither PEM nor base64"},
      {to_base64(std::string(31, 'k')), "holds 31 bytes"},
      {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
       "not a PEM public key"},
      // A P-256 key: PEM, but not Ed25519.
      {"-----BEGIN PUBLIC KEY-----\n"
       "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3/nKkEUbaNfGjgZijOCei93RGleQ\n"
       "8xmQGIF1+H7biyG1lMddjaBX6QQ50Ail2q7Hk+TeI74iPqKTpH06SDVUgA==\n"
       "-----END PUBLIC KEY-----\n",
       "not an Ed25519 key"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.text);
    auto k = parse_public_key(r.text);
    ASSERT_FALSE(k);
    EXPECT_EQ(k.error().code, errc::invalid_argument);
    EXPECT_NE(k.error().message.find(r.says), std::string::npos)
        << k.error().message;
  }
  // A public key is no private key.
  auto keys = generate_key_pair();
  ASSERT_TRUE(keys);
  EXPECT_FALSE(sign_message(keys->public_pem, "m"));
}

// -- encodings ----------------------------------------------------------------

TEST(Encodings, Base64RoundTripsAndRefusesMalformedText) {
  EXPECT_EQ(to_base64(""), "");
  EXPECT_EQ(to_base64("f"), "Zg==");
  EXPECT_EQ(to_base64("fo"), "Zm8=");
  EXPECT_EQ(to_base64("foo"), "Zm9v");
  EXPECT_EQ(to_base64("foobar"), "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  for (size_t n = 0; n < all.size(); n += 7)
    EXPECT_EQ(from_base64(to_base64(all.substr(0, n))), all.substr(0, n));
  for (const char* bad :
       {"Zg=", "Zg=a", "Z===", "=Zg=", "Zm9v!A==", "Zg==Zg=="})
    EXPECT_FALSE(from_base64(bad)) << bad;
}

TEST(Encodings, Sha256KnownAnswer) {
  EXPECT_EQ(sha256_hex("abc"), sha_abc);
  sha256_hasher h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.hex_digest(), sha_abc);
}

} // namespace
