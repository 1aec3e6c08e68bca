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

#include "core/store_rows.h"
#include "core/store_support.h"
#include "llmassist/reply_lifecycle.h"
#include "sqlite/sqlite_db.h"
#include "sqlite/sqlite_schema.h"

namespace llmassist {
namespace {

using detail::check_limit;
using detail::collect;
using detail::Connection;
using detail::ConnectionPool;
using detail::like_pattern;
using detail::single;
using detail::split_terms;
using detail::Statement;
using detail::to_millis;
using detail::Transaction;

// ---- row readers: each matches the column list beside it ----------------------------------

constexpr const char* kChatColumns =
    "id, channel, external_id, title, username, mode, blocked, created_at, updated_at, "
    "opted_out_at, notes";
Chat read_chat(const Statement& s) { return detail::read_chat_row(s); }

constexpr const char* kSessionColumns = "id, chat_id, started_at, closed_at, summary, summary_upto";
Session read_session(const Statement& s) { return detail::read_session_row(s); }

constexpr const char* kMessageColumns =
    "id, chat_id, session_id, role, text, author, created_at, coalesce(dedup_key, ''), "
    "transport_message_id, reply_id";
Message read_message(const Statement& s) { return detail::read_message_row(s); }

constexpr const char* kReplyColumns =
    "id, chat_id, session_id, question_id, status, draft_text, final_text, author, provider, "
    "providers_tried, error, generation_attempts, send_attempts, version, claimed_by, "
    "lease_until, next_attempt_at, transport_message_id, created_at, updated_at, generated_at, "
    "decided_at, sent_at, actions";
Reply read_reply(const Statement& s) { return detail::read_reply_row(s); }

constexpr const char* kAuditColumns =
    "id, at, actor, action, reply_id, chat_id, before, after, detail";
AuditEvent read_audit(const Statement& s) { return detail::read_audit_row(s); }

constexpr const char* kSummaryColumns =
    "id, session_id, chat_id, version, content, last_message_id, created_at";
SessionSummary read_summary(const Statement& s) { return detail::read_summary_row(s); }

constexpr const char* kJobColumns =
    "id, kind, key, chat_id, payload, attempts, claimed_by, lease_until, next_attempt_at, "
    "last_error, created_at, done_at";
MemoryJob read_job(const Statement& s) { return detail::read_job_row(s); }

constexpr const char* kRecallColumns =
    "id, chat_id, session_id, kind, key, message_id, text, terms, vector, vector_model, "
    "created_at";
Result<RecallItem> read_recall(const Statement& s) { return detail::read_recall_row(s); }

// collect() for a reader that can fail.
template <typename T, typename Reader>
Result<std::vector<T>> collect_checked(Statement& stmt, Reader read) {
  std::vector<T> out;
  while (true) {
    auto row = stmt.step();
    if (!row.ok()) return row.status();
    if (!*row) return out;
    LLMASSIST_ASSIGN_OR_RETURN(T value, read(stmt));
    out.push_back(std::move(value));
  }
}

// ---- the recall index's full-text tokens ---------------------------------------------------
//
// Each term of an item becomes one token of the FTS5 table, prefixed with the item's chat:
// "c42_" and the term with every byte that is not a token character of the ascii tokenizer
// (ASCII letters and digits; every non-ASCII byte is one) written as "_" and two hex digits
// ("_" itself too). The encoding is injective and leaves nothing for the tokenizer to split or
// for the query syntax to read as an operator, so a chat's query names only its own tokens.

bool token_byte(unsigned char b) {
  return b >= 0x80 || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
}

void append_token(std::string& out, ChatId chat, std::string_view term) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += 'c';
  out += std::to_string(chat);
  out += '_';
  for (char ch : term) {
    const auto b = static_cast<unsigned char>(ch);
    if (token_byte(b) && ch != '_') {
      out += ch;
    } else {
      out += '_';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
}

// What the FTS5 table indexes for an item: its tokens, separated by spaces. Empty when the item
// has no terms (it then has no row there). The same text must be given to delete the row.
std::string fts_document(ChatId chat, std::string_view terms) {
  std::string out;
  for (std::string_view term : split_terms(terms)) {
    if (!out.empty()) out += ' ';
    append_token(out, chat, term);
  }
  return out;
}

// The chat's tokens of `terms`, sorted, each once, their ASCII letters in lower case as the
// ascii tokenizer indexes them (so that recall_vocab knows them).
std::vector<std::string> fts_tokens(ChatId chat, std::span<const std::string> terms) {
  std::vector<std::string> tokens;
  for (const std::string& term : terms) {
    for (std::string_view word : split_terms(term)) {
      std::string token;
      append_token(token, chat, word);
      for (char& ch : token) {
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      }
      tokens.push_back(std::move(token));
    }
  }
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  return tokens;
}

// An FTS5 query matching the items that have any of `tokens`: each quoted as a string (its
// quotes doubled, though the encoding leaves none), joined by OR. Empty when there is none.
std::string fts_query(const std::vector<std::string>& tokens) {
  std::string out;
  for (const std::string& token : tokens) {
    if (!out.empty()) out += " OR ";
    out += '"';
    for (char ch : token) {
      if (ch == '"') out += '"';
      out += ch;
    }
    out += '"';
  }
  return out;
}

// A search reads the postings of its tokens and ranks every item they match; in a long chat a
// common term ("order" in a shop's support chat) matches thousands. So the tokens no item has
// are dropped, and the commonest ones while the others match more than this many items: the
// rarest token always stays. The commonest terms weigh least in BM25, and the items that have
// them with a rarer term are still found by it.
constexpr std::int64_t kMaxRankedMatches = 1500;

// Returns how many items the kept tokens match at most (the sum of their counts).
Result<std::int64_t> keep_rarer_tokens(Connection& c, std::vector<std::string>& tokens) {
  auto s = c.prepare("SELECT doc FROM recall_vocab WHERE term = ?1");
  if (!s.ok()) return s.status();
  std::vector<std::pair<std::int64_t, std::string>> by_count;
  for (std::string& token : tokens) {
    s->bind(token);
    auto row = s->step();
    if (!row.ok()) return row.status();
    const std::int64_t docs = *row ? s->int64(0) : 0;
    if (docs > 0) by_count.emplace_back(docs, std::move(token));
  }
  std::sort(by_count.begin(), by_count.end());
  tokens.clear();
  std::int64_t matches = 0;
  for (auto& [docs, token] : by_count) {
    if (!tokens.empty() && matches + docs > kMaxRankedMatches) break;
    matches += docs;
    tokens.push_back(std::move(token));
  }
  return matches;
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
    LLMASSIST_RETURN_IF_ERROR(detail::check_chat_infos(infos));
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

  Result<Chat> update_chat(ChatId id, const ChatChange& change) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_chat_change(change));
    return write<Chat>([&](Connection& c) -> Result<Chat> {
      LLMASSIST_ASSIGN_OR_RETURN(Chat current, get_chat_in(c, id));
      detail::ChatUpdate update = detail::apply_chat_change(current, change, now_time());
      if (!update.changed) return current;
      const Chat& n = update.chat;
      auto s = c.prepare(
          "UPDATE chats SET title = ?2, notes = ?3, opted_out_at = ?4, updated_at = ?5 "
          "WHERE id = ?1");
      if (!s.ok()) return s.status();
      std::optional<std::int64_t> opted_out;
      if (n.opted_out_at) opted_out = to_millis(*n.opted_out_at);
      LLMASSIST_RETURN_IF_ERROR(
          s->bind(id, n.title, n.notes, opted_out, to_millis(n.updated_at)).run());
      if (update.audit) LLMASSIST_RETURN_IF_ERROR(insert_audit(c, *update.audit).status());
      return n;
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
    LLMASSIST_RETURN_IF_ERROR(detail::check_inbound(messages));
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
    LLMASSIST_RETURN_IF_ERROR(detail::check_new_message(m));
    return write<Message>([&](Connection& c) -> Result<Message> {
      SessionId session = m.session_id;
      if (session == 0) {
        auto open = open_session_in(c, m.chat_id);
        if (!open.ok()) return open.status();
        session = open->id;
      }
      auto id = insert_message(c, m.chat_id, session, m.role, m.text, m.author, now_ms(), {},
                               m.transport_message_id, m.reply_id);
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
          "AND role NOT IN ('system', 'tool') ORDER BY id DESC LIMIT ?2",
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
    LLMASSIST_RETURN_IF_ERROR(detail::check_audit_event(event));
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
    LLMASSIST_ASSIGN_OR_RETURN(const auto range, detail::stats_range(q, now_ms()));
    return read<Stats>([&](Connection& c) { return stats_in(c, range.first, range.second); });
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
    LLMASSIST_RETURN_IF_ERROR(detail::check_setting(key, value));
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
      // The recall items of the messages about to go (before them: the index finds them).
      bool indexed = false;
      LLMASSIST_RETURN_IF_ERROR(delete_recall_items(
          c, n.memory_records, indexed,
          "SELECT id, chat_id, terms FROM recall_items WHERE message_id IN (SELECT id FROM "
          "messages WHERE created_at < ?1 AND id NOT IN (SELECT question_id FROM replies))",
          at));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.messages,
                                        "DELETE FROM messages WHERE created_at < ?1 AND id NOT IN "
                                        "(SELECT question_id FROM replies)",
                                        at));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.audit_events, "DELETE FROM audit WHERE at < ?1", at));
      // The closed sessions left empty, with their summary versions.
      static constexpr std::string_view kEmptySessions =
          "closed_at IS NOT NULL AND closed_at < ?1 "
          "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = sessions.id) "
          "AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.session_id = sessions.id)";
      static const std::string kSummaries = fmt::format(
          "DELETE FROM session_summaries WHERE session_id IN (SELECT id FROM sessions WHERE {})",
          kEmptySessions);
      static const std::string kSessions =
          fmt::format("DELETE FROM sessions WHERE {}", kEmptySessions);
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.memory_records, kSummaries, at));
      LLMASSIST_RETURN_IF_ERROR(deleted(c, n.sessions, kSessions, at));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.memory_records,
                  "DELETE FROM memory_jobs WHERE done_at IS NOT NULL AND done_at < ?1", at));
      if (indexed) LLMASSIST_RETURN_IF_ERROR(purge_deleted_tokens(c));
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
      // The memory's records: summary versions, recall items (and their index rows), jobs.
      bool indexed = false;
      LLMASSIST_RETURN_IF_ERROR(delete_recall_items(
          c, n.memory_records, indexed,
          "SELECT id, chat_id, terms FROM recall_items WHERE chat_id = ?1", chat));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.memory_records, "DELETE FROM session_summaries WHERE chat_id = ?1", chat));
      LLMASSIST_RETURN_IF_ERROR(
          deleted(c, n.memory_records, "DELETE FROM memory_jobs WHERE chat_id = ?1", chat));
      if (indexed) LLMASSIST_RETURN_IF_ERROR(purge_deleted_tokens(c));
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

  // ---- memory: summaries, background jobs, the recall index --------------------------------

  Result<std::vector<Message>> messages_after(SessionId session, MessageId after,
                                              int limit) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(limit));
    return read<std::vector<Message>>([&](Connection& c) -> Result<std::vector<Message>> {
      LLMASSIST_RETURN_IF_ERROR(session_chat_in(c, session).status());
      static const std::string sql = fmt::format(
          "SELECT {} FROM messages WHERE session_id = ?1 AND id > ?2 AND role NOT IN ('system', "
          "'tool') "
          "ORDER BY id LIMIT ?3",
          kMessageColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(session, after, limit);
      return collect<Message>(*s, read_message);
    });
  }

  Result<SessionSummary> add_session_summary(const NewSessionSummary& n) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_new_summary(n));
    return write<SessionSummary>([&](Connection& c) -> Result<SessionSummary> {
      LLMASSIST_ASSIGN_OR_RETURN(const ChatId chat, session_chat_in(c, n.session_id));
      if (n.job_id != 0) LLMASSIST_RETURN_IF_ERROR(held_job_in(c, n.job_id, n.worker).status());
      auto v = c.prepare(
          "SELECT coalesce(max(version), 0) FROM session_summaries WHERE session_id = ?1");
      if (!v.ok()) return v.status();
      v->bind(n.session_id);
      LLMASSIST_ASSIGN_OR_RETURN(
          const std::int64_t current,
          single<std::int64_t>(
              *v, [](const Statement& st) { return st.int64(0); }, "no row"));
      if (current != n.expected_version) {
        return aborted(fmt::format(
            "the summary of session {} is at version {}, not {}: another writer added one",
            n.session_id, current, n.expected_version));
      }
      SessionSummary out;
      out.session_id = n.session_id;
      out.chat_id = chat;
      out.version = n.expected_version + 1;
      out.content = n.content;
      out.last_message_id = n.last_message_id;
      out.created_at = now_time();
      auto ins = c.prepare(
          "INSERT INTO session_summaries (session_id, chat_id, version, content, "
          "last_message_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      if (!ins.ok()) return ins.status();
      LLMASSIST_RETURN_IF_ERROR(ins->bind(out.session_id, chat, out.version, out.content,
                                          out.last_message_id, to_millis(out.created_at))
                                    .run());
      out.id = c.last_insert_id();
      auto up = c.prepare("UPDATE sessions SET summary = ?2, summary_upto = ?3 WHERE id = ?1");
      if (!up.ok()) return up.status();
      LLMASSIST_RETURN_IF_ERROR(up->bind(n.session_id, n.content, n.last_message_id).run());
      if (n.job_id != 0) LLMASSIST_RETURN_IF_ERROR(finish_job_in(c, n.job_id, std::nullopt));
      return out;
    });
  }

  Result<SessionSummary> latest_session_summary(SessionId session) override {
    return read<SessionSummary>([&](Connection& c) -> Result<SessionSummary> {
      static const std::string sql = fmt::format(
          "SELECT {} FROM session_summaries WHERE session_id = ?1 ORDER BY version DESC LIMIT 1",
          kSummaryColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(session);
      return single<SessionSummary>(
          *s, read_summary, [&] { return fmt::format("session {} has no summary", session); });
    });
  }

  Result<std::vector<SessionSummary>> list_session_summaries(SessionId session) override {
    return read<std::vector<SessionSummary>>(
        [&](Connection& c) -> Result<std::vector<SessionSummary>> {
          static const std::string sql =
              fmt::format("SELECT {} FROM session_summaries WHERE session_id = ?1 ORDER BY version",
                          kSummaryColumns);
          auto s = c.prepare(sql);
          if (!s.ok()) return s.status();
          s->bind(session);
          return collect<SessionSummary>(*s, read_summary);
        });
  }

  Result<MemoryJob> enqueue_job(const NewMemoryJob& job) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_new_job(job));
    return write<MemoryJob>([&](Connection& c) -> Result<MemoryJob> {
      static const std::string find =
          fmt::format("SELECT {} FROM memory_jobs WHERE key = ?1 AND done_at IS NULL", kJobColumns);
      auto s = c.prepare(find);
      if (!s.ok()) return s.status();
      s->bind(job.key);
      auto row = s->step();
      if (!row.ok()) return row.status();
      if (*row) return read_job(*s);
      const std::int64_t now = now_ms();
      const std::int64_t due = job.not_before ? to_millis(*job.not_before) : now;
      auto ins = c.prepare(
          "INSERT INTO memory_jobs (kind, key, chat_id, payload, next_attempt_at, created_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      if (!ins.ok()) return ins.status();
      LLMASSIST_RETURN_IF_ERROR(
          ins->bind(job.kind, job.key, job.chat_id, job.payload, due, now).run());
      return get_job_in(c, c.last_insert_id());
    });
  }

  Result<std::vector<MemoryJob>> claim_jobs(const JobClaim& claim) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_job_claim(claim));
    // Most looks find nothing due: a read, which takes no lock from writers, says so first.
    JobClaim probe = claim;
    probe.limit = 1;
    LLMASSIST_ASSIGN_OR_RETURN(auto due, read<std::vector<MemoryJob>>([&](Connection& c) {
                                 return claimable_jobs(c, probe, now_ms());
                               }));
    if (due.empty()) return std::vector<MemoryJob>{};
    return write<std::vector<MemoryJob>>([&](Connection& c) -> Result<std::vector<MemoryJob>> {
      const std::int64_t now = now_ms();
      LLMASSIST_ASSIGN_OR_RETURN(auto jobs, claimable_jobs(c, claim, now));
      auto u = c.prepare(
          "UPDATE memory_jobs SET attempts = attempts + 1, claimed_by = ?2, lease_until = ?3 "
          "WHERE id = ?1");
      if (!u.ok()) return u.status();
      const std::int64_t until = now + claim.lease.count();
      for (MemoryJob& j : jobs) {
        LLMASSIST_RETURN_IF_ERROR(u->bind(j.id, claim.worker, until).run());
        ++j.attempts;
        j.claimed_by = claim.worker;
        j.lease_until = detail::from_millis(until);
      }
      return jobs;
    });
  }

  Status extend_job_lease(JobId id, std::string_view worker,
                          std::chrono::milliseconds lease) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_job_lease(lease));
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_RETURN_IF_ERROR(held_job_in(c, id, worker).status());
      auto u = c.prepare("UPDATE memory_jobs SET lease_until = ?2 WHERE id = ?1");
      if (!u.ok()) return u.status();
      return u->bind(id, now_ms() + lease.count()).run();
    });
  }

  Status finish_job(JobId id, std::string_view worker) override {
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_RETURN_IF_ERROR(held_job_in(c, id, worker).status());
      return finish_job_in(c, id, std::nullopt);
    });
  }

  Status retry_job(JobId id, std::string_view worker, const JobRetry& retry) override {
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the job's error", retry.error));
    return write_status([&](Connection& c) -> Status {
      LLMASSIST_RETURN_IF_ERROR(held_job_in(c, id, worker).status());
      if (retry.give_up) return finish_job_in(c, id, retry.error);
      auto u = c.prepare(
          "UPDATE memory_jobs SET claimed_by = '', lease_until = NULL, next_attempt_at = ?2, "
          "last_error = ?3 WHERE id = ?1");
      if (!u.ok()) return u.status();
      return u->bind(id, to_millis(retry.next_attempt_at), retry.error).run();
    });
  }

  Result<MemoryJob> get_job(JobId id) override {
    return read<MemoryJob>([&](Connection& c) { return get_job_in(c, id); });
  }

  Result<std::vector<MemoryJob>> list_jobs(std::string_view kind, bool include_done,
                                           int limit) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(limit));
    return read<std::vector<MemoryJob>>([&](Connection& c) -> Result<std::vector<MemoryJob>> {
      static const std::string sql = fmt::format(
          "SELECT {} FROM memory_jobs WHERE (?1 = '' OR kind = ?1) "
          "AND (?2 = 1 OR done_at IS NULL) ORDER BY id DESC LIMIT ?3",
          kJobColumns);
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      s->bind(kind, include_done ? 1 : 0, limit);
      return collect<MemoryJob>(*s, read_job);
    });
  }

  Status add_recall_items(std::span<const RecallItem> items) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_recall_items(items));
    if (items.empty()) return Status();
    return write_status([&](Connection& c) -> Status {
      auto ins = c.prepare(
          "INSERT INTO recall_items (chat_id, session_id, kind, key, message_id, text, terms, "
          "vector, vector_model, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
          "ON CONFLICT (chat_id, key) DO NOTHING");
      if (!ins.ok()) return ins.status();
      auto fts = c.prepare("INSERT INTO recall_fts (rowid, tokens) VALUES (?1, ?2)");
      if (!fts.ok()) return fts.status();
      const std::int64_t now = now_ms();
      for (const RecallItem& item : items) {
        const std::int64_t at = item.created_at == Timestamp{} ? now : to_millis(item.created_at);
        const std::string_view model =
            item.vector.empty() ? std::string_view("") : std::string_view(item.vector_model);
        LLMASSIST_RETURN_IF_ERROR(ins->bind(item.chat_id, item.session_id, item.kind, item.key,
                                            item.message_id, item.text, item.terms, item.vector,
                                            model, at)
                                      .run());
        if (c.changes() == 0) continue;  // the chat has the key: already indexed
        const std::string document = fts_document(item.chat_id, item.terms);
        if (document.empty()) continue;
        LLMASSIST_RETURN_IF_ERROR(fts->bind(c.last_insert_id(), document).run());
      }
      return Status();
    });
  }

  Result<std::vector<RecallHit>> search_recall_terms(const TermQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_term_query(q));
    std::vector<std::string> tokens = fts_tokens(q.chat_id, q.terms);
    if (tokens.empty()) return std::vector<RecallHit>{};
    return read<std::vector<RecallHit>>([&](Connection& c) -> Result<std::vector<RecallHit>> {
      LLMASSIST_ASSIGN_OR_RETURN(const std::int64_t matches, keep_rarer_tokens(c, tokens));
      if (tokens.empty()) return std::vector<RecallHit>{};
      const std::string match = fts_query(tokens);
      // FTS5 ranks its matches alone, then only the best rows are read. The chat_id test is a
      // second fence: the tokens already name the chat. Items from `before_message_id` on (the
      // window) are left out after the ranking: when they took places of the best, the search
      // runs again over every match.
      static const std::string sql = fmt::format(
          "SELECT {}, s.score FROM (SELECT rowid AS id, -bm25(recall_fts) AS score "
          "FROM recall_fts WHERE recall_fts MATCH ?1 ORDER BY bm25(recall_fts), rowid DESC "
          "LIMIT ?4) s JOIN recall_items i ON i.id = s.id WHERE i.chat_id = ?2 "
          "AND (?3 = 0 OR i.message_id < ?3) ORDER BY s.score DESC, i.id DESC LIMIT ?5",
          prefixed_recall_columns("i."));
      auto s = c.prepare(sql);
      if (!s.ok()) return s.status();
      const auto run = [&](std::int64_t ranked) -> Result<std::vector<RecallHit>> {
        s->bind(match, q.chat_id, q.before_message_id, ranked, q.limit);
        return collect_checked<RecallHit>(*s, [](const Statement& st) -> Result<RecallHit> {
          RecallHit hit;
          LLMASSIST_ASSIGN_OR_RETURN(hit.item, read_recall(st));
          hit.score = st.real(11);
          return hit;
        });
      };
      const std::int64_t ranked = static_cast<std::int64_t>(q.limit) + 64;
      LLMASSIST_ASSIGN_OR_RETURN(auto hits, run(ranked));
      if (static_cast<int>(hits.size()) < q.limit && matches > ranked) return run(-1);
      return hits;
    });
  }

  Result<std::vector<RecallHit>> search_recall_vectors(const VectorQuery& q) override {
    LLMASSIST_ASSIGN_OR_RETURN(const double query_norm, detail::check_vector_query(q));
    return read<std::vector<RecallHit>>([&](Connection& c) -> Result<std::vector<RecallHit>> {
      auto s = c.prepare(
          "SELECT id, vector FROM recall_items WHERE chat_id = ?1 AND vector_model = ?2 "
          "AND (?3 = 0 OR message_id < ?3)");
      if (!s.ok()) return s.status();
      s->bind(q.chat_id, q.model, q.before_message_id);
      std::vector<std::pair<double, RecallItemId>> scored;
      while (true) {
        auto row = s->step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        LLMASSIST_ASSIGN_OR_RETURN(const std::vector<float> v, s->floats(1));
        if (v.size() != q.vector.size()) continue;  // made with another dimension
        if (auto score = detail::cosine_similarity(q.vector, query_norm, v))
          scored.emplace_back(*score, s->int64(0));
      }
      // Most similar first; of equals, the newer.
      const auto better = [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second > b.second;
      };
      const std::size_t k = std::min(scored.size(), static_cast<std::size_t>(q.limit));
      std::partial_sort(scored.begin(), scored.begin() + static_cast<long>(k), scored.end(),
                        better);
      std::vector<RecallHit> out;
      out.reserve(k);
      for (std::size_t i = 0; i < k; ++i) {
        RecallHit hit;
        LLMASSIST_ASSIGN_OR_RETURN(hit.item, get_recall_in(c, scored[i].second));
        hit.score = scored[i].first;
        out.push_back(std::move(hit));
      }
      return out;
    });
  }

  Result<std::vector<RecallItem>> recall_items_without_vector(std::string_view model,
                                                              int limit) override {
    if (model.empty()) return invalid_argument("the backlog of which model: none given");
    LLMASSIST_RETURN_IF_ERROR(check_limit(limit));
    return read<std::vector<RecallItem>>([&](Connection& c) -> Result<std::vector<RecallItem>> {
      // Three ranges of the (vector_model, id) index: never embedded, then the models that sort
      // before `model` and after it. Each is read in order, so a backlog of nothing costs three
      // seeks however many items have their vector.
      static const std::array<std::string, 3> kSql = {
          fmt::format("SELECT {} FROM recall_items WHERE vector_model = '' ORDER BY id LIMIT ?2",
                      kRecallColumns),
          fmt::format("SELECT {} FROM recall_items WHERE vector_model > '' AND vector_model < ?1 "
                      "ORDER BY vector_model, id LIMIT ?2",
                      kRecallColumns),
          fmt::format("SELECT {} FROM recall_items WHERE vector_model > ?1 "
                      "ORDER BY vector_model, id LIMIT ?2",
                      kRecallColumns)};
      std::vector<RecallItem> out;
      for (const std::string& sql : kSql) {
        const int left = limit - static_cast<int>(out.size());
        if (left == 0) break;
        auto s = c.prepare(sql);
        if (!s.ok()) return s.status();
        s->bind(model, left);
        LLMASSIST_ASSIGN_OR_RETURN(auto rows, collect_checked<RecallItem>(*s, read_recall));
        for (RecallItem& r : rows) out.push_back(std::move(r));
      }
      return out;
    });
  }

  Status set_recall_vectors(std::span<const std::pair<RecallItemId, std::vector<float>>> vectors,
                            std::string_view model) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_recall_vectors(vectors, model));
    if (vectors.empty()) return Status();
    return write_status([&](Connection& c) -> Status {
      auto u = c.prepare("UPDATE recall_items SET vector = ?2, vector_model = ?3 WHERE id = ?1");
      if (!u.ok()) return u.status();
      for (const auto& [id, v] : vectors) LLMASSIST_RETURN_IF_ERROR(u->bind(id, v, model).run());
      return Status();
    });
  }

  Result<std::int64_t> count_recall_items(ChatId chat) override {
    return read<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
      auto s = c.prepare("SELECT count(*) FROM recall_items WHERE ?1 = 0 OR chat_id = ?1");
      if (!s.ok()) return s.status();
      s->bind(chat);
      return single<std::int64_t>(
          *s, [](const Statement& st) { return st.int64(0); }, "no row");
    });
  }

  Result<std::vector<std::vector<float>>> cached_embeddings(
      std::string_view model, std::span<const std::string> digests) override {
    return read<std::vector<std::vector<float>>>(
        [&](Connection& c) -> Result<std::vector<std::vector<float>>> {
          auto s = c.prepare("SELECT vector FROM embedding_cache WHERE model = ?1 AND digest = ?2");
          if (!s.ok()) return s.status();
          std::vector<std::vector<float>> out;
          out.reserve(digests.size());
          for (const std::string& digest : digests) {
            s->bind(model, digest);
            auto row = s->step();
            if (!row.ok()) return row.status();
            if (!*row) {
              out.emplace_back();
              continue;
            }
            LLMASSIST_ASSIGN_OR_RETURN(auto v, s->floats(0));
            out.push_back(std::move(v));
          }
          return out;
        });
  }

  Status cache_embeddings(
      std::string_view model,
      std::span<const std::pair<std::string, std::vector<float>>> entries) override {
    LLMASSIST_RETURN_IF_ERROR(detail::check_cached_embeddings(model, entries));
    if (entries.empty()) return Status();
    return write_status([&](Connection& c) -> Status {
      auto s = c.prepare(
          "INSERT INTO embedding_cache (model, digest, vector, created_at) "
          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (model, digest) DO UPDATE SET "
          "vector = excluded.vector, created_at = excluded.created_at");
      if (!s.ok()) return s.status();
      const std::int64_t now = now_ms();
      for (const auto& [digest, v] : entries) {
        LLMASSIST_RETURN_IF_ERROR(s->bind(model, digest, v, now).run());
      }
      return Status();
    });
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

  // ---- the memory's statements inside transactions -----------------------------------------

  // The chat of session `id`; kNotFound when there is none.
  Result<ChatId> session_chat_in(Connection& c, SessionId id) {
    auto s = c.prepare("SELECT chat_id FROM sessions WHERE id = ?1");
    if (!s.ok()) return s.status();
    s->bind(id);
    return single<ChatId>(
        *s, [](const Statement& st) { return st.int64(0); },
        [&] { return fmt::format("no session {}", id); });
  }

  Result<MemoryJob> get_job_in(Connection& c, JobId id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM memory_jobs WHERE id = ?1", kJobColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(id);
    return single<MemoryJob>(*s, read_job, [&] { return fmt::format("no job {}", id); });
  }

  // The job, when `worker` holds it (its claim, even one whose lease ran out while nobody took
  // it); kAborted when it is done or someone else's or nobody's.
  Result<MemoryJob> held_job_in(Connection& c, JobId id, std::string_view worker) {
    if (worker.empty()) return invalid_argument("which worker holds the job: none given");
    LLMASSIST_ASSIGN_OR_RETURN(MemoryJob job, get_job_in(c, id));
    LLMASSIST_RETURN_IF_ERROR(detail::check_job_held(job, worker));
    return job;
  }

  // Marks the job done and releases its claim; `error`, when given, is kept as last_error.
  Status finish_job_in(Connection& c, JobId id, std::optional<std::string_view> error) {
    auto u = c.prepare(
        "UPDATE memory_jobs SET done_at = ?2, claimed_by = '', lease_until = NULL, "
        "last_error = coalesce(?3, last_error) WHERE id = ?1");
    if (!u.ok()) return u.status();
    return u->bind(id, now_ms(), error).run();
  }

  // The jobs `claim` may take now, oldest due first: one query per kind on the due index.
  Result<std::vector<MemoryJob>> claimable_jobs(Connection& c, const JobClaim& claim,
                                                std::int64_t now) {
    static const std::string sql = fmt::format(
        "SELECT {} FROM memory_jobs WHERE done_at IS NULL AND next_attempt_at <= ?1 "
        "AND (?2 = '' OR kind = ?2) AND (claimed_by = '' OR coalesce(lease_until, 0) <= ?1) "
        "ORDER BY next_attempt_at, id LIMIT ?3",
        kJobColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    static const std::vector<std::string> kAny = {""};
    const auto& kinds = claim.kinds.empty() ? kAny : claim.kinds;
    std::vector<MemoryJob> out;
    for (const std::string& kind : kinds) {
      s->bind(now, kind, claim.limit);
      LLMASSIST_ASSIGN_OR_RETURN(auto rows, collect<MemoryJob>(*s, read_job));
      for (MemoryJob& j : rows) out.push_back(std::move(j));
    }
    if (kinds.size() > 1) {
      const auto earlier = [](const MemoryJob& a, const MemoryJob& b) {
        return a.next_attempt_at != b.next_attempt_at ? a.next_attempt_at < b.next_attempt_at
                                                      : a.id < b.id;
      };
      const auto same = [](const MemoryJob& a, const MemoryJob& b) { return a.id == b.id; };
      std::sort(out.begin(), out.end(), earlier);
      out.erase(std::unique(out.begin(), out.end(), same), out.end());
      if (out.size() > static_cast<std::size_t>(claim.limit)) {
        out.erase(out.begin() + claim.limit, out.end());
      }
    }
    return out;
  }

  static std::string prefixed_recall_columns(std::string_view prefix) {
    std::string out;
    for (std::string_view column : split_terms(kRecallColumns)) {
      if (!out.empty()) out += ' ';
      out += prefix;
      out += column;
    }
    return out;
  }

  Result<RecallItem> get_recall_in(Connection& c, RecallItemId id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM recall_items WHERE id = ?1", kRecallColumns);
    auto s = c.prepare(sql);
    if (!s.ok()) return s.status();
    s->bind(id);
    auto row = s->step();
    if (!row.ok()) return row.status();
    if (!*row) return not_found(fmt::format("no recall item {}", id));
    return read_recall(*s);
  }

  // Deletes the recall items `select_sql` names (it yields id, chat_id, terms) and their rows of
  // the full-text index; adds them to `count`, and sets `indexed` when an index row went.
  template <typename... Args>
  static Status delete_recall_items(Connection& c, std::int64_t& count, bool& indexed,
                                    std::string_view select_sql, const Args&... args) {
    struct Doomed {
      RecallItemId id;
      std::string document;
    };
    std::vector<Doomed> doomed;
    {
      auto s = c.prepare(select_sql);
      if (!s.ok()) return s.status();
      s->bind(args...);
      LLMASSIST_ASSIGN_OR_RETURN(
          doomed, collect<Doomed>(*s, [](const Statement& st) {
            return Doomed{st.int64(0), fts_document(st.int64(1), st.text(2))};
          }));
    }
    if (doomed.empty()) return Status();
    // A contentless FTS5 table forgets a row when told the text it indexed.
    auto fts =
        c.prepare("INSERT INTO recall_fts (recall_fts, rowid, tokens) VALUES ('delete', ?1, ?2)");
    if (!fts.ok()) return fts.status();
    auto del = c.prepare("DELETE FROM recall_items WHERE id = ?1");
    if (!del.ok()) return del.status();
    for (const Doomed& d : doomed) {
      if (!d.document.empty()) {
        LLMASSIST_RETURN_IF_ERROR(fts->bind(d.id, d.document).run());
        indexed = true;
      }
      LLMASSIST_RETURN_IF_ERROR(del->bind(d.id).run());
      count += c.changes();
    }
    return Status();
  }

  // After rows left the full-text index: FTS5 deletes by adding markers, and the deleted tokens
  // stay in the older segments until those are merged. Merging every segment into one drops
  // them, and secure_delete zeroes the pages the old segments freed. Its cost is that of the
  // whole index, not of the chat (SQLite 3.42's secure-delete option would make it the chat's).
  static Status purge_deleted_tokens(Connection& c) {
    return c.run("INSERT INTO recall_fts (recall_fts) VALUES ('optimize')");
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
        "sent_at = ?19, actions = ?20 WHERE id = ?1";
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
               to_millis(r.updated_at), ms(r.generated_at), ms(r.decided_at), ms(r.sent_at),
               detail::reply_actions_json(r))
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
    out.response_time = detail::summarize_latencies(std::move(response).value());
    auto wait = durations(
        "SELECT decided_at - generated_at FROM replies WHERE decided_at >= ?1 "
        "AND decided_at < ?2 AND generated_at IS NOT NULL AND decided_at >= generated_at");
    if (!wait.ok()) return wait.status();
    out.moderation_wait = detail::summarize_latencies(std::move(wait).value());
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
