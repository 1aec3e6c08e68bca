#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "telegram/telegram_format.h"

using namespace llmassist;
using namespace llmassist::telegram;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

#ifndef LLMASSIST_TELEGRAM_UPDATES_DIR
#error "LLMASSIST_TELEGRAM_UPDATES_DIR must name the telegram-updates test data folder"
#endif

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The 45 real payloads (tests/data/telegram-updates), by file name. A missing folder fails the test
// instead of passing it.
std::map<std::string, std::string> payloads() {
  const fs::path dir = LLMASSIST_TELEGRAM_UPDATES_DIR;
  INFO("the Telegram update payloads are expected in " << dir.string());
  REQUIRE(fs::is_directory(dir));
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".json")
      out[entry.path().filename().string()] = read_file(entry);
  }
  REQUIRE(out.size() == 45);
  return out;
}

const std::string& payload(const std::map<std::string, std::string>& all, std::string_view prefix) {
  for (const auto& [name, body] : all) {
    if (name.starts_with(prefix)) return body;
  }
  FAIL("no payload named " << prefix << "...");
  static const std::string none;
  return none;
}

std::string wrap(const std::vector<std::string>& updates) {
  std::string body = R"({"ok":true,"result":[)";
  for (std::size_t i = 0; i < updates.size(); ++i) {
    if (i > 0) body += ',';
    body += updates[i];
  }
  return body + "]}";
}

ParsedUpdate parse_one(const std::string& update) {
  auto parsed = parse_update(std::string_view(update));
  INFO(parsed.status().to_string());
  REQUIRE(parsed.ok());
  return *parsed;
}

bool valid_utf8(std::string_view s) { return sanitize_utf8(s) == s; }

// Checks that `html` is what Telegram's HTML mode accepts from us: only our tags, properly
// nested, nothing inside <pre>/<code>, every & an entity, no stray < or >.
std::string html_problem(std::string_view html) {
  static const std::vector<std::string> allowed = {"b", "i", "s", "code", "pre", "a", "blockquote"};
  std::vector<std::string> stack;
  for (std::size_t i = 0; i < html.size(); ++i) {
    const char c = html[i];
    if (c == '>') return "stray > at " + std::to_string(i);
    if (c == '&') {
      const auto semi = html.find(';', i);
      if (semi == std::string_view::npos) return "bare & at " + std::to_string(i);
      const std::string entity(html.substr(i, semi - i + 1));
      if (entity != "&lt;" && entity != "&gt;" && entity != "&amp;" && entity != "&quot;") {
        return "unknown entity " + entity;
      }
      continue;
    }
    if (c != '<') continue;
    const auto close = html.find('>', i);
    if (close == std::string_view::npos) return "unterminated tag at " + std::to_string(i);
    std::string tag(html.substr(i + 1, close - i - 1));
    i = close;
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1)) return "unbalanced </" + tag + ">";
      stack.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find(' '));
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return "tag " + name;
    if (!stack.empty() && (stack.back() == "code" || (stack.back() == "pre" && name != "code"))) {
      return name + " inside " + stack.back();
    }
    if (name == "blockquote" && std::find(stack.begin(), stack.end(), name) != stack.end()) {
      return "nested blockquote";
    }
    stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return "";
}

