#include "core/assistant/drafting.h"

#include <algorithm>

#include "core/assistant/core.h"

namespace llmassist::detail::assistant {

void Drafting::start_drafts(const std::vector<ChatId>& chats) {
  claim_and_draft(ReplyStatus::kNew, core_.ctx.worker, chats);
  claim_and_draft(ReplyStatus::kRejected, core_.ctx.worker, chats);
}

void Drafting::claim_and_draft(ReplyStatus from, const std::string& who,
                               const std::vector<ChatId>& chats) {
  const Context& ctx = core_.ctx;
  for (const std::string& channel : ctx.channels) {
    const int free = core_.dispatcher.free_slots().drafts;
    const int limit = std::min(free, 1000);
    if (free <= 0) return core_.dispatcher.starve(kDraftWork);
    auto claimed =
        ctx.parts.store->claim_replies(draft_claim(from, who, chats, limit, true, channel));
    if (ctx.failed(claimed, "claiming replies to draft")) continue;
    if (static_cast<int>(claimed->size()) == limit) core_.dispatcher.starve(kDraftWork);
    // The settings as they are now, read after the claim: an admin's change written before a
    // question was stored holds for its draft.
    if (!claimed->empty()) core_.dispatcher.refresh_settings();
    for (auto& reply : *claimed) draft(std::move(reply));
  }
}

ClaimRequest Drafting::draft_claim(ReplyStatus from, const std::string& who,
                                   std::vector<ChatId> chats, int limit, bool retake_own,
                                   const std::string& channel) const {
  ClaimRequest q;
  q.status = from;
  q.to = ReplyStatus::kGenerating;
  q.worker = who;
  q.lease = core_.ctx.options.lease_renewal * 3;
  q.limit = limit;
  q.head_of_chat_only = true;
  q.past_approved = true;
  q.retake_own = retake_own;
  q.chat_ids = std::move(chats);
  q.channel = channel;
  return q;
}

bool Drafting::in_flight(ReplyId id) {
  std::lock_guard lock(mu_);
  return drafting_.count(id) > 0;
}

void Drafting::draft(Reply reply, const Chat* known) {
  const Context& ctx = core_.ctx;
  auto token = CancelToken::create();
  {
    std::lock_guard lock(mu_);
    if (drafting_.count(reply.id)) return;  // already ours
    drafting_[reply.id].token = token;
  }
  core_.dispatcher.begin_draft(reply.chat_id);
  if (reply.generation_attempts > ctx.options.max_generation_attempts) {
    fail(reply, internal_error(fmt::format("drafting was interrupted {} times; given up",
                                           reply.generation_attempts - 1)));
    return;
  }
  auto chat = known ? Result<Chat>(*known) : ctx.parts.store->get_chat(reply.chat_id);
  if (ctx.failed(chat, "reading the chat of a reply")) {
    give_back(reply);
    return;
  }
  MessageId upto = reply.question_id;
  if (ctx.options.queued == QueuedMessages::kAnswerTogether) upto = merge_queued(reply);
  ContextRequest cr;
  cr.system_prompt = ctx.current_system_prompt();
  cr.chat_id = reply.chat_id;
  cr.session_id = reply.session_id;
  cr.upto_message_id = upto;
  // A draft kept from before is a rejected one (a rejection keeps it, with the reason in
  // `error`): the model is told, so that it answers differently.
  if (!reply.draft_text.empty()) {
    cr.rejected_draft = reply.draft_text;
    cr.rejection_reason = reply.error;
  }
  ctx.parts.memory->build_context_async(cr, [self = core_.shared_from_this(), reply, chat = *chat,
                                             token](Result<llmassist::Context> context) {
    self->drafting.ask(reply, chat, std::move(context), token);
  });
}

void Drafting::ask(const Reply& reply, const Chat& chat, Result<llmassist::Context> context,
                   const std::shared_ptr<CancelToken>& token) {
  const Context& ctx = core_.ctx;
  if (ctx.failed(context, "building the prompt")) {
    give_back(reply);
    return;
  }
  if (token->cancelled()) {  // stopping while the prompt was built
    give_back(reply);
    return;
  }
  auto answered = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(mu_);
    Record& d = drafting_[reply.id];
    d.answered = answered;
    d.transport = ctx.transport_for(chat.channel);
    d.external_id = chat.external_id;
    d.actor = reply.claimed_by;
    d.memory_used = memory_used_json(*context);
    const auto now = ctx.monotonic->now();
    d.next_typing = now + ctx.options.typing_delay;
    d.next_renewal = now + ctx.options.lease_renewal;
  }
  CompletionRequest request;
  request.messages = std::move(context->messages);
  request.cancel = token;
  core_.tools.run(
      reply, chat, std::move(request),
      [self = core_.shared_from_this(), reply, answered, chat,
       estimated = context->estimated_tokens](Result<Completion> result, DraftExtras extras) {
        *answered = true;
        if (result.ok() && result->usage.prompt_tokens > 0) {
          self->ctx.parts.memory->observe_prompt_usage(estimated, result->usage.prompt_tokens);
        }
        self->writer.completed({.reply = reply,
                                .drafted = std::move(result),
                                .sent = std::nullopt,
                                .chat = chat,
                                .extras = std::move(extras)});
      });
}

