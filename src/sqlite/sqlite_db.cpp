#include "sqlite/sqlite_db.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

namespace llmassist::detail {

bool world_readable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0;
}

Status create_private_file(const std::string& path, Logger& logger, std::string_view component) {
  if (path.starts_with("file:")) return Status();  // a URI: SQLite opens it as told
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return Status();
  }
  if (errno != EEXIST) {
    const int error = errno;
    const std::string message =
        fmt::format("cannot create database {}: {}", path, std::strerror(error));
    return error == EACCES || error == EPERM ? permission_denied(message) : unavailable(message);
  }
  if (world_readable(path)) {
    logger.log(LogLevel::kWarning, component,
               fmt::format("database {} may be read by every user of this machine; it holds "
                           "users' messages (and the accounts' hashes): chmod 600 it",
                           path));
  }
  return Status();
}

Status check_database_path(std::string_view path, std::string_view who) {
  if (path.empty()) return invalid_argument(fmt::format("{} needs a database path", who));
  if (path == ":memory:" || path.starts_with("file::memory:")) {
    return invalid_argument(fmt::format(
        "{} needs a database file: an in-memory database cannot be shared by its connections",
        who));
  }
  return Status();
}

Status sqlite_status(int rc, sqlite3* db, std::string_view what) {
  const int primary = rc & 0xff;
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = fmt::format("{}: {}", what, detail);
  switch (primary) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Status();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return unavailable(message + " (the database stayed locked by another writer)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return data_loss(message + " (the file is damaged or is not an SQLite database)");
    case SQLITE_CANTOPEN:
      return unavailable(message + " (check that the folder exists and is writable)");
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return permission_denied(message + " (the database or its folder is not writable)");
    case SQLITE_FULL:
      return resource_exhausted(message + " (the disk is full)");
    case SQLITE_IOERR:
      return unavailable(message + " (an I/O error)");
    case SQLITE_CONSTRAINT:
      return invalid_argument(message);
    case SQLITE_TOOBIG:
      return invalid_argument(message + " (a value is too large)");
    case SQLITE_INTERRUPT:
      return cancelled(message);
    default:
      return internal_error(message);
  }
}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::bind_one(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) bind_error_ = rc;
}
void Statement::bind_one(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) bind_error_ = rc;
}
void Statement::bind_one(int index, std::string_view value) {
  if (value.data() == nullptr) value = "";  // an empty view is text, not NULL
  const int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) bind_error_ = rc;
}
void Statement::bind_one(int index, std::nullopt_t) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) bind_error_ = rc;
}

namespace {

// float32 values as stored: little-endian whatever the machine.
[[maybe_unused]] std::uint32_t swap_bytes(std::uint32_t v) {
  return ((v & 0xffU) << 24) | ((v & 0xff00U) << 8) | ((v >> 8) & 0xff00U) | (v >> 24);
}
constexpr bool kLittleEndian = std::endian::native == std::endian::little;

}  // namespace

void Statement::bind_one(int index, std::span<const float> values) {
  if (values.empty()) return bind_one(index, std::nullopt);
  int rc = SQLITE_OK;
  if constexpr (kLittleEndian) {
    rc = sqlite3_bind_blob64(stmt_, index, values.data(), values.size_bytes(), SQLITE_TRANSIENT);
  } else {
    std::vector<std::uint32_t> swapped(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      swapped[i] = swap_bytes(std::bit_cast<std::uint32_t>(values[i]));
    }
    rc = sqlite3_bind_blob64(stmt_, index, swapped.data(), values.size_bytes(), SQLITE_TRANSIENT);
  }
  if (rc != SQLITE_OK) bind_error_ = rc;
}

Result<std::vector<float>> Statement::floats(int col) const {
  if (is_null(col)) return std::vector<float>{};
  const void* p = sqlite3_column_blob(stmt_, col);
  const auto bytes = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col));
  if (bytes % sizeof(float) != 0) {
    return data_loss(fmt::format(
        "database {}: a stored vector has {} bytes, not a whole number of float32 values",
        conn_->path(), bytes));
  }
  std::vector<float> out(bytes / sizeof(float));
  if (bytes != 0) std::memcpy(out.data(), p, bytes);
  if constexpr (!kLittleEndian) {
    for (float& f : out) f = std::bit_cast<float>(swap_bytes(std::bit_cast<std::uint32_t>(f)));
  }
  return out;
}