std::string without_whitespace(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') out += c;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

void check_parts(std::string_view text, const std::vector<std::string>& parts, std::size_t max) {
  for (const auto& part : parts) {
    CHECK_FALSE(part.empty());
    CHECK(utf16_length(part) <= max);
    if (valid_utf8(text)) CHECK(valid_utf8(part));
  }
  CHECK(without_whitespace(join(parts)) == without_whitespace(text));
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

// ---- updates ------------------------------------------------------------------------------------

TEST_CASE("telegram: all 45 real payloads parse as one batch, and each alone") {
  const auto all = payloads();
  std::vector<std::string> bodies;
  std::int64_t max_id = -1;
  for (const auto& [name, body] : all) {
    bodies.push_back(body);
    max_id = std::max<std::int64_t>(max_id, nlohmann::json::parse(body).at("update_id"));
    auto alone = parse_updates(wrap({body}));
    INFO(name << ": " << alone.status().to_string());
    REQUIRE(alone.ok());
    CHECK(alone->events.size() + alone->skipped.size() == 1);
    CHECK(alone->max_update_id.has_value());
    for (const auto& s : alone->skipped) CHECK_FALSE(s.reason.empty());
  }
  auto batch = parse_updates(wrap(bodies));
  INFO(batch.status().to_string());
  REQUIRE(batch.ok());
  CHECK(batch->events.size() + batch->skipped.size() == 45);
  REQUIRE(batch->max_update_id.has_value());
  CHECK(*batch->max_update_id == max_id);
  CHECK(*batch->max_update_id == 900000016);
  for (const auto& e : batch->events) {
    CHECK(e.event.channel == "telegram");
    CHECK(e.event.dedup_key == "telegram:" + std::to_string(e.update_id));
    CHECK_FALSE(e.event.chat_external_id.empty());
  }
}

TEST_CASE("telegram: the unknown update kind and other unhandled kinds are skipped with a reason") {
  const auto all = payloads();
  auto unknown = parse_updates(wrap({payload(all, "07_")}));
  REQUIRE(unknown.ok());
  CHECK(unknown->events.empty());
  REQUIRE(unknown->skipped.size() == 1);
  CHECK(unknown->skipped[0].update_id == 1);
  CHECK(unknown->skipped[0].reason == "unsupported update kind: new_update_kind");
  CHECK(unknown->max_update_id == 1);

  const std::map<std::string, std::string> expected = {
      {"09_", "unsupported update kind: message_reaction"},
      {"11_", "unsupported update kind: message_reaction_count"},
      {"12_", "unsupported update kind: chat_boost"},
      {"13_", "unsupported update kind: removed_chat_boost"},
      {"14_", "unsupported update kind: purchased_paid_media"},
      {"43_", "unsupported update kind: pre_checkout_query"},
      {"45_", "unsupported update kind: shipping_query"},
      {"05_", "service message: pinned_message"},
      {"16_", "service message: chat_shared"},
      {"22_", "service message: migrate_to_chat_id"},
      {"25_", "service message: forum_topic_created"},
      {"40_", "service message: successful_payment"},
  };
  for (const auto& [prefix, reason] : expected) {
    auto parsed = parse_update(std::string_view(payload(all, prefix)));
    INFO(prefix);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kUnimplemented);
    CHECK(parsed.status().message() == reason);
  }
}

TEST_CASE("telegram: text messages carry chat, sender, text and time") {
  const auto all = payloads();
  const ParsedUpdate p = parse_one(payload(all, "18_"));
  const InboundEvent& e = p.event;
  CHECK(p.update_id == 900000004);
  CHECK(e.kind == InboundKind::kMessage);
  CHECK(e.dedup_key == "telegram:900000004");
  CHECK(e.chat_external_id == "250918540");
  CHECK(e.user_id == "250918540");
  CHECK(e.user_name == "Андрей Власов");
  CHECK(e.username == "aka_dude");
  CHECK(e.chat_title == "Андрей Власов");
  CHECK(e.text == "Лол кек 😂");
  CHECK(e.media.empty());
  CHECK(e.message_id == "199785");
  CHECK(e.sent_at == Timestamp(std::chrono::seconds(1568289890)));
  // A date no Telegram message has (year 2467, past the clock's nanoseconds) is no date.
  auto far = nlohmann::json::parse(payload(all, "18_"));
  far["message"]["date"] = 15695183422;
  CHECK(parse_one(far.dump()).event.sent_at == Timestamp{});

  const InboundEvent group = parse_one(payload(all, "03_")).event;
  CHECK(group.chat_external_id == "-1001293752024");
  CHECK(group.chat_title == "CryptoInside Chat");
  CHECK(group.user_name == "the Cable Guy");
  CHECK(group.text == "/report");
  CHECK(group.reply_to_message_id == "134545");
  CHECK(group.thread_id.empty());  // a reply thread in a group that is no forum

  const InboundEvent reply = parse_one(payload(all, "44_")).event;
  CHECK(reply.text == "Reply to quoted message");
  CHECK(reply.reply_to_message_id == "12345");

  // An anonymous group admin speaks as the group, not as the placeholder bot in `from`.
  const InboundEvent anonymous = parse_one(payload(all, "21_")).event;
  CHECK(anonymous.user_id == "-1001160242915");
  CHECK(anonymous.user_name == "a");
}

TEST_CASE("telegram: forum topic messages keep their thread and no false reply") {
  const auto all = payloads();
  const InboundEvent e = parse_one(payload(all, "26_")).event;
  CHECK(e.thread_id == "4");
  CHECK(e.reply_to_message_id.empty());
  CHECK(e.chat_title == "twest");
  CHECK(e.user_name == "вафель'");
  CHECK(e.text == "blah");
}

TEST_CASE("telegram: callback queries, edits, member changes and captions") {
  const auto all = payloads();
  const InboundEvent callback = parse_one(payload(all, "30_")).event;
  CHECK(callback.kind == InboundKind::kCallback);
  CHECK(callback.callback_id == "id");
  CHECK(callback.callback_data == "some_data");
  CHECK(callback.user_id == "12345");
  CHECK(callback.user_name == "firstName");
  CHECK(callback.chat_external_id == "12345");  // an inline message names no chat

  const InboundEvent edited = parse_one(payload(all, "31_")).event;
  CHECK(edited.kind == InboundKind::kEditedMessage);
  CHECK(edited.text == "hi there (edited)");
  CHECK(edited.message_id == "12345");

  const InboundEvent blocked = parse_one(payload(all, "08_")).event;
  CHECK(blocked.kind == InboundKind::kBlocked);  // new_chat_member.status is "kicked"
  CHECK(blocked.chat_external_id == "0");
  CHECK(blocked.user_name == "FN LN");
  CHECK(blocked.dedup_key == "telegram:0");

  auto back = nlohmann::json::parse(payload(all, "08_"));
  back["my_chat_member"]["new_chat_member"]["status"] = "member";
  const InboundEvent unblocked = parse_one(back.dump()).event;
  CHECK(unblocked.kind == InboundKind::kUnblocked);

  const InboundEvent caption = parse_one(payload(all, "24_")).event;
  CHECK(caption.kind == InboundKind::kMessage);
  CHECK(caption.text == "www.example.com");
  CHECK(caption.media == "photo");
  CHECK(parse_one(payload(all, "38_")).event.text == "photo description");
  CHECK(parse_one(payload(all, "35_")).event.media == "document");
}

TEST_CASE("telegram: media without a caption arrives with empty text and a media hint") {
  const auto all = payloads();
  const std::map<std::string, std::string> media = {
      {"19_", "sticker"}, {"20_", "photo"}, {"42_", "voice"}, {"34_", "audio"}, {"37_", "location"},
      {"23_", "venue"},   {"06_", "dice"},  {"15_", "video"}, {"02_", "story"}, {"36_", "game"},
  };
  for (const auto& [prefix, kind] : media) {
    INFO(prefix);
    const InboundEvent e = parse_one(payload(all, prefix)).event;
    CHECK(e.kind == InboundKind::kMessage);
    CHECK(e.text.empty());
    CHECK(e.media == kind);
  }
}

TEST_CASE("telegram: one broken update never fails the batch") {
  const auto all = payloads();
  const std::string body =
      wrap({payload(all, "18_"), R"({"update_id": 950000000, "message": 42})", R"({"no_id": true})",
            "17", R"({"update_id": "7"})", R"({"update_id": 5, "message": {"chat": {"id": "x"}}})",
            R"({"update_id": 6})", payload(all, "31_")});
  auto batch = parse_updates(body);
  INFO(batch.status().to_string());
  REQUIRE(batch.ok());
  REQUIRE(batch->events.size() == 2);
  CHECK(batch->events[0].event.text == "Лол кек 😂");
  CHECK(batch->events[1].event.kind == InboundKind::kEditedMessage);
  CHECK(batch->max_update_id == 950000000);  // the garbage update's id still advances the offset
  REQUIRE(batch->skipped.size() == 6);
  CHECK(batch->skipped[0].update_id == 950000000);
  CHECK(batch->skipped[0].reason == "malformed: message is not an object");
  CHECK_FALSE(batch->skipped[1].update_id.has_value());
  CHECK(batch->skipped[1].reason.starts_with("malformed"));
  CHECK_FALSE(batch->skipped[2].update_id.has_value());
  CHECK_FALSE(batch->skipped[3].update_id.has_value());
  CHECK(batch->skipped[4].update_id == 5);
  CHECK(batch->skipped[5].reason == "malformed: update carries nothing");

  auto empty = parse_updates(R"({"ok":true,"result":[]})");
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->max_update_id.has_value());

  // A NUL byte after an update is not JSON (the JSON parser would stop reading there).
  using namespace std::string_literals;
  const std::string with_nul = payload(all, "18_") + "\0junk"s;
  const auto nul = parse_update(std::string_view(with_nul));
  REQUIRE_FALSE(nul.ok());
  CHECK(nul.status().message() == "the update is not valid JSON (it holds a NUL byte)");
}

