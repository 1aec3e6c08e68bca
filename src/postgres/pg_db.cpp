#include "postgres/pg_db.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <set>

#include "core/utf8.h"

namespace llmassist {

namespace {

// libpq's connection keywords whose values are secrets: never shown, never taken from a URL.
bool secret_keyword(std::string_view keyword) {
  return keyword == "password" || keyword == "sslpassword";
}

struct ParsedOptions {
  PQconninfoOption* options = nullptr;
  ~ParsedOptions() {
    if (options) PQconninfoFree(options);
  }
};

// libpq's own reading of a URL or key=value string; its error (which names no secret) on failure.
Status parse_conninfo(std::string_view url, ParsedOptions& out) {
  char* error = nullptr;
  out.options = PQconninfoParse(std::string(url).c_str(), &error);
  if (out.options == nullptr) {
    std::string message = error ? error : "out of memory";
    if (error) PQfreemem(error);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    return invalid_argument(fmt::format("the PostgreSQL URL cannot be read: {}", message));
  }
  return Status();
}

}  // namespace

bool is_postgres_url(std::string_view database) noexcept {
  return database.starts_with("postgresql://") || database.starts_with("postgres://");
}

std::string describe_postgres_url(std::string_view url) {
  ParsedOptions parsed;
  if (!parse_conninfo(url, parsed).ok()) return "(an unreadable PostgreSQL URL)";
  std::string user;
  std::string host;
  std::string port;
  std::string dbname;
  std::string extra;
  for (PQconninfoOption* o = parsed.options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const std::string_view key = o->keyword;
    const std::string value = secret_keyword(key) ? "***" : o->val;
    if (key == "user") {
      user = value;
    } else if (key == "host" || key == "hostaddr") {
      if (host.empty()) host = value;
    } else if (key == "port") {
      port = value;
    } else if (key == "dbname") {
      dbname = value;
    } else {
      extra += extra.empty() ? '?' : '&';
      extra += fmt::format("{}={}", key, value);
    }
  }
  std::string out = "postgresql://";
  if (!user.empty()) out += user + "@";
  out += host;
  if (!port.empty()) out += ":" + port;
  if (!dbname.empty()) out += "/" + dbname;
  return out + extra;
}

namespace detail::pg {

namespace {

constexpr std::string_view kComponent = "store.postgres";

std::string trimmed(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// The start of a statement, to say which one failed (statements hold no values: those are
// parameters).
std::string statement_head(std::string_view sql) {
  std::string out;
  for (char ch : sql.substr(0, 60)) out += (ch == '\n' || ch == '\t') ? ' ' : ch;
  if (sql.size() > 60) out += "...";
  return out;
}

// A Status for a failed statement: the SQLSTATE decides the code. Only PostgreSQL's primary
// message is kept; its DETAIL, which may quote the row's values, is not.
Status status_for(std::string_view sqlstate, std::string_view message, std::string_view sql) {
  const std::string text = fmt::format("PostgreSQL: {} (SQLSTATE {}) in \"{}\"", message,
                                       sqlstate.empty() ? "none" : sqlstate, statement_head(sql));
  const auto cls = sqlstate.substr(0, std::min<std::size_t>(2, sqlstate.size()));
  if (sqlstate == "23505") return already_exists(text);
  if (sqlstate == "40001" || sqlstate == "40P01") return aborted(text);
  if (sqlstate == "57014") return deadline_exceeded(text);
  if (sqlstate == "XX001" || sqlstate == "XX002") return data_loss(text);
  if (cls == "22" || cls == "23") return invalid_argument(text);
  if (cls == "08" || cls == "53" || cls == "57" || sqlstate.empty()) return unavailable(text);
  if (cls == "28") return unauthenticated(text);
  return internal_error(text);
}

void quiet_notices(void*, const char*) {}

// Growing pauses between tries: 50 ms, 100 ms, ... at most 1 s.
std::chrono::milliseconds backoff(int attempt) {
  return std::chrono::milliseconds(std::min(1000, 50 << std::min(attempt, 5)));
}

void sleep_until_at_most(std::chrono::steady_clock::time_point deadline,
                         std::chrono::milliseconds pause) {
  const auto until = std::min(deadline, std::chrono::steady_clock::now() + pause);
  std::this_thread::sleep_until(until);
}

bool retry_after_failure(const Connection& c) {
  if (!c.usable()) return true;
  const std::string& state = c.last_sqlstate();
  return state == "40001" || state == "40P01" || state == "57P01" || state == "57P02" ||
         state == "57P03" || state.starts_with("08");
}

// FNV-1a: a stable 64-bit key for the advisory lock of a schema (std::hash may differ between
// builds, and two versions of the program must take the same lock).
std::int64_t lock_key(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h);
}

std::string quoted(std::string_view identifier) { return fmt::format("\"{}\"", identifier); }

bool valid_schema_name(std::string_view name) {
  if (name.empty() || name.size() > 40) return false;
  const auto letter = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
  };
  if (!letter(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char ch) { return letter(ch) || (ch >= '0' && ch <= '9'); });
}

// An array element in double quotes, its quotes and backslashes escaped.
void append_array_element(std::string& out, std::string_view value) {
  out += '"';
  for (char ch : value) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

}  // namespace

// ---- Params --------------------------------------------------------------------------------

Params& Params::add(std::string_view value) {
  has_nul_ = has_nul_ || value.find('\0') != std::string_view::npos;
  values_.emplace_back(std::string(value));
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

Params& Params::add(std::int64_t value) { return add(std::string_view(std::to_string(value))); }

Params& Params::add(bool value) { return add(std::string_view(value ? "true" : "false")); }

Params& Params::add(double value) { return add(std::string_view(fmt::format("{}", value))); }

Params& Params::add(std::nullopt_t) {
  values_.emplace_back(std::nullopt);
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

Params& Params::add(std::span<const float> value) {
  std::string bytes(value.size() * sizeof(float), '\0');
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto bits = std::bit_cast<std::uint32_t>(value[i]);
    if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
    std::memcpy(bytes.data() + i * sizeof(float), &bits, sizeof(bits));
  }
  lengths_.push_back(static_cast<int>(bytes.size()));
  values_.emplace_back(std::move(bytes));
  formats_.push_back(1);
  return *this;
}

Params& Params::add(std::span<const std::string> values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    append_array_element(out, values[i]);
  }
  out += '}';
  return add(std::string_view(out));
}

Params& Params::add(std::span<const double> values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += fmt::format("{}", values[i]);
  }
  out += '}';
  return add(std::string_view(out));
}

std::vector<const char*> Params::pointers() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (const auto& v : values_) out.push_back(v ? v->data() : nullptr);
  return out;
}

