#include "events/snapshot.hpp"

#include "events/codec.hpp"
#include "fota/v1/snapshot.pb.h"

#include <limits>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace fota {

namespace {

using google::protobuf::RepeatedField;
using wire = google::protobuf::internal::WireFormatLite;

failure bad(std::string what) {
  return make_failure(errc::corrupted, "the snapshot " + std::move(what));
}

// -- encoding -----------------------------------------------------------------

/// Gives each distinct string one index in `Snapshot.strings`.
class string_table {
public:
  explicit string_table(v1::Snapshot& out) : out_(out) { add(""); }

  uint32_t add(const std::string& x) {
    auto i = index_.find(x);
    if (i != index_.end())
      return i->second;
    auto id = static_cast<uint32_t>(out_.strings_size());
    out_.add_strings(x);
    index_.emplace(out_.strings(static_cast<int>(id)), id);
    return id;
  }

private:
  v1::Snapshot& out_;
  // Views into `out_.strings`, whose elements never move.
  std::unordered_map<std::string_view, uint32_t> index_;
};

/// Appends `x` as the difference to the previous value (wrapping, exact).
void add_delta(RepeatedField<int64_t>& out, int64_t& previous, int64_t x) {
  out.Add(static_cast<int64_t>(static_cast<uint64_t>(x) -
                               static_cast<uint64_t>(previous)));
  previous = x;
}

void add_labels(const label_map& xs, string_table& strings,
                RepeatedField<uint32_t>& counts, RepeatedField<uint32_t>& out) {
  counts.Add(static_cast<uint32_t>(xs.size()));
  for (const auto& [k, v] : xs) {
    out.Add(strings.add(k));
    out.Add(strings.add(v));
  }
}

void encode_devices(const world& w, string_table& strings,
                    v1::DeviceTable& out) {
  auto n = static_cast<int>(w.devices.size());
  out.mutable_products()->Reserve(n);
  out.mutable_key_lengths()->Reserve(n);
  out.mutable_versions()->Reserve(n);
  out.mutable_gateways()->Reserve(n);
  out.mutable_registered_at_ms()->Reserve(n);
  out.mutable_active_executions()->Reserve(n);
  out.mutable_tag_counts()->Reserve(n);
  out.mutable_attribute_counts()->Reserve(n);
  size_t key_bytes = 0;
  for (const auto& d : w.devices)
    key_bytes += d.key.size();
  auto* keys = out.mutable_keys();
  keys->reserve(key_bytes);
  int64_t registered = 0;
  uint32_t last_online = 0;
  for (size_t i = 0; i < w.devices.size(); ++i) {
    const auto& d = w.devices[i];
    out.add_products(strings.add(d.product));
    keys->append(d.key);
    out.add_key_lengths(static_cast<uint32_t>(d.key.size()));
    out.add_versions(strings.add(d.version));
    out.add_gateways(strings.add(d.gateway));
    add_delta(*out.mutable_registered_at_ms(), registered, d.registered_at_ms);
    out.add_active_executions(d.active_execution.value());
    if (d.online) {
      out.add_online(static_cast<uint32_t>(i) - last_online);
      last_online = static_cast<uint32_t>(i);
    }
    add_labels(d.tags, strings, *out.mutable_tag_counts(), *out.mutable_tags());
    add_labels(d.attributes, strings, *out.mutable_attribute_counts(),
               *out.mutable_attributes());
  }
}

void encode_executions(const world& w, const task_state& t,
                       v1::ExecutionTable& out) {
  auto n = static_cast<int>(t.executions.size());
  out.mutable_devices()->Reserve(n);
  out.mutable_attempts()->Reserve(n);
  out.mutable_queued_at_ms()->Reserve(n);
  out.mutable_notified_at_ms()->Reserve(n);
  out.mutable_started_at_ms()->Reserve(n);
  out.mutable_finished_at_ms()->Reserve(n);
  out.mutable_updated_at_ms()->Reserve(n);
  auto* states = out.mutable_states();
  auto* steps = out.mutable_progress_steps();
  states->reserve(t.executions.size());
  steps->reserve(t.executions.size());
  int64_t queued = 0;
  int64_t notified = 0;
  int64_t started = 0;
  int64_t finished = 0;
  int64_t updated = 0;
  // The product's devices are looked up once per execution: a task of a
  // million devices costs a million hash lookups, no more.
  std::string ref = t.spec.product;
  ref.push_back('\0');
  auto prefix = ref.size();
  for (const auto& x : t.executions) {
    ref.resize(prefix);
    ref.append(x.device_key);
    auto i = w.device_index.find(ref);
    if (i != w.device_index.end()) {
      out.add_devices(static_cast<uint32_t>(i->second));
    } else {
      out.add_devices(static_cast<uint32_t>(w.devices.size()) +
                      static_cast<uint32_t>(out.unregistered_keys_size()));
      out.add_unregistered_keys(x.device_key);
    }
    states->push_back(static_cast<char>(x.state));
    out.add_attempts(x.attempt);
    steps->push_back(static_cast<char>(x.progress_step));
    add_delta(*out.mutable_queued_at_ms(), queued, x.queued_at_ms);
    add_delta(*out.mutable_notified_at_ms(), notified, x.notified_at_ms);
    add_delta(*out.mutable_started_at_ms(), started, x.started_at_ms);
    add_delta(*out.mutable_finished_at_ms(), finished, x.finished_at_ms);
    add_delta(*out.mutable_updated_at_ms(), updated, x.updated_at_ms);
  }
  // Sorted, so that equal worlds encode to equal bytes.
  std::map<uint64_t, const failure_info*> failures;
  for (const auto& [seq, f] : t.failures)
    failures.emplace(seq, &f);
  for (const auto& [seq, f] : failures) {
    auto* y = out.add_failures();
    y->set_sequence(seq);
    y->set_code(f->code);
    y->set_text(f->text);
  }
  std::map<uint64_t, const std::string*> texts;
  for (const auto& [seq, text] : t.progress_texts)
    texts.emplace(seq, &text);
  for (const auto& [seq, text] : texts) {
    auto* y = out.add_progress_texts();
    y->set_sequence(seq);
    y->set_text(*text);
  }
}

void encode_task(const world& w, const task_state& t, string_table& strings,
                 v1::TaskSnapshot& out) {
  out.set_task_id(t.id.value());
  *out.mutable_spec() = to_proto(t.spec);
  *out.mutable_firmware() = to_proto(t.firmware);
  out.set_status(t.status);
  out.set_status_reason(t.status_reason);
  out.set_created_at_ms(t.created_at_ms);
  out.set_finished_at_ms(t.finished_at_ms);
  if (auto i = w.task_created_at.find(t.id.value());
      i != w.task_created_at.end())
    out.set_created_at_sequence(i->second);
  encode_executions(w, t, *out.mutable_executions());
  for (const auto& s : t.skipped) {
    out.mutable_skipped_keys()->append(s.device_key);
    out.add_skipped_key_lengths(static_cast<uint32_t>(s.device_key.size()));
    out.add_skipped_reasons(strings.add(s.reason));
  }
  for (auto c : t.counts)
    out.add_counts(c);
  out.set_retries_pending(t.retries_pending);
}

// -- decoding -----------------------------------------------------------------

/// Reads the columns of one table, checking lengths and indexes.
class reader {
public:
  explicit reader(const v1::Snapshot& s) : s_(s) {}