TEST_CASE("telegram: getUpdates errors map to codes a transport can act on") {
  auto conflict = parse_updates(
      R"({"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"})");
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.status().code() == StatusCode::kFailedPrecondition);
  CHECK(conflict.status().message().find("another bot instance is polling this token") !=
        std::string::npos);

  auto unauthorized =
      parse_updates(R"({"ok":false,"error_code":401,"description":"Unauthorized"})");
  REQUIRE_FALSE(unauthorized.ok());
  CHECK(unauthorized.status().code() == StatusCode::kUnauthenticated);

  auto limited = parse_updates(
      R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}})");
  REQUIRE_FALSE(limited.ok());
  CHECK(limited.status().code() == StatusCode::kResourceExhausted);
  CHECK(limited.status().retry_after() == std::optional<std::chrono::milliseconds>(7000ms));

  auto bad_gateway = parse_updates(R"({"ok":false,"error_code":502,"description":"Bad Gateway"})");
  CHECK(bad_gateway.status().code() == StatusCode::kUnavailable);

  for (const char* garbage : {"", "<html>502 Bad Gateway</html>", "{\"ok\":true", "[]", "{}",
                              R"({"ok":true,"result":{}})", "\xff\xfe"}) {
    INFO(garbage);
    auto parsed = parse_updates(garbage);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
  }
  // Absurd nesting is refused before the parser sees it.
  CHECK(parse_updates(std::string(100000, '[')).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("telegram: error messages never carry a bot token") {
  auto echoed = parse_updates(
      R"({"ok":false,"error_code":401,"description":"Unauthorized: 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"})");
  REQUIRE_FALSE(echoed.ok());
  CHECK(echoed.status().message().find("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw") == std::string::npos);
  CHECK(echoed.status().message().find("<redacted>") != std::string::npos);
}

// Every node of every payload, replaced in turn by a value of the wrong type: the parser must
// report or skip, never crash, and a batch must still come back whole.
TEST_CASE("telegram: payloads with any field of the wrong type are skipped, not fatal") {
  const auto all = payloads();
  const std::vector<nlohmann::json> wrong = {nullptr,
                                             42,
                                             -1,
                                             1.5,
                                             "x",
                                             nlohmann::json::array(),
                                             nlohmann::json::object(),
                                             true,
                                             18446744073709551615u};
  std::size_t parsed = 0;
  for (const auto& [name, body] : all) {
    const auto original = nlohmann::json::parse(body);
    const auto flat = original.flatten();
    for (const auto& [pointer, value] : flat.items()) {
      // Every prefix of the path: replace a leaf, or the object that holds it.
      for (std::size_t cut = pointer.size(); cut != std::string::npos && cut > 0;
           cut = pointer.rfind('/', cut - 1)) {
        const nlohmann::json::json_pointer at(pointer.substr(0, cut));
        for (const auto& bad : wrong) {
          auto mutated = original;
          mutated[at] = bad;
          INFO(name << " " << at.to_string() << " = " << bad.dump());
          auto batch = parse_updates(wrap({mutated.dump(), payload(all, "18_")}));
          REQUIRE(batch.ok());
          CHECK(batch->events.size() + batch->skipped.size() == 2);
          CHECK(batch->events.back().event.text == "Лол кек 😂");
          ++parsed;
        }
      }
    }
  }
  CHECK(parsed > 1000);
}

// ---- method responses ---------------------------------------------------------------------------

TEST_CASE("telegram: method responses give the result or a mapped error") {
  auto sent = parse_method_response(
      R"({"ok":true,"result":{"message_id":77,"chat":{"id":1,"type":"private"},"date":1,"text":"hi"}})",
      200, /*keep_result=*/true);
  REQUIRE(sent.ok());
  CHECK(sent->message_id == "77");
  CHECK(nlohmann::json::parse(sent->result_json)["text"] == "hi");
  auto lean = parse_method_response(R"({"ok":true,"result":{"message_id":78}})", 200);
  REQUIRE(lean.ok());
  CHECK(lean->message_id == "78");
  CHECK(lean->result_json.empty());  // not asked for

  auto acknowledged = parse_method_response(R"({"ok":true,"result":true})", 200, true);
  REQUIRE(acknowledged.ok());
  CHECK(acknowledged->result_json == "true");
  CHECK(acknowledged->message_id.empty());

  struct Case {
    const char* body;
    int http;
    StatusCode code;
    const char* reason;
  };
  const Case cases[] = {
      {R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}})",
       429, StatusCode::kResourceExhausted, "rate_limited"},
      {R"({"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"})",
       403, StatusCode::kPermissionDenied, "blocked"},
      {R"({"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""})",
       400, StatusCode::kInvalidArgument, "parse_entities"},
      {R"({"ok":false,"error_code":400,"description":"Bad Request: chat not found"})", 400,
       StatusCode::kInvalidArgument, ""},
      {R"({"ok":false,"error_code":400,"description":"Bad Request: message is not modified"})", 400,
       StatusCode::kInvalidArgument, "not_modified"},
      {R"({"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234}})",
       400, StatusCode::kFailedPrecondition, "chat_migrated"},
      {R"({"ok":false,"error_code":401,"description":"Unauthorized"})", 401,
       StatusCode::kUnauthenticated, ""},
      {R"({"ok":false,"error_code":409,"description":"Conflict: can't use getUpdates method while webhook is active"})",
       409, StatusCode::kFailedPrecondition, ""},
      {R"({"ok":false,"error_code":500,"description":"Internal Server Error"})", 500,
       StatusCode::kUnavailable, ""},
      {"<html>Bad Gateway</html>", 502, StatusCode::kUnavailable, ""},
      {"", 0, StatusCode::kUnavailable, ""},
      {"not json", 200, StatusCode::kInvalidArgument, ""},
      {"Too Many Requests", 429, StatusCode::kResourceExhausted, "rate_limited"},
      {R"({"ok":true})", 200, StatusCode::kInvalidArgument, ""},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    auto r = parse_method_response(c.body, c.http);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == c.code);
    CHECK(r.status().reason() == c.reason);
  }
  auto limited = parse_method_response(cases[0].body, 429);
  CHECK(limited.status().retry_after() == std::optional<std::chrono::milliseconds>(3000ms));
}

