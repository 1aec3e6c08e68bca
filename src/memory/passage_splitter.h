// Internal: the knowledge base's splitter (memory/knowledge_base.h): a document into passages of
// at most `max_chars` characters (Unicode code points, not bytes), each with the path of the
// headings it stands under.
//
// - Markdown: ATX headings ("#" to "######") open sections, their path kept as
//   "Billing › Refunds"; within a section, paragraphs (separated by blank lines) and fenced code
//   blocks (``` or ~~~, kept whole when they fit) are joined, blank line between, while the
//   passage stays within max_chars. A longer block is cut at sentence ends (a code block at line
//   ends), else at a space, else between two characters: never inside a UTF-8 sequence.
// - Plain text: the same, with blank-line paragraphs and no headings.
// Passages are trimmed and never empty. Any bytes are accepted (an invalid UTF-8 byte counts as
// one character); the knowledge base refuses invalid UTF-8 before splitting.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist::detail {

struct LLMASSIST_API SplitPassage {
  std::string heading;  // the heading path, " › " between levels; empty above the first heading
  std::string text;
};

// The separator of a heading path.
inline constexpr std::string_view kHeadingSeparator = " › ";

// `max_chars` of 0 is taken as 1.
[[nodiscard]] LLMASSIST_API std::vector<SplitPassage> split_markdown(std::string_view text,
                                                                     std::size_t max_chars);
[[nodiscard]] LLMASSIST_API std::vector<SplitPassage> split_plain_text(std::string_view text,
                                                                       std::size_t max_chars);

// Characters (code points) in `text`; an invalid UTF-8 byte counts as one.
[[nodiscard]] LLMASSIST_API std::size_t count_chars(std::string_view text);

}  // namespace llmassist::detail