// ---- Rows ----------------------------------------------------------------------------------

Rows::Rows(Rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (result_) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

Rows::~Rows() {
  if (result_) PQclear(result_);
}

int Rows::size() const { return result_ ? PQntuples(result_) : 0; }

std::int64_t Rows::affected() const {
  if (!result_) return 0;
  const char* n = PQcmdTuples(result_);
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

bool Rows::null(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }

std::string Rows::text(int row, int col) const {
  if (null(row, col)) return {};
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<std::size_t>(PQgetlength(result_, row, col)));
}

std::int64_t Rows::int64(int row, int col) const {
  if (null(row, col)) return 0;
  return std::strtoll(PQgetvalue(result_, row, col), nullptr, 10);
}

double Rows::real(int row, int col) const {
  if (null(row, col)) return 0;
  return std::strtod(PQgetvalue(result_, row, col), nullptr);
}

bool Rows::boolean(int row, int col) const {
  return !null(row, col) && PQgetvalue(result_, row, col)[0] == 't';
}

std::optional<std::int64_t> Rows::opt_int64(int row, int col) const {
  if (null(row, col)) return std::nullopt;
  return int64(row, col);
}

std::optional<Timestamp> Rows::opt_time(int row, int col) const {
  if (null(row, col)) return std::nullopt;
  return time(row, col);
}

Result<std::vector<float>> Rows::floats(int row, int col) const {
  if (null(row, col)) return std::vector<float>{};
  std::size_t length = 0;
  unsigned char* bytes = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, col)), &length);
  if (bytes == nullptr) return resource_exhausted("out of memory reading a vector");
  if (length % sizeof(float) != 0) {
    PQfreemem(bytes);
    return data_loss(
        fmt::format("a stored vector is {} bytes long, not a multiple of 4: damaged", length));
  }
  std::vector<float> out(length / sizeof(float));
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, bytes + i * sizeof(float), sizeof(bits));
    if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
    out[i] = std::bit_cast<float>(bits);
  }
  PQfreemem(bytes);
  return out;
}

