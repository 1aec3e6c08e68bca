// Internal: what the shipped MessageStores share that is not SQL — the page limit, LIKE
// patterns, the recall index's terms, vector checks and cosine similarity, latency percentiles.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist::detail {

// The largest page a list call returns.
inline constexpr int kMaxStorePage = 1000;
// The most terms a recall search takes.
inline constexpr std::size_t kMaxQueryTerms = 1024;

// kInvalidArgument unless 1 <= limit <= kMaxStorePage.
[[nodiscard]] LLMASSIST_API Status check_limit(int limit);

// A LIKE pattern matching text that contains `search`, its "%", "_" and "\" literal (ESCAPE '\').
[[nodiscard]] LLMASSIST_API std::string like_pattern(std::string_view search);

// The words of `terms`, split at ASCII white space.
[[nodiscard]] LLMASSIST_API std::vector<std::string_view> split_terms(std::string_view terms);

// kInvalidArgument unless `v` is a usable vector: not empty, every value finite.
[[nodiscard]] LLMASSIST_API Status check_vector(std::span<const float> v, std::string_view what);

[[nodiscard]] LLMASSIST_API double vector_norm(std::span<const float> v);

// The cosine similarity of `a` and `b` (same length), given |a|; nullopt for a zero vector.
[[nodiscard]] LLMASSIST_API std::optional<double> cosine_similarity(std::span<const float> a,
                                                                    double norm_a,
                                                                    std::span<const float> b);

// The checks of each call's input that come before any SQL, the same in every store: the errors
// MessageStore's contract names (kInvalidArgument and its message).
[[nodiscard]] LLMASSIST_API Status check_chat_infos(std::span<const ChatInfo> infos);
[[nodiscard]] LLMASSIST_API Status check_inbound(std::span<const InboundMessage> messages);
[[nodiscard]] LLMASSIST_API Status check_new_message(const NewMessage& message);
[[nodiscard]] LLMASSIST_API Status check_audit_event(const AuditEvent& event);
[[nodiscard]] LLMASSIST_API Status check_setting(std::string_view key, std::string_view value);
// The statistics' range in milliseconds [from, to), `to` defaulting to just after `now_ms`.
[[nodiscard]] LLMASSIST_API Result<std::pair<std::int64_t, std::int64_t>> stats_range(
    const StatsQuery& query, std::int64_t now_ms);
[[nodiscard]] LLMASSIST_API Status check_new_summary(const NewSessionSummary& summary);
[[nodiscard]] LLMASSIST_API Status check_new_job(const NewMemoryJob& job);
[[nodiscard]] LLMASSIST_API Status check_job_claim(const JobClaim& claim);
[[nodiscard]] LLMASSIST_API Status check_job_lease(std::chrono::milliseconds lease);
// OK when `worker` holds `job` (its claim, even one whose lease ran out while nobody took it);
// kAborted when it is done or someone else's or nobody's.
[[nodiscard]] LLMASSIST_API Status check_job_held(const MemoryJob& job, std::string_view worker);
[[nodiscard]] LLMASSIST_API Status check_recall_items(std::span<const RecallItem> items);
[[nodiscard]] LLMASSIST_API Status check_term_query(const TermQuery& query);
// The query vector's norm when the query is usable.
[[nodiscard]] LLMASSIST_API Result<double> check_vector_query(const VectorQuery& query);
[[nodiscard]] LLMASSIST_API Status check_recall_vectors(
    std::span<const std::pair<RecallItemId, std::vector<float>>> vectors, std::string_view model);
[[nodiscard]] LLMASSIST_API Status check_cached_embeddings(
    std::string_view model, std::span<const std::pair<std::string, std::vector<float>>> entries);

// A reply's attachments and deferred tool calls as the stores keep them, in one text column:
// {"attachments": [{"path", "file_name", "mime_type", "caption"}], "deferred_calls": [{"call_id",
// "tool", "arguments"}]}, each key only when not empty; "" when the reply has neither.
[[nodiscard]] LLMASSIST_API std::string reply_actions_json(const Reply& reply);
// Reads that column into `reply`. A text that is not such JSON (a store edited by hand) reads as
// none.
LLMASSIST_API void read_reply_actions(std::string_view text, Reply& reply);

// What update_chat() writes: the chat after the change, and its audit event.
struct ChatUpdate {
  Chat chat;
  std::optional<AuditEvent> audit;
  bool changed = false;  // false: the change changes nothing (nothing to write)
};
// The largest contact notes (64 KiB).
inline constexpr std::size_t kMaxChatNotesBytes = std::size_t{64} << 10;
// kInvalidArgument for a change that sets nothing, an empty title, a title over 1 KiB or notes
// over kMaxChatNotesBytes.
[[nodiscard]] LLMASSIST_API Status check_chat_change(const ChatChange& change);
// `current` with `change` applied at `now` (opted out: opted_out_at = now unless already set),
// updated_at = now when anything changed; the audit event "contact" when `change.actor` is set.
[[nodiscard]] LLMASSIST_API ChatUpdate apply_chat_change(const Chat& current,
                                                         const ChatChange& change, Timestamp now);

// Waits on `store`'s change notification until `stopping()`: calls `changed()` after each change
// (a commit by this process or another). `stopping()` is looked at every `slice`, so a stop is seen
// within it. For a thread of its own that wakes a worker.
LLMASSIST_API void watch_store_changes(MessageStore& store, std::chrono::milliseconds slice,
                                       const std::function<bool()>& stopping,
                                       const std::function<void()>& changed);

// Nearest-rank percentiles of durations in milliseconds.
[[nodiscard]] LLMASSIST_API LatencySummary summarize_latencies(std::vector<std::int64_t> samples);

}  // namespace llmassist::detail
