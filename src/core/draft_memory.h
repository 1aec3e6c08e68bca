// Internal: the memory that went into a reply's current draft, as operators are shown it (the
// admin server's GET /api/replies/{id}, the operator console's `show`). The assistant stores it,
// in the commit that stores the draft, as the detail of an audit event "draft" made by
// memory_used_json(); a draft whose memory was the recent window alone has no such event.
//
// Thread-safety: a pure function over the store, which must be safe to call from this thread.
#pragma once

#include <nlohmann/json.hpp>

#include "llmassist/export.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist::detail {

struct LLMASSIST_API DraftMemory {
  // The latest "draft" event's detail as a JSON object ({"summary_version", "estimated_tokens",
  // "window_messages", "recalled", "passages", "dropped"}, see memory_used_json()). Null when the
  // current draft used nothing beyond the recent window, when the store keeps no readable audit
  // log (list_audit answers kUnimplemented), or when the detail is not a JSON object.
  nlohmann::json memory;
  // The id of the event whose detail is not a JSON object, for the caller to log; 0: none.
  AuditId unreadable = 0;
};

// The memory of reply `reply`'s current draft: its newest "draft" audit event, unless a "reject"
// came after it (the draft that followed the rejection then used the window alone). The audit
// log is read newest first, a page at a time, until one of the two is found.
[[nodiscard]] LLMASSIST_API Result<DraftMemory> draft_memory(MessageStore& store, ReplyId reply);

}  // namespace llmassist::detail
