// The Assistant on the PostgreSQL store, with an operator working through another store object
// (as llmassist-admin on another host does): the assistant takes up the operator's decision
// when PostgreSQL notifies it, not at its next rescan, which is set an hour away here.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "llmassist/assistant.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/providers/knowledge_base_provider.h"
#include "support/console_chat.h"
#include "support/test_postgres.h"

namespace llmassist {
namespace {

using namespace std::chrono_literals;
using testing::test_postgres;

std::shared_ptr<MessageStore> open_store(const std::string& schema) {
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(schema);
  o.connect.logger = null_logger();
  auto store = open_postgres_store(o);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  return std::shared_ptr<MessageStore>(std::move(store).value().release());
}

// An assistant on `store` answering the console `chat` from the shipped knowledge base.
std::unique_ptr<Assistant> start_assistant(const std::shared_ptr<MessageStore>& store,
                                           testing::ConsoleChat& chat, AssistantOptions options,
                                           bool moderation = false) {
  KnowledgeBaseOptions kb;
  kb.logger = null_logger();
  AssistantParts parts;
  parts.transport = std::shared_ptr<ChatTransport>(make_console_transport(chat.options()));
  parts.store = store;
  parts.llm = std::shared_ptr<LlmProvider>(make_knowledge_base_provider(kb).value().release());
  parts.memory = std::shared_ptr<MemoryManager>(make_window_memory(store, {}).value().release());
  if (moderation) parts.moderation = make_moderation_queue(store);
  options.logger = null_logger();
  auto assistant = Assistant::create(std::move(parts), options).value();
  REQUIRE(assistant->start().ok());
  return assistant;
}

template <typename P>
bool eventually(P predicate, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

TEST_CASE("Assistant on PostgreSQL: a message PostgreSQL could not hold is stored all the same") {
  // A NUL character and a broken byte, as a channel may let through: stored with U+FFFD in
  // their place and answered, and the message after it is answered too.
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_store(schema);
  testing::ConsoleChat chat;
  auto assistant = start_assistant(store, chat, {});
  chat.say(std::string("reset my pass\0word \xff please", 27));
  chat.say("and how do I connect the bot to Telegram?");
  REQUIRE(eventually(
      [&] { return store->list_replies({.status = ReplyStatus::kSent}).value().size() == 2; }));
  const ChatId id = store->find_chat("console", "local").value().id;
  auto history = store->chat_history(id, {}).value();
  REQUIRE(history.size() == 4);
  CHECK(history.back().text == "reset my pass\xEF\xBF\xBDword \xEF\xBF\xBD please");
  assistant->stop();
}

TEST_CASE("Assistant on PostgreSQL: an approval made elsewhere is sent on its notification") {
  const std::string schema = test_postgres().fresh_schema();
  auto bot_store = open_store(schema);
  auto operator_store = open_store(schema);
  testing::ConsoleChat chat;
  AssistantOptions options;
  options.policy = ModerationPolicy::kReview;
  options.rescan_interval = std::chrono::hours(1);
  auto assistant = start_assistant(bot_store, chat, options, /*moderation=*/true);

  chat.say("How do I reset my password?");
  // The draft waits for a decision.
  REQUIRE(eventually([&] {
    return !operator_store->list_replies({.status = ReplyStatus::kPending}).value().empty();
  }));
  const Reply draft = operator_store->list_replies({.status = ReplyStatus::kPending}).value()[0];
  auto queue = make_moderation_queue(operator_store);
  const auto decided_at = std::chrono::steady_clock::now();
  REQUIRE(queue->edit(draft.id, "alice", "Open Settings, then Security.").ok());
  // Within expect()'s 10 s, with the next rescan an hour away: the notification woke it.
  chat.expect("Open Settings, then Security.");
  MESSAGE("sent " << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - decided_at)
                         .count()
                  << " ms after the decision");
  assistant->stop();
}

}  // namespace
}  // namespace llmassist
