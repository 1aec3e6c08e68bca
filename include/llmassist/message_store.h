// MessageStore: the durable record of everything the assistant does — chats, sessions, the
// message log, replies with their status, audit events — and the coordination point between
// processes (a bot and its operator tools share one store; with PostgreSQL, several bots do).
//
// What a store implements: the pure virtuals below (chats, sessions, the message log, replies,
// claims, append_audit, wait_for_change) are what the pipeline needs to answer a user. The
// business rules of a reply change (legal moves, timestamps, texts, the answer joining the log,
// audit events, claims and leases) are not the store's: it calls the functions of
// reply_lifecycle.h and persists what they return, so a custom store repeats none of them.
// Batch calls (upsert_chats, dialog_window, transition_and_claim, transition_and_claim_each)
// have correct defaults in terms of the others; optional capabilities (list_audit, stats,
// settings, retention and erasure) default to kUnimplemented. The suite in
// llmassist/testing/message_store_conformance.h checks a store against this contract.
//
// Contract:
// - Durable: when a call returns OK, its effect survives a crash of the process.
// - Atomic: each call is one transaction. Where a call writes several rows (an inbound message
//   and its reply; a reply marked sent and the answer appended to the log; a decision and its
//   audit event) they commit together or not at all.
// - Idempotent inbound: a second message with the same dedup_key is not stored again; the call
//   reports the first one as a duplicate.
// - Compare-and-set: replies change status only through transition_reply() and claim_replies(),
//   which check the current status (and optionally the version) in the same transaction as the
//   write. Two workers never both claim one reply; an illegal transition is refused with
//   kFailedPrecondition; a lost race is kAborted.
// - Errors: kNotFound for unknown ids, kInvalidArgument for bad input, kUnavailable when the
//   database is busy or unreachable beyond the configured timeout, kDataLoss when it is corrupt.
//   Never throws.
//
// Thread-safety: every method may be called from many threads at once, and several processes may
// open the same database.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/memory_records.h"
#include "llmassist/status.h"
#include "llmassist/types.h"

