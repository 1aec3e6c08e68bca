#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "llmassist/status.h"

using namespace llmassist;
using namespace std::chrono_literals;

TEST_CASE("status: OK by default, codes and messages render for logs") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.to_string() == "ok");
  Status bad = invalid_argument("text is empty");
  CHECK_FALSE(bad.ok());
  CHECK(bad.code() == StatusCode::kInvalidArgument);
  CHECK(bad.to_string() == "invalid_argument: text is empty");
  CHECK(bad.annotate("reply 7").message() == "reply 7: text is empty");
  CHECK(ok.annotate("ignored").ok());
}

TEST_CASE("status: retry-after and reason hints travel with the status") {
  Status limited = resource_exhausted("429 from openrouter")
                       .with_retry_after(1500ms)
                       .with_reason("rate_limited");
  REQUIRE(limited.retry_after().has_value());
  CHECK(*limited.retry_after() == 1500ms);
  CHECK(limited.reason() == "rate_limited");
  Status annotated = limited.annotate("provider a");
  CHECK(annotated.retry_after() == limited.retry_after());
  CHECK(annotated.reason() == "rate_limited");
  CHECK_FALSE(unavailable("x").retry_after().has_value());
}

TEST_CASE("status: every code has a distinct snake_case name") {
  std::vector<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(StatusCode::kUnauthenticated); ++c) {
    names.push_back(to_string(static_cast<StatusCode>(c)));
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool named = names[i] != "unknown" || static_cast<StatusCode>(i) == StatusCode::kUnknown;
    CHECK(named);
    for (std::size_t j = i + 1; j < names.size(); ++j) CHECK(names[i] != names[j]);
  }
}

TEST_CASE("result: holds a value or the error that explains its absence") {
  Result<int> good = 42;
  REQUIRE(good.ok());
  CHECK(*good == 42);
  CHECK(good.status().ok());
  Result<int> bad = not_found("no reply 9");
  CHECK_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kNotFound);
  CHECK(bad.value_or(-1) == -1);
  Result<std::string> converted = "text";  // converting constructor
  CHECK(*converted == "text");
  Result<std::unique_ptr<int>> move_only = std::make_unique<int>(5);
  std::unique_ptr<int> taken = std::move(move_only).value();
  CHECK(*taken == 5);
}

TEST_CASE("result: an OK status without a value becomes an internal error") {
  Result<int> r = Status();
  CHECK_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInternal);
}

namespace {
Status fails_then_continues(bool fail, int& reached) {
  LLMASSIST_RETURN_IF_ERROR(fail ? unavailable("down") : Status());
  ++reached;
  return Status();
}
}  // namespace

TEST_CASE("status: RETURN_IF_ERROR returns early only on error") {
  int reached = 0;
  CHECK(fails_then_continues(true, reached).code() == StatusCode::kUnavailable);
  CHECK(reached == 0);
  CHECK(fails_then_continues(false, reached).ok());
  CHECK(reached == 1);
}
