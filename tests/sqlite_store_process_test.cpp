// The SQLite store across processes: several writers on one file, and a writer killed with
// SIGKILL in the middle of its work.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "llmassist/sqlite/sqlite_store.h"
#include "support/temp_dir.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::TempDir;

namespace {

std::unique_ptr<MessageStore> open_store(const std::string& path) {
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  options.busy_timeout = 20s;
  auto store = open_sqlite_store(options);
  if (!store.ok()) return nullptr;
  return std::move(store).value();
}

// Runs `body` in a child process; returns its pid. The child exits 0 when body returns true.
template <typename Body>
pid_t spawn(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = false;
    try {
      ok = body();
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs `work(w, report)` in `workers` child processes at once: each reports the ids it claimed
// with report(id) (false when the pipe broke) and returns whether it ended well, which each
// child's exit status is checked for. Every id reported, in the order read.
std::vector<std::int64_t> ids_from_processes(
    int workers, const std::function<bool(int, const std::function<bool(std::int64_t)>&)>& work) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::vector<pid_t> pids;
  for (int w = 0; w < workers; ++w) {
    pids.push_back(spawn([&, w] {
      ::close(fds[0]);
      return work(w, [&](std::int64_t id) {
        return ::write(fds[1], &id, sizeof id) == static_cast<ssize_t>(sizeof id);
      });
    }));
  }
  ::close(fds[1]);
  std::vector<std::int64_t> ids;
  std::int64_t id = 0;
  while (::read(fds[0], &id, sizeof id) == sizeof id) ids.push_back(id);
  ::close(fds[0]);
  for (pid_t pid : pids) CHECK(wait_exit(pid) == 0);
  return ids;
}

std::string integrity(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return "cannot open";
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE("sqlite store, processes: writers and claimers in several processes share one file") {
  TempDir dir;
  const std::string path = dir.file("shared.db");
  ChatId chat_id = 0;
  {
    auto store = open_store(path);
    REQUIRE(store);
    chat_id = (*store).upsert_chat({"telegram", "1", "", ""})->id;
  }
  constexpr int kWriters = 3;
  constexpr int kPerWriter = 150;
  std::vector<pid_t> pids;
  for (int w = 0; w < kWriters; ++w) {
    pids.push_back(spawn([&, w] {
      auto store = open_store(path);
      if (!store) return false;
      for (int i = 0; i < kPerWriter; ++i) {
        InboundMessage m;
        m.chat_id = chat_id;
        m.text = "m";
        // Every writer also resends the others' keys: duplicates across processes.
        m.dedup_key = "k" + std::to_string(i);
        if (!append_inbound(*store, m).ok()) return false;
      }
      return true;
    }));
  }
  for (pid_t pid : pids) CHECK(wait_exit(pid) == 0);
  auto store = open_store(path);
  REQUIRE(store);
  // Each key stored once, whatever process got there first.
  CHECK(store->chat_history(chat_id, {.limit = 1000})->size() == kPerWriter);

  // Now several processes claim the replies; each must be claimed exactly once. Each child
  // writes the ids it claimed to a pipe.
  const auto ids = ids_from_processes(kWriters, [&](int w, const auto& report) {
    auto child = open_store(path);
    if (!child) return false;
    ClaimRequest q;
    q.status = ReplyStatus::kNew;
    q.to = ReplyStatus::kGenerating;
    q.worker = "process-" + std::to_string(w);
    q.limit = 2;
    while (true) {
      auto claimed = child->claim_replies(q);
      if (!claimed.ok()) return false;
      if (claimed->empty()) return true;
      for (auto& r : *claimed) {
        if (!report(r.id)) return false;
      }
    }
  });
  std::set<std::int64_t> unique(ids.begin(), ids.end());
  CHECK(ids.size() == kPerWriter);
  CHECK(unique.size() == kPerWriter);
}

TEST_CASE("sqlite store, processes: a writer killed with SIGKILL loses nothing it committed") {
  TempDir dir;
  const std::string path = dir.file("killed.db");
  ChatId chat_id = 0;
  {
    auto store = open_store(path);
    REQUIRE(store);
    chat_id = store->upsert_chat({"telegram", "1", "", ""})->id;
  }
  std::mt19937 rng(12345);
  std::set<std::string> acknowledged;
  for (int round = 0; round < 4; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = spawn([&] {
      ::close(fds[0]);
      auto store = open_store(path);
      if (!store) return false;
      for (int i = 0;; ++i) {
        // Alternate single messages and batches; report each key after its commit returned.
        std::vector<InboundMessage> batch(i % 2 == 0 ? 1 : 20);
        for (std::size_t j = 0; j < batch.size(); ++j) {
          batch[j].chat_id = chat_id;
          batch[j].text = std::string(64 + (i % 7) * 100, 'x');
          batch[j].dedup_key =
              "r" + std::to_string(round) + "-" + std::to_string(i) + "-" + std::to_string(j);
        }
        if (!store->append_inbound(batch).ok()) return false;
        for (auto& m : batch) {
          std::string line = m.dedup_key + "\n";
          if (::write(fds[1], line.data(), line.size()) < 0) return false;
        }
      }
    });
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 150));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(wait_exit(pid) == 128 + SIGKILL);
    std::string data;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    std::size_t start = 0;
    int lines = 0;
    for (std::size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
      acknowledged.insert(data.substr(start, nl - start));
      ++lines;
    }
    CHECK(lines > 0);  // the child got some work done before it died

    CHECK(integrity(path) == "ok");
    auto store = open_store(path);
    REQUIRE(store);
    // Every acknowledged message is there: a duplicate append finds it.
    std::set<std::string> stored;
    HistoryQuery q;
    q.limit = 1000;
    while (true) {
      auto page = store->chat_history(chat_id, q);
      REQUIRE(page.ok());
      if (page->empty()) break;
      for (auto& m : *page) stored.insert(m.dedup_key);
      q.before_id = page->back().id;
    }
    for (const auto& key : acknowledged) {
      if (!stored.count(key)) FAIL("acknowledged message lost: " << key);
    }
    // Replies opened with their messages: never a message without its reply.
    auto replies = store->list_replies({.limit = 1000});
    REQUIRE(replies.ok());
  }
  auto store = open_store(path);
  REQUIRE(store);
  // Message and reply counts agree: each inbound commit wrote both or neither.
  auto stats = store->stats({});
  REQUIRE(stats.ok());
  std::int64_t messages = 0;
  for (auto& d : stats->days) messages += d.user_messages;
  CHECK(messages == stats->replies_by_status[static_cast<int>(ReplyStatus::kNew)]);
  CHECK(messages >= static_cast<std::int64_t>(acknowledged.size()));
}

namespace {

std::unique_ptr<MessageStore> open_store_at(const std::string& path, std::shared_ptr<Clock> clock) {
  SqliteStoreOptions options;
  options.path = path;
  options.logger = null_logger();
  options.busy_timeout = 20s;
  options.clock = std::move(clock);
  auto store = open_sqlite_store(options);
  if (!store.ok()) return nullptr;
  return std::move(store).value();
}

NewMemoryJob embed_job(int i) {
  NewMemoryJob j;
  j.kind = "embed";
  j.key = "embed:" + std::to_string(i);
  return j;
}

}  // namespace

TEST_CASE(
    "sqlite store, processes: memory jobs claimed by several processes at once are never "
    "held by two") {
  TempDir dir;
  const std::string path = dir.file("jobs.db");
  constexpr int kJobs = 300;
  {
    auto store = open_store(path);
    REQUIRE(store);
    for (int i = 0; i < kJobs; ++i) REQUIRE(store->enqueue_job(embed_job(i)).ok());
  }
  constexpr int kWorkers = 3;
  const auto ids = ids_from_processes(kWorkers, [&](int w, const auto& report) {
    auto store = open_store(path);
    if (!store) return false;
    JobClaim claim;
    claim.worker = "process-" + std::to_string(w);
    claim.limit = 3;
    while (true) {
      auto claimed = store->claim_jobs(claim);
      if (!claimed.ok()) return false;
      if (claimed->empty()) return true;
      for (const MemoryJob& j : *claimed) {
        // Reported while held: a second holder would report it too.
        if (!report(j.id)) return false;
        if (!store->finish_job(j.id, claim.worker).ok()) return false;
      }
    }
  });
  const std::set<std::int64_t> unique(ids.begin(), ids.end());
  CHECK(ids.size() == kJobs);
  CHECK(unique.size() == kJobs);
  auto store = open_store(path);
  REQUIRE(store);
  CHECK(store->list_jobs("embed", false, 1000)->empty());
  auto done = store->list_jobs("embed", true, 1000);
  REQUIRE(done.ok());
  REQUIRE(done->size() == kJobs);
  for (const MemoryJob& j : *done) {
    CHECK(j.attempts == 1);
    CHECK(j.done_at.has_value());
  }
}

TEST_CASE(
    "sqlite store, processes: a job held by a process killed with SIGKILL is taken again "
    "after its lease and finished once") {
  TempDir dir;
  const std::string path = dir.file("killed-job.db");
  // Both processes read one stepped clock's start; the parent moves its own past the lease.
  auto clock = std::make_shared<llmassist::testing::ManualClock>();
  JobId job_id = 0;
  {
    auto store = open_store_at(path, clock);
    REQUIRE(store);
    auto queued = store->enqueue_job(embed_job(1));
    REQUIRE(queued.ok());
    job_id = queued->id;
  }
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = spawn([&] {
    ::close(fds[0]);
    auto store = open_store_at(path, std::make_shared<llmassist::testing::ManualClock>());
    if (!store) return false;
    JobClaim claim;
    claim.worker = "doomed";
    claim.lease = 60s;
    auto claimed = store->claim_jobs(claim);
    if (!claimed.ok() || claimed->size() != 1) return false;
    const std::int64_t id = claimed->front().id;
    if (::write(fds[1], &id, sizeof id) != sizeof id) return false;
    while (true) ::pause();  // holds the job until killed
  });
  ::close(fds[1]);
  std::int64_t held = 0;
  REQUIRE(::read(fds[0], &held, sizeof held) == sizeof held);
  ::close(fds[0]);
  CHECK(held == job_id);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  CHECK(wait_exit(pid) == 128 + SIGKILL);

  CHECK(integrity(path) == "ok");
  auto store = open_store_at(path, clock);
  REQUIRE(store);
  JobClaim claim;
  claim.worker = "survivor";
  auto early = store->claim_jobs(claim);
  REQUIRE(early.ok());
  CHECK(early->empty());  // the dead process's lease still runs
  clock->advance(61s);
  auto taken = store->claim_jobs(claim);
  REQUIRE(taken.ok());
  REQUIRE(taken->size() == 1);
  CHECK(taken->front().id == job_id);
  CHECK(taken->front().attempts == 2);
  CHECK(store->finish_job(job_id, "doomed").code() == StatusCode::kAborted);
  CHECK(store->finish_job(job_id, "survivor").ok());
  CHECK(store->finish_job(job_id, "survivor").code() == StatusCode::kAborted);
  clock->advance(1h);
  CHECK(store->claim_jobs(claim)->empty());
  auto job = store->get_job(job_id);
  REQUIRE(job.ok());
  CHECK(job->done_at.has_value());
  CHECK(job->attempts == 2);
}