namespace llmassist {

// What a channel tells us about a chat; upsert_chat() creates or refreshes it.
struct LLMASSIST_API ChatInfo {
  std::string channel;      // required: "telegram", "console", "api", ...
  std::string external_id;  // required: the channel's id for the chat
  std::string title;        // updated when not empty
  std::string username;     // updated when not empty
};

// An inbound user message as the transport delivered it.
struct LLMASSIST_API InboundMessage {
  ChatId chat_id = 0;  // required; the message joins the chat's open session (one is opened)
  std::string text;
  std::string author;  // the user's display name
  // The channel's id of the update ("telegram:812345"). Empty: no deduplication.
  std::string dedup_key;
  std::string transport_message_id;
  // When the user sent it, if the channel says; otherwise the store's clock.
  std::optional<Timestamp> sent_at;
  // Create a reply in status `new` for this message, in the same transaction. False for messages
  // that need no answer from the assistant (a chat in operator mode, a command).
  bool open_reply = true;
};

struct LLMASSIST_API InboundResult {
  Message message;       // the stored message (the earlier one, for a duplicate)
  ReplyId reply_id = 0;  // the reply opened for it (the earlier one, for a duplicate); 0 if none
  bool duplicate = false;
};

// Any other message for the log: an operator's note, a system line, an imported dialog.
struct LLMASSIST_API NewMessage {
  ChatId chat_id = 0;
  SessionId session_id = 0;  // 0: the chat's open session
  Role role = Role::kSystem;
  std::string text;
  std::string author;
  std::string transport_message_id;
  ReplyId reply_id = 0;  // the reply it belongs to (a tool record: the draft that called it)
};

// A page of a chat's log, newest first. Pass the smallest id of one page as `before_id` to get
// the next.
struct LLMASSIST_API HistoryQuery {
  MessageId before_id = 0;  // 0: from the newest
  int limit = 50;           // 1..1000
  std::string search;       // when not empty: only messages whose text contains it (no case)
};

// A change of a chat's contact details (update_chat()). Fields left empty are not changed.
struct LLMASSIST_API ChatChange {
  std::optional<std::string> title;
  std::optional<std::string> notes;
  // true: opted out now (kept when already opted out); false: opted in again.
  std::optional<bool> opted_out;
  // When not empty, an audit event "contact" is written in the same transaction, by this actor,
  // its detail naming what changed.
  std::string actor;
};

struct LLMASSIST_API ChatQuery {
  std::optional<ChatMode> mode;  // only chats in this mode
  std::string search;            // in title, username or external id (no case)
  ChatId before_id = 0;          // paging, newest chats first
  int limit = 50;                // 1..1000
};

struct LLMASSIST_API NewReply {
  ChatId chat_id = 0;
  SessionId session_id = 0;   // 0: the chat's open session
  MessageId question_id = 0;  // the question it answers; 0 for an operator's own message
  // kNew (a question for the assistant) or kApproved (a text straight to the outbox:
  // `final_text` then required).
  ReplyStatus status = ReplyStatus::kNew;
  std::string final_text;
  // The operator who wrote final_text; empty for the assistant's own words (a welcome, an
  // apology). Decides the role of the message in the log once sent.
  std::string author;
  // Written as an audit event with the reply when not empty ("operator:alice" / "handoff_reply").
  std::string actor;
  std::string audit_action;
};

struct LLMASSIST_API ReplyQuery {
  std::optional<ReplyStatus> status;
  std::optional<ChatId> chat_id;
  bool oldest_first = true;  // pending drafts: oldest first; an admin's list: newest first
  ReplyId after_id = 0;      // paging when oldest_first
  ReplyId before_id = 0;     // paging when newest first
  int limit = 100;           // 1..1000
};

// Take replies to work on. A claim is a lease: the reply carries `claimed_by` and `lease_until`;
// nobody else can claim it until the lease runs out or its holder releases it (a status change
// releases it). A worker that dies mid-work leaves a lease that simply expires.
struct LLMASSIST_API ClaimRequest {
  ReplyStatus status = ReplyStatus::kNew;  // claim replies in this status...
  std::optional<ReplyStatus> to;  // ...and move them to this one (kNew -> kGenerating); or keep
  std::string worker;             // required: "bot:host:pid", "operator:alice"
  std::chrono::milliseconds lease{std::chrono::seconds(120)};
  int limit = 1;                    // how many at most, oldest first
  std::optional<ReplyId> reply_id;  // claim this one only (kAborted when another holds it)
  std::vector<ChatId> chat_ids;     // only from these chats; empty: from any
  // Only from chats of this channel ("telegram"); empty: any. A bot takes only its own channel's
  // replies: the API channel's are answered by the admin server. Not checked with reply_id.
  std::string channel;
  // Only replies whose next_attempt_at has come (retry backoff); false ignores it.
  bool due_only = true;
  // Only the oldest unfinished reply of each chat (none in new/generating/pending/approved/
  // rejected before it), so that a chat's answers are produced in order.
  bool head_of_chat_only = false;
  // With head_of_chat_only: an earlier reply that is only waiting to be sent (approved) does not
  // hold a later one back. A chat's next draft may begin while its previous answer is on its
  // way; the outbox still sends them in order.
  bool past_approved = false;
  // Also replies `worker` holds itself under a lease not yet run out: a restarted worker taking
  // over what its previous run held. False: only free replies and those whose lease ran out, so
  // that a running worker is never handed again what it is still working on.
  bool retake_own = true;
};

// A compare-and-set change of one reply. Fields left empty are not changed.
struct LLMASSIST_API ReplyChange {
  ReplyStatus from = ReplyStatus::kNew;  // the status the caller saw; the change fails otherwise
  ReplyStatus to = ReplyStatus::kNew;
  std::optional<std::int64_t> expected_version;  // also require this version
  std::optional<std::string> draft_text;
  std::optional<std::string> final_text;
  std::optional<std::string> author;
  std::optional<std::string> provider;
  std::optional<int> providers_tried;
  std::optional<std::string> error;
  std::optional<Timestamp> next_attempt_at;
  std::optional<std::vector<Attachment>> attachments;
  std::optional<std::vector<DeferredToolCall>> deferred_calls;
  bool count_generation = false;  // add one to generation_attempts
  bool count_send = false;        // add one to send_attempts
  // Keep the current claim (a worker renewing its lease while staying in a status). By default
  // a change releases the claim.
  bool keep_claim = false;
  std::optional<std::chrono::milliseconds> extend_lease;  // with keep_claim: new lease from now
  // With to == kSent: the channel's message id. The reply's final_text (or draft_text) joins the
  // message log as an assistant message (operator, when the reply has an author) in the same
  // transaction.
  std::string transport_message_id;
  // When not empty, an audit event is written in the same transaction: actor, action, the text
  // before (the draft or the previous final text) and after, and `detail`.
  std::string actor;
  std::string audit_action;
  std::string detail;
};

// What transition_and_claim() did.
struct LLMASSIST_API ChangeAndClaims {
  Reply reply;  // as stored after the change
  Chat chat;    // the reply's chat, read with the claims when one took something (else id 0)
  std::vector<std::vector<Reply>> claimed;  // what each claim took, in the order asked
};

// One step for transition_and_claim_each(): a change of reply `id` and the claims made with it.
struct LLMASSIST_API ReplyStep {
  ReplyId id = 0;
  ReplyChange change;
  std::vector<ClaimRequest> claims;
};

struct LLMASSIST_API AuditQuery {
  std::optional<ReplyId> reply_id;
  std::optional<ChatId> chat_id;
  std::string actor;      // exact match when not empty
  AuditId before_id = 0;  // paging, newest first
  int limit = 100;        // 1..1000
};

// Percentiles of a duration in milliseconds; empty when no sample fell in the range.
struct LLMASSIST_API LatencySummary {
  std::int64_t count = 0;
  std::optional<double> p50_ms;
  std::optional<double> p95_ms;
  std::optional<double> p99_ms;
};

struct LLMASSIST_API DailyStats {
  std::string day;            // "2026-11-21" (UTC)
  std::int64_t messages = 0;  // all roles
  std::int64_t user_messages = 0;
  std::int64_t active_users = 0;  // chats with at least one user message that day
  std::int64_t replies_sent = 0;
};

struct LLMASSIST_API ProviderShare {
  std::string provider;
  std::int64_t replies = 0;
};

struct LLMASSIST_API StatsQuery {
  Timestamp from{};  // inclusive; epoch (the default) means "from the beginning"
  Timestamp to{};    // exclusive; epoch (the default) means "until now"
};

struct LLMASSIST_API Stats {
  std::vector<DailyStats> days;  // oldest first; only days with activity
  // Replies created in the range, by current status (indexed by ReplyStatus).
  std::array<std::int64_t, 8> replies_by_status{};
  // Question stored -> answer sent.
  LatencySummary response_time;
  // Draft stored -> operator decision, for replies that waited for one.
  LatencySummary moderation_wait;
  std::int64_t approved = 0;  // decisions by operators, from the audit log
  std::int64_t edited = 0;
  std::int64_t rejected = 0;
  std::vector<ProviderShare> providers;  // replies drafted, by provider, most first
  std::int64_t fallback_replies = 0;     // drafts that needed more than one provider
  std::int64_t failed = 0;               // replies that ended failed
};

// What delete_older_than() and erase_chat() removed.
struct LLMASSIST_API ErasureCounts {
  std::int64_t chats = 0;
  std::int64_t sessions = 0;
  std::int64_t messages = 0;
  std::int64_t replies = 0;
  std::int64_t audit_events = 0;
  // The memory's records about it: summary versions, recall items and background jobs.
  std::int64_t memory_records = 0;
  // The deleted text is gone from the database's files too (overwritten, the write-ahead log
  // emptied), not only from its tables. False when another connection's open read kept the log
  // from being emptied: a later erasure or checkpoint finishes it.
  bool reclaimed = false;
};

class LLMASSIST_API MessageStore {
 public:
  MessageStore() = default;
  virtual ~MessageStore() = default;
  MessageStore(const MessageStore&) = delete;
  MessageStore& operator=(const MessageStore&) = delete;

