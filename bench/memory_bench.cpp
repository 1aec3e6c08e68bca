// llmassist-bench-memory: what the semantic memory costs over a real SQLite store, and how well
// its recall finds what a user said. Prints its figures; see docs/performance.md ("Memory").
//
//   llmassist-bench-memory [--sizes 10000,100000] [--vectors 100000] [--dim 256]
//                          [--questions 2000] [--summaries 300] [--dir DIR]
//   llmassist-bench-memory --recall-set FILE [--dir DIR]
//
// 1. build_context (BM25 recall) with each of --sizes stored user messages: max(10, N/100)
//    chats, one of them "hot" with about a thirtieth of all messages, sessions of 20-80 messages,
//    texts of 6-14 words of a Zipf-distributed 20,000-word vocabulary, half the chats Russian.
//    The store is filled through its API in transactions of 1,000 messages, each batch's
//    recall items written as the memory writes them (stemmed by its analyser) in one more.
//    Then --questions questions, half in the hot chat and half in random chats, each stored
//    first: p50/p99/max of build_context for each half.
// 2. The same with --vectors messages whose recall items carry --dim-dimensional random unit
//    vectors: build_context (BM25 alone) and build_context_async (hybrid: BM25 and the exact
//    vector scan of the chat, fused). The question's embedding comes from an in-process
//    embedder that answers at once with a pseudo-random vector: the figure is the store's
//    search, not a model's.
// 3. Summary jobs per second: --summaries sessions of 30 messages each (over the threshold of
//    24), summarised by the memory's job thread, first with an in-process summariser that
//    answers at once, then with an OpenAI-compatible provider against the mock LLM server over
//    loopback HTTP.
// --recall-set: recall@5 on a set made by bench/make_recall_set.py: each dialog is stored and
//    told to a memory without an embedder (observe, then flush: the real indexing path), each
//    question asked with build_context; a hit is the planted fact's message among the recalled
//    items. Prints recall@5 overall, per language and per kind of fact, and every miss.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llmassist/memory/semantic_memory.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/sqlite/sqlite_store.h"
#include "memory/text_analyzer.h"
#include "support/bench_stats.h"
#include "support/mock_llm_server.h"

using namespace llmassist;
using namespace std::chrono_literals;
using bench::micros_since;
using bench::open_store_or_die;
using bench::percentiles;
using bench::seconds_since;
using bench::Steady;

namespace {

[[noreturn]] void die(const std::string& what, const Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), status.to_string().c_str());
  std::exit(1);
}

template <typename T>
T value_or_die(Result<T> result, const std::string& what) {
  if (!result.ok()) die(what, result.status());
  return std::move(result).value();
}

void ok_or_die(const Status& status, const std::string& what) {
  if (!status.ok()) die(what, status);
}

std::shared_ptr<MessageStore> shared_store(const std::string& path) {
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  return std::shared_ptr<MessageStore>(open_store_or_die(path, SqliteSync::kNormal).release());
}

// --- synthetic dialog --------------------------------------------------------------------------

const std::vector<std::string> kRootsEn = {
    "order",   "delivery", "refund", "payment",  "card",    "password", "account", "parcel",
    "courier", "address",  "price",  "discount", "invoice", "receipt",  "plan",    "login",
    "email",   "phone",    "app",    "update",   "error",   "screen",   "bonus",   "warranty",
    "repair",  "shop",     "size",   "colour",   "week",    "manager",  "bank",    "transfer",
    "balance", "limit",    "code",   "item",     "return",  "tracking", "box",     "store"};
const std::vector<std::string> kRootsRu = {
    "заказ",  "доставка", "возврат",    "оплата",     "карта",  "пароль",   "аккаунт", "посылка",
    "курьер", "адрес",    "цена",       "скидка",     "счёт",   "чек",      "тариф",   "логин",
    "почта",  "телефон",  "приложение", "обновление", "ошибка", "экран",    "бонус",   "гарантия",
    "ремонт", "магазин",  "размер",     "цвет",       "неделя", "менеджер", "банк",    "перевод",
    "баланс", "лимит",    "код",        "товар",      "трек",   "коробка",  "пункт",   "сумма"};

