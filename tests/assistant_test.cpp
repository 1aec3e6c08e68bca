// The Assistant end to end on real parts: the console transport over pipes, a SQLite file, the
// knowledge-base provider (or an OpenAI-compatible one against the mock LLM server), the window
// memory.
#include <doctest/doctest.h>
#include <httplib.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "llmassist/assistant.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/providers/knowledge_base_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/runtime_settings.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "llmassist/telegram/telegram_transport.h"
#include "support/capturing_logger.h"
#include "support/console_chat.h"
#include "support/mock_llm_server.h"
#include "support/mock_telegram_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::ConsoleChat;

namespace {

// Forwards to another transport and counts the typing indicators asked for.
class TypingCounter final : public ChatTransport {
 public:
  explicit TypingCounter(std::shared_ptr<ChatTransport> inner) : inner_(std::move(inner)) {}
  std::string_view channel() const override { return inner_->channel(); }
  Status start(InboundHandler handler) override { return inner_->start(std::move(handler)); }
  void stop() override { inner_->stop(); }
  void send(OutboundMessage message, SendCallback done) override {
    inner_->send(std::move(message), std::move(done));
  }
  void edit(std::string chat_external_id, std::string message_id, OutboundMessage message,
            DoneCallback done) override {
    inner_->edit(std::move(chat_external_id), std::move(message_id), std::move(message),
                 std::move(done));
  }
  void send_typing(std::string chat_external_id, DoneCallback done) override {
    ++typing_;
    inner_->send_typing(std::move(chat_external_id), std::move(done));
  }
  void answer_callback(std::string callback_id, std::string text, DoneCallback done) override {
    inner_->answer_callback(std::move(callback_id), std::move(text), std::move(done));
  }
  void send_draft(std::string chat_external_id, std::int64_t draft_id, std::string text,
                  DoneCallback done) override {
    inner_->send_draft(std::move(chat_external_id), draft_id, std::move(text), std::move(done));
  }
  int typing() const { return typing_.load(); }

 private:
  std::shared_ptr<ChatTransport> inner_;
  std::atomic<int> typing_{0};
};

struct Bot {
  llmassist::testing::TempDir dir;
  ConsoleChat chat;
  std::shared_ptr<MessageStore> store;
  std::unique_ptr<Assistant> assistant;
  std::shared_ptr<TypingCounter> transport;
  bool moderation = false;         // give the assistant a moderation queue
  std::shared_ptr<Logger> logger;  // default: none

  // `clock`: the store's (default: the system's).
  explicit Bot(std::shared_ptr<Clock> clock = nullptr) {
    SqliteStoreOptions so;
    so.clock = std::move(clock);
    so.path = dir.file("bot.db");
    so.logger = null_logger();
    so.sync = SqliteSync::kNormal;
    store = std::shared_ptr<MessageStore>(open_sqlite_store(so).value().release());
  }

  // `custom`: the transport; default, the console chat. Either is wrapped in `transport`.
  void start(AssistantOptions options = {}, std::shared_ptr<LlmProvider> llm = nullptr,
             std::shared_ptr<ChatTransport> custom = nullptr) {
    if (!llm) {
      KnowledgeBaseOptions kb;
      kb.logger = null_logger();
      llm = std::shared_ptr<LlmProvider>(make_knowledge_base_provider(kb).value().release());
    }
    AssistantParts parts;
    transport = std::make_shared<TypingCounter>(
        custom ? custom : std::shared_ptr<ChatTransport>(make_console_transport(chat.options())));
    parts.transport = transport;
    parts.store = store;
    parts.llm = llm;
    parts.memory = std::shared_ptr<MemoryManager>(
        make_window_memory(store, {.system_prompt = "You are a support assistant."})
            .value()
            .release());
    if (moderation) parts.moderation = make_moderation_queue(store);
    options.logger = logger ? logger : null_logger();
    // Quick rescans, unless the test asks for its own (to see what works without them).
    if (options.rescan_interval == AssistantOptions{}.rescan_interval) {
      options.rescan_interval = 100ms;
    }
    assistant = Assistant::create(std::move(parts), std::move(options)).value();
    REQUIRE(assistant->start().ok());
  }

  ChatId chat_id() { return store->find_chat("console", "local").value().id; }

