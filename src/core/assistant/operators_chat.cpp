#include "core/assistant/operators_chat.h"

#include <algorithm>
#include <cstdlib>

#include "core/assistant/core.h"
#include "core/text.h"

namespace llmassist::detail::assistant {
namespace {

constexpr std::string_view kPostKey = "operator_chat.post.";

// How a person in the operators' chat is shown to users ("👤 alice: ...").
std::string operator_name(const InboundEvent& e) {
  return e.username.empty() ? (e.user_name.empty() ? e.user_id : e.user_name) : e.username;
}

// Who decides, in the audit log and the claims: "telegram:<user id>", which no display name
// can imitate and no web account ("operator:<name>") can be taken for.
std::string operator_actor(const InboundEvent& e) {
  return fmt::format("{}:{}", e.channel, e.user_id);
}

}  // namespace

bool OperatorsChat::is_from(const InboundEvent& e, std::string_view channel) const {
  const Context& ctx = core_.ctx;
  return !ctx.options.operator_chat_id.empty() && channel == ctx.channels.front() &&
         e.chat_external_id == ctx.options.operator_chat_id;
}

Status OperatorsChat::on_event(const InboundEvent& e) {
  return e.kind == InboundKind::kCallback ? on_callback(e) : on_message(e);
}

bool OperatorsChat::is_operator(const InboundEvent& e, std::string_view what) const {
  const auto& ops = core_.ctx.options.operators;
  if (!e.user_id.empty() && std::find(ops.begin(), ops.end(), e.user_id) != ops.end()) {
    return true;
  }
  core_.ctx.log(LogLevel::kWarning,
                fmt::format("operators' chat: refused {} from user {} (\"{}\"), who is not in "
                            "assistant.operators",
                            what, e.user_id, operator_name(e)));
  return false;
}

void OperatorsChat::post_draft(const Reply& reply, const Chat& chat) {
  const Context& ctx = core_.ctx;
  if (ctx.options.operator_chat_id.empty()) return;
  auto question = ctx.parts.store->get_message(reply.question_id);
  const std::string q = question.ok() ? question->text : "";
  const std::string id = std::to_string(reply.id);
  post(fmt::format("📝 Draft #{} for {}\n\nQuestion:\n{}\n\nDraft:\n{}\n\n(Reply to this message "
                   "with your own text to send that instead.)",
                   reply.id, describe(chat), q, reply.draft_text),
       "reply:" + id,
       {{{"Approve", std::string(kCallbackPrefix) + "approve:" + id},
         {"Edit", std::string(kCallbackPrefix) + "edit:" + id},
         {"Reject", std::string(kCallbackPrefix) + "reject:" + id}}});
}

void OperatorsChat::post(std::string text, std::string about,
                         std::vector<std::vector<Button>> buttons) {
  const Context& ctx = core_.ctx;
  if (ctx.options.operator_chat_id.empty()) return;
  OutboundMessage m;
  m.chat_external_id = ctx.options.operator_chat_id;
  m.text = std::move(text);
  m.buttons = std::move(buttons);
  ctx.operators_transport().send(
      std::move(m), [self = core_.shared_from_this(), about](Result<SentMessage> r) {
        if (self->ctx.failed(r, "posting to the operators' chat")) return;
        for (const auto& id : r->message_ids) {
          self->ctx.failed(self->ctx.parts.store->put_setting(std::string(kPostKey) + id, about),
                           "remembering an operators' post");
        }
      });
}

Status OperatorsChat::decided(const Result<Reply>& r) {
  if (r.ok()) core_.dispatcher.touch(r->chat_id);
  return r.status();
}

Status OperatorsChat::on_callback(const InboundEvent& e) {
  const Context& ctx = core_.ctx;
  const std::string data = e.callback_data;
  std::string notice;
  if (data.rfind(kCallbackPrefix, 0) == 0) {
    const std::string rest = data.substr(kCallbackPrefix.size());
    const auto colon = rest.find(':');
    const std::string action = rest.substr(0, colon);
    const ReplyId id = colon == std::string::npos ? 0 : std::atoll(rest.c_str() + colon + 1);
    const std::string who = operator_actor(e);
    Status s;
    if (!is_operator(e, "a button (" + action + ")")) {
      notice = ctx.options.texts.not_operator;
    } else if (action == "approve") {
      s = decided(ctx.parts.moderation->approve(id, who));
      notice = s.ok() ? "Approved" : s.message();
    } else if (action == "reject") {
      s = decided(ctx.parts.moderation->reject(id, who, ""));
      notice = s.ok() ? "Rejected: a new draft is coming" : s.message();
    } else if (action == "edit") {
      notice = "Reply to the draft message with the text to send instead.";
    }
  }
  ctx.operators_transport().answer_callback(e.callback_id, notice, [](Status) {});
  return Status();
}

void OperatorsChat::answer(const InboundEvent& e, const std::string& text) {
  OutboundMessage m;
  m.chat_external_id = core_.ctx.options.operator_chat_id;
  m.text = "⚠️ " + text;
  m.reply_to_message_id = e.message_id;
  core_.ctx.operators_transport().send(std::move(m), [](Result<SentMessage>) {});
}

Status OperatorsChat::on_message(const InboundEvent& e) {
  const Context& ctx = core_.ctx;
  if (e.kind != InboundKind::kMessage || e.reply_to_message_id.empty()) return Status();
  auto about = ctx.parts.store->get_setting(std::string(kPostKey) + e.reply_to_message_id);
  if (!about.ok()) {
    // Not a post of ours, or a store that keeps no settings (nothing to route by).
    const StatusCode code = about.status().code();
    return code == StatusCode::kNotFound || code == StatusCode::kUnimplemented ? Status()
                                                                               : about.status();
  }
  const std::string who = operator_actor(e);
  const std::string text = detail::trimmed(e.text);
  if (text.empty()) return Status();
  Status outcome;
  if (!is_operator(e, "a reply to " + *about)) {
    answer(e, ctx.options.texts.not_operator);
    return Status();
  }
  if (about->rfind("reply:", 0) == 0) {
    const ReplyId id = std::atoll(about->c_str() + 6);
    if (is_command(text, "/approve")) {
      outcome = decided(ctx.parts.moderation->approve(id, who));
    } else if (is_command(text, "/reject")) {
      outcome = decided(ctx.parts.moderation->reject(id, who, command_argument(text)));
    } else {
      outcome = decided(ctx.parts.moderation->edit(id, who, text));
    }
  } else if (about->rfind("chat:", 0) == 0) {
    const ChatId chat_id = std::atoll(about->c_str() + 5);
    LLMASSIST_ASSIGN_OR_RETURN(Chat chat, ctx.parts.store->get_chat(chat_id));
    if (is_command(text, "/bot")) {
      core_.inbound.handback(chat, who);
    } else {
      NewReply reply;
      reply.chat_id = chat_id;
      reply.status = ReplyStatus::kApproved;
      reply.final_text = text;
      reply.author = operator_name(e);
      reply.actor = who;
      reply.audit_action = "handoff_reply";
      outcome = ctx.parts.store->create_reply(reply).status();
      if (outcome.ok()) core_.dispatcher.touch(chat_id);
    }
  }
  if (!outcome.ok()) answer(e, outcome.message());
  return Status();
}

}  // namespace llmassist::detail::assistant
