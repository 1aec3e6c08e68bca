// llmassist-bench-store: how fast the SQLite MessageStore takes inbound messages and reads the
// memory window. Prints its figures; see docs/performance.md for recorded runs.
//
//   llmassist-bench-store [--messages N] [--dir DIR]
//
// 1. Durable inbound inserts per second: one message per transaction (synchronous=FULL, then
//    NORMAL) and batches of 100 (as a getUpdates page arrives).
// 2. The last-20 window of a chat's session and a page of its history, read at random from a
//    store holding N messages (default 1,000,000) in 10,000 chats.
#include <llmassist/sqlite/sqlite_store.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

using namespace llmassist;
using Steady = std::chrono::steady_clock;

namespace {

std::unique_ptr<MessageStore> open_or_die(const std::string& path, SqliteSync sync) {
  SqliteStoreOptions options;
  options.path = path;
  options.sync = sync;
  auto store = open_sqlite_store(options);
  if (!store.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), store.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

double seconds_since(Steady::time_point start) {
  return std::chrono::duration<double>(Steady::now() - start).count();
}

void insert_rate(const std::string& dir, SqliteSync sync, int batch, int total) {
  const std::string path = dir + "/insert-" + std::to_string(static_cast<int>(sync)) + "-" +
                           std::to_string(batch) + ".db";
  auto store = open_or_die(path, sync);
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

struct Percentiles {
  double p50, p99, max;
};
Percentiles percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
  };
  return {at(0.50), at(0.99), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  int total_messages = 1'000'000;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--messages" && i + 1 < argc) {
      total_messages = std::atoi(argv[++i]);
    } else if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: llmassist-bench-store [--messages N] [--dir DIR]\n");
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

  insert_rate(dir, SqliteSync::kFull, 1, 2000);
  insert_rate(dir, SqliteSync::kNormal, 1, 20000);
  insert_rate(dir, SqliteSync::kFull, 100, 100000);
  insert_rate(dir, SqliteSync::kNormal, 100, 100000);

  // A store with total_messages in 10,000 chats, filled in batches.
  constexpr int kChats = 10000;
  const std::string path = dir + "/window.db";
  auto store = open_or_die(path, SqliteSync::kNormal);
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
