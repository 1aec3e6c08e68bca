// llmassist-bench-store: how fast the SQLite MessageStore takes inbound messages and reads the
// memory window, or (--recall) how fast its recall index fills and answers. Prints its figures;
// see docs/performance.md for recorded runs.
//
//   llmassist-bench-store [--messages N] [--dir DIR]
//   llmassist-bench-store --recall [--items N] [--chats M] [--dim D] [--dir DIR]
//
// 1. Durable inbound inserts per second: one message per transaction (synchronous=FULL, then
//    NORMAL) and batches of 100 (as a getUpdates page arrives).
// 2. The last-20 window of a chat's session and a page of its history, read at random from a
//    store holding N messages (default 1,000,000) in 10,000 chats.
// --recall: N recall items (default 100,000) in M chats (default 10,000), each with 8 terms of a
//    skewed 20,000-word vocabulary and a D-dimensional vector (default 384): the time to index
//    them, then p50/p99 of search_recall_terms (4 terms) and search_recall_vectors (top 20) in
//    random chats, the embedder's empty-backlog probe, and erasing one chat.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "llmassist/sqlite/sqlite_store.h"
#include "support/bench_stats.h"

using namespace llmassist;
using bench::micros_since;
using bench::open_store_or_die;
using bench::percentiles;
using bench::print_latency;
using bench::seconds_since;
using bench::Steady;
using bench::unit_vector;

