// Tool: something the model may do while it drafts an answer (function calling): look an order
// up, opt a contact out, book a demo. The Assistant offers its tools to the model with every
// draft; when the model calls one, the Assistant runs it and tells the model the result, until
// the model answers in text (AssistantOptions::max_tool_steps rounds at most). See docs/tools.md.
//
// What the Assistant keeps of each call: a `tool` message in the chat's history (the call, its
// arguments and its result, as JSON: see tool_record_json()) and an audit event "tool". Tool
// records are shown to operators and never given back to the model in later prompts.
//
// Contract:
// - call() is asynchronous: it returns at once or when it is done, and calls `done` exactly once,
//   from any thread, with the result the model is told (a text or a JSON text) or the Status of
//   a failure. A failure is told to the model as an error (it may try again or answer without),
//   never to the user; an exception thrown by call() counts as a failure.
// - `arguments` is the model's JSON object, as text, checked to be an object but not against the
//   tool's schema: the tool reads what it needs and fails with kInvalidArgument otherwise.
// - call() runs on one of the Assistant's tool threads, which may block (a store write, an HTTP
//   call), but a slow tool holds that thread: AssistantOptions::tool_timeout ends the wait for
//   it (the model is told the tool timed out; `context.cancel` is cancelled). The same token is
//   cancelled when the draft is (the Assistant stopping). call() must return: Assistant::stop()
//   waits for the calls running, so a blocking tool watches `context.cancel`.
// - has_side_effects(): a tool that changes anything beyond the draft (writes, sends, books).
//   In review policy a draft waits for an operator, and nothing may change before that
//   decision: a call of such a tool is deferred. It is kept with the draft (the model is told it
//   will be done once the answer is approved) and runs when an operator approves the draft,
//   before the answer goes out (`context.deferred` is then true); a rejected draft's calls never
//   run. Such a call runs at least once: a crash between its end and its record runs it again,
//   with the same `context.call_id`, which a tool may use to do it once. docs/tools.md.
// - context.attach adds a file to the answer (it goes out after the text): attaching changes
//   nothing but the draft, so a tool that only attaches has no side effects.
//
// Thread-safety: call() may run on several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llmassist/cancellation.h"
#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// Where a call comes from: the chat whose answer is drafted, and the reply.
struct LLMASSIST_API ToolContext {
  Chat chat;
  SessionId session_id = 0;
  ReplyId reply_id = 0;
  std::string call_id;  // the model's id of this call
  std::shared_ptr<CancelToken> cancel;
  // Adds a file to the answer being drafted (or, for a deferred call, to the answer about to go
  // out). Callable from any thread until `done` is called.
  std::function<void(Attachment)> attach;
  // The call was deferred until an operator approved the draft and runs now (review policy).
  bool deferred = false;
};

using ToolCallback = std::function<void(Result<std::string>)>;

class LLMASSIST_API Tool {
 public:
  Tool() = default;
  virtual ~Tool() = default;
  Tool(const Tool&) = delete;
  Tool& operator=(const Tool&) = delete;

  // Its name, description and arguments' schema, as the model is told.
  [[nodiscard]] virtual ToolSpec spec() const = 0;
  // Default true: a tool is taken to change something unless it says it only reads.
  [[nodiscard]] virtual bool has_side_effects() const { return true; }
  virtual void call(const ToolContext& context, const std::string& arguments,
                    ToolCallback done) = 0;
};

// A tool of a synchronous function, for the common case. `handler` gets the context and the
// arguments' JSON text and returns the result. Errors of make_tool: kInvalidArgument for a bad
// name (letters, digits, '_' and '-', 1 to 64) or parameters that are not a JSON object.
using ToolHandler =
    std::function<Result<std::string>(const ToolContext& context, const std::string& arguments)>;
[[nodiscard]] LLMASSIST_API Result<std::shared_ptr<Tool>> make_tool(ToolSpec spec,
                                                                    bool side_effects,
                                                                    ToolHandler handler);

// Checks a tool's spec as make_tool() does; the Assistant checks every tool it is given.
[[nodiscard]] LLMASSIST_API Status check_tool_spec(const ToolSpec& spec);

// How a call ended, as its record says: "done" (with its "result"), "failed" (with its
// "error"), "deferred" until the draft's approval (with the "result" the model was told).
enum class ToolCallOutcome : std::uint8_t { kDone, kFailed, kDeferred };

// The text of a tool message: {"call_id", "tool", "arguments" (the JSON object, or the text the
// model sent when it was not one), "status": "done" | "failed" | "deferred", "result" or
// "error"}.
[[nodiscard]] LLMASSIST_API std::string tool_record_json(const ToolCall& call,
                                                         ToolCallOutcome outcome,
                                                         const std::string& result_or_error);

}  // namespace llmassist
