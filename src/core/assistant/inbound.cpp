#include "core/assistant/inbound.h"

#include "core/utf8.h"

#include "core/assistant/core.h"
#include "core/text.h"

namespace llmassist::detail::assistant {
namespace {

ChatInfo chat_info(const InboundEvent& e) {
  return {e.channel, detail::storable_text(e.chat_external_id),
          detail::storable_text(e.chat_title.empty() ? e.user_name : e.chat_title),
          detail::storable_text(e.username)};
}

}  // namespace

Status Inbound::on_event(std::string_view channel, const InboundEvent& e, ReplyId& opened) {
  if (core_.operators.is_from(e, channel)) return core_.operators.on_event(e);
  switch (e.kind) {
    case InboundKind::kCallback:
      return on_user_callback(channel, e);
    case InboundKind::kBlocked:
    case InboundKind::kUnblocked: {
      auto chat = core_.ctx.parts.store->upsert_chat(
          {e.channel, e.chat_external_id, e.chat_title, e.username});
      if (!chat.ok()) return chat.status();
      return core_.ctx.parts.store->set_chat_blocked(chat->id, e.kind == InboundKind::kBlocked);
    }
    case InboundKind::kEditedMessage:
      return Status();  // the answer to the original stands; edits are not re-answered
    case InboundKind::kMessage:
      return on_message(e, opened);
  }
  return Status();
}

InboundAck Inbound::on_events(std::string_view channel, std::span<const InboundEvent> events) {
  MessageStore& store = *core_.ctx.parts.store;
  std::vector<ReplyId> replies;
  replies.reserve(events.size());
  std::size_t done = 0;
  while (done < events.size()) {
    // The chats of the run of user messages from here, read (or made) in one call.
    std::size_t end = done;
    while (end < events.size() && is_user_message(channel, events[end])) ++end;
    std::vector<Chat> chats;
    if (end > done) {
      std::vector<ChatInfo> infos;
      infos.reserve(end - done);
      for (std::size_t i = done; i < end; ++i) infos.push_back(chat_info(events[i]));
      auto upserted = store.upsert_chats(infos);
      if (!upserted.ok()) return {done, upserted.status(), std::move(replies)};
      chats = std::move(upserted).value();
    }
    std::vector<Incoming> questions;
    Status status;
    for (std::size_t i = done; i < end; ++i) {
      auto in = read_message(events[i], std::move(chats[i - done]));
      if (!in.ok()) {
        status = in.status();
        break;
      }
      if (!in->message.open_reply && !in->over_limit) break;
      questions.push_back(std::move(in).value());
    }
    if (questions.empty()) {
      ReplyId opened = 0;
      if (status.ok()) status = on_event(channel, events[done], opened);
      if (!status.ok()) return {done, status, std::move(replies)};
      replies.push_back(opened);
      ++done;
      continue;
    }
    std::vector<InboundMessage> messages;
    messages.reserve(questions.size());
    for (const auto& q : questions) messages.push_back(q.message);
    auto stored = store.append_inbound(messages);
    if (!stored.ok()) return {done, stored.status(), std::move(replies)};
    for (std::size_t k = 0; k < questions.size(); ++k) {
      after_stored(questions[k], (*stored)[k]);
      replies.push_back((*stored)[k].reply_id);
    }
    done += questions.size();
  }
  return {done, Status(), std::move(replies)};
}

bool Inbound::is_user_message(std::string_view channel, const InboundEvent& e) const {
  return e.kind == InboundKind::kMessage && !core_.operators.is_from(e, channel);
}

Result<Inbound::Incoming> Inbound::read_message(const InboundEvent& e) {
  LLMASSIST_ASSIGN_OR_RETURN(Chat chat, core_.ctx.parts.store->upsert_chat(chat_info(e)));
  return read_message(e, std::move(chat));
}

Result<Inbound::Incoming> Inbound::read_message(const InboundEvent& e, Chat chat) {
  Incoming in;
  in.event = &e;
  in.chat = std::move(chat);
  if (in.chat.blocked) {  // writing again means they unblocked the bot
    LLMASSIST_RETURN_IF_ERROR(core_.ctx.parts.store->set_chat_blocked(in.chat.id, false));
    in.chat.blocked = false;
  }
  const std::string text = detail::trimmed(e.text);
  InboundMessage& m = in.message;
  m.chat_id = in.chat.id;
  // Whatever the channel let through is stored (a store may refuse a NUL or broken UTF-8, and a
  // message refused would come back again and again, holding back the ones after it).
  m.text = detail::storable_text(text.empty() && !e.media.empty() ? fmt::format("[{}]", e.media)
                                                                  : e.text);
  m.author = detail::storable_text(e.user_name);
  m.dedup_key = e.dedup_key;
  m.transport_message_id = e.message_id;
  m.sent_at = e.sent_at == Timestamp{} ? std::optional<Timestamp>() : e.sent_at;
  in.start = is_command(text, "/start");
  in.human = is_command(text, "/human");
  in.back = is_command(text, "/bot") && in.chat.mode == ChatMode::kOperator;
  m.open_reply =
      !in.start && !in.human && !in.back && !text.empty() && in.chat.mode == ChatMode::kBot;
  if (m.open_reply && over_rate_limit(e, in.tell_slow_down)) {
    m.open_reply = false;
    in.over_limit = true;
  }
  return in;
}

bool Inbound::over_rate_limit(const InboundEvent& e, bool& first) {
  const InboundRateLimit& limit = core_.ctx.options.rate_limit;
  if (limit.messages <= 0) return false;
  const auto now = core_.ctx.monotonic->now();
  std::lock_guard lock(rate_mu_);
  if (rates_.size() > 100000) {  // users quiet for a window are forgotten
    std::erase_if(rates_, [&](const auto& r) { return now - r.second.start >= limit.per; });
  }
  RateWindow& w =
      rates_[fmt::format("{}:{}", e.channel, e.user_id.empty() ? e.chat_external_id : e.user_id)];
  if (w.count == 0 || now - w.start >= limit.per) w = RateWindow{now, 0};
  ++w.count;
  first = w.count == limit.messages + 1;
  return w.count > limit.messages;
}

Status Inbound::on_message(const InboundEvent& e, ReplyId& opened) {
  MessageStore& store = *core_.ctx.parts.store;
  LLMASSIST_ASSIGN_OR_RETURN(Incoming in, read_message(e));
  if (in.start) LLMASSIST_RETURN_IF_ERROR(store.restart_session(in.chat.id).status());
  LLMASSIST_ASSIGN_OR_RETURN(InboundResult stored, append_inbound(store, in.message));
  after_stored(in, stored);
  opened = stored.reply_id;
  return Status();
}

void Inbound::after_stored(const Incoming& in, const InboundResult& stored) {
  const Context& ctx = core_.ctx;
  core_.dispatcher.count(stored.duplicate ? &AssistantStats::duplicates : &AssistantStats::inbound);
  if (stored.duplicate) return;  // handled when it first came
  const Chat& chat = in.chat;
  if (stored.reply_id != 0) core_.dispatcher.touch(chat.id, kDraftWork);
  ctx.parts.memory->observe(stored.message);

  const std::string& user = in.event->user_id;
  if (in.start) {
    core_.outbox.notify(chat, ctx.options.texts.welcome);
  } else if (in.human) {
    handoff(chat, "user:" + user);
  } else if (in.back) {
    handback(chat, "user:" + user);
  } else if (chat.mode == ChatMode::kOperator) {
    core_.operators.post(fmt::format("💬 {}: {}\n(Reply to this message to answer; send /bot in "
                                     "your reply to hand the chat back.)",
                                     describe(chat), in.message.text),
                         fmt::format("chat:{}", chat.id), {});
  } else if (in.message.open_reply && ctx.policy.load() == ModerationPolicy::kReview) {
    core_.outbox.notify(chat, ctx.options.texts.review_notice);
  } else if (in.tell_slow_down) {
    ctx.log(LogLevel::kWarning,
            fmt::format("chat {}: user {} writes faster than {} messages in {} s; further "
                        "messages are stored and not answered until the window ends",
                        chat.id, user, ctx.options.rate_limit.messages,
                        ctx.options.rate_limit.per.count()));
    core_.outbox.notify(chat, ctx.options.texts.slow_down);
  }
}

Status Inbound::on_user_callback(std::string_view channel, const InboundEvent& e) {
  const Context& ctx = core_.ctx;
  if (ChatTransport* transport = ctx.transport_for(channel)) {
    transport->answer_callback(e.callback_id, "", [](Status) {});
  }
  if (e.callback_data != std::string(kCallbackPrefix) + "handoff") return Status();
  LLMASSIST_ASSIGN_OR_RETURN(Chat chat, ctx.parts.store->upsert_chat({e.channel, e.chat_external_id,
                                                                      e.chat_title, e.username}));
  handoff(chat, "user:" + e.user_id);
  return Status();
}

void Inbound::handoff(const Chat& chat, const std::string& actor) {
  const Context& ctx = core_.ctx;
  if (chat.mode == ChatMode::kOperator) {
    core_.outbox.notify(chat, ctx.options.texts.already_human);
    return;
  }
  if (ctx.failed(ctx.parts.store->set_chat_mode(chat.id, ChatMode::kOperator, actor), "handoff")) {
    return;
  }
  core_.outbox.notify(chat, ctx.options.texts.handoff);
  core_.operators.post(fmt::format("🙋 {} asks for a person. Reply to this message to answer; "
                                   "send /bot in your reply to hand the chat back.",
                                   describe(chat)),
                       fmt::format("chat:{}", chat.id), {});
}

void Inbound::handback(const Chat& chat, const std::string& actor) {
  const Context& ctx = core_.ctx;
  if (ctx.failed(ctx.parts.store->set_chat_mode(chat.id, ChatMode::kBot, actor), "handback"))
    return;
  core_.outbox.notify(chat, ctx.options.texts.handback);
}

}  // namespace llmassist::detail::assistant
