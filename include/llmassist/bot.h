// Bot: a complete support bot assembled from a BotConfig — the SQLite store, the provider chain
// (the shipped knowledge base when none is configured), the window memory, the moderation queue,
// the transport (Telegram when a token is set, the console otherwise) and the Assistant. What
// llmassist-bot runs; embed it to run the same bot inside another program.
//
// Thread-safety: start(), stop() and wait_idle() from one thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmassist/assistant.h"
#include "llmassist/bot_config.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct BotOptions {
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
  // Console mode: called when standard input ends (so that a piped conversation can finish).
  std::function<void()> on_console_end;
};

class Bot final {
 public:
  // Opens the database and builds every part; nothing is started yet.
  [[nodiscard]] static Result<std::unique_ptr<Bot>> create(const BotConfig& config,
                                                           BotOptions options = {});
  ~Bot();
  Bot(const Bot&) = delete;
  Bot& operator=(const Bot&) = delete;

  Status start();
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Waits until no question waits for an answer to be drafted or sent (or the timeout passes);
  // true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);

  // One line for the log: "telegram (polling), providers: a → b, policy: review".
  [[nodiscard]] const std::string& description() const;
  [[nodiscard]] AssistantStats stats() const;

 private:
  struct Parts;
  explicit Bot(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// What `llmassist-bot doctor` reports: each check with a plain verdict.
struct DoctorCheck {
  std::string what;    // "database", "provider openrouter", "telegram token"
  bool ok = false;
  std::string detail;  // what was found, or what is wrong and what to do
};

// Checks the database, each provider (a one-word completion; a knowledge base is checked by
// loading it) and the bot token (getMe). Takes up to `provider_timeout` per provider.
[[nodiscard]] std::vector<DoctorCheck> run_doctor(
    const BotConfig& config, std::chrono::milliseconds provider_timeout = std::chrono::seconds(30));

}  // namespace llmassist
