// llmassist-bench-bot: the whole bot, end to end. The real llmassist-bot process runs against the
// mock Telegram Bot API (tests/support) and a mock LLM (bench/support: one epoll thread, a fixed
// OpenAI answer after a set delay), in auto policy, with Telegram's pacing off.
//
//   1. A burst of N messages (default 2,000) from 100 chats, pushed at once: messages per second
//      from the first push to the last answer received, the bot's CPU time per message
//      (/proc/<pid>/stat), its peak RSS (VmHWM); with a zero-latency LLM, then with 100 ms.
//   2. The latency the library adds per message, one message at a time: from the update being
//      pushed to the answer arriving, minus the LLM's delay; p50 and p99 over 300 messages.
//
//   3. With --scenario thousand-chats instead: 1,000 chats ask one question each at once, the LLM
//      answers after 2 s, and the bot runs with its default settings (the assistant's and the
//      providers' limits); the time until every chat has its answer and the p50/p99 of each
//      chat's wait. Telegram's pacing is at its defaults unless --pacing off: adaptive, so the
//      global 30 messages a second hold only after a 429, which the mock never answers.
//      (--pacing default runs the bursts of 1. and 2. with the default pacing too.)
//
// Beside peak RSS each burst prints the peak private memory (Private_Clean + Private_Dirty of
// /proc/<pid>/smaps_rollup, sampled every 20 ms): RSS counts the pages of shared libraries too.
//
// Each answer is drafted with the chat's recent messages (window 8) as context, stored, sent and
// recorded, as in production. The database is synchronous=FULL (the default) unless --normal.
// With --tls the mock Bot API speaks https, as Telegram does, with a certificate from a test CA
// that the bot trusts through SSL_CERT_FILE (the mock LLM stays plain HTTP, as a local model).
//
// 4. With --postgres (a temporary PostgreSQL server of tests/support/postgres_server.sh, stopped
//    at the end; synchronous_commit on, its default) or --postgres-url URL (the password in the
//    variable named by --postgres-password-env, default PGPASSWORD): the bursts of 1. and the
//    latency of 2. with the bot on PostgreSQL, in webhook mode behind the tests' load balancer
//    (tests/support/webhook_balancer.h: round robin, a chat's updates one after another, 40 at
//    once as Telegram's default max_connections), with 1 and then 3 bot processes on one
//    schema (--processes N: only N). msgs/s and the CPU of all bot processes together per
//    message; with --postgres the server's processes' CPU too. Then the claim latency: 12
//    threads on 3 stores of one schema claim 2,000 questions of 100 chats as the drafting
//    does (head of chat, past approved, one at a time), each claim followed by its draft's
//    commit; p50/p99 of claim_replies.
//
// Usage: llmassist-bench-bot [--messages N] [--chats N] [--normal] [--tls] [--bot PATH]
//                            [--scenario thousand-chats [--pacing default|off]]
//                            [--postgres | --postgres-url URL [--postgres-password-env VAR]]
//                            [--processes N]
// --bot runs another build of llmassist-bot (to compare two builds on the same machine state).
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <thread>
#include <vector>

#include "llmassist/postgres/postgres_store.h"
#include "support/bench_server.h"
#include "support/bench_stats.h"
#include "support/mock_telegram_server.h"
#include "support/tls_test_cert.h"
#include "support/webhook_balancer.h"

using namespace std::chrono_literals;
using llmassist::bench::DelayingServer;
using llmassist::testing::MockTelegramServer;
using llmassist::testing::WebhookBalancer;
using Steady = std::chrono::steady_clock;

namespace {

const std::string kAnswer =
    R"({"id":"b","object":"chat.completion","model":"mock","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"Open Settings, then Security, then Reset."},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":9}})";

long ticks_per_second() { return ::sysconf(_SC_CLK_TCK); }