  // Waits until `predicate` holds on the store.
  template <typename P>
  bool eventually(P predicate, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (predicate()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return predicate();
  }

  std::vector<Reply> replies(std::optional<ReplyStatus> status = std::nullopt) {
    return store->list_replies({.status = status}).value();
  }
};

using llmassist::testing::MockTelegramServer;

// An OpenAI provider against `llm`.
std::shared_ptr<LlmProvider> openai_provider(llmassist::testing::MockLlmServer& llm) {
  OpenAiProviderOptions po;
  po.name = "mock";
  po.base_url = llm.openai_url();
  po.model = "m";
  po.logger = null_logger();
  return std::shared_ptr<LlmProvider>(make_openai_provider(po).value().release());
}

// The same, with the mock told to answer "Answer to: <question>".
std::shared_ptr<LlmProvider> echoing_provider(llmassist::testing::MockLlmServer& llm) {
  llmassist::testing::MockLlmServer::Behavior echo;
  echo.echo_question = true;
  llm.set(echo);
  return openai_provider(llm);
}

// The mock told to answer "answer" after `delay`.
llmassist::testing::MockLlmServer::Behavior answer_after(llmassist::testing::MockLlmServer& llm,
                                                         std::chrono::milliseconds delay) {
  llmassist::testing::MockLlmServer::Behavior slow;
  slow.delay = delay;
  slow.tokens = {"answer"};
  llm.set(slow);
  return slow;
}

// A Telegram transport against `telegram`, with Telegram's pacing off.
std::shared_ptr<ChatTransport> unpaced_telegram(llmassist::testing::MockTelegramServer& telegram) {
  TelegramTransportOptions to;
  to.token = telegram.token();
  to.api_url = telegram.api_url();
  to.polling.timeout = 1s;
  to.pacing.per_chat_interval = 0ms;
  to.pacing.global_per_second = 0;
  to.logger = null_logger();
  return std::shared_ptr<ChatTransport>(make_telegram_transport(to).value().release());
}

}  // namespace

TEST_CASE("assistant: a question is stored, answered from the knowledge base, and logged") {
  Bot bot;
  bot.start();
  bot.chat.say("How do I connect the bot to Telegram?");
  const std::string answer = bot.chat.expect("BotFather");
  CHECK(answer.rfind("bot: ", 0) == 0);
  bot.chat.expect("[1] Talk to a human");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 1; }));
  auto log = bot.store->chat_history(bot.chat_id(), {}).value();
  REQUIRE(log.size() == 2);
  CHECK(log[1].role == Role::kUser);
  CHECK(log[1].author == "ann");
  CHECK(log[0].role == Role::kAssistant);
  CHECK(log[0].text.find("BotFather") != std::string::npos);
  CHECK(bot.replies().front().provider == "knowledge_base");
  // The counter follows the commit that marked the answer sent.
  CHECK(bot.eventually([&] { return bot.assistant->stats().sent == 1; }));
}

TEST_CASE("assistant: /start greets and opens a new session") {
  Bot bot;
  AssistantOptions o;
  o.texts.welcome = "Welcome to the shop!";
  bot.start(o);
  bot.chat.say("/start");
  bot.chat.expect("bot: Welcome to the shop!");
  const auto first = bot.store->open_session(bot.chat_id()).value().id;
  bot.chat.say("/start");
  bot.chat.expect("Welcome to the shop!");
  CHECK(bot.store->open_session(bot.chat_id()).value().id != first);
  CHECK(bot.replies().empty());  // commands open no reply
}

TEST_CASE("assistant: when no provider answers, the user gets a plain apology") {
  Bot bot;
  AssistantOptions o;
  o.texts.failure = "Sorry, no answer right now; an operator will reply.";
  bot.start(o);
  bot.chat.say("What is the airspeed velocity of an unladen swallow?");
  bot.chat.expect("Sorry, no answer right now");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kFailed).size() == 1; }));
  auto failed = bot.replies(ReplyStatus::kFailed).front();
  CHECK(failed.error.find("no_answer") == std::string::npos);  // the status text, not the reason
  CHECK(failed.error.find("not_found") != std::string::npos);
  CHECK(bot.assistant->stats().failures == 1);
}

