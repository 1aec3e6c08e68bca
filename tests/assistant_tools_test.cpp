// The Assistant's tool loop end to end on real parts: the console transport over pipes, a SQLite
// file, the window memory, and the OpenAI-compatible provider against the mock LLM server, whose
// answers a script of each test plays (tool calls, then text from the tools' results).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "llmassist/assistant.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/tool.h"
#include "support/child_process.h"
#include "support/console_chat.h"
#include "support/mock_llm_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::MockLlmServer;
using nlohmann::json;
using Behavior = MockLlmServer::Behavior;

namespace {

// The last message of a request body, and the tool results after the model's last calls.
const json& last_message(const json& body) { return body["messages"].back(); }

std::string tool_results(const json& body) {
  std::string out;
  for (const auto& m : body["messages"]) {
    if (m["role"] == "tool") out += (out.empty() ? "" : " | ") + m["content"].get<std::string>();
  }
  return out;
}

// A model that calls `calls` when the user asks and, once told the results, answers with them:
// "Results: <each result, | between>".
Behavior calls_then_answers(std::vector<MockLlmServer::ToolCallAnswer> calls) {
  Behavior b;
  b.script = [calls](const json& body, Behavior& answer) {
    if (last_message(body)["role"] == "tool") {
      answer.tokens = {"Results: " + tool_results(body)};
      return;
    }
    answer.tokens = {};
    answer.tool_calls = calls;
  };
  return b;
}

ToolSpec order_spec() {
  return {"order_lookup", "Finds an order by its number",
          R"({"type":"object","properties":{"order":{"type":"string"}},"required":["order"]})"};
}

struct ToolBot {
  llmassist::testing::TempDir dir;
  llmassist::testing::ConsoleChat chat;
  MockLlmServer llm;
  std::shared_ptr<MessageStore> store;
  std::unique_ptr<Assistant> assistant;

  ToolBot() {
    SqliteStoreOptions so;
    so.path = dir.file("bot.db");
    so.logger = null_logger();
    so.sync = SqliteSync::kNormal;
    store = std::shared_ptr<MessageStore>(open_sqlite_store(so).value().release());
  }

  Result<std::unique_ptr<Assistant>> create(std::vector<std::shared_ptr<Tool>> tools,
                                            AssistantOptions options = {},
                                            bool model_tools = true) {
    OpenAiProviderOptions po;
    po.name = "mock";
    po.base_url = llm.openai_url();
    po.model = "m";
    po.tools = model_tools;
    po.logger = null_logger();
    AssistantParts parts;
    parts.transport =
        std::shared_ptr<ChatTransport>(make_console_transport(chat.options()).release());
    parts.store = store;
    parts.llm = std::shared_ptr<LlmProvider>(make_openai_provider(po).value().release());
    parts.memory = std::shared_ptr<MemoryManager>(
        make_window_memory(store, {.system_prompt = "You are a shop's assistant."})
            .value()
            .release());
    parts.tools = std::move(tools);
    options.logger = null_logger();
    options.rescan_interval = 100ms;
    return Assistant::create(std::move(parts), std::move(options));
  }

  void start(std::vector<std::shared_ptr<Tool>> tools, AssistantOptions options = {},
             bool model_tools = true) {
    auto made = create(std::move(tools), std::move(options), model_tools);
    REQUIRE_MESSAGE(made.ok(), made.status().to_string());
    assistant = std::move(*made);
    REQUIRE(assistant->start().ok());
  }

  ChatId chat_id() { return store->find_chat("console", "local").value().id; }

  std::vector<Message> tool_records() {
    std::vector<Message> out;
    for (auto& m : store->chat_history(chat_id(), {.limit = 1000}).value()) {
      if (m.role == Role::kTool) out.insert(out.begin(), std::move(m));
    }
    return out;
  }

  template <typename P>
  bool eventually(P predicate) {
    return llmassist::testing::eventually(std::move(predicate), 10s);
  }
};

std::shared_ptr<Tool> tool_of(ToolSpec spec, ToolHandler handler, bool side_effects = false) {
  return make_tool(std::move(spec), side_effects, std::move(handler)).value();
}

}  // namespace

