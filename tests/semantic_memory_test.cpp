// The semantic memory over a real SQLite store: recall across sessions and never across chats,
// progressive summaries made by a model over loopback HTTP (the mock speaks OpenAI's format),
// retries, the token budget, the redraft instruction, and hybrid recall with real embeddings.
#include "llmassist/memory/semantic_memory.h"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "llmassist/memory/knowledge_base.h"
#include "llmassist/providers/embedding_providers.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "support/memory_store.h"
#include "support/mock_llm_server.h"
#include "support/temp_dir.h"

namespace {

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::MockLlmServer;

struct Fixture {
  llmassist::testing::TempDir dir;
  std::shared_ptr<MessageStore> store;

  Fixture() {
    SqliteStoreOptions so;
    so.path = dir.file("memory.db");
    so.logger = null_logger();
    so.sync = SqliteSync::kNormal;
    store = std::shared_ptr<MessageStore>(open_sqlite_store(so).value().release());
  }

  ChatId chat(const std::string& id) {
    return store->upsert_chat({"telegram", id, "", ""}).value().id;
  }

  // A user message in the chat's open session, told to the memory as the assistant does.
  // `observe` false: stored only (the memory is told later, or never).
  Message say(SemanticMemory& memory, ChatId chat, const std::string& text, Role role = Role::kUser,
              bool observe = true) {
    Message m;
    if (role == Role::kUser) {
      InboundMessage in;
      in.chat_id = chat;
      in.text = text;
      in.open_reply = false;
      m = append_inbound(*store, in).value().message;
    } else {
      NewMessage nm;
      nm.chat_id = chat;
      nm.role = role;
      nm.text = text;
      m = store->append_message(nm).value();
    }
    if (observe) memory.observe(m);
    return m;
  }

