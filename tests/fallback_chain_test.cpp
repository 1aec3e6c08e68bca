// The fallback chain and the retry decorator over real providers: OpenAI-compatible providers
// talking to mock LLM servers on loopback, and the knowledge base.
#include <doctest/doctest.h>

#include <future>
#include <mutex>
#include <thread>

#include "llmassist/core/retrying_provider.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/providers/knowledge_base_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "support/capturing_logger.h"
#include "support/mock_llm_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::ManualClock;
using llmassist::testing::MockLlmServer;
using Behavior = MockLlmServer::Behavior;

namespace {

using llmassist::testing::CapturingLogger;

std::shared_ptr<LlmProvider> openai(const std::string& name, const std::string& url,
                                    std::chrono::milliseconds first_byte = 5s) {
  OpenAiProviderOptions o;
  o.name = name;
  o.base_url = url;
  o.model = "mock-model";
  o.api_key = "sk-KEY-" + name;
  o.first_byte_timeout = first_byte;
  o.logger = null_logger();
  return std::shared_ptr<LlmProvider>(make_openai_provider(o).value().release());
}

CompletionRequest question() {
  CompletionRequest r;
  r.messages = {{Role::kUser, "Say hello"}};
  return r;
}

struct Setup {
  MockLlmServer primary_server;
  MockLlmServer backup_server;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::shared_ptr<CapturingLogger> logger = std::make_shared<CapturingLogger>();
  std::unique_ptr<FallbackChain> chain;

  explicit Setup(int threshold = 3, std::chrono::milliseconds first_byte = 5s) {
    Behavior backup;
    backup.tokens = {"Backup ", "here."};
    backup_server.set(backup);
    FallbackChainOptions o;
    o.failure_threshold = threshold;
    o.cooldown = 30s;
    o.clock = clock;
    o.logger = logger;
    chain = make_fallback_chain({openai("primary", primary_server.openai_url(), first_byte),
                                 openai("backup", backup_server.openai_url())},
                                o)
                .value();
  }
  ProviderStats stats(std::size_t i) const { return chain->provider_stats().at(i); }
};

}  // namespace

TEST_CASE("fallback: a healthy primary answers, the result says who and how many were tried") {
  Setup s;
  auto r = complete_sync(*s.chain, question());
  REQUIRE(r.ok());
  CHECK(r->text == "Hello, world!");
  CHECK(r->provider == "primary");
  CHECK(r->providers_tried == 1);
  CHECK(s.backup_server.requests() == 0);
  CHECK(s.stats(0).successes == 1);
}

TEST_CASE("fallback: 5xx, refused connections, timeouts and bad keys move to the next") {
  struct Case {
    const char* what;
    Behavior primary;
    FailureClass cls;
  };
  Behavior e500;
  e500.status = 500;
  Behavior e401;
  e401.status = 401;
  Behavior e403;
  e403.status = 403;
  Behavior hang;
  hang.hang = true;
  Behavior context;
  context.status = 400;
  context.error_body =
      R"({"error": {"message": "maximum context length exceeded", "code": "context_length_exceeded"}})";
  Behavior malformed;
  malformed.malformed = true;
  for (const Case& c :
       {Case{"500", e500, FailureClass::kUnavailable}, Case{"401", e401, FailureClass::kAuth},
        Case{"403", e403, FailureClass::kAuth}, Case{"hang", hang, FailureClass::kTimeout},
        Case{"context", context, FailureClass::kContext},
        Case{"malformed", malformed, FailureClass::kMalformed}}) {
    CAPTURE(c.what);
    Setup s(3, 300ms);
    s.primary_server.set(c.primary);
    auto r = complete_sync(*s.chain, question());
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->provider == "backup");
    CHECK(r->text == "Backup here.");
    CHECK(r->providers_tried == 2);
    CHECK(s.stats(0).failures[static_cast<std::size_t>(c.cls)] == 1);
  }
}

TEST_CASE("fallback: a bad key is logged loudly with the provider's name, never the key") {
  Setup s;
  Behavior e401;
  e401.status = 401;
  s.primary_server.set(e401);
  REQUIRE(complete_sync(*s.chain, question()).ok());
  bool loud = false;
  for (const auto& line : s.logger->lines()) {
    CHECK(line.find("sk-KEY") == std::string::npos);
    if (line.rfind("error", 0) == 0 && line.find("primary") != std::string::npos &&
        line.find("credentials") != std::string::npos) {
      loud = true;
    }
  }
  CHECK(loud);
}

TEST_CASE("fallback: a refused connection moves on") {
  FallbackChainOptions o;
  o.logger = null_logger();
  MockLlmServer backup;
  auto chain =
      make_fallback_chain(
          {openai("dead", "http://127.0.0.1:1/v1"), openai("backup", backup.openai_url())}, o)
          .value();
  auto r = complete_sync(*chain, question());
  REQUIRE(r.ok());
  CHECK(r->provider == "backup");
  CHECK(chain->provider_stats()[0].failures[static_cast<std::size_t>(FailureClass::kUnavailable)] ==
        1);
}

