#include "events/digest.hpp"

#include "events/codec.hpp"
#include "events/replay.hpp"

#include <cstdio>

#include <openssl/sha.h>

namespace fota {

namespace {

/// Appends `x` with a separator that cannot occur inside a length-prefixed
/// field.
void field(std::string& out, const std::string& x) {
  out += std::to_string(x.size());
  out += ':';
  out += x;
  out += '|';
}

void field(std::string& out, uint64_t x) {
  out += std::to_string(x);
  out += '|';
}

void field(std::string& out, int64_t x) {
  out += std::to_string(x);
  out += '|';
}

void labels(std::string& out, const label_map& xs) {
  field(out, static_cast<uint64_t>(xs.size()));
  for (const auto& [k, v] : xs) {
    field(out, k);
    field(out, v);
  }
}

std::string hex(const unsigned char* bytes, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 0xF]);
  }
  return out;
}

} // namespace

void digest_sum::add_text(const std::string& text) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), md);
  unsigned __int128 carry = 0;
  for (size_t w = 0; w < 4; ++w) {
    uint64_t word = 0;
    for (size_t b = 0; b < 8; ++b)
      word |= static_cast<uint64_t>(md[w * 8 + b]) << (8 * b);
    unsigned __int128 s =
        static_cast<unsigned __int128>(words_[w]) + word + carry;
    words_[w] = static_cast<uint64_t>(s);
    carry = s >> 64;
  }
}

void digest_sum::add(const device_state& x) {
  std::string t = "device|";
  field(t, x.product);
  field(t, x.key);
  field(t, x.version);
  labels(t, x.tags);
  labels(t, x.attributes);
  field(t, x.active_execution.value());
  field(t, x.registered_at_ms);
  field(t, x.gateway);
  add_text(t);
  ++devices_;
}

void digest_sum::add(const firmware_record& x) {
  std::string t = "firmware|";
  field(t, x.product);
  field(t, x.version);
  field(t, x.url);
  field(t, x.size);
  field(t, x.sha256);
  field(t, x.signature);
  field(t, x.description);
  field(t, static_cast<uint64_t>(x.status));
  field(t, x.created_at_ms);
  field(t, static_cast<uint64_t>(x.verification_devices.size()));
  for (const auto& d : x.verification_devices)
    field(t, d);
  field(t, x.verification_failure);
  field(t, x.verification_skip_reason);
  add_text(t);
  ++firmware_;
}

void digest_sum::add(const asset_tree& x) {
  std::string t = "tree|";
  field(t, x.product);
  field(t, x.id);
  field(t, x.name);
  for (const auto& n : x.nodes) {
    field(t, n.id);
    field(t, n.parent);
    field(t, n.name);
    field(t, n.device_key);
  }
  add_text(t);
}

void digest_sum::add(const task_state& x) {
  std::string t = "task|";
  field(t, x.id.value());
  std::string spec;
  to_proto(x.spec).SerializeToString(&spec);
  field(t, spec);
  field(t, x.firmware.product);
  field(t, x.firmware.version);
  field(t, x.firmware.sha256);
  field(t, static_cast<uint64_t>(x.status));
  field(t, x.status_reason);
  field(t, x.created_at_ms);
  field(t, x.finished_at_ms);
  for (auto c : x.counts)
    field(t, c);
  field(t, x.retries_pending);
  field(t, static_cast<uint64_t>(x.skipped.size()));
  for (const auto& s : x.skipped) {
    field(t, s.device_key);
    field(t, s.reason);
  }
  add_text(t);
  ++tasks_;
  for (uint64_t s = 1; s <= x.executions.size(); ++s) {
    auto v = x.view(execution_seq{s});
    std::string e = "execution|";
    field(e, v.id.value());
    field(e, v.device_key);
    field(e, static_cast<uint64_t>(v.state));
    field(e, static_cast<uint64_t>(v.attempt));
    field(e, v.queued_at_ms);
    field(e, v.notified_at_ms);
    field(e, v.started_at_ms);
    field(e, v.finished_at_ms);
    field(e, static_cast<uint64_t>(v.progress_step));
    field(e, v.progress_text);
    field(e, v.failure_code);
    field(e, v.failure_text);
    add_text(e);
    ++executions_;
  }
}

void digest_sum::add(const digest_sum& other) {
  unsigned __int128 carry = 0;
  for (size_t w = 0; w < 4; ++w) {
    unsigned __int128 s =
        static_cast<unsigned __int128>(words_[w]) + other.words_[w] + carry;
    words_[w] = static_cast<uint64_t>(s);
    carry = s >> 64;
  }
  devices_ += other.devices_;
  firmware_ += other.firmware_;
  tasks_ += other.tasks_;
  executions_ += other.executions_;
}

state_digest digest_sum::finish(sequence_number last) const {
  unsigned char bytes[32];
  for (size_t w = 0; w < 4; ++w)
    for (size_t b = 0; b < 8; ++b)
      bytes[w * 8 + b] = static_cast<unsigned char>(words_[w] >> (8 * b));
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(bytes, sizeof(bytes), md);
  state_digest out;
  out.sha256 = hex(md, sizeof(md));
  out.devices = devices_;
  out.tasks = tasks_;
  out.executions = executions_;
  out.firmware = firmware_;
  out.last_sequence = last;
  return out;
}

state_digest digest(const world& w) {
  digest_sum sum;
  for (const auto& [key, fw] : w.firmware.entries)
    sum.add(fw);
  for (const auto& d : w.devices) {
    auto copy = d;
    copy.online = false;
    sum.add(copy);
  }
  for (const auto& [key, t] : w.trees)
    sum.add(t);
  for (const auto& [id, t] : w.tasks)
    sum.add(t);
  return sum.finish(w.last_sequence);
}

} // namespace fota
