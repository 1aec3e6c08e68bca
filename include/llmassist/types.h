// The domain's value types: chats, sessions, messages, replies and audit events, and the
// lifecycle of a reply. Plain aggregates shared by every interface; no behaviour beyond the
// status-transition rules and name conversions.
//
// Times are std::chrono::system_clock time points (UTC). Ids are assigned by the MessageStore
// and are positive; 0 means "none".
//
// Thread-safety: values; no shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist {

using Timestamp = std::chrono::system_clock::time_point;

using ChatId = std::int64_t;
using SessionId = std::int64_t;
using MessageId = std::int64_t;
using ReplyId = std::int64_t;
using AuditId = std::int64_t;

// Who wrote a message. `operator` is a human answering in the assistant's place; `tool` is the
// record of a tool the assistant called while drafting (what it was asked and what it answered).
enum class Role : std::uint8_t { kUser, kAssistant, kOperator, kSystem, kTool };

// "user", "assistant", "operator", "system", "tool".
[[nodiscard]] LLMASSIST_API std::string_view to_string(Role role) noexcept;
[[nodiscard]] LLMASSIST_API std::optional<Role> parse_role(std::string_view name) noexcept;

// Who answers a chat: the assistant (with or without moderation), or a human operator after a
// handoff.
enum class ChatMode : std::uint8_t { kBot, kOperator };
[[nodiscard]] LLMASSIST_API std::string_view to_string(ChatMode mode) noexcept;
[[nodiscard]] LLMASSIST_API std::optional<ChatMode> parse_chat_mode(std::string_view name) noexcept;

// A conversation on one channel, identified there by `external_id` (a Telegram chat id as
// decimal text, an e-mail address, "console").
struct LLMASSIST_API Chat {
  ChatId id = 0;
  std::string channel;      // "telegram", "console", "api", ...
  std::string external_id;  // the channel's own id for the chat
  std::string title;        // display name: the user's name or the group's title
  std::string username;     // the channel's handle, without "@"; may be empty
  ChatMode mode = ChatMode::kBot;
  bool blocked = false;  // the user blocked the bot: nothing is sent there any more
  // The contact asked not to be written to (stop_contact): no follow-up, reminder or campaign
  // message goes there any more; what they ask is still answered. Empty: not opted out.
  std::optional<Timestamp> opted_out_at;
  std::string notes;  // an operator's notes on the contact
  Timestamp created_at{};
  Timestamp updated_at{};
};

// A stretch of a chat that the assistant remembers as one dialog. `/start` closes the open
// session and opens a new one; the chat's full history still spans all of them.
struct LLMASSIST_API Session {
  SessionId id = 0;
  ChatId chat_id = 0;
  Timestamp started_at{};
  std::optional<Timestamp> closed_at;
  // The rolling summary of the session's older messages, and the last message it covers.
  std::string summary;
  MessageId summary_upto = 0;
};

// One entry of a chat's message log.
struct LLMASSIST_API Message {
  MessageId id = 0;
  ChatId chat_id = 0;
  SessionId session_id = 0;
  Role role = Role::kUser;
  std::string text;
  // The person behind the message: the user's display name, or the operator's account name.
  std::string author;
  Timestamp created_at{};
  // The channel's id of the inbound update that carried the message ("telegram:812345"); the
  // store keeps at most one message per key. Empty for messages we wrote.
  std::string dedup_key;
  // The channel's id of the message itself (Telegram's message_id), when known.
  std::string transport_message_id;
  // For assistant and operator messages: the reply this message delivered.
  ReplyId reply_id = 0;
};

// A file that goes out with an answer (a presentation, a price list): a local file, named as
// the user is to see it. A channel that cannot carry files sends the names instead.
struct LLMASSIST_API Attachment {
  std::string path;       // required: a readable local file
  std::string file_name;  // as the user sees it; empty: the path's last segment
  std::string mime_type;  // empty: application/octet-stream
  std::string caption;    // a short text sent with the file; may be empty
};

// A call of a tool with side effects that a draft made in review policy: it runs when an
// operator approves the draft, before the answer goes out (docs/tools.md).
struct LLMASSIST_API DeferredToolCall {
  std::string call_id;    // the model's id of the call
  std::string tool;       // the tool's name
  std::string arguments;  // the model's JSON object, as text
};

