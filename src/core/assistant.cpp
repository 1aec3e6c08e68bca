// The Assistant: composes its units (src/core/assistant/) and runs them. The worker looks at the
// store (woken by every change this process makes) and hands work out: drafts to the LLM,
// approved answers to the transports. Both run asynchronously; their completions are written
// back to the store by the completion writer, which wakes the worker again. The store is the
// only shared state that matters: everything in memory here can be lost in a crash.
#include "llmassist/assistant.h"

#include <fmt/format.h>

#include <set>
#include <utility>

#include "core/assistant/core.h"
#include "core/assistant/intent_tools.h"
#include "core/text.h"

namespace llmassist {
namespace detail::assistant {

bool is_command(std::string_view text, std::string_view command) {
  if (text.substr(0, command.size()) != command) return false;
  if (text.size() == command.size()) return true;
  const char next = text[command.size()];
  return next == ' ' || next == '@' || next == '\n';
}

std::string command_argument(std::string_view text) {
  const auto space = text.find(' ');
  return space == std::string_view::npos ? std::string() : detail::trimmed(text.substr(space + 1));
}

std::string describe(const Chat& chat) {
  return fmt::format("{} ({} {})", chat.title.empty() ? "a user" : chat.title, chat.channel,
                     chat.external_id);
}

void Core::purge_old() {
  if (ctx.options.retention_days <= 0 || ctx.stopping) return;
  const Timestamp cutoff = ctx.clock->now() - std::chrono::hours(24) * ctx.options.retention_days;
  auto n = ctx.parts.store->delete_older_than(cutoff);
  if (!n.ok()) {
    ctx.log(LogLevel::kWarning, fmt::format("retention: {}", n.status().to_string()));
  } else if (n->messages + n->replies + n->audit_events + n->sessions > 0) {
    ctx.log(LogLevel::kInfo,
            fmt::format("retention: deleted {} messages, {} replies, {} audit events and {} "
                        "sessions older than {} days",
                        n->messages, n->replies, n->audit_events, n->sessions,
                        ctx.options.retention_days));
  }
  ctx.scheduler->schedule(std::chrono::hours(1), [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->purge_old();
  });
}

}  // namespace detail::assistant

struct Assistant::Impl : detail::assistant::Core {};

Result<std::unique_ptr<Assistant>> Assistant::create(AssistantParts parts,
                                                     AssistantOptions options) {
  std::vector<std::shared_ptr<ChatTransport>> transports;
  if (parts.transport) transports.push_back(parts.transport);
  for (const auto& t : parts.transports) {
    if (!t) return invalid_argument("an assistant's transports must not be null");
    transports.push_back(t);
  }
  if (transports.empty() || !parts.store || !parts.llm || !parts.memory) {
    return invalid_argument("an assistant needs a transport, a store, an LLM and a memory");
  }
  std::vector<std::string> channels;
  for (const auto& t : transports) {
    std::string channel(t->channel());
    if (channel.empty()) return invalid_argument("a transport has no channel name");
    if (std::find(channels.begin(), channels.end(), channel) != channels.end()) {
      return invalid_argument(
          fmt::format("two transports of the channel \"{}\": give each channel one", channel));
    }
    channels.push_back(std::move(channel));
  }
  if (!options.operator_chat_id.empty() && !parts.moderation) {
    return invalid_argument("an operators' chat needs a moderation queue");
  }
  if (!options.operator_chat_id.empty() && options.operators.empty()) {
    return invalid_argument(
        "an operators' chat needs its operators: list the user ids who may decide there "
        "(assistant.operators)");
  }
  if (options.retention_days < 0) return invalid_argument("retention_days must not be negative");
  if (options.rate_limit.messages < 0 || options.rate_limit.per.count() <= 0) {
    return invalid_argument("rate_limit: messages must be 0 or more, per at least 1 s");
  }
  if (options.instance.empty()) return invalid_argument("the instance name is empty");
  if (options.max_concurrent_drafts < 1 || options.max_concurrent_sends < 1) {
    return invalid_argument("the concurrency limits must be at least 1");
  }
  if (options.max_tool_steps < 1 || options.tool_threads < 1 || options.tool_timeout.count() <= 0) {
    return invalid_argument(
        "max_tool_steps and tool_threads must be at least 1, tool_timeout positive");
  }
  auto impl = std::make_shared<Impl>();
  detail::assistant::Context& ctx = impl->ctx;
  ctx.parts = std::move(parts);
  ctx.options = std::move(options);
  ctx.clock = ctx.options.clock ? ctx.options.clock : system_clock();
  ctx.monotonic =
      ctx.options.monotonic_clock ? ctx.options.monotonic_clock : steady_monotonic_clock();
  ctx.logger = ctx.options.logger ? ctx.options.logger : stderr_logger();
  ctx.scheduler = ctx.options.scheduler ? ctx.options.scheduler : make_thread_scheduler();
  ctx.worker = "bot:" + ctx.options.instance;
  ctx.transports = std::move(transports);
  ctx.channels = std::move(channels);
  auto builtin = detail::assistant::intent_tools(impl, ctx.options.agent);
  if (!builtin.ok()) return builtin.status();
  std::vector<std::shared_ptr<Tool>> tools = ctx.parts.tools;
  tools.insert(tools.end(), builtin->begin(), builtin->end());
  LLMASSIST_RETURN_IF_ERROR(impl->tools.set_tools(tools));
  return std::unique_ptr<Assistant>(new Assistant(std::move(impl)));
}

Assistant::Assistant(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Assistant::~Assistant() { stop(std::chrono::milliseconds(0)); }

Status Assistant::start() {
  Impl& i = *impl_;
  detail::assistant::Context& ctx = i.ctx;
  if (i.dispatcher.running()) return failed_precondition("the assistant is already running");
  ctx.stopping = false;
  ctx.policy = ctx.options.policy;
  i.dispatcher.refresh_settings();
  // A previous run of this instance may have died mid-draft or mid-send: its claims carry our
  // name, so they are ours to take again at once rather than after their lease.
  i.writer.start();
  i.tools.start();
  i.drafting.claim_and_draft(ReplyStatus::kGenerating, ctx.worker, {});
  i.outbox.start_sends({}, /*retake_own=*/true);
  i.dispatcher.start();
  if (ctx.options.retention_days > 0) {
    ctx.scheduler->schedule(std::chrono::milliseconds(0), [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto self = weak.lock()) self->purge_old();
    });
  }
  std::size_t started = 0;
  Status s;
  for (; started < ctx.transports.size(); ++started) {
    s = ctx.transports[started]->start(
        [weak = std::weak_ptr<Impl>(impl_),
         channel = ctx.channels[started]](std::span<const InboundEvent> events) -> InboundAck {
          auto self = weak.lock();
          if (!self) return {0, cancelled("the assistant is gone")};
          return self->inbound.on_events(channel, events);
        });
    if (!s.ok()) break;
  }
  if (!s.ok()) {
    while (started > 0) ctx.transports[--started]->stop();
    ctx.stopping = true;
    i.dispatcher.stop();
    i.tools.stop();
    i.writer.stop();
    return s;
  }
  std::string channels;
  for (const auto& c : ctx.channels) channels += (channels.empty() ? "" : ", ") + c;
  ctx.log(LogLevel::kInfo,
          fmt::format("started as {} on {} ({} policy)", ctx.worker, channels,
                      ctx.options.policy == ModerationPolicy::kAuto ? "auto" : "review"));
  return Status();
}

void Assistant::stop(std::chrono::milliseconds grace) {
  Impl& i = *impl_;
  detail::assistant::Context& ctx = i.ctx;
  if (!i.dispatcher.running()) return;
  ctx.stopping = true;
  i.dispatcher.stop();
  i.dispatcher.wait_settled(grace, /*drafts_only=*/false);
  i.drafting.cancel_all();
  for (const auto& t : ctx.transports) t->stop();
  // Cancelled drafts report back through their providers; give them a moment.
  i.dispatcher.wait_settled(std::chrono::seconds(5), /*drafts_only=*/true);
  i.tools.stop();
  i.writer.stop();
  ctx.log(LogLevel::kInfo, "stopped");
}

AssistantStats Assistant::stats() const { return impl_->dispatcher.stats(); }

}  // namespace llmassist
