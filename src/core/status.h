// Status and Result<T>: errors as values.
//
// Every boundary (SQLite, processes, HTTP, the Kubernetes API) converts its
// failures into a Status whose code tells the caller what to do: retry
// (Unavailable, Throttled), treat as done (AlreadyExists for an object we own),
// give up on this item (InvalidArgument, NotFound, FailedPrecondition). The
// message carries the context: which queue, which Job, which HTTP status.
//
// Thread-safety: values; no shared state.
#ifndef CRUNCHER_CORE_STATUS_H_
#define CRUNCHER_CORE_STATUS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cruncher {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input: retrying the same request cannot help
  kNotFound,            // the named queue, message or Job does not exist
  kAlreadyExists,       // creating something that is already there
  kFailedPrecondition,  // the object is in a state that forbids the action
  kThrottled,           // the server asked us to slow down: retry later
  kUnavailable,         // transient: connection, 5xx, busy database
  kInternal,            // a broken invariant or an unexpected library error
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // True for errors worth retrying with backoff.
  bool retryable() const {
    return code_ == StatusCode::kThrottled || code_ == StatusCode::kUnavailable;
  }

  // Returns a copy whose message is prefixed with `context`, so that an error
  // bubbling up names every layer it crossed ("queue tasks: sqlite: ...").
  Status WithContext(std::string_view context) const;

  // "InvalidArgument: message" (or "OK").
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status AlreadyExists(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Throttled(std::string m) {
  return {StatusCode::kThrottled, std::move(m)};
}
inline Status Unavailable(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status Internal(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Internal("Result constructed from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace cruncher

// Returns early from the enclosing function if `expr` (a Status) is not OK.
#define CRUNCHER_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::cruncher::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

#define CRUNCHER_CONCAT_INNER(a, b) a##b
#define CRUNCHER_CONCAT(a, b) CRUNCHER_CONCAT_INNER(a, b)
// Declares `lhs` from a Result<T> expression or returns its Status.
#define CRUNCHER_ASSIGN_OR_RETURN(lhs, expr) \
  CRUNCHER_ASSIGN_OR_RETURN_IMPL(CRUNCHER_CONCAT(_res_, __LINE__), lhs, expr)
#define CRUNCHER_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#endif  // CRUNCHER_CORE_STATUS_H_
