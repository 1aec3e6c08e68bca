// Internal: the one UTF-8 decoder, strict (no overlong forms, surrogates or values past
// U+10FFFF), for the Telegram formatter's UTF-16 counts and splitting, and for the operator
// tools: checking names and making stored text safe to print on a terminal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "llmassist/export.h"
#include "llmassist/status.h"

namespace llmassist::detail {

// One decoded character: its code point and its length in bytes. An invalid sequence (a stray
// continuation byte, an overlong form, a surrogate, a truncated tail, a value past U+10FFFF)
// decodes as one byte with `valid` false.
struct LLMASSIST_API Utf8Char {
  char32_t code_point = 0;
  std::size_t length = 1;
  bool valid = false;
};

// Decodes the character at `pos` (< text.size()), never reading past the end. Inline: the
// formatter decodes every character of every answer.
[[nodiscard]] inline Utf8Char decode_utf8(std::string_view text, std::size_t pos) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {lead, 1, true};
  std::size_t length = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((lead & 0xe0) == 0xc0) {
    length = 2;
    cp = lead & 0x1f;
    min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3;
    cp = lead & 0x0f;
    min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4;
    cp = lead & 0x07;
    min = 0x10000;
  } else {
    return {lead, 1, false};
  }
  if (text.size() - pos < length) return {lead, 1, false};
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(pos + i);
    if ((next & 0xc0) != 0x80) return {lead, 1, false};
    cp = (cp << 6) | (next & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {lead, 1, false};
  return {cp, length, true};
}

// The characters (code points) of `text`; an invalid byte counts as one.
[[nodiscard]] inline std::size_t utf8_length(std::string_view text) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); i += decode_utf8(text, i).length) ++n;
  return n;
}

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
[[nodiscard]] LLMASSIST_API Status check_printable(std::string_view text, std::string_view what);

// `text` with every invalid sequence (one byte at a time) and every NUL character replaced by
// U+FFFD: what every store can hold (PostgreSQL's text takes neither), for text from outside
// that must be stored whatever it holds (a user's message).
[[nodiscard]] LLMASSIST_API std::string storable_text(std::string_view text);

}  // namespace llmassist::detail
