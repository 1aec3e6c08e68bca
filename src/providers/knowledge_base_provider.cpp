// The knowledge-base provider: Q&A entries in a private in-memory SQLite FTS5 index.
#include "llmassist/providers/knowledge_base_provider.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_set>

#include "core/json_text.h"
#include "core/text.h"
#include "providers/knowledge_base_format.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {
namespace {

using detail::Connection;
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

namespace {

// Words too common to say anything about a question.
const std::unordered_set<std::string>& stopwords() {
  static const std::unordered_set<std::string> kWords = {
      "a", "about", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
      "can", "could", "did", "do", "does", "for", "from", "get", "got", "had", "has", "have",
      "hello", "hi", "how", "i", "if", "in", "is", "it", "its", "just", "like", "me", "my", "need",
      "of", "on", "or", "please", "should", "so", "some", "that", "the", "their", "then", "there",
      "this", "to", "us", "want", "was", "we", "what", "when", "where", "which", "who", "why",
      "will", "with", "would", "you", "your",
      // Russian
      "а", "в", "во", "вы", "где", "да", "для", "до", "если", "же", "за", "и", "из", "или", "как",
      "какой", "ли", "мне", "мой", "моя", "мы", "на", "не", "нет", "но", "о", "об", "от", "по",
      "при", "с", "так", "то", "ты", "у", "что", "это", "я"};
  return kWords;
}

// Lower-cases ASCII letters and the two-byte Cyrillic capitals (А-Я, Ё) in UTF-8.
std::string fold_case(std::string_view word) {
  std::string out(word);
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto c = static_cast<unsigned char>(out[i]);
    if (c >= 'A' && c <= 'Z') {
      out[i] = static_cast<char>(c - 'A' + 'a');
    } else if (c == 0xD0 && i + 1 < out.size()) {
      auto d = static_cast<unsigned char>(out[i + 1]);
      if (d >= 0x90 && d <= 0x9F) {  // А-П -> а-п
        out[i + 1] = static_cast<char>(d + 0x20);
      } else if (d >= 0xA0 && d <= 0xAF) {  // Р-Я -> р-я (0xD1 0x80..0x8F)
        out[i] = static_cast<char>(0xD1);
        out[i + 1] = static_cast<char>(d - 0x20);
      } else if (d == 0x81) {  // Ё -> ё
        out[i] = static_cast<char>(0xD1);
        out[i + 1] = static_cast<char>(0x91);
      }
      ++i;
    }
  }
  return out;
}

// The significant words of a question: letters and digits (any non-ASCII byte counts as a
// letter, so words of other scripts stay whole), case-folded, without stop words and
// one-letter words, each once, at most 32.
std::vector<std::string> significant_words(std::string_view text) {
  std::vector<std::string> words;
  std::set<std::string> seen;
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    std::string w = fold_case(current);
    current.clear();
    const bool one_char =
        w.size() == 1 || (w.size() == 2 && static_cast<unsigned char>(w[0]) >= 0xC0);
    if (one_char || stopwords().count(w) || !seen.insert(w).second) return;
    if (words.size() < 32) words.push_back(std::move(w));
  };
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c >= 0x80) {
      current += ch;
    } else {
      flush();
    }
  }
  flush();
  return words;
}

