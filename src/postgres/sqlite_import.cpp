// The SQLite -> PostgreSQL copy. Rows go through COPY FROM STDIN (text format), a table at a
// time, inside one PostgreSQL transaction; the SQLite side is read inside one read transaction,
// so the copy is of one snapshot. The recall index's derived tables (postings, vocabulary,
// per-chat statistics) are not copied but built from the items, as add_recall_items() builds
// them.
#include "llmassist/postgres/sqlite_import.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <filesystem>
#include <optional>
#include <string_view>

#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "postgres/pg_db.h"
#include "postgres/recall_terms.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {
namespace {

namespace pg = detail::pg;

struct TableSpec {
  std::string_view name;
  std::string_view columns;  // the same names on both sides
  std::string_view bytea;    // the column holding bytes, if any
  bool identity = true;      // an id column whose sequence continues after the copy
};

// In the order their references need.
constexpr TableSpec kStoreTables[] = {
    {"chats",
     "id, channel, external_id, title, username, mode, blocked, created_at, updated_at, "
     "opted_out_at, notes"},
    {"sessions", "id, chat_id, started_at, closed_at, summary, summary_upto"},
    {"messages",
     "id, chat_id, session_id, role, text, author, created_at, dedup_key, transport_message_id, "
     "reply_id"},
    {"replies",
     "id, chat_id, session_id, question_id, status, draft_text, final_text, author, provider, "
     "providers_tried, error, generation_attempts, send_attempts, version, claimed_by, "
     "lease_until, next_attempt_at, transport_message_id, created_at, updated_at, generated_at, "
     "decided_at, sent_at, actions"},
    {"audit", "id, at, actor, action, reply_id, chat_id, before, after, detail"},
    {"settings", "key, value", "", false},
    {"session_summaries", "id, session_id, chat_id, version, content, last_message_id, created_at"},
    {"memory_jobs",
     "id, kind, key, chat_id, payload, attempts, claimed_by, lease_until, next_attempt_at, "
     "last_error, created_at, done_at"},
    {"embedding_cache", "model, digest, vector, created_at", "vector", false},
};
constexpr TableSpec kRecallItems = {
    "recall_items",
    "id, chat_id, session_id, kind, key, message_id, text, terms, vector, vector_model, created_at",
    "vector"};
constexpr TableSpec kAccountTables[] = {
    {"accounts", "id, name, role, password_hash, disabled, created_at, last_sign_in"},
    {"api_tokens", "id, account_id, digest, label, created_at, last_used, revoked_at"},
    {"web_sessions", "id, account_id, digest, csrf_token, created_at, expires_at"},
};

// COPY sends rows in chunks of about this size.
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

// A column's value as COPY's text format wants it before escaping: numbers in decimal, text and
// bytes as stored, NULL as nullopt.
std::optional<std::string_view> sqlite_value(const detail::Statement& s, int col,
                                             std::string& scratch) {
  switch (s.type(col)) {
    case SQLITE_NULL:
      return std::nullopt;
    case SQLITE_INTEGER:
      scratch = std::to_string(s.int64(col));
      return scratch;
    case SQLITE_FLOAT:
      scratch = fmt::format("{}", s.real(col));
      return scratch;
    default:
      return s.bytes(col);
  }
}

// Sends what `rows` has gathered once it is large enough (or `force`).
Status flush(pg::Connection& c, std::string& rows, bool force) {
  if (rows.empty() || (!force && rows.size() < kChunkBytes)) return Status();
  LLMASSIST_RETURN_IF_ERROR(c.copy_put(rows));
  rows.clear();
  return Status();
}

Result<std::int64_t> sqlite_count(detail::Connection& src, std::string_view table) {
  auto s = src.prepare(fmt::format("SELECT count(*) FROM {}", table));
  if (!s.ok()) return s.status();
  auto row = s->step();
  if (!row.ok()) return row.status();
  return s->int64(0);
}

Result<std::int64_t> postgres_count(pg::Connection& c, std::string_view table) {
  LLMASSIST_ASSIGN_OR_RETURN(pg::Rows rows, c.exec(fmt::format("SELECT count(*) FROM {}", table)));
  return rows.int64(0, 0);
}

// The column names of a list ("id, chat_id").
std::vector<std::string> column_names(std::string_view columns) {
  std::vector<std::string> out;
  for (std::string_view word : detail::split_terms(columns)) {
    if (word.ends_with(',')) word.remove_suffix(1);
    out.emplace_back(word);
  }
  return out;
}

// Copies one table. `extra_columns` are written after the table's own by `add_fields`, which
// sees each row's statement (the recall items' term counts are made from their terms).
template <typename AddFields>
Status copy_table(detail::Connection& src, pg::Connection& dst, const TableSpec& table,
                  std::string_view extra_columns, AddFields&& add_fields) {
  auto stmt = src.prepare(fmt::format("SELECT {} FROM {} ORDER BY 1", table.columns, table.name));
  if (!stmt.ok()) return stmt.status();
  const std::vector<std::string> columns = column_names(table.columns);
  LLMASSIST_RETURN_IF_ERROR(dst.copy_begin(
      fmt::format("COPY {} ({}{}) FROM STDIN", table.name, table.columns, extra_columns)));
  std::string rows;
  std::string scratch;
  while (true) {
    auto more = stmt->step();
    if (!more.ok()) return more.status();
    if (!*more) break;
    for (std::size_t col = 0; col < columns.size(); ++col) {
      if (col > 0) rows += '\t';
      pg::copy_field(rows, sqlite_value(*stmt, static_cast<int>(col), scratch),
                     columns[col] == table.bytea);
    }
    add_fields(*stmt, rows);
    rows += '\n';
    LLMASSIST_RETURN_IF_ERROR(flush(dst, rows, false));
  }
  LLMASSIST_RETURN_IF_ERROR(flush(dst, rows, true));
  return dst.copy_end().status().annotate(fmt::format("copying {}", table.name));
}

const auto kNoExtra = [](const detail::Statement&, std::string&) {};

// The recall items with their term counts, then their postings, in two COPYs.
Status copy_recall(detail::Connection& src, pg::Connection& dst) {
  LLMASSIST_RETURN_IF_ERROR(copy_table(src, dst, kRecallItems, ", term_count",
                                       [](const detail::Statement& s, std::string& row) {
                                         int length = 0;
                                         (void)pg::term_frequencies(s.text(7), length);
                                         row += '\t';
                                         row += std::to_string(length);
                                       }));
  auto stmt = src.prepare("SELECT id, chat_id, message_id, terms FROM recall_items ORDER BY id");
  if (!stmt.ok()) return stmt.status();
  LLMASSIST_RETURN_IF_ERROR(dst.copy_begin(
      "COPY recall_postings (chat_id, term, item_id, tf, doc_length, message_id) FROM STDIN"));
  std::string rows;
  while (true) {
    auto more = stmt->step();
    if (!more.ok()) return more.status();
    if (!*more) break;
    int length = 0;
    const auto tf = pg::term_frequencies(stmt->text(3), length);
    for (const auto& [term, n] : tf) {
      rows += fmt::format("{}\t", stmt->int64(1));
      pg::copy_field(rows, term);
      rows += fmt::format("\t{}\t{}\t{}\t{}\n", stmt->int64(0), n, length, stmt->int64(2));
    }
    LLMASSIST_RETURN_IF_ERROR(flush(dst, rows, false));
  }
  LLMASSIST_RETURN_IF_ERROR(flush(dst, rows, true));
  LLMASSIST_RETURN_IF_ERROR(dst.copy_end().status().annotate("building the recall postings"));
  LLMASSIST_RETURN_IF_ERROR(
      dst.script("INSERT INTO recall_vocab (chat_id, term, docs) SELECT chat_id, term, count(*) "
                 "FROM recall_postings GROUP BY chat_id, term"));
  return dst.script(
      "INSERT INTO recall_chat_stats (chat_id, items, total_length) SELECT chat_id, count(*), "
      "sum(term_count) FROM recall_items WHERE term_count > 0 GROUP BY chat_id");
}

Result<bool> sqlite_has_table(detail::Connection& src, std::string_view table) {
  auto s = src.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1");
  if (!s.ok()) return s.status();
  s->bind(table);
  auto row = s->step();
  if (!row.ok()) return row.status();
  return s->int64(0) > 0;
}

}  // namespace

