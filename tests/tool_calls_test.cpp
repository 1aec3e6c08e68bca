// Tool calling through the providers, over real loopback HTTP to the mock LLM server: the
// request's tools and the conversation's calls and results in each API's form (OpenAI chat
// completions, Ollama /api/chat), the model's calls read back whole and streamed, and the
// FallbackChain passing by the providers that cannot take tools.
#include <doctest/doctest.h>

#include "llmassist/core/limited_provider.h"
#include "llmassist/core/retrying_provider.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/providers/ollama_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "support/mock_llm_server.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::MockLlmServer;
using Behavior = MockLlmServer::Behavior;
using nlohmann::json;

namespace {

enum class Kind { kOpenAi, kOllama };

std::unique_ptr<LlmProvider> make(Kind kind, const MockLlmServer& server, std::string name = "",
                                  bool tools = true) {
  if (kind == Kind::kOpenAi) {
    OpenAiProviderOptions o;
    o.name = name.empty() ? "openai-test" : name;
    o.base_url = server.openai_url();
    o.model = "mock-model";
    o.tools = tools;
    o.logger = null_logger();
    return make_openai_provider(o).value();
  }
  OllamaProviderOptions o;
  o.name = name.empty() ? "ollama-test" : name;
  o.base_url = server.ollama_url();
  o.model = "qwen3:1.7b";
  o.tools = tools;
  o.logger = null_logger();
  return make_ollama_provider(o).value();
}

ToolSpec order_lookup() {
  return {"order_lookup", "Finds an order by its number",
          R"({"type":"object","properties":{"order":{"type":"string"}},"required":["order"]})"};
}

CompletionRequest asking_with_tools() {
  CompletionRequest r;
  r.messages = {{Role::kSystem, "You are a shop's assistant."},
                {Role::kUser, "Where is my order A-17?"}};
  r.tools = {order_lookup(), {"stop_contact", "The contact asks not to be written to", ""}};
  return r;
}

Behavior calling(std::vector<MockLlmServer::ToolCallAnswer> calls, std::vector<std::string> text) {
  Behavior b;
  b.tool_calls = std::move(calls);
  b.tokens = std::move(text);
  return b;
}

Result<Completion> run(LlmProvider& p, CompletionRequest r, bool stream,
                       std::string* streamed = nullptr) {
  if (!stream) return complete_sync(p, std::move(r));
  return complete_sync(p, std::move(r), [streamed](std::string_view t) {
    if (streamed) streamed->append(t);
    return true;
  });
}

}  // namespace

TEST_CASE("tool calls: the model's calls come back whole and streamed, with the tools as sent") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    for (bool stream : {false, true}) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(stream);
      MockLlmServer server;
      server.set(calling(
          {{"call_7", "order_lookup", R"({"order":"A-17"})"}, {"call_8", "stop_contact", "{}"}},
          {}));
      auto p = make(kind, server);
      CHECK(p->supports_tools());
      auto r = run(*p, asking_with_tools(), stream);
      REQUIRE_MESSAGE(r.ok(), r.status().to_string());
      CHECK(r->text.empty());
      REQUIRE(r->tool_calls.size() == 2);
      CHECK(r->tool_calls[0].name == "order_lookup");
      CHECK(json::parse(r->tool_calls[0].arguments) == json{{"order", "A-17"}});
      CHECK(r->tool_calls[1].name == "stop_contact");
      CHECK(json::parse(r->tool_calls[1].arguments) == json::object());
      if (kind == Kind::kOpenAi) {
        CHECK(r->tool_calls[0].id == "call_7");  // the API's ids, which the results quote
        CHECK(r->tool_calls[1].id == "call_8");
        CHECK(r->finish_reason == "tool_calls");
      } else {
        CHECK(r->tool_calls[0].id == "call_1");  // Ollama gives none: made up, distinct
        CHECK(r->tool_calls[1].id == "call_2");
      }
      // The tools as both APIs take them.
      const json body = server.last_body();
      REQUIRE(body["tools"].size() == 2);
      CHECK(body["tools"][0]["type"] == "function");
      CHECK(body["tools"][0]["function"]["name"] == "order_lookup");
      CHECK(body["tools"][0]["function"]["description"] == "Finds an order by its number");
      CHECK(body["tools"][0]["function"]["parameters"]["required"] == json::array({"order"}));
      // A tool without a schema is given an empty object's.
      CHECK(body["tools"][1]["function"]["parameters"]["type"] == "object");
    }
  }
}

TEST_CASE("tool calls: text beside the calls is kept, and streamed as text") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    server.set(
        calling({{"call_1", "order_lookup", R"({"order":"Б-2"})"}}, {"Сейчас ", "проверю."}));
    auto p = make(kind, server);
    std::string streamed;
    auto r = run(*p, asking_with_tools(), true, &streamed);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK(r->text == "Сейчас проверю.");
    CHECK(streamed == r->text);
    REQUIRE(r->tool_calls.size() == 1);
    CHECK(json::parse(r->tool_calls[0].arguments)["order"] == "Б-2");
  }
}

