// The SQLite AccountStore. Each method is at most two short transactions on a pooled connection;
// password hashing (tens of milliseconds) happens outside them, so that a sign-in never holds the
// database's write lock while it hashes.
//
// Secrets: passwords are kept as argon2id strings; API token and session secrets as the hex
// SHA-256 of the secret, looked up by that digest (an index, not a comparison loop: the secrets
// are 256 random bits, so a lookup reveals nothing an attacker could use). No secret reaches a
// Status message or a log line.
#include "llmassist/admin/sqlite_account_store.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

#include "admin/account_rules.h"
#include "llmassist/core/store_moderation_queue.h"
#include "sqlite/sqlite_db.h"
#include "sqlite/sqlite_schema.h"

namespace llmassist {
namespace {

using detail::collect;
using detail::Connection;
using detail::ConnectionPool;
using detail::digest_of;
using detail::PasswordHasher;
using detail::single;
using detail::Statement;
using detail::to_millis;
using detail::Transaction;

// Migration N brings the account schema from version N to N + 1. Never edit a released
// migration: add a new one. Times are milliseconds since the Unix epoch, UTC.
constexpr std::array<std::string_view, 1> kMigrations = {
    R"sql(
CREATE TABLE accounts (
  id            INTEGER PRIMARY KEY,
  name          TEXT    NOT NULL UNIQUE,
  role          TEXT    NOT NULL,
  password_hash TEXT    NOT NULL,
  disabled      INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  last_sign_in  INTEGER
);
CREATE TABLE api_tokens (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  digest     TEXT    NOT NULL UNIQUE,
  label      TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  last_used  INTEGER,
  revoked_at INTEGER
);
CREATE INDEX api_tokens_by_account ON api_tokens(account_id, id);
CREATE TABLE web_sessions (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  digest     TEXT    NOT NULL UNIQUE,
  csrf_token TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_account ON web_sessions(account_id);
CREATE INDEX web_sessions_by_expiry ON web_sessions(expires_at);
)sql",
};

// The account schema keeps its version in a table of its own: PRAGMA user_version belongs to the
// message store, which may share the file.
constexpr detail::SchemaDefinition kAccountSchema{
    .name = "account schema",
    .migrations = kMigrations,
    .prepare_sql = "CREATE TABLE IF NOT EXISTS account_schema (version INTEGER NOT NULL)",
    .read_version_sql = "SELECT max(version) FROM account_schema",
    .write_version_sql =
        "DELETE FROM account_schema; INSERT INTO account_schema (version) VALUES ({})",
};

// Connections for concurrent readers; writers take turns on SQLite's lock.
constexpr int kMaxConnections = 4;

// ---- row readers: each matches the column list beside it ----------------------------------

constexpr const char* kAccountColumns =
    "a.id, a.name, a.role, a.disabled, a.created_at, a.last_sign_in";
constexpr int kAccountColumnCount = 6;
Account read_account(const Statement& s) {
  Account a;
  a.id = s.int64(0);
  a.name = s.text(1);
  a.role = parse_account_role(s.text(2)).value_or(AccountRole::kViewer);
  a.disabled = s.int64(3) != 0;
  a.created_at = s.time(4);
  a.last_sign_in = s.opt_time(5);
  return a;
}

constexpr const char* kTokenColumns =
    "t.id, a.name, t.label, t.created_at, t.last_used, t.revoked_at";
ApiToken read_token(const Statement& s) {
  ApiToken t;
  t.id = s.int64(0);
  t.account = s.text(1);
  t.label = s.text(2);
  t.created_at = s.time(3);
  t.last_used = s.opt_time(4);
  t.revoked_at = s.opt_time(5);
  return t;
}

class SqliteAccountStore final : public AccountStore {
 public:
  SqliteAccountStore(const SqliteAccountStoreOptions& options, std::unique_ptr<Connection> first,
                     PasswordHasher hasher)
      : clock_(options.clock ? options.clock : system_clock()),
        logger_(options.logger ? options.logger : stderr_logger()),
        pool_(options.path, options.busy_timeout, options.sync == SqliteSync::kFull,
              kMaxConnections),
        hasher_(std::move(hasher)) {
    pool_.adopt(std::move(first));
  }

