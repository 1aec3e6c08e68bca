#include "support/memory_store.h"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "llmassist/reply_lifecycle.h"

namespace llmassist::testing {
namespace {

bool contains_no_case(std::string_view text, std::string_view part) {
  auto low = [](unsigned char c) { return static_cast<char>(std::tolower(c)); };
  return std::search(text.begin(), text.end(), part.begin(), part.end(),
                     [&](char a, char b) { return low(a) == low(b); }) != text.end();
}

Status check_limit(int limit) {
  if (limit < 1 || limit > 1000) return invalid_argument("limit must be between 1 and 1000");
  return Status();
}

class MemoryStore final : public MessageStore {
 public:
  explicit MemoryStore(std::shared_ptr<Clock> clock) : clock_(std::move(clock)) {}

  Result<Chat> upsert_chat(const ChatInfo& info) override {
    if (info.channel.empty() || info.external_id.empty()) {
      return invalid_argument("a chat needs a channel and an external id");
    }
    std::lock_guard lock(mu_);
    for (auto& [id, c] : chats_) {
      if (c.channel != info.channel || c.external_id != info.external_id) continue;
      const bool changed = (!info.title.empty() && info.title != c.title) ||
                           (!info.username.empty() && info.username != c.username);
      if (changed) {
        if (!info.title.empty()) c.title = info.title;
        if (!info.username.empty()) c.username = info.username;
        c.updated_at = clock_->now();
        changed_locked();
      }
      return c;
    }
    Chat c;
    c.id = static_cast<ChatId>(chats_.size()) + 1;
    c.channel = info.channel;
    c.external_id = info.external_id;
    c.title = info.title;
    c.username = info.username;
    c.created_at = c.updated_at = clock_->now();
    chats_[c.id] = c;
    changed_locked();
    return c;
  }

  Result<Chat> get_chat(ChatId id) override {
    std::lock_guard lock(mu_);
    return chat_locked(id);
  }

  Result<Chat> find_chat(std::string_view channel, std::string_view external_id) override {
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : chats_) {
      if (c.channel == channel && c.external_id == external_id) return c;
    }
    return not_found("no such chat");
  }

  Result<std::vector<Chat>> list_chats(const ChatQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    std::lock_guard lock(mu_);
    std::vector<Chat> out;
    for (auto it = chats_.rbegin(); it != chats_.rend(); ++it) {
      const Chat& c = it->second;
      if (q.mode && c.mode != *q.mode) continue;
      if (q.before_id != 0 && c.id >= q.before_id) continue;
      if (!q.search.empty() && !contains_no_case(c.title, q.search) &&
          !contains_no_case(c.username, q.search) && !contains_no_case(c.external_id, q.search)) {
        continue;
      }
      out.push_back(c);
      if (out.size() == static_cast<std::size_t>(q.limit)) break;
    }
    return out;
  }

  Status set_chat_mode(ChatId id, ChatMode mode, std::string_view actor) override {
    std::lock_guard lock(mu_);
    auto it = chats_.find(id);
    if (it == chats_.end()) return not_found("no such chat");
    if (it->second.mode == mode) return Status();
    AuditEvent e;
    e.actor = std::string(actor);
    e.action = mode == ChatMode::kOperator ? "handoff" : "handback";
    e.chat_id = id;
    e.before = std::string(to_string(it->second.mode));
    e.after = std::string(to_string(mode));
    it->second.mode = mode;
    it->second.updated_at = clock_->now();
    audit_locked(std::move(e));
    changed_locked();
    return Status();
  }

  Status set_chat_blocked(ChatId id, bool blocked) override {
    std::lock_guard lock(mu_);
    auto it = chats_.find(id);
    if (it == chats_.end()) return not_found("no such chat");
    it->second.blocked = blocked;
    it->second.updated_at = clock_->now();
    changed_locked();
    return Status();
  }

  Result<Session> open_session(ChatId chat) override {
    std::lock_guard lock(mu_);
    return open_locked(chat);
  }

  Result<Session> restart_session(ChatId chat) override {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : sessions_) {
      if (s.chat_id == chat && !s.closed_at) s.closed_at = clock_->now();
    }
    return open_locked(chat);
  }

  Result<Session> get_session(SessionId id) override {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return not_found("no such session");
    return it->second;
  }

  Status close_session(SessionId id) override {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return not_found("no such session");
    if (!it->second.closed_at) it->second.closed_at = clock_->now();
    changed_locked();
    return Status();
  }

