// Status and Result<T>: how every fallible call in llmassist reports failure.
//
// The library does not throw. A call that can fail returns a Status (when it has no value) or a
// Result<T> (when it has one). The codes are the vocabulary callers branch on: a fallback chain
// moves to its next provider on kUnavailable or kResourceExhausted, a pipeline retries a lost
// compare-and-set on kAborted, an HTTP layer maps kInvalidArgument to 400 and kNotFound to 404.
//
// Thread-safety: values; a const Status or Result may be read from many threads at once.
#pragma once

#include <cassert>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "llmassist/export.h"

namespace llmassist {

// What went wrong, and so what the caller should do about it.
enum class StatusCode : std::uint8_t {
  kOk = 0,
  // The operation was cancelled by the caller (a cancelled request, a stopping component).
  kCancelled,
  // An error that fits no other code. Do not retry blindly.
  kUnknown,
  // The caller's input is wrong (malformed JSON, an unknown key, an empty text). Fix the input;
  // retrying the same call fails the same way.
  kInvalidArgument,
  // A deadline passed before the operation finished (a timeout). Transient: may be retried.
  kDeadlineExceeded,
  // The thing asked for does not exist (a reply id, a chat).
  kNotFound,
  // The thing to create exists already (a duplicate inbound update). Usually not an error for
  // the caller: the earlier write stands.
  kAlreadyExists,
  // The caller is known but not allowed (HTTP 403, a lesser role).
  kPermissionDenied,
  // A quota or rate limit is exhausted (HTTP 429). Status::retry_after() says when to come back,
  // when the other side said so. A reason() of "insufficient_quota" means: do not retry at all.
  kResourceExhausted,
  // The system is not in a state that allows the operation (an illegal status transition, a
  // database schema newer than this build). Retrying without changing that state fails again.
  kFailedPrecondition,
  // A concurrent writer won a compare-and-set (another worker claimed the reply first). Re-read
  // and decide again.
  kAborted,
  // A value is outside the range the operation accepts (a context longer than the model's).
  kOutOfRange,
  // The operation is not implemented by this backend.
  kUnimplemented,
  // An invariant inside the library or a backend broke. A bug or a misbehaving dependency.
  kInternal,
  // The service is unreachable or failing (connection refused, reset, HTTP 5xx, a busy
  // database). Transient: retry with backoff, or move to a fallback.
  kUnavailable,
  // Stored data is corrupt or unreadable (a damaged database file). Do not retry; an operator
  // must look.
  kDataLoss,
  // The caller could not be identified (HTTP 401, a bad API key).
  kUnauthenticated,
};

// The code's name in lower snake case ("invalid_argument"), as used in logs and JSON errors.
[[nodiscard]] LLMASSIST_API std::string_view to_string(StatusCode code) noexcept;

// A success, or an error code with a human-readable message. The message never contains secrets:
// whoever builds a Status from third-party text redacts it first.
class [[nodiscard]] LLMASSIST_API Status final {
 public:
  Status() noexcept = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] bool ok() const noexcept { return code_ == StatusCode::kOk; }
  [[nodiscard]] StatusCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

  // A machine-readable refinement of the code, such as "insufficient_quota" or
  // "context_length_exceeded"; empty when there is none.
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  Status& with_reason(std::string reason) & {
    reason_ = std::move(reason);
    return *this;
  }
  Status&& with_reason(std::string reason) && {
    reason_ = std::move(reason);
    return std::move(*this);
  }

  // How long the other side asked us to wait before trying again (HTTP Retry-After,
  // Telegram's parameters.retry_after); empty when it said nothing.
  [[nodiscard]] std::optional<std::chrono::milliseconds> retry_after() const noexcept {
    return retry_after_;
  }
  Status& with_retry_after(std::chrono::milliseconds delay) & {
    retry_after_ = delay;
    return *this;
  }
  Status&& with_retry_after(std::chrono::milliseconds delay) && {
    retry_after_ = delay;
    return std::move(*this);
  }

  // "invalid_argument: <message>", or "ok".
  [[nodiscard]] std::string to_string() const;

  // A copy whose message is "<prefix>: <message>", code and hints kept.
  [[nodiscard]] Status annotate(std::string_view prefix) const;

  friend bool operator==(const Status& a, const Status& b) noexcept {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string reason_;
  std::optional<std::chrono::milliseconds> retry_after_;
};

inline Status ok_status() { return Status(); }
inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status already_exists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status failed_precondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status data_loss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status deadline_exceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status permission_denied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status unauthenticated(std::string m) {
  return {StatusCode::kUnauthenticated, std::move(m)};
}
inline Status resource_exhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }

namespace detail {
// Called when a caller reads the value of a failed Result: a programming error. Prints the
// status and aborts.
[[noreturn]] LLMASSIST_API void die_on_bad_result_access(const Status& status) noexcept;
}  // namespace detail

// A value of type T, or the Status that explains why there is none. Constructing a Result from
// an OK Status is a programming error (it would hold neither) and becomes kInternal.
template <typename T>
class [[nodiscard]] Result final {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, Status>, "Result<Status> makes no sense");

 public:
  Result(const T& value) : v_(value) {}            // NOLINT: implicit by design, as absl::StatusOr
  Result(T&& value) : v_(std::move(value)) {}      // NOLINT
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) {
      v_ = Status(StatusCode::kInternal, "Result constructed from an OK status without a value");
    }
  }
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
           !std::is_same_v<std::remove_cvref_t<U>, Status> &&
           !std::is_same_v<std::remove_cvref_t<U>, Result>) Result(U&& value)
      : v_(std::in_place_type<T>, std::forward<U>(value)) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  explicit operator bool() const noexcept { return ok(); }

  // The error; an OK Status when a value is held.
  [[nodiscard]] Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // The value. Reading it from a failed Result aborts the process with the status printed.
  T& value() & {
    check();
    return std::get<T>(v_);
  }
  const T& value() const& {
    check();
    return std::get<T>(v_);
  }
  // By value, not T&&: `for (auto& x : store.list().value())` must not dangle.
  T value() && {
    check();
    return std::get<T>(std::move(v_));
  }
  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check() const {
    if (!ok()) detail::die_on_bad_result_access(std::get<Status>(v_));
  }
  std::variant<Status, T> v_;
};

}  // namespace llmassist

// Returns early from the enclosing function when `expr` (a Status) is not OK.
#define LLMASSIST_RETURN_IF_ERROR(expr)                            \
  do {                                                             \
    ::llmassist::Status llmassist_status_tmp_ = (expr);            \
    if (!llmassist_status_tmp_.ok()) return llmassist_status_tmp_; \
  } while (false)

// Evaluates `expr` (a Result<T>); returns its Status from the enclosing function on error,
// else move-assigns its value to `lhs` (which may be a declaration: `auto x`).
#define LLMASSIST_ASSIGN_OR_RETURN(lhs, expr) \
  LLMASSIST_ASSIGN_OR_RETURN_IMPL_(LLMASSIST_CONCAT_(llmassist_result_, __LINE__), lhs, expr)
#define LLMASSIST_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.status();                    \
  lhs = std::move(tmp).value()
#define LLMASSIST_CONCAT_(a, b) LLMASSIST_CONCAT_INNER_(a, b)
#define LLMASSIST_CONCAT_INNER_(a, b) a##b