// ---- settings ------------------------------------------------------------------------------

Result<ConnectSettings> connect_settings(const PostgresConnectOptions& options) {
  if (options.url.empty()) return invalid_argument("the PostgreSQL URL is empty");
  if (!valid_schema_name(options.schema)) {
    return invalid_argument(
        fmt::format("the PostgreSQL schema \"{}\" is not a plain name: letters, digits and '_', "
                    "starting with a letter or '_', at most 40",
                    options.schema));
  }
  if (options.max_connections < 1) return invalid_argument("max_connections must be at least 1");
  ParsedOptions parsed;
  LLMASSIST_RETURN_IF_ERROR(parse_conninfo(options.url, parsed));
  ConnectSettings out;
  std::set<std::string> given;
  for (PQconninfoOption* o = parsed.options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (secret_keyword(key)) {
      return invalid_argument(
          "the PostgreSQL URL carries a password: give it apart (the configuration's "
          "database_password_env names an environment variable that holds it)");
    }
    given.insert(o->keyword);
    out.params.emplace_back(o->keyword, o->val);
  }
  const auto by_default = [&](const char* key, std::string value) {
    if (!given.count(key)) out.params.emplace_back(key, std::move(value));
  };
  by_default("connect_timeout",
             std::to_string(std::max<std::int64_t>(
                 1, std::chrono::ceil<std::chrono::seconds>(options.connect_timeout).count())));
  by_default("application_name", "llmassist");
  // A server that vanished without closing the connection (a host down, a network cut) is found
  // out within about half a minute, not after the system's two hours of TCP keepalive: a call
  // then fails over to a new connection instead of waiting forever.
  by_default("keepalives_idle", "10");
  by_default("keepalives_interval", "5");
  by_default("keepalives_count", "3");
  by_default("tcp_user_timeout", "30000");
  out.params.emplace_back("client_encoding", "UTF8");
  out.password = options.password;
  out.schema = options.schema;
  out.described = describe_postgres_url(options.url);
  out.connect_timeout = options.connect_timeout;
  return out;
}

Status check_text(std::string_view what, std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const Utf8Char ch = decode_utf8(text, i);
    if (!ch.valid) return invalid_argument(fmt::format("{} is not valid UTF-8", what));
    if (ch.code_point == 0)
      return invalid_argument(fmt::format("{} contains a NUL character", what));
    i += ch.length;
  }
  return Status();
}

// ---- Connection ----------------------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::open(const ConnectSettings& settings) {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : settings.params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  if (!settings.password.empty()) {
    keys.push_back("password");
    values.push_back(settings.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), 0);
  if (conn == nullptr) return resource_exhausted("out of memory connecting to PostgreSQL");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = trimmed(PQerrorMessage(conn));
    PQfinish(conn);
    // libpq's message names the host and the user, never the password.
    const bool refused = message.find("password authentication failed") != std::string::npos ||
                         message.find("no password supplied") != std::string::npos ||
                         message.find("authentication failed") != std::string::npos;
    const std::string text =
        fmt::format("cannot connect to PostgreSQL at {}: {}", settings.described, message);
    return refused ? unauthenticated(text) : unavailable(text);
  }
  PQsetNoticeProcessor(conn, quiet_notices, nullptr);
  std::unique_ptr<Connection> out(new Connection(conn));
  // A schema that does not exist yet (the migration makes it) is skipped by search_path.
  LLMASSIST_RETURN_IF_ERROR(
      out->script(fmt::format("SET search_path TO {}", quoted(settings.schema))));
  return out;
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

bool Connection::usable() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }

int Connection::backend_pid() const { return PQbackendPID(conn_); }

Status Connection::status_of(PGresult* result, std::string_view sql) {
  std::string state;
  std::string message;
  if (result != nullptr) {
    if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) state = s;
    if (const char* m = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)) message = m;
  }
  if (message.empty()) message = trimmed(PQerrorMessage(conn_));
  if (!usable()) {
    if (state.empty()) state = "08006";
    message = "the connection was lost: " + message;
  }
  last_sqlstate_ = state;
  return status_for(state, message, sql);
}