  expected<const std::string*> text(uint32_t index, const char* what) const {
    if (index >= static_cast<uint32_t>(s_.strings_size()))
      return bad(std::string{what} + " refers to string " +
                 std::to_string(index) + " of " +
                 std::to_string(s_.strings_size()));
    return &s_.strings(static_cast<int>(index));
  }

private:
  const v1::Snapshot& s_;
};

template <class Column>
status check_size(const Column& xs, size_t n, const std::string& what) {
  if (static_cast<size_t>(xs.size()) != n)
    return bad(what + " has " + std::to_string(xs.size()) + " entries for " +
               std::to_string(n) + " rows");
  return std::nullopt;
}

/// Splits `blob` at `lengths`; fails when they do not add up.
status split(const std::string& blob, const RepeatedField<uint32_t>& lengths,
             const std::string& what, std::vector<std::string_view>& out) {
  out.clear();
  out.reserve(static_cast<size_t>(lengths.size()));
  size_t at = 0;
  for (auto n : lengths) {
    if (n > blob.size() - at)
      return bad(what + " are shorter than their lengths say");
    out.emplace_back(blob.data() + at, n);
    at += n;
  }
  if (at != blob.size())
    return bad(what + " hold " + std::to_string(blob.size() - at) +
               " bytes past their lengths");
  return std::nullopt;
}

/// Reads `count` (name, value) pairs from `pairs` at `at`; `what` is
/// "tags" or "attributes" of device `d`.
status decode_labels(const reader& r, const RepeatedField<uint32_t>& pairs,
                     size_t& at, uint32_t count, const char* what,
                     const device_state& d, label_map& out) {
  auto name = [&] {
    return std::string{"the "} + what + " of " + device_name(d.product, d.key);
  };
  if (count > (static_cast<size_t>(pairs.size()) - at) / 2)
    return bad("has " + name() + " run past their column");
  out.reserve(count);
  for (uint32_t k = 0; k < count; ++k) {
    auto label = r.text(pairs.Get(static_cast<int>(at++)), what);
    if (!label)
      return label.error();
    auto value = r.text(pairs.Get(static_cast<int>(at++)), what);
    if (!value)
      return value.error();
    if (!out.empty() && !(out.back().first < **label))
      return bad("has " + name() + " not sorted by name");
    out.emplace_back(**label, **value);
  }
  return std::nullopt;
}

status decode_devices(const v1::Snapshot& s, const reader& r, world& w) {
  const auto& t = s.devices();
  auto n = static_cast<size_t>(t.products_size());
  if (auto err = check_size(t.key_lengths(), n, "device table's key_lengths"))
    return err;
  if (auto err = check_size(t.versions(), n, "device table's versions"))
    return err;
  if (auto err = check_size(t.gateways(), n, "device table's gateways"))
    return err;
  if (auto err = check_size(t.registered_at_ms(), n,
                            "device table's registered_at_ms"))
    return err;
  if (auto err = check_size(t.active_executions(), n,
                            "device table's active_executions"))
    return err;
  if (auto err = check_size(t.tag_counts(), n, "device table's tag_counts"))
    return err;
  if (auto err = check_size(t.attribute_counts(), n,
                            "device table's attribute_counts"))
    return err;
  std::vector<std::string_view> keys;
  if (auto err = split(t.keys(), t.key_lengths(), "device keys", keys))
    return err;
  w.devices.resize(n);
  w.device_index.reserve(n);
  int64_t registered = 0;
  size_t tag_at = 0;
  size_t attribute_at = 0;
  for (size_t i = 0; i < n; ++i) {
    auto& d = w.devices[i];
    auto row = static_cast<int>(i);
    auto product = r.text(t.products(row), "a device's product");
    if (!product)
      return product.error();
    d.product = **product;
    d.key.assign(keys[i]);
    if (auto err = validate_device_ref(d.product, d.key))
      return bad("holds device " + std::to_string(i) +
                 " with an invalid key: " + err->message);
    auto version = r.text(t.versions(row), "a device's version");
    if (!version)
      return version.error();
    d.version = **version;
    auto gateway = r.text(t.gateways(row), "a device's gateway");
    if (!gateway)
      return gateway.error();
    d.gateway = **gateway;
    registered =
        static_cast<int64_t>(static_cast<uint64_t>(registered) +
                             static_cast<uint64_t>(t.registered_at_ms(row)));
    d.registered_at_ms = registered;
    d.active_execution = execution_id{t.active_executions(row)};
    if (auto err = decode_labels(r, t.tags(), tag_at, t.tag_counts(row), "tags",
                                 d, d.tags))
      return err;
    if (auto err = decode_labels(r, t.attributes(), attribute_at,
                                 t.attribute_counts(row), "attributes", d,
                                 d.attributes))
      return err;
    if (!w.device_index.emplace(device_ref(d.product, d.key), i).second)
      return bad("holds " + device_name(d.product, d.key) + " twice");
  }
  if (tag_at != static_cast<size_t>(t.tags_size()))
    return bad("holds more tags than its devices count");
  if (attribute_at != static_cast<size_t>(t.attributes_size()))
    return bad("holds more attributes than its devices count");
  uint64_t online = 0;
  for (int k = 0; k < t.online_size(); ++k) {
    online += t.online(k);
    if ((k > 0 && t.online(k) == 0) || online >= n)
      return bad("marks device " + std::to_string(online) +
                 " online, which is out of order or not in its table of " +
                 std::to_string(n));
    w.devices[online].online = true;
  }
  return std::nullopt;
}

/// Adds the wrapping difference `delta` to `previous`.
int64_t undelta(int64_t& previous, int64_t delta) {
  previous = static_cast<int64_t>(static_cast<uint64_t>(previous) +
                                  static_cast<uint64_t>(delta));
  return previous;
}

status decode_executions(const v1::ExecutionTable& x, const world& w,
                         task_state& t) {
  auto n = static_cast<size_t>(x.devices_size());
  auto name = "task " + std::to_string(t.id.value()) + "'s ";
  if (n > max_execution_seq)
    return bad("gives " + name + "table more than 2^32 - 1 executions");
  if (auto err = check_size(x.states(), n, name + "states"))
    return err;
  if (auto err = check_size(x.attempts(), n, name + "attempts"))
    return err;
  if (auto err = check_size(x.progress_steps(), n, name + "progress_steps"))
    return err;
  if (auto err = check_size(x.queued_at_ms(), n, name + "queued_at_ms"))
    return err;
  if (auto err = check_size(x.notified_at_ms(), n, name + "notified_at_ms"))
    return err;
  if (auto err = check_size(x.started_at_ms(), n, name + "started_at_ms"))
    return err;
  if (auto err = check_size(x.finished_at_ms(), n, name + "finished_at_ms"))
    return err;
  if (auto err = check_size(x.updated_at_ms(), n, name + "updated_at_ms"))
    return err;
  t.executions.resize(n);
  int64_t queued = 0;
  int64_t notified = 0;
  int64_t started = 0;
  int64_t finished = 0;
  int64_t updated = 0;
  auto devices = w.devices.size();
  for (size_t i = 0; i < n; ++i) {
    auto& e = t.executions[i];
    auto row = static_cast<int>(i);
    auto xname = [&] { return t.id_of(execution_seq{i + 1}).to_string(); };
    auto d = x.devices(row);
    if (d < devices) {
      const auto& dev = w.devices[d];
      if (dev.product != t.spec.product)
        return bad("gives execution " + xname() + " " +
                   device_name(dev.product, dev.key) +
                   ", which is not of the task's product " + t.spec.product);
      e.device_key = dev.key;
    } else if (d - devices < static_cast<size_t>(x.unregistered_keys_size())) {
      e.device_key = x.unregistered_keys(static_cast<int>(d - devices));
    } else {
      return bad("gives execution " + xname() + " device " + std::to_string(d) +
                 ", beyond the device table");
    }
    auto state = static_cast<uint8_t>(x.states()[i]);
    if (state < v1::EXECUTION_STATE_QUEUED ||
        state > v1::EXECUTION_STATE_CANCELED)
      return bad("gives execution " + xname() + " state " +
                 std::to_string(state) + ", which does not exist");
    e.state = static_cast<v1::ExecutionState>(state);
    auto attempt = x.attempts(row);
    if (attempt == 0 || attempt > std::numeric_limits<uint16_t>::max())
      return bad("gives execution " + xname() + " attempt " +
                 std::to_string(attempt));
    e.attempt = static_cast<uint16_t>(attempt);
    auto step = static_cast<uint8_t>(x.progress_steps()[i]);
    if (step > 100)
      return bad("gives execution " + xname() + " progress step " +
                 std::to_string(step));
    e.progress_step = step;
    e.queued_at_ms = undelta(queued, x.queued_at_ms(row));
    e.notified_at_ms = undelta(notified, x.notified_at_ms(row));
    e.started_at_ms = undelta(started, x.started_at_ms(row));
    e.finished_at_ms = undelta(finished, x.finished_at_ms(row));
    e.updated_at_ms = undelta(updated, x.updated_at_ms(row));
  }
  auto in_range = [&](uint64_t seq, const char* what) -> status {
    if (seq == 0 || seq > n)
      return bad("gives task " + std::to_string(t.id.value()) + " a " + what +
                 " for execution " + std::to_string(seq) + " of " +
                 std::to_string(n));
    return std::nullopt;
  };
  for (const auto& f : x.failures()) {
    if (auto err = in_range(f.sequence(), "failure"))
      return err;
    t.failures[f.sequence()] = failure_info{f.code(), f.text()};
  }
  for (const auto& p : x.progress_texts()) {
    if (auto err = in_range(p.sequence(), "progress text"))
      return err;
    t.progress_texts[p.sequence()] = p.text();
  }
  return std::nullopt;
}

status decode_task(const v1::TaskSnapshot& x, const reader& r, world& w) {
  auto id = x.task_id();
  auto name = "task " + std::to_string(id);
  if (id == 0 || id > max_task_id)
    return bad("holds " + name + ", whose id is out of range");
  if (w.tasks.count(id) > 0)
    return bad("holds " + name + " twice");
  if (!v1::TaskStatus_IsValid(x.status()) ||
      x.status() == v1::TASK_STATUS_UNSPECIFIED)
    return bad("gives " + name + " status " + std::to_string(x.status()) +
               ", which does not exist");
  if (x.created_at_sequence() == 0 ||
      x.created_at_sequence() > w.last_sequence.value())
    return bad("says " + name + " was created at event " +
               std::to_string(x.created_at_sequence()) +
               ", outside its events 1.." +
               std::to_string(w.last_sequence.value()));
  task_state t;
  t.id = task_id{id};
  t.spec = from_proto(x.spec());
  t.firmware = from_proto(x.firmware());
  t.status = x.status();
  t.status_reason = x.status_reason();
  t.created_at_ms = x.created_at_ms();
  t.finished_at_ms = x.finished_at_ms();
  if (auto err = decode_executions(x.executions(), w, t))
    return err;
  std::vector<std::string_view> skipped;
  if (auto err = split(x.skipped_keys(), x.skipped_key_lengths(),
                       name + "'s skipped keys", skipped))
    return err;
  if (auto err = check_size(x.skipped_reasons(), skipped.size(),
                            name + "'s skipped_reasons"))
    return err;
  t.skipped.reserve(skipped.size());
  for (size_t i = 0; i < skipped.size(); ++i) {
    auto reason = r.text(x.skipped_reasons(static_cast<int>(i)),
                         "a skipped device's reason");
    if (!reason)
      return reason.error();
    t.skipped.push_back(skipped_device{std::string{skipped[i]}, **reason});
  }
  // The counters and the pending retries must be what the executions say.
  std::array<uint64_t, 8> counts{};
  uint64_t retries = 0;
  for (const auto& e : t.executions) {
    ++counts[e.state];
    if (t.will_retry(e))
      ++retries;
  }
  if (x.counts_size() != static_cast<int>(counts.size()))
    return bad("gives " + name + " " + std::to_string(x.counts_size()) +
               " counters instead of " + std::to_string(counts.size()));
  for (size_t s = 0; s < counts.size(); ++s) {
    t.counts[s] = x.counts(static_cast<int>(s));
    if (t.counts[s] != counts[s])
      return bad("counts " + std::to_string(t.counts[s]) + " " +
                 v1::ExecutionState_Name(static_cast<v1::ExecutionState>(s)) +
                 " executions in " + name + ", whose table has " +
                 std::to_string(counts[s]));
  }
  t.retries_pending = x.retries_pending();
  if (t.retries_pending != retries)
    return bad("counts " + std::to_string(t.retries_pending) +
               " pending retries in " + name + ", whose table has " +
               std::to_string(retries));
  t.index_devices();
  w.task_created_at[id] = x.created_at_sequence();
  w.tasks.emplace(id, std::move(t));
  return std::nullopt;
}

/// Each device's holder must be an execution that holds it, and each
/// execution that holds its device must be that device's holder.
status check_holders(const world& w) {
  for (const auto& d : w.devices) {
    if (!d.active_execution)
      continue;
    auto id = d.active_execution;
    auto name = device_name(d.product, d.key);
    auto i = w.tasks.find(id.task().value());
    const execution* x =
        i == w.tasks.end() ? nullptr : i->second.find(id.sequence());
    if (x == nullptr)
      return bad("says execution " + id.to_string() + " holds " + name +
                 ", but it does not exist");
    if (x->device_key != d.key || i->second.spec.product != d.product ||
        !i->second.holds_device(*x))
      return bad("says execution " + id.to_string() + " holds " + name +
                 ", but that execution does not hold it");
  }
  for (const auto& [tid, t] : w.tasks) {
    for (uint64_t s = 1; s <= t.executions.size(); ++s) {
      const auto& x = t.executions[s - 1];
      if (!t.holds_device(x))
        continue;
      auto i = w.device_index.find(device_ref(t.spec.product, x.device_key));
      if (i == w.device_index.end())
        continue; // Not registered: apply never binds it either.
      if (w.devices[i->second].active_execution != t.id_of(execution_seq{s}))
        return bad("says execution " + t.id_of(execution_seq{s}).to_string() +
                   " holds " + device_name(t.spec.product, x.device_key) +
                   ", but the device names execution " +
                   w.devices[i->second].active_execution.to_string());
    }
  }
  return std::nullopt;
}

} // namespace

