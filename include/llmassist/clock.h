// Clock: the source of "now" for everything that stores or compares times, injected so that
// tests can control time and two assistants in one process need not share one.
// MonotonicClock: the time that measures intervals (delays, periods, leases' renewals), and the
// waits for it, injected so that a test can drive it instead of sleeping.
//
// Thread-safety: implementations must allow every method from many threads at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "llmassist/export.h"
#include "llmassist/types.h"

namespace llmassist {

class LLMASSIST_API Clock {
 public:
  Clock() = default;
  virtual ~Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;

  // The current time, UTC.
  [[nodiscard]] virtual Timestamp now() const = 0;
};

// The wall clock (std::chrono::system_clock). Stateless; one instance may be shared freely.
[[nodiscard]] LLMASSIST_API std::shared_ptr<Clock> system_clock();

// Time that only goes forward, for intervals, and the waits for a time to come. A component
// that times things waits through its clock, so that one a test advances wakes it.
class LLMASSIST_API MonotonicClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  MonotonicClock() = default;
  virtual ~MonotonicClock() = default;
  MonotonicClock(const MonotonicClock&) = delete;
  MonotonicClock& operator=(const MonotonicClock&) = delete;

  [[nodiscard]] virtual time_point now() const = 0;
  // As std::condition_variable::wait_until with a predicate: waits on `cv`, with `lock` (of
  // the mutex the notifiers of `cv` take) held, until `ready()` or this clock reaches
  // `deadline`. Returns ready().
  virtual bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          time_point deadline, const std::function<bool()>& ready) = 0;
};

// std::chrono::steady_clock, waits on it. Stateless; one instance may be shared freely.
[[nodiscard]] LLMASSIST_API std::shared_ptr<MonotonicClock> steady_monotonic_clock();

}  // namespace llmassist
