// The knowledge base's passage splitter (src/memory/passage_splitter.h): the input is split as
// Markdown and as plain text at a few passage sizes. Nothing may crash; every passage is
// non-empty and within the size (in characters); a passage of valid UTF-8 input is valid UTF-8
// (no cut inside a character); plain text loses and adds nothing but whitespace.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/text.h"
#include "core/utf8.h"
#include "fuzz_support.h"
#include "memory/passage_splitter.h"

namespace {

using llmassist::fuzz::require;

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto ch = llmassist::detail::decode_utf8(text, i);
    if (!ch.valid) return false;
    i += ch.length;
  }
  return true;
}

std::string without_whitespace(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
  }
  return out;
}

void check(const std::vector<llmassist::detail::SplitPassage>& passages, std::size_t max_chars,
           bool valid) {
  for (const auto& p : passages) {
    require(!llmassist::detail::trim(p.text).empty(), "an empty passage");
    require(llmassist::detail::count_chars(p.text) <= max_chars, "a passage over the size");
    if (valid) require(valid_utf8(p.text), "a passage cut inside a UTF-8 character");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = llmassist::fuzz::as_text(data, size);
  const bool valid = valid_utf8(text);
  for (const std::size_t max_chars : {1, 7, 64, 1200}) {
    check(llmassist::detail::split_markdown(text, max_chars), max_chars, valid);
    const auto plain = llmassist::detail::split_plain_text(text, max_chars);
    check(plain, max_chars, valid);
    std::string joined;
    for (const auto& p : plain) joined += p.text;
    require(without_whitespace(joined) == without_whitespace(text),
            "plain text splitting changed more than whitespace");
  }
  return 0;
}
