// The Assistant's tool loop: a draft's conversation with the model when tools are registered.
// The model is asked with the tools offered; when it calls some, they run on the tool threads
// (each within AssistantOptions::tool_timeout), each call is recorded (a `tool` message in the
// chat's history and an audit event "tool"), the model is told the results and asked again —
// until it answers in text. After max_tool_steps rounds of calls the model is asked once more
// with no tools offered, to answer in text.
//
// In review policy a draft waits for an operator, and nothing it calls may change anything
// before that decision: a call of a tool with side effects is deferred (kept with the draft, the
// model told it will be done once the answer is approved) and run_deferred() runs it when the
// outbox takes the approved answer.
//
// What the model is told of a call that could not run (an unknown tool, arguments that are not
// a JSON object, a failure, an exception, a timeout) is an error result, {"error": "..."}: it
// may call again or answer without. The user never sees it; the operators see the record.
//
// Thread-safety: run() from any thread; start() and stop() from one.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/assistant/context.h"
#include "core/task_threads.h"

namespace llmassist::detail::assistant {

struct Core;

// What a draft carries besides its text: the files its tools attached, its deferred calls.
struct DraftExtras {
  std::vector<Attachment> attachments;
  std::vector<DeferredToolCall> deferred;
};
using DraftCallback = std::function<void(Result<Completion>, DraftExtras)>;
using DeferredCallback = std::function<void(Result<std::vector<Attachment>>)>;

class ToolLoop {
 public:
  explicit ToolLoop(Core& core) : core_(core) {}
  ToolLoop(const ToolLoop&) = delete;
  ToolLoop& operator=(const ToolLoop&) = delete;

  // Checks the tools (each spec, each name once) and keeps them by name.
  [[nodiscard]] Status set_tools(const std::vector<std::shared_ptr<Tool>>& tools);
  // Starts the tool threads; stop() runs what they have queued and joins them.
  void start();
  void stop();

  // Asks the model for `reply`'s draft (`request`: its prompt and cancel token), running the
  // tools it calls, and calls `done` once with the completion that answers in text, or the
  // failure. Without tools (none registered, or a model that takes none) a single request.
  void run(const Reply& reply, const Chat& chat, CompletionRequest request, DraftCallback done);
  // Runs `reply`'s deferred calls (its draft was approved) on the tool threads, each recorded as
  // a call made in a draft is, then calls `done` once with the files they attached, or with
  // kCancelled when the tool threads are stopping (a call may then have run unrecorded).
  void run_deferred(const Reply& reply, const Chat& chat, DeferredCallback done);

 private:
  struct Round;  // one draft's loop
  struct Calls;  // one answer's calls, running

  void ask(const std::shared_ptr<Round>& round);
  void answered(const std::shared_ptr<Round>& round, Result<Completion> answer);
  void run_calls(const std::shared_ptr<Round>& round, Completion answer);
  void start_call(const std::shared_ptr<Calls>& calls, std::size_t index);
  void call_ended(const std::shared_ptr<Calls>& calls, std::size_t index, Result<std::string> r);
  // Every call of an answer ended: records them and asks the model again.
  void calls_done(const std::shared_ptr<Calls>& calls);
  // On the tool threads; false (and `task` not run) when they are stopping.
  bool post(std::function<void()> task);

  Core& core_;
  std::map<std::string, std::shared_ptr<Tool>, std::less<>> tools_;  // set before start()
  std::vector<ToolSpec> specs_;                                      // theirs, in order
  std::mutex mu_;
  std::shared_ptr<TaskThreads> threads_;  // guarded by mu_; while running
};

}  // namespace llmassist::detail::assistant
