// The admin server over real HTTP on loopback: every route's access rules (read from its own
// OpenAPI document, so no route escapes), sign-in with cookies and CSRF, throttling, the
// moderation routes, chats and handoff, bad input, statistics and metrics, accounts and tokens,
// the original routes, /v1/chat/handle against a mock LLM, and the live event stream.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <atomic>
#include <nlohmann/json.hpp>

#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "core/json_views.h"
#include "llmassist/admin/admin_server.h"
#include "llmassist/admin/sqlite_account_store.h"
#include "llmassist/core/window_memory.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/runtime_settings.h"
#include "llmassist/telegram/telegram_transport.h"
#include "support/capturing_logger.h"
#include "support/mock_llm_server.h"
#include "support/mock_telegram_server.h"
#include "support/moderation_fixture.h"

namespace llmassist::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPassword = "correct horse battery";

struct AdminFixture : QueueFixture {
  std::shared_ptr<AccountStore> accounts;
  std::unique_ptr<AdminServer> server;
  std::string admin_token, operator_token, viewer_token;

  // `extra` adds parts (a provider, a memory) once the store exists.
  explicit AdminFixture(
      const std::function<void(AdminServerParts&, std::shared_ptr<MessageStore>)>& extra = {},
      ModerationPolicy policy = ModerationPolicy::kAuto, int max_event_streams = 64,
      const std::function<void(AdminServerOptions&)>& tune = {}) {
    SqliteAccountStoreOptions ao;
    ao.path = dir.file("store.db");
    ao.clock = clock;
    ao.logger = null_logger();
    ao.password_ops = crypto_ops_min();
    ao.password_memory = crypto_memory_min();
    auto opened = open_sqlite_account_store(ao);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    accounts = std::move(opened).value();
    admin_token = account("root", AccountRole::kAdmin);
    operator_token = account("alice", AccountRole::kOperator);
    viewer_token = account("victor", AccountRole::kViewer);

    AdminServerParts parts;
    if (extra) extra(parts, store);
    parts.store = store;
    ModerationQueueOptions q;
    q.clock = clock;
    q.logger = null_logger();
    parts.moderation = make_moderation_queue(store, q);
    parts.accounts = accounts;
    AdminServerOptions options;
    options.listen = "127.0.0.1:0";
    options.clock = clock;
    options.logger = null_logger();
    options.policy = policy;
    options.max_event_streams = max_event_streams;
    if (tune) tune(options);
    auto made = AdminServer::create(std::move(parts), options);
    REQUIRE_MESSAGE(made.ok(), made.status().to_string());
    server = std::move(made).value();
    REQUIRE(server->start().ok());
  }

  static unsigned long long crypto_ops_min() { return 1; }
  static std::size_t crypto_memory_min() { return 8192; }

  std::string account(const std::string& name, AccountRole role) {
    auto a = accounts->create_account(name, kPassword, role);
    REQUIRE_MESSAGE(a.ok(), a.status().to_string());
    auto t = accounts->create_token(name, "tests");
    REQUIRE(t.ok());
    return t->secret;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(10, 0);
    return c;
  }

  static httplib::Headers bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  // A request with a token; the body as JSON when given.
  httplib::Result call(const std::string& method, const std::string& path, const std::string& token,
                       const std::optional<json>& body = {}) const {
    auto c = client();
    const auto headers = token.empty() ? httplib::Headers{} : bearer(token);
    const std::string text = body ? body->dump() : "";
    if (method == "GET") return c.Get(path, headers);
    if (method == "POST") return c.Post(path, headers, text, "application/json");
    if (method == "PATCH") return c.Patch(path, headers, text, "application/json");
    if (method == "PUT") return c.Put(path, headers, text, "application/json");
    return c.Delete(path, headers, text, "application/json");
  }

  static json body_of(const httplib::Result& r) {
    REQUIRE_MESSAGE(r, "no response: " << httplib::to_string(r.error()));
    auto j = json::parse(r->body, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), r->body);
    return j;
  }

  // The error code of a refused request, checking the shape of the body.
  static std::string error_of(const httplib::Result& r) {
    const json j = body_of(r);
    REQUIRE_MESSAGE(j.contains("error"), r->body);
    CHECK(j["error"]["message"].is_string());
    return j["error"]["code"].get<std::string>();
  }

  ReplyStatus status_of(ReplyId id) {
    auto r = store->get_reply(id);
    REQUIRE(r.ok());
    return r->status;
  }
};

// "/api/replies/{id}" with real values.
std::string concrete(std::string path) {
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"{id}", "1"}, {"{name}", "nobody"}}) {
    for (auto pos = path.find(from); pos != std::string::npos; pos = path.find(from)) {
      path.replace(pos, from.size(), to);
    }
  }
  return path;
}

TEST_CASE("admin server: every route checks credentials and role, as its OpenAPI says") {
  AdminFixture f;
  auto doc = AdminFixture::body_of(f.client().Get("/openapi.json"));
  REQUIRE(doc["openapi"] == "3.1.0");
  int checked = 0;
  for (const auto& [path, methods] : doc["paths"].items()) {
    for (const auto& [method_lower, op] : methods.items()) {
      std::string method = method_lower;
      for (char& ch : method) ch = static_cast<char>(std::toupper(ch));
      const std::string url = concrete(path);
      CAPTURE(method);
      CAPTURE(url);
      if (!op.contains("x-required-role")) {
        CHECK(op["security"].empty());
        continue;
      }
      if (url == "/api/events") continue;  // a stream: checked by its own test
      auto anonymous = f.call(method, url, "", json::object());
      REQUIRE(anonymous);
      CHECK(anonymous->status == 401);
      CHECK(AdminFixture::error_of(anonymous) == "unauthenticated");
      auto forged = f.call(method, url, "lla_not-a-real-token", json::object());
      CHECK(forged->status == 401);
      const std::string role = op["x-required-role"];
      if (role == "operator" || role == "admin") {
        auto viewer = f.call(method, url, f.viewer_token, json::object());
        CHECK(viewer->status == 403);
        CHECK(AdminFixture::error_of(viewer) == "permission_denied");
      }
      if (role == "admin") {
        auto op_call = f.call(method, url, f.operator_token, json::object());
        CHECK(op_call->status == 403);
      }
      ++checked;
    }
  }
  CHECK(checked >= 30);
  // And the routes the document calls open are open.
  CHECK(f.client().Get("/health")->status == 200);
}