TEST_CASE("telegram: a sent document gives its file_id; a refused file_id is bad_file_id") {
  auto sent = parse_method_response(
      R"({"ok":true,"result":{"message_id":80,"chat":{"id":1,"type":"private"},"date":1,)"
      R"("document":{"file_id":"BQACAgIAAxkBAAI","file_unique_id":"AgAD","file_name":"a.pdf",)"
      R"("mime_type":"application/pdf","file_size":3}}})",
      200);
  REQUIRE(sent.ok());
  CHECK(sent->message_id == "80");
  CHECK(sent->file_id == "BQACAgIAAxkBAAI");
  // Not a document, or a document of the wrong shape: no file_id, and no failure.
  for (const char* body : {R"({"ok":true,"result":{"message_id":81,"text":"hi"}})",
                           R"({"ok":true,"result":{"message_id":82,"document":"BQAC"}})",
                           R"({"ok":true,"result":{"message_id":83,"document":{"file_id":7}}})",
                           R"({"ok":true,"result":true})"}) {
    INFO(body);
    auto r = parse_method_response(body, 200);
    REQUIRE(r.ok());
    CHECK(r->file_id.empty());
  }
  for (const char* description :
       {"Bad Request: wrong file identifier/HTTP URL specified",
        "Bad Request: wrong remote file identifier specified: Wrong string length",
        "Bad Request: FILE_REFERENCE_EXPIRED: file reference expired"}) {
    INFO(description);
    const std::string body =
        nlohmann::json{{"ok", false}, {"error_code", 400}, {"description", description}}.dump();
    auto r = parse_method_response(body, 400);
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().reason() == "bad_file_id");
  }
}

