#include "llmassist/reply_lifecycle.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace llmassist {
namespace {

constexpr int kMaxClaimLimit = 1000;

Status illegal_move(ReplyStatus from, ReplyStatus to) {
  return failed_precondition(
      fmt::format("a reply cannot move from {} to {}", to_string(from), to_string(to)));
}

// The text that stands for the reply: the final text, else the draft.
const std::string& shown_text(const Reply& r) {
  return r.final_text.empty() ? r.draft_text : r.final_text;
}

}  // namespace

Status check_text_size(std::string_view what, std::string_view text) {
  if (text.size() > kMaxReplyTextBytes) {
    return invalid_argument(fmt::format("{} is {} bytes, more than the {} allowed", what,
                                        text.size(), kMaxReplyTextBytes));
  }
  return Status();
}

Status check_reply_change(const ReplyChange& ch) {
  if (!is_legal_transition(ch.from, ch.to)) return illegal_move(ch.from, ch.to);
  for (const auto* text : {&ch.draft_text, &ch.final_text}) {
    if (*text) LLMASSIST_RETURN_IF_ERROR(check_text_size("the reply text", **text));
  }
  if (ch.attachments) {
    for (const Attachment& a : *ch.attachments) {
      if (a.path.empty()) return invalid_argument("an attachment needs a file path");
    }
  }
  if (ch.deferred_calls) {
    for (const DeferredToolCall& c : *ch.deferred_calls) {
      if (c.tool.empty()) return invalid_argument("a deferred tool call needs the tool's name");
      LLMASSIST_RETURN_IF_ERROR(check_text_size("a deferred call's arguments", c.arguments));
    }
  }
  return Status();
}

bool held_by_other(const Reply& r, std::string_view worker, Timestamp now) noexcept {
  return !r.claimed_by.empty() && r.claimed_by != worker && r.lease_until && *r.lease_until > now;
}

Result<ReplyUpdate> apply_reply_change(const Reply& old, const ReplyChange& ch, Timestamp now) {
  LLMASSIST_RETURN_IF_ERROR(check_reply_change(ch));
  if (old.status != ch.from) {
    return aborted(fmt::format("reply {} is {}, not {} as expected", old.id, to_string(old.status),
                               to_string(ch.from)));
  }
  if (ch.expected_version && *ch.expected_version != old.version) {
    return aborted(fmt::format("reply {} changed meanwhile (version {}, expected {})", old.id,
                               old.version, *ch.expected_version));
  }
  if (!ch.actor.empty() && held_by_other(old, ch.actor, now)) {
    return aborted(fmt::format("reply {} is claimed by {}", old.id, old.claimed_by));
  }

  ReplyUpdate out;
  Reply& next = out.reply;
  next = old;
  next.status = ch.to;
  if (ch.draft_text) {
    next.draft_text = *ch.draft_text;
    next.generated_at = now;
  }
  if (ch.final_text) next.final_text = *ch.final_text;
  if (ch.author) next.author = *ch.author;
  if (ch.provider) next.provider = *ch.provider;
  if (ch.error) next.error = *ch.error;
  if (ch.attachments) next.attachments = *ch.attachments;
  if (ch.deferred_calls) next.deferred_calls = *ch.deferred_calls;
  if (ch.count_generation) ++next.generation_attempts;
  if (ch.count_send) ++next.send_attempts;
  out.providers_tried = ch.providers_tried;

  if (!ch.keep_claim) {
    next.claimed_by.clear();
    next.lease_until.reset();
  } else if (ch.extend_lease) {
    next.lease_until = now + *ch.extend_lease;
  }

  const bool decision =
      (old.status == ReplyStatus::kPending || old.status == ReplyStatus::kFailed) &&
      (ch.to == ReplyStatus::kApproved || ch.to == ReplyStatus::kRejected);
  if (decision) next.decided_at = now;
  if (ch.to == ReplyStatus::kApproved && next.final_text.empty()) {
    next.final_text = next.draft_text;
  }
  if (ch.to == ReplyStatus::kRejected || ch.to == ReplyStatus::kGenerating) {
    // A new draft is coming: the old text no longer stands as the answer, nor what it carried
    // (unless the change gives them anew).
    next.final_text.clear();
    if (!ch.attachments) next.attachments.clear();
    if (!ch.deferred_calls) next.deferred_calls.clear();
  }
  if (ch.next_attempt_at) {
    next.next_attempt_at = *ch.next_attempt_at;
  } else if (old.status != ch.to) {
    next.next_attempt_at.reset();
  }

  if (ch.to == ReplyStatus::kSent) {
    if (next.final_text.empty()) {
      return failed_precondition(fmt::format("reply {} has no text to send", old.id));
    }
    next.sent_at = now;
    next.transport_message_id = ch.transport_message_id;
    ReplyLogEntry m;
    m.chat_id = old.chat_id;
    m.session_id = old.session_id;
    m.role = next.author.empty() ? Role::kAssistant : Role::kOperator;
    m.text = next.final_text;
    m.author = next.author;
    m.created_at = now;
    m.transport_message_id = ch.transport_message_id;
    m.reply_id = old.id;
    out.message = std::move(m);
  }

  if (!ch.audit_action.empty()) {
    AuditEvent e;
    e.at = now;
    e.actor = ch.actor.empty() ? "system" : ch.actor;
    e.action = ch.audit_action;
    e.reply_id = old.id;
    e.chat_id = old.chat_id;
    e.before = shown_text(old);
    e.after = shown_text(next);
    e.detail = ch.detail;
    out.audit = std::move(e);
  }
  next.version = old.version + 1;
  next.updated_at = now;
  return out;
}

