// The bot's parts on a PostgreSQL database, as a deployment configures them: the config's URL
// and password variable, the doctor, llmassist-bot answering over it, and llmassist-operator and
// llmassist-admin run as processes with --db URL --db-password-env NAME.
#include <doctest/doctest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "bot/doctor.h"
#include "llmassist/bot/bot.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/postgres/postgres_store.h"
#include "support/child_process.h"
#include "support/mock_llm_server.h"
#include "support/mock_telegram_server.h"
#include "support/moderation_fixture.h"
#include "support/temp_dir.h"
#include "support/test_postgres.h"

namespace llmassist::testing {
namespace {

constexpr const char* kPasswordVariable = "LLMASSIST_TEST_DB_PASSWORD";

BotConfigContext environment(std::map<std::string, std::string> vars) {
  BotConfigContext c;
  c.getenv = [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  return c;
}

// A config on the tests' server, in `schema`, the password from kPasswordVariable = `password`.
BotConfig postgres_config(const std::string& schema, const std::string& password) {
  const std::string text = R"({"database": ")" + test_postgres().url +
                           R"(", "database_password_env": ")" + kPasswordVariable +
                           R"(", "database_schema": ")" + schema + R"("})";
  auto config = parse_bot_config(text, "", environment({{kPasswordVariable, password}}));
  REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  return *config;
}

// The doctor's check `what` ("database", "admin page").
DoctorCheck doctor_check(const BotConfig& config, const std::string& what) {
  for (const auto& check : run_doctor(config, std::chrono::seconds(5))) {
    if (check.what == what) return check;
  }
  FAIL("the doctor made no check " << what);
  return {};
}

DoctorCheck database_check(const BotConfig& config) { return doctor_check(config, "database"); }

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE("bot on PostgreSQL: the config's database opens the PostgreSQL store") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  const BotConfig config = postgres_config(schema, pg.password);
  auto store = open_message_store(config, null_logger());
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  auto chat = (*store)->upsert_chat({"telegram", "42", "Ann", ""});
  REQUIRE(chat.ok());

  // The same database and schema, from a store of its own (another process's): the chat is there.
  PostgresStoreOptions options;
  options.connect = pg.connect_options(schema);
  options.connect.logger = null_logger();
  auto other = open_postgres_store(options);
  REQUIRE_MESSAGE(other.ok(), other.status().to_string());
  auto found = (*other)->get_chat(chat->id);
  REQUIRE(found.ok());
  CHECK(found->title == "Ann");
}

TEST_CASE("bot doctor on PostgreSQL: connects, shows the URL and never the password") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  const DoctorCheck good = database_check(postgres_config(schema, pg.password));
  CHECK_MESSAGE(good.ok, good.detail);
  CHECK(good.detail.find(describe_postgres_url(pg.url)) != std::string::npos);
  CHECK(good.detail.find("(schema " + schema + "): connected") != std::string::npos);
  CHECK(good.detail.find(pg.password) == std::string::npos);

  const std::string wrong = pg.password + "-wrong";
  const DoctorCheck refused = database_check(postgres_config(schema, wrong));
  CHECK(!refused.ok);
  CHECK(!refused.detail.empty());
  CHECK(refused.detail.find(pg.password) == std::string::npos);
}

// The environment of a program run on the tests' server: the password in kPasswordVariable.
std::vector<std::string> password_environment() {
  return {std::string(kPasswordVariable) + "=" + test_postgres().password};
}

#ifdef LLMASSIST_BOT_BINARY

TEST_CASE(
    "llmassist-bot on PostgreSQL: a question from Telegram is answered, both in the database") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  MockTelegramServer telegram;
  MockLlmServer llm;
  llm.set(MockLlmServer::echoing());
  TempDir dir;
  const nlohmann::json config = {
      {"database", pg.url},
      {"database_password_env", kPasswordVariable},
      {"database_schema", schema},
      {"telegram", telegram.bot_config_section()},
      {"assistant", {{"texts", {{"human_button", ""}}}}},
      {"providers", nlohmann::json::array({{{"type", "openai"},
                                            {"name", "mock"},
                                            {"base_url", llm.openai_url()},
                                            {"model", "mock-model"},
                                            {"retries", 0}}})}};
  std::ofstream(dir.file("bot.json")) << config.dump(2);
  const pid_t bot = spawn({LLMASSIST_BOT_BINARY, "--config", dir.file("bot.json")},
                          dir.file("bot.log"), password_environment());
  REQUIRE(bot > 0);
  telegram.push_update(1, MockTelegramServer::text_update(1, "Where is my parcel?"));
  const bool answered = telegram.wait_for_calls("sendMessage", 1, std::chrono::seconds(20));
  ::kill(bot, SIGTERM);
  CHECK(wait_exit(bot) == 0);
  const std::string log = read_all(dir.file("bot.log"));
  REQUIRE_MESSAGE(answered, log);
  CHECK(telegram.calls("sendMessage").front().params.value("text", "") ==
        "Answer to: Where is my parcel?");
  CHECK(log.find(pg.password) == std::string::npos);

  PostgresStoreOptions options;
  options.connect = pg.connect_options(schema);
  options.connect.logger = null_logger();
  auto store = open_postgres_store(options);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  auto chat = (*store)->find_chat("telegram", "1001");
  REQUIRE_MESSAGE(chat.ok(), chat.status().to_string());
  auto history = (*store)->chat_history(chat->id, {});
  REQUIRE(history.ok());
  REQUIRE(history->size() == 2);  // newest first
  CHECK(history->front().text == "Answer to: Where is my parcel?");
  CHECK(history->back().text == "Where is my parcel?");
}

