#include "bot/bot_parts.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/listen_address.h"
#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/bot/provider_config.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/memory/knowledge_base.h"
#include "llmassist/memory/semantic_memory.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/sqlite/sqlite_store.h"

namespace llmassist::detail {

namespace {

SqliteSync sync_of(const BotConfig& config) {
  return config.database_full_sync ? SqliteSync::kFull : SqliteSync::kNormal;
}

// How the stores of a PostgreSQL `database` connect: the URL, the password read from
// database_password_env, the schema.
PostgresConnectOptions postgres_of(const BotConfig& config, std::shared_ptr<Logger> logger) {
  PostgresConnectOptions options;
  options.url = config.database;
  options.password = config.database_password;
  options.schema = config.database_schema;
  options.logger = std::move(logger);
  return options;
}

}  // namespace

Result<TelegramTransportOptions> telegram_options(const TelegramSection& t,
                                                  std::shared_ptr<Logger> logger) {
  TelegramTransportOptions o;
  o.token = t.token;
  if (!t.api_url.empty()) o.api_url = t.api_url;
  o.mode = t.mode == "webhook" ? TelegramMode::kWebhook : TelegramMode::kPolling;
  if (t.polling_timeout_s) o.polling.timeout = std::chrono::seconds(*t.polling_timeout_s);
  if (!t.allowed_updates.empty()) o.polling.allowed_updates = t.allowed_updates;
  if (t.per_chat_interval_ms) {
    o.pacing.per_chat_interval = std::chrono::milliseconds(*t.per_chat_interval_ms);
  }
  if (t.global_per_second) o.pacing.global_per_second = *t.global_per_second;
  if (t.adaptive_pacing) o.pacing.adaptive = *t.adaptive_pacing;
  if (t.adaptive_cooldown_s) {
    o.pacing.adaptive_cooldown = std::chrono::seconds(*t.adaptive_cooldown_s);
  }
  if (t.max_attempts) o.retry.max_attempts = *t.max_attempts;
  if (t.max_connections) o.max_connections = *t.max_connections;
  o.proxy = t.proxy;
  o.ca_file = t.ca_file;
  LLMASSIST_ASSIGN_OR_RETURN(
      auto listen, detail::parse_listen_address(t.webhook_listen, "$.telegram.webhook.listen"));
  o.webhook.listen_host = std::move(listen.host);
  o.webhook.port = listen.port;
  o.webhook.path = t.webhook_path;
  o.webhook.public_url = t.webhook_public_url;
  o.webhook.secret_token = t.webhook_secret;
  o.webhook.allow_no_secret = t.webhook_allow_no_secret;
  if (t.webhook_max_connections) o.webhook.max_connections = *t.webhook_max_connections;
  if (t.webhook_max_connections_per_address) {
    o.webhook.max_connections_per_address = *t.webhook_max_connections_per_address;
  }
  if (t.webhook_connection_timeout_s) {
    o.webhook.connection_timeout = std::chrono::seconds(*t.webhook_connection_timeout_s);
  }
  if (t.webhook_max_body_bytes) o.webhook.max_body_bytes = *t.webhook_max_body_bytes;
  if (t.webhook_max_queued_updates) o.webhook.max_queued_updates = *t.webhook_max_queued_updates;
  o.logger = std::move(logger);
  return o;
}

Result<std::shared_ptr<MessageStore>> open_store(const BotConfig& config,
                                                 std::shared_ptr<Logger> logger) {
  if (is_postgres_url(config.database)) {
    LLMASSIST_ASSIGN_OR_RETURN(auto store,
                               open_postgres_store({.connect = postgres_of(config, logger)}));
    return std::shared_ptr<MessageStore>(std::move(store));
  }
  SqliteStoreOptions so;
  so.path = config.database;
  so.sync = sync_of(config);
  so.logger = std::move(logger);
  LLMASSIST_ASSIGN_OR_RETURN(auto store, open_sqlite_store(so));
  return std::shared_ptr<MessageStore>(std::move(store));
}

Result<std::shared_ptr<FallbackChain>> make_chain(const BotConfig& config,
                                                  std::shared_ptr<Logger> logger) {
  ProviderConfigContext pc;
  pc.base_dir = config.base_dir;
  pc.logger = std::move(logger);
  LLMASSIST_ASSIGN_OR_RETURN(auto chain, make_chain_from_config(config.providers_json, pc));
  return std::shared_ptr<FallbackChain>(std::move(chain));
}

namespace {

// The summariser's chain: memory.summary.providers, or else the bot's providers without the
// knowledge base (which would answer a summary request with an FAQ entry). Null when none is
// left: no summaries.
Result<std::shared_ptr<LlmProvider>> summariser(const BotConfig& config, const SharedParts& parts,
                                                std::shared_ptr<Logger> logger) {
  ProviderConfigContext pc;
  pc.base_dir = config.base_dir;
  pc.logger = logger;
  std::string chain_json = config.memory.summary_providers_json;
  if (chain_json.empty()) {
    if (!parts.chain || config.providers_json.empty()) return parts.llm;  // a caller's model
    auto doc = nlohmann::json::parse(config.providers_json, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("providers") ||
        !doc["providers"].is_array()) {
      return std::shared_ptr<LlmProvider>();
    }
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& p : doc["providers"]) {
      if (!p.is_object() || p.value("type", "") != "knowledge_base") kept.push_back(p);
    }
    if (kept.empty()) return std::shared_ptr<LlmProvider>();
    doc["providers"] = kept;
    chain_json = doc.dump();
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto chain, make_chain_from_config(chain_json, pc));
  return std::shared_ptr<LlmProvider>(std::move(chain));
}

// The knowledge base over the recall embedder (one model: the question is embedded once for
// both), its vectors cached in the store.
Result<std::shared_ptr<KnowledgeBase>> make_knowledge(const KnowledgeSection& k,
                                                      std::shared_ptr<EmbeddingProvider> embedder,
                                                      const SharedParts& parts,
                                                      std::shared_ptr<Logger> logger) {
  KnowledgeOptions o;
  o.sources = k.sources;
  o.use_sample = k.sample;
  o.max_passage_chars = k.max_passage_chars;
  o.reload_interval = k.reload_interval;
  o.embedder = std::move(embedder);
  o.cache = parts.store;
  o.logger = std::move(logger);
  LLMASSIST_ASSIGN_OR_RETURN(auto kb, make_knowledge_base(std::move(o)));
  return std::shared_ptr<KnowledgeBase>(std::move(kb));
}

}  // namespace