  // ---- accounts ----------------------------------------------------------------------------

  Result<Account> create_account(std::string_view name, std::string_view password,
                                 AccountRole role) override {
    LLMASSIST_ASSIGN_OR_RETURN(std::string hash,
                               detail::new_account_hash(hasher_, name, password, role));
    return write<Account>([&](Connection& c) -> Result<Account> {
      Account a;
      a.name = std::string(name);
      a.role = role;
      a.created_at = clock_->now();
      auto s = c.prepare(
          "INSERT INTO accounts (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4) "
          "ON CONFLICT (name) DO NOTHING");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(
          s->bind(name, to_string(role), hash, to_millis(a.created_at)).run());
      if (c.changes() == 0) {
        return detail::name_taken(name);
      }
      a.id = c.last_insert_id();
      return a;
    });
  }

  Result<Account> get_account(std::string_view name) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    return read<Account>([&](Connection& c) { return account_in(c, name); });
  }

  Result<std::vector<Account>> list_accounts() override {
    return read<std::vector<Account>>([&](Connection& c) -> Result<std::vector<Account>> {
      auto s = c.prepare(fmt::format("SELECT {} FROM accounts a ORDER BY a.name", kAccountColumns));
      if (!s.ok()) return s.status();
      return collect<Account>(*s, read_account);
    });
  }