std::string vocabulary_word(bool russian, int rank) {
  const auto& roots = russian ? kRootsRu : kRootsEn;
  const auto n = static_cast<int>(roots.size());
  std::string word = roots[static_cast<std::size_t>(rank % n)];
  if (rank >= n) word += std::to_string(rank / n);
  return word;
}

// A message of `min_words` to `max_words` words; the 10 commonest words of the law are left out,
// as the analyser drops function words.
std::string message_text(std::mt19937& rng, bool russian, int min_words, int max_words) {
  const int words = std::uniform_int_distribution<>(min_words, max_words)(rng);
  std::string text;
  for (int w = 0; w < words; ++w) {
    if (w > 0) text += ' ';
    text += vocabulary_word(russian, bench::zipf_rank(rng, 10));
  }
  return text;
}

// An embedder in the process that answers at once: each text's vector is a unit vector drawn
// from a generator seeded with the text's hash.
class InstantEmbedder final : public EmbeddingProvider {
 public:
  explicit InstantEmbedder(int dim) : dim_(dim), model_(fmt::format("bench-fake-{}", dim)) {}
  std::string_view name() const override { return "bench"; }
  std::string_view model() const override { return model_; }
  int max_batch() const override { return 256; }
  void embed(EmbeddingRequest request, EmbeddingCallback on_done) override {
    Embeddings e;
    e.provider = "bench";
    e.model = model_;
    for (const auto& input : request.inputs) {
      std::mt19937 rng(static_cast<std::uint32_t>(std::hash<std::string>{}(input)));
      e.vectors.push_back(bench::unit_vector(rng, dim_));
    }
    on_done(std::move(e));
  }

 private:
  const int dim_;
  const std::string model_;
};

RecallItem recall_item_of(const Message& m) {
  RecallItem item;
  item.chat_id = m.chat_id;
  item.session_id = m.session_id;
  item.kind = "message";
  item.key = fmt::format("message:{}", m.id);
  item.message_id = m.id;
  item.text = m.text;
  item.terms = detail::analyzed_text(m.text);
  item.created_at = m.created_at;
  return item;
}

struct FilledStore {
  std::shared_ptr<MessageStore> store;
  std::vector<ChatId> chats;  // [0] is the hot chat
  std::vector<bool> russian;
  double seconds = 0;
  std::int64_t sessions = 0;
  std::int64_t hot_messages = 0;
};

// `total` user messages with their recall items; with `dim` > 0 each item has a vector of
// `model`.
FilledStore fill(const std::string& path, int total, int dim, const std::string& model) {
  FilledStore out;
  out.store = shared_store(path);
  const int chat_count = std::max(10, total / 100);
  std::vector<ChatInfo> infos;
  for (int c = 0; c < chat_count; ++c)
    infos.push_back({"bench", fmt::format("chat-{}", c), "", ""});
  const auto start = Steady::now();
  for (const Chat& chat : value_or_die(out.store->upsert_chats(infos), "creating chats")) {
    out.chats.push_back(chat.id);
    out.russian.push_back(chat.id % 2 == 0);
  }
  std::mt19937 rng(42);
  auto session_length = [&] { return std::uniform_int_distribution<>(20, 80)(rng); };
  std::vector<int> left_in_session(out.chats.size());
  for (int& left : left_in_session) left = session_length();
  out.sessions = chat_count;
  std::uniform_int_distribution<std::size_t> any_other(1, out.chats.size() - 1);
  std::vector<InboundMessage> batch;
  std::vector<RecallItem> items;
  std::set<std::size_t> to_restart;
  for (int done = 0; done < total;) {
    batch.clear();
    while (static_cast<int>(batch.size()) < 1000 && done < total) {
      // The hot chat 1 in 20; a chat whose session is full waits for the next batch, so the hot
      // chat, often full, ends with about 1 in 30.
      const std::size_t c = rng() % 20 == 0 ? 0 : any_other(rng);
      if (to_restart.count(c) != 0) continue;  // its new session opens after this batch
      InboundMessage m;
      m.chat_id = out.chats[c];
      m.text = message_text(rng, out.russian[c], 6, 14);
      m.open_reply = false;
      batch.push_back(std::move(m));
      ++done;
      if (--left_in_session[c] == 0) to_restart.insert(c);
    }
    const auto stored = value_or_die(out.store->append_inbound(batch), "storing messages");
    items.clear();
    for (const InboundResult& r : stored) {
      RecallItem item = recall_item_of(r.message);
      if (dim > 0) {
        item.vector = bench::unit_vector(rng, dim);
        item.vector_model = model;
      }
      items.push_back(std::move(item));
    }
    ok_or_die(out.store->add_recall_items(items), "indexing messages");
    for (std::size_t c : to_restart) {
      ok_or_die(out.store->restart_session(out.chats[c]).status(), "opening a session");
      left_in_session[c] = session_length();
      ++out.sessions;
    }
    to_restart.clear();
  }
  out.seconds = seconds_since(start);
  out.hot_messages = value_or_die(out.store->count_recall_items(out.chats[0]), "counting");
  return out;
}

