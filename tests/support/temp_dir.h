// Test fixtures: a temporary folder removed with its contents, and a clock tests can move.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>

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

}  // namespace llmassist::testing
