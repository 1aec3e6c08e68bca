// Internal: a thin RAII layer over libpq for the PostgreSQL stores — connections with a cache of
// prepared statements, a pool that replaces broken connections, transactions that are run again
// when they failed before their commit, SQLSTATEs mapped to Status, versioned migrations under
// an advisory lock, and the LISTEN side of change notification.
//
// Values travel as text (libpq's text format): integers and times (milliseconds since the epoch,
// bigint) as decimal digits, bytea as raw bytes in a binary parameter.
//
// Thread-safety: a Connection is used by one thread at a time (the pool hands it out); Pool and
// Listener are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "llmassist/clock.h"
#include "llmassist/logger.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

struct pg_conn;
struct pg_result;

namespace llmassist::detail::pg {

inline std::int64_t to_millis(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline Timestamp from_millis(std::int64_t ms) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::milliseconds(ms)));
}

// Statement parameters $1..$N, in order. Text values must be valid UTF-8 without NUL bytes
// (PostgreSQL's text holds neither): the store checks them first (check_text).
class Params {
 public:
  Params() = default;
  template <typename... Args>
  explicit Params(const Args&... args) {
    (add(args), ...);
  }

  Params& add(std::string_view value);
  Params& add(const std::string& value) { return add(std::string_view(value)); }
  Params& add(const char* value) { return add(std::string_view(value)); }
  Params& add(std::int64_t value);
  Params& add(int value) { return add(static_cast<std::int64_t>(value)); }
  Params& add(bool value);
  Params& add(double value);
  Params& add(std::nullopt_t);
  // float32 values, little-endian, as bytea (a binary parameter).
  Params& add(std::span<const float> value);
  Params& add(const std::vector<float>& value) { return add(std::span<const float>(value)); }
  // A text[] array.
  Params& add(std::span<const std::string> values);
  Params& add(const std::vector<std::string>& values) {
    return add(std::span<const std::string>(values));
  }
  // A float8[] array.
  Params& add(std::span<const double> values);
  Params& add(const std::vector<double>& values) { return add(std::span<const double>(values)); }
  template <typename T>
  Params& add(const std::optional<T>& value) {
    if (!value) return add(std::nullopt);
    return add(*value);
  }

  int size() const { return static_cast<int>(values_.size()); }
  // Whether a text value holds a NUL byte: libpq would cut it there, so exec() refuses it.
  bool has_nul() const { return has_nul_; }
  // For PQexecPrepared: pointers into this object, valid while it lives unchanged.
  std::vector<const char*> pointers() const;
  const std::vector<int>& lengths() const { return lengths_; }
  const std::vector<int>& formats() const { return formats_; }

 private:
  std::vector<std::optional<std::string>> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  bool has_nul_ = false;
};

// The rows of one statement's result.
class Rows {
 public:
  explicit Rows(pg_result* result) : result_(result) {}
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;
  ~Rows();

  int size() const;
  bool empty() const { return size() == 0; }
  // Rows the statement changed (INSERT, UPDATE, DELETE).
  std::int64_t affected() const;

  bool null(int row, int col) const;
  std::string text(int row, int col) const;    // "" for NULL
  std::int64_t int64(int row, int col) const;  // 0 for NULL
  double real(int row, int col) const;         // 0 for NULL
  bool boolean(int row, int col) const;        // false for NULL
  std::optional<std::int64_t> opt_int64(int row, int col) const;
  Timestamp time(int row, int col) const { return from_millis(int64(row, col)); }
  std::optional<Timestamp> opt_time(int row, int col) const;
  // A bytea of little-endian float32 values; kDataLoss when its length is no multiple of 4.
  // Empty for NULL.
  Result<std::vector<float>> floats(int row, int col) const;

 private:
  pg_result* result_ = nullptr;
};

// Where and how to connect, checked: libpq's keywords and values, the password apart.
struct ConnectSettings {
  std::vector<std::pair<std::string, std::string>> params;  // keyword -> value
  std::string password;
  std::string schema;
  std::string described;  // the URL without secrets, for messages
  std::chrono::milliseconds connect_timeout{};
};

