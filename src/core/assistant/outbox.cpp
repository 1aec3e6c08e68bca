#include "core/assistant/outbox.h"

#include <algorithm>

#include "core/assistant/core.h"

namespace llmassist::detail::assistant {

void Outbox::start_sends(const std::vector<ChatId>& chats, bool retake_own) {
  const Context& ctx = core_.ctx;
  for (const std::string& channel : ctx.channels) {
    const int free = core_.dispatcher.free_slots().sends;
    const int limit = std::min(free, 1000);
    if (free <= 0) return core_.dispatcher.starve(kSendWork);
    auto claimed = ctx.parts.store->claim_replies(send_claim(chats, limit, retake_own, channel));
    if (ctx.failed(claimed, "claiming answers to send")) continue;
    if (static_cast<int>(claimed->size()) == limit) core_.dispatcher.starve(kSendWork);
    for (auto& reply : *claimed) send(std::move(reply));
  }
}

ClaimRequest Outbox::send_claim(std::vector<ChatId> chats, int limit, bool retake_own,
                                const std::string& channel) const {
  ClaimRequest q;
  q.status = ReplyStatus::kApproved;
  q.worker = core_.ctx.worker;
  q.lease = std::chrono::minutes(2);
  q.limit = limit;
  q.head_of_chat_only = true;
  q.chat_ids = std::move(chats);
  q.retake_own = retake_own;
  q.channel = channel;
  return q;
}

void Outbox::send(Reply reply, const Chat* known) {
  const Context& ctx = core_.ctx;
  if (!core_.dispatcher.begin_send(reply.id, reply.chat_id)) return;
  auto chat = known ? Result<Chat>(*known) : ctx.parts.store->get_chat(reply.chat_id);
  if (ctx.failed(chat, "reading the chat of an answer")) {
    finish(reply);
    return;
  }
  if (chat->blocked) {
    give_up(reply, "the user blocked the bot");
    return;
  }
  ChatTransport* transport = ctx.transport_for(chat->channel);
  if (!transport) {  // a claim names the channel: only a chat moved since could get here
    ctx.failed(ctx.parts.store->release_claim(reply.id, ctx.worker), "releasing an answer");
    finish(reply);
    return;
  }
  if (!reply.deferred_calls.empty()) {
    run_deferred(std::move(reply), *chat, transport);
    return;
  }
  deliver(reply, *chat, transport);
}

void Outbox::run_deferred(Reply reply, const Chat& chat, ChatTransport* transport) {
  core_.tools.run_deferred(
      reply, chat,
      [self = core_.shared_from_this(), reply, chat,
       transport](Result<std::vector<Attachment>> attached) {
        const Context& ctx = self->ctx;
        if (!attached.ok()) {  // stopping: the next start runs them again
          ctx.failed(ctx.parts.store->release_claim(reply.id, ctx.worker), "releasing an answer");
          self->outbox.finish(reply);
          return;
        }
        // Ran: they are no longer the reply's to run, so that a resend never runs them again.
        ReplyChange ran;
        ran.from = ReplyStatus::kApproved;
        ran.to = ReplyStatus::kApproved;
        ran.keep_claim = true;
        ran.deferred_calls = std::vector<DeferredToolCall>{};
        std::vector<Attachment> files = reply.attachments;
        for (auto& a : *attached) files.push_back(std::move(a));
        ran.attachments = std::move(files);
        ran.actor = ctx.worker;
        auto stored = ctx.parts.store->transition_reply(reply.id, ran);
        if (ctx.failed(stored,
                       fmt::format("storing the deferred calls of reply {} run", reply.id))) {
          self->outbox.finish(reply);
          return;
        }
        self->outbox.deliver(*stored, chat, transport);
      });
}

void Outbox::deliver(const Reply& reply, const Chat& chat, ChatTransport* transport) {
  const Context& ctx = core_.ctx;
  OutboundMessage m;
  m.chat_external_id = chat.external_id;
  m.text = reply.final_text;
  m.format = ctx.options.format;
  m.reply_id = reply.id;
  m.attachments = reply.attachments;
  // An operator's own message in a handoff chat (not an edited draft) is marked as a person's.
  const bool from_person = !reply.author.empty() && reply.question_id == 0;
  if (from_person) {
    m.text = fmt::format("👤 {}: {}", reply.author, reply.final_text);
  } else if (chat.mode == ChatMode::kBot && !ctx.options.texts.human_button.empty()) {
    m.buttons = {{{ctx.options.texts.human_button, std::string(kCallbackPrefix) + "handoff"}}};
  }
  transport->send(
      std::move(m), [self = core_.shared_from_this(), reply, chat](Result<SentMessage> result) {
        self->writer.completed(
            {.reply = reply, .drafted = std::nullopt, .sent = std::move(result), .chat = chat});
      });
}

void Outbox::finish(const Reply& reply, bool continued) {
  core_.dispatcher.end_send(reply.id, reply.chat_id, continued);
}

bool Outbox::send_step(const Reply& reply, const Result<SentMessage>& result, ReplyChange& change) {
  if (result.ok()) {
    change.from = ReplyStatus::kApproved;
    change.to = ReplyStatus::kSent;
    if (!result->message_ids.empty()) change.transport_message_id = result->message_ids.front();
    change.actor = core_.ctx.worker;
    return true;
  }
  send_failed(reply, result.status());
  return false;
}

void Outbox::send_failed(const Reply& reply, const Status& status) {
  const Context& ctx = core_.ctx;
  if (status.code() == StatusCode::kPermissionDenied) {
    // The reply first: whoever sees the chat blocked sees its undeliverable answer too.
    mark_undeliverable(reply, status.message());
    ctx.failed(ctx.parts.store->set_chat_blocked(reply.chat_id, true), "marking a chat blocked");
  } else if (status.code() == StatusCode::kCancelled) {
    ctx.failed(ctx.parts.store->release_claim(reply.id, ctx.worker), "releasing an answer");
  } else if (reply.send_attempts + 1 >= ctx.options.max_send_attempts ||
             status.code() == StatusCode::kInvalidArgument) {
    give_up(reply, status.to_string());
    return;
  } else {
    std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(
        ctx.options.send_retry_base * (std::int64_t{1} << std::min(reply.send_attempts, 20)),
        ctx.options.send_retry_cap);
    if (auto after = status.retry_after()) delay = std::max(delay, *after);
    ReplyChange retry;
    retry.from = ReplyStatus::kApproved;
    retry.to = ReplyStatus::kApproved;
    retry.count_send = true;
    retry.error = status.to_string();
    retry.next_attempt_at = ctx.clock->now() + delay;
    retry.actor = ctx.worker;
    ctx.failed(ctx.parts.store->transition_reply(reply.id, retry), "scheduling a resend");
    ctx.log(LogLevel::kWarning, fmt::format("reply {}: sending failed ({}), again in {} ms",
                                            reply.id, status.to_string(), delay.count()));
    core_.dispatcher.count(&AssistantStats::send_retries);
  }
  finish(reply);
}

void Outbox::give_up(const Reply& reply, const std::string& why) {
  mark_undeliverable(reply, why);
  finish(reply);
}

void Outbox::mark_undeliverable(const Reply& reply, const std::string& why) {
  const Context& ctx = core_.ctx;
  ReplyChange change;
  change.from = ReplyStatus::kApproved;
  change.to = ReplyStatus::kFailed;
  change.count_send = true;
  change.error = why;
  change.actor = ctx.worker;
  change.audit_action = "undeliverable";
  change.detail = why;
  ctx.failed(ctx.parts.store->transition_reply(reply.id, change), "giving up an answer");
  ctx.log(LogLevel::kWarning, fmt::format("reply {} not delivered: {}", reply.id, why));
}

void Outbox::notify(const Chat& chat, const std::string& text) {
  const Context& ctx = core_.ctx;
  if (text.empty()) return;
  if (ChatTransport* transport = ctx.transport_for(chat.channel)) {
    OutboundMessage m;
    m.chat_external_id = chat.external_id;
    m.text = text;
    transport->send(std::move(m), [self = core_.shared_from_this()](Result<SentMessage> r) {
      self->ctx.failed(r, "sending a notice");
    });
  }
  NewMessage note;
  note.chat_id = chat.id;
  note.role = Role::kSystem;
  note.text = text;
  note.author = "bot";
  ctx.failed(ctx.parts.store->append_message(note), "logging a notice");
}

}  // namespace llmassist::detail::assistant
