// Scheduler: runs callbacks later, so that asynchronous components (retry backoff, pacing,
// circuit-breaker probes) can wait without blocking a thread per waiter or sleeping on an I/O
// thread. Injected through options; components that need one and are given none make their own.
//
// Thread-safety: schedule() may be called from any thread, including from a scheduled callback.
// Callbacks run one at a time on the scheduler's thread and must return quickly.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "llmassist/export.h"

namespace llmassist {

class LLMASSIST_API Scheduler {
 public:
  Scheduler() = default;
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `task` once `delay` has passed (zero: as soon as possible). Destroying the scheduler
  // drops the tasks that have not run; a task must therefore not be the only owner of a duty
  // that must be done (completion callbacks are run by the component's own shutdown).
  virtual void schedule(std::chrono::milliseconds delay, std::function<void()> task) = 0;
};

// A scheduler with one thread of its own, started at once and joined by the destructor.
[[nodiscard]] LLMASSIST_API std::shared_ptr<Scheduler> make_thread_scheduler();

}  // namespace llmassist
