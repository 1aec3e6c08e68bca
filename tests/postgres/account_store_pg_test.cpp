// The PostgreSQL AccountStore on the tests' PostgreSQL server (tests/support/test_postgres.h):
// the AccountStore conformance suite (llmassist/testing/account_store_conformance.h), each check a
// subcase in a fresh schema, then what is PostgreSQL's own — the tables beside the message
// store's, the version row, and what is stored of a secret, read with libpq. Password hashing
// uses libsodium's minimum limits (fast).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <sodium.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "llmassist/postgres/postgres_store.h"
#include "llmassist/testing/account_store_conformance.h"
#include "support/conformance_subcases.h"
#include "support/free_port.h"
#include "support/test_postgres.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::test_postgres;

namespace {

constexpr std::string_view kPassword = "correct horse battery";

PostgresAccountStoreOptions account_options(const std::string& schema,
                                            std::shared_ptr<Clock> clock = nullptr) {
  PostgresAccountStoreOptions o;
  o.connect = test_postgres().connect_options(schema);
  o.connect.clock = std::move(clock);
  o.connect.logger = null_logger();
  o.password_ops = crypto_pwhash_OPSLIMIT_MIN;
  o.password_memory = crypto_pwhash_MEMLIMIT_MIN;
  return o;
}

std::unique_ptr<AccountStore> open_accounts(const std::string& schema) {
  auto opened = open_postgres_account_store(account_options(schema));
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  return std::move(opened).value();
}

// A libpq connection of the test's own, straight to the server, with `schema` first on the
// search path.
class Sql {
 public:
  explicit Sql(const std::string& schema) {
    const std::string password = test_postgres().password;
    const char* keys[] = {"dbname", "password", nullptr};
    const char* values[] = {test_postgres().url.c_str(), password.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    REQUIRE_MESSAGE(PQstatus(conn_) == CONNECTION_OK, PQerrorMessage(conn_));
    rows(fmt::format("SET search_path TO {}", schema));
  }
  ~Sql() { PQfinish(conn_); }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  // The first column of every row of `sql` ("" for NULL).
  std::vector<std::string> rows(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType status = PQresultStatus(r);
    const bool ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK;
    const std::string error = ok ? "" : PQresultErrorMessage(r);
    std::vector<std::string> out;
    for (int i = 0; ok && i < PQntuples(r); ++i) out.emplace_back(PQgetvalue(r, i, 0));
    PQclear(r);
    REQUIRE_MESSAGE(ok, sql << ": " << error);
    return out;
  }
  std::string one(const std::string& sql) {
    auto all = rows(sql);
    REQUIRE_MESSAGE(all.size() == 1, sql << ": " << all.size() << " rows");
    return all[0];
  }

 private:
  PGconn* conn_ = nullptr;
};

}  // namespace

TEST_CASE("AccountStore conformance: the PostgreSQL account store") {
  const testing::AccountStoreFactory factory =
      [](std::shared_ptr<Clock> clock) -> Result<std::unique_ptr<AccountStore>> {
    return open_postgres_account_store(
        account_options(test_postgres().fresh_schema(), std::move(clock)));
  };
  testing::run_checks_as_subcases(testing::account_store_check_names(), [&](const std::string& n) {
    return testing::run_account_store_check(n, factory);
  });
}

TEST_CASE("postgres account store: its tables sit beside the message store's, each versioned") {
  const std::string schema = test_postgres().fresh_schema();
  PostgresStoreOptions store_options;
  store_options.connect = test_postgres().connect_options(schema);
  store_options.connect.logger = null_logger();
  auto messages = open_postgres_store(store_options);
  REQUIRE_MESSAGE(messages.ok(), messages.status().to_string());
  auto accounts = open_accounts(schema);
  REQUIRE(accounts->create_account("alice", kPassword, AccountRole::kAdmin).ok());
  auto chat = (*messages)->upsert_chat({"telegram", "1", "Ann", "ann"});
  REQUIRE(chat.ok());

  Sql sql(schema);
  CHECK(sql.one("SELECT version FROM llmassist_schema WHERE component = 'store'") ==
        std::to_string(kPostgresSchemaVersion));
  CHECK(sql.one("SELECT version FROM llmassist_schema WHERE component = 'accounts'") == "1");
  CHECK(sql.rows(fmt::format("SELECT table_name FROM information_schema.tables WHERE "
                             "table_schema = '{}' AND table_name IN ('accounts', 'api_tokens', "
                             "'web_sessions') ORDER BY table_name",
                             schema)) ==
        std::vector<std::string>{"accounts", "api_tokens", "web_sessions"});

  // Opened again, in the other order, both find their data.
  messages->reset();
  accounts.reset();
  accounts = open_accounts(schema);
  auto reopened = open_postgres_store(store_options);
  REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
  CHECK((*reopened)->get_chat(chat->id).ok());
  CHECK(accounts->verify_password("alice", kPassword).ok());
}

TEST_CASE("postgres account store: a newer account schema is refused, naming both versions") {
  const std::string schema = test_postgres().fresh_schema();
  open_accounts(schema).reset();
  Sql sql(schema);
  const std::string current =
      sql.one("SELECT version FROM llmassist_schema WHERE component = 'accounts'");
  sql.rows("UPDATE llmassist_schema SET version = 99 WHERE component = 'accounts'");
  auto refused = open_postgres_account_store(account_options(schema));
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  const std::string message = refused.status().message();
  CHECK_MESSAGE(message.find("accounts version 99") != std::string::npos, message);
  CHECK_MESSAGE(message.find(fmt::format("the {} this build", current)) != std::string::npos,
                message);
  CHECK(sql.one("SELECT version FROM llmassist_schema WHERE component = 'accounts'") == "99");
}

TEST_CASE("postgres account store: no secret is stored, only its digest") {
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_accounts(schema);
  REQUIRE(store->create_account("alice", kPassword, AccountRole::kOperator).ok());
  auto token = store->create_token("alice", "nightly");
  auto session = store->create_session("alice", 1h);
  REQUIRE(token.ok());
  REQUIRE(session.ok());

  Sql sql(schema);
  std::string everything;
  for (const char* table : {"accounts", "api_tokens", "web_sessions"}) {
    for (const std::string& row : sql.rows(fmt::format("SELECT t::text FROM {} t", table))) {
      everything += row + '\n';
    }
  }
  CHECK(everything.find(kPassword) == std::string::npos);
  CHECK(everything.find(token->secret) == std::string::npos);
  CHECK(everything.find(token->secret.substr(4)) == std::string::npos);
  CHECK(everything.find(session->secret) == std::string::npos);
  CHECK(sql.one("SELECT password_hash FROM accounts").starts_with("$argon2id$"));
  const std::string digest = sql.one("SELECT digest FROM api_tokens");
  CHECK(digest.size() == 64);
  CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(sql.one("SELECT digest FROM web_sessions").size() == 64);
}

TEST_CASE("postgres account store: a hash made with other limits is remade at the next sign-in") {
  const std::string schema = test_postgres().fresh_schema();
  auto weaker = open_accounts(schema);
  REQUIRE(weaker->create_account("alice", kPassword, AccountRole::kOperator).ok());
  Sql sql(schema);
  const std::string before = sql.one("SELECT password_hash FROM accounts");
  PostgresAccountStoreOptions stronger = account_options(schema);
  stronger.password_ops = crypto_pwhash_OPSLIMIT_MIN + 1;
  auto store = open_postgres_account_store(stronger);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  REQUIRE((*store)->verify_password("alice", kPassword).ok());
  const std::string after = sql.one("SELECT password_hash FROM accounts");
  CHECK(after != before);
  CHECK(after.find(fmt::format(",t={},", crypto_pwhash_OPSLIMIT_MIN + 1)) != std::string::npos);
  // Signing in at the limits the hash was made with leaves it alone.
  REQUIRE((*store)->verify_password("alice", kPassword).ok());
  CHECK(sql.one("SELECT password_hash FROM accounts") == after);
  CHECK(weaker->verify_password("alice", kPassword).ok());
}

TEST_CASE("postgres account store: two store objects on one schema see each other's changes") {
  const std::string schema = test_postgres().fresh_schema();
  auto one = open_accounts(schema);
  auto two = open_accounts(schema);
  REQUIRE(one->create_account("alice", kPassword, AccountRole::kOperator).ok());
  CHECK(two->create_account("alice", kPassword, AccountRole::kViewer).status().code() ==
        StatusCode::kAlreadyExists);
  CHECK(two->verify_password("alice", kPassword).ok());
  auto token = two->create_token("alice", "");
  REQUIRE(token.ok());
  CHECK(one->authenticate_token(token->secret).ok());
  REQUIRE(two->set_disabled("alice", true).ok());
  CHECK(one->authenticate_token(token->secret).status().code() == StatusCode::kUnauthenticated);
}

TEST_CASE("postgres account store: a name PostgreSQL cannot hold signs in to nothing") {
  auto store = open_accounts(test_postgres().fresh_schema());
  REQUIRE(store->create_account("alice", kPassword, AccountRole::kOperator).ok());
  for (const std::string& name : {std::string("al\xff"), std::string("al\0ice", 6)}) {
    auto r = store->verify_password(name, kPassword);
    CHECK(r.status().code() == StatusCode::kUnauthenticated);
    CHECK(r.status().message() == "wrong name or password");
    CHECK(store->get_account(name).status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("postgres account store: bad options are refused before connecting") {
  PostgresAccountStoreOptions o = account_options(test_postgres().fresh_schema());
  o.password_memory = 1024;
  CHECK(open_postgres_account_store(o).status().code() == StatusCode::kInvalidArgument);
  o.password_memory = crypto_pwhash_MEMLIMIT_MIN;
  o.password_ops = 0;
  CHECK(open_postgres_account_store(o).status().code() == StatusCode::kInvalidArgument);
  o.password_ops = crypto_pwhash_OPSLIMIT_MIN;
  o.connect.schema = "no-dashes";
  CHECK(open_postgres_account_store(o).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("postgres account store: no session made while the account is disabled outlives it") {
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_accounts(schema);
  auto other = open_accounts(schema);
  REQUIRE(store->create_account("alice", kPassword, AccountRole::kOperator).ok());

  // Browsers sign in on one store object while the other disables the account: each session
  // made before the disabling is ended by it, and none is made after it.
  std::mutex mu;
  std::vector<std::string> made;  // guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> browsers;
  for (int i = 0; i < 4; ++i) {
    browsers.emplace_back([&] {
      while (!stop) {
        auto s = store->create_session("alice", 1h);
        if (s.ok()) {
          std::lock_guard lock(mu);
          made.push_back(s->secret);
        } else if (s.status().code() == StatusCode::kFailedPrecondition) {
          ++refused;
        }
      }
    });
  }
  const auto made_count = [&] {
    std::lock_guard lock(mu);
    return made.size();
  };
  REQUIRE(testing::wait_until([&] { return made_count() >= 20; }, 60s));
  REQUIRE(other->set_disabled("alice", true).ok());
  REQUIRE(testing::wait_until([&] { return refused.load() >= 4; }, 60s));
  stop = true;
  for (auto& b : browsers) b.join();

  REQUIRE(other->set_disabled("alice", false).ok());
  for (const std::string& secret : made) {
    CHECK(store->find_session(secret).status().code() == StatusCode::kUnauthenticated);
  }
  CHECK(Sql(schema).one("SELECT count(*) FROM web_sessions") == "0");
}

TEST_CASE("postgres account store: an unreachable server is kUnavailable, the password untold") {
  PostgresAccountStoreOptions o = account_options("public");
  o.connect.url =
      fmt::format("postgresql://llmassist@127.0.0.1:{}/llmassist", testing::free_port());
  o.connect.password = "a-secret-password-7731";
  o.connect.connect_timeout = 1s;
  o.connect.retry_for = 200ms;
  auto r = open_postgres_account_store(o);
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(r.status().message().find(o.connect.password) == std::string::npos);
  CHECK_MESSAGE(r.status().message().find("127.0.0.1") != std::string::npos, r.status().message());
}
