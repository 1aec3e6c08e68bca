// The SQLite AccountStore and the account commands, on real database files in temporary folders:
// the AccountStore conformance suite (llmassist/testing/account_store_conformance.h), each check
// a subcase named after it, then what is the SQLite store's own. Password hashing uses
// libsodium's minimum limits (fast) except where a test says otherwise.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sodium.h>
#include <sqlite3.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/testing/account_store_conformance.h"
#include "programs/account_commands.h"
#include "support/conformance_subcases.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::ManualClock;
using llmassist::testing::TempDir;

namespace {

constexpr std::string_view kPassword = "correct horse battery";

// Options for a store in `path` that hash fast.
SqliteAccountStoreOptions fast_options(const std::string& path, std::shared_ptr<Clock> clock) {
  SqliteAccountStoreOptions o;
  o.path = path;
  o.sync = SqliteSync::kNormal;
  o.password_ops = crypto_pwhash_OPSLIMIT_MIN;
  o.password_memory = crypto_pwhash_MEMLIMIT_MIN;
  o.clock = std::move(clock);
  o.logger = null_logger();
  return o;
}

struct Fixture {
  TempDir dir;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::unique_ptr<AccountStore> store;

  Fixture() { store = open(); }

  SqliteAccountStoreOptions options() const { return fast_options(dir.file("store.db"), clock); }

  std::unique_ptr<AccountStore> open() const { return open(options()); }

  static std::unique_ptr<AccountStore> open(const SqliteAccountStoreOptions& o) {
    auto opened = open_sqlite_account_store(o);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    return std::move(opened).value();
  }

  Account add(const std::string& name, AccountRole role = AccountRole::kOperator) {
    auto a = store->create_account(name, kPassword, role);
    REQUIRE_MESSAGE(a.ok(), a.status().to_string());
    return *a;
  }

  // A token and a session of an account.
  std::pair<NewApiToken, WebSession> credentials(const std::string& name) {
    auto token = store->create_token(name, "");
    auto session = store->create_session(name, std::chrono::hours(1));
    REQUIRE(token.ok());
    REQUIRE(session.ok());
    return {*token, *session};
  }

