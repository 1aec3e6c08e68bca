// BotBuilder: each part a program gives replaces the one the config would make, on real parts
// (a SQLite file the test opened, an OpenAI-compatible provider against the mock LLM server, a
// window memory of the test's, the console transport over pipes); and the minimal bot example,
// run as a program.
#include "llmassist/bot/builder.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "llmassist/console/console_transport.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/child_process.h"
#include "support/console_chat.h"
#include "support/mock_llm_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::ConsoleChat;
using llmassist::testing::MockLlmServer;
using llmassist::testing::TempDir;

namespace {

std::shared_ptr<MessageStore> open_store(const std::string& path) {
  SqliteStoreOptions so;
  so.path = path;
  so.logger = null_logger();
  so.sync = SqliteSync::kNormal;
  return std::shared_ptr<MessageStore>(open_sqlite_store(so).value().release());
}

std::shared_ptr<LlmProvider> openai(const MockLlmServer& llm) {
  OpenAiProviderOptions o;
  o.name = "mock";
  o.base_url = llm.openai_url();
  o.model = "test-model";
  o.logger = null_logger();
  return std::shared_ptr<LlmProvider>(make_openai_provider(o).value().release());
}

// The messages of the console chat in `store`, a line each, "role: text", oldest first.
std::string console_history(MessageStore& store) {
  const auto chat = store.find_chat("console", "local").value();
  auto messages = store.chat_history(chat.id, {}).value();
  std::string out;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    out += std::string(to_string(it->role)) + ": " + it->text + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("builder: the store, provider, memory and transport given replace the config's") {
  TempDir dir;
  MockLlmServer llm;
  llm.set({.tokens = {"Shoes ", "are ", "in ", "aisle ", "4."}});
  ConsoleChat chat;
  auto store = open_store(dir.file("given.db"));
  auto memory = std::shared_ptr<MemoryManager>(
      make_window_memory(store, {.system_prompt = "You sell shoes."}).value().release());

  BotConfig config;
  config.database = dir.file("config.db");  // not to be opened: the store is given
  config.memory.system_prompt = "You are the config's assistant.";
  auto bot = BotBuilder(config)
                 .store(store)
                 .provider(openai(llm))
                 .memory(memory)
                 .transport(make_console_transport(chat.options()))
                 .logger(null_logger())
                 .build();
  REQUIRE(bot.ok());
  CHECK((*bot)->description().find("providers: mock") != std::string::npos);
  REQUIRE((*bot)->start().ok());
  chat.say("Where are the shoes?");
  chat.expect("Shoes are in aisle 4.");
  REQUIRE((*bot)->wait_idle(10s));
  (*bot)->stop();

  // The model got the given memory's prompt, and the dialog is in the given store.
  CHECK(llm.last_body()["messages"].front()["content"] == "You sell shoes.");
  CHECK(llm.last_body()["model"] == "test-model");
  CHECK(console_history(*store) ==
        "user: Where are the shoes?\nassistant: Shoes are in aisle 4.\n");
  CHECK_FALSE(std::filesystem::exists(config.database));
}

TEST_CASE("builder: the parts not given are the config's, and a builder builds once") {
  TempDir dir;
  ConsoleChat chat;
  BotConfig config;
  config.database = dir.file("bot.db");
  BotBuilder builder(config);
  builder.transport(make_console_transport(chat.options())).logger(null_logger());
  auto bot = builder.build();
  REQUIRE(bot.ok());
  // The config's chain (the shipped knowledge base) on the config's database.
  CHECK((*bot)->description().find("providers: knowledge_base") != std::string::npos);
  CHECK((*bot)->description().find(config.database) != std::string::npos);
  REQUIRE((*bot)->start().ok());
  chat.say("How do I connect the bot to Telegram?");
  chat.expect("BOT_TOKEN");
  REQUIRE((*bot)->wait_idle(10s));
  (*bot)->stop();
  CHECK(console_history(*open_store(config.database))
            .starts_with("user: How do I connect the bot to Telegram?\nassistant: "));

  auto again = builder.build();
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("builder: a database that cannot be opened is the build's error") {
  BotConfig config;
  config.database = "/nonexistent-folder/bot.db";
  auto bot = BotBuilder(config).logger(null_logger()).build();
  REQUIRE_FALSE(bot.ok());
  CHECK(bot.status().message().find("/nonexistent-folder/bot.db") != std::string::npos);
}

#ifdef LLMASSIST_MINIMAL_BOT_BINARY
TEST_CASE("examples: the minimal bot answers on the console with its own provider") {
  TempDir dir;
  { std::ofstream(dir.file("input.txt")) << "Where is my order?\nAnd my refund?\n"; }
  const std::string log = dir.file("out.log");
  // Run in the temporary folder (the bot stores in ./llmassist.db), standard input from the file.
  CHECK(llmassist::testing::run_in_folder(dir.path().string(), LLMASSIST_MINIMAL_BOT_BINARY, "",
                                          "input.txt", log) == 0);
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  INFO(out.str());
  CHECK(out.str().find("You asked: Where is my order?") != std::string::npos);
  CHECK(out.str().find("You asked: And my refund?") != std::string::npos);
  // Both questions and both answers are stored (the second question may come in before the first
  // answer goes out).
  const std::string history = console_history(*open_store(dir.file("llmassist.db")));
  for (const char* line :
       {"user: Where is my order?\n", "user: And my refund?\n",
        "assistant: You asked: Where is my order?\n", "assistant: You asked: And my refund?\n"}) {
    CHECK(history.find(line) != std::string::npos);
  }
  CHECK(std::count(history.begin(), history.end(), '\n') == 4);
}
#endif
