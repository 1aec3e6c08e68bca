// Three llmassist-bot processes on one PostgreSQL schema, in webhook mode behind the tests' load
// balancer (support/webhook_balancer.h), each receiving, drafting and sending, while one of them
// at a time is killed with SIGKILL at random moments and started again.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "llmassist/postgres/postgres_store.h"
#include "support/child_process.h"
#include "support/free_port.h"
#include "support/mock_llm_server.h"
#include "support/mock_telegram_server.h"
#include "support/temp_dir.h"
#include "support/test_postgres.h"
#include "support/webhook_balancer.h"
#include "support/wire_answers.h"

#ifdef LLMASSIST_BOT_BINARY

namespace llmassist::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPasswordVariable = "LLMASSIST_TEST_DB_PASSWORD";
constexpr const char* kSecret = "the-balancer-secret-0123456789";
constexpr const char* kWebhookPath = "/telegram/webhook";

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// N bots on one schema, bot i with its own webhook port, instance "bot-<i>", Bot API root
// api_url("/bot-<i>") (its calls recorded with via "bot-<i>") and model "mock-model-<i>" (its
// prompts told apart at the mock LLM). Killed when the test ends early.
struct Bots {
  Bots(int n, const std::string& schema, const MockTelegramServer& telegram,
       const MockLlmServer& llm) {
    auto& pg = test_postgres();
    for (int i = 0; i < n; ++i) {
      const std::string name = "bot-" + std::to_string(i);
      const int port = free_port();
      webhooks.push_back("http://127.0.0.1:" + std::to_string(port) + kWebhookPath);
      nlohmann::json telegram_section = telegram.bot_config_section();
      telegram_section["api_url"] = telegram.api_url("/" + name);
      telegram_section["mode"] = "webhook";
      telegram_section["webhook"] = {{"listen", "127.0.0.1:" + std::to_string(port)},
                                     {"path", kWebhookPath},
                                     {"secret", kSecret}};
      const nlohmann::json config = {
          {"database", pg.url},
          {"database_password_env", kPasswordVariable},
          {"database_schema", schema},
          {"telegram", telegram_section},
          {"assistant", {{"instance", name}, {"texts", {{"human_button", ""}}}}},
          {"providers", nlohmann::json::array({{{"type", "openai"},
                                                {"name", "mock"},
                                                {"base_url", llm.openai_url()},
                                                {"model", "mock-model-" + std::to_string(i)},
                                                {"retries", 0}}})}};
      configs.push_back(dir.file(name + ".json"));
      logs.push_back(dir.file(name + ".log"));
      std::ofstream(configs.back()) << config.dump(2);
      pids.push_back(-1);
      start(i);
    }
  }
  ~Bots() {
    for (pid_t pid : pids) {
      if (pid > 0 && ::kill(pid, 0) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  }
  void start(int i) {
    pids[i] = spawn({LLMASSIST_BOT_BINARY, "--config", configs[i]}, logs[i],
                    {std::string(kPasswordVariable) + "=" + test_postgres().password});
    REQUIRE(pids[i] > 0);
  }
  // Every bot's log, for a failure's message.
  std::string all_logs() const {
    std::string out;
    for (const auto& log : logs) out += "--- " + log + "\n" + read_all(log);
    return out;
  }

  TempDir dir;
  std::vector<std::string> webhooks;
  std::vector<std::string> configs;
  std::vector<std::string> logs;
  std::vector<pid_t> pids;
};

// The texts Telegram accepted for each chat, in order.
std::map<std::int64_t, std::vector<std::string>> sent_by_chat(const MockTelegramServer& telegram) {
  std::map<std::int64_t, std::vector<std::string>> out;
  for (const auto& c : telegram.calls("sendMessage")) {
    if (c.status != 200) continue;
    out[std::stoll(c.params.value("chat_id", nlohmann::json()).dump())].push_back(
        c.params.value("text", ""));
  }
  return out;
}

TEST_CASE(
    "three bots on one PostgreSQL behind a webhook balancer, one at a time killed with SIGKILL "
    "at random moments: every question answered once, in order per chat, by all three") {
  auto& pg = test_postgres();
  const std::string schema = pg.fresh_schema();
  MockTelegramServer telegram;
  MockLlmServer llm;
  llm.set(MockLlmServer::echoing(20ms));
  constexpr int kBots = 3;
  constexpr int kChats = 100;
  constexpr int kPerChat = 10;  // 1,000 questions
  constexpr std::int64_t kFirstChat = 7000;
  Bots bots(kBots, schema, telegram, llm);
  WebhookBalancer balancer({.backends = bots.webhooks, .secret = kSecret});
  std::mt19937 rng(20261206);

  // Whether every chat has the answer to its question of `round` (and so of every earlier one:
  // a chat's answers come in order).
  auto answered_upto = [&](int round) {
    const auto sent = sent_by_chat(telegram);
    for (int c = 0; c < kChats; ++c) {
      const std::string answer = "Answer to: q-" + std::to_string(c) + "-" + std::to_string(round);
      auto it = sent.find(kFirstChat + c);
      if (it == sent.end() ||
          std::find(it->second.begin(), it->second.end(), answer) == it->second.end()) {
        return false;
      }
    }
    return true;
  };
  // When a wait runs out: which chats lack which answer, and their replies as the store has
  // them (status, claim, attempts), besides the bots' logs.
  auto what_is_missing = [&](int round) {
    std::string out;
    const auto sent = sent_by_chat(telegram);
    PostgresStoreOptions o;
    o.connect = pg.connect_options(schema);
    o.connect.logger = null_logger();
    auto store = open_postgres_store(o);
    int shown = 0;
    for (int c = 0; c < kChats && shown < 5; ++c) {
      const std::string answer = "Answer to: q-" + std::to_string(c) + "-" + std::to_string(round);
      auto it = sent.find(kFirstChat + c);
      if (it != sent.end() &&
          std::find(it->second.begin(), it->second.end(), answer) != it->second.end()) {
        continue;
      }
      ++shown;
      out += fmt::format("chat {} lacks \"{}\"; the balancer delivered {} updates, {} failovers\n",
                         kFirstChat + c, answer, balancer.delivered(), balancer.failovers());
      if (!store.ok()) continue;
      auto chat = (*store)->find_chat("telegram", std::to_string(kFirstChat + c));
      if (!chat.ok()) {
        out += "  (no such chat in the store)\n";
        continue;
      }
      auto replies = (*store)->list_replies({.chat_id = chat->id, .limit = 50});
      if (!replies.ok()) continue;
      for (const Reply& r : *replies) {
        out += fmt::format("  reply {} {} claimed by '{}' attempts {}/{} error '{}'\n", r.id,
                           to_string(r.status), r.claimed_by, r.generation_attempts,
                           r.send_attempts, r.error);
      }
    }
    return out + bots.all_logs();
  };
  int kills = 0;
  int last_kill_round = -1;
  std::int64_t update_id = 1;
  for (int round = 0; round < kPerChat; ++round) {
    std::vector<std::pair<std::int64_t, std::string>> updates;
    for (int c = 0; c < kChats; ++c) {
      const std::string q = "q-" + std::to_string(c) + "-" + std::to_string(round);
      updates.emplace_back(kFirstChat + c,
                           MockTelegramServer::text_update(update_id++, q, kFirstChat + c));
    }
    balancer.deliver(std::move(updates));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
    if (round % 2 == 1) {
      // Random crashes, not a crash loop (see bot_e2e_test.cpp: three kills with the same
      // drafts in flight make the crash-loop guard give them up, rightly): every question
      // asked before the last kill is answered before the next one. The first time: some
      // answer has gone out.
      if (last_kill_round < 0) {
        REQUIRE_MESSAGE(eventually([&] { return telegram.count_calls("sendMessage", 200) > 0; }),
                        bots.all_logs());
      } else {
        REQUIRE_MESSAGE(eventually([&] { return answered_upto(last_kill_round); }, 60s),
                        what_is_missing(last_kill_round));
      }
      last_kill_round = round;
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
      const int victim = static_cast<int>(rng() % kBots);
      ::kill(bots.pids[victim], SIGKILL);
      CHECK(wait_exit(bots.pids[victim]) == 128 + SIGKILL);
      ++kills;
      bots.start(victim);  // the same instance: it takes over its own claims at once
    }
  }
  REQUIRE_MESSAGE(eventually([&] { return answered_upto(kPerChat - 1); }, 60s),
                  what_is_missing(kPerChat - 1));
  CHECK(balancer.wait_idle(10s));
  for (int i = 0; i < kBots; ++i) {
    ::kill(bots.pids[i], SIGTERM);
    CHECK(wait_exit(bots.pids[i]) == 0);
    bots.pids[i] = -1;
  }

  // In the store: every question has exactly one sent answer, and no reply is left behind.
  PostgresStoreOptions options;
  options.connect = pg.connect_options(schema);
  options.connect.logger = null_logger();
  auto store = open_postgres_store(options);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  std::map<MessageId, int> sent_per_question;
  for (ReplyId after = 0;;) {
    auto page =
        (*store)->list_replies({.status = ReplyStatus::kSent, .after_id = after, .limit = 1000});
    REQUIRE(page.ok());
    if (page->empty()) break;
    for (const auto& r : *page) ++sent_per_question[r.question_id];
    after = page->back().id;
  }
  CHECK(sent_per_question.size() == static_cast<std::size_t>(kChats * kPerChat));
  for (const auto& [question, n] : sent_per_question) CHECK(n == 1);
  for (auto s : {ReplyStatus::kNew, ReplyStatus::kGenerating, ReplyStatus::kPending,
                 ReplyStatus::kApproved, ReplyStatus::kFailed}) {
    CHECK((*store)->list_replies({.status = s}).value().empty());
  }

  // On the wire: every chat's answers in its order. A kill between Telegram's acceptance of a
  // message and the store's record of it repeats that one answer after the restart, right after
  // itself (the chat's next waits for it); at most one per chat and kill.
  int repeats = 0;
  const auto sent = sent_by_chat(telegram);
  for (int c = 0; c < kChats; ++c) {
    auto it = sent.find(kFirstChat + c);
    REQUIRE(it != sent.end());
    const auto unique = without_adjacent_repeats(it->second, repeats);
    REQUIRE(unique.size() == static_cast<std::size_t>(kPerChat));
    for (int round = 0; round < kPerChat; ++round) {
      CHECK(unique[round] == "Answer to: q-" + std::to_string(c) + "-" + std::to_string(round));
    }
  }
  CHECK(repeats <= kills * kChats);

  // Each bot received (the balancer's 200s from its webhook), drafted (prompts with its model
  // reached the LLM) and sent (answers Telegram accepted through its API root).
  const auto received = balancer.delivered_by_backend();
  std::map<std::string, int> drafted;
  for (const auto& body : llm.bodies("/v1/chat/completions")) ++drafted[body.value("model", "")];
  std::map<std::string, int> answered;
  for (const auto& c : telegram.calls("sendMessage")) {
    if (c.status == 200) ++answered[c.via];
  }
  for (int i = 0; i < kBots; ++i) {
    INFO("bot-" << i);
    CHECK(received[i] > 0);
    CHECK(drafted["mock-model-" + std::to_string(i)] > 0);
    CHECK(answered["bot-" + std::to_string(i)] > 0);
  }
  MESSAGE(kills << " kills, " << repeats << " answers repeated on the wire after a kill, "
                << balancer.failovers() << " failovers; updates taken per bot " << received[0]
                << "/" << received[1] << "/" << received[2] << ", prompts "
                << drafted["mock-model-0"] << "/" << drafted["mock-model-1"] << "/"
                << drafted["mock-model-2"] << ", answers sent " << answered["bot-0"] << "/"
                << answered["bot-1"] << "/" << answered["bot-2"]);
}

}  // namespace
}  // namespace llmassist::testing

#endif  // LLMASSIST_BOT_BINARY