std::string encode_snapshot(const world& w) {
  v1::Snapshot s;
  s.set_format_version(snapshot_format_version);
  s.set_last_sequence(w.last_sequence.value());
  string_table strings{s};
  for (const auto& [key, fw] : w.firmware.entries)
    *s.add_firmware() = to_proto(fw);
  encode_devices(w, strings, *s.mutable_devices());
  for (const auto& [key, tree] : w.trees)
    *s.add_asset_trees() = to_proto(tree);
  for (const auto& [id, t] : w.tasks)
    encode_task(w, t, strings, *s.add_tasks());
  for (const auto& [key, seq] : w.verification_started_at) {
    auto* x = s.add_verification_starts();
    x->set_product_key(key.first);
    x->set_version(key.second);
    x->set_sequence(seq);
  }
  return s.SerializeAsString();
}

expected<snapshot_header> peek_snapshot(std::string_view bytes) {
  namespace io = google::protobuf::io;
  if (bytes.size() > static_cast<size_t>(INT32_MAX))
    return bad("is larger than 2 GiB");
  io::CodedInputStream in{reinterpret_cast<const uint8_t*>(bytes.data()),
                          static_cast<int>(bytes.size())};
  in.SetTotalBytesLimit(INT32_MAX);
  snapshot_header out;
  for (;;) {
    auto tag = in.ReadTag();
    if (tag == 0)
      break;
    auto field = wire::GetTagFieldNumber(tag);
    auto type = wire::GetTagWireType(tag);
    if (field == 1 && type == wire::WIRETYPE_VARINT) {
      uint32_t v = 0;
      if (!in.ReadVarint32(&v))
        return bad("does not decode: its format version is cut short");
      out.format_version = v;
    } else if (field == 2 && type == wire::WIRETYPE_VARINT) {
      uint64_t v = 0;
      if (!in.ReadVarint64(&v))
        return bad("does not decode: its last sequence is cut short");
      out.last_sequence = sequence_number{v};
    } else if (!wire::SkipField(&in, tag)) {
      return bad("does not decode as fota.v1.Snapshot (field " +
                 std::to_string(field) + " is damaged)");
    }
  }
  if (!in.ConsumedEntireMessage())
    return bad("does not decode as fota.v1.Snapshot");
  return out;
}

