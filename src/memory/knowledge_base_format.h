// Internal: the readers of the two FAQ file formats (include/llmassist/providers/
// knowledge_base_provider.h shows both; docs/configuration.md describes them), shared by the
// knowledge-base provider and the knowledge base's passages (memory/knowledge_base.h). Pure
// functions over a text, so that the tests and the fuzz target reach them.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/status.h"

namespace llmassist::detail {

struct LLMASSIST_API KnowledgeBaseEntry {
  std::string question;  // the question and its other phrasings, one a line, as indexed
  std::string answer;    // trimmed; never empty
};

// Markdown: "## question" headings, optional "aka: other phrasing" lines right under one, then
// the answer up to the next heading ("# title" headings end an entry too). kInvalidArgument,
// naming `origin` and the line, for a heading without a question or a question without an
// answer. No entries (no "## " heading) is no error here.
[[nodiscard]] LLMASSIST_API Result<std::vector<KnowledgeBaseEntry>> parse_knowledge_base_markdown(
    std::string_view text, std::string_view origin);

// JSON: a list of {"question", "answer", "aka": [...]} objects, or {"entries": [...]}.
// kInvalidArgument naming `origin` and the JSON path of the first fault.
[[nodiscard]] LLMASSIST_API Result<std::vector<KnowledgeBaseEntry>> parse_knowledge_base_json(
    std::string_view text, std::string_view origin);

}  // namespace llmassist::detail
