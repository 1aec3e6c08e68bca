// The semantic memory: the MemoryManager the bot runs by default. A prompt holds, within a token
// budget, the system prompt, the session's progressive summary, what this user said earlier that
// bears on the question (recalled from all their sessions by hybrid search), passages of the
// company's documents (a KnowledgeBase), and the recent window of the dialog.
//
// - Progressive summary: every `summary.threshold` messages after a session's last summary, a
//   "summary" job is queued in the store. Any process with a semantic memory on that store may
//   claim it (a lease); it condenses the previous summary and at most `summary.chunk` messages
//   after its watermark with `summary.llm` and stores a new version, the job finished in the same
//   transaction. A failed run is retried with exponential backoff. The summariser's answer may
//   end with a "Facts:" list: each fact joins the recall index.
// - Recall: the user's messages (and the summaries and facts drawn from them) are indexed per
//   chat with their Snowball-stemmed words and, with an embedder, their vectors. Before an
//   answer, BM25 over the question's words and (with an embedder) cosine similarity to its
//   vector each give candidates from this chat's past before the window, fused by reciprocal
//   rank; the best `recall.top_k` go in. Never another chat's.
// - Budget: the prompt is counted in tokens, estimated from characters and calibrated by the
//   token counts the model reports (observe_prompt_usage()). When it does not fit, what goes
//   first: recalled items after the best one (least relevant first), knowledge passages after
//   the best one, the oldest messages of the window (the two before the question stay), the best
//   recalled item and passage, the summary, the two messages before the question. The system
//   prompt, the question and a redraft's instruction always stay.
//
// Indexing, embedding and summaries run on the memory's own threads; observe() only queues.
// build_context() never waits for a model; build_context_async() waits for the question's
// embedding at most `recall.embed_wait`, then answers with BM25 alone.
//
// Thread-safety: as MemoryManager; stats() and flush() from any thread. Destroying the memory
// stops its threads (a summary in flight is cancelled; its job is taken again later).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "llmassist/clock.h"
#include "llmassist/embedding_provider.h"
#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/memory_manager.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

class KnowledgeBase;

struct LLMASSIST_API SummaryOptions {
  // The summariser; null: no summaries are made (jobs other processes queue are left to them).
  std::shared_ptr<LlmProvider> llm;
  int threshold = 24;  // messages after the last summary that queue a job (2..10000)
  int chunk = 200;     // messages condensed in one run at most (1..1000)
  // The summariser's instruction; empty: the built-in one (answers in the dialog's language).
  std::string instruction;
  std::chrono::milliseconds timeout{std::chrono::seconds(90)};     // one summariser request
  std::chrono::milliseconds lease{std::chrono::minutes(3)};        // a job's claim; > timeout
  std::chrono::milliseconds retry_base{std::chrono::seconds(10)};  // first backoff, doubling
  std::chrono::milliseconds retry_max{std::chrono::minutes(15)};   // longest backoff
  int max_attempts = 8;  // then the job is given up (and logged)
  int max_chars = 4000;  // a summary is cut to this many characters
};

struct LLMASSIST_API RecallOptions {
  bool enabled = true;
  int top_k = 5;        // recalled items in a prompt at most (0..50)
  int candidates = 30;  // from each search before fusion (1..1000)
  int rrf_k = 60;       // reciprocal rank fusion's constant
  // Vectors for recall; null: BM25 alone (works offline).
  std::shared_ptr<EmbeddingProvider> embedder;
  // Vector hits less similar than this (cosine) are left out.
  double min_similarity = 0.3;
  // How long build_context_async() waits for the question's embedding.
  std::chrono::milliseconds embed_wait{std::chrono::milliseconds(1500)};
  int index_batch = 64;  // messages indexed (and embedded) in one go at most
  // The first time a chat's prompt is built in this process, its last this many messages are
  // indexed again (idempotently): what a crash left unindexed is caught up.
  int catch_up_messages = 200;
  int max_item_chars = 600;  // a recalled message is cut to this many characters
};

struct LLMASSIST_API SemanticMemoryOptions {
  std::string system_prompt;  // the assistant's role; may be empty
  int window = 8;             // recent messages of the session (1..200)
  int budget_tokens = 6000;   // the whole prompt, estimated (200..1,000,000)
  SummaryOptions summary;
  RecallOptions recall;
  // The company's documents; null: none. Searched with the question: with its vector when the
  // knowledge base's embedding model is the recall embedder's (one request for both); else the
  // knowledge base embeds it itself in build_context_async() (waiting at most
  // recall.embed_wait), while build_context() searches by words alone. A failed search is
  // logged and leaves the passages out.
  std::shared_ptr<KnowledgeBase> knowledge;
  int knowledge_top_k = 3;  // passages in a prompt at most (0..20)
  // Threads that build prompts for build_context_async(), several at once (1..64). Default 4.
  int context_threads = 4;
  // The name of this memory's job claims; empty: "memory:<host>:<pid>".
  std::string worker;
  // How often the job thread looks for jobs queued by other processes. Default 1 s.
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  std::shared_ptr<Clock> clock;    // job backoff times; default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

struct LLMASSIST_API SemanticMemoryStats {
  std::int64_t indexed = 0;           // recall items written by this memory
  std::int64_t embedded = 0;          // vectors stored
  std::int64_t embed_failures = 0;    // embedding requests that failed
  std::int64_t summaries = 0;         // summary versions stored by this memory's jobs
  std::int64_t summary_failures = 0;  // job runs that failed (and were retried or given up)
  std::int64_t contexts = 0;          // prompts built
  double token_scale = 1.0;           // the calibration: the model's count over the estimate
};

class LLMASSIST_API SemanticMemory : public MemoryManager {
 public:
  [[nodiscard]] virtual SemanticMemoryStats stats() const = 0;
  // Waits until what observe() queued so far is indexed (and embedded, when that succeeds),
  // at most `timeout`; false when time ran out. For tests, tools and benchmarks.
  virtual bool flush(std::chrono::milliseconds timeout) = 0;
  // Runs the due jobs now, on the calling thread, instead of waiting for the job thread:
  // how many ran. For tools and tests.
  virtual int run_due_jobs() = 0;
};

// Errors: kInvalidArgument for an option out of range or a null store; kFailedPrecondition for
// a store that keeps no memory records (it answers kUnimplemented: use the window memory).
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<SemanticMemory>> make_semantic_memory(
    std::shared_ptr<MessageStore> store, SemanticMemoryOptions options = {});

// The summariser's built-in instruction.
[[nodiscard]] LLMASSIST_API std::string_view default_summary_instruction();

}  // namespace llmassist
