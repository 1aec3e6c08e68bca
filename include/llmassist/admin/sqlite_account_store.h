// The SQLite AccountStore: accounts, API tokens and web sessions in the same database file as the
// SQLite MessageStore (or in a file of their own), in tables of their own — accounts, api_tokens,
// web_sessions — with their own schema version (the table account_schema), so that the two
// stores migrate independently.
//
// Besides the AccountStore contract:
// - Passwords are hashed with argon2id at the limits of the options; a hash made with other
//   limits still verifies, and is made again with the current ones at the next successful
//   sign-in.
// - set_password() ends the account's sessions (every browser signs in again); its tokens stay.
//   set_disabled(true) ends them too; tokens only stop working while the account is disabled.
// - delete_account() deletes the account's tokens and sessions with it: a new account of the
//   same name gets none of them.
// - create_token() and create_session() refuse a disabled account with kFailedPrecondition.
// - end_session() of an unknown or expired secret succeeds: the session is gone either way.
//
// Thread-safety: as AccountStore: every method from many threads at once, and several processes
// may share the file.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "llmassist/account_store.h"
#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API SqliteAccountStoreOptions {
  // The database file, usually the message store's (SqliteStoreOptions::path); created when
  // missing (its folder must exist). In-memory databases are refused.
  std::string path;
  // How long a call waits for another connection's or process's write lock before it fails
  // with kUnavailable. Default 5 s.
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(5)};
  // Durability of each commit. Default: kFull.
  SqliteSync sync = SqliteSync::kFull;
  // argon2id's passes over memory for a new password hash (libsodium's opslimit), at least
  // crypto_pwhash_OPSLIMIT_MIN (1). Default 2, with password_memory OWASP's minimum setting.
  unsigned long long password_ops = 2;
  // argon2id's memory for a new password hash, in bytes (libsodium's memlimit), at least
  // crypto_pwhash_MEMLIMIT_MIN (8 KiB). Default 19 MiB. Each sign-in takes this much memory for
  // the time of one hash (tens of milliseconds at the defaults).
  std::size_t password_memory = std::size_t{19} << 20;
  std::shared_ptr<Clock> clock;    // default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// The account schema version this build writes. A database with a newer one is refused.
inline constexpr int kAccountSchemaVersion = 1;

// Opens the account tables of the database at `options.path`, creating the file and the tables
// when missing. Never touches the message store's tables or its PRAGMA user_version. Errors:
// kInvalidArgument for an empty or in-memory path or password limits outside libsodium's range,
// kUnavailable when the file cannot be opened or created, kDataLoss when it is not a database,
// kFailedPrecondition when its account schema is newer than this build supports, kInternal when
// libsodium cannot be initialised.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<AccountStore>> open_sqlite_account_store(
    const SqliteAccountStoreOptions& options);

}  // namespace llmassist
