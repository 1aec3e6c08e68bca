// The bot's configuration file: defaults, every section, the environment, and mistakes.
#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "bot/doctor.h"
#include "llmassist/bot/bot.h"
#include "llmassist/bot/bot_config.h"
#include "support/temp_dir.h"

using namespace llmassist;

namespace {

BotConfigContext env(std::map<std::string, std::string> vars = {}) {
  BotConfigContext c;
  c.getenv = [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  return c;
}

}  // namespace

TEST_CASE("bot config: nothing configured is a console bot with defaults") {
  auto c = load_bot_config("", env());
  REQUIRE(c.ok());
  CHECK(c->telegram.token.empty());
  CHECK(c->database == "llmassist.db");
  CHECK(c->database_full_sync);
  CHECK(c->assistant.policy == ModerationPolicy::kAuto);
  CHECK(c->memory.window == 8);
  CHECK_FALSE(c->instance_given);
  CHECK(bot_instance(*c) == "bot");
  CHECK(parse_bot_config("", "", env()).ok());
}

TEST_CASE("bot config: on PostgreSQL the default instance is the host's, a named one stays") {
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  auto pg = parse_bot_config(R"({"database": "postgresql://u@db/x"})", "", env());
  REQUIRE_MESSAGE(pg.ok(), pg.status().to_string());
  CHECK(bot_instance(*pg) == std::string("bot@") + host);
  auto named = parse_bot_config(
      R"({"database": "postgresql://u@db/x", "assistant": {"instance": "bot-a"}})", "", env());
  REQUIRE(named.ok());
  CHECK(named->instance_given);
  CHECK(bot_instance(*named) == "bot-a");
}

TEST_CASE("bot config: every section is read, paths relative to the file") {
  llmassist::testing::TempDir dir;
  std::ofstream(dir.file("role.txt")) << "You are the support assistant of Acme.";
  std::ofstream(dir.file("bot.json")) << R"({
    "database": "data/acme.db",
    "telegram": {"token": "123:file-token", "api_url": "http://127.0.0.1:8081", "mode": "polling",
                 "polling": {"timeout_s": 10, "allowed_updates": ["message"]},
                 "pacing": {"per_chat_interval_ms": 0, "global_per_second": 0, "adaptive": false,
                            "adaptive_cooldown_s": 5},
                 "retry": {"max_attempts": 3}, "max_connections": 8,
                 "webhook": {"listen": "127.0.0.1:9000", "path": "/hook", "secret": "s3-webhook-secret-16",
                             "max_connections": 200, "max_connections_per_address": 20,
                             "connection_timeout_seconds": 10, "max_body_bytes": 65536,
                             "max_queued_updates": 500}},
    "assistant": {"system_prompt_file": "role.txt", "welcome": "Hi from Acme",
                  "moderation": "review", "operator_chat_id": -100123, "queued_messages": "together",
                  "instance": "acme-1", "max_concurrent_drafts": 16,
                  "texts": {"failure": "Sorry!", "human_button": "A person, please"}},
    "memory": {"window": 12, "max_chars": 9000},
    "providers": [{"type": "knowledge_base"}],
    "fallback": {"failure_threshold": 2}
  })";
  auto c = load_bot_config(dir.file("bot.json"), env());
  REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  CHECK(c->database == (dir.path() / "data/acme.db").string());
  CHECK(c->telegram.token == "123:file-token");
  CHECK(c->telegram.api_url == "http://127.0.0.1:8081");
  CHECK(c->telegram.polling_timeout_s == 10);
  CHECK(c->telegram.allowed_updates == std::vector<std::string>{"message"});
  CHECK(c->telegram.per_chat_interval_ms == 0);
  CHECK(c->telegram.global_per_second == 0);
  CHECK(c->telegram.adaptive_pacing == false);
  CHECK(c->telegram.adaptive_cooldown_s == 5);
  CHECK(c->telegram.max_attempts == 3);
  CHECK(c->telegram.max_connections == 8);
  CHECK(c->telegram.webhook_path == "/hook");
  CHECK(c->telegram.webhook_max_connections == 200u);
  CHECK(c->telegram.webhook_max_connections_per_address == 20u);
  CHECK(c->telegram.webhook_connection_timeout_s == 10);
  CHECK(c->telegram.webhook_max_body_bytes == 65536u);
  CHECK(c->telegram.webhook_max_queued_updates == 500u);
  CHECK(c->memory.system_prompt == "You are the support assistant of Acme.");
  CHECK(c->memory.window == 12);
  CHECK(c->assistant.texts.welcome == "Hi from Acme");
  CHECK(c->assistant.policy == ModerationPolicy::kReview);
  CHECK(c->assistant.operator_chat_id == "-100123");
  CHECK(c->assistant.queued == QueuedMessages::kAnswerTogether);
  CHECK(c->assistant.instance == "acme-1");
  CHECK(c->instance_given);
  CHECK(c->assistant.texts.failure == "Sorry!");
  CHECK(c->assistant.texts.human_button == "A person, please");
  CHECK(c->providers_json.find("knowledge_base") != std::string::npos);
}

TEST_CASE("bot config: the admin section, absent by default") {
  CHECK(!parse_bot_config("{}", "", env())->admin);
  auto c = parse_bot_config(
      R"({"admin": {"listen": "0.0.0.0:9000", "session_hours": 8, "secure_cookie": true}})", "",
      env());
  REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  REQUIRE(c->admin);
  CHECK(c->admin->listen == "0.0.0.0:9000");
  CHECK(c->admin->session_hours == 8);
  CHECK(c->admin->secure_cookie);
  CHECK(c->admin->threads == 4);
  CHECK(c->admin->allowed_hosts.empty());
  CHECK(parse_bot_config(R"({"admin": {}})", "", env())->admin->listen == "127.0.0.1:8080");
  auto limits = parse_bot_config(
      R"({"admin": {"listen": "127.0.0.1:8080", "allowed_hosts": ["admin.example.org"],
                    "max_connections": 500, "max_connections_per_address": 20,
                    "connection_timeout_seconds": 15}})",
      "", env());
  REQUIRE_MESSAGE(limits.ok(), limits.status().to_string());
  CHECK(limits->admin->allowed_hosts == std::vector<std::string>{"admin.example.org"});
  CHECK(limits->admin->max_connections == 500);
  CHECK(limits->admin->max_connections_per_address == 20);
  CHECK(limits->admin->connection_timeout_seconds == 15);
  CHECK_FALSE(parse_bot_config(R"({"admin": {"listen": "127.0.0.1:8080", "allowed_hosts": "x"}})",
                               "", env())
                  .ok());
}

