#include "sqlite/sqlite_schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace llmassist::detail {
namespace {

// Migration N brings the schema from version N to N + 1. Never edit a released migration: add
// a new one. Times are milliseconds since the Unix epoch, UTC.
constexpr std::array<std::string_view, 5> kMigrations = {
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
    // The memory's records (memory_records.h): summary versions, background jobs, the recall
    // index with its per-chat full-text index, and the embedding cache.
    R"sql(
CREATE TABLE session_summaries (
  id              INTEGER PRIMARY KEY,
  session_id      INTEGER NOT NULL REFERENCES sessions(id),
  chat_id         INTEGER NOT NULL REFERENCES chats(id),
  version         INTEGER NOT NULL,
  content         TEXT    NOT NULL,
  last_message_id INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  UNIQUE (session_id, version)
);
CREATE INDEX session_summaries_by_chat ON session_summaries(chat_id);
CREATE TABLE memory_jobs (
  id              INTEGER PRIMARY KEY,
  kind            TEXT    NOT NULL,
  key             TEXT    NOT NULL,
  chat_id         INTEGER NOT NULL DEFAULT 0,
  payload         TEXT    NOT NULL DEFAULT '',
  attempts        INTEGER NOT NULL DEFAULT 0,
  claimed_by      TEXT    NOT NULL DEFAULT '',
  lease_until     INTEGER,
  next_attempt_at INTEGER NOT NULL,
  last_error      TEXT    NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  done_at         INTEGER
);
-- At most one unfinished job per key; the claim reads unfinished jobs by due time.
CREATE UNIQUE INDEX memory_jobs_open_key ON memory_jobs(key) WHERE done_at IS NULL;
CREATE INDEX memory_jobs_due ON memory_jobs(next_attempt_at, id) WHERE done_at IS NULL;
CREATE INDEX memory_jobs_by_chat ON memory_jobs(chat_id);
CREATE INDEX memory_jobs_by_kind ON memory_jobs(kind, id);
CREATE INDEX memory_jobs_done ON memory_jobs(done_at) WHERE done_at IS NOT NULL;
-- vector: little-endian float32 values, NULL until embedded (vector_model then '').
CREATE TABLE recall_items (
  id           INTEGER PRIMARY KEY,
  chat_id      INTEGER NOT NULL REFERENCES chats(id),
  session_id   INTEGER NOT NULL DEFAULT 0,
  kind         TEXT    NOT NULL,
  key          TEXT    NOT NULL,
  message_id   INTEGER NOT NULL DEFAULT 0,
  text         TEXT    NOT NULL DEFAULT '',
  terms        TEXT    NOT NULL DEFAULT '',
  vector       BLOB,
  vector_model TEXT    NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  UNIQUE (chat_id, key)
);
CREATE INDEX recall_items_by_chat_model ON recall_items(chat_id, vector_model);
CREATE INDEX recall_items_by_model ON recall_items(vector_model, id);
CREATE INDEX recall_items_by_message ON recall_items(message_id);
-- The full-text index of recall_items.terms, rowid = recall_items.id. Contentless: it keeps
-- no copy of the terms. Each token is the chat's prefix and one term ("c42_заказ"), so that a
-- search reads only its chat's postings.
CREATE VIRTUAL TABLE recall_fts USING fts5(tokens, content = '', tokenize = "ascii tokenchars '_'");
CREATE TABLE embedding_cache (
  model      TEXT    NOT NULL,
  digest     TEXT    NOT NULL,
  vector     BLOB    NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (model, digest)
);
)sql",
    // 3 -> 4: how many items of a chat hold each token, read before a search (which leaves out
    // the tokens most of a long chat's items have).
    R"sql(
CREATE VIRTUAL TABLE recall_vocab USING fts5vocab(recall_fts, row);
)sql",
    // 4 -> 5: contacts (an opt-out, an operator's notes) and what a reply carries besides its
    // text (attachments, deferred tool calls: JSON, store_support.h).
    R"sql(
ALTER TABLE chats ADD COLUMN opted_out_at INTEGER;
ALTER TABLE chats ADD COLUMN notes TEXT NOT NULL DEFAULT '';
ALTER TABLE replies ADD COLUMN actions TEXT NOT NULL DEFAULT '';
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
