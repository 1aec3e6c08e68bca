#include "llmassist/bot/bot_config.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bot/json_reader.h"
#include "core/listen_address.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/telegram/telegram_transport.h"

namespace llmassist {
namespace {

using detail::JsonObject;
using nlohmann::json;

std::optional<std::string> env(const BotConfigContext& ctx, const std::string& name) {
  if (ctx.getenv) return ctx.getenv(name);
  const char* v = std::getenv(name.c_str());
  return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  return p.string();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot read {}", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A PostgreSQL URL as `database` takes it: one libpq can read, without a password (that comes
// from the environment, never from a file that backups and support tickets carry along).
Status check_postgres_url(const std::string& url, std::string_view at) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);  // libpq's message may quote the URL, a password in it too
    return invalid_argument(
        fmt::format("{}: libpq cannot read this PostgreSQL URL (the form is "
                    "postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full)",
                    at));
  }
  // The server's password, or the passphrase of the client's TLS key.
  bool password = false;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    const std::string_view key = o->keyword;
    password = password || ((key == "password" || key == "sslpassword") && o->val != nullptr &&
                            *o->val != '\0');
  }
  PQconninfoFree(options);
  if (password) {
    return invalid_argument(fmt::format(
        "{}: the URL holds a password; put the password in an environment variable and name "
        "the variable in database_password_env (--db-password-env on a command line)",
        at));
  }
  return ok_status();
}

// The database `database` names, as the `database` key and --db take it: a PostgreSQL URL with
// its password from the variable `password_env`, or a SQLite file ("sqlite:" stripped, resolved
// against `base_dir`). `at` and `env_at` name the two settings in errors.
Status set_database(BotConfig& c, std::string database, const std::string& base_dir,
                    std::string_view password_env, std::string_view at, std::string_view env_at,
                    const BotConfigContext& context) {
  c.database_password_env = password_env;
  c.database_password.clear();
  if (is_postgres_url(database)) {
    LLMASSIST_RETURN_IF_ERROR(check_postgres_url(database, at));
    c.database = std::move(database);
    if (password_env.empty()) return ok_status();
    auto password = env(context, std::string(password_env));
    if (!password || password->empty()) {
      return invalid_argument(fmt::format("{}: the environment variable {} is {}", env_at,
                                          password_env, password ? "empty" : "not set"));
    }
    c.database_password = std::move(*password);
    return ok_status();
  }
  if (database.starts_with("postgres:") || database.starts_with("postgresql:")) {
    return invalid_argument(
        fmt::format("{}: a PostgreSQL URL begins with postgresql:// (or postgres://)", at));
  }
  if (!password_env.empty()) {
    return invalid_argument(fmt::format(
        "{}: a password is for a PostgreSQL database (postgresql://...), and {} is a SQLite file",
        env_at, at));
  }
  if (database.starts_with("sqlite:")) database = database.substr(7);
  if (database.empty()) return invalid_argument(fmt::format("{}: empty", at));
  c.database = resolve(base_dir, database);
  return ok_status();
}

// PostgreSQL's unquoted identifiers, as the stores take schema names.
bool schema_name(std::string_view name) {
  auto letter = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
  };
  if (name.empty() || !letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char ch) { return letter(ch) || (ch >= '0' && ch <= '9'); });
}

Status read_database(JsonObject& root, BotConfig& c, const std::string& base_dir,
                     const BotConfigContext& context) {
  LLMASSIST_ASSIGN_OR_RETURN(auto database, root.string("database"));
  LLMASSIST_ASSIGN_OR_RETURN(auto password_env, root.string("database_password_env"));
  if (password_env && password_env->empty()) {
    return invalid_argument("$.database_password_env: empty (leave it out for no password)");
  }
  LLMASSIST_RETURN_IF_ERROR(set_database(c, database.value_or(c.database), base_dir,
                                         password_env.value_or(""), "$.database",
                                         "$.database_password_env", context));
  const bool postgres = is_postgres_url(c.database);
  LLMASSIST_ASSIGN_OR_RETURN(auto schema, root.string("database_schema"));
  if (schema) {
    if (!postgres) {
      return invalid_argument("$.database_schema: a schema is for a PostgreSQL database");
    }
    if (!schema_name(*schema)) {
      return invalid_argument(
          fmt::format("$.database_schema: \"{}\" is not a schema name (letters, digits and _, "
                      "not beginning with a digit)",
                      *schema));
    }
    c.database_schema = *schema;
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto sync, root.string("database_sync"));
  if (sync) {
    if (postgres) {
      return invalid_argument(
          "$.database_sync: SQLite's setting; a PostgreSQL server's commits are as durable as "
          "its own settings make them (synchronous_commit)");
    }
    if (*sync != "full" && *sync != "normal") {
      return invalid_argument(
          fmt::format("$.database_sync: \"{}\" is neither full nor normal", *sync));
    }
    c.database_full_sync = *sync == "full";
  }
  return ok_status();
}