expected<world> decode_snapshot(std::string_view bytes) {
  auto header = peek_snapshot(bytes);
  if (!header)
    return header.error();
  if (header->format_version != snapshot_format_version)
    return bad("is in format version " +
               std::to_string(header->format_version) +
               "; this version of fota reads only version " +
               std::to_string(snapshot_format_version));
  v1::Snapshot s;
  if (!s.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad("does not decode as fota.v1.Snapshot");
  world w;
  w.last_sequence = sequence_number{s.last_sequence()};
  reader r{s};
  if (s.strings_size() == 0 || !s.strings(0).empty())
    return bad("has no empty string at index 0 of its string table");
  for (const auto& f : s.firmware()) {
    auto fw = from_proto(f);
    firmware_catalog::key key{fw.product, fw.version};
    if (!w.firmware.entries.emplace(key, std::move(fw)).second)
      return bad("holds " + firmware_name(key.first, key.second) + " twice");
  }
  if (auto err = decode_devices(s, r, w))
    return std::move(*err);
  for (const auto& t : s.asset_trees()) {
    auto tree = from_proto(t);
    std::pair<std::string, std::string> key{tree.product, tree.id};
    if (!w.trees.emplace(key, std::move(tree)).second)
      return bad("holds asset tree " + key.second + " of " + key.first +
                 " twice");
  }
  for (const auto& t : s.tasks())
    if (auto err = decode_task(t, r, w))
      return std::move(*err);
  for (const auto& v : s.verification_starts()) {
    if (v.sequence() == 0 || v.sequence() > w.last_sequence.value())
      return bad("says a verification of " +
                 firmware_name(v.product_key(), v.version()) +
                 " started at event " + std::to_string(v.sequence()) +
                 ", outside its events 1.." +
                 std::to_string(w.last_sequence.value()));
    w.verification_started_at[{v.product_key(), v.version()}] = v.sequence();
  }
  if (auto err = check_holders(w))
    return std::move(*err);
  return w;
}

} // namespace fota
