// The semantic memory (llmassist/memory/semantic_memory.h). Three threads of its own: the
// indexer (what observe() queued, catch-ups, the embedding backlog), the job runner (summary
// jobs, from this process or any other on the store) and the context thread (prompts that
// waited for the question's embedding).
#include "llmassist/memory/semantic_memory.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/await_result.h"
#include "core/prompt_parts.h"
#include "core/store_support.h"
#include "core/task_threads.h"
#include "core/text.h"
#include "core/utf8.h"
#include "llmassist/memory/knowledge_base.h"
#include "memory/summary_text.h"
#include "memory/text_analyzer.h"

namespace llmassist {
namespace {

constexpr std::string_view kComponent = "memory";
constexpr std::string_view kSummaryJob = "summary";
constexpr std::size_t kMaxTrackedSessions = 100'000;
constexpr std::size_t kMaxQueryTerms = 32;

std::string default_worker() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return fmt::format("memory:{}:{}", host[0] ? host : "localhost", getpid());
}

std::string cut_chars(std::string_view text, std::size_t max_chars) {
  std::size_t pos = 0;
  std::size_t n = 0;
  while (pos < text.size() && n < max_chars) {
    pos += detail::decode_utf8(text, pos).length;
    ++n;
  }
  if (pos >= text.size()) return std::string(text);
  return std::string(text.substr(0, pos)) + "…";
}

std::string role_label(Role role) {
  switch (role) {
    case Role::kUser:
      return "User";
    case Role::kAssistant:
      return "Assistant";
    case Role::kOperator:
      return "Operator";
    default:
      return "System";
  }
}

// A candidate for the prompt: what it is, its estimated tokens and its rank (lower: kept first).
struct Piece {
  enum Kind { kWindow, kSummary, kRecalled, kPassage } kind;
  std::size_t index;  // in its list
  double tokens;
  double rank;
};

class SemanticMemoryImpl final : public SemanticMemory {
 public:
  SemanticMemoryImpl(std::shared_ptr<MessageStore> store, SemanticMemoryOptions options)
      : store_(std::move(store)),
        options_(std::move(options)),
        logger_(options_.logger ? options_.logger : stderr_logger()),
        worker_(options_.worker.empty() ? default_worker() : options_.worker),
        clock_(options_.clock ? options_.clock : system_clock()),
        context_threads_(options_.context_threads) {
    indexer_ = std::thread([this] { index_loop(); });
    if (options_.summary.llm) {
      jobs_ = std::thread([this] { job_loop(); });
      watcher_ = std::thread([this] { watch_store(); });
    }
  }

