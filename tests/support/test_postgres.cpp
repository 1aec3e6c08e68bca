#include "support/test_postgres.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <utility>

#include "support/child_process.h"

#ifndef LLMASSIST_TEST_POSTGRES_DIR
#error "LLMASSIST_TEST_POSTGRES_DIR must name the folder of the tests' PostgreSQL server"
#endif
#ifndef LLMASSIST_TEST_POSTGRES_SCRIPT
#error "LLMASSIST_TEST_POSTGRES_SCRIPT must name tests/support/postgres_server.sh"
#endif

namespace llmassist::testing {

namespace {

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The end of the script's log, for a failure's message: the script never writes the password.
std::string tail_of(const std::string& path) {
  const std::string text = read_file(path).value_or("");
  constexpr std::size_t kTail = 2000;
  return text.size() > kTail ? text.substr(text.size() - kTail) : text;
}

}  // namespace

std::string TestPostgres::fresh_schema() const {
  // The pid keeps processes apart (the database is made afresh by each start of the server, so
  // pids of earlier runs do not matter); the counter keeps one process's schemas apart.
  static std::atomic<int> counter{0};
  std::ostringstream name;
  name << "test_" << ::getpid() << "_" << ++counter;
  return name.str();
}

PostgresConnectOptions TestPostgres::connect_options(std::string schema) const {
  PostgresConnectOptions options;
  options.url = url;
  options.password = password;
  options.schema = std::move(schema);
  return options;
}

std::string TestPostgres::sql(const std::string& schema, const std::string& sql) const {
  const char* keys[] = {"dbname", "password", "options", nullptr};
  const std::string options = "-csearch_path=" + schema;
  const char* values[] = {url.c_str(), password.c_str(), options.c_str(), nullptr};
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdbParams(keys, values, 1), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    FAIL("connecting: " << std::string(PQerrorMessage(conn.get())));
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql.c_str()), &PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    FAIL(sql << ": " << std::string(PQerrorMessage(conn.get())));
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0) {
    return PQgetvalue(result.get(), 0, 0);
  }
  return "";
}

Status TestPostgres::restart_server() const {
  const std::string log = dir + "/script.log";
  const int code = wait_exit(spawn({LLMASSIST_TEST_POSTGRES_SCRIPT, "restart", dir}, log));
  if (code != 0) {
    return unavailable("postgres_server.sh restart " + dir + " exited with " +
                       std::to_string(code) + ":\n" + tail_of(log));
  }
  return ok_status();
}

TestPostgres& test_postgres() {
  static std::mutex mu;
  static std::optional<TestPostgres> server;
  std::lock_guard lock(mu);
  if (!server) {
    const std::filesystem::path dir = LLMASSIST_TEST_POSTGRES_DIR;
    auto url = read_file(dir / "url");
    auto password = read_file(dir / "password");
    if (!url || url->empty() || !password) {
      FAIL("no PostgreSQL server for the tests: " << (dir / "url").string()
                                                  << " is missing. CTest starts one (the fixture "
                                                     "postgres.start); by hand: "
                                                  << LLMASSIST_TEST_POSTGRES_SCRIPT << " start "
                                                  << dir.string());
    }
    server = TestPostgres{dir.string(), std::move(*url), std::move(*password)};
  }
  return *server;
}

}  // namespace llmassist::testing