TEST_CASE("admin server: sign-in sets a strict cookie, and changes need the CSRF token") {
  AdminFixture f;
  const ChatId chat = f.chat("100").id;
  const ReplyId id = f.pending(chat, "Where is my order?", "It ships today.");
  auto c = f.client();

  auto wrong =
      c.Post("/api/session", json{{"name", "alice"}, {"password", "nope-nope-nope"}}.dump(),
             "application/json");
  CHECK(wrong->status == 401);
  CHECK(AdminFixture::error_of(wrong) == "unauthenticated");
  CHECK(!wrong->has_header("Set-Cookie"));

  auto signed_in = c.Post("/api/session", json{{"name", "alice"}, {"password", kPassword}}.dump(),
                          "application/json");
  REQUIRE(signed_in->status == 200);
  const std::string cookie = signed_in->get_header_value("Set-Cookie");
  CHECK(cookie.find("HttpOnly") != std::string::npos);
  CHECK(cookie.find("SameSite=Strict") != std::string::npos);
  CHECK(cookie.find(kPassword) == std::string::npos);
  const json session = AdminFixture::body_of(signed_in);
  CHECK(session["account"]["role"] == "operator");
  const std::string csrf = session["csrf_token"];
  REQUIRE(csrf.size() >= 32);
  const std::string pair = cookie.substr(0, cookie.find(';'));
  const httplib::Headers with_cookie{{"Cookie", pair}};

  auto me = c.Get("/api/session", with_cookie);
  CHECK(me->status == 200);
  CHECK(AdminFixture::body_of(me)["csrf_token"] == csrf);

  // Without the token, or with a wrong one: refused, nothing changed.
  auto no_csrf = c.Post(("/api/replies/" + std::to_string(id) + "/approve").c_str(), with_cookie,
                        "", "application/json");
  CHECK(no_csrf->status == 403);
  auto bad = with_cookie;
  bad.emplace("X-CSRF-Token", std::string(csrf.size(), 'A'));
  CHECK(c.Post(("/api/replies/" + std::to_string(id) + "/approve").c_str(), bad, "",
               "application/json")
            ->status == 403);
  CHECK(f.status_of(id) == ReplyStatus::kPending);

  auto good = with_cookie;
  good.emplace("X-CSRF-Token", csrf);
  auto approved = c.Post(("/api/replies/" + std::to_string(id) + "/approve").c_str(), good, "",
                         "application/json");
  CHECK(approved->status == 200);
  CHECK(f.status_of(id) == ReplyStatus::kApproved);
  auto audit = f.store->list_audit({.reply_id = id});
  REQUIRE(audit.ok());
  REQUIRE(!audit->empty());
  CHECK(audit->front().actor == "operator:alice");

  CHECK(c.Delete("/api/session", good)->status == 200);
  CHECK(c.Get("/api/session", with_cookie)->status == 401);
}

TEST_CASE("admin server: failed sign-ins are slowed down") {
  AdminFixture f;
  auto c = f.client();
  const auto attempt = [&](const char* password) {
    return c.Post("/api/session", json{{"name", "alice"}, {"password", password}}.dump(),
                  "application/json");
  };
  for (int i = 0; i < 5; ++i) CHECK(attempt("wrong password!")->status == 401);
  auto limited = attempt(kPassword);  // even the right one must wait now
  CHECK(limited->status == 429);
  CHECK(AdminFixture::error_of(limited) == "resource_exhausted");
  CHECK(limited->get_header_value("Retry-After") == "1");
  f.clock->advance(2s);
  CHECK(attempt("wrong password!")->status == 401);
  CHECK(attempt(kPassword)->status == 429);  // the wait doubled
  f.clock->advance(3s);
  CHECK(attempt(kPassword)->status == 200);
}

TEST_CASE("admin server: moderation routes decide, claim, and name the account") {
  AdminFixture f;
  const ChatId chat = f.chat("200", "Ann").id;
  const ReplyId a = f.pending(chat, "q1", "draft one");
  const ReplyId b = f.pending(chat, "q2", "draft two");
  const ReplyId r = f.pending(chat, "q3", "draft three");

  auto queue = AdminFixture::body_of(f.call("GET", "/api/queue?history=5", f.viewer_token));
  REQUIRE(queue["items"].size() == 3);
  CHECK(queue["items"][0]["reply"]["id"] == a);
  CHECK(queue["items"][0]["chat"]["title"] == "Ann");
  CHECK(queue["items"][0]["history"].size() >= 1);
  auto first = AdminFixture::body_of(f.call("GET", "/api/queue?limit=2", f.viewer_token));
  REQUIRE(first["items"].size() == 2);
  auto second = AdminFixture::body_of(
      f.call("GET", "/api/queue?limit=2&cursor=" + first["next"].dump(), f.viewer_token));
  REQUIRE(second["items"].size() == 1);
  CHECK(second["items"][0]["reply"]["id"] == r);

  const std::string base = "/api/replies/";
  // alice claims b; root cannot decide it meanwhile.
  CHECK(f.call("POST", base + std::to_string(b) + "/claim", f.operator_token, json{{"minutes", 5}})
            ->status == 200);
  auto taken = f.call("POST", base + std::to_string(b) + "/approve", f.admin_token);
  CHECK(taken->status == 409);
  CHECK(AdminFixture::error_of(taken) == "aborted");
  CHECK(f.call("POST", base + std::to_string(b) + "/claim", f.operator_token, json{{"minutes", 0}})
            ->status == 400);

  CHECK(f.call("POST", base + std::to_string(a) + "/approve", f.operator_token)->status == 200);
  CHECK(f.status_of(a) == ReplyStatus::kApproved);
  CHECK(f.call("POST", base + std::to_string(a) + "/approve", f.operator_token)->status == 409);

  auto empty_edit =
      f.call("POST", base + std::to_string(b) + "/edit", f.operator_token, json{{"text", "  "}});
  CHECK(empty_edit->status == 400);
  auto edited = AdminFixture::body_of(f.call("POST", base + std::to_string(b) + "/edit",
                                             f.operator_token, json{{"text", "Better answer"}}));
  CHECK(edited["status"] == "approved");
  CHECK(edited["final_text"] == "Better answer");

  auto rejected = AdminFixture::body_of(f.call("POST", base + std::to_string(r) + "/reject",
                                               f.operator_token, json{{"reason", "too curt"}}));
  CHECK(rejected["status"] == "rejected");

  auto one = AdminFixture::body_of(f.call("GET", base + std::to_string(b), f.viewer_token));
  CHECK(one["reply"]["final_text"] == "Better answer");
  CHECK(one["chat"]["id"] == chat);
  auto audit =
      AdminFixture::body_of(f.call("GET", "/api/audit?actor=operator:alice", f.viewer_token));
  std::set<std::string> actions;
  for (const auto& e : audit["items"]) actions.insert(e["action"].get<std::string>());
  CHECK(actions.count("approve") == 1);
  CHECK(actions.count("edit") == 1);
  CHECK(actions.count("reject") == 1);
  auto listed =
      AdminFixture::body_of(f.call("GET", "/api/replies?status=approved", f.viewer_token));
  CHECK(listed["items"].size() == 2);
  CHECK(f.call("GET", "/api/replies?status=bogus", f.viewer_token)->status == 400);
  CHECK(f.call("GET", "/api/replies/999999", f.viewer_token)->status == 404);
}

TEST_CASE("admin server: bad requests get a 4xx with a JSON error and change nothing") {
  AdminFixture f;
  const ReplyId id = f.pending(f.chat("300").id, "q", "draft");
  const std::string edit = "/api/replies/" + std::to_string(id) + "/edit";
  auto c = f.client();
  const auto h = AdminFixture::bearer(f.operator_token);

  auto not_json = c.Post(edit.c_str(), h, "{text: nope", "application/json");
  CHECK(not_json->status == 400);
  CHECK(AdminFixture::error_of(not_json) == "invalid_argument");
  auto array = c.Post(edit.c_str(), h, "[1, 2]", "application/json");
  CHECK(array->status == 400);
  // A NUL byte is not JSON (the parser would take it for the end, and read the object before).
  const std::string with_nul = json{{"text", "edited"}}.dump() + std::string(1, '\0') + "junk";
  auto nul = c.Post(edit.c_str(), h, with_nul, "application/json");
  CHECK(nul->status == 400);
  CHECK(AdminFixture::error_of(nul) == "invalid_argument");
  auto form = c.Post(edit.c_str(), h, "text=hello", "application/x-www-form-urlencoded");
  CHECK(form->status == 415);
  CHECK(AdminFixture::error_of(form) == "unsupported_media_type");
  auto huge = c.Post(edit.c_str(), h, json{{"text", std::string(300 * 1024, 'x')}}.dump(),
                     "application/json");
  CHECK(huge->status == 413);
  CHECK(AdminFixture::error_of(huge) == "payload_too_large");
  auto wrong_type = c.Post(edit.c_str(), h, json{{"text", 42}}.dump(), "application/json");
  CHECK(wrong_type->status == 400);
  CHECK(f.call("GET", "/api/queue?limit=0", f.viewer_token)->status == 400);
  CHECK(f.call("GET", "/api/queue?limit=abc", f.viewer_token)->status == 400);
  auto unknown = f.call("GET", "/api/nothing-here", f.viewer_token);
  CHECK(unknown->status == 404);
  CHECK(AdminFixture::error_of(unknown) == "not_found");
  auto method = f.call("PUT", "/api/queue", f.viewer_token);
  CHECK(method->status == 405);
  CHECK(AdminFixture::error_of(method) == "method_not_allowed");
  auto reply = f.store->get_reply(id);
  CHECK(reply->status == ReplyStatus::kPending);
  CHECK(reply->draft_text == "draft");
  CHECK(reply->final_text.empty());
  // The server still serves.
  CHECK(f.call("GET", "/api/queue", f.viewer_token)->status == 200);
}