TEST_CASE("assistant: review policy tells the user at once and waits for the operator") {
  Bot bot;
  AssistantOptions o;
  o.policy = ModerationPolicy::kReview;
  o.texts.review_notice = "Received; an operator is checking the answer.";
  bot.start(o);
  bot.chat.say("How do I run the tests?");
  bot.chat.expect("Received; an operator is checking the answer.");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kPending).size() == 1; }));
  const Reply draft = bot.replies(ReplyStatus::kPending).front();
  CHECK(draft.draft_text.find("scripts/test.sh") != std::string::npos);
  // The operator edits it from another process's point of view: only the store changes.
  ReplyChange edit;
  edit.from = ReplyStatus::kPending;
  edit.to = ReplyStatus::kApproved;
  edit.final_text = "Run scripts/test.sh — it does everything.";
  edit.author = "alice";
  edit.actor = "operator:alice";
  edit.audit_action = "edit";
  REQUIRE(bot.store->transition_reply(draft.id, edit).ok());
  const std::string out = bot.chat.expect("it does everything.");
  CHECK(out.find("👤") == std::string::npos);  // an edited draft is the assistant's answer
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 1; }));
}

TEST_CASE("assistant: handoff by button and command, the operator's words are relayed") {
  Bot bot;
  AssistantOptions o;
  o.texts.handoff = "Connecting you with a person.";
  o.texts.handback = "Back with the assistant.";
  bot.start(o);
  bot.chat.say("How do I talk to a human?");
  bot.chat.expect("[1] Talk to a human");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 1; }));
  bot.chat.say("1");  // presses the button
  bot.chat.expect("Connecting you with a person.");
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_chat(bot.chat_id()).value().mode == ChatMode::kOperator; }));
  const std::size_t replies_before = bot.replies().size();
  bot.chat.say("My parcel never arrived");
  REQUIRE(bot.eventually([&] {
    return bot.store->chat_history(bot.chat_id(), {}).value().front().text ==
           "My parcel never arrived";
  }));
  CHECK(bot.replies().size() == replies_before);  // no draft in operator mode
  NewReply answer;
  answer.chat_id = bot.chat_id();
  answer.status = ReplyStatus::kApproved;
  answer.final_text = "I'm looking into it.";
  answer.author = "alice";
  answer.actor = "operator:alice";
  answer.audit_action = "handoff_reply";
  REQUIRE(bot.store->create_reply(answer).ok());
  bot.chat.expect("bot: 👤 alice: I'm looking into it.");
  bot.chat.say("/bot");
  bot.chat.expect("Back with the assistant.");
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_chat(bot.chat_id()).value().mode == ChatMode::kBot; }));
  bot.chat.say("/human");
  bot.chat.expect("Connecting you with a person.");
}

TEST_CASE("assistant: replies left generating by a crashed run are drafted again at start") {
  Bot bot;
  const auto chat = bot.store->upsert_chat({"console", "local", "ann", ""}).value();
  auto in =
      append_inbound(*bot.store, {.chat_id = chat.id, .text = "How do I run the tests?"}).value();
  ClaimRequest crashed;
  crashed.status = ReplyStatus::kNew;
  crashed.to = ReplyStatus::kGenerating;
  crashed.worker = "bot:bot";  // this instance's name, from the run that died
  crashed.lease = 1h;
  REQUIRE(bot.store->claim_replies(crashed).value().size() == 1);
  // And an answer approved but never sent.
  NewReply approved;
  approved.chat_id = chat.id;
  approved.status = ReplyStatus::kApproved;
  approved.final_text = "An answer that waited in the outbox.";
  REQUIRE(bot.store->create_reply(approved).ok());
  bot.start();
  bot.chat.expect("scripts/test.sh");
  bot.chat.expect("An answer that waited in the outbox.");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 2; }));
  CHECK(bot.store->get_reply(in.reply_id).value().generation_attempts == 2);
}

