// The operator console: command-line parsing, the commands, and their text and JSON output.
// Every string that came from the store goes through escape_for_terminal() (or into JSON with
// ensure_ascii) before it reaches the output stream.
#include "programs/operator_console.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/draft_memory.h"
#include "core/json_views.h"
#include "core/text.h"
#include "core/utf8.h"
#include "llmassist/core/store_moderation_queue.h"
#include "programs/command_line.h"

namespace llmassist {
namespace {

using detail::fail;
using detail::iso;
using detail::line;
using detail::parse_args;
using detail::parse_id;
using detail::Parsed;
using detail::print_json;
using detail::Spec;
using detail::to_json;
using detail::to_json_array;
using detail::usage;
using detail::utc;
using nlohmann::json;

constexpr std::string_view kHelp = R"(Commands (ID is a reply's number, CHAT_ID a chat's):

  pending [--limit N] [--history N]   drafts awaiting a decision (pending, and failed replies
                                      to answer by hand), oldest first, with the chat's last
                                      messages (default: 20 drafts, 3 messages)
  next [--history N]                  the oldest draft awaiting a decision, in full
  show ID [--history N]               one reply in full: its chat, history, draft (with the
                                      memory it was written with), status
  approve ID                          the draft goes out as it is
  edit ID TEXT...                     TEXT goes out instead of the draft (or answers a failed
  edit ID --file F | edit ID -          reply by hand); from a file, or from standard input
  reject ID [REASON...]               discard the draft; a new one is generated (for a failed
                                      reply: ask for a new draft)
  claim ID [--minutes N]              hold the draft so that other operators cannot decide on
                                      it (default 5 minutes); again to renew
  release ID                          give the claim up
  handoffs [--limit N]                chats answered by operators, with their last message
  chats [--search TEXT] [--limit N]   chats, newest first
  reply CHAT_ID TEXT... [--force]     an operator's message to a chat in operator mode
  reply CHAT_ID --file F | -            (--force: to a chat the assistant answers)
  add-contact CHANNEL ADDRESS [--name NAME] [--notes TEXT]
                                      a contact (a Telegram user id, an address), created when
                                      new
  note CHAT_ID TEXT...                an operator's notes on the contact (replacing the last)
  opt-out CHAT_ID                     nothing the bot would send first goes there any more
  opt-in CHAT_ID                      the contact may be written to first again
  handoff CHAT_ID                     operators answer the chat from now on
  handback CHAT_ID                    the assistant answers the chat again
  history CHAT_ID [--limit N] [--search TEXT] [--before MESSAGE_ID]
                                      the chat's messages across sessions, oldest first
                                      (default: the last 20)
  audit [--reply ID] [--chat CHAT_ID] [--actor NAME] [--limit N]
                                      who decided what and when, newest first
  stats                               replies by status, decisions, response times, providers
  help                                this text

List and show commands, and decisions, take --json: their result as JSON, for scripts.
Decisions only write to the database; the running bot delivers approved answers.
)";

// ---- text helpers -----------------------------------------------------------------------------

std::string age(Timestamp then, Timestamp now) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
  if (secs < 0) return "just now";
  if (secs < 60) return fmt::format("{} s ago", secs);
  if (secs < 3600) return fmt::format("{} min ago", secs / 60);
  if (secs < 48 * 3600) return fmt::format("{} h {} min ago", secs / 3600, secs % 3600 / 60);
  return fmt::format("{} days ago", secs / 86400);
}

// Multi-line text, escaped, its continuation lines indented by `indent`.
std::string block(std::string_view text, std::string_view indent) {
  std::string escaped = escape_for_terminal(text, true);
  std::string out;
  out.reserve(escaped.size());
  for (char c : escaped) {
    out += c;
    if (c == '\n') out += indent;
  }
  return out;
}

std::string chat_label(const Chat& chat) {
  std::string out = fmt::format("chat {}", chat.id);
  if (!chat.title.empty()) out += " " + line(chat.title);
  if (!chat.username.empty()) out += " (@" + line(chat.username) + ")";
  out += fmt::format(" · {} {}", line(chat.channel), line(chat.external_id));
  if (chat.blocked) out += " · blocked the bot";
  if (chat.opted_out_at) out += " · opted out " + utc(*chat.opted_out_at, false);
  return out;
}