  // --- chats and sessions ---------------------------------------------------------------------

  // Finds the chat by (channel, external_id) or creates it; refreshes title and username.
  virtual Result<Chat> upsert_chat(const ChatInfo& info) = 0;
  // upsert_chat() for each of `infos` (the chats of a page of updates), the chats in the same
  // order. The SQLite store reads them all in one transaction and writes only those new or
  // changed, in one more; this default calls upsert_chat() for each.
  virtual Result<std::vector<Chat>> upsert_chats(std::span<const ChatInfo> infos);
  virtual Result<Chat> get_chat(ChatId id) = 0;
  // kNotFound when the channel has no such chat.
  virtual Result<Chat> find_chat(std::string_view channel, std::string_view external_id) = 0;
  virtual Result<std::vector<Chat>> list_chats(const ChatQuery& query) = 0;
  // Handoff: who answers the chat. Writes an audit event ("handoff" / "handback") by `actor`.
  virtual Status set_chat_mode(ChatId id, ChatMode mode, std::string_view actor) = 0;
  // The user blocked the bot (or unblocked it).
  virtual Status set_chat_blocked(ChatId id, bool blocked) = 0;
  // Changes a chat's contact details (title, notes, opt-out) and returns the chat as stored.
  // Default: kUnimplemented.
  virtual Result<Chat> update_chat(ChatId id, const ChatChange& change);