Result<std::shared_ptr<MemoryManager>> make_memory(const BotConfig& config,
                                                   const SharedParts& parts,
                                                   std::shared_ptr<Logger> logger) {
  const MemorySection& m = config.memory;
  WindowMemoryOptions wo;
  wo.system_prompt = m.system_prompt;
  wo.window = m.window;
  wo.max_chars = m.max_chars;
  if (m.type == "window") {
    LLMASSIST_ASSIGN_OR_RETURN(auto memory, make_window_memory(parts.store, wo));
    return std::shared_ptr<MemoryManager>(std::move(memory));
  }
  SemanticMemoryOptions so;
  so.system_prompt = m.system_prompt;
  so.window = m.window;
  so.budget_tokens = m.budget_tokens;
  so.summary.threshold = m.summary_threshold;
  so.summary.chunk = m.summary_chunk;
  so.summary.timeout = std::chrono::seconds(m.summary_timeout_s);
  so.summary.lease = std::chrono::seconds(m.summary_lease_s);
  if (m.summary) {
    LLMASSIST_ASSIGN_OR_RETURN(so.summary.llm, summariser(config, parts, logger));
  }
  so.recall.enabled = m.recall;
  so.recall.top_k = m.recall_top_k;
  so.recall.embed_wait = std::chrono::milliseconds(m.embed_wait_ms);
  if (!m.embeddings_json.empty()) {
    ProviderConfigContext pc;
    pc.base_dir = config.base_dir;
    pc.logger = logger;
    LLMASSIST_ASSIGN_OR_RETURN(
        so.recall.embedder,
        make_embedding_provider_from_config(m.embeddings_json, "$.memory.embeddings", pc));
  }
  if (!config.knowledge.sources.empty() || config.knowledge.sample) {
    LLMASSIST_ASSIGN_OR_RETURN(so.knowledge,
                               make_knowledge(config.knowledge, so.recall.embedder, parts, logger));
    so.knowledge_top_k = config.knowledge.top_k;
  }
  so.logger = logger;
  auto memory = make_semantic_memory(parts.store, so);
  if (!memory.ok() && memory.status().code() == StatusCode::kFailedPrecondition) {
    // A store of the caller's that keeps no memory records: the window memory still works.
    logger->log(LogLevel::kWarning, "memory",
                memory.status().message() + "; the window memory is used");
    LLMASSIST_ASSIGN_OR_RETURN(auto window, make_window_memory(parts.store, wo));
    return std::shared_ptr<MemoryManager>(std::move(window));
  }
  if (!memory.ok()) return memory.status();
  return std::shared_ptr<MemoryManager>(std::move(memory).value());
}

