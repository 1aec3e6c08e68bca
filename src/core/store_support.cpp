#include "core/store_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/json_text.h"
#include "llmassist/reply_lifecycle.h"

namespace llmassist::detail {
namespace {

bool ascii_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

std::optional<double> percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return std::nullopt;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  const std::size_t index = rank == 0 ? 0 : std::min(rank - 1, sorted.size() - 1);
  return static_cast<double>(sorted[index]);
}

}  // namespace

Status check_limit(int limit) {
  if (limit < 1 || limit > kMaxStorePage) {
    return invalid_argument(
        fmt::format("limit must be between 1 and {}, got {}", kMaxStorePage, limit));
  }
  return Status();
}

std::string like_pattern(std::string_view search) {
  std::string out = "%";
  for (char c : search) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

std::vector<std::string_view> split_terms(std::string_view terms) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < terms.size()) {
    while (i < terms.size() && ascii_space(terms[i])) ++i;
    const std::size_t start = i;
    while (i < terms.size() && !ascii_space(terms[i])) ++i;
    if (i > start) out.push_back(terms.substr(start, i - start));
  }
  return out;
}

Status check_vector(std::span<const float> v, std::string_view what) {
  if (v.empty()) return invalid_argument(fmt::format("{} is empty", what));
  for (float x : v) {
    if (!std::isfinite(x)) {
      return invalid_argument(fmt::format("{} has a value that is not finite", what));
    }
  }
  return Status();
}