TEST_CASE("fallback: the circuit opens after N failures, a dead primary is then skipped") {
  Setup s(2, 300ms);
  Behavior hang;
  hang.hang = true;
  s.primary_server.set(hang);
  for (int i = 0; i < 2; ++i) REQUIRE(complete_sync(*s.chain, question()).ok());
  CHECK(s.primary_server.requests() == 2);
  CHECK(s.stats(0).circuit_open);
  // While open, the primary costs nothing: it is not even contacted.
  for (int i = 0; i < 5; ++i) {
    auto r = complete_sync(*s.chain, question());
    REQUIRE(r.ok());
    CHECK(r->provider == "backup");
  }
  CHECK(s.primary_server.requests() == 2);
  CHECK(s.stats(0).skipped == 5);
  // After the cooldown one request probes it; it has recovered, so the circuit closes.
  s.primary_server.set(Behavior{});
  s.clock->advance(31s);
  auto probe = complete_sync(*s.chain, question());
  REQUIRE(probe.ok());
  CHECK(probe->provider == "primary");
  CHECK_FALSE(s.stats(0).circuit_open);
  CHECK(s.stats(0).consecutive_failures == 0);
}

TEST_CASE("fallback: a failed probe opens the circuit again at once") {
  Setup s(2);
  Behavior e503;
  e503.status = 503;
  s.primary_server.set(e503);
  for (int i = 0; i < 2; ++i) REQUIRE(complete_sync(*s.chain, question()).ok());
  s.clock->advance(31s);
  REQUIRE(complete_sync(*s.chain, question()).ok());  // the probe fails, backup answers
  CHECK(s.primary_server.requests() == 3);
  CHECK(s.stats(0).circuit_open);
  REQUIRE(complete_sync(*s.chain, question()).ok());
  CHECK(s.primary_server.requests() == 3);
}

TEST_CASE("fallback: Retry-After keeps a provider out for that long, quota opens the circuit") {
  Setup s;
  Behavior limited;
  limited.status = 429;
  limited.retry_after_seconds = 20;
  s.primary_server.set(limited);
  REQUIRE(complete_sync(*s.chain, question())->provider == "backup");
  s.primary_server.set(Behavior{});
  REQUIRE(complete_sync(*s.chain, question())->provider == "backup");
  CHECK(s.primary_server.requests() == 1);  // kept out, not asked
  s.clock->advance(21s);
  CHECK(complete_sync(*s.chain, question())->provider == "primary");

  Setup q;
  Behavior quota;
  quota.status = 429;
  quota.error_code = "insufficient_quota";
  q.primary_server.set(quota);
  REQUIRE(complete_sync(*q.chain, question())->provider == "backup");
  CHECK(q.stats(0).circuit_open);  // one failure is enough: the quota will not come back soon
  CHECK(q.stats(0).failures[static_cast<std::size_t>(FailureClass::kQuota)] == 1);
}

TEST_CASE("fallback: a context too long does not count against the provider's health") {
  Setup s(1);
  Behavior context;
  context.status = 400;
  context.error_body = R"({"error": {"message": "This model's maximum context length is 4096"}})";
  s.primary_server.set(context);
  for (int i = 0; i < 3; ++i) REQUIRE(complete_sync(*s.chain, question())->provider == "backup");
  CHECK_FALSE(s.stats(0).circuit_open);
  CHECK(s.primary_server.requests() == 3);
}

TEST_CASE("fallback: streaming falls back only before the first token") {
  Setup s;
  Behavior e500;
  e500.status = 500;
  s.primary_server.set(e500);
  std::string streamed;
  auto collect = [&](std::string_view t) {
    streamed += t;
    return true;
  };
  auto r = complete_sync(*s.chain, question(), collect);
  REQUIRE(r.ok());
  CHECK(streamed == "Backup here.");  // nothing of the failed primary

  Behavior cut;
  cut.cut_after_tokens = 2;
  s.primary_server.set(cut);
  streamed.clear();
  r = complete_sync(*s.chain, question(), collect);
  CHECK_FALSE(r.ok());
  CHECK(r.status().reason() == "stream_broken");
  CHECK(r.status().message().find("primary") != std::string::npos);
  CHECK(streamed == "Hello, ");  // only the primary's text, never spliced with the backup's
  CHECK(s.backup_server.requests() == 1);  // the earlier request only
}

TEST_CASE("fallback: when all fail, the error lists each provider's failure") {
  Setup s;
  Behavior e500;
  e500.status = 500;
  Behavior e401;
  e401.status = 401;
  s.primary_server.set(e500);
  s.backup_server.set(e401);
  auto r = complete_sync(*s.chain, question());
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(r.status().reason() == "all_providers_failed");
  CHECK(r.status().message().find("primary (unavailable): HTTP 500: mock failure 500") !=
        std::string::npos);
  CHECK(r.status().message().find("; backup (unauthenticated): HTTP 401") != std::string::npos);
}