// The lifecycle of an answer:
//
//   new ─▶ generating ─▶ pending ─▶ approved ─▶ sent
//              │  ▲          │          ▲
//              │  └─rejected◀┘          │
//              └──────────(auto policy)─┘
//
// plus `failed` (every provider failed, or delivery failed for good; an operator may answer it
// by hand — failed -> approved — or reject it to ask for a new draft — failed -> rejected) and
// `cancelled`. The names `new`, `pending`, `approved` and `rejected` keep the meaning the
// original REST API gave them.
enum class ReplyStatus : std::uint8_t {
  kNew,         // a question waits for a draft
  kGenerating,  // a worker is drafting it (holds a lease)
  kPending,     // a draft waits for an operator's decision
  kApproved,    // the answer is final and waits in the outbox
  kRejected,    // an operator rejected the draft; a new one will be generated
  kSent,        // delivered; the answer is in the message log
  kFailed,      // no answer could be produced or delivered; an operator may answer by hand
  kCancelled,   // withdrawn (merged into a later reply, the session reset, the chat blocked)
};

// "new", "generating", "pending", "approved", "rejected", "sent", "failed", "cancelled".
[[nodiscard]] LLMASSIST_API std::string_view to_string(ReplyStatus status) noexcept;
[[nodiscard]] LLMASSIST_API std::optional<ReplyStatus> parse_reply_status(
    std::string_view name) noexcept;

// Whether a reply may move from `from` to `to`. Some statuses allow staying put so that a
// worker can renew its lease or an operator can edit a pending draft without deciding yet:
// generating, pending, approved and failed. sent and cancelled are final.
[[nodiscard]] LLMASSIST_API bool is_legal_transition(ReplyStatus from, ReplyStatus to) noexcept;

// The answer to one question (or to a batch of questions asked while the previous answer was in
// flight: then `question_id` is the last of them).
struct LLMASSIST_API Reply {
  ReplyId id = 0;
  ChatId chat_id = 0;
  SessionId session_id = 0;
  MessageId question_id = 0;  // 0 for an operator's own message in a handoff chat
  ReplyStatus status = ReplyStatus::kNew;
  std::string draft_text;  // the LLM's latest draft
  std::string final_text;  // what is (or will be) sent; set on approval
  // The operator who wrote final_text by hand (edit, handoff answer); empty when it is the draft.
  std::string author;
  std::string provider;  // the LLM provider that produced the draft
  std::string error;     // why the last generation or delivery attempt failed
  int generation_attempts = 0;
  int send_attempts = 0;
  // Bumped by every change; a caller may pass it back to refuse lost updates.
  std::int64_t version = 0;
  // The worker or operator holding the reply, and until when. A lease that has run out may be
  // taken over by anyone.
  std::string claimed_by;
  std::optional<Timestamp> lease_until;
  // Not to be picked up for delivery (or generation) before this time: retry backoff.
  std::optional<Timestamp> next_attempt_at;
  std::string transport_message_id;  // set when sent
  // Files that go out with the answer (a tool's send_document), after its text.
  std::vector<Attachment> attachments;
  // The calls of tools with side effects the draft made, waiting for its approval; run (and
  // cleared) before the answer is sent.
  std::vector<DeferredToolCall> deferred_calls;
  Timestamp created_at{};
  Timestamp updated_at{};
  std::optional<Timestamp> generated_at;  // the last draft was stored
  std::optional<Timestamp> decided_at;    // an operator (or the auto policy) approved it
  std::optional<Timestamp> sent_at;
};

// One decision or notable event, kept forever: who did what to which reply or chat, and the
// text before and after.
struct LLMASSIST_API AuditEvent {
  AuditId id = 0;
  Timestamp at{};
  std::string actor;   // "operator:alice", "bot", "admin:root", "system"
  std::string action;  // "approve", "edit", "reject", "claim", "handoff", "generate", ...
  ReplyId reply_id = 0;
  ChatId chat_id = 0;
  std::string before;  // text before the change (the draft, for an edit)
  std::string after;   // text after the change
  std::string detail;  // free text: a rejection reason, an error
};

}  // namespace llmassist