TEST_CASE("admin server: chats, their history, handoff and an operator's reply") {
  AdminFixture f;
  const ChatId ann = f.chat("401", "Ann").id;
  const ChatId bob = f.chat("402", "Bob").id;
  for (int i = 0; i < 5; ++i) f.ask(ann, "message " + std::to_string(i));
  f.ask(bob, "hello from bob");

  auto found = AdminFixture::body_of(f.call("GET", "/api/chats?search=bob", f.viewer_token));
  REQUIRE(found["items"].size() == 1);
  CHECK(found["items"][0]["id"] == bob);
  auto page1 = AdminFixture::body_of(
      f.call("GET", "/api/chats/" + std::to_string(ann) + "/messages?limit=3", f.viewer_token));
  REQUIRE(page1["items"].size() == 3);
  CHECK(page1["items"][0]["text"] == "message 4");
  auto page2 = AdminFixture::body_of(f.call(
      "GET",
      "/api/chats/" + std::to_string(ann) + "/messages?limit=3&cursor=" + page1["next"].dump(),
      f.viewer_token));
  REQUIRE(page2["items"].size() == 2);
  CHECK(page2["items"][1]["text"] == "message 0");
  CHECK(page2["next"].is_null());

  const std::string chat_url = "/api/chats/" + std::to_string(ann);
  auto refused = f.call("POST", chat_url + "/reply", f.operator_token, json{{"text", "hi"}});
  CHECK(refused->status == 409);
  auto handed = AdminFixture::body_of(f.call("POST", chat_url + "/handoff", f.operator_token));
  CHECK(handed["mode"] == "operator");
  auto operators = AdminFixture::body_of(f.call("GET", "/api/chats?mode=operator", f.viewer_token));
  REQUIRE(operators["items"].size() == 1);
  auto sent = AdminFixture::body_of(
      f.call("POST", chat_url + "/reply", f.operator_token, json{{"text", "A person here."}}));
  CHECK(sent["status"] == "approved");
  CHECK(sent["author"] == "alice");
  auto back = AdminFixture::body_of(f.call("POST", chat_url + "/handback", f.operator_token));
  CHECK(back["mode"] == "bot");
  auto events = f.store->list_audit({.chat_id = ann});
  std::set<std::string> actions;
  for (const auto& e : *events) {
    actions.insert(e.action);
    CHECK(e.actor == "operator:alice");
  }
  CHECK(actions == std::set<std::string>{"handoff", "handoff_reply", "handback"});
}

TEST_CASE("admin server: contacts are added, noted and opted out") {
  AdminFixture f;
  auto added = f.call("POST", "/api/chats", f.operator_token,
                      json{{"channel", "telegram"},
                           {"external_id", "777001"},
                           {"title", "Ирина Смирнова"},
                           {"notes", "met at the fair"}});
  REQUIRE(added->status == 200);
  const json contact = json::parse(added->body);
  CHECK(contact["title"] == "Ирина Смирнова");
  CHECK(contact["notes"] == "met at the fair");
  CHECK(contact["opted_out_at"].is_null());
  const std::string url = "/api/chats/" + std::to_string(contact["id"].get<ChatId>());
  auto out = AdminFixture::body_of(
      f.call("PATCH", url, f.operator_token, json{{"opted_out", true}, {"notes", "no more"}}));
  CHECK(out["opted_out_at"].is_string());
  CHECK(out["notes"] == "no more");
  CHECK(AdminFixture::body_of(f.call("GET", url, f.viewer_token))["opted_out_at"].is_string());
  const auto events = f.store->list_audit({.chat_id = contact["id"].get<ChatId>()}).value();
  CHECK(std::any_of(events.begin(), events.end(), [](const AuditEvent& e) {
    return e.action == "contact" && e.actor == "operator:alice";
  }));
  // Bad input: 4xx with a JSON error, nothing changed.
  CHECK(f.call("PATCH", url, f.viewer_token, json{{"notes", "x"}})->status == 403);
  CHECK(f.call("PATCH", url, f.operator_token, json::object())->status == 400);
  CHECK(f.call("PATCH", url, f.operator_token, json{{"opted_out", "yes"}})->status == 400);
  CHECK(f.call("PATCH", "/api/chats/99999", f.operator_token, json{{"notes", "x"}})->status == 404);
  auto bad = f.call("POST", "/api/chats", f.operator_token,
                    json{{"channel", "telegram"}, {"external_id", "@irina"}});
  CHECK(bad->status == 400);
  CHECK(json::parse(bad->body)["error"]["message"].get<std::string>().find("numeric") !=
        std::string::npos);
  CHECK(f.call("POST", "/api/chats", f.operator_token, json{{"channel", "telegram"}})->status ==
        400);
  CHECK(AdminFixture::body_of(f.call("GET", url, f.viewer_token))["notes"] == "no more");
}