TEST_CASE("assistant: messages sent meanwhile are answered in order, or together") {
  for (auto mode : {QueuedMessages::kAnswerEach, QueuedMessages::kAnswerTogether}) {
    CAPTURE(static_cast<int>(mode));
    llmassist::testing::MockLlmServer llm;
    llmassist::testing::MockLlmServer::Behavior slow;
    slow.delay = 300ms;  // the first question is still in flight when the others arrive
    slow.tokens = {"answer"};
    llm.set(slow);
    Bot bot;
    AssistantOptions o;
    o.queued = mode;
    o.texts.human_button.clear();
    bot.start(o, openai_provider(llm));
    bot.chat.say("first");
    REQUIRE(bot.eventually([&] { return llm.requests() == 1; }));
    bot.chat.say("second");
    bot.chat.say("third");
    if (mode == QueuedMessages::kAnswerEach) {
      REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 3; }));
      CHECK(llm.requests() == 3);
      // Each prompt ends with its own question, and includes the ones before it.
      auto last = llm.last_body()["messages"];
      CHECK(last.back()["content"] == "third");
    } else {
      REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 2; }));
      CHECK(llm.requests() == 2);
      auto last = llm.last_body()["messages"];
      CHECK(last.back()["content"] == "third");
      CHECK(last[last.size() - 2]["content"] == "second");
      CHECK(bot.replies(ReplyStatus::kCancelled).size() == 1);  // "second", answered with "third"
    }
    // Sent in the order asked.
    auto sent = bot.replies(ReplyStatus::kSent);
    for (std::size_t i = 1; i < sent.size(); ++i) CHECK(*sent[i - 1].sent_at <= *sent[i].sent_at);
  }
}

TEST_CASE(
    "assistant: without rescans, what arrives while a chat's draft is in flight is answered") {
  llmassist::testing::MockLlmServer llm;
  answer_after(llm, 200ms);
  Bot bot;
  AssistantOptions o;
  o.texts.human_button.clear();
  o.rescan_interval = std::chrono::hours(1);  // only the path of each step can carry a chat on
  bot.start(o, openai_provider(llm));
  for (int round = 0; round < 2; ++round) {
    bot.chat.say("first");
    REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kGenerating).size() == 1; }));
    bot.chat.say("second");  // the worker hears of these while "first" is drafted
    bot.chat.say("third");
    REQUIRE(bot.eventually(
        [&] { return bot.replies(ReplyStatus::kSent).size() == 3u * (round + 1); }, 5s));
  }
  CHECK(llm.requests() == 6);
  auto sent = bot.replies(ReplyStatus::kSent);
  for (std::size_t i = 1; i < sent.size(); ++i) CHECK(*sent[i - 1].sent_at <= *sent[i].sent_at);
}

TEST_CASE("assistant: a chat's next draft begins while its answer is on its way, in order") {
  llmassist::testing::MockLlmServer llm;
  llmassist::testing::MockTelegramServer telegram;
  // The first answer's send waits out a 429 for a second inside the transport.
  telegram.fail_next("sendMessage", {429, "Too Many Requests: retry after 1", 1});
  Bot bot;
  AssistantOptions o;
  o.texts.human_button.clear();
  bot.start(o, echoing_provider(llm), unpaced_telegram(telegram));
  telegram.push_updates(
      {{1, llmassist::testing::MockTelegramServer::text_update(1, "first", 700)},
       {2, llmassist::testing::MockTelegramServer::text_update(2, "second", 700)}});
  // The second question is drafted while the first answer has not been delivered.
  REQUIRE(bot.eventually([&] { return llm.requests() == 2; }));
  CHECK(telegram.count_calls("sendMessage", 200) == 0);
  REQUIRE(telegram.wait_for_calls("sendMessage", 3));  // the 429, then both answers
  REQUIRE(bot.eventually([&] { return telegram.count_calls("sendMessage", 200) == 2; }));
  std::vector<std::string> texts;
  for (const auto& c : telegram.calls("sendMessage")) {
    if (c.status == 200) texts.push_back(c.params.value("text", ""));
  }
  REQUIRE(texts.size() == 2);
  CHECK(texts[0].find("Answer to: first") != std::string::npos);
  CHECK(texts[1].find("Answer to: second") != std::string::npos);
  bot.assistant->stop(1s);
}

