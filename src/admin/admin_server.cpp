// The admin server: the routes of docs/rest-api.md over the store, the moderation queue and the
// accounts; sign-in with throttling; the live event stream; /metrics; the page's assets.
#include "llmassist/admin/admin_server.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <set>
#include <thread>

#include "admin/admin_support.h"
#include "admin/api_router.h"
#include "admin/web_assets.h"
#include "core/draft_memory.h"
#include "core/json_views.h"
#include "core/listen_address.h"
#include "llmassist/core/store_moderation_queue.h"
#include "llmassist/runtime_settings.h"
#include "llmassist/version.h"

namespace llmassist {

using detail::Access;
using detail::Call;
using detail::EventHub;
using detail::Field;
using detail::HandlerResult;
using detail::MetricsInput;
using detail::prometheus_text;
using detail::Reply200;
using detail::Route;
using detail::SignInThrottle;
using detail::to_json;
using detail::to_json_array;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr std::string_view kComponent = "admin";
constexpr std::string_view kCookie = "llmassist_session";
// Behind https: a cookie only this host, over https, with Path=/, can set (RFC 6265bis).
constexpr std::string_view kSecureCookie = "__Host-llmassist_session";
constexpr std::string_view kApiChannel = "api";

HandlerResult ok(json body, int status = 200) {
  return std::optional<Reply200>(Reply200{std::move(body), status});
}

// The response was written by the handler itself.
HandlerResult written() { return std::optional<Reply200>(); }

// {"items": [...], "next": cursor or null}: `next` is the last item's id when the page is full.
template <typename T>
json page(const std::vector<T>& items, std::int64_t limit) {
  json next = nullptr;
  if (!items.empty() && static_cast<std::int64_t>(items.size()) >= limit) {
    if constexpr (std::is_same_v<T, PendingItem>) {
      next = items.back().reply.id;
    } else {
      next = items.back().id;
    }
  }
  return {{"items", to_json_array(items)}, {"next", next}};
}

// A page's size ("limit", 1..200, default 50) and where it starts ("cursor": the `next` of the
// page before; 0 for the first).
struct Paging {
  int limit = 50;
  std::int64_t cursor = 0;
};

Result<Paging> paging(const Call& c) {
  LLMASSIST_ASSIGN_OR_RETURN(auto limit, c.int_query("limit", 50, 1, 200));
  LLMASSIST_ASSIGN_OR_RETURN(auto cursor, c.int_query("cursor", 0, 0, INT64_MAX));
  return Paging{static_cast<int>(limit), cursor};
}

// The value of cookie `name` in a Cookie header.
std::string cookie_value(const std::string& header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string_view part(header.data() + pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return {};
}

// "2026-11-21" -> midnight UTC of that day.
Result<Timestamp> parse_day(const std::string& text, const char* name) {
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (end == nullptr || *end != '\0') {
    return invalid_argument(fmt::format("{}: expected a date as YYYY-MM-DD", name));
  }
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

std::string day_of(Timestamp t) { return detail::iso(t).substr(0, 10); }

// A JSON string or number as text ("chat_id": 42 or "42").
Result<std::string> id_text(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return invalid_argument(fmt::format("{}: required", name));
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_number_integer()) {
    text = std::to_string(it->get<std::int64_t>());
  } else {
    return invalid_argument(fmt::format("{}: expected a string or a whole number", name));
  }
  if (text.empty() || text.size() > 128) {
    return invalid_argument(fmt::format("{}: 1 to 128 characters", name));
  }
  return text;
}

Result<std::string> required_text(const json& body, const char* name) {
  LLMASSIST_ASSIGN_OR_RETURN(auto text, detail::string_field(body, name, true));
  if (text->find_first_not_of(" \t\r\n") == std::string::npos) {
    return invalid_argument(fmt::format("{}: must not be empty", name));
  }
  return std::move(*text);
}

// Only this server's scripts, styles and connections: text put into the page as markup by
// mistake still could not run, and no other site can frame the page.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'";

// The page and its assets, open to all (they hold no data), from the library itself.
void serve_web_page(detail::http::Server& server) {
  for (const detail::WebAsset& asset : detail::web_assets()) {
    server.route(
        "GET", asset.path, [&asset](const detail::http::Request&, detail::http::Response& res) {
          res.set_header("Content-Security-Policy", kContentSecurityPolicy);
          res.set_header("Cache-Control", "no-cache");
          res.set_content(asset.body.data(), asset.body.size(), std::string(asset.content_type));
        });
  }
}

// The Host values answered by default (AdminServerOptions::allowed_hosts); empty: any.
std::vector<std::string> default_allowed_hosts(const std::string& host, int port) {
  if (host.empty() || host == "0.0.0.0" || host == "::") return {};
  const bool v6 = host.find(':') != std::string::npos;
  std::vector<std::string> names = {
      fmt::format("{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port)};
  if (host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost") {
    for (const char* name : {"localhost", "127.0.0.1", "[::1]"}) {
      names.push_back(fmt::format("{}:{}", name, port));
    }
  }
  // A browser leaves out the default port.
  if (port == 80) {
    for (std::size_t i = 0, n = names.size(); i < n; ++i) {
      names.push_back(names[i].substr(0, names[i].rfind(':')));
    }
  }
  return names;
}

}  // namespace

struct AdminServer::Impl {
  AdminServerParts parts;
  AdminServerOptions options;
  std::shared_ptr<Clock> clock;
  std::shared_ptr<Logger> logger;
  std::string host;
  int port = 0;
  std::unique_ptr<detail::http::Server> server;
  std::unique_ptr<detail::ApiRouter> router;
  std::thread watcher;
  SignInThrottle throttle;
  detail::TrustedProxies proxies;
  EventHub hub;
  std::atomic<bool> stopping{false};
  std::mutex queue_mu;
  json queue_snapshot;  // the last `queue` event's data
  std::mutex stop_mu;   // with stop_cv: the watcher's pauses end at stop()
  std::mutex unreadable_mu;
  std::set<AuditId> unreadable_logged;  // "draft" events whose detail was logged as unreadable
  // POST /v1/chat/handle's channel, and the server's own Assistant serving it (when no
  // Assistant beside it does).
  std::shared_ptr<ApiTransport> api;
  std::unique_ptr<Assistant> own_assistant;
  std::condition_variable stop_cv;

  Impl(AdminServerParts p, AdminServerOptions o)
      : parts(std::move(p)),
        options(std::move(o)),
        clock(options.clock ? options.clock : system_clock()),
        logger(options.logger ? options.logger : stderr_logger()),
        throttle(options.sign_in_failures_allowed, clock) {}

  void log(LogLevel level, const std::string& message) const {
    logger->log(level, kComponent, message);
  }

  // ---- who is asking -------------------------------------------------------------------------

  Result<detail::Caller> authenticate(const detail::http::Request& req) const {
    const std::string authorization = req.get_header_value("Authorization");
    if (!authorization.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      if (authorization.rfind(kBearer, 0) != 0) {
        return unauthenticated("the Authorization header must be \"Bearer <token>\"");
      }
      LLMASSIST_ASSIGN_OR_RETURN(Account account, parts.accounts->authenticate_token(
                                                      std::string_view(authorization).substr(7)));
      return detail::Caller{std::move(account), false, {}, {}};
    }
    const std::string secret = cookie_value(req.get_header_value("Cookie"), cookie_name());
    if (secret.empty()) return unauthenticated("sign in, or send an API token");
    LLMASSIST_ASSIGN_OR_RETURN(WebSession session, parts.accounts->find_session(secret));
    return detail::Caller{std::move(session.account), true, std::move(session.csrf_token), secret};
  }

  std::string_view cookie_name() const { return options.secure_cookie ? kSecureCookie : kCookie; }

  std::string session_cookie(const std::string& value, std::int64_t max_age) const {
    return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", cookie_name(),
                       value, max_age, options.secure_cookie ? "; Secure" : "");
  }

  // The account store failed (not the caller): the details go to the log, the caller learns
  // only that signing in is not possible now.
  Status store_failure(const Status& status, std::string_view what) const {
    log(LogLevel::kError, fmt::format("{}: {}", what, status.to_string()));
    return unavailable("signing in is not possible now; the server's log says why");
  }

  HandlerResult sign_in(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto name, detail::string_field(c.body, "name", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto password, detail::string_field(c.body, "password", true));
    const std::string address =
        proxies.client(c.req.remote_addr, c.req.get_header_value("X-Forwarded-For"));
    if (const milliseconds wait = throttle.wait(*name, address); wait.count() > 0) {
      return resource_exhausted(fmt::format("too many failed sign-ins; try again in {} s",
                                            (wait.count() + 999) / 1000))
          .with_retry_after(wait);
    }
    auto account = parts.accounts->verify_password(*name, *password);
    if (!account.ok()) {
      if (account.status().code() != StatusCode::kUnauthenticated) {
        return store_failure(account.status(), "sign-in");
      }
      throttle.failed(*name, address);
      log(LogLevel::kWarning, fmt::format("failed sign-in from {}", address));
      return account.status();
    }
    throttle.succeeded(*name, address);
    auto made = parts.accounts->create_session(account->name, options.session_lifetime);
    if (!made.ok()) return store_failure(made.status(), "sign-in: a new session");
    WebSession& session = *made;
    c.res.set_header("Set-Cookie",
                     session_cookie(session.secret, options.session_lifetime.count()));
    log(LogLevel::kInfo, fmt::format("{} signed in from {}", account->name, address));
    return ok({{"account", to_json(session.account)}, {"csrf_token", session.csrf_token}});
  }

  HandlerResult sign_out(Call& c) {
    if (c.caller->by_session) {
      LLMASSIST_RETURN_IF_ERROR(parts.accounts->end_session(c.caller->session));
    }
    c.res.set_header("Set-Cookie", session_cookie("", 0));
    return ok({{"signed_out", true}});
  }

  // ---- moderation ----------------------------------------------------------------------------

  HandlerResult queue(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(const Paging paged, paging(c));
    LLMASSIST_ASSIGN_OR_RETURN(auto history, c.int_query("history", 10, 0, 100));
    PendingQuery q;
    q.limit = paged.limit;
    q.history = static_cast<int>(history);
    q.after_id = paged.cursor;
    LLMASSIST_ASSIGN_OR_RETURN(auto items, parts.moderation->list_pending(q));
    return ok(page(items, paged.limit));
  }

  HandlerResult replies(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(const Paging paged, paging(c));
    LLMASSIST_ASSIGN_OR_RETURN(auto chat, c.int_query("chat_id", 0, 0, INT64_MAX));
    ReplyQuery q;
    q.oldest_first = false;
    q.before_id = paged.cursor;
    q.limit = paged.limit;
    if (chat > 0) q.chat_id = chat;
    if (const std::string status = c.query("status"); !status.empty()) {
      q.status = parse_reply_status(status);
      if (!q.status) return invalid_argument(fmt::format("status: no status '{}'", status));
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto items, parts.store->list_replies(q));
    return ok(page(items, paged.limit));
  }

  HandlerResult reply(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto history, c.int_query("history", 20, 0, 100));
    LLMASSIST_ASSIGN_OR_RETURN(auto item, parts.moderation->get(id, static_cast<int>(history)));
    json body = to_json(item);
    LLMASSIST_ASSIGN_OR_RETURN(auto used, detail::draft_memory(*parts.store, id));
    if (used.unreadable != 0) log_unreadable(id, used.unreadable);
    body["memory"] = std::move(used.memory);
    return ok(std::move(body));
  }

  // Once per event: the page may ask for the reply again and again.
  void log_unreadable(ReplyId reply, AuditId event) {
    {
      std::lock_guard lock(unreadable_mu);
      if (unreadable_logged.size() >= 4096) unreadable_logged.clear();
      if (!unreadable_logged.insert(event).second) return;
    }
    log(LogLevel::kWarning,
        fmt::format("reply {}: the memory of its draft (audit event {}) is not a JSON object; "
                    "shown as none",
                    reply, event));
  }

  HandlerResult claim(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto minutes, detail::int_field(c.body, "minutes", false));
    if (minutes && (*minutes < 1 || *minutes > 60)) {
      return invalid_argument("minutes: from 1 to 60");
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto r,
                               parts.moderation->claim(id, c.caller->account.name,
                                                       std::chrono::minutes(minutes.value_or(5))));
    return ok(to_json(r));
  }