TEST_CASE("admin server: statistics as JSON and as Prometheus metrics") {
  AdminFixture f;
  const ChatId chat = f.chat("500").id;
  const ReplyId id = f.pending(chat, "q", "draft");
  f.pending(chat, "q2", "draft 2");
  REQUIRE(
      f.call("POST", "/api/replies/" + std::to_string(id) + "/approve", f.operator_token)->status ==
      200);
  const std::string today = detail::iso(f.clock->now()).substr(0, 10);
  auto stats = AdminFixture::body_of(f.call("GET", "/api/stats", f.viewer_token));
  CHECK(stats["to"] == today);
  CHECK(stats["approved"] == 1);
  CHECK(stats["replies_by_status"]["pending"] == 1);
  REQUIRE(stats["days"].size() == 1);
  CHECK(stats["days"][0]["user_messages"] == 2);
  CHECK(f.call("GET", "/api/stats?from=yesterday", f.viewer_token)->status == 400);
  CHECK(f.call("GET", "/api/stats?from=2030-01-02&to=2030-01-01", f.viewer_token)->status == 400);

  auto metrics = f.call("GET", "/metrics", f.viewer_token);
  REQUIRE(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
  CHECK(metrics->body.find("llmassist_replies{status=\"pending\"} 1\n") != std::string::npos);
  CHECK(metrics->body.find("llmassist_decisions{decision=\"approve\"} 1\n") != std::string::npos);
  CHECK(metrics->body.find("# TYPE llmassist_response_seconds summary") != std::string::npos);
}

TEST_CASE("admin server: accounts and tokens") {
  AdminFixture f;
  auto made = f.call("POST", "/api/accounts", f.admin_token,
                     json{{"name", "olga"}, {"password", "long enough pw"}, {"role", "operator"}});
  CHECK(made->status == 201);
  CHECK(AdminFixture::body_of(made).dump().find("long enough pw") == std::string::npos);
  CHECK(f.call("POST", "/api/accounts", f.admin_token,
               json{{"name", "olga"}, {"password", "long enough pw"}, {"role", "operator"}})
            ->status == 409);
  CHECK(f.call("POST", "/api/accounts", f.admin_token,
               json{{"name", "pavel"}, {"password", "short"}, {"role", "operator"}})
            ->status == 400);
  CHECK(f.call("POST", "/api/accounts", f.admin_token,
               json{{"name", "pavel"}, {"password", "long enough pw"}, {"role", "king"}})
            ->status == 400);
  auto list = AdminFixture::body_of(f.call("GET", "/api/accounts", f.admin_token));
  CHECK(list["items"].size() == 4);
  CHECK(list.dump().find("argon2") == std::string::npos);

  // Own tokens: a viewer makes one, it works, it is revoked, it stops working.
  auto token = AdminFixture::body_of(
      f.call("POST", "/api/tokens", f.viewer_token, json{{"label", "grafana"}}));
  const std::string secret = token["secret"];
  CHECK(f.call("GET", "/api/queue", secret)->status == 200);
  auto mine = AdminFixture::body_of(f.call("GET", "/api/tokens", f.viewer_token));
  for (const auto& t : mine["items"]) {
    CHECK(t["account"] == "victor");
    CHECK(!t.contains("secret"));
  }
  CHECK(f.call("POST", "/api/tokens", f.viewer_token, json{{"label", "x"}, {"account", "root"}})
            ->status == 403);
  // Someone else's token is not the viewer's to revoke.
  auto roots = AdminFixture::body_of(f.call("GET", "/api/tokens", f.admin_token));
  std::int64_t root_token = 0;
  for (const auto& t : roots["items"]) {
    if (t["account"] == "root") root_token = t["id"];
  }
  REQUIRE(root_token > 0);
  CHECK(f.call("DELETE", "/api/tokens/" + std::to_string(root_token), f.viewer_token)->status ==
        404);
  CHECK(f.call("DELETE", "/api/tokens/" + token["id"].dump(), f.viewer_token)->status == 200);
  CHECK(f.call("GET", "/api/queue", secret)->status == 401);

  // Role changes take effect at once; a disabled account's token stops working.
  CHECK(
      f.call("PATCH", "/api/accounts/victor", f.admin_token, json{{"role", "operator"}})->status ==
      200);
  const ReplyId id = f.pending(f.chat("600").id, "q", "d");
  CHECK(f.call("POST", "/api/replies/" + std::to_string(id) + "/approve", f.viewer_token)->status ==
        200);
  CHECK(f.call("PATCH", "/api/accounts/victor", f.admin_token, json{{"disabled", true}})->status ==
        200);
  CHECK(f.call("GET", "/api/queue", f.viewer_token)->status == 401);
  CHECK(f.call("PATCH", "/api/accounts/root", f.admin_token, json{{"role", "viewer"}})->status ==
        409);
  CHECK(f.call("DELETE", "/api/accounts/root", f.admin_token)->status == 409);
  CHECK(f.call("DELETE", "/api/accounts/olga", f.admin_token)->status == 200);
  CHECK(f.call("DELETE", "/api/accounts/olga", f.admin_token)->status == 404);
}

TEST_CASE("admin server: the original routes create, repeat and update") {
  AdminFixture f;
  const ChatId chat = f.chat("700", "Ann").id;
  auto created = f.call("POST", "/create", f.operator_token,
                        json{{"chat_id", chat}, {"text", "Do you ship abroad?"}});
  CHECK(created->status == 201);
  const json c = AdminFixture::body_of(created);
  CHECK(c["message"]["text"] == "Do you ship abroad?");
  CHECK(c["reply"]["status"] == "new");
  CHECK(f.call("POST", "/create", f.operator_token, json{{"chat_id", 99999}, {"text", "x"}})
            ->status == 404);
  CHECK(f.call("POST", "/create", f.operator_token, json{{"chat_id", chat}})->status == 400);
  // A reply still waiting for its draft cannot be repeated.
  CHECK(f.call("POST", "/repeat/" + c["reply"]["id"].dump(), f.operator_token)->status == 409);

  const ReplyId id = f.pending(chat, "q", "first draft");
  auto text_only =
      AdminFixture::body_of(f.call("PATCH", "/update/" + std::to_string(id), f.operator_token,
                                   json{{"response_text", "amended draft"}}));
  CHECK(text_only["status"] == "pending");
  CHECK(text_only["draft_text"] == "amended draft");
  auto again =
      AdminFixture::body_of(f.call("POST", "/repeat/" + std::to_string(id), f.operator_token));
  CHECK(again["status"] == "rejected");

  const ReplyId other = f.pending(chat, "q2", "draft");
  CHECK(f.call("PATCH", "/update/" + std::to_string(other), f.operator_token,
               json{{"status", "sent"}})
            ->status == 400);
  auto approved =
      AdminFixture::body_of(f.call("PATCH", "/update/" + std::to_string(other), f.operator_token,
                                   json{{"status", "approved"}, {"response_text", "final words"}}));
  CHECK(approved["status"] == "approved");
  CHECK(approved["final_text"] == "final words");
}

TEST_CASE("admin server: /v1/chat/handle answers synchronously and /v1/chat/reset starts over") {
  MockLlmServer llm;
  MockLlmServer::Behavior echo;
  echo.echo_question = true;
  llm.set(echo);
  const auto with_model = [&](AdminServerParts& parts, std::shared_ptr<MessageStore> store) {
    OpenAiProviderOptions po;
    po.name = "mock";
    po.base_url = llm.openai_url();
    po.model = "m";
    po.logger = null_logger();
    auto provider = make_openai_provider(po);
    REQUIRE(provider.ok());
    parts.llm = std::shared_ptr<LlmProvider>(std::move(provider).value());
    auto memory = make_window_memory(store, {.system_prompt = "You are a test."});
    REQUIRE(memory.ok());
    parts.memory = std::move(memory).value();
  };

  SUBCASE("auto policy: the answer comes back, stored as sent") {
    AdminFixture f(with_model);
    auto first = AdminFixture::body_of(
        f.call("POST", "/v1/chat/handle", f.operator_token,
               json{{"user_id", "u-1"}, {"chat_id", "c-1"}, {"text", "What is llmassist?"}}));
    CHECK(first["status"] == "sent");
    CHECK(first["answer"] == "Answer to: What is llmassist?");
    CHECK(first["provider"] == "mock");
    // The second question is asked with the first exchange as context.
    auto second = AdminFixture::body_of(
        f.call("POST", "/v1/chat/handle", f.operator_token,
               json{{"user_id", "u-1"}, {"chat_id", "c-1"}, {"text", "And the price?"}}));
    CHECK(second["answer"] == "Answer to: And the price?");
    const json prompt = llm.last_body()["messages"];
    CHECK(prompt.front()["content"] == "You are a test.");
    CHECK(prompt.dump().find("Answer to: What is llmassist?") != std::string::npos);
    auto chat = f.store->find_chat("api", "c-1");
    REQUIRE(chat.ok());
    auto history = f.store->chat_history(chat->id, {});
    CHECK(history->size() == 4);

    auto reset = AdminFixture::body_of(
        f.call("POST", "/v1/chat/reset", f.operator_token, json{{"chat_id", "c-1"}}));
    auto fresh = f.store->get_session(reset["session_id"].get<std::int64_t>());
    REQUIRE(fresh.ok());
    CHECK(!fresh->closed_at);
    f.call("POST", "/v1/chat/handle", f.operator_token,
           json{{"user_id", "u-1"}, {"chat_id", "c-1"}, {"text", "Start over"}});
    CHECK(llm.last_body()["messages"].dump().find("What is llmassist?") == std::string::npos);
    CHECK(
        f.call("POST", "/v1/chat/reset", f.operator_token, json{{"chat_id", "unknown"}})->status ==
        404);
    CHECK(f.call("POST", "/v1/chat/reset", f.operator_token, json::object())->status == 400);
    CHECK(f.call("POST", "/v1/chat/handle", f.operator_token,
                 json{{"user_id", "u"}, {"chat_id", "c"}, {"text", ""}})
              ->status == 400);
  }
  SUBCASE("runtime settings: the overridden prompt and policy are used") {
    AdminFixture f(with_model);
    REQUIRE(f.call("PATCH", "/api/settings", f.admin_token,
                   json{{"policy", "review"}, {"system_prompt", "You answer for Acme."}})
                ->status == 200);
    auto asked =
        AdminFixture::body_of(f.call("POST", "/v1/chat/handle", f.operator_token,
                                     json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "Hi"}}));
    CHECK(asked["status"] == "pending");
    CHECK(llm.last_body()["messages"].front()["content"] == "You answer for Acme.");
  }
  SUBCASE("review policy: the draft waits for an operator, then is there to read") {
    AdminFixture f(with_model, ModerationPolicy::kReview);
    auto asked =
        AdminFixture::body_of(f.call("POST", "/v1/chat/handle", f.operator_token,
                                     json{{"user_id", 5}, {"chat_id", 5}, {"text", "Refund?"}}));
    CHECK(asked["status"] == "pending");
    CHECK(asked["answer"] == "");
    const std::string id = asked["reply_id"].dump();
    CHECK(f.call("POST", "/api/replies/" + id + "/approve", f.operator_token)->status == 200);
    // The server delivers the API channel's approved answers by marking them sent.
    ReplyStatus status = ReplyStatus::kApproved;
    for (int i = 0; i < 200 && status != ReplyStatus::kSent; ++i) {
      std::this_thread::sleep_for(25ms);
      status = f.status_of(asked["reply_id"].get<ReplyId>());
    }
    CHECK(status == ReplyStatus::kSent);
  }
  SUBCASE("every provider down: 503, and the reply waits failed for an operator") {
    MockLlmServer::Behavior down;
    down.status = 500;
    llm.set(down);
    AdminFixture f(with_model);
    auto failed = f.call("POST", "/v1/chat/handle", f.operator_token,
                         json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "Hello?"}});
    CHECK(failed->status == 503);
    auto pending = AdminFixture::body_of(f.call("GET", "/api/queue", f.viewer_token));
    REQUIRE(pending["items"].size() == 1);
    CHECK(pending["items"][0]["reply"]["status"] == "failed");
  }
}