// Parses the URL (or key=value string) of `options`; kInvalidArgument when libpq cannot read it,
// it carries a password, or the schema name is not [A-Za-z_][A-Za-z0-9_]*.
Result<ConnectSettings> connect_settings(const PostgresConnectOptions& options);

class Connection {
 public:
  // Connects, sets the session's search_path to the schema (created by the migration) and
  // statement settings. kUnavailable when the server cannot be reached, kUnauthenticated when it
  // refuses the credentials.
  static Result<std::unique_ptr<Connection>> open(const ConnectSettings& settings);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement, prepared once per connection and reused. Errors carry the SQLSTATE's
  // meaning (see pg_status in pg_db.cpp).
  Result<Rows> exec(std::string_view sql, const Params& params = Params());
  // exec() that keeps only the status; `affected`, when given, receives the rows changed.
  Status run(std::string_view sql, const Params& params = Params(),
             std::int64_t* affected = nullptr);
  // Runs several statements without parameters (a migration, BEGIN, COMMIT).
  Status script(std::string_view sql);

  // Sends one statement whose rows are not wanted, without waiting for its outcome (libpq's
  // pipeline mode): it travels with the next call that waits (exec(), run(), script(), sync()),
  // in the same round trip, and a failure of it is that call's failure (the statements sent
  // after it, up to there, then did not run). Inside a transaction only, where a failure fails
  // the whole of it all the same.
  Status defer(std::string_view sql, const Params& params = Params());
  // Waits for the deferred statements: the first failure among them.
  Status sync();
  // Sends a read without waiting, in order with the deferred statements: collect() returns its
  // rows.
  Status queue(std::string_view sql, const Params& params = Params());
  // Waits for everything sent: the rows of each queue()d read, in order. The first failure (of
  // a deferred statement or a read) fails them all.
  Result<std::vector<Rows>> collect();
  // Runs reads in one round trip, after the deferred statements: each one's rows, in order
  // (queue() each, then collect()).
  struct Statement {
    std::string_view sql;
    Params params;
  };
  Result<std::vector<Rows>> exec_each(std::span<const Statement> statements);

  // COPY ... FROM STDIN: copy_begin() with the statement, copy_put() with rows in COPY's text
  // format (copy_field() writes a field), copy_end() to finish; the rows affected are returned.
  Status copy_begin(std::string_view sql);
  Status copy_put(std::string_view data);
  Result<std::int64_t> copy_end();

  // False once the connection is lost: the pool drops it.
  bool usable() const;
  // The SQLSTATE of the last statement that failed since the last BEGIN ("" when none did).
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  void clear_error() { last_sqlstate_.clear(); }
  // The server process's id (for logs and tests).
  int backend_pid() const;
  pg_conn* handle() { return conn_; }

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  Status status_of(pg_result* result, std::string_view what);
  // Queues the statement (prepared first when new) in the pipeline, entering pipeline mode;
  // `wanted`: its rows are read.
  Status send(std::string_view sql, const Params& params, bool wanted);
  // Ends the pipeline: a sync point, then every queued statement's outcome. When all succeeded,
  // the rows of the wanted ones, in order, go to `wanted` (when given).
  Status finish_pipeline(std::vector<Rows>* wanted);

  // A statement in the pipeline whose outcome has not been read.
  struct Queued {
    std::string sql;
    bool prepare = false;  // the statement's preparation (its name was recorded optimistically)
    bool wanted = false;   // its rows are read
  };

  pg_conn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  std::vector<Queued> queued_;
  bool broken_ = false;  // the pipeline's results did not come as expected: not reused
  std::string last_sqlstate_;
};

// Connections to one database, made as needed up to a limit, a broken one replaced.
class Pool {
 public:
  Pool(ConnectSettings settings, int max_connections, std::shared_ptr<Logger> logger,
       std::chrono::milliseconds retry_for);
  ~Pool();

  // A connection held until the lease goes out of scope; given back to the pool unless broken.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) noexcept = default;
    ~Lease();
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // An idle connection, or a new one while fewer than the limit exist, else waits for one.
  // kUnavailable when none can be had before `deadline`.
  Result<Lease> acquire(std::chrono::steady_clock::time_point deadline);

