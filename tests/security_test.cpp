// The findings of the security review that need no server of their own: log lines that text from
// outside cannot forge, listen addresses without a host, webhook secrets too short to guess
// hard, and the database file's mode. (The admin server's findings are in admin_server_test.cpp,
// the assistant's in assistant_test.cpp, the providers' in llm_provider_test.cpp.)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "bot/doctor.h"
#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/bot/bot.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/logger.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/telegram/telegram_transport.h"
#include "programs/account_commands.h"
#include "support/capturing_logger.h"
#include "support/temp_dir.h"

namespace llmassist::testing {
namespace {

// What stderr_logger() writes while `body` runs: standard error goes to a file meanwhile.
template <typename Body>
std::string captured_stderr(const TempDir& dir, Body&& body) {
  const std::string path = dir.file("stderr.txt");
  const int file = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  REQUIRE(file >= 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(file, STDERR_FILENO);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(file);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

BotConfigContext no_env() {
  BotConfigContext c;
  c.getenv = [](const std::string&) { return std::optional<std::string>(); };
  return c;
}

TelegramTransportOptions webhook_options() {
  TelegramTransportOptions o;
  o.token = "123456:test-token";
  o.mode = TelegramMode::kWebhook;
  o.webhook.secret_token = "a-webhook-secret-of-24ch";
  o.logger = null_logger();
  return o;
}

// The permission bits of `path`; -1 when there is no such file.
int mode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// The bytes of a file ("" when there is none).
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct StoreFixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::string path = dir.file("bot.db");
  std::unique_ptr<MessageStore> store;

  StoreFixture() {
    SqliteStoreOptions so;
    so.path = path;
    so.clock = clock;
    so.logger = null_logger();
    auto opened = open_sqlite_store(so);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    store = std::move(opened).value();
  }

  // A question answered, with an operator's edit in the audit log; the chat.
  Chat conversation(const std::string& user, const std::string& question,
                    const std::string& answer) {
    const Chat chat = store->upsert_chat({"telegram", user, "User " + user, ""}).value();
    auto in = append_inbound(*store, {.chat_id = chat.id, .text = question}).value();
    ClaimRequest claim;
    claim.status = ReplyStatus::kNew;
    claim.to = ReplyStatus::kGenerating;
    claim.worker = "bot:test";
    claim.reply_id = in.reply_id;
    REQUIRE(store->claim_replies(claim).value().size() == 1);
    ReplyChange draft;
    draft.from = ReplyStatus::kGenerating;
    draft.to = ReplyStatus::kPending;
    draft.draft_text = "draft: " + answer;
    REQUIRE(store->transition_reply(in.reply_id, draft).ok());
    ReplyChange edit;
    edit.from = ReplyStatus::kPending;
    edit.to = ReplyStatus::kApproved;
    edit.final_text = answer;
    edit.actor = "operator:alice";
    edit.audit_action = "edit";
    REQUIRE(store->transition_reply(in.reply_id, edit).ok());
    ReplyChange sent;
    sent.from = ReplyStatus::kApproved;
    sent.to = ReplyStatus::kSent;
    sent.transport_message_id = "m1";
    REQUIRE(store->transition_reply(in.reply_id, sent).ok());
    REQUIRE(store->set_chat_mode(chat.id, ChatMode::kOperator, "user:" + user).ok());
    return chat;
  }
};

}  // namespace

TEST_CASE("security: a log line cannot be forged, nor a terminal driven, by text from outside") {
  TempDir dir;
  const std::string forged =
      "Привет\n2026-11-21T05:24:28.123Z ERROR admin: root signed in\r\x1b[2J\x07\ttab \xc2\x9b"
      "31m";
  const std::string out = captured_stderr(
      dir, [&] { stderr_logger()->log(LogLevel::kWarning, "transport\ntelegram", forged); });
  // One call, one line: the only newline is the one that ends it.
  CHECK(std::count(out.begin(), out.end(), '\n') == 1);
  CHECK(out.back() == '\n');
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(out.find('\x07') == std::string::npos);
  CHECK(out.find("\xc2\x9b") == std::string::npos);
  // Other text, Cyrillic included, is left as it is.
  CHECK(out.find("transport\\ntelegram: Привет\\n2026-11-21T05:24:28.123Z ERROR admin") !=
        std::string::npos);
  CHECK(out.find("\\r\\x1b[2J\\x07\\ttab \\u009b31m") != std::string::npos);
}

TEST_CASE("security: a listen address without a host is refused") {
  const auto admin = [](const std::string& listen) {
    return parse_bot_config(R"({"admin": {"listen": ")" + listen + R"("}})", "", no_env());
  };
  for (const char* bad : {":8080", "8080", "[]:8080", "127.0.0.1:", "127.0.0.1:99999", "::1:80"}) {
    CAPTURE(bad);
    const auto c = admin(bad);
    REQUIRE(!c.ok());
    CHECK(c.status().code() == StatusCode::kInvalidArgument);
    CHECK(c.status().message().find("$.admin.listen must be host:port, e.g. 127.0.0.1:8080") == 0);
  }
  CHECK(admin("127.0.0.1:8080").ok());
  CHECK(admin("[::1]:0").ok());
  CHECK(admin("0.0.0.0:8080").ok());  // every address, when asked for by name

  const auto hook = parse_bot_config(
      R"({"telegram": {"mode": "webhook", "webhook": {"listen": ":8081",
          "secret": "a-webhook-secret-of-24ch"}}})",
      "", no_env());
  REQUIRE(!hook.ok());
  CHECK(hook.status().message().find("$.telegram.webhook.listen must be host:port") == 0);

  // The library refuses it too, not only the config file.
  auto o = webhook_options();
  o.webhook.listen_host = "";
  const auto made = make_telegram_transport(o);
  REQUIRE(!made.ok());
  CHECK(made.status().code() == StatusCode::kInvalidArgument);
  CHECK(made.status().message().find("listen must be host:port") != std::string::npos);
}

