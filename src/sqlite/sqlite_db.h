// Internal: a thin RAII layer over the SQLite C API for the store — connections with a cache of
// prepared statements, a pool of them, transactions, and SQLite error codes mapped to Status.
//
// Thread-safety: a Connection is used by one thread at a time (the pool hands it out);
// ConnectionPool is thread-safe.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist::detail {

// Milliseconds since the epoch, as stored.
inline std::int64_t to_millis(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline Timestamp from_millis(std::int64_t ms) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::milliseconds(ms)));
}

// OK when `path` names a database file that connections and processes can share: not empty, not
// an in-memory database. Otherwise kInvalidArgument naming `who` ("the SQLite store").
LLMASSIST_API Status check_database_path(std::string_view path, std::string_view who);

// Creates the database file `path`, empty, with mode 0600 (owner only) when it does not exist
// yet: SQLite would make it 0644, and it gives the -wal and -shm files the database file's mode.
// An existing file's mode is left alone; when every user may read it, `logger` is warned.
// Errors: kUnavailable (kPermissionDenied) when the file cannot be made.
LLMASSIST_API Status create_private_file(const std::string& path, Logger& logger,
                                         std::string_view component);

// Whether every user of the machine may read the file at `path` (false when there is none).
LLMASSIST_API bool world_readable(const std::string& path);

// A Status for SQLite result `rc` on `db` while doing `what`.
LLMASSIST_API Status sqlite_status(int rc, sqlite3* db, std::string_view what);

class Connection;

// A prepared statement borrowed from a connection's cache; reset and unbound when destroyed.
class LLMASSIST_API Statement {
 public:
  Statement(Connection& conn, sqlite3_stmt* stmt) : conn_(&conn), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : conn_(other.conn_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  // Resets the statement and binds parameters 1..N in order. std::nullopt binds NULL. Safe to
  // call again after step()/run() to execute the statement once more.
  template <typename... Args>
  Statement& bind(const Args&... args) {
    sqlite3_reset(stmt_);
    bind_error_ = SQLITE_OK;
    int index = 1;
    (bind_one(index++, args), ...);
    return *this;
  }
  void bind_one(int index, std::int64_t value);
  void bind_one(int index, int value) { bind_one(index, static_cast<std::int64_t>(value)); }
  void bind_one(int index, double value);
  void bind_one(int index, std::string_view value);
  void bind_one(int index, const std::string& value) { bind_one(index, std::string_view(value)); }
  void bind_one(int index, const char* value) { bind_one(index, std::string_view(value)); }
  void bind_one(int index, std::nullopt_t);
  // A vector as a BLOB of little-endian float32 values (an empty one binds NULL).
  void bind_one(int index, std::span<const float> values);
  void bind_one(int index, const std::vector<float>& values) {
    bind_one(index, std::span<const float>(values));
  }
  template <typename T>
  void bind_one(int index, const std::optional<T>& value) {
    if (value) {
      bind_one(index, *value);
    } else {
      bind_one(index, std::nullopt);
    }
  }

  // Advances: true when a row is ready, false when done.
  [[nodiscard]] Result<bool> step();
  // Runs to completion, ignoring rows.
  [[nodiscard]] Status run();

  [[nodiscard]] std::int64_t int64(int col) const;
  [[nodiscard]] double real(int col) const;
  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] bool is_null(int col) const;
  // The column's type as stored (SQLITE_INTEGER, SQLITE_TEXT, ...), and the bytes of a TEXT or
  // BLOB value (valid until the next step).
  [[nodiscard]] int type(int col) const;
  [[nodiscard]] std::string_view bytes(int col) const;
  [[nodiscard]] std::optional<std::int64_t> opt_int64(int col) const;
  [[nodiscard]] std::optional<Timestamp> opt_time(int col) const;
  [[nodiscard]] Timestamp time(int col) const { return from_millis(int64(col)); }
  // A BLOB bound by bind_one(std::span<const float>): empty for NULL; kDataLoss when its size is
  // not a whole number of float32 values.
  [[nodiscard]] Result<std::vector<float>> floats(int col) const;

 private:
  Connection* conn_;
  sqlite3_stmt* stmt_;
  int bind_error_ = SQLITE_OK;
};