  HandlerResult release(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_RETURN_IF_ERROR(parts.moderation->release(id, c.caller->account.name));
    LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.store->get_reply(id));
    return ok(to_json(r));
  }

  HandlerResult approve(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.moderation->approve(id, c.caller->account.name));
    return ok(to_json(r));
  }

  HandlerResult edit(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto text, required_text(c.body, "text"));
    LLMASSIST_ASSIGN_OR_RETURN(auto r,
                               parts.moderation->edit(id, c.caller->account.name, std::move(text)));
    return ok(to_json(r));
  }

  HandlerResult reject(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto reason, detail::string_field(c.body, "reason", false));
    LLMASSIST_ASSIGN_OR_RETURN(
        auto r, parts.moderation->reject(id, c.caller->account.name, reason.value_or("")));
    return ok(to_json(r));
  }

  // ---- chats ---------------------------------------------------------------------------------

  HandlerResult chats(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(const Paging paged, paging(c));
    ChatQuery q;
    q.limit = paged.limit;
    q.before_id = paged.cursor;
    q.search = c.query("search");
    if (const std::string mode = c.query("mode"); !mode.empty()) {
      q.mode = parse_chat_mode(mode);
      if (!q.mode) return invalid_argument("mode: expected bot or operator");
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto items, parts.store->list_chats(q));
    return ok(page(items, paged.limit));
  }

  HandlerResult chat(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto found, parts.store->get_chat(id));
    return ok(to_json(found));
  }

  // Erasure of one person's data (docs/rest-api.md): the chat and everything of it.
  HandlerResult erase_chat(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(ErasureCounts n, erase_chat_data(*parts.store, id, c.actor()));
    log(LogLevel::kInfo, fmt::format("{} erased chat {}", c.actor(), id));
    return ok({{"chat_id", id},
               {"erased",
                {{"chats", n.chats},
                 {"sessions", n.sessions},
                 {"messages", n.messages},
                 {"replies", n.replies},
                 {"audit_events", n.audit_events}}},
               {"reclaimed", n.reclaimed}});
  }

  HandlerResult messages(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(const Paging paged, paging(c));
    LLMASSIST_RETURN_IF_ERROR(parts.store->get_chat(id).status());
    HistoryQuery q;
    q.limit = paged.limit;
    q.before_id = paged.cursor;
    q.search = c.query("search");
    LLMASSIST_ASSIGN_OR_RETURN(auto items, parts.store->chat_history(id, q));
    return ok(page(items, paged.limit));
  }

  HandlerResult chat_reply(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto text, required_text(c.body, "text"));
    LLMASSIST_ASSIGN_OR_RETURN(auto found, parts.store->get_chat(id));
    if (found.mode != ChatMode::kOperator) {
      return failed_precondition(
          fmt::format("chat {} is answered by the assistant; hand it off first", id));
    }
    if (found.blocked) {
      return failed_precondition(fmt::format("the user of chat {} blocked the bot", id));
    }
    NewReply r;
    r.chat_id = id;
    r.status = ReplyStatus::kApproved;
    r.final_text = std::move(text);
    r.author = c.caller->account.name;
    r.actor = c.actor();
    r.audit_action = "handoff_reply";
    LLMASSIST_ASSIGN_OR_RETURN(auto created, parts.store->create_reply(r));
    return ok(to_json(created));
  }

  // A contact's details: its title, an operator's notes, the opt-out (docs/rest-api.md).
  HandlerResult change_chat(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    ChatChange change;
    LLMASSIST_ASSIGN_OR_RETURN(change.title, detail::string_field(c.body, "title", false));
    LLMASSIST_ASSIGN_OR_RETURN(change.notes, detail::string_field(c.body, "notes", false));
    LLMASSIST_ASSIGN_OR_RETURN(change.opted_out, detail::bool_field(c.body, "opted_out"));
    change.actor = c.actor();
    LLMASSIST_ASSIGN_OR_RETURN(auto changed, parts.store->update_chat(id, change));
    return ok(to_json(changed));
  }

  // A new contact on a channel (or the one there is, its details refreshed), with notes.
  HandlerResult add_chat(Call& c) {
    ChatInfo info;
    LLMASSIST_ASSIGN_OR_RETURN(auto channel, detail::string_field(c.body, "channel", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto address, detail::string_field(c.body, "external_id", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto title, detail::string_field(c.body, "title", false));
    LLMASSIST_ASSIGN_OR_RETURN(auto notes, detail::string_field(c.body, "notes", false));
    if (*channel == "telegram" &&
        (address->empty() || address->size() > 20 ||
         address->find_first_not_of("-0123456789") != std::string::npos)) {
      return invalid_argument("a Telegram contact's external_id is its numeric user id");
    }
    info.channel = *channel;
    info.external_id = *address;
    info.title = title.value_or("");
    LLMASSIST_ASSIGN_OR_RETURN(Chat chat, parts.store->upsert_chat(info));
    if (notes) {
      ChatChange change;
      change.notes = *notes;
      change.actor = c.actor();
      LLMASSIST_ASSIGN_OR_RETURN(chat, parts.store->update_chat(chat.id, change));
    }
    log(LogLevel::kInfo,
        fmt::format("{} added the contact {} on {}", c.actor(), chat.id, chat.channel));
    return ok(to_json(chat));
  }

  HandlerResult set_mode(Call& c, ChatMode mode) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_RETURN_IF_ERROR(parts.store->set_chat_mode(id, mode, c.actor()));
    LLMASSIST_ASSIGN_OR_RETURN(auto found, parts.store->get_chat(id));
    return ok(to_json(found));
  }

  // ---- audit, statistics ---------------------------------------------------------------------

  HandlerResult audit(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(const Paging paged, paging(c));
    LLMASSIST_ASSIGN_OR_RETURN(auto reply_id, c.int_query("reply_id", 0, 0, INT64_MAX));
    LLMASSIST_ASSIGN_OR_RETURN(auto chat_id, c.int_query("chat_id", 0, 0, INT64_MAX));
    AuditQuery q;
    q.limit = paged.limit;
    q.before_id = paged.cursor;
    if (reply_id > 0) q.reply_id = reply_id;
    if (chat_id > 0) q.chat_id = chat_id;
    q.actor = c.query("actor");
    LLMASSIST_ASSIGN_OR_RETURN(auto items, parts.store->list_audit(q));
    return ok(page(items, paged.limit));
  }

  HandlerResult stats(Call& c) {
    const Timestamp now = clock->now();
    LLMASSIST_ASSIGN_OR_RETURN(Timestamp today, parse_day(day_of(now), "to"));
    Timestamp to = today;
    if (const std::string text = c.query("to"); !text.empty()) {
      LLMASSIST_ASSIGN_OR_RETURN(to, parse_day(text, "to"));
    }
    Timestamp from = to - std::chrono::hours(24 * 29);
    if (const std::string text = c.query("from"); !text.empty()) {
      LLMASSIST_ASSIGN_OR_RETURN(from, parse_day(text, "from"));
    }
    if (from > to) return invalid_argument("from: must not be after to");
    StatsQuery q;
    q.from = from;
    q.to = to + std::chrono::hours(24);
    auto stored = parts.store->stats(q);
    if (!stored.ok() && stored.status().code() == StatusCode::kUnimplemented) {
      return unimplemented("statistics: the message store keeps none (" +
                           stored.status().message() + ")");
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto s, std::move(stored));
    json body = to_json(s);
    body["from"] = day_of(from);
    body["to"] = day_of(to);
    return ok(std::move(body));
  }

  // ---- runtime settings --------------------------------------------------------------------

  HandlerResult settings(Call&) {
    LLMASSIST_ASSIGN_OR_RETURN(auto overrides, read_runtime_settings(*parts.store));
    const ModerationPolicy policy = overrides.policy.value_or(options.policy);
    return ok({{"policy",
                {{"value", policy == ModerationPolicy::kAuto ? "auto" : "review"},
                 {"overridden", overrides.policy.has_value()}}},
               {"system_prompt",
                {{"value", overrides.system_prompt.value_or(options.system_prompt)},
                 {"overridden", overrides.system_prompt.has_value()}}}});
  }

  HandlerResult change_settings(Call& c) {
    const std::pair<const char*, RuntimeSetting> known[] = {
        {"policy", RuntimeSetting::kPolicy}, {"system_prompt", RuntimeSetting::kSystemPrompt}};
    for (const auto& item : c.body.items()) {
      // Named, not a structured binding: clang 14 (the fuzz build) cannot capture one.
      const std::string& key = item.key();
      const json& value = item.value();
      const bool ours = std::any_of(std::begin(known), std::end(known),
                                    [&](const auto& k) { return key == k.first; });
      if (!ours) return invalid_argument(fmt::format("{}: no such setting", key.substr(0, 64)));
      if (!value.is_null() && !value.is_string()) {
        return invalid_argument(fmt::format("{}: expected a string, or null to clear it", key));
      }
    }
    // Checked first, all of them: a bad value changes nothing.
    for (const auto& [key, setting] : known) {
      if (!c.body.contains(key) || c.body[key].is_null()) continue;
      LLMASSIST_RETURN_IF_ERROR(check_runtime_setting(setting, c.body[key].get<std::string>()));
    }
    for (const auto& [key, setting] : known) {
      if (!c.body.contains(key)) continue;
      const json& value = c.body[key];
      LLMASSIST_RETURN_IF_ERROR(set_runtime_setting(
          *parts.store, setting,
          value.is_null() ? std::nullopt : std::optional<std::string>(value.get<std::string>()),
          c.actor()));
    }
    log(LogLevel::kInfo, fmt::format("{} changed the settings", c.caller->account.name));
    return settings(c);
  }

  // ---- live events ---------------------------------------------------------------------------

  // The stream holds no thread: the hub writes each event to it, the watcher pings it.
  HandlerResult events(Call& c) {
    const auto limit = static_cast<std::size_t>(std::max(1, options.max_event_streams));
    if (hub.streams() >= limit) {
      return unavailable("too many open event streams; try again later");
    }
    c.res.set_header("X-Accel-Buffering", "no");
    auto stream = c.res.stream("text/event-stream");
    const bool opened = hub.subscribe(stream, limit, [this] {
      std::lock_guard lock(queue_mu);
      return fmt::format("retry: 3000\nevent: queue\ndata: {}\n\n", queue_snapshot.dump());
    });
    if (!opened) stream->close();  // another stream took the last place meanwhile
    return written();
  }

  json current_queue() {
    PendingQuery q;
    q.limit = 1000;
    q.history = 0;
    auto items = parts.moderation->list_pending(q);
    if (!items.ok()) return nullptr;
    const Timestamp now = clock->now();
    json list = json::array();
    for (const auto& item : *items) {
      const Reply& r = item.reply;
      const bool held = !r.claimed_by.empty() && r.lease_until && *r.lease_until > now;
      // The version changes with every write to the reply: a new draft of the same reply, or a
      // claim taken again, is a change even when status and holder look as before.
      list.push_back({{"id", r.id},
                      {"chat_id", r.chat_id},
                      {"status", to_string(r.status)},
                      {"version", r.version},
                      {"claimed_by", held ? r.claimed_by : ""}});
    }
    return {{"pending", list.size()}, {"items", list}};
  }

  // Follows the store: a `queue` event when the drafts awaiting a decision change, a `change`
  // event on other commits; and delivers the API channel's approved answers. A burst of commits
  // is looked at once per kCoalesce, however many there are.
  void watch() {
    constexpr milliseconds kCoalesce{250};
    std::uint64_t seen = 0;
    bool dirty = false;
    auto last_look = std::chrono::steady_clock::time_point{};
    while (!stopping.load()) {
      const std::uint64_t generation = parts.store->wait_for_change(seen, milliseconds(500));
      if (stopping.load()) break;
      hub.ping(seconds(15));
      dirty = dirty || generation != seen;
      seen = generation;
      const auto since = std::chrono::steady_clock::now() - last_look;
      // Claims run out without a commit: look again now and then.
      if (!dirty && since < seconds(5)) continue;
      if (since < kCoalesce) {
        std::unique_lock lock(stop_mu);
        stop_cv.wait_for(lock, kCoalesce - since, [&] { return stopping.load(); });
        continue;
      }
      last_look = std::chrono::steady_clock::now();
      json snapshot = current_queue();
      if (snapshot.is_null()) continue;
      bool queue_changed = false;
      {
        std::lock_guard lock(queue_mu);
        if (snapshot != queue_snapshot) {
          queue_snapshot = snapshot;
          queue_changed = true;
        }
      }
      if (queue_changed) hub.publish("queue", snapshot);
      if (dirty) hub.publish("change", {{"generation", generation}});
      dirty = false;
    }
  }

  // ---- /metrics ------------------------------------------------------------------------------

  HandlerResult metrics(Call& c) {
    StatsQuery q;
    q.from = clock->now() - std::chrono::hours(24);
    auto s = parts.store->stats(q);
    // A store without statistics: the providers' and the assistant's figures still stand.
    if (!s.ok() && s.status().code() != StatusCode::kUnimplemented) return s.status();
    MetricsInput in;
    if (s.ok()) in.stats = &*s;
    std::vector<ProviderStats> providers;
    if (parts.chain) {
      providers = parts.chain->provider_stats();
      in.providers = &providers;
    }
    if (parts.assistant_stats) in.assistant = parts.assistant_stats();
    in.event_streams = static_cast<int>(hub.streams());
    c.res.set_content(prometheus_text(in), "text/plain; version=0.0.4; charset=utf-8");
    return written();
  }

  // ---- accounts and tokens -------------------------------------------------------------------

  HandlerResult accounts(Call&) {
    LLMASSIST_ASSIGN_OR_RETURN(auto list, parts.accounts->list_accounts());
    json items = json::array();
    for (const auto& a : list) items.push_back(to_json(a));
    return ok({{"items", items}, {"next", nullptr}});
  }

  static Result<AccountRole> role_field(const json& body, bool required) {
    LLMASSIST_ASSIGN_OR_RETURN(auto text, detail::string_field(body, "role", required));
    if (!text) return AccountRole::kViewer;
    auto role = parse_account_role(*text);
    if (!role) return invalid_argument("role: expected admin, operator or viewer");
    return *role;
  }

  HandlerResult add_account(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto name, detail::string_field(c.body, "name", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto password, detail::string_field(c.body, "password", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto role, role_field(c.body, true));
    LLMASSIST_ASSIGN_OR_RETURN(auto a, parts.accounts->create_account(*name, *password, role));
    log(LogLevel::kInfo, fmt::format("{} added the account {} ({})", c.caller->account.name, a.name,
                                     to_string(a.role)));
    return ok(to_json(a), 201);
  }

  HandlerResult change_account(Call& c) {
    const std::string name = c.param(0);
    LLMASSIST_RETURN_IF_ERROR(parts.accounts->get_account(name).status());
    LLMASSIST_ASSIGN_OR_RETURN(auto role, detail::string_field(c.body, "role", false));
    LLMASSIST_ASSIGN_OR_RETURN(auto password, detail::string_field(c.body, "password", false));
    LLMASSIST_ASSIGN_OR_RETURN(auto disabled, detail::bool_field(c.body, "disabled"));
    const bool self = name == c.caller->account.name;
    if (self && ((role && *role != "admin") || disabled.value_or(false))) {
      return failed_precondition("an admin cannot demote or disable their own account");
    }
    if (role) {
      LLMASSIST_ASSIGN_OR_RETURN(auto r, role_field(c.body, true));
      LLMASSIST_RETURN_IF_ERROR(parts.accounts->set_role(name, r));
    }
    if (password) LLMASSIST_RETURN_IF_ERROR(parts.accounts->set_password(name, *password));
    if (disabled) LLMASSIST_RETURN_IF_ERROR(parts.accounts->set_disabled(name, *disabled));
    log(LogLevel::kInfo, fmt::format("{} changed the account {}", c.caller->account.name, name));
    LLMASSIST_ASSIGN_OR_RETURN(auto a, parts.accounts->get_account(name));
    return ok(to_json(a));
  }

  HandlerResult delete_account(Call& c) {
    const std::string name = c.param(0);
    if (name == c.caller->account.name) {
      return failed_precondition("an admin cannot delete their own account");
    }
    LLMASSIST_RETURN_IF_ERROR(parts.accounts->delete_account(name));
    log(LogLevel::kInfo, fmt::format("{} deleted the account {}", c.caller->account.name, name));
    return ok({{"deleted", name}});
  }

  static bool is_admin(const Call& c) { return c.caller->account.role == AccountRole::kAdmin; }

  HandlerResult tokens(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(
        auto list, parts.accounts->list_tokens(is_admin(c) ? "" : c.caller->account.name));
    json items = json::array();
    for (const auto& t : list) items.push_back(to_json(t));
    return ok({{"items", items}, {"next", nullptr}});
  }

  HandlerResult add_token(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto label, detail::string_field(c.body, "label", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto account, detail::string_field(c.body, "account", false));
    std::string owner = c.caller->account.name;
    if (account && *account != owner) {
      if (!is_admin(c)) return permission_denied("only an admin makes tokens for others");
      owner = *account;
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto made, parts.accounts->create_token(owner, *label));
    json body = to_json(made.token);
    body["secret"] = made.secret;
    log(LogLevel::kInfo,
        fmt::format("{} made token {} for {}", c.caller->account.name, made.token.id, owner));
    return ok(std::move(body), 201);
  }

  HandlerResult revoke_token(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    if (!is_admin(c)) {
      LLMASSIST_ASSIGN_OR_RETURN(auto mine, parts.accounts->list_tokens(c.caller->account.name));
      const bool owned =
          std::any_of(mine.begin(), mine.end(), [id](const ApiToken& t) { return t.id == id; });
      if (!owned) return not_found(fmt::format("you have no token {}", id));
    }
    LLMASSIST_RETURN_IF_ERROR(parts.accounts->revoke_token(id));
    return ok({{"revoked", id}});
  }

  // ---- the original routes -------------------------------------------------------------------

  HandlerResult create(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto chat_id, detail::int_field(c.body, "chat_id", true));
    LLMASSIST_ASSIGN_OR_RETURN(auto text, required_text(c.body, "text"));
    LLMASSIST_ASSIGN_OR_RETURN(auto found, parts.store->get_chat(*chat_id));
    InboundMessage m;
    m.chat_id = found.id;
    m.text = std::move(text);
    m.author = found.title;
    m.open_reply = found.mode == ChatMode::kBot;
    LLMASSIST_ASSIGN_OR_RETURN(auto stored, append_inbound(*parts.store, m));
    json reply = nullptr;
    if (stored.reply_id != 0) {
      LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.store->get_reply(stored.reply_id));
      reply = to_json(r);
    }
    return ok({{"message", to_json(stored.message)}, {"reply", reply}}, 201);
  }

  HandlerResult repeat(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.store->get_reply(id));
    switch (r.status) {
      case ReplyStatus::kPending:
      case ReplyStatus::kFailed: {
        LLMASSIST_ASSIGN_OR_RETURN(auto rejected,
                                   parts.moderation->reject(id, c.caller->account.name, "repeat"));
        return ok(to_json(rejected));
      }
      case ReplyStatus::kSent:
      case ReplyStatus::kCancelled: {
        if (r.question_id == 0) {
          return failed_precondition(fmt::format("reply {} answers no question", id));
        }
        NewReply again;
        again.chat_id = r.chat_id;
        again.session_id = r.session_id;
        again.question_id = r.question_id;
        again.actor = c.actor();
        again.audit_action = "repeat";
        LLMASSIST_ASSIGN_OR_RETURN(auto created, parts.store->create_reply(again));
        return ok(to_json(created), 201);
      }
      default:
        return failed_precondition(
            fmt::format("reply {} is {}: it is being answered already", id, to_string(r.status)));
    }
  }

  HandlerResult update(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto id, c.id_param(0));
    LLMASSIST_ASSIGN_OR_RETURN(auto text, detail::string_field(c.body, "response_text", false));
    LLMASSIST_ASSIGN_OR_RETURN(auto status, detail::string_field(c.body, "status", false));
    if (!text && !status) return invalid_argument("give response_text, status, or both");
    if (text && text->find_first_not_of(" \t\r\n") == std::string::npos) {
      return invalid_argument("response_text: must not be empty");
    }
    const std::string& who = c.caller->account.name;
    if (!status) {
      LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.store->get_reply(id));
      if (r.status != ReplyStatus::kPending) {
        return failed_precondition(
            fmt::format("reply {} is {}; only a pending draft's text can change without a decision",
                        id, to_string(r.status)));
      }
      ReplyChange change;
      change.from = ReplyStatus::kPending;
      change.to = ReplyStatus::kPending;
      change.expected_version = r.version;
      change.draft_text = *text;
      change.actor = c.actor();
      change.audit_action = "update";
      LLMASSIST_ASSIGN_OR_RETURN(auto updated, parts.store->transition_reply(id, change));
      return ok(to_json(updated));
    }
    if (*status == "approved") {
      LLMASSIST_ASSIGN_OR_RETURN(auto r, text ? parts.moderation->edit(id, who, *text)
                                              : parts.moderation->approve(id, who));
      return ok(to_json(r));
    }
    if (*status == "rejected") {
      if (text) return invalid_argument("response_text: not with status rejected");
      LLMASSIST_ASSIGN_OR_RETURN(auto r, parts.moderation->reject(id, who, ""));
      return ok(to_json(r));
    }
    return invalid_argument("status: expected approved or rejected");
  }

  HandlerResult handle(Call& c) {
    LLMASSIST_ASSIGN_OR_RETURN(auto user, id_text(c.body, "user_id"));
    LLMASSIST_ASSIGN_OR_RETURN(auto external, id_text(c.body, "chat_id"));
    LLMASSIST_ASSIGN_OR_RETURN(auto text, required_text(c.body, "text"));
    if (!api) return unavailable("no language model is configured for /v1/chat/handle");
    // The question is stored here; the answer comes when the Assistant serving the channel has
    // drafted (and sent) it, on the transport's thread: no thread waits for it. The response is
    // written on the server's handler threads again.
    auto deferred = c.res.defer();
    api->ask({std::move(user), std::move(external), std::move(text)},
             [deferred](Result<ApiAnswer> answer) {
               deferred->run([deferred, answer = std::move(answer)] {
                 detail::http::Response res;
                 res.set_header("Cache-Control", "no-store");
                 if (!answer.ok()) {
                   detail::write_error(res, answer.status());
                 } else if (answer->reply_id == 0) {
                   detail::write_json(
                       res, {{"reply_id", nullptr}, {"status", "handoff"}, {"answer", ""}}, 200);
                 } else {
                   detail::write_json(res,
                                      {{"reply_id", answer->reply_id},
                                       {"status", to_string(answer->status)},
                                       {"answer", answer->answer},
                                       {"provider", answer->provider}},
                                      200);
                 }
                 deferred->complete(std::move(res));
               });
             });
    return written();
  }

  HandlerResult reset(Call& c) {
    const bool by_session = c.body.contains("session_id");
    if (by_session == c.body.contains("chat_id")) {
      return invalid_argument("give chat_id or session_id");
    }
    ChatId chat_id = 0;
    if (by_session) {
      LLMASSIST_ASSIGN_OR_RETURN(auto sid, detail::int_field(c.body, "session_id", true));
      LLMASSIST_ASSIGN_OR_RETURN(auto session, parts.store->get_session(*sid));
      if (session.closed_at) return failed_precondition(fmt::format("session {} is closed", *sid));
      chat_id = session.chat_id;
    } else {
      LLMASSIST_ASSIGN_OR_RETURN(auto external, id_text(c.body, "chat_id"));
      LLMASSIST_ASSIGN_OR_RETURN(auto found, parts.store->find_chat(kApiChannel, external));
      chat_id = found.id;
    }
    LLMASSIST_ASSIGN_OR_RETURN(auto session, parts.store->restart_session(chat_id));
    return ok({{"session_id", session.id}, {"chat_id", chat_id}});
  }

  HandlerResult health(Call&) {
    ChatQuery probe;
    probe.limit = 1;
    const Status store = parts.store->list_chats(probe).status();
    json providers = json::array();
    bool any_up = !parts.chain;
    if (parts.chain) {
      for (const auto& p : parts.chain->provider_stats()) {
        providers.push_back({{"name", p.name}, {"available", !p.circuit_open}});
        any_up = any_up || !p.circuit_open;
      }
    }
    json body = {{"status", !store.ok() ? "down"
                            : any_up    ? "ok"
                                        : "degraded"},
                 {"store", {{"ok", store.ok()}}},
                 {"providers", providers}};
    if (!store.ok()) body["store"]["error"] = to_string(store.code());
    return ok(std::move(body), store.ok() ? 200 : 503);
  }

  // ---- the route table -----------------------------------------------------------------------

  void add(const char* method, const char* path, Access access, const char* summary,
           HandlerResult (Impl::*handler)(Call&), std::vector<Field> body = {},
           std::vector<Field> query = {}) {
    router->add(Route{method, path, access, summary, std::move(query), std::move(body),
                      [this, handler](Call& c) { return (this->*handler)(c); }});
  }

  void routes() {
    using A = Access;
    const Field limit{"limit", "integer", false, "page size, 1..200 (default 50)"};
    const Field cursor{"cursor", "integer", false, "the `next` of the previous page"};
    const Field text{"text", "string", true, "the text"};
    add("POST", "/api/session", A::kOpen, "Sign in: sets the session cookie", &Impl::sign_in,
        {{"name", "string", true, "account name"}, {"password", "string", true, "password"}});
    add("GET", "/api/session", A::kViewer, "The signed-in account and its CSRF token",
        &Impl::session);
    add("DELETE", "/api/session", A::kViewer, "Sign out", &Impl::sign_out);
    add("GET", "/api/queue", A::kViewer, "Drafts awaiting a decision, oldest first", &Impl::queue,
        {}, {limit, cursor, {"history", "integer", false, "messages of history, 0..100"}});
    add("GET", "/api/replies", A::kViewer, "Replies, newest first", &Impl::replies, {},
        {limit,
         cursor,
         {"status", "string", false, "only this status"},
         {"chat_id", "integer", false, "only this chat"}});
    add("GET", "/api/replies/{id}", A::kViewer,
        "A reply with its chat, history and its draft's memory", &Impl::reply, {},
        {{"history", "integer", false, "messages of history, 0..100"}});
    add("POST", "/api/replies/{id}/claim", A::kOperator, "Hold a draft", &Impl::claim,
        {{"minutes", "integer", false, "how long, 1..60 (default 5)"}});
    add("DELETE", "/api/replies/{id}/claim", A::kOperator, "Give a claim up", &Impl::release);
    add("POST", "/api/replies/{id}/approve", A::kOperator, "The draft goes out as it is",
        &Impl::approve);
    add("POST", "/api/replies/{id}/edit", A::kOperator, "This text goes out instead", &Impl::edit,
        {text});
    add("POST", "/api/replies/{id}/reject", A::kOperator, "Discard the draft; draft again",
        &Impl::reject, {{"reason", "string", false, "for the audit log"}});
    add("GET", "/api/chats", A::kViewer, "Chats, newest first", &Impl::chats, {},
        {limit,
         cursor,
         {"mode", "string", false, "bot or operator"},
         {"search", "string", false, "in title, username, external id"}});
    add("POST", "/api/chats", A::kOperator, "A new contact (or the one there is, refreshed)",
        &Impl::add_chat,
        {{"channel", "string", true, "telegram, email, ..."},
         {"external_id", "string", true, "the channel's id: a Telegram user id, an address"},
         {"title", "string", false, "the contact's name"},
         {"notes", "string", false, "an operator's notes"}});
    add("GET", "/api/chats/{id}", A::kViewer, "A chat", &Impl::chat);
    add("PATCH", "/api/chats/{id}", A::kOperator, "A contact's name, notes or opt-out",
        &Impl::change_chat,
        {{"title", "string", false, "the contact's name"},
         {"notes", "string", false, "an operator's notes"},
         {"opted_out", "boolean", false, "true: nothing is sent there first any more"}});
    add("DELETE", "/api/chats/{id}", A::kAdmin,
        "Erase a chat: its messages, replies, sessions and audit events", &Impl::erase_chat);
    add("GET", "/api/chats/{id}/messages", A::kViewer, "A chat's messages, newest first",
        &Impl::messages, {}, {limit, cursor, {"search", "string", false, "in the text"}});
    add("POST", "/api/chats/{id}/reply", A::kOperator, "An operator's message to the chat",
        &Impl::chat_reply, {text});
    add("POST", "/api/chats/{id}/handoff", A::kOperator, "Operators answer the chat",
        &Impl::handoff);
    add("POST", "/api/chats/{id}/handback", A::kOperator, "The assistant answers the chat",
        &Impl::handback);
    add("GET", "/api/audit", A::kViewer, "Who decided what, newest first", &Impl::audit, {},
        {limit,
         cursor,
         {"reply_id", "integer", false, "one reply's"},
         {"chat_id", "integer", false, "one chat's"},
         {"actor", "string", false, "one actor's"}});
    add("GET", "/api/stats", A::kViewer, "Statistics for a range of days", &Impl::stats, {},
        {{"from", "string", false, "YYYY-MM-DD (default: 29 days before `to`)"},
         {"to", "string", false, "YYYY-MM-DD, inclusive (default: today)"}});
    add("GET", "/api/events", A::kViewer, "Live events (server-sent events)", &Impl::events);
    add("GET", "/metrics", A::kViewer, "Prometheus metrics", &Impl::metrics);
    add("GET", "/api/settings", A::kViewer, "The settings in force", &Impl::settings);
    add("PATCH", "/api/settings", A::kAdmin,
        "Override settings while the bot runs (null: back to the config file's)",
        &Impl::change_settings,
        {{"policy", "string", false, "auto or review"},
         {"system_prompt", "string", false, "the assistant's role"}});
    add("GET", "/api/accounts", A::kAdmin, "All accounts", &Impl::accounts);
    add("POST", "/api/accounts", A::kAdmin, "A new account", &Impl::add_account,
        {{"name", "string", true, "account name"},
         {"password", "string", true, "10 to 1024 bytes"},
         {"role", "string", true, "admin, operator or viewer"}});
    add("PATCH", "/api/accounts/{name}", A::kAdmin, "Change an account", &Impl::change_account,
        {{"role", "string", false, "admin, operator or viewer"},
         {"password", "string", false, "a new password"},
         {"disabled", "boolean", false, "disable or enable"}});
    add("DELETE", "/api/accounts/{name}", A::kAdmin, "Delete an account", &Impl::delete_account);
    add("GET", "/api/tokens", A::kViewer, "API tokens (yours; an admin: all)", &Impl::tokens);
    add("POST", "/api/tokens", A::kViewer, "A new API token; its secret is shown once",
        &Impl::add_token,
        {{"label", "string", true, "what it is for"},
         {"account", "string", false, "an admin: whose token"}});
    add("DELETE", "/api/tokens/{id}", A::kViewer, "Revoke a token", &Impl::revoke_token);
    add("POST", "/create", A::kOperator, "A new user message in a chat; the bot drafts an answer",
        &Impl::create, {{"chat_id", "integer", true, "the chat (as in /api/chats)"}, text});
    add("POST", "/repeat/{id}", A::kOperator, "Generate the answer again", &Impl::repeat);
    add("PATCH", "/update/{id}", A::kOperator, "Set the answer's text and/or status", &Impl::update,
        {{"response_text", "string", false, "the answer's text"},
         {"status", "string", false, "approved or rejected"}});
    add("POST", "/v1/chat/handle", A::kOperator, "The assistant's answer, synchronously",
        &Impl::handle,
        {{"user_id", "string", true, "the caller's user id"},
         {"chat_id", "string", true, "the caller's chat id"},
         text});
    add("POST", "/v1/chat/reset", A::kOperator, "A new session for a chat", &Impl::reset,
        {{"chat_id", "string", false, "the caller's chat id"},
         {"session_id", "integer", false, "or the session"}});
    add("GET", "/health", A::kOpen, "The store's and the providers' state", &Impl::health);
    add("GET", "/openapi.json", A::kOpen, "This document", &Impl::openapi);
  }

  HandlerResult session(Call& c) {
    return ok({{"account", to_json(c.caller->account)},
               {"csrf_token", c.caller->by_session ? c.caller->csrf_token : ""}});
  }
  HandlerResult handoff(Call& c) { return set_mode(c, ChatMode::kOperator); }
  HandlerResult handback(Call& c) { return set_mode(c, ChatMode::kBot); }
  HandlerResult openapi(Call&) {
    return ok(router->openapi("llmassist admin API", LLMASSIST_VERSION_STRING));
  }
};