Status check_claim_request(const ClaimRequest& q) {
  if (q.worker.empty()) return invalid_argument("a claim needs a worker name");
  if (q.limit < 1 || q.limit > kMaxClaimLimit) {
    return invalid_argument(
        fmt::format("limit must be between 1 and {}, got {}", kMaxClaimLimit, q.limit));
  }
  if (q.lease <= std::chrono::milliseconds::zero()) {
    return invalid_argument("a claim needs a positive lease");
  }
  const ReplyStatus to = q.to.value_or(q.status);
  if (to != q.status && !is_legal_transition(q.status, to)) return illegal_move(q.status, to);
  return Status();
}

bool claim_is_open(const Reply& r, const ClaimRequest& q, Timestamp now) noexcept {
  if (r.status != q.status) return false;
  const bool free = r.claimed_by.empty() || (q.retake_own && r.claimed_by == q.worker) ||
                    !r.lease_until || *r.lease_until <= now;
  if (!free) return false;
  return !q.due_only || !r.next_attempt_at || *r.next_attempt_at <= now;
}

bool holds_back(ReplyStatus earlier, const ClaimRequest& q) noexcept {
  if (!q.head_of_chat_only) return false;
  switch (earlier) {
    case ReplyStatus::kNew:
    case ReplyStatus::kGenerating:
    case ReplyStatus::kPending:
    case ReplyStatus::kRejected:
      return true;
    case ReplyStatus::kApproved:
      return !q.past_approved;
    case ReplyStatus::kSent:
    case ReplyStatus::kFailed:
    case ReplyStatus::kCancelled:
      return false;
  }
  return false;
}

Result<Reply> apply_claim(const Reply& current, const ClaimRequest& q, Timestamp now) {
  if (current.status != q.status) {
    return failed_precondition(fmt::format("reply {} is {}, not {}", current.id,
                                           to_string(current.status), to_string(q.status)));
  }
  if (held_by_other(current, q.worker, now)) {
    return aborted(fmt::format("reply {} is claimed by {} until {:%H:%M:%S} UTC", current.id,
                               current.claimed_by,
                               std::chrono::floor<std::chrono::seconds>(*current.lease_until)));
  }
  const ReplyStatus to = q.to.value_or(q.status);
  Reply r = current;
  r.status = to;
  r.claimed_by = q.worker;
  r.lease_until = now + q.lease;
  r.updated_at = now;
  ++r.version;
  if (to == ReplyStatus::kGenerating) ++r.generation_attempts;
  return r;
}

Result<std::optional<Reply>> apply_release(const Reply& current, std::string_view worker,
                                           Timestamp now) {
  if (current.claimed_by.empty()) return std::optional<Reply>();
  if (current.claimed_by != worker) {
    return aborted(
        fmt::format("reply {} is claimed by {}, not {}", current.id, current.claimed_by, worker));
  }
  Reply r = current;
  r.claimed_by.clear();
  r.lease_until.reset();
  r.updated_at = now;
  ++r.version;
  return std::optional<Reply>(std::move(r));
}

Status check_new_reply(const NewReply& r) {
  if (r.chat_id <= 0) return invalid_argument("a reply needs a chat id");
  if (r.status != ReplyStatus::kNew && r.status != ReplyStatus::kApproved) {
    return invalid_argument(
        fmt::format("a reply is created as new or approved, not {}", to_string(r.status)));
  }
  if (r.status == ReplyStatus::kApproved && r.final_text.empty()) {
    return invalid_argument("an approved reply needs its text");
  }
  return check_text_size("the reply text", r.final_text);
}

Reply make_reply(const NewReply& n, SessionId session, Timestamp now) {
  Reply r;
  r.chat_id = n.chat_id;
  r.session_id = session;
  r.question_id = n.question_id;
  r.status = n.status;
  r.final_text = n.final_text;
  r.author = n.author;
  r.version = 1;
  r.created_at = now;
  r.updated_at = now;
  if (n.status == ReplyStatus::kApproved) r.decided_at = now;
  return r;
}

std::optional<AuditEvent> make_reply_audit(const NewReply& n, ReplyId id, Timestamp now) {
  if (n.audit_action.empty()) return std::nullopt;
  AuditEvent e;
  e.at = now;
  e.actor = n.actor;
  e.action = n.audit_action;
  e.reply_id = id;
  e.chat_id = n.chat_id;
  e.after = n.final_text;
  return e;
}

}  // namespace llmassist