SemanticMemoryOptions bench_memory_options() {
  SemanticMemoryOptions o;
  o.system_prompt = "You are the support assistant of an online shop.";
  o.logger = null_logger();
  // A first prompt of a chat re-indexes its last messages in the background: left out, so that
  // the figures are the prompt's reads alone.
  o.recall.catch_up_messages = 0;
  return o;
}

struct Question {
  ContextRequest request;
  bool hot = false;
};

// `count` questions stored in the store's open sessions: every other one in the hot chat.
std::vector<Question> ask(FilledStore& filled, int count) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> any_other(1, filled.chats.size() - 1);
  std::vector<InboundMessage> batch;
  std::vector<bool> hot;
  for (int q = 0; q < count; ++q) {
    const std::size_t c = q % 2 == 0 ? 0 : any_other(rng);
    InboundMessage m;
    m.chat_id = filled.chats[c];
    m.text = message_text(rng, filled.russian[c], 4, 8) + "?";
    m.open_reply = false;
    batch.push_back(std::move(m));
    hot.push_back(c == 0);
  }
  const auto stored = value_or_die(filled.store->append_inbound(batch), "storing questions");
  std::vector<Question> out;
  for (std::size_t i = 0; i < stored.size(); ++i) {
    Question q;
    q.request.chat_id = stored[i].message.chat_id;
    q.request.session_id = stored[i].message.session_id;
    q.request.upto_message_id = stored[i].message.id;
    q.hot = hot[i];
    out.push_back(std::move(q));
  }
  return out;
}

void print_split(const char* what, const std::vector<double>& hot_us,
                 const std::vector<double>& other_us, double hot_recalled, double other_recalled) {
  const auto h = percentiles(hot_us);
  const auto o = percentiles(other_us);
  std::printf("  %-34s hot chat p50 %7.2f ms, p99 %7.2f ms, max %7.2f ms (%.1f recalled)\n", what,
              h.p50 / 1000, h.p99 / 1000, h.max / 1000,
              hot_recalled / static_cast<double>(hot_us.size()));
  std::printf("  %-34s random   p50 %7.2f ms, p99 %7.2f ms, max %7.2f ms (%.1f recalled)\n", "",
              o.p50 / 1000, o.p99 / 1000, o.max / 1000,
              other_recalled / static_cast<double>(other_us.size()));
}

// Times `build` over the questions (after a warm-up of 100 not counted), hot chat apart.
void time_contexts(const char* what, const std::vector<Question>& questions,
                   const std::function<Context(const ContextRequest&)>& build) {
  for (std::size_t i = 0; i < std::min<std::size_t>(100, questions.size()); ++i) {
    (void)build(questions[i].request);
  }
  std::vector<double> hot_us;
  std::vector<double> other_us;
  double hot_recalled = 0;
  double other_recalled = 0;
  for (const Question& q : questions) {
    const auto t0 = Steady::now();
    const Context c = build(q.request);
    const double us = micros_since(t0);
    (q.hot ? hot_us : other_us).push_back(us);
    (q.hot ? hot_recalled : other_recalled) += static_cast<double>(c.recalled.size());
  }
  print_split(what, hot_us, other_us, hot_recalled, other_recalled);
}

