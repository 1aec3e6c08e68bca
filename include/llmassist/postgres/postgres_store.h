// The PostgreSQL stores: the MessageStore (chats, the log, replies, audit, settings, the
// memory's records) and the AccountStore on one PostgreSQL database shared by any number of
// processes on any number of hosts — several bots behind a load balancer, the admin server on
// another machine.
//
// What PostgreSQL changes against the SQLite store:
// - Claims take rows with SELECT ... FOR UPDATE SKIP LOCKED: workers on other hosts never wait
//   for each other and never take one reply twice.
// - Change notification is LISTEN/NOTIFY: a commit that changed rows notifies the store's
//   channel, and wait_for_change() in every process wakes on it (no polling).
// - Connections come from a pool that survives a server restart: a connection found broken is
//   dropped and a new one made; a call whose transaction failed before its commit is run again
//   (nothing of it was stored) until `retry_for` passes. A call whose connection broke during
//   the commit itself answers kUnavailable: PostgreSQL may or may not have stored it.
// - The schema is migrated under an advisory lock, in a transaction: processes starting together
//   migrate once.
// - Erasure deletes the rows; PostgreSQL keeps the bytes of deleted rows in its files until
//   VACUUM and later writes reuse the space, and in its write-ahead log and backups for longer, so
//   ErasureCounts::reclaimed is false (docs/deployment.md, "Erasure on PostgreSQL").
//
// Secrets: the password comes from `password` (usually read from the environment variable the
// configuration names); it is handed to libpq only, never to a log line, a Status or the
// connection string the store shows (`describe_postgres_url`).
//
// Thread-safety: as MessageStore and AccountStore: every method from many threads at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "llmassist/account_store.h"
#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API PostgresConnectOptions {
  // A libpq connection URI ("postgresql://user@host:5432/db?sslmode=verify-full") or key=value
  // string ("host=db1 dbname=llmassist"). A password in it is refused: use `password`.
  std::string url;
  // The password, handed to libpq only. Empty: libpq's own ways (~/.pgpass, PGPASSWORD,
  // certificates, peer authentication).
  std::string password;
  // The schema that holds the tables, created when missing; several deployments may share one
  // database in schemas of their own. Default "public". Letters, digits and '_' only.
  std::string schema = "public";
  // How long to wait for a connection to be made (libpq's connect_timeout, rounded up to whole
  // seconds) before a try counts as failed.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // How long a call keeps trying when the server cannot be reached (restarting, failing over)
  // before it answers kUnavailable. Calls are retried only while nothing of theirs was committed.
  std::chrono::milliseconds retry_for{std::chrono::seconds(15)};
  // Connections kept by the pool (each a server process). Default 8.
  int max_connections = 8;
  std::shared_ptr<Clock> clock;    // default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

struct LLMASSIST_API PostgresStoreOptions {
  PostgresConnectOptions connect;
};

// The schema version this build writes. A database with a newer one is refused.
inline constexpr int kPostgresSchemaVersion = 3;

// Connects, then creates or migrates the schema. Errors: kInvalidArgument for a bad URL, a
// password inside it or a bad schema name, kUnavailable when the server cannot be reached within
// retry_for (the URL without secrets is in the message), kUnauthenticated when the server refuses
// the credentials, kFailedPrecondition when the schema is newer than this build supports.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<MessageStore>> open_postgres_store(
    const PostgresStoreOptions& options);

struct LLMASSIST_API PostgresAccountStoreOptions {
  PostgresConnectOptions connect;
  // argon2id's passes and memory for a new password hash, as SqliteAccountStoreOptions.
  unsigned long long password_ops = 2;
  std::size_t password_memory = std::size_t{19} << 20;
};

// The account tables (accounts, api_tokens, web_sessions) in the same database and schema as the
// message store (or another), with their own schema version. Errors as open_postgres_store(),
// and kInvalidArgument for password limits outside libsodium's range.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<AccountStore>> open_postgres_account_store(
    const PostgresAccountStoreOptions& options);

// Whether `database` names a PostgreSQL database ("postgresql://", "postgres://"), as the
// configuration's `database` key takes it.
[[nodiscard]] LLMASSIST_API bool is_postgres_url(std::string_view database) noexcept;

// The URL fit for a log line or a page: any password and other secret parameters replaced by
// "***".
[[nodiscard]] LLMASSIST_API std::string describe_postgres_url(std::string_view url);

}  // namespace llmassist