TEST_CASE("tools: the model calls a tool, is told its result, and answers from it") {
  ToolBot bot;
  bot.llm.set(calls_then_answers({{"call_1", "order_lookup", R"({"order":"A-17"})"}}));
  std::atomic<int> calls{0};
  ToolContext seen;
  std::string seen_arguments;
  bot.start({tool_of(order_spec(), [&](const ToolContext& c, const std::string& arguments) {
    seen = c;
    seen_arguments = arguments;
    ++calls;
    return Result<std::string>(R"({"order":"A-17","status":"shipped"})");
  })});
  bot.chat.say("Where is my order A-17?");
  bot.chat.expect("Results: ");
  CHECK(calls == 1);
  CHECK(seen.chat.external_id == "local");
  CHECK(seen.call_id == "call_1");
  CHECK(json::parse(seen_arguments) == json{{"order", "A-17"}});

  // The model was offered the tool, then told the call and its result.
  const auto bodies = bot.llm.bodies("/v1/chat/completions");
  REQUIRE(bodies.size() == 2);
  REQUIRE(bodies[0]["tools"].size() == 1);
  CHECK(bodies[0]["tools"][0]["function"]["name"] == "order_lookup");
  const json& messages = bodies[1]["messages"];
  const json& asked = messages[messages.size() - 2];
  CHECK(asked["role"] == "assistant");
  CHECK(asked["tool_calls"][0]["id"] == "call_1");
  CHECK(last_message(bodies[1])["role"] == "tool");
  CHECK(last_message(bodies[1])["tool_call_id"] == "call_1");

  // Recorded: a tool message of the reply, and an audit event.
  REQUIRE(bot.eventually([&] { return bot.assistant->stats().sent == 1; }));
  const auto records = bot.tool_records();
  REQUIRE(records.size() == 1);
  const Reply reply = bot.store->list_replies({}).value().front();
  CHECK(records[0].reply_id == reply.id);
  CHECK(seen.reply_id == reply.id);
  CHECK(records[0].author == "order_lookup");
  const json record = json::parse(records[0].text);
  CHECK(record["tool"] == "order_lookup");
  CHECK(record["call_id"] == "call_1");
  CHECK(record["arguments"] == json{{"order", "A-17"}});
  CHECK(record["status"] == "done");
  CHECK(record["result"] == R"({"order":"A-17","status":"shipped"})");
  const auto audit = bot.store->list_audit({.reply_id = reply.id}).value();
  CHECK(std::any_of(audit.begin(), audit.end(), [&](const AuditEvent& e) {
    return e.action == "tool" && e.detail == records[0].text;
  }));
  CHECK(bot.assistant->stats().tool_calls == 1);
  CHECK(reply.final_text.find("shipped") != std::string::npos);

  // A later question's prompt has the dialog, never the tool record.
  bot.llm.set(Behavior{});
  bot.chat.say("Thanks!");
  bot.chat.expect("Hello, world!");
  const json body = bot.llm.last_body();
  for (const auto& m : body["messages"]) CHECK(m["role"] != "tool");
}

