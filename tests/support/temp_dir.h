// Test fixtures: a temporary folder removed with its contents, and a clock tests can move.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "llmassist/clock.h"

namespace llmassist::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  // path()/name as a string.
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A clock that stands still until advanced. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start = Timestamp(std::chrono::hours(24 * 20000)))
      : now_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch())
                    .count()) {}
  Timestamp now() const override { return Timestamp(std::chrono::milliseconds(now_ms_.load())); }
  void advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }
  void set(Timestamp t) {
    now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }

 private:
  std::atomic<std::int64_t> now_ms_;
};

// A monotonic clock that stands still until advanced; advancing it wakes the threads waiting
// through it for a time that has come. Thread-safe.
class ManualMonotonicClock final : public MonotonicClock {
 public:
  time_point now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void advance(std::chrono::milliseconds d) {
    std::vector<std::pair<std::mutex*, std::condition_variable*>> waiting;
    {
      std::lock_guard lock(mu_);
      now_ += d;
      waiting = waiting_;
    }
    // Under each waiter's own mutex, so that none checks the time and then misses the wake-up.
    for (auto [m, cv] : waiting) {
      std::lock_guard lock(*m);
      cv->notify_all();
    }
  }
  bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  time_point deadline, const std::function<bool()>& ready) override {
    const std::pair<std::mutex*, std::condition_variable*> me{lock.mutex(), &cv};
    {
      std::lock_guard g(mu_);
      waiting_.push_back(me);
    }
    while (!ready() && now() < deadline) cv.wait(lock);
    std::lock_guard g(mu_);
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), me));
    return ready();
  }

 private:
  mutable std::mutex mu_;
  time_point now_{std::chrono::hours(1)};
  std::vector<std::pair<std::mutex*, std::condition_variable*>> waiting_;
};

}  // namespace llmassist::testing
