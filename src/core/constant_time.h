// Internal: comparing secrets (a webhook's secret token, a CSRF token) without telling a caller
// through response times how much of a guess was right.
//
// Thread-safety: a pure function.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace llmassist::detail {

// Equal or not, in time that depends on the lengths only.
inline bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

}  // namespace llmassist::detail