  // The chat's open session; opens one when there is none.
  virtual Result<Session> open_session(ChatId chat) = 0;
  // Closes the chat's open session and opens a new one (the /start reset). Replies of the old
  // session that are still unanswered keep their course.
  virtual Result<Session> restart_session(ChatId chat) = 0;
  virtual Result<Session> get_session(SessionId id) = 0;
  virtual Status close_session(SessionId id) = 0;
  // Stores the rolling summary of a session and the last message it covers.
  virtual Status set_session_summary(SessionId id, std::string_view summary, MessageId upto) = 0;

  // --- the message log ------------------------------------------------------------------------

  // Stores inbound messages in one transaction, each with its reply when asked. Results are in
  // the order of `messages`. A duplicate dedup_key is not an error: its result says duplicate.
  virtual Result<std::vector<InboundResult>> append_inbound(
      std::span<const InboundMessage> messages) = 0;
  virtual Result<Message> append_message(const NewMessage& message) = 0;
  virtual Result<Message> get_message(MessageId id) = 0;
  // The last `count` messages of a session, oldest first (the memory's recent window).
  virtual Result<std::vector<Message>> recent_messages(SessionId session, int count) = 0;
  // The dialog before an answer: the last `count` messages of a session up to and including
  // message `upto` (0: up to the newest), oldest first, without the bot's system lines and the
  // records of its tool calls (a tool's result means nothing to a model without its call). Later
  // messages (questions that came meanwhile) do not shorten it. This default reads
  // recent_messages() with room for some; the SQLite store asks for exactly these.
  virtual Result<std::vector<Message>> dialog_window(SessionId session, int count, MessageId upto);
  // A page of a chat's history across sessions, newest first.
  virtual Result<std::vector<Message>> chat_history(ChatId chat, const HistoryQuery& query) = 0;

  // --- replies --------------------------------------------------------------------------------

  virtual Result<Reply> create_reply(const NewReply& reply) = 0;
  virtual Result<Reply> get_reply(ReplyId id) = 0;
  virtual Result<std::vector<Reply>> list_replies(const ReplyQuery& query) = 0;
  // Claims up to `limit` replies (see ClaimRequest); an empty vector when none is free.
  virtual Result<std::vector<Reply>> claim_replies(const ClaimRequest& request) = 0;
  // Gives up a claim without changing the status. kAborted when `worker` does not hold it.
  virtual Status release_claim(ReplyId id, std::string_view worker) = 0;
  // Applies a compare-and-set change; returns the reply as stored after it.
  virtual Result<Reply> transition_reply(ReplyId id, const ReplyChange& change) = 0;
  // transition_reply() and then claim_replies() for each of `claims`, in order, and the reply's
  // chat as it is then when a claim took something (whoever sends what was claimed needs it;
  // the SQLite store does not read it otherwise): what a worker
  // does when one step of a chat ends and the chat's next may begin (a draft stored and its
  // answer claimed for sending, an answer sent and the next one claimed). When the change fails
  // nothing is claimed and its error is returned; a claim that fails fails the call. The SQLite
  // store does it all in one transaction (one commit instead of several); this default runs the
  // calls one after another, which is correct, only slower: a claim is never needed for
  // correctness, a later claim takes what one left.
  virtual Result<ChangeAndClaims> transition_and_claim(ReplyId id, const ReplyChange& change,
                                                       std::span<const ClaimRequest> claims);
  // transition_and_claim() for each of `steps`, in order, each all or nothing on its own: one
  // that fails leaves the others alone. One result per step. The SQLite store commits them all
  // together (the steps of many chats that ended at about the same time share one commit); this
  // default makes the calls one after another.
  virtual std::vector<Result<ChangeAndClaims>> transition_and_claim_each(
      std::span<const ReplyStep> steps);

