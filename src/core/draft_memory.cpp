#include "core/draft_memory.h"

#include "core/json_text.h"

namespace llmassist::detail {

Result<DraftMemory> draft_memory(MessageStore& store, ReplyId reply) {
  DraftMemory out;
  out.memory = nullptr;
  AuditQuery q;
  q.reply_id = reply;
  q.limit = 100;
  for (;;) {
    auto events = store.list_audit(q);
    if (!events.ok()) {
      if (events.status().code() == StatusCode::kUnimplemented) return out;
      return events.status();
    }
    for (const AuditEvent& e : *events) {
      if (e.action == "reject") return out;
      if (e.action != "draft") continue;
      nlohmann::json parsed = parse_json_text(e.detail);
      if (parsed.is_object()) {
        out.memory = std::move(parsed);
      } else {
        out.unreadable = e.id;
      }
      return out;
    }
    if (static_cast<int>(events->size()) < q.limit) return out;
    q.before_id = events->back().id;
  }
}

}  // namespace llmassist::detail