Result<std::unique_ptr<AdminServer>> AdminServer::create(AdminServerParts parts,
                                                         AdminServerOptions options) {
  if (!parts.store || !parts.moderation || !parts.accounts) {
    return invalid_argument(
        "admin server: the store, the moderation queue and the accounts are "
        "required");
  }
  auto address = detail::parse_listen_address(options.listen, "admin server: listen");
  if (!address.ok()) return address.status();
  if (options.threads < 2) return invalid_argument("admin server: threads must be 2 or more");
  auto proxies = detail::TrustedProxies::parse(options.trusted_proxies);
  if (!proxies.ok()) return proxies.status().annotate("admin server");
  if (options.handle_timeout.count() <= 0) {
    return invalid_argument("admin server: handle_timeout must be positive");
  }
  auto impl = std::make_unique<Impl>(std::move(parts), std::move(options));
  impl->proxies = std::move(proxies).value();
  impl->api = impl->parts.api;
  if (!impl->api && impl->parts.llm && impl->parts.memory) {
    // No Assistant beside the server: one of its own serves the API channel.
    ApiTransportOptions to;
    to.store = impl->parts.store;
    to.timeout = impl->options.handle_timeout;
    to.logger = impl->logger;
    LLMASSIST_ASSIGN_OR_RETURN(impl->api, make_api_transport(std::move(to)));
    AssistantParts ap;
    ap.transport = impl->api;
    ap.store = impl->parts.store;
    ap.llm = impl->parts.llm;
    ap.memory = impl->parts.memory;
    AssistantOptions ao;
    ao.policy = impl->options.policy;
    ao.instance = "admin";
    ao.texts.human_button.clear();  // the API shows no buttons
    ao.clock = impl->clock;
    ao.logger = impl->logger;
    auto assistant = Assistant::create(std::move(ap), std::move(ao));
    if (!assistant.ok()) return assistant.status().annotate("admin server");
    impl->own_assistant = std::move(assistant).value();
  }
  impl->host = std::move(address->host);
  impl->port = address->port;
  Impl* raw = impl.get();
  impl->router = std::make_unique<detail::ApiRouter>(
      impl->logger, [raw](const detail::http::Request& req) { return raw->authenticate(req); });
  impl->routes();
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { stop(); }

Status AdminServer::start() {
  Impl& i = *impl_;
  if (i.server) return failed_precondition("admin server: already started");
  detail::http::ServerOptions so;
  so.threads = i.options.threads;
  so.max_body_bytes = i.options.max_body_bytes;
  so.connection_limit = i.options.max_connections;
  so.per_address_connection_limit = i.options.max_connections_per_address;
  so.connection_timeout = i.options.connection_timeout;
  so.connection_memory_bytes = i.options.connection_memory_bytes;
  so.default_headers = {{"X-Content-Type-Options", "nosniff"},
                        {"X-Frame-Options", "DENY"},
                        {"Referrer-Policy", "no-referrer"}};
  so.log_component = "admin";
  so.logger = i.logger;
  i.server = std::make_unique<detail::http::Server>(std::move(so));
  i.router->install(*i.server);
  serve_web_page(*i.server);
  if (Status bound = i.server->bind(i.host, i.port); !bound.ok()) {
    i.server.reset();
    return unavailable(fmt::format("admin server: {}", bound.message()));
  }
  i.port = i.server->port();
  i.server->set_allowed_hosts(i.options.allowed_hosts.empty()
                                  ? default_allowed_hosts(i.host, i.port)
                                  : i.options.allowed_hosts);
  if (i.options.allowed_hosts.empty() && default_allowed_hosts(i.host, i.port).empty()) {
    i.log(LogLevel::kWarning,
          "listening on every address with no admin.allowed_hosts: any Host header is answered; "
          "set allowed_hosts to the names the page is reached by");
  }
  {
    std::lock_guard lock(i.queue_mu);
    i.queue_snapshot = i.current_queue();
  }
  if (Status started = i.server->start(); !started.ok()) {
    i.server.reset();
    return unavailable(fmt::format("admin server: {}", started.message()));
  }
  if (i.own_assistant) {
    if (Status started = i.own_assistant->start(); !started.ok()) {
      i.server->stop();
      i.server.reset();
      return started.annotate("admin server");
    }
  }
  i.watcher = std::thread([&i] { i.watch(); });
  i.log(LogLevel::kInfo, fmt::format("serving the admin page and API on {}", url()));
  return Status();
}

void AdminServer::stop() {
  Impl& i = *impl_;
  if (!i.server) return;
  {
    std::lock_guard lock(i.stop_mu);
    i.stopping = true;
  }
  i.stop_cv.notify_all();
  i.hub.stop();
  if (i.watcher.joinable()) i.watcher.join();
  i.server->stop();
  i.server.reset();
  if (i.own_assistant) i.own_assistant->stop(std::chrono::seconds(5));
}

int AdminServer::port() const { return impl_->port; }

std::string AdminServer::url() const {
  const std::string& host = impl_->host;
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", impl_->port);
}

}  // namespace llmassist