TEST_CASE("tool calls: the conversation's calls and results are sent in each API's form") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server);
    CompletionRequest r = asking_with_tools();
    ChatMessage call{Role::kAssistant, ""};
    call.tool_calls = {{"call_7", "order_lookup", R"({"order":"A-17"})"}};
    ChatMessage result{Role::kTool, R"({"status":"shipped"})"};
    result.tool_call_id = "call_7";
    result.tool_name = "order_lookup";
    r.messages.push_back(call);
    r.messages.push_back(result);
    auto answer = run(*p, r, false);
    REQUIRE_MESSAGE(answer.ok(), answer.status().to_string());
    CHECK(answer->text == "Hello, world!");
    CHECK(answer->tool_calls.empty());
    const json messages = server.last_body()["messages"];
    REQUIRE(messages.size() == 4);
    const json& asked = messages[2];
    CHECK(asked["role"] == "assistant");
    REQUIRE(asked["tool_calls"].size() == 1);
    CHECK(asked["tool_calls"][0]["function"]["name"] == "order_lookup");
    const json& told = messages[3];
    CHECK(told["role"] == "tool");
    CHECK(told["content"] == R"({"status":"shipped"})");
    if (kind == Kind::kOpenAi) {
      CHECK(asked["content"].is_null());
      CHECK(asked["tool_calls"][0]["id"] == "call_7");
      CHECK(asked["tool_calls"][0]["type"] == "function");
      CHECK(asked["tool_calls"][0]["function"]["arguments"] == R"({"order":"A-17"})");
      CHECK(told["tool_call_id"] == "call_7");
    } else {
      CHECK(asked["content"] == "");
      CHECK(asked["tool_calls"][0]["function"]["arguments"] == json{{"order", "A-17"}});
      CHECK(told["tool_name"] == "order_lookup");
    }
  }
}

TEST_CASE(
    "tool calls: a bad schema is refused before sending; a call without a name is malformed") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server);
    CompletionRequest r = asking_with_tools();
    r.tools[0].parameters = "{\"type\": ";
    auto refused = run(*p, r, false);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK(refused.status().message().find("order_lookup") != std::string::npos);
    CHECK(server.requests() == 0);

    server.set(calling({{"call_1", "", "{}"}}, {}));
    for (bool stream : {false, true}) {
      auto nameless = run(*p, asking_with_tools(), stream);
      REQUIRE_FALSE(nameless.ok());
      CHECK(nameless.status().code() == StatusCode::kInvalidArgument);
      CHECK(nameless.status().message().find("without a name") != std::string::npos);
    }
  }
}

TEST_CASE("tool calls: a provider configured without tools never sends them") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server, "", false);
    CHECK_FALSE(p->supports_tools());
    auto r = run(*p, asking_with_tools(), false);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    CHECK_FALSE(server.last_body().contains("tools"));
  }
}

TEST_CASE("tool calls: the fallback chain passes by the providers that cannot take tools") {
  MockLlmServer plain;  // a model configured with tools: false
  MockLlmServer agent;  // one that takes them
  agent.set(calling({{"call_1", "order_lookup", R"({"order":"A-17"})"}}, {}));
  std::shared_ptr<LlmProvider> first = make(Kind::kOllama, plain, "plain", false);
  std::shared_ptr<LlmProvider> second = make(Kind::kOpenAi, agent, "agent");
  FallbackChainOptions o;
  o.logger = null_logger();
  auto chain = make_fallback_chain({first, second}, o).value();
  CHECK(chain->supports_tools());

  auto with_tools = complete_sync(*chain, asking_with_tools());
  REQUIRE_MESSAGE(with_tools.ok(), with_tools.status().to_string());
  CHECK(with_tools->provider == "agent");
  CHECK(with_tools->tool_calls.size() == 1);
  CHECK(plain.requests() == 0);
  auto stats = chain->provider_stats();
  CHECK(stats[0].attempts == 0);  // passed by: neither an attempt nor a failure
  CHECK(stats[0].consecutive_failures == 0);
  CHECK(stats[0].circuit_open == false);

  // Without tools, the first provider answers as before.
  CompletionRequest no_tools = asking_with_tools();
  no_tools.tools.clear();
  auto answer = complete_sync(*chain, no_tools);
  REQUIRE_MESSAGE(answer.ok(), answer.status().to_string());
  CHECK(answer->provider == "plain");
  CHECK(plain.requests() == 1);

  // A chain of providers none of which takes tools says so.
  auto none = make_fallback_chain({first}, o).value();
  CHECK_FALSE(none->supports_tools());
  auto refused = complete_sync(*none, asking_with_tools());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  CHECK(refused.status().reason() == "no_tool_provider");
  CHECK(refused.status().message().find("plain") != std::string::npos);
  CHECK(plain.requests() == 1);
}

TEST_CASE("tool calls: a provider's wrappers say what it takes") {
  MockLlmServer server;
  std::shared_ptr<LlmProvider> takes = make(Kind::kOpenAi, server, "takes");
  std::shared_ptr<LlmProvider> refuses = make(Kind::kOpenAi, server, "refuses", false);
  ConcurrencyLimitOptions o;
  o.max_in_flight = 2;
  CHECK(make_concurrency_limited_provider(takes, o).value()->supports_tools());
  CHECK_FALSE(make_concurrency_limited_provider(refuses, o).value()->supports_tools());
  CHECK(make_retrying_provider(takes, {})->supports_tools());
  CHECK_FALSE(make_retrying_provider(refuses, {})->supports_tools());
}