TEST_CASE("tools: failures, exceptions, unknown tools and bad arguments are told to the model") {
  ToolBot bot;
  bot.llm.set(calls_then_answers({{"call_1", "fails", "{}"},
                                  {"call_2", "throws", "{}"},
                                  {"call_3", "no_such_tool", "{}"},
                                  {"call_4", "fails", "[1, 2]"}}));
  bot.start({tool_of({"fails", "Always fails", ""},
                     [](const ToolContext&, const std::string&) -> Result<std::string> {
                       return unavailable("the order system is down");
                     }),
             tool_of({"throws", "Always throws", ""},
                     [](const ToolContext&, const std::string&) -> Result<std::string> {
                       throw std::runtime_error("bad state");
                     })});
  bot.chat.say("Check everything");
  bot.chat.expect("Results: ");
  REQUIRE(bot.eventually([&] { return bot.assistant->stats().sent == 1; }));
  const std::string answer = bot.store->list_replies({}).value().front().draft_text;
  CHECK(answer.find("the order system is down") != std::string::npos);
  CHECK(answer.find("bad state") != std::string::npos);
  CHECK(answer.find(R"(no tool named \"no_such_tool\")") != std::string::npos);
  CHECK(answer.find("not a JSON object") != std::string::npos);
  const auto records = bot.tool_records();
  REQUIRE(records.size() == 4);
  for (const auto& r : records) CHECK(json::parse(r.text)["status"] == "failed");
  CHECK(json::parse(records[3].text)["arguments"] == "[1, 2]");  // kept as the model sent it
  CHECK(bot.assistant->stats().tool_calls == 4);
}

TEST_CASE("tools: after max_tool_steps rounds the model is asked to answer without tools") {
  ToolBot bot;
  Behavior endless;
  endless.script = [](const json& body, Behavior& answer) {
    if (!body.contains("tools")) {
      answer.tokens = {"I could not finish the lookup."};
      return;
    }
    answer.tokens = {};
    answer.tool_calls = {{"call_x", "order_lookup", R"({"order":"A-17"})"}};
  };
  bot.llm.set(endless);
  AssistantOptions o;
  o.max_tool_steps = 2;
  std::atomic<int> calls{0};
  bot.start({tool_of(order_spec(),
                     [&](const ToolContext&, const std::string&) {
                       ++calls;
                       return Result<std::string>("still looking");
                     })},
            o);
  bot.chat.say("Where is my order A-17?");
  bot.chat.expect("I could not finish the lookup.");
  CHECK(calls == 2);
  const auto bodies = bot.llm.bodies("/v1/chat/completions");
  REQUIRE(bodies.size() == 3);
  CHECK(bodies[1].contains("tools"));
  CHECK_FALSE(bodies[2].contains("tools"));
  CHECK(last_message(bodies[2])["role"] == "system");
  CHECK(last_message(bodies[2])["content"].get<std::string>().find("without calling tools") !=
        std::string::npos);
}

TEST_CASE("tools: a tool that does not answer in time is told to the model as timed out") {
  ToolBot bot;
  bot.llm.set(calls_then_answers({{"call_1", "slow", "{}"}}));
  AssistantOptions o;
  o.tool_timeout = 200ms;
  std::atomic<bool> cancelled_seen{false};
  bot.start({tool_of({"slow", "Takes its time", ""},
                     [&](const ToolContext& c, const std::string&) {
                       for (int i = 0; i < 200 && !c.cancel->cancelled(); ++i) {
                         std::this_thread::sleep_for(10ms);
                       }
                       cancelled_seen = c.cancel->cancelled();
                       return Result<std::string>("too late");
                     })},
            o);
  const auto asked = std::chrono::steady_clock::now();
  bot.chat.say("Take your time");
  bot.chat.expect("Results: ");
  REQUIRE(bot.eventually([&] { return bot.assistant->stats().sent == 1; }));
  const std::string answer = bot.store->list_replies({}).value().front().draft_text;
  CHECK(answer.find("did not answer within 200 ms") != std::string::npos);
  CHECK(answer.find("too late") == std::string::npos);
  REQUIRE(bot.eventually([&] { return cancelled_seen.load(); }));
  CHECK(std::chrono::steady_clock::now() - asked < 5s);
  REQUIRE(bot.eventually([&] { return bot.tool_records().size() == 1; }));
  const json record = json::parse(bot.tool_records()[0].text);
  CHECK(record["status"] == "failed");
  CHECK(record["error"].get<std::string>().find("200 ms") != std::string::npos);
}

