// The concurrency limit decorator over real providers: OpenAI-compatible providers talking to
// mock LLM servers on loopback, alone, in a fallback chain, and built from a config file.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "llmassist/bot/provider_config.h"
#include "llmassist/core/limited_provider.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/providers/openai_provider.h"
#include "support/mock_llm_server.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::MockLlmServer;
using Behavior = MockLlmServer::Behavior;

namespace {

std::shared_ptr<LlmProvider> openai(const std::string& name, const std::string& url) {
  OpenAiProviderOptions o;
  o.name = name;
  o.base_url = url;
  o.model = "mock-model";
  o.logger = null_logger();
  return std::shared_ptr<LlmProvider>(make_openai_provider(o).value().release());
}

std::shared_ptr<LlmProvider> limited(std::shared_ptr<LlmProvider> p, int max_in_flight) {
  ConcurrencyLimitOptions o;
  o.max_in_flight = max_in_flight;
  return std::shared_ptr<LlmProvider>(
      make_concurrency_limited_provider(std::move(p), o).value().release());
}

Behavior answer_after(std::chrono::milliseconds delay) {
  Behavior b;
  b.delay = delay;
  b.echo_question = true;
  return b;
}

// The outcomes of requests started without waiting, in the order they ended.
class Outcomes {
 public:
  CompletionCallback slot(int index) {
    return [this, index](Result<Completion> r) {
      std::lock_guard lock(mu_);
      order_.push_back(index);
      results_.emplace(index, std::move(r));
      ended_.notify_all();
    };
  }
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mu_);
    return ended_.wait_for(lock, timeout, [&] { return results_.size() >= count; });
  }
  bool ended(int index) {
    std::lock_guard lock(mu_);
    return results_.count(index) != 0;
  }
  Result<Completion> result(int index) {
    std::lock_guard lock(mu_);
    return results_.at(index);
  }
  std::vector<int> order() {
    std::lock_guard lock(mu_);
    return order_;
  }

 private:
  std::mutex mu_;
  std::condition_variable ended_;
  std::map<int, Result<Completion>> results_;
  std::vector<int> order_;
};

CompletionRequest question(int i, std::shared_ptr<CancelToken> cancel = nullptr) {
  CompletionRequest r;
  r.messages = {{Role::kUser, "question " + std::to_string(i)}};
  r.cancel = std::move(cancel);
  return r;
}

}  // namespace

TEST_CASE("limit: with max_in_flight 3 the server never has more than 3, and all 10 complete") {
  MockLlmServer server;
  server.set(answer_after(150ms));
  auto p = limited(openai("p", server.openai_url()), 3);
  CHECK(p->name() == "p");
  Outcomes out;
  for (int i = 0; i < 10; ++i) p->complete(question(i), {}, out.slot(i));
  REQUIRE(out.wait_for(10));
  for (int i = 0; i < 10; ++i) {
    auto r = out.result(i);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->text == "Answer to: question " + std::to_string(i));
  }
  CHECK(server.requests() == 10);
  CHECK(server.max_in_flight() == 3);
}

