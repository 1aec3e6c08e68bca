// Moving house: a SQLite deployment (message store, memory records, accounts in one file) copied
// into an empty PostgreSQL schema by import_sqlite_into_postgres(), checked by reading it back
// through the PostgreSQL stores: the same chats, history, replies, audit, settings, summaries,
// jobs, recall search and vectors, embedding cache, accounts and tokens, and new rows numbered
// after the copied ones.
#include <doctest/doctest.h>
#include <sodium.h>

#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/postgres/postgres_store.h"
#include "llmassist/postgres/sqlite_import.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/child_process.h"
#include "support/temp_dir.h"
#include "support/test_postgres.h"

namespace llmassist {
namespace {

using testing::test_postgres;

struct Deployment {
  testing::TempDir dir;
  std::string path = dir.file("bot.db");
  ChatId chat = 0;
  ChatId other = 0;
  ReplyId sent = 0;
  ReplyId pending = 0;
  std::string token;

  // A small but complete SQLite deployment, made through the stores' own calls.
  Deployment() {
    SqliteStoreOptions so;
    so.path = path;
    so.sync = SqliteSync::kNormal;
    auto store = open_sqlite_store(so).value();
    chat = store->upsert_chat({"telegram", "1001", "Анна", "anna"}).value().id;
    other = store->upsert_chat({"telegram", "1002", "Bob", "bob"}).value().id;
    for (int i = 0; i < 5; ++i) {
      InboundMessage m;
      m.chat_id = chat;
      m.text = "Где мой заказ " + std::to_string(i) + "?\tС табуляцией\nи строкой \\ обратной";
      m.dedup_key = "telegram:" + std::to_string(100 + i);
      auto r = append_inbound(*store, m).value();
      if (i == 0) sent = r.reply_id;
      if (i == 1) pending = r.reply_id;
    }
    ReplyChange draft;
    draft.from = ReplyStatus::kNew;
    draft.to = ReplyStatus::kGenerating;
    REQUIRE(store->transition_reply(sent, draft).ok());
    ReplyChange approve;
    approve.from = ReplyStatus::kGenerating;
    approve.to = ReplyStatus::kApproved;
    approve.final_text = "Ваш заказ в пути";
    approve.actor = "operator:alice";
    approve.audit_action = "approve";
    REQUIRE(store->transition_reply(sent, approve).ok());
    ReplyChange send;
    send.from = ReplyStatus::kApproved;
    send.to = ReplyStatus::kSent;
    send.transport_message_id = "77";
    REQUIRE(store->transition_reply(sent, send).ok());
    REQUIRE(store->transition_reply(pending, draft).ok());
    REQUIRE(store->set_chat_mode(other, ChatMode::kOperator, "operator:alice").ok());
    REQUIRE(store->put_setting("runtime.moderation", "review").ok());
    const SessionId session = store->open_session(chat).value().id;
    NewSessionSummary summary;
    summary.session_id = session;
    summary.content = "Анна ждёт заказ";
    summary.last_message_id = 3;
    REQUIRE(store->add_session_summary(summary).ok());
    NewMemoryJob job;
    job.kind = "summary";
    job.key = "summary:" + std::to_string(session);
    job.chat_id = chat;
    REQUIRE(store->enqueue_job(job).ok());
    RecallItem a;
    a.chat_id = chat;
    a.kind = "message";
    a.key = "message:1";
    a.message_id = 1;
    a.text = "Где мой заказ";
    a.terms = "где мой заказ";
    a.vector = {1.0F, 0.0F, 0.5F};
    a.vector_model = "m";
    RecallItem b = a;
    b.key = "message:2";
    b.message_id = 2;
    b.text = "возврат товара";
    b.terms = "возврат товар";
    b.vector = {0.0F, 1.0F, 0.0F};
    RecallItem c = a;
    c.chat_id = other;
    c.key = "message:9";
    c.terms = "заказ заказ";
    c.vector.clear();
    c.vector_model.clear();
    REQUIRE(store->add_recall_items(std::vector<RecallItem>{a, b, c}).ok());
    REQUIRE(store
                ->cache_embeddings("m",
                                   std::vector<std::pair<std::string, std::vector<float>>>{
                                       {"digest-1", {0.25F, -1.5F}}})
                .ok());

    SqliteAccountStoreOptions ao;
    ao.path = path;
    ao.password_ops = crypto_pwhash_OPSLIMIT_MIN;
    ao.password_memory = crypto_pwhash_MEMLIMIT_MIN;
    auto accounts = open_sqlite_account_store(ao).value();
    REQUIRE(accounts->create_account("alice", "correct horse battery", AccountRole::kAdmin).ok());
    token = accounts->create_token("alice", "nightly").value().secret;
  }
};

std::unique_ptr<MessageStore> postgres_store(const std::string& schema) {
  PostgresStoreOptions o;
  o.connect = test_postgres().connect_options(schema);
  return open_postgres_store(o).value();
}

std::unique_ptr<MessageStore> sqlite_store(const std::string& path) {
  SqliteStoreOptions o;
  o.path = path;
  return open_sqlite_store(o).value();
}

SqliteImportOptions import_options(const Deployment& d, const std::string& schema) {
  SqliteImportOptions options;
  options.sqlite_path = d.path;
  options.to = test_postgres().connect_options(schema);
  return options;
}

TEST_CASE("SQLite import: everything arrives, counted, and reads back the same") {
  Deployment d;
  const std::string schema = test_postgres().fresh_schema();
  const SqliteImportOptions options = import_options(d, schema);
  auto counts = import_sqlite_into_postgres(options);
  REQUIRE_MESSAGE(counts.ok(), counts.status().to_string());
  std::map<std::string, std::int64_t> rows;
  for (const TableCount& t : *counts) {
    CHECK(t.sqlite_rows == t.postgres_rows);
    rows[t.table] = t.postgres_rows;
  }
  CHECK(rows.at("chats") == 2);
  CHECK(rows.at("messages") == 6);  // five questions and the sent answer
  CHECK(rows.at("replies") == 5);
  CHECK(rows.at("audit") == 2);  // the approval and the handoff
  CHECK(rows.at("settings") == 1);
  CHECK(rows.at("session_summaries") == 1);
  CHECK(rows.at("memory_jobs") == 1);
  CHECK(rows.at("recall_items") == 3);
  CHECK(rows.at("embedding_cache") == 1);
  CHECK(rows.at("accounts") == 1);
  CHECK(rows.at("api_tokens") == 1);

  auto from = sqlite_store(d.path);
  auto to = postgres_store(schema);
  // The chats and their history, byte for byte (tabs, newlines and backslashes included).
  for (ChatId chat : {d.chat, d.other}) {
    auto a = from->get_chat(chat).value();
    auto b = to->get_chat(chat).value();
    CHECK(a.external_id == b.external_id);
    CHECK(a.title == b.title);
    CHECK(a.mode == b.mode);
    HistoryQuery q;
    auto ha = from->chat_history(chat, q).value();
    auto hb = to->chat_history(chat, q).value();
    REQUIRE(ha.size() == hb.size());
    for (std::size_t i = 0; i < ha.size(); ++i) {
      CHECK(ha[i].id == hb[i].id);
      CHECK(ha[i].text == hb[i].text);
      CHECK(ha[i].dedup_key == hb[i].dedup_key);
      CHECK(ha[i].created_at == hb[i].created_at);
    }
  }
  auto ra = from->get_reply(d.sent).value();
  auto rb = to->get_reply(d.sent).value();
  CHECK(rb.status == ReplyStatus::kSent);
  CHECK(rb.final_text == ra.final_text);
  CHECK(rb.version == ra.version);
  CHECK(rb.sent_at == ra.sent_at);
  CHECK(to->get_reply(d.pending).value().status == ReplyStatus::kGenerating);
  CHECK(to->get_setting("runtime.moderation").value() == "review");
  CHECK(to->latest_session_summary(to->open_session(d.chat).value().id).value().content ==
        "Анна ждёт заказ");
  CHECK(to->list_jobs("summary", false, 10).value().size() == 1);
  // A repeated inbound message is still known as one.
  InboundMessage again;
  again.chat_id = d.chat;
  again.text = "dup";
  again.dedup_key = "telegram:100";
  CHECK(append_inbound(*to, again).value().duplicate);

  // The recall index was rebuilt: the same hits, in the same order, within each chat.
  TermQuery tq;
  tq.chat_id = d.chat;
  tq.terms = {"заказ", "товар"};
  auto hits_a = from->search_recall_terms(tq).value();
  auto hits_b = to->search_recall_terms(tq).value();
  REQUIRE(hits_a.size() == 2);
  REQUIRE(hits_b.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) CHECK(hits_a[i].item.key == hits_b[i].item.key);
  tq.chat_id = d.other;
  tq.terms = {"заказ"};
  CHECK(to->search_recall_terms(tq).value().size() == 1);
  VectorQuery vq;
  vq.chat_id = d.chat;
  vq.model = "m";
  vq.vector = {1.0F, 0.0F, 0.4F};
  auto near = to->search_recall_vectors(vq).value();
  REQUIRE(near.size() == 2);
  CHECK(near[0].item.key == "message:1");
  CHECK(near[0].item.vector == std::vector<float>{1.0F, 0.0F, 0.5F});
  CHECK(to->cached_embeddings("m", std::vector<std::string>{"digest-1"}).value()[0] ==
        std::vector<float>{0.25F, -1.5F});

  // The accounts work: the password hash and the token's digest came along.
  PostgresAccountStoreOptions ao;
  ao.connect = test_postgres().connect_options(schema);
  auto accounts = open_postgres_account_store(ao).value();
  CHECK(accounts->verify_password("alice", "correct horse battery").ok());
  CHECK(accounts->authenticate_token(d.token).value().name == "alice");

  // New rows continue after the copied ids.
  const ChatId third = to->upsert_chat({"telegram", "1003", "", ""}).value().id;
  CHECK(third > d.other);
  CHECK(accounts->create_account("bob", "another good password", AccountRole::kViewer).ok());
}

TEST_CASE("SQLite import: refuses a target that holds data, and a missing file") {
  Deployment d;
  const std::string schema = test_postgres().fresh_schema();
  const SqliteImportOptions options = import_options(d, schema);
  REQUIRE(import_sqlite_into_postgres(options).ok());
  auto again = import_sqlite_into_postgres(options);
  CHECK(again.status().code() == StatusCode::kFailedPrecondition);
  CHECK(again.status().message().find("already holds 2 chats") != std::string::npos);

  SqliteImportOptions missing = options;
  missing.sqlite_path = d.dir.file("missing.db");
  CHECK(import_sqlite_into_postgres(missing).status().code() == StatusCode::kNotFound);
}

TEST_CASE("SQLite import: a failed copy leaves the target empty") {
  Deployment d;
  {
    // Text PostgreSQL cannot hold, put there behind the store's back (SQLite takes any bytes).
    auto store = sqlite_store(d.path);
    NewMessage m;
    m.chat_id = d.chat;
    m.text = "bad \xff byte";
    REQUIRE(store->append_message(m).ok());
  }
  const std::string schema = test_postgres().fresh_schema();
  const SqliteImportOptions options = import_options(d, schema);
  auto failed = import_sqlite_into_postgres(options);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().message().find("messages") != std::string::npos);
  CHECK(test_postgres().sql(schema, "SELECT count(*) FROM chats") == "0");
}

#ifdef LLMASSIST_ADMIN_BINARY

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE("llmassist-admin migrate: copies, prints the counts, keeps the password out") {
  Deployment d;
  const std::string schema = test_postgres().fresh_schema();
  const std::string log = d.dir.file("migrate.log");
  const std::vector<std::string> env = {"LLMASSIST_MIGRATE_PASSWORD=" + test_postgres().password};
  const std::vector<std::string> args = {LLMASSIST_ADMIN_BINARY,
                                         "migrate",
                                         "--from",
                                         "sqlite:" + d.path,
                                         "--to",
                                         test_postgres().url,
                                         "--to-password-env",
                                         "LLMASSIST_MIGRATE_PASSWORD",
                                         "--to-schema",
                                         schema};
  REQUIRE_MESSAGE(testing::wait_exit(testing::spawn(args, log, env)) == 0, read_all(log));
  const std::string printed = read_all(log);
  CHECK(printed.find("every count matches") != std::string::npos);
  CHECK(printed.find("api_tokens") != std::string::npos);
  CHECK(printed.find(test_postgres().password) == std::string::npos);
  CHECK(test_postgres().sql(schema, "SELECT count(*) FROM messages") == "6");

  // Again into the same schema: refused, nothing copied twice.
  CHECK(testing::wait_exit(testing::spawn(args, log, env)) == 1);
  CHECK(read_all(log).find("already holds") != std::string::npos);
  CHECK(test_postgres().sql(schema, "SELECT count(*) FROM messages") == "6");
  // A wrong command line, and a password variable that is not set.
  CHECK(testing::wait_exit(testing::spawn(
            {LLMASSIST_ADMIN_BINARY, "migrate", "--to", test_postgres().url}, log)) == 2);
  CHECK(read_all(log).find("--from sqlite:PATH") != std::string::npos);
  std::vector<std::string> unset = args;
  unset[7] = "LLMASSIST_NOT_SET_ANYWHERE";
  CHECK(testing::wait_exit(testing::spawn(unset, log, env)) == 1);
  CHECK(read_all(log).find("LLMASSIST_NOT_SET_ANYWHERE") != std::string::npos);
}

#endif  // LLMASSIST_ADMIN_BINARY

}  // namespace
}  // namespace llmassist