TEST_CASE("tools: in review policy only the tools without side effects are offered and run") {
  ToolBot bot;
  bot.llm.set(calls_then_answers(
      {{"call_1", "order_lookup", R"({"order":"A-17"})"}, {"call_2", "book_demo", "{}"}}));
  AssistantOptions o;
  o.policy = ModerationPolicy::kReview;
  std::atomic<int> lookups{0};
  std::atomic<int> bookings{0};
  bot.start({tool_of(order_spec(),
                     [&](const ToolContext&, const std::string&) {
                       ++lookups;
                       return Result<std::string>("shipped");
                     }),
             tool_of(
                 {"book_demo", "Books a demo", ""},
                 [&](const ToolContext&, const std::string&) {
                   ++bookings;
                   return Result<std::string>("booked");
                 },
                 /*side_effects=*/true)},
            o);
  bot.chat.say("Where is my order, and book me a demo");
  REQUIRE(bot.eventually([&] {
    return bot.store->list_replies({.status = ReplyStatus::kPending}).value().size() == 1;
  }));
  const auto bodies = bot.llm.bodies("/v1/chat/completions");
  REQUIRE(bodies.size() == 2);
  REQUIRE(bodies[0]["tools"].size() == 1);
  CHECK(bodies[0]["tools"][0]["function"]["name"] == "order_lookup");
  CHECK(lookups == 1);
  CHECK(bookings == 0);  // nothing changes before an operator decides
  const auto records = bot.tool_records();
  REQUIRE(records.size() == 2);
  CHECK(json::parse(records[1].text)["status"] == "failed");
  CHECK(json::parse(records[1].text)["error"].get<std::string>().find("no tool named") !=
        std::string::npos);
}

TEST_CASE("tools: a model without tools is not offered them and answers as before") {
  ToolBot bot;
  std::atomic<int> calls{0};
  bot.start({tool_of(order_spec(),
                     [&](const ToolContext&, const std::string&) {
                       ++calls;
                       return Result<std::string>("{}");
                     })},
            {}, /*model_tools=*/false);
  bot.chat.say("Where is my order A-17?");
  bot.chat.expect("Hello, world!");
  CHECK_FALSE(bot.llm.last_body().contains("tools"));
  CHECK(calls == 0);
}

TEST_CASE("tools: the assistant refuses tools it cannot offer") {
  ToolBot bot;
  auto lookup = [](const ToolContext&, const std::string&) { return Result<std::string>("{}"); };
  auto twice = bot.create({tool_of(order_spec(), lookup), tool_of(order_spec(), lookup)});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.status().message().find("two tools are named \"order_lookup\"") != std::string::npos);
  CHECK_FALSE(bot.create({nullptr}).ok());
  CHECK(make_tool({"has space", "", ""}, false, lookup).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(make_tool({"t", "", "[]"}, false, lookup).status().message().find("JSON object") !=
        std::string::npos);
  AssistantOptions o;
  o.max_tool_steps = 0;
  CHECK_FALSE(bot.create({}, o).ok());
}

#ifdef LLMASSIST_ORDER_BOT_BINARY
TEST_CASE("examples: the order bot's model looks an order up with the example's own tool") {
  llmassist::testing::TempDir dir;
  MockLlmServer llm;
  llm.set(calls_then_answers({{"call_1", "order_lookup", R"({"order":"A-17"})"}}));
  {
    std::ofstream(dir.file("bot.json")) << R"({"providers": [{"type": "openai", "base_url": ")"
                                        << llm.openai_url() << R"(", "model": "m"}]})";
    std::ofstream(dir.file("input.txt")) << "Where is my order A-17?\n";
  }
  const std::string log = dir.file("out.log");
  CHECK(llmassist::testing::run_in_folder(dir.path().string(), LLMASSIST_ORDER_BOT_BINARY,
                                          "--config bot.json", "input.txt", log) == 0);
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  INFO(out.str());
  CHECK(out.str().find("shipped on 2 December") != std::string::npos);
  const auto bodies = llm.bodies("/v1/chat/completions");
  REQUIRE(bodies.size() == 2);
  CHECK(bodies[0]["tools"][0]["function"]["name"] == "order_lookup");
}
#endif