// Sets `field` from an optional string member.
Status text(JsonObject& o, std::string_view key, std::string& field) {
  LLMASSIST_ASSIGN_OR_RETURN(auto v, o.string(key));
  if (v) field = *v;
  return Status();
}

Status read_admin(const json& j, BotConfig& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto a, JsonObject::of(j, "$.admin"));
  AdminSection admin;
  LLMASSIST_RETURN_IF_ERROR(text(a, "listen", admin.listen));
  LLMASSIST_RETURN_IF_ERROR(detail::parse_listen_address(admin.listen, "$.admin.listen").status());
  LLMASSIST_ASSIGN_OR_RETURN(auto hours, a.integer("session_hours", 1, 720));
  if (hours) admin.session_hours = static_cast<int>(*hours);
  LLMASSIST_ASSIGN_OR_RETURN(auto secure, a.boolean("secure_cookie"));
  if (secure) admin.secure_cookie = *secure;
  LLMASSIST_ASSIGN_OR_RETURN(auto threads, a.integer("threads", 2, 256));
  if (threads) admin.threads = static_cast<int>(*threads);
  LLMASSIST_ASSIGN_OR_RETURN(auto hosts, a.strings("allowed_hosts"));
  if (hosts) admin.allowed_hosts = *hosts;
  LLMASSIST_ASSIGN_OR_RETURN(auto connections, a.integer("max_connections", 1, 100000));
  if (connections) admin.max_connections = static_cast<unsigned>(*connections);
  LLMASSIST_ASSIGN_OR_RETURN(auto per_address, a.integer("max_connections_per_address", 1, 100000));
  if (per_address) admin.max_connections_per_address = static_cast<unsigned>(*per_address);
  LLMASSIST_ASSIGN_OR_RETURN(auto timeout, a.integer("connection_timeout_seconds", 1, 3600));
  if (timeout) admin.connection_timeout_seconds = static_cast<int>(*timeout);
  LLMASSIST_ASSIGN_OR_RETURN(auto proxies, a.strings("trusted_proxies"));
  if (proxies) admin.trusted_proxies = *proxies;
  LLMASSIST_RETURN_IF_ERROR(a.check_unknown());
  c.admin = admin;
  return Status();
}

