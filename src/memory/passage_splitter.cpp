#include "memory/passage_splitter.h"

#include <optional>

#include "core/text.h"
#include "core/utf8.h"

namespace llmassist::detail {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool blank_line(std::string_view line) { return trim(line).empty(); }

struct Block {
  std::string text;
  bool code = false;  // a fenced code block: cut at line ends
};

// A piece of `text` from `pos` of at most `max_chars` characters, cut at the best place: the
// whole rest when it fits; else the last line end (code) or sentence end (prose) within the
// limit; else the last space; else after the max_chars-th character. Returns the end.
std::size_t cut(std::string_view text, std::size_t pos, std::size_t max_chars, bool code) {
  std::size_t chars = 0;
  std::size_t i = pos;
  std::size_t preferred = 0;  // 0: none (a cut is always past pos)
  std::size_t space = 0;
  while (i < text.size() && chars < max_chars) {
    const Utf8Char ch = decode_utf8(text, i);
    const std::size_t next = i + ch.length;
    ++chars;
    const char c = text[i];
    if (code) {
      if (c == '\n') preferred = next;
    } else {
      const bool stop =
          c == '.' || c == '!' || c == '?' || (ch.valid && ch.code_point == U'\u2026');
      if (stop && (next == text.size() || is_space(text[next]))) preferred = next;
    }
    if (is_space(c)) space = next;
    i = next;
  }
  if (i >= text.size()) return text.size();
  if (preferred > pos) return preferred;
  if (space > pos) return space;
  return i;
}

// The pieces of a block, each within max_chars.
void pieces_of(const Block& block, std::size_t max_chars, std::vector<std::string>& out) {
  std::string_view text = block.text;
  if (count_chars(text) <= max_chars) {
    out.push_back(block.text);
    return;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = cut(text, pos, max_chars, block.code);
    const std::string_view piece =
        block.code ? text.substr(pos, end - pos) : trim(text.substr(pos, end - pos));
    // A code piece keeps its indentation; only the line break it was cut at goes.
    std::string_view kept = piece;
    while (!kept.empty() && is_space(kept.back())) kept.remove_suffix(1);
    if (!trim(kept).empty()) out.emplace_back(kept);
    pos = end;
  }
}

// Joins the blocks of one section into passages.
void pack(const std::string& heading, std::vector<Block>& blocks, std::size_t max_chars,
          std::vector<SplitPassage>& out) {
  std::vector<std::string> pieces;
  for (const auto& b : blocks) pieces_of(b, max_chars, pieces);
  blocks.clear();
  std::string current;
  std::size_t current_chars = 0;
  for (auto& piece : pieces) {
    const std::size_t n = count_chars(piece);
    if (!current.empty() && current_chars + 2 + n <= max_chars) {
      current += "\n\n";
      current += piece;
      current_chars += 2 + n;
      continue;
    }
    if (!current.empty()) out.push_back({heading, std::move(current)});
    current = std::move(piece);
    current_chars = n;
  }
  if (!current.empty()) out.push_back({heading, std::move(current)});
}

// The next line of `text` from `pos` (without its line break and a CR before it); moves pos.
std::string_view next_line(std::string_view text, std::size_t& pos) {
  const std::size_t end = text.find('\n', pos);
  std::string_view line =
      text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
  pos = end == std::string_view::npos ? text.size() : end + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// An ATX heading: up to 3 spaces, 1-6 '#', then a space or the end. Returns (level, title).
std::optional<std::pair<int, std::string>> heading_of(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  std::size_t hashes = 0;
  while (i + hashes < line.size() && line[i + hashes] == '#') ++hashes;
  if (hashes == 0 || hashes > 6) return std::nullopt;
  i += hashes;
  if (i < line.size() && line[i] != ' ' && line[i] != '\t') return std::nullopt;
  std::string_view title = trim(line.substr(i));
  // A closing sequence of '#' (after a space) is no part of the title.
  const std::size_t last = title.find_last_not_of('#');
  if (last == std::string_view::npos) {
    title = {};
  } else if (last + 1 < title.size() && (title[last] == ' ' || title[last] == '\t')) {
    title = trim(title.substr(0, last));
  }
  return std::make_pair(static_cast<int>(hashes), std::string(title));
}

// A code fence: up to 3 spaces, then 3 or more '`' or '~'. Returns (char, length).
std::optional<std::pair<char, std::size_t>> fence_of(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  if (i >= line.size() || (line[i] != '`' && line[i] != '~')) return std::nullopt;
  const char c = line[i];
  std::size_t n = 0;
  while (i + n < line.size() && line[i + n] == c) ++n;
  if (n < 3) return std::nullopt;
  return std::make_pair(c, n);
}

std::string path_of(const std::vector<std::pair<int, std::string>>& stack) {
  std::string path;
  for (const auto& [level, title] : stack) {
    if (!path.empty()) path += kHeadingSeparator;
    path += title;
  }
  return path;
}

}  // namespace

std::size_t count_chars(std::string_view text) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); i += decode_utf8(text, i).length) ++n;
  return n;
}

std::vector<SplitPassage> split_markdown(std::string_view text, std::size_t max_chars) {
  if (max_chars == 0) max_chars = 1;
  std::vector<SplitPassage> out;
  std::vector<std::pair<int, std::string>> headings;
  std::vector<Block> blocks;
  std::string paragraph;
  std::optional<std::pair<char, std::size_t>> fence;  // the open fence
  Block code;
  auto end_paragraph = [&] {
    if (!trim(paragraph).empty()) blocks.push_back({trimmed(paragraph), false});
    paragraph.clear();
  };
  auto end_code = [&] {
    if (!trim(code.text).empty()) {
      while (!code.text.empty() && is_space(code.text.back())) code.text.pop_back();
      blocks.push_back(std::move(code));
    }
    code = Block{"", true};
    fence.reset();
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::string_view line = next_line(text, pos);
    if (fence) {
      code.text += line;
      code.text += '\n';
      const auto closing = fence_of(line);
      if (closing && closing->first == fence->first && closing->second >= fence->second &&
          trim(line).find_first_not_of(fence->first) == std::string_view::npos) {
        end_code();
      }
      continue;
    }
    if (const auto f = fence_of(line)) {
      end_paragraph();
      fence = f;
      code = Block{std::string(line) + "\n", true};
      continue;
    }
    if (const auto h = heading_of(line)) {
      end_paragraph();
      pack(path_of(headings), blocks, max_chars, out);
      while (!headings.empty() && headings.back().first >= h->first) headings.pop_back();
      if (!h->second.empty()) headings.push_back(*h);
      continue;
    }
    if (blank_line(line)) {
      end_paragraph();
      continue;
    }
    paragraph += line;
    paragraph += '\n';
  }
  if (fence) end_code();  // an unclosed fence runs to the end
  end_paragraph();
  pack(path_of(headings), blocks, max_chars, out);
  return out;
}

std::vector<SplitPassage> split_plain_text(std::string_view text, std::size_t max_chars) {
  if (max_chars == 0) max_chars = 1;
  std::vector<SplitPassage> out;
  std::vector<Block> blocks;
  std::string paragraph;
  auto end_paragraph = [&] {
    if (!trim(paragraph).empty()) blocks.push_back({trimmed(paragraph), false});
    paragraph.clear();
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::string_view line = next_line(text, pos);
    if (blank_line(line)) {
      end_paragraph();
      continue;
    }
    paragraph += line;
    paragraph += '\n';
  }
  end_paragraph();
  pack("", blocks, max_chars, out);
  return out;
}

}  // namespace llmassist::detail
