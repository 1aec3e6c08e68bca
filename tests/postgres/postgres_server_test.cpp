// The tests' PostgreSQL server itself (support/postgres_server.sh), over libpq directly: what
// the store tests take for granted about it.
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "support/test_postgres.h"

namespace llmassist::testing {
namespace {

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;

// A connection to the tests' database with `password` (none when nullopt). libpq's own sources
// of a password (PGPASSWORD, ~/.pgpass) are shut out, so a refusal is the server's.
Connection connect(const std::optional<std::string>& password) {
  const std::string& url = test_postgres().url;
  const char* keys[] = {"dbname", "password", "passfile", "connect_timeout", nullptr};
  const char* values[] = {url.c_str(), password ? password->c_str() : "", "/dev/null", "10",
                          nullptr};
  return Connection(PQconnectdbParams(keys, values, /*expand_dbname=*/1), &PQfinish);
}

// The one value `sql` answers, or FAILs with the server's error.
std::string query_value(PGconn* conn, const std::string& sql) {
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), &PQclear);
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK || PQntuples(result.get()) != 1) {
    FAIL(sql << ": " << PQerrorMessage(conn));
  }
  return PQgetvalue(result.get(), 0, 0);
}

Connection connect_ok() {
  Connection conn = connect(test_postgres().password);
  REQUIRE_MESSAGE(PQstatus(conn.get()) == CONNECTION_OK, PQerrorMessage(conn.get()));
  return conn;
}

TEST_CASE("PostgreSQL test server: version 15, its database owned by the role llmassist") {
  Connection conn = connect_ok();
  CHECK(PQserverVersion(conn.get()) / 10000 == 15);
  CHECK(query_value(conn.get(), "SELECT current_user") == "llmassist");
  CHECK(query_value(conn.get(), "SELECT current_database()") == "llmassist");
  CHECK(query_value(conn.get(),
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                    "current_database()") == "llmassist");
}

TEST_CASE("PostgreSQL test server: refuses a connection without the password or with a wrong one") {
  Connection none = connect(std::nullopt);
  CHECK(PQstatus(none.get()) == CONNECTION_BAD);
  CHECK(std::string(PQerrorMessage(none.get())).find("no password supplied") != std::string::npos);

  Connection wrong = connect(test_postgres().password + "x");
  CHECK(PQstatus(wrong.get()) == CONNECTION_BAD);
  CHECK(std::string(PQerrorMessage(wrong.get())).find("password authentication failed") !=
        std::string::npos);

  Connection right = connect_ok();
  CHECK(query_value(right.get(), "SELECT 1") == "1");
  // The password's hash is SCRAM's, not MD5's.
  CHECK(query_value(right.get(), "SHOW password_encryption") == "scram-sha-256");
}

TEST_CASE("PostgreSQL test server: listens on 127.0.0.1 only, durable commits on") {
  Connection conn = connect_ok();
  CHECK(query_value(conn.get(), "SHOW listen_addresses") == "127.0.0.1");
  CHECK(query_value(conn.get(), "SHOW fsync") == "on");
  CHECK(query_value(conn.get(), "SHOW synchronous_commit") == "on");
  CHECK(test_postgres().url.find(test_postgres().password) == std::string::npos);
}

TEST_CASE("PostgreSQL test server: fresh schemas are new names the role can create") {
  auto& server = test_postgres();
  std::set<std::string> names;
  for (int i = 0; i < 3; ++i) names.insert(server.fresh_schema());
  CHECK(names.size() == 3);
  Connection conn = connect_ok();
  for (const auto& name : names) {
    CHECK(query_value(conn.get(),
                      "SELECT count(*) FROM pg_namespace WHERE nspname = '" + name + "'") == "0");
    CHECK(query_value(conn.get(), "CREATE SCHEMA " + name + "; SELECT 1") == "1");
  }
  const PostgresConnectOptions options = server.connect_options(*names.begin());
  CHECK(options.url == server.url);
  CHECK(options.password == server.password);
  CHECK(options.schema == *names.begin());
}

TEST_CASE("PostgreSQL test server: a server restart breaks open connections and new ones succeed") {
  Connection before = connect_ok();
  const std::string started = query_value(before.get(), "SELECT pg_postmaster_start_time()");

  const Status restarted = test_postgres().restart_server();
  REQUIRE_MESSAGE(restarted.ok(), restarted.message());

  // The fast shutdown ended the old connection's server process.
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(before.get(), "SELECT 1"), &PQclear);
  CHECK(PQresultStatus(result.get()) != PGRES_TUPLES_OK);
  CHECK(PQstatus(before.get()) == CONNECTION_BAD);

  Connection after = connect_ok();
  CHECK(query_value(after.get(), "SELECT pg_postmaster_start_time()") != started);
}

}  // namespace
}  // namespace llmassist::testing