Status read_telegram(const json& j, BotConfig& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto t, JsonObject::of(j, "$.telegram"));
  LLMASSIST_RETURN_IF_ERROR(text(t, "token", c.telegram.token));
  LLMASSIST_RETURN_IF_ERROR(text(t, "api_url", c.telegram.api_url));
  LLMASSIST_RETURN_IF_ERROR(text(t, "proxy", c.telegram.proxy));
  LLMASSIST_RETURN_IF_ERROR(text(t, "ca_file", c.telegram.ca_file));
  LLMASSIST_RETURN_IF_ERROR(text(t, "mode", c.telegram.mode));
  if (c.telegram.mode != "polling" && c.telegram.mode != "webhook") {
    return invalid_argument(
        fmt::format("$.telegram.mode: \"{}\" is neither polling nor webhook", c.telegram.mode));
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto connections, t.integer("max_connections", 2, 1000));
  if (connections) c.telegram.max_connections = static_cast<int>(*connections);
  LLMASSIST_ASSIGN_OR_RETURN(const json* polling, t.object("polling"));
  if (polling != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto p, JsonObject::of(*polling, "$.telegram.polling"));
    LLMASSIST_ASSIGN_OR_RETURN(auto timeout, p.integer("timeout_s", 0, 50));
    if (timeout) c.telegram.polling_timeout_s = static_cast<int>(*timeout);
    LLMASSIST_ASSIGN_OR_RETURN(auto kinds, p.strings("allowed_updates"));
    if (kinds) c.telegram.allowed_updates = *kinds;
    LLMASSIST_RETURN_IF_ERROR(p.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* pacing, t.object("pacing"));
  if (pacing != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto p, JsonObject::of(*pacing, "$.telegram.pacing"));
    LLMASSIST_ASSIGN_OR_RETURN(auto interval, p.integer("per_chat_interval_ms", 0, 60000));
    if (interval) c.telegram.per_chat_interval_ms = static_cast<int>(*interval);
    LLMASSIST_ASSIGN_OR_RETURN(auto rate, p.integer("global_per_second", 0, 10000));
    if (rate) c.telegram.global_per_second = static_cast<int>(*rate);
    LLMASSIST_ASSIGN_OR_RETURN(c.telegram.adaptive_pacing, p.boolean("adaptive"));
    LLMASSIST_ASSIGN_OR_RETURN(auto cooldown, p.integer("adaptive_cooldown_s", 0, 86400));
    if (cooldown) c.telegram.adaptive_cooldown_s = static_cast<int>(*cooldown);
    LLMASSIST_RETURN_IF_ERROR(p.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* retry, t.object("retry"));
  if (retry != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto r, JsonObject::of(*retry, "$.telegram.retry"));
    LLMASSIST_ASSIGN_OR_RETURN(auto attempts, r.integer("max_attempts", 1, 100));
    if (attempts) c.telegram.max_attempts = static_cast<int>(*attempts);
    LLMASSIST_RETURN_IF_ERROR(r.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* webhook, t.object("webhook"));
  if (webhook != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto w, JsonObject::of(*webhook, "$.telegram.webhook"));
    LLMASSIST_RETURN_IF_ERROR(text(w, "listen", c.telegram.webhook_listen));
    LLMASSIST_RETURN_IF_ERROR(text(w, "path", c.telegram.webhook_path));
    LLMASSIST_RETURN_IF_ERROR(text(w, "public_url", c.telegram.webhook_public_url));
    LLMASSIST_RETURN_IF_ERROR(text(w, "secret", c.telegram.webhook_secret));
    LLMASSIST_ASSIGN_OR_RETURN(auto no_secret, w.boolean("allow_no_secret"));
    if (no_secret) c.telegram.webhook_allow_no_secret = *no_secret;
    LLMASSIST_ASSIGN_OR_RETURN(auto hook_connections, w.integer("max_connections", 1, 100000));
    if (hook_connections) {
      c.telegram.webhook_max_connections = static_cast<unsigned>(*hook_connections);
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto hook_per_address,
                               w.integer("max_connections_per_address", 1, 100000));
    if (hook_per_address) {
      c.telegram.webhook_max_connections_per_address = static_cast<unsigned>(*hook_per_address);
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto hook_timeout, w.integer("connection_timeout_seconds", 1, 3600));
    if (hook_timeout) c.telegram.webhook_connection_timeout_s = static_cast<int>(*hook_timeout);
    LLMASSIST_ASSIGN_OR_RETURN(auto hook_body, w.integer("max_body_bytes", 1024, 64 << 20));
    if (hook_body) c.telegram.webhook_max_body_bytes = static_cast<std::size_t>(*hook_body);
    LLMASSIST_ASSIGN_OR_RETURN(auto hook_queued, w.integer("max_queued_updates", 1, 10000000));
    if (hook_queued) {
      c.telegram.webhook_max_queued_updates = static_cast<std::size_t>(*hook_queued);
    }
    LLMASSIST_RETURN_IF_ERROR(w.check_unknown());
    LLMASSIST_RETURN_IF_ERROR(
        detail::parse_listen_address(c.telegram.webhook_listen, "$.telegram.webhook.listen")
            .status());
  }
  return t.check_unknown();
}