// One sweep over all the drafts in the making, run by the worker every few hundred
// milliseconds for as long as there are any. (A timer per draft cost a wake-up per draft,
// mostly for drafts long done.)
void Drafting::sweep(MonotonicClock::time_point now) {
  const Context& ctx = core_.ctx;
  std::vector<std::pair<ChatTransport*, std::string>> typing;
  std::vector<std::pair<ReplyId, std::string>> renewals;
  {
    std::lock_guard lock(mu_);
    if (ctx.stopping.load()) return;
    for (auto& [id, d] : drafting_) {
      if (!d.answered || d.answered->load()) continue;  // not begun, or answered
      if (now >= d.next_typing) {
        if (d.transport) typing.emplace_back(d.transport, d.external_id);
        d.next_typing = now + ctx.options.typing_interval;
      }
      if (now >= d.next_renewal) {
        renewals.emplace_back(id, d.actor);
        d.next_renewal = now + ctx.options.lease_renewal;
      }
    }
  }
  for (const auto& [transport, chat] : typing) transport->send_typing(chat, [](Status) {});
  // All the claims due, in one transaction.
  std::vector<ReplyStep> renew(renewals.size());
  for (std::size_t i = 0; i < renewals.size(); ++i) {
    renew[i].id = renewals[i].first;
    renew[i].change.from = ReplyStatus::kGenerating;
    renew[i].change.to = ReplyStatus::kGenerating;
    renew[i].change.keep_claim = true;
    renew[i].change.extend_lease = ctx.options.lease_renewal * 3;
    renew[i].change.actor = std::move(renewals[i].second);
  }
  if (!renew.empty()) {
    for (const auto& r : ctx.parts.store->transition_and_claim_each(renew)) {
      ctx.failed(r, "renewing a draft's claim");
    }
  }
}

void Drafting::cancel_all() {
  std::vector<std::shared_ptr<CancelToken>> unfinished;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, d] : drafting_) unfinished.push_back(d.token);
  }
  // Outside the lock: a provider may complete a cancelled request at once.
  for (auto& token : unfinished) token->cancel();
}

MessageId Drafting::merge_queued(const Reply& reply) {
  const Context& ctx = core_.ctx;
  MessageId upto = reply.question_id;
  ReplyQuery q;
  q.status = ReplyStatus::kNew;
  q.chat_id = reply.chat_id;
  q.after_id = reply.id;
  auto later = ctx.parts.store->list_replies(q);
  if (ctx.failed(later, "reading queued questions")) return upto;
  for (const auto& r : *later) {
    if (r.session_id != reply.session_id) break;
    ReplyChange merge;
    merge.from = ReplyStatus::kNew;
    merge.to = ReplyStatus::kCancelled;
    merge.actor = ctx.worker;
    merge.audit_action = "merge";
    merge.detail = fmt::format("answered together with reply {}", reply.id);
    if (!ctx.failed(ctx.parts.store->transition_reply(r.id, merge), "merging a queued question")) {
      upto = std::max(upto, r.question_id);
    }
  }
  return upto;
}