namespace {

// An OpenAI provider against `llm`, answering "Answer to: <question>", and a window memory.
void echoing_model(MockLlmServer& llm, AdminServerParts& parts,
                   const std::shared_ptr<MessageStore>& store) {
  MockLlmServer::Behavior echo;
  echo.echo_question = true;
  llm.set(echo);
  OpenAiProviderOptions po;
  po.name = "mock";
  po.base_url = llm.openai_url();
  po.model = "m";
  po.logger = null_logger();
  auto provider = make_openai_provider(po);
  REQUIRE(provider.ok());
  parts.llm = std::shared_ptr<LlmProvider>(std::move(provider).value());
  auto memory = make_window_memory(store, {.system_prompt = "You are a test."});
  REQUIRE(memory.ok());
  parts.memory = std::move(memory).value();
}

// Waits until `predicate` holds.
template <typename P>
bool eventually(P predicate) {
  for (int i = 0; i < 1000 && !predicate(); ++i) std::this_thread::sleep_for(10ms);
  return predicate();
}

}  // namespace

TEST_CASE("admin server: an API reply an operator rejects is drafted again and delivered") {
  MockLlmServer llm;
  AdminFixture f([&](AdminServerParts& parts, auto store) { echoing_model(llm, parts, store); },
                 ModerationPolicy::kReview);
  auto asked =
      AdminFixture::body_of(f.call("POST", "/v1/chat/handle", f.operator_token,
                                   json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "Refund?"}}));
  REQUIRE(asked["status"] == "pending");
  const ReplyId id = asked["reply_id"].get<ReplyId>();
  REQUIRE(f.call("POST", "/api/replies/" + std::to_string(id) + "/reject", f.operator_token,
                 json{{"reason", "too short"}})
              ->status == 200);
  // The Assistant serving the API channel drafts it again: a second request to the model.
  REQUIRE(eventually([&] { return f.status_of(id) == ReplyStatus::kPending; }));
  CHECK(llm.requests() == 2);
  REQUIRE(
      f.call("POST", "/api/replies/" + std::to_string(id) + "/approve", f.operator_token)->status ==
      200);
  REQUIRE(eventually([&] { return f.status_of(id) == ReplyStatus::kSent; }));
  const Reply sent = f.store->get_reply(id).value();
  CHECK(sent.final_text == "Answer to: Refund?");
  CHECK(sent.transport_message_id == fmt::format("api:{}", id));
}

namespace {

// A window memory that, while `recall` is set, adds what a semantic memory would have put into
// the prompt: a summary, a recalled message, a knowledge passage, and what the budget dropped.
class RecallingMemory final : public MemoryManager {
 public:
  explicit RecallingMemory(std::shared_ptr<MemoryManager> window) : window_(std::move(window)) {}

  Result<Context> build_context(const ContextRequest& request) override {
    auto context = window_->build_context(request);
    if (!context.ok() || !recall.load()) return context;
    context->summary_version = 3;
    context->recalled.push_back(
        {"message", 11, 7, 2, "Я живу в Казани, заказ 10452 <b>срочный</b>", 0.031});
    context->passages.push_back(
        {"shipping.md", "Shipping › Russia", "Parcels to Russia take 7–10 working days.", 0.5});
    context->dropped.push_back("2 recalled items");
    return context;
  }
  void observe(const Message& message) override { window_->observe(message); }

  std::atomic<bool> recall{true};

 private:
  const std::shared_ptr<MemoryManager> window_;
};

}  // namespace

