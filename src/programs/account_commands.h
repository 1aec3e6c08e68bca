// The account commands of the command-line tools — add, list, change and delete the admin
// server's accounts and API tokens — run against an AccountStore, with human-readable (or JSON)
// output written to a std::ostream. A program's main() passes its arguments through; tests drive
// them with string streams.
//
// Contract:
// - Passwords are read from `in`, never from the command line (where `ps` and shell histories
//   would show them): on a terminal (`interactive_terminal`), twice with echo off, and both must
//   match; otherwise the first line of `in`. The copies the commands hold are wiped after use.
// - A new token's secret is printed once, by `token add`, and cannot be shown again.
// - Text from the store (names, labels) is printed through escape_for_terminal(); JSON output
//   escapes every non-ASCII and control character.
// - Returns an exit code: 0 done, 1 the store refused or failed (the message says why, on `err`),
//   2 the command line is wrong (unknown command or option, a missing or malformed argument).
// - Never throws.
//
// Thread-safety: a call uses its streams and the store only; calls on different streams may run
// at once.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/account_store.h"
#include "llmassist/message_store.h"

namespace llmassist {

// Runs one command: `args` are its words as a shell splits them, starting with the command's
// group ("user" or "token"): {"user", "add", "alice", "--role", "admin"}.
// With `interactive_terminal`, `in` must be the terminal on file descriptor 0 (std::cin): its echo
// is turned off while a password is typed.
int run_account_command(AccountStore& accounts, const std::vector<std::string>& args,
                        std::istream& in, std::ostream& out, std::ostream& err,
                        bool interactive_terminal);

// Erasure of one person's data from the message store (erase_chat_data(), as "admin:cli"):
// {"erase-user", "telegram:123"} (a channel's user, by the id of their private chat) or
// {"erase-chat", "17"} (a chat's number, as the admin page shows it). Exit codes as above.
int run_erase_command(MessageStore& store, const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err);

// The commands and their options, for a program's --help.
[[nodiscard]] std::string_view account_commands_help();

}  // namespace llmassist
