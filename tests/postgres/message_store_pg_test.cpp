// The PostgreSQL MessageStore against the tests' server (support/test_postgres.h): the
// MessageStore conformance suite, each check in a schema of its own, and what only a shared
// server shows — stores in several places at once (several processes are several store
// objects, each with its pool and its listening connection), migrations that run once, change
// notification across stores, secrets kept out of errors, and a server restart in the middle
// of a burst of writes.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "llmassist/postgres/postgres_store.h"
#include "llmassist/testing/message_store_conformance.h"
#include "support/capturing_logger.h"
#include "support/conformance_subcases.h"
#include "support/test_postgres.h"

namespace llmassist {
namespace {

using namespace std::chrono_literals;
using testing::test_postgres;

std::unique_ptr<MessageStore> open_store(const std::string& schema,
                                         std::shared_ptr<Logger> logger = nullptr) {
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(schema);
  if (logger) o.connect.logger = std::move(logger);
  auto store = open_postgres_store(o);
  REQUIRE_MESSAGE(store.ok(), store.status().to_string());
  return std::move(store).value();
}

ChatId new_chat(MessageStore& store, const std::string& name) {
  auto chat = store.upsert_chat({"test", name, "Title " + name, ""});
  REQUIRE_MESSAGE(chat.ok(), chat.status().to_string());
  return chat->id;
}

ReplyId ask(MessageStore& store, ChatId chat, const std::string& text,
            const std::string& dedup = "") {
  InboundMessage m;
  m.chat_id = chat;
  m.text = text;
  m.dedup_key = dedup;
  auto r = append_inbound(store, m);
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  return r->reply_id;
}

TEST_CASE("MessageStore conformance: the PostgreSQL store") {
  testing::run_checks_as_subcases(
      testing::message_store_check_names(), [](const std::string& name) {
        return testing::run_message_store_check(
            name, [](std::shared_ptr<Clock> clock) -> Result<std::unique_ptr<MessageStore>> {
              PostgresStoreOptions o;
              o.connect = test_postgres().connect_options(test_postgres().fresh_schema());
              o.connect.clock = std::move(clock);
              return open_postgres_store(o);
            });
      });
}

TEST_CASE("PostgreSQL store: stores opened at once migrate once, and share what they write") {
  const std::string schema = test_postgres().fresh_schema();
  std::vector<std::unique_ptr<MessageStore>> stores(6);
  std::vector<std::thread> threads;
  std::vector<Status> opened(stores.size());
  for (std::size_t i = 0; i < stores.size(); ++i) {
    threads.emplace_back([&, i] {
      PostgresStoreOptions o;
      o.connect = test_postgres().connect_options(schema);
      auto s = open_postgres_store(o);
      opened[i] = s.status();
      if (s.ok()) stores[i] = std::move(s).value();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : opened) REQUIRE_MESSAGE(s.ok(), s.to_string());
  const ChatId chat = new_chat(*stores[0], "shared");
  auto seen = stores[5]->get_chat(chat);
  REQUIRE(seen.ok());
  CHECK(seen->external_id == "shared");
}

TEST_CASE(
    "PostgreSQL store: a schema of version 1 is brought to the current one, keeping its data") {
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_store(schema);
  const ChatId chat = new_chat(*store, "old");
  ask(*store, chat, "asked before the upgrade");
  store.reset();
  // What version 1 left: no index of the open replies, no contact details, no reply actions.
  test_postgres().sql(schema,
                      "DROP INDEX replies_open_by_chat; ALTER TABLE chats DROP COLUMN "
                      "opted_out_at, DROP COLUMN notes; ALTER TABLE replies DROP COLUMN actions; "
                      "UPDATE llmassist_schema SET version = 1 WHERE component = 'store'");
  store = open_store(schema);
  CHECK(test_postgres().sql(schema,
                            "SELECT version FROM llmassist_schema WHERE component = "
                            "'store'") == std::to_string(kPostgresSchemaVersion));
  CHECK(test_postgres().sql(schema, "SELECT count(*) FROM pg_indexes WHERE schemaname = '" +
                                        schema + "' AND indexname = 'replies_open_by_chat'") ==
        "1");
  ClaimRequest q;
  q.status = ReplyStatus::kNew;
  q.to = ReplyStatus::kGenerating;
  q.worker = "w";
  q.lease = 60s;
  q.limit = 10;
  q.head_of_chat_only = true;
  q.chat_ids = {chat};
  auto claimed = store->claim_replies(q);
  REQUIRE_MESSAGE(claimed.ok(), claimed.status().to_string());
  CHECK(claimed->size() == 1);
  // The old chat reads with the new columns' defaults and takes contact details.
  auto old_chat = store->get_chat(chat);
  REQUIRE(old_chat.ok());
  CHECK_FALSE(old_chat->opted_out_at.has_value());
  CHECK(old_chat->notes.empty());
  auto noted = store->update_chat(chat, {.notes = std::string("from before")});
  REQUIRE_MESSAGE(noted.ok(), noted.status().to_string());
  CHECK(noted->notes == "from before");
}

TEST_CASE("PostgreSQL store: a newer schema is refused, naming both versions") {
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_store(schema);
  REQUIRE(store->put_setting("k", "v").ok());
  store.reset();
  // What a later build's migration leaves: a higher version.
  test_postgres().sql(schema,
                      "UPDATE llmassist_schema SET version = version + 1 "
                      "WHERE component = 'store'");
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(schema);
  auto refused = open_postgres_store(o);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  CHECK(refused.status().message().find("version " + std::to_string(kPostgresSchemaVersion + 1)) !=
        std::string::npos);
  CHECK(refused.status().message().find(std::to_string(kPostgresSchemaVersion)) !=
        std::string::npos);
}

TEST_CASE("PostgreSQL store: a wrong password is kUnauthenticated, and no error shows it") {
  auto logger = std::make_shared<testing::CapturingLogger>();
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(test_postgres().fresh_schema());
  o.connect.password = "not-the-password-5f1c2e";
  o.connect.logger = logger;
  auto refused = open_postgres_store(o);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kUnauthenticated);
  CHECK(refused.status().message().find("not-the-password-5f1c2e") == std::string::npos);
  CHECK_FALSE(logger->contains("not-the-password-5f1c2e"));

  PostgresStoreOptions in_url = o;
  in_url.connect.password.clear();
  in_url.connect.url = "postgresql://llmassist:secret-in-url@127.0.0.1:1/llmassist";
  auto no = open_postgres_store(in_url);
  REQUIRE_FALSE(no.ok());
  CHECK(no.status().code() == StatusCode::kInvalidArgument);
  CHECK(no.status().message().find("secret-in-url") == std::string::npos);
  CHECK(describe_postgres_url("postgresql://u:secret-in-url@db.example:5433/x?sslmode=require") ==
        "postgresql://u@db.example:5433/x?password=***&sslmode=require");
}

TEST_CASE("PostgreSQL store: sslmode in the URL is libpq's: verify-full with the server's CA") {
  const std::string& url = test_postgres().url;  // postgresql://llmassist@127.0.0.1:PORT/llmassist
  const std::string tls = "sslmode=verify-full&sslrootcert=" + test_postgres().dir + "/root.crt";
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(test_postgres().fresh_schema());
  o.connect.url = url + "?application_name=llmassist-tls&" + tls;
  o.connect.logger = null_logger();
  auto verified = open_postgres_store(o);
  REQUIRE_MESSAGE(verified.ok(), verified.status().to_string());
  CHECK(new_chat(**verified, "tls") > 0);
  // The store's connections are encrypted, as the server sees them: none of them is not.
  static constexpr const char* kOfStore =
      "FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid "
      "WHERE a.application_name = 'llmassist-tls'";
  CHECK(test_postgres().sql("public", std::string("SELECT count(*) ") + kOfStore) != "0");
  CHECK(test_postgres().sql("public",
                            std::string("SELECT count(*) ") + kOfStore + " AND NOT s.ssl") == "0");

  // The certificate names 127.0.0.1: asked for as "localhost", verify-full refuses it.
  PostgresStoreOptions other_name = o;
  std::string by_name = url;
  by_name.replace(by_name.find("127.0.0.1"), 9, "localhost");
  other_name.connect.url = by_name + "?" + tls;
  other_name.connect.retry_for = std::chrono::milliseconds(0);
  auto refused = open_postgres_store(other_name);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kUnavailable);
  CHECK(refused.status().message().find("does not match host name") != std::string::npos);
}

TEST_CASE("PostgreSQL store: text PostgreSQL cannot hold is refused, not cut short") {
  auto store = open_store(test_postgres().fresh_schema());
  const ChatId chat = new_chat(*store, "c");
  InboundMessage m;
  m.chat_id = chat;
  m.text = std::string("before\0after", 12);
  auto nul = append_inbound(*store, m);
  CHECK(nul.status().code() == StatusCode::kInvalidArgument);
  m.text = "bad \xff byte";
  auto invalid = append_inbound(*store, m);
  CHECK(invalid.status().code() == StatusCode::kInvalidArgument);
  HistoryQuery q;
  auto history = store->chat_history(chat, q);
  REQUIRE(history.ok());
  CHECK(history->empty());
  // The store goes on serving.
  CHECK(ask(*store, chat, "fine") > 0);
}

TEST_CASE("PostgreSQL store: wait_for_change wakes on another store's commit") {
  const std::string schema = test_postgres().fresh_schema();
  auto a = open_store(schema);
  auto b = open_store(schema);
  const ChatId chat = new_chat(*a, "c");
  const std::uint64_t seen = b->wait_for_change(0, 0ms);
  std::atomic<std::uint64_t> woke{0};
  std::thread waiter([&] { woke = b->wait_for_change(seen, 30s); });
  std::this_thread::sleep_for(100ms);  // the waiter is asleep (or about to be): either way
  ask(*a, chat, "wake up");
  waiter.join();
  CHECK(woke.load() != seen);
}

TEST_CASE("PostgreSQL store: workers in several places never claim one reply twice") {
  const std::string schema = test_postgres().fresh_schema();
  constexpr int kStores = 3;
  constexpr int kReplies = 300;
  std::vector<std::unique_ptr<MessageStore>> stores;
  for (int i = 0; i < kStores; ++i) stores.push_back(open_store(schema));
  std::vector<ChatId> chats;
  for (int i = 0; i < 30; ++i) chats.push_back(new_chat(*stores[0], "c" + std::to_string(i)));
  for (int i = 0; i < kReplies; ++i) {
    ask(*stores[static_cast<std::size_t>(i % kStores)], chats[static_cast<std::size_t>(i % 30)],
        "q" + std::to_string(i));
  }
  std::mutex mu;
  std::map<ReplyId, std::string> claimed_by;
  std::vector<std::string> doubles;
  std::vector<std::thread> workers;
  for (int w = 0; w < kStores * 2; ++w) {
    workers.emplace_back([&, w] {
      MessageStore& store = *stores[static_cast<std::size_t>(w % kStores)];
      const std::string worker = "worker" + std::to_string(w);
      while (true) {
        ClaimRequest q;
        q.status = ReplyStatus::kNew;
        q.to = ReplyStatus::kGenerating;
        q.worker = worker;
        q.limit = 3;
        auto got = store.claim_replies(q);
        REQUIRE_MESSAGE(got.ok(), got.status().to_string());
        if (got->empty()) return;
        std::lock_guard lock(mu);
        for (const Reply& r : *got) {
          if (!claimed_by.emplace(r.id, worker).second) doubles.push_back(worker);
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  CHECK(doubles.empty());
  CHECK(claimed_by.size() == static_cast<std::size_t>(kReplies));
}

TEST_CASE("PostgreSQL store: a chat's replies come in order when questions arrive everywhere") {
  // Questions of one chat stored by several stores at once, and a worker that takes only each
  // chat's head: it must never be handed a reply while an older one of its chat waits.
  const std::string schema = test_postgres().fresh_schema();
  std::vector<std::unique_ptr<MessageStore>> stores;
  for (int i = 0; i < 3; ++i) stores.push_back(open_store(schema));
  const ChatId chat = new_chat(*stores[0], "busy");
  std::atomic<bool> writing{true};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 40; ++i) ask(*stores[static_cast<std::size_t>(w)], chat, "q");
    });
  }
  std::vector<ReplyId> order;
  std::thread worker([&] {
    while (writing || order.size() < 120) {
      ClaimRequest q;
      q.status = ReplyStatus::kNew;
      q.to = ReplyStatus::kGenerating;
      q.worker = "head-taker";
      q.head_of_chat_only = true;
      q.limit = 5;
      auto got = stores[1]->claim_replies(q);
      REQUIRE(got.ok());
      for (const Reply& r : *got) {
        order.push_back(r.id);
        ReplyChange done;
        done.from = ReplyStatus::kGenerating;
        done.to = ReplyStatus::kCancelled;
        REQUIRE(stores[2]->transition_reply(r.id, done).ok());
      }
      if (got->empty()) std::this_thread::sleep_for(1ms);
    }
  });
  for (auto& t : writers) t.join();
  writing = false;
  worker.join();
  REQUIRE(order.size() == 120);
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE(
    "PostgreSQL store: answers and recall items of many chats in one commit each, summaries, "
    "and a batch of their questions never deadlock") {
  // The completion writer commits the answers of many chats in one transition_and_claim_each()
  // (each answer joins its chat's log: a share lock on the chat's row), in the order they came
  // back, and the memory indexes messages of many chats in one add_recall_items() (the same
  // share locks), while the inbound side stores the same chats' next questions in one
  // append_inbound() (the chats' rows locked in id order), and summaries of their sessions are
  // added (a session's row locked, a share lock on its chat's). PostgreSQL breaks a circle of them
  // with its deadlock detector (a second later) and the store says so: it tries a transaction
  // again, or fails the step it was in.
  const std::string schema = test_postgres().fresh_schema();
  auto writer_log = std::make_shared<testing::CapturingLogger>();
  auto inbound_log = std::make_shared<testing::CapturingLogger>();
  auto memory_log = std::make_shared<testing::CapturingLogger>();
  auto writer = open_store(schema, writer_log);
  auto inbound = open_store(schema, inbound_log);
  auto memory = open_store(schema, memory_log);
  constexpr int kChats = 20;
  constexpr int kRounds = 10;
  std::vector<ChatId> chats;
  for (int i = 0; i < kChats; ++i) chats.push_back(new_chat(*writer, "c" + std::to_string(i)));
  std::vector<SessionId> sessions;
  for (ChatId chat : chats) {
    InboundMessage first;
    first.chat_id = chat;
    first.text = "hello";
    auto r = append_inbound(*writer, first);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    sessions.push_back(r->message.session_id);
  }
  auto summaries_log = std::make_shared<testing::CapturingLogger>();
  auto summaries = open_store(schema, summaries_log);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<ReplyStep> steps;
    for (auto chat = chats.rbegin(); chat != chats.rend(); ++chat) {  // the highest id first
      NewReply answer;
      answer.chat_id = *chat;
      answer.status = ReplyStatus::kApproved;
      answer.final_text = "an answer";
      answer.author = "alice";
      auto created = writer->create_reply(answer);
      REQUIRE_MESSAGE(created.ok(), created.status().to_string());
      ReplyStep step;
      step.id = created->id;
      step.change.from = ReplyStatus::kApproved;
      step.change.to = ReplyStatus::kSent;
      steps.push_back(std::move(step));
    }
    std::vector<InboundMessage> questions;
    for (ChatId chat : chats) {
      InboundMessage m;
      m.chat_id = chat;
      m.text = "next question";
      questions.push_back(std::move(m));
    }
    std::vector<RecallItem> items;
    for (auto chat = chats.rbegin(); chat != chats.rend(); ++chat) {
      RecallItem item;
      item.chat_id = *chat;
      item.kind = "message";
      item.key = "message:" + std::to_string(round);
      item.text = "an answer";
      item.terms = "answer";
      items.push_back(std::move(item));
    }
    std::thread asking([&] { CHECK(inbound->append_inbound(questions).ok()); });
    std::thread indexing([&] { CHECK(memory->add_recall_items(items).ok()); });
    std::thread summarising([&] {
      for (auto session = sessions.rbegin(); session != sessions.rend(); ++session) {
        NewSessionSummary summary;
        summary.session_id = *session;
        summary.content = "they asked again";
        summary.expected_version = round;
        CHECK(summaries->add_session_summary(summary).ok());
      }
    });
    for (const auto& result : writer->transition_and_claim_each(steps)) {
      CHECK_MESSAGE(result.ok(), result.status().to_string());
    }
    asking.join();
    indexing.join();
    summarising.join();
  }
  for (const auto& log : {writer_log, inbound_log, memory_log, summaries_log}) {
    CHECK_FALSE(log->contains("deadlock"));
  }
}

// Last: CTest runs the tests named "server restart" after all others, one at a time.
TEST_CASE("PostgreSQL store: a server restart in the middle of a burst loses nothing") {
  auto logger = std::make_shared<testing::CapturingLogger>();
  const std::string schema = test_postgres().fresh_schema();
  auto store = open_store(schema, logger);
  constexpr int kChats = 10;
  constexpr int kPerWriter = 60;
  std::vector<ChatId> chats;
  for (int i = 0; i < kChats; ++i) chats.push_back(new_chat(*store, "c" + std::to_string(i)));
  std::mutex mu;
  std::set<std::string> acknowledged;  // dedup keys whose append_inbound returned OK
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        InboundMessage m;
        m.chat_id = chats[static_cast<std::size_t>((w * kPerWriter + i) % kChats)];
        m.text = "burst";
        m.dedup_key = "w" + std::to_string(w) + ":" + std::to_string(i);
        auto r = append_inbound(*store, m);
        if (r.ok()) {
          std::lock_guard lock(mu);
          acknowledged.insert(m.dedup_key);
        } else {
          ++failed;  // the commit's outcome unknown: the caller would deliver it again
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  std::this_thread::sleep_for(80ms);
  REQUIRE(test_postgres().restart_server().ok());
  for (auto& t : writers) t.join();
  // Every acknowledged message is stored, once; the others may be, or may not.
  std::set<std::string> stored;
  for (ChatId chat : chats) {
    HistoryQuery q;
    q.limit = 1000;
    auto history = store->chat_history(chat, q);
    REQUIRE_MESSAGE(history.ok(), history.status().to_string());
    for (const Message& m : *history) CHECK(stored.insert(m.dedup_key).second);
  }
  for (const std::string& key : acknowledged) CHECK_MESSAGE(stored.count(key) == 1, key);
  MESSAGE(acknowledged.size() << " acknowledged, " << failed.load() << " failed, " << stored.size()
                              << " stored");
  CHECK(failed.load() <= 4);  // at most the commits in flight when the server went down
  CHECK(logger->contains("tried again"));
  // The store goes on serving, and its listener is back: once it has settled (a reconnection
  // raises the generation too), another store's write wakes it.
  std::uint64_t seen = store->wait_for_change(0, 0ms);
  for (std::uint64_t now = 0; (now = store->wait_for_change(seen, 500ms)) != seen;) seen = now;
  auto other = open_store(schema);
  ask(*other, chats[0], "after the restart");
  CHECK(store->wait_for_change(seen, 10s) != seen);
}

}  // namespace
}  // namespace llmassist