namespace {

void insert_rate(const std::string& dir, SqliteSync sync, int batch, int total) {
  const std::string path = dir + "/insert-" + std::to_string(static_cast<int>(sync)) + "-" +
                           std::to_string(batch) + ".db";
  auto store = open_store_or_die(path, sync);
  auto chat = store->upsert_chat({"bench", "1", "", ""});
  std::vector<InboundMessage> messages(static_cast<std::size_t>(batch));
  int key = 0;
  const auto start = Steady::now();
  for (int done = 0; done < total; done += batch) {
    for (auto& m : messages) {
      m.chat_id = chat->id;
      m.text = "How do I reset my password? I tried the link but it expired.";
      m.dedup_key = "bench:" + std::to_string(++key);
    }
    auto r = store->append_inbound(messages);
    if (!r.ok()) {
      std::fprintf(stderr, "insert failed: %s\n", r.status().to_string().c_str());
      std::exit(1);
    }
  }
  const double s = seconds_since(start);
  std::printf("inbound, %-6s sync, %3d per transaction: %9.0f messages/s (%d in %.2f s)\n",
              sync == SqliteSync::kFull ? "FULL" : "NORMAL", batch, total / s, total, s);
}

// A word of a skewed vocabulary: low ranks are common, as in speech.
std::string word(std::mt19937& rng) {
  static const std::vector<std::string> kStems = {"заказ", "достав", "оплат",  "возврат",
                                                  "order", "refund", "parcel", "пароль"};
  const auto rank =
      static_cast<int>(std::pow(20000.0, std::uniform_real_distribution<>(0, 1)(rng)));
  return kStems[static_cast<std::size_t>(rank) % kStems.size()] + std::to_string(rank);
}

int recall_bench(const std::string& dir, int total, int chat_count, int dim) {
  auto store = open_store_or_die(dir + "/recall.db", SqliteSync::kNormal);
  std::vector<ChatId> chats;
  for (int c = 0; c < chat_count; ++c) {
    chats.push_back(store->upsert_chat({"bench", "chat-" + std::to_string(c), "", ""})->id);
  }
  std::mt19937 rng(11);
  const std::string model = "bench-" + std::to_string(dim);
  std::vector<RecallItem> batch;
  double generating = 0;
  const auto fill_start = Steady::now();
  for (int done = 0; done < total;) {
    const auto made = Steady::now();
    batch.clear();
    for (int i = 0; i < 1000 && done < total; ++i, ++done) {
      RecallItem item;
      item.chat_id = chats[rng() % chats.size()];
      item.kind = "message";
      item.key = "message:" + std::to_string(done);
      item.message_id = done + 1;
      for (int w = 0; w < 8; ++w) item.terms += (w ? " " : "") + word(rng);
      item.text = item.terms;
      item.vector = unit_vector(rng, dim);
      item.vector_model = model;
      batch.push_back(std::move(item));
    }
    generating += seconds_since(made);
    if (Status s = store->add_recall_items(batch); !s.ok()) {
      std::fprintf(stderr, "indexing failed: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  const double fill = seconds_since(fill_start) - generating;
  std::printf("indexed %d recall items (%d-dim vectors) in %d chats in %.1f s: %.0f items/s\n",
              total, dim, chat_count, fill, total / fill);

  constexpr int kQueries = 5000;
  std::vector<double> terms_us;
  std::vector<double> vectors_us;
  std::size_t term_hits = 0;
  std::size_t vector_hits = 0;
  for (int i = 0; i < kQueries; ++i) {
    const ChatId chat = chats[rng() % chats.size()];
    TermQuery tq;
    tq.chat_id = chat;
    for (int w = 0; w < 4; ++w) tq.terms.push_back(word(rng));
    auto t0 = Steady::now();
    auto th = store->search_recall_terms(tq);
    terms_us.push_back(micros_since(t0));
    VectorQuery vq;
    vq.chat_id = chat;
    vq.vector = unit_vector(rng, dim);
    vq.model = model;
    t0 = Steady::now();
    auto vh = store->search_recall_vectors(vq);
    vectors_us.push_back(micros_since(t0));
    if (!th.ok() || !vh.ok()) return 1;
    term_hits += th->size();
    vector_hits += vh->size();
  }
  print_latency("search_recall_terms, 4 terms, limit 20", terms_us);
  std::printf("  %.1f hits a query\n", static_cast<double>(term_hits) / kQueries);
  print_latency("search_recall_vectors, top 20", vectors_us);
  std::printf("  %.1f hits a query, %.1f items a chat\n",
              static_cast<double>(vector_hits) / kQueries, static_cast<double>(total) / chat_count);
  std::vector<double> backlog_us;
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = Steady::now();
    auto backlog = store->recall_items_without_vector(model, 100);
    backlog_us.push_back(micros_since(t0));
    if (!backlog.ok() || !backlog->empty()) return 1;
  }
  print_latency("recall_items_without_vector, empty backlog", backlog_us);
  const auto erase_start = Steady::now();
  auto erased = store->erase_chat(chats.front());
  if (!erased.ok()) return 1;
  std::printf("erase_chat of one chat (%lld memory records; the FTS index merged): %.2f s\n",
              static_cast<long long>(erased->memory_records), seconds_since(erase_start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  int total_messages = 1'000'000;
  bool recall = false;
  int items = 100'000;
  int chat_count = 10'000;
  int dim = 384;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--messages" && i + 1 < argc) {
      total_messages = std::atoi(argv[++i]);
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--recall") {
      recall = true;
    } else if (arg == "--items" && i + 1 < argc) {
      items = std::atoi(argv[++i]);
    } else if (arg == "--chats" && i + 1 < argc) {
      chat_count = std::atoi(argv[++i]);
    } else if (arg == "--dim" && i + 1 < argc) {
      dim = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: llmassist-bench-store [--messages N] [--dir DIR]\n"
                   "       llmassist-bench-store --recall [--items N] [--chats M] [--dim D] "
                   "[--dir DIR]\n");
      return 2;
    }
  }
  const bool own_dir = dir.empty();
  if (own_dir) {
    std::string pattern = (std::filesystem::temp_directory_path() / "llmassist-bench-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
  }
  std::printf("llmassist store benchmark in %s\n", dir.c_str());
  if (recall) {
    if (items < 1 || chat_count < 1 || dim < 1) {
      std::fprintf(stderr, "--items, --chats and --dim must be positive\n");
      return 2;
    }
    const int rc = recall_bench(dir, items, chat_count, dim);
    if (own_dir) std::filesystem::remove_all(dir);
    return rc;
  }

  insert_rate(dir, SqliteSync::kFull, 1, 2000);
  insert_rate(dir, SqliteSync::kNormal, 1, 20000);
  insert_rate(dir, SqliteSync::kFull, 100, 100000);
  insert_rate(dir, SqliteSync::kNormal, 100, 100000);

  // A store with total_messages in 10,000 chats, filled in batches.
  constexpr int kChats = 10000;
  const std::string path = dir + "/window.db";
  auto store = open_store_or_die(path, SqliteSync::kNormal);
  std::vector<ChatId> chats;
  std::vector<SessionId> sessions;
  for (int c = 0; c < kChats; ++c) {
    auto chat = store->upsert_chat({"bench", "chat-" + std::to_string(c), "", ""});
    chats.push_back(chat->id);
    sessions.push_back(store->open_session(chat->id)->id);
  }
  std::mt19937 rng(7);
  const auto fill_start = Steady::now();
  std::vector<InboundMessage> batch(1000);
  for (int done = 0; done < total_messages; done += static_cast<int>(batch.size())) {
    for (auto& m : batch) {
      m.chat_id = chats[rng() % kChats];
      m.text = "A question of typical length about an order, a refund or a password.";
    }
    if (!store->append_inbound(batch).ok()) return 1;
  }
  std::printf("filled %d messages in %d chats in %.1f s\n", total_messages, kChats,
              seconds_since(fill_start));

  constexpr int kReads = 20000;
  std::vector<double> window_us;
  std::vector<double> history_us;
  window_us.reserve(kReads);
  history_us.reserve(kReads);
  std::size_t rows = 0;
  for (int i = 0; i < kReads; ++i) {
    const std::size_t c = rng() % kChats;
    auto t0 = Steady::now();
    auto window = store->recent_messages(sessions[c], 20);
    window_us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
    t0 = Steady::now();
    auto page = store->chat_history(chats[c], {.limit = 50});
    history_us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
    if (!window.ok() || !page.ok()) return 1;
    rows += window->size();
  }
  const auto w = percentiles(window_us);
  const auto h = percentiles(history_us);
  std::printf(
      "last-20 window at %d messages: p50 %.1f us, p99 %.1f us, max %.1f us "
      "(%d reads, %.1f rows each)\n",
      total_messages, w.p50, w.p99, w.max, kReads, static_cast<double>(rows) / kReads);
  std::printf("history page of 50 at %d messages: p50 %.1f us, p99 %.1f us, max %.1f us\n",
              total_messages, h.p50, h.p99, h.max);

  store.reset();
  if (own_dir) std::filesystem::remove_all(dir);
  return 0;
}