TEST_CASE("admin server: a reply shows the memory its current draft was written with") {
  MockLlmServer llm;
  RecallingMemory* memory = nullptr;
  AdminFixture f(
      [&](AdminServerParts& parts, auto store) {
        echoing_model(llm, parts, store);
        auto recalling = std::make_shared<RecallingMemory>(parts.memory);
        memory = recalling.get();
        parts.memory = std::move(recalling);
      },
      ModerationPolicy::kReview);
  auto asked = AdminFixture::body_of(
      f.call("POST", "/v1/chat/handle", f.operator_token,
             json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "Когда придёт мой заказ?"}}));
  REQUIRE(asked["status"] == "pending");
  const ReplyId id = asked["reply_id"].get<ReplyId>();
  const std::string path = "/api/replies/" + std::to_string(id);

  const json one = AdminFixture::body_of(f.call("GET", path, f.viewer_token));
  CHECK(one["reply"]["id"] == id);
  const json& used = one["memory"];
  REQUIRE_MESSAGE(used.is_object(), one.dump());
  CHECK(used["summary_version"] == 3);
  CHECK(used["estimated_tokens"].get<int>() > 0);
  CHECK(used["window_messages"].get<int>() >= 1);
  REQUIRE(used["recalled"].size() == 1);
  CHECK(used["recalled"][0]["kind"] == "message");
  CHECK(used["recalled"][0]["text"] == "Я живу в Казани, заказ 10452 <b>срочный</b>");
  CHECK(used["recalled"][0]["score"].get<double>() == doctest::Approx(0.031));
  REQUIRE(used["passages"].size() == 1);
  CHECK(used["passages"][0]["source"] == "shipping.md");
  CHECK(used["passages"][0]["heading"] == "Shipping › Russia");
  CHECK(used["dropped"] == json::array({"2 recalled items"}));
  // The lists stay as they were: one audit read per reply would make them slow.
  const json queue = AdminFixture::body_of(f.call("GET", "/api/queue", f.viewer_token));
  REQUIRE(queue["items"].size() == 1);
  CHECK(!queue["items"][0].contains("memory"));
  const json listed = AdminFixture::body_of(f.call("GET", "/api/replies", f.viewer_token));
  REQUIRE(listed["items"].size() == 1);
  CHECK(!listed["items"][0].contains("memory"));

  const auto redrafted = [&](int attempts) {
    return eventually([&] {
      const Reply r = f.store->get_reply(id).value();
      return r.status == ReplyStatus::kPending && r.generation_attempts == attempts;
    });
  };
  // Rejected and drafted again from the window alone: the first draft's memory is not the new
  // draft's.
  memory->recall = false;
  REQUIRE(f.call("POST", path + "/reject", f.operator_token, json{{"reason", "no"}})->status ==
          200);
  REQUIRE(redrafted(2));
  CHECK(AdminFixture::body_of(f.call("GET", path, f.viewer_token))["memory"].is_null());
  // And once more with memory: the newest draft's event.
  memory->recall = true;
  REQUIRE(f.call("POST", path + "/reject", f.operator_token)->status == 200);
  REQUIRE(redrafted(3));
  const json third = AdminFixture::body_of(f.call("GET", path, f.viewer_token));
  REQUIRE(third["memory"].is_object());
  CHECK(third["memory"]["passages"][0]["source"] == "shipping.md");
}

TEST_CASE("admin server: a draft's memory record that does not parse reads as none, logged once") {
  auto logger = std::make_shared<CapturingLogger>();
  AdminFixture f({}, ModerationPolicy::kAuto, 64,
                 [&](AdminServerOptions& o) { o.logger = logger; });
  const ChatId chat = f.chat("300", "Ann").id;
  const ReplyId plain = f.pending(chat, "q1", "a draft from the window alone");
  CHECK(AdminFixture::body_of(
            f.call("GET", "/api/replies/" + std::to_string(plain), f.viewer_token))["memory"]
            .is_null());

  const ReplyId id = f.pending(chat, "q2", "draft");
  for (const std::string detail : {"{\"summary_version\": 1, \"recalled\": [", "[1, 2]"}) {
    ReplyChange ch;
    ch.from = ReplyStatus::kPending;
    ch.to = ReplyStatus::kPending;
    ch.actor = "bot:test";
    ch.audit_action = "draft";
    ch.detail = detail;
    REQUIRE(f.store->transition_reply(id, ch).ok());
    for (int i = 0; i < 2; ++i) {
      auto got = f.call("GET", "/api/replies/" + std::to_string(id), f.viewer_token);
      REQUIRE(got->status == 200);
      const json body = AdminFixture::body_of(got);
      CHECK(body["memory"].is_null());
      CHECK(body["reply"]["draft_text"] == "draft");
    }
  }
  std::size_t logged = 0;
  for (const auto& line : logger->lines()) {
    if (line.find("is not a JSON object") != std::string::npos) ++logged;
  }
  CHECK(logged == 2);  // once for each of the two events, though each was read twice
}

TEST_CASE("admin server: /create and /repeat on an API chat are drafted and delivered") {
  MockLlmServer llm;
  AdminFixture f([&](AdminServerParts& parts, auto store) { echoing_model(llm, parts, store); });
  auto first = AdminFixture::body_of(
      f.call("POST", "/v1/chat/handle", f.operator_token,
             json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "What is llmassist?"}}));
  REQUIRE(first["status"] == "sent");
  const ChatId chat = f.store->find_chat("api", "c").value().id;

  auto created = AdminFixture::body_of(f.call("POST", "/create", f.operator_token,
                                              json{{"chat_id", chat}, {"text", "And the price?"}}));
  const ReplyId made = created["reply"]["id"].get<ReplyId>();
  REQUIRE(eventually([&] { return f.status_of(made) == ReplyStatus::kSent; }));
  CHECK(f.store->get_reply(made).value().final_text == "Answer to: And the price?");

  auto repeated = f.call("POST", "/repeat/" + std::to_string(made), f.operator_token);
  REQUIRE(repeated->status == 201);
  const ReplyId again = AdminFixture::body_of(repeated)["id"].get<ReplyId>();
  REQUIRE(eventually([&] { return f.status_of(again) == ReplyStatus::kSent; }));
  CHECK(f.store->get_reply(again).value().final_text == "Answer to: And the price?");
  CHECK(llm.requests() == 3);
}

TEST_CASE("admin server: one Assistant answers a Telegram chat and an API chat at once") {
  MockLlmServer llm;
  MockTelegramServer telegram;
  std::shared_ptr<ApiTransport> api;
  AdminServerParts model;
  AdminFixture f([&](AdminServerParts& parts, auto store) {
    echoing_model(llm, model, store);
    auto made = make_api_transport({.store = store, .logger = null_logger()});
    REQUIRE(made.ok());
    api = *made;
    parts.api = api;
  });
  TelegramTransportOptions to;
  to.token = telegram.token();
  to.api_url = telegram.api_url();
  to.polling.timeout = 1s;
  to.pacing.per_chat_interval = 0ms;
  to.pacing.global_per_second = 0;
  to.logger = null_logger();
  AssistantParts ap;
  ap.transport = std::shared_ptr<ChatTransport>(make_telegram_transport(to).value().release());
  ap.transports = {api};
  ap.store = f.store;
  ap.llm = model.llm;
  ap.memory = model.memory;
  AssistantOptions ao;
  ao.texts.human_button.clear();
  ao.logger = null_logger();
  auto assistant = Assistant::create(std::move(ap), ao);
  REQUIRE_MESSAGE(assistant.ok(), assistant.status().to_string());
  REQUIRE((*assistant)->start().ok());

  telegram.push_update(1, MockTelegramServer::text_update(1, "From Telegram?", 700));
  auto answered = AdminFixture::body_of(
      f.call("POST", "/v1/chat/handle", f.operator_token,
             json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "From the API?"}}));
  CHECK(answered["status"] == "sent");
  CHECK(answered["answer"] == "Answer to: From the API?");
  REQUIRE(telegram.wait_for_calls("sendMessage", 1));
  CHECK(telegram.calls("sendMessage").front().params.value("text", "") ==
        "Answer to: From Telegram?");
  CHECK(f.store->find_chat("telegram", "700").ok());
  CHECK(f.store->find_chat("api", "c").ok());
  (*assistant)->stop(1s);
}

TEST_CASE("admin server: /v1/chat/handle without a model answers 503") {
  AdminFixture f;
  auto r = f.call("POST", "/v1/chat/handle", f.operator_token,
                  json{{"user_id", "u"}, {"chat_id", "c"}, {"text", "hi"}});
  CHECK(r->status == 503);
  CHECK(AdminFixture::error_of(r) == "unavailable");
}

