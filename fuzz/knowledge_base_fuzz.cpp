// The knowledge-base file readers (src/memory/knowledge_base_format.h): the input is read as the
// Markdown format and as the JSON format. Nothing may crash or throw; a refusal is
// kInvalidArgument naming the file; every entry read has a question and a trimmed, non-empty
// answer; the Markdown reader makes at most one entry per "## " heading.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "memory/knowledge_base_format.h"

namespace {

using llmassist::fuzz::require;

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void check(const llmassist::Result<std::vector<llmassist::detail::KnowledgeBaseEntry>>& r) {
  if (!r.ok()) {
    require(r.status().code() == llmassist::StatusCode::kInvalidArgument,
            "a knowledge base refused with a code other than kInvalidArgument");
    require(r.status().message().find("fuzz.kb") != std::string::npos,
            "a refusal that does not name the file");
    return;
  }
  for (const auto& e : *r) {
    require(!e.question.empty(), "an entry without a question");
    require(!e.answer.empty() && !blank(e.answer.front()) && !blank(e.answer.back()),
            "an entry whose answer is empty or not trimmed");
  }
}

std::size_t headings(std::string_view text) {
  std::size_t n = text.rfind("## ", 0) == 0 ? 1 : 0;
  for (std::size_t at = text.find("\n## "); at != std::string_view::npos;
       at = text.find("\n## ", at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = llmassist::fuzz::as_text(data, size);
  const auto markdown = llmassist::detail::parse_knowledge_base_markdown(text, "fuzz.kb");
  check(markdown);
  if (markdown.ok()) {
    require(markdown->size() <= headings(text), "more entries than \"## \" headings");
  }
  check(llmassist::detail::parse_knowledge_base_json(text, "fuzz.kb"));
  return 0;
}