  // Runs `body` in a transaction (READ COMMITTED) and commits it; with `read_only`, runs its
  // statements outside a transaction (each on its own snapshot, as READ COMMITTED gives).
  // When it fails before its commit because the connection was lost (the server restarting) or
  // PostgreSQL chose it as a deadlock's or serialization failure's victim, it runs again on
  // another connection, with a short growing pause, until retry_for has passed since the first
  // try. A connection lost during the COMMIT itself is kUnavailable, never run again: the
  // change may have been stored. `body` must have no effect outside the database
  // that a second run would repeat.
  template <typename T, typename Body>
  Result<T> transaction(bool read_only, Body&& body) {
    std::optional<Result<T>> out;
    Status s = run_transaction(read_only, [&](Connection& c) -> Status {
      out.emplace(body(c));
      return out->status();
    });
    if (!s.ok()) return s;
    return std::move(*out);
  }
  template <typename Body>
  Status transaction_status(bool read_only, Body&& body) {
    return run_transaction(read_only, std::function<Status(Connection&)>(body));
  }

  const ConnectSettings& settings() const { return settings_; }
  Logger& logger() { return *logger_; }
  std::chrono::milliseconds retry_for() const { return retry_for_; }

 private:
  Status run_transaction(bool read_only, const std::function<Status(Connection&)>& body);
  void give_back(std::unique_ptr<Connection> conn);

  const ConnectSettings settings_;
  const int max_;
  const std::shared_ptr<Logger> logger_;
  const std::chrono::milliseconds retry_for_;
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  int open_ = 0;                                   // guarded by mu_: idle and leased
};

// A schema of one component: its name, the migrations (N brings version N to N + 1), and the
// advisory lock and version row it owns.
struct SchemaDefinition {
  std::string_view name;  // "store", "accounts": the row of llmassist_schema
  std::span<const std::string_view> migrations;
};

// Creates the schema named in the settings when missing, then brings `definition` to
// `target_version` in one transaction under a transaction-level advisory lock of that schema
// (so that processes starting together migrate once, the others waiting and then finding it
// done). The versions live in the table llmassist_schema (component, version). A version newer
// than `target_version` is kFailedPrecondition naming both.
Status migrate(Pool& pool, const SchemaDefinition& definition, int target_version);

// The notification channel of a schema's stores.
std::string change_channel(std::string_view schema);

// SELECT pg_notify(...) for a change: run it inside a transaction that changed rows; the
// notification is delivered when (and only if) it commits.
Status notify_change(Connection& c, std::string_view channel);

// LISTENs on a channel on a connection of its own, in a thread of its own, and counts: every
// notification received, and every reconnection (notifications may have been missed meanwhile),
// raises the generation and wakes wait(). A lost connection is made again with a growing pause.
class Listener {
 public:
  Listener(ConnectSettings settings, std::string channel, std::shared_ptr<Logger> logger);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Raises the generation now (this process committed a change).
  void bump();
  // As MessageStore::wait_for_change().
  std::uint64_t wait(std::uint64_t seen, std::chrono::milliseconds timeout);

 private:
  void loop();

  const ConnectSettings settings_;
  const std::string channel_;
  const std::shared_ptr<Logger> logger_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::uint64_t generation_ = 1;  // guarded by mu_
  std::atomic<bool> stop_{false};
  int wake_fds_[2] = {-1, -1};  // a pipe that interrupts the listening thread's poll()
  std::thread thread_;
};

// Appends `value` to `row` as a field of COPY's text format: NULL as \N, backslash, tab,
// newline and carriage return escaped. `bytea`: the value is raw bytes, written in hex.
void copy_field(std::string& row, const std::optional<std::string_view>& value, bool bytea = false);

// kInvalidArgument when `text` cannot be stored in a text column: a NUL byte or invalid UTF-8.
Status check_text(std::string_view what, std::string_view text);

}  // namespace llmassist::detail::pg
