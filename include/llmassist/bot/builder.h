// BotBuilder: a bot assembled from parts, where a program replaces any part it wants and the
// rest is made from a BotConfig as llmassist-bot makes it:
//
//   part        given with     made otherwise from
//   store       store()        `database` (the SQLite store)
//   provider    provider()     `providers` and `fallback` (the chain; the shipped knowledge base
//                              when none is configured)
//   memory      memory()       `memory` (the window memory over the store)
//   transports  transport()    `telegram` (Telegram when a token is set, the console otherwise);
//                              each call adds a channel, and one Assistant serves them all
//   moderation  moderation()   the moderation queue over the store
//   tools       tool()         none (docs/tools.md); each call adds one the model may call
//
// The admin server (with an `admin` section) serves the same parts. A provider of a type of the
// program's own can also be named in the config: see register_provider_type()
// (provider_config.h). Example: examples/minimal-bot/main.cpp.
//
//   auto bot = BotBuilder().provider(std::make_shared<MyProvider>()).build();
//
// Thread-safety: one thread uses a builder; build() may be called once.
#pragma once

#include <functional>
#include <memory>

#include "llmassist/bot/bot.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/chat_transport.h"
#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/memory_manager.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"
#include "llmassist/status.h"
#include "llmassist/tool.h"

namespace llmassist {

class LLMASSIST_API BotBuilder final {
 public:
  // The parts not given are made from `config`; a default BotConfig is the embedded defaults
  // (a console bot on llmassist.db answering from the shipped knowledge base).
  explicit BotBuilder(BotConfig config = {});
  ~BotBuilder();
  BotBuilder(BotBuilder&&) noexcept;
  BotBuilder& operator=(BotBuilder&&) noexcept;

  BotBuilder& store(std::shared_ptr<MessageStore> store);
  // Any LlmProvider: one of the program's own, or a FallbackChain of several (the admin page's
  // provider statistics and health then show its providers).
  BotBuilder& provider(std::shared_ptr<LlmProvider> provider);
  BotBuilder& memory(std::shared_ptr<MemoryManager> memory);
  // A channel to serve; called again, another (one transport per channel). The first replaces
  // the config's Telegram or console transport. With an `admin` section the API channel of
  // /v1/chat/handle is served besides.
  BotBuilder& transport(std::shared_ptr<ChatTransport> transport);
  BotBuilder& moderation(std::shared_ptr<ModerationQueue> moderation);
  // A tool the model may call while it drafts (tool.h): make_tool() or a Tool of the program's
  // own. build() refuses a tool with a bad spec or a name taken.
  BotBuilder& tool(std::shared_ptr<Tool> tool);
  BotBuilder& logger(std::shared_ptr<Logger> logger);  // default: stderr_logger()
  // The console transport only: called when standard input ends.
  BotBuilder& on_console_end(std::function<void()> callback);

  // Opens what must be opened and assembles the bot; nothing is started yet. Errors: the
  // config's (a provider that cannot be made, a database that cannot be opened), or
  // kFailedPrecondition when build() was called before.
  [[nodiscard]] Result<std::unique_ptr<Bot>> build();

 private:
  struct Given;
  std::unique_ptr<Given> given_;
};

}  // namespace llmassist
