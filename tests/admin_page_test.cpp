// The admin page in a real browser: a Bot in review policy against the mock Telegram and LLM
// servers, the AdminServer over the bot's database, and tests/web/admin_page.mjs driving Debian's
// Chromium through it (sign in, approve, edit, reject, the live queue, text shown as text, the
// memory a draft was written with, the dashboard's charts). Afterwards the mock Telegram server
// must have received what was decided.
//
// It needs node, Chromium and tests/web/node_modules (`npm ci --prefix tests/web`); without them
// it says what is missing and passes, unless LLMASSIST_REQUIRE_BROWSER=1 (CI) makes that a
// failure. SCREENSHOT_DIR, when set, receives admin-queue.png and admin-dashboard.png
// (scripts/screenshots.sh).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "llmassist/account_store.h"
#include "llmassist/admin/admin_server.h"
#include "llmassist/bot/bot.h"
#include "llmassist/bot/bot_config.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/memory_manager.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/child_process.h"
#include "support/mock_llm_server.h"
#include "support/mock_telegram_server.h"
#include "support/temp_dir.h"

#if defined(LLMASSIST_WEB_TESTS_DIR)
#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/runtime_settings.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::eventually;
using llmassist::testing::ManualClock;
using llmassist::testing::MockLlmServer;
using llmassist::testing::MockTelegramServer;

