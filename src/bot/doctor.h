// Internal: `llmassist-bot doctor`, the checks of a config against the world (the database,
// each provider, the bot token), each with a plain verdict. Not installed: what llmassist-bot
// and the tests use, exported so that they link against a shared build too.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "llmassist/bot/bot_config.h"
#include "llmassist/export.h"

namespace llmassist {

struct DoctorCheck {
  std::string what;  // "database", "provider openrouter", "telegram token"
  bool ok = false;
  std::string detail;  // what was found, or what is wrong and what to do
};

// Checks the database, each provider (a one-word completion; a knowledge base is checked by
// loading it) and the bot token (getMe). Takes up to `provider_timeout` per provider.
[[nodiscard]] LLMASSIST_API std::vector<DoctorCheck> run_doctor(
    const BotConfig& config, std::chrono::milliseconds provider_timeout = std::chrono::seconds(30));

}  // namespace llmassist
