// The Assistant's tool loop end to end on real parts: the console transport over pipes, a SQLite
// file, the window memory, and the OpenAI-compatible provider against the mock LLM server, whose
// answers a script of each test plays (tool calls, then text from the tools' results).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "llmassist/assistant.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/core/store_moderation_queue.h"
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

namespace {

// The review policy's bot with two tools: order_lookup (reads) and book_demo (side effects),
// counting their runs.
struct ReviewBot : ToolBot {
  std::atomic<int> lookups{0};
  std::atomic<int> bookings{0};
  std::vector<std::string> booked_calls;  // the call ids book_demo ran with
  std::mutex mu;
  std::unique_ptr<ModerationQueue> queue = make_moderation_queue(store, {.logger = null_logger()});

  ReviewBot() {
    llm.set(calls_then_answers(
        {{"call_1", "order_lookup", R"({"order":"A-17"})"}, {"call_2", "book_demo", "{}"}}));
    AssistantOptions o;
    o.policy = ModerationPolicy::kReview;
    start({tool_of(order_spec(),
                   [&](const ToolContext&, const std::string&) {
                     ++lookups;
                     return Result<std::string>("shipped");
                   }),
           tool_of(
               {"book_demo", "Books a demo", ""},
               [&](const ToolContext& c, const std::string&) {
                 ++bookings;
                 CHECK(c.deferred);
                 std::lock_guard lock(mu);
                 booked_calls.push_back(c.call_id);
                 return Result<std::string>("booked for Monday");
               },
               /*side_effects=*/true)},
          o);
  }

  ~ReviewBot() { assistant.reset(); }  // before the counters its tools use go

  Reply pending() {
    std::vector<Reply> found;
    REQUIRE(eventually([&] {
      found = store->list_replies({.status = ReplyStatus::kPending}).value();
      return found.size() == 1;
    }));
    return found[0];
  }
};

}  // namespace

TEST_CASE("tools: in review policy a call with side effects waits for the draft's approval") {
  ReviewBot bot;
  bot.chat.say("Where is my order, and book me a demo");
  const Reply draft = bot.pending();
  // Both were offered; the lookup ran, the booking was kept for the operator's decision.
  const auto bodies = bot.llm.bodies("/v1/chat/completions");
  REQUIRE(bodies.size() == 2);
  CHECK(bodies[0]["tools"].size() == 2);
  CHECK(bot.lookups == 1);
  CHECK(bot.bookings == 0);
  REQUIRE(draft.deferred_calls.size() == 1);
  CHECK(draft.deferred_calls[0].tool == "book_demo");
  CHECK(draft.deferred_calls[0].call_id == "call_2");
  // The model was told it is done on approval, and said so.
  CHECK(tool_results(bodies[1]).find("deferred") != std::string::npos);
  auto records = bot.tool_records();
  REQUIRE(records.size() == 2);
  CHECK(json::parse(records[0].text)["status"] == "done");
  CHECK(json::parse(records[1].text)["status"] == "deferred");

  // The operator approves: the booking runs once, before the answer goes out.
  REQUIRE(bot.queue->approve(draft.id, "alice").ok());
  bot.chat.expect("Results:");
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_reply(draft.id).value().status == ReplyStatus::kSent; }));
  CHECK(bot.bookings == 1);
  {
    std::lock_guard lock(bot.mu);
    CHECK(bot.booked_calls == std::vector<std::string>{"call_2"});
  }
  const Reply sent = bot.store->get_reply(draft.id).value();
  CHECK(sent.deferred_calls.empty());
  records = bot.tool_records();
  REQUIRE(records.size() == 3);
  const json ran = json::parse(records[2].text);
  CHECK(ran["status"] == "done");
  CHECK(ran["call_id"] == "call_2");
  CHECK(ran["result"] == "booked for Monday");
  CHECK(records[2].reply_id == draft.id);
  CHECK(bot.assistant->stats().tool_calls == 2);
}

TEST_CASE("tools: a rejected draft's deferred calls never run") {
  ReviewBot bot;
  bot.chat.say("Book me a demo");
  const Reply first = bot.pending();
  REQUIRE(first.deferred_calls.size() == 1);
  REQUIRE(bot.queue->reject(first.id, "alice", "ask which day first").ok());
  // Drafted again (the model calls again, deferred again); that draft is approved.
  Reply second;
  REQUIRE(bot.eventually([&] {
    second = bot.store->get_reply(first.id).value();
    return second.status == ReplyStatus::kPending && second.generation_attempts == 2;
  }));
  CHECK(bot.bookings == 0);
  REQUIRE(second.deferred_calls.size() == 1);
  REQUIRE(bot.queue->approve(second.id, "alice").ok());
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_reply(first.id).value().status == ReplyStatus::kSent; }));
  CHECK(bot.bookings == 1);  // the approved draft's call only
}

TEST_CASE("tools: a deferred call of a tool this bot lacks is recorded failed; the answer goes") {
  ToolBot bot;
  // Approved in another process, whose bot had the tool: this one has no tools at all.
  const Chat chat = bot.store->upsert_chat({"console", "local", "Ann", ""}).value();
  NewReply n;
  n.chat_id = chat.id;
  n.status = ReplyStatus::kApproved;
  n.final_text = "Booked, see you on Monday";
  const Reply reply = bot.store->create_reply(n).value();
  ReplyChange carry;
  carry.from = ReplyStatus::kApproved;
  carry.to = ReplyStatus::kApproved;
  carry.deferred_calls = std::vector<DeferredToolCall>{{"call_9", "book_demo", "{}"}};
  REQUIRE(bot.store->transition_reply(reply.id, carry).ok());
  bot.start({});
  bot.chat.expect("Booked, see you on Monday");
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_reply(reply.id).value().status == ReplyStatus::kSent; }));
  const auto records = bot.tool_records();
  REQUIRE(records.size() == 1);
  const json record = json::parse(records[0].text);
  CHECK(record["status"] == "failed");
  CHECK(record["error"].get<std::string>().find("no tool named \"book_demo\"") !=
        std::string::npos);
  CHECK(bot.store->get_reply(reply.id).value().deferred_calls.empty());
}

