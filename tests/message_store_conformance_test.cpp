// The MessageStore conformance suite (llmassist/testing/message_store_conformance.h) against the
// SQLite store on real files, and against tests/support/memory_store (a store written against
// the pure virtuals and the lifecycle functions only). Each check is a subcase named after it.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/testing/message_store_conformance.h"
#include "support/conformance_subcases.h"
#include "support/memory_store.h"
#include "support/temp_dir.h"

namespace llmassist {
namespace {

void run_suite(const testing::MessageStoreFactory& factory) {
  testing::run_checks_as_subcases(testing::message_store_check_names(), [&](const std::string& n) {
    return testing::run_message_store_check(n, factory);
  });
}

TEST_CASE("MessageStore conformance: the SQLite store") {
  std::vector<std::unique_ptr<testing::TempDir>> dirs;
  run_suite([&](std::shared_ptr<Clock> clock) -> Result<std::unique_ptr<MessageStore>> {
    dirs.push_back(std::make_unique<testing::TempDir>());
    SqliteStoreOptions options;
    options.path = dirs.back()->file("store.sqlite");
    options.clock = std::move(clock);
    options.sync = SqliteSync::kNormal;
    return open_sqlite_store(options);
  });
}

TEST_CASE("MessageStore conformance: a store in memory, the lifecycle functions its only rules") {
  run_suite([](std::shared_ptr<Clock> clock) -> Result<std::unique_ptr<MessageStore>> {
    return testing::make_memory_store(std::move(clock));
  });
}

}  // namespace
}  // namespace llmassist
