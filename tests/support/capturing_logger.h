// A Logger for tests that keeps every line, to check what operators would read (and that no
// secret is in it).
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/logger.h"

namespace llmassist::testing {

class CapturingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view component, std::string_view message) override {
    std::lock_guard lock(mu_);
    lines_.push_back(std::string(to_string(level)) + " " + std::string(component) + ": " +
                     std::string(message));
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  bool contains(std::string_view text) const {
    for (const auto& line : lines()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace llmassist::testing
