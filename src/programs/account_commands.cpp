// The account commands: parsing (shared with the operator console), password entry, and text or
// JSON output. Every string from the store goes through escape_for_terminal() (or into JSON with
// ensure_ascii) before it reaches the output stream.
#include "programs/account_commands.h"

#include <fmt/format.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <istream>
#include <map>
#include <ostream>

#include "core/json_views.h"
#include "programs/command_line.h"

namespace llmassist {
namespace {

using detail::fail;
using detail::kExitOk;
using detail::kExitUsage;
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

constexpr std::string_view kHelp =
    R"(Account commands (NAME is an account's name, ROLE viewer, operator or admin):

  user add NAME --role ROLE     a new account; its password is read from standard input
                                (at a terminal: typed twice, not shown)
  user list [--json]            the accounts, by name
  user passwd NAME              a new password, read as for `user add`; signs the account's
                                browsers out
  user role NAME ROLE           change an account's role
  user disable NAME             the account can no longer sign in; its tokens stop working
                                and its browsers are signed out
  user enable NAME              undo `user disable` (its tokens work again)
  user del NAME                 delete an account with its tokens and sessions
  token add ACCOUNT [--label TEXT]
                                a new API token acting as ACCOUNT; its secret is printed once
  token list [ACCOUNT] [--json] tokens (of one account, or all), revoked ones included
  token revoke ID               the token stops working at once

Erasure of one person's data (their chat, sessions, messages, replies and the audit events
about them; the text is overwritten in the database file):

  erase-user CHANNEL:ID         a user by their channel's id: erase-user telegram:123456
  erase-chat CHAT               a chat by its number on the admin page

Viewers read everything but accounts and tokens of others; operators also moderate and answer
chats; admins also manage accounts, tokens and settings.
)";

// A password as typed, wiped from memory when it goes out of scope.
class Password {
 public:
  Password() { text_.reserve(4096); }  // one buffer: growing would leave unwiped copies behind
  ~Password() {
    text_.resize(text_.capacity());
    sodium_memzero(text_.data(), text_.size());
  }
  Password(const Password&) = delete;
  Password& operator=(const Password&) = delete;
  std::string& text() { return text_; }

 private:
  std::string text_;
};

// Terminal echo off on file descriptor 0 for the object's lifetime (when it is a terminal).
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

bool read_line(std::istream& in, std::string& text) {
  if (!std::getline(in, text)) return false;
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return true;
}

// Reads a password into `password`: at a terminal twice with echo off (prompts on `err`), else
// the first line of `in`. Returns an exit code: kExitOk when there is one to use.
int read_password(std::istream& in, std::ostream& err, bool terminal, Password& password) {
  if (!terminal) {
    if (read_line(in, password.text())) return kExitOk;
    return usage(err, "give the password on standard input (its first line)");
  }
  Password again;
  bool complete = false;
  {
    EchoOff quiet;
    err << "Password: " << std::flush;
    complete = read_line(in, password.text());
    err << "\nThe same password again: " << std::flush;
    complete = complete && read_line(in, again.text());
    err << "\n";
  }
  if (!complete) return fail(err, invalid_argument("no password was typed"));
  if (password.text() != again.text()) {
    return fail(err, invalid_argument("the two passwords differ; nothing was changed"));
  }
  return kExitOk;
}

std::string optional_time(const std::optional<Timestamp>& t, std::string_view none) {
  return t ? utc(*t) + " UTC" : std::string(none);
}

const std::map<std::string, Spec, std::less<>>& command_specs() {
  static const std::map<std::string, Spec, std::less<>> specs = {
      {"user add", {{"--role"}, {}}},
      {"user list", {}},
      {"user passwd", {}},
      {"user role", {}},
      {"user disable", {}},
      {"user enable", {}},
      {"user del", {}},
      {"token add", {{"--label"}, {}}},
      {"token list", {}},
      {"token revoke", {}},
  };
  return specs;
}

class Commands {
 public:
  Commands(AccountStore& accounts, std::istream& in, std::ostream& out, std::ostream& err,
           bool terminal)
      : accounts_(accounts), in_(in), out_(out), err_(err), terminal_(terminal) {}