// Holds the model's answers until release() (the mock lets requests go once two are in flight:
// release() sends the second itself).
struct HeldAnswer {
  explicit HeldAnswer(llmassist::testing::MockLlmServer& llm) : llm_(llm) {
    llmassist::testing::MockLlmServer::Behavior held;
    held.tokens = {"answer"};
    held.hold_until_in_flight = 2;
    held.hold_timeout = 30s;
    llm.set(held);
  }
  void release() {
    std::string base = llm_.openai_url();
    base.resize(base.size() - 3);  // without "/v1"
    httplib::Client c(base);
    c.set_read_timeout(30, 0);
    const auto r =
        c.Post("/v1/chat/completions",
               R"({"model":"m","messages":[{"role":"user","content":"go"}]})", "application/json");
    REQUIRE(r);
  }

 private:
  llmassist::testing::MockLlmServer& llm_;
};

TEST_CASE("assistant: a slow draft shows the typing indicator until it is done, a quick one none") {
  llmassist::testing::MockLlmServer llm;
  HeldAnswer held(llm);
  auto clock = std::make_shared<llmassist::testing::ManualMonotonicClock>();
  Bot bot;
  AssistantOptions o;
  o.texts.human_button.clear();
  o.typing_delay = 100ms;
  o.typing_interval = 150ms;
  o.monotonic_clock = clock;
  bot.start(o, openai_provider(llm));
  bot.chat.say("first");
  REQUIRE(bot.eventually([&] { return llm.requests() == 1; }));
  // At 100 ms, 250 ms and 400 ms of the draft.
  for (const auto& [step, typing] : {std::pair{100ms, 1}, {150ms, 2}, {150ms, 3}}) {
    clock->advance(step);
    REQUIRE(bot.eventually([&, typing = typing] { return bot.transport->typing() == typing; }));
  }
  held.release();
  bot.chat.expect("answer");
  const int while_drafting = bot.transport->typing();
  CHECK(while_drafting >= 2);  // at 100 ms, 250 ms, 400 ms...
  CHECK(while_drafting <= 4);

  llmassist::testing::MockLlmServer::Behavior quick;
  quick.tokens = {"answer"};
  llm.set(quick);
  bot.chat.say("second");
  bot.chat.expect("answer");
  for (int i = 0; i < 8; ++i) clock->advance(50ms);  // several sweeps later
  // The worker has gone through those wake-ups once it answered a question asked after them.
  bot.chat.say("third");
  bot.chat.expect("answer");
  CHECK(bot.transport->typing() == while_drafting);
}

TEST_CASE("assistant: a long draft's claim is renewed while the model thinks") {
  llmassist::testing::MockLlmServer llm;
  HeldAnswer held(llm);
  auto wall = std::make_shared<llmassist::testing::ManualClock>();
  auto clock = std::make_shared<llmassist::testing::ManualMonotonicClock>();
  Bot bot(wall);
  AssistantOptions o;
  o.texts.human_button.clear();
  o.lease_renewal = 100ms;  // a lease of 300 ms
  o.monotonic_clock = clock;
  bot.start(o, openai_provider(llm));
  bot.chat.say("first");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kGenerating).size() == 1; }));
  REQUIRE(bot.eventually([&] { return llm.requests() == 1; }));
  const Reply first = bot.replies(ReplyStatus::kGenerating).front();
  REQUIRE(first.lease_until.has_value());
  // 800 ms of thinking, in steps of a renewal: the first lease ran out long ago.
  for (int i = 1; i <= 8; ++i) {
    wall->advance(100ms);
    clock->advance(100ms);
    REQUIRE(bot.eventually([&] {
      return *bot.store->get_reply(first.id).value().lease_until >= wall->now() + 300ms;
    }));
  }
  const Reply later = bot.store->get_reply(first.id).value();
  CHECK(later.status == ReplyStatus::kGenerating);
  CHECK(later.claimed_by == first.claimed_by);  // not taken again as stale
  CHECK(later.generation_attempts == first.generation_attempts);
  REQUIRE(later.lease_until.has_value());
  CHECK(*later.lease_until > *first.lease_until + 400ms);
  // So nobody else takes it: a claim of stale drafts finds none.
  ClaimRequest stale;
  stale.status = ReplyStatus::kGenerating;
  stale.worker = "someone else";
  CHECK(bot.store->claim_replies(stale).value().empty());
  held.release();
  bot.chat.expect("answer");
}

