// Bot: a complete support bot assembled from a BotConfig — the SQLite store, the provider chain
// (the shipped knowledge base when none is configured), the window memory, the moderation queue,
// the transport (Telegram when a token is set, the console otherwise), the Assistant, and the
// admin server when the config has an `admin` section. What llmassist-bot runs; embed it to run
// the same bot inside another program, or assemble one with parts of the program's own with
// BotBuilder (builder.h).
//
// Thread-safety: start(), stop() and wait_idle() from one thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "llmassist/admin/admin_server.h"
#include "llmassist/assistant.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API BotOptions {
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
  // Console mode: called when standard input ends (so that a piped conversation can finish).
  std::function<void()> on_console_end;
};

class LLMASSIST_API Bot final {
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
  // "http://127.0.0.1:8080" when the admin server runs (after start()); empty otherwise.
  [[nodiscard]] std::string admin_url() const;
  [[nodiscard]] AssistantStats stats() const;

 private:
  friend class BotBuilder;
  struct Parts;
  explicit Bot(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// The admin server over `config`'s database and providers, with its `admin` section (the
// defaults when absent): what llmassist-admin runs beside a bot in another process. The page's
// decisions are delivered by that bot. Not started.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<AdminServer>> make_admin_server(
    const BotConfig& config, BotOptions options = {});

// The message store of `config`'s database (for llmassist-admin's erase commands).
[[nodiscard]] LLMASSIST_API Result<std::shared_ptr<MessageStore>> open_message_store(
    const BotConfig& config, std::shared_ptr<Logger> logger = {});

// The accounts of `config`'s database (for llmassist-admin's user and token commands).
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<AccountStore>> open_account_store(
    const BotConfig& config, std::shared_ptr<Logger> logger = {});

}  // namespace llmassist
