// The knowledge-base provider: Q&A entries in a private in-memory SQLite FTS5 index.
#include "llmassist/providers/knowledge_base_provider.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "memory/knowledge_base_format.h"
#include "memory/text_analyzer.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {
namespace {

using detail::Connection;
using Entry = detail::KnowledgeBaseEntry;

}  // namespace

namespace {

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
    // The question's terms as the index keeps them (memory/text_analyzer.h): case folded,
    // without function words, stemmed; each once, at most 32.
    const auto words = detail::analyze_terms(question->content, {.unique = true, .max_terms = 32});
    auto none = [&] {
      return not_found(fmt::format("{}: no entry matches the question well enough", options_.name))
          .with_reason("no_answer");
    };
    if (words.empty()) return none();

    std::lock_guard lock(mu_);
    const std::string any = detail::fts_any_of(words);
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
      const std::string token = detail::fts_term(w);
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
  std::vector<std::pair<std::string, std::string>> texts;  // (origin, text)
  bool json = options.text_is_json;
  if (!options.path.empty()) {
    std::ifstream in(options.path, std::ios::binary);
    if (!in) return not_found(fmt::format("cannot read the knowledge base {}", options.path));
    std::ostringstream buf;
    buf << in.rdbuf();
    texts.emplace_back(options.path, buf.str());
    json = options.path.size() >= 5 && options.path.ends_with(".json");
  } else if (!options.text.empty()) {
    texts.emplace_back("knowledge base", options.text);
  } else {
    // Both languages of the sample: a question is answered in the language it was asked in.
    texts.emplace_back("the sample knowledge base", std::string(sample_knowledge_base()));
    texts.emplace_back("the Russian sample knowledge base",
                       std::string(sample_knowledge_base_ru()));
    json = false;
  }
  if (options.min_score < 0.0 || options.min_score > 1.0) {
    return invalid_argument(
        fmt::format("min_score must be between 0 and 1, got {}", options.min_score));
  }
  std::vector<Entry> entries;
  for (const auto& [origin, text] : texts) {
    auto read = json ? detail::parse_knowledge_base_json(text, origin)
                     : detail::parse_knowledge_base_markdown(text, origin);
    if (!read.ok()) return read.status();
    if (read->empty()) {
      return invalid_argument(fmt::format("{} has no entries (\"## question\" headings)", origin));
    }
    std::move(read->begin(), read->end(), std::back_inserter(entries));
  }

  auto db = Connection::open(":memory:", std::chrono::milliseconds(0), false);
  if (!db.ok()) return db.status();
  LLMASSIST_RETURN_IF_ERROR(
      (*db)->exec("CREATE VIRTUAL TABLE kb USING fts5(question, answer, tokenize = 'ascii')"));
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("BEGIN"));
  {
    auto insert = (*db)->prepare("INSERT INTO kb (rowid, question, answer) VALUES (?1, ?2, ?3)");
    if (!insert.ok()) return insert.status();
    std::int64_t id = 0;
    // The analyzed terms, one word each for FTS5's ascii tokenizer (terms hold no ASCII
    // punctuation; other bytes are word characters to it).
    for (const auto& e : entries) {
      LLMASSIST_RETURN_IF_ERROR(
          insert->bind(++id, detail::analyzed_text(e.question), detail::analyzed_text(e.answer))
              .run());
    }
  }
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("COMMIT"));
  return std::unique_ptr<LlmProvider>(
      new KnowledgeBaseProvider(options, std::move(db).value(), std::move(entries)));
}

}  // namespace llmassist
