#include "llmassist/clock.h"

namespace llmassist {
namespace {

class SystemClock final : public Clock {
 public:
  Timestamp now() const override { return std::chrono::system_clock::now(); }
};

class SteadyClock final : public MonotonicClock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  time_point deadline, const std::function<bool()>& ready) override {
    return cv.wait_until(lock, deadline, ready);
  }
};

}  // namespace

std::shared_ptr<Clock> system_clock() { return std::make_shared<SystemClock>(); }

std::shared_ptr<MonotonicClock> steady_monotonic_clock() { return std::make_shared<SteadyClock>(); }

}  // namespace llmassist
