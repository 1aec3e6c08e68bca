// OperatorConsole: the operators' commands — list drafts, approve, edit, reject, claim, answer
// handoff chats, read histories, the audit log and statistics — run against a ModerationQueue
// and a MessageStore, with human-readable (or JSON) output written to a std::ostream. The
// terminal client llmassist-operator is a thin main() around it; tests drive it with string
// streams.
//
// Contract:
// - Commands only write decisions and operator messages into the store; the running bot's
//   outbox delivers them. The console never talks to a chat channel.
// - Text from the store (users' messages, drafts, names) is printed through
//   escape_for_terminal(): a stored message cannot move the cursor, change colours, rewrite the
//   screen or reorder a line. JSON output escapes every non-ASCII and control character.
// - Every command returns an exit code: 0 done, 1 the store refused or failed (the message says
//   why, on the error stream), 2 the command line is wrong (unknown command or option, a missing
//   or malformed argument).
// - Never throws.
//
// Thread-safety: one console serves one operator's command stream; do not call it from several
// threads at once. Several consoles (and processes) may share one store.
#pragma once

#include <chrono>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/clock.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"

namespace llmassist {

struct OperatorConsoleOptions {
  // Required: the operator deciding, as check_operator_name() accepts it. Decisions are made by
  // "operator:<name>".
  std::string operator_name;
  // Print list and show commands (and the replies decisions return) as JSON. A command's own
  // --json flag turns it on for that command. Default: off.
  bool json = false;
  // How long `claim` holds a draft when no --minutes is given. Default 5 minutes.
  std::chrono::milliseconds claim_lease{std::chrono::minutes(5)};
  // Messages of history `show` and `next` print when no --history is given. Default 10.
  int show_history = 10;
  // The source of "now" for ages ("5 min ago"). Default: system_clock().
  std::shared_ptr<Clock> clock;
};

class OperatorConsole final {
 public:
  static constexpr int kOk = 0;
  static constexpr int kFailure = 1;
  static constexpr int kUsage = 2;

  // `store` and `queue` must not be null; the queue should work over the same store.
  OperatorConsole(std::shared_ptr<MessageStore> store, std::shared_ptr<ModerationQueue> queue,
                  OperatorConsoleOptions options);
  ~OperatorConsole();
  OperatorConsole(const OperatorConsole&) = delete;
  OperatorConsole& operator=(const OperatorConsole&) = delete;

  // Runs one command: `args[0]` names it ("approve"), the rest are its arguments as a shell
  // splits them. A command whose text is "-" reads it from `in`, to its end.
  int run(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
          std::ostream& err);

  // The prompt loop: shows the drafts waiting, then reads one command per line from `in` until
  // "quit" or the end of input. Words may be grouped with "double" or 'single' quotes; the text
  // of edit, reject and reply is the rest of the line as typed; a text given as "-" is read from
  // the following lines up to a line holding only ".". With `prompt`, prints a prompt before
  // each line (for a terminal; not for a pipe). Returns 0 when every command succeeded, else 1.
  int interactive(std::istream& in, std::ostream& out, std::ostream& err, bool prompt);

  // The commands and their options, as `help` prints them.
  [[nodiscard]] static std::string_view help_text();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// `text` made safe to print on a terminal, otherwise unchanged: control characters become
// visible escapes (ESC as "\x1b", CR as "\r", C1 controls as "\u009b"), as do bytes that are not
// valid UTF-8 ("\xff") and the invisible characters that reorder or break a line (bidirectional
// overrides as "\u202e"). Newlines and tabs are kept when `multiline`, escaped otherwise.
[[nodiscard]] std::string escape_for_terminal(std::string_view text, bool multiline = true);

}  // namespace llmassist
