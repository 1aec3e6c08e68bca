// The SQLite MessageStore. Every public method is one transaction on a pooled connection:
// writers use BEGIN IMMEDIATE, so compare-and-set reads and the writes that depend on them are
// serialized by SQLite's write lock across threads and processes alike.
//
// Group commit: writes from threads that call at the same time share one commit (one fsync).
// The first caller in the queue runs everyone's writes, each inside its own savepoint (so each
// stays all-or-nothing and one that fails leaves the others alone), commits once, and only then
// do the callers return: a call still returns only after its effect is durable.
#include "llmassist/sqlite/sqlite_store.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>

#include "llmassist/reply_lifecycle.h"
#include "sqlite/sqlite_db.h"
#include "sqlite/sqlite_schema.h"

namespace llmassist {
namespace {

using detail::collect;
using detail::Connection;
using detail::ConnectionPool;
using detail::single;
using detail::Statement;
using detail::to_millis;
using detail::Transaction;

constexpr int kMaxPage = 1000;

Status check_limit(int limit) {
  if (limit < 1 || limit > kMaxPage) {
    return invalid_argument(fmt::format("limit must be between 1 and {}, got {}", kMaxPage, limit));
  }
  return Status();
}

// "%" and "_" in user search text are literals, not wildcards.
std::string like_pattern(std::string_view search) {
  std::string out = "%";
  for (char c : search) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

// ---- row readers: each matches the column list beside it ----------------------------------

constexpr const char* kChatColumns =
    "id, channel, external_id, title, username, mode, blocked, created_at, updated_at";
Chat read_chat(const Statement& s) {
  Chat c;
  c.id = s.int64(0);
  c.channel = s.text(1);
  c.external_id = s.text(2);
  c.title = s.text(3);
  c.username = s.text(4);
  c.mode = parse_chat_mode(s.text(5)).value_or(ChatMode::kBot);
  c.blocked = s.int64(6) != 0;
  c.created_at = s.time(7);
  c.updated_at = s.time(8);
  return c;
}

constexpr const char* kSessionColumns = "id, chat_id, started_at, closed_at, summary, summary_upto";
Session read_session(const Statement& s) {
  Session x;
  x.id = s.int64(0);
  x.chat_id = s.int64(1);
  x.started_at = s.time(2);
  x.closed_at = s.opt_time(3);
  x.summary = s.text(4);
  x.summary_upto = s.int64(5);
  return x;
}

constexpr const char* kMessageColumns =
    "id, chat_id, session_id, role, text, author, created_at, coalesce(dedup_key, ''), "
    "transport_message_id, reply_id";
Message read_message(const Statement& s) {
  Message m;
  m.id = s.int64(0);
  m.chat_id = s.int64(1);
  m.session_id = s.int64(2);
  m.role = parse_role(s.text(3)).value_or(Role::kSystem);
  m.text = s.text(4);
  m.author = s.text(5);
  m.created_at = s.time(6);
  m.dedup_key = s.text(7);
  m.transport_message_id = s.text(8);
  m.reply_id = s.int64(9);
  return m;
}

constexpr const char* kReplyColumns =
    "id, chat_id, session_id, question_id, status, draft_text, final_text, author, provider, "
    "providers_tried, error, generation_attempts, send_attempts, version, claimed_by, "
    "lease_until, next_attempt_at, transport_message_id, created_at, updated_at, generated_at, "
    "decided_at, sent_at";
Reply read_reply(const Statement& s) {
  Reply r;
  r.id = s.int64(0);
  r.chat_id = s.int64(1);
  r.session_id = s.int64(2);
  r.question_id = s.int64(3);
  r.status = parse_reply_status(s.text(4)).value_or(ReplyStatus::kFailed);
  r.draft_text = s.text(5);
  r.final_text = s.text(6);
  r.author = s.text(7);
  r.provider = s.text(8);
  // column 9, providers_tried, feeds the statistics only
  r.error = s.text(10);
  r.generation_attempts = static_cast<int>(s.int64(11));
  r.send_attempts = static_cast<int>(s.int64(12));
  r.version = s.int64(13);
  r.claimed_by = s.text(14);
  r.lease_until = s.opt_time(15);
  r.next_attempt_at = s.opt_time(16);
  r.transport_message_id = s.text(17);
  r.created_at = s.time(18);
  r.updated_at = s.time(19);
  r.generated_at = s.opt_time(20);
  r.decided_at = s.opt_time(21);
  r.sent_at = s.opt_time(22);
  return r;
}

constexpr const char* kAuditColumns =
    "id, at, actor, action, reply_id, chat_id, before, after, detail";
AuditEvent read_audit(const Statement& s) {
  AuditEvent e;
  e.id = s.int64(0);
  e.at = s.time(1);
  e.actor = s.text(2);
  e.action = s.text(3);
  e.reply_id = s.int64(4);
  e.chat_id = s.int64(5);
  e.before = s.text(6);
  e.after = s.text(7);
  e.detail = s.text(8);
  return e;
}

// Nearest-rank percentile of sorted samples.
std::optional<double> percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return std::nullopt;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  const std::size_t index = rank == 0 ? 0 : std::min(rank - 1, sorted.size() - 1);
  return static_cast<double>(sorted[index]);
}

LatencySummary summarize(std::vector<std::int64_t> samples) {
  std::sort(samples.begin(), samples.end());
  LatencySummary out;
  out.count = static_cast<std::int64_t>(samples.size());
  out.p50_ms = percentile(samples, 0.50);
  out.p95_ms = percentile(samples, 0.95);
  out.p99_ms = percentile(samples, 0.99);
  return out;
}

class SqliteStore final : public MessageStore {
 public:
  SqliteStore(const SqliteStoreOptions& options, std::unique_ptr<Connection> first,
              std::unique_ptr<Connection> watcher)
      : options_(options),
        clock_(options.clock ? options.clock : system_clock()),
        logger_(options.logger ? options.logger : stderr_logger()),
        pool_(options.path, options.busy_timeout, options.sync == SqliteSync::kFull,
              options.max_connections),
        watcher_(std::move(watcher)) {
    pool_.adopt(std::move(first));
    last_data_version_ = read_data_version();
  }

  // ---- chats and sessions ------------------------------------------------------------------

  Result<Chat> upsert_chat(const ChatInfo& info) override {
    LLMASSIST_ASSIGN_OR_RETURN(auto chats, upsert_chats(std::span<const ChatInfo>(&info, 1)));
    return std::move(chats.front());
  }

