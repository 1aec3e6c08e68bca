// llmassist-store-demo: a console chat that keeps its dialog in the SQLite MessageStore.
// Each line you type is stored as a user message with its reply record; commands show what the
// store keeps. A quick way to see the store work, and a program to point at a database file.
#include <llmassist/sqlite/sqlite_store.h>
#include <llmassist/version.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

constexpr const char* kHelp = R"(llmassist-store-demo — a console chat stored in SQLite

Usage: llmassist-store-demo [--db FILE] [--help]

  --db FILE   the database file (default: llmassist-demo.db in the current folder);
              created when missing, reopened with its history when present
  --help      this text

Type a line to store it as your message. Commands:
  /start      close the session and start a new one
  /history    the last messages of the chat, across sessions
  /stats      what the store counts: messages per day, replies by status
  /quit       leave (Ctrl-D works too)
)";

void print_history(llmassist::MessageStore& store, llmassist::ChatId chat) {
  auto page = store.chat_history(chat, {.limit = 10});
  if (!page.ok()) {
    std::cout << "error: " << page.status().to_string() << "\n";
    return;
  }
  for (auto it = page->rbegin(); it != page->rend(); ++it) {
    std::cout << "  #" << it->id << " [session " << it->session_id << "] "
              << llmassist::to_string(it->role) << ": " << it->text << "\n";
  }
}

void print_stats(llmassist::MessageStore& store) {
  auto stats = store.stats({});
  if (!stats.ok()) {
    std::cout << "error: " << stats.status().to_string() << "\n";
    return;
  }
  for (const auto& day : stats->days) {
    std::cout << "  " << day.day << ": " << day.messages << " messages, " << day.active_users
              << " active chats\n";
  }
  std::cout << "  replies:";
  for (int s = 0; s < 8; ++s) {
    const auto status = static_cast<llmassist::ReplyStatus>(s);
    std::cout << " " << llmassist::to_string(status) << "=" << stats->replies_by_status[s];
  }
  std::cout << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string db = "llmassist-demo.db";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return 0;
    }
    if (arg == "--db" && i + 1 < argc) {
      db = argv[++i];
    } else {
      std::cerr << "unknown argument: " << arg << "\n\n" << kHelp;
      return 2;
    }
  }

  llmassist::SqliteStoreOptions options;
  options.path = db;
  auto opened = llmassist::open_sqlite_store(options);
  if (!opened.ok()) {
    std::cerr << "cannot open the store: " << opened.status().to_string() << "\n";
    return 1;
  }
  auto& store = **opened;
  auto chat = store.upsert_chat({"console", "local", "you", ""});
  if (!chat.ok()) {
    std::cerr << "cannot create the chat: " << chat.status().to_string() << "\n";
    return 1;
  }

  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  std::cout << "llmassist " << LLMASSIST_VERSION_STRING << " — store demo on " << db
            << ". Type a message, /help for commands.\n";
  std::string line;
  while ((interactive ? std::cout << "> " << std::flush : std::cout) &&
         std::getline(std::cin, line)) {
    if (line.empty()) continue;
    if (line == "/quit") break;
    if (line == "/help") {
      std::cout << kHelp;
    } else if (line == "/history") {
      print_history(store, chat->id);
    } else if (line == "/stats") {
      print_stats(store);
    } else if (line == "/start") {
      auto session = store.restart_session(chat->id);
      std::cout << (session.ok() ? "new session " + std::to_string(session->id)
                                 : "error: " + session.status().to_string())
                << "\n";
    } else {
      llmassist::InboundMessage m;
      m.chat_id = chat->id;
      m.text = line;
      m.author = "you";
      auto stored = llmassist::append_inbound(store, m);
      if (!stored.ok()) {
        std::cout << "error: " << stored.status().to_string() << "\n";
        continue;
      }
      std::cout << "stored as message #" << stored->message.id << " in session "
                << stored->message.session_id << "; reply #" << stored->reply_id
                << " waits in status new\n";
    }
  }
  return 0;
}