TEST_CASE("assistant: an admin's runtime settings change the policy and the role at once") {
  llmassist::testing::MockLlmServer llm;
  Bot bot;
  bot.start({}, echoing_provider(llm));
  bot.chat.say("first");
  bot.chat.expect("Answer to: first");
  CHECK(llm.last_body()["messages"].front()["content"] == "You are a support assistant.");

  // Another process (the admin server) writes the settings; the running bot takes them up.
  REQUIRE(set_runtime_setting(*bot.store, RuntimeSetting::kPolicy, "review", "operator:root").ok());
  REQUIRE(set_runtime_setting(*bot.store, RuntimeSetting::kSystemPrompt, "You sell shoes.",
                              "operator:root")
              .ok());
  // Taken up with the next question this process stores: no rescan needs to come between.
  bot.chat.say("second");
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kPending).size() == 1; }));
  CHECK(llm.last_body()["messages"].front()["content"] == "You sell shoes.");

  // Back to the configured auto policy; the pending draft (its chat's head) still waits for a
  // decision, and the next question is answered at once after it.
  REQUIRE(
      set_runtime_setting(*bot.store, RuntimeSetting::kPolicy, std::nullopt, "operator:root").ok());
  bot.chat.say("third");
  ReplyChange approve;
  approve.from = ReplyStatus::kPending;
  approve.to = ReplyStatus::kApproved;
  approve.actor = "operator:alice";
  approve.audit_action = "approve";
  REQUIRE(bot.store->transition_reply(bot.replies(ReplyStatus::kPending).front().id, approve).ok());
  bot.chat.expect("Answer to: second");
  bot.chat.expect("Answer to: third");
}

// A thousand chats asking at once are all drafted at once with the default options: the mock
// LLM holds every request until it has a thousand in hand. (With a limit of 64 drafts it would
// never see more than 64.) Provider rate limits are the providers' own (max_in_flight).
TEST_CASE("assistant: with the default options, a thousand chats' questions are drafted at once") {
  constexpr int kChats = 1000;
  llmassist::testing::MockLlmServer llm;
  llmassist::testing::MockLlmServer::Behavior held;
  held.hold_until_in_flight = kChats;
  held.hold_timeout = 30s;
  held.tokens = {"answer"};
  llm.set(held);
  llmassist::testing::MockTelegramServer telegram;
  Bot bot;
  bot.start({}, openai_provider(llm), unpaced_telegram(telegram));
  std::vector<std::pair<std::int64_t, std::string>> updates;
  for (int i = 0; i < kChats; ++i) {
    updates.emplace_back(i + 1, llmassist::testing::MockTelegramServer::text_update(
                                    i + 1, "Where is my order?", 900000 + i));
  }
  telegram.push_updates(std::move(updates));
  REQUIRE(telegram.wait_for_calls("sendMessage", kChats, 60s));
  CHECK(llm.max_in_flight() == kChats);
  CHECK(llm.requests() == kChats);
  CHECK(bot.eventually([&] { return telegram.count_calls("sendMessage", 200) == kChats; }));
}

// ---- the security review's findings --------------------------------------------------------