// ---- request bodies -----------------------------------------------------------------------------

TEST_CASE("telegram: sendMessage bodies") {
  OutboundMessage m;
  m.chat_external_id = "-1001234";
  m.text = "<b>Hi</b> & welcome";
  m.reply_to_message_id = "42";
  m.thread_id = "7";
  m.buttons = {{{"Yes", "yes"}, {"No", "no"}}, {}, {{"Call a human", "handoff"}}};
  auto body = build_send_message(m, true, true);
  INFO(body.status().to_string());
  REQUIRE(body.ok());
  const auto j = nlohmann::json::parse(*body);
  CHECK(j["chat_id"] == -1001234);
  CHECK(j["text"] == m.text);
  CHECK(j["parse_mode"] == "HTML");
  CHECK(j["message_thread_id"] == 7);
  CHECK(j["reply_parameters"]["message_id"] == 42);
  CHECK(j["reply_parameters"]["allow_sending_without_reply"] == true);
  CHECK(j["link_preview_options"]["is_disabled"] == true);
  const auto& keyboard = j["reply_markup"]["inline_keyboard"];
  REQUIRE(keyboard.size() == 2);  // the empty row is dropped
  CHECK(keyboard[0][1]["text"] == "No");
  CHECK(keyboard[0][1]["callback_data"] == "no");
  CHECK(keyboard[1][0]["callback_data"] == "handoff");

  OutboundMessage plain;
  plain.chat_external_id = "@channel";
  plain.text = "plain \xff text";
  auto plain_body = build_send_message(plain, false);
  REQUIRE(plain_body.ok());
  const auto p = nlohmann::json::parse(*plain_body);
  CHECK(p["chat_id"] == "@channel");
  CHECK(p["text"] == "plain \xEF\xBF\xBD text");
  CHECK_FALSE(p.contains("parse_mode"));
  CHECK_FALSE(p.contains("reply_markup"));
  CHECK_FALSE(p.contains("reply_parameters"));

  auto edit = build_edit_message_text(m, "99", true);
  REQUIRE(edit.ok());
  const auto e = nlohmann::json::parse(*edit);
  CHECK(e["message_id"] == 99);
  CHECK_FALSE(e.contains("reply_parameters"));

  OutboundMessage bad = plain;
  bad.text = "  \n";
  CHECK(build_send_message(bad, false).status().code() == StatusCode::kInvalidArgument);
  bad = plain;
  bad.chat_external_id = "";
  CHECK(build_send_message(bad, false).status().code() == StatusCode::kInvalidArgument);
  bad = plain;
  bad.buttons = {{{"x", std::string(65, 'a')}}};
  CHECK(build_send_message(bad, false).status().code() == StatusCode::kInvalidArgument);
  bad = plain;
  bad.text = std::string(4097, 'a');
  CHECK(build_send_message(bad, false).status().code() == StatusCode::kInvalidArgument);
  bad.text = "<b>" + std::string(4096, 'a') + "</b>";  // the tags do not count
  CHECK(build_send_message(bad, true).ok());
}