  // One text column of the first row of `sql`, read straight from the file.
  std::string query_text(const std::string& sql) const {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(dir.file("store.db").c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  // Every byte of the database and its write-ahead log.
  std::string raw_bytes() const {
    std::string bytes;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(dir.file("store.db") + suffix, std::ios::binary);
      bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return bytes;
  }
};

struct CommandResult {
  int code = 0;
  std::string out;
  std::string err;
};

CommandResult run(AccountStore& store, const std::vector<std::string>& args,
                  const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  CommandResult r;
  r.code = run_account_command(store, args, in, out, err, false);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace

TEST_CASE("AccountStore conformance: the SQLite account store") {
  std::vector<std::unique_ptr<TempDir>> dirs;
  const testing::AccountStoreFactory factory =
      [&](std::shared_ptr<Clock> clock) -> Result<std::unique_ptr<AccountStore>> {
    dirs.push_back(std::make_unique<TempDir>());
    return open_sqlite_account_store(fast_options(dirs.back()->file("store.db"), std::move(clock)));
  };
  testing::run_checks_as_subcases(testing::account_store_check_names(), [&](const std::string& n) {
    return testing::run_account_store_check(n, factory);
  });
}

TEST_CASE("account store: roles print and parse") {
  for (AccountRole role : {AccountRole::kViewer, AccountRole::kOperator, AccountRole::kAdmin}) {
    CHECK(parse_account_role(to_string(role)) == role);
  }
  CHECK(to_string(AccountRole::kAdmin) == "admin");
  CHECK_FALSE(parse_account_role("root").has_value());
  CHECK_FALSE(parse_account_role("Admin").has_value());
}

TEST_CASE("account store: the password is stored as an argon2id hash only") {
  Fixture f;
  f.add("alice");
  const std::string hash = f.query_text("SELECT password_hash FROM accounts WHERE name = 'alice'");
  CHECK(hash.starts_with("$argon2id$"));
  CHECK(hash.find(kPassword) == std::string::npos);
  CHECK(f.raw_bytes().find(kPassword) == std::string::npos);
}

TEST_CASE("account store: the default limits hash with argon2id at 19 MiB and 2 passes") {
  Fixture f;
  SqliteAccountStoreOptions defaults = f.options();
  defaults.password_ops = SqliteAccountStoreOptions{}.password_ops;
  defaults.password_memory = SqliteAccountStoreOptions{}.password_memory;
  auto store = Fixture::open(defaults);
  REQUIRE(store->create_account("dana", kPassword, AccountRole::kViewer).ok());
  CHECK(f.query_text("SELECT password_hash FROM accounts WHERE name = 'dana'")
            .starts_with("$argon2id$v=19$m=19456,t=2,"));
  CHECK(store->verify_password("dana", kPassword).ok());
  CHECK(store->verify_password("dana", "wrong password").status().code() ==
        StatusCode::kUnauthenticated);
}

TEST_CASE("account store: a hash made with other limits is remade at the next sign-in") {
  Fixture f;
  f.add("alice");
  const std::string before = f.query_text("SELECT password_hash FROM accounts");
  SqliteAccountStoreOptions stronger = f.options();
  stronger.password_ops = crypto_pwhash_OPSLIMIT_MIN + 1;
  auto store = Fixture::open(stronger);
  REQUIRE(store->verify_password("alice", kPassword).ok());
  const std::string after = f.query_text("SELECT password_hash FROM accounts");
  CHECK(after != before);
  CHECK(after.find(fmt::format(",t={},", crypto_pwhash_OPSLIMIT_MIN + 1)) != std::string::npos);
  CHECK(f.store->verify_password("alice", kPassword).ok());
}

TEST_CASE("account store: no secret is stored, only its digest") {
  Fixture f;
  f.add("alice");
  const auto [token, session] = f.credentials("alice");
  const std::string bytes = f.raw_bytes();
  CHECK(bytes.find(token.secret) == std::string::npos);
  CHECK(bytes.find(token.secret.substr(4)) == std::string::npos);
  CHECK(bytes.find(session.secret) == std::string::npos);
  CHECK(f.query_text("SELECT digest FROM api_tokens").size() == 64);
}

TEST_CASE("account store: an expired session is deleted when it is looked up") {
  Fixture f;
  f.add("alice");
  auto made = f.store->create_session("alice", 1h);
  REQUIRE(made.ok());
  CHECK(f.query_text("SELECT count(*) FROM web_sessions") == "1");
  f.clock->advance(1h);
  CHECK(f.store->find_session(made->secret).status().code() == StatusCode::kUnauthenticated);
  CHECK(f.query_text("SELECT count(*) FROM web_sessions") == "0");
}

TEST_CASE("account store: shares its file with the message store, each with its own schema") {
  Fixture f;
  f.add("alice");
  SqliteStoreOptions options;
  options.path = f.dir.file("store.db");
  options.logger = null_logger();
  options.sync = SqliteSync::kNormal;
  auto messages = open_sqlite_store(options);
  REQUIRE_MESSAGE(messages.ok(), messages.status().to_string());
  CHECK(f.query_text("PRAGMA user_version") == std::to_string(kSqliteSchemaVersion));
  CHECK(f.query_text("SELECT version FROM account_schema") ==
        std::to_string(kAccountSchemaVersion));
  auto chat = (*messages)->upsert_chat({"telegram", "1", "Ann", "ann"});
  REQUIRE(chat.ok());

  // Opened again, in the other order, both find their data.
  messages->reset();
  f.store.reset();
  auto reopened = open_sqlite_store(options);
  REQUIRE(reopened.ok());
  f.store = f.open();
  CHECK((*reopened)->get_chat(chat->id).ok());
  CHECK(f.store->verify_password("alice", kPassword).ok());
}

TEST_CASE("account store: the account tables come after the message store's too") {
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir.file("store.db");
  options.logger = null_logger();
  REQUIRE(open_sqlite_store(options).ok());
  SqliteAccountStoreOptions account_options;
  account_options.path = options.path;
  account_options.password_ops = crypto_pwhash_OPSLIMIT_MIN;
  account_options.password_memory = crypto_pwhash_MEMLIMIT_MIN;
  account_options.logger = null_logger();
  auto accounts = open_sqlite_account_store(account_options);
  REQUIRE_MESSAGE(accounts.ok(), accounts.status().to_string());
  CHECK((*accounts)->create_account("alice", kPassword, AccountRole::kAdmin).ok());
  auto messages = open_sqlite_store(options);
  REQUIRE(messages.ok());
  CHECK((*messages)->upsert_chat({"telegram", "1", "", ""}).ok());
}

TEST_CASE("account store: two store objects on one file see each other's accounts") {
  Fixture f;
  auto other = f.open();
  f.add("alice");
  CHECK(other->verify_password("alice", kPassword).ok());
  auto token = other->create_token("alice", "");
  REQUIRE(token.ok());
  CHECK(f.store->authenticate_token(token->secret).ok());
  REQUIRE(other->set_disabled("alice", true).ok());
  CHECK(f.store->authenticate_token(token->secret).status().code() == StatusCode::kUnauthenticated);
}

TEST_CASE("account store: a newer account schema is refused, naming both versions") {
  Fixture f;
  f.store.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.dir.file("store.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE account_schema SET version = 99", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  sqlite3_close(db);
  auto r = open_sqlite_account_store(f.options());
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r.status().message().find("account schema version 99") != std::string::npos);
  CHECK(r.status().message().find(fmt::format("the {} this build", kAccountSchemaVersion)) !=
        std::string::npos);
  // The message store's own version is untouched.
  CHECK(f.query_text("PRAGMA user_version") == "0");
}

TEST_CASE("account store: options outside libsodium's range and in-memory paths are refused") {
  TempDir dir;
  SqliteAccountStoreOptions o;
  o.path = dir.file("a.db");
  o.password_memory = 1024;
  CHECK(open_sqlite_account_store(o).status().code() == StatusCode::kInvalidArgument);
  o.password_memory = crypto_pwhash_MEMLIMIT_MIN;
  o.password_ops = 0;
  CHECK(open_sqlite_account_store(o).status().code() == StatusCode::kInvalidArgument);
  o.password_ops = crypto_pwhash_OPSLIMIT_MIN;
  o.path = ":memory:";
  CHECK(open_sqlite_account_store(o).status().code() == StatusCode::kInvalidArgument);
  o.path = "";
  CHECK(open_sqlite_account_store(o).status().code() == StatusCode::kInvalidArgument);
}

// ---- the commands ----------------------------------------------------------------------------

TEST_CASE("account commands: user add reads the password from the stream") {
  Fixture f;
  auto r = run(*f.store, {"user", "add", "alice", "--role", "admin"},
               std::string(kPassword) + "\nignored\n");
  CHECK(r.code == 0);
  CHECK(r.out.find("alice") != std::string::npos);
  CHECK(r.out.find(kPassword) == std::string::npos);
  auto a = f.store->verify_password("alice", kPassword);
  REQUIRE(a.ok());
  CHECK(a->role == AccountRole::kAdmin);

  auto taken = run(*f.store, {"user", "add", "alice", "--role", "viewer"}, "another password\n");
  CHECK(taken.code == 1);
  CHECK(taken.err.find("exists already") != std::string::npos);
  auto weak = run(*f.store, {"user", "add", "bob", "--role", "viewer"}, "short\n");
  CHECK(weak.code == 1);
  CHECK(weak.err.find("10 to 1024") != std::string::npos);
  CHECK(weak.err.find("short") == std::string::npos);
  CHECK(run(*f.store, {"user", "add", "bob", "--role", "viewer"}, "").code == 2);
}

TEST_CASE("account commands: user list, role, disable, enable, passwd, del") {
  Fixture f;
  f.add("alice", AccountRole::kAdmin);
  f.add("bob", AccountRole::kViewer);
  auto listed = run(*f.store, {"user", "list", "--json"});
  REQUIRE(listed.code == 0);
  const auto json = nlohmann::json::parse(listed.out);
  REQUIRE(json.size() == 2);
  CHECK(json[0]["name"] == "alice");
  CHECK(json[0]["role"] == "admin");
  CHECK(json[0]["disabled"] == false);
  CHECK(json[0]["last_sign_in"].is_null());
  CHECK(listed.out.find("argon2") == std::string::npos);

  CHECK(run(*f.store, {"user", "role", "bob", "operator"}).code == 0);
  CHECK(f.store->get_account("bob")->role == AccountRole::kOperator);
  CHECK(run(*f.store, {"user", "disable", "bob"}).code == 0);
  CHECK(f.store->get_account("bob")->disabled);
  auto text = run(*f.store, {"user", "list"});
  CHECK(text.out.find("bob  operator · disabled") != std::string::npos);
  CHECK(run(*f.store, {"user", "enable", "bob"}).code == 0);
  CHECK_FALSE(f.store->get_account("bob")->disabled);
  CHECK(run(*f.store, {"user", "passwd", "bob"}, "the new password\n").code == 0);
  CHECK(f.store->verify_password("bob", "the new password").ok());
  CHECK(run(*f.store, {"user", "passwd", "nobody"}, "the new password\n").code == 1);
  CHECK(run(*f.store, {"user", "del", "bob"}).code == 0);
  CHECK(f.store->get_account("bob").status().code() == StatusCode::kNotFound);
  CHECK(run(*f.store, {"user", "del", "bob"}).code == 1);
}

TEST_CASE("account commands: token add prints a secret that authenticates, once") {
  Fixture f;
  f.add("alice", AccountRole::kOperator);
  auto r = run(*f.store, {"token", "add", "alice", "--label", "nightly export"});
  REQUIRE(r.code == 0);
  const auto at = r.out.find("lla_");
  REQUIRE(at != std::string::npos);
  const std::string secret = r.out.substr(at, 4 + 43);
  CHECK(r.out.find("will not be shown again") != std::string::npos);
  auto who = f.store->authenticate_token(secret);
  REQUIRE(who.ok());
  CHECK(who->name == "alice");

  auto listed = run(*f.store, {"token", "list", "alice"});
  CHECK(listed.code == 0);
  CHECK(listed.out.find("nightly export") != std::string::npos);
  CHECK(listed.out.find("lla_") == std::string::npos);
  auto json = nlohmann::json::parse(run(*f.store, {"token", "list", "--json"}).out);
  REQUIRE(json.size() == 1);
  CHECK(json[0]["label"] == "nightly export");
  CHECK(json[0]["revoked_at"].is_null());

  const std::string id = std::to_string(json[0]["id"].get<std::int64_t>());
  CHECK(run(*f.store, {"token", "revoke", id}).code == 0);
  CHECK(f.store->authenticate_token(secret).status().code() == StatusCode::kUnauthenticated);
  CHECK(run(*f.store, {"token", "list"}).out.find("revoked") != std::string::npos);
  CHECK(run(*f.store, {"token", "revoke", "999"}).code == 1);
}

TEST_CASE("account commands: a wrong command line exits with 2") {
  Fixture f;
  f.add("alice");
  CHECK(run(*f.store, {}).code == 2);
  CHECK(run(*f.store, {"user"}).code == 2);
  CHECK(run(*f.store, {"user", "fly"}).code == 2);
  CHECK(run(*f.store, {"group", "add"}).code == 2);
  CHECK(run(*f.store, {"user", "add", "bob"}, "a good password\n").code == 2);
  CHECK(run(*f.store, {"user", "add", "bob", "--role", "root"}, "a good password\n").code == 2);
  CHECK(run(*f.store, {"user", "add", "--role", "admin"}, "a good password\n").code == 2);
  CHECK(run(*f.store, {"user", "role", "alice"}).code == 2);
  CHECK(run(*f.store, {"user", "role", "alice", "boss"}).code == 2);
  CHECK(run(*f.store, {"user", "list", "--all"}).code == 2);
  CHECK(run(*f.store, {"token", "revoke", "abc"}).code == 2);
  CHECK(run(*f.store, {"token", "add"}).code == 2);
  CHECK(run(*f.store, {"token", "list", "a", "b"}).code == 2);
  auto help = run(*f.store, {"user", "list", "--help"});
  CHECK(help.code == 0);
  CHECK(help.out == account_commands_help());
  CHECK(run(*f.store, {"token", "--help"}).out == account_commands_help());
  CHECK(f.store->list_accounts()->size() == 1);
}