TEST_CASE("admin server: the event stream tells of new drafts and claims") {
  AdminFixture f;
  const ChatId chat = f.chat("800").id;
  std::mutex mu;
  std::string received;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    auto c = f.client();
    c.Get("/api/events", AdminFixture::bearer(f.viewer_token),
          [&](const char* data, std::size_t n) {
            std::lock_guard lock(mu);
            received.append(data, n);
            return !stop.load();
          });
  });
  const auto wait_for = [&](const std::string& needle) {
    for (int i = 0; i < 400; ++i) {
      {
        std::lock_guard lock(mu);
        if (received.find(needle) != std::string::npos) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(mu);
    FAIL_CHECK("not received: " << needle << "\nstream so far:\n" << received);
    return false;
  };
  CHECK(wait_for("event: queue\ndata: {\"items\":[],\"pending\":0}"));
  const ReplyId id = f.pending(chat, "q", "draft");
  CHECK(wait_for(fmt::format("\"id\":{}", id)));
  REQUIRE(
      f.call("POST", "/api/replies/" + std::to_string(id) + "/claim", f.operator_token)->status ==
      200);
  CHECK(wait_for("\"claimed_by\":\"operator:alice\""));
  // A change that leaves status and holder as they were is told too (a new draft text).
  auto updated =
      AdminFixture::body_of(f.call("PATCH", "/update/" + std::to_string(id), f.operator_token,
                                   json{{"response_text", "a better draft"}}));
  CHECK(wait_for(fmt::format("\"version\":{}", updated["version"].get<std::int64_t>())));
  stop = true;
  f.pending(chat, "q2", "one more event to end the stream");
  reader.join();
}

TEST_CASE("admin server: an admin overrides the policy and the system prompt while the bot runs") {
  AdminFixture f;
  auto initial = AdminFixture::body_of(f.call("GET", "/api/settings", f.viewer_token));
  CHECK(initial["policy"]["value"] == "auto");
  CHECK(initial["policy"]["overridden"] == false);
  CHECK(f.call("PATCH", "/api/settings", f.operator_token, json{{"policy", "review"}})->status ==
        403);
  // A bad value, or an unknown key, changes nothing — not even the good values beside it.
  CHECK(f.call("PATCH", "/api/settings", f.admin_token,
               json{{"system_prompt", "Be brief."}, {"policy", "sometimes"}})
            ->status == 400);
  CHECK(f.call("PATCH", "/api/settings", f.admin_token,
               json{{"policy", "review"}, {"system_prompt", "  "}})
            ->status == 400);
  CHECK(!read_runtime_settings(*f.store)->policy);
  CHECK(f.call("PATCH", "/api/settings", f.admin_token, json{{"colour", "blue"}})->status == 400);
  CHECK(f.call("PATCH", "/api/settings", f.admin_token, json{{"policy", 1}})->status == 400);
  CHECK(!read_runtime_settings(*f.store)->system_prompt);

  auto changed = AdminFixture::body_of(
      f.call("PATCH", "/api/settings", f.admin_token,
             json{{"policy", "review"}, {"system_prompt", "You answer for Acme."}}));
  CHECK(changed["policy"]["value"] == "review");
  CHECK(changed["policy"]["overridden"] == true);
  CHECK(changed["system_prompt"]["value"] == "You answer for Acme.");
  auto stored = read_runtime_settings(*f.store);
  REQUIRE(stored.ok());
  CHECK(stored->policy == ModerationPolicy::kReview);
  CHECK(stored->system_prompt == "You answer for Acme.");
  auto audit = f.store->list_audit({.actor = "operator:root"});
  REQUIRE(audit->size() == 2);
  CHECK(audit->front().action == "settings");

  auto cleared = AdminFixture::body_of(
      f.call("PATCH", "/api/settings", f.admin_token, json{{"policy", nullptr}}));
  CHECK(cleared["policy"]["value"] == "auto");
  CHECK(cleared["policy"]["overridden"] == false);
  CHECK(cleared["system_prompt"]["overridden"] == true);
}

TEST_CASE("admin server: event streams are at most max_event_streams, and hold no thread") {
  AdminFixture f({}, ModerationPolicy::kAuto, 2);
  std::atomic<bool> stop{false};
  std::atomic<int> opened{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      auto c = f.client();
      c.Get("/api/events", AdminFixture::bearer(f.viewer_token), [&](const char*, std::size_t) {
        ++opened;
        return !stop.load();
      });
    });
  }
  for (int i = 0; i < 500 && opened.load() < 2; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(opened.load() >= 2);
  auto third = f.call("GET", "/api/events", f.viewer_token);
  CHECK(third->status == 503);
  CHECK(AdminFixture::error_of(third) == "unavailable");
  // Requests are still served beside the streams.
  CHECK(f.call("GET", "/api/queue", f.viewer_token)->status == 200);
  stop = true;
  f.pending(f.chat("900").id, "q", "an event to end the streams");
  for (auto& t : readers) t.join();
}

TEST_CASE("admin server: a path of 60,000 digits is refused and the server serves on") {
  AdminFixture f;
  auto huge = f.call("GET", "/api/replies/" + std::string(60000, '7'), f.viewer_token);
  REQUIRE(huge);
  CHECK(huge->status == 414);
  // Over 8 KiB, within the connection's memory: the JSON error body.
  auto over = f.call("GET", "/api/replies/" + std::string(8200, '7'), "");
  REQUIRE(over);
  CHECK(over->status == 414);
  CHECK(AdminFixture::error_of(over) == "uri_too_long");
  // A long id within the limit is still routed (and is no id).
  auto long_id = f.call("GET", "/api/replies/" + std::string(4000, '7'), f.viewer_token);
  REQUIRE(long_id);
  CHECK(long_id->status == 400);
  CHECK(f.call("GET", "/health", "")->status == 200);
}

TEST_CASE("admin server: a Host other than its own names is refused with 421") {
  AdminFixture f;
  const std::string port = std::to_string(f.server->port());
  for (const std::string& host :
       std::vector<std::string>{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port}) {
    CAPTURE(host);
    auto c = f.client();
    auto got = c.Get("/health", {{"Host", host}});
    REQUIRE(got);
    CHECK(got->status == 200);
  }
  for (const std::string& host : std::vector<std::string>{
           "evil.example.com", "evil.example.com:" + port, "127.0.0.1:1", "localhost"}) {
    CAPTURE(host);
    auto c = f.client();
    auto got = c.Get("/api/queue", {{"Host", host}, {"Authorization", "Bearer " + f.viewer_token}});
    REQUIRE(got);
    CHECK(got->status == 421);
    CHECK(AdminFixture::error_of(got) == "misdirected_request");
  }
}

// ---- the security review's findings --------------------------------------------------------

// A sign-in sent from `source` (an address of the loopback range: 127.0.0.2 is another
// client to the server) with `headers`; the response's status and head.
struct RawResponse {
  int status = 0;
  std::string head;
};

RawResponse sign_in_from(const char* source, int port, const std::string& name,
                         const std::string& password, const std::string& headers = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) == 0);
  const std::string body = json{{"name", name}, {"password", password}}.dump();
  const std::string request = fmt::format(
      "POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\nConnection: close\r\n{}\r\n{}",
      port, body.size(), headers, body);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, n);
  ::close(fd);
  RawResponse r;
  if (response.size() > 12) r.status = std::atoi(response.c_str() + 9);
  r.head = response.substr(0, response.find("\r\n\r\n"));
  return r;
}