  // --- audit ---------------------------------------------------------------------------------

  // Writes an event of its own (a setting changed, a chat erased). The events of reply changes
  // are written by transition_reply() and create_reply(), as the lifecycle says.
  virtual Result<AuditEvent> append_audit(const AuditEvent& event) = 0;

  // --- optional capabilities: defaults answer kUnimplemented -----------------------------------
  //
  // The pipeline answers users without these; the admin page, the operator tool and runtime
  // settings use them, and say so clearly when a store lacks one.

  // Reading the audit log, newest first. This default answers kUnimplemented.
  virtual Result<std::vector<AuditEvent>> list_audit(const AuditQuery& query);
  // The statistics of the admin page and /metrics. This default answers kUnimplemented.
  virtual Result<Stats> stats(const StatsQuery& query);

  // A small durable key-value table for components' state (runtime settings, what an operators'
  // chat post is about). get_setting returns kNotFound when the key was never set. These
  // defaults answer kUnimplemented: runtime settings then stay as configured (and cannot be
  // changed), and replies in the operators' chat cannot be routed.
  virtual Result<std::string> get_setting(std::string_view key);
  virtual Status put_setting(std::string_view key, std::string_view value);

  // --- retention and erasure -------------------------------------------------------------------

  // Data retention: deletes messages, replies and audit events made before `cutoff`, and the
  // closed sessions left with none of them. Replies still on their way (new, generating,
  // pending, rejected, approved) and their questions are kept whatever their age. Chats stay.
  // This default answers kUnimplemented.
  virtual Result<ErasureCounts> delete_older_than(Timestamp cutoff);
  // Erasure of one person's data: the chat with its sessions (their summaries), messages,
  // replies and the audit events about it (its chat id, its replies, or its user as the actor),
  // and the operators' chat posts that point at it; the deleted text is overwritten in the
  // files. kNotFound for an unknown chat. This default answers kUnimplemented.
  virtual Result<ErasureCounts> erase_chat(ChatId chat);

  // --- memory: summaries, background jobs, the recall index (memory_records.h) ---------------
  //
  // What the progressive summary and semantic recall keep. Optional: these defaults answer
  // kUnimplemented, and a memory that needs them says so when it is made. erase_chat() and
  // delete_older_than() cover these records too.

  // The session's messages after message `after` (0: from its first), oldest first, at most
  // `limit` (1..1000), without the bot's system lines and tool records: what a summary job
  // condenses. This default
  // pages chat_history().
  virtual Result<std::vector<Message>> messages_after(SessionId session, MessageId after,
                                                      int limit);
  // Stores a new summary version (see NewSessionSummary: compare-and-set on the version, the job
  // finished with it) and makes it the session's summary (Session::summary). kNotFound for an
  // unknown session, kInvalidArgument for an empty content.
  virtual Result<SessionSummary> add_session_summary(const NewSessionSummary& summary);
  // The newest version; kNotFound when the session has none.
  virtual Result<SessionSummary> latest_session_summary(SessionId session);
  // Every version, oldest first (empty when the session has none, or is unknown).
  virtual Result<std::vector<SessionSummary>> list_session_summaries(SessionId session);

