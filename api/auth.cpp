#include "api/auth.hpp"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace fota {

// -- credentials --------------------------------------------------------------

credentials::credentials(const std::string& operator_token,
                         const std::vector<gateway_credential>& gateways,
                         const std::string& shared_gateway_token) {
  auto add = [this](const std::string& token, principal who) {
    if (!token.empty())
      tokens_.push_back(entry{hash(token), std::move(who)});
  };
  add(operator_token, principal{v1::ROLE_OPERATOR, {}});
  for (const auto& g : gateways) {
    add(g.token, principal{v1::ROLE_GATEWAY, g.name});
    if (!g.certificate_sha256.empty())
      certificates_.emplace_back(g.certificate_sha256,
                                 principal{v1::ROLE_GATEWAY, g.name});
  }
  add(shared_gateway_token, principal{v1::ROLE_GATEWAY, shared_gateway_name});
}

credentials::digest credentials::hash(std::string_view x) {
  digest out;
  SHA256(reinterpret_cast<const unsigned char*>(x.data()), x.size(),
         out.data());
  return out;
}

std::optional<principal> credentials::by_token(std::string_view token) const {
  if (token.empty())
    return std::nullopt;
  // Digests have one length whatever the token's, and every entry is
  // compared: the time taken says nothing about which one matched.
  auto h = hash(token);
  const principal* found = nullptr;
  for (const auto& e : tokens_) {
    bool same = CRYPTO_memcmp(e.token.data(), h.data(), h.size()) == 0;
    if (same && found == nullptr)
      found = &e.who;
  }
  if (found == nullptr)
    return std::nullopt;
  return *found;
}

std::optional<principal>
credentials::by_certificate(std::string_view sha256_hex) const {
  for (const auto& [fingerprint, who] : certificates_)
    if (fingerprint.size() == sha256_hex.size() &&
        CRYPTO_memcmp(fingerprint.data(), sha256_hex.data(),
                      fingerprint.size()) == 0)
      return who;
  return std::nullopt;
}

// -- throttle -----------------------------------------------------------------

auth_throttle::auth_throttle(std::shared_ptr<fota::clock> clock)
  : auth_throttle(std::move(clock), options{}) {
  // nop
}

auth_throttle::auth_throttle(std::shared_ptr<fota::clock> clock, options opts)
  : clock_(std::move(clock)), opts_(opts) {
  // nop
}

std::chrono::milliseconds auth_throttle::wait(const std::string& peer) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = peers_.find(peer);
  if (i == peers_.end() || i->second.failures == 0)
    return std::chrono::milliseconds{0};
  auto shift = std::min<uint32_t>(i->second.failures - 1, 20);
  auto penalty = std::min(opts_.base * (int64_t{1} << shift), opts_.max);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      clock_->now() - i->second.last);
  return elapsed >= penalty ? std::chrono::milliseconds{0} : penalty - elapsed;
}

void auth_throttle::failed(const std::string& peer) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto now = clock_->now();
  if (peers_.size() >= opts_.max_peers && peers_.count(peer) == 0)
    prune(now);
  auto& r = peers_[peer];
  if (r.failures > 0 && now - r.last >= opts_.forget_after)
    r.failures = 0;
  ++r.failures;
  r.last = now;
}

void auth_throttle::succeeded(const std::string& peer) {
  std::lock_guard<std::mutex> guard{mtx_};
  peers_.erase(peer);
}

void auth_throttle::prune(timestamp now) {
  for (auto i = peers_.begin(); i != peers_.end();) {
    if (now - i->second.last >= opts_.forget_after)
      i = peers_.erase(i);
    else
      ++i;
  }
  if (peers_.size() < opts_.max_peers)
    return;
  // Still full: the peer failing longest ago goes.
  auto oldest = std::min_element(peers_.begin(), peers_.end(),
                                 [](const auto& x, const auto& y) {
                                   return x.second.last < y.second.last;
                                 });
  peers_.erase(oldest);
}

} // namespace fota