  int run(const std::vector<std::string>& args) {
    const auto is_help = [](const std::string& word) { return word == "help" || word == "--help"; };
    if ((!args.empty() && is_help(args[0])) || (args.size() == 2 && is_help(args[1]))) {
      out_ << kHelp;
      return kExitOk;
    }
    if (args.size() < 2) {
      return usage(err_,
                   "give a command: user add|list|passwd|role|disable|enable|del, "
                   "token add|list|revoke");
    }
    // The command is its first two words; parse_args() names it in messages by args[0].
    std::vector<std::string> words{args[0] + " " + args[1]};
    words.insert(words.end(), args.begin() + 2, args.end());
    const auto spec = command_specs().find(words[0]);
    if (spec == command_specs().end()) {
      return usage(err_, fmt::format("unknown command {}; --help lists them", line(words[0])));
    }
    Parsed p;
    if (auto problem = parse_args(words, spec->second, p)) return usage(err_, *problem);
    if (p.flags.count("--help")) {
      out_ << kHelp;
      return kExitOk;
    }
    json_ = p.flags.count("--json") > 0;
    const std::string& c = words[0];
    if (c == "user add") return user_add(p);
    if (c == "user list") return user_list(p);
    if (c == "user passwd") return user_passwd(p);
    if (c == "user role") return user_role(p);
    if (c == "user disable" || c == "user enable") return user_disable(p, c == "user disable");
    if (c == "user del") return user_delete(p);
    if (c == "token add") return token_add(p);
    if (c == "token list") return token_list(p);
    return token_revoke(p);
  }

 private:
  // True when the command got exactly `count` positional words; prints a usage error if not.
  bool positional(const Parsed& p, std::size_t count, std::string_view expected) {
    if (p.positional.size() == count) return true;
    usage(err_, fmt::format("expected {}", expected));
    return false;
  }

  // A list as JSON, or one entry a line through `print_one`, or `empty` when there is none.
  template <typename T, typename PrintOne>
  int print_list(const Result<std::vector<T>>& list, std::string_view empty, PrintOne print_one) {
    if (!list.ok()) return fail(err_, list.status());
    if (json_) {
      print_json(out_, to_json_array(*list));
      return kExitOk;
    }
    if (list->empty()) return done(empty);
    for (const T& item : *list) print_one(item);
    return kExitOk;
  }

  int done(std::string_view message) {
    out_ << message << "\n";
    return kExitOk;
  }

  int user_add(const Parsed& p) {
    if (!positional(p, 1, "user add NAME --role ROLE")) return kExitUsage;
    const auto role_option = p.values.find("--role");
    if (role_option == p.values.end()) {
      return usage(err_, "user add needs --role viewer, operator or admin");
    }
    const auto role = parse_account_role(role_option->second);
    if (!role) return usage(err_, "--role is viewer, operator or admin");
    Password password;
    if (int rc = read_password(in_, err_, terminal_, password); rc != kExitOk) return rc;
    auto account = accounts_.create_account(p.positional[0], password.text(), *role);
    if (!account.ok()) return fail(err_, account.status());
    return done(
        fmt::format("account {} created, role {}", line(account->name), to_string(account->role)));
  }

  int user_list(const Parsed& p) {
    if (!positional(p, 0, "user list [--json]")) return kExitUsage;
    return print_list(
        accounts_.list_accounts(), "No accounts yet: add one with `user add NAME --role admin`.",
        [&](const Account& a) {
          out_ << fmt::format("{}  {}{} · created {} UTC · last sign-in {}\n", line(a.name),
                              to_string(a.role), a.disabled ? " · disabled" : "", utc(a.created_at),
                              optional_time(a.last_sign_in, "never"));
        });
  }

  int user_passwd(const Parsed& p) {
    if (!positional(p, 1, "user passwd NAME")) return kExitUsage;
    // An unknown name is reported before the password is asked for.
    if (auto a = accounts_.get_account(p.positional[0]); !a.ok()) return fail(err_, a.status());
    Password password;
    if (int rc = read_password(in_, err_, terminal_, password); rc != kExitOk) return rc;
    if (Status s = accounts_.set_password(p.positional[0], password.text()); !s.ok()) {
      return fail(err_, s);
    }
    return done(fmt::format("password of {} changed; its browsers must sign in again",
                            line(p.positional[0])));
  }

  int user_role(const Parsed& p) {
    if (!positional(p, 2, "user role NAME ROLE")) return kExitUsage;
    const auto role = parse_account_role(p.positional[1]);
    if (!role) return usage(err_, "ROLE is viewer, operator or admin");
    if (Status s = accounts_.set_role(p.positional[0], *role); !s.ok()) return fail(err_, s);
    return done(fmt::format("{} is now {}", line(p.positional[0]), to_string(*role)));
  }