std::string message_line(const Message& m) {
  std::string who(to_string(m.role));
  if (!m.author.empty()) who += " " + line(m.author);
  return fmt::format("[{}] {}: {}", utc(m.created_at, false), who, block(m.text, "    "));
}

// Fields of a draft's memory record, read leniently: a field missing or of another type reads as
// empty (the record comes from the store, and nlohmann's value() would throw on a wrong type).
std::string text_field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double number_field(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

const json& array_field(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

// The "memory used" section of `show`: what went into the draft, one item a line.
void print_memory(std::ostream& out, const detail::DraftMemory& used) {
  if (used.unreadable != 0) {
    out << fmt::format("  memory used: its record (audit event #{}) cannot be read\n",
                       used.unreadable);
    return;
  }
  if (!used.memory.is_object()) {
    out << "  memory used: no memory beyond the recent window\n";
    return;
  }
  const json& m = used.memory;
  const auto summary = static_cast<long long>(number_field(m, "summary_version"));
  out << "  memory used: "
      << (summary > 0 ? fmt::format("summary version {}", summary) : std::string("no summary"))
      << fmt::format(" · {} recent message(s) · about {} tokens\n",
                     static_cast<long long>(number_field(m, "window_messages")),
                     static_cast<long long>(number_field(m, "estimated_tokens")));
  for (const json& r : array_field(m, "recalled")) {
    if (!r.is_object()) continue;
    std::string kind = text_field(r, "kind");
    if (kind.empty()) kind = "item";
    out << fmt::format("    recalled {} ({:.3f}): {}\n", line(kind), number_field(r, "score"),
                       line(text_field(r, "text")));
  }
  for (const json& p : array_field(m, "passages")) {
    if (!p.is_object()) continue;
    out << "    passage: " << line(text_field(p, "source"));
    if (const std::string heading = text_field(p, "heading"); !heading.empty()) {
      out << " › " << line(heading);
    }
    out << fmt::format(" ({:.3f})\n", number_field(p, "score"));
  }
  std::string dropped;
  for (const json& d : array_field(m, "dropped")) {
    if (!d.is_string()) continue;
    if (!dropped.empty()) dropped += ", ";
    dropped += line(d.get<std::string>());
  }
  if (!dropped.empty()) out << "    dropped for the token budget: " << dropped << "\n";
}

// ---- command lines ----------------------------------------------------------------------------

// The number in option `name`, within [min, max], or `fallback` when it is absent.
std::optional<int> int_option(const Parsed& p, const std::string& name, int fallback, int min,
                              int max) {
  auto it = p.values.find(name);
  if (it == p.values.end()) return fallback;
  int v = 0;
  const auto* end = it->second.data() + it->second.size();
  const auto [ptr, ec] = std::from_chars(it->second.data(), end, v);
  if (ec != std::errc() || ptr != end || v < min || v > max) return std::nullopt;
  return v;
}

// Splits an interactive line into words, honouring quotes; `begins` gets each word's offset.
std::vector<std::string> split_line(std::string_view text, std::vector<std::size_t>& begins) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= text.size()) break;
    begins.push_back(i);
    std::string word;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') {
      if (text[i] == '"' || text[i] == '\'') {
        const char quote = text[i++];
        while (i < text.size() && text[i] != quote) word += text[i++];
        if (i < text.size()) ++i;
      } else {
        word += text[i++];
      }
    }
    words.push_back(std::move(word));
  }
  return words;
}

const std::map<std::string, Spec, std::less<>>& command_specs() {
  static const std::map<std::string, Spec, std::less<>> specs = {
      {"pending", {{"--limit", "--history"}, {}}},
      {"next", {{"--history"}, {}}},
      {"show", {{"--history"}, {}}},
      {"approve", {}},
      {"edit", {{"--file"}, {}}},
      {"reject", {}},
      {"claim", {{"--minutes"}, {}}},
      {"release", {}},
      {"handoffs", {{"--limit"}, {}}},
      {"chats", {{"--limit", "--search"}, {}}},
      {"reply", {{"--file"}, {"--force"}}},
      {"handoff", {}},
      {"handback", {}},
      {"add-contact", {{"--name", "--notes"}, {}}},
      {"note", {{"--file"}, {}}},
      {"opt-out", {}},
      {"opt-in", {}},
      {"history", {{"--limit", "--search", "--before"}, {}}},
      {"audit", {{"--reply", "--chat", "--actor", "--limit"}, {}}},
      {"stats", {}},
      {"help", {}},
  };
  return specs;
}