// An FTS5 string token: the word in double quotes, inner quotes doubled.
std::string fts_token(std::string_view word) {
  std::string out = "\"";
  for (char c : word) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

class KnowledgeBaseProvider final : public LlmProvider {
 public:
  KnowledgeBaseProvider(KnowledgeBaseOptions options, std::unique_ptr<Connection> db,
                        std::vector<Entry> entries)
      : options_(std::move(options)), db_(std::move(db)), entries_(std::move(entries)) {}

  std::string_view name() const override { return options_.name; }

  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    const auto start = std::chrono::steady_clock::now();
    if (request.cancel && request.cancel->cancelled()) {
      on_done(cancelled("the request was cancelled"));
      return;
    }
    auto result = answer(request);
    if (result.ok()) {
      result->latency = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      if (on_token && !on_token(result->text)) {
        on_done(cancelled("the request was cancelled"));
        return;
      }
    }
    on_done(std::move(result));
  }

 private:
  Result<Completion> answer(const CompletionRequest& request) {
    const ChatMessage* question = nullptr;
    for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
      if (it->role == Role::kUser) {
        question = &*it;
        break;
      }
    }
    if (question == nullptr) {
      return invalid_argument("the knowledge base needs a user message to answer");
    }
    const auto words = significant_words(question->content);
    auto none = [&] {
      return not_found(fmt::format("{}: no entry matches the question well enough", options_.name))
          .with_reason("no_answer");
    };
    if (words.empty()) return none();

    std::lock_guard lock(mu_);
    std::string any;
    for (const auto& w : words) any += (any.empty() ? "" : " OR ") + fts_token(w);
    auto candidates =
        db_->prepare("SELECT rowid FROM kb WHERE kb MATCH ?1 ORDER BY bm25(kb, 4.0, 1.0) LIMIT 20");
    if (!candidates.ok()) return candidates.status();
    candidates->bind(any);
    std::vector<std::int64_t> rows;
    while (true) {
      auto row = candidates->step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rows.push_back(candidates->int64(0));
    }
    if (rows.empty()) return none();

    // Weighted coverage of the question's words by each candidate; candidates arrive in BM25
    // order, so the first of equal scores is the better ranked.
    const double n = static_cast<double>(entries_.size());
    std::vector<double> score(rows.size(), 0.0);
    double total = 0.0;
    for (const auto& w : words) {
      const std::string token = fts_token(w);
      auto in_question = matching(fmt::format("question : {}", token));
      if (!in_question.ok()) return in_question.status();
      auto in_answer = matching(fmt::format("answer : {}", token));
      if (!in_answer.ok()) return in_answer.status();
      std::set<std::int64_t> anywhere = *in_question;
      anywhere.insert(in_answer->begin(), in_answer->end());
      // A word found nowhere in the base weighs as a rare one (in one entry): it lowers the
      // score of every entry alike, without drowning the words that do match.
      const double df = std::max(1.0, static_cast<double>(anywhere.size()));
      const double idf = std::log(1.0 + (n - df + 0.5) / (df + 0.5));
      total += idf;
      for (std::size_t i = 0; i < rows.size(); ++i) {
        if (in_question->count(rows[i])) {
          score[i] += idf;
        } else if (in_answer->count(rows[i])) {
          score[i] += 0.5 * idf;
        }
      }
    }
    std::size_t best = 0;
    for (std::size_t i = 1; i < rows.size(); ++i) {
      if (score[i] > score[best] + 1e-9) best = i;
    }
    const double best_score = total > 0 ? score[best] / total : 0.0;
    if (best_score < options_.min_score) return none();

    const Entry& e = entries_[static_cast<std::size_t>(rows[best] - 1)];
    Completion c;
    c.text = e.answer;
    c.provider = options_.name;
    c.model = "knowledge-base";
    c.finish_reason = "stop";
    return c;
  }

  Result<std::set<std::int64_t>> matching(const std::string& query) {
    auto s = db_->prepare("SELECT rowid FROM kb WHERE kb MATCH ?1");
    if (!s.ok()) return s.status();
    s->bind(query);
    std::set<std::int64_t> out;
    while (true) {
      auto row = s->step();
      if (!row.ok()) return row.status();
      if (!*row) return out;
      out.insert(s->int64(0));
    }
  }

  const KnowledgeBaseOptions options_;
  std::mutex mu_;
  std::unique_ptr<Connection> db_;  // guarded by mu_
  const std::vector<Entry> entries_;
};

}  // namespace

Result<std::unique_ptr<LlmProvider>> make_knowledge_base_provider(
    const KnowledgeBaseOptions& options) {
  std::string text = options.text;
  std::string origin = "knowledge base";
  bool json = options.text_is_json;
  if (!options.path.empty()) {
    std::ifstream in(options.path, std::ios::binary);
    if (!in) return not_found(fmt::format("cannot read the knowledge base {}", options.path));
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
    origin = options.path;
    json = options.path.size() >= 5 && options.path.ends_with(".json");
  } else if (text.empty()) {
    text = std::string(sample_knowledge_base());
    origin = "the sample knowledge base";
    json = false;
  }
  if (options.min_score < 0.0 || options.min_score > 1.0) {
    return invalid_argument(
        fmt::format("min_score must be between 0 and 1, got {}", options.min_score));
  }
  auto entries = json ? detail::parse_knowledge_base_json(text, origin)
                      : detail::parse_knowledge_base_markdown(text, origin);
  if (!entries.ok()) return entries.status();
  if (entries->empty()) {
    return invalid_argument(fmt::format("{} has no entries (\"## question\" headings)", origin));
  }

  auto db = Connection::open(":memory:", std::chrono::milliseconds(0), false);
  if (!db.ok()) return db.status();
  LLMASSIST_RETURN_IF_ERROR(
      (*db)->exec("CREATE VIRTUAL TABLE kb USING fts5(question, answer, "
                  "tokenize = 'porter unicode61 remove_diacritics 2')"));
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("BEGIN"));
  {
    auto insert = (*db)->prepare("INSERT INTO kb (rowid, question, answer) VALUES (?1, ?2, ?3)");
    if (!insert.ok()) return insert.status();
    std::int64_t id = 0;
    for (const auto& e : *entries) {
      LLMASSIST_RETURN_IF_ERROR(insert->bind(++id, e.question, e.answer).run());
    }
  }
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("COMMIT"));
  return std::unique_ptr<LlmProvider>(
      new KnowledgeBaseProvider(options, std::move(db).value(), std::move(entries).value()));
}

}  // namespace llmassist
