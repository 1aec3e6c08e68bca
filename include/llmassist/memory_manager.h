// MemoryManager: builds the prompt for a chat from what the assistant remembers — the system
// prompt (the assistant's role), the session's rolling summary, the recent window of messages,
// and facts recalled from older dialog — within a token budget.
//
// Contract:
// - build_context() reads the store; it does not block on an LLM. Work that needs a model (a
//   new summary, embeddings) happens in the background after observe(), and build_context()
//   uses whatever is ready.
// - The result is ordered for the model: system first, then summary and recalled facts (as
//   system messages), then the recent window oldest first, ending with the question.
// - Errors: those of the store (kUnavailable, kNotFound for an unknown session).
//
// Thread-safety: all methods may be called from many threads at once, for different chats and
// for the same chat.
#pragma once

#include <string>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

struct LLMASSIST_API ContextRequest {
  ChatId chat_id = 0;
  SessionId session_id = 0;
  // The question being answered: messages after it are left out (they get replies of their
  // own). 0: up to the newest.
  MessageId upto_message_id = 0;
  // Replaces the configured system prompt for this request when not empty.
  std::string system_prompt;
};

struct LLMASSIST_API Context {
  std::vector<ChatMessage> messages;
  int estimated_tokens = 0;
  int window_messages = 0;  // how many recent messages made it in
  bool summary_used = false;
  int facts_recalled = 0;
};

class LLMASSIST_API MemoryManager {
 public:
  MemoryManager() = default;
  virtual ~MemoryManager() = default;
  MemoryManager(const MemoryManager&) = delete;
  MemoryManager& operator=(const MemoryManager&) = delete;

  [[nodiscard]] virtual Result<Context> build_context(const ContextRequest& request) = 0;

  // Tells the memory that a message joined a session's log, so that it can update its summary
  // and index in the background. Cheap and non-blocking.
  virtual void observe(const Message& message) = 0;
};

}  // namespace llmassist