Result<Rows> Connection::exec(std::string_view sql, const Params& params) {
  if (params.has_nul()) {
    return invalid_argument("a text holds a NUL character, which PostgreSQL cannot store");
  }
  if (!queued_.empty()) {
    // With the deferred statements, in one round trip.
    Status sent = send(sql, params, true);
    if (!sent.ok()) return sent;
    std::vector<Rows> rows;
    LLMASSIST_RETURN_IF_ERROR(finish_pipeline(&rows));
    return std::move(rows.front());
  }
  std::string key(sql);
  auto it = prepared_.find(key);
  if (it == prepared_.end()) {
    std::string name = fmt::format("s{}", prepared_.size() + 1);
    PGresult* prep = PQprepare(conn_, name.c_str(), key.c_str(), 0, nullptr);
    if (prep == nullptr || PQresultStatus(prep) != PGRES_COMMAND_OK) {
      Status s = status_of(prep, sql);
      if (prep) PQclear(prep);
      return s;
    }
    PQclear(prep);
    it = prepared_.emplace(std::move(key), std::move(name)).first;
  }
  const std::vector<const char*> values = params.pointers();
  PGresult* result =
      PQexecPrepared(conn_, it->second.c_str(), params.size(), values.data(),
                     params.lengths().data(), params.formats().data(), /*resultFormat=*/0);
  const ExecStatusType st = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status s = status_of(result, sql);
    if (result) PQclear(result);
    return s;
  }
  return Rows(result);
}

Status Connection::run(std::string_view sql, const Params& params, std::int64_t* affected) {
  auto rows = exec(sql, params);
  if (!rows.ok()) return rows.status();
  if (affected) *affected = rows->affected();
  return Status();
}

Status Connection::script(std::string_view sql) {
  if (!queued_.empty()) {
    // One statement goes with the deferred ones; several (which the pipeline cannot carry)
    // after them.
    if (sql.find(';') == std::string_view::npos) return exec(sql).status();
    LLMASSIST_RETURN_IF_ERROR(sync());
  }
  PGresult* result = PQexec(conn_, std::string(sql).c_str());
  const ExecStatusType st = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  Status s;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) s = status_of(result, sql);
  if (result) PQclear(result);
  return s;
}

Status Connection::defer(std::string_view sql, const Params& params) {
  return send(sql, params, false);
}

Status Connection::sync() {
  if (queued_.empty()) return Status();
  return finish_pipeline(nullptr);
}

Status Connection::queue(std::string_view sql, const Params& params) {
  return send(sql, params, true);
}

Result<std::vector<Rows>> Connection::collect() {
  std::vector<Rows> rows;
  if (queued_.empty()) return rows;
  LLMASSIST_RETURN_IF_ERROR(finish_pipeline(&rows));
  return rows;
}

Result<std::vector<Rows>> Connection::exec_each(std::span<const Statement> statements) {
  for (const Statement& st : statements) LLMASSIST_RETURN_IF_ERROR(queue(st.sql, st.params));
  return collect();
}

Status Connection::send(std::string_view sql, const Params& params, bool wanted) {
  if (params.has_nul()) {
    return invalid_argument("a text holds a NUL character, which PostgreSQL cannot store");
  }
  if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF && PQenterPipelineMode(conn_) != 1) {
    return status_of(nullptr, sql);
  }
  std::string key(sql);
  auto it = prepared_.find(key);
  if (it == prepared_.end()) {
    std::string name = fmt::format("s{}", prepared_.size() + 1);
    if (PQsendPrepare(conn_, name.c_str(), key.c_str(), 0, nullptr) != 1) {
      broken_ = true;
      return status_of(nullptr, sql);
    }
    queued_.push_back({key, true});
    it = prepared_.emplace(key, std::move(name)).first;
  }
  const std::vector<const char*> values = params.pointers();
  if (PQsendQueryPrepared(conn_, it->second.c_str(), params.size(), values.data(),
                          params.lengths().data(), params.formats().data(),
                          /*resultFormat=*/0) != 1) {
    broken_ = true;
    return status_of(nullptr, sql);
  }
  queued_.push_back({std::move(key), false, wanted});
  return Status();
}