TEST_CASE("bot config: the knowledge section, sources relative to the file") {
  auto defaults = parse_bot_config("{}", "/etc/bot", env());
  REQUIRE(defaults.ok());
  CHECK(defaults->knowledge.sources.empty());
  CHECK(defaults->knowledge.sample);
  CHECK(defaults->knowledge.top_k == 3);
  CHECK(defaults->knowledge.max_passage_chars == 1200);
  CHECK(defaults->knowledge.reload_interval == std::chrono::seconds(3));

  auto c = parse_bot_config(R"({"knowledge": {
      "sources": ["docs/guide.md", {"path": "/srv/faq.json"}, {"path": "notes", "format": "text"}],
      "top_k": 5, "max_passage_chars": 800, "reload_interval_s": 0}})",
                            "/etc/bot", env());
  REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  const auto& k = c->knowledge;
  REQUIRE(k.sources.size() == 3);
  CHECK(k.sources[0].path == "/etc/bot/docs/guide.md");
  CHECK(k.sources[0].format.empty());
  CHECK(k.sources[1].path == "/srv/faq.json");
  CHECK(k.sources[2].path == "/etc/bot/notes");
  CHECK(k.sources[2].format == "text");
  CHECK(k.top_k == 5);
  CHECK(k.max_passage_chars == 800);
  CHECK(k.reload_interval == std::chrono::milliseconds(0));
  CHECK_FALSE(k.sample);  // sources given: no sample
  CHECK_FALSE(parse_bot_config(R"({"knowledge": {"sample": false}})", "", env())->knowledge.sample);
  // A bot with models of its own leaves llmassist's FAQ out of its prompts unless asked for.
  const std::string models = R"("providers": [{"type": "openai", "model": "m"}])";
  CHECK_FALSE(parse_bot_config("{" + models + "}", "", env())->knowledge.sample);
  CHECK(parse_bot_config("{" + models + R"(, "knowledge": {"sample": true}})", "", env())
            ->knowledge.sample);

  auto error = [&](const char* text) {
    auto r = parse_bot_config(text, "", env());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    return r.status().message();
  };
  CHECK(error(R"({"knowledge": {"sources": ["a.md", 7]}})").find("$.knowledge.sources[1]") !=
        std::string::npos);
  CHECK(error(R"({"knowledge": {"sources": [{"path": "a", "format": "pdf"}]}})")
            .find("$.knowledge.sources[0].format") != std::string::npos);
  CHECK(error(R"({"knowledge": {"sources": [{"format": "text"}]}})")
            .find("$.knowledge.sources[0].path") != std::string::npos);
  CHECK(error(R"({"knowledge": {"sources": [{"path": "a", "fromat": "text"}]}})")
            .find("$.knowledge.sources[0].fromat") != std::string::npos);
  CHECK(error(R"({"knowledge": {"sources": [""]}})").find("$.knowledge.sources[0]") !=
        std::string::npos);
  CHECK(error(R"({"knowledge": {"top_k": 0}})").find("$.knowledge.top_k") != std::string::npos);
  CHECK(
      error(R"({"knowledge": {"max_passage_chars": 10}})").find("$.knowledge.max_passage_chars") !=
      std::string::npos);
  CHECK(
      error(R"({"knowledge": {"reload_interval_s": -1}})").find("$.knowledge.reload_interval_s") !=
      std::string::npos);
  CHECK(
      error(R"({"knowledge": {"sources": ["a.md"], "sample": true}})").find("$.knowledge.sample") !=
      std::string::npos);
  CHECK(error(R"({"knowledge": {"top-k": 3}})").find("$.knowledge.top-k") != std::string::npos);
}

