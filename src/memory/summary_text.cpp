#include "memory/summary_text.h"

#include <cctype>

#include "core/text.h"
#include "core/utf8.h"
#include "memory/text_analyzer.h"

namespace llmassist::detail {
namespace {

constexpr std::size_t kMaxFacts = 20;
constexpr std::size_t kMaxFactChars = 300;

// The line's text after a "Facts:" label, or npos when the line is no such label.
std::size_t facts_label(std::string_view line) {
  line = trim(line);
  // Markdown emphasis around the label: "**Facts:**".
  std::size_t start = 0;
  while (start < line.size() && (line[start] == '*' || line[start] == '#' || line[start] == ' ')) {
    ++start;
  }
  const std::string folded = fold_case(line.substr(start));
  for (std::string_view label : {std::string_view("facts:"), std::string_view("факты:")}) {
    if (folded.rfind(label, 0) == 0) return start + label.size();
  }
  return std::string_view::npos;
}

std::string cut(std::string_view text) {
  std::size_t pos = 0;
  std::size_t n = 0;
  while (pos < text.size() && n < kMaxFactChars) {
    pos += decode_utf8(text, pos).length;
    ++n;
  }
  return std::string(text.substr(0, pos));
}

bool is_none(std::string_view text) {
  const std::string f = fold_case(trim(text));
  return f.empty() || f == "none" || f == "none." || f == "нет" || f == "нет." || f == "-" ||
         f == "n/a";
}

}  // namespace

SummaryAnswer parse_summary_answer(std::string_view text) {
  SummaryAnswer out;
  std::size_t pos = 0;
  bool in_facts = false;
  std::string summary;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!in_facts) {
      const std::size_t label = facts_label(line);
      if (label != std::string_view::npos) {
        in_facts = true;
        std::string_view rest = trim(trim(line).substr(std::min(label, trim(line).size())));
        while (!rest.empty() && rest.front() == '*') rest.remove_prefix(1);
        if (!is_none(rest)) out.facts.push_back(cut(trim(rest)));
        continue;
      }
      summary.append(line);
      summary += '\n';
      continue;
    }
    std::string_view item = trim(line);
    if (item.empty()) continue;
    if (item.rfind("•", 0) == 0) {
      item.remove_prefix(std::string_view("•").size());
    } else if (item.front() == '-' || item.front() == '*') {
      item.remove_prefix(1);
    } else if (std::isdigit(static_cast<unsigned char>(item.front()))) {
      std::size_t i = 0;
      while (i < item.size() && std::isdigit(static_cast<unsigned char>(item[i]))) ++i;
      if (i < item.size() && (item[i] == '.' || item[i] == ')')) item.remove_prefix(i + 1);
    }
    item = trim(item);
    if (is_none(item) || out.facts.size() >= kMaxFacts) continue;
    out.facts.push_back(cut(item));
  }
  out.summary = trimmed(summary);
  return out;
}

}  // namespace llmassist::detail
