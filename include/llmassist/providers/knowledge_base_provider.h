// The knowledge-base provider: an LlmProvider that needs no network and no model. It answers
// from a file of questions and answers, indexed in SQLite FTS5: the entry whose question best
// covers the words of the user's last message wins, when it covers enough of them. Below the
// threshold it fails with kNotFound (reason "no_answer"), so a FallbackChain moves on or the
// pipeline reports that no answer was found.
//
// The file is Markdown or JSON (see docs/configuration.md):
//
//   ## How do I reset my password?          <- a question
//   aka: I forgot my password                 <- other ways to ask it (optional, any number)
//   Open Settings, then Security ...          <- the answer, up to the next "## " heading
//
//   [{"question": "...", "answer": "...", "aka": ["..."]}]   (or {"entries": [...]})
//
// Scoring: questions and entries are analyzed alike (Unicode case folding, English and Russian
// function words dropped, Snowball stemming: "заказы" and "заказа" are one term, as are "orders"
// and "ordered"); candidates come from FTS5 (BM25) over those terms; each is scored by the share
// of the question's terms it contains, each term weighted by its rarity in the knowledge base
// (IDF), a term found only in the answer counting half. The score is in [0, 1].
//
// Thread-safety: complete() may be called from many threads; it answers inline, on the calling
// thread (a lookup takes microseconds).
#pragma once

#include <memory>
#include <string>

#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/memory/sample_knowledge_base.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API KnowledgeBaseOptions {
  std::string name = "knowledge_base";  // the provider's name in results and statistics
  // The knowledge base file (".json" is read as JSON, anything else as Markdown). Empty: use
  // `text`, or, when that is empty too, the sample shipped with llmassist in English and Russian
  // (llmassist/memory/sample_knowledge_base.h).
  std::string path;
  std::string text;           // the knowledge base itself, when no path is given
  bool text_is_json = false;  // with `text`: JSON rather than Markdown
  // The least score (0..1) an entry needs to be given as the answer. Default: 0.5, half of the
  // question's weighted words.
  double min_score = 0.5;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// Loads and indexes the knowledge base. Errors: kNotFound when the file is missing,
// kInvalidArgument for a malformed file (with its line or JSON path) or one with no entries.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<LlmProvider>> make_knowledge_base_provider(
    const KnowledgeBaseOptions& options);

}  // namespace llmassist
