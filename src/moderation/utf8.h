// UTF-8 decoding for the operator tools: checking operator names and making stored text safe to
// print on a terminal. Internal.
#pragma once

#include <cstddef>
#include <string_view>

#include "llmassist/status.h"

namespace llmassist::detail {

// One decoded character: its code point and its length in bytes. An invalid sequence (a stray
// continuation byte, an overlong form, a surrogate, a truncated tail, a value past U+10FFFF)
// decodes as one byte with `valid` false.
struct Utf8Char {
  char32_t code_point = 0;
  std::size_t length = 1;
  bool valid = false;
};

// Decodes the character at `pos` (< text.size()).
[[nodiscard]] Utf8Char decode_utf8(std::string_view text, std::size_t pos) noexcept;

// C0 controls, DEL and C1 controls: the characters a terminal may act on instead of printing.
[[nodiscard]] constexpr bool is_control(char32_t c) noexcept {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

// Characters that print nothing yet reorder or break what follows them: bidirectional
// embeddings, overrides and isolates, and the Unicode line and paragraph separators. Stored text
// containing them could make a line read differently from what it says.
[[nodiscard]] constexpr bool is_layout_control(char32_t c) noexcept {
  return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0x2028 ||
         c == 0x2029 || c == 0x200e || c == 0x200f || c == 0x061c;
}

// OK when `text` is valid UTF-8 without control or layout-control characters: it prints as
// itself. Otherwise kInvalidArgument: "<what> is not valid UTF-8" or "<what> contains a control
// character".
[[nodiscard]] Status check_printable(std::string_view text, std::string_view what);

}  // namespace llmassist::detail