TEST_CASE("security: a webhook needs a secret of 16 characters or more, unless told otherwise") {
  auto o = webhook_options();
  CHECK(make_telegram_transport(o).ok());
  for (const char* weak : {"", "short", "fifteen-chars15"}) {
    CAPTURE(weak);
    o.webhook.secret_token = weak;
    const auto made = make_telegram_transport(o);
    REQUIRE(!made.ok());
    CHECK(made.status().code() == StatusCode::kInvalidArgument);
    CHECK(made.status().message().find("at least 16 characters") != std::string::npos);
  }
  o.webhook.secret_token = "sixteen-chars-16";
  CHECK(make_telegram_transport(o).ok());
  o.webhook.secret_token = "";
  o.webhook.allow_no_secret = true;  // a local test setup
  CHECK(make_telegram_transport(o).ok());

  const auto config = [](const std::string& webhook) {
    return parse_bot_config(R"({"telegram": {"mode": "webhook", "webhook": )" + webhook + "}}", "",
                            no_env());
  };
  const auto short_secret = config(R"({"secret": "s3"})");
  REQUIRE(!short_secret.ok());
  CHECK(short_secret.status().message().find("at least 16 characters") != std::string::npos);
  const auto allowed = config(R"({"allow_no_secret": true})");
  REQUIRE(allowed.ok());
  CHECK(allowed->telegram.webhook_allow_no_secret);
}

TEST_CASE("security: a new database file, its -wal and -shm are the owner's alone (0600)") {
  TempDir dir;
  const mode_t saved = ::umask(022);  // the usual umask, under which SQLite would make 0644
  const std::string db = dir.file("bot.db");
  auto logger = std::make_shared<CapturingLogger>();
  {
    SqliteStoreOptions so;
    so.path = db;
    so.logger = logger;
    auto store = open_sqlite_store(so);
    REQUIRE_MESSAGE(store.ok(), store.status().to_string());
    REQUIRE((*store)->upsert_chat({"telegram", "42", "Ann", ""}).ok());
    CHECK(mode_of(db) == 0600);
    CHECK(mode_of(db + "-wal") == 0600);
    CHECK(mode_of(db + "-shm") == 0600);
  }
  CHECK(!logger->contains("may be read by every user"));
  {  // the account store, on a file of its own or shared
    SqliteAccountStoreOptions ao;
    ao.path = dir.file("accounts.db");
    ao.logger = logger;
    REQUIRE(open_sqlite_account_store(ao).ok());
    CHECK(mode_of(ao.path) == 0600);
  }

  // An existing file's mode is its owner's choice, but a world-readable one is warned about.
  const std::string shared = dir.file("shared.db");
  {
    SqliteStoreOptions so;
    so.path = shared;
    so.logger = null_logger();
    REQUIRE(open_sqlite_store(so).ok());
  }
  REQUIRE(::chmod(shared.c_str(), 0644) == 0);
  SqliteStoreOptions so;
  so.path = shared;
  so.logger = logger;
  REQUIRE(open_sqlite_store(so).ok());
  CHECK(mode_of(shared) == 0644);
  CHECK(logger->contains("may be read by every user"));
  BotConfig config;
  config.database = shared;
  bool warned = false;
  for (const auto& check : run_doctor(config, std::chrono::seconds(1))) {
    if (check.what == "database file") warned = !check.ok;
  }
  CHECK(warned);
  ::umask(saved);
}

