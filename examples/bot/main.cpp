// llmassist-bot: an LLM-assisted support bot. Reads a config file (or none: a console bot that
// answers from the shipped knowledge base), runs until SIGINT or SIGTERM, then stops gracefully.
#include <llmassist/bot/bot.h>
#include <llmassist/version.h>
#include <malloc.h>
#include <signal.h>
#include <sqlite3.h>
#include "bot/doctor.h"

#include <atomic>
#include <iostream>
#include <string>

namespace {

constexpr const char* kHelp = R"(llmassist-bot — an LLM-assisted support bot for Telegram

Usage: llmassist-bot [--config FILE] [doctor]

  --config FILE  the bot's configuration (docs/configuration.md). Without one: a bot on this
                 terminal that answers from the shipped knowledge base, stored in llmassist.db.
  doctor         check the configuration, the database, each provider and the bot token, say
                 plainly what is wrong, and exit (0 when all is well)
  --help         this text

Environment: BOT_TOKEN (the Telegram token; without one the bot runs on the console),
TELEGRAM_WEBHOOK_SECRET, and the variables your providers name in api_key_env.
With an `admin` section in the config, the bot also serves the operators' web page and REST
API (default http://127.0.0.1:8080/); create accounts with `llmassist-admin user add`.
Stop with Ctrl-C (SIGINT) or SIGTERM: answers in flight are finished first.
)";

std::atomic<bool> g_input_ended{false};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool doctor = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return 0;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "doctor") {
      doctor = true;
    } else {
      std::cerr << "unknown argument: " << arg << "\n\n" << kHelp;
      return 2;
    }
  }
  auto config = llmassist::load_bot_config(config_path);
  if (!config.ok()) {
    std::cerr << "llmassist-bot: " << config.status().message() << "\n";
    return 2;
  }
  if (doctor) {
    bool all_ok = true;
    for (const auto& check : llmassist::run_doctor(*config)) {
      std::cout << (check.ok ? "ok    " : "FAIL  ") << check.what << ": " << check.detail << "\n";
      all_ok = all_ok && check.ok;
    }
    return all_ok ? 0 : 1;
  }

  // glibc gives each thread that allocates an arena of its own; the bot's few threads do not
  // contend on malloc enough to need them, and every arena holds memory of its own.
  mallopt(M_ARENA_MAX, 2);
  // SQLite counts every allocation under a global mutex unless told not to; the bot never asks
  // for the counts. Must come before SQLite's first use.
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

  // Signals are taken by sigwait below, not by handlers: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the console's end of input
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  llmassist::BotOptions options;
  options.on_console_end = [] {
    g_input_ended = true;
    kill(getpid(), SIGUSR1);
  };
  auto bot = llmassist::Bot::create(*config, options);
  if (!bot.ok()) {
    std::cerr << "llmassist-bot: " << bot.status().message() << "\n";
    return 1;
  }
  if (auto s = (*bot)->start(); !s.ok()) {
    std::cerr << "llmassist-bot: cannot start: " << s.message() << "\n";
    return 1;
  }
  std::cerr << "llmassist " << LLMASSIST_VERSION_STRING << ": " << (*bot)->description() << "\n";
  int signal = 0;
  sigwait(&signals, &signal);
  // Piped input ended: let the last questions be answered before leaving.
  if (g_input_ended) (*bot)->wait_idle(std::chrono::seconds(30));
  (*bot)->stop();
  return 0;
}