TEST_CASE("telegram: sendDocument fields and bodies") {
  OutboundMessage m;
  m.chat_external_id = "-1001234";
  m.text = "not used";
  m.reply_to_message_id = "42";
  m.thread_id = "7";
  m.buttons = {{{"Yes", "yes"}}};
  auto fields = build_send_document_fields(m, "Отчёт \xff");
  REQUIRE(fields.ok());
  std::map<std::string, std::string> by_name;
  for (const auto& f : *fields) by_name[f.name] = f.value;
  CHECK(by_name.size() == 5);
  CHECK(by_name["chat_id"] == "-1001234");
  CHECK(by_name["message_thread_id"] == "7");
  CHECK(by_name["caption"] == "Отчёт \xEF\xBF\xBD");
  CHECK(nlohmann::json::parse(by_name["reply_parameters"])["message_id"] == 42);
  CHECK(nlohmann::json::parse(by_name["reply_markup"])["inline_keyboard"][0][0]["callback_data"] ==
        "yes");
  CHECK_FALSE(by_name.contains("text"));

  auto body = build_send_document(m, "", "BQACfile");
  REQUIRE(body.ok());
  const auto j = nlohmann::json::parse(*body);
  CHECK(j["document"] == "BQACfile");
  CHECK(j["chat_id"] == -1001234);
  CHECK(j["message_thread_id"] == 7);
  CHECK_FALSE(j.contains("caption"));  // an empty caption is none
  CHECK_FALSE(j.contains("text"));

  OutboundMessage bare;
  bare.chat_external_id = "@channel";
  auto bare_fields = build_send_document_fields(bare, "");
  REQUIRE(bare_fields.ok());
  REQUIRE(bare_fields->size() == 1);
  CHECK((*bare_fields)[0].value == "@channel");

  CHECK(build_send_document(bare, "", "").status().code() == StatusCode::kInvalidArgument);
  bare.chat_external_id = "";
  CHECK(build_send_document_fields(bare, "").status().code() == StatusCode::kInvalidArgument);
  bare.chat_external_id = "1";
  bare.thread_id = "seven";
  CHECK(build_send_document(bare, "", "id").status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("telegram: captions are cut to 1024 UTF-16 units, ending in an ellipsis") {
  CHECK(fit_caption("short") == "short");
  CHECK(fit_caption("") == "");
  const std::string exact(kMaxCaptionUtf16, 'a');
  CHECK(fit_caption(exact) == exact);
  std::string words;
  while (utf16_length(words) <= kMaxCaptionUtf16) words += "слово ";
  const std::string cut = fit_caption(words);
  CHECK(utf16_length(cut) <= kMaxCaptionUtf16);
  CHECK(cut.ends_with("слово…"));  // at a word
  CHECK(words.starts_with(cut.substr(0, cut.size() - std::string("…").size())));
  // Emoji are two units each; the cut never splits one.
  std::string emoji;
  for (int i = 0; i < 700; ++i) emoji += "😀";
  const std::string cut_emoji = fit_caption(emoji);
  CHECK(utf16_length(cut_emoji) == kMaxCaptionUtf16 - 1);  // 511 emoji and the ellipsis
  CHECK(cut_emoji.ends_with("😀…"));
  CHECK(sanitize_utf8(cut_emoji) == cut_emoji);
}

TEST_CASE("telegram: a file's name is its own or its path's last segment, made printable") {
  CHECK(attachment_file_name({"/srv/files/a.pdf", "", "", ""}) == "a.pdf");
  CHECK(attachment_file_name({"/srv/files/a.pdf", "Отчёт.pdf", "", ""}) == "Отчёт.pdf");
  CHECK(attachment_file_name({"relative.txt", "", "", ""}) == "relative.txt");
  CHECK(attachment_file_name({"/x", "a\r\nb\t.txt", "", ""}) == "a__b_.txt");
  CHECK(attachment_file_name({"/x", "bad \xff", "", ""}) == "bad \xEF\xBF\xBD");
  CHECK(attachment_file_name({"/srv/files/", "", "", ""}) == "file");
}

// ---- UTF-16 -------------------------------------------------------------------------------------

TEST_CASE("telegram: UTF-16 lengths and entity substrings") {
  CHECK(utf16_length("") == 0);
  CHECK(utf16_length("hello") == 5);
  CHECK(utf16_length("Лол кек 😂") == 10);
  CHECK(utf16_length("中文字") == 3);
  CHECK(utf16_length("😀😀") == 4);
  CHECK(utf16_length("👍🏽") == 4);  // a skin tone modifier is a second astral code point
  CHECK(utf16_length("\xff\xfe") == 2);
  CHECK(utf16_length("\xF0\x9F") == 2);      // a cut-off emoji: two stray bytes
  CHECK(utf16_length("\xC0\xAF") == 2);      // an overlong '/'
  CHECK(utf16_length("\xED\xA0\x80") == 3);  // an encoded surrogate

  CHECK(utf16_substr("a😀b", 1, 2) == "😀");
  CHECK(utf16_substr("a😀b", 3, 1) == "b");
  CHECK(utf16_substr("a😀b", 2, 1).empty());  // half a surrogate pair is no character
  CHECK(utf16_substr("a😀b", 0, 100) == "a😀b");
  CHECK(utf16_substr("a😀b", 100, 1).empty());
  CHECK(utf16_substr("abc", 1, std::numeric_limits<std::size_t>::max()) == "bc");
  CHECK(utf16_substr("Лол кек 😂", 8, 2) == "😂");
  CHECK(utf16_substr("x\xF0\x9F", 1, 1) == "\xF0");

  const auto all = payloads();
  const auto j = nlohmann::json::parse(payload(all, "24_"));
  const std::string caption = j["message"]["caption"];
  const auto& entity = j["message"]["caption_entities"][0];
  CHECK(utf16_substr(caption, entity["offset"], entity["length"]) == "www.example.com");
}

// ---- splitting ----------------------------------------------------------------------------------

TEST_CASE("telegram: short texts stay whole, empty texts give no parts") {
  CHECK(split_message("hello") == std::vector<std::string>{"hello"});
  CHECK(split_message("").empty());
  CHECK(split_message(std::string(4096, 'a')).size() == 1);
  CHECK(split_message(std::string(4097, 'a')).size() == 2);
}

TEST_CASE("telegram: splitting prefers paragraphs, then lines, sentences, spaces") {
  const std::string para1 = repeat("First paragraph sentence. ", 100) + "End.";
  const std::string para2 = repeat("Second paragraph line\n", 150);
  const std::string text = para1 + "\n\n" + para2;
  auto parts = split_message(text);
  check_parts(text, parts, 4096);
  REQUIRE(parts.size() >= 2);
  CHECK(parts[0] == para1);

  const std::string lines = repeat("a line of text\n", 400);
  parts = split_message(lines, 100);
  check_parts(lines, parts, 100);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) CHECK(parts[i].ends_with("text"));

  const std::string sentences = repeat("Is this a sentence? Yes it is! Fine. ", 50);
  parts = split_message(sentences, 90);
  check_parts(sentences, parts, 90);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const char last = parts[i].back();
    CHECK((last == '.' || last == '!' || last == '?'));
  }

  const std::string words = repeat("word ", 1000);
  parts = split_message(words, 33);
  check_parts(words, parts, 33);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) CHECK(parts[i].back() == 'd');

  // A paragraph break too early to be worth it loses to a later line break.
  const std::string early = "Hi.\n\n" + repeat("x", 50) + "\n" + repeat("y", 50);
  parts = split_message(early, 80);
  check_parts(early, parts, 80);
  CHECK(parts[0] == "Hi.\n\n" + repeat("x", 50));
}

