/// Strong ids of the domain, so a device key never passes for a version and
/// a task id never passes for a sequence number.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace fota {

/// A value of type `T` that only converts explicitly, tagged by `Tag`.
template <class T, class Tag>
class named_type {
public:
  using value_type = T;

  named_type() = default;
  explicit named_type(T value) : value_(std::move(value)) {}

  const T& value() const noexcept { return value_; }
  T& value() noexcept { return value_; }

  friend bool operator==(const named_type& x, const named_type& y) {
    return x.value_ == y.value_;
  }
  friend bool operator!=(const named_type& x, const named_type& y) {
    return x.value_ != y.value_;
  }
  friend bool operator<(const named_type& x, const named_type& y) {
    return x.value_ < y.value_;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, named_type& x) {
    return f(x.value_);
  }

private:
  T value_{};
};

using product_key = named_type<std::string, struct product_key_tag>;
using device_key = named_type<std::string, struct device_key_tag>;
using task_id = named_type<uint64_t, struct task_id_tag>;
using sequence_number = named_type<uint64_t, struct sequence_number_tag>;

/// Identifies one execution on the wire: the task in the high 32 bits and the
/// execution's sequence within the task in the low 32 bits.
using execution_id = named_type<uint64_t, struct execution_id_tag>;

inline execution_id make_execution_id(task_id task, uint64_t sequence) {
  return execution_id{(task.value() << 32) | (sequence & 0xFFFFFFFFu)};
}

inline task_id task_of(execution_id x) {
  return task_id{x.value() >> 32};
}

inline uint64_t sequence_of(execution_id x) {
  return x.value() & 0xFFFFFFFFu;
}

} // namespace fota

namespace std {

template <class T, class Tag>
struct hash<fota::named_type<T, Tag>> {
  size_t operator()(const fota::named_type<T, Tag>& x) const noexcept {
    return std::hash<T>{}(x.value());
  }
};

} // namespace std
