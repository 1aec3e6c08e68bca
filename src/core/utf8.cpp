#include "core/utf8.h"

#include <fmt/format.h>

namespace llmassist::detail {

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

std::string storable_text(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    if (!c.valid || c.code_point == 0) {
      out += kReplacement;
    } else {
      out += text.substr(pos, c.length);
    }
    pos += c.length;
  }
  return out;
}

}  // namespace llmassist::detail
