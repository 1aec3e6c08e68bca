// The readers of the knowledge-base file formats (knowledge_base_format.h).
#include "memory/knowledge_base_format.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_text.h"
#include "core/text.h"

namespace llmassist {
namespace {

using Entry = detail::KnowledgeBaseEntry;

}  // namespace

namespace detail {

Result<std::vector<Entry>> parse_knowledge_base_markdown(std::string_view text,
                                                         std::string_view origin) {
  std::vector<Entry> entries;
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  int entry_line = 0;
  bool in_aka = false;  // "aka:" lines directly under a heading
  auto finish = [&]() -> Status {
    if (entries.empty()) return Status();
    Entry& e = entries.back();
    e.answer = detail::trimmed(e.answer);
    if (e.answer.empty()) {
      return invalid_argument(fmt::format("{}:{}: the question \"{}\" has no answer", origin,
                                          entry_line, detail::trimmed(e.question)));
    }
    return Status();
  };
  bool have_entry = false;
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("## ", 0) == 0) {
      if (have_entry) LLMASSIST_RETURN_IF_ERROR(finish());
      std::string question = detail::trimmed(std::string_view(line).substr(3));
      if (question.empty()) {
        return invalid_argument(
            fmt::format("{}:{}: a \"## \" heading without a question", origin, number));
      }
      entries.push_back({question, ""});
      have_entry = true;
      entry_line = number;
      in_aka = true;
      continue;
    }
    if (line.rfind("# ", 0) == 0) {  // a title: ends the entry before it
      if (have_entry) LLMASSIST_RETURN_IF_ERROR(finish());
      have_entry = false;
      continue;
    }
    if (!have_entry) continue;  // text before the first question
    if (in_aka && line.rfind("aka:", 0) == 0) {
      const std::string aka = detail::trimmed(std::string_view(line).substr(4));
      if (!aka.empty()) entries.back().question += "\n" + aka;
      continue;
    }
    in_aka = false;
    entries.back().answer += line;
    entries.back().answer += '\n';
  }
  if (have_entry) LLMASSIST_RETURN_IF_ERROR(finish());
  return entries;
}

Result<std::vector<Entry>> parse_knowledge_base_json(std::string_view text,
                                                     std::string_view origin) {
  nlohmann::json doc;
  if (detail::holds_nul(text)) {
    return invalid_argument(fmt::format("{}: not valid JSON: it holds a NUL byte", origin));
  }
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
  const nlohmann::json* list = &doc;
  std::string base = "";
  if (doc.is_object()) {
    if (!doc.contains("entries")) {
      return invalid_argument(
          fmt::format("{}: expected a list of entries or {{\"entries\": [...]}}", origin));
    }
    list = &doc["entries"];
    base = ".entries";
  }
  if (!list->is_array()) {
    return invalid_argument(
        fmt::format("{}: {} must be a list", origin, base.empty() ? "$" : "$" + base));
  }
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const auto& item = (*list)[i];
    const std::string at = fmt::format("{}: ${}[{}]", origin, base, i);
    if (!item.is_object()) return invalid_argument(at + " must be an object");
    for (auto it = item.begin(); it != item.end(); ++it) {
      if (it.key() != "question" && it.key() != "answer" && it.key() != "aka") {
        return invalid_argument(fmt::format("{}.{}: unknown key", at, it.key()));
      }
    }
    if (!item.contains("question") || !item["question"].is_string() ||
        detail::trimmed(item["question"].get<std::string>()).empty()) {
      return invalid_argument(at + ".question must be a non-empty string");
    }
    if (!item.contains("answer") || !item["answer"].is_string() ||
        detail::trimmed(item["answer"].get<std::string>()).empty()) {
      return invalid_argument(at + ".answer must be a non-empty string");
    }
    Entry e{detail::trimmed(item["question"].get<std::string>()),
            detail::trimmed(item["answer"].get<std::string>())};
    if (item.contains("aka")) {
      const auto& aka = item["aka"];
      if (!aka.is_array()) return invalid_argument(at + ".aka must be a list of strings");
      for (std::size_t j = 0; j < aka.size(); ++j) {
        if (!aka[j].is_string()) {
          return invalid_argument(fmt::format("{}.aka[{}] must be a string", at, j));
        }
        e.question += "\n" + aka[j].get<std::string>();
      }
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace detail

}  // namespace llmassist