namespace {

constexpr std::int64_t kOperatorsChat = -100500;

// Someone in the operators' group: `id` is their Telegram user id.
nlohmann::json group_member(std::int64_t id, const std::string& username) {
  return {{"id", id}, {"is_bot", false}, {"first_name", username}, {"username", username}};
}

const nlohmann::json kGroup = {{"id", kOperatorsChat}, {"type", "supergroup"}, {"title", "ops"}};

// `who` pressing a button under the bot's message `message_id` in the operators' chat.
std::string button_press(std::int64_t update_id, const nlohmann::json& who, std::int64_t message_id,
                         const std::string& data) {
  return nlohmann::json{
      {"update_id", update_id},
      {"callback_query",
       {{"id", "cb" + std::to_string(update_id)},
        {"from", who},
        {"data", data},
        {"message",
         {{"message_id", message_id}, {"date", 1700000000}, {"chat", kGroup}, {"text", "draft"}}}}}}
      .dump();
}

// `who` replying with `text` to the bot's message `message_id` in the operators' chat.
std::string group_reply(std::int64_t update_id, const nlohmann::json& who, std::int64_t message_id,
                        const std::string& text) {
  return nlohmann::json{
      {"update_id", update_id},
      {"message",
       {{"message_id", update_id + 9000},
        {"date", 1700000000},
        {"from", who},
        {"chat", kGroup},
        {"text", text},
        {"reply_to_message",
         {{"message_id", message_id}, {"date", 1700000000}, {"chat", kGroup}, {"text", "draft"}}}}}}
      .dump();
}

// The texts the bot sent to `chat`.
std::vector<std::string> sent_to(const MockTelegramServer& telegram, std::int64_t chat) {
  std::vector<std::string> out;
  for (const auto& c : telegram.calls("sendMessage")) {
    if (c.status == 200 && c.params.value("chat_id", nlohmann::json()) == chat) {
      out.push_back(c.params.value("text", ""));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("assistant: in the operators' chat only the listed operators decide, as telegram:<id>") {
  llmassist::testing::MockLlmServer llm;
  MockTelegramServer telegram;
  auto logger = std::make_shared<llmassist::testing::CapturingLogger>();
  Bot bot;
  AssistantOptions o;
  o.policy = ModerationPolicy::kReview;
  o.operator_chat_id = std::to_string(kOperatorsChat);
  o.operators = {"42"};
  o.texts.human_button.clear();
  bot.moderation = true;
  bot.logger = logger;
  bot.start(o, echoing_provider(llm), unpaced_telegram(telegram));
  telegram.push_update(1, MockTelegramServer::text_update(1, "Can I get a refund?", 700));
  REQUIRE(bot.eventually([&] { return !sent_to(telegram, kOperatorsChat).empty(); }));
  const Reply draft = bot.replies(ReplyStatus::kPending).at(0);
  std::int64_t post = 0;
  for (std::int64_t id = 100; id < 200 && post == 0; ++id) {
    if (telegram.message_text(id).find("Draft #") != std::string::npos) post = id;
  }
  REQUIRE(post > 0);
  const std::string approve = "llmassist:approve:" + std::to_string(draft.id);

  // A stranger in the group, with the name of a web account, presses Approve and replies.
  const auto stranger = group_member(666, "root");
  telegram.push_update(2, button_press(2, stranger, post, approve));
  REQUIRE(telegram.wait_for_calls("answerCallbackQuery", 1));
  CHECK(telegram.calls("answerCallbackQuery")[0].params.value("text", "") == o.texts.not_operator);
  telegram.push_update(3, group_reply(3, stranger, post, "Sure, here is all your money"));
  REQUIRE(bot.eventually([&] { return sent_to(telegram, kOperatorsChat).size() == 2; }));
  CHECK(sent_to(telegram, kOperatorsChat).back().find(o.texts.not_operator) != std::string::npos);
  CHECK(bot.store->get_reply(draft.id).value().status == ReplyStatus::kPending);
  CHECK(bot.store->list_audit({.reply_id = draft.id}).value().empty());
  CHECK(logger->contains("666"));

  // The operator, whatever name they go by, decides as telegram:42.
  telegram.push_update(4, button_press(4, group_member(42, "root"), post, approve));
  REQUIRE(bot.eventually(
      [&] { return bot.store->get_reply(draft.id).value().status != ReplyStatus::kPending; }));
  int approvals = 0;
  for (const auto& event : bot.store->list_audit({.reply_id = draft.id}).value()) {
    CHECK(event.actor.find("root") == std::string::npos);
    if (event.action == "approve") {
      ++approvals;
      CHECK(event.actor == "telegram:42");
    }
  }
  CHECK(approvals == 1);
  REQUIRE(bot.eventually([&] { return sent_to(telegram, 700).size() >= 2; }));
  for (const auto& text : sent_to(telegram, 700))
    CHECK(text.find("all your money") == std::string::npos);

  // Without operators, an operators' chat is refused at creation.
  AssistantOptions none;
  none.operator_chat_id = std::to_string(kOperatorsChat);
  AssistantParts parts;
  parts.transport = bot.transport;
  parts.store = bot.store;
  parts.llm = echoing_provider(llm);
  parts.memory =
      std::shared_ptr<MemoryManager>(make_window_memory(bot.store, {}).value().release());
  parts.moderation = make_moderation_queue(bot.store);
  const auto made = Assistant::create(parts, none);
  REQUIRE(!made.ok());
  CHECK(made.status().message().find("operators") != std::string::npos);
  bot.assistant->stop(1s);
}

TEST_CASE("assistant: a user over the rate limit has messages stored, not answered, told once") {
  llmassist::testing::MockLlmServer llm;
  MockTelegramServer telegram;
  Bot bot;
  AssistantOptions o;
  o.texts.human_button.clear();
  o.rate_limit = {.messages = 20, .per = 60s};
  bot.start(o, echoing_provider(llm), unpaced_telegram(telegram));
  std::vector<std::pair<std::int64_t, std::string>> burst;
  for (int i = 1; i <= 25; ++i) {
    burst.emplace_back(i, MockTelegramServer::text_update(i, "question " + std::to_string(i), 700));
  }
  burst.emplace_back(26, MockTelegramServer::text_update(26, "from someone else", 701));
  telegram.push_updates(std::move(burst));
  REQUIRE(bot.eventually([&] { return bot.replies(ReplyStatus::kSent).size() == 21; }, 20s));
  const ChatId chat = bot.store->find_chat("telegram", "700").value().id;
  std::size_t questions = 0;
  for (const auto& m : bot.store->chat_history(chat, {.limit = 200}).value()) {
    if (m.role == Role::kUser) ++questions;
  }
  CHECK(questions == 25);  // nothing lost
  CHECK(bot.store->list_replies({.chat_id = chat}).value().size() == 20);
  // Stopped (drafts and sends in flight finished first): what the model and the users got is
  // all they get.
  bot.assistant->stop(1s);
  CHECK(llm.requests() == 21);
  const auto to_user = sent_to(telegram, 700);
  CHECK(std::count(to_user.begin(), to_user.end(), o.texts.slow_down) == 1);
  CHECK(sent_to(telegram, 701).size() == 1);  // another user is not held back
}

TEST_CASE("assistant: with retention_days, old messages go at start, recent ones stay") {
  auto clock = std::make_shared<llmassist::testing::ManualClock>();
  Bot bot(clock);
  const Chat chat = bot.store->upsert_chat({"console", "local", "ann", ""}).value();
  REQUIRE(bot.store->append_message({.chat_id = chat.id, .role = Role::kUser, .text = "old"}).ok());
  clock->advance(std::chrono::hours(24 * 31));
  REQUIRE(bot.store->append_message({.chat_id = chat.id, .role = Role::kUser, .text = "new"}).ok());
  AssistantOptions o;
  o.retention_days = 30;
  o.clock = clock;
  bot.start(o);
  REQUIRE(bot.eventually([&] { return bot.store->chat_history(chat.id, {}).value().size() == 1; }));
  CHECK(bot.store->chat_history(chat.id, {}).value().front().text == "new");
  bot.assistant->stop(1s);
}

TEST_CASE(
    "assistant: without rescans, chats that waited for a free slot are answered when one frees") {
  llmassist::testing::MockLlmServer llm;
  llmassist::testing::MockTelegramServer telegram;
  Bot bot;
  AssistantOptions o;
  o.texts.human_button.clear();
  o.rescan_interval = std::chrono::hours(1);  // only the freed slots can take the rest on
  SUBCASE("two drafts at a time") { o.max_concurrent_drafts = 2; }
  SUBCASE("two sends at a time") { o.max_concurrent_sends = 2; }
  bot.start(o, echoing_provider(llm), unpaced_telegram(telegram));
  constexpr int kChats = 12;
  std::vector<std::pair<std::int64_t, std::string>> updates;
  for (int c = 0; c < kChats; ++c) {
    updates.emplace_back(
        c + 1, llmassist::testing::MockTelegramServer::text_update(c + 1, "question", 800 + c));
  }
  telegram.push_updates(std::move(updates));
  // Every chat is answered, though each step's end carries on only its own chat (the store
  // records a send after Telegram has accepted it).
  REQUIRE(bot.eventually([&] { return telegram.count_calls("sendMessage", 200) == kChats; }));
  REQUIRE(bot.eventually(
      [&] { return bot.replies(ReplyStatus::kSent).size() == static_cast<std::size_t>(kChats); }));
  CHECK(llm.requests() == kChats);
}