TEST_CASE("bot doctor: an admin section with no admin account is reported") {
  llmassist::testing::TempDir dir;
  auto c = parse_bot_config(R"({"admin": {"listen": "127.0.0.1:0"}})", dir.path().string(), env());
  REQUIRE(c.ok());
  c->database = dir.file("bot.db");
  const auto admin_check = [&] {
    for (const auto& check : run_doctor(*c, std::chrono::seconds(5))) {
      if (check.what == "admin page") return check;
    }
    FAIL("no admin page check");
    return DoctorCheck{};
  };
  auto before = admin_check();
  CHECK(!before.ok);
  CHECK(before.detail.find("user add") != std::string::npos);
  auto accounts = open_account_store(*c);
  REQUIRE(accounts.ok());
  REQUIRE((*accounts)->create_account("alice", "a long password", AccountRole::kAdmin).ok());
  CHECK(admin_check().ok);
}

TEST_CASE("bot config: BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET come from the environment") {
  auto c = parse_bot_config(R"({"telegram": {"token": "from-file"}})", "",
                            env({{"BOT_TOKEN", "from-env"}}));
  REQUIRE(c.ok());
  CHECK(c->telegram.token == "from-env");
  c = parse_bot_config(R"({"telegram": {"mode": "webhook"}})", "",
                       env({{"TELEGRAM_WEBHOOK_SECRET", "hook-secret-from-env"}}));
  REQUIRE(c.ok());
  CHECK(c->telegram.webhook_secret == "hook-secret-from-env");
}

TEST_CASE("bot config: a PostgreSQL database, its password from the environment") {
  auto c = parse_bot_config(
      R"({"database": "postgresql://bot@db1.internal:5432/llmassist?sslmode=verify-full",
                                "database_password_env": "BOT_DB_PASSWORD",
                                "database_schema": "acme"})",
      "/etc/acme", env({{"BOT_DB_PASSWORD", "pg-secret-17"}}));
  REQUIRE(c.ok());
  // A URL is not a path: nothing is resolved against the config's folder.
  CHECK(c->database == "postgresql://bot@db1.internal:5432/llmassist?sslmode=verify-full");
  CHECK(c->database_password_env == "BOT_DB_PASSWORD");
  CHECK(c->database_password == "pg-secret-17");
  CHECK(c->database_schema == "acme");
  CHECK(describe_bot_database(*c).find("pg-secret-17") == std::string::npos);

  // Without a password variable: libpq's own ways (~/.pgpass, certificates); the schema public.
  c = parse_bot_config(R"({"database": "postgres://db1/llmassist"})", "", env());
  REQUIRE(c.ok());
  CHECK(c->database == "postgres://db1/llmassist");
  CHECK(c->database_password.empty());
  CHECK(c->database_schema == "public");

  // A SQLite file named like the server is still a file.
  c = parse_bot_config(R"({"database": "postgres.db"})", "/srv", env());
  REQUIRE(c.ok());
  CHECK(c->database == "/srv/postgres.db");
}

