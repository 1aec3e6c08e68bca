// The console transport: one chat over a terminal (or any pair of file descriptors). Each line
// typed is a message; answers are printed. Buttons are shown numbered, and typing the number
// presses one. For trying a bot without Telegram, and for the demo.
//
// Thread-safety: as ChatTransport. Sends complete inline.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "llmassist/chat_transport.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"

namespace llmassist {

struct LLMASSIST_API ConsoleTransportOptions {
  int input_fd = 0;               // read lines from here (standard input)
  int output_fd = 1;              // print answers here (standard output)
  std::string chat_id = "local";  // the chat's external id on the "console" channel
  std::string user_name;          // default: $USER, or "you"
  std::string bot_name = "bot";   // printed before answers
  // Called once when the input ends (Ctrl-D, or the end of a piped file), on the reader thread.
  std::function<void()> on_end;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

[[nodiscard]] LLMASSIST_API std::unique_ptr<ChatTransport> make_console_transport(
    ConsoleTransportOptions options = {});

}  // namespace llmassist