Status Connection::finish_pipeline(std::vector<Rows>* wanted) {
  Status first;
  std::vector<Rows> kept;
  bool lost = PQpipelineSync(conn_) != 1;
  if (lost) first = status_of(nullptr, queued_.front().sql);
  for (std::size_t i = 0; i < queued_.size() && !lost; ++i) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) {
      lost = true;
      if (first.ok()) first = status_of(nullptr, queued_[i].sql);
      break;
    }
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (queued_[i].wanted && first.ok()) {
        kept.emplace_back(r);
        r = nullptr;
      }
    } else {
      // PGRES_PIPELINE_ABORTED: skipped after an earlier failure, which `first` holds.
      if (st != PGRES_PIPELINE_ABORTED && first.ok()) first = status_of(r, queued_[i].sql);
      if (queued_[i].prepare) prepared_.erase(queued_[i].sql);  // it was not prepared
    }
    if (r) PQclear(r);
    // Each statement's results end with a null.
    if (PGresult* extra = PQgetResult(conn_)) {
      PQclear(extra);
      lost = true;
    }
  }
  if (!lost) {
    PGresult* r = PQgetResult(conn_);
    lost = r == nullptr || PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    if (r) PQclear(r);
  }
  queued_.clear();
  if (lost || PQexitPipelineMode(conn_) != 1) {
    if (first.ok()) first = status_of(nullptr, "a pipeline");
    broken_ = true;
  }
  if (first.ok() && wanted != nullptr) *wanted = std::move(kept);
  return first;
}

Status Connection::copy_begin(std::string_view sql) {
  LLMASSIST_RETURN_IF_ERROR(sync());  // COPY cannot go into the pipeline
  PGresult* result = PQexec(conn_, std::string(sql).c_str());
  const ExecStatusType st = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  Status s;
  if (st != PGRES_COPY_IN) s = status_of(result, sql);
  if (result) PQclear(result);
  return s;
}

Status Connection::copy_put(std::string_view data) {
  if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
    return status_of(nullptr, "COPY");
  }
  return Status();
}

Result<std::int64_t> Connection::copy_end() {
  if (PQputCopyEnd(conn_, nullptr) != 1) return status_of(nullptr, "COPY");
  Status s;
  std::int64_t rows = 0;
  while (PGresult* result = PQgetResult(conn_)) {
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      if (s.ok()) s = status_of(result, "COPY");
    } else {
      rows += Rows(result).affected();
      continue;  // the Rows freed it
    }
    PQclear(result);
  }
  if (!s.ok()) return s;
  return rows;
}

void copy_field(std::string& row, const std::optional<std::string_view>& value, bool bytea) {
  if (!value) {
    row += "\\N";
    return;
  }
  if (bytea) {
    static constexpr char kHex[] = "0123456789abcdef";
    row += "\\\\x";
    for (unsigned char b : *value) {
      row += kHex[b >> 4];
      row += kHex[b & 0xf];
    }
    return;
  }
  for (char ch : *value) {
    switch (ch) {
      case '\\':
        row += "\\\\";
        break;
      case '\t':
        row += "\\t";
        break;
      case '\n':
        row += "\\n";
        break;
      case '\r':
        row += "\\r";
        break;
      default:
        row += ch;
    }
  }
}

// ---- Pool ----------------------------------------------------------------------------------

Pool::Pool(ConnectSettings settings, int max_connections, std::shared_ptr<Logger> logger,
           std::chrono::milliseconds retry_for)
    : settings_(std::move(settings)),
      max_(max_connections),
      logger_(std::move(logger)),
      retry_for_(retry_for) {}

Pool::~Pool() = default;

Pool::Lease::~Lease() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->give_back(std::move(conn_));
}

void Pool::give_back(std::unique_ptr<Connection> conn) {
  // A connection inside a transaction (a caller that failed between BEGIN and the end) or a
  // broken one is not handed out again.
  const bool broken = !conn->usable();
  const bool keep = !broken && PQtransactionStatus(conn->handle()) == PQTRANS_IDLE;
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard lock(mu_);
    if (keep) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
    // A lost connection most often means the server restarted or failed over: the idle ones
    // are lost too, though they do not know it yet. They are made again as needed, instead of
    // each costing a failed call and a pause first.
    if (broken) {
      open_ -= static_cast<int>(idle_.size());
      dropped.swap(idle_);
    }
  }
  freed_.notify_all();
}