Context build_or_die(SemanticMemory& memory, const ContextRequest& request) {
  return value_or_die(memory.build_context(request), "building a context");
}

Context build_async_or_die(SemanticMemory& memory, const ContextRequest& request) {
  std::promise<Result<Context>> promise;
  memory.build_context_async(request, [&](Result<Context> c) { promise.set_value(std::move(c)); });
  return value_or_die(promise.get_future().get(), "building a context");
}

void print_fill(const FilledStore& filled, int total, const char* extra) {
  std::printf(
      "filled %d messages%s in %zu chats (%lld sessions; the hot chat %lld) "
      "with their recall items in %.1f s (%.0f messages/s)\n",
      total, extra, filled.chats.size(), static_cast<long long>(filled.sessions),
      static_cast<long long>(filled.hot_messages), filled.seconds, total / filled.seconds);
}

void context_bench(const std::string& dir, int total, int questions) {
  FilledStore filled = fill(fmt::format("{}/context-{}.db", dir, total), total, 0, "");
  print_fill(filled, total, "");
  auto memory =
      value_or_die(make_semantic_memory(filled.store, bench_memory_options()), "making the memory");
  const auto asked = ask(filled, questions);
  time_contexts("build_context (BM25):", asked,
                [&](const ContextRequest& r) { return build_or_die(*memory, r); });
}

void vector_bench(const std::string& dir, int total, int dim, int questions) {
  auto embedder = std::make_shared<InstantEmbedder>(dim);
  FilledStore filled =
      fill(fmt::format("{}/vectors-{}.db", dir, total), total, dim, std::string(embedder->model()));
  print_fill(filled, total, fmt::format(" with {}-dim vectors", dim).c_str());
  SemanticMemoryOptions o = bench_memory_options();
  o.recall.embedder = embedder;
  // Random vectors are about orthogonal (cosine near 0): no floor, so that the vector hits take
  // part in the fusion as a real embedder's would.
  o.recall.min_similarity = -1;
  auto memory = value_or_die(make_semantic_memory(filled.store, o), "making the memory");
  const auto asked = ask(filled, questions);
  time_contexts("build_context (BM25 alone):", asked,
                [&](const ContextRequest& r) { return build_or_die(*memory, r); });
  time_contexts("build_context_async (hybrid):", asked,
                [&](const ContextRequest& r) { return build_async_or_die(*memory, r); });
}

// --- summaries ---------------------------------------------------------------------------------

constexpr std::string_view kSummaryAnswer =
    "The user asked why order 58213 has not arrived and wants it delivered to Kazan; the "
    "assistant gave the tracking number and promised a call from the courier service.\n"
    "Facts:\n- The user's order is 58213\n- The user lives in Kazan\n";

// A summariser in the process that answers at once.
class InstantSummariser final : public LlmProvider {
 public:
  std::string_view name() const override { return "bench-summariser"; }
  void complete(CompletionRequest, TokenCallback, CompletionCallback on_done) override {
    Completion c;
    c.text = std::string(kSummaryAnswer);
    c.provider = "bench-summariser";
    c.finish_reason = "stop";
    on_done(std::move(c));
  }
};

