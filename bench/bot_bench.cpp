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
// Usage: llmassist-bench-bot [--messages N] [--chats N] [--normal] [--tls] [--bot PATH]
//                            [--scenario thousand-chats [--pacing default|off]]
// --bot runs another build of llmassist-bot (to compare two builds on the same machine state).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "support/bench_server.h"
#include "support/mock_telegram_server.h"
#include "support/tls_test_cert.h"

using namespace std::chrono_literals;
using llmassist::bench::DelayingServer;
using llmassist::testing::MockTelegramServer;
using Steady = std::chrono::steady_clock;

namespace {

const std::string kAnswer =
    R"({"id":"b","object":"chat.completion","model":"mock","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"Open Settings, then Security, then Reset."},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":9}})";

struct BotProcess {
  pid_t pid = -1;
  ~BotProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

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
  double step_ms = 0;   // median time between two answers of one chat
  double first_ms = 0;  // from the first push to the slowest chat's first answer
  double cpu_ms_per_message = 0;
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
};

llmassist::testing::MockHttpServer::Options telegram_http(const Options& options) {
  llmassist::testing::MockHttpServer::Options o;
  if (options.tls != nullptr) {
    o.tls_cert_file = options.tls->cert_file();
    o.tls_key_file = options.tls->key_file();
  }
  return o;
}

// Starts a bot on a fresh database; `llm_delay` for the mock LLM.
struct Setup {
  std::filesystem::path dir;
  MockTelegramServer telegram;
  DelayingServer llm;
  BotProcess bot;

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
    if (!options.default_pacing) {
      config["telegram"]["pacing"] = {{"per_chat_interval_ms", 0}, {"global_per_second", 0}};
    }
    if (!options.default_limits) config["assistant"]["max_concurrent_drafts"] = 256;
    std::ofstream(dir / "bot.json") << config.dump();
    const std::string config_path = (dir / "bot.json").string();
    const std::string log = (dir / "bot.log").string();
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const char* argv[] = {options.bot.c_str(), "--config", config_path.c_str(), nullptr};
    bot.pid = ::fork();
    if (bot.pid == 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(argv[0], const_cast<char**>(argv));
      ::_exit(127);
    }
    ::close(out);
    // Ready once it polls.
    telegram.wait_for_calls("getUpdates", 1, 10s);
  }
  ~Setup() {
    if (bot.pid > 0) {
      ::kill(bot.pid, SIGTERM);
      ::waitpid(bot.pid, nullptr, 0);
      bot.pid = -1;
    }
    std::filesystem::remove_all(dir);
  }
};

Run burst(int messages, int chats, std::chrono::milliseconds llm_delay, const Options& options) {
  Setup s(llm_delay, options);
  // The updates are made before the clock starts and arrive at once: making them one by one
  // inside the measured time took the bench ~50 ms of CPU beside the bot's.
  std::vector<std::pair<std::int64_t, std::string>> updates;
  for (int i = 0; i < messages; ++i) {
    const std::int64_t id = 10000 + i;
    updates.emplace_back(
        id, MockTelegramServer::text_update(id, fmt::format("How do I reset my password? #{}", i),
                                            700000 + i % chats));
  }
  const double cpu_before = cpu_ms(s.bot.pid);
  MemorySampler memory{s.bot.pid};
  const auto start = Steady::now();
  s.telegram.push_updates(std::move(updates));
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
  r.cpu_ms_per_message = (cpu_ms(s.bot.pid) - cpu_before) / messages;
  r.peak_rss_kb = status_kb(s.bot.pid, "VmHWM");
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
    const auto t = Steady::now();
    s.telegram.push_update(
        id, MockTelegramServer::text_update(id, "Where is my order?", 800000 + i % chats));
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

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int messages = 2000;
  int chats = 100;
  Options options;
  std::string scenario;
  std::string pacing;  // "default", "off"; empty: the scenario's own
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
    } else if (a == "--tls") {
      static const llmassist::testing::TlsTestCertificates certs;
      options.tls = &certs;
      // Inherited by the bot: OpenSSL's default CA file, instead of the system's.
      ::setenv("SSL_CERT_FILE", certs.ca_file().c_str(), 1);
    } else {
      fmt::print(stderr,
                 "usage: llmassist-bench-bot [--messages N] [--chats N] [--normal] [--tls] "
                 "[--bot PATH] [--scenario thousand-chats [--pacing default|off]]\n");
      return 2;
    }
  }
  // The bursts measure the bot, not Telegram's limits: pacing off unless asked for. The
  // thousand chats are about the defaults: pacing at its defaults unless turned off.
  options.default_pacing = pacing.empty() ? scenario == "thousand-chats" : pacing == "default";
  if (scenario == "thousand-chats") return thousand_chats(options);
  fmt::print("llmassist-bot, auto policy, {} messages from {} chats, synchronous={}{}\n", messages,
             chats, options.normal_sync ? "NORMAL" : "FULL",
             options.tls ? ", the Bot API over https" : "");
  for (auto delay : {0ms, 100ms}) {
    const Run r = burst(messages, chats, delay, options);
    fmt::print(
        "LLM at {} ms: {:.0f} msgs/s ({} in {:.2f} s), bot CPU {:.3f} ms per message, "
        "{}; a chat's answers {:.2f} ms apart (median), every chat's first within "
        "{:.1f} ms\n",
        delay.count(), messages / r.seconds, messages, r.seconds, r.cpu_ms_per_message,
        memory_figures(r), r.step_ms, r.first_ms);
  }
  latency(chats, options);
  return 0;
}