  ~SemanticMemoryImpl() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cancel_->cancel();
    cv_.notify_all();
    if (indexer_.joinable()) indexer_.join();
    if (jobs_.joinable()) jobs_.join();
    if (watcher_.joinable()) watcher_.join();
    context_threads_.stop();
    // The embedder answers a cancelled request soon; its callback must not outlive us.
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return embeds_in_flight_ == 0; });
  }

  // --- MemoryManager ---------------------------------------------------------------------------

  Result<Context> build_context(const ContextRequest& request) override {
    return build(request, {});
  }

  void build_context_async(const ContextRequest& request, ContextCallback done) override {
    const auto& embedder = options_.recall.embedder;
    if (!embedder || !options_.recall.enabled) {
      if (options_.knowledge && !options_.knowledge->embedding_model().empty()) {
        // The knowledge base embeds the question itself, a request: not on the caller's thread.
        auto shared = std::make_shared<ContextCallback>(std::move(done));
        const bool taken =
            context_threads_.post([this, request, shared] { (*shared)(build(request, {}, true)); });
        if (!taken) (*shared)(cancelled("the memory is stopping"));
        return;
      }
      // Off the caller's thread too: on a database server the reads are round trips, and the
      // caller (the assistant's completion writer) has other chats' answers to store.
      auto shared = std::make_shared<ContextCallback>(std::move(done));
      const bool taken =
          context_threads_.post([this, request, shared] { (*shared)(build(request, {})); });
      if (!taken) (*shared)(cancelled("the memory is stopping"));
      return;
    }
    auto shared_done = std::make_shared<ContextCallback>(std::move(done));
    const bool taken = context_threads_.post([this, request, shared_done] {
      auto question = question_text(request);
      if (!question.ok() || question->empty()) {
        (*shared_done)(build(request, {}));
        return;
      }
      {
        std::lock_guard lock(mu_);
        ++embeds_in_flight_;
      }
      EmbeddingRequest er;
      er.inputs = {cut_chars(*question, 2000)};
      er.timeout = options_.recall.embed_wait;
      er.cancel = cancel_;
      options_.recall.embedder->embed(
          std::move(er), [this, request, shared_done](Result<Embeddings> e) {
            std::vector<float> vector;
            if (e.ok() && e->vectors.size() == 1) {
              vector = std::move(e->vectors.front());
            } else if (!e.ok() && e.status().code() != StatusCode::kCancelled) {
              count(&SemanticMemoryStats::embed_failures);
              log(LogLevel::kWarning, "embedding the question failed, recalling by words alone: " +
                                          e.status().to_string());
            }
            // Off the embedder's I/O thread: building reads the store.
            const bool posted =
                context_threads_.post([this, request, shared_done, vector = std::move(vector)] {
                  (*shared_done)(build(request, vector, true));
                });
            if (!posted) (*shared_done)(cancelled("the memory is stopping"));
            std::lock_guard lock(mu_);
            --embeds_in_flight_;
            idle_cv_.notify_all();
          });
    });
    if (!taken) (*shared_done)(cancelled("the memory is stopping"));
  }

  void observe(const Message& message) override {
    if (message.role != Role::kUser) return;
    bool check = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (options_.recall.enabled) pending_.push_back(message);
      if (options_.summary.llm) {
        if (seen_.size() > kMaxTrackedSessions) seen_.clear();
        const int every = std::max(1, options_.summary.threshold / 4);
        check = ++seen_[message.session_id] % every == 0;
        if (check) sessions_to_check_.insert({message.session_id, message.chat_id});
      }
    }
    cv_.notify_all();
  }

  void observe_prompt_usage(int estimated_tokens, int prompt_tokens) override {
    if (estimated_tokens <= 0 || prompt_tokens <= 0) return;
    const double ratio = std::clamp(
        static_cast<double>(prompt_tokens) / (static_cast<double>(estimated_tokens) / scale()),
        0.25, 4.0);
    std::lock_guard lock(stats_mu_);
    // An average over the last few dozen prompts: one odd count moves it little.
    stats_.token_scale = stats_.token_scale * 0.9 + ratio * 0.1;
  }

  // --- SemanticMemory --------------------------------------------------------------------------

  SemanticMemoryStats stats() const override {
    std::lock_guard lock(stats_mu_);
    return stats_;
  }

  bool flush(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.notify_all();
    return idle_cv_.wait_for(lock, timeout, [&] { return pending_.empty() && !indexing_; });
  }

  int run_due_jobs() override {
    check_sessions();
    int ran = 0;
    while (run_one_job()) ++ran;
    return ran;
  }

 private:
  // --- building a prompt -----------------------------------------------------------------------

  double scale() const {
    std::lock_guard lock(stats_mu_);
    return stats_.token_scale;
  }

  void count(std::int64_t SemanticMemoryStats::*field, std::int64_t n = 1) {
    std::lock_guard lock(stats_mu_);
    stats_.*field += n;
  }

  void log(LogLevel level, const std::string& message) const {
    logger_->log(level, kComponent, message);
  }

  Result<std::string> question_text(const ContextRequest& request) {
    LLMASSIST_ASSIGN_OR_RETURN(
        auto window, store_->dialog_window(request.session_id, 1, request.upto_message_id));
    if (window.empty()) return std::string();
    return window.back().text;
  }

  // The knowledge base's passages for the question. `vector` (the recall embedder's) is shared
  // when both use the same model. A failed search is logged and leaves the passages out: the
  // documents inform an answer, they never stop one.
  std::vector<UsedPassage> knowledge_passages(const std::string& question,
                                              const std::vector<float>& vector, bool may_embed) {
    const auto& kb = options_.knowledge;
    if (!kb || options_.knowledge_top_k <= 0) return {};
    KnowledgeQuery query;
    query.text = cut_chars(question, 2000);
    query.top_k = options_.knowledge_top_k;
    if (!vector.empty() && shares_vectors_with_knowledge()) query.vector = vector;
    query.embed = may_embed && !shares_vectors_with_knowledge();
    query.embed_timeout = options_.recall.embed_wait;
    auto found = kb->search(query);
    if (!found.ok() && !query.vector.empty()) {
      query.vector.clear();  // e.g. another dimension after a model change: by itself
      found = kb->search(query);
    }
    if (!found.ok()) {
      log(LogLevel::kWarning, "searching the knowledge base failed, answering without it: " +
                                  found.status().to_string());
      return {};
    }
    std::vector<UsedPassage> out;
    out.reserve(found->size());
    for (auto& p : *found) {
      out.push_back({std::move(p.source), std::move(p.heading), std::move(p.text), p.score});
    }
    return out;
  }

  bool shares_vectors_with_knowledge() const {
    const auto& embedder = options_.recall.embedder;
    return options_.knowledge && embedder && options_.recall.enabled &&
           !options_.knowledge->embedding_model().empty() &&
           options_.knowledge->embedding_model() == embedder->model();
  }

  // `may_embed`: whether the knowledge base may embed the question itself (not in
  // build_context(), which never waits for a model).
  Result<Context> build(const ContextRequest& request, const std::vector<float>& vector,
                        bool may_embed = false) {
    LLMASSIST_ASSIGN_OR_RETURN(
        auto window,
        store_->dialog_window(request.session_id, options_.window, request.upto_message_id));
    catch_up(request.chat_id);
    std::optional<SessionSummary> summary;
    {
      auto s = store_->latest_session_summary(request.session_id);
      if (s.ok()) {
        summary = std::move(*s);
      } else if (s.status().code() != StatusCode::kNotFound) {
        return s.status();
      }
    }
    const std::string question = window.empty() ? std::string() : window.back().text;
    std::vector<RecalledItem> recalled;
    if (options_.recall.enabled && options_.recall.top_k > 0 && !question.empty()) {
      const MessageId before = window.front().id;
      LLMASSIST_ASSIGN_OR_RETURN(recalled, recall(request, question, vector, before));
    }
    std::vector<UsedPassage> passages = question.empty()
                                            ? std::vector<UsedPassage>{}
                                            : knowledge_passages(question, vector, may_embed);

    Context out;
    const std::string& system =
        request.system_prompt.empty() ? options_.system_prompt : request.system_prompt;
    const auto redraft = detail::redraft_instruction(request);
    const double k = scale();
    auto tokens = [&](std::string_view text) { return detail::estimate_tokens(text, k) + 4; };

    // What always goes in.
    double used = 0;
    if (!system.empty()) used += tokens(system);
    if (redraft) used += tokens(redraft->content);
    if (!window.empty()) used += tokens(window.back().text);

    std::vector<Piece> pieces;
    const std::size_t n = window.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const std::size_t age = n - 1 - i;  // 1: the message before the question
      const double rank = age <= 2 ? 1 : 4 + static_cast<double>(age) * 1e-3;
      pieces.push_back({Piece::kWindow, i, tokens(window[i].text), rank});
    }
    if (summary) {
      pieces.push_back({Piece::kSummary, 0, tokens(detail::summary_message(summary->content)), 2});
    }
    const double list_overhead = 40;  // each list's framing sentence
    for (std::size_t i = 0; i < recalled.size(); ++i) {
      pieces.push_back({Piece::kRecalled, i,
                        tokens(recalled[i].text) + (i == 0 ? list_overhead : 0),
                        i == 0 ? 3 : 6 + static_cast<double>(i) * 1e-3});
    }
    for (std::size_t i = 0; i < passages.size(); ++i) {
      pieces.push_back(
          {Piece::kPassage, i,
           tokens(passages[i].text) + tokens(passages[i].source) + (i == 0 ? list_overhead : 0),
           i == 0 ? 3 : 5 + static_cast<double>(i) * 1e-3});
    }
    std::stable_sort(pieces.begin(), pieces.end(),
                     [](const Piece& a, const Piece& b) { return a.rank < b.rank; });
    const double budget = options_.budget_tokens;
    std::vector<bool> keep_window(n, false);
    if (n > 0) keep_window[n - 1] = true;
    bool keep_summary = false;
    std::vector<bool> keep_recalled(recalled.size(), false);
    std::vector<bool> keep_passage(passages.size(), false);
    bool window_cut = false;  // once a window message is left out, older ones are too
    for (const Piece& p : pieces) {
      // A list's first item carries its framing; a later one goes in only with the first.
      const bool needs_first = (p.kind == Piece::kRecalled && p.index > 0 && !keep_recalled[0]) ||
                               (p.kind == Piece::kPassage && p.index > 0 && !keep_passage[0]);
      const bool fits = used + p.tokens <= budget && !needs_first;
      if (p.kind == Piece::kWindow) {
        if (window_cut || !fits) {
          window_cut = true;
          continue;
        }
        keep_window[p.index] = true;
      } else if (!fits) {
        continue;
      } else if (p.kind == Piece::kSummary) {
        keep_summary = true;
      } else if (p.kind == Piece::kRecalled) {
        keep_recalled[p.index] = true;
      } else {
        keep_passage[p.index] = true;
      }
      used += p.tokens;
    }
    // A window message kept after an older one was cut would leave a hole: keep the newest run.
    for (std::size_t i = n; i-- > 0;) {
      if (!keep_window[i]) {
        for (std::size_t j = 0; j < i; ++j) keep_window[j] = false;
        break;
      }
    }

    if (!system.empty()) out.messages.push_back({Role::kSystem, system});
    if (summary && keep_summary) {
      out.messages.push_back({Role::kSystem, detail::summary_message(summary->content)});
      out.summary_used = true;
      out.summary_version = summary->version;
    } else if (summary) {
      out.dropped.push_back("the summary");
    }
    std::vector<UsedPassage> kept_passages;
    for (std::size_t i = 0; i < passages.size(); ++i) {
      if (keep_passage[i]) kept_passages.push_back(passages[i]);
    }
    if (!kept_passages.empty()) {
      out.messages.push_back({Role::kSystem, detail::passages_message(kept_passages)});
    }
    if (kept_passages.size() < passages.size()) {
      out.dropped.push_back(
          fmt::format("{} knowledge passages", passages.size() - kept_passages.size()));
    }
    std::vector<RecalledItem> kept_recalled;
    for (std::size_t i = 0; i < recalled.size(); ++i) {
      if (keep_recalled[i]) kept_recalled.push_back(recalled[i]);
    }
    if (!kept_recalled.empty()) {
      out.messages.push_back({Role::kSystem, detail::recalled_message(kept_recalled)});
    }
    if (kept_recalled.size() < recalled.size()) {
      out.dropped.push_back(
          fmt::format("{} recalled items", recalled.size() - kept_recalled.size()));
    }
    std::size_t window_dropped = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!keep_window[i]) {
        ++window_dropped;
        continue;
      }
      out.messages.push_back({window[i].role, window[i].text});
      ++out.window_messages;
    }
    if (window_dropped > 0) {
      out.dropped.push_back(fmt::format("{} oldest messages", window_dropped));
    }
    if (redraft) out.messages.push_back(*redraft);
    out.facts_recalled = static_cast<int>(kept_recalled.size());
    out.recalled = std::move(kept_recalled);
    out.passages = std::move(kept_passages);
    out.estimated_tokens = detail::estimate_prompt_tokens(out.messages, k);
    count(&SemanticMemoryStats::contexts);
    return out;
  }

  // The chat's past that bears on `question`, before message `before`, best first.
  Result<std::vector<RecalledItem>> recall(const ContextRequest& request,
                                           const std::string& question,
                                           const std::vector<float>& vector, MessageId before) {
    const auto& o = options_.recall;
    struct Fused {
      RecallItem item;
      double score = 0;
    };
    std::map<RecallItemId, Fused> fused;
    auto add = [&](std::vector<RecallHit>& hits) {
      int rank = 0;
      for (auto& hit : hits) {
        // The summary in the prompt already says what the current session's summaries say.
        if (hit.item.kind == "summary" && hit.item.session_id == request.session_id) continue;
        ++rank;
        auto& f = fused[hit.item.id];
        f.score += 1.0 / (o.rrf_k + rank);
        if (f.item.id == 0) f.item = std::move(hit.item);
      }
    };
    TermQuery tq;
    tq.chat_id = request.chat_id;
    tq.terms = detail::analyze_terms(question, {.unique = true, .max_terms = kMaxQueryTerms});
    tq.limit = o.candidates;
    tq.before_message_id = before;
    if (!tq.terms.empty()) {
      LLMASSIST_ASSIGN_OR_RETURN(auto hits, store_->search_recall_terms(tq));
      add(hits);
    }
    if (!vector.empty() && o.embedder) {
      VectorQuery vq;
      vq.chat_id = request.chat_id;
      vq.vector = vector;
      vq.model = std::string(o.embedder->model());
      vq.limit = o.candidates;
      vq.before_message_id = before;
      LLMASSIST_ASSIGN_OR_RETURN(auto hits, store_->search_recall_vectors(vq));
      std::erase_if(hits, [&](const RecallHit& h) { return h.score < o.min_similarity; });
      add(hits);
    }
    std::vector<Fused> ranked;
    for (auto& [id, f] : fused) ranked.push_back(std::move(f));
    std::stable_sort(ranked.begin(), ranked.end(), [](const Fused& a, const Fused& b) {
      if (a.score != b.score) return a.score > b.score;
      return a.item.id > b.item.id;  // the newer of equals
    });
    std::vector<RecalledItem> out;
    std::unordered_set<std::string> texts;  // the same words said twice are recalled once
    for (auto& f : ranked) {
      if (static_cast<int>(out.size()) >= o.top_k) break;
      if (!texts.insert(f.item.text).second) continue;
      out.push_back({f.item.kind, f.item.id, f.item.message_id, f.item.session_id,
                     std::move(f.item.text), f.score});
    }
    return out;
  }

  // --- indexing --------------------------------------------------------------------------------

  RecallItem item_of(const Message& m) const {
    RecallItem item;
    item.chat_id = m.chat_id;
    item.session_id = m.session_id;
    item.kind = "message";
    item.key = fmt::format("message:{}", m.id);
    item.message_id = m.id;
    item.text = cut_chars(m.text, static_cast<std::size_t>(options_.recall.max_item_chars));
    item.terms = detail::analyzed_text(m.text);
    item.created_at = m.created_at;
    return item;
  }

  // The first prompt of a chat in this process: its recent messages indexed again, in the
  // background (adding what is there already is a no-op).
  void catch_up(ChatId chat) {
    if (!options_.recall.enabled || options_.recall.catch_up_messages <= 0) return;
    {
      std::lock_guard lock(mu_);
      if (caught_up_.size() > kMaxTrackedSessions) caught_up_.clear();
      if (!caught_up_.insert(chat).second) return;
      catch_ups_.push_back(chat);
    }
    cv_.notify_all();
  }

  void index_loop() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (pending_.empty() && catch_ups_.empty()) {
        indexing_ = false;
        idle_cv_.notify_all();
        cv_.wait_for(lock, options_.poll_interval * 10,
                     [&] { return stopping_ || !pending_.empty() || !catch_ups_.empty(); });
        if (stopping_) break;
        if (pending_.empty() && catch_ups_.empty()) {
          lock.unlock();
          embed_backlog();
          lock.lock();
          continue;
        }
      }
      indexing_ = true;
      std::vector<Message> batch;
      while (!pending_.empty() && static_cast<int>(batch.size()) < options_.recall.index_batch) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      std::vector<ChatId> chats;
      if (batch.empty()) {
        chats.push_back(catch_ups_.front());
        catch_ups_.pop_front();
      }
      lock.unlock();
      if (!batch.empty()) index_messages(batch);
      for (ChatId chat : chats) index_chat(chat);
      lock.lock();
    }
    indexing_ = false;
    idle_cv_.notify_all();
  }

  void index_messages(const std::vector<Message>& messages) {
    std::vector<RecallItem> items;
    items.reserve(messages.size());
    for (const auto& m : messages) {
      if (detail::trim(m.text).empty()) continue;
      items.push_back(item_of(m));
    }
    if (items.empty()) return;
    auto s = store_->add_recall_items(items);
    if (!s.ok()) {
      log(LogLevel::kError,
          fmt::format("indexing {} messages for recall: {}", items.size(), s.to_string()));
      return;
    }
    count(&SemanticMemoryStats::indexed, static_cast<std::int64_t>(items.size()));
    embed_backlog();
  }

  void index_chat(ChatId chat) {
    HistoryQuery q;
    q.limit = std::min(options_.recall.catch_up_messages, 1000);
    auto history = store_->chat_history(chat, q);
    if (!history.ok()) {
      log(LogLevel::kError, fmt::format("catching up chat {}'s recall index: {}", chat,
                                        history.status().to_string()));
      return;
    }
    std::vector<Message> users;
    for (auto& m : *history) {
      if (m.role == Role::kUser) users.push_back(std::move(m));
    }
    for (std::size_t i = 0; i < users.size();
         i += static_cast<std::size_t>(options_.recall.index_batch)) {
      const auto end =
          std::min(users.size(), i + static_cast<std::size_t>(options_.recall.index_batch));
      index_messages({users.begin() + static_cast<std::ptrdiff_t>(i),
                      users.begin() + static_cast<std::ptrdiff_t>(end)});
    }
  }

  // Embeds the items that have no vector of the embedder's model yet, a batch at a time, until
  // none is left or a request fails (the next round tries again).
  void embed_backlog() {
    const auto& embedder = options_.recall.embedder;
    if (!embedder) return;
    const std::string model(embedder->model());
    const int batch = std::max(1, std::min(options_.recall.index_batch, embedder->max_batch()));
    while (!stopping()) {
      auto items = store_->recall_items_without_vector(model, batch);
      if (!items.ok()) {
        log(LogLevel::kError, "reading the embedding backlog: " + items.status().to_string());
        return;
      }
      if (items->empty()) return;
      EmbeddingRequest er;
      for (const auto& item : *items) er.inputs.push_back(item.text);
      er.cancel = cancel_;
      auto e = embed_sync(*embedder, std::move(er));
      if (!e.ok() || e->vectors.size() != items->size()) {
        count(&SemanticMemoryStats::embed_failures);
        log(LogLevel::kWarning,
            fmt::format("embedding {} recall items failed; tried again later: {}", items->size(),
                        e.ok() ? "wrong number of vectors" : e.status().to_string()));
        return;
      }
      std::vector<std::pair<RecallItemId, std::vector<float>>> vectors;
      for (std::size_t i = 0; i < items->size(); ++i) {
        vectors.emplace_back((*items)[i].id, std::move(e->vectors[i]));
      }
      auto s = store_->set_recall_vectors(vectors, model);
      if (!s.ok()) {
        log(LogLevel::kError, "storing recall vectors: " + s.to_string());
        return;
      }
      count(&SemanticMemoryStats::embedded, static_cast<std::int64_t>(vectors.size()));
    }
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // --- summaries -------------------------------------------------------------------------------

  // Looks for due jobs when observe() marked sessions, when the store changed (another process
  // queued a job, or gave one up: at most every kChangeLookGap), and every poll_interval.
  void job_loop() {
    while (!stopping()) {
      check_sessions();
      const auto looked = std::chrono::steady_clock::now();
      while (!stopping() && run_one_job()) {
      }
      std::unique_lock lock(mu_);
      const auto deadline = looked + options_.poll_interval;
      while (!stopping_ && sessions_to_check_.empty()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        if (store_changed_) {
          if (now >= looked + kChangeLookGap) break;
          cv_.wait_until(lock, std::min(deadline, looked + kChangeLookGap));
        } else {
          cv_.wait_until(lock, deadline);
        }
      }
      store_changed_ = false;
    }
  }

  // The store's change notification (LISTEN/NOTIFY on PostgreSQL), for the job thread.
  void watch_store() {
    detail::watch_store_changes(
        *store_, std::chrono::milliseconds(200), [this] { return stopping(); },
        [this] {
          {
            std::lock_guard lock(mu_);
            store_changed_ = true;
          }
          cv_.notify_all();
        });
  }

  // Sessions observe() marked: a job is queued for each with enough new messages.
  void check_sessions() {
    std::set<std::pair<SessionId, ChatId>> sessions;
    {
      std::lock_guard lock(mu_);
      sessions.swap(sessions_to_check_);
    }
    for (const auto& [session, chat] : sessions) {
      MessageId watermark = 0;
      auto latest = store_->latest_session_summary(session);
      if (latest.ok()) {
        watermark = latest->last_message_id;
      } else if (latest.status().code() != StatusCode::kNotFound) {
        log(LogLevel::kError, "reading a summary: " + latest.status().to_string());
        continue;
      }
      auto after = store_->messages_after(session, watermark, options_.summary.threshold);
      if (!after.ok()) {
        log(LogLevel::kError, "counting messages to summarise: " + after.status().to_string());
        continue;
      }
      if (static_cast<int>(after->size()) < options_.summary.threshold) continue;
      queue_summary(session, chat);
    }
  }

  void queue_summary(SessionId session, ChatId chat) {
    NewMemoryJob job;
    job.kind = std::string(kSummaryJob);
    job.key = fmt::format("summary:{}", session);
    job.chat_id = chat;
    job.payload = nlohmann::json{{"session", session}}.dump();
    auto queued = store_->enqueue_job(job);
    if (!queued.ok())
      log(LogLevel::kError, "queueing a summary job: " + queued.status().to_string());
  }

  // Claims one due summary job and runs it; false when there was none.
  bool run_one_job() {
    if (!options_.summary.llm) return false;
    JobClaim claim;
    claim.kinds = {std::string(kSummaryJob)};
    claim.worker = worker_;
    claim.lease = options_.summary.lease;
    claim.limit = 1;
    auto jobs = store_->claim_jobs(claim);
    if (!jobs.ok()) {
      log(LogLevel::kError, "claiming memory jobs: " + jobs.status().to_string());
      return false;
    }
    if (jobs->empty()) return false;
    const MemoryJob& job = jobs->front();
    Status s = summarise(job);
    if (!s.ok() && s.code() == StatusCode::kCancelled && stopping()) {
      // Stopping: the job goes back as it was, due at once, for the next run to take.
      JobRetry r;
      r.error = "interrupted by a stop";
      r.next_attempt_at = clock_->now();
      (void)store_->retry_job(job.id, worker_, r);
      return false;
    }
    if (!s.ok()) {
      count(&SemanticMemoryStats::summary_failures);
      retry(job, s);
    }
    return true;
  }

  void retry(const MemoryJob& job, const Status& why) {
    const auto& o = options_.summary;
    JobRetry r;
    r.error = why.to_string();
    r.give_up = job.attempts >= o.max_attempts;
    auto delay = o.retry_base * (1LL << std::min(job.attempts - 1, 20));
    if (delay > o.retry_max || delay <= std::chrono::milliseconds::zero()) delay = o.retry_max;
    r.next_attempt_at = clock_->now() + delay;
    log(r.give_up ? LogLevel::kError : LogLevel::kWarning,
        fmt::format("summary job {} failed (attempt {}){}: {}", job.id, job.attempts,
                    r.give_up ? ", given up" : ", retried later", why.to_string()));
    auto s = store_->retry_job(job.id, worker_, r);
    if (!s.ok()) log(LogLevel::kWarning, "releasing a failed job: " + s.to_string());
  }

  Status summarise(const MemoryJob& job) {
    SessionId session = 0;
    try {
      session = nlohmann::json::parse(job.payload).at("session").get<SessionId>();
    } catch (const nlohmann::json::exception&) {
      JobRetry r;
      r.error = "the job's payload names no session";
      r.give_up = true;
      return store_->retry_job(job.id, worker_, r);
    }
    int version = 0;
    MessageId watermark = 0;
    std::string previous;
    auto latest = store_->latest_session_summary(session);
    if (latest.ok()) {
      version = latest->version;
      watermark = latest->last_message_id;
      previous = latest->content;
    } else if (latest.status().code() != StatusCode::kNotFound) {
      return latest.status();
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto messages,
                               store_->messages_after(session, watermark, options_.summary.chunk));
    if (messages.empty()) return store_->finish_job(job.id, worker_);

    std::string dialog;
    for (const auto& m : messages) {
      dialog += fmt::format("{}: {}\n", role_label(m.role), m.text);
    }
    CompletionRequest request;
    const std::string instruction = options_.summary.instruction.empty()
                                        ? std::string(default_summary_instruction())
                                        : options_.summary.instruction;
    request.messages.push_back({Role::kSystem, instruction});
    request.messages.push_back(
        {Role::kUser, fmt::format("Previous summary:\n{}\n\nNew messages:\n{}",
                                  previous.empty() ? "(none yet)" : previous, dialog)});
    request.timeout = options_.summary.timeout;
    request.cancel = cancel_;
    LLMASSIST_ASSIGN_OR_RETURN(auto completion,
                               complete_sync(*options_.summary.llm, std::move(request)));
    const auto parsed = detail::parse_summary_answer(completion.text);
    if (parsed.summary.empty()) return unavailable("the summariser answered nothing");

    NewSessionSummary write;
    write.session_id = session;
    write.content = cut_chars(parsed.summary, static_cast<std::size_t>(options_.summary.max_chars));
    write.last_message_id = messages.back().id;
    write.expected_version = version;
    write.job_id = job.id;
    write.worker = worker_;
    auto stored = store_->add_session_summary(write);
    if (!stored.ok()) {
      if (stored.status().code() == StatusCode::kAborted) {
        // Another run got there first (this one's lease ran out): nothing to do twice.
        log(LogLevel::kWarning,
            "summary job " + std::to_string(job.id) + ": " + stored.status().message());
        return Status();
      }
      return stored.status();
    }
    count(&SemanticMemoryStats::summaries);
    // The summary and its facts join the recall index: a later session recalls them.
    std::vector<RecallItem> items;
    RecallItem base;
    base.chat_id = stored->chat_id;
    base.session_id = session;
    base.message_id = stored->last_message_id;
    base.created_at = stored->created_at;
    RecallItem s = base;
    s.kind = "summary";
    s.key = fmt::format("summary:{}", stored->id);
    s.text = stored->content;
    s.terms = detail::analyzed_text(s.text);
    items.push_back(std::move(s));
    for (std::size_t i = 0; i < parsed.facts.size(); ++i) {
      RecallItem f = base;
      f.kind = "fact";
      f.key = fmt::format("fact:{}:{}", stored->id, i + 1);
      f.text = parsed.facts[i];
      f.terms = detail::analyzed_text(f.text);
      items.push_back(std::move(f));
    }
    if (options_.recall.enabled) {
      auto indexed = store_->add_recall_items(items);
      if (!indexed.ok()) {
        log(LogLevel::kError, "indexing a summary for recall: " + indexed.to_string());
      } else {
        count(&SemanticMemoryStats::indexed, static_cast<std::int64_t>(items.size()));
      }
    }
    // More than one chunk behind: the next run goes on from the new watermark.
    if (static_cast<int>(messages.size()) == options_.summary.chunk) {
      queue_summary(session, stored->chat_id);
    }
    return Status();
  }

  const std::shared_ptr<MessageStore> store_;
  const SemanticMemoryOptions options_;
  const std::shared_ptr<Logger> logger_;
  const std::string worker_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<CancelToken> cancel_ = CancelToken::create();

  std::mutex mu_;
  std::condition_variable cv_;               // work for the indexer or the job thread
  std::condition_variable idle_cv_;          // the indexer ran out of work
  bool stopping_ = false;                    // guarded by mu_
  std::deque<Message> pending_;              // guarded by mu_: user messages to index
  std::deque<ChatId> catch_ups_;             // guarded by mu_
  std::unordered_set<ChatId> caught_up_;     // guarded by mu_
  std::unordered_map<SessionId, int> seen_;  // guarded by mu_
  std::set<std::pair<SessionId, ChatId>> sessions_to_check_;  // guarded by mu_
  bool indexing_ = true;                                      // guarded by mu_
  int embeds_in_flight_ = 0;  // guarded by mu_: questions being embedded

  mutable std::mutex stats_mu_;
  SemanticMemoryStats stats_;  // guarded by stats_mu_

  // A change of the store wakes the job thread at most this often (most changes are this
  // process's own).
  static constexpr std::chrono::milliseconds kChangeLookGap{200};
  bool store_changed_ = false;  // guarded by mu_: the watcher saw a change since the last look

  std::thread indexer_;
  std::thread jobs_;
  std::thread watcher_;  // with a summariser: waits on the store's change notification
  // Builds prompts for build_context_async(): each reads the store (several round trips on a
  // database server), off the caller's thread and several at once.
  detail::TaskThreads context_threads_;
};

}  // namespace

