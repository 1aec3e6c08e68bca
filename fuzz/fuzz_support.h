// Shared by the fuzz targets: invariant checks that crash (so that libFuzzer keeps the input),
// fuzzed cut points, and a reader of the Telegram HTML our renderer writes.
//
// A target is built twice: as a libFuzzer program (fuzz/CMakeLists.txt) and into the regular
// test suite, which runs every seed and every regression input through it
// (tests/fuzz_regression_test.cpp). Only the standard library and our own headers here: the
// test build may be GCC's.
//
// Thread-safety: free functions and values; the targets keep no state between inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace llmassist::fuzz {

// Crashes, naming the broken invariant, when `ok` is false.
inline void require(bool ok, const char* invariant) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", invariant);
  std::fflush(stderr);
  __builtin_trap();
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Parameters (cut points, limits) drawn from the input's last bytes, so that the whole input
// stays the text under test: a seed is a plain sample of the format, and libFuzzer's mutations
// of its tail move the cuts. Past the start, every draw gives 0.
class TailBytes {
 public:
  explicit TailBytes(std::string_view input) : input_(input), left_(input.size()) {}
  std::uint8_t next() {
    if (left_ == 0) return 0;
    return static_cast<std::uint8_t>(input_[--left_]);
  }

 private:
  std::string_view input_;
  std::size_t left_;
};

// `text` cut into consecutive pieces of 0 to 31 bytes (0: an empty piece, which a client may
// deliver too), the lengths drawn from `tail`; whatever the draws leave is the last piece. The
// pieces, joined, are `text`.
inline std::vector<std::string_view> fuzzed_pieces(std::string_view text, TailBytes& tail,
                                                   std::size_t max_pieces = 64) {
  std::vector<std::string_view> pieces;
  std::size_t at = 0;
  while (at < text.size() && pieces.size() + 1 < max_pieces) {
    const std::size_t n = std::min<std::size_t>(tail.next() % 32, text.size() - at);
    pieces.push_back(text.substr(at, n));
    at += n;
  }
  pieces.push_back(text.substr(at));
  return pieces;
}

// Whether `s` is valid UTF-8 (no overlong forms, surrogates or values above U+10FFFF). The
// operator tools' decoder, not the Telegram formatter's own: the check stays independent of the
// code under test.
inline bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = llmassist::detail::decode_utf8(s, i);
    if (!c.valid) return false;
    i += c.length;
  }
  return true;
}

// The number of UTF-16 units of a valid UTF-8 text.
inline std::size_t utf16_units(std::string_view utf8) {
  std::size_t units = 0;
  for (const char c : utf8) {
    const auto b = static_cast<unsigned char>(c);
    if ((b & 0xC0) != 0x80) units += b >= 0xF0 ? 2 : 1;
  }
  return units;
}

// What a Telegram HTML text reads as.
struct HtmlReading {
  std::string text;  // the visible text: tags dropped, entities decoded
  // The text with each link's target after its text and each code block's language before its
  // code, where the Markdown had them: what a comparison with the source needs.
  std::string text_with_targets;
};

namespace detail {

inline std::string decode_entities(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      require(s[i] != '<' && s[i] != '>', "html: a bare < or > in text or an attribute");
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    require(semi != std::string_view::npos, "html: an & without its ;");
    const std::string_view name = s.substr(i + 1, semi - i - 1);
    if (name == "lt") {
      out += '<';
    } else if (name == "gt") {
      out += '>';
    } else if (name == "amp") {
      out += '&';
    } else if (name == "quot") {
      out += '"';
    } else {
      require(false, "html: an entity other than &lt; &gt; &amp; &quot;");
    }
    i = semi;
  }
  return out;
}

// The value of `attribute="..."` in a tag's inside ("a href=\"x\""), decoded.
inline std::string attribute_value(std::string_view inside, std::string_view attribute) {
  const std::string prefix = std::string(attribute) + "=\"";
  const std::size_t at = inside.find(prefix);
  require(at != std::string_view::npos, "html: a tag without its attribute");
  const std::size_t begin = at + prefix.size();
  const std::size_t end = inside.find('"', begin);
  require(end != std::string_view::npos && end + 1 == inside.size(),
          "html: an attribute not closed at the tag's end");
  return decode_entities(inside.substr(begin, end - begin));
}

}  // namespace detail

// Reads the HTML our renderer writes for Telegram, crashing unless it is well formed: only
// Telegram's tags (b, i, s, code, pre, a href, blockquote, and <code class="language-x"> right
// inside <pre>), every tag closed in order, entities only &lt; &gt; &amp; &quot;, valid UTF-8.
inline HtmlReading read_telegram_html(std::string_view html) {
  require(valid_utf8(html), "html: invalid UTF-8");
  HtmlReading r;
  struct Open {
    std::string name;
    std::string target;  // a link's href, added to text_with_targets when it closes
  };
  std::vector<Open> stack;
  std::size_t i = 0;
  while (i < html.size()) {
    const std::size_t lt = html.find('<', i);
    const std::string_view chunk = html.substr(i, lt == std::string_view::npos ? lt : lt - i);
    const std::string text = detail::decode_entities(chunk);
    r.text += text;
    r.text_with_targets += text;
    if (lt == std::string_view::npos) break;
    const std::size_t gt = html.find('>', lt);
    require(gt != std::string_view::npos, "html: a tag without its >");
    std::string_view inside = html.substr(lt + 1, gt - lt - 1);
    i = gt + 1;
    if (!inside.empty() && inside.front() == '/') {
      require(!stack.empty() && stack.back().name == inside.substr(1),
              "html: a closing tag that does not close the innermost open tag");
      r.text_with_targets += stack.back().target;
      stack.pop_back();
      continue;
    }
    const std::string_view name = inside.substr(0, inside.find(' '));
    Open open{std::string(name), {}};
    if (name == "a") {
      open.target = detail::attribute_value(inside, "href");
    } else if (name == "code" && inside != "code") {
      require(!stack.empty() && stack.back().name == "pre", "html: <code class> outside <pre>");
      const std::string cls = detail::attribute_value(inside, "class");
      require(cls.rfind("language-", 0) == 0, "html: a code class that is no language");
      r.text_with_targets += cls.substr(9) + " ";
    } else {
      require(name == inside && (name == "b" || name == "i" || name == "s" || name == "code" ||
                                 name == "pre" || name == "blockquote"),
              "html: a tag Telegram does not take, or one with attributes");
    }
    if (name == "a") {
      for (const Open& o : stack) require(o.name != "a", "html: a link inside a link");
    }
    stack.push_back(std::move(open));
  }
  require(stack.empty(), "html: a tag left open");
  return r;
}

// The letters of a text: its code points without ASCII punctuation, white space, control
// characters and the bullet "•" (which the renderer writes for "- "). What rendering Markdown
// must keep, in order.
inline std::string letters(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b <= 0x7F) {
      const bool alnum = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
      if (alnum) out += s[i];
      continue;
    }
    if (s.substr(i, 3) == "\xE2\x80\xA2") {
      i += 2;
      continue;
    }
    out += s[i];
  }
  return out;
}

}  // namespace llmassist::fuzz