// User + system CPU of a process, in milliseconds.
double cpu_ms(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto close = stat.rfind(')');
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt
  long utime = 0, stime = 0;
  fields >> utime >> stime;
  return 1000.0 * static_cast<double>(utime + stime) / static_cast<double>(ticks_per_second());
}

// The parent of a process (0 when it is gone).
pid_t parent_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string state;
  pid_t parent = 0;
  fields >> state >> parent;
  return parent;
}

// The PostgreSQL server the bench runs (--postgres): its postmaster's pid; 0: none.
pid_t& postmaster_pid() {
  static pid_t pid = 0;
  return pid;
}

// The CPU of the PostgreSQL server's processes (the postmaster and its children: a backend per
// connection of the bots' pools, the WAL writer, the checkpointer...), by pid, in ms.
struct ServerCpu {
  bool known = false;
  std::map<pid_t, double> by_pid;
  // The CPU used since `before` by the processes alive now (one that ended meanwhile is not
  // counted: the bots' connections live as long as the bots).
  [[nodiscard]] double since(const ServerCpu& before) const {
    double sum = 0;
    for (const auto& [pid, ms] : by_pid) {
      auto it = before.by_pid.find(pid);
      sum += ms - (it == before.by_pid.end() ? 0 : it->second);
    }
    return sum;
  }
};

ServerCpu server_cpu() {
  ServerCpu c;
  const pid_t postmaster = postmaster_pid();
  if (postmaster <= 0) return c;
  c.known = true;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::atoi(name.c_str());
    if (pid == postmaster || parent_of(pid) == postmaster) c.by_pid[pid] = cpu_ms(pid);
  }
  return c;
}

