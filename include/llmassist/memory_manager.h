// MemoryManager: builds the prompt for a chat from what the assistant remembers — the system
// prompt (the assistant's role), the session's rolling summary, the recent window of messages,
// and facts recalled from older dialog — within a token budget.
//
// Contract:
// - build_context() reads the store; it does not block on an LLM. Work that needs a model (a
//   new summary, embeddings) happens in the background after observe(), and build_context()
//   uses whatever is ready. build_context_async() may wait for a model (the question's
//   embedding, within a bound of its own) without holding the caller's thread; the Assistant
//   drafts through it.
// - The result is ordered for the model: system first, then summary and recalled facts (as
//   system messages), then the recent window oldest first, ending with the question.
// - Errors: those of the store (kUnavailable, kNotFound for an unknown session).
//
// Thread-safety: all methods may be called from many threads at once, for different chats and
// for the same chat.
#pragma once

#include <cstdint>
#include <functional>
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
  // A redraft after an operator rejected the draft: the rejected text and the operator's reason
  // (may be empty). The context then ends with an instruction to answer differently, so that a
  // rejection does not bring the same answer back.
  std::string rejected_draft;
  std::string rejection_reason;
};

// What of the memory went into a prompt: shown to operators beside the draft.
struct LLMASSIST_API RecalledItem {
  std::string kind;  // "message", "fact", "summary"
  std::int64_t id = 0;
  MessageId message_id = 0;
  SessionId session_id = 0;
  std::string text;
  double score = 0;  // the fused rank score
};

struct LLMASSIST_API UsedPassage {
  std::string source;   // the knowledge file
  std::string heading;  // "Billing › Refunds"
  std::string text;
  double score = 0;
};

struct LLMASSIST_API Context {
  std::vector<ChatMessage> messages;
  int estimated_tokens = 0;
  int window_messages = 0;  // how many recent messages made it in
  bool summary_used = false;
  int facts_recalled = 0;
  int summary_version = 0;  // the summary version used; 0: none
  std::vector<RecalledItem> recalled;
  std::vector<UsedPassage> passages;
  // What the token budget left out, in words ("2 recalled items", "3 oldest messages").
  std::vector<std::string> dropped;
};

using ContextCallback = std::function<void(Result<Context>)>;

class LLMASSIST_API MemoryManager {
 public:
  MemoryManager() = default;
  virtual ~MemoryManager() = default;
  MemoryManager(const MemoryManager&) = delete;
  MemoryManager& operator=(const MemoryManager&) = delete;

  [[nodiscard]] virtual Result<Context> build_context(const ContextRequest& request) = 0;

  // The same, asynchronously: `done` is called exactly once, inline or on the memory's own
  // thread, and must not block. This default calls build_context() inline.
  virtual void build_context_async(const ContextRequest& request, ContextCallback done);

  // Tells the memory that a message joined a session's log, so that it can update its summary
  // and index in the background. Cheap and non-blocking.
  virtual void observe(const Message& message) = 0;

  // Tells the memory how many prompt tokens the model counted for a context it built estimated
  // at `estimated_tokens`, so that it can calibrate its estimate. This default ignores it.
  virtual void observe_prompt_usage(int estimated_tokens, int prompt_tokens);
};

// The memory that went into a context (summary version, recalled items, passages, what was
// dropped) as a JSON object text, as stored with a draft's audit event ("draft"); empty when
// none went in.
[[nodiscard]] LLMASSIST_API std::string memory_used_json(const Context& context);

}  // namespace llmassist