void summary_bench(const std::string& dir, int sessions, const char* what,
                   std::shared_ptr<LlmProvider> summariser) {
  auto store = shared_store(fmt::format("{}/summaries-{}.db", dir, what));
  std::mt19937 rng(3);
  std::vector<ChatInfo> infos;
  for (int c = 0; c < sessions; ++c) infos.push_back({"bench", fmt::format("chat-{}", c), "", ""});
  std::vector<std::vector<Message>> users;  // each session's user messages
  for (const Chat& chat : value_or_die(store->upsert_chats(infos), "creating chats")) {
    users.emplace_back();
    for (int i = 0; i < 15; ++i) {
      InboundMessage in;
      in.chat_id = chat.id;
      in.text = message_text(rng, chat.id % 2 == 0, 6, 14);
      in.open_reply = false;
      users.back().push_back(value_or_die(append_inbound(*store, in), "storing").message);
      NewMessage answer;
      answer.chat_id = chat.id;
      answer.role = Role::kAssistant;
      answer.text = message_text(rng, chat.id % 2 == 0, 10, 30);
      (void)value_or_die(store->append_message(answer), "storing");
    }
  }
  SemanticMemoryOptions o = bench_memory_options();
  o.summary.llm = std::move(summariser);
  auto memory = value_or_die(make_semantic_memory(store, o), "making the memory");
  // The memory looks at a session every threshold/4 (6) user messages it is told of: told of
  // the last 6 of each session, it queues one job per session, and its job thread runs them.
  const auto start = Steady::now();
  for (const auto& session : users) {
    for (std::size_t i = session.size() - 6; i < session.size(); ++i) memory->observe(session[i]);
  }
  while (memory->stats().summaries + memory->stats().summary_failures < sessions) {
    if (seconds_since(start) > 600) {
      std::fprintf(stderr, "summaries: only %lld of %d after 600 s\n",
                   static_cast<long long>(memory->stats().summaries), sessions);
      std::exit(1);
    }
    std::this_thread::sleep_for(1ms);
  }
  const double s = seconds_since(start);
  const auto stats = memory->stats();
  std::printf("  summary jobs, %-36s %d in %.2f s: %6.0f jobs/s, %.2f ms a job (%lld failed)\n",
              what, sessions, s, sessions / s, s * 1000 / sessions,
              static_cast<long long>(stats.summary_failures));
}

void summaries(const std::string& dir, int sessions) {
  std::printf("summary jobs of %d sessions of 30 messages, the memory's job thread:\n", sessions);
  summary_bench(dir, sessions, "in-process summariser:", std::make_shared<InstantSummariser>());
  llmassist::testing::MockLlmServer llm;
  llmassist::testing::MockLlmServer::Behavior b;
  b.tokens = {std::string(kSummaryAnswer)};
  llm.set(b);
  OpenAiProviderOptions po;
  po.name = "summariser";
  po.base_url = llm.openai_url();
  po.model = "mock";
  po.logger = null_logger();
  summary_bench(dir, sessions, "mock LLM over loopback HTTP:",
                value_or_die(make_openai_provider(po), "making the summariser"));
}

// --- recall@5 ----------------------------------------------------------------------------------

struct PlantedQuestion {
  std::string text;
  std::string lang;
  std::string kind;
  std::string user;
  std::size_t fact = 0;  // index in the user's dialog
};

struct RecallTally {
  int asked = 0;
  int hits = 0;
};

