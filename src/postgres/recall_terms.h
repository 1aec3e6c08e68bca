// Internal: the PostgreSQL store's recall terms. As the SQLite store's FTS5 table does: each
// whitespace-separated word of an item's `terms` is one term, its ASCII letters in lower case
// (the query's too), other bytes as they are.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/store_support.h"

namespace llmassist::detail::pg {

inline std::string fold_ascii(std::string_view word) {
  std::string out(word);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

// The item's terms and how often each occurs, sorted; `length` gets the number of words.
inline std::map<std::string, int> term_frequencies(std::string_view terms, int& length) {
  std::map<std::string, int> out;
  length = 0;
  for (std::string_view word : split_terms(terms)) {
    ++out[fold_ascii(word)];
    ++length;
  }
  return out;
}

}  // namespace llmassist::detail::pg