class LLMASSIST_API Connection {
 public:
  // Opens `path` and applies the store's pragmas. Errors are mapped as for the store.
  static Result<std::unique_ptr<Connection>> open(const std::string& path,
                                                  std::chrono::milliseconds busy_timeout,
                                                  bool full_sync);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A cached statement for `sql` (a string literal: the cache is keyed by its text).
  [[nodiscard]] Result<Statement> prepare(std::string_view sql);
  // Runs SQL without parameters (pragmas, schema): compiled each time, may hold several
  // statements.
  [[nodiscard]] Status exec(std::string_view sql);
  // Runs one statement without parameters or rows (BEGIN, COMMIT, SAVEPOINT), compiled once.
  [[nodiscard]] Status run(std::string_view sql);

  [[nodiscard]] sqlite3* handle() const { return db_; }
  [[nodiscard]] std::int64_t last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
  [[nodiscard]] int changes() const { return sqlite3_changes(db_); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  // Looked up by the text without copying it.
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> cache_;
};

// A transaction on one connection: BEGIN IMMEDIATE for writers (takes the write lock up front,
// so a writer never fails half-way on a lock upgrade), BEGIN DEFERRED for consistent reads.
// Rolls back unless committed.
class LLMASSIST_API Transaction {
 public:
  enum class Kind { kRead, kWrite };
  static Result<Transaction> begin(Connection& conn, Kind kind);
  Transaction(Transaction&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  [[nodiscard]] Status commit();

 private:
  explicit Transaction(Connection* conn) : conn_(conn) {}
  Connection* conn_;
};

// Runs a prepared query and collects every row through `read`.
template <typename T, typename Reader>
Result<std::vector<T>> collect(Statement& stmt, Reader read) {
  std::vector<T> out;
  while (true) {
    auto row = stmt.step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    out.push_back(read(stmt));
  }
}

// Runs a prepared query that yields at most one row; kNotFound with `missing` when none:
// text, or a function that makes it (so that a found row costs no message).
template <typename T, typename Reader, typename Missing>
Result<T> single(Statement& stmt, Reader read, Missing&& missing) {
  auto row = stmt.step();
  if (!row.ok()) return row.status();
  if (!*row) {
    if constexpr (std::is_invocable_v<Missing>) {
      return not_found(std::string(missing()));
    } else {
      return not_found(std::string(missing));
    }
  }
  return read(stmt);
}

// Up to `max` connections to one database, opened lazily and handed out one thread at a time.
class LLMASSIST_API ConnectionPool {
 public:
  ConnectionPool(std::string path, std::chrono::milliseconds busy_timeout, bool full_sync, int max);

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  [[nodiscard]] Result<Lease> acquire();
  // Hands the pool a connection opened elsewhere (the one that ran the migrations).
  void adopt(std::unique_ptr<Connection> conn);

 private:
  void give_back(std::unique_ptr<Connection> conn);
  const std::string path_;
  const std::chrono::milliseconds busy_timeout_;
  const bool full_sync_;
  const int max_;
  std::mutex mu_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_ = 0;
};

// Runs `body(Connection&)` in a transaction of `kind` on a connection from `pool`; commits when
// it succeeds, rolls back when it fails. A read transaction gives all its queries one snapshot;
// a write transaction holds the write lock from its start.
template <typename T, typename Body>
Result<T> in_transaction(ConnectionPool& pool, Transaction::Kind kind, Body&& body) {
  auto conn = pool.acquire();
  if (!conn.ok()) return conn.status();
  auto txn = Transaction::begin(**conn, kind);
  if (!txn.ok()) return txn.status();
  Result<T> result = body(**conn);
  if (!result.ok()) return result;
  LLMASSIST_RETURN_IF_ERROR(txn->commit());
  return result;
}

// in_transaction() for a body that returns a Status.
template <typename Body>
Status in_transaction_status(ConnectionPool& pool, Transaction::Kind kind, Body&& body) {
  return in_transaction<bool>(pool, kind,
                              [&](Connection& c) -> Result<bool> {
                                LLMASSIST_RETURN_IF_ERROR(body(c));
                                return true;
                              })
      .status();
}

}  // namespace llmassist::detail
