// The knowledge base (llmassist/memory/knowledge_base.h): passages in an in-memory SQLite FTS5
// table over analyzed terms, their vectors in memory (exact or hnswlib's HNSW), one background
// thread for reloads and embeddings.
#include "llmassist/memory/knowledge_base.h"

#include <fmt/format.h>
#include <hnswlib/hnswlib.h>
#include <sha2.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "core/utf8.h"
#include "llmassist/memory/sample_knowledge_base.h"
#include "memory/knowledge_base_format.h"
#include "memory/passage_splitter.h"
#include "memory/text_analyzer.h"
#include "sqlite/sqlite_db.h"

namespace llmassist {
namespace {

constexpr std::string_view kComponent = "memory.knowledge";
constexpr double kRrfK = 60.0;
// How long after a failed embedding it is tried again when the files are not checked.
constexpr std::chrono::seconds kEmbedRetry{30};

// The SHA-256 of `text` in lower-case hex: the cache key of a passage's vector. libmd (Debian's
// libmd, the BSD message-digest functions dpkg itself uses) gives the digest without bringing a
// cryptography library into the component.
std::string sha256_hex(std::string_view text) {
  char hex[SHA256_DIGEST_STRING_LENGTH];
  SHA256Data(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), hex);
  return std::string(hex);
}

struct Passage {
  std::string source;
  std::string heading;
  std::string text;
  std::string indexed_heading;     // what the heading column indexes (a FAQ entry: its aka lines)
  std::string embedded;            // heading and text, as embedded
  std::string digest;              // sha256_hex(embedded)
  std::vector<std::string> terms;  // sorted, unique: heading and text
};

// One source as read: its passages, or why it was refused.
struct Document {
  std::string name;
  std::vector<Passage> passages;
};

// The vectors of one index: normalised, one per passage, and the HNSW graph over them when the
// index is large enough.
struct Vectors {
  std::string model;
  std::size_t dim = 0;
  std::vector<float> data;  // passages × dim
  std::unique_ptr<hnswlib::InnerProductSpace> space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;  // over `space`
};

// An index, immutable once built apart from its database connection (guarded by db_mu).
struct Index {
  std::uint64_t id = 0;
  std::vector<Passage> passages;
  std::unordered_map<std::string, std::size_t> df;  // passages holding each term
  std::size_t sources = 0;
  std::chrono::system_clock::time_point built;
  mutable std::mutex db_mu;
  std::unique_ptr<detail::Connection> db;
};

// A file's size and modification time: what is compared to tell a change.
struct FileStamp {
  std::uintmax_t size = 0;
  std::filesystem::file_time_type mtime;
  bool exists = false;
  bool operator==(const FileStamp&) const = default;
};

std::vector<FileStamp> stamps_of(const std::vector<KnowledgeSource>& sources) {
  std::vector<FileStamp> out;
  for (const auto& s : sources) {
    std::error_code ec;
    FileStamp st;
    st.size = std::filesystem::file_size(s.path, ec);
    if (!ec) st.mtime = std::filesystem::last_write_time(s.path, ec);
    st.exists = !ec;
    if (ec) st = FileStamp{};
    out.push_back(st);
  }
  return out;
}

// kInvalidArgument naming the line of the first invalid UTF-8 byte, if any.
Status check_utf8(std::string_view text, std::string_view origin) {
  int line = 1;
  for (std::size_t i = 0; i < text.size();) {
    const detail::Utf8Char ch = detail::decode_utf8(text, i);
    if (!ch.valid) {
      return invalid_argument(fmt::format("{}:{}: not valid UTF-8", origin, line));
    }
    if (text[i] == '\n') ++line;
    i += ch.length;
  }
  return Status();
}

Result<std::string> format_of(const KnowledgeSource& source) {
  if (!source.format.empty()) {
    if (source.format == "markdown" || source.format == "text" || source.format == "faq") {
      return source.format;
    }
    return invalid_argument(fmt::format("{}: unknown format \"{}\" (markdown, text or faq)",
                                        source.path, source.format));
  }
  std::string ext = std::filesystem::path(source.path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".md" || ext == ".markdown") return std::string("markdown");
  if (ext == ".txt") return std::string("text");
  if (ext == ".json") return std::string("faq");
  return invalid_argument(fmt::format(
      "{}: cannot tell the format from the extension: give its format (markdown, text or faq)",
      source.path));
}

void finish_passage(Passage& p) {
  p.embedded = p.heading.empty() ? p.text : p.heading + "\n\n" + p.text;
  p.digest = sha256_hex(p.embedded);
  p.terms = detail::analyze_terms(p.indexed_heading + "\n" + p.text, {.unique = true});
  std::sort(p.terms.begin(), p.terms.end());
}

Result<Document> read_faq(std::string name, std::string_view text, std::string_view origin,
                          bool json) {
  auto entries = json ? detail::parse_knowledge_base_json(text, origin)
                      : detail::parse_knowledge_base_markdown(text, origin);
  if (!entries.ok()) return entries.status();
  Document doc{std::move(name), {}};
  for (auto& e : *entries) {
    Passage p;
    const std::size_t eol = e.question.find('\n');
    p.heading = e.question.substr(0, eol);
    p.indexed_heading = std::move(e.question);
    p.text = std::move(e.answer);
    doc.passages.push_back(std::move(p));
  }
  return doc;
}

Result<Document> read_source(const KnowledgeSource& source, std::size_t max_chars) {
  LLMASSIST_ASSIGN_OR_RETURN(const std::string format, format_of(source));
  std::ifstream in(source.path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot read the knowledge file {}", source.path));
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  LLMASSIST_RETURN_IF_ERROR(check_utf8(text, source.path));
  std::string name = std::filesystem::path(source.path).filename().string();
  if (format == "faq") {
    const bool json = std::filesystem::path(source.path).extension() == ".json";
    return read_faq(std::move(name), text, source.path, json);
  }
  Document doc{std::move(name), {}};
  auto parts = format == "markdown" ? detail::split_markdown(text, max_chars)
                                    : detail::split_plain_text(text, max_chars);
  for (auto& part : parts) {
    Passage p;
    p.heading = std::move(part.heading);
    p.indexed_heading = p.heading;
    p.text = std::move(part.text);
    doc.passages.push_back(std::move(p));
  }
  return doc;
}

Result<std::shared_ptr<Index>> build_index(const KnowledgeOptions& options, std::uint64_t id) {
  std::vector<Document> docs;
  if (options.sources.empty()) {
    LLMASSIST_ASSIGN_OR_RETURN(auto en, read_faq("llmassist-faq.md", sample_knowledge_base(),
                                                 "the sample knowledge base", false));
    LLMASSIST_ASSIGN_OR_RETURN(auto ru, read_faq("llmassist-faq.ru.md", sample_knowledge_base_ru(),
                                                 "the Russian sample knowledge base", false));
    docs.push_back(std::move(en));
    docs.push_back(std::move(ru));
  }
  for (const auto& source : options.sources) {
    LLMASSIST_ASSIGN_OR_RETURN(auto doc, read_source(source, options.max_passage_chars));
    docs.push_back(std::move(doc));
  }
  auto index = std::make_shared<Index>();
  index->id = id;
  index->sources = docs.size();
  index->built = std::chrono::system_clock::now();
  for (auto& doc : docs) {
    for (auto& p : doc.passages) {
      p.source = doc.name;
      finish_passage(p);
      for (const auto& t : p.terms) ++index->df[t];
      index->passages.push_back(std::move(p));
    }
  }
  auto db = detail::Connection::open(":memory:", std::chrono::milliseconds(0), false);
  if (!db.ok()) return db.status();
  // The analyzed terms, one word each to FTS5's ascii tokenizer (terms hold no ASCII
  // punctuation; other bytes are word characters to it).
  LLMASSIST_RETURN_IF_ERROR(
      (*db)->exec("CREATE VIRTUAL TABLE passages USING fts5(heading, body, tokenize = 'ascii')"));
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("BEGIN"));
  {
    auto insert = (*db)->prepare("INSERT INTO passages (rowid, heading, body) VALUES (?1, ?2, ?3)");
    if (!insert.ok()) return insert.status();
    std::int64_t row = 0;
    for (const auto& p : index->passages) {
      LLMASSIST_RETURN_IF_ERROR(
          insert
              ->bind(++row, detail::analyzed_text(p.indexed_heading), detail::analyzed_text(p.text))
              .run());
    }
  }
  LLMASSIST_RETURN_IF_ERROR((*db)->exec("COMMIT"));
  index->db = std::move(db).value();
  return index;
}

void normalise(std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  if (sum <= 0) return;
  const auto inv = static_cast<float>(1.0 / std::sqrt(sum));
  for (float& x : v) x *= inv;
}

class KnowledgeBaseImpl final : public KnowledgeBase {
 public:
  KnowledgeBaseImpl(KnowledgeOptions options, std::shared_ptr<Index> index)
      : options_(std::move(options)),
        logger_(options_.logger ? options_.logger : stderr_logger()),
        cancel_(CancelToken::create()),
        index_(std::move(index)),
        stamps_(stamps_of(options_.sources)),
        use_cache_(options_.cache != nullptr) {
    const bool reloads = !options_.sources.empty() && options_.reload_interval.count() > 0;
    if (reloads || options_.embedder) thread_ = std::thread([this] { run(); });
  }

