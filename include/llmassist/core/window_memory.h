// The window memory: the simplest MemoryManager. The prompt is the system prompt followed by
// the session's last messages up to the question, oldest first, within a character budget.
// System lines of the log (notices the bot sent, such as "your question is being checked") are
// left out: they are for the user, not for the model. The progressive summary and semantic
// recall build on this.
//
// Thread-safety: as MemoryManager.
#pragma once

#include <memory>
#include <string>

#include "llmassist/export.h"
#include "llmassist/memory_manager.h"
#include "llmassist/message_store.h"

namespace llmassist {

struct LLMASSIST_API WindowMemoryOptions {
  std::string system_prompt;  // the assistant's role; may be empty
  int window = 8;             // messages of the session, at most (1..200). Default 8.
  // The most characters (not bytes) of dialog (the system prompt not counted) to put in the
  // prompt; older messages are dropped first, the question never. Default 24,000 (about 6,000
  // tokens).
  std::size_t max_chars = 24000;
};

// Errors: kInvalidArgument for a window outside 1..200 or a null store.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<MemoryManager>> make_window_memory(
    std::shared_ptr<MessageStore> store, WindowMemoryOptions options = {});

}  // namespace llmassist
