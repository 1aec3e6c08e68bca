// Moving a deployment from SQLite to PostgreSQL: every table of the SQLite database (the
// message store's, the memory's, and the account tables when the file has them) copied into an
// empty PostgreSQL schema, ids kept, and verified by counting each table on both sides.
//
// Thread-safety: one call at a time per target schema. Stop the processes that write the SQLite
// file first: the copy reads one snapshot of it, and what is written after that stays behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API SqliteImportOptions {
  std::string sqlite_path;    // the SQLite database file; it must exist
  PostgresConnectOptions to;  // the target database and schema
};

// One table as copied: its rows in SQLite and in PostgreSQL after the copy (equal, or the copy
// fails).
struct LLMASSIST_API TableCount {
  std::string table;
  std::int64_t sqlite_rows = 0;
  std::int64_t postgres_rows = 0;
};

// Brings the SQLite file to the current schema (as opening it would), creates the PostgreSQL
// schema, and copies everything in one PostgreSQL transaction: a failed copy leaves the target
// as it was. The search index and the id sequences are rebuilt. Errors: kNotFound when the file
// does not exist, kFailedPrecondition when the target schema already holds chats or accounts,
// kDataLoss when a table's counts differ after the copy (nothing is committed then), and the
// stores' own errors.
[[nodiscard]] LLMASSIST_API Result<std::vector<TableCount>> import_sqlite_into_postgres(
    const SqliteImportOptions& options);

}  // namespace llmassist