  ~KnowledgeBaseImpl() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cancel_->cancel();
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Result<std::vector<KnowledgePassage>> search(const KnowledgeQuery& query) override {
    if (query.top_k < 1) {
      return invalid_argument(fmt::format("top_k must be at least 1, got {}", query.top_k));
    }
    std::shared_ptr<const Index> index;
    std::shared_ptr<const Vectors> vectors;
    {
      std::lock_guard lock(mu_);
      index = index_;
      vectors = vectors_;
    }
    const auto k = static_cast<std::size_t>(query.top_k);
    const std::size_t candidates = std::max<std::size_t>(50, k * 10);

    LLMASSIST_ASSIGN_OR_RETURN(auto by_terms, term_ranking(*index, query.text, candidates));
    std::vector<std::size_t> by_vector;
    if (vectors) {
      std::vector<float> q = query.vector;
      if (q.empty() && query.embed && options_.embedder && !query.text.empty()) {
        auto e =
            embed_sync(*options_.embedder, EmbeddingRequest{{query.text}, query.embed_timeout, {}});
        if (e.ok() && e->vectors.size() == 1) {
          q = std::move(e->vectors[0]);
        } else {
          logger_->log(LogLevel::kWarning, kComponent,
                       fmt::format("embedding the question failed, searching by terms alone: {}",
                                   e.ok() ? "no vector" : e.status().to_string()));
        }
      }
      if (!q.empty()) {
        if (q.size() != vectors->dim) {
          return invalid_argument(
              fmt::format("the query vector has {} dimensions, the passages' ({}) {}", q.size(),
                          vectors->model, vectors->dim));
        }
        normalise(q);
        by_vector = vector_ranking(*vectors, index->passages.size(), q, candidates);
      }
    } else if (!query.vector.empty() && embedding_model().empty()) {
      return invalid_argument("a query vector, but the knowledge base has no embedder");
    }

    // Reciprocal rank fusion; ties keep the term ranking's order, then the vector ranking's.
    std::map<std::size_t, double> fused;
    std::vector<std::size_t> order;
    for (const auto* ranking : {&by_terms, &by_vector}) {
      for (std::size_t r = 0; r < ranking->size(); ++r) {
        const std::size_t p = (*ranking)[r];
        auto [it, added] = fused.emplace(p, 0.0);
        if (added) order.push_back(p);
        it->second += 1.0 / (kRrfK + static_cast<double>(r + 1));
      }
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return fused[a] > fused[b] + 1e-12; });
    if (order.size() > k) order.resize(k);
    std::vector<KnowledgePassage> out;
    for (const std::size_t i : order) {
      const Passage& p = index->passages[i];
      out.push_back({p.source, p.heading, p.text, fused[i]});
    }
    return out;
  }