  Result<std::vector<Chat>> upsert_chats(std::span<const ChatInfo> infos) override {
    if (infos.empty()) return std::vector<Chat>{};
    for (const ChatInfo& info : infos) {
      if (info.channel.empty() || info.external_id.empty()) {
        return invalid_argument("a chat needs a channel and an external id");
      }
    }
    // Most calls find the chats as they are (every inbound message upserts its chat): a read,
    // which costs no commit.
    std::vector<std::optional<Chat>> known(infos.size());
    LLMASSIST_RETURN_IF_ERROR(read<bool>([&](Connection& c) -> Result<bool> {
                                for (std::size_t i = 0; i < infos.size(); ++i) {
                                  auto chat =
                                      find_chat_in(c, infos[i].channel, infos[i].external_id);
                                  if (chat.ok()) {
                                    known[i] = std::move(chat).value();
                                  } else if (chat.status().code() != StatusCode::kNotFound) {
                                    return chat.status();
                                  }
                                }
                                return true;
                              }).status());
    auto current = [&](std::size_t i) {
      const ChatInfo& info = infos[i];
      return known[i] && (info.title.empty() || info.title == known[i]->title) &&
             (info.username.empty() || info.username == known[i]->username);
    };
    std::vector<std::size_t> stale;
    for (std::size_t i = 0; i < infos.size(); ++i) {
      if (!current(i)) stale.push_back(i);
    }
    if (!stale.empty()) {
      Status written = write_status([&](Connection& c) -> Status {
        const std::int64_t now = now_ms();
        auto up = c.prepare(
            "INSERT INTO chats (channel, external_id, title, username, created_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?5) "
            "ON CONFLICT (channel, external_id) DO UPDATE SET "
            "title = CASE WHEN ?3 <> '' THEN ?3 ELSE title END, "
            "username = CASE WHEN ?4 <> '' THEN ?4 ELSE username END, "
            "updated_at = CASE WHEN (?3 <> '' AND ?3 <> title) OR (?4 <> '' AND ?4 <> username) "
            "             THEN ?5 ELSE updated_at END");
        if (!up.ok()) return up.status();
        for (std::size_t i : stale) {
          const ChatInfo& info = infos[i];
          LLMASSIST_RETURN_IF_ERROR(
              up->bind(info.channel, info.external_id, info.title, info.username, now).run());
          LLMASSIST_ASSIGN_OR_RETURN(known[i], find_chat_in(c, info.channel, info.external_id));
        }
        return Status();
      });
      if (!written.ok()) return written;
    }
    std::vector<Chat> out;
    out.reserve(infos.size());
    for (auto& chat : known) out.push_back(std::move(*chat));
    return out;
  }

  Result<Chat> get_chat(ChatId id) override {
    return read<Chat>([&](Connection& c) { return get_chat_in(c, id); });
  }

  Result<Chat> find_chat(std::string_view channel, std::string_view external_id) override {
    return read<Chat>([&](Connection& c) { return find_chat_in(c, channel, external_id); });
  }

  Result<std::vector<Chat>> list_chats(const ChatQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    return read<std::vector<Chat>>([&](Connection& c) -> Result<std::vector<Chat>> {
      auto s = c.prepare(fmt::format(
          "SELECT {} FROM chats WHERE (?1 IS NULL OR mode = ?1) AND (?2 = 0 OR id < ?2) "
          "AND (?3 = '' OR title LIKE ?4 ESCAPE '\\' OR username LIKE ?4 ESCAPE '\\' "
          "     OR external_id LIKE ?4 ESCAPE '\\') "
          "ORDER BY id DESC LIMIT ?5",
          kChatColumns));
      if (!s.ok()) return s.status();
      std::optional<std::string> mode;
      if (q.mode) mode = std::string(to_string(*q.mode));
      s->bind(mode, q.before_id, q.search, like_pattern(q.search), q.limit);
      return collect<Chat>(*s, read_chat);
    });
  }

  Status set_chat_mode(ChatId id, ChatMode mode, std::string_view actor) override {
    return write_status([&](Connection& c) -> Status {
      auto chat = get_chat_in(c, id);
      if (!chat.ok()) return chat.status();
      if (chat->mode == mode) return Status();
      auto s = c.prepare("UPDATE chats SET mode = ?2, updated_at = ?3 WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(id, to_string(mode), now_ms()).run());
      AuditEvent e;
      e.actor = std::string(actor);
      e.action = mode == ChatMode::kOperator ? "handoff" : "handback";
      e.chat_id = id;
      e.before = std::string(to_string(chat->mode));
      e.after = std::string(to_string(mode));
      return insert_audit(c, e).status();
    });
  }

  Status set_chat_blocked(ChatId id, bool blocked) override {
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("UPDATE chats SET blocked = ?2, updated_at = ?3 WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(id, blocked ? 1 : 0, now_ms()).run());
      if (c.changes() == 0) return not_found(fmt::format("no chat {}", id));
      return Status();
    });
  }

  Result<Session> open_session(ChatId chat) override {
    return write<Session>([&](Connection& c) { return open_session_in(c, chat); });
  }

  Result<Session> restart_session(ChatId chat) override {
    return write<Session>([&](Connection& c) -> Result<Session> {
      auto s =
          c.prepare("UPDATE sessions SET closed_at = ?2 WHERE chat_id = ?1 AND closed_at IS NULL");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(chat, now_ms()).run());
      return open_session_in(c, chat);
    });
  }

  Result<Session> get_session(SessionId id) override {
    return read<Session>([&](Connection& c) -> Result<Session> {
      auto s = c.prepare(fmt::format("SELECT {} FROM sessions WHERE id = ?1", kSessionColumns));
      if (!s.ok()) return s.status();
      s->bind(id);
      return single<Session>(*s, read_session, fmt::format("no session {}", id));
    });
  }

  Status close_session(SessionId id) override {
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("UPDATE sessions SET closed_at = coalesce(closed_at, ?2) WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(id, now_ms()).run());
      if (c.changes() == 0) return not_found(fmt::format("no session {}", id));
      return Status();
    });
  }

