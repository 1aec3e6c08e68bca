// ModerationQueue: drafts waiting for a human and the operators' decisions on them — approve,
// edit, reject (a new draft is generated) — with who decided what and when.
//
// Contract:
// - Decisions only write to the store; the running bot's outbox delivers approved answers. So a
//   decision taken in any process (the web page, the terminal client, another bot) reaches the
//   user through the bot.
// - An operator may claim a draft before deciding; while the claim lasts, decisions by another
//   operator are refused with kAborted. Deciding without a claim is allowed when nobody else
//   holds one.
// - Every decision writes an audit event naming the operator; an edit keeps the draft as the
//   event's `before` text.
// - Errors: kNotFound for an unknown reply, kFailedPrecondition for a reply not awaiting a
//   decision (already approved, sent...), kAborted when another operator holds it, kInvalidArgument
//   for an empty operator name or edit text.
//
// Thread-safety: all methods may be called from many threads and processes at once.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// A draft with what an operator needs to judge it.
struct LLMASSIST_API PendingItem {
  Reply reply;
  Chat chat;
  std::vector<Message> history;  // the chat's recent messages, oldest first
};

struct LLMASSIST_API PendingQuery {
  int limit = 50;        // 1..1000
  int history = 10;      // messages of history per item, 0..100
  ReplyId after_id = 0;  // paging, oldest first
};

class LLMASSIST_API ModerationQueue {
 public:
  ModerationQueue() = default;
  virtual ~ModerationQueue() = default;
  ModerationQueue(const ModerationQueue&) = delete;
  ModerationQueue& operator=(const ModerationQueue&) = delete;

  // Drafts awaiting a decision (status pending, and failed replies an operator may answer by
  // hand), oldest first.
  virtual Result<std::vector<PendingItem>> list_pending(const PendingQuery& query) = 0;
  virtual Result<PendingItem> get(ReplyId id, int history) = 0;

  // Takes the draft for `operator_name` for `lease`; renews it when already theirs.
  virtual Result<Reply> claim(ReplyId id, std::string_view operator_name,
                              std::chrono::milliseconds lease) = 0;
  virtual Status release(ReplyId id, std::string_view operator_name) = 0;

  // The draft goes out as it is.
  virtual Result<Reply> approve(ReplyId id, std::string_view operator_name) = 0;
  // `text` goes out instead of the draft (or instead of nothing, for a failed reply).
  virtual Result<Reply> edit(ReplyId id, std::string_view operator_name, std::string text) = 0;
  // The draft is discarded and a new one generated; `reason` goes to the audit log and, with the
  // rejected draft, into the new draft's prompt (Reply::error keeps it meanwhile), so that the
  // model answers differently.
  virtual Result<Reply> reject(ReplyId id, std::string_view operator_name, std::string reason) = 0;
};

}  // namespace llmassist
