// llmassist-operator: the operators' terminal client. Works on the database of a running bot
// (another process): decisions and operator messages are written into the store, and the bot's
// outbox delivers them. One-shot subcommands for scripts, or a prompt loop.
#include <llmassist/bot/bot.h>
#include <llmassist/core/store_moderation_queue.h>
#include <llmassist/postgres/postgres_store.h>
#include <unistd.h>
#include "programs/operator_console.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    R"(llmassist-operator — moderate an llmassist bot's answers from the terminal

Usage: llmassist-operator [--db DB] [--operator NAME] [--json] [COMMAND [ARGS...]]
       llmassist-operator [--db DB] [--operator NAME] [interactive]

  --db DB                the bot's database (default: llmassist.db): a SQLite file, which
                         must exist, or a PostgreSQL URL
                         (postgresql://USER@HOST:PORT/DATABASE?sslmode=...) without a
                         password in it
  --db-password-env NAME the environment variable that holds the PostgreSQL password
                         (default: none: libpq's own ways, such as ~/.pgpass)
  --db-schema NAME       the PostgreSQL schema of the bot's tables (default: public)
  --operator NAME        who decides (default: $USER); recorded in the audit log
  --json                 print list and show commands as JSON (also per command)
  --help                 this text

Without a command (or with `interactive`), reads commands line by line: at a terminal with a
prompt, from a pipe without one. The text of edit, reject and reply is the rest of the line;
"-" reads it from the following lines, up to a line holding only ".".

Exit status: 0 done, 1 the command failed (the reason is on standard error), 2 bad usage.

)";

}  // namespace

int main(int argc, char** argv) {
  std::string db = "llmassist.db";
  std::string password_env;
  std::string schema;
  const char* user = std::getenv("USER");
  std::string name = user != nullptr ? user : "";
  bool json = false;
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!command.empty()) {
      command.push_back(arg);
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << llmassist::OperatorConsole::help_text();
      return 0;
    } else if (arg == "--db" && i + 1 < argc) {
      db = argv[++i];
    } else if (arg == "--db-password-env" && i + 1 < argc) {
      password_env = argv[++i];
    } else if (arg == "--db-schema" && i + 1 < argc) {
      schema = argv[++i];
    } else if (arg == "--operator" && i + 1 < argc) {
      name = argv[++i];
    } else if (arg == "--json") {
      json = true;
    } else if (arg.starts_with("-")) {
      std::cerr << "usage error: unknown option " << llmassist::escape_for_terminal(arg, false)
                << " (--help lists them)\n";
      return 2;
    } else {
      command.push_back(arg);
    }
  }
  if (name.empty()) {
    std::cerr << "usage error: who are you? pass --operator NAME (or set USER)\n";
    return 2;
  }
  if (auto valid = llmassist::check_operator_name(name); !valid.ok()) {
    std::cerr << "usage error: " << llmassist::escape_for_terminal(valid.message(), false) << "\n";
    return 2;
  }
  llmassist::BotConfig config;  // its database settings only
  if (auto set = llmassist::set_bot_database(config, db, password_env); !set.ok()) {
    std::cerr << "usage error: " << llmassist::escape_for_terminal(set.message(), false) << "\n";
    return 2;
  }
  if (!schema.empty()) config.database_schema = schema;  // the store checks the name
  // An operator tool never creates a database file: a mistyped path would show an empty queue.
  std::error_code ec;
  if (!llmassist::is_postgres_url(config.database) &&
      !std::filesystem::exists(config.database, ec)) {
    std::cerr << "error: no database at " << llmassist::escape_for_terminal(config.database, false)
              << " (pass the bot's database with --db FILE)\n";
    return 1;
  }

  auto opened = llmassist::open_message_store(
      config, llmassist::stderr_logger(llmassist::LogLevel::kWarning));
  if (!opened.ok()) {
    std::cerr << "error: cannot open the database: " << opened.status().to_string() << "\n";
    return 1;
  }
  std::shared_ptr<llmassist::MessageStore> store = std::move(opened).value();
  llmassist::ModerationQueueOptions queue_options;
  queue_options.logger = llmassist::stderr_logger(llmassist::LogLevel::kWarning);
  std::shared_ptr<llmassist::ModerationQueue> queue =
      llmassist::make_moderation_queue(store, queue_options);
  llmassist::OperatorConsole console(store, queue, {.operator_name = name, .json = json});

  if (command.empty() || command.front() == "interactive") {
    return console.interactive(std::cin, std::cout, std::cerr, ::isatty(STDIN_FILENO) != 0);
  }
  return console.run(command, std::cin, std::cout, std::cerr);
}