  Status set_session_summary(SessionId id, std::string_view summary, MessageId upto) override {
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the summary", summary));
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return not_found("no such session");
    it->second.summary = std::string(summary);
    it->second.summary_upto = upto;
    changed_locked();
    return Status();
  }

  Result<std::vector<InboundResult>> append_inbound(
      std::span<const InboundMessage> messages) override {
    for (const auto& m : messages) {
      if (m.chat_id <= 0) return invalid_argument("an inbound message needs a chat id");
      LLMASSIST_RETURN_IF_ERROR(check_text_size("the message text", m.text));
    }
    std::lock_guard lock(mu_);
    // All or nothing: work on copies, keep them when every message went in.
    auto sessions = sessions_;
    auto messages_copy = messages_;
    auto replies = replies_;
    std::vector<InboundResult> out;
    for (const auto& m : messages) {
      auto r = inbound_locked(m);
      if (!r.ok()) {
        sessions_ = std::move(sessions);
        messages_ = std::move(messages_copy);
        replies_ = std::move(replies);
        return r.status();
      }
      out.push_back(std::move(r).value());
    }
    changed_locked();
    return out;
  }

  Result<Message> append_message(const NewMessage& m) override {
    if (m.chat_id <= 0) return invalid_argument("a message needs a chat id");
    LLMASSIST_RETURN_IF_ERROR(check_text_size("the message text", m.text));
    std::lock_guard lock(mu_);
    SessionId session = m.session_id;
    if (session == 0) {
      LLMASSIST_ASSIGN_OR_RETURN(auto open, open_locked(m.chat_id));
      session = open.id;
    }
    Message out = add_message_locked(m.chat_id, session, m.role, m.text, m.author, clock_->now(),
                                     "", m.transport_message_id, m.reply_id);
    changed_locked();
    return out;
  }

  Result<Message> get_message(MessageId id) override {
    std::lock_guard lock(mu_);
    auto it = messages_.find(id);
    if (it == messages_.end()) return not_found("no such message");
    return it->second;
  }

