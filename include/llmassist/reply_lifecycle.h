// The reply lifecycle: the business rules of every change to a reply, as pure functions of
// plain values. A MessageStore reads the reply, calls these, and persists what they return, in
// one transaction; it decides none of the rules itself, so every store (SQLite, PostgreSQL, a
// user's own) behaves the same way.
//
// Contract for a store:
// - transition_reply(id, change): check_reply_change(change) before touching the database (an
//   illegal move is kFailedPrecondition, a text too large kInvalidArgument); then, inside the
//   transaction, read the reply (kNotFound when missing), call
//   apply_reply_change(current, change, now) and, when it succeeds, write `ReplyUpdate::reply`
//   over the stored row (every field it carries, `version` included), append
//   `ReplyUpdate::message` to the message log when present and `ReplyUpdate::audit` to the audit
//   log when present, all in the same transaction. An error from apply_reply_change() is the
//   call's error; nothing is written. Keep `ReplyUpdate::providers_tried` when the store keeps
//   statistics (it is not part of Reply).
// - claim_replies(request): check_claim_request(request) first. With `reply_id`: read it and
//   call apply_claim(). Otherwise: the candidates are the replies for which
//   claim_is_open(reply, request, now) holds, and, with head_of_chat_only, no earlier reply of
//   the same chat for which holds_back(earlier, request) holds; oldest (smallest id) first, at
//   most `limit`, only chats of `request.channel` when it is set. Each is written as
//   apply_claim() returns it.
// - release_claim(id, worker): apply_release(); write the reply when it returns one.
// - create_reply(new_reply) and append_inbound(): check_new_reply(), then make_reply() for the
//   row (the store assigns `id`) and write the audit event make_reply_audit() gives, if any.
// - `now` is the store's clock, at the precision the store keeps (the SQLite store: whole
//   milliseconds), so that what these functions return equals what a later read gives back. A
//   time the caller gave (next_attempt_at) the store rounds as it stores it, in what it returns
//   too.
//
// Thread-safety: pure functions; no state.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "llmassist/export.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// The largest text a reply or message may carry (1 MiB): no chat channel carries more, and a
// runaway producer must not fill the disk one row at a time.
inline constexpr std::size_t kMaxReplyTextBytes = std::size_t{1} << 20;

// kInvalidArgument when `text` is larger than kMaxReplyTextBytes; `what` names it in the error.
[[nodiscard]] LLMASSIST_API Status check_text_size(std::string_view what, std::string_view text);

// A message the store must append to the log with a reply change (the answer, when sent).
struct LLMASSIST_API ReplyLogEntry {
  ChatId chat_id = 0;
  SessionId session_id = 0;
  Role role = Role::kAssistant;  // kOperator when the reply has an author
  std::string text;
  std::string author;
  Timestamp created_at{};
  std::string transport_message_id;
  ReplyId reply_id = 0;
};

// What a change does: the reply as it is to be stored, and what is to be written with it.
struct LLMASSIST_API ReplyUpdate {
  Reply reply;  // the whole row after the change (version + 1, updated_at = now)
  std::optional<ReplyLogEntry> message;  // to append to the message log, in the same transaction
  std::optional<AuditEvent> audit;       // to append to the audit log (`id` 0: the store's)
  std::optional<int> providers_tried;    // statistics only: keep when set
};

// What can be checked without the stored reply: the move is legal (is_legal_transition(); else
// kFailedPrecondition) and the texts are not too large (kInvalidArgument); each attachment has a
// path and each deferred call a tool name (kInvalidArgument).
[[nodiscard]] LLMASSIST_API Status check_reply_change(const ReplyChange& change);

