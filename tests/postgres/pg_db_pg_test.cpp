// The libpq layer under the PostgreSQL stores (src/postgres/pg_db.h), on the tests' server:
// statements deferred into a pipeline, and transactions that carry them.
#include "postgres/pg_db.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "support/capturing_logger.h"
#include "support/test_postgres.h"

namespace llmassist::testing {
namespace {

using detail::pg::Connection;
using detail::pg::Params;
using detail::pg::Pool;

// A schema of its own with a table t (id, v), and a connection to it.
struct Fixture {
  std::string schema = test_postgres().fresh_schema();
  detail::pg::ConnectSettings settings;
  std::unique_ptr<Connection> conn;

  Fixture() {
    auto s = detail::pg::connect_settings(test_postgres().connect_options(schema));
    REQUIRE_MESSAGE(s.ok(), s.status().to_string());
    settings = *s;
    test_postgres().sql(schema, "CREATE SCHEMA " + schema +
                                    "; CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)");
    auto c = Connection::open(settings);
    REQUIRE_MESSAGE(c.ok(), c.status().to_string());
    conn = std::move(c).value();
  }
  std::string count() { return test_postgres().sql(schema, "SELECT count(*) FROM t"); }
};

TEST_CASE("pg::Connection: deferred statements run with the next one that waits") {
  Fixture f;
  Connection& c = *f.conn;
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, "one")).ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{2}, "two")).ok());
  // The read sees both inserts: they ran first, in order, in the same round trip.
  auto rows = c.exec("SELECT string_agg(v, ',' ORDER BY id) FROM t");
  REQUIRE_MESSAGE(rows.ok(), rows.status().to_string());
  CHECK(rows->text(0, 0) == "one,two");
  // Out of the pipeline again: a plain statement and a script work as before.
  CHECK(c.exec("SELECT 1").ok());
  CHECK(c.script("SELECT 1; SELECT 2").ok());
  CHECK(c.usable());
}

TEST_CASE("pg::Connection: queued reads come back in order, each after the writes before it") {
  Fixture f;
  Connection& c = *f.conn;
  REQUIRE(c.script("BEGIN").ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, "one")).ok());
  REQUIRE(c.queue("SELECT count(*) FROM t").ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{2}, "two")).ok());
  REQUIRE(c.queue("SELECT string_agg(v, ',' ORDER BY id) FROM t").ok());
  auto rows = c.collect();
  REQUIRE_MESSAGE(rows.ok(), rows.status().to_string());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].int64(0, 0) == 1);
  CHECK((*rows)[1].text(0, 0) == "one,two");
  // exec_each(): the same in one call.
  const std::vector<Connection::Statement> reads = {
      {"SELECT v FROM t WHERE id = $1", Params(std::int64_t{2})},
      {"SELECT v FROM t WHERE id = $1", Params(std::int64_t{1})}};
  auto each = c.exec_each(reads);
  REQUIRE(each.ok());
  REQUIRE(each->size() == 2);
  CHECK((*each)[0].text(0, 0) == "two");
  CHECK((*each)[1].text(0, 0) == "one");
  REQUIRE(c.script("COMMIT").ok());
  CHECK(f.count() == "2");
}

TEST_CASE("pg::Connection: a deferred failure is the next call's, and the connection goes on") {
  Fixture f;
  Connection& c = *f.conn;
  REQUIRE(c.script("BEGIN").ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, "one")).ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, "again")).ok());
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{3}, "three")).ok());
  auto rows = c.exec("SELECT count(*) FROM t");
  REQUIRE_FALSE(rows.ok());
  CHECK(rows.status().code() == StatusCode::kAlreadyExists);  // the duplicate key, 23505
  CHECK(c.last_sqlstate() == "23505");
  CHECK(c.usable());
  REQUIRE(c.script("ROLLBACK").ok());
  CHECK(f.count() == "0");
  // The connection goes on: the same statements, prepared in the failed pipeline, run again.
  REQUIRE(c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, "one")).ok());
  CHECK(c.sync().ok());
  CHECK(f.count() == "1");
}

TEST_CASE(
    "pg::Connection: a statement that fails to prepare in a pipeline is prepared anew later") {
  Fixture f;
  Connection& c = *f.conn;
  const std::string sql = "INSERT INTO later (id) VALUES ($1)";
  REQUIRE(c.defer(sql, Params(std::int64_t{1})).ok());
  CHECK_FALSE(c.sync().ok());
  CHECK(c.last_sqlstate() == "42P01");  // undefined table
  test_postgres().sql(f.schema, "CREATE TABLE later (id bigint)");
  REQUIRE(c.defer(sql, Params(std::int64_t{1})).ok());
  CHECK(c.sync().ok());
  CHECK(test_postgres().sql(f.schema, "SELECT count(*) FROM later") == "1");
}

TEST_CASE("pg::Connection: text with a NUL is refused before it is deferred") {
  Fixture f;
  Connection& c = *f.conn;
  const std::string nul("a\0b", 3);
  Status s = c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{1}, nul));
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(c.sync().ok());  // nothing was queued
  CHECK(f.count() == "0");
}

TEST_CASE("pg::Pool: a deferred failure at the COMMIT fails the transaction and leaves nothing") {
  Fixture f;
  Pool pool(f.settings, 2, std::make_shared<CapturingLogger>(), std::chrono::seconds(5));
  REQUIRE(pool.transaction_status(false,
                                  [](Connection& c) {
                                    return c.defer("INSERT INTO t VALUES ($1, $2)",
                                                   Params(std::int64_t{7}, "x"));
                                  })
              .ok());
  Status s = pool.transaction_status(false, [](Connection& c) -> Status {
    LLMASSIST_RETURN_IF_ERROR(
        c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{8}, "y")));
    // A duplicate: only the COMMIT's round trip finds it out.
    return c.defer("INSERT INTO t VALUES ($1, $2)", Params(std::int64_t{7}, "z"));
  });
  CHECK(s.code() == StatusCode::kAlreadyExists);
  CHECK(f.count() == "1");
  // Both connections are fit to use afterwards: not left inside the failed transaction.
  for (int i = 0; i < 3; ++i) {
    CHECK(pool.transaction_status(false,
                                  [&](Connection& c) {
                                    return c.defer("INSERT INTO t VALUES ($1, $2)",
                                                   Params(std::int64_t{20 + i}, "ok"));
                                  })
              .ok());
  }
  CHECK(f.count() == "4");
}

TEST_CASE("pg::Pool: a COPY may open a transaction, whose BEGIN waits in the pipeline") {
  Fixture f;
  Pool pool(f.settings, 1, std::make_shared<CapturingLogger>(), std::chrono::seconds(5));
  Status s = pool.transaction_status(false, [](Connection& c) -> Status {
    LLMASSIST_RETURN_IF_ERROR(c.copy_begin("COPY t (id, v) FROM STDIN"));
    LLMASSIST_RETURN_IF_ERROR(c.copy_put("1\tone\n2\ttwo\n"));
    LLMASSIST_ASSIGN_OR_RETURN(const std::int64_t n, c.copy_end());
    return n == 2 ? Status() : internal_error("copied " + std::to_string(n));
  });
  CHECK_MESSAGE(s.ok(), s.to_string());
  CHECK(f.count() == "2");
}

}  // namespace
}  // namespace llmassist::testing
