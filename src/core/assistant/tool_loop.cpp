#include "core/assistant/tool_loop.h"

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>

#include "core/assistant/core.h"
#include "core/json_text.h"

namespace llmassist::detail::assistant {

using nlohmann::json;

namespace {

// What the model is asked when its rounds of calls are used up.
constexpr std::string_view kAnswerNow =
    "You have used the tools as many times as allowed for this answer. Answer the user now, in "
    "text, without calling tools.";

// What the model is told of a call deferred until the draft's approval.
constexpr std::string_view kDeferred =
    R"({"status": "deferred", "note": "This is done once an operator approves your answer. )"
    R"(Tell the user it will be done; do not say it is done already."})";

std::string error_result(const Status& why) {
  return json{{"error", why.message()}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Deferring a call: not a failure, its outcome is decided later.
bool is_deferral(const Status& s) { return s.reason() == "deferred"; }

}  // namespace

struct ToolLoop::Round {
  Reply reply;
  Chat chat;
  CompletionRequest request;
  DraftCallback done;
  // Calls of tools with side effects are deferred (review policy), as the draft began.
  bool review = false;
  // run_deferred(): the approved draft's calls run; then this, with the files they attached.
  DeferredCallback deferred_done;
  int rounds = 0;  // rounds of calls made
  std::mutex mu;
  DraftExtras extras;  // guarded by mu

  void finish(Result<Completion> r) {
    DraftExtras out;
    {
      std::lock_guard lock(mu);
      out = std::move(extras);
    }
    done(std::move(r), std::move(out));
  }
};

struct ToolLoop::Calls {
  std::shared_ptr<Round> round;
  std::vector<ToolCall> calls;
  std::vector<Result<std::string>> results;
  std::atomic<std::size_t> remaining{0};
};

Status ToolLoop::set_tools(const std::vector<std::shared_ptr<Tool>>& tools) {
  for (const auto& tool : tools) {
    if (!tool) return invalid_argument("an assistant's tools must not be null");
    ToolSpec spec = tool->spec();
    LLMASSIST_RETURN_IF_ERROR(check_tool_spec(spec));
    if (!tools_.emplace(spec.name, tool).second) {
      return invalid_argument(fmt::format("two tools are named \"{}\"", spec.name));
    }
    specs_.push_back(std::move(spec));
  }
  return Status();
}

void ToolLoop::start() {
  if (tools_.empty()) return;
  std::lock_guard lock(mu_);
  threads_ = std::make_shared<TaskThreads>(std::max(1, core_.ctx.options.tool_threads));
}

void ToolLoop::stop() {
  std::shared_ptr<TaskThreads> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  if (threads) threads->stop();
}

bool ToolLoop::post(std::function<void()> task) {
  std::shared_ptr<TaskThreads> threads;
  {
    std::lock_guard lock(mu_);
    threads = threads_;
  }
  return threads && threads->post(std::move(task));
}

void ToolLoop::run(const Reply& reply, const Chat& chat, CompletionRequest request,
                   DraftCallback done) {
  auto round = std::make_shared<Round>();
  round->reply = reply;
  round->chat = chat;
  round->request = std::move(request);
  round->done = std::move(done);
  round->review = core_.ctx.policy.load() == ModerationPolicy::kReview;
  if (core_.ctx.parts.llm->supports_tools()) round->request.tools = specs_;
  ask(round);
}

void ToolLoop::run_deferred(const Reply& reply, const Chat& chat, DeferredCallback done) {
  auto round = std::make_shared<Round>();
  round->reply = reply;
  round->chat = chat;
  round->deferred_done = std::move(done);
  auto calls = std::make_shared<Calls>();
  calls->round = round;
  for (const DeferredToolCall& d : reply.deferred_calls) {
    calls->calls.push_back({d.call_id, d.tool, d.arguments});
  }
  calls->results.assign(calls->calls.size(), internal_error("not run"));
  calls->remaining = calls->calls.size();
  if (calls->calls.empty()) {
    round->deferred_done(std::vector<Attachment>{});
    return;
  }
  if (tools_.empty()) {
    // This bot has no tools, and so no tool threads (the draft came from another process, or
    // the config changed since): each call is recorded as failed here, and the answer goes out.
    for (std::size_t i = 0; i < calls->calls.size(); ++i) {
      calls->results[i] = not_found(
          fmt::format("there is no tool named \"{}\"", calls->calls[i].name.substr(0, 64)));
    }
    calls_done(calls);
    return;
  }
  if (!post([self = core_.shared_from_this(), calls] {
        for (std::size_t i = 0; i < calls->calls.size(); ++i) self->tools.start_call(calls, i);
      })) {
    round->deferred_done(cancelled("the assistant is stopping"));
  }
}

void ToolLoop::ask(const std::shared_ptr<Round>& round) {
  core_.ctx.parts.llm->complete(round->request, {},
                                [self = core_.shared_from_this(), round](Result<Completion> r) {
                                  self->tools.answered(round, std::move(r));
                                });
}

void ToolLoop::answered(const std::shared_ptr<Round>& round, Result<Completion> answer) {
  if (!answer.ok() || answer->tool_calls.empty()) {
    round->finish(std::move(answer));
    return;
  }
  if (round->request.tools.empty()) {
    // Calls the model was not offered (the last round, or a provider that sends calls anyway):
    // its text is the answer, if it wrote any.
    if (answer->text.empty()) {
      round->finish(
          invalid_argument(fmt::format("the model called tools after {} rounds of calls, with no "
                                       "text for the user",
                                       round->rounds))
              .with_reason("tool_steps_exhausted"));
      return;
    }
    answer->tool_calls.clear();
    round->finish(std::move(answer));
    return;
  }
  // Off the provider's I/O thread: tools may block, and their records are store writes.
  auto shared = std::make_shared<Completion>(*std::move(answer));
  if (!post([self = core_.shared_from_this(), round, shared] {
        self->tools.run_calls(round, std::move(*shared));
      })) {
    round->finish(cancelled("the assistant is stopping"));
  }
}

void ToolLoop::run_calls(const std::shared_ptr<Round>& round, Completion answer) {
  ++round->rounds;
  ChatMessage asked{Role::kAssistant, answer.text};
  asked.tool_calls = answer.tool_calls;
  round->request.messages.push_back(std::move(asked));
  auto calls = std::make_shared<Calls>();
  calls->round = round;
  calls->calls = std::move(answer.tool_calls);
  calls->results.assign(calls->calls.size(), internal_error("not run"));
  calls->remaining = calls->calls.size();
  for (std::size_t i = 0; i < calls->calls.size(); ++i) start_call(calls, i);
}

void ToolLoop::start_call(const std::shared_ptr<Calls>& calls, std::size_t index) {
  const Context& ctx = core_.ctx;
  const ToolCall& call = calls->calls[index];
  auto it = tools_.find(call.name);
  const std::shared_ptr<Round>& round_ptr = calls->round;
  const Round& round = *round_ptr;
  const bool approved = static_cast<bool>(round.deferred_done);  // a deferred call runs now
  const auto& offered = round.request.tools;
  const bool was_offered =
      approved || std::any_of(offered.begin(), offered.end(),
                              [&](const ToolSpec& t) { return t.name == call.name; });
  if (it == tools_.end() || !was_offered) {
    call_ended(calls, index,
               not_found(fmt::format("there is no tool named \"{}\"", call.name.substr(0, 64))));
    return;
  }
  const json arguments = parse_json_text(call.arguments);
  if (arguments.is_discarded() || !arguments.is_object()) {
    call_ended(calls, index, invalid_argument("the arguments are not a JSON object"));
    return;
  }
  if (round.review && it->second->has_side_effects()) {
    {
      std::lock_guard lock(round_ptr->mu);
      round_ptr->extras.deferred.push_back({call.id, call.name, call.arguments});
    }
    call_ended(calls, index, Status(StatusCode::kAborted, "deferred").with_reason("deferred"));
    return;
  }
  ToolContext context;
  context.chat = round.chat;
  context.session_id = round.reply.session_id;
  context.reply_id = round.reply.id;
  context.call_id = call.id;
  context.cancel = CancelToken::create();
  context.deferred = approved;
  context.attach = [round_ptr](Attachment a) {
    std::lock_guard lock(round_ptr->mu);
    round_ptr->extras.attachments.push_back(std::move(a));
  };
  if (round.request.cancel && round.request.cancel->cancelled()) {
    call_ended(calls, index, cancelled("the draft was cancelled"));
    return;
  }
  // Ends the call once: by the tool, by the timeout, or by the draft's cancellation. Held by
  // the tool's callback and the draft's cancel token only: the timeout's task holds it weakly,
  // so a scheduled task never keeps the assistant alive.
  using End = std::function<void(Result<std::string>)>;
  auto ended = std::make_shared<std::atomic<bool>>(false);
  auto end = std::make_shared<End>([self = core_.shared_from_this(), calls, index, ended,
                                    cancel = context.cancel](Result<std::string> r) {
    if (ended->exchange(true)) return;
    cancel->cancel();
    self->tools.call_ended(calls, index, std::move(r));
  });
  std::uint64_t watch = 0;
  if (round.request.cancel) {
    watch =
        round.request.cancel->on_cancel([end] { (*end)(cancelled("the draft was cancelled")); });
  }
  const auto timeout = ctx.options.tool_timeout;
  ctx.scheduler->schedule(timeout, [weak = std::weak_ptr<End>(end), timeout] {
    if (auto e = weak.lock()) {
      (*e)(Status(StatusCode::kDeadlineExceeded,
                  fmt::format("the tool did not answer within {} ms", timeout.count())));
    }
  });
  const std::shared_ptr<Tool> tool = it->second;
  auto done = [end, watch, draft = round.request.cancel](Result<std::string> r) {
    if (draft && watch != 0) draft->remove(watch);
    (*end)(std::move(r));
  };
  if (ended->load()) return;  // the draft was cancelled as the watch was set
  try {
    tool->call(context, call.arguments, done);
  } catch (const std::exception& e) {
    done(internal_error(fmt::format("the tool threw: {}", e.what())));
  } catch (...) {
    done(internal_error("the tool threw"));
  }
}

void ToolLoop::call_ended(const std::shared_ptr<Calls>& calls, std::size_t index,
                          Result<std::string> r) {
  calls->results[index] = std::move(r);
  if (calls->remaining.fetch_sub(1) != 1) return;
  // The last one: it may have ended on the scheduler's thread or a provider's.
  if (!post([self = core_.shared_from_this(), calls] { self->tools.calls_done(calls); })) {
    if (calls->round->deferred_done) {
      calls->round->deferred_done(cancelled("the assistant is stopping"));
    } else {
      calls->round->finish(cancelled("the assistant is stopping"));
    }
  }
}

void ToolLoop::calls_done(const std::shared_ptr<Calls>& calls) {
  const Context& ctx = core_.ctx;
  Round& round = *calls->round;
  for (std::size_t i = 0; i < calls->calls.size(); ++i) {
    const ToolCall& call = calls->calls[i];
    const Result<std::string>& r = calls->results[i];
    const bool deferred = !r.ok() && is_deferral(r.status());
    const std::string told =
        r.ok() ? *r : (deferred ? std::string(kDeferred) : error_result(r.status()));
    const ToolCallOutcome outcome = r.ok()     ? ToolCallOutcome::kDone
                                    : deferred ? ToolCallOutcome::kDeferred
                                               : ToolCallOutcome::kFailed;
    const std::string record = tool_record_json(
        call, outcome, outcome == ToolCallOutcome::kFailed ? r.status().message() : told);
    NewMessage m;
    m.chat_id = round.reply.chat_id;
    m.session_id = round.reply.session_id;
    m.role = Role::kTool;
    m.text = record;
    m.author = call.name;
    m.reply_id = round.reply.id;
    ctx.failed(ctx.parts.store->append_message(m), "recording a tool call");
    AuditEvent e;
    e.at = ctx.clock->now();
    e.actor = round.reply.claimed_by.empty() ? ctx.worker : round.reply.claimed_by;
    e.action = "tool";
    e.reply_id = round.reply.id;
    e.chat_id = round.reply.chat_id;
    e.detail = record;
    ctx.failed(ctx.parts.store->append_audit(e), "recording a tool call's audit event");
    if (outcome == ToolCallOutcome::kFailed) {
      ctx.log(LogLevel::kWarning, fmt::format("reply {}: tool {} failed: {}", round.reply.id,
                                              call.name, r.status().to_string()));
    }
    if (!deferred) core_.dispatcher.count(&AssistantStats::tool_calls);
    ChatMessage result{Role::kTool, told};
    result.tool_call_id = call.id;
    result.tool_name = call.name;
    round.request.messages.push_back(std::move(result));
  }
  if (round.deferred_done) {
    std::vector<Attachment> attached;
    {
      std::lock_guard lock(round.mu);
      attached = std::move(round.extras.attachments);
    }
    round.deferred_done(std::move(attached));
    return;
  }
  if (round.request.cancel && round.request.cancel->cancelled()) {
    round.finish(cancelled("the draft was cancelled"));
    return;
  }
  if (round.rounds >= ctx.options.max_tool_steps) {
    round.request.tools.clear();
    round.request.messages.push_back({Role::kSystem, std::string(kAnswerNow)});
  }
  ask(calls->round);
}

}  // namespace llmassist::detail::assistant
