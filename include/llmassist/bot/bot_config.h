// The configuration of a bot (llmassist-bot, and the admin server beside it): one JSON file with
// the sections `database`, `telegram`, `assistant`, `memory`, `knowledge`, `providers` and
// `fallback`
// (docs/configuration.md). Every field has a default, so an empty file — or none — is a working
// bot on the console with the shipped knowledge base. Mistakes are reported by JSON path.
//
// Secrets come from the environment: BOT_TOKEN overrides telegram.token, providers name the
// variables of their keys (api_key_env), and a PostgreSQL database the variable of its password
// (database_password_env).
//
// Thread-safety: functions without shared state.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/assistant.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/export.h"
#include "llmassist/memory/knowledge_base.h"
#include "llmassist/status.h"

namespace llmassist {

// The `telegram` section, as docs/configuration.md lists it.
struct LLMASSIST_API TelegramSection {
  std::string token;             // from the file or BOT_TOKEN; empty: the bot runs on the console
  std::string api_url;           // empty: https://api.telegram.org
  std::string mode = "polling";  // "polling" or "webhook"
  std::optional<int> polling_timeout_s;
  std::vector<std::string> allowed_updates;       // empty: the transport's default
  std::string webhook_listen = "127.0.0.1:8081";  // host:port the webhook server binds
  std::string webhook_path = "/telegram/webhook";
  std::string webhook_public_url;  // what Telegram calls; empty: set the webhook yourself
  std::string webhook_secret;  // X-Telegram-Bot-Api-Secret-Token; from TELEGRAM_WEBHOOK_SECRET too
  // A webhook without a secret of at least 16 characters is refused unless this is set (a
  // local test setup). Default: false.
  bool webhook_allow_no_secret = false;
  // The webhook server's limits (webhook.max_connections, …); unset: the transport's defaults.
  std::optional<unsigned> webhook_max_connections;
  std::optional<unsigned> webhook_max_connections_per_address;
  std::optional<int> webhook_connection_timeout_s;
  std::optional<std::size_t> webhook_max_body_bytes;
  std::optional<std::size_t> webhook_max_queued_updates;
  std::optional<int> per_chat_interval_ms;
  std::optional<int> global_per_second;
  std::optional<bool> adaptive_pacing;     // pacing.adaptive
  std::optional<int> adaptive_cooldown_s;  // pacing.adaptive_cooldown_s
  std::optional<int> max_attempts;
  std::optional<int> max_connections;
  std::string proxy;    // the Bot API's proxy URL, or "direct"; empty: the environment's
  std::string ca_file;  // CA certificates (PEM) to trust for the Bot API; empty: the system's
};

// The `admin` section: the bot serves the admin page and REST API in-process.
struct LLMASSIST_API AdminSection {
  std::string listen = "127.0.0.1:8080";  // host:port; only this machine by default
  int session_hours = 12;                 // how long a browser stays signed in (1..720)
  bool secure_cookie = false;             // behind an HTTPS proxy: the cookie's Secure flag
  int threads = 4;                        // handler threads (AdminServerOptions::threads)
  // AdminServerOptions::allowed_hosts, max_connections, max_connections_per_address and
  // connection_timeout; 0 / empty: their defaults.
  std::vector<std::string> allowed_hosts;
  unsigned max_connections = 0;
  unsigned max_connections_per_address = 0;
  int connection_timeout_seconds = 0;
  // Reverse proxies whose X-Forwarded-For is believed (AdminServerOptions::trusted_proxies).
  std::vector<std::string> trusted_proxies;
};

// The `memory` section (docs/configuration.md).
struct LLMASSIST_API MemorySection {
  std::string system_prompt;      // from assistant.system_prompt / system_prompt_file
  std::string type = "semantic";  // "semantic" (summary, recall, knowledge) or "window"
  int window = 8;                 // recent messages of the session (1..200)
  std::size_t max_chars = 24000;  // the window memory's budget, in characters
  int budget_tokens = 6000;       // the semantic memory's budget, in estimated tokens
  bool summary = true;            // memory.summary.enabled
  int summary_threshold = 24;
  int summary_chunk = 200;
  int summary_timeout_s = 90;  // memory.summary.timeout_s: one summariser request
  int summary_lease_s = 180;   // memory.summary.lease_s: a job's claim; more than the timeout
  // memory.summary.providers as {"providers": [...], "fallback": {...}}: a chain of its own for
  // the summariser (a cheaper model); empty: the bot's chain.
  std::string summary_providers_json;
  bool recall = true;  // memory.recall.enabled
  int recall_top_k = 5;
  // memory.embeddings, the object's JSON text; empty: no embedder (recall by words alone).
  std::string embeddings_json;
  int embed_wait_ms = 1500;  // memory.recall.embed_wait_ms
};

// The `knowledge` section: the documents whose passages ground the assistant's answers
// (llmassist/memory/knowledge_base.h).
struct LLMASSIST_API KnowledgeSection {
  // knowledge.sources: files, resolved against the config file's folder; a format of "" is told
  // by the extension. Default: none.
  std::vector<KnowledgeSource> sources;
  int top_k = 3;                                    // passages per question (1..50)
  std::size_t max_passage_chars = 1200;             // KnowledgeOptions::max_passage_chars
  std::chrono::milliseconds reload_interval{3000};  // knowledge.reload_interval_s; 0: never
  // knowledge.sample: index the sample shipped with llmassist (English and Russian). Default:
  // true when the file names neither sources nor providers (the embedded defaults); with sources
  // it cannot be set (the sample stands in for them).
  bool sample = true;
};

struct LLMASSIST_API BotConfig {
  // The SQLite file (a path; "sqlite:PATH" in the file), or a PostgreSQL URL
  // ("postgresql://user@host:5432/db?sslmode=verify-full", is_postgres_url(); never with a
  // password in it).
  std::string database = "llmassist.db";
  // SQLite: "full" (default): every commit survives a power cut. "normal": a commit survives a
  // crash of the process, the last ones may be lost on a power cut; several times faster on slow
  // disks.
  bool database_full_sync = true;
  // PostgreSQL: the environment variable that holds the password (database_password_env; ""
  // none: libpq's own ways, such as ~/.pgpass or a client certificate) and the password read from
  // it when the config was read. The password goes to libpq only.
  std::string database_password_env;
  std::string database_password;
  // PostgreSQL: the schema of the tables (database_schema), created when missing.
  std::string database_schema = "public";
  TelegramSection telegram;
  AssistantOptions assistant;  // system prompt goes to the memory; the rest here
  // Whether the file names assistant.instance. When it does not and the database is PostgreSQL
  // (shared by processes on several hosts), the bot's instance is "bot@<host name>", so that
  // processes on different hosts never share the name their claims carry.
  bool instance_given = false;
  MemorySection memory;
  std::optional<AdminSection> admin;  // set when the file has an `admin` section
  KnowledgeSection knowledge;
  // The whole file's text: make_chain_from_config() reads its providers and fallback sections.
  std::string providers_json = "{}";
  std::string base_dir;  // the config file's folder: relative paths are taken from here
};

struct LLMASSIST_API BotConfigContext {
  // Reads an environment variable; default: std::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

// The name the bot's claims carry (AssistantOptions::instance): assistant.instance when the file
// names one; else "bot@<host name>" on a PostgreSQL database, "bot" on SQLite.
[[nodiscard]] LLMASSIST_API std::string bot_instance(const BotConfig& config);

// Parses a config text. `base_dir` resolves relative paths (system_prompt_file, database).
[[nodiscard]] LLMASSIST_API Result<BotConfig> parse_bot_config(
    std::string_view json_text, const std::string& base_dir, const BotConfigContext& context = {});

// Points `config` at `database` as the keys `database` and `database_password_env` would, for a
// command line's --db and --db-password-env: a relative path is taken from the current folder,
// and the password is read from the variable `password_env` ("" none) for a PostgreSQL URL only.
// kInvalidArgument with what to do (a password inside the URL, a variable that is not set);
// never with the password in it.
[[nodiscard]] LLMASSIST_API Status set_bot_database(BotConfig& config, std::string_view database,
                                                    std::string_view password_env,
                                                    const BotConfigContext& context = {});

// `config.database` fit for a log line or a page: a PostgreSQL URL without its secrets
// (describe_postgres_url()), a file's path as it is.
[[nodiscard]] LLMASSIST_API std::string describe_bot_database(const BotConfig& config);

// Reads and parses `path`; an empty path gives the defaults (with the environment applied).
// kNotFound when the file cannot be read.
[[nodiscard]] LLMASSIST_API Result<BotConfig> load_bot_config(const std::string& path,
                                                              const BotConfigContext& context = {});

}  // namespace llmassist