Status read_assistant(const json& j, BotConfig& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto a, JsonObject::of(j, "$.assistant"));
  AssistantOptions& o = c.assistant;
  LLMASSIST_RETURN_IF_ERROR(text(a, "system_prompt", c.memory.system_prompt));
  LLMASSIST_ASSIGN_OR_RETURN(auto prompt_file, a.string("system_prompt_file"));
  if (prompt_file) {
    if (!c.memory.system_prompt.empty()) {
      return invalid_argument("$.assistant: give system_prompt or system_prompt_file, not both");
    }
    auto prompt = read_file(resolve(c.base_dir, *prompt_file));
    if (!prompt.ok()) return prompt.status().annotate("$.assistant.system_prompt_file");
    c.memory.system_prompt = *prompt;
  }
  LLMASSIST_RETURN_IF_ERROR(text(a, "welcome", o.texts.welcome));
  LLMASSIST_ASSIGN_OR_RETURN(auto moderation, a.string("moderation"));
  if (moderation) {
    if (*moderation == "auto") {
      o.policy = ModerationPolicy::kAuto;
    } else if (*moderation == "review") {
      o.policy = ModerationPolicy::kReview;
    } else {
      return invalid_argument(
          fmt::format("$.assistant.moderation: \"{}\" is neither auto nor review", *moderation));
    }
  }
  if (a.has("operator_chat_id")) {
    const json& id = j.at("operator_chat_id");
    a.ignore("operator_chat_id");
    if (id.is_number_integer()) {
      o.operator_chat_id = std::to_string(id.get<std::int64_t>());
    } else if (id.is_string()) {
      o.operator_chat_id = id.get<std::string>();
    } else {
      return invalid_argument(fmt::format(
          "$.assistant.operator_chat_id: expected a chat id (a number or a string), got {}",
          detail::json_kind(id)));
    }
  }
  if (a.has("operators")) {
    const json& ids = j.at("operators");
    a.ignore("operators");
    const auto refused = [] {
      return invalid_argument(
          "$.assistant.operators: expected a list of Telegram user ids (numbers or strings)");
    };
    if (!ids.is_array()) return refused();
    for (const json& id : ids) {
      if (id.is_number_integer()) {
        o.operators.push_back(std::to_string(id.get<std::int64_t>()));
      } else if (id.is_string() && !id.get<std::string>().empty()) {
        o.operators.push_back(id.get<std::string>());
      } else {
        return refused();
      }
    }
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* rate, a.object("rate_limit"));
  if (rate != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto r, JsonObject::of(*rate, "$.assistant.rate_limit"));
    LLMASSIST_ASSIGN_OR_RETURN(auto messages, r.integer("messages", 0, 1000000));
    if (messages) o.rate_limit.messages = static_cast<int>(*messages);
    LLMASSIST_ASSIGN_OR_RETURN(auto per, r.integer("per_seconds", 1, 86400));
    if (per) o.rate_limit.per = std::chrono::seconds(*per);
    LLMASSIST_RETURN_IF_ERROR(r.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto queued, a.string("queued_messages"));
  if (queued) {
    if (*queued == "each") {
      o.queued = QueuedMessages::kAnswerEach;
    } else if (*queued == "together") {
      o.queued = QueuedMessages::kAnswerTogether;
    } else {
      return invalid_argument(
          fmt::format("$.assistant.queued_messages: \"{}\" is neither each nor together", *queued));
    }
  }
  LLMASSIST_RETURN_IF_ERROR(text(a, "instance", o.instance));
  c.instance_given = a.has("instance");
  LLMASSIST_ASSIGN_OR_RETURN(auto drafts, a.integer("max_concurrent_drafts", 1, 100000));
  if (drafts) o.max_concurrent_drafts = static_cast<int>(*drafts);
  LLMASSIST_ASSIGN_OR_RETURN(const json* texts, a.object("texts"));
  if (texts != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto t, JsonObject::of(*texts, "$.assistant.texts"));
    LLMASSIST_RETURN_IF_ERROR(text(t, "review_notice", o.texts.review_notice));
    LLMASSIST_RETURN_IF_ERROR(text(t, "failure", o.texts.failure));
    LLMASSIST_RETURN_IF_ERROR(text(t, "handoff", o.texts.handoff));
    LLMASSIST_RETURN_IF_ERROR(text(t, "handback", o.texts.handback));
    LLMASSIST_RETURN_IF_ERROR(text(t, "already_human", o.texts.already_human));
    LLMASSIST_RETURN_IF_ERROR(text(t, "human_button", o.texts.human_button));
    LLMASSIST_RETURN_IF_ERROR(text(t, "slow_down", o.texts.slow_down));
    LLMASSIST_RETURN_IF_ERROR(text(t, "not_operator", o.texts.not_operator));
    LLMASSIST_RETURN_IF_ERROR(t.check_unknown());
  }
  return a.check_unknown();
}