Result<Pool::Lease> Pool::acquire(std::chrono::steady_clock::time_point deadline) {
  Status last = unavailable(
      fmt::format("all {} connections to PostgreSQL at {} are busy", max_, settings_.described));
  for (int attempt = 0;; ++attempt) {
    {
      std::unique_lock lock(mu_);
      while (true) {
        while (!idle_.empty()) {
          std::unique_ptr<Connection> conn = std::move(idle_.back());
          idle_.pop_back();
          if (conn->usable()) return Lease(this, std::move(conn));
          --open_;
        }
        if (open_ < max_) break;
        if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= max_) {
          return last;
        }
      }
      ++open_;
    }
    auto conn = Connection::open(settings_);
    if (conn.ok()) return Lease(this, std::move(conn).value());
    {
      std::lock_guard lock(mu_);
      --open_;
      freed_.notify_one();
    }
    last = conn.status();
    if (last.code() != StatusCode::kUnavailable) return last;  // refused: trying again won't help
    if (std::chrono::steady_clock::now() + backoff(attempt) >= deadline) return last;
    sleep_until_at_most(deadline, backoff(attempt));
  }
}

Status Pool::run_transaction(bool read_only, const std::function<Status(Connection&)>& body) {
  const auto deadline = std::chrono::steady_clock::now() + retry_for_;
  for (int attempt = 0;; ++attempt) {
    auto lease = acquire(deadline);
    if (!lease.ok()) return lease.status();
    Connection& c = **lease;
    c.clear_error();
    bool committing = false;
    // A read runs statement by statement: under READ COMMITTED a transaction would give each
    // statement its own snapshot all the same, and BEGIN and COMMIT would cost two round trips.
    if (read_only) {
      Status s = body(c);
      if (s.ok() || !retry_after_failure(c) || std::chrono::steady_clock::now() >= deadline) {
        return s;
      }
      sleep_until_at_most(deadline, backoff(attempt));
      continue;
    }
    // BEGIN goes with the body's first statement, and the deferred ones with the COMMIT.
    Status s = c.defer("BEGIN");
    if (s.ok()) {
      s = body(c);
      if (s.ok()) {
        committing = true;
        s = c.script("COMMIT");
        if (s.ok()) return s;
      }
      // A statement deferred to the COMMIT failed, so the COMMIT did not run: the transaction
      // is still open, failed.
      if (c.usable()) (void)c.script("ROLLBACK");
    }
    if (committing && !c.usable()) {
      return unavailable(fmt::format(
          "the connection to PostgreSQL at {} was lost during a commit: the change may or may "
          "not have been stored",
          settings_.described));
    }
    if (!retry_after_failure(c)) return s;
    if (std::chrono::steady_clock::now() >= deadline) {
      return unavailable(fmt::format("PostgreSQL at {} did not answer within {} ms: {}",
                                     settings_.described, retry_for_.count(), s.message()));
    }
    if (attempt == 0) {
      logger_->log(LogLevel::kWarning, kComponent,
                   fmt::format("a transaction is tried again after: {}", s.message()));
    }
    sleep_until_at_most(deadline, backoff(attempt));
  }
}

// ---- migrations ----------------------------------------------------------------------------

