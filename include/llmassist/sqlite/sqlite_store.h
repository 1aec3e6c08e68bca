// The SQLite MessageStore: the default, embedded store. One database file in WAL mode, shared
// safely by the threads of one process and by several processes (a bot and its operator tools).
//
// Thread-safety: as MessageStore: every method from many threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

enum class SqliteSync : std::uint8_t {
  // fsync the log at every commit: a committed transaction survives a power cut.
  kFull,
  // fsync only at checkpoints: a committed transaction survives a crash of the process, but the
  // last ones may be lost on a power cut. The database is never corrupted either way.
  kNormal,
};

struct LLMASSIST_API SqliteStoreOptions {
  // The database file; created when missing (its folder must exist). In-memory databases are
  // refused: the store's connections and other processes could not share them.
  std::string path;
  // How long a call waits for another connection's or process's write lock before it fails
  // with kUnavailable.
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(5)};
  // Durability of each commit. Default: kFull.
  SqliteSync sync = SqliteSync::kFull;
  // Connections kept open for concurrent readers. Writes of this store's callers queue and
  // commit in groups on one connection at a time (see open_sqlite_store). Default 4.
  int max_connections = 4;
  // How often wait_for_change() checks for commits made by other processes.
  std::chrono::milliseconds change_poll_interval{std::chrono::milliseconds(50)};
  std::shared_ptr<Clock> clock;    // default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// The schema version this build writes. A database with a newer one is refused.
inline constexpr int kSqliteSchemaVersion = 5;

// Opens (creating or migrating) the database. Writes from threads that call the store at the
// same time share one transaction and one commit (group commit), each still all-or-nothing and
// each call returning only after its commit. Errors: kInvalidArgument for an empty or in-memory
// path,
// kUnavailable when the file cannot be opened or created (the path is in the message),
// kDataLoss when the file is not a database or is corrupt, kFailedPrecondition when its schema is
// newer than this build supports.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<MessageStore>> open_sqlite_store(
    const SqliteStoreOptions& options);

}  // namespace llmassist
