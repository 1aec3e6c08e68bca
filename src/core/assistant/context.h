// What every unit of the Assistant shares: its parts and options, the injected services, the
// transports by channel, the settings an admin changes while it runs, and logging. Set up by
// Assistant::create() and not changed after, except the atomics and the settings.
//
// Thread-safety: read from any thread; current_system_prompt() and set_system_prompt() lock.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/assistant.h"

namespace llmassist::detail::assistant {

inline constexpr std::string_view kComponent = "assistant";
inline constexpr std::string_view kCallbackPrefix = "llmassist:";

// What a chat may have to do, as the worker is told (Dispatcher::touch()).
enum Work : unsigned { kDraftWork = 1, kSendWork = 2, kRedraftWork = 4, kAnyWork = 7 };

struct Context {
  AssistantParts parts;
  AssistantOptions options;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<MonotonicClock> monotonic;
  std::shared_ptr<Logger> logger;
  std::shared_ptr<Scheduler> scheduler;
  std::string worker;  // the name of this instance's claims
  // Every transport, the operators' chat's first; their channels, in the same order.
  std::vector<std::shared_ptr<ChatTransport>> transports;
  std::vector<std::string> channels;
  std::atomic<bool> stopping{false};
  // What an admin set while the bot runs (runtime_settings.h), read at every rescan.
  std::atomic<ModerationPolicy> policy{ModerationPolicy::kAuto};

  // The transport serving `channel`; null when none does.
  ChatTransport* transport_for(std::string_view channel) const {
    for (std::size_t i = 0; i < channels.size(); ++i) {
      if (channels[i] == channel) return transports[i].get();
    }
    return nullptr;
  }
  ChatTransport& operators_transport() const { return *transports.front(); }

  std::string current_system_prompt() const {
    std::lock_guard lock(settings_mu_);
    return system_prompt_override_;
  }
  void set_system_prompt(std::string prompt) {
    std::lock_guard lock(settings_mu_);
    system_prompt_override_ = std::move(prompt);
  }

  void log(LogLevel level, const std::string& message) const {
    logger->log(level, kComponent, message);
  }
  template <typename T>
  bool failed(const Result<T>& r, std::string_view what) const {
    if (r.ok()) return false;
    log(LogLevel::kError, fmt::format("{}: {}", what, r.status().to_string()));
    return true;
  }
  bool failed(const Status& s, std::string_view what) const {
    if (s.ok()) return false;
    log(LogLevel::kError, fmt::format("{}: {}", what, s.to_string()));
    return true;
  }

 private:
  mutable std::mutex settings_mu_;
  std::string system_prompt_override_;  // empty: the configured one
};

// "/start", "/start@my_bot" and "/start payload" are all /start.
bool is_command(std::string_view text, std::string_view command);

// The rest of a command's line: "/reject too vague" -> "too vague".
std::string command_argument(std::string_view text);

// "Ann (telegram 700)", for the operators.
std::string describe(const Chat& chat);

}  // namespace llmassist::detail::assistant
