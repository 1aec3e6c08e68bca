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
#include <sodium.h>

#include <array>
#include <string_view>

#include "core/utf8.h"
#include "llmassist/core/store_moderation_queue.h"
#include "sqlite/sqlite_db.h"
#include "sqlite/sqlite_schema.h"

namespace llmassist {
namespace {

using detail::collect;
using detail::Connection;
using detail::ConnectionPool;
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

constexpr std::size_t kMinPasswordBytes = 10;
constexpr std::size_t kMaxPasswordBytes = 1024;
constexpr std::size_t kMaxLabelBytes = 200;
constexpr std::size_t kSecretBytes = 32;
constexpr std::string_view kTokenPrefix = "lla_";
// A token's last_used is written at most this often: a script calling the API in a loop must
// not cost a write per request.
constexpr std::int64_t kLastUsedResolutionMs = 60'000;
constexpr auto kMaxSessionLifetime = std::chrono::days(366);
// Connections for concurrent readers; writers take turns on SQLite's lock.
constexpr int kMaxConnections = 4;

// One message for an unknown name, a wrong password and a disabled account alike.
constexpr std::string_view kWrongCredentials = "wrong name or password";
constexpr std::string_view kBadToken = "unknown or revoked API token";
constexpr std::string_view kBadSession = "unknown or expired session";

constexpr auto kBase64Variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
constexpr std::size_t kSecretChars = sodium_base64_ENCODED_LEN(kSecretBytes, kBase64Variant) - 1;

// 32 random bytes as base64url without padding: 43 characters.
std::string random_secret() {
  std::array<unsigned char, kSecretBytes> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  std::array<char, kSecretChars + 1> text{};
  sodium_bin2base64(text.data(), text.size(), bytes.data(), bytes.size(), kBase64Variant);
  std::string out(text.data(), kSecretChars);
  sodium_memzero(bytes.data(), bytes.size());
  sodium_memzero(text.data(), text.size());
  return out;
}

// The hex SHA-256 of a secret: what the tables keep of it.
std::string digest_of(std::string_view secret) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size());
  std::array<char, crypto_hash_sha256_BYTES * 2 + 1> hex{};
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  return std::string(hex.data(), hex.size() - 1);
}

// The argon2id string of `password` at the options' limits.
Result<std::string> hash_password(std::string_view password,
                                  const SqliteAccountStoreOptions& options) {
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str_alg(out.data(), password.data(), password.size(), options.password_ops,
                            options.password_memory, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    // libsodium fails here only when it cannot allocate the memory.
    return resource_exhausted(
        fmt::format("not enough memory to hash a password ({} bytes)", options.password_memory));
  }
  return std::string(out.data());
}

Status check_password(std::string_view password) {
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return invalid_argument(fmt::format("a password must be {} to {} bytes long", kMinPasswordBytes,
                                        kMaxPasswordBytes));
  }
  return Status();
}

Status check_role(AccountRole role) {
  if (!parse_account_role(to_string(role))) {
    return invalid_argument("the role must be viewer, operator or admin");
  }
  return Status();
}

Status check_label(std::string_view label) {
  if (label.size() > kMaxLabelBytes) {
    return invalid_argument(fmt::format("a token's label is {} bytes, more than the {} allowed",
                                        label.size(), kMaxLabelBytes));
  }
  return detail::check_printable(label, "a token's label");
}

Status no_account(std::string_view name) {
  return not_found(fmt::format("no account named {}", name));
}

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

// An account with one more column: its password hash, or a token's or session's own fields.
template <typename Extra>
struct AccountWith {
  Account account;
  Extra extra;
};

class SqliteAccountStore final : public AccountStore {
 public:
  SqliteAccountStore(const SqliteAccountStoreOptions& options, std::unique_ptr<Connection> first,
                     std::string dummy_hash)
      : options_(options),
        clock_(options.clock ? options.clock : system_clock()),
        logger_(options.logger ? options.logger : stderr_logger()),
        pool_(options.path, options.busy_timeout, options.sync == SqliteSync::kFull,
              kMaxConnections),
        dummy_hash_(std::move(dummy_hash)) {
    pool_.adopt(std::move(first));
  }

  // ---- accounts ----------------------------------------------------------------------------

