// Internal: the parts a bot is assembled from, each made from its section of a BotConfig. Shared
// by the builder (builder.cpp), the config-level factories of bot.h and the doctor.
#pragma once

#include <functional>
#include <memory>

#include "llmassist/account_store.h"
#include "llmassist/admin/admin_server.h"
#include "llmassist/admin/api_transport.h"
#include "llmassist/assistant.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"
#include "llmassist/telegram/telegram_transport.h"

namespace llmassist::detail {

// The Telegram transport's options from the `telegram` section.
Result<TelegramTransportOptions> telegram_options(const TelegramSection& t,
                                                  std::shared_ptr<Logger> logger);

// The SQLite store of `database`.
Result<std::shared_ptr<MessageStore>> open_store(const BotConfig& config,
                                                 std::shared_ptr<Logger> logger);

// The chain of the `providers` and `fallback` sections.
Result<std::shared_ptr<FallbackChain>> make_chain(const BotConfig& config,
                                                  std::shared_ptr<Logger> logger);

// What a bot and its admin server share over one database.
struct SharedParts {
  std::shared_ptr<MessageStore> store;
  std::shared_ptr<LlmProvider> llm;
  std::shared_ptr<FallbackChain> chain;  // `llm` when it is a chain; null otherwise
  std::shared_ptr<MemoryManager> memory;
  std::shared_ptr<ModerationQueue> moderation;
};

// The memory of the `memory` section over `parts.store`: the semantic memory (its summariser
// the chain of memory.summary.providers, or the bot's without the knowledge base), or the window
// memory when asked for or when the store keeps no memory records.
Result<std::shared_ptr<MemoryManager>> make_memory(const BotConfig& config,
                                                   const SharedParts& parts,
                                                   std::shared_ptr<Logger> logger);

// `given` with every part it lacks made from `config`: the store of `database`, the chain of
// `providers` (then also `chain`), the window memory of `memory` and the moderation queue.
Result<SharedParts> complete_parts(const BotConfig& config, SharedParts given,
                                   std::shared_ptr<Logger> logger);

// The accounts of `database`.
Result<std::unique_ptr<AccountStore>> open_accounts(const BotConfig& config,
                                                    std::shared_ptr<Logger> logger);

// The admin server of the `admin` section (its defaults when there is none) over `shared`.
// `api`: the API channel's transport when an Assistant of the caller's serves it; without one,
// the admin server runs an Assistant of its own for it.
Result<std::unique_ptr<AdminServer>> assemble_admin(const BotConfig& config,
                                                    const SharedParts& shared,
                                                    std::shared_ptr<Logger> logger,
                                                    std::function<AssistantStats()> stats,
                                                    std::shared_ptr<ApiTransport> api = nullptr);

}  // namespace llmassist::detail