  // Queues a job; when an unfinished job has the same key, returns that one instead (even one a
  // worker holds now: work noticed while a job runs is queued again once it is done).
  // kInvalidArgument without a kind or a key.
  virtual Result<MemoryJob> enqueue_job(const NewMemoryJob& job);
  // Claims up to `limit` due jobs (not done, next_attempt_at come, no lease or one run out),
  // oldest due first, counting an attempt on each. Two workers never both hold one job.
  // kInvalidArgument without a worker, for a limit outside 1..100 or a lease that is not
  // positive.
  virtual Result<std::vector<MemoryJob>> claim_jobs(const JobClaim& claim);
  // kAborted when `worker` does not hold the job (its lease ran out and another took it, or it is
  // done); a worker whose lease ran out while nobody took the job still holds it. kNotFound for
  // an unknown id. retry_job() releases the claim (see JobRetry).
  virtual Status extend_job_lease(JobId id, std::string_view worker,
                                  std::chrono::milliseconds lease);
  virtual Status finish_job(JobId id, std::string_view worker);
  virtual Status retry_job(JobId id, std::string_view worker, const JobRetry& retry);
  virtual Result<MemoryJob> get_job(JobId id);
  // Jobs of `kind` (empty: any), newest first; done ones only when `include_done`.
  virtual Result<std::vector<MemoryJob>> list_jobs(std::string_view kind, bool include_done,
                                                   int limit);

  // Adds items to the recall index in one transaction; an item whose key its chat already has is
  // skipped. kInvalidArgument for an item without chat, kind or key.
  virtual Status add_recall_items(std::span<const RecallItem> items);
  // BM25 over the items' terms, within one chat, best first; an empty list when nothing matches
  // (or no term is given). Terms are matched as whole words, whatever characters they hold
  // (they are never query syntax); at most 1024 (kInvalidArgument beyond). A store may leave out
  // of the search the query's terms that very many of the chat's items have (they weigh least
  // in BM25), so that a long chat costs what its rarer terms' items cost.
  virtual Result<std::vector<RecallHit>> search_recall_terms(const TermQuery& query);
  // Cosine similarity over the chat's vectors of the query's model, most similar first; a
  // stored vector of another length than the query's is skipped. kInvalidArgument for an empty
  // or all-zero query vector, a value that is not finite, or no model.
  virtual Result<std::vector<RecallHit>> search_recall_vectors(const VectorQuery& query);
  // Items with no vector of `model` yet: the embedder's backlog. Those never embedded come first,
  // oldest first, then those with a vector of another model.
  virtual Result<std::vector<RecallItem>> recall_items_without_vector(std::string_view model,
                                                                      int limit);
  // Stores vectors of `model` for items, in one transaction (replacing what they had); unknown
  // ids are skipped. kInvalidArgument for an empty vector or one with a value that is not
  // finite.
  virtual Status set_recall_vectors(
      std::span<const std::pair<RecallItemId, std::vector<float>>> vectors, std::string_view model);
  // How many recall items the chat has; chat 0: all chats together.
  virtual Result<std::int64_t> count_recall_items(ChatId chat);

  // A cache of embeddings by (model, digest of the text): the knowledge base's passages are
  // embedded once, not at every start. One entry per digest, empty when not cached.
  virtual Result<std::vector<std::vector<float>>> cached_embeddings(
      std::string_view model, std::span<const std::string> digests);
  virtual Status cache_embeddings(
      std::string_view model, std::span<const std::pair<std::string, std::vector<float>>> entries);

  // --- change notification --------------------------------------------------------------------

  // Blocks until the store has changed since generation `seen` (a commit by this process or by
  // another process on the same database) or `timeout` passes; returns the current generation.
  // Pass 0 the first time. Lets an outbox dispatcher sleep instead of polling in a tight loop.
  virtual std::uint64_t wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) = 0;
};

// MessageStore::erase_chat(), then an audit event ("erase", by `actor`) that names only the
// chat's number, so that the log shows who erased whom without keeping anything of them.
[[nodiscard]] LLMASSIST_API Result<ErasureCounts> erase_chat_data(MessageStore& store, ChatId chat,
                                                                  std::string_view actor);

// Convenience: one inbound message.
[[nodiscard]] LLMASSIST_API Result<InboundResult> append_inbound(MessageStore& store,
                                                                 const InboundMessage& message);

}  // namespace llmassist
