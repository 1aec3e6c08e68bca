// KnowledgeBase: passages of the operator's documents (Markdown, plain text, FAQ files), found
// for a question so that an LLM can answer from them (grounded answers).
//
// Passages: a Markdown file is split by headings (each passage keeps its heading path,
// "Billing › Refunds") and paragraphs, paragraphs joined up to max_passage_chars characters, a
// longer one cut at sentence ends, fenced code kept whole where it fits; a text file by
// blank-line paragraphs; a FAQ file (the formats of the knowledge-base provider,
// llmassist/providers/knowledge_base_provider.h) gives one passage per entry: its question as
// the heading, its answer as the text.
//
// Search is hybrid: BM25 over the analyzed terms of the passages (case folded, English and
// Russian function words dropped, Snowball stems: "заказы" finds "заказа", "orders" finds
// "ordered"), and, once the passages' vectors are ready, cosine similarity to the question's
// vector (exact, or an HNSW index from hnsw_min_passages passages on); the two rankings are
// fused by reciprocal rank fusion (k = 60). With no embedder, BM25 alone.
//
// Minimum relevance: a passage is a candidate of the term ranking only when the question's terms
// it contains carry at least min_term_coverage of the question's weight (each term weighted by
// its rarity among the passages, IDF; a term no passage has weighs as a rare one), and of the
// vector ranking only when its cosine similarity is at least min_similarity. A question no
// passage passes either rule for gets an empty list: an unrelated question finds nothing.
//
// Indexing: at creation, synchronously; then, every reload_interval, the files' sizes and
// modification times are checked and, when one changed, a new index is built on the object's
// background thread and swapped in whole (searches meanwhile use the old one). A file that
// became unreadable or malformed keeps the old index; the error is logged once and shown in
// stats(). Vectors are computed on the same thread after each (re)indexing, in batches of the
// embedder's max_batch(), looked up in and written to `cache` by (model, SHA-256 of the embedded
// text): an unchanged passage is never embedded twice, across reloads and, with a cache, across
// restarts. Until every passage has its vector, search is BM25 alone.
//
// Thread-safety: search() and stats() may be called from many threads at once. The destructor
// stops the background thread (cancelling an embedding request in flight) and joins it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/embedding_provider.h"
#include "llmassist/export.h"
#include "llmassist/logger.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API KnowledgeSource {
  std::string path;  // the file
  // "markdown", "text" or "faq"; empty: by the extension (".md" and ".markdown" Markdown, ".txt"
  // text, ".json" FAQ). A FAQ file ending in ".json" is read as JSON, any other as FAQ Markdown.
  std::string format;
};

struct LLMASSIST_API KnowledgeOptions {
  std::vector<KnowledgeSource> sources;
  // With no sources: index the sample shipped with llmassist (llmassist/memory/
  // sample_knowledge_base.h, English and Russian, as FAQ). Default: true. With no sources and no
  // sample, creation fails.
  bool use_sample = true;
  // The longest passage, in characters (code points); at least 100. A FAQ entry is one passage
  // whatever its length. Default: 1200.
  std::size_t max_passage_chars = 1200;
  // Optional: the embedding model of the vector ranking. Default: none (BM25 alone).
  std::shared_ptr<EmbeddingProvider> embedder;
  // Optional: where passage vectors are cached (MessageStore::cached_embeddings). A store that
  // answers kUnimplemented is not asked again. Default: none (vectors are kept in memory only).
  std::shared_ptr<MessageStore> cache;
  // From this many passages on, the vector ranking uses an HNSW index (hnswlib, inner product
  // over normalised vectors) instead of comparing with every passage. Default: 2000.
  std::size_t hnsw_min_passages = 2000;
  // How often the files are checked for a change; zero: never (indexed once). Default: 3 s.
  std::chrono::milliseconds reload_interval{3000};
  // The minimum-relevance rule (see above). Defaults: 0.3 of the question's weighted terms; a
  // cosine similarity of 0.3 (a model-dependent figure: raise it for a model whose unrelated
  // texts score higher).
  double min_term_coverage = 0.3;
  double min_similarity = 0.3;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

struct LLMASSIST_API KnowledgeQuery {
  std::string text;  // the question
  int top_k = 3;     // at most this many passages (at least 1)
  // Optional: the question's vector, made by the model embedding_model() names (the caller
  // embeds the question once and shares the vector among searches). Empty: the knowledge base
  // embeds `text` itself when its vectors are ready (one request to the embedder, on the calling
  // thread, which must then not be one of the embedder's callbacks).
  std::vector<float> vector;
  // With no `vector`: whether the knowledge base may embed `text` itself. false: the term ranking
  // alone, no request. Default: true.
  bool embed = true;
  // How long that request may take; zero: the embedder's own timeout. Default: zero.
  std::chrono::milliseconds embed_timeout{0};
};

struct LLMASSIST_API KnowledgePassage {
  std::string source;   // the file's name ("billing.md"); the sample's: "llmassist-faq.md"
  std::string heading;  // the heading path ("Billing › Refunds"); a FAQ entry's question
  std::string text;
  // The fused score, sum over the rankings the passage is in of 1 / (60 + its rank there):
  // higher is better; comparable within one result only.
  double score = 0.0;
};

struct LLMASSIST_API KnowledgeStats {
  std::size_t passages = 0;
  std::size_t sources = 0;  // files (the sample: its two languages)
  // Passages of the current index with their vector; equal to `passages` once the vector
  // ranking is in use.
  std::size_t vectors_ready = 0;
  bool hnsw = false;                                  // the vector ranking uses the HNSW index
  std::chrono::system_clock::time_point last_reload;  // when the current index was built
  std::string last_error;  // the last failed reload's error; empty after a good one
  std::size_t checks = 0;  // how many times the files were checked for a change
};

class LLMASSIST_API KnowledgeBase {
 public:
  KnowledgeBase() = default;
  virtual ~KnowledgeBase() = default;
  KnowledgeBase(const KnowledgeBase&) = delete;
  KnowledgeBase& operator=(const KnowledgeBase&) = delete;

  // The passages for a question, best first; an empty list when none is relevant enough.
  // kInvalidArgument for top_k < 1 or a query vector whose length is not the passages'.
  [[nodiscard]] virtual Result<std::vector<KnowledgePassage>> search(
      const KnowledgeQuery& query) = 0;
  // The embedder's model (empty without one): what a query vector must be made by.
  [[nodiscard]] virtual std::string embedding_model() const = 0;
  [[nodiscard]] virtual KnowledgeStats stats() const = 0;
};

// Reads, splits and indexes the sources. kNotFound for a missing file; kInvalidArgument, naming
// the file (and line, or JSON path), for a malformed one (invalid UTF-8, a FAQ fault), for an
// unknown format, or for options out of range.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<KnowledgeBase>> make_knowledge_base(
    KnowledgeOptions options);

}  // namespace llmassist