TEST_CASE("bot config: PostgreSQL mistakes name the setting, never the password") {
  const auto e = [](const char* text, BotConfigContext context = env()) {
    return parse_bot_config(text, "", context).status();
  };
  for (const char* text :
       {R"({"database": "postgresql://bot:pg-secret-17@db1/llmassist"})",
        R"({"database": "postgresql://bot@db1/llmassist?password=pg-secret-17"})",
        R"({"database": "postgresql://bot@db1/llmassist?sslpassword=pg-secret-17"})"}) {
    CAPTURE(text);
    const Status s = e(text);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.message().find("$.database: the URL holds a password") == 0);
    CHECK(s.message().find("database_password_env") != std::string::npos);
    CHECK(s.message().find("pg-secret-17") == std::string::npos);
  }
  // A variable that is not set, or empty: its name in the error, no value anywhere.
  const char* url_and_env =
      R"({"database": "postgresql://bot@db1/llmassist", "database_password_env": "BOT_DB_PASSWORD"})";
  CHECK(e(url_and_env).message() ==
        "$.database_password_env: the environment variable BOT_DB_PASSWORD is not set");
  CHECK(e(url_and_env, env({{"BOT_DB_PASSWORD", ""}})).message() ==
        "$.database_password_env: the environment variable BOT_DB_PASSWORD is empty");
  // A mistake later in the file, with the password read already: not in that message either.
  const Status later = e(
      R"({"database": "postgresql://bot@db1/llmassist", "database_password_env": "BOT_DB_PASSWORD",
          "database_schema": "acme-prod"})",
      env({{"BOT_DB_PASSWORD", "pg-secret-17"}}));
  CHECK(later.message().find("$.database_schema: \"acme-prod\" is not a schema name") == 0);
  CHECK(later.message().find("pg-secret-17") == std::string::npos);

  CHECK(e(R"({"database": "postgresql://[::1/llmassist"})")
            .message()
            .find("$.database: libpq cannot read this PostgreSQL URL") == 0);
  CHECK(e(R"({"database": "postgresql:db1/llmassist"})").message() ==
        "$.database: a PostgreSQL URL begins with postgresql:// (or postgres://)");
  CHECK(e(R"({"database": "bot.db", "database_password_env": "BOT_DB_PASSWORD"})")
            .message()
            .find("$.database_password_env: a password is for a PostgreSQL database") == 0);
  CHECK(e(R"({"database": "bot.db", "database_schema": "acme"})").message() ==
        "$.database_schema: a schema is for a PostgreSQL database");
  CHECK(e(R"({"database": "postgresql://db1/llmassist", "database_sync": "normal"})")
            .message()
            .find("$.database_sync: SQLite's setting") == 0);
  CHECK(e(R"({"database": "postgresql://db1/llmassist", "database_password_env": ""})")
            .message()
            .find("$.database_password_env: empty") == 0);
}

TEST_CASE("bot config: --db and --db-password-env point the config at another database") {
  BotConfig c;
  const auto context = env({{"ADMIN_DB_PASSWORD", "pg-secret-17"}});
  REQUIRE(
      set_bot_database(c, "postgresql://admin@db1/llmassist", "ADMIN_DB_PASSWORD", context).ok());
  CHECK(c.database == "postgresql://admin@db1/llmassist");
  CHECK(c.database_password == "pg-secret-17");
  // Back to a file: no password left over. A relative path stays relative (the current folder).
  REQUIRE(set_bot_database(c, "sqlite:bot.db", "", context).ok());
  CHECK(c.database == "bot.db");
  CHECK(c.database_password.empty());

  const Status missing =
      set_bot_database(c, "postgresql://admin@db1/llmassist", "NOT_SET", context);
  CHECK(missing.message() == "--db-password-env: the environment variable NOT_SET is not set");
  const Status inline_password =
      set_bot_database(c, "postgresql://admin:pg-secret-17@db1/llmassist", "", context);
  CHECK(inline_password.message().find("--db: the URL holds a password") == 0);
  CHECK(inline_password.message().find("pg-secret-17") == std::string::npos);
}

TEST_CASE("bot config: mistakes are reported by JSON path") {
  auto e = [](const char* text) { return parse_bot_config(text, "", env()).status().message(); };
  CHECK(e(R"({"telegam": {}})") == "$.telegam: unknown key");
  CHECK(e(R"({"assistant": {"moderation": "manual"}})") ==
        "$.assistant.moderation: \"manual\" is neither auto nor review");
  CHECK(e(R"({"assistant": {"operator_chat_id": [1]}})")
            .find("$.assistant.operator_chat_id: expected a chat id") == 0);
  CHECK(e(R"({"memory": {"window": 0}})").find("$.memory.window: 0 is out of range") == 0);
  CHECK(e(R"({"telegram": {"mode": "webhook"}})").find("$.telegram.webhook.secret") == 0);
  CHECK(e(R"({"telegram": {"webhook": {"secrett": "x"}}})") ==
        "$.telegram.webhook.secrett: unknown key");
  CHECK(e(R"({"telegram": {"pacing": {"per_chat": 1}}})") ==
        "$.telegram.pacing.per_chat: unknown key");
  CHECK(e(R"({"telegram": {"pacing": {"adaptive": "yes"}}})").find("$.telegram.pacing.adaptive") ==
        0);
  CHECK(e(R"({"telegram": {"webhook": {"max_connections": 0}}})")
            .find("$.telegram.webhook.max_connections: 0 is out of range") == 0);
  CHECK(e(R"({"database_sync": "off"})") == "$.database_sync: \"off\" is neither full nor normal");
  CHECK(e(R"({"assistant": {"system_prompt": "a", "system_prompt_file": "b"}})").find("not both") !=
        std::string::npos);
  CHECK(e(R"({"assistant": {"system_prompt_file": "/nonexistent/role.txt"}})")
            .find("$.assistant.system_prompt_file: cannot read") == 0);
  CHECK(e(R"({"admin": {"listen": "8080"}})") ==
        "$.admin.listen must be host:port, e.g. 127.0.0.1:8080, not \"8080\"");
  CHECK(e(R"({"admin": {"port": 8080}})") == "$.admin.port: unknown key");
  CHECK(e(R"({"admin": {"session_hours": 0}})").find("$.admin.session_hours: 0 is out of range") ==
        0);
  CHECK(e("{").find("not valid JSON") != std::string::npos);
  CHECK(parse_bot_config(std::string("{}\0{\"telegam\": 1}", 17), "", env()).status().message() ==
        "the config is not valid JSON: it holds a NUL byte");
  CHECK(load_bot_config("/nonexistent/bot.json", env()).status().code() == StatusCode::kNotFound);
}

TEST_CASE("bot config: the agent section's built-in tools, documents relative to the file") {
  auto defaults = parse_bot_config("{}", "/etc/bot", env());
  REQUIRE(defaults.ok());
  CHECK_FALSE(defaults->assistant.agent.stop_contact);
  CHECK_FALSE(defaults->assistant.agent.handoff_to_human);
  CHECK(defaults->assistant.agent.documents.empty());

  llmassist::testing::TempDir dir;
  std::ofstream(dir.file("deck.pdf")) << "%PDF";
  auto c = parse_bot_config(R"({"agent": {"stop_contact": true, "handoff_to_human": true,
      "documents": {"presentation": {"path": "deck.pdf", "file_name": "Презентация.pdf",
                                     "mime_type": "application/pdf", "caption": "Our deck"}}}})",
                            dir.path().string(), env());
  REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  const AgentOptions& a = c->assistant.agent;
  CHECK(a.stop_contact);
  CHECK(a.handoff_to_human);
  REQUIRE(a.documents.count("presentation") == 1);
  const Attachment& deck = a.documents.at("presentation");
  CHECK(deck.path == dir.file("deck.pdf"));
  CHECK(deck.file_name == "Презентация.pdf");
  CHECK(deck.mime_type == "application/pdf");
  CHECK(deck.caption == "Our deck");

  const auto error = [&](const std::string& text) {
    auto r = parse_bot_config(text, dir.path().string(), env());
    REQUIRE_FALSE(r.ok());
    return r.status().message();
  };
  CHECK(error(R"({"agent": {"documents": {"deck": {"path": "missing.pdf"}}}})")
            .find("$.agent.documents.deck.path") != std::string::npos);
  CHECK(error(R"({"agent": {"documents": {"deck": {}}}})").find("path") != std::string::npos);
  CHECK(error(R"({"agent": {"documents": {"deck": {"path": "deck.pdf", "size": 1}}}})")
            .find("size") != std::string::npos);
  CHECK(error(R"({"agent": {"stop_contact": "yes"}})").find("stop_contact") != std::string::npos);
  CHECK(error(R"({"agent": {"remind": true}})").find("remind") != std::string::npos);
}