Result<SharedParts> complete_parts(const BotConfig& config, SharedParts given,
                                   std::shared_ptr<Logger> logger) {
  SharedParts s = std::move(given);
  if (!s.store) {
    LLMASSIST_ASSIGN_OR_RETURN(s.store, open_store(config, logger));
  }
  if (!s.llm) {
    LLMASSIST_ASSIGN_OR_RETURN(s.chain, make_chain(config, logger));
    s.llm = s.chain;
  } else if (!s.chain) {
    s.chain = std::dynamic_pointer_cast<FallbackChain>(s.llm);
  }
  if (!s.memory) {
    LLMASSIST_ASSIGN_OR_RETURN(s.memory, make_memory(config, s, logger));
  }
  if (!s.moderation) {
    ModerationQueueOptions mo;
    mo.logger = std::move(logger);
    s.moderation = make_moderation_queue(s.store, mo);
  }
  return s;
}

Result<std::unique_ptr<AccountStore>> open_accounts(const BotConfig& config,
                                                    std::shared_ptr<Logger> logger) {
  if (is_postgres_url(config.database)) {
    return open_postgres_account_store({.connect = postgres_of(config, logger)});
  }
  SqliteAccountStoreOptions options;
  options.logger = std::move(logger);
  options.path = config.database;
  options.sync = sync_of(config);
  return open_sqlite_account_store(options);
}

Result<std::unique_ptr<AdminServer>> assemble_admin(const BotConfig& config,
                                                    const SharedParts& shared,
                                                    std::shared_ptr<Logger> logger,
                                                    std::function<AssistantStats()> stats,
                                                    std::shared_ptr<ApiTransport> api) {
  AdminServerParts parts;
  parts.store = shared.store;
  parts.moderation = shared.moderation;
  LLMASSIST_ASSIGN_OR_RETURN(auto accounts, open_accounts(config, logger));
  parts.accounts = std::move(accounts);
  // The bot's Assistant serves the API channel (`api`); llmassist-admin runs one of its own.
  parts.api = std::move(api);
  if (!parts.api) {
    parts.memory = shared.memory;
    parts.llm = shared.llm;
  }
  parts.chain = shared.chain;
  parts.assistant_stats = std::move(stats);
  const AdminSection section = config.admin.value_or(AdminSection{});
  AdminServerOptions options;
  options.listen = section.listen;
  options.session_lifetime = std::chrono::hours(section.session_hours);
  options.secure_cookie = section.secure_cookie;
  options.trusted_proxies = section.trusted_proxies;
  options.threads = section.threads;
  options.allowed_hosts = section.allowed_hosts;
  if (section.max_connections > 0) options.max_connections = section.max_connections;
  if (section.max_connections_per_address > 0) {
    options.max_connections_per_address = section.max_connections_per_address;
  }
  if (section.connection_timeout_seconds > 0) {
    options.connection_timeout = std::chrono::seconds(section.connection_timeout_seconds);
  }
  options.policy = config.assistant.policy;
  options.system_prompt = config.memory.system_prompt;
  options.logger = std::move(logger);
  return AdminServer::create(std::move(parts), options);
}

}  // namespace llmassist::detail