TEST_CASE("telegram: splitting never breaks a code point or a surrogate pair") {
  const std::string emoji = repeat("😀", 3000);
  auto parts = split_message(emoji);
  check_parts(emoji, parts, 4096);
  CHECK(join(parts) == emoji);
  CHECK(utf16_length(parts[0]) == 4096);

  const std::string cyrillic = repeat("Привет мир ", 800);
  parts = split_message(cyrillic, 1000);
  check_parts(cyrillic, parts, 1000);

  const std::string cjk = repeat("中文字符", 3000);
  parts = split_message(cjk);
  check_parts(cjk, parts, 4096);
  CHECK(join(parts) == cjk);

  for (std::size_t max : {1, 2, 3, 5}) {
    const std::string mixed = repeat("a😀б中", 20);
    parts = split_message(mixed, max);
    check_parts(mixed, parts, std::max<std::size_t>(max, 2));
    CHECK(join(parts) == mixed);
  }
}

TEST_CASE("telegram: splitting random texts keeps every piece, in order, within the limit") {
  std::mt19937 rng(12345);
  const std::vector<std::string> pieces = {"a",    "word", "б",  "中",   "😀",        " ",  "\n",
                                           "\n\n", ". ",   "! ", "\xff", "\xF0\x9F", "  ", "\r\n"};
  for (int round = 0; round < 400; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    const std::size_t max = 2 + rng() % 40;
    const auto parts = split_message(text, max);
    INFO("round " << round);
    check_parts(text, parts, max);
  }
}

// ---- Markdown ----------------------------------------------------------------------------------