int recall_set_bench(const std::string& dir, const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", file.c_str());
    return 1;
  }
  auto store = shared_store(dir + "/recall-set.db");
  auto memory =
      value_or_die(make_semantic_memory(store, bench_memory_options()), "making the memory");

  struct Dialog {
    ChatId chat = 0;
    std::vector<Message> messages;  // by the dialog's index (a session break: an empty one)
    std::vector<PlantedQuestion> questions;
  };
  std::vector<Dialog> dialogs;
  std::string line;
  int line_no = 0;
  const auto load_start = Steady::now();
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, false);
    const std::string where = fmt::format("{}:{}", file, line_no);
    if (!record.is_object() || !record.contains("dialog") || !record["dialog"].is_array() ||
        !record.contains("questions") || !record["questions"].is_array() ||
        !record.contains("user") || !record["user"].is_string()) {
      std::fprintf(stderr, "%s: not a record of make_recall_set.py\n", where.c_str());
      return 1;
    }
    Dialog d;
    const std::string user = record["user"].get<std::string>();
    d.chat = value_or_die(store->upsert_chat({"recall-set", user, "", ""}), where).id;
    for (const auto& turn : record["dialog"]) {
      if (turn.value("restart", false)) {
        (void)value_or_die(store->restart_session(d.chat), where);
        d.messages.emplace_back();
        continue;
      }
      const std::string text = turn.value("text", "");
      if (turn.value("role", "") == "user") {
        InboundMessage m;
        m.chat_id = d.chat;
        m.text = text;
        m.open_reply = false;
        d.messages.push_back(value_or_die(append_inbound(*store, m), where).message);
        memory->observe(d.messages.back());
      } else {
        NewMessage m;
        m.chat_id = d.chat;
        m.role = Role::kAssistant;
        m.text = text;
        d.messages.push_back(value_or_die(store->append_message(m), where));
      }
    }
    for (const auto& q : record["questions"]) {
      PlantedQuestion pq;
      pq.text = q.value("text", "");
      pq.lang = q.value("lang", "");
      pq.kind = q.value("kind", "");
      pq.user = user;
      pq.fact = q.value("fact", std::size_t{0});
      if (pq.text.empty() || pq.fact >= d.messages.size() ||
          d.messages[pq.fact].role != Role::kUser || d.messages[pq.fact].id == 0) {
        std::fprintf(stderr, "%s: a question without its fact message\n", where.c_str());
        return 1;
      }
      d.questions.push_back(std::move(pq));
    }
    dialogs.push_back(std::move(d));
  }
  if (!memory->flush(600s)) {
    std::fprintf(stderr, "indexing did not finish in 600 s\n");
    return 1;
  }
  std::printf("stored and indexed %zu dialogs (%lld recall items) in %.1f s\n", dialogs.size(),
              static_cast<long long>(memory->stats().indexed), seconds_since(load_start));

  // Each question is stored (not indexed: one user's questions do not compete with each other)
  // and answered with the context built for it.
  RecallTally all;
  std::map<std::string, RecallTally> by_lang;
  std::map<std::string, RecallTally> by_kind;
  std::map<std::string, RecallTally> by_overlap;
  std::vector<std::string> shared_misses;  // the question has a word of the fact
  std::vector<std::string> misses;
  std::vector<double> us;
  for (const Dialog& d : dialogs) {
    for (const PlantedQuestion& q : d.questions) {
      InboundMessage m;
      m.chat_id = d.chat;
      m.text = q.text;
      m.open_reply = false;
      const Message asked = value_or_die(append_inbound(*store, m), "storing a question").message;
      ContextRequest request;
      request.chat_id = d.chat;
      request.session_id = asked.session_id;
      request.upto_message_id = asked.id;
      const auto t0 = Steady::now();
      const Context c = build_or_die(*memory, request);
      us.push_back(micros_since(t0));
      const Message& fact = d.messages[q.fact];
      bool hit = false;
      for (const RecalledItem& r : c.recalled)
        hit |= r.kind == "message" && r.message_id == fact.id;
      // What BM25 can match at all: the analysed words the question and the fact share.
      std::string shared;
      const auto fact_terms = detail::analyze_terms(fact.text, {.unique = true});
      for (const std::string& term : detail::analyze_terms(q.text, {.unique = true})) {
        if (std::find(fact_terms.begin(), fact_terms.end(), term) == fact_terms.end()) continue;
        shared += (shared.empty() ? "" : ", ") + term;
      }
      for (RecallTally* t : {&all, &by_lang[q.lang], &by_kind[q.kind],
                             &by_overlap[shared.empty() ? "no shared word" : "a shared word"]}) {
        ++t->asked;
        t->hits += hit ? 1 : 0;
      }
      if (!hit) {
        std::string recalled;
        for (const RecalledItem& r : c.recalled) recalled += fmt::format("\n      - {}", r.text);
        (shared.empty() ? misses : shared_misses)
            .push_back(fmt::format("  {} [{}] \"{}\"\n    fact: \"{}\"{}\n    recalled:{}", q.user,
                                   q.kind, q.text, fact.text,
                                   shared.empty() ? "" : " (shared: " + shared + ")",
                                   recalled.empty() ? " nothing" : recalled));
      }
    }
  }
  if (all.asked == 0) {
    std::fprintf(stderr, "%s holds no questions\n", file.c_str());
    return 1;
  }
  auto rate = [](const RecallTally& t) { return static_cast<double>(t.hits) / t.asked; };
  std::printf("recall@5, BM25 alone: %.3f (%d of %d questions)\n", rate(all), all.hits, all.asked);
  for (const auto& [lang, t] : by_lang) {
    std::printf("  %-10s %.3f (%d of %d)\n", lang.c_str(), rate(t), t.hits, t.asked);
  }
  for (const auto& [kind, t] : by_kind) {
    std::printf("  %-10s %.3f (%d of %d)\n", kind.c_str(), rate(t), t.hits, t.asked);
  }
  for (const auto& [overlap, t] : by_overlap) {
    std::printf("  question and fact with %s: %.3f (%d of %d)\n", overlap.c_str(), rate(t), t.hits,
                t.asked);
  }
  bench::print_latency("build_context", us);
  std::printf("misses where the question has a word of the fact (%zu):\n", shared_misses.size());
  for (const auto& miss : shared_misses) std::printf("%s\n", miss.c_str());
  std::printf("misses where it has none (%zu):\n", misses.size());
  for (const auto& miss : misses) std::printf("%s\n", miss.c_str());
  return 0;
}