Result<bool> Statement::step() {
  if (bind_error_ != SQLITE_OK) {
    return sqlite_status(bind_error_, conn_->handle(), "binding a parameter");
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_status(rc, conn_->handle(), fmt::format("database {}", conn_->path()));
}

Status Statement::run() {
  while (true) {
    auto row = step();
    if (!row.ok()) return row.status();
    if (!*row) return Status();
  }
}

std::int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}
bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int Statement::type(int col) const { return sqlite3_column_type(stmt_, col); }
std::string_view Statement::bytes(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  const int size = sqlite3_column_bytes(stmt_, col);
  if (data == nullptr || size <= 0) return {};
  return std::string_view(static_cast<const char*>(data), static_cast<std::size_t>(size));
}
std::optional<std::int64_t> Statement::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}
std::optional<Timestamp> Statement::opt_time(int col) const {
  if (is_null(col)) return std::nullopt;
  return from_millis(int64(col));
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path,
                                                     std::chrono::milliseconds busy_timeout,
                                                     bool full_sync) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status status = sqlite_status(rc, db, fmt::format("cannot open database {}", path));
    sqlite3_close(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  std::unique_ptr<Connection> conn(new Connection(db, path));
  // journal_mode is the first statement that reads the file: a file that is not a database
  // fails here with SQLITE_NOTADB. secure_delete: deleted content is overwritten with zeros, so
  // that an erased user's text does not live on in free space.
  const std::string pragmas = fmt::format(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous={}; PRAGMA foreign_keys=ON; "
      "PRAGMA temp_store=MEMORY; PRAGMA secure_delete=ON;",
      full_sync ? "FULL" : "NORMAL");
  if (Status s = conn->exec(pragmas); !s.ok()) {
    return s.annotate(fmt::format("cannot use database {}", path));
  }
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Result<Statement> Connection::prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return sqlite_status(rc, db_, fmt::format("database {}", path_));
    }
    it = cache_.emplace(std::string(sql), stmt).first;
  }
  return Statement(*this, it->second);
}

Status Connection::exec(std::string_view sql) {
  const std::string text(sql);
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return sqlite_status(rc, db_, fmt::format("database {}", path_));
  return Status();
}

Status Connection::run(std::string_view sql) {
  auto s = prepare(sql);
  if (!s.ok()) return s.status();
  return s->run();
}

Result<Transaction> Transaction::begin(Connection& conn, Kind kind) {
  if (Status s = conn.run(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"); !s.ok()) {
    return s;
  }
  return Transaction(&conn);
}

Transaction::~Transaction() {
  if (conn_ != nullptr && sqlite3_get_autocommit(conn_->handle()) == 0) {
    (void)conn_->run("ROLLBACK");
  }
}

Status Transaction::commit() {
  Connection* conn = std::exchange(conn_, nullptr);
  Status s = conn->run("COMMIT");
  if (!s.ok() && sqlite3_get_autocommit(conn->handle()) == 0) (void)conn->run("ROLLBACK");
  return s;
}

ConnectionPool::ConnectionPool(std::string path, std::chrono::milliseconds busy_timeout,
                               bool full_sync, int max)
    : path_(std::move(path)),
      busy_timeout_(busy_timeout),
      full_sync_(full_sync),
      max_(max < 1 ? 1 : max) {}

ConnectionPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->give_back(std::move(conn_));
}

Result<ConnectionPool::Lease> ConnectionPool::acquire() {
  std::unique_lock lock(mu_);
  available_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  ++open_;
  lock.unlock();
  auto conn = Connection::open(path_, busy_timeout_, full_sync_);
  if (!conn.ok()) {
    lock.lock();
    --open_;
    available_.notify_one();
    return conn.status();
  }
  return Lease(this, std::move(conn).value());
}

void ConnectionPool::adopt(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mu_);
  ++open_;
  idle_.push_back(std::move(conn));
  available_.notify_one();
}

void ConnectionPool::give_back(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mu_);
  // A connection left inside a transaction by a failed path is rolled back before reuse.
  if (sqlite3_get_autocommit(conn->handle()) == 0) (void)conn->exec("ROLLBACK");
  idle_.push_back(std::move(conn));
  available_.notify_one();
}

}  // namespace llmassist::detail
