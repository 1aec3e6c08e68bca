// LlmProvider: one model behind one API. Turns a conversation into a completion, optionally
// streamed token by token. FallbackChain (fallback_chain.h) is itself an LlmProvider.
//
// Contract:
// - complete() is asynchronous: it returns at once and later calls `on_done` exactly once, with
//   the completion or the Status of the failure (codes as in status.h: kUnavailable for network
//   errors and 5xx, kResourceExhausted for 429 with retry_after() when the server said, reason
//   "insufficient_quota" when retrying is pointless, kUnauthenticated/kPermissionDenied for a bad
//   key, kOutOfRange with reason "context_length_exceeded" for a prompt too long,
//   kDeadlineExceeded for timeouts, kInvalidArgument for a malformed server answer, kCancelled).
// - `on_token` (optional) receives the answer's text as it streams, never reasoning/thinking
//   text. Returning false from it cancels the request. Once on_token has been called, a later
//   failure is reported through on_done as a failure of this attempt; the text already streamed
//   stays the caller's to discard.
// - Callbacks run on the provider's I/O thread, or inline on the calling thread when the answer
//   is at hand at once (an embedded knowledge base, a chain whose providers are all cooling
//   down): callers must not hold a lock that their callbacks take. Callbacks must return quickly
//   and must not call blocking operations of the same provider.
// - Waiting costs no thread per request: thousands of completions may be in flight at once.
// - Tools (function calling): a request may offer `tools`; the answer may then be calls of them
//   (Completion::tool_calls, finish_reason "tool_calls") instead of, or besides, text. Only a
//   provider whose supports_tools() is true is given such a request (the FallbackChain skips the
//   others); a provider that does not take tools ignores them. Running the tools and sending
//   their results back (kTool messages) is the caller's loop.
//
// Thread-safety: complete() may be called from many threads at once. The provider must outlive
// every request it has accepted; destroying it cancels those still in flight (their on_done runs
// with kCancelled before the destructor returns).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/export.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// A tool the model may call: its name (letters, digits, '_' and '-', at most 64), what it does
// (the model reads this to decide), and its arguments as a JSON schema of an object.
struct LLMASSIST_API ToolSpec {
  std::string name;
  std::string description;
  std::string parameters = R"({"type":"object","properties":{}})";
};

// A call of a tool, as the model asked for it.
struct LLMASSIST_API ToolCall {
  // The API's id of the call ("call_abc123"), which its result must quote; made up ("call_1",
  // ...) for an API that gives none (Ollama).
  std::string id;
  std::string name;
  std::string arguments = "{}";  // a JSON object, as text
};

// One turn of the prompt. kSystem, kUser, kAssistant and kTool reach a model; an operator's
// message is given to the model as kAssistant.
struct LLMASSIST_API ChatMessage {
  Role role = Role::kUser;
  std::string content;
  // kAssistant: the tools this turn called (its content may then be empty).
  std::vector<ToolCall> tool_calls;
  // kTool: the call this message is the result of, and that call's tool.
  std::string tool_call_id;
  std::string tool_name;
};

struct LLMASSIST_API CompletionRequest {
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;  // empty: the provider's configured default
  std::optional<int> max_tokens;      // empty: the provider's configured default
  std::vector<std::string> stop;      // stop sequences
  // Tools the model may call; empty: none. See the contract above.
  std::vector<ToolSpec> tools;
  // Overall deadline for this request; zero: the provider's configured timeout.
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<CancelToken> cancel;  // optional
};

struct LLMASSIST_API Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

struct LLMASSIST_API Completion {
  std::string text;       // the answer, reasoning removed
  std::string reasoning;  // the model's thinking, if it sent any; never shown to users
  std::string provider;   // the name of the provider that answered
  std::string model;
  std::string finish_reason;  // "stop", "length", "tool_calls", ...
  // The tools the model called, in its order; `text` may then be empty.
  std::vector<ToolCall> tool_calls;
  Usage usage;
  int providers_tried = 1;  // > 1 when a fallback chain moved past failing providers
  std::chrono::milliseconds latency{0};
};

using TokenCallback = std::function<bool(std::string_view delta)>;
using CompletionCallback = std::function<void(Result<Completion>)>;

class LLMASSIST_API LlmProvider {
 public:
  LlmProvider() = default;
  virtual ~LlmProvider() = default;
  LlmProvider(const LlmProvider&) = delete;
  LlmProvider& operator=(const LlmProvider&) = delete;

  // The provider's configured name ("openrouter-primary"), used in logs, statistics and results.
  [[nodiscard]] virtual std::string_view name() const = 0;

  // Starts a completion; see the contract above. `on_token` may be empty (no streaming).
  virtual void complete(CompletionRequest request, TokenCallback on_token,
                        CompletionCallback on_done) = 0;

  // Whether requests with tools may be given to it: it sends them to its model and reads the
  // model's calls back. Default false.
  [[nodiscard]] virtual bool supports_tools() const { return false; }
};

// Runs complete() and waits for it: for simple callers, tools and tests. Must not be called from
// a provider's own callback.
[[nodiscard]] LLMASSIST_API Result<Completion> complete_sync(LlmProvider& provider,
                                                             CompletionRequest request,
                                                             TokenCallback on_token = {});

}  // namespace llmassist
