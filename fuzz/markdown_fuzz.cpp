// Markdown → Telegram HTML and the message splitters (src/telegram/telegram_format.h).
//
// The whole input is the Markdown; its last byte picks the part limit (2 to 65 UTF-16 units, so
// that short inputs are split too, or Telegram's 4,096). Checked, crashing on a violation:
// - the HTML of the whole text and of every part is well formed (fuzz_support.h:
//   read_telegram_html), and html_visible_utf16_length agrees with its decoded text;
// - split_message: no empty part, every part within the limit, the parts are the text in
//   order with nothing lost but the spaces and line breaks at the cuts, and a valid text's
//   parts are valid UTF-8 (no cut inside a character);
// - split_markdown: every rendered part within the limit (what Telegram counts);
// - the text survives: rendering drops only markup, so the letters of the HTML (with link
//   targets where the Markdown had them) are the Markdown's letters, for the whole text and for
//   the parts joined. Not asserted for texts with a code fence (``` or ~~~): its info string
//   is cut to a language name by design.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "telegram/telegram_format.h"

namespace {

namespace tg = llmassist::telegram;
using llmassist::fuzz::require;

bool separator(char c) { return c == ' ' || c == '\n' || c == '\r'; }

void check_split_message(std::string_view text, std::size_t max) {
  const auto parts = tg::split_message(text, max);
  const bool valid = llmassist::fuzz::valid_utf8(text);
  std::size_t at = 0;
  for (const std::string& part : parts) {
    require(!part.empty(), "split_message: an empty part");
    require(tg::utf16_length(part) <= max, "split_message: a part over the limit");
    if (valid)
      require(llmassist::fuzz::valid_utf8(part), "split_message: a cut inside a character");
    // What lies between two parts is a run of the separators the cut dropped.
    while (at < text.size() && text.compare(at, part.size(), part) != 0) {
      require(separator(text[at]), "split_message: text lost or changed at a cut");
      ++at;
    }
    require(at < text.size(), "split_message: a part that is not the text that follows");
    at += part.size();
  }
  for (; at < text.size(); ++at) {
    require(separator(text[at]), "split_message: the end of the text lost");
  }
}

// Renders `markdown` and checks the HTML; returns what it reads as.
llmassist::fuzz::HtmlReading render_checked(std::string_view markdown) {
  const std::string html = tg::render_markdown_html(markdown);
  auto reading = llmassist::fuzz::read_telegram_html(html);
  require(tg::html_visible_utf16_length(html) == llmassist::fuzz::utf16_units(reading.text),
          "html_visible_utf16_length disagrees with the text the HTML shows");
  return reading;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view markdown = llmassist::fuzz::as_text(data, size);
  llmassist::fuzz::TailBytes tail(markdown);
  const std::uint8_t pick = tail.next();
  const std::size_t max = pick < 192 ? 2 + pick % 64 : tg::kMaxMessageUtf16;

  const bool fenced = markdown.find("```") != std::string_view::npos ||
                      markdown.find("~~~") != std::string_view::npos;
  const std::string source_letters = llmassist::fuzz::letters(tg::sanitize_utf8(markdown));

  const auto whole = render_checked(markdown);
  if (!fenced) {
    require(llmassist::fuzz::letters(whole.text_with_targets) == source_letters,
            "render_markdown_html: text lost, added or reordered");
  }

  check_split_message(markdown, max);

  std::string parts_letters;
  for (const std::string& part : tg::split_markdown(markdown, max)) {
    const auto reading = render_checked(part);
    require(llmassist::fuzz::utf16_units(reading.text) <= max,
            "split_markdown: a rendered part over the limit");
    parts_letters += llmassist::fuzz::letters(reading.text_with_targets);
  }
  if (!fenced) {
    require(parts_letters == source_letters, "split_markdown: text lost, added or reordered");
  }
  return 0;
}