#endif  // LLMASSIST_BOT_BINARY

#if defined(LLMASSIST_OPERATOR_BINARY) && defined(LLMASSIST_ADMIN_BINARY)

// Runs a program with the password in kPasswordVariable; its exit code, and its output in `log`.
int run(std::vector<std::string> args, const std::string& log) {
  return wait_exit(spawn(args, log, password_environment()));
}

TEST_CASE("llmassist-operator and llmassist-admin on PostgreSQL: --db URL --db-password-env NAME") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  auto clock = std::make_shared<ManualClock>();
  PostgresStoreOptions options;
  options.connect = pg.connect_options(schema);
  options.connect.clock = clock;
  options.connect.logger = null_logger();
  auto opened = open_postgres_store(options);
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  QueueFixture f(std::move(opened).value(), clock);
  const Chat ann = f.chat("1", "Ann");
  const ReplyId reply = f.pending(ann.id, "Where is my order?", "It ships tomorrow.");
  const std::vector<std::string> db = {
      "--db", pg.url, "--db-password-env", kPasswordVariable, "--db-schema", schema};
  TempDir dir;

  std::vector<std::string> approve = {LLMASSIST_OPERATOR_BINARY};
  approve.insert(approve.end(), db.begin(), db.end());
  for (const char* arg : {"--operator", "alice", "approve"}) approve.emplace_back(arg);
  approve.push_back(std::to_string(reply));
  CHECK_MESSAGE(run(approve, dir.file("approve.log")) == 0, read_all(dir.file("approve.log")));
  CHECK(f.reply(reply).status == ReplyStatus::kApproved);
  CHECK(f.audit(reply).front().actor == "operator:alice");

  // Without the password the server refuses, and says so; the password is in no output.
  const std::vector<std::string> no_password = {LLMASSIST_OPERATOR_BINARY,
                                                "--db",
                                                pg.url,
                                                "--db-schema",
                                                schema,
                                                "--operator",
                                                "alice",
                                                "pending"};
  CHECK(run(no_password, dir.file("refused.log")) == 1);
  const std::string refused = read_all(dir.file("refused.log"));
  CHECK(refused.find("cannot open the database") != std::string::npos);
  CHECK(refused.find(pg.password) == std::string::npos);

  std::vector<std::string> erase = {LLMASSIST_ADMIN_BINARY};
  erase.insert(erase.end(), db.begin(), db.end());
  erase.emplace_back("erase-chat");
  erase.push_back(std::to_string(ann.id));
  CHECK_MESSAGE(run(erase, dir.file("erase.log")) == 0, read_all(dir.file("erase.log")));
  CHECK(!f.store->get_chat(ann.id).ok());
  const std::string erased = read_all(dir.file("erase.log"));
  CHECK(erased.find(pg.password) == std::string::npos);
  // PostgreSQL keeps the deleted rows' bytes until VACUUM: the program does not claim otherwise.
  CHECK(erased.find("overwritten") == std::string::npos);
  CHECK(erased.find("until VACUUM frees the space") != std::string::npos);
}

TEST_CASE("accounts on PostgreSQL: the doctor finds the admin that llmassist-admin lists") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  BotConfig config = postgres_config(schema, pg.password);
  config.admin.emplace();
  config.admin->listen = "127.0.0.1:0";
  const DoctorCheck before = doctor_check(config, "admin page");
  CHECK(!before.ok);
  CHECK(before.detail.find("user add") != std::string::npos);

  auto accounts = open_account_store(config, null_logger());
  REQUIRE_MESSAGE(accounts.ok(), accounts.status().to_string());
  REQUIRE((*accounts)->create_account("alice", "a long password", AccountRole::kAdmin).ok());
  const DoctorCheck after = doctor_check(config, "admin page");
  CHECK_MESSAGE(after.ok, after.detail);

  TempDir dir;
  const std::vector<std::string> list = {LLMASSIST_ADMIN_BINARY,
                                         "--db",
                                         pg.url,
                                         "--db-password-env",
                                         kPasswordVariable,
                                         "--db-schema",
                                         schema,
                                         "user",
                                         "list"};
  CHECK(run(list, dir.file("list.log")) == 0);
  const std::string listed = read_all(dir.file("list.log"));
  CHECK_MESSAGE(listed.find("alice  admin") != std::string::npos, listed);
  CHECK(listed.find(pg.password) == std::string::npos);
}

#endif  // LLMASSIST_OPERATOR_BINARY && LLMASSIST_ADMIN_BINARY

}  // namespace
}  // namespace llmassist::testing
