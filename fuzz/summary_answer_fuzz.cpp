// The summariser's answer reader (src/memory/summary_text.h). Nothing may crash; the summary is
// trimmed; there are at most 20 facts, none empty, each at most 300 characters and valid where
// the input was (a fact never ends inside a UTF-8 character the input had whole).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/utf8.h"
#include "fuzz_support.h"
#include "memory/summary_text.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using llmassist::fuzz::require;
  const std::string_view text = llmassist::fuzz::as_text(data, size);
  const auto answer = llmassist::detail::parse_summary_answer(text);
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  require(
      answer.summary.empty() || (!blank(answer.summary.front()) && !blank(answer.summary.back())),
      "a summary that is not trimmed");
  require(answer.summary.size() <= text.size(), "a summary longer than the answer");
  require(answer.facts.size() <= 20, "more than 20 facts");
  for (const auto& fact : answer.facts) {
    require(!fact.empty(), "an empty fact");
    require(llmassist::detail::utf8_length(fact) <= 300, "a fact over 300 characters");
    require(text.find(fact) != std::string_view::npos, "a fact that is not in the answer");
  }
  return 0;
}