  Result<std::vector<Message>> recent_messages(SessionId session, int count) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(count));
    std::lock_guard lock(mu_);
    std::vector<Message> out;
    for (auto it = messages_.rbegin(); it != messages_.rend(); ++it) {
      if (it->second.session_id != session) continue;
      out.push_back(it->second);
      if (out.size() == static_cast<std::size_t>(count)) break;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

  Result<std::vector<Message>> chat_history(ChatId chat, const HistoryQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    std::lock_guard lock(mu_);
    std::vector<Message> out;
    for (auto it = messages_.rbegin(); it != messages_.rend(); ++it) {
      const Message& m = it->second;
      if (m.chat_id != chat || (q.before_id != 0 && m.id >= q.before_id)) continue;
      if (!q.search.empty() && !contains_no_case(m.text, q.search)) continue;
      out.push_back(m);
      if (out.size() == static_cast<std::size_t>(q.limit)) break;
    }
    return out;
  }

  Result<Reply> create_reply(const NewReply& n) override {
    LLMASSIST_RETURN_IF_ERROR(check_new_reply(n));
    std::lock_guard lock(mu_);
    SessionId session = n.session_id;
    if (session == 0) {
      LLMASSIST_ASSIGN_OR_RETURN(auto open, open_locked(n.chat_id));
      session = open.id;
    }
    const Timestamp now = clock_->now();
    Reply r = make_reply(n, session, now);
    r.id = static_cast<ReplyId>(replies_.size()) + 1;
    replies_[r.id] = r;
    if (auto e = make_reply_audit(n, r.id, now)) audit_locked(std::move(*e));
    changed_locked();
    return r;
  }

  Result<Reply> get_reply(ReplyId id) override {
    std::lock_guard lock(mu_);
    return reply_locked(id);
  }

  Result<std::vector<Reply>> list_replies(const ReplyQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    std::lock_guard lock(mu_);
    std::vector<Reply> out;
    auto take = [&](const Reply& r) {
      if (q.status && r.status != *q.status) return true;
      if (q.chat_id && r.chat_id != *q.chat_id) return true;
      out.push_back(r);
      return out.size() < static_cast<std::size_t>(q.limit);
    };
    if (q.oldest_first) {
      for (auto it = replies_.upper_bound(q.after_id); it != replies_.end(); ++it) {
        if (!take(it->second)) break;
      }
    } else {
      for (auto it = replies_.rbegin(); it != replies_.rend(); ++it) {
        if (q.before_id != 0 && it->first >= q.before_id) continue;
        if (!take(it->second)) break;
      }
    }
    return out;
  }

  Result<std::vector<Reply>> claim_replies(const ClaimRequest& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_claim_request(q));
    std::lock_guard lock(mu_);
    return claim_locked(q);
  }

  Status release_claim(ReplyId id, std::string_view worker) override {
    std::lock_guard lock(mu_);
    LLMASSIST_ASSIGN_OR_RETURN(const Reply current, reply_locked(id));
    LLMASSIST_ASSIGN_OR_RETURN(auto released, apply_release(current, worker, clock_->now()));
    if (released) {
      replies_[id] = std::move(*released);
      changed_locked();
    }
    return Status();
  }

  Result<Reply> transition_reply(ReplyId id, const ReplyChange& change) override {
    LLMASSIST_RETURN_IF_ERROR(check_reply_change(change));
    std::lock_guard lock(mu_);
    LLMASSIST_ASSIGN_OR_RETURN(const Reply current, reply_locked(id));
    LLMASSIST_ASSIGN_OR_RETURN(ReplyUpdate update,
                               apply_reply_change(current, change, clock_->now()));
    if (update.message) {
      const ReplyLogEntry& m = *update.message;
      add_message_locked(m.chat_id, m.session_id, m.role, m.text, m.author, m.created_at, "",
                         m.transport_message_id, m.reply_id);
    }
    if (update.audit) audit_locked(std::move(*update.audit));
    replies_[id] = update.reply;
    changed_locked();
    return update.reply;
  }

  Result<AuditEvent> append_audit(const AuditEvent& event) override {
    if (event.actor.empty() || event.action.empty()) {
      return invalid_argument("an audit event needs an actor and an action");
    }
    std::lock_guard lock(mu_);
    AuditEvent e = event;
    if (e.at == Timestamp{}) e.at = clock_->now();
    const AuditEvent& stored = audit_locked(std::move(e));
    changed_locked();
    return stored;
  }

  Result<std::vector<AuditEvent>> list_audit(const AuditQuery& q) override {
    LLMASSIST_RETURN_IF_ERROR(check_limit(q.limit));
    std::lock_guard lock(mu_);
    std::vector<AuditEvent> out;
    for (auto it = audit_.rbegin(); it != audit_.rend(); ++it) {
      const AuditEvent& e = *it;
      if ((q.reply_id && e.reply_id != *q.reply_id) || (q.chat_id && e.chat_id != *q.chat_id) ||
          (!q.actor.empty() && e.actor != q.actor) || (q.before_id != 0 && e.id >= q.before_id)) {
        continue;
      }
      out.push_back(e);
      if (out.size() == static_cast<std::size_t>(q.limit)) break;
    }
    return out;
  }

  std::uint64_t wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, timeout, [&] { return generation_ != seen; });
    return generation_;
  }

 private:
  void changed_locked() {
    ++generation_;
    changed_.notify_all();
  }

  Result<Chat> chat_locked(ChatId id) const {
    auto it = chats_.find(id);
    if (it == chats_.end()) return not_found("no such chat");
    return it->second;
  }

  Result<Reply> reply_locked(ReplyId id) const {
    auto it = replies_.find(id);
    if (it == replies_.end()) return not_found("no such reply");
    return it->second;
  }

  Result<Session> open_locked(ChatId chat) {
    for (const auto& [id, s] : sessions_) {
      if (s.chat_id == chat && !s.closed_at) return s;
    }
    LLMASSIST_RETURN_IF_ERROR(chat_locked(chat).status());
    Session s;
    s.id = static_cast<SessionId>(sessions_.size()) + 1;
    s.chat_id = chat;
    s.started_at = clock_->now();
    sessions_[s.id] = s;
    changed_locked();
    return s;
  }

  Message add_message_locked(ChatId chat, SessionId session, Role role, std::string text,
                             std::string author, Timestamp at, std::string dedup,
                             std::string transport_id, ReplyId reply) {
    Message m;
    m.id = static_cast<MessageId>(messages_.size()) + 1;
    m.chat_id = chat;
    m.session_id = session;
    m.role = role;
    m.text = std::move(text);
    m.author = std::move(author);
    m.created_at = at;
    m.dedup_key = std::move(dedup);
    m.transport_message_id = std::move(transport_id);
    m.reply_id = reply;
    messages_[m.id] = m;
    return m;
  }

  const AuditEvent& audit_locked(AuditEvent e) {
    e.id = static_cast<AuditId>(audit_.size()) + 1;
    if (e.at == Timestamp{}) e.at = clock_->now();
    audit_.push_back(std::move(e));
    return audit_.back();
  }

  Result<InboundResult> inbound_locked(const InboundMessage& m) {
    InboundResult out;
    if (!m.dedup_key.empty()) {
      for (const auto& [id, stored] : messages_) {
        if (stored.dedup_key != m.dedup_key) continue;
        out.message = stored;
        out.duplicate = true;
        for (const auto& [rid, r] : replies_) {
          if (r.question_id == id) {
            out.reply_id = rid;
            break;
          }
        }
        return out;
      }
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto session, open_locked(m.chat_id));
    const Timestamp now = clock_->now();
    out.message =
        add_message_locked(m.chat_id, session.id, Role::kUser, m.text, m.author,
                           m.sent_at.value_or(now), m.dedup_key, m.transport_message_id, 0);
    if (m.open_reply) {
      NewReply n;
      n.chat_id = m.chat_id;
      n.question_id = out.message.id;
      Reply r = make_reply(n, session.id, now);
      r.id = static_cast<ReplyId>(replies_.size()) + 1;
      replies_[r.id] = r;
      out.reply_id = r.id;
    }
    return out;
  }

  Result<std::vector<Reply>> claim_locked(const ClaimRequest& q) {
    const Timestamp now = clock_->now();
    std::vector<Reply> out;
    if (q.reply_id) {
      LLMASSIST_ASSIGN_OR_RETURN(const Reply current, reply_locked(*q.reply_id));
      LLMASSIST_ASSIGN_OR_RETURN(Reply claimed, apply_claim(current, q, now));
      replies_[claimed.id] = claimed;
      out.push_back(std::move(claimed));
      changed_locked();
      return out;
    }
    for (const auto& [id, r] : replies_) {
      if (out.size() == static_cast<std::size_t>(q.limit)) break;
      if (!claim_is_open(r, q, now)) continue;
      if (!q.chat_ids.empty() &&
          std::find(q.chat_ids.begin(), q.chat_ids.end(), r.chat_id) == q.chat_ids.end()) {
        continue;
      }
      if (!q.channel.empty() && chats_.at(r.chat_id).channel != q.channel) continue;
      bool held = false;
      for (auto e = replies_.begin(); e != replies_.end() && e->first < id && !held; ++e) {
        held = e->second.chat_id == r.chat_id && holds_back(e->second.status, q);
      }
      if (held) continue;
      LLMASSIST_ASSIGN_OR_RETURN(Reply claimed, apply_claim(r, q, now));
      out.push_back(std::move(claimed));
    }
    for (const Reply& r : out) replies_[r.id] = r;
    if (!out.empty()) changed_locked();
    return out;
  }

  // The embedding cache (MessageStore::cached_embeddings), keyed by (model, digest).
 public:
  Result<std::vector<std::vector<float>>> cached_embeddings(
      std::string_view model, std::span<const std::string> digests) override {
    std::lock_guard lock(mu_);
    std::vector<std::vector<float>> out;
    for (const auto& d : digests) {
      const auto it = embeddings_.find({std::string(model), d});
      out.push_back(it == embeddings_.end() ? std::vector<float>{} : it->second);
    }
    return out;
  }
  Status cache_embeddings(
      std::string_view model,
      std::span<const std::pair<std::string, std::vector<float>>> entries) override {
    std::lock_guard lock(mu_);
    for (const auto& [digest, vector] : entries) {
      embeddings_[{std::string(model), digest}] = vector;
    }
    return Status();
  }

 private:
  const std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::uint64_t generation_ = 1;
  std::map<ChatId, Chat> chats_;
  std::map<SessionId, Session> sessions_;
  std::map<MessageId, Message> messages_;
  std::map<ReplyId, Reply> replies_;
  std::vector<AuditEvent> audit_;
  std::map<std::pair<std::string, std::string>, std::vector<float>> embeddings_;
};

}  // namespace

std::unique_ptr<MessageStore> make_memory_store(std::shared_ptr<Clock> clock) {
  return std::make_unique<MemoryStore>(std::move(clock));
}

}  // namespace llmassist::testing