TEST_CASE("telegram: Markdown renders to Telegram HTML") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"**bold** and __bold__", "<b>bold</b> and <b>bold</b>"},
      {"*it* and _it_", "<i>it</i> and <i>it</i>"},
      {"***both***", "<b><i>both</i></b>"},
      {"**bold with *italic* inside**", "<b>bold with <i>italic</i> inside</b>"},
      {"~~gone~~", "<s>gone</s>"},
      {"use `a < b && c`", "use <code>a &lt; b &amp;&amp; c</code>"},
      {"``code with ` inside``", "<code>code with ` inside</code>"},
      {"```python\nprint(1 < 2)\n\nx = {}\n```",
       "<pre><code class=\"language-python\">print(1 &lt; 2)\n\nx = {}</code></pre>"},
      {"```\n**not bold**\n```", "<pre>**not bold**</pre>"},
      {"before\n```js\nx\n```\nafter",
       "before\n<pre><code class=\"language-js\">x</code></pre>\nafter"},
      {"[site](https://example.com/a?b=1&c=\"2\")",
       "<a href=\"https://example.com/a?b=1&amp;c=&quot;2&quot;\">site</a>"},
      {"[**bold** link](https://x.y/(a))", "<a href=\"https://x.y/(a)\"><b>bold</b> link</a>"},
      {"[x](javascript:alert(1))", "[x](javascript:alert(1))"},
      {"[x](relative/path)", "[x](relative/path)"},
      {"# Title", "<b>Title</b>"},
      {"## **Bold** title ##", "<b>Bold title</b>"},
      {"#hashtag", "#hashtag"},
      {"- one\n* two\n  + nested", "• one\n• two\n  • nested"},
      {"1. first\n2. second", "1. first\n2. second"},
      {"> quoted\n> **more**\nafter", "<blockquote>quoted\n<b>more</b></blockquote>\nafter"},
      {"<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"},
      {"Tom & Jerry", "Tom &amp; Jerry"},
      {"**bold", "**bold"},
      {"bold**", "bold**"},
      {"*a **b", "*a **b"},
      {"`open code", "`open code"},
      {"[no link](", "[no link]("},
      {"snake_case_name and __init__", "snake_case_name and <b>init</b>"},
      {"file_name_v2.txt", "file_name_v2.txt"},
      {"2 * 3 * 4", "2 * 3 * 4"},
      {"\\*not italic\\*", "*not italic*"},
      {"---", "---"},
      {"line\r\nbreak", "line\nbreak"},
      {"**a\nb**", "**a\nb**"},
      {"```\nunclosed fence\nruns to the end", "<pre>unclosed fence\nruns to the end</pre>"},
      {"```\n```", ""},
  };
  for (const auto& [markdown, html] : cases) {
    INFO(markdown);
    const std::string out = render_markdown_html(markdown);
    CHECK(out == html);
    CHECK(html_problem(out) == "");
  }
}

TEST_CASE("telegram: rendering any input gives balanced, valid HTML no longer than its source") {
  std::mt19937 rng(777);
  const std::string alphabet = "*_~`[]()#->\\ \n!.<&\"abcxyz";
  const std::vector<std::string> extra = {
      "```", "```py\n", "**", "](https://a.b/", "😀", "б", "\xff", "\xE2\x80", "> ", "- ", "# "};
  for (int round = 0; round < 3000; ++round) {
    std::string input;
    const int n = static_cast<int>(rng() % 120);
    for (int i = 0; i < n; ++i) {
      const unsigned pick = rng() % 10;
      if (pick < 6) {
        input += alphabet[rng() % alphabet.size()];
      } else if (pick < 8) {
        input += extra[rng() % extra.size()];
      } else {
        input += static_cast<char>(rng() % 256);
      }
    }
    const std::string out = render_markdown_html(input);
    INFO("input: " << input);
    INFO("output: " << out);
    CHECK(html_problem(out) == "");
    CHECK(valid_utf8(out));
    CHECK(html_visible_utf16_length(out) <= utf16_length(input));
  }
}

TEST_CASE("telegram: long Markdown splits into parts that each render within the limit") {
  std::string markdown = "# Answer\n\n" + repeat("Some **bold** text and `code`. ", 60) +
                         "\n\n```cpp\n" + repeat("int x = a < b ? 1 : 2;\n", 200) + "```\n\n" +
                         repeat("- an item with a [link](https://example.com)\n", 80);
  const std::size_t max = 1000;
  const auto parts = split_markdown(markdown, max);
  REQUIRE(parts.size() > 3);
  bool saw_reopened = false;
  for (const auto& part : parts) {
    const std::string html = render_markdown_html(part);
    INFO(part);
    CHECK(html_problem(html) == "");
    CHECK(html_visible_utf16_length(html) <= max);
    CHECK(html.find("```") == std::string::npos);  // every fence is closed within its part
    if (part.starts_with("```cpp\n")) saw_reopened = true;
  }
  CHECK(saw_reopened);
  CHECK(split_markdown("").empty());
}

TEST_CASE("storable text: broken UTF-8 and NUL become U+FFFD, valid text stays as it is") {
  using llmassist::detail::storable_text;
  const std::string valid = "naïve café — Привет 🙂\ttab";
  CHECK(storable_text(valid) == valid);
  CHECK(storable_text(std::string("a\0b", 3)) ==
        "a\xEF\xBF\xBD"
        "b");
  CHECK(storable_text("bad \xff byte") == "bad \xEF\xBF\xBD byte");
  CHECK(storable_text("cut \xD0") == "cut \xEF\xBF\xBD");  // a truncated sequence
  CHECK(storable_text("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(storable_text("") == "");
}
