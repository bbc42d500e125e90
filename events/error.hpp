/// The project's error codes and the error value that carries them. Wire
/// status codes map from `errc` in one table (api/status.cpp); CAF errors
/// carry it through `CAF_ERROR_CODE_ENUM` in the actors layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace fota {

/// What went wrong, independent of where it is reported.
enum class errc : uint8_t {
  /// No error.
  none = 0,
  /// A request field is malformed or out of range.
  invalid_argument = 1,
  /// A named entity does not exist.
  not_found = 2,
  /// An entity with the same identity exists.
  already_exists = 3,
  /// The entity is not in a state that allows the request.
  failed_precondition = 4,
  /// A limit was reached: frame size, queue length, rate.
  resource_exhausted = 5,
  /// The client has not presented a valid token.
  unauthenticated = 6,
  /// The client's role does not allow the request.
  permission_denied = 7,
  /// A bug or an unexpected state inside the node.
  internal = 8,
  /// The node cannot serve the request now, e.g. storage refuses writes.
  unavailable = 9,
  /// The device is already in an active upgrade.
  device_busy = 10,
  /// Storage failed to read or write.
  storage_error = 11,
  /// Stored bytes could not be decoded.
  corrupted = 12,
  /// Acknowledged events are missing from the log.
  data_loss = 13,
};

/// Returns the name of `x`, e.g. "invalid_argument".
const char* to_string(errc x) noexcept;

/// An error code with a message that names the problem.
struct failure {
  errc code = errc::none;
  std::string message;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, failure& x) {
    return f(x.code, x.message);
  }
};

inline failure make_failure(errc code, std::string message) {
  return failure{code, std::move(message)};
}

/// Either a value or a failure.
template <class T>
class expected {
public:
  expected(T value) : data_(std::move(value)) {}
  expected(failure err) : data_(std::move(err)) {}

  explicit operator bool() const noexcept { return data_.index() == 0; }
  bool has_value() const noexcept { return data_.index() == 0; }

  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  /// By value, so that `for (auto& x : *f())` does not dangle.
  T operator*() && { return std::move(value()); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const failure& error() const& { return std::get<1>(data_); }
  failure&& error() && { return std::get<1>(std::move(data_)); }

private:
  std::variant<T, failure> data_;
};

/// The result of an operation without a value: nullopt means success.
using status = std::optional<failure>;

} // namespace fota