  Status set_session_summary(SessionId id, std::string_view summary, MessageId upto) override {
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the summary", summary));
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare("UPDATE sessions SET summary = ?2, summary_upto = ?3 WHERE id = ?1");
      if (!s.ok()) return s.status();
      LLMASSIST_RETURN_IF_ERROR(s->bind(id, summary, upto).run());
      if (c.changes() == 0) return not_found(fmt::format("no session {}", id));
      return Status();
    });
  }

  // ---- the message log ---------------------------------------------------------------------

  Result<std::vector<InboundResult>> append_inbound(
      std::span<const InboundMessage> messages) override {
    for (const auto& m : messages) {
      if (m.chat_id <= 0) return invalid_argument("an inbound message needs a chat id");
      LLMASSIST_RETURN_IF_ERROR(check_text_size("the message text", m.text));
    }
    if (messages.empty()) return std::vector<InboundResult>{};
    return write<std::vector<InboundResult>>(
        [&](Connection& c) -> Result<std::vector<InboundResult>> {
          std::vector<InboundResult> out;
          out.reserve(messages.size());
          for (const auto& m : messages) {
            auto r = append_inbound_in(c, m);
            if (!r.ok()) return r.status();
            out.push_back(std::move(r).value());
          }
          return out;
        });
  }

  Result<Message> append_message(const NewMessage& m) override {
    if (m.chat_id <= 0) return invalid_argument("a message needs a chat id");
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the message text", m.text));
    return write<Message>([&](Connection& c) -> Result<Message> {
      SessionId session = m.session_id;
      if (session == 0) {
        auto open = open_session_in(c, m.chat_id);
        if (!open.ok()) return open.status();
        session = open->id;
      }
      auto id = insert_message(c, m.chat_id, session, m.role, m.text, m.author, now_ms(), {},
                               m.transport_message_id, 0);
      if (!id.ok()) return id.status();
      return get_message_in(c, *id);
    });
  }

  Result<Message> get_message(MessageId id) override {
    return read<Message>([&](Connection& c) { return get_message_in(c, id); });
  }

  Result<std::vector<Message>> recent_messages(SessionId session, int count) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(count));
    return read<std::vector<Message>>([&](Connection& c) -> Result<std::vector<Message>> {
      auto s = c.prepare(
          fmt::format("SELECT {} FROM messages WHERE session_id = ?1 ORDER BY id DESC LIMIT ?2",
                      kMessageColumns));
      if (!s.ok()) return s.status();
      s->bind(session, count);
      auto rows = collect<Message>(*s, read_message);
      if (rows.ok()) std::reverse(rows->begin(), rows->end());
      return rows;
    });
  }

  Result<std::vector<Message>> dialog_window(SessionId session, int count,
                                             MessageId upto) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(count));
    return read<std::vector<Message>>([&](Connection& c) -> Result<std::vector<Message>> {
      static const std::string sql = fmt::format(
          "SELECT {} FROM messages WHERE session_id = ?1 AND (?3 = 0 OR id <= ?3) "
          "AND role <> 'system' ORDER BY id DESC LIMIT ?2",
          kMessageColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(session, count, upto);
      auto rows = collect<Message>(*s, read_message);
      if (rows.ok()) std::reverse(rows->begin(), rows->end());
      return rows;
    });
  }

  Result<std::vector<Message>> chat_history(ChatId chat, const HistoryQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    return read<std::vector<Message>>([&](Connection& c) -> Result<std::vector<Message>> {
      auto s = c.prepare(
          fmt::format("SELECT {} FROM messages WHERE chat_id = ?1 AND (?2 = 0 OR id < ?2) "
                      "AND (?3 = '' OR text LIKE ?4 ESCAPE '\\') ORDER BY id DESC LIMIT ?5",
                      kMessageColumns));
      if (!s.ok()) return s.status();
      s->bind(chat, q.before_id, q.search, like_pattern(q.search), q.limit);
      return collect<Message>(*s, read_message);
    });
  }

  // ---- replies -----------------------------------------------------------------------------

  Result<Reply> create_reply(const NewReply& r) override {
    LLMASSIST_RETURN_IF_ERROR(check_new_reply(r));
    return write<Reply>([&](Connection& c) -> Result<Reply> {
      SessionId session = r.session_id;
      if (session == 0) {
        auto open = open_session_in(c, r.chat_id);
        if (!open.ok()) return open.status();
        session = open->id;
      }
      const Timestamp now = now_time();
      LLMASSIST_ASSIGN_OR_RETURN(const ReplyId id, insert_reply(c, make_reply(r, session, now)));
      if (auto e = make_reply_audit(r, id, now)) {
        LLMASSIST_RETURN_IF_ERROR(insert_audit(c, *e).status());
      }
      return get_reply_in(c, id);
    });
  }

  Result<Reply> get_reply(ReplyId id) override {
    return read<Reply>([&](Connection& c) { return get_reply_in(c, id); });
  }

  Result<std::vector<Reply>> list_replies(const ReplyQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    return read<std::vector<Reply>>([&](Connection& c) -> Result<std::vector<Reply>> {
      std::optional<std::string> status;
      if (q.status) status = std::string(to_string(*q.status));
      auto s = c.prepare(
          q.oldest_first
              ? fmt::format("SELECT {} FROM replies WHERE (?1 IS NULL OR status = ?1) "
                            "AND (?2 IS NULL OR chat_id = ?2) AND id > ?3 ORDER BY id LIMIT ?4",
                            kReplyColumns)
              : fmt::format("SELECT {} FROM replies WHERE (?1 IS NULL OR status = ?1) "
                            "AND (?2 IS NULL OR chat_id = ?2) AND (?3 = 0 OR id < ?3) "
                            "ORDER BY id DESC LIMIT ?4",
                            kReplyColumns));
      if (!s.ok()) return s.status();
      s->bind(status, q.chat_id, q.oldest_first ? q.after_id : q.before_id, q.limit);
      return collect<Reply>(*s, read_reply);
    });
  }

  Result<std::vector<Reply>> claim_replies(const ClaimRequest& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_claim_request(q));
    if (!q.reply_id) {
      // Most looks at a queue find it empty: find out under a read transaction, which takes no
      // lock from writers, before taking the write lock. (One candidate says enough.)
      ClaimRequest probe = q;
      probe.limit = 1;
      LLMASSIST_ASSIGN_OR_RETURN(auto candidates, read<std::vector<Reply>>([&](Connection& c) {
                                   return claimable(c, probe, now_ms());
                                 }));
      if (candidates.empty()) return std::vector<Reply>{};
    }
    return write<std::vector<Reply>>([&](Connection& c) { return claim_in(c, q); });
  }

  Status release_claim(ReplyId id, std::string_view worker) override {
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_ASSIGN_OR_RETURN(const Reply current, get_reply_in(c, id));
      LLMASSIST_ASSIGN_OR_RETURN(auto released, apply_release(current, worker, now_time()));
      if (!released) return Status();
      return update_reply(c, *released, std::nullopt);
    });
  }

  Result<Reply> transition_reply(ReplyId id, const ReplyChange& ch) override {
    LLMASSIST_RETURN_IF_ERROR(check_reply_change(ch));
    return write<Reply>([&](Connection& c) { return transition_in(c, id, ch); });
  }

  // One transaction: the change, then each claim.
  Result<ChangeAndClaims> transition_and_claim(ReplyId id, const ReplyChange& ch,
                                               std::span<const ClaimRequest> claims) override {
    LLMASSIST_RETURN_IF_ERROR(check_reply_change(ch));
    for (const ClaimRequest& q : claims) LLMASSIST_RETURN_IF_ERROR(check_claim_request(q));
    return write<ChangeAndClaims>(
        [&](Connection& c) { return transition_and_claim_in(c, id, ch, claims); });
  }

  // One transaction for all the steps, each in a savepoint of its own (the group commit's).
  std::vector<Result<ChangeAndClaims>> transition_and_claim_each(
      std::span<const ReplyStep> steps) override {
    std::vector<std::optional<Result<ChangeAndClaims>>> results(steps.size());
    std::vector<PendingWrite> writes(steps.size());
    std::vector<PendingWrite*> queued;
    queued.reserve(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const ReplyStep& step = steps[i];
      Status checked = check_reply_change(step.change);
      for (const ClaimRequest& q : step.claims) {
        if (checked.ok()) checked = check_claim_request(q);
      }
      if (!checked.ok()) {
        results[i].emplace(std::move(checked));
        continue;
      }
      writes[i].body = [&, i](Connection& c) -> Status {
        const ReplyStep& st = steps[i];
        results[i].emplace(transition_and_claim_in(c, st.id, st.change, st.claims));
        return results[i]->status();
      };
      queued.push_back(&writes[i]);
    }
    run_writes(queued);
    std::vector<Result<ChangeAndClaims>> out;
    out.reserve(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      if (!results[i]) {
        out.emplace_back(writes[i].status);  // the transaction failed before this step ran
      } else if (results[i]->ok() && !writes[i].status.ok()) {
        out.emplace_back(writes[i].status);  // the commit failed
      } else {
        out.push_back(std::move(*results[i]));
      }
    }
    return out;
  }

  // ---- audit, statistics, settings ---------------------------------------------------------

  Result<AuditEvent> append_audit(const AuditEvent& event) override {
    if (event.actor.empty() || event.action.empty()) {
      return invalid_argument("an audit event needs an actor and an action");
    }
    return write<AuditEvent>([&](Connection& c) -> Result<AuditEvent> {
      auto id = insert_audit(c, event);
      if (!id.ok()) return id.status();
      auto s = c.prepare(fmt::format("SELECT {} FROM audit WHERE id = ?1", kAuditColumns));
      if (!s.ok()) return s.status();
      s->bind(*id);
      return single<AuditEvent>(*s, read_audit, "audit event vanished");
    });
  }

  Result<std::vector<AuditEvent>> list_audit(const AuditQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    return read<std::vector<AuditEvent>>([&](Connection& c) -> Result<std::vector<AuditEvent>> {
      auto s =
          c.prepare(fmt::format("SELECT {} FROM audit WHERE (?1 IS NULL OR reply_id = ?1) "
                                "AND (?2 IS NULL OR chat_id = ?2) AND (?3 = '' OR actor = ?3) "
                                "AND (?4 = 0 OR id < ?4) ORDER BY id DESC LIMIT ?5",
                                kAuditColumns));
      if (!s.ok()) return s.status();
      s->bind(q.reply_id, q.chat_id, q.actor, q.before_id, q.limit);
      return collect<AuditEvent>(*s, read_audit);
    });
  }

  Result<Stats> stats(const StatsQuery& q) override {
    const std::int64_t from = to_millis(q.from);
    const std::int64_t to = q.to == Timestamp{} ? now_ms() + 1 : to_millis(q.to);
    if (to <= from) return invalid_argument("the statistics range ends before it starts");
    return read<Stats>([&](Connection& c) { return stats_in(c, from, to); });
  }

  Result<std::string> get_setting(std::string_view key) override {
    return read<std::string>([&](Connection& c) -> Result<std::string> {
      auto s = c.prepare("SELECT value FROM settings WHERE key = ?1");
      if (!s.ok()) return s.status();
      s->bind(key);
      return single<std::string>(
          *s, [](const Statement& st) { return st.text(0); }, fmt::format("no setting {}", key));
    });
  }

  Status put_setting(std::string_view key, std::string_view value) override {
    if (key.empty()) return invalid_argument("a setting needs a key");
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the setting", value));
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare(
          "INSERT INTO settings (key, value) VALUES (?1, ?2) "
          "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
      if (!s.ok()) return s.status();
      return s->bind(key, value).run();
    });
  }

  // ---- retention and erasure ----------------------------------------------------------------

  Result<ErasureCounts> delete_older_than(Timestamp cutoff) override {
    const std::int64_t at = to_millis(cutoff);
    auto counts = write<ErasureCounts>([&](Connection& c) -> Result<ErasureCounts> {
      ErasureCounts n;
      // Finished replies only: one still on its way is kept, and so is its question.
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.replies,
                  "DELETE FROM replies WHERE created_at < ?1 AND status IN ('sent', 'failed', "
                  "'cancelled')",
                  at));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.messages,
                                        "DELETE FROM messages WHERE created_at < ?1 AND id NOT IN "
                                        "(SELECT question_id FROM replies)",
                                        at));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.audit_events, "DELETE FROM audit WHERE at < ?1", at));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.sessions,
                  "DELETE FROM sessions WHERE closed_at IS NOT NULL AND closed_at < ?1 "
                  "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = sessions.id) "
                  "AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.session_id = sessions.id)",
                  at));
      return n;
    });
    if (!counts.ok()) return counts;
    counts->reclaimed = reclaim();
    return counts;
  }

  Result<ErasureCounts> erase_chat(ChatId chat) override {
    auto counts = write<ErasureCounts>([&](Connection& c) -> Result<ErasureCounts> {
      auto found = c.prepare("SELECT external_id FROM chats WHERE id = ?1");
      if (!found.ok()) return found.status();
      found->bind(chat);
      LLMASSIST_ASSIGN_OR_RETURN(std::string external,
                                 single<std::string>(
                                     *found, [](const Statement& st) { return st.text(0); },
                                     fmt::format("no chat {}", chat)));
      ErasureCounts n;
      // The user's own requests (a handoff asked for) name them as the actor.
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.audit_events,
                  "DELETE FROM audit WHERE chat_id = ?1 OR actor = 'user:' || ?2 OR reply_id IN "
                  "(SELECT id FROM replies WHERE chat_id = ?1)",
                  chat, external));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.replies, "DELETE FROM replies WHERE chat_id = ?1", chat));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.messages, "DELETE FROM messages WHERE chat_id = ?1", chat));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.sessions, "DELETE FROM sessions WHERE chat_id = ?1", chat));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.chats, "DELETE FROM chats WHERE id = ?1", chat));
      return n;
    });
    if (!counts.ok()) return counts;
    counts->reclaimed = reclaim();
    return counts;
  }

  // ---- change notification -----------------------------------------------------------------

  std::uint64_t wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(watch_mu_);
    while (true) {
      // Commits by other processes (and by our own pool, harmlessly twice) show up as a new
      // data_version on the watching connection.
      const std::int64_t version = read_data_version();
      if (version != last_data_version_) {
        last_data_version_ = version;
        ++generation_;
      }
      if (generation_ != seen) return generation_;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return generation_;
      changed_.wait_until(lock, std::min(deadline, now + options_.change_poll_interval));
    }
  }

 private:
  // ---- transaction plumbing ----------------------------------------------------------------

  // Runs a DELETE with `args`; adds the rows it removed to `count`.
  template <typename... Args>
  static Status deleted(Connection& c, std::int64_t& count, std::string_view sql,
                        const Args&... args) {
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    LLMASSIST_RETURN_IF_ERROR(s->bind(args...).run());
    count += c.changes();
    return Status();
  }

  // After a deletion: the pages it changed are copied from the write-ahead log into the
  // database file (where secure_delete has zeroed what was deleted) and the log is emptied, so
  // that no copy of the deleted text is left in either file. An open read elsewhere may hold
  // the log for a moment: a few tries, then false.
  bool reclaim() {
    auto lease = pool_.acquire();
    if (!lease.ok()) return false;
    Connection& c = **lease;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto s = c.prepare("PRAGMA wal_checkpoint(TRUNCATE)");
      if (!s.ok()) return false;
      auto row = s->step();
      if (!row.ok()) return false;
      if (*row && s->int64(0) == 0) return true;  // not busy: done
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    logger_->log(LogLevel::kWarning, "store.sqlite",
                 "a deletion's pages are still in the write-ahead log (a reader held it); the "
                 "next checkpoint moves them");
    return false;
  }

  // One caller's write, queued for a group commit. Lives on the caller's stack; the caller waits
  // until `done`.
  struct PendingWrite {
    std::function<Status(Connection&)> body;
    Status status;      // the body's outcome, or the commit's error
    bool done = false;  // guarded by write_mu_
  };

  // Runs `body` in a write transaction, all or nothing, and returns once it is committed. Calls
  // made at the same time from other threads may share the transaction (see the top).
  template <typename T, typename Body>
  Result<T> write(Body&& body) {
    std::optional<Result<T>> result;
    PendingWrite w;
    w.body = [&](Connection& c) -> Status {
      result.emplace(body(c));
      return result->status();
    };
    run_write(w);
    if (!result || (result->ok() && !w.status.ok())) return w.status;  // the commit failed
    return std::move(*result);
  }

  void run_write(PendingWrite& w) {
    PendingWrite* one = &w;
    run_writes({&one, 1});
  }

  // Queues `ws` together, in order; whoever's write is at the head of the queue commits what
  // has accumulated (up to kMaxGroup writes at a time). Returns when all of `ws` are done.
  void run_writes(std::span<PendingWrite* const> ws) {
    if (ws.empty()) return;
    std::unique_lock lock(write_mu_);
    writers_.insert(writers_.end(), ws.begin(), ws.end());
    std::size_t next = 0;  // the first of `ws` not done
    while (true) {
      write_turn_.wait(lock, [&] { return ws[next]->done || writers_.front() == ws[next]; });
      while (next < ws.size() && ws[next]->done) ++next;
      if (next == ws.size()) return;
      if (writers_.front() != ws[next]) continue;
      const std::size_t n = std::min(writers_.size(), kMaxGroup);
      std::vector<PendingWrite*> group(writers_.begin(), writers_.begin() + static_cast<long>(n));
      lock.unlock();
      commit_group(group);
      lock.lock();
      for (std::size_t i = 0; i < n; ++i) {
        writers_.front()->done = true;
        writers_.pop_front();
      }
      write_turn_.notify_all();
    }
  }

  // Runs the writes of `group` in one transaction, each in a savepoint when there are several.
  // Waiters on wait_for_change() are woken only when rows changed: a transaction that found
  // nothing to do (a claim of an empty queue) must not wake a worker that would look again.
  void commit_group(const std::vector<PendingWrite*>& group) {
    auto fail_all = [&](const Status& s) {
      for (PendingWrite* w : group) w->status = s;
    };
    auto conn = pool_.acquire();
    if (!conn.ok()) return fail_all(conn.status());
    Connection& c = **conn;
    auto txn = Transaction::begin(c, Transaction::Kind::kWrite);
    if (!txn.ok()) return fail_all(txn.status());
    const int before = sqlite3_total_changes(c.handle());
    const bool alone = group.size() == 1;
    bool any = false;
    for (PendingWrite* w : group) {
      if (!alone) {
        if (Status s = c.run("SAVEPOINT w"); !s.ok()) return fail_all(s);
      }
      w->status = w->body(c);
      if (!alone) {
        // A failed write is undone alone; the savepoint is released either way.
        Status s = w->status.ok() ? c.run("RELEASE w") : c.run("ROLLBACK TO w");
        if (!w->status.ok() && s.ok()) s = c.run("RELEASE w");
        if (!s.ok()) return fail_all(s);
      }
      any = any || w->status.ok();
    }
    if (!any) return;  // nothing to commit: the transaction rolls back
    const bool changed = sqlite3_total_changes(c.handle()) != before;
    if (Status s = txn->commit(); !s.ok()) {
      for (PendingWrite* w : group) {
        if (w->status.ok()) w->status = s;
      }
      return;
    }
    if (changed) notify_change();
  }

  template <typename Body>
  Status write_status(Body&& body) {
    return write<bool>([&](Connection& c) -> Result<bool> {
             LLMASSIST_RETURN_IF_ERROR(body(c));
             return true;
           })
        .status();
  }

  // Runs `body` in a read transaction: one consistent snapshot for all its queries.
  template <typename T, typename Body>
  Result<T> read(Body&& body) {
    return detail::in_transaction<T>(pool_, Transaction::Kind::kRead, std::forward<Body>(body));
  }

  void notify_change() {
    {
      std::lock_guard lock(watch_mu_);
      ++generation_;
    }
    changed_.notify_all();
  }

  // Called with watch_mu_ held (or from the constructor).
  std::int64_t read_data_version() {
    auto s = watcher_->prepare("PRAGMA data_version");
    if (!s.ok()) return last_data_version_;
    auto row = s->step();
    if (!row.ok() || !*row) return last_data_version_;
    return s->int64(0);
  }

  std::int64_t now_ms() const { return to_millis(clock_->now()); }
  // The clock at the precision stored (whole milliseconds), for the lifecycle's functions.
  Timestamp now_time() const { return detail::from_millis(now_ms()); }

  // ---- statements used inside transactions -------------------------------------------------

  // Claims what `q` asks for (checked by check_claim_request()) and returns the replies as
  // claimed. claimable() finds, in SQL, the replies claim_is_open() and holds_back() admit.
  Result<std::vector<Reply>> claim_in(Connection& c, const ClaimRequest& q) {
    const Timestamp now = now_time();
    std::vector<Reply> found;
    if (q.reply_id) {
      LLMASSIST_ASSIGN_OR_RETURN(auto current, get_reply_in(c, *q.reply_id));
      found.push_back(std::move(current));
    } else {
      LLMASSIST_ASSIGN_OR_RETURN(found, claimable(c, q, to_millis(now)));
    }
    auto u = c.prepare(
        "UPDATE replies SET status = ?2, claimed_by = ?3, lease_until = ?4, updated_at = ?5, "
        "version = ?6, generation_attempts = ?7 WHERE id = ?1");
    if (!u.ok()) return u.status();
    std::vector<Reply> out;
    out.reserve(found.size());
    for (const Reply& current : found) {
      LLMASSIST_ASSIGN_OR_RETURN(Reply r, apply_claim(current, q, now));
      LLMASSIST_RETURN_IF_ERROR(u->bind(r.id, to_string(r.status), r.claimed_by,
                                        to_millis(*r.lease_until), to_millis(r.updated_at),
                                        r.version, r.generation_attempts)
                                    .run());
      out.push_back(std::move(r));
    }
    return out;
  }

  // The replies `q` may claim now, oldest first. With chats, each chat's index serves the query
  // (cheap however many replies wait elsewhere); without, the status index.
  Result<std::vector<Reply>> claimable(Connection& c, const ClaimRequest& q, std::int64_t now) {
    // The statuses that hold a later reply of the chat back (a list, not a parameter, so that
    // the (chat_id, status, id) index serves the probe).
    static constexpr std::string_view kConditions =
        "AND (r.claimed_by = '' OR (?8 = 1 AND r.claimed_by = ?2) "
        "     OR coalesce(r.lease_until, 0) <= ?3) "
        "AND (?4 = 0 OR r.next_attempt_at IS NULL OR r.next_attempt_at <= ?3) "
        "AND (?6 = 0 OR NOT EXISTS (SELECT 1 FROM replies p WHERE p.chat_id = r.chat_id "
        "     AND p.status IN ({}) AND p.id < r.id)) "
        "AND (?9 = '' OR EXISTS (SELECT 1 FROM chats ch WHERE ch.id = r.chat_id "
        "     AND ch.channel = ?9)) "
        "ORDER BY r.id LIMIT ?7";
    static constexpr std::string_view kAll =
        "'new', 'generating', 'pending', 'approved', 'rejected'";
    static constexpr std::string_view kPastApproved = "'new', 'generating', 'pending', 'rejected'";
    static const auto query = [](std::string_view where, std::string_view holding) {
      return fmt::format("SELECT {} FROM replies r WHERE {} {}", kReplyColumns, where,
                         fmt::format(fmt::runtime(kConditions), holding));
    };
    // Of one chat, when only its head may be taken: only the chat's oldest reply in the status
    // can be the head (whatever holds it back holds the later ones back too), so that one is
    // the only candidate, not every reply of the status waiting behind it.
    static constexpr std::string_view kOfChatHead =
        "r.id = (SELECT h.id FROM replies h WHERE h.chat_id = ?5 AND h.status = ?1 "
        "ORDER BY h.id LIMIT 1)";
    static constexpr std::string_view kOfChat = "r.chat_id = ?5 AND r.status = ?1";
    static constexpr std::string_view kOfAll = "r.status = ?1 AND ?5 IS NULL";
    static const std::array<std::string, 6> kQueries = {
        query(kOfChatHead, kAll),      query(kOfChat, kAll),
        query(kOfAll, kAll),           query(kOfChatHead, kPastApproved),
        query(kOfChat, kPastApproved), query(kOfAll, kPastApproved)};
    const bool past = q.head_of_chat_only && q.past_approved;
    // (An approved reply claimed past approved ones is no head: its elders do not hold it.)
    const bool one_head = q.head_of_chat_only && !(past && q.status == ReplyStatus::kApproved);
    const std::size_t where = q.chat_ids.empty() ? 2 : one_head ? 0 : 1;
    auto s = c.prepare(kQueries[where + (past ? 3 : 0)]);
    if (!s.ok()) return s.status();
    auto run = [&](std::optional<ChatId> chat) -> Result<std::vector<Reply>> {
      s->bind(to_string(q.status), q.worker, now, q.due_only ? 1 : 0, chat,
              q.head_of_chat_only ? 1 : 0, q.limit, q.retake_own ? 1 : 0, q.channel);
      return collect<Reply>(*s, read_reply);
    };
    if (q.chat_ids.empty()) return run(std::nullopt);
    std::vector<Reply> out;
    for (ChatId chat : q.chat_ids) {
      LLMASSIST_ASSIGN_OR_RETURN(auto rows, run(chat));
      for (Reply& r : rows) out.push_back(std::move(r));
    }
    const auto by_id = [](const Reply& a, const Reply& b) { return a.id < b.id; };
    const auto same_id = [](const Reply& a, const Reply& b) { return a.id == b.id; };
    std::sort(out.begin(), out.end(), by_id);
    out.erase(std::unique(out.begin(), out.end(), same_id), out.end());
    if (out.size() > static_cast<std::size_t>(q.limit)) {
      out.erase(out.begin() + q.limit, out.end());
    }
    return out;
  }

  Result<Chat> get_chat_in(Connection& c, ChatId id) {
    static const std::string sql = fmt::format("SELECT {} FROM chats WHERE id = ?1", kChatColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(id);
    return single<Chat>(*s, read_chat, [&] { return fmt::format("no chat {}", id); });
  }

  Result<Chat> find_chat_in(Connection& c, std::string_view channel, std::string_view external) {
    static const std::string sql =
        fmt::format("SELECT {} FROM chats WHERE channel = ?1 AND external_id = ?2", kChatColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(channel, external);
    return single<Chat>(*s, read_chat,
                        [&] { return fmt::format("no {} chat {}", channel, external); });
  }

  Result<Session> open_session_in(Connection& c, ChatId chat) {
    {
      static const std::string sql = fmt::format(
          "SELECT {} FROM sessions WHERE chat_id = ?1 AND closed_at IS NULL", kSessionColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(chat);
      auto row = s->step();
      if (!row.ok()) return row.status();
      if (*row) return read_session(*s);
    }
    auto exists = get_chat_in(c, chat);
    if (!exists.ok()) return exists.status();
    auto ins = c.prepare("INSERT INTO sessions (chat_id, started_at) VALUES (?1, ?2)");
    if (!ins.ok()) return ins.status();
    const std::int64_t now = now_ms();
    LLMASSIST_RETURN_IF_ERROR(ins->bind(chat, now).run());
    Session session;
    session.id = c.last_insert_id();
    session.chat_id = chat;
    session.started_at = detail::from_millis(now);
    return session;
  }

  Result<MessageId> insert_message(Connection& c, ChatId chat, SessionId session, Role role,
                                   std::string_view text, std::string_view author, std::int64_t at,
                                   std::optional<std::string_view> dedup_key,
                                   std::string_view transport_id, ReplyId reply) {
    auto s = c.prepare(
        "INSERT INTO messages (chat_id, session_id, role, text, author, created_at, dedup_key, "
        "transport_message_id, reply_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!s.ok()) return s.status();
    LLMASSIST_RETURN_IF_ERROR(
        s->bind(chat, session, to_string(role), text, author, at, dedup_key, transport_id, reply)
            .run());
    return c.last_insert_id();
  }

  Result<ReplyId> insert_reply(Connection& c, const Reply& r) {
    auto s = c.prepare(
        "INSERT INTO replies (chat_id, session_id, question_id, status, final_text, author, "
        "version, created_at, updated_at, decided_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (!s.ok()) return s.status();
    std::optional<std::int64_t> decided;
    if (r.decided_at) decided = to_millis(*r.decided_at);
    LLMASSIST_RETURN_IF_ERROR(s->bind(r.chat_id, r.session_id, r.question_id, to_string(r.status),
                                      r.final_text, r.author, r.version, to_millis(r.created_at),
                                      to_millis(r.updated_at), decided)
                                  .run());
    return c.last_insert_id();
  }

  Result<Message> get_message_in(Connection& c, MessageId id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM messages WHERE id = ?1", kMessageColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(id);
    return single<Message>(*s, read_message, [&] { return fmt::format("no message {}", id); });
  }

  Result<Reply> get_reply_in(Connection& c, ReplyId id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM replies WHERE id = ?1", kReplyColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(id);
    return single<Reply>(*s, read_reply, [&] { return fmt::format("no reply {}", id); });
  }

  Result<AuditId> insert_audit(Connection& c, const AuditEvent& e) {
    auto s = c.prepare(
        "INSERT INTO audit (at, actor, action, reply_id, chat_id, before, after, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!s.ok()) return s.status();
    const std::int64_t at = e.at == Timestamp{} ? now_ms() : to_millis(e.at);
    LLMASSIST_RETURN_IF_ERROR(
        s->bind(at, e.actor, e.action, e.reply_id, e.chat_id, e.before, e.after, e.detail).run());
    return c.last_insert_id();
  }

  Result<InboundResult> append_inbound_in(Connection& c, const InboundMessage& m) {
    if (!m.dedup_key.empty()) {
      static const std::string sql =
          fmt::format("SELECT {} FROM messages WHERE dedup_key = ?1", kMessageColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(m.dedup_key);
      auto row = s->step();
      if (!row.ok()) return row.status();
      if (*row) {
        InboundResult dup;
        dup.message = read_message(*s);
        dup.duplicate = true;
        auto r = c.prepare("SELECT id FROM replies WHERE question_id = ?1 ORDER BY id LIMIT 1");
        if (!r.ok()) return r.status();
        r->bind(dup.message.id);
        auto rrow = r->step();
        if (!rrow.ok()) return rrow.status();
        if (*rrow) dup.reply_id = r->int64(0);
        return dup;
      }
    }
    auto session = open_session_in(c, m.chat_id);
    if (!session.ok()) return session.status();
    const std::int64_t now = now_ms();
    const std::int64_t at = m.sent_at ? to_millis(*m.sent_at) : now;
    std::optional<std::string_view> dedup;
    if (!m.dedup_key.empty()) dedup = m.dedup_key;
    auto id = insert_message(c, m.chat_id, session->id, Role::kUser, m.text, m.author, at, dedup,
                             m.transport_message_id, 0);
    if (!id.ok()) return id.status();
    InboundResult out;
    if (m.open_reply) {
      NewReply n;
      n.chat_id = m.chat_id;
      n.question_id = *id;
      auto reply = insert_reply(c, make_reply(n, session->id, detail::from_millis(now)));
      if (!reply.ok()) return reply.status();
      out.reply_id = *reply;
    }
    auto stored = get_message_in(c, *id);
    if (!stored.ok()) return stored.status();
    out.message = std::move(stored).value();
    return out;
  }

  // The change, then each claim, then the reply's chat (checked by the caller).
  Result<ChangeAndClaims> transition_and_claim_in(Connection& c, ReplyId id, const ReplyChange& ch,
                                                  std::span<const ClaimRequest> claims) {
    ChangeAndClaims out;
    LLMASSIST_ASSIGN_OR_RETURN(out.reply, transition_in(c, id, ch));
    bool took = false;
    for (const ClaimRequest& q : claims) {
      LLMASSIST_ASSIGN_OR_RETURN(auto claimed, claim_in(c, q));
      took = took || !claimed.empty();
      out.claimed.push_back(std::move(claimed));
    }
    if (took) {
      LLMASSIST_ASSIGN_OR_RETURN(out.chat, get_chat_in(c, out.reply.chat_id));
    }
    return out;
  }

  // The lifecycle decides (reply_lifecycle.h); this persists what it returns.
  Result<Reply> transition_in(Connection& c, ReplyId id, const ReplyChange& ch) {
    LLMASSIST_ASSIGN_OR_RETURN(const Reply current, get_reply_in(c, id));
    LLMASSIST_ASSIGN_OR_RETURN(ReplyUpdate update, apply_reply_change(current, ch, now_time()));
    // The caller's next_attempt_at as stored: in whole milliseconds.
    if (auto& next = update.reply.next_attempt_at) *next = detail::from_millis(to_millis(*next));
    if (update.message) {
      const ReplyLogEntry& m = *update.message;
      LLMASSIST_RETURN_IF_ERROR(insert_message(c, m.chat_id, m.session_id, m.role, m.text, m.author,
                                               to_millis(m.created_at), {}, m.transport_message_id,
                                               m.reply_id)
                                    .status());
    }
    LLMASSIST_RETURN_IF_ERROR(update_reply(c, update.reply, update.providers_tried));
    if (update.audit) LLMASSIST_RETURN_IF_ERROR(insert_audit(c, *update.audit).status());
    return std::move(update.reply);
  }

  // Writes every field of `r` over its row (providers_tried, which Reply does not carry, when
  // given).
  Status update_reply(Connection& c, const Reply& r, std::optional<int> providers_tried) {
    static constexpr const char* kSql =
        "UPDATE replies SET status = ?2, draft_text = ?3, final_text = ?4, author = ?5, "
        "provider = ?6, providers_tried = coalesce(?7, providers_tried), error = ?8, "
        "generation_attempts = ?9, send_attempts = ?10, version = ?11, "
        "claimed_by = ?12, lease_until = ?13, next_attempt_at = ?14, "
        "transport_message_id = ?15, updated_at = ?16, generated_at = ?17, decided_at = ?18, "
        "sent_at = ?19 WHERE id = ?1";
    const auto ms = [](const std::optional<Timestamp>& t) -> std::optional<std::int64_t> {
      if (!t) return std::nullopt;
      return to_millis(*t);
    };
    auto s = c.prepare(kSql);
    if (!s.ok()) return s.status();
    return s
        ->bind(r.id, to_string(r.status), r.draft_text, r.final_text, r.author, r.provider,
               providers_tried, r.error, r.generation_attempts, r.send_attempts, r.version,
               r.claimed_by, ms(r.lease_until), ms(r.next_attempt_at), r.transport_message_id,
               to_millis(r.updated_at), ms(r.generated_at), ms(r.decided_at), ms(r.sent_at))
        .run();
  }

  Result<Stats> stats_in(Connection& c, std::int64_t from, std::int64_t to) {
    Stats out;
    std::map<std::string, DailyStats> days;
    {
      auto s = c.prepare(
          "SELECT date(created_at / 1000, 'unixepoch'), count(*), "
          "sum(role = 'user'), count(DISTINCT CASE WHEN role = 'user' THEN chat_id END) "
          "FROM messages WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1");
      if (!s.ok()) return s.status();
      s->bind(from, to);
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        DailyStats& d = days[s->text(0)];
        d.day = s->text(0);
        d.messages = s->int64(1);
        d.user_messages = s->int64(2);
        d.active_users = s->int64(3);
      }
    }
    {
      auto s = c.prepare(
          "SELECT date(sent_at / 1000, 'unixepoch'), count(*) FROM replies "
          "WHERE sent_at >= ?1 AND sent_at < ?2 GROUP BY 1");
      if (!s.ok()) return s.status();
      s->bind(from, to);
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        DailyStats& d = days[s->text(0)];
        d.day = s->text(0);
        d.replies_sent = s->int64(1);
      }
    }
    for (auto& [day, d] : days) out.days.push_back(std::move(d));
    {
      auto s = c.prepare(
          "SELECT status, count(*) FROM replies WHERE created_at >= ?1 AND created_at < ?2 "
          "GROUP BY status");
      if (!s.ok()) return s.status();
      s->bind(from, to);
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (auto st = parse_reply_status(s->text(0))) {
          out.replies_by_status[static_cast<std::size_t>(*st)] = s->int64(1);
        }
      }
      out.failed = out.replies_by_status[static_cast<std::size_t>(ReplyStatus::kFailed)];
    }
    auto durations = [&](std::string_view sql) -> Result<std::vector<std::int64_t>> {
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(from, to);
      return collect<std::int64_t>(*s, [](const Statement& st) { return st.int64(0); });
    };
    auto response = durations(
        "SELECT r.sent_at - m.created_at FROM replies r JOIN messages m ON m.id = r.question_id "
        "WHERE r.sent_at >= ?1 AND r.sent_at < ?2");
    if (!response.ok()) return response.status();
    out.response_time = summarize(std::move(response).value());
    auto wait = durations(
        "SELECT decided_at - generated_at FROM replies WHERE decided_at >= ?1 "
        "AND decided_at < ?2 AND generated_at IS NOT NULL AND decided_at >= generated_at");
    if (!wait.ok()) return wait.status();
    out.moderation_wait = summarize(std::move(wait).value());
    {
      auto s = c.prepare(
          "SELECT action, count(*) FROM audit WHERE at >= ?1 AND at < ?2 "
          "AND action IN ('approve', 'edit', 'reject') GROUP BY action");
      if (!s.ok()) return s.status();
      s->bind(from, to);
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        const std::string action = s->text(0);
        std::int64_t& slot = action == "approve" ? out.approved
                             : action == "edit"  ? out.edited
                                                 : out.rejected;
        slot = s->int64(1);
      }
    }
    {
      auto s = c.prepare(
          "SELECT provider, count(*), sum(providers_tried > 1) FROM replies "
          "WHERE generated_at >= ?1 AND generated_at < ?2 AND provider <> '' "
          "GROUP BY provider ORDER BY 2 DESC, 1");
      if (!s.ok()) return s.status();
      s->bind(from, to);
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        out.providers.push_back({s->text(0), s->int64(1)});
        out.fallback_replies += s->int64(2);
      }
    }
    return out;
  }

  const SqliteStoreOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<Logger> logger_;
  ConnectionPool pool_;

  // Writes share a commit: at most this many per transaction.
  static constexpr std::size_t kMaxGroup = 128;
  std::mutex write_mu_;
  std::condition_variable write_turn_;
  std::deque<PendingWrite*> writers_;  // guarded by write_mu_; the head commits

  std::mutex watch_mu_;
  std::condition_variable changed_;
  std::unique_ptr<Connection> watcher_;  // guarded by watch_mu_
  std::int64_t last_data_version_ = 0;
  std::uint64_t generation_ = 1;
};

}  // namespace

Result<std::unique_ptr<MessageStore>> open_sqlite_store(const SqliteStoreOptions& options) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_database_path(options.path, "the SQLite store"));
  if (options.max_connections < 1) {
    return invalid_argument("max_connections must be at least 1");
  }
  const bool full = options.sync == SqliteSync::kFull;
  LLMASSIST_RETURN_IF_ERROR(detail::create_private_file(
      options.path, *(options.logger ? options.logger : stderr_logger()), "store.sqlite"));
  auto first = detail::Connection::open(options.path, options.busy_timeout, full);
  if (!first.ok()) return first.status();
  LLMASSIST_RETURN_IF_ERROR(detail::migrate_sqlite_schema(**first, kSqliteSchemaVersion));
  auto watcher = detail::Connection::open(options.path, options.busy_timeout, full);
  if (!watcher.ok()) return watcher.status();
  return std::unique_ptr<MessageStore>(
      new SqliteStore(options, std::move(first).value(), std::move(watcher).value()));
}

}  // namespace llmassist