  Result<Account> create_account(std::string_view name, std::string_view password,
                                 AccountRole role) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(name));
    if (operator_actor(name) != "operator:" + std::string(name)) {
      return invalid_argument(fmt::format(
          "account name \"{}\" would read as a Telegram operator's id; choose another", name));
    }
    LLMASSIST_RETURN_IF_ERROR(check_password(password));
    LLMASSIST_RETURN_IF_ERROR(check_role(role));
    LLMASSIST_ASSIGN_OR_RETURN(std::string hash, hash_password(password, options_));
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
        return already_exists(fmt::format("an account named {} exists already", name));
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
    LLMASSIST_RETURN_IF_ERROR(check_password(password));
    LLMASSIST_ASSIGN_OR_RETURN(std::string hash, hash_password(password, options_));
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
    LLMASSIST_RETURN_IF_ERROR(check_role(role));
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("UPDATE accounts SET role = ?2 WHERE name = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(name, to_string(role)).run());
      return c.changes() == 0 ? no_account(name) : Status();
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
    // A password no account can have is refused before hashing, alike for every name: nothing
    // is learnt about which names exist, and a megabyte "password" costs no hashing.
    if (!check_password(password).ok()) return unauthenticated(std::string(kWrongCredentials));
    auto found = read<std::optional<AccountWith<std::string>>>(
        [&](Connection& c) -> Result<std::optional<AccountWith<std::string>>> {
          auto s = c.prepare(fmt::format(
              "SELECT {}, a.password_hash FROM accounts a WHERE a.name = ?1", kAccountColumns));
          if (!s.ok()) return s.status();
          auto row = s->bind(name).step();
          if (!row.ok()) return row.status();
          if (!*row) return std::optional<AccountWith<std::string>>();
          return std::optional<AccountWith<std::string>>(
              {read_account(*s), s->text(kAccountColumnCount)});
        });
    if (!found.ok()) return found.status();
    // An unknown name costs one verification too, against a hash made with the same limits.
    const std::string& hash = *found ? (*found)->extra : dummy_hash_;
    const bool match =
        crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    if (!*found || !match || (*found)->account.disabled) {
      return unauthenticated(std::string(kWrongCredentials));
    }
    Account account = std::move((*found)->account);
    std::optional<std::string> rehashed;
    if (crypto_pwhash_str_needs_rehash(hash.c_str(), options_.password_ops,
                                       options_.password_memory) != 0) {
      auto fresh = hash_password(password, options_);
      if (fresh.ok()) rehashed = std::move(fresh).value();
    }
    const Timestamp now = clock_->now();
    LLMASSIST_RETURN_IF_ERROR(write_status([&](Connection& c) -> Status {
      // The new hash replaces the one verified only: a password changed meanwhile stands.
      auto s = c.prepare(
          "UPDATE accounts SET last_sign_in = ?2, password_hash = CASE WHEN ?3 IS NOT NULL AND "
          "password_hash = ?4 THEN ?3 ELSE password_hash END WHERE id = ?1");
      if (!s.ok()) return s.status();
      return s->bind(account.id, to_millis(now), rehashed, hash).run();
    }));
    if (rehashed) {
      logger_->log(LogLevel::kInfo, "admin.accounts",
                   fmt::format("rehashed the password of account \"{}\" with the current limits",
                               account.name));
    }
    account.last_sign_in = now;
    return account;
  }

  // ---- API tokens --------------------------------------------------------------------------

  Result<NewApiToken> create_token(std::string_view account, std::string_view label) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(account));
    LLMASSIST_RETURN_IF_ERROR(check_label(label));
    NewApiToken made;
    made.secret = std::string(kTokenPrefix) + random_secret();
    made.token.account = std::string(account);
    made.token.label = std::string(label);
    made.token.created_at = clock_->now();
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
      return c.changes() == 0 ? not_found(fmt::format("no API token {}", id)) : Status();
    });
  }

  Result<Account> authenticate_token(std::string_view secret) override {
    if (!secret.starts_with(kTokenPrefix) || secret.size() != kTokenPrefix.size() + kSecretChars) {
      return unauthenticated(std::string(kBadToken));
    }
    struct Use {
      std::int64_t token_id = 0;
      std::optional<std::int64_t> last_used;
      bool revoked = false;
    };
    auto found = read<AccountWith<Use>>([&](Connection& c) -> Result<AccountWith<Use>> {
      auto s = c.prepare(
          fmt::format("SELECT {}, t.id, t.last_used, t.revoked_at IS NOT NULL FROM api_tokens t "
                      "JOIN accounts a ON a.id = t.account_id WHERE t.digest = ?1",
                      kAccountColumns));
      if (!s.ok()) return s.status();
      s->bind(digest_of(secret));
      return single<AccountWith<Use>>(
          *s,
          [](const Statement& r) {
            constexpr int n = kAccountColumnCount;
            return AccountWith<Use>{read_account(r),
                                    {r.int64(n), r.opt_int64(n + 1), r.int64(n + 2) != 0}};
          },
          kBadToken);
    });
    if (!found.ok()) {
      if (found.status().code() == StatusCode::kNotFound) {
        return unauthenticated(std::string(kBadToken));
      }
      return found.status();
    }
    if (found->extra.revoked) return unauthenticated(std::string(kBadToken));
    if (found->account.disabled) {
      return unauthenticated("the API token's account is disabled");
    }
    const std::int64_t now = now_ms();
    if (!found->extra.last_used || now - *found->extra.last_used >= kLastUsedResolutionMs) {
      Status recorded = write_status([&](Connection& c) -> Status {
        auto s = c.prepare(
            "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1 AND "
            "(last_used IS NULL OR last_used <= ?2 - ?3)");
        if (!s.ok()) return s.status();
        return s->bind(found->extra.token_id, now, kLastUsedResolutionMs).run();
      });
      // The caller is authenticated all the same: a busy database costs the record, not the
      // request.
      if (!recorded.ok()) {
        logger_->log(LogLevel::kWarning, "admin.accounts",
                     fmt::format("cannot record the use of API token {}: {}", found->extra.token_id,
                                 recorded.to_string()));
      }
    }
    return std::move(found->account);
  }

  // ---- web sessions ------------------------------------------------------------------------

  Result<WebSession> create_session(std::string_view account,
                                    std::chrono::seconds lifetime) override {
    LLMASSIST_RETURN_IF_ERROR(check_operator_name(account));
    if (lifetime <= std::chrono::seconds(0) || lifetime > kMaxSessionLifetime) {
      return invalid_argument("a session's lifetime must be between 1 second and 366 days");
    }
    WebSession session;
    session.secret = random_secret();
    session.csrf_token = random_secret();
    const std::int64_t now = now_ms();
    session.expires_at = detail::from_millis(now) + lifetime;
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
    if (secret.size() != kSecretChars) return unauthenticated(std::string(kBadSession));
    const std::string digest = digest_of(secret);
    auto found = read<WebSession>([&](Connection& c) -> Result<WebSession> {
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
          kBadSession);
    });
    if (!found.ok()) {
      if (found.status().code() == StatusCode::kNotFound) {
        return unauthenticated(std::string(kBadSession));
      }
      return found.status();
    }
    if (to_millis(found->expires_at) <= now_ms()) {
      if (Status s = end_session(secret); !s.ok()) {
        logger_->log(LogLevel::kWarning, "admin.accounts",
                     "cannot delete an expired session: " + s.to_string());
      }
      return unauthenticated(std::string(kBadSession));
    }
    if (found->account.disabled) return unauthenticated(std::string(kBadSession));
    return found;
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
    if (!found.ok() && found.status().code() == StatusCode::kNotFound) return no_account(name);
    return found;
  }

  static Result<Account> enabled_account_in(Connection& c, std::string_view name) {
    LLMASSIST_ASSIGN_OR_RETURN(Account a, account_in(c, name));
    if (a.disabled) return failed_precondition(fmt::format("account {} is disabled", name));
    return a;
  }

  static Status end_sessions_in(Connection& c, std::int64_t account_id) {
    auto s = c.prepare("DELETE FROM web_sessions WHERE account_id = ?1");
    if (!s.ok()) return s.status();
    return s->bind(account_id).run();
  }

  const SqliteAccountStoreOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<Logger> logger_;
  ConnectionPool pool_;
  // What verify_password() checks an unknown name's password against, so that it takes as long
  // as a known name's: the hash of a random secret nobody knows.
  const std::string dummy_hash_;
};

}  // namespace