// Applies `change` to `current` at `now`. Errors, in this order:
// - whatever check_reply_change() refuses;
// - kAborted when `current.status` is not `change.from`, when `expected_version` is set and
//   differs, or when `change.actor` is set and another holds a lease on the reply not yet run out;
// - kFailedPrecondition when the change is to kSent and the reply has no text to send.
// The rules of the result:
// - status becomes `to`; each field the change sets is set; count_generation / count_send add
//   one to the attempts; version + 1; updated_at = now.
// - The claim is released (claimed_by empty, no lease) unless keep_claim; with keep_claim and
//   extend_lease the lease runs from now.
// - generated_at = now when a draft is given; decided_at = now on a decision (pending or failed
//   to approved or rejected); sent_at = now on kSent.
// - To kApproved without a final text: the draft becomes the final text. To kRejected or
//   kGenerating: the final text is cleared (a new draft is coming), and so are the attachments
//   and the deferred tool calls unless the change sets them.
// - next_attempt_at is cleared when the status changes, unless the change sets it.
// - To kSent: transport_message_id is set, and `message` holds the final text for the log, as
//   the assistant's (kAssistant) or, when the reply has an author, the operator's (kOperator).
// - With audit_action: `audit` holds the event (actor, or "system" when empty; the text before —
//   the previous final text, else the draft — and after; detail), dated now.
[[nodiscard]] LLMASSIST_API Result<ReplyUpdate> apply_reply_change(const Reply& current,
                                                                   const ReplyChange& change,
                                                                   Timestamp now);

// Whether `reply` is held by someone other than `worker` under a lease not yet run out at `now`.
[[nodiscard]] LLMASSIST_API bool held_by_other(const Reply& reply, std::string_view worker,
                                               Timestamp now) noexcept;

// What can be checked of a claim without the store: a worker name, a limit of 1..1000, a positive
// lease (kInvalidArgument), a legal move from `status` to `to` (kFailedPrecondition).
[[nodiscard]] LLMASSIST_API Status check_claim_request(const ClaimRequest& request);

// Whether `reply` may be taken by `request` at `now`, as far as the reply alone decides: its
// status is `request.status`; it is free, or its lease has run out, or (with retake_own) the
// worker holds it itself; and, with due_only, its next_attempt_at has come. (The chat's order,
// the channel and the reply_id are the caller's part.)
[[nodiscard]] LLMASSIST_API bool claim_is_open(const Reply& reply, const ClaimRequest& request,
                                               Timestamp now) noexcept;

// With head_of_chat_only: whether an earlier reply of the same chat in status `earlier` keeps
// the chat's later replies from being claimed. Unfinished replies (new, generating, pending,
// rejected, and approved unless past_approved) do. Without head_of_chat_only: never.
[[nodiscard]] LLMASSIST_API bool holds_back(ReplyStatus earlier,
                                            const ClaimRequest& request) noexcept;

// The claim of one reply: for a claim by `reply_id`, kFailedPrecondition when its status is not
// `request.status` and kAborted when another holds it (lease not run out). The result: status
// `to` (or unchanged), claimed_by = worker, lease until now + lease, version + 1,
// updated_at = now, and one more generation attempt when the claim moves it to kGenerating.
[[nodiscard]] LLMASSIST_API Result<Reply> apply_claim(const Reply& current,
                                                      const ClaimRequest& request, Timestamp now);

// release_claim(): nothing to write (std::nullopt) when nobody holds the reply; kAborted when
// someone other than `worker` does; else the reply without its claim (version + 1,
// updated_at = now).
[[nodiscard]] LLMASSIST_API Result<std::optional<Reply>> apply_release(const Reply& current,
                                                                       std::string_view worker,
                                                                       Timestamp now);

// create_reply(): a chat id; status kNew, or kApproved with its final text (kInvalidArgument
// otherwise); the text not too large.
[[nodiscard]] LLMASSIST_API Status check_new_reply(const NewReply& reply);

// The row of a new reply (id 0: the store assigns it) in `session` at `now`: status and final
// text as asked, version 1, decided_at = now when it is created approved.
[[nodiscard]] LLMASSIST_API Reply make_reply(const NewReply& reply, SessionId session,
                                             Timestamp now);

// The audit event written with a new reply when `reply.audit_action` is set (the text as
// `after`), for the reply `id` once the store has assigned it.
[[nodiscard]] LLMASSIST_API std::optional<AuditEvent> make_reply_audit(const NewReply& reply,
                                                                       ReplyId id, Timestamp now);

}  // namespace llmassist