TEST_CASE("admin server: failed sign-ins from one address do not lock the account out elsewhere") {
  AdminFixture f;
  const int port = f.server->port();
  for (int i = 0; i < 8; ++i) sign_in_from("127.0.0.2", port, "alice", "wrong password!");
  // The attacker's address waits, even with the right password...
  CHECK(sign_in_from("127.0.0.2", port, "alice", kPassword).status == 429);
  // ...but alice, from her own address, signs in.
  CHECK(sign_in_from("127.0.0.1", port, "alice", kPassword).status == 200);

  // Trying many names from one address: the address itself is slowed down.
  for (int i = 0; i < 30; ++i) {
    sign_in_from("127.0.0.3", port, fmt::format("user{}", i), "wrong password!");
  }
  CHECK(sign_in_from("127.0.0.3", port, "victor", kPassword).status == 429);
  CHECK(sign_in_from("127.0.0.1", port, "victor", kPassword).status == 200);
}

TEST_CASE("admin server: X-Forwarded-For names the client only when a trusted proxy sends it") {
  AdminFixture f({}, ModerationPolicy::kAuto, 64, [](AdminServerOptions& o) {
    o.trusted_proxies = {"127.0.0.1", "10.0.0.0/8"};
  });
  const int port = f.server->port();
  const auto via = [](const char* client) {
    return fmt::format("X-Forwarded-For: {}\r\n", client);
  };
  // From the proxy: each forwarded client has its own bucket.
  for (int i = 0; i < 8; ++i) {
    sign_in_from("127.0.0.1", port, "alice", "wrong password!", via("203.0.113.7"));
  }
  CHECK(sign_in_from("127.0.0.1", port, "alice", kPassword, via("203.0.113.7")).status == 429);
  CHECK(sign_in_from("127.0.0.1", port, "alice", kPassword, via("198.51.100.9")).status == 200);
  // The proxy appends the address it saw: what the client wrote before it counts for nothing.
  CHECK(sign_in_from("127.0.0.1", port, "alice", kPassword, via("198.51.100.9, 203.0.113.7"))
            .status == 429);

  // Not from a trusted proxy: the header is ignored, a new forged address each time helps not.
  for (int i = 0; i < 8; ++i) {
    sign_in_from("127.0.0.2", port, "victor", "wrong password!",
                 via(fmt::format("192.0.2.{}", i).c_str()));
  }
  CHECK(sign_in_from("127.0.0.2", port, "victor", kPassword, via("192.0.2.200")).status == 429);

  // A malformed entry is refused when the server is made.
  AdminServerParts parts;
  parts.store = f.store;
  parts.moderation = make_moderation_queue(f.store);
  parts.accounts = f.accounts;
  AdminServerOptions bad;
  bad.listen = "127.0.0.1:0";
  bad.trusted_proxies = {"10.0.0.0/33"};
  const auto made = AdminServer::create(parts, bad);
  REQUIRE(!made.ok());
  CHECK(made.status().code() == StatusCode::kInvalidArgument);
  CHECK(made.status().message().find("trusted_proxies") != std::string::npos);
}

TEST_CASE("admin server: behind https the session cookie is __Host- prefixed and Secure") {
  AdminFixture f({}, ModerationPolicy::kAuto, 64,
                 [](AdminServerOptions& o) { o.secure_cookie = true; });
  auto c = f.client();
  auto signed_in = c.Post("/api/session", json{{"name", "alice"}, {"password", kPassword}}.dump(),
                          "application/json");
  REQUIRE(signed_in->status == 200);
  const std::string cookie = signed_in->get_header_value("Set-Cookie");
  CAPTURE(cookie);
  CHECK(cookie.rfind("__Host-llmassist_session=", 0) == 0);
  CHECK(cookie.find("; Secure") != std::string::npos);
  CHECK(cookie.find("; Path=/;") != std::string::npos);
  CHECK(cookie.find("Domain") == std::string::npos);
  CHECK(cookie.find("HttpOnly") != std::string::npos);
  CHECK(cookie.find("SameSite=Strict") != std::string::npos);
  const std::string pair = cookie.substr(0, cookie.find(';'));
  CHECK(c.Get("/api/session", {{"Cookie", pair}})->status == 200);
  // The same secret under the name without the prefix (which any subdomain may set) is not
  // taken.
  const std::string bare = pair.substr(std::string_view("__Host-").size());
  CHECK(c.Get("/api/session", {{"Cookie", bare}})->status == 401);
  auto out = c.Delete(
      "/api/session",
      {{"Cookie", pair},
       {"X-CSRF-Token", AdminFixture::body_of(signed_in)["csrf_token"].get<std::string>()}});
  CHECK(out->status == 200);
  CHECK(out->get_header_value("Set-Cookie").rfind("__Host-llmassist_session=;", 0) == 0);
}

TEST_CASE("admin server: an unauthenticated caller gets no database text in an error") {
  auto logger = std::make_shared<CapturingLogger>();
  AdminFixture f({}, ModerationPolicy::kAuto, 64,
                 [&](AdminServerOptions& o) { o.logger = logger; });
  // The store fails on the sign-in's write, with SQLite's text and the file's path.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.dir.file("store.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "CREATE TRIGGER broken BEFORE UPDATE ON accounts BEGIN "
                       "SELECT RAISE(ABORT, 'no such table: accounts_shadow'); END;",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto r = f.client().Post("/api/session", json{{"name", "alice"}, {"password", kPassword}}.dump(),
                           "application/json");
  REQUIRE(r);
  CAPTURE(r->body);
  CHECK(r->status >= 500);
  CHECK(r->body.find("no such table") == std::string::npos);
  CHECK(r->body.find(f.dir.path().string()) == std::string::npos);
  CHECK(r->body.find("store.db") == std::string::npos);
  CHECK(!AdminFixture::error_of(r).empty());
  // The log has what happened.
  CHECK(logger->contains("no such table: accounts_shadow"));
  // A caller's own mistake is still explained.
  auto missing =
      f.client().Post("/api/session", json{{"name", "alice"}}.dump(), "application/json");
  CHECK(missing->status == 400);
  CHECK(AdminFixture::body_of(missing)["error"]["message"] == "password: required");
}

TEST_CASE("admin server: an admin erases a chat through DELETE /api/chats/{id}") {
  AdminFixture f;
  const ChatId gone = f.chat("4242").id;
  f.pending(gone, "my address is 1 Secret Lane", "We ship to 1 Secret Lane.");
  const ChatId kept = f.chat("4343").id;
  f.pending(kept, "Where is my order?", "It ships today.");
  auto doc = AdminFixture::body_of(f.client().Get("/openapi.json"));
  CHECK(doc["paths"]["/api/chats/{id}"]["delete"]["x-required-role"] == "admin");

  auto r = f.call("DELETE", "/api/chats/" + std::to_string(gone), f.admin_token);
  REQUIRE(r->status == 200);
  const json body = AdminFixture::body_of(r);
  CHECK(body["erased"]["chats"] == 1);
  CHECK(body["erased"]["messages"] == 1);
  CHECK(body["erased"]["replies"] == 1);
  CHECK(body["reclaimed"] == true);
  CHECK(f.call("GET", "/api/chats/" + std::to_string(gone), f.admin_token)->status == 404);
  CHECK(f.call("DELETE", "/api/chats/" + std::to_string(gone), f.admin_token)->status == 404);
  CHECK(f.call("GET", "/api/chats/" + std::to_string(kept), f.admin_token)->status == 200);
  const auto audit = f.store->list_audit({.actor = "operator:root"}).value();
  REQUIRE(!audit.empty());
  CHECK(audit.front().action == "erase");
}

}  // namespace
}  // namespace llmassist::testing
