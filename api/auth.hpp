/// Who a session speaks for: the credentials a node accepts (the operator
/// token, one token or client certificate per gateway, and the shared
/// gateway token of development mode), matched in constant time, and the
/// throttle that slows down a peer that keeps failing.
#pragma once

#include "events/clock.hpp"
#include "fota/v1/api.pb.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fota {

/// The name a session authenticated with the shared gateway token acts as.
inline constexpr const char* shared_gateway_name = "shared";

/// What a Hello authenticated: a role and, for a gateway, its name.
struct principal {
  v1::Role role = v1::ROLE_UNSPECIFIED;
  /// The gateway's name; empty for the operator.
  std::string gateway;
};

/// How one gateway proves who it is: a token, or the SHA-256 fingerprint of
/// its TLS client certificate (lower-case hex), or both.
struct gateway_credential {
  std::string name;
  std::string token;
  std::string certificate_sha256;
};

/// Every credential a node accepts.
class credentials {
public:
  credentials() = default;

  /// `shared_gateway_token` (development mode) authenticates as gateway
  /// "shared"; empty turns it off. Empty tokens never authenticate.
  credentials(const std::string& operator_token,
              const std::vector<gateway_credential>& gateways,
              const std::string& shared_gateway_token = {});

  /// Who `token` authenticates, comparing it with every known token in time
  /// that does not depend on where, or whether, it matches.
  std::optional<principal> by_token(std::string_view token) const;

  /// The gateway whose client certificate has fingerprint `sha256_hex`.
  std::optional<principal> by_certificate(std::string_view sha256_hex) const;

private:
  using digest = std::array<unsigned char, 32>;

  struct entry {
    digest token;
    principal who;
  };

  static digest hash(std::string_view x);

  std::vector<entry> tokens_;
  std::vector<std::pair<std::string, principal>> certificates_;
};

/// Slows down peers (by address) that fail to authenticate: after the n-th
/// failure in a row, the peer's next Hello is looked at only after
/// `base * 2^(n-1)`, at most `max`. A success forgets the peer; so does
/// `forget_after` without a failure.
class auth_throttle {
public:
  struct options {
    std::chrono::milliseconds base{100};
    std::chrono::milliseconds max{10'000};
    std::chrono::milliseconds forget_after{600'000};
    /// Peers remembered at most; the oldest go first.
    size_t max_peers = 65536;
  };

  explicit auth_throttle(std::shared_ptr<fota::clock> clock);

  auth_throttle(std::shared_ptr<fota::clock> clock, options opts);

  /// How long `peer`'s next Hello waits before it is looked at.
  std::chrono::milliseconds wait(const std::string& peer) const;

  void failed(const std::string& peer);

  void succeeded(const std::string& peer);

private:
  struct record {
    uint32_t failures = 0;
    timestamp last;
  };

  void prune(timestamp now);

  std::shared_ptr<fota::clock> clock_;
  options opts_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, record> peers_;
};

} // namespace fota