Status migrate(Pool& pool, const SchemaDefinition& definition, int target_version) {
  if (target_version > static_cast<int>(definition.migrations.size())) {
    return internal_error(
        fmt::format("no migration to {} version {}", definition.name, target_version));
  }
  const std::string& schema = pool.settings().schema;
  return pool.transaction_status(false, [&](Connection& c) -> Status {
    // Every process that opens a store of this schema queues here; the first migrates, the
    // others then find the version current.
    LLMASSIST_RETURN_IF_ERROR(c.run("SELECT pg_advisory_xact_lock($1)",
                                    Params(lock_key(fmt::format("llmassist:{}", schema)))));
    LLMASSIST_RETURN_IF_ERROR(
        c.script(fmt::format("CREATE SCHEMA IF NOT EXISTS {}", quoted(schema))));
    LLMASSIST_RETURN_IF_ERROR(
        c.script("CREATE TABLE IF NOT EXISTS llmassist_schema (component text PRIMARY KEY, "
                 "version integer NOT NULL)"));
    LLMASSIST_ASSIGN_OR_RETURN(Rows rows,
                               c.exec("SELECT version FROM llmassist_schema WHERE component = $1",
                                      Params(definition.name)));
    const int version = rows.empty() ? 0 : static_cast<int>(rows.int64(0, 0));
    if (version > target_version) {
      return failed_precondition(fmt::format(
          "the PostgreSQL schema {} has {} version {}, newer than the {} this build of llmassist "
          "supports; upgrade llmassist or use another schema",
          schema, definition.name, version, target_version));
    }
    for (int v = version; v < target_version; ++v) {
      LLMASSIST_RETURN_IF_ERROR(
          c.script(definition.migrations[static_cast<std::size_t>(v)])
              .annotate(fmt::format("{} migration {} -> {}", definition.name, v, v + 1)));
    }
    if (version != target_version) {
      LLMASSIST_RETURN_IF_ERROR(
          c.run("INSERT INTO llmassist_schema (component, version) VALUES ($1, $2) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                Params(definition.name, target_version)));
    }
    return Status();
  });
}

std::string change_channel(std::string_view schema) {
  return fmt::format("llmassist_changes_{}", schema);
}

Status notify_change(Connection& c, std::string_view channel) {
  return c.defer("SELECT pg_notify($1, '')", Params(channel));
}

// ---- Listener ------------------------------------------------------------------------------

Listener::Listener(ConnectSettings settings, std::string channel, std::shared_ptr<Logger> logger)
    : settings_(std::move(settings)), channel_(std::move(channel)), logger_(std::move(logger)) {
  if (pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    wake_fds_[0] = wake_fds_[1] = -1;
  }
  thread_ = std::thread([this] { loop(); });
}

Listener::~Listener() {
  stop_ = true;
  if (wake_fds_[1] >= 0) {
    const char byte = 1;
    (void)!write(wake_fds_[1], &byte, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : wake_fds_) {
    if (fd >= 0) close(fd);
  }
}

void Listener::bump() {
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  changed_.notify_all();
}

std::uint64_t Listener::wait(std::uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return generation_ != seen; });
  return generation_;
}

void Listener::loop() {
  std::unique_ptr<Connection> conn;
  int failures = 0;
  bool warned = false;
  while (!stop_) {
    if (!conn) {
      auto opened = Connection::open(settings_);
      if (opened.ok()) {
        Status listening = (*opened)->script(fmt::format("LISTEN {}", quoted(channel_)));
        if (listening.ok()) {
          conn = std::move(opened).value();
          if (warned) {
            logger_->log(LogLevel::kInfo, kComponent,
                         "listening for changes again after the connection was lost");
          }
          failures = 0;
          warned = false;
          bump();  // notifications sent while nobody listened are lost: everyone looks again
          continue;
        }
        opened = listening;
      }
      if (!warned) {
        logger_->log(
            LogLevel::kWarning, kComponent,
            fmt::format("cannot listen for changes (trying again): {}", opened.status().message()));
        warned = true;
      }
    }
    const int sock = conn ? PQsocket(conn->handle()) : -1;
    pollfd fds[2] = {{wake_fds_[0], POLLIN, 0}, {sock, POLLIN, 0}};
    const int timeout_ms = conn ? 30'000 : static_cast<int>(backoff(failures++).count());
    const int ready = poll(fds, sock >= 0 ? 2 : 1, timeout_ms);
    if (stop_) break;
    if (ready <= 0 || !conn) continue;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    if (PQconsumeInput(conn->handle()) == 0 || !conn->usable()) {
      logger_->log(LogLevel::kWarning, kComponent,
                   "the connection that listens for changes was lost; connecting again");
      warned = true;
      conn.reset();
      bump();
      continue;
    }
    bool any = false;
    while (PGnotify* n = PQnotifies(conn->handle())) {
      any = true;
      PQfreemem(n);
    }
    if (any) bump();
  }
}

}  // namespace detail::pg
}  // namespace llmassist