Status read_memory(const json& j, BotConfig& c) {
  MemorySection& o = c.memory;
  LLMASSIST_ASSIGN_OR_RETURN(auto m, JsonObject::of(j, "$.memory"));
  LLMASSIST_ASSIGN_OR_RETURN(auto type, m.string("type"));
  if (type) {
    if (*type != "semantic" && *type != "window") {
      return invalid_argument(
          fmt::format("$.memory.type: \"{}\" is neither semantic nor window", *type));
    }
    o.type = *type;
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto window, m.integer("window", 1, 200));
  if (window) o.window = static_cast<int>(*window);
  LLMASSIST_ASSIGN_OR_RETURN(auto chars, m.integer("max_chars", 100, 10'000'000));
  if (chars) o.max_chars = static_cast<std::size_t>(*chars);
  LLMASSIST_ASSIGN_OR_RETURN(auto budget, m.integer("budget_tokens", 200, 1'000'000));
  if (budget) o.budget_tokens = static_cast<int>(*budget);
  LLMASSIST_ASSIGN_OR_RETURN(const json* summary, m.object("summary"));
  if (summary != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto s, JsonObject::of(*summary, "$.memory.summary"));
    LLMASSIST_ASSIGN_OR_RETURN(auto enabled, s.boolean("enabled"));
    if (enabled) o.summary = *enabled;
    LLMASSIST_ASSIGN_OR_RETURN(auto threshold, s.integer("threshold", 2, 10000));
    if (threshold) o.summary_threshold = static_cast<int>(*threshold);
    LLMASSIST_ASSIGN_OR_RETURN(auto chunk, s.integer("chunk", 1, 1000));
    if (chunk) o.summary_chunk = static_cast<int>(*chunk);
    LLMASSIST_ASSIGN_OR_RETURN(auto timeout, s.integer("timeout_s", 1, 3600));
    if (timeout) o.summary_timeout_s = static_cast<int>(*timeout);
    LLMASSIST_ASSIGN_OR_RETURN(auto lease, s.integer("lease_s", 2, 86'400));
    if (lease) o.summary_lease_s = static_cast<int>(*lease);
    if (o.summary_lease_s <= o.summary_timeout_s) {
      return invalid_argument(fmt::format(
          "$.memory.summary.lease_s: {} s is not more than timeout_s ({} s): another process "
          "could take a job whose run is still going",
          o.summary_lease_s, o.summary_timeout_s));
    }
    LLMASSIST_ASSIGN_OR_RETURN(const json* providers, s.array("providers"));
    LLMASSIST_ASSIGN_OR_RETURN(const json* fallback, s.object("fallback"));
    if (providers != nullptr) {
      json chain = json::object();
      chain["providers"] = *providers;
      if (fallback != nullptr) chain["fallback"] = *fallback;
      o.summary_providers_json = chain.dump();
    }
    LLMASSIST_RETURN_IF_ERROR(s.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* recall, m.object("recall"));
  if (recall != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto r, JsonObject::of(*recall, "$.memory.recall"));
    LLMASSIST_ASSIGN_OR_RETURN(auto enabled, r.boolean("enabled"));
    if (enabled) o.recall = *enabled;
    LLMASSIST_ASSIGN_OR_RETURN(auto top_k, r.integer("top_k", 0, 50));
    if (top_k) o.recall_top_k = static_cast<int>(*top_k);
    LLMASSIST_ASSIGN_OR_RETURN(auto wait, r.integer("embed_wait_ms", 0, 60'000));
    if (wait) o.embed_wait_ms = static_cast<int>(*wait);
    LLMASSIST_RETURN_IF_ERROR(r.check_unknown());
  }
  LLMASSIST_ASSIGN_OR_RETURN(const json* embeddings, m.object("embeddings"));
  if (embeddings != nullptr) o.embeddings_json = embeddings->dump();
  return m.check_unknown();
}

// One of knowledge.sources: a path, or {"path", "format"}.
Result<KnowledgeSource> read_source(const json& item, const std::string& path,
                                    const std::string& base_dir) {
  KnowledgeSource source;
  if (item.is_string()) {
    source.path = item.get<std::string>();
  } else {
    LLMASSIST_ASSIGN_OR_RETURN(auto o, JsonObject::of(item, path));
    LLMASSIST_ASSIGN_OR_RETURN(auto file, o.string("path", true));
    source.path = *file;
    LLMASSIST_ASSIGN_OR_RETURN(auto format, o.string("format"));
    if (format) {
      if (*format != "markdown" && *format != "text" && *format != "faq" && !format->empty()) {
        return invalid_argument(fmt::format("{}: \"{}\" is none of markdown, text and faq",
                                            o.path_of("format"), *format));
      }
      source.format = *format;
    }
    LLMASSIST_RETURN_IF_ERROR(o.check_unknown());
  }
  if (source.path.empty()) return invalid_argument(path + ": an empty path");
  source.path = resolve(base_dir, source.path);
  return source;
}

Status read_knowledge(const json& j, BotConfig& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto k, JsonObject::of(j, "$.knowledge"));
  KnowledgeSection& s = c.knowledge;
  LLMASSIST_ASSIGN_OR_RETURN(const json* sources, k.array("sources"));
  if (sources != nullptr) {
    for (std::size_t i = 0; i < sources->size(); ++i) {
      const std::string at = fmt::format("{}[{}]", k.path_of("sources"), i);
      const json& item = (*sources)[i];
      if (!item.is_string() && !item.is_object()) {
        return invalid_argument(
            fmt::format("{}: expected a path or {{\"path\", \"format\"}}, got {}", at,
                        detail::json_kind(item)));
      }
      LLMASSIST_ASSIGN_OR_RETURN(auto source, read_source(item, at, c.base_dir));
      s.sources.push_back(std::move(source));
    }
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto top_k, k.integer("top_k", 1, 50));
  if (top_k) s.top_k = static_cast<int>(*top_k);
  LLMASSIST_ASSIGN_OR_RETURN(auto chars, k.integer("max_passage_chars", 100, 100'000));
  if (chars) s.max_passage_chars = static_cast<std::size_t>(*chars);
  LLMASSIST_ASSIGN_OR_RETURN(auto reload, k.integer("reload_interval_s", 0, 86'400));
  if (reload) s.reload_interval = std::chrono::seconds(*reload);
  LLMASSIST_ASSIGN_OR_RETURN(auto sample, k.boolean("sample"));
  if (!s.sources.empty()) s.sample = false;
  if (sample) {
    if (*sample && !s.sources.empty()) {
      return invalid_argument(
          "$.knowledge.sample: the sample is used only when no sources are given");
    }
    s.sample = *sample;
  }
  return k.check_unknown();
}

// The sales agent's built-in tools (AgentOptions): {"stop_contact": true, "handoff_to_human":
// true, "documents": {"<name>": {"path", "file_name", "mime_type", "caption"}}}.
Status read_agent(const json& j, BotConfig& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto a, JsonObject::of(j, "$.agent"));
  AgentOptions& o = c.assistant.agent;
  LLMASSIST_ASSIGN_OR_RETURN(auto stop, a.boolean("stop_contact"));
  if (stop) o.stop_contact = *stop;
  LLMASSIST_ASSIGN_OR_RETURN(auto handoff, a.boolean("handoff_to_human"));
  if (handoff) o.handoff_to_human = *handoff;
  LLMASSIST_ASSIGN_OR_RETURN(const json* documents, a.object("documents"));
  if (documents != nullptr) {
    for (const auto& [name, value] : documents->items()) {
      const std::string where = "$.agent.documents." + name.substr(0, 64);
      LLMASSIST_ASSIGN_OR_RETURN(auto d, JsonObject::of(value, where));
      Attachment doc;
      LLMASSIST_ASSIGN_OR_RETURN(auto path, d.string("path", true));
      doc.path = resolve(c.base_dir, *path);
      std::error_code error;
      if (!std::filesystem::is_regular_file(doc.path, error)) {
        return invalid_argument(fmt::format("{}.path: {} is not a file", where, doc.path));
      }
      LLMASSIST_ASSIGN_OR_RETURN(auto file_name, d.string("file_name"));
      if (file_name) doc.file_name = *file_name;
      LLMASSIST_ASSIGN_OR_RETURN(auto mime_type, d.string("mime_type"));
      if (mime_type) doc.mime_type = *mime_type;
      LLMASSIST_ASSIGN_OR_RETURN(auto caption, d.string("caption"));
      if (caption) doc.caption = *caption;
      LLMASSIST_RETURN_IF_ERROR(d.check_unknown());
      o.documents[name] = std::move(doc);
    }
  }
  return a.check_unknown();
}

}  // namespace

std::string bot_instance(const BotConfig& config) {
  if (config.instance_given || !is_postgres_url(config.database)) return config.assistant.instance;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "bot@localhost";
  return std::string("bot@") + host;
}

Result<BotConfig> parse_bot_config(std::string_view json_text, const std::string& base_dir,
                                   const BotConfigContext& context) {
  BotConfig c;
  c.base_dir = base_dir;
  LLMASSIST_ASSIGN_OR_RETURN(
      json doc, detail::parse_config_json(json_text.empty() ? std::string_view("{}") : json_text));
  LLMASSIST_ASSIGN_OR_RETURN(auto root, JsonObject::of(doc, "$"));
  LLMASSIST_RETURN_IF_ERROR(read_database(root, c, base_dir, context));
  LLMASSIST_ASSIGN_OR_RETURN(auto retention, root.integer("retention_days", 0, 100000));
  if (retention) c.assistant.retention_days = static_cast<int>(*retention);
  // The sample documents stand in for the operator's only while nothing is configured: a bot
  // with models of its own does not get llmassist's FAQ in its prompts unless asked for.
  c.knowledge.sample = !doc.contains("providers");
  for (const char* section : {"telegram", "assistant", "agent", "memory", "knowledge", "admin"}) {
    LLMASSIST_ASSIGN_OR_RETURN(const json* j, root.object(section));
    if (j == nullptr) continue;
    const std::string name = section;
    if (name == "telegram") LLMASSIST_RETURN_IF_ERROR(read_telegram(*j, c));
    if (name == "assistant") LLMASSIST_RETURN_IF_ERROR(read_assistant(*j, c));
    if (name == "agent") LLMASSIST_RETURN_IF_ERROR(read_agent(*j, c));
    if (name == "memory") LLMASSIST_RETURN_IF_ERROR(read_memory(*j, c));
    if (name == "knowledge") LLMASSIST_RETURN_IF_ERROR(read_knowledge(*j, c));
    if (name == "admin") LLMASSIST_RETURN_IF_ERROR(read_admin(*j, c));
  }
  root.ignore("providers");  // read, with their own checks, by make_chain_from_config
  root.ignore("fallback");
  LLMASSIST_RETURN_IF_ERROR(root.check_unknown());
  c.providers_json = doc.dump();
  if (auto token = env(context, "BOT_TOKEN"); token && !token->empty()) c.telegram.token = *token;
  if (auto secret = env(context, "TELEGRAM_WEBHOOK_SECRET"); secret && !secret->empty()) {
    c.telegram.webhook_secret = *secret;
  }
  if (c.telegram.mode == "webhook" && !c.telegram.webhook_allow_no_secret &&
      c.telegram.webhook_secret.size() < kMinWebhookSecret) {
    return invalid_argument(fmt::format(
        "$.telegram.webhook.secret: webhook mode needs a secret of at least {} characters (or "
        "TELEGRAM_WEBHOOK_SECRET), so that nobody else can post updates to the bot; "
        "allow_no_secret: true turns the check off for a local test setup",
        kMinWebhookSecret));
  }
  return c;
}

Result<BotConfig> load_bot_config(const std::string& path, const BotConfigContext& context) {
  if (path.empty()) return parse_bot_config("{}", "", context);
  LLMASSIST_ASSIGN_OR_RETURN(auto text, read_file(path));
  auto base = std::filesystem::absolute(path).parent_path().string();
  auto parsed = parse_bot_config(text, base, context);
  if (!parsed.ok()) return parsed.status().annotate(path);
  return parsed;
}

Status set_bot_database(BotConfig& config, std::string_view database, std::string_view password_env,
                        const BotConfigContext& context) {
  return set_database(config, std::string(database), "", password_env, "--db", "--db-password-env",
                      context);
}

std::string describe_bot_database(const BotConfig& config) {
  return is_postgres_url(config.database) ? describe_postgres_url(config.database)
                                          : config.database;
}

}  // namespace llmassist
