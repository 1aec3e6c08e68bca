#include "moderation/utf8.h"

#include <fmt/format.h>

namespace llmassist::detail {

Utf8Char decode_utf8(std::string_view text, std::size_t pos) noexcept {
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
  if (pos + length > text.size()) return {lead, 1, false};
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(pos + i);
    if ((next & 0xc0) != 0x80) return {lead, 1, false};
    cp = (cp << 6) | (next & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {lead, 1, false};
  return {cp, length, true};
}

Status check_printable(std::string_view text, std::string_view what) {
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    if (!c.valid) return invalid_argument(fmt::format("{} is not valid UTF-8", what));
    if (is_control(c.code_point) || is_layout_control(c.code_point)) {
      return invalid_argument(fmt::format("{} contains a control character", what));
    }
    pos += c.length;
  }
  return Status();
}

}  // namespace llmassist::detail