long status_kb(pid_t pid, const std::string& field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

// Private_Clean + Private_Dirty, and Rss, of /proc/<pid>/smaps_rollup, in KiB.
struct Memory {
  long private_kb = 0;
  long rss_kb = 0;
};

Memory smaps_rollup(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps_rollup", pid));
  std::string line;
  Memory m;
  auto value = [&](const char* field) {
    const std::size_t n = std::strlen(field);
    return line.compare(0, n, field) == 0 ? std::strtol(line.c_str() + n, nullptr, 10) : 0L;
  };
  while (std::getline(in, line)) {
    m.private_kb += value("Private_Clean:") + value("Private_Dirty:");
    m.rss_kb += value("Rss:");
  }
  return m;
}

// The peak of smaps_rollup's figures over a run, sampled as the run is polled.
struct MemorySampler {
  pid_t pid;
  Memory peak;
  long rss_at_private_peak_kb = 0;
  Steady::time_point next{};
  void sample() {
    const auto now = Steady::now();
    if (now < next) return;
    next = now + 20ms;
    const Memory m = smaps_rollup(pid);
    if (m.private_kb > peak.private_kb) {
      peak.private_kb = m.private_kb;
      rss_at_private_peak_kb = m.rss_kb;
    }
    peak.rss_kb = std::max(peak.rss_kb, m.rss_kb);
  }
};

// Counted without copying the calls: the bench polls this while the bot runs, and a copy of
// thousands of recorded calls under the mock's lock would slow the mock down.
std::size_t answers(const MockTelegramServer& tg) { return tg.count_calls("sendMessage", 200); }

struct Run {
  double seconds = 0;
  double step_ms = 0;                     // median time between two answers of one chat
  double first_ms = 0;                    // from the first push to the slowest chat's first answer
  double cpu_ms_per_message = 0;          // all bots together
  double server_cpu_ms_per_message = -1;  // the PostgreSQL server's processes; < 0: not known
  long peak_rss_kb = 0;
  long peak_private_kb = 0;
  long rss_at_private_peak_kb = 0;
  // From the first push to each chat's last answer, sorted.
  std::vector<double> chat_done_ms;
};

// What a run varies.
struct Options {
  bool normal_sync = false;
  std::string bot = LLMASSIST_BOT_BINARY;
  // The mock Bot API's certificate and key with --tls.
  const llmassist::testing::TlsTestCertificates* tls = nullptr;
  // The bot's own defaults for the assistant's concurrency limits (else 256 drafts at once, as
  // the bench has always run), and for Telegram's pacing (else off).
  bool default_limits = false;
  bool default_pacing = false;
  // A PostgreSQL database for the bots (each run in a fresh schema), else SQLite.
  std::string postgres_url;
  // > 0: this many bots in webhook mode behind the balancer; 0: one bot polling.
  int processes = 0;
};

// The variable the bots read the database's password from.
constexpr const char* kPasswordVariable = "LLMASSIST_BENCH_DB_PASSWORD";
constexpr const char* kWebhookSecret = "the-bench-balancer-secret-0123456789";
// Deliveries at once through the balancer: Telegram's default max_connections.
constexpr int kBalancerThreads = 40;

// A loopback port that was free a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fmt::print(stderr, "no free port: {}\n", std::strerror(errno));
    std::exit(1);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A schema no earlier run of this process used.
std::string fresh_schema() {
  static int n = 0;
  return fmt::format("bench_{}_{}", ::getpid(), ++n);
}

llmassist::testing::MockHttpServer::Options telegram_http(const Options& options) {
  llmassist::testing::MockHttpServer::Options o;
  if (options.tls != nullptr) {
    o.tls_cert_file = options.tls->cert_file();
    o.tls_key_file = options.tls->key_file();
  }
  return o;
}

// Starts the bots on a fresh database (or schema); `llm_delay` for the mock LLM.
struct Setup {
  std::filesystem::path dir;
  MockTelegramServer telegram;
  DelayingServer llm;
  std::vector<pid_t> bots;
  std::unique_ptr<WebhookBalancer> balancer;  // with processes > 0

  Setup(std::chrono::milliseconds llm_delay, const Options& options)
      : telegram(MockTelegramServer::kDefaultToken, telegram_http(options)),
        llm(llm_delay, kAnswer, "application/json") {
    char pattern[] = "/tmp/llmassist-bench-bot-XXXXXX";
    dir = ::mkdtemp(pattern);
    nlohmann::json config = {
        {"database", (dir / "bot.db").string()},
        {"telegram",
         {{"token", telegram.token()},
          {"api_url", telegram.api_url()},
          {"polling", {{"timeout_s", 5}}}}},
        {"assistant", {{"moderation", "auto"}, {"texts", {{"human_button", ""}}}}},
        {"memory", {{"window", 8}}},
        {"providers",
         nlohmann::json::array({{{"type", "openai"},
                                 {"name", "mock"},
                                 {"base_url", fmt::format("http://127.0.0.1:{}/v1", llm.port())},
                                 {"model", "mock"},
                                 {"retries", 0}}})}};
    if (options.normal_sync) config["database_sync"] = "normal";
    if (!options.postgres_url.empty()) {
      config["database"] = options.postgres_url;
      config["database_password_env"] = kPasswordVariable;
      config["database_schema"] = fresh_schema();
    }
    if (!options.default_pacing) {
      config["telegram"]["pacing"] = {{"per_chat_interval_ms", 0}, {"global_per_second", 0}};
    }
    if (!options.default_limits) config["assistant"]["max_concurrent_drafts"] = 256;
    std::vector<std::string> webhooks;
    for (int i = 0; i < std::max(1, options.processes); ++i) {
      if (options.processes > 0) {
        const int port = free_port();
        config["telegram"]["mode"] = "webhook";
        config["telegram"]["webhook"] = {{"listen", fmt::format("127.0.0.1:{}", port)},
                                         {"path", "/telegram/webhook"},
                                         {"secret", kWebhookSecret}};
        config["assistant"]["instance"] = fmt::format("bot-{}", i);
        webhooks.push_back(fmt::format("http://127.0.0.1:{}/telegram/webhook", port));
      }
      const std::string config_path = (dir / fmt::format("bot-{}.json", i)).string();
      std::ofstream(config_path) << config.dump();
      bots.push_back(spawn(options.bot, config_path, (dir / fmt::format("bot-{}.log", i))));
    }
    if (options.processes == 0) {
      // Ready once it polls.
      telegram.wait_for_calls("getUpdates", 1, 10s);
      return;
    }
    // Ready once every webhook listens.
    for (int i = 0; i < options.processes; ++i) {
      const auto log = dir / fmt::format("bot-{}.log", i);
      const auto deadline = Steady::now() + 30s;
      while (read_file(log).find("webhook: listening on") == std::string::npos) {
        if (Steady::now() > deadline) {
          fmt::print(stderr, "bot {} did not start:\n{}\n", i, read_file(log));
          std::exit(1);
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    balancer = std::make_unique<WebhookBalancer>(WebhookBalancer::Options{
        .backends = webhooks, .secret = kWebhookSecret, .threads = kBalancerThreads});
  }
  ~Setup() {
    balancer.reset();
    for (pid_t pid : bots) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
  }

  // Telegram's updates: polled from the mock, or posted through the balancer.
  struct Update {
    std::int64_t chat = 0;
    std::int64_t id = 0;
    std::string raw;
  };
  void push(std::vector<Update> updates) {
    if (balancer) {
      std::vector<std::pair<std::int64_t, std::string>> by_chat;
      for (auto& u : updates) by_chat.emplace_back(u.chat, std::move(u.raw));
      balancer->deliver(std::move(by_chat));
    } else {
      std::vector<std::pair<std::int64_t, std::string>> by_id;
      for (auto& u : updates) by_id.emplace_back(u.id, std::move(u.raw));
      telegram.push_updates(std::move(by_id));
    }
  }

  // The CPU of all the bots, in milliseconds.
  [[nodiscard]] double bots_cpu_ms() const {
    double sum = 0;
    for (pid_t pid : bots) sum += cpu_ms(pid);
    return sum;
  }

 private:
  static pid_t spawn(const std::string& bot, const std::string& config_path,
                     const std::filesystem::path& log) {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const char* argv[] = {bot.c_str(), "--config", config_path.c_str(), nullptr};
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(argv[0], const_cast<char**>(argv));
      ::_exit(127);
    }
    ::close(out);
    return pid;
  }
};

Run burst(int messages, int chats, std::chrono::milliseconds llm_delay, const Options& options) {
  Setup s(llm_delay, options);
  // The updates are made before the clock starts and arrive at once: making them one by one
  // inside the measured time took the bench ~50 ms of CPU beside the bot's.
  std::vector<Setup::Update> updates;
  for (int i = 0; i < messages; ++i) {
    const std::int64_t id = 10000 + i;
    const std::int64_t chat = 700000 + i % chats;
    updates.push_back({chat, id,
                       MockTelegramServer::text_update(
                           id, fmt::format("How do I reset my password? #{}", i), chat)});
  }
  const double cpu_before = s.bots_cpu_ms();
  const ServerCpu server_before = server_cpu();
  MemorySampler memory{s.bots.front()};
  const auto start = Steady::now();
  s.push(std::move(updates));
  while (answers(s.telegram) < static_cast<std::size_t>(messages)) {
    memory.sample();
    if (Steady::now() - start > 300s) {
      fmt::print(stderr, "gave up: {} of {} answered\n", answers(s.telegram), messages);
      std::exit(1);
    }
    std::this_thread::sleep_for(2ms);
  }
  Run r;
  r.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  // Where the time went: a chat's answers come one after another (one in flight per chat), so
  // the run lasts about its first answer plus (messages per chat - 1) steps.
  std::map<std::string, std::vector<Steady::time_point>> by_chat;
  for (const auto& c : s.telegram.calls("sendMessage")) {
    if (c.status == 200)
      by_chat[c.params.value("chat_id", nlohmann::json()).dump()].push_back(c.at);
  }
  std::vector<double> steps;
  for (auto& [chat, at] : by_chat) {
    std::sort(at.begin(), at.end());
    r.first_ms =
        std::max(r.first_ms, std::chrono::duration<double, std::milli>(at.front() - start).count());
    r.chat_done_ms.push_back(std::chrono::duration<double, std::milli>(at.back() - start).count());
    for (std::size_t i = 1; i < at.size(); ++i) {
      steps.push_back(std::chrono::duration<double, std::milli>(at[i] - at[i - 1]).count());
    }
  }
  if (!steps.empty()) {
    std::nth_element(steps.begin(), steps.begin() + static_cast<long>(steps.size() / 2),
                     steps.end());
    r.step_ms = steps[steps.size() / 2];
  }
  r.cpu_ms_per_message = (s.bots_cpu_ms() - cpu_before) / messages;
  if (server_before.known) {
    r.server_cpu_ms_per_message = server_cpu().since(server_before) / messages;
  }
  r.peak_rss_kb = status_kb(s.bots.front(), "VmHWM");
  memory.sample();
  r.peak_private_kb = memory.peak.private_kb;
  r.rss_at_private_peak_kb = memory.rss_at_private_peak_kb;
  std::sort(r.chat_done_ms.begin(), r.chat_done_ms.end());
  return r;
}

void latency(int chats, const Options& options) {
  Setup s(0ms, options);
  std::vector<double> added;
  std::int64_t id = 50000;
  for (int i = 0; i < 300; ++i) {
    const std::size_t before = answers(s.telegram);
    const std::int64_t chat = 800000 + i % chats;
    std::vector<Setup::Update> one;
    one.push_back({chat, id, MockTelegramServer::text_update(id, "Where is my order?", chat)});
    const auto t = Steady::now();
    s.push(std::move(one));
    ++id;
    while (answers(s.telegram) == before) std::this_thread::sleep_for(50us);
    added.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t).count());
  }
  std::sort(added.begin(), added.end());
  fmt::print(
      "latency added per message (update pushed -> answer received, LLM at 0 ms, "
      "{} one at a time): p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n",
      added.size(), added[added.size() / 2], added[added.size() * 99 / 100], added.back());
}

std::unique_ptr<llmassist::MessageStore> open_postgres_or_die(const std::string& url,
                                                              const std::string& password,
                                                              const std::string& schema) {
  llmassist::PostgresStoreOptions o;
  o.connect.url = url;
  o.connect.password = password;
  o.connect.schema = schema;
  o.connect.logger = llmassist::null_logger();
  auto store = llmassist::open_postgres_store(o);
  if (!store.ok()) {
    fmt::print(stderr, "cannot open the PostgreSQL store: {}\n", store.status().to_string());
    std::exit(1);
  }
  return std::move(store).value();
}

template <typename T>
T ok_or_die(llmassist::Result<T> result, const char* what) {
  if (!result.ok()) {
    fmt::print(stderr, "{}: {}\n", what, result.status().to_string());
    std::exit(1);
  }
  return std::move(result).value();
}

// The claims of several processes on one schema, timed in this process: kStores stores (as many
// processes' pools), kThreads threads on each, claiming kQuestions questions of kChats chats as
// the drafting does, one at a time, each claim followed by its draft's commit
// (generating -> approved), which lets the chat's next question be claimed.
void claim_latency(const std::string& url, const std::string& password) {
  constexpr int kStores = 3;
  constexpr int kThreads = 4;
  constexpr int kChats = 100;
  constexpr int kQuestions = 2000;
  const std::string schema = fresh_schema();
  std::vector<std::unique_ptr<llmassist::MessageStore>> stores;
  for (int i = 0; i < kStores; ++i) stores.push_back(open_postgres_or_die(url, password, schema));
  std::vector<llmassist::ChatId> chats;
  for (int c = 0; c < kChats; ++c) {
    chats.push_back(
        ok_or_die(stores[0]->upsert_chat({"telegram", std::to_string(900000 + c), "Ann", ""}),
                  "a chat")
            .id);
  }
  // The chats interleaved, as they would ask.
  std::vector<llmassist::InboundMessage> questions;
  for (int q = 0; q < kQuestions / kChats; ++q) {
    for (const auto chat : chats) {
      llmassist::InboundMessage m;
      m.chat_id = chat;
      m.text = fmt::format("question {}", q);
      questions.push_back(std::move(m));
    }
  }
  for (std::size_t i = 0; i < questions.size(); i += 100) {
    const std::span<const llmassist::InboundMessage> batch(
        questions.data() + i, std::min<std::size_t>(100, questions.size() - i));
    ok_or_die(stores[0]->append_inbound(batch), "the questions");
  }
  std::mutex mu;
  std::vector<double> claim_ms;
  int claimed = 0;
  int found_none = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kStores * kThreads; ++t) {
    threads.emplace_back([&, t] {
      llmassist::MessageStore& store = *stores[static_cast<std::size_t>(t % kStores)];
      llmassist::ClaimRequest q;
      q.status = llmassist::ReplyStatus::kNew;
      q.to = llmassist::ReplyStatus::kGenerating;
      q.worker = fmt::format("bench-{}", t);
      q.head_of_chat_only = true;
      q.past_approved = true;
      q.channel = "telegram";
      while (true) {
        {
          std::lock_guard lock(mu);
          if (claimed >= kQuestions) return;
        }
        const auto start = Steady::now();
        auto got = ok_or_die(store.claim_replies(q), "a claim");
        const double ms = std::chrono::duration<double, std::milli>(Steady::now() - start).count();
        {
          std::lock_guard lock(mu);
          if (got.empty()) {
            ++found_none;
            continue;
          }
          claimed += static_cast<int>(got.size());
          claim_ms.push_back(ms);
        }
        for (const auto& reply : got) {
          llmassist::ReplyChange drafted;
          drafted.from = llmassist::ReplyStatus::kGenerating;
          drafted.to = llmassist::ReplyStatus::kApproved;
          drafted.draft_text = "Open Settings, then Security, then Reset.";
          ok_or_die(store.transition_reply(reply.id, drafted), "a draft's commit");
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto p = llmassist::bench::percentiles(claim_ms);
  fmt::print(
      "claim latency (claim_replies as the drafting claims: new -> generating, head of chat, past "
      "approved, one at a time; {} threads on {} stores of one schema, each claim followed by its "
      "draft's commit; {} questions of {} chats): p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms "
      "over {} claims ({} more found none)\n",
      kStores * kThreads, kStores, kQuestions, kChats, p.p50, p.p99, p.max, claim_ms.size(),
      found_none);
}

// A PostgreSQL server of tests/support/postgres_server.sh in a temporary folder, for the run;
// stopped and removed with this.
struct TemporaryPostgres {
  std::filesystem::path dir;
  std::string url;
  std::string password;

  TemporaryPostgres() {
    char pattern[] = "/tmp/llmassist-bench-postgres-XXXXXX";
    dir = ::mkdtemp(pattern);
    if (script("start") != 0) {
      fmt::print(stderr, "the PostgreSQL server did not start:\n{}\n",
                 read_file(dir / "script.log"));
      std::exit(1);
    }
    url = read_file(dir / "url");
    password = read_file(dir / "password");
    // The server's files are in DIR, or (as root) in the folder DIR/server points to.
    const auto home = std::filesystem::exists(dir / "server")
                          ? std::filesystem::read_symlink(dir / "server")
                          : dir;
    server_home = home;
    postmaster_pid() = std::atoi(read_file(home / "data" / "postmaster.pid").c_str());
  }
  ~TemporaryPostgres() {
    postmaster_pid() = 0;
    if (script("stop") != 0) {
      fmt::print(stderr, "the PostgreSQL server did not stop:\n{}\n",
                 read_file(dir / "script.log"));
    }
    std::filesystem::remove_all(server_home);
    std::filesystem::remove_all(dir);
  }

 private:
  int script(const char* command) const {
    const std::string line = fmt::format("'{}' {} '{}' >>'{}' 2>&1", LLMASSIST_POSTGRES_SCRIPT,
                                         command, dir.string(), (dir / "script.log").string());
    return std::system(line.c_str());
  }
  std::filesystem::path server_home;
};

}  // namespace

std::string memory_figures(const Run& r) {
  return fmt::format(
      "peak RSS {:.1f} MiB, peak private {:.1f} MiB (RSS then {:.1f} MiB: {:.1f} "
      "MiB shared pages)",
      r.peak_rss_kb / 1024.0, r.peak_private_kb / 1024.0, r.rss_at_private_peak_kb / 1024.0,
      (r.rss_at_private_peak_kb - r.peak_private_kb) / 1024.0);
}

// 1,000 chats asking at once, each one question, on a 2 s LLM, with the bot's default limits.
int thousand_chats(Options options) {
  constexpr int kChats = 1000;
  constexpr auto kLlm = 2000ms;
  options.default_limits = true;
  fmt::print(
      "llmassist-bot, auto policy, default settings, {} chats asking one question each at "
      "once, LLM at {} ms, Telegram pacing {}, synchronous={}{}\n",
      kChats, kLlm.count(),
      options.default_pacing
          ? "at its defaults (1 s per chat; 30 msgs/s in all once Telegram answers a 429, "
            "which the mock never does)"
          : "off",
      options.normal_sync ? "NORMAL" : "FULL", options.tls ? ", the Bot API over https" : "");
  const Run r = burst(kChats, kChats, kLlm, options);
  auto at = [&](double q) {
    return r.chat_done_ms[std::min(
        r.chat_done_ms.size() - 1,
        static_cast<std::size_t>(q * static_cast<double>(r.chat_done_ms.size())))];
  };
  const auto within_goal = std::count_if(r.chat_done_ms.begin(), r.chat_done_ms.end(),
                                         [](double ms) { return ms <= 2500; });
  fmt::print(
      "every chat answered within {:.2f} s (goal 2.5 s; {} of {} within it); a chat's "
      "wait: first {:.0f} ms, p50 {:.0f} ms, p90 {:.0f} ms, p99 {:.0f} ms; bot CPU {:.3f} "
      "ms per message, {}\n",
      r.seconds, within_goal, r.chat_done_ms.size(), r.chat_done_ms.front(), at(0.50), at(0.90),
      at(0.99), r.cpu_ms_per_message, memory_figures(r));
  return 0;
}

// A burst's line. The CPU is all the bots' together (and the PostgreSQL server's, when known);
// the memory is the first bot's.
std::string burst_figures(const Run& r, int messages, std::chrono::milliseconds delay) {
  const std::string server = r.server_cpu_ms_per_message < 0
                                 ? ""
                                 : fmt::format(", PostgreSQL server CPU {:.3f} ms per message",
                                               r.server_cpu_ms_per_message);
  return fmt::format(
      "LLM at {} ms: {:.0f} msgs/s ({} in {:.2f} s), bot CPU {:.3f} ms per message{}, {}; a "
      "chat's answers {:.2f} ms apart (median), every chat's first within {:.1f} ms",
      delay.count(), messages / r.seconds, messages, r.seconds, r.cpu_ms_per_message, server,
      memory_figures(r), r.step_ms, r.first_ms);
}

// The bursts and the latency with the bots on PostgreSQL behind the balancer, for 1 and 3
// processes (or options.processes), then the claim latency.
int on_postgres(int messages, int chats, Options options, bool temporary,
                const std::string& password_env) {
  std::unique_ptr<TemporaryPostgres> server;
  std::string password;
  if (temporary) {
    server = std::make_unique<TemporaryPostgres>();
    options.postgres_url = server->url;
    password = server->password;
  } else {
    const char* value = std::getenv(password_env.c_str());
    password = value == nullptr ? "" : value;
  }
  // Inherited by the bots.
  ::setenv(kPasswordVariable, password.c_str(), 1);
  fmt::print(
      "llmassist-bot on PostgreSQL ({}), auto policy, webhook mode behind the tests' balancer "
      "({} deliveries at once), {} messages from {} chats{}\n",
      temporary ? "a temporary server: synchronous_commit on, fsync on"
                : llmassist::describe_postgres_url(options.postgres_url),
      kBalancerThreads, messages, chats, options.tls ? ", the Bot API over https" : "");
  std::vector<int> counts = {1, 3};
  if (options.processes > 0) counts = {options.processes};
  for (int n : counts) {
    options.processes = n;
    for (auto delay : {0ms, 100ms}) {
      fmt::print("{} process{}, {}\n", n, n == 1 ? "" : "es",
                 burst_figures(burst(messages, chats, delay, options), messages, delay));
    }
    fmt::print("{} process{}: ", n, n == 1 ? "" : "es");
    latency(chats, options);
  }
  claim_latency(options.postgres_url, password);
  return 0;
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int messages = 2000;
  int chats = 100;
  Options options;
  std::string scenario;
  std::string pacing;  // "default", "off"; empty: the scenario's own
  bool postgres = false;
  std::string password_env = "PGPASSWORD";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--messages" && i + 1 < argc) {
      messages = std::atoi(argv[++i]);
    } else if (a == "--chats" && i + 1 < argc) {
      chats = std::atoi(argv[++i]);
    } else if (a == "--normal") {
      options.normal_sync = true;
    } else if (a == "--scenario" && i + 1 < argc && std::string(argv[i + 1]) == "thousand-chats") {
      scenario = argv[++i];
    } else if (a == "--pacing" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "default" || std::string(argv[i + 1]) == "off")) {
      pacing = argv[++i];
    } else if (a == "--bot" && i + 1 < argc) {
      options.bot = argv[++i];
    } else if (a == "--postgres") {
      postgres = true;
    } else if (a == "--postgres-url" && i + 1 < argc) {
      options.postgres_url = argv[++i];
    } else if (a == "--postgres-password-env" && i + 1 < argc) {
      password_env = argv[++i];
    } else if (a == "--processes" && i + 1 < argc) {
      options.processes = std::atoi(argv[++i]);
    } else if (a == "--tls") {
      static const llmassist::testing::TlsTestCertificates certs;
      options.tls = &certs;
      // Inherited by the bot: OpenSSL's default CA file, instead of the system's.
      ::setenv("SSL_CERT_FILE", certs.ca_file().c_str(), 1);
    } else {
      fmt::print(stderr,
                 "usage: llmassist-bench-bot [--messages N] [--chats N] [--normal] [--tls] "
                 "[--bot PATH] [--scenario thousand-chats [--pacing default|off]] [--postgres "
                 "| --postgres-url URL [--postgres-password-env VAR]] [--processes N]\n");
      return 2;
    }
  }
  if ((postgres || !options.postgres_url.empty()) && scenario.empty()) {
    return on_postgres(messages, chats, options, postgres, password_env);
  }
  if (postgres || !options.postgres_url.empty() || options.processes > 0) {
    fmt::print(stderr, "--postgres, --postgres-url and --processes go with the bursts only\n");
    return 2;
  }
  // The bursts measure the bot, not Telegram's limits: pacing off unless asked for. The
  // thousand chats are about the defaults: pacing at its defaults unless turned off.
  options.default_pacing = pacing.empty() ? scenario == "thousand-chats" : pacing == "default";
  if (scenario == "thousand-chats") return thousand_chats(options);
  fmt::print("llmassist-bot, auto policy, {} messages from {} chats, synchronous={}{}\n", messages,
             chats, options.normal_sync ? "NORMAL" : "FULL",
             options.tls ? ", the Bot API over https" : "");
  for (auto delay : {0ms, 100ms}) {
    fmt::print("{}\n", burst_figures(burst(messages, chats, delay, options), messages, delay));
  }
  latency(chats, options);
  return 0;
}