  Status set_password(std::string_view name, std::string_view password) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    LLMASSIST_RETURN_IF_ERROR(detail::check_password(password));
    LLMASSIST_ASSIGN_OR_RETURN(std::string hash, hasher_.hash(password));
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_ASSIGN_OR_RETURN(Account a, account_in(c, name));
      auto s = c.prepare("UPDATE accounts SET password_hash = ?2 WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(a.id, hash).run());
      return end_sessions_in(c, a.id);
    });
  }

  Status set_role(std::string_view name, AccountRole role) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    LLMASSIST_RETURN_IF_ERROR(detail::check_role(role));
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("UPDATE accounts SET role = ?2 WHERE name = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(name, to_string(role)).run());
      return c.changes() == 0 ? detail::no_account(name) : Status();
    });
  }

  Status set_disabled(std::string_view name, bool disabled) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_ASSIGN_OR_RETURN(Account a, account_in(c, name));
      auto s = c.prepare("UPDATE accounts SET disabled = ?2 WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(a.id, disabled ? 1 : 0).run());
      return disabled ? end_sessions_in(c, a.id) : Status();
    });
  }

  Status delete_account(std::string_view name) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_ASSIGN_OR_RETURN(Account a, account_in(c, name));
      LLMASSIST_RETURN_IF_ERROR(end_sessions_in(c, a.id));
      auto tokens = c.prepare("DELETE FROM api_tokens WHERE account_id = ?1");
      if (!tokens.ok()) return tokens.status();
      LLMASSIST_RETURN_IF_ERROR(tokens->bind(a.id).run());
      auto s = c.prepare("DELETE FROM accounts WHERE id = ?1");
      if (!s.ok()) return s.status();
      return s->bind(a.id).run();
    });
  }

  Result<Account> verify_password(std::string_view name, std::string_view password) override {
    using Found = std::optional<detail::StoredPassword>;
    return detail::sign_in(
        hasher_, password, clock_->now(), *logger_,
        [&] {
          return read<Found>([&](Connection& c) -> Result<Found> {
            auto s = c.prepare(fmt::format(
                "SELECT {}, a.password_hash FROM accounts a WHERE a.name = ?1", kAccountColumns));
            if (!s.ok()) return s.status();
            auto row = s->bind(name).step();
            if (!row.ok()) return row.status();
            if (!*row) return Found();
            return Found({read_account(*s), s->text(kAccountColumnCount)});
          });
        },
        [&](std::int64_t id, Timestamp now, const std::optional<std::string>& rehashed,
            const std::string& verified_hash) {
          return write_status([&](Connection& c) -> Status {
            auto s = c.prepare(
                "UPDATE accounts SET last_sign_in = ?2, password_hash = CASE WHEN ?3 IS NOT NULL "
                "AND password_hash = ?4 THEN ?3 ELSE password_hash END WHERE id = ?1");
            if (!s.ok()) return s.status();
            return s->bind(id, to_millis(now), rehashed, verified_hash).run();
          });
        });
  }

  // ---- API tokens --------------------------------------------------------------------------

  Result<NewApiToken> create_token(std::string_view account, std::string_view label) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(account));
    LLMASSIST_RETURN_IF_ERROR(detail::check_label(label));
    NewApiToken made = detail::new_api_token(account, label, clock_->now());
    auto id = write<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      LLMASSIST_ASSIGN_OR_RETURN(Account a, enabled_account_in(c, account));
      auto s = c.prepare(
          "INSERT INTO api_tokens (account_id, digest, label, created_at) "
          "VALUES (?1, ?2, ?3, ?4)");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(
          s->bind(a.id, digest_of(made.secret), label, to_millis(made.token.created_at)).run());
      return c.last_insert_id();
    });
    if (!id.ok()) return id.status();
    made.token.id = *id;
    return made;
  }

  Result<std::vector<ApiToken>> list_tokens(std::string_view account) override {
    if (!account.empty()) LLMASSIST_RETURN_IF_ERROR(check_operator_name(account));
    return read<std::vector<ApiToken>>([&](Connection& c) -> Result<std::vector<ApiToken>> {
      if (!account.empty()) LLMASSIST_RETURN_IF_ERROR(account_in(c, account).status());
      auto s = c.prepare(
          fmt::format("SELECT {} FROM api_tokens t JOIN accounts a ON a.id = t.account_id "
                      "WHERE ?1 = '' OR a.name = ?1 ORDER BY t.id",
                      kTokenColumns));
      if (!s.ok()) return s.status();
      s->bind(account);
      return collect<ApiToken>(*s, read_token);
    });
  }

  Status revoke_token(std::int64_t id) override {
    return write_status([&](Connection& c) -> Status {
      auto s =
          c.prepare("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(id, now_ms()).run());
      return c.changes() == 0 ? detail::no_token(id) : Status();
    });
  }

  Result<Account> authenticate_token(std::string_view secret) override {
    return detail::authenticate_by_token(
        secret, now_ms(), *logger_,
        [&](const std::string& digest) {
          return read<detail::StoredToken>([&](Connection& c) -> Result<detail::StoredToken> {
            auto s = c.prepare(fmt::format(
                "SELECT {}, t.id, t.last_used, t.revoked_at IS NOT NULL FROM api_tokens t "
                "JOIN accounts a ON a.id = t.account_id WHERE t.digest = ?1",
                kAccountColumns));
            if (!s.ok()) return s.status();
            s->bind(digest);
            return single<detail::StoredToken>(
                *s,
                [](const Statement& r) {
                  constexpr int n = kAccountColumnCount;
                  return detail::StoredToken{read_account(r), r.int64(n), r.opt_int64(n + 1),
                                             r.int64(n + 2) != 0};
                },
                detail::kBadToken);
          });
        },
        [&](std::int64_t id, std::int64_t now) {
          return write_status([&](Connection& c) -> Status {
            auto s = c.prepare(
                "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1 AND "
                "(last_used IS NULL OR last_used <= ?2 - ?3)");
            if (!s.ok()) return s.status();
            return s->bind(id, now, detail::kLastUsedResolutionMs).run();
          });
        });
  }

  // ---- web sessions ------------------------------------------------------------------------

  Result<WebSession> create_session(std::string_view account,
                                    std::chrono::seconds lifetime) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(account));
    const std::int64_t now = now_ms();
    LLMASSIST_ASSIGN_OR_RETURN(WebSession session,
                               detail::new_web_session(detail::from_millis(now), lifetime));
    auto a = write<Account>([&](Connection& c) -> Result<Account> {
      LLMASSIST_ASSIGN_OR_RETURN(Account found, enabled_account_in(c, account));
      // Expired sessions are swept here, where sessions are made, so that the table stays the
      // size of the live ones.
      auto sweep = c.prepare("DELETE FROM web_sessions WHERE expires_at <= ?1");
      if (!sweep.ok()) return sweep.status();
      LLMASSIST_RETURN_IF_ERROR(sweep->bind(now).run());
      auto s = c.prepare(
          "INSERT INTO web_sessions (account_id, digest, csrf_token, created_at, expires_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5)");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(found.id, digest_of(session.secret), session.csrf_token,
                                        now, to_millis(session.expires_at))
                                    .run());
      return found;
    });
    if (!a.ok()) return a.status();
    session.account = std::move(a).value();
    return session;
  }

  Result<WebSession> find_session(std::string_view secret) override {
    return detail::find_live_session(
        secret, now_ms(), *logger_,
        [&](const std::string& digest) {
          return read<WebSession>([&](Connection& c) -> Result<WebSession> {
            auto s =
                c.prepare(fmt::format("SELECT {}, s.csrf_token, s.expires_at FROM web_sessions s "
                                      "JOIN accounts a ON a.id = s.account_id WHERE s.digest = ?1",
                                      kAccountColumns));
            if (!s.ok()) return s.status();
            s->bind(digest);
            return single<WebSession>(
                *s,
                [](const Statement& r) {
                  WebSession w;
                  w.account = read_account(r);
                  w.csrf_token = r.text(kAccountColumnCount);
                  w.expires_at = r.time(kAccountColumnCount + 1);
                  return w;
                },
                detail::kBadSession);
          });
        },
        [&] { return end_session(secret); });
  }

  Status end_session(std::string_view secret) override {
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("DELETE FROM web_sessions WHERE digest = ?1");
      if (!s.ok()) return s.status();
      return s->bind(digest_of(secret)).run();
    });
  }

 private:
  template <typename T, typename Body>
  Result<T> write(Body&& body) {
    return detail::in_transaction<T>(pool_, Transaction::Kind::kWrite, std::forward<Body>(body));
  }
  template <typename Body>
  Status write_status(Body&& body) {
    return detail::in_transaction_status(pool_, Transaction::Kind::kWrite,
                                         std::forward<Body>(body));
  }
  template <typename T, typename Body>
  Result<T> read(Body&& body) {
    return detail::in_transaction<T>(pool_, Transaction::Kind::kRead, std::forward<Body>(body));
  }

  std::int64_t now_ms() const { return to_millis(clock_->now()); }

  static Result<Account> account_in(Connection& c, std::string_view name) {
    auto s = c.prepare(fmt::format("SELECT {} FROM accounts a WHERE a.name = ?1", kAccountColumns));
    if (!s.ok()) return s.status();
    s->bind(name);
    auto found = single<Account>(*s, read_account, "");
    if (!found.ok() && found.status().code() == StatusCode::kNotFound)
      return detail::no_account(name);
    return found;
  }

  static Result<Account> enabled_account_in(Connection& c, std::string_view name) {
    LLMASSIST_ASSIGN_OR_RETURN(Account a, account_in(c, name));
    if (a.disabled) return detail::account_disabled(name);
    return a;
  }

  static Status end_sessions_in(Connection& c, std::int64_t account_id) {
    auto s = c.prepare("DELETE FROM web_sessions WHERE account_id = ?1");
    if (!s.ok()) return s.status();
    return s->bind(account_id).run();
  }

  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<Logger> logger_;
  ConnectionPool pool_;
  const PasswordHasher hasher_;
};

}  // namespace

Result<std::unique_ptr<AccountStore>> open_sqlite_account_store(
    const SqliteAccountStoreOptions& options) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_database_path(options.path, "the account store"));
  LLMASSIST_ASSIGN_OR_RETURN(
      PasswordHasher hasher,
      PasswordHasher::make({.ops = options.password_ops, .memory = options.password_memory}));
  LLMASSIST_RETURN_IF_ERROR(detail::create_private_file(
      options.path, *(options.logger ? options.logger : stderr_logger()), detail::kAccountsLog));
  auto first =
      Connection::open(options.path, options.busy_timeout, options.sync == SqliteSync::kFull);
  if (!first.ok()) return first.status();
  LLMASSIST_RETURN_IF_ERROR(detail::migrate_schema(**first, kAccountSchema, kAccountSchemaVersion));
  return std::unique_ptr<AccountStore>(
      new SqliteAccountStore(options, std::move(first).value(), std::move(hasher)));
}

}  // namespace llmassist
