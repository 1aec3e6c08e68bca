// Internal: text helpers every component shares.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace llmassist::detail {

// `s` without the spaces, tabs, CRs and LFs at either end (a view into `s`).
inline std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// The same, as a string of its own.
inline std::string trimmed(std::string_view s) { return std::string(trim(s)); }

}  // namespace llmassist::detail