  int user_disable(const Parsed& p, bool disable) {
    if (!positional(p, 1, disable ? "user disable NAME" : "user enable NAME")) return kExitUsage;
    if (Status s = accounts_.set_disabled(p.positional[0], disable); !s.ok()) return fail(err_, s);
    return done(fmt::format("{} {}", line(p.positional[0]), disable ? "disabled" : "enabled"));
  }

  int user_delete(const Parsed& p) {
    if (!positional(p, 1, "user del NAME")) return kExitUsage;
    if (Status s = accounts_.delete_account(p.positional[0]); !s.ok()) return fail(err_, s);
    return done(fmt::format("{} deleted, with its tokens and sessions", line(p.positional[0])));
  }

  int token_add(const Parsed& p) {
    if (!positional(p, 1, "token add ACCOUNT [--label TEXT]")) return kExitUsage;
    const auto label = p.values.find("--label");
    auto made =
        accounts_.create_token(p.positional[0], label == p.values.end() ? "" : label->second);
    if (!made.ok()) return fail(err_, made.status());
    out_ << fmt::format("token {} for {} created:\n\n  {}\n\n", made->token.id,
                        line(made->token.account), made->secret);
    out_ << "Copy it now: it will not be shown again.\n";
    sodium_memzero(made->secret.data(), made->secret.size());
    return kExitOk;
  }

  int token_list(const Parsed& p) {
    if (p.positional.size() > 1) return usage(err_, "expected token list [ACCOUNT] [--json]");
    return print_list(accounts_.list_tokens(p.positional.empty() ? "" : p.positional[0]),
                      "No API tokens.", [&](const ApiToken& t) {
                        out_ << fmt::format("{}  {}", t.id, line(t.account));
                        if (!t.label.empty()) out_ << " \"" << line(t.label) << "\"";
                        out_ << fmt::format(" · created {} UTC · last used {}", utc(t.created_at),
                                            optional_time(t.last_used, "never"));
                        if (t.revoked_at) out_ << " · revoked " << utc(*t.revoked_at) << " UTC";
                        out_ << "\n";
                      });
  }

  int token_revoke(const Parsed& p) {
    if (!positional(p, 1, "token revoke ID")) return kExitUsage;
    const auto id = parse_id(p.positional[0]);
    if (!id) return usage(err_, fmt::format("{} is not a token number", line(p.positional[0])));
    if (Status s = accounts_.revoke_token(*id); !s.ok()) return fail(err_, s);
    return done(fmt::format("token {} revoked", *id));
  }

  AccountStore& accounts_;
  std::istream& in_;
  std::ostream& out_;
  std::ostream& err_;
  const bool terminal_;
  bool json_ = false;
};

}  // namespace

int run_account_command(AccountStore& accounts, const std::vector<std::string>& args,
                        std::istream& in, std::ostream& out, std::ostream& err,
                        bool interactive_terminal) {
  try {
    return Commands(accounts, in, out, err, interactive_terminal).run(args);
  } catch (const std::exception& e) {
    err << "error: " << line(e.what()) << "\n";
    return detail::kExitFailure;
  }
}

std::string_view account_commands_help() { return kHelp; }

int run_erase_command(MessageStore& store, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err) {
  constexpr std::string_view kForms = " (erase-user CHANNEL:ID or erase-chat CHAT)";
  if (args.size() != 2) return usage(err, fmt::format("one argument{}", kForms));
  ChatId chat = 0;
  if (args[0] == "erase-chat") {
    const auto id = parse_id(args[1]);
    if (!id) return usage(err, fmt::format("CHAT is a chat's number{}", kForms));
    chat = *id;
  } else if (args[0] == "erase-user") {
    const std::size_t colon = args[1].find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == args[1].size()) {
      return usage(err, fmt::format("the user is CHANNEL:ID, like telegram:123456{}", kForms));
    }
    auto found = store.find_chat(args[1].substr(0, colon), args[1].substr(colon + 1));
    if (!found.ok()) return fail(err, found.status());
    chat = found->id;
  } else {
    return usage(err, fmt::format("unknown command {}{}", line(args[0]), kForms));
  }
  auto erased = erase_chat_data(store, chat, "admin:cli");
  if (!erased.ok()) return fail(err, erased.status());
  out << fmt::format(
      "erased chat {}: {} sessions, {} messages, {} replies, {} audit events{}\n", chat,
      erased->sessions, erased->messages, erased->replies, erased->audit_events,
      erased->reclaimed
          ? "; the text is overwritten in the database file"
          : "; the database still holds its bytes for a while (SQLite: in its log until the next "
            "checkpoint; PostgreSQL: until VACUUM frees the space, see docs/postgres.md)");
  return kExitOk;
}

}  // namespace llmassist
