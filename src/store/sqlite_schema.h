// Internal: the SQLite store's schema and its migrations.
#pragma once

#include "store/sqlite_db.h"

namespace llmassist::detail {

// Brings the database on `conn` to the current schema version (PRAGMA user_version), one
// migration per transaction. Refuses a database whose version is newer than this build's with
// kFailedPrecondition.
[[nodiscard]] Status migrate_sqlite_schema(Connection& conn, int target_version);

}  // namespace llmassist::detail
