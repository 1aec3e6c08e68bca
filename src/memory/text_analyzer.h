// Internal: the one text analysis of every full-text index llmassist builds (the recall index,
// the knowledge base): words split on Unicode letters and digits, case folded (Latin, Latin-1,
// Cyrillic; "ё" as "е"), function words of English and Russian dropped, and each word stemmed
// with Snowball (libstemmer): Russian for a word with Cyrillic letters, English for one in Latin
// letters; digits and other scripts stay as they are. "заказы", "заказа" and "заказ" are one
// term, as are "orders" and "ordered".
//
// Thread-safety: free functions; each thread keeps its own stemmers (Snowball's are not
// thread-safe), made on first use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist::detail {

struct AnalyzeOptions {
  bool keep_stopwords = false;  // keep function words ("the", "и")
  bool unique = false;          // each term once, in order of first appearance
  std::size_t max_terms = 0;    // 0: no limit
};

// The terms of `text`, in order. Invalid UTF-8 bytes separate words.
[[nodiscard]] LLMASSIST_API std::vector<std::string> analyze_terms(std::string_view text,
                                                                   AnalyzeOptions options = {});

// The same terms joined by single spaces: the form the store's full-text index keeps.
[[nodiscard]] LLMASSIST_API std::string analyzed_text(std::string_view text);

// A term as an FTS5 string ("term", inner quotes doubled): searched as a word, never as FTS5
// syntax, whatever it holds.
[[nodiscard]] LLMASSIST_API std::string fts_term(std::string_view term);

// The FTS5 query matching any of `terms` ("a" OR "b" ...); empty for no terms.
[[nodiscard]] LLMASSIST_API std::string fts_any_of(const std::vector<std::string>& terms);

// A word case folded as analyze_terms() folds it, not stemmed.
[[nodiscard]] LLMASSIST_API std::string fold_case(std::string_view word);

}  // namespace llmassist::detail