  std::string embedding_model() const override {
    return options_.embedder ? std::string(options_.embedder->model()) : std::string();
  }

  KnowledgeStats stats() const override {
    std::lock_guard lock(mu_);
    KnowledgeStats s;
    s.passages = index_->passages.size();
    s.sources = index_->sources;
    // All of them only once the vector ranking is in use.
    s.vectors_ready =
        vectors_ ? s.passages : std::min(vectors_progress_, s.passages == 0 ? 0 : s.passages - 1);
    s.hnsw = vectors_ && vectors_->hnsw != nullptr;
    s.last_reload = index_->built;
    s.last_error = last_error_;
    s.checks = checks_;
    return s;
  }

 private:
  // Passages by BM25 (heading weighing twice the text), those passing the coverage rule.
  Result<std::vector<std::size_t>> term_ranking(const Index& index, std::string_view text,
                                                std::size_t limit) const {
    const auto terms = detail::analyze_terms(text, {.unique = true, .max_terms = 32});
    std::vector<std::size_t> out;
    if (terms.empty()) return out;
    const std::string any = detail::fts_any_of(terms);
    std::vector<std::size_t> rows;
    {
      std::lock_guard lock(index.db_mu);
      auto s = index.db->prepare(
          "SELECT rowid FROM passages WHERE passages MATCH ?1 ORDER BY bm25(passages, 2.0, 1.0) "
          "LIMIT ?2");
      if (!s.ok()) return s.status();
      s->bind(any, static_cast<std::int64_t>(limit));
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        rows.push_back(static_cast<std::size_t>(s->int64(0) - 1));
      }
    }
    const double n = static_cast<double>(index.passages.size());
    std::vector<double> idf;
    double total = 0;
    for (const auto& t : terms) {
      const auto it = index.df.find(t);
      // A term no passage has weighs as a rare one (in one passage).
      const double df = it == index.df.end() ? 1.0 : static_cast<double>(it->second);
      idf.push_back(std::log(1.0 + (n - df + 0.5) / (df + 0.5)));
      total += idf.back();
    }
    for (const std::size_t r : rows) {
      const auto& have = index.passages[r].terms;
      double covered = 0;
      for (std::size_t i = 0; i < terms.size(); ++i) {
        if (std::binary_search(have.begin(), have.end(), terms[i])) covered += idf[i];
      }
      if (total > 0 && covered / total >= options_.min_term_coverage) out.push_back(r);
    }
    return out;
  }

  // Passages by cosine similarity to `q` (normalised), those at min_similarity or above.
  std::vector<std::size_t> vector_ranking(const Vectors& v, std::size_t n,
                                          const std::vector<float>& q, std::size_t limit) const {
    std::vector<std::pair<float, std::size_t>> scored;  // (similarity, passage)
    if (v.hnsw) {
      try {
        auto found = v.hnsw->searchKnn(q.data(), std::min(limit, n));
        while (!found.empty()) {
          scored.emplace_back(1.0f - found.top().first, found.top().second);
          found.pop();
        }
      } catch (const std::exception& e) {
        logger_->log(LogLevel::kWarning, kComponent,
                     fmt::format("the HNSW search failed: {}", e.what()));
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const float* row = v.data.data() + i * v.dim;
        float dot = 0;
        for (std::size_t d = 0; d < v.dim; ++d) dot += row[d] * q[d];
        scored.emplace_back(dot, i);
      }
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::vector<std::size_t> out;
    for (const auto& [similarity, i] : scored) {
      if (out.size() >= limit || similarity < options_.min_similarity) break;
      out.push_back(i);
    }
    return out;
  }

  // The background thread: the current index's vectors, then a check of the files every
  // reload_interval, until stopped.
  void run() {
    bool embedded = !options_.embedder;
    const bool reloads = !options_.sources.empty() && options_.reload_interval.count() > 0;
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (!embedded) {
        lock.unlock();
        embedded = embed_current();
        lock.lock();
        if (stop_) break;
      }
      if (!reloads) {
        if (embedded) {
          wake_.wait(lock, [&] { return stop_; });
          break;
        }
        if (wake_.wait_for(lock, kEmbedRetry, [&] { return stop_; })) break;
        continue;
      }
      // A failed embedding is tried again at the next check.
      if (wake_.wait_for(lock, options_.reload_interval, [&] { return stop_; })) break;
      lock.unlock();
      if (check_files()) embedded = !options_.embedder;
      lock.lock();
    }
  }

  // Rebuilds the index when a file changed; true when a new index was swapped in.
  bool check_files() {
    const auto stamps = stamps_of(options_.sources);
    {
      std::lock_guard lock(mu_);
      ++checks_;
    }
    if (stamps == stamps_ || stamps == failed_stamps_) return false;
    auto index = build_index(options_, next_id_);
    if (!index.ok()) {
      failed_stamps_ = stamps;
      const std::string error = index.status().message();
      logger_->log(
          LogLevel::kError, kComponent,
          fmt::format("the knowledge base was not reloaded, the old index stays: {}", error));
      std::lock_guard lock(mu_);
      last_error_ = error;
      return false;
    }
    ++next_id_;
    stamps_ = stamps;
    failed_stamps_.clear();
    logger_->log(LogLevel::kInfo, kComponent,
                 fmt::format("reloaded: {} passages from {} files", (*index)->passages.size(),
                             (*index)->sources));
    std::lock_guard lock(mu_);
    index_ = std::move(index).value();
    vectors_.reset();
    vectors_progress_ = 0;
    last_error_.clear();
    return true;
  }

  // Embeds the current index's passages (from memory, the cache, or the embedder) and publishes
  // its vectors. False when the embedder failed (retried later) or the thread was stopped.
  bool embed_current() {
    std::shared_ptr<const Index> index;
    {
      std::lock_guard lock(mu_);
      index = index_;
    }
    EmbeddingProvider& embedder = *options_.embedder;
    const std::string model(embedder.model());
    if (model != memo_model_) {
      memo_.clear();
      memo_model_ = model;
    }
    const auto& passages = index->passages;
    std::vector<std::vector<float>> vecs(passages.size());
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < passages.size(); ++i) {
      const auto it = memo_.find(passages[i].digest);
      if (it != memo_.end()) {
        vecs[i] = it->second;
      } else {
        missing.push_back(i);
      }
    }
    const std::size_t batch = static_cast<std::size_t>(std::max(1, embedder.max_batch()));
    std::size_t ready = passages.size() - missing.size();
    auto progress = [&] {
      std::lock_guard lock(mu_);
      if (index_ == index) vectors_progress_ = ready;
    };
    progress();
    for (std::size_t from = 0; from < missing.size(); from += batch) {
      if (cancel_->cancelled()) return false;
      const std::size_t to = std::min(missing.size(), from + batch);
      std::vector<std::size_t> todo(missing.begin() + static_cast<std::ptrdiff_t>(from),
                                    missing.begin() + static_cast<std::ptrdiff_t>(to));
      from_cache(model, passages, todo, vecs, ready);
      if (todo.empty()) {
        progress();
        continue;
      }
      EmbeddingRequest request;
      request.cancel = cancel_;
      for (const std::size_t i : todo) request.inputs.push_back(passages[i].embedded);
      auto result = embed_sync(embedder, std::move(request));
      if (!result.ok() || result->vectors.size() != todo.size()) {
        if (!cancel_->cancelled() && !embed_error_logged_) {
          embed_error_logged_ = true;
          logger_->log(
              LogLevel::kWarning, kComponent,
              fmt::format("embedding the passages failed, searching by terms alone "
                          "until it works: {}",
                          result.ok() ? "a wrong number of vectors" : result.status().to_string()));
        }
        return false;
      }
      std::vector<std::pair<std::string, std::vector<float>>> entries;
      for (std::size_t j = 0; j < todo.size(); ++j) {
        vecs[todo[j]] = std::move(result->vectors[j]);
        // Kept at once: a later batch's failure does not cost this one again.
        memo_[passages[todo[j]].digest] = vecs[todo[j]];
        if (use_cache_) entries.emplace_back(passages[todo[j]].digest, vecs[todo[j]]);
      }
      ready += todo.size();
      if (use_cache_ && !entries.empty()) {
        const Status s = options_.cache->cache_embeddings(model, entries);
        note_cache_status(s);
      }
      progress();
    }
    embed_error_logged_ = false;
    auto vectors = make_vectors(model, std::move(vecs));
    if (!vectors.ok()) {
      logger_->log(LogLevel::kWarning, kComponent, vectors.status().message());
      return true;  // the embedder's answer will not change: terms alone for this index
    }
    // The memory keeps the current passages' vectors only.
    std::unordered_map<std::string, std::vector<float>> kept;
    for (std::size_t i = 0; i < passages.size(); ++i) {
      const float* row = (*vectors)->data.data() + i * (*vectors)->dim;
      kept.emplace(passages[i].digest, std::vector<float>(row, row + (*vectors)->dim));
    }
    memo_ = std::move(kept);
    std::lock_guard lock(mu_);
    if (index_ == index) vectors_ = std::move(vectors).value();
    return true;
  }

  // Fills what the cache has of `todo` and removes it from there.
  void from_cache(const std::string& model, const std::vector<Passage>& passages,
                  std::vector<std::size_t>& todo, std::vector<std::vector<float>>& vecs,
                  std::size_t& ready) {
    if (!use_cache_ || todo.empty()) return;
    std::vector<std::string> digests;
    for (const std::size_t i : todo) digests.push_back(passages[i].digest);
    auto cached = options_.cache->cached_embeddings(model, digests);
    if (!cached.ok()) {
      note_cache_status(cached.status());
      return;
    }
    std::vector<std::size_t> left;
    for (std::size_t j = 0; j < todo.size(); ++j) {
      if (j < cached->size() && !(*cached)[j].empty()) {
        vecs[todo[j]] = std::move((*cached)[j]);
        memo_[passages[todo[j]].digest] = vecs[todo[j]];
        ++ready;
      } else {
        left.push_back(todo[j]);
      }
    }
    todo = std::move(left);
  }

  void note_cache_status(const Status& s) {
    if (s.ok()) return;
    if (s.code() == StatusCode::kUnimplemented) {
      use_cache_ = false;  // a store without the cache: embed without it
      return;
    }
    logger_->log(LogLevel::kWarning, kComponent,
                 fmt::format("the embedding cache failed: {}", s.to_string()));
  }

  Result<std::shared_ptr<const Vectors>> make_vectors(const std::string& model,
                                                      std::vector<std::vector<float>> vecs) {
    auto v = std::make_shared<Vectors>();
    v->model = model;
    v->dim = vecs.empty() ? 0 : vecs[0].size();
    if (v->dim == 0) return invalid_argument(fmt::format("{}: empty vectors", model));
    v->data.reserve(vecs.size() * v->dim);
    for (auto& x : vecs) {
      if (x.size() != v->dim) {
        return invalid_argument(
            fmt::format("{}: vectors of {} and {} dimensions", model, v->dim, x.size()));
      }
      normalise(x);
      v->data.insert(v->data.end(), x.begin(), x.end());
    }
    if (vecs.size() >= options_.hnsw_min_passages) {
      try {
        v->space = std::make_unique<hnswlib::InnerProductSpace>(v->dim);
        v->hnsw =
            std::make_unique<hnswlib::HierarchicalNSW<float>>(v->space.get(), vecs.size(), 16, 200);
        for (std::size_t i = 0; i < vecs.size(); ++i) {
          v->hnsw->addPoint(v->data.data() + i * v->dim, i);
        }
        v->hnsw->setEf(200);
      } catch (const std::exception& e) {
        return invalid_argument(fmt::format("building the HNSW index failed: {}", e.what()));
      }
    }
    return std::shared_ptr<const Vectors>(std::move(v));
  }

  const KnowledgeOptions options_;
  const std::shared_ptr<Logger> logger_;
  const std::shared_ptr<CancelToken> cancel_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                       // guarded by mu_
  std::shared_ptr<const Index> index_;      // guarded by mu_
  std::shared_ptr<const Vectors> vectors_;  // guarded by mu_; of index_, when ready
  std::size_t vectors_progress_ = 0;        // guarded by mu_
  std::string last_error_;                  // guarded by mu_
  std::size_t checks_ = 0;                  // guarded by mu_

  // The background thread's own.
  std::vector<FileStamp> stamps_;         // of the current index
  std::vector<FileStamp> failed_stamps_;  // of the last refused reload
  std::uint64_t next_id_ = 2;
  std::string memo_model_;
  std::unordered_map<std::string, std::vector<float>> memo_;  // digest -> vector
  bool use_cache_ = false;
  bool embed_error_logged_ = false;

  std::thread thread_;  // last: started when everything else is
};

}  // namespace

Result<std::unique_ptr<KnowledgeBase>> make_knowledge_base(KnowledgeOptions options) {
  if (options.max_passage_chars < 100) {
    return invalid_argument(
        fmt::format("max_passage_chars must be at least 100, got {}", options.max_passage_chars));
  }
  if (options.sources.empty() && !options.use_sample) {
    return invalid_argument("the knowledge base has no sources (and the sample is off)");
  }
  if (options.reload_interval.count() < 0) {
    return invalid_argument("reload_interval must not be negative");
  }
  for (const auto& source : options.sources) {
    if (source.path.empty()) return invalid_argument("a knowledge source without a path");
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto index, build_index(options, 1));
  return std::unique_ptr<KnowledgeBase>(new KnowledgeBaseImpl(std::move(options), index));
}

}  // namespace llmassist
