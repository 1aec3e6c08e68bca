// Internal: what every AccountStore shares that is not SQL — the checks of names, passwords,
// roles, labels and session lifetimes, the secrets (random, and the SHA-256 digest the tables
// keep of them), argon2id hashing and verification, and the error messages, so that the SQLite
// and PostgreSQL account stores answer alike. Exported (LLMASSIST_API) because the postgres
// component links these from the admin component in a shared build.
//
// Secrets: no function here puts a password, a secret or a hash into a Status message.
//
// Thread-safety: every function may be called from many threads at once; a PasswordHasher is
// immutable once made.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "llmassist/account_store.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist::detail {

inline constexpr std::size_t kMinPasswordBytes = 10;
inline constexpr std::size_t kMaxPasswordBytes = 1024;
inline constexpr std::size_t kMaxLabelBytes = 200;
// A secret is 32 random bytes as base64url without padding.
inline constexpr std::size_t kSecretChars = 43;
inline constexpr std::string_view kTokenPrefix = "lla_";
// A token's last_used is written at most this often: a script calling the API in a loop must
// not cost a write per request.
inline constexpr std::int64_t kLastUsedResolutionMs = 60'000;
inline constexpr auto kMaxSessionLifetime = std::chrono::days(366);

// One message for an unknown name, a wrong password and a disabled account alike.
inline constexpr std::string_view kWrongCredentials = "wrong name or password";
inline constexpr std::string_view kBadToken = "unknown or revoked API token";
inline constexpr std::string_view kBadSession = "unknown or expired session";
// The log component of the account stores' lines.
inline constexpr std::string_view kAccountsLog = "admin.accounts";

// ---- checks: kInvalidArgument saying what is allowed ------------------------------------------

// check_operator_name(), and not a name that operator_actor() would read as a Telegram id.
[[nodiscard]] LLMASSIST_API Status check_account_name(std::string_view name);
// 10 to 1024 bytes.
[[nodiscard]] LLMASSIST_API Status check_password(std::string_view password);
[[nodiscard]] LLMASSIST_API Status check_role(AccountRole role);
// At most 200 bytes that print as themselves.
[[nodiscard]] LLMASSIST_API Status check_label(std::string_view label);
// 1 second to 366 days.
[[nodiscard]] LLMASSIST_API Status check_session_lifetime(std::chrono::seconds lifetime);

// Whether `secret` has the shape of a token's ("lla_" and 43 characters) or a session's (43
// characters) secret: anything else is refused before the database is asked.
[[nodiscard]] LLMASSIST_API bool token_shaped(std::string_view secret) noexcept;
[[nodiscard]] LLMASSIST_API bool session_shaped(std::string_view secret) noexcept;

// Whether a token last used at `last_used_ms` (none: never) should record a use at `now_ms`.
[[nodiscard]] LLMASSIST_API bool token_use_due(std::optional<std::int64_t> last_used_ms,
                                               std::int64_t now_ms) noexcept;

// ---- the shared errors --------------------------------------------------------------------------

[[nodiscard]] LLMASSIST_API Status no_account(std::string_view name);        // kNotFound
[[nodiscard]] LLMASSIST_API Status name_taken(std::string_view name);        // kAlreadyExists
[[nodiscard]] LLMASSIST_API Status account_disabled(std::string_view name);  // kFailedPrecondition
[[nodiscard]] LLMASSIST_API Status no_token(std::int64_t id);                // kNotFound
[[nodiscard]] LLMASSIST_API Status wrong_credentials();                      // kUnauthenticated
[[nodiscard]] LLMASSIST_API Status bad_token();                              // kUnauthenticated
[[nodiscard]] LLMASSIST_API Status token_account_disabled();                 // kUnauthenticated
[[nodiscard]] LLMASSIST_API Status bad_session();                            // kUnauthenticated

// ---- secrets ------------------------------------------------------------------------------------

// kInternal when libsodium cannot be initialised. Thread-safe and idempotent: every store calls
// it before it makes a secret.
[[nodiscard]] LLMASSIST_API Status init_crypto();
// 32 random bytes as base64url without padding: 43 characters (a session's secret, a CSRF token).
[[nodiscard]] LLMASSIST_API std::string random_secret();
// "lla_" and a random secret: an API token.
[[nodiscard]] LLMASSIST_API std::string new_token_secret();
// The hex SHA-256 of a secret (64 characters): what the tables keep of it.
[[nodiscard]] LLMASSIST_API std::string digest_of(std::string_view secret);

// ---- passwords ----------------------------------------------------------------------------------

// argon2id's passes and memory for a new hash (libsodium's opslimit and memlimit).
struct PasswordLimits {
  unsigned long long ops = 0;
  std::size_t memory = 0;
};

