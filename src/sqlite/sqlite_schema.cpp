#include "sqlite/sqlite_schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace llmassist::detail {
namespace {

// Migration N brings the schema from version N to N + 1. Never edit a released migration: add
// a new one. Times are milliseconds since the Unix epoch, UTC.
constexpr std::array<std::string_view, 2> kMigrations = {
    R"sql(
CREATE TABLE chats (
  id          INTEGER PRIMARY KEY,
  channel     TEXT    NOT NULL,
  external_id TEXT    NOT NULL,
  title       TEXT    NOT NULL DEFAULT '',
  username    TEXT    NOT NULL DEFAULT '',
  mode        TEXT    NOT NULL DEFAULT 'bot',
  blocked     INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  UNIQUE (channel, external_id)
);
CREATE TABLE sessions (
  id           INTEGER PRIMARY KEY,
  chat_id      INTEGER NOT NULL REFERENCES chats(id),
  started_at   INTEGER NOT NULL,
  closed_at    INTEGER,
  summary      TEXT    NOT NULL DEFAULT '',
  summary_upto INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_chat ON sessions(chat_id, id);
-- At most one open session per chat, whatever the writers do.
CREATE UNIQUE INDEX sessions_open ON sessions(chat_id) WHERE closed_at IS NULL;
CREATE TABLE messages (
  id                   INTEGER PRIMARY KEY,
  chat_id              INTEGER NOT NULL REFERENCES chats(id),
  session_id           INTEGER NOT NULL REFERENCES sessions(id),
  role                 TEXT    NOT NULL,
  text                 TEXT    NOT NULL,
  author               TEXT    NOT NULL DEFAULT '',
  created_at           INTEGER NOT NULL,
  dedup_key            TEXT,
  transport_message_id TEXT    NOT NULL DEFAULT '',
  reply_id             INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX messages_by_dedup ON messages(dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX messages_by_session ON messages(session_id, id);
CREATE INDEX messages_by_chat ON messages(chat_id, id);
CREATE INDEX messages_by_time ON messages(created_at);
CREATE TABLE replies (
  id                   INTEGER PRIMARY KEY,
  chat_id              INTEGER NOT NULL REFERENCES chats(id),
  session_id           INTEGER NOT NULL REFERENCES sessions(id),
  question_id          INTEGER NOT NULL DEFAULT 0,
  status               TEXT    NOT NULL,
  draft_text           TEXT    NOT NULL DEFAULT '',
  final_text           TEXT    NOT NULL DEFAULT '',
  author               TEXT    NOT NULL DEFAULT '',
  provider             TEXT    NOT NULL DEFAULT '',
  providers_tried      INTEGER NOT NULL DEFAULT 0,
  error                TEXT    NOT NULL DEFAULT '',
  generation_attempts  INTEGER NOT NULL DEFAULT 0,
  send_attempts        INTEGER NOT NULL DEFAULT 0,
  version              INTEGER NOT NULL DEFAULT 1,
  claimed_by           TEXT    NOT NULL DEFAULT '',
  lease_until          INTEGER,
  next_attempt_at      INTEGER,
  transport_message_id TEXT    NOT NULL DEFAULT '',
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  generated_at         INTEGER,
  decided_at           INTEGER,
  sent_at              INTEGER
);
CREATE INDEX replies_by_status ON replies(status, id);
CREATE INDEX replies_by_chat ON replies(chat_id, id);
CREATE INDEX replies_by_question ON replies(question_id);
CREATE INDEX replies_by_created ON replies(created_at);
CREATE INDEX replies_by_sent ON replies(sent_at) WHERE sent_at IS NOT NULL;
CREATE TABLE audit (
  id       INTEGER PRIMARY KEY,
  at       INTEGER NOT NULL,
  actor    TEXT    NOT NULL,
  action   TEXT    NOT NULL,
  reply_id INTEGER NOT NULL DEFAULT 0,
  chat_id  INTEGER NOT NULL DEFAULT 0,
  before   TEXT    NOT NULL DEFAULT '',
  after    TEXT    NOT NULL DEFAULT '',
  detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_reply ON audit(reply_id, id);
CREATE INDEX audit_by_chat ON audit(chat_id, id);
CREATE INDEX audit_by_time ON audit(at);
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    // The claim's head-of-chat check: a chat's replies by status, so that finding the oldest
    // unfinished one is a few index seeks however long the chat's history is.
    R"sql(
CREATE INDEX replies_by_chat_status ON replies(chat_id, status, id);
)sql",
};

Result<int> read_version(Connection& conn, std::string_view sql) {
  auto stmt = conn.prepare(sql);
  if (!stmt.ok()) return stmt.status();
  auto row = stmt->step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<int>(stmt->int64(0)) : 0;
}

}  // namespace

Status migrate_schema(Connection& conn, const SchemaDefinition& schema, int target_version) {
  if (target_version > static_cast<int>(schema.migrations.size())) {
    return internal_error(
        fmt::format("no migration to {} version {}", schema.name, target_version));
  }
  auto txn = Transaction::begin(conn, Transaction::Kind::kWrite);
  if (!txn.ok()) {
    return txn.status().annotate(fmt::format("cannot start the {} migration", schema.name));
  }
  if (!schema.prepare_sql.empty()) LLMASSIST_RETURN_IF_ERROR(conn.exec(schema.prepare_sql));
  auto version = read_version(conn, schema.read_version_sql);
  if (!version.ok()) return version.status();
  if (*version > target_version) {
    return failed_precondition(fmt::format(
        "database {} has {} version {}, newer than the {} this build of llmassist supports; "
        "upgrade llmassist or use another database file",
        conn.path(), schema.name, *version, target_version));
  }
  for (int v = *version; v < target_version; ++v) {
    LLMASSIST_RETURN_IF_ERROR(
        conn.exec(schema.migrations[static_cast<std::size_t>(v)])
            .annotate(fmt::format("{} migration {} -> {}", schema.name, v, v + 1)));
  }
  if (*version != target_version) {
    LLMASSIST_RETURN_IF_ERROR(
        conn.exec(fmt::format(fmt::runtime(schema.write_version_sql), target_version)));
  }
  return txn->commit();
}

Status migrate_sqlite_schema(Connection& conn, int target_version) {
  static_assert(kMigrations.size() >= 1);
  return migrate_schema(conn,
                        {.name = "schema",
                         .migrations = kMigrations,
                         .read_version_sql = "PRAGMA user_version",
                         .write_version_sql = "PRAGMA user_version={}"},
                        target_version);
}

}  // namespace llmassist::detail