// Commands whose last argument is free text: in the prompt loop it is the rest of the line.
bool takes_text(std::string_view command) {
  return command == "edit" || command == "reject" || command == "reply" || command == "note";
}

}  // namespace

// ---- the console ------------------------------------------------------------------------------

class OperatorConsole::Impl {
 public:
  Impl(std::shared_ptr<MessageStore> store, std::shared_ptr<ModerationQueue> queue,
       OperatorConsoleOptions options)
      : store_(std::move(store)),
        queue_(std::move(queue)),
        options_(std::move(options)),
        clock_(options_.clock ? options_.clock : system_clock()) {}

  int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
          std::ostream& err, bool until_dot) {
    if (args.empty()) return usage(err, "no command given; `help` lists them");
    const auto spec = command_specs().find(args[0]);
    if (spec == command_specs().end()) {
      return usage(err, fmt::format("unknown command {}; `help` lists them", line(args[0])));
    }
    Parsed p;
    if (auto problem = parse_args(args, spec->second, p)) return usage(err, *problem);
    if (p.flags.count("--help") || args[0] == "help") {
      out << kHelp;
      return kOk;
    }
    json_ = options_.json || p.flags.count("--json") > 0;
    in_ = &in;
    until_dot_ = until_dot;
    const std::string& c = args[0];
    if (c == "pending") return pending(p, out, err);
    if (c == "next") return next(p, out, err);
    if (c == "show") return show(p, out, err);
    if (c == "approve" || c == "edit" || c == "reject") return decide(c, p, out, err);
    if (c == "claim") return claim(p, out, err);
    if (c == "release") return release(p, out, err);
    if (c == "handoffs" || c == "chats") return chats(c == "handoffs", p, out, err);
    if (c == "reply") return reply(p, out, err);
    if (c == "handoff" || c == "handback") return mode(c == "handoff", p, out, err);
    if (c == "add-contact") return add_contact(p, out, err);
    if (c == "note" || c == "opt-out" || c == "opt-in") return change_contact(c, p, out, err);
    if (c == "history") return history(p, out, err);
    if (c == "audit") return audit(p, out, err);
    return stats(out, err);
  }

  int interactive(std::istream& in, std::ostream& out, std::ostream& err, bool prompt) {
    out << "llmassist operator console: you decide as " << line(options_.operator_name)
        << ". `help` lists the commands, `quit` leaves.\n";
    int result = kOk;
    if (run({"pending"}, in, out, err, true) != kOk) result = kFailure;
    std::string text;
    while (true) {
      if (prompt) out << line(options_.operator_name) << "> " << std::flush;
      if (!std::getline(in, text)) break;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      std::vector<std::size_t> begins;
      std::vector<std::string> words = split_line(text, begins);
      if (words.empty() || words[0].starts_with("#")) continue;
      if (words[0] == "quit" || words[0] == "exit") break;
      if (takes_text(words[0])) words = with_raw_text(words, begins, text);
      if (run(words, in, out, err, true) != kOk) result = kFailure;
      out << std::flush;
    }
    if (prompt) out << "\n";
    return result;
  }

 private:
  // The words of a text command with everything from its text on replaced by the rest of the
  // line as typed, behind "--" so that it is never read as options.
  static std::vector<std::string> with_raw_text(const std::vector<std::string>& words,
                                                const std::vector<std::size_t>& begins,
                                                const std::string& text) {
    const Spec& spec = command_specs().find(words[0])->second;
    std::vector<std::string> out{words[0]};
    std::size_t i = 1;
    bool id_seen = false;
    for (; i < words.size(); ++i) {
      const std::string& w = words[i];
      if (w == "--") {
        ++i;
        break;
      }
      if (spec.values.count(w) && i + 1 < words.size()) {
        out.push_back(w);
        out.push_back(words[++i]);
      } else if (spec.flags.count(w) || w == "--json" || w == "--help") {
        out.push_back(w);
      } else if (!id_seen) {
        out.push_back(w);
        id_seen = true;
      } else {
        break;
      }
    }
    if (i < words.size()) {
      std::string rest = detail::trimmed(text.substr(begins[i]));
      if (rest == "-") {
        out.push_back(rest);
      } else {
        out.push_back("--");
        out.push_back(std::move(rest));
      }
    }
    return out;
  }

  // The single ID the command takes, or a usage error.
  std::optional<std::int64_t> id_argument(const Parsed& p, std::string_view what, std::ostream& err,
                                          std::size_t max_positional = 1) {
    if (p.positional.empty()) {
      usage(err, fmt::format("which {}? give its number", what));
      return std::nullopt;
    }
    if (p.positional.size() > max_positional) {
      usage(err, fmt::format("unexpected words after the {} number", what));
      return std::nullopt;
    }
    auto id = parse_id(p.positional[0]);
    if (!id) usage(err, fmt::format("{} is not a {} number", line(p.positional[0]), what));
    return id;
  }

  // The text of edit/reply/reject: the words after the id, a file (--file) or standard input
  // ("-"). Empty when none was given.
  Result<std::string> text_argument(const Parsed& p) {
    if (auto file = p.values.find("--file"); file != p.values.end()) {
      std::ifstream f(file->second, std::ios::binary);
      std::ostringstream content;
      if (!f || !(content << f.rdbuf())) {
        return not_found(fmt::format("cannot read the file {}", file->second));
      }
      return detail::trimmed(content.str());
    }
    if (p.positional.size() == 2 && p.positional[1] == "-") {
      std::string text;
      std::string next_line;
      while (std::getline(*in_, next_line)) {
        if (until_dot_ && (next_line == "." || next_line == ".\r")) break;
        text += next_line;
        text += '\n';
      }
      return detail::trimmed(text);
    }
    std::string text;
    for (std::size_t i = 1; i < p.positional.size(); ++i) {
      if (i > 1) text += ' ';
      text += p.positional[i];
    }
    return detail::trimmed(text);
  }

  // ---- drafts ----

  // `memory`, when given, is printed after the draft.
  void print_item(std::ostream& out, const PendingItem& item, bool full,
                  const detail::DraftMemory* memory = nullptr) {
    const Reply& r = item.reply;
    out << fmt::format("#{} {} · {} · {}\n", r.id, to_string(r.status), chat_label(item.chat),
                       age(r.generated_at.value_or(r.created_at), clock_->now()));
    if (!r.claimed_by.empty() && r.lease_until && *r.lease_until > clock_->now()) {
      out << "  claimed by " << line(r.claimed_by) << " until " << utc(*r.lease_until) << " UTC\n";
    }
    if (full) {
      out << fmt::format("  created {} UTC · version {} · {} generation attempt(s)",
                         utc(r.created_at), r.version, r.generation_attempts);
      if (!r.provider.empty()) out << " · drafted by " << line(r.provider);
      out << "\n";
      if (r.decided_at) out << "  decided " << utc(*r.decided_at) << " UTC\n";
      if (r.sent_at) out << "  sent " << utc(*r.sent_at) << " UTC\n";
      if (!item.history.empty()) out << "  history (oldest first):\n";
    }
    for (const auto& m : item.history) {
      const char* mark = m.id == r.question_id ? "> " : "  ";
      out << "  " << mark << message_line(m) << "\n";
    }
    if (!r.error.empty()) out << "  error: " << block(r.error, "    ") << "\n";
    if (!r.draft_text.empty()) {
      out << "  draft: " << block(r.draft_text, "    ") << "\n";
      if (memory != nullptr) print_memory(out, *memory);
    }
    if (!r.final_text.empty() && (full || r.final_text != r.draft_text)) {
      out << "  final";
      if (!r.author.empty()) out << " (by " << line(r.author) << ")";
      out << ": " << block(r.final_text, "    ") << "\n";
    }
    for (const Attachment& a : r.attachments) {
      out << "  file: " << line(a.file_name);
      if (!a.caption.empty()) out << " (" << line(a.caption) << ")";
      out << "\n";
    }
    for (const DeferredToolCall& c : r.deferred_calls) {
      out << "  on approval runs: " << line(c.tool) << " " << line(c.arguments) << "\n";
    }
    if (r.status == ReplyStatus::kFailed && r.draft_text.empty() && r.final_text.empty()) {
      out << "  no draft: answer by hand with `edit " << r.id << " TEXT`, or `reject " << r.id
          << "` for a new draft\n";
    }
  }

  int pending(const Parsed& p, std::ostream& out, std::ostream& err) {
    if (!p.positional.empty()) return usage(err, "pending takes no arguments");
    auto limit = int_option(p, "--limit", 20, 1, 1000);
    auto history = int_option(p, "--history", 3, 0, 100);
    if (!limit || !history) return usage(err, "--limit is 1..1000, --history 0..100");
    auto items = queue_->list_pending({.limit = *limit, .history = *history});
    if (!items.ok()) return fail(err, items.status());
    if (json_) {
      print_json(out, to_json_array(*items));
      return kOk;
    }
    if (items->empty()) {
      out << "No drafts await a decision.\n";
      return kOk;
    }
    out << items->size() << (items->size() == 1 ? " reply awaits" : " replies await")
        << " a decision, oldest first:\n";
    for (const auto& item : *items) {
      out << "\n";
      print_item(out, item, false);
    }
    return kOk;
  }

  int next(const Parsed& p, std::ostream& out, std::ostream& err) {
    if (!p.positional.empty()) return usage(err, "next takes no arguments");
    auto history = int_option(p, "--history", options_.show_history, 0, 100);
    if (!history) return usage(err, "--history is 0..100");
    auto items = queue_->list_pending({.limit = 1, .history = *history});
    if (!items.ok()) return fail(err, items.status());
    if (items->empty()) {
      if (json_)
        print_json(out, nullptr);
      else
        out << "No drafts await a decision.\n";
      return kOk;
    }
    if (json_)
      print_json(out, to_json(items->front()));
    else
      print_item(out, items->front(), true);
    return kOk;
  }

  int show(const Parsed& p, std::ostream& out, std::ostream& err) {
    auto id = id_argument(p, "reply", err);
    if (!id) return kUsage;
    auto history = int_option(p, "--history", options_.show_history, 0, 100);
    if (!history) return usage(err, "--history is 0..100");
    auto item = queue_->get(*id, *history);
    if (!item.ok()) return fail(err, item.status());
    auto used = detail::draft_memory(*store_, *id);
    if (!used.ok()) return fail(err, used.status());
    if (json_) {
      json shown = to_json(*item);
      shown["memory"] = used->memory;
      print_json(out, shown);
    } else {
      print_item(out, *item, true, &*used);
    }
    return kOk;
  }

  int decide(const std::string& command, const Parsed& p, std::ostream& out, std::ostream& err) {
    const bool texted = command != "approve";
    auto id = id_argument(p, "reply", err, texted ? p.positional.size() : 1);
    if (!id) return kUsage;
    std::string text;
    if (texted) {
      auto t = text_argument(p);
      if (!t.ok()) return fail(err, t.status());
      text = std::move(t).value();
      if (command == "edit" && text.empty()) {
        return usage(err, "edit needs the answer's text (words, --file F, or - for stdin)");
      }
    }
    const std::string& name = options_.operator_name;
    Result<Reply> r = command == "approve" ? queue_->approve(*id, name)
                      : command == "edit"  ? queue_->edit(*id, name, text)
                                           : queue_->reject(*id, name, text);
    if (!r.ok()) return fail(err, r.status());
    if (json_) {
      print_json(out, to_json(*r));
    } else if (r->status == ReplyStatus::kApproved) {
      out << fmt::format("Reply #{} approved{}; the bot will send it.\n", r->id,
                         command == "edit" ? " with your text" : "");
    } else {
      out << fmt::format("Reply #{} rejected; a new draft will be generated.\n", r->id);
    }
    return kOk;
  }

  int claim(const Parsed& p, std::ostream& out, std::ostream& err) {
    auto id = id_argument(p, "reply", err);
    if (!id) return kUsage;
    const int default_minutes = static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::minutes>(options_.claim_lease).count()));
    auto minutes = int_option(p, "--minutes", default_minutes, 1, 24 * 60);
    if (!minutes) return usage(err, "--minutes is 1..1440");
    auto r = queue_->claim(*id, options_.operator_name, std::chrono::minutes(*minutes));
    if (!r.ok()) return fail(err, r.status());
    if (json_) {
      print_json(out, to_json(*r));
    } else {
      out << fmt::format("Reply #{} is yours until {} UTC.\n", r->id,
                         r->lease_until ? utc(*r->lease_until) : std::string("?"));
    }
    return kOk;
  }

  int release(const Parsed& p, std::ostream& out, std::ostream& err) {
    auto id = id_argument(p, "reply", err);
    if (!id) return kUsage;
    const Status s = queue_->release(*id, options_.operator_name);
    if (!s.ok()) return fail(err, s);
    if (json_)
      print_json(out, {{"reply_id", *id}, {"released", true}});
    else
      out << fmt::format("Reply #{} released.\n", *id);
    return kOk;
  }

  // ---- chats ----

  int chats(bool handoffs_only, const Parsed& p, std::ostream& out, std::ostream& err) {
    if (!p.positional.empty()) return usage(err, "this command takes no arguments");
    auto limit = int_option(p, "--limit", 50, 1, 1000);
    if (!limit) return usage(err, "--limit is 1..1000");
    ChatQuery q;
    if (handoffs_only) q.mode = ChatMode::kOperator;
    if (auto s = p.values.find("--search"); s != p.values.end()) q.search = s->second;
    q.limit = *limit;
    auto list = store_->list_chats(q);
    if (!list.ok()) return fail(err, list.status());
    if (json_) {
      print_json(out, to_json_array(*list));
      return kOk;
    }
    if (list->empty()) {
      out << (handoffs_only ? "No chat is in operator mode.\n" : "No chats.\n");
      return kOk;
    }
    for (const auto& chat : *list) {
      out << chat_label(chat);
      if (!handoffs_only) out << " · " << to_string(chat.mode);
      out << "\n";
      if (!handoffs_only) {
        if (!chat.notes.empty()) out << "  notes: " << block(chat.notes, "    ") << "\n";
        continue;
      }
      auto last = store_->chat_history(chat.id, {.limit = 1});
      if (!last.ok()) return fail(err, last.status());
      if (!last->empty()) out << "  last: " << message_line(last->front()) << "\n";
    }
    return kOk;
  }

  int reply(const Parsed& p, std::ostream& out, std::ostream& err) {
    auto chat_id = id_argument(p, "chat", err, p.positional.size());
    if (!chat_id) return kUsage;
    if (Status s = check_operator_name(options_.operator_name); !s.ok()) return fail(err, s);
    auto text = text_argument(p);
    if (!text.ok()) return fail(err, text.status());
    if (text->empty()) return usage(err, "reply needs a text (words, --file F, or - for stdin)");
    auto chat = store_->get_chat(*chat_id);
    if (!chat.ok()) return fail(err, chat.status());
    if (chat->mode != ChatMode::kOperator && p.flags.count("--force") == 0) {
      return fail(err, failed_precondition(fmt::format(
                           "chat {} is answered by the assistant; `handoff {}` first, or pass "
                           "--force",
                           *chat_id, *chat_id)));
    }
    NewReply r;
    r.chat_id = *chat_id;
    r.status = ReplyStatus::kApproved;
    r.final_text = std::move(text).value();
    r.author = options_.operator_name;
    r.actor = operator_actor(options_.operator_name);
    r.audit_action = "handoff_reply";
    auto created = store_->create_reply(r);
    if (!created.ok()) return fail(err, created.status());
    if (json_) {
      print_json(out, to_json(*created));
    } else {
      out << fmt::format("Reply #{} to chat {} queued; the bot will send it.\n", created->id,
                         *chat_id);
      if (chat->blocked) out << "Note: this user blocked the bot; it cannot be delivered.\n";
    }
    return kOk;
  }

  int mode(bool to_operator, const Parsed& p, std::ostream& out, std::ostream& err) {
    auto chat_id = id_argument(p, "chat", err);
    if (!chat_id) return kUsage;
    if (Status s = check_operator_name(options_.operator_name); !s.ok()) return fail(err, s);
    const ChatMode m = to_operator ? ChatMode::kOperator : ChatMode::kBot;
    const Status s = store_->set_chat_mode(*chat_id, m, operator_actor(options_.operator_name));
    if (!s.ok()) return fail(err, s);
    if (json_) {
      print_json(out, {{"chat_id", *chat_id}, {"mode", to_string(m)}});
    } else {
      out << fmt::format("Chat {} is now answered by {}.\n", *chat_id,
                         to_operator ? "operators (`reply` to write)" : "the assistant");
    }
    return kOk;
  }

  int add_contact(const Parsed& p, std::ostream& out, std::ostream& err) {
    if (p.positional.size() != 2) return usage(err, "add-contact takes a channel and an address");
    if (Status s = check_operator_name(options_.operator_name); !s.ok()) return fail(err, s);
    ChatInfo info;
    info.channel = p.positional[0];
    info.external_id = p.positional[1];
    if (info.channel == "telegram" &&
        info.external_id.find_first_not_of("-0123456789") != std::string::npos) {
      return usage(err, "a Telegram contact's address is its numeric user id");
    }
    if (auto name = p.values.find("--name"); name != p.values.end()) info.title = name->second;
    auto chat = store_->upsert_chat(info);
    if (!chat.ok()) return fail(err, chat.status());
    if (auto notes = p.values.find("--notes"); notes != p.values.end()) {
      ChatChange change;
      change.notes = notes->second;
      change.actor = operator_actor(options_.operator_name);
      chat = store_->update_chat(chat->id, change);
      if (!chat.ok()) return fail(err, chat.status());
    }
    print_contact(out, *chat);
    return kOk;
  }

  int change_contact(const std::string& command, const Parsed& p, std::ostream& out,
                     std::ostream& err) {
    const bool noting = command == "note";
    auto chat_id = id_argument(p, "chat", err, noting ? p.positional.size() : 1);
    if (!chat_id) return kUsage;
    if (Status s = check_operator_name(options_.operator_name); !s.ok()) return fail(err, s);
    ChatChange change;
    change.actor = operator_actor(options_.operator_name);
    if (noting) {
      auto text = text_argument(p);
      if (!text.ok()) return fail(err, text.status());
      change.notes = *text;
    } else {
      change.opted_out = command == "opt-out";
    }
    auto chat = store_->update_chat(*chat_id, change);
    if (!chat.ok()) return fail(err, chat.status());
    print_contact(out, *chat);
    return kOk;
  }

  void print_contact(std::ostream& out, const Chat& chat) {
    if (json_) {
      print_json(out, to_json(chat));
      return;
    }
    out << chat_label(chat) << "\n";
    if (!chat.notes.empty()) out << "  notes: " << block(chat.notes, "    ") << "\n";
  }

  int history(const Parsed& p, std::ostream& out, std::ostream& err) {
    auto chat_id = id_argument(p, "chat", err);
    if (!chat_id) return kUsage;
    auto limit = int_option(p, "--limit", 20, 1, 1000);
    if (!limit) return usage(err, "--limit is 1..1000");
    HistoryQuery q;
    q.limit = *limit;
    if (auto s = p.values.find("--search"); s != p.values.end()) q.search = s->second;
    if (auto b = p.values.find("--before"); b != p.values.end()) {
      auto before = parse_id(b->second);
      if (!before) return usage(err, "--before takes a message number");
      q.before_id = *before;
    }
    auto chat = store_->get_chat(*chat_id);
    if (!chat.ok()) return fail(err, chat.status());
    auto page = store_->chat_history(*chat_id, q);
    if (!page.ok()) return fail(err, page.status());
    std::reverse(page->begin(), page->end());
    if (json_) {
      print_json(out, to_json_array(*page));
      return kOk;
    }
    out << chat_label(*chat) << " · " << to_string(chat->mode) << "\n";
    if (page->empty()) out << "  no messages\n";
    for (const auto& m : *page) out << "  #" << m.id << " " << message_line(m) << "\n";
    return kOk;
  }

  int audit(const Parsed& p, std::ostream& out, std::ostream& err) {
    if (!p.positional.empty()) return usage(err, "audit takes no arguments, only options");
    auto limit = int_option(p, "--limit", 20, 1, 1000);
    if (!limit) return usage(err, "--limit is 1..1000");
    AuditQuery q;
    q.limit = *limit;
    if (auto r = p.values.find("--reply"); r != p.values.end()) {
      q.reply_id = parse_id(r->second);
      if (!q.reply_id) return usage(err, "--reply takes a reply number");
    }
    if (auto c = p.values.find("--chat"); c != p.values.end()) {
      q.chat_id = parse_id(c->second);
      if (!q.chat_id) return usage(err, "--chat takes a chat number");
    }
    if (auto a = p.values.find("--actor"); a != p.values.end()) q.actor = a->second;
    auto events = store_->list_audit(q);
    if (!events.ok()) return fail(err, events.status());
    if (json_) {
      print_json(out, to_json_array(*events));
      return kOk;
    }
    if (events->empty()) out << "No audit events.\n";
    for (const auto& e : *events) {
      out << fmt::format("#{} {} UTC {} {}", e.id, utc(e.at), line(e.actor), line(e.action));
      if (e.reply_id != 0) out << " reply #" << e.reply_id;
      if (e.chat_id != 0) out << " chat " << e.chat_id;
      out << "\n";
      if (e.action == "edit" || e.action == "handoff_reply") {
        if (!e.before.empty()) out << "  before: " << block(e.before, "    ") << "\n";
        out << "  after: " << block(e.after, "    ") << "\n";
      }
      if (!e.detail.empty()) out << "  detail: " << block(e.detail, "    ") << "\n";
    }
    return kOk;
  }

  int stats(std::ostream& out, std::ostream& err) {
    auto s = store_->stats({});
    if (!s.ok()) return fail(err, s.status());
    if (json_) {
      print_json(out, to_json(*s));
      return kOk;
    }
    out << "replies:";
    for (std::size_t i = 0; i < s->replies_by_status.size(); ++i) {
      out << " " << to_string(static_cast<ReplyStatus>(i)) << "=" << s->replies_by_status[i];
    }
    out << fmt::format("\ndecisions: {} approved, {} edited, {} rejected\n", s->approved, s->edited,
                       s->rejected);
    const auto latency = [](const LatencySummary& l) {
      if (l.count == 0) return std::string("no samples");
      return fmt::format("p50 {:.1f} s, p95 {:.1f} s, p99 {:.1f} s ({} samples)",
                         l.p50_ms.value_or(0) / 1000, l.p95_ms.value_or(0) / 1000,
                         l.p99_ms.value_or(0) / 1000, l.count);
    };
    out << "response time: " << latency(s->response_time) << "\n";
    out << "moderation wait: " << latency(s->moderation_wait) << "\n";
    if (!s->providers.empty()) {
      out << "providers:";
      for (const auto& pr : s->providers) out << " " << line(pr.provider) << "=" << pr.replies;
      out << fmt::format(" ({} needed a fallback)\n", s->fallback_replies);
    }
    const std::size_t shown = std::min<std::size_t>(s->days.size(), 7);
    if (shown > 0) out << "last days:\n";
    for (std::size_t i = s->days.size() - shown; i < s->days.size(); ++i) {
      const DailyStats& d = s->days[i];
      out << fmt::format("  {}: {} messages ({} from users), {} active users, {} replies sent\n",
                         d.day, d.messages, d.user_messages, d.active_users, d.replies_sent);
    }
    return kOk;
  }

  const std::shared_ptr<MessageStore> store_;
  const std::shared_ptr<ModerationQueue> queue_;
  const OperatorConsoleOptions options_;
  const std::shared_ptr<Clock> clock_;
  // Per command: JSON output, and where "-" reads its text from.
  bool json_ = false;
  std::istream* in_ = nullptr;
  bool until_dot_ = false;
};