TEST_CASE("security: data older than the retention period is deleted, the rest kept") {
  StoreFixture f;
  const Chat old_chat = f.conversation("100", "an old question", "an old answer");
  // Still waiting for an operator: kept whatever its age.
  auto waiting = append_inbound(*f.store, {.chat_id = old_chat.id, .text = "still open"}).value();
  f.clock->advance(std::chrono::hours(24 * 10));
  const Chat new_chat = f.conversation("200", "a new question", "a new answer");
  auto n = f.store->delete_older_than(f.clock->now() - std::chrono::hours(24 * 7));
  REQUIRE_MESSAGE(n.ok(), n.status().to_string());
  CHECK(n->messages == 2);  // the old question and its answer
  CHECK(n->replies == 1);
  CHECK(n->audit_events >= 2);
  const auto old_history = f.store->chat_history(old_chat.id, {}).value();
  REQUIRE(old_history.size() == 1);
  CHECK(old_history[0].text == "still open");
  CHECK(f.store->get_reply(waiting.reply_id).ok());
  CHECK(f.store->chat_history(new_chat.id, {}).value().size() == 2);
  CHECK(!f.store->list_audit({.chat_id = new_chat.id}).value().empty());
  CHECK(f.store->list_audit({.chat_id = old_chat.id}).value().empty());
  CHECK(n->reclaimed);
  CHECK(file_bytes(f.path).find("an old answer") == std::string::npos);
}

TEST_CASE("security: erasing a user removes their data, down to the bytes of the files") {
  StoreFixture f;
  const Chat erased =
      f.conversation("123456", "my secret passport number AB-9981", "noted your passport AB-9981");
  const Chat kept = f.conversation("777", "a neighbour's question", "a neighbour's answer");
  // The text is in the files before.
  CHECK((file_bytes(f.path) + file_bytes(f.path + "-wal")).find("AB-9981") != std::string::npos);

  std::ostringstream out, err;
  CHECK(run_erase_command(*f.store, {"erase-user", "telegram:nobody"}, out, err) == 1);
  CHECK(run_erase_command(*f.store, {"erase-user", "123456"}, out, err) == 2);
  CHECK(run_erase_command(*f.store, {"erase-user", "telegram:123456"}, out, err) == 0);
  CAPTURE(err.str());
  CHECK(out.str().find("erased chat") == 0);
  CHECK(out.str().find("overwritten") != std::string::npos);

  CHECK(f.store->get_chat(erased.id).status().code() == StatusCode::kNotFound);
  CHECK(f.store->find_chat("telegram", "123456").status().code() == StatusCode::kNotFound);
  CHECK(f.store->list_audit({.chat_id = erased.id}).value().empty());
  CHECK(f.store->list_audit({.actor = "user:123456"}).value().empty());
  CHECK(f.store->list_replies({.chat_id = erased.id}).value().empty());
  // Who erased is recorded, without anything of the person.
  const auto erasures = f.store->list_audit({.actor = "admin:cli"}).value();
  REQUIRE(erasures.size() == 1);
  CHECK(erasures[0].action == "erase");
  CHECK(erasures[0].detail.find("123456") == std::string::npos);
  // Others are untouched.
  CHECK(f.store->chat_history(kept.id, {}).value().size() == 2);

  // No row matches, and no byte of the files holds the text.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &db) == SQLITE_OK);
  for (const char* sql :
       {"SELECT count(*) FROM messages WHERE text LIKE '%AB-9981%'",
        "SELECT count(*) FROM replies WHERE draft_text LIKE '%AB-9981%' OR final_text LIKE "
        "'%AB-9981%'",
        "SELECT count(*) FROM audit WHERE before LIKE '%AB-9981%' OR after LIKE '%AB-9981%'",
        "SELECT count(*) FROM chats WHERE external_id = '123456'"}) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(sqlite3_column_int(stmt, 0) == 0);
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  const std::string bytes = file_bytes(f.path) + file_bytes(f.path + "-wal");
  CHECK(bytes.find("AB-9981") == std::string::npos);
  CHECK(bytes.find("User 123456") == std::string::npos);
  CHECK(bytes.find("a neighbour's answer") != std::string::npos);  // the search is honest
}

}  // namespace llmassist::testing
