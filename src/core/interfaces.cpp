// Free helpers declared beside the interfaces: synchronous wrappers and conveniences.
#include <fmt/format.h>

#include <algorithm>

#include "core/await_result.h"
#include "llmassist/chat_transport.h"
#include "llmassist/embedding_provider.h"
#include "llmassist/llm_provider.h"
#include "llmassist/message_store.h"

namespace llmassist {

Result<InboundResult> append_inbound(MessageStore& store, const InboundMessage& message) {
  auto results = store.append_inbound(std::span<const InboundMessage>(&message, 1));
  if (!results.ok()) return results.status();
  if (results->size() != 1) return internal_error("append_inbound returned no result");
  return std::move(results->front());
}

Result<std::vector<Message>> MessageStore::dialog_window(SessionId session, int count,
                                                         MessageId upto) {
  constexpr int kRoom = 32;  // for later messages and system lines
  LLMASSIST_ASSIGN_OR_RETURN(auto recent, recent_messages(session, std::min(count + kRoom, 1000)));
  std::vector<Message> out;
  for (auto& m : recent) {
    if ((upto == 0 || m.id <= upto) && m.role != Role::kSystem && m.role != Role::kTool)
      out.push_back(std::move(m));
  }
  if (out.size() > static_cast<std::size_t>(count)) {
    out.erase(out.begin(), out.end() - count);
  }
  return out;
}

Result<ErasureCounts> erase_chat_data(MessageStore& store, ChatId chat, std::string_view actor) {
  LLMASSIST_ASSIGN_OR_RETURN(ErasureCounts counts, store.erase_chat(chat));
  AuditEvent event;
  event.actor = std::string(actor);
  event.action = "erase";
  event.detail = fmt::format("chat {} erased: {} messages, {} replies, {} audit events", chat,
                             counts.messages, counts.replies, counts.audit_events);
  LLMASSIST_RETURN_IF_ERROR(store.append_audit(event).status());
  return counts;
}

Result<Chat> MessageStore::update_chat(ChatId, const ChatChange&) {
  return unimplemented("this store keeps no contact details");
}

Result<ErasureCounts> MessageStore::delete_older_than(Timestamp) {
  return unimplemented("this store has no data retention");
}

Result<ErasureCounts> MessageStore::erase_chat(ChatId) {
  return unimplemented("this store cannot erase a chat");
}

Result<std::vector<AuditEvent>> MessageStore::list_audit(const AuditQuery&) {
  return unimplemented("this store cannot list its audit log");
}

Result<Stats> MessageStore::stats(const StatsQuery&) {
  return unimplemented("this store keeps no statistics");
}

Result<std::string> MessageStore::get_setting(std::string_view) {
  return unimplemented("this store keeps no settings");
}

Status MessageStore::put_setting(std::string_view, std::string_view) {
  return unimplemented("this store keeps no settings");
}

Result<std::vector<Message>> MessageStore::messages_after(SessionId session, MessageId after,
                                                          int limit) {
  if (limit < 1 || limit > 1000) return invalid_argument("limit must be 1..1000");
  LLMASSIST_ASSIGN_OR_RETURN(Session s, get_session(session));
  // Pages the chat's history back to `after`, then keeps this session's dialog, oldest first.
  std::vector<Message> newest_first;
  HistoryQuery q;
  q.limit = 1000;
  while (true) {
    LLMASSIST_ASSIGN_OR_RETURN(auto page, chat_history(s.chat_id, q));
    bool reached = page.empty();
    for (auto& m : page) {
      if (m.id <= after) {
        reached = true;
        break;
      }
      if (m.session_id == session && m.role != Role::kSystem && m.role != Role::kTool)
        newest_first.push_back(std::move(m));
    }
    if (reached || static_cast<int>(page.size()) < q.limit) break;
    q.before_id = page.back().id;
  }
  std::vector<Message> out(newest_first.rbegin(), newest_first.rend());
  if (out.size() > static_cast<std::size_t>(limit)) out.resize(static_cast<std::size_t>(limit));
  return out;
}

namespace {
constexpr const char* kNoMemory = "this store keeps no memory records";
}  // namespace

Result<SessionSummary> MessageStore::add_session_summary(const NewSessionSummary&) {
  return unimplemented(kNoMemory);
}
Result<SessionSummary> MessageStore::latest_session_summary(SessionId) {
  return unimplemented(kNoMemory);
}
Result<std::vector<SessionSummary>> MessageStore::list_session_summaries(SessionId) {
  return unimplemented(kNoMemory);
}
Result<MemoryJob> MessageStore::enqueue_job(const NewMemoryJob&) {
  return unimplemented(kNoMemory);
}
Result<std::vector<MemoryJob>> MessageStore::claim_jobs(const JobClaim&) {
  return unimplemented(kNoMemory);
}
Status MessageStore::extend_job_lease(JobId, std::string_view, std::chrono::milliseconds) {
  return unimplemented(kNoMemory);
}
Status MessageStore::finish_job(JobId, std::string_view) { return unimplemented(kNoMemory); }
Status MessageStore::retry_job(JobId, std::string_view, const JobRetry&) {
  return unimplemented(kNoMemory);
}
Result<MemoryJob> MessageStore::get_job(JobId) { return unimplemented(kNoMemory); }
Result<std::vector<MemoryJob>> MessageStore::list_jobs(std::string_view, bool, int) {
  return unimplemented(kNoMemory);
}
Status MessageStore::add_recall_items(std::span<const RecallItem>) {
  return unimplemented(kNoMemory);
}
Result<std::vector<RecallHit>> MessageStore::search_recall_terms(const TermQuery&) {
  return unimplemented(kNoMemory);
}
Result<std::vector<RecallHit>> MessageStore::search_recall_vectors(const VectorQuery&) {
  return unimplemented(kNoMemory);
}
Result<std::vector<RecallItem>> MessageStore::recall_items_without_vector(std::string_view, int) {
  return unimplemented(kNoMemory);
}
Status MessageStore::set_recall_vectors(
    std::span<const std::pair<RecallItemId, std::vector<float>>>, std::string_view) {
  return unimplemented(kNoMemory);
}
Result<std::int64_t> MessageStore::count_recall_items(ChatId) { return unimplemented(kNoMemory); }
Result<std::vector<std::vector<float>>> MessageStore::cached_embeddings(
    std::string_view, std::span<const std::string>) {
  return unimplemented(kNoMemory);
}
Status MessageStore::cache_embeddings(std::string_view,
                                      std::span<const std::pair<std::string, std::vector<float>>>) {
  return unimplemented(kNoMemory);
}

Result<std::vector<Chat>> MessageStore::upsert_chats(std::span<const ChatInfo> infos) {
  std::vector<Chat> out;
  out.reserve(infos.size());
  for (const ChatInfo& info : infos) {
    LLMASSIST_ASSIGN_OR_RETURN(auto chat, upsert_chat(info));
    out.push_back(std::move(chat));
  }
  return out;
}

Result<ChangeAndClaims> MessageStore::transition_and_claim(ReplyId id, const ReplyChange& change,
                                                           std::span<const ClaimRequest> claims) {
  ChangeAndClaims out;
  LLMASSIST_ASSIGN_OR_RETURN(out.reply, transition_reply(id, change));
  for (const ClaimRequest& q : claims) {
    LLMASSIST_ASSIGN_OR_RETURN(auto claimed, claim_replies(q));
    out.claimed.push_back(std::move(claimed));
  }
  LLMASSIST_ASSIGN_OR_RETURN(out.chat, get_chat(out.reply.chat_id));
  return out;
}

std::vector<Result<ChangeAndClaims>> MessageStore::transition_and_claim_each(
    std::span<const ReplyStep> steps) {
  std::vector<Result<ChangeAndClaims>> out;
  out.reserve(steps.size());
  for (const ReplyStep& step : steps) {
    out.push_back(transition_and_claim(step.id, step.change, step.claims));
  }
  return out;
}

Result<Completion> complete_sync(LlmProvider& provider, CompletionRequest request,
                                 TokenCallback on_token) {
  return detail::await_result<Completion>([&](CompletionCallback done) {
    provider.complete(std::move(request), std::move(on_token), std::move(done));
  });
}

Result<Embeddings> embed_sync(EmbeddingProvider& provider, EmbeddingRequest request) {
  return detail::await_result<Embeddings>(
      [&](EmbeddingCallback done) { provider.embed(std::move(request), std::move(done)); });
}

Result<SentMessage> send_sync(ChatTransport& transport, OutboundMessage message) {
  return detail::await_result<SentMessage>(
      [&](SendCallback done) { transport.send(std::move(message), std::move(done)); });
}

}  // namespace llmassist