TEST_CASE("agent: \"please stop writing to me\" opts the contact out, confirmed to them") {
  ToolBot bot;
  bot.llm.set(calls_then_answers({{"call_1", "stop_contact", R"({"reason":"stop writing"})"}}));
  AssistantOptions o;
  o.agent.stop_contact = true;
  bot.start({}, o);
  bot.chat.say("Please stop writing to me");
  bot.chat.expect("opted_out");
  const Chat chat = bot.store->get_chat(bot.chat_id()).value();
  REQUIRE(chat.opted_out_at.has_value());
  const auto audit = bot.store->list_audit({.chat_id = chat.id}).value();
  CHECK(std::any_of(audit.begin(), audit.end(), [](const AuditEvent& e) {
    return e.action == "contact" && e.detail.find("opted_out") != std::string::npos;
  }));
  const auto records = bot.tool_records();
  REQUIRE(records.size() == 1);
  CHECK(json::parse(records[0].text)["status"] == "done");
  // Their own questions are still answered.
  bot.llm.set(Behavior{});
  bot.chat.say("One more question");
  bot.chat.expect("Hello, world!");
}

TEST_CASE("agent: \"send me the presentation\" sends the configured file with the answer") {
  ToolBot bot;
  const std::string deck = bot.dir.file("deck-2026.pdf");
  std::ofstream(deck, std::ios::binary) << "%PDF-1.4 deck";
  bot.llm.set(calls_then_answers({{"call_1", "send_document", R"({"document":"presentation"})"}}));
  AssistantOptions o;
  o.agent.documents["presentation"] = {deck, "", "application/pdf", "Our product deck"};
  bot.start({}, o);
  bot.chat.say("Send me the presentation");
  bot.chat.expect("Results:");
  // The model was offered the document by name, with its caption.
  const json first = bot.llm.bodies("/v1/chat/completions").front();
  REQUIRE(first["tools"].size() == 1);
  const json& spec = first["tools"][0]["function"];
  CHECK(spec["name"] == "send_document");
  CHECK(spec["parameters"]["properties"]["document"]["enum"] == json{"presentation"});
  CHECK(spec["description"].get<std::string>().find("Our product deck") != std::string::npos);
  std::vector<Reply> sent;
  REQUIRE(bot.eventually([&] {
    sent = bot.store->list_replies({.status = ReplyStatus::kSent}).value();
    return sent.size() == 1;
  }));
  REQUIRE(sent[0].attachments.size() == 1);
  CHECK(sent[0].attachments[0].path == deck);
  CHECK(sent[0].attachments[0].file_name == "deck-2026.pdf");
  CHECK(sent[0].attachments[0].mime_type == "application/pdf");

  // A name it was not given is told to the model, with the names there are; nothing attached.
  bot.llm.set(calls_then_answers({{"call_2", "send_document", R"({"document":"price list"})"}}));
  bot.chat.say("And the price list?");
  bot.chat.expect("there are: presentation");
  REQUIRE(bot.eventually([&] {
    sent = bot.store->list_replies({.status = ReplyStatus::kSent}).value();
    return sent.size() == 2;
  }));
  const auto later = std::max_element(sent.begin(), sent.end(),
                                      [](const Reply& a, const Reply& b) { return a.id < b.id; });
  CHECK(later->attachments.empty());
}

TEST_CASE("agent: a document that is not a file, or a bad name, is refused when the bot is made") {
  ToolBot bot;
  AssistantOptions o;
  o.agent.documents["the deck"] = {bot.dir.file("deck.pdf"), "", "", ""};
  auto made = bot.create({}, o);
  REQUIRE_FALSE(made.ok());
  CHECK(made.status().message().find("\"the deck\"") != std::string::npos);
  AssistantOptions none;
  none.agent.documents["deck"] = {};
  made = bot.create({}, none);
  REQUIRE_FALSE(made.ok());
  CHECK(made.status().message().find("no path") != std::string::npos);
}

TEST_CASE("agent: \"I want a person\" hands the chat over, as /human does") {
  ToolBot bot;
  bot.llm.set(calls_then_answers({{"call_1", "handoff_to_human", "{}"}}));
  AssistantOptions o;
  o.agent.handoff_to_human = true;
  bot.start({}, o);
  bot.chat.say("I want to talk to a real person");
  bot.chat.expect(AssistantTexts{}.handoff);
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_chat(bot.chat_id()).value().mode == ChatMode::kOperator; }));
  const auto audit = bot.store->list_audit({.chat_id = bot.chat_id()}).value();
  CHECK(std::any_of(audit.begin(), audit.end(),
                    [](const AuditEvent& e) { return e.action == "handoff"; }));
  // From now on the user's messages wait for an operator: none opens a reply for the model
  // (it would be opened in the transaction that stores the message).
  const auto replies = bot.store->list_replies({.chat_id = bot.chat_id()}).value().size();
  bot.chat.say("Hello?");
  REQUIRE(bot.eventually([&] {
    const auto log = bot.store->chat_history(bot.chat_id(), {.limit = 5}).value();
    return std::any_of(log.begin(), log.end(), [](const Message& m) { return m.text == "Hello?"; });
  }));
  CHECK(bot.store->list_replies({.chat_id = bot.chat_id()}).value().size() == replies);
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
