#include "llmassist/bot/bot.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/listen_address.h"
#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/bot/provider_config.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/telegram/telegram_transport.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {

struct Bot::Parts {
  std::shared_ptr<MessageStore> store;
  std::shared_ptr<FallbackChain> chain;
  std::unique_ptr<Assistant> assistant;
  std::unique_ptr<AdminServer> admin;  // with an `admin` section
  std::string description;
};

namespace {

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

SqliteSync sync_of(const BotConfig& config) {
  return config.database_full_sync ? SqliteSync::kFull : SqliteSync::kNormal;
}

Result<std::shared_ptr<MessageStore>> open_store(const BotConfig& config,
                                                 std::shared_ptr<Logger> logger) {
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

// What a bot and its admin server share over one database.
struct SharedParts {
  std::shared_ptr<MessageStore> store;
  std::shared_ptr<FallbackChain> chain;
  std::shared_ptr<MemoryManager> memory;
  std::shared_ptr<ModerationQueue> moderation;
};

Result<SharedParts> open_shared(const BotConfig& config, std::shared_ptr<Logger> logger) {
  SharedParts s;
  LLMASSIST_ASSIGN_OR_RETURN(s.store, open_store(config, logger));
  LLMASSIST_ASSIGN_OR_RETURN(s.chain, make_chain(config, logger));
  LLMASSIST_ASSIGN_OR_RETURN(auto memory, make_window_memory(s.store, config.memory));
  s.memory = std::move(memory);
  ModerationQueueOptions mo;
  mo.logger = std::move(logger);
  s.moderation = make_moderation_queue(s.store, mo);
  return s;
}

// The admin server over parts a bot has (or llmassist-admin made).
Result<std::unique_ptr<AdminServer>> assemble_admin(const BotConfig& config,
                                                    const SharedParts& shared,
                                                    std::shared_ptr<Logger> logger,
                                                    std::function<AssistantStats()> stats,
                                                    std::shared_ptr<ApiTransport> api = nullptr) {
  AdminServerParts parts;
  parts.store = shared.store;
  parts.moderation = shared.moderation;
  LLMASSIST_ASSIGN_OR_RETURN(auto accounts, open_account_store(config, logger));
  parts.accounts = std::move(accounts);
  // The bot's Assistant serves the API channel (`api`); llmassist-admin runs one of its own.
  parts.api = std::move(api);
  if (!parts.api) {
    parts.memory = shared.memory;
    parts.llm = shared.chain;
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

}  // namespace

Result<std::shared_ptr<MessageStore>> open_message_store(const BotConfig& config,
                                                         std::shared_ptr<Logger> logger) {
  return open_store(config, std::move(logger));
}

Result<std::unique_ptr<AccountStore>> open_account_store(const BotConfig& config,
                                                         std::shared_ptr<Logger> logger) {
  SqliteAccountStoreOptions options;
  options.logger = std::move(logger);
  options.path = config.database;
  options.sync = sync_of(config);
  return open_sqlite_account_store(options);
}

Result<std::unique_ptr<AdminServer>> make_admin_server(const BotConfig& config,
                                                       BotOptions options) {
  auto logger = options.logger ? options.logger : stderr_logger();
  LLMASSIST_ASSIGN_OR_RETURN(const SharedParts shared, open_shared(config, logger));
  return assemble_admin(config, shared, logger, {});
}

Result<std::unique_ptr<Bot>> Bot::create(const BotConfig& config, BotOptions options) {
  auto logger = options.logger ? options.logger : stderr_logger();
  auto parts = std::make_unique<Parts>();
  LLMASSIST_ASSIGN_OR_RETURN(const SharedParts shared, open_shared(config, logger));
  parts->store = shared.store;
  parts->chain = shared.chain;

  AssistantParts ap;
  ap.store = shared.store;
  ap.llm = shared.chain;
  ap.memory = shared.memory;
  ap.moderation = shared.moderation;
  std::string transport;
  if (config.telegram.token.empty()) {
    ConsoleTransportOptions co;
    co.on_end = options.on_console_end;
    co.logger = logger;
    ap.transport = make_console_transport(co);
    transport = "console";
  } else {
    LLMASSIST_ASSIGN_OR_RETURN(auto to, telegram_options(config.telegram, logger));
    LLMASSIST_ASSIGN_OR_RETURN(auto t, make_telegram_transport(std::move(to)));
    ap.transport = std::move(t);
    transport = "telegram (" + config.telegram.mode + ")";
  }
  AssistantOptions ao = config.assistant;
  ao.logger = logger;
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
        parts->admin, assemble_admin(
                          config, shared, logger, [assistant] { return assistant->stats(); }, api));
  }
  std::string providers;
  for (const auto& s : parts->chain->provider_stats()) {
    providers += (providers.empty() ? "" : " → ") + s.name;
  }
  parts->description =
      fmt::format("{}, providers: {}, policy: {}, database: {}{}", transport, providers,
                  ao.policy == ModerationPolicy::kAuto ? "auto" : "review", config.database,
                  config.admin ? ", admin page on " + config.admin->listen : "");
  return std::unique_ptr<Bot>(new Bot(std::move(parts)));
}

Bot::Bot(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Bot::~Bot() { stop(std::chrono::milliseconds(0)); }

Status Bot::start() {
  LLMASSIST_RETURN_IF_ERROR(parts_->assistant->start());
  if (!parts_->admin) return Status();
  Status s = parts_->admin->start();
  if (!s.ok()) parts_->assistant->stop(std::chrono::milliseconds(0));
  return s;
}

void Bot::stop(std::chrono::milliseconds grace) {
  if (parts_->admin) parts_->admin->stop();
  parts_->assistant->stop(grace);
}

std::string Bot::admin_url() const { return parts_->admin ? parts_->admin->url() : ""; }
const std::string& Bot::description() const { return parts_->description; }
AssistantStats Bot::stats() const { return parts_->assistant->stats(); }

bool Bot::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool idle = true;
    for (auto status : {ReplyStatus::kNew, ReplyStatus::kGenerating, ReplyStatus::kRejected,
                        ReplyStatus::kApproved}) {
      auto waiting = parts_->store->list_replies({.status = status, .limit = 1});
      if (!waiting.ok() || !waiting->empty()) idle = false;
    }
    const auto s = parts_->assistant->stats();
    if (idle && s.drafts_in_flight == 0 && s.sends_in_flight == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<DoctorCheck> run_doctor(const BotConfig& config,
                                    std::chrono::milliseconds provider_timeout) {
  std::vector<DoctorCheck> out;
  auto quiet = null_logger();
  {
    auto store = open_store(config, quiet);
    out.push_back(
        {"database", store.ok(),
         store.ok() ? config.database + ": opened, schema up to date" : store.status().message()});
    if (detail::world_readable(config.database)) {
      out.push_back({"database file", false,
                     config.database + " may be read by every user of this machine: chmod 600 "
                                       "it"});
    }
  }
  if (config.admin) {
    auto accounts = open_account_store(config, quiet);
    auto list = accounts.ok() ? (*accounts)->list_accounts()
                              : Result<std::vector<Account>>(accounts.status());
    const bool has_admin =
        list.ok() && std::any_of(list->begin(), list->end(), [](const Account& a) {
          return a.role == AccountRole::kAdmin && !a.disabled;
        });
    out.push_back({"admin page", has_admin,
                   !list.ok()  ? list.status().message()
                   : has_admin ? fmt::format("{} account(s); the page will be on {}", list->size(),
                                             config.admin->listen)
                               : "no admin account can sign in: create one with "
                                 "`llmassist-admin --db DB user add NAME --role admin`"});
  }
  ProviderConfigContext pc;
  pc.base_dir = config.base_dir;
  pc.logger = quiet;
  // Each provider alone, without retries: in a chain, a dead one would hide behind the next.
  const auto doc = nlohmann::json::parse(config.providers_json, nullptr, false);
  std::vector<nlohmann::json> singles;
  if (doc.is_object() && doc.contains("providers") && doc["providers"].is_array()) {
    for (auto item : doc["providers"]) {
      if (item.is_object() && !item.contains("retries")) item["retries"] = 0;
      singles.push_back({{"providers", nlohmann::json::array({item})}});
    }
  }
  if (singles.empty()) singles.push_back(nlohmann::json::object());  // the shipped base
  for (const auto& single : singles) {
    auto chain = make_chain_from_config(single.dump(), pc);
    if (!chain.ok()) {
      out.push_back({"providers", false, chain.status().message()});
      continue;
    }
    const std::string name = (*chain)->provider_stats().front().name;
    CompletionRequest ping;
    ping.messages = {{Role::kUser, "Reply with the single word OK."}};
    ping.max_tokens = 5;
    ping.timeout = provider_timeout;
    auto answer = complete_sync(**chain, ping);
    if (answer.ok()) {
      out.push_back({"provider " + name, true,
                     fmt::format("answered in {} ms{}", answer->latency.count(),
                                 answer->model.empty() ? "" : " (" + answer->model + ")")});
    } else if (answer.status().reason() == "no_answer") {
      out.push_back({"provider " + name, true, "loaded (it had no answer to the test question)"});
    } else {
      const auto stats = (*chain)->provider_stats();
      out.push_back({"provider " + name, false,
                     stats.front().last_error.empty() ? answer.status().message()
                                                      : stats.front().last_error});
    }
  }
  if (config.telegram.token.empty()) {
    out.push_back({"telegram token", true,
                   "none set (BOT_TOKEN or telegram.token): the bot runs on the console"});
  } else {
    auto options = telegram_options(config.telegram, quiet);
    if (!options.ok()) {
      out.push_back({"telegram token", false, options.status().message()});
    } else {
      auto me = telegram_get_me(*options);
      out.push_back({"telegram token", me.ok(),
                     me.ok() ? fmt::format("the token belongs to @{}", me->username)
                             : me.status().message()});
    }
  }
  return out;
}

}  // namespace llmassist
