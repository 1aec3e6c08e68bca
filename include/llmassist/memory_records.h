// The memory's durable records, kept by a MessageStore (message_store.h, "memory" section): the
// versions of each session's progressive summary, the background jobs that build them and index
// the dialog, and the recall index (what a user said and the facts drawn from it, with their
// analysed words and vectors).
//
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/types.h"

namespace llmassist {

using SummaryId = std::int64_t;
using JobId = std::int64_t;
using RecallItemId = std::int64_t;

// One version of a session's rolling summary: the previous version plus the messages after its
// watermark, condensed. Versions are kept; the newest is the one the prompt carries.
struct LLMASSIST_API SessionSummary {
  SummaryId id = 0;
  SessionId session_id = 0;
  ChatId chat_id = 0;
  int version = 0;                // 1, 2, ... within the session
  std::string content;            // the summary's text
  MessageId last_message_id = 0;  // the watermark: the newest message it covers
  Timestamp created_at{};
};

// A new version, and the job that made it finished in the same transaction.
struct LLMASSIST_API NewSessionSummary {
  SessionId session_id = 0;  // required
  std::string content;       // required, not empty
  MessageId last_message_id = 0;
  // The version the writer built on (0: none yet). The write fails with kAborted when the
  // session's newest version is another: two summarisers never both add one.
  int expected_version = 0;
  // When not 0: this job (held by `worker`) is marked done with the summary; kAborted when
  // `worker` no longer holds it.
  JobId job_id = 0;
  std::string worker;
};

// A unit of background work for the memory ("summary", "embed"), claimable with a lease by any
// process on the store, retried with backoff.
struct LLMASSIST_API MemoryJob {
  JobId id = 0;
  std::string kind;     // "summary", "embed", ...
  std::string key;      // at most one unfinished job per key ("summary:42")
  ChatId chat_id = 0;   // whose data it concerns (erasing the chat removes the job); 0: none
  std::string payload;  // the kind's parameters (JSON)
  int attempts = 0;     // claims so far
  std::string claimed_by;
  std::optional<Timestamp> lease_until;
  Timestamp next_attempt_at{};
  std::string last_error;
  Timestamp created_at{};
  std::optional<Timestamp> done_at;  // set when finished
};

struct LLMASSIST_API NewMemoryJob {
  std::string kind;  // required
  std::string key;   // required: an unfinished job with this key is returned instead of a new one
  ChatId chat_id = 0;
  std::string payload;
  std::optional<Timestamp> not_before;  // empty: due at once
};

struct LLMASSIST_API JobClaim {
  std::vector<std::string> kinds;  // claim jobs of these kinds; empty: any
  std::string worker;              // required
  std::chrono::milliseconds lease{std::chrono::seconds(120)};
  int limit = 1;  // oldest due first, 1..100
};

// A failed attempt: the job's claim is released, and it is due again at `next_attempt_at`.
struct LLMASSIST_API JobRetry {
  std::string error;  // stored as last_error
  Timestamp next_attempt_at{};
  // Give up: the job is marked done with the error kept (a job that can never succeed).
  bool give_up = false;
};

// One entry of the recall index: something a user said, or a fact or summary drawn from it.
// Recall is per chat: a search never returns another chat's items.
struct LLMASSIST_API RecallItem {
  RecallItemId id = 0;
  ChatId chat_id = 0;        // required: whose past it is
  SessionId session_id = 0;  // the session it came from
  std::string kind;          // "message", "fact", "summary"
  // Unique in the chat ("message:812", "fact:31:2"): adding an item with a key the chat has is a
  // no-op, so a job retried after a crash indexes nothing twice.
  std::string key;
  MessageId message_id = 0;  // the newest message it comes from (for messages: the message)
  std::string text;          // what goes into the prompt
  // The analysed text: the stems of its words, separated by single spaces (what BM25 searches).
  std::string terms;
  std::vector<float> vector;  // empty until embedded
  std::string vector_model;   // the embedding model that made `vector`
  Timestamp created_at{};
};

struct LLMASSIST_API RecallHit {
  RecallItem item;
  double score = 0;  // BM25 (higher is better) or cosine similarity
};

// A full-text search of one chat's recall items.
struct LLMASSIST_API TermQuery {
  ChatId chat_id = 0;               // required
  std::vector<std::string> terms;   // analysed words; an item matches when it has any of them
  int limit = 20;                   // 1..1000, best first
  MessageId before_message_id = 0;  // when not 0: only items from messages before it
};

// An exact nearest-neighbour search of one chat's vectors by cosine similarity.
struct LLMASSIST_API VectorQuery {
  ChatId chat_id = 0;         // required
  std::vector<float> vector;  // required
  std::string model;          // only vectors of this model
  int limit = 20;             // 1..1000, most similar first
  MessageId before_message_id = 0;
};

}  // namespace llmassist