OperatorConsole::OperatorConsole(std::shared_ptr<MessageStore> store,
                                 std::shared_ptr<ModerationQueue> queue,
                                 OperatorConsoleOptions options)
    : impl_(std::make_unique<Impl>(std::move(store), std::move(queue), std::move(options))) {}

OperatorConsole::~OperatorConsole() = default;

int OperatorConsole::run(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                         std::ostream& err) {
  try {
    return impl_->run(args, in, out, err, false);
  } catch (const std::exception& e) {
    err << "error: " << line(e.what()) << "\n";
    return kFailure;
  }
}

int OperatorConsole::interactive(std::istream& in, std::ostream& out, std::ostream& err,
                                 bool prompt) {
  try {
    return impl_->interactive(in, out, err, prompt);
  } catch (const std::exception& e) {
    err << "error: " << line(e.what()) << "\n";
    return kFailure;
  }
}

std::string_view OperatorConsole::help_text() { return kHelp; }

std::string escape_for_terminal(std::string_view text, bool multiline) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const detail::Utf8Char c = detail::decode_utf8(text, pos);
    if (!c.valid) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[pos]));
    } else if (multiline && (c.code_point == '\n' || c.code_point == '\t')) {
      out += static_cast<char>(c.code_point);
    } else if (c.code_point == '\n') {
      out += "\\n";
    } else if (c.code_point == '\t') {
      out += "\\t";
    } else if (c.code_point == '\r') {
      out += "\\r";
    } else if (c.code_point < 0x80 && detail::is_control(c.code_point)) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c.code_point));
    } else if (detail::is_control(c.code_point) || detail::is_layout_control(c.code_point)) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c.code_point));
    } else {
      out.append(text.substr(pos, c.length));
    }
    pos += c.length;
  }
  return out;
}

}  // namespace llmassist