namespace {

const std::string kWebTests = LLMASSIST_WEB_TESTS_DIR;
const std::string kPassword = "correct horse battery";

// What the browser test runs with, or what is missing.
struct BrowserTools {
  std::string node;
  std::string chromium;
  std::string missing;
};

std::string on_path(const std::string& program) {
  std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "");
  for (std::string dir; std::getline(path, dir, ':');) {
    const auto candidate = std::filesystem::path(dir) / program;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

BrowserTools find_browser_tools() {
  BrowserTools tools;
  tools.node = on_path("node");
  const char* chromium = std::getenv("CHROMIUM");
  tools.chromium = chromium ? chromium : "/usr/bin/chromium";
  if (tools.node.empty()) tools.missing += "node is not on PATH; ";
  if (::access(tools.chromium.c_str(), X_OK) != 0)
    tools.missing += tools.chromium + " is missing; ";
  if (!std::filesystem::exists(kWebTests + "/node_modules/playwright-core")) {
    tools.missing += "tests/web/node_modules is missing (npm ci --prefix tests/web); ";
  }
  return tools;
}

bool browser_required() {
  const char* required = std::getenv("LLMASSIST_REQUIRE_BROWSER");
  return required != nullptr && std::string(required) == "1";
}

std::unique_ptr<MessageStore> open_store(const std::string& db, std::shared_ptr<Clock> clock = {}) {
  SqliteStoreOptions o;
  o.path = db;
  o.clock = std::move(clock);
  o.logger = null_logger();
  auto store = open_sqlite_store(o);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  return std::move(store).value();
}

std::unique_ptr<AccountStore> open_account_store(const std::string& db) {
  SqliteAccountStoreOptions o;
  o.path = db;
  o.password_ops = 1;  // the cheapest hashes: this test is not about them
  o.password_memory = std::size_t{1} << 20;
  o.logger = null_logger();
  auto accounts = open_sqlite_account_store(o);
  REQUIRE_MESSAGE(accounts.ok(), accounts.status().to_string());
  return std::move(accounts).value();
}

// What a semantic memory put into the prompt of kWaiting's draft: an earlier message of the
// user's (with markup, which must show as text) and a knowledge passage.
const std::string kRecalled = "I moved to Zürich last month; <i>Switzerland</i> is home now.";
const std::string kPassageSource = "shipping.md";
const std::string kPassageHeading = "Shipping › Switzerland";

// Two weeks of earlier conversations, written with a clock set to each day before the bot
// starts, so that the statistics have days to draw.
void seed_earlier_days(const std::string& db) {
  static const char* const kNames[] = {
      "Lena Vogel",    "Jonas Weber", "Priya Nair", "Carlos Ruiz", "Hannah Fischer",
      "Mehmet Yilmaz", "Sofia Rossi", "Ben Carter", "Julia Novak", "Omar Haddad"};
  static const char* const kQuestions[] = {
      "Where can I find my invoice?", "Do you ship to Austria?",
      "How long does a refund take?", "Can I change the size after ordering?",
      "Is the jacket waterproof?",    "My discount code does not work."};
  auto clock = std::make_shared<ManualClock>();
  const auto midnight = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
  auto store = open_store(db, clock);
  for (int day = 13; day >= 1; --day) {
    const int users = 3 + (day * 5) % 8;
    for (int u = 0; u < users; ++u) {
      clock->set(midnight - std::chrono::days(day) + std::chrono::hours(8) +
                 std::chrono::minutes(47 * u));
      const auto chat = store->upsert_chat({"telegram", std::to_string(7000 + u), kNames[u], ""});
      REQUIRE(chat.ok());
      for (int x = 0; x <= (day + u) % 3; ++x) {
        const std::string question = kQuestions[(day + u + x) % 6];
        REQUIRE(store->append_message({chat->id, 0, Role::kUser, question, "user", ""}).ok());
        clock->advance(90s);
        REQUIRE(store
                    ->append_message(
                        {chat->id, 0, Role::kAssistant, "Happy to help with that.", "", ""})
                    .ok());
      }
    }
  }
}

// The questions of this run, each from its own chat, with the draft the model gives.
struct Question {
  std::int64_t chat;
  MockTelegramServer::Person from;
  std::string text;
  std::string draft;
};

const Question kApprove{
    5001,
    {"Maria", "Keller", "mkeller"},
    "Hi! I ordered a blue rain jacket last Tuesday (order 10452). When will it arrive?",
    "Your order 10452 left our warehouse yesterday. DHL usually delivers within "
    "2–3 working days, so it should arrive by Friday. The tracking link is in "
    "your confirmation email."};
const Question kEdit{5002,
                     {"Tom", "Becker", ""},
                     "Can I return shoes that I already wore once outside?",
                     "Unfortunately worn items cannot be returned."};
const std::string kEditText =
    "Yes: within 30 days, as long as they are clean and undamaged. Print the return label from "
    "your account page.";
const Question kReject{5003,
                       {"Aiko", "Tanaka", "aiko_t"},
                       "How do I change the delivery address of an order that has already shipped?",
                       "Please contact us."};
const Question kLiteral{5004,
                        {"Sam", "", "sam_qa"},
                        "<img src=x onerror=alert(1)>",
                        "I am not sure what you mean. Could you describe your question?"};
const Question kWaiting{5005,
                        {"Lucas", "Martin", ""},
                        "Do you ship to Switzerland, and are there customs fees?",
                        "Yes, we ship to Switzerland. Customs fees are included in the price shown "
                        "at checkout, so nothing more is due on delivery."};
const std::string kRedraft =
    "Once an order has shipped, the address can be changed with the carrier: open the tracking "
    "link in your confirmation email and choose \"Change delivery\".";

struct World {
  llmassist::testing::TempDir dir;
  MockTelegramServer telegram;
  MockLlmServer llm;
  std::string db = dir.file("bot.db");
  std::unique_ptr<Bot> bot;
  std::shared_ptr<MessageStore> store;
  std::string admin_url;
  std::int64_t next_update = 100;

  World() {
    seed_earlier_days(db);
    const nlohmann::json config = {
        {"database", db},
        {"telegram", telegram.bot_config_section()},
        {"assistant", {{"moderation", "review"}, {"texts", {{"human_button", ""}}}}},
        {"admin", {{"listen", "127.0.0.1:0"}}},
        {"providers", nlohmann::json::array({{{"type", "openai"},
                                              {"name", "openrouter"},
                                              {"base_url", llm.openai_url()},
                                              {"model", "mock-model"},
                                              {"retries", 0}},
                                             {{"type", "openai"},
                                              {"name", "local"},
                                              {"base_url", llm.openai_url()},
                                              {"model", "mock-small"},
                                              {"retries", 0}}})}};
    auto parsed = parse_bot_config(config.dump(), dir.path().string());
    REQUIRE_MESSAGE(parsed.ok(), parsed.status().to_string());
    auto created = Bot::create(*parsed, {.logger = null_logger()});
    REQUIRE_MESSAGE(created.ok(), created.status().to_string());
    bot = std::move(created).value();
    add_accounts();
    REQUIRE(bot->start().ok());
    admin_url = bot->admin_url();
    REQUIRE(!admin_url.empty());
    store = open_store(db);
  }

  ~World() {
    if (bot) bot->stop();
  }

  // The first admin as a new user makes one: with llmassist-admin, the password on its input.
  void add_accounts() {
#ifdef LLMASSIST_ADMIN_BINARY
    const std::string password_file = dir.file("password.txt");
    std::ofstream(password_file) << kPassword << "\n";
    const pid_t pid =
        llmassist::testing::spawn({"/bin/sh", "-c",
                                   std::string(LLMASSIST_ADMIN_BINARY) + " --db '" + db +
                                       "' user add alice --role admin < '" + password_file + "'"},
                                  dir.file("admin-cli.log"));
    REQUIRE(llmassist::testing::wait_exit(pid) == 0);
#else
    REQUIRE(open_account_store(db)->create_account("alice", kPassword, AccountRole::kAdmin).ok());
#endif
    auto accounts = open_account_store(db);
    REQUIRE(accounts->verify_password("alice", kPassword).ok());
    REQUIRE(accounts->create_account("bob", kPassword, AccountRole::kOperator).ok());
    REQUIRE(accounts->create_account("victor", kPassword, AccountRole::kViewer).ok());
  }

  std::size_t count(ReplyStatus status) const {
    return store->list_replies({.status = status}).value().size();
  }

  // Sends the question and waits until its draft (or failure) is stored.
  void ask(const Question& q, ReplyStatus outcome = ReplyStatus::kPending) {
    const std::size_t before = count(outcome);
    const auto id = next_update++;
    telegram.push_update(id, MockTelegramServer::text_update(id, q.text, q.chat, q.from));
    REQUIRE(eventually([&] { return count(outcome) == before + 1; }));
  }

  void ask_with_draft(const Question& q) {
    MockLlmServer::Behavior draft;
    draft.tokens = {q.draft};
    llm.set(draft);
    ask(q);
  }

  std::vector<std::string> sent_to(std::int64_t chat) const {
    std::vector<std::string> out;
    for (const auto& c : telegram.calls("sendMessage")) {
      if (c.status == 200 &&
          c.params.value("chat_id", nlohmann::json()).dump() == std::to_string(chat)) {
        out.push_back(c.params.value("text", ""));
      }
    }
    return out;
  }

  std::optional<Reply> reply_of(std::int64_t telegram_chat) const {
    auto chat = store->find_chat("telegram", std::to_string(telegram_chat));
    if (!chat.ok()) return std::nullopt;
    auto replies = store->list_replies({.chat_id = chat->id});
    if (!replies.ok() || replies->empty()) return std::nullopt;
    return replies->front();
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("admin page: an operator moderates in Chromium and the decisions reach Telegram") {
  const BrowserTools tools = find_browser_tools();
  if (!tools.missing.empty()) {
    if (browser_required()) FAIL("LLMASSIST_REQUIRE_BROWSER=1 but " << tools.missing);
    MESSAGE("browser test skipped: " << tools.missing);
    return;
  }
  World w;
  // A failed reply (both providers down) and one answered by the fallback provider.
  MockLlmServer::Behavior down;
  down.status = 503;
  w.llm.set_next(down, 2);
  w.ask({5006, {"Olivia", "Brown", ""}, "Is the shop open on public holidays?", ""},
        ReplyStatus::kFailed);
  w.llm.set_next(down, 1);
  w.ask_with_draft(kApprove);
  for (const Question* q : {&kEdit, &kReject, &kLiteral, &kWaiting}) w.ask_with_draft(*q);
  MockLlmServer::Behavior redraft;
  redraft.tokens = {kRedraft};
  w.llm.set(redraft);
  // A chat handed to operators.
  w.telegram.push_update(
      w.next_update,
      MockTelegramServer::text_update(w.next_update, "/human", 5007, {"Noah", "Schmidt", ""}));
  ++w.next_update;

  // The memory Lucas's draft was written with, stored as the Assistant stores it with a draft
  // (an audit event "draft" whose detail is memory_used_json()): the bot's own memory has
  // nothing to recall in these new chats.
  const auto waiting = w.reply_of(kWaiting.chat);
  REQUIRE(waiting.has_value());
  REQUIRE(waiting->status == ReplyStatus::kPending);
  Context used;
  used.summary_version = 2;
  used.estimated_tokens = 640;
  used.window_messages = 4;
  used.recalled.push_back({"message", 1, 1, 1, kRecalled, 0.032});
  used.passages.push_back({kPassageSource, kPassageHeading,
                           "We ship to Switzerland with Swiss Post. Customs fees are included in "
                           "the price shown at checkout.",
                           0.61});
  used.dropped = {"1 recalled item"};
  ReplyChange remembered;
  remembered.from = ReplyStatus::kPending;
  remembered.to = ReplyStatus::kPending;
  remembered.expected_version = waiting->version;
  remembered.actor = "bot";
  remembered.audit_action = "draft";
  remembered.detail = memory_used_json(used);
  REQUIRE(w.store->transition_reply(waiting->id, remembered).ok());

  const std::string log = w.dir.file("browser.log");
  const char* screenshots = std::getenv("SCREENSHOT_DIR");
  const pid_t browser = llmassist::testing::spawn(
      {tools.node, kWebTests + "/admin_page.mjs"}, log,
      {"ADMIN_URL=" + w.admin_url + "/", "ADMIN_NAME=alice", "ADMIN_PASSWORD=" + kPassword,
       "VIEWER_NAME=victor", "VIEWER_PASSWORD=" + kPassword, "APPROVE_QUESTION=" + kApprove.text,
       "EDIT_QUESTION=" + kEdit.text, "EDIT_TEXT=" + kEditText, "REJECT_QUESTION=" + kReject.text,
       "LITERAL_TEXT=" + kLiteral.text, "MEMORY_QUESTION=" + kWaiting.text,
       "RECALLED_TEXT=" + kRecalled, "PASSAGE_SOURCE=" + kPassageSource + " › " + kPassageHeading,
       "CHROMIUM=" + tools.chromium,
       std::string("SCREENSHOT_DIR=") + (screenshots ? screenshots : "")});
  REQUIRE(browser > 0);
  const int exit_code = llmassist::testing::wait_exit(browser);
  REQUIRE_MESSAGE(exit_code == 0, read_file(log));

  // What was decided in the browser reached the users.
  CHECK(eventually([&] {
    return !w.sent_to(kApprove.chat).empty() && w.sent_to(kApprove.chat).back() == kApprove.draft;
  }));
  CHECK(eventually(
      [&] { return !w.sent_to(kEdit.chat).empty() && w.sent_to(kEdit.chat).back() == kEditText; }));
  const auto rejected = w.reply_of(kReject.chat);
  REQUIRE(rejected.has_value());
  CHECK(rejected->generation_attempts == 2);
  CHECK(rejected->draft_text == kRedraft);
  auto audit = w.store->list_audit({.reply_id = rejected->id}).value();
  CHECK(std::any_of(audit.begin(), audit.end(), [](const AuditEvent& e) {
    return e.action == "reject" && e.actor == "operator:alice" &&
           e.detail.find("Too vague") != std::string::npos;
  }));
  // The settings saved on the page are in force.
  CHECK(read_runtime_settings(*w.store)->system_prompt ==
        "You are the support assistant of a shoe shop.");
  // Nothing undecided went out.
  CHECK(w.sent_to(kWaiting.chat).size() <= 1);  // at most the "an operator is checking" notice
}

#endif
