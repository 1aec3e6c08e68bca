#include "llmassist/bot/builder.h"

#include <fmt/format.h>

#include "bot/bot_internal.h"
#include "bot/bot_parts.h"
#include "llmassist/admin/api_transport.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/telegram/telegram_transport.h"

namespace llmassist {

struct BotBuilder::Given {
  BotConfig config;
  detail::SharedParts parts;
  std::vector<std::shared_ptr<ChatTransport>> transports;
  std::vector<std::shared_ptr<Tool>> tools;
  std::shared_ptr<Logger> logger;
  std::function<void()> on_console_end;
  bool built = false;
};

BotBuilder::BotBuilder(BotConfig config) : given_(std::make_unique<Given>()) {
  given_->config = std::move(config);
}
BotBuilder::~BotBuilder() = default;
BotBuilder::BotBuilder(BotBuilder&&) noexcept = default;
BotBuilder& BotBuilder::operator=(BotBuilder&&) noexcept = default;

BotBuilder& BotBuilder::store(std::shared_ptr<MessageStore> store) {
  given_->parts.store = std::move(store);
  return *this;
}
BotBuilder& BotBuilder::provider(std::shared_ptr<LlmProvider> provider) {
  given_->parts.llm = std::move(provider);
  given_->parts.chain = nullptr;
  return *this;
}
BotBuilder& BotBuilder::memory(std::shared_ptr<MemoryManager> memory) {
  given_->parts.memory = std::move(memory);
  return *this;
}
BotBuilder& BotBuilder::transport(std::shared_ptr<ChatTransport> transport) {
  given_->transports.push_back(std::move(transport));
  return *this;
}
BotBuilder& BotBuilder::moderation(std::shared_ptr<ModerationQueue> moderation) {
  given_->parts.moderation = std::move(moderation);
  return *this;
}
BotBuilder& BotBuilder::tool(std::shared_ptr<Tool> tool) {
  given_->tools.push_back(std::move(tool));
  return *this;
}
BotBuilder& BotBuilder::logger(std::shared_ptr<Logger> logger) {
  given_->logger = std::move(logger);
  return *this;
}
BotBuilder& BotBuilder::on_console_end(std::function<void()> callback) {
  given_->on_console_end = std::move(callback);
  return *this;
}

Result<std::unique_ptr<Bot>> BotBuilder::build() {
  if (!given_ || given_->built) {
    return failed_precondition("BotBuilder::build() was called before: a builder builds one bot");
  }
  given_->built = true;
  const BotConfig& config = given_->config;
  auto logger = given_->logger ? given_->logger : stderr_logger();
  auto parts = std::make_unique<Bot::Parts>();
  const std::string database =
      given_->parts.store ? "the program's own store" : describe_bot_database(config);
  LLMASSIST_ASSIGN_OR_RETURN(const detail::SharedParts shared,
                             detail::complete_parts(config, std::move(given_->parts), logger));
  parts->store = shared.store;

  AssistantParts ap;
  ap.store = shared.store;
  ap.llm = shared.llm;
  ap.memory = shared.memory;
  ap.moderation = shared.moderation;
  std::vector<std::string> ap_tools;
  for (const auto& t : given_->tools) {
    if (t) ap_tools.push_back(t->spec().name);
  }
  ap.tools = std::move(given_->tools);
  std::string transport;
  if (!given_->transports.empty()) {
    for (auto& t : given_->transports) {
      transport += (transport.empty() ? "" : " + ") + std::string(t->channel());
    }
    ap.transports = std::move(given_->transports);
  } else if (config.telegram.token.empty()) {
    ConsoleTransportOptions co;
    co.on_end = std::move(given_->on_console_end);
    co.logger = logger;
    ap.transport = make_console_transport(co);
    transport = "console";
  } else {
    LLMASSIST_ASSIGN_OR_RETURN(auto to, detail::telegram_options(config.telegram, logger));
    LLMASSIST_ASSIGN_OR_RETURN(auto t, make_telegram_transport(std::move(to)));
    ap.transport = std::move(t);
    transport = "telegram (" + config.telegram.mode + ")";
  }
  AssistantOptions ao = config.assistant;
  ao.logger = logger;
  ao.instance = bot_instance(config);
  // With the admin server in this process, the bot's Assistant serves its API channel too.
  std::shared_ptr<ApiTransport> api;
  if (config.admin) {
    LLMASSIST_ASSIGN_OR_RETURN(api, make_api_transport({.store = shared.store, .logger = logger}));
    ap.transports.push_back(api);
  }
  LLMASSIST_ASSIGN_OR_RETURN(parts->assistant, Assistant::create(std::move(ap), ao));

  if (config.admin) {
    Assistant* assistant = parts->assistant.get();
    LLMASSIST_ASSIGN_OR_RETURN(
        parts->admin, detail::assemble_admin(
                          config, shared, logger, [assistant] { return assistant->stats(); }, api));
  }
  std::string providers;
  if (shared.chain) {
    for (const auto& s : shared.chain->provider_stats()) {
      providers += (providers.empty() ? "" : " → ") + s.name;
    }
  } else {
    providers = std::string(shared.llm->name());
  }
  std::string tools;
  for (const auto& t : ap_tools) tools += (tools.empty() ? ", tools: " : ", ") + t;
  parts->description =
      fmt::format("{}, providers: {}, policy: {}, database: {}{}{}", transport, providers,
                  ao.policy == ModerationPolicy::kAuto ? "auto" : "review", database, tools,
                  config.admin ? ", admin page on " + config.admin->listen : "");
  return std::unique_ptr<Bot>(new Bot(std::move(parts)));
}

}  // namespace llmassist