TEST_CASE("fallback: knowledge bases without an answer give no_answer, one with it answers") {
  KnowledgeBaseOptions a;
  a.name = "shop";
  a.text = "## How do I return an item?\nWithin 30 days.\n";
  a.logger = null_logger();
  KnowledgeBaseOptions b;
  b.name = "sample";
  b.logger = null_logger();
  FallbackChainOptions o;
  o.logger = null_logger();
  auto chain =
      make_fallback_chain({std::shared_ptr<LlmProvider>(make_knowledge_base_provider(a).value()),
                           std::shared_ptr<LlmProvider>(make_knowledge_base_provider(b).value())},
                          o)
          .value();
  CompletionRequest r;
  r.messages = {{Role::kUser, "How do I connect the bot to Telegram?"}};
  auto answered = complete_sync(*chain, r);
  REQUIRE(answered.ok());
  CHECK(answered->provider == "sample");
  CHECK(answered->providers_tried == 2);
  r.messages = {{Role::kUser, "What is the airspeed of a swallow?"}};
  auto none = complete_sync(*chain, r);
  CHECK(none.status().code() == StatusCode::kNotFound);
  CHECK(none.status().reason() == "no_answer");
  CHECK_FALSE(chain->provider_stats()[0].circuit_open);  // no answer is not ill health
}

TEST_CASE("fallback: bad chains are refused") {
  CHECK(make_fallback_chain({}).status().code() == StatusCode::kInvalidArgument);
  CHECK(make_fallback_chain({nullptr}).status().code() == StatusCode::kInvalidArgument);
  auto kb = std::shared_ptr<LlmProvider>(make_knowledge_base_provider({}).value());
  CHECK(make_fallback_chain({kb, kb}).status().message().find("two providers") !=
        std::string::npos);
}

TEST_CASE("retry: transient failures are retried with backoff, then succeed") {
  MockLlmServer server;
  Behavior e503;
  e503.status = 503;
  server.set_next(e503, 2);
  RetryOptions o;
  o.base_delay = 10ms;
  auto p = make_retrying_provider(openai("p", server.openai_url()), o);
  CHECK(p->name() == "p");
  auto r = complete_sync(*p, question());
  REQUIRE(r.ok());
  CHECK(server.requests() == 3);
  // Two retries at most: the third failure is returned.
  server.set_next(e503, 3);
  r = complete_sync(*p, question());
  CHECK(r.status().code() == StatusCode::kUnavailable);
  CHECK(server.requests() == 6);
}

TEST_CASE("retry: no retry for quota, bad keys, long Retry-After, or after streaming began") {
  MockLlmServer server;
  RetryOptions o;
  o.base_delay = 10ms;
  o.max_retry_after = 2s;
  auto p = make_retrying_provider(openai("p", server.openai_url()), o);
  Behavior quota;
  quota.status = 429;
  quota.error_code = "insufficient_quota";
  server.set(quota);
  CHECK_FALSE(complete_sync(*p, question()).ok());
  CHECK(server.requests() == 1);
  Behavior e401;
  e401.status = 401;
  server.set(e401);
  CHECK_FALSE(complete_sync(*p, question()).ok());
  CHECK(server.requests() == 2);
  Behavior long_wait;
  long_wait.status = 429;
  long_wait.retry_after_seconds = 47;  // a healthy fallback must not wait 47 s behind this
  server.set(long_wait);
  auto r = complete_sync(*p, question());
  CHECK(r.status().retry_after() == std::chrono::milliseconds(47000));
  CHECK(server.requests() == 3);
  Behavior cut;
  cut.cut_after_tokens = 1;
  server.set(cut);
  r = complete_sync(*p, question(), [](std::string_view) { return true; });
  CHECK_FALSE(r.ok());
  CHECK(server.requests() == 4);
  // A short Retry-After is honoured.
  Behavior short_wait;
  short_wait.status = 429;
  short_wait.retry_after_seconds = 1;
  server.set(Behavior{});
  server.set_next(short_wait, 1);
  CHECK(complete_sync(*p, question()).ok());
  CHECK(server.requests() == 6);
}

TEST_CASE("retry: cancelling during the backoff ends the request at once") {
  MockLlmServer server;
  Behavior e503;
  e503.status = 503;
  server.set(e503);
  RetryOptions o;
  o.base_delay = 10s;  // a long wait that the cancel must cut short
  o.jitter = 0;
  auto p = make_retrying_provider(openai("p", server.openai_url()), o);
  auto request = question();
  request.cancel = CancelToken::create();
  std::promise<Result<Completion>> done;
  p->complete(request, {}, [&](Result<Completion> r) { done.set_value(std::move(r)); });
  for (int i = 0; i < 500 && server.requests() < 1; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(50ms);  // let the first failure arrive and the wait begin
  request.cancel->cancel();
  auto future = done.get_future();
  REQUIRE(future.wait_for(5s) == std::future_status::ready);
  CHECK(future.get().status().code() == StatusCode::kCancelled);
}