void Drafting::finish(const Reply& reply, bool continued) {
  bool ours = false;
  {
    std::lock_guard lock(mu_);
    ours = drafting_.erase(reply.id) > 0;
  }
  if (ours) {
    core_.dispatcher.end_draft(reply.chat_id, continued);
  } else if (!continued) {
    core_.dispatcher.touch(reply.chat_id);
  }
}

void Drafting::give_back(const Reply& reply) {
  ReplyChange back;
  back.from = ReplyStatus::kGenerating;
  back.to = ReplyStatus::kNew;
  back.actor = reply.claimed_by;
  core_.ctx.failed(core_.ctx.parts.store->transition_reply(reply.id, back), "giving a reply back");
  finish(reply);
}

bool Drafting::draft_step(const Reply& reply, const Result<Completion>& result,
                          const DraftExtras& extras, ReplyChange& change) {
  const Context& ctx = core_.ctx;
  if (!result.ok()) {
    if (result.status().code() == StatusCode::kCancelled) {
      if (!ctx.stopping.load()) {
        ctx.log(LogLevel::kWarning, fmt::format("drafting reply {} was cancelled: {}; given back",
                                                reply.id, result.status().to_string()));
      }
      give_back(reply);  // stopping: the next start drafts it again
    } else {
      fail(reply, result.status());
    }
    return false;
  }
  change.from = ReplyStatus::kGenerating;
  change.to =
      ctx.policy.load() == ModerationPolicy::kAuto ? ReplyStatus::kApproved : ReplyStatus::kPending;
  change.draft_text = result->text;
  change.attachments = extras.attachments;
  change.deferred_calls = extras.deferred;
  change.provider = result->provider;
  change.providers_tried = result->providers_tried;
  change.actor = reply.claimed_by;
  {
    // The memory that went into it, for the operators (an audit event in the same commit).
    std::lock_guard lock(mu_);
    auto it = drafting_.find(reply.id);
    if (it != drafting_.end() && !it->second.memory_used.empty()) {
      change.audit_action = "draft";
      change.detail = it->second.memory_used;
    }
  }
  return true;
}

void Drafting::fail(const Reply& reply, const Status& why) {
  const Context& ctx = core_.ctx;
  ctx.log(LogLevel::kWarning, fmt::format("reply {} failed: {}", reply.id, why.to_string()));
  ReplyChange change;
  change.from = ReplyStatus::kGenerating;
  change.to = ReplyStatus::kFailed;
  change.error = why.to_string();
  change.actor = reply.claimed_by;
  change.audit_action = "fail";
  change.detail = why.to_string();
  auto stored = ctx.parts.store->transition_reply(reply.id, change);
  finish(reply);
  if (ctx.failed(stored, "storing a failed reply")) return;
  core_.dispatcher.count(&AssistantStats::failures);
  // The apology goes out through the outbox like any answer.
  NewReply apology;
  apology.chat_id = reply.chat_id;
  apology.session_id = reply.session_id;
  apology.status = ReplyStatus::kApproved;
  apology.final_text = ctx.options.texts.failure;
  if (!ctx.failed(ctx.parts.store->create_reply(apology), "queueing the apology")) {
    core_.dispatcher.touch(reply.chat_id);
  }
  auto chat = ctx.parts.store->get_chat(reply.chat_id);
  if (chat.ok()) {
    core_.operators.post(fmt::format("⚠️ Reply #{} to {} failed: {}\nReply to this message to "
                                     "answer the user yourself.",
                                     reply.id, describe(*chat), why.message()),
                         fmt::format("reply:{}", reply.id), {});
  }
}

}  // namespace llmassist::detail::assistant