Result<std::vector<TableCount>> import_sqlite_into_postgres(const SqliteImportOptions& options) {
  std::error_code ec;
  if (options.sqlite_path.empty() || !std::filesystem::is_regular_file(options.sqlite_path, ec)) {
    return not_found(fmt::format("no SQLite database at {}", options.sqlite_path));
  }
  // Opening the stores brings both sides to this build's schema.
  {
    SqliteStoreOptions so;
    so.path = options.sqlite_path;
    so.logger = options.to.logger;
    LLMASSIST_RETURN_IF_ERROR(open_sqlite_store(so).status().annotate("the SQLite database"));
  }
  {
    PostgresStoreOptions po;
    po.connect = options.to;
    LLMASSIST_RETURN_IF_ERROR(open_postgres_store(po).status());
    PostgresAccountStoreOptions ao;
    ao.connect = options.to;
    LLMASSIST_RETURN_IF_ERROR(open_postgres_account_store(ao).status());
  }
  LLMASSIST_ASSIGN_OR_RETURN(
      auto src,
      detail::Connection::open(options.sqlite_path, std::chrono::seconds(5), /*full_sync=*/true));
  LLMASSIST_ASSIGN_OR_RETURN(auto read,
                             detail::Transaction::begin(*src, detail::Transaction::Kind::kRead));
  LLMASSIST_ASSIGN_OR_RETURN(const bool accounts, sqlite_has_table(*src, "accounts"));

  LLMASSIST_ASSIGN_OR_RETURN(auto settings, pg::connect_settings(options.to));
  pg::Pool pool(settings, 1, options.to.logger ? options.to.logger : stderr_logger(),
                options.to.retry_for);
  std::vector<TableCount> counts;
  // One transaction on one connection, not run again when it fails: the caller sees the error
  // and runs the import again (the target is then as it was).
  LLMASSIST_ASSIGN_OR_RETURN(auto lease,
                             pool.acquire(std::chrono::steady_clock::now() + options.to.retry_for));
  pg::Connection& dst = *lease;
  LLMASSIST_RETURN_IF_ERROR(dst.script("BEGIN"));
  Status copied = [&]() -> Status {
    LLMASSIST_ASSIGN_OR_RETURN(
        pg::Rows held,
        dst.exec("SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM accounts)"));
    if (held.int64(0, 0) > 0 || held.int64(0, 1) > 0) {
      return failed_precondition(fmt::format(
          "the PostgreSQL schema {} already holds {} chats and {} accounts: import into an "
          "empty schema",
          options.to.schema, held.int64(0, 0), held.int64(0, 1)));
    }
    std::vector<const TableSpec*> tables;
    for (const TableSpec& t : kStoreTables) tables.push_back(&t);
    tables.push_back(&kRecallItems);
    if (accounts) {
      for (const TableSpec& t : kAccountTables) tables.push_back(&t);
    }
    for (const TableSpec* t : tables) {
      if (t == &kRecallItems) {
        LLMASSIST_RETURN_IF_ERROR(copy_recall(*src, dst));
      } else {
        LLMASSIST_RETURN_IF_ERROR(copy_table(*src, dst, *t, "", kNoExtra));
      }
      if (t->identity) {
        // The next id after the highest copied (1 for an empty table).
        LLMASSIST_RETURN_IF_ERROR(dst.script(fmt::format(
            "SELECT setval(pg_get_serial_sequence('{0}', 'id'), greatest(coalesce(max(id), 0), 1), "
            "max(id) IS NOT NULL) FROM {0}",
            t->name)));
      }
      TableCount count;
      count.table = std::string(t->name);
      LLMASSIST_ASSIGN_OR_RETURN(count.sqlite_rows, sqlite_count(*src, t->name));
      LLMASSIST_ASSIGN_OR_RETURN(count.postgres_rows, postgres_count(dst, t->name));
      if (count.sqlite_rows != count.postgres_rows) {
        return data_loss(fmt::format("{}: {} rows in SQLite but {} in PostgreSQL after the copy",
                                     t->name, count.sqlite_rows, count.postgres_rows));
      }
      counts.push_back(std::move(count));
    }
    LLMASSIST_RETURN_IF_ERROR(pg::notify_change(dst, pg::change_channel(options.to.schema)));
    return dst.script("COMMIT");
  }();
  if (!copied.ok()) {
    if (dst.usable()) (void)dst.script("ROLLBACK");
    return copied;
  }
  return counts;
}

}  // namespace llmassist
