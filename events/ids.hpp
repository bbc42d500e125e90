/// Strong ids of the domain, so a device key never passes for a version and
/// a task id never passes for a sequence number. The execution id is built
/// and split here and nowhere else.
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

/// A task; ids start at 1 and stay below 2^32 (see `execution_id`).
using task_id = named_type<uint64_t, struct task_id_tag>;

/// The position of an event in the node's log, from 1.
using sequence_number = named_type<uint64_t, struct sequence_number_tag>;

/// The position of an execution in its task: the order in which its device
/// entered the task's scope, from 1, below 2^32.
using execution_seq = named_type<uint64_t, struct execution_seq_tag>;

/// Largest task id and execution sequence that fit an execution id.
inline constexpr uint64_t max_task_id = 0xFFFFFFFFu;
inline constexpr uint64_t max_execution_seq = 0xFFFFFFFFu;

/// Identifies one execution on the wire: the task in the high 32 bits and
/// the execution's sequence within the task in the low 32 bits. 0 is no
/// execution.
class execution_id {
public:
  execution_id() = default;

  /// The id as a client sent it.
  explicit execution_id(uint64_t wire) : value_(wire) {}

  /// @pre `task` ≤ `max_task_id` and `seq` ≤ `max_execution_seq`.
  execution_id(task_id task, execution_seq seq)
    : value_((task.value() << 32) | (seq.value() & max_execution_seq)) {}

  uint64_t value() const noexcept { return value_; }

  task_id task() const noexcept { return task_id{value_ >> 32}; }

  execution_seq sequence() const noexcept {
    return execution_seq{value_ & max_execution_seq};
  }

  /// Whether this names an execution at all.
  explicit operator bool() const noexcept { return value_ != 0; }

  /// "task/sequence", as messages name executions.
  std::string to_string() const {
    return std::to_string(task().value()) + "/" +
           std::to_string(sequence().value());
  }

  friend bool operator==(execution_id x, execution_id y) {
    return x.value_ == y.value_;
  }
  friend bool operator!=(execution_id x, execution_id y) {
    return x.value_ != y.value_;
  }
  friend bool operator<(execution_id x, execution_id y) {
    return x.value_ < y.value_;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 execution_id& x) {
    return f(x.value_);
  }

private:
  uint64_t value_ = 0;
};

} // namespace fota

namespace std {

template <class T, class Tag>
struct hash<fota::named_type<T, Tag>> {
  size_t operator()(const fota::named_type<T, Tag>& x) const noexcept {
    return std::hash<T>{}(x.value());
  }
};

template <>
struct hash<fota::execution_id> {
  size_t operator()(fota::execution_id x) const noexcept {
    return std::hash<uint64_t>{}(x.value());
  }
};

} // namespace std