TEST_CASE("limit: requests beyond the limit are passed on in the order they came") {
  MockLlmServer server;
  server.set(answer_after(30ms));
  auto p = limited(openai("p", server.openai_url()), 1);
  Outcomes out;
  for (int i = 0; i < 6; ++i) p->complete(question(i), {}, out.slot(i));
  REQUIRE(out.wait_for(6));
  CHECK(out.order() == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(server.max_in_flight() == 1);
}

TEST_CASE("limit: a queued request is cancelled at once, and never reaches the provider") {
  MockLlmServer server;
  server.set(answer_after(600ms));
  auto p = limited(openai("p", server.openai_url()), 1);
  Outcomes out;
  auto token = CancelToken::create();
  p->complete(question(0), {}, out.slot(0));
  p->complete(question(1, token), {}, out.slot(1));
  p->complete(question(2), {}, out.slot(2));
  token->cancel();
  REQUIRE(out.ended(1));  // at once, on the cancelling thread
  CHECK(out.result(1).status().code() == StatusCode::kCancelled);
  CHECK_FALSE(out.ended(0));
  REQUIRE(out.wait_for(3));
  CHECK(out.result(0).ok());
  CHECK(out.result(2).ok());
  CHECK(server.requests() == 2);

  // A token cancelled before the call ends a request that would have to wait at once too.
  auto early = CancelToken::create();
  early->cancel();
  p->complete(question(3), {}, out.slot(3));
  p->complete(question(4, early), {}, out.slot(4));
  REQUIRE(out.ended(4));
  CHECK(out.result(4).status().code() == StatusCode::kCancelled);
  REQUIRE(out.wait_for(5));
  CHECK(server.requests() == 3);
}

TEST_CASE("limit: a request's timeout counts while it waits in the queue") {
  MockLlmServer server;
  server.set(answer_after(1500ms));
  auto p = limited(openai("p", server.openai_url()), 1);
  Outcomes out;
  p->complete(question(0), {}, out.slot(0));
  auto hurried = question(1);
  hurried.timeout = 200ms;
  p->complete(std::move(hurried), {}, out.slot(1));
  REQUIRE(out.wait_for(1, 5s));
  REQUIRE(out.order().front() == 1);  // before the first one's answer
  const Status s = out.result(1).status();
  CHECK(s.code() == StatusCode::kDeadlineExceeded);
  CHECK(s.message().find("waited") != std::string::npos);
  REQUIRE(out.wait_for(2));
  CHECK(out.result(0).ok());
  CHECK(server.requests() == 1);

  // Without a timeout of its own, max_queue_wait bounds the wait.
  ConcurrencyLimitOptions o;
  o.max_in_flight = 1;
  o.max_queue_wait = 200ms;
  auto bounded = make_concurrency_limited_provider(openai("b", server.openai_url()), o).value();
  bounded->complete(question(2), {}, out.slot(2));
  bounded->complete(question(3), {}, out.slot(3));
  REQUIRE(out.wait_for(3, 5s));
  REQUIRE(out.order().at(2) == 3);
  CHECK(out.result(3).status().code() == StatusCode::kDeadlineExceeded);
  REQUIRE(out.wait_for(4));
  CHECK(out.result(2).ok());
}

TEST_CASE("limit: destroying the decorator ends its queued requests before it returns") {
  MockLlmServer server;
  server.set(answer_after(2s));
  auto p = limited(openai("p", server.openai_url()), 1);
  Outcomes out;
  p->complete(question(0), {}, out.slot(0));
  p->complete(question(1), {}, out.slot(1));
  p->complete(question(2), {}, out.slot(2));
  p.reset();
  // The queued ones are cancelled; the one in flight too, as the provider it was passed to (its
  // last owner gone) is destroyed with it.
  REQUIRE(out.ended(1));
  REQUIRE(out.ended(2));
  CHECK(out.result(1).status().code() == StatusCode::kCancelled);
  CHECK(out.result(2).status().code() == StatusCode::kCancelled);
  REQUIRE(out.ended(0));
  CHECK(out.result(0).status().code() == StatusCode::kCancelled);
  CHECK(server.requests() <= 1);
}

TEST_CASE("limit: the fallback chain works through limited providers") {
  MockLlmServer primary;
  MockLlmServer backup;
  Behavior down;
  down.status = 503;
  primary.set(down);
  backup.set(answer_after(100ms));
  FallbackChainOptions co;
  co.logger = null_logger();
  co.failure_threshold = 100;  // every request tries the primary first
  auto chain = make_fallback_chain({limited(openai("primary", primary.openai_url()), 2),
                                    limited(openai("backup", backup.openai_url()), 2)},
                                   co)
                   .value();
  Outcomes out;
  for (int i = 0; i < 6; ++i) chain->complete(question(i), {}, out.slot(i));
  REQUIRE(out.wait_for(6));
  for (int i = 0; i < 6; ++i) {
    auto r = out.result(i);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->provider == "backup");
    CHECK(r->providers_tried == 2);
  }
  CHECK(primary.requests() == 6);
  CHECK(primary.max_in_flight() <= 2);
  CHECK(backup.max_in_flight() == 2);
}

TEST_CASE("limit: max_in_flight in the config limits that provider, a bad value is refused") {
  MockLlmServer server;
  server.set(answer_after(100ms));
  ProviderConfigContext ctx;
  ctx.logger = null_logger();
  const std::string config = R"({"providers": [{"type": "openai", "name": "local", "base_url": ")" +
                             server.openai_url() +
                             R"(", "model": "m", "retries": 0, "max_in_flight": 2}]})";
  auto chain = make_chain_from_config(config, ctx);
  REQUIRE_MESSAGE(chain.ok(), chain.status().to_string());
  Outcomes out;
  for (int i = 0; i < 5; ++i) (*chain)->complete(question(i), {}, out.slot(i));
  REQUIRE(out.wait_for(5));
  for (int i = 0; i < 5; ++i) CHECK(out.result(i).ok());
  CHECK(server.max_in_flight() == 2);

  auto bad = make_chain_from_config(
      R"({"providers": [{"type": "openai", "model": "m", "max_in_flight": -1}]})", ctx);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad.status().message().find("$.providers[0].max_in_flight") != std::string::npos);
  CHECK_FALSE(
      make_concurrency_limited_provider(openai("p", server.openai_url()), {.max_in_flight = 0})
          .ok());
}
