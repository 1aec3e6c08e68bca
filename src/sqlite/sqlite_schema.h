// Internal: the SQLite store's schema and its migrations.
#pragma once

#include <span>
#include <string_view>

#include "sqlite/sqlite_db.h"

#include "llmassist/export.h"

namespace llmassist::detail {

// A schema that one part of the library owns in a database file it may share with others: its
// migrations and where it keeps its version.
struct LLMASSIST_API SchemaDefinition {
  // In messages: "schema", "account schema".
  std::string_view name;
  // Migration N brings the schema from version N to N + 1. Never edit a released one.
  std::span<const std::string_view> migrations;
  // Run first, in the migration's transaction, so that the version can be read (creating the
  // version's table, say). May be empty.
  std::string_view prepare_sql;
  // A query yielding the version in its first row; no row means 0.
  std::string_view read_version_sql;
  // SQL that records the version, with {} where the number goes.
  std::string_view write_version_sql;
};

// Brings the database on `conn` to `target_version` of `schema`, all migrations in one write
// transaction (so that two processes starting at once do not both migrate). Refuses a database
// whose version is newer than `target_version` with kFailedPrecondition naming both versions.
[[nodiscard]] LLMASSIST_API Status migrate_schema(Connection& conn, const SchemaDefinition& schema,
                                                  int target_version);

// Brings the database on `conn` to the current schema version (PRAGMA user_version), one
// migration per transaction. Refuses a database whose version is newer than this build's with
// kFailedPrecondition.
[[nodiscard]] LLMASSIST_API Status migrate_sqlite_schema(Connection& conn, int target_version);

}  // namespace llmassist::detail