double vector_norm(std::span<const float> v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

std::optional<double> cosine_similarity(std::span<const float> a, double norm_a,
                                        std::span<const float> b) {
  double dot = 0;
  double bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (norm_a == 0 || bb == 0) return std::nullopt;
  const double score = dot / (norm_a * std::sqrt(bb));
  if (!std::isfinite(score)) return std::nullopt;
  return score;
}

Status check_chat_infos(std::span<const ChatInfo> infos) {
  for (const ChatInfo& info : infos) {
    if (info.channel.empty() || info.external_id.empty()) {
      return invalid_argument("a chat needs a channel and an external id");
    }
  }
  return Status();
}

Status check_inbound(std::span<const InboundMessage> messages) {
  for (const auto& m : messages) {
    if (m.chat_id <= 0) return invalid_argument("an inbound message needs a chat id");
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the message text", m.text));
  }
  return Status();
}

Status check_new_message(const NewMessage& message) {
  if (message.chat_id <= 0) return invalid_argument("a message needs a chat id");
  return check_text_size("the message text", message.text);
}

Status check_audit_event(const AuditEvent& event) {
  if (event.actor.empty() || event.action.empty()) {
    return invalid_argument("an audit event needs an actor and an action");
  }
  return Status();
}

Status check_setting(std::string_view key, std::string_view value) {
  if (key.empty()) return invalid_argument("a setting needs a key");
  return check_text_size("the setting", value);
}

Result<std::pair<std::int64_t, std::int64_t>> stats_range(const StatsQuery& query,
                                                          std::int64_t now_ms) {
  const auto ms = [](Timestamp t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  };
  const std::int64_t from = ms(query.from);
  const std::int64_t to = query.to == Timestamp{} ? now_ms + 1 : ms(query.to);
  if (to <= from) return invalid_argument("the statistics range ends before it starts");
  return std::pair{from, to};
}

Status check_new_summary(const NewSessionSummary& summary) {
  if (summary.content.empty()) return invalid_argument("a session summary needs a content");
  LLMASSIST_RETURN_IF_ERROR(check_text_size("the summary", summary.content));
  if (summary.expected_version < 0) {
    return invalid_argument("expected_version must not be negative");
  }
  if (summary.job_id != 0 && summary.worker.empty()) {
    return invalid_argument("a summary that finishes a job needs the job's worker");
  }
  return Status();
}

Status check_new_job(const NewMemoryJob& job) {
  if (job.kind.empty() || job.key.empty()) return invalid_argument("a job needs a kind and a key");
  if (job.chat_id < 0) return invalid_argument("a job's chat id must not be negative");
  return check_text_size("the job's payload", job.payload);
}

Status check_job_claim(const JobClaim& claim) {
  if (claim.worker.empty()) return invalid_argument("a job claim needs a worker");
  if (claim.limit < 1 || claim.limit > 100) {
    return invalid_argument(
        fmt::format("a job claim's limit must be between 1 and 100, got {}", claim.limit));
  }
  if (claim.lease <= std::chrono::milliseconds::zero()) {
    return invalid_argument("a job claim needs a positive lease");
  }
  return Status();
}

Status check_job_lease(std::chrono::milliseconds lease) {
  if (lease <= std::chrono::milliseconds::zero()) {
    return invalid_argument("a job's lease must be positive");
  }
  return Status();
}

Status check_job_held(const MemoryJob& job, std::string_view worker) {
  if (worker.empty()) return invalid_argument("which worker holds the job: none given");
  if (job.done_at) return aborted(fmt::format("job {} is already done", job.id));
  if (job.claimed_by != worker) {
    return aborted(
        job.claimed_by.empty()
            ? fmt::format("job {} is not claimed by {}: nobody holds it", job.id, worker)
            : fmt::format("job {} is held by {}, not {}", job.id, job.claimed_by, worker));
  }
  return Status();
}

Status check_recall_items(std::span<const RecallItem> items) {
  for (const RecallItem& item : items) {
    if (item.chat_id <= 0 || item.kind.empty() || item.key.empty()) {
      return invalid_argument("a recall item needs a chat, a kind and a key");
    }
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the recall item's text", item.text));
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the recall item's terms", item.terms));
    if (!item.vector.empty()) {
      LLMASSIST_RETURN_IF_ERROR(check_vector(item.vector, "the recall item's vector"));
      if (item.vector_model.empty()) {
        return invalid_argument("a recall item with a vector needs its vector_model");
      }
    }
  }
  return Status();
}

Status check_term_query(const TermQuery& query) {
  if (query.chat_id <= 0) return invalid_argument("a recall search needs a chat");
  LLMASSIST_RETURN_IF_ERROR(check_limit(query.limit));
  if (query.terms.size() > kMaxQueryTerms) {
    return invalid_argument(fmt::format("a recall search takes at most {} terms, got {}",
                                        kMaxQueryTerms, query.terms.size()));
  }
  return Status();
}

Result<double> check_vector_query(const VectorQuery& query) {
  if (query.chat_id <= 0) return invalid_argument("a recall search needs a chat");
  LLMASSIST_RETURN_IF_ERROR(check_limit(query.limit));
  LLMASSIST_RETURN_IF_ERROR(check_vector(query.vector, "the query vector"));
  if (query.model.empty()) return invalid_argument("a vector search needs the vectors' model");
  const double norm = vector_norm(query.vector);
  if (norm == 0) return invalid_argument("the query vector is all zeros");
  return norm;
}

Status check_recall_vectors(std::span<const std::pair<RecallItemId, std::vector<float>>> vectors,
                            std::string_view model) {
  if (model.empty()) return invalid_argument("recall vectors need their model");
  for (const auto& [id, v] : vectors) {
    LLMASSIST_RETURN_IF_ERROR(check_vector(v, fmt::format("the vector of recall item {}", id)));
  }
  return Status();
}

Status check_cached_embeddings(
    std::string_view model, std::span<const std::pair<std::string, std::vector<float>>> entries) {
  if (model.empty()) return invalid_argument("cached embeddings need their model");
  for (const auto& [digest, v] : entries) {
    if (digest.empty()) return invalid_argument("a cached embedding needs a digest");
    LLMASSIST_RETURN_IF_ERROR(check_vector(v, "a cached embedding"));
  }
  return Status();
}

void watch_store_changes(MessageStore& store, std::chrono::milliseconds slice,
                         const std::function<bool()>& stopping,
                         const std::function<void()>& changed) {
  std::uint64_t seen = store.wait_for_change(0, std::chrono::milliseconds(0));
  while (!stopping()) {
    const std::uint64_t now = store.wait_for_change(seen, slice);
    if (now == seen) continue;
    seen = now;
    changed();
  }
}

LatencySummary summarize_latencies(std::vector<std::int64_t> samples) {
  std::sort(samples.begin(), samples.end());
  LatencySummary out;
  out.count = static_cast<std::int64_t>(samples.size());
  out.p50_ms = percentile(samples, 0.50);
  out.p95_ms = percentile(samples, 0.95);
  out.p99_ms = percentile(samples, 0.99);
  return out;
}

std::string reply_actions_json(const Reply& reply) {
  if (reply.attachments.empty() && reply.deferred_calls.empty()) return {};
  nlohmann::json out = nlohmann::json::object();
  if (!reply.attachments.empty()) {
    auto& list = out["attachments"] = nlohmann::json::array();
    for (const Attachment& a : reply.attachments) {
      list.push_back({{"path", a.path},
                      {"file_name", a.file_name},
                      {"mime_type", a.mime_type},
                      {"caption", a.caption}});
    }
  }
  if (!reply.deferred_calls.empty()) {
    auto& list = out["deferred_calls"] = nlohmann::json::array();
    for (const DeferredToolCall& c : reply.deferred_calls) {
      list.push_back({{"call_id", c.call_id}, {"tool", c.tool}, {"arguments", c.arguments}});
    }
  }
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void read_reply_actions(std::string_view text, Reply& reply) {
  reply.attachments.clear();
  reply.deferred_calls.clear();
  if (text.empty()) return;
  const nlohmann::json j = parse_json_text(text);
  if (!j.is_object()) return;
  const auto field = [](const nlohmann::json& o, const char* name) {
    const auto it = o.find(name);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (const auto it = j.find("attachments"); it != j.end() && it->is_array()) {
    for (const auto& a : *it) {
      if (!a.is_object() || field(a, "path").empty()) continue;
      reply.attachments.push_back(
          {field(a, "path"), field(a, "file_name"), field(a, "mime_type"), field(a, "caption")});
    }
  }
  if (const auto it = j.find("deferred_calls"); it != j.end() && it->is_array()) {
    for (const auto& c : *it) {
      if (!c.is_object() || field(c, "tool").empty()) continue;
      reply.deferred_calls.push_back(
          {field(c, "call_id"), field(c, "tool"), field(c, "arguments")});
    }
  }
}

Status check_chat_change(const ChatChange& change) {
  if (!change.title && !change.notes && !change.opted_out) {
    return invalid_argument("a chat change needs a title, notes or the opt-out");
  }
  if (change.title && (change.title->empty() || change.title->size() > 1024)) {
    return invalid_argument("a chat's title must be 1 byte to 1 KiB long");
  }
  if (change.notes && change.notes->size() > kMaxChatNotesBytes) {
    return invalid_argument(fmt::format("a chat's notes are {} bytes, more than the {} allowed",
                                        change.notes->size(), kMaxChatNotesBytes));
  }
  return Status();
}

ChatUpdate apply_chat_change(const Chat& current, const ChatChange& change, Timestamp now) {
  ChatUpdate out;
  out.chat = current;
  Chat& c = out.chat;
  nlohmann::json what = nlohmann::json::object();
  if (change.title && *change.title != c.title) {
    what["title"] = *change.title;
    c.title = *change.title;
  }
  if (change.notes && *change.notes != c.notes) {
    what["notes"] = *change.notes;
    c.notes = *change.notes;
  }
  if (change.opted_out && *change.opted_out != c.opted_out_at.has_value()) {
    what["opted_out"] = *change.opted_out;
    if (*change.opted_out) {
      c.opted_out_at = now;
    } else {
      c.opted_out_at.reset();
    }
  }
  out.changed = !what.empty();
  if (!out.changed) return out;
  c.updated_at = now;
  if (!change.actor.empty()) {
    AuditEvent e;
    e.at = now;
    e.actor = change.actor;
    e.action = "contact";
    e.chat_id = c.id;
    e.detail = what.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out.audit = std::move(e);
  }
  return out;
}

}  // namespace llmassist::detail