  Context context(SemanticMemory& memory, const Message& question, ContextRequest extra = {}) {
    extra.chat_id = question.chat_id;
    extra.session_id = question.session_id;
    extra.upto_message_id = question.id;
    return memory.build_context(extra).value();
  }
};

std::string prompt_text(const Context& c) {
  std::string all;
  for (const auto& m : c.messages) all += m.content + "\n";
  return all;
}

std::shared_ptr<LlmProvider> summariser(MockLlmServer& llm) {
  OpenAiProviderOptions po;
  po.name = "summariser";
  po.base_url = llm.openai_url();
  po.model = "m";
  po.logger = null_logger();
  return std::shared_ptr<LlmProvider>(make_openai_provider(po).value().release());
}

// The mock's bag-of-words embeddings over loopback, as an OpenAI-compatible embedder.
std::shared_ptr<EmbeddingProvider> bag_of_words_embedder(MockLlmServer& server) {
  OpenAiEmbeddingOptions eo;
  eo.base_url = server.openai_url();
  eo.model = "bag-of-words";
  eo.logger = null_logger();
  return std::shared_ptr<EmbeddingProvider>(make_openai_embedding_provider(eo).value().release());
}

SemanticMemoryOptions quiet(SemanticMemoryOptions o = {}) {
  o.logger = null_logger();
  o.system_prompt = "You are the support assistant.";
  return o;
}

Result<Context> build_async(SemanticMemory& memory, const Message& q) {
  Result<Context> got = internal_error("not called");
  std::atomic<bool> done{false};
  ContextRequest r;
  r.chat_id = q.chat_id;
  r.session_id = q.session_id;
  r.upto_message_id = q.id;
  memory.build_context_async(r, [&](Result<Context> ctx) {
    got = std::move(ctx);
    done = true;
  });
  for (int i = 0; i < 1000 && !done; ++i) std::this_thread::sleep_for(10ms);
  if (!done) return deadline_exceeded("build_context_async did not answer in 10 s");
  return got;
}

// How many embedding requests asked for `text`.
std::size_t embeddings_of(const MockLlmServer& server, const std::string& text) {
  std::size_t n = 0;
  for (const auto& body : server.bodies("/v1/embeddings")) {
    const auto& input = body.at("input");
    for (const auto& item : input.is_array() ? input : nlohmann::json::array({input})) {
      if (item == text) ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("semantic memory: a fact from 60 messages ago is recalled, in its own chat only") {
  Fixture f;
  auto memory = make_semantic_memory(f.store, quiet()).value();
  const ChatId ann = f.chat("100");
  const ChatId bob = f.chat("200");
  f.say(*memory, ann, "My order number is 4411 and it should go to Kazan.");
  for (int i = 0; i < 30; ++i) {
    f.say(*memory, ann, "Another question about the weather number " + std::to_string(i));
    f.say(*memory, ann, "Here is an answer", Role::kAssistant);
  }
  f.say(*memory, bob, "Hello, I need help with my account.");
  REQUIRE(memory->flush(10s));
  const Message q = f.say(*memory, ann, "Which city does my order go to?");
  const Context c = f.context(*memory, q);
  CHECK(prompt_text(c).find("4411") != std::string::npos);
  REQUIRE(!c.recalled.empty());
  CHECK(c.recalled.front().text.find("Kazan") != std::string::npos);
  CHECK(c.window_messages == 8);

  // Bob asks the same: Ann's order is not his.
  const Message bq = f.say(*memory, bob, "Which city does my order go to?");
  const Context bc = f.context(*memory, bq);
  CHECK(prompt_text(bc).find("4411") == std::string::npos);
  for (const auto& r : bc.recalled) CHECK(r.text.find("Kazan") == std::string::npos);
}

TEST_CASE("semantic memory: recall reaches across sessions (after /start) and in Russian") {
  Fixture f;
  auto memory = make_semantic_memory(f.store, quiet()).value();
  const ChatId c = f.chat("300");
  f.say(*memory, c, "Мой номер заказа 7788, доставка в Казань.");
  REQUIRE(memory->flush(10s));
  REQUIRE(f.store->restart_session(c).ok());
  const Message q = f.say(*memory, c, "Куда доставят мой заказ?");
  const Context ctx = f.context(*memory, q);
  CHECK(prompt_text(ctx).find("7788") != std::string::npos);
  CHECK(ctx.window_messages == 1);  // the new session holds the question alone
}

TEST_CASE("semantic memory: a summary job condenses the session and later prompts carry it") {
  Fixture f;
  MockLlmServer llm;
  MockLlmServer::Behavior b;
  b.tokens = {"Ann wants a refund for order 4411.\nFacts:\n- Ann's order is 4411\n"};
  llm.set(b);
  SemanticMemoryOptions o = quiet();
  o.summary.llm = summariser(llm);
  o.summary.threshold = 6;
  o.poll_interval = 1h;  // the test runs the jobs itself
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("400");
  // The dialog is stored first and the memory told of its last question only, so that the job
  // (whichever thread runs it) sees all of it.
  Message last;
  for (int i = 0; i < 4; ++i) {
    last = f.say(*memory, c, "I want a refund, message " + std::to_string(i), Role::kUser, false);
    f.say(*memory, c, "Let me check", Role::kAssistant);
  }
  memory->observe(last);
  // The job runs here or on the memory's own job thread, whichever claims it first.
  memory->run_due_jobs();
  auto summary = f.store->latest_session_summary(last.session_id);
  for (int i = 0; i < 1000 && !summary.ok(); ++i) {
    std::this_thread::sleep_for(10ms);
    summary = f.store->latest_session_summary(last.session_id);
  }
  REQUIRE(summary.ok());
  CHECK(summary->version == 1);
  CHECK(summary->content == "Ann wants a refund for order 4411.");
  CHECK(summary->last_message_id > last.id);  // the assistant's line after it is covered too
  // The summariser saw the dialog.
  const auto request = llm.last_body();
  CHECK(request.dump().find("I want a refund, message 3") != std::string::npos);

  const Message q = f.say(*memory, c, "What did I ask for?");
  const Context ctx = f.context(*memory, q);
  CHECK(ctx.summary_used);
  CHECK(ctx.summary_version == 1);
  CHECK(prompt_text(ctx).find("Ann wants a refund for order 4411.") != std::string::npos);
  CHECK(memory_used_json(ctx).find("\"summary_version\":1") != std::string::npos);

  // The fact is recalled in a later session.
  REQUIRE(f.store->restart_session(c).ok());
  const Message later = f.say(*memory, c, "What is my order?");
  const Context lc = f.context(*memory, later);
  bool fact = false;
  for (const auto& r : lc.recalled) fact |= r.kind == "fact" && r.text == "Ann's order is 4411";
  CHECK(fact);
  CHECK(memory->stats().summaries == 1);
}

TEST_CASE("semantic memory: a job another process queues is run on the store's change") {
  Fixture f;
  MockLlmServer llm;
  MockLlmServer::Behavior b;
  b.tokens = {"Bob asks about delivery.\n"};
  llm.set(b);
  SemanticMemoryOptions o = quiet();
  o.summary.llm = summariser(llm);
  o.summary.threshold = 2;
  o.poll_interval = 1h;  // no look at the store but on its change notification
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("500");
  Message last;
  for (int i = 0; i < 3; ++i) last = f.say(*memory, c, "Where is my parcel?", Role::kUser, false);
  // Another process (a store of its own on the same file) queues the job; this memory was told
  // of nothing.
  SqliteStoreOptions so;
  so.path = f.dir.file("memory.db");
  so.logger = null_logger();
  auto other = open_sqlite_store(so).value();
  NewMemoryJob job;
  job.kind = "summary";
  job.key = "summary:" + std::to_string(last.session_id);
  job.chat_id = c;
  job.payload = nlohmann::json{{"session", last.session_id}}.dump();
  REQUIRE(other->enqueue_job(job).ok());
  auto summary = f.store->latest_session_summary(last.session_id);
  for (int i = 0; i < 1000 && !summary.ok(); ++i) {
    std::this_thread::sleep_for(10ms);
    summary = f.store->latest_session_summary(last.session_id);
  }
  REQUIRE(summary.ok());
  CHECK(summary->content == "Bob asks about delivery.");
}

TEST_CASE("semantic memory: a failed summary is retried with backoff, then succeeds once") {
  Fixture f;
  MockLlmServer llm;
  MockLlmServer::Behavior fail;
  fail.status = 500;
  llm.set(fail);
  SemanticMemoryOptions o = quiet();
  o.summary.llm = summariser(llm);
  o.summary.threshold = 2;
  o.summary.retry_base = 300ms;
  o.summary.retry_max = 300ms;
  o.poll_interval = 1h;
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("500");
  Message m = f.say(*memory, c, "one");
  f.say(*memory, c, "two");
  f.say(*memory, c, "three");
  f.say(*memory, c, "four");
  memory->run_due_jobs();
  auto jobs = f.store->list_jobs("summary", true, 10).value();
  for (int i = 0; i < 1000 && (jobs.empty() || jobs.front().last_error.empty()); ++i) {
    std::this_thread::sleep_for(10ms);
    jobs = f.store->list_jobs("summary", true, 10).value();
  }
  REQUIRE(jobs.size() == 1);
  CHECK(!jobs.front().done_at);
  CHECK(jobs.front().last_error.find("500") != std::string::npos);
  CHECK(memory->stats().summary_failures >= 1);

  MockLlmServer::Behavior ok;
  ok.tokens = {"Counting to four.\nFacts:\n"};
  llm.set(ok);
  std::this_thread::sleep_for(350ms);  // past the backoff
  memory->run_due_jobs();
  auto done = f.store->get_job(jobs.front().id).value();
  for (int i = 0; i < 1000 && !done.done_at; ++i) {
    std::this_thread::sleep_for(10ms);
    memory->run_due_jobs();
    done = f.store->get_job(jobs.front().id).value();
  }
  CHECK(done.done_at.has_value());
  auto versions = f.store->list_session_summaries(m.session_id).value();
  REQUIRE(versions.size() == 1);
  CHECK(versions.front().content == "Counting to four.");
}

TEST_CASE("semantic memory: the budget drops recall and old messages first, never the question") {
  Fixture f;
  SemanticMemoryOptions o = quiet();
  o.budget_tokens = 200;
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("600");
  f.say(*memory, c, "The parcel code is ZX-9 " + std::string(600, 'a'));
  for (int i = 0; i < 8; ++i) f.say(*memory, c, "parcel filler " + std::string(200, 'b'));
  REQUIRE(memory->flush(10s));
  const Message q = f.say(*memory, c, "Where is my parcel?");
  const Context ctx = f.context(*memory, q);
  REQUIRE(!ctx.messages.empty());
  CHECK(ctx.messages.front().content == "You are the support assistant.");
  CHECK(ctx.messages.back().content == "Where is my parcel?");
  CHECK(!ctx.dropped.empty());
  CHECK(ctx.window_messages < 8);
  CHECK(ctx.estimated_tokens <= 200 + 50);
}

TEST_CASE("semantic memory: a redraft carries the rejected draft and the operator's reason") {
  Fixture f;
  auto memory = make_semantic_memory(f.store, quiet()).value();
  const ChatId c = f.chat("700");
  const Message q = f.say(*memory, c, "Can I pay by card?");
  ContextRequest r;
  r.rejected_draft = "No.";
  r.rejection_reason = "we accept Visa and Mastercard";
  const Context ctx = f.context(*memory, q, r);
  const std::string last = ctx.messages.back().content;
  CHECK(ctx.messages.back().role == Role::kSystem);
  CHECK(last.find("No.") != std::string::npos);
  CHECK(last.find("we accept Visa and Mastercard") != std::string::npos);
}

TEST_CASE("semantic memory: with an embedder, vectors are stored and recall is hybrid") {
  Fixture f;
  MockLlmServer server;
  SemanticMemoryOptions o = quiet();
  o.recall.embedder = bag_of_words_embedder(server);
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("800");
  f.say(*memory, c, "my favourite colour is teal");
  for (int i = 0; i < 10; ++i) f.say(*memory, c, "filler line " + std::to_string(i));
  REQUIRE(memory->flush(10s));
  CHECK(memory->stats().embedded >= 11);
  const Message q = f.say(*memory, c, "favourite colour teal?");
  auto got = build_async(*memory, q);
  REQUIRE(got.ok());
  REQUIRE(!got->recalled.empty());
  CHECK(got->recalled.front().text == "my favourite colour is teal");
  // Both searches found it: its fused score is above what one list alone can give.
  CHECK(got->recalled.front().score > 1.0 / 61 + 1e-9);
}

TEST_CASE("semantic memory: knowledge passages with their source join the prompt") {
  Fixture f;
  MockLlmServer server;
  auto embedder = bag_of_words_embedder(server);
  const std::string file = f.dir.file("billing.md");
  std::ofstream(file) << "# Billing\n\n## Refunds\n\nA refund reaches the card within five "
                         "working days after the parcel is back.\n\n## Invoices\n\nInvoices are "
                         "sent by e-mail on the first day of the month.\n\n## Возврат денег\n\n"
                         "Деньги за заказ возвращаются на карту в течение пяти рабочих дней.\n";
  KnowledgeOptions ko;
  ko.sources = {{file, ""}};
  ko.use_sample = false;
  ko.embedder = embedder;
  ko.cache = f.store;
  ko.reload_interval = 0ms;
  ko.logger = null_logger();
  auto kb = std::shared_ptr<KnowledgeBase>(make_knowledge_base(ko).value().release());
  for (int i = 0; i < 500 && kb->stats().vectors_ready < kb->stats().passages; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(kb->stats().vectors_ready == kb->stats().passages);

  SemanticMemoryOptions o = quiet();
  o.recall.embedder = embedder;
  o.knowledge = kb;
  o.knowledge_top_k = 2;
  auto memory = make_semantic_memory(f.store, o).value();
  const ChatId c = f.chat("900");
  const Message first = f.say(*memory, c, "hello there");
  (void)f.context(*memory, first);  // the chat's catch-up indexing runs once, here
  REQUIRE(memory->flush(10s));

  SUBCASE("asked in English, with the question's vector shared") {
    const std::string text = "How long does a refund take?";
    const Message q = f.say(*memory, c, text, Role::kUser, false);
    server.clear_bodies();
    auto got = build_async(*memory, q);
    REQUIRE(got.ok());
    REQUIRE(!got->passages.empty());
    CHECK(got->passages.front().source == "billing.md");
    CHECK(got->passages.front().heading == "Billing › Refunds");
    CHECK(prompt_text(*got).find("[billing.md — Billing › Refunds]") != std::string::npos);
    CHECK(prompt_text(*got).find("five working days") != std::string::npos);
    // One request for the question, shared by recall and the knowledge base.
    CHECK(embeddings_of(server, text) == 1);
    // The memory used, as the operators see it.
    CHECK(memory_used_json(*got).find("\"source\":\"billing.md\"") != std::string::npos);

    // build_context() never waits for a model: the same passages by words, no request.
    server.clear_bodies();
    const Context sync = f.context(*memory, q);
    REQUIRE(!sync.passages.empty());
    CHECK(sync.passages.front().heading == "Billing › Refunds");
    CHECK(embeddings_of(server, text) == 0);
  }
  SUBCASE("asked in Russian, in another inflection") {
    const Message q = f.say(*memory, c, "Когда мне вернут деньги за заказ?", Role::kUser, false);
    const Context got = f.context(*memory, q);
    REQUIRE(!got.passages.empty());
    CHECK(got.passages.front().heading == "Billing › Возврат денег");
  }
  SUBCASE("an unrelated question gets no passage") {
    const Message q = f.say(*memory, c, "What is the weather like in Rome?", Role::kUser, false);
    const Context got = f.context(*memory, q);
    CHECK(got.passages.empty());
    CHECK(prompt_text(got).find("billing.md") == std::string::npos);
  }
}

TEST_CASE("semantic memory: bad options and a store without memory records are refused") {
  // A store that keeps no memory records: the bot gives it the window memory instead.
  auto plain = std::shared_ptr<MessageStore>(llmassist::testing::make_memory_store(system_clock()));
  auto refused = make_semantic_memory(plain, quiet());
  REQUIRE(!refused.ok());
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  Fixture f;
  SemanticMemoryOptions o = quiet();
  o.window = 0;
  auto bad = make_semantic_memory(f.store, o);
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad.status().message().find("memory.window") != std::string::npos);
  CHECK(make_semantic_memory(nullptr).status().code() == StatusCode::kInvalidArgument);
}