Result<std::unique_ptr<AccountStore>> open_sqlite_account_store(
    const SqliteAccountStoreOptions& options) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_database_path(options.path, "the account store"));
  if (options.password_ops < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
      options.password_ops > crypto_pwhash_argon2id_OPSLIMIT_MAX) {
    return invalid_argument(fmt::format("password_ops must be between {} and {}",
                                        crypto_pwhash_argon2id_OPSLIMIT_MIN,
                                        crypto_pwhash_argon2id_OPSLIMIT_MAX));
  }
  if (options.password_memory < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
      options.password_memory > crypto_pwhash_argon2id_MEMLIMIT_MAX) {
    return invalid_argument(fmt::format("password_memory must be between {} and {} bytes",
                                        crypto_pwhash_argon2id_MEMLIMIT_MIN,
                                        crypto_pwhash_argon2id_MEMLIMIT_MAX));
  }
  // Thread-safe, and idempotent: every store calls it.
  if (sodium_init() < 0) return internal_error("libsodium cannot be initialised");
  LLMASSIST_RETURN_IF_ERROR(detail::create_private_file(
      options.path, *(options.logger ? options.logger : stderr_logger()), "admin.accounts"));
  auto first =
      Connection::open(options.path, options.busy_timeout, options.sync == SqliteSync::kFull);
  if (!first.ok()) return first.status();
  LLMASSIST_RETURN_IF_ERROR(detail::migrate_schema(**first, kAccountSchema, kAccountSchemaVersion));
  std::string dummy_password = random_secret();
  auto dummy_hash = hash_password(dummy_password, options);
  sodium_memzero(dummy_password.data(), dummy_password.size());
  if (!dummy_hash.ok()) return dummy_hash.status();
  return std::unique_ptr<AccountStore>(
      new SqliteAccountStore(options, std::move(first).value(), std::move(dummy_hash).value()));
}

}  // namespace llmassist
