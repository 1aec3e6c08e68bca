// Clock: the source of "now" for everything that stores or compares times, injected so that
// tests can control time and two assistants in one process need not share one.
//
// Thread-safety: implementations must allow now() from many threads at once.
#pragma once

#include <memory>

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

}  // namespace llmassist
