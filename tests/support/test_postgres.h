// The tests' PostgreSQL server: the one tests/support/postgres_server.sh runs in
// LLMASSIST_TEST_POSTGRES_DIR, started by CTest's fixture postgres.start before any test of
// llmassist-postgres-tests and stopped by postgres.stop after the last. Every test shares its
// database `llmassist`, each in schemas of its own (fresh_schema()). Run by hand, without CTest:
//   tests/support/postgres_server.sh start build/postgres-test
//
// A test whose name contains "server restart" may call restart_server(): CTest runs such tests
// after all the others, one at a time (tests/CMakeLists.txt), so no other test sees the restart.
// No test name may hold a ';': CTest would split it into two names that match no test.
//
// Thread-safety: test_postgres() and its members from any thread; restart_server() breaks every
// open connection of every test process.
#pragma once

#include <string>

#include "llmassist/postgres/postgres_store.h"
#include "llmassist/status.h"

namespace llmassist::testing {

struct TestPostgres {
  std::string dir;       // the server's folder (url, password, log, data/)
  std::string url;       // postgresql://llmassist@127.0.0.1:PORT/llmassist, no password in it
  std::string password;  // the role llmassist's password

  // A schema name used by no other test of any process, not created: the stores create it.
  [[nodiscard]] std::string fresh_schema() const;
  // url, password and `schema` filled in; the other fields at their defaults.
  [[nodiscard]] PostgresConnectOptions connect_options(std::string schema) const;
  // Runs `sql` (statements without parameters) in `schema` over a connection of its own, as a
  // database administrator would; the first row's first value when it returns rows, else "".
  // FAILs the calling test with the server's error.
  std::string sql(const std::string& schema, const std::string& sql) const;
  // Restarts the server on the same port (a fast shutdown: open connections break) and returns
  // once it accepts connections again. The script's output is in dir/script.log.
  [[nodiscard]] Status restart_server() const;
};

// The server's details, read once per process. FAILs the calling test with what to do when the
// folder has no url (the fixture did not run).
TestPostgres& test_postgres();

}  // namespace llmassist::testing