// Hashes passwords at one set of limits and verifies them at the same cost whether the account
// exists or not.
class LLMASSIST_API PasswordHasher {
 public:
  // kInvalidArgument for limits outside libsodium's argon2id range, kInternal when libsodium
  // cannot be initialised, kResourceExhausted when the memory for the dummy hash is not there.
  [[nodiscard]] static Result<PasswordHasher> make(PasswordLimits limits);

  // The argon2id string of `password`. kResourceExhausted when the memory cannot be had.
  [[nodiscard]] Result<std::string> hash(std::string_view password) const;

  // A sign-in's verdict on `stored_hash` (null: no such account) for a password that
  // check_password() accepts (sign_in() refuses others first): one verification whatever the
  // case, so that an unknown name costs as much as a wrong password. kUnauthenticated with
  // the one message of a wrong sign-in when the account is unknown or disabled or the password
  // does not match. Otherwise the hash to store instead when `stored_hash` was made with other
  // limits (none when it stands, or when the new one cannot be made now: the next sign-in tries
  // again).
  [[nodiscard]] Result<std::optional<std::string>> check_sign_in(const std::string* stored_hash,
                                                                 bool disabled,
                                                                 std::string_view password) const;

 private:
  PasswordHasher(PasswordLimits limits, std::string dummy_hash)
      : limits_(limits), dummy_hash_(std::move(dummy_hash)) {}

  PasswordLimits limits_;
  // What an unknown name's password is checked against: the hash of a random secret nobody
  // knows, made with the same limits.
  std::string dummy_hash_;
};

// ---- the flows of the AccountStore methods, around a store's reads and writes ------------------
// Each store supplies what touches its tables; these decide, in the same order for every store,
// what is checked, hashed, refused and logged.

// create_account()'s checks, then the password's hash (made before any transaction: hashing takes
// tens of milliseconds).
[[nodiscard]] LLMASSIST_API Result<std::string> new_account_hash(const PasswordHasher& hasher,
                                                                 std::string_view name,
                                                                 std::string_view password,
                                                                 AccountRole role);

// A sign-in's stored account: the account and its password hash.
struct StoredPassword {
  Account account;
  std::string hash;
};

// verify_password(): `find()` reads the account by name (none when there is no such account);
// `record(id, now, rehashed, verified_hash)` stores the sign-in at `now`, and `rehashed` in
// place of the hash when it is still `verified_hash` (a password changed meanwhile stands).
[[nodiscard]] LLMASSIST_API Result<Account> sign_in(
    const PasswordHasher& hasher, std::string_view password, Timestamp now, Logger& logger,
    const std::function<Result<std::optional<StoredPassword>>()>& find,
    const std::function<Status(std::int64_t id, Timestamp now,
                               const std::optional<std::string>& rehashed,
                               const std::string& verified_hash)>& record);

// A token as create_token() returns it, before the store gives it its id.
[[nodiscard]] LLMASSIST_API NewApiToken new_api_token(std::string_view account,
                                                      std::string_view label, Timestamp now);

// A token as authenticate_token() finds it.
struct StoredToken {
  Account account;
  std::int64_t id = 0;
  std::optional<std::int64_t> last_used_ms;
  bool revoked = false;
};

// authenticate_token(): `find(digest)` reads the token by its secret's digest (kNotFound or
// kUnauthenticated when there is none); `record_use(id, now_ms)` stores its use, when due, at
// `now_ms` unless a use at most a minute older is stored meanwhile. A failed record is logged:
// the caller is authenticated all the same (a busy database costs the record, not the request).
[[nodiscard]] LLMASSIST_API Result<Account> authenticate_by_token(
    std::string_view secret, std::int64_t now_ms, Logger& logger,
    const std::function<Result<StoredToken>(const std::string& digest)>& find,
    const std::function<Status(std::int64_t id, std::int64_t now_ms)>& record_use);

// A session's secrets and expiry as create_session() returns it, before the store gives it its
// account. kInvalidArgument for a lifetime out of range.
[[nodiscard]] LLMASSIST_API Result<WebSession> new_web_session(Timestamp now,
                                                               std::chrono::seconds lifetime);

// find_session(): `find(digest)` reads the session by its secret's digest (kNotFound or
// kUnauthenticated when there is none); an expired one is ended with `end()` (a failure
// logged) and refused like a disabled account's.
[[nodiscard]] LLMASSIST_API Result<WebSession> find_live_session(
    std::string_view secret, std::int64_t now_ms, Logger& logger,
    const std::function<Result<WebSession>(const std::string& digest)>& find,
    const std::function<Status()>& end);

}  // namespace llmassist::detail
