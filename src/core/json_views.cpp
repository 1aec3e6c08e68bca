#include "core/json_views.h"

#include <fmt/format.h>

#include <ctime>

namespace llmassist::detail {

using nlohmann::json;

namespace {

json opt_time(const std::optional<Timestamp>& t) { return t ? json(iso(*t)) : json(nullptr); }

}  // namespace

std::string iso(Timestamp t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", std::string_view(buf, n), ((ms.count() % 1000) + 1000) % 1000);
}

json to_json(const Chat& c) {
  return {{"id", c.id},
          {"channel", c.channel},
          {"external_id", c.external_id},
          {"title", c.title},
          {"username", c.username},
          {"mode", to_string(c.mode)},
          {"blocked", c.blocked},
          {"opted_out_at", opt_time(c.opted_out_at)},
          {"notes", c.notes},
          {"created_at", iso(c.created_at)},
          {"updated_at", iso(c.updated_at)}};
}

json to_json(const Message& m) {
  return {{"id", m.id},
          {"chat_id", m.chat_id},
          {"session_id", m.session_id},
          {"role", to_string(m.role)},
          {"text", m.text},
          {"author", m.author},
          {"created_at", iso(m.created_at)},
          {"reply_id", m.reply_id}};
}

json to_json(const Reply& r) {
  // The files by the names the user sees (where they lie on the server is not shown).
  json attachments = json::array();
  for (const Attachment& a : r.attachments) {
    attachments.push_back(
        {{"file_name", a.file_name}, {"mime_type", a.mime_type}, {"caption", a.caption}});
  }
  json deferred = json::array();
  for (const DeferredToolCall& c : r.deferred_calls) {
    deferred.push_back({{"call_id", c.call_id}, {"tool", c.tool}, {"arguments", c.arguments}});
  }
  return {{"id", r.id},
          {"chat_id", r.chat_id},
          {"session_id", r.session_id},
          {"question_id", r.question_id},
          {"status", to_string(r.status)},
          {"draft_text", r.draft_text},
          {"final_text", r.final_text},
          {"author", r.author},
          {"provider", r.provider},
          {"error", r.error},
          {"generation_attempts", r.generation_attempts},
          {"send_attempts", r.send_attempts},
          {"version", r.version},
          {"claimed_by", r.claimed_by},
          {"lease_until", opt_time(r.lease_until)},
          {"created_at", iso(r.created_at)},
          {"updated_at", iso(r.updated_at)},
          {"generated_at", opt_time(r.generated_at)},
          {"decided_at", opt_time(r.decided_at)},
          {"sent_at", opt_time(r.sent_at)},
          {"attachments", std::move(attachments)},
          {"deferred_calls", std::move(deferred)}};
}

json to_json(const PendingItem& item) {
  json history = json::array();
  for (const auto& m : item.history) history.push_back(to_json(m));
  return {{"reply", to_json(item.reply)}, {"chat", to_json(item.chat)}, {"history", history}};
}

json to_json(const AuditEvent& e) {
  return {{"id", e.id},         {"at", iso(e.at)},        {"actor", e.actor},
          {"action", e.action}, {"reply_id", e.reply_id}, {"chat_id", e.chat_id},
          {"before", e.before}, {"after", e.after},       {"detail", e.detail}};
}

json to_json(const LatencySummary& l) {
  const auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return {{"count", l.count},
          {"p50_ms", opt(l.p50_ms)},
          {"p95_ms", opt(l.p95_ms)},
          {"p99_ms", opt(l.p99_ms)}};
}

json to_json(const Stats& s) {
  json by_status = json::object();
  for (std::size_t i = 0; i < s.replies_by_status.size(); ++i) {
    by_status[std::string(to_string(static_cast<ReplyStatus>(i)))] = s.replies_by_status[i];
  }
  json days = json::array();
  for (const auto& d : s.days) {
    days.push_back({{"day", d.day},
                    {"messages", d.messages},
                    {"user_messages", d.user_messages},
                    {"active_users", d.active_users},
                    {"replies_sent", d.replies_sent}});
  }
  json providers = json::array();
  for (const auto& p : s.providers) {
    providers.push_back({{"provider", p.provider}, {"replies", p.replies}});
  }
  return {{"replies_by_status", by_status},
          {"approved", s.approved},
          {"edited", s.edited},
          {"rejected", s.rejected},
          {"failed", s.failed},
          {"response_time", to_json(s.response_time)},
          {"moderation_wait", to_json(s.moderation_wait)},
          {"providers", providers},
          {"fallback_replies", s.fallback_replies},
          {"days", days}};
}

json to_json(const Account& a) {
  return {{"id", a.id},
          {"name", a.name},
          {"role", to_string(a.role)},
          {"disabled", a.disabled},
          {"created_at", iso(a.created_at)},
          {"last_sign_in", opt_time(a.last_sign_in)}};
}

json to_json(const ApiToken& t) {
  return {{"id", t.id},
          {"account", t.account},
          {"label", t.label},
          {"created_at", iso(t.created_at)},
          {"last_used", opt_time(t.last_used)},
          {"revoked_at", opt_time(t.revoked_at)}};
}

}  // namespace llmassist::detail
