// llmassist-admin: the admin page and REST API over the database of a running bot (the bot
// delivers what operators decide here), and the accounts that may sign in to it.
#include <llmassist/bot/bot.h>
#include <llmassist/postgres/postgres_store.h>
#include <signal.h>
#include <unistd.h>
#include "programs/account_commands.h"
#include "programs/migrate_command.h"

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    R"(llmassist-admin — the operators' web page and REST API for an llmassist bot

Usage: llmassist-admin [--config FILE] [--db DB] [--listen HOST:PORT] [serve]
       llmassist-admin [--config FILE] [--db DB] user|token COMMAND [ARGS...]
       llmassist-admin [--config FILE] [--db DB] erase-user CHANNEL:ID | erase-chat CHAT
       llmassist-admin migrate --from sqlite:PATH --to postgresql://... [OPTIONS]

  --config FILE          the bot's config file: its database, providers, policy and `admin`
                         section (default: none, so the database llmassist.db)
  --db DB                the database, instead of the config's: a SQLite file, or a
                         PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE?sslmode=...)
                         without a password in it
  --db-password-env NAME the environment variable that holds the PostgreSQL password
                         (default: the config's database_password_env, else none: libpq's
                         own ways, such as ~/.pgpass)
  --db-schema NAME       the PostgreSQL schema of the bot's tables (default: the config's
                         database_schema, else public)
  --listen HOST:PORT     where to serve (default: the config's admin.listen, else
                         127.0.0.1:8080)
  --help                 this text

`serve` (the default) runs the page and the API until SIGINT or SIGTERM. Decisions taken there
are written to the database; the running bot delivers them. Create the first admin first:

  llmassist-admin --config bot.json user add alice --role admin

)";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, db, listen;
  std::optional<std::string> password_env;
  std::string schema;
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!command.empty()) {
      command.push_back(arg);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << llmassist::account_commands_help()
                << llmassist::migrate_command_help();
      return 0;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--db" && i + 1 < argc) {
      db = argv[++i];
    } else if (arg == "--db-password-env" && i + 1 < argc) {
      password_env = argv[++i];
    } else if (arg == "--db-schema" && i + 1 < argc) {
      schema = argv[++i];
    } else if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg.starts_with("-")) {
      std::cerr << "usage error: unknown option " << arg << " (--help lists them)\n";
      return 2;
    } else {
      command.push_back(arg);
    }
  }
  if (!command.empty() && command.front() == "migrate") {
    return llmassist::run_migrate_command(command, std::cout, std::cerr, [](const std::string& n) {
      const char* v = std::getenv(n.c_str());
      return v ? std::optional<std::string>(v) : std::nullopt;
    });
  }
  auto config = llmassist::load_bot_config(config_path);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 1;
  }
  if (!db.empty() || password_env) {
    // The config's password variable goes with another PostgreSQL URL, not with a file.
    const std::string database = db.empty() ? config->database : db;
    const std::string kept =
        llmassist::is_postgres_url(database) ? config->database_password_env : "";
    auto set = llmassist::set_bot_database(*config, database, password_env.value_or(kept));
    if (!set.ok()) {
      std::cerr << "usage error: " << set.message() << "\n";
      return 2;
    }
  }
  if (!schema.empty()) config->database_schema = schema;  // the store checks the name
  if (!listen.empty()) {
    if (!config->admin) config->admin.emplace();
    config->admin->listen = listen;
  }
  if (!command.empty() && command.front().starts_with("erase-")) {
    auto store = llmassist::open_message_store(*config);
    if (!store.ok()) {
      std::cerr << "error: " << store.status().message() << "\n";
      return 1;
    }
    return llmassist::run_erase_command(**store, command, std::cout, std::cerr);
  }
  if (!command.empty() && command.front() != "serve") {
    auto accounts = llmassist::open_account_store(*config);
    if (!accounts.ok()) {
      std::cerr << "error: " << accounts.status().message() << "\n";
      return 1;
    }
    return llmassist::run_account_command(**accounts, command, std::cin, std::cout, std::cerr,
                                          isatty(STDIN_FILENO) != 0);
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = llmassist::make_admin_server(*config);
  if (!server.ok()) {
    std::cerr << "error: " << server.status().message() << "\n";
    return 1;
  }
  if (auto started = (*server)->start(); !started.ok()) {
    std::cerr << "error: " << started.message() << "\n";
    return 1;
  }
  std::cerr << "llmassist-admin: open " << (*server)->url() << " in a browser (Ctrl-C stops)\n";
  int signal = 0;
  sigwait(&signals, &signal);
  (*server)->stop();
  return 0;
}