std::vector<int> parse_sizes(const std::string& text) {
  std::vector<int> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 100 || v > 100'000'000) return {};
    sizes.push_back(static_cast<int>(v));
  }
  return sizes;
}

// A number 0..max, or -1 for anything else.
int parse_count(const char* text, int max) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < 0 || v > max) return -1;
  return static_cast<int>(v);
}

int usage() {
  std::fprintf(stderr,
               "usage: llmassist-bench-memory [--sizes N,N,...] [--vectors N] [--dim D] "
               "[--questions Q] [--summaries K] [--dir DIR]\n"
               "       llmassist-bench-memory --recall-set FILE [--dir DIR]\n"
               "--sizes: stored messages, each 100..100000000 (default 10000,100000); "
               "--vectors 0 and --summaries 0 skip those parts\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  std::vector<int> sizes = {10'000, 100'000};
  int vectors = 100'000;
  int dim = 256;
  int questions = 2000;
  int sessions = 300;
  std::string dir;
  std::string recall_set;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--sizes" && has_value) {
      sizes = parse_sizes(argv[++i]);
      if (sizes.empty()) return usage();
    } else if (arg == "--vectors" && has_value) {
      if ((vectors = parse_count(argv[++i], 10'000'000)) < 0) return usage();
    } else if (arg == "--dim" && has_value) {
      if ((dim = parse_count(argv[++i], 4096)) < 1) return usage();
    } else if (arg == "--questions" && has_value) {
      if ((questions = parse_count(argv[++i], 1'000'000)) < 2) return usage();
    } else if (arg == "--summaries" && has_value) {
      if ((sessions = parse_count(argv[++i], 100'000)) < 0) return usage();
    } else if (arg == "--dir" && has_value) {
      dir = argv[++i];
    } else if (arg == "--recall-set" && has_value) {
      recall_set = argv[++i];
    } else {
      return usage();
    }
  }
  const bool own_dir = dir.empty();
  if (own_dir) {
    std::string pattern = (std::filesystem::temp_directory_path() / "llmassist-bench-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
  }
  std::printf("llmassist memory benchmark in %s\n", dir.c_str());
  int rc = 0;
  if (!recall_set.empty()) {
    rc = recall_set_bench(dir, recall_set);
  } else {
    for (int size : sizes) context_bench(dir, size, questions);
    if (vectors > 0) vector_bench(dir, vectors, dim, questions);
    if (sessions > 0) summaries(dir, sessions);
  }
  if (own_dir) std::filesystem::remove_all(dir);
  return rc;
}