std::string_view default_summary_instruction() {
  return "You keep the running summary of a support conversation between a user and an "
         "assistant. You are given the previous summary and the messages that came after it. "
         "Write the updated summary: who the user is, what they want, what was answered or "
         "done, and what is still open. Write it in the language of the conversation, in at "
         "most 200 words, as plain sentences.\n"
         "Then write a line \"Facts:\" followed by the lasting facts the user stated about "
         "themselves or their case (names, numbers, dates, products, preferences), one per line, "
         "each starting with \"- \". Write \"Facts:\" with nothing after it when there are none.";
}

Result<std::unique_ptr<SemanticMemory>> make_semantic_memory(std::shared_ptr<MessageStore> store,
                                                             SemanticMemoryOptions options) {
  if (!store) return invalid_argument("the semantic memory needs a store");
  auto range = [](std::string_view what, long long v, long long lo, long long hi) -> Status {
    if (v < lo || v > hi) {
      return invalid_argument(fmt::format("{} must be {}..{}, got {}", what, lo, hi, v));
    }
    return Status();
  };
  LLMASSIST_RETURN_IF_ERROR(range("memory.window", options.window, 1, 200));
  LLMASSIST_RETURN_IF_ERROR(range("memory.budget_tokens", options.budget_tokens, 200, 1'000'000));
  LLMASSIST_RETURN_IF_ERROR(range("memory.summary.threshold", options.summary.threshold, 2, 10000));
  LLMASSIST_RETURN_IF_ERROR(range("memory.summary.chunk", options.summary.chunk, 1, 1000));
  LLMASSIST_RETURN_IF_ERROR(range("memory.recall.top_k", options.recall.top_k, 0, 50));
  LLMASSIST_RETURN_IF_ERROR(range("memory.recall.candidates", options.recall.candidates, 1, 1000));
  LLMASSIST_RETURN_IF_ERROR(
      range("memory.recall.index_batch", options.recall.index_batch, 1, 1000));
  LLMASSIST_RETURN_IF_ERROR(range("memory.knowledge_top_k", options.knowledge_top_k, 0, 20));
  LLMASSIST_RETURN_IF_ERROR(range("memory.context_threads", options.context_threads, 1, 64));
  LLMASSIST_RETURN_IF_ERROR(
      range("memory.summary.max_attempts", options.summary.max_attempts, 1, 100));
  if (options.summary.lease <= options.summary.timeout) {
    return invalid_argument("memory.summary.lease must be longer than the summariser's timeout");
  }
  if (options.poll_interval <= std::chrono::milliseconds::zero()) {
    return invalid_argument("memory.poll_interval must be positive");
  }
  auto probe = store->count_recall_items(0);
  if (!probe.ok() && probe.status().code() == StatusCode::kUnimplemented) {
    return failed_precondition(
        "this store keeps no memory records (summaries, recall index): use the window memory "
        "with it");
  }
  return std::unique_ptr<SemanticMemory>(
      new SemanticMemoryImpl(std::move(store), std::move(options)));
}

}  // namespace llmassist
