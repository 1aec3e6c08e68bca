// The Telegram transport against the mock Bot API server over loopback: polling and the offset,
// webhook delivery and its secret, sending with splitting, fallbacks, retries and pacing.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "llmassist/telegram/telegram_transport.h"
#include "support/capturing_logger.h"
#include "support/child_process.h"
#include "support/free_port.h"
#include "support/mock_telegram_server.h"
#include "support/temp_dir.h"
#include "telegram/telegram_format.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::free_port;
using llmassist::testing::MockTelegramServer;
using llmassist::testing::TempDir;
using Failure = MockTelegramServer::Failure;
using nlohmann::json;

#ifndef LLMASSIST_TELEGRAM_UPDATES_DIR
#error "LLMASSIST_TELEGRAM_UPDATES_DIR must name the telegram-updates test data folder"
#endif

namespace {

using llmassist::testing::CapturingLogger;
using llmassist::testing::eventually;

// What the handler saw, and a switch to make it fail.
class Inbox {
 public:
  InboundHandler handler() {
    return [this](std::span<const InboundEvent> events) -> InboundAck {
      std::lock_guard lock(mu_);
      batch_sizes_.push_back(events.size());
      for (std::size_t i = 0; i < events.size(); ++i) {
        const InboundEvent& e = events[i];
        seen_.push_back(e);
        cv_.notify_all();
        if (fail_dedup_keys_.erase(e.dedup_key) > 0) {
          return {i, unavailable("test: the store is down for " + e.dedup_key)};
        }
        accepted_.push_back(e);
      }
      return {events.size(), Status()};
    };
  }
  void fail_once(const std::string& dedup_key) {
    std::lock_guard lock(mu_);
    fail_dedup_keys_.insert(dedup_key);
  }
  bool wait_accepted(std::size_t count, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return accepted_.size() >= count; });
  }
  std::vector<std::string> seen_keys() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& e : seen_) out.push_back(e.dedup_key);
    return out;
  }
  std::vector<InboundEvent> accepted() const {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  // How many events each call of the handler was given.
  std::vector<std::size_t> batch_sizes() const {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<InboundEvent> seen_;
  std::vector<InboundEvent> accepted_;
  std::vector<std::size_t> batch_sizes_;
  std::set<std::string> fail_dedup_keys_;
};

template <typename T>
class Outcome {
 public:
  std::function<void(T)> callback() {
    return [p = promise_](T v) { p->set_value(std::move(v)); };
  }
  T get(std::chrono::seconds bound = 10s) {
    REQUIRE(future_.wait_for(bound) == std::future_status::ready);
    return future_.get();
  }
  bool ready() const { return future_.wait_for(0s) == std::future_status::ready; }

 private:
  std::shared_ptr<std::promise<T>> promise_ = std::make_shared<std::promise<T>>();
  std::future<T> future_ = promise_->get_future();
};

struct Fixture {
  MockTelegramServer tg;
  std::shared_ptr<CapturingLogger> logger = std::make_shared<CapturingLogger>();

  TelegramTransportOptions options() const {
    TelegramTransportOptions o;
    o.token = tg.token();
    o.api_url = tg.api_url();
    o.polling.timeout = 1s;
    o.pacing.per_chat_interval = 0ms;
    o.pacing.global_per_second = 0;
    o.retry.initial_backoff = 50ms;
    o.retry.max_backoff = 200ms;
    o.logger = logger;
    return o;
  }
  std::unique_ptr<ChatTransport> make(TelegramTransportOptions o) {
    auto t = make_telegram_transport(std::move(o));
    REQUIRE(t.ok());
    return std::move(t).value();
  }
  std::unique_ptr<ChatTransport> make() { return make(options()); }
};

OutboundMessage text_to(std::string chat, std::string text,
                        TextFormat format = TextFormat::kPlain) {
  OutboundMessage m;
  m.chat_external_id = std::move(chat);
  m.text = std::move(text);
  m.format = format;
  return m;
}

std::string payload(const std::string& file, std::int64_t update_id) {
  std::ifstream in(std::filesystem::path(LLMASSIST_TELEGRAM_UPDATES_DIR) / file);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  json j = json::parse(s.str());
  j["update_id"] = update_id;
  return j.dump();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Bytes of every value, NULs included.
std::string binary_bytes(std::size_t size, int seed = 0) {
  std::string out;
  for (std::size_t i = 0; i < size; ++i) out += static_cast<char>((i * 31 + seed) % 256);
  return out;
}

OutboundMessage files_to(std::string chat, std::vector<Attachment> files, std::string text = "") {
  OutboundMessage m = text_to(std::move(chat), std::move(text));
  m.attachments = std::move(files);
  return m;
}

// The offsets of the getUpdates calls the mock saw, in order.
std::vector<std::int64_t> offsets(const MockTelegramServer& tg) {
  std::vector<std::int64_t> out;
  for (const auto& c : tg.calls("getUpdates")) out.push_back(c.params.value("offset", 0));
  return out;
}

}  // namespace

TEST_CASE("telegram transport: polling delivers in order and confirms only what was handled") {
  Fixture f;
  Inbox inbox;
  inbox.fail_once("telegram:11");
  f.tg.push_update(10, MockTelegramServer::text_update(10, "first"));
  f.tg.push_update(11, MockTelegramServer::text_update(11, "second"));
  f.tg.push_update(12, MockTelegramServer::text_update(12, "third"));
  auto t = f.make();
  CHECK(t->channel() == "telegram");
  REQUIRE(t->start(inbox.handler()).ok());
  CHECK(t->start(inbox.handler()).code() == StatusCode::kFailedPrecondition);
  REQUIRE(inbox.wait_accepted(3));
  REQUIRE(f.tg.wait_for_calls("getUpdates", 3));
  t->stop();

  CHECK(inbox.seen_keys() ==
        std::vector<std::string>{"telegram:10", "telegram:11", "telegram:11", "telegram:12"});
  // A page of updates goes to the handler in one call (to be stored in one transaction); after
  // the failure, what was not taken comes again.
  CHECK(inbox.batch_sizes() == std::vector<std::size_t>{3, 2});
  const auto accepted = inbox.accepted();
  REQUIRE(accepted.size() == 3);
  CHECK(accepted[0].text == "first");
  CHECK(accepted[1].text == "second");
  CHECK(accepted[2].text == "third");
  // After the failure the next poll asks from update 11 again: 11 was not confirmed.
  const auto seen = offsets(f.tg);
  REQUIRE(seen.size() >= 3);
  CHECK(seen[0] == 0);
  CHECK(seen[1] == 11);
  CHECK(seen.back() == 13);
  CHECK(f.tg.pending_updates() == 0);
  CHECK(f.logger->contains("offered again"));
}

TEST_CASE("telegram transport: unknown and malformed updates are skipped, the offset advances") {
  Fixture f;
  Inbox inbox;
  inbox.fail_once("telegram:25");
  f.tg.push_update(20, MockTelegramServer::text_update(20, "before"));
  f.tg.push_update(21, payload("07_teloxide_new_update_kind_new_update_kind_error.json", 21));
  f.tg.push_update(22, R"({"update_id": 22, "message": "not an object"})");
  f.tg.push_update(23, payload("43_illemius_pre_checkout_query.json", 23));
  f.tg.push_update(24, payload("30_teloxide_callback_query_deserialize.json", 24));
  f.tg.push_update(25, MockTelegramServer::text_update(25, "after"));
  auto t = f.make();
  REQUIRE(t->start(inbox.handler()).ok());
  REQUIRE(inbox.wait_accepted(3));
  REQUIRE(f.tg.wait_for_calls("getUpdates", 3));
  t->stop();

  const auto accepted = inbox.accepted();
  REQUIRE(accepted.size() == 3);
  CHECK(accepted[0].text == "before");
  CHECK(accepted[1].kind == InboundKind::kCallback);
  CHECK(accepted[2].text == "after");
  // The handler refused 25: the skipped 21–23 were confirmed all the same, 25 was not.
  const auto seen = offsets(f.tg);
  REQUIRE(seen.size() >= 3);
  CHECK(seen[1] == 25);
  CHECK(seen.back() == 26);
  CHECK(f.logger->contains("update 21 skipped"));
  CHECK(f.logger->contains("update 22 skipped"));
}

TEST_CASE("telegram transport: a long answer is split and its parts arrive in order") {
  Fixture f;
  auto t = f.make();
  std::string text;
  for (int i = 0; i < 120; ++i) {
    text += "Paragraph " + std::to_string(i) +
            " 😀 with **bold** words and an emoji 🎉 at its "
            "end, to fill the message.\n\n";
  }
  REQUIRE(telegram::utf16_length(text) > 2 * telegram::kMaxMessageUtf16);
  Outcome<Result<SentMessage>> sent;
  auto m = text_to("1001", text, TextFormat::kMarkdown);
  m.buttons = {{{"Yes", "yes"}, {"No", "no"}}};
  t->send(m, sent.callback());
  auto result = sent.get();
  REQUIRE(result.ok());
  const auto calls = f.tg.calls("sendMessage");
  REQUIRE(calls.size() >= 3);
  REQUIRE(result->message_ids.size() == calls.size());
  int last_paragraph = -1;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const std::string part = calls[i].params.at("text");
    CHECK(calls[i].params.at("parse_mode") == "HTML");
    CHECK(telegram::html_visible_utf16_length(part) <= telegram::kMaxMessageUtf16);
    CHECK(calls[i].params.contains("reply_markup") == (i + 1 == calls.size()));
    // Each part begins with the paragraph after the last one of the part before.
    const auto at = part.find("Paragraph ");
    REQUIRE(at == 0);
    const int first = std::stoi(part.substr(10));
    CHECK(first == last_paragraph + 1);
    last_paragraph = std::stoi(part.substr(part.rfind("Paragraph ") + 10));
    CHECK(f.tg.message_text(std::stoll(result->message_ids[i])) == part);
  }
  CHECK(last_paragraph == 119);
}

TEST_CASE("telegram transport: a 429 is waited out before the same part is sent again") {
  Fixture f;
  f.tg.fail_next("sendMessage", Failure::too_many_requests(1));
  auto t = f.make();
  auto result = send_sync(*t, text_to("1001", "Hello"));
  REQUIRE(result.ok());
  const auto calls = f.tg.calls("sendMessage");
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].status == 429);
  CHECK(calls[1].status == 200);
  CHECK(calls[1].at - calls[0].at >= 1s);
  CHECK(calls[1].params.at("text") == "Hello");
}

TEST_CASE("telegram transport: 5xx is retried, 403 and other 400s are final") {
  Fixture f;
  auto t = f.make();
  SUBCASE("5xx") {
    f.tg.fail_next("sendMessage", Failure::server_error(502), 2);
    auto result = send_sync(*t, text_to("1001", "Hello"));
    REQUIRE(result.ok());
    CHECK(f.tg.calls("sendMessage").size() == 3);
  }
  SUBCASE("5xx beyond the attempts") {
    f.tg.fail_next("sendMessage", Failure::server_error(500), 10);
    auto o = f.options();
    o.retry.max_attempts = 3;
    auto t3 = f.make(o);
    auto result = send_sync(*t3, text_to("1001", "Hello"));
    CHECK(result.status().code() == StatusCode::kUnavailable);
    CHECK(f.tg.calls("sendMessage").size() == 3);
  }
  SUBCASE("403") {
    f.tg.fail_next("sendMessage", Failure::blocked());
    auto result = send_sync(*t, text_to("1001", "Hello"));
    CHECK(result.status().code() == StatusCode::kPermissionDenied);
    CHECK(result.status().reason() == "blocked");
    CHECK(f.tg.calls("sendMessage").size() == 1);
  }
  SUBCASE("400") {
    f.tg.fail_next("sendMessage", Failure{400, "Bad Request: chat not found", std::nullopt});
    auto result = send_sync(*t, text_to("1001", "Hello"));
    CHECK(result.status().code() == StatusCode::kInvalidArgument);
    CHECK(f.tg.calls("sendMessage").size() == 1);
  }
  SUBCASE("refused before sending") {
    CHECK(send_sync(*t, text_to("1001", "  \n")).status().code() == StatusCode::kInvalidArgument);
    CHECK(send_sync(*t, text_to("", "Hi")).status().code() == StatusCode::kInvalidArgument);
    CHECK(f.tg.calls("sendMessage").empty());
  }
}

TEST_CASE("telegram transport: formatting refused by Telegram falls back to plain text") {
  Fixture f;
  f.tg.fail_next("sendMessage", Failure::cant_parse_entities());
  auto t = f.make();
  auto result =
      send_sync(*t, text_to("1001", "Here is **bold** and `code`", TextFormat::kMarkdown));
  REQUIRE(result.ok());
  REQUIRE(result->message_ids.size() == 1);
  const auto calls = f.tg.calls("sendMessage");
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].params.at("parse_mode") == "HTML");
  CHECK(calls[0].params.at("text") == "Here is <b>bold</b> and <code>code</code>");
  CHECK_FALSE(calls[1].params.contains("parse_mode"));
  CHECK(calls[1].params.at("text") == "Here is **bold** and `code`");
  CHECK(f.logger->contains("plain text"));
}

TEST_CASE("telegram transport: messages to one chat keep the per-chat interval") {
  Fixture f;
  auto o = f.options();
  o.pacing.per_chat_interval = 300ms;
  o.pacing.global_per_second = 30;
  auto t = f.make(o);
  Outcome<Result<SentMessage>> a, b, c;
  t->send(text_to("1001", "one"), a.callback());
  t->send(text_to("1001", "two"), b.callback());
  t->send(text_to("2002", "elsewhere"), c.callback());
  REQUIRE(a.get().ok());
  REQUIRE(b.get().ok());
  REQUIRE(c.get().ok());
  std::vector<MockTelegramServer::Call> chat;
  for (const auto& call : f.tg.calls("sendMessage")) {
    if (call.params.at("chat_id") == 1001) chat.push_back(call);
  }
  REQUIRE(chat.size() == 2);
  CHECK(chat[0].params.at("text") == "one");
  CHECK(chat[1].params.at("text") == "two");
  CHECK(chat[1].at - chat[0].at >= 300ms);
}

// The span between the first and the last sendMessage to the chats in [from, from + n).
std::chrono::steady_clock::duration span_of(const MockTelegramServer& tg, int from, int n) {
  std::vector<std::chrono::steady_clock::time_point> at;
  for (const auto& call : tg.calls("sendMessage")) {
    const auto chat = call.params.at("chat_id").get<std::int64_t>();
    if (chat >= from && chat < from + n && call.status == 200) at.push_back(call.at);
  }
  REQUIRE(at.size() == static_cast<std::size_t>(n));
  return *std::max_element(at.begin(), at.end()) - *std::min_element(at.begin(), at.end());
}

// Sends one message to each of the chats [from, from + n) at once and waits for them all.
void send_burst(ChatTransport& t, int from, int n) {
  std::vector<Outcome<Result<SentMessage>>> outcomes(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    t.send(text_to(std::to_string(from + i), "burst"),
           outcomes[static_cast<std::size_t>(i)].callback());
  }
  for (auto& o : outcomes) REQUIRE(o.get(30s).ok());
}

TEST_CASE("telegram transport: adaptive pacing holds the global limit only after a 429") {
  Fixture f;
  auto o = f.options();
  o.pacing.global_per_second = 2;  // 30 chats paced would take 14 s
  o.pacing.adaptive = true;
  o.pacing.adaptive_cooldown = 2s;
  auto t = f.make(o);
  // No 429 yet: a burst to 30 chats goes out unpaced (the bucket would spread it over 14 s).
  send_burst(*t, 3000, 30);
  CHECK(span_of(f.tg, 3000, 30) < 7s);
  CHECK_FALSE(f.logger->contains("flood control"));

  // A 429: that message waits out its retry_after, and the messages after it keep to the global
  // limit from an empty bucket: 6 messages at 2 a second, the last at least 2.5 s after the 429.
  f.tg.fail_next("sendMessage", Failure::too_many_requests(1));
  Outcome<Result<SentMessage>> refused;
  t->send(text_to("4000", "refused once"), refused.callback());
  REQUIRE(f.tg.wait_for_calls("sendMessage", 31));
  REQUIRE(eventually([&] { return f.logger->contains("flood control"); }));
  send_burst(*t, 4001, 5);
  REQUIRE(refused.get().ok());
  const auto calls = f.tg.calls("sendMessage");
  const auto limited =
      std::find_if(calls.begin(), calls.end(), [](const auto& c) { return c.status == 429; });
  REQUIRE(limited != calls.end());
  CHECK(calls.back().at - limited->at >= 2400ms);
  CHECK(span_of(f.tg, 4000, 6) >= 2400ms);

  // Past the cooldown after the last 429, bursts go out unpaced again.
  std::this_thread::sleep_for(2500ms);
  send_burst(*t, 5000, 30);
  CHECK(span_of(f.tg, 5000, 30) < 7s);
}

TEST_CASE("telegram transport: without adaptive pacing the global limit always holds") {
  Fixture f;
  auto o = f.options();
  o.pacing.global_per_second = 10;
  o.pacing.adaptive = false;
  auto t = f.make(o);
  // A bucket of 10 that refills at 10 a second: 25 messages take at least 1.5 s.
  send_burst(*t, 3000, 25);
  CHECK(span_of(f.tg, 3000, 25) >= 1400ms);
}

TEST_CASE("telegram transport: its own client keeps to max_connections") {
  Fixture f;
  auto o = f.options();
  o.max_connections = 2;
  auto t = f.make(o);
  constexpr int kMessages = 30;
  std::vector<Outcome<Result<SentMessage>>> sent(kMessages);
  // Pacing is off: all thirty are in flight at once, one chat each.
  for (int i = 0; i < kMessages; ++i) {
    t->send(text_to(std::to_string(5000 + i), "hello " + std::to_string(i)), sent[i].callback());
  }
  for (auto& s : sent) REQUIRE(s.get().ok());
  CHECK(f.tg.count_calls("sendMessage", 200) == kMessages);
  CHECK(f.tg.http().connections_accepted() <= 2);

  o.max_connections = 1;
  CHECK(make_telegram_transport(o).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("telegram transport: webhook delivery, its secret and malformed bodies") {
  Fixture f;
  Inbox inbox;
  auto o = f.options();
  o.mode = TelegramMode::kWebhook;
  o.webhook.port = free_port();
  o.webhook.path = "/tg/hook";
  o.webhook.public_url = "http://127.0.0.1:" + std::to_string(o.webhook.port) + "/tg/hook";
  o.webhook.secret_token = "s3cret-Token_1-webhook";
  auto t = f.make(o);
  REQUIRE(t->start(inbox.handler()).ok());

  const auto set = f.tg.calls("setWebhook");
  REQUIRE(set.size() == 1);
  CHECK(set[0].params.at("url") == o.webhook.public_url);
  CHECK(set[0].params.at("secret_token") == "s3cret-Token_1-webhook");
  CHECK(set[0].params.at("allowed_updates").size() == 4);
  CHECK(f.tg.calls("getUpdates").empty());

  // The request is answered once the handler has returned: the first time it fails, so the
  // webhook answers 503 and Telegram sends the update again; then 200.
  inbox.fail_once("telegram:31");
  f.tg.push_update(31, MockTelegramServer::text_update(31, "via webhook"));
  CHECK(f.tg.deliver_to_webhook() == std::vector<int>{503});
  CHECK(inbox.accepted().empty());
  CHECK(f.tg.deliver_to_webhook() == std::vector<int>{200});
  REQUIRE(inbox.wait_accepted(1));
  CHECK(inbox.seen_keys() == std::vector<std::string>{"telegram:31", "telegram:31"});

  const std::string update = MockTelegramServer::text_update(32, "forged");
  auto wrong = f.tg.post_to_webhook(update, std::string("not-the-secret"));
  CHECK(wrong.status == 403);
  CHECK(json::parse(wrong.body).at("ok") == false);
  CHECK(f.tg.post_to_webhook(update, std::nullopt).status == 401);
  auto malformed =
      f.tg.post_to_webhook("{\"update_id\": 33, \"message\": ", "s3cret-Token_1-webhook");
  CHECK(malformed.status == 400);
  CHECK(json::parse(malformed.body).at("ok") == false);
  // An update of a kind we do not handle is acknowledged and dropped.
  CHECK(f.tg.post_to_webhook(payload("12_teloxide_chat_boost_chat_boost_updated.json", 34),
                             "s3cret-Token_1-webhook")
            .status == 200);
  f.tg.push_update(35, MockTelegramServer::text_update(35, "second"));
  CHECK(f.tg.deliver_to_webhook() == std::vector<int>{200});
  REQUIRE(inbox.wait_accepted(2));
  t->stop();

  const auto accepted = inbox.accepted();
  REQUIRE(accepted.size() == 2);
  CHECK(accepted[0].text == "via webhook");
  CHECK(accepted[1].text == "second");
  // Stopped: the server no longer answers.
  CHECK(f.tg.post_to_webhook(update, std::string("s3cret-Token_1-webhook")).status == 0);
}

TEST_CASE("telegram transport: drafts, natively and by send-then-edit") {
  Fixture f;
  auto t = f.make();
  SUBCASE("sendMessageDraft") {
    Outcome<Status> d;
    t->send_draft("1001", 7, "Thinking", d.callback());
    CHECK(d.get().ok());
    const auto calls = f.tg.calls("sendMessageDraft");
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].params.at("draft_id") == 7);
    CHECK(calls[0].params.at("chat_id") == 1001);
    CHECK(calls[0].params.at("text") == "Thinking");
  }
  SUBCASE("fallback") {
    f.tg.set_drafts_supported(false);
    Outcome<Status> d1, d2, d3, d4;
    t->send_draft("1001", 7, "Hel", d1.callback());
    t->send_draft("1001", 7, "Hello", d2.callback());
    t->send_draft("1001", 7, "Hello", d3.callback());  // unchanged: "not modified" is fine
    t->send_draft("1001", 8, "Other", d4.callback());
    CHECK(d1.get().ok());
    CHECK(d2.get().ok());
    CHECK(d3.get().ok());
    CHECK(d4.get().ok());
    CHECK(f.tg.calls("sendMessageDraft").size() == 1);
    const auto sends = f.tg.calls("sendMessage");
    REQUIRE(sends.size() == 2);
    CHECK(sends[0].params.at("text") == "Hel");
    CHECK(sends[1].params.at("text") == "Other");
    const auto edits = f.tg.calls("editMessageText");
    REQUIRE(edits.size() == 2);
    CHECK(edits[0].params.at("text") == "Hello");
    CHECK(f.tg.message_text(edits[0].params.at("message_id")) == "Hello");
  }
}

TEST_CASE("telegram transport: edit, typing and callback answers") {
  Fixture f;
  auto t = f.make();
  auto sent = send_sync(*t, text_to("1001", "Draft"));
  REQUIRE(sent.ok());
  const std::string id = sent->message_ids.at(0);

  Outcome<Status> edited, same, typing, answered;
  t->edit("1001", id, text_to("", "**Final**", TextFormat::kMarkdown), edited.callback());
  CHECK(edited.get().ok());
  t->edit("1001", id, text_to("", "**Final**", TextFormat::kMarkdown), same.callback());
  CHECK(same.get().ok());  // "message is not modified"
  CHECK(f.tg.message_text(std::stoll(id)) == "<b>Final</b>");

  t->send_typing("1001", typing.callback());
  CHECK(typing.get().ok());
  const auto actions = f.tg.calls("sendChatAction");
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].params.at("action") == "typing");
  CHECK(actions[0].params.at("chat_id") == 1001);

  t->answer_callback("cb-42", "Noted", answered.callback());
  CHECK(answered.get().ok());
  const auto answers = f.tg.calls("answerCallbackQuery");
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].params.at("callback_query_id") == "cb-42");
  CHECK(answers[0].params.at("text") == "Noted");
}

TEST_CASE("telegram transport: 409 on getUpdates is logged clearly and polling goes on") {
  Fixture f;
  Inbox inbox;
  f.tg.fail_next("getUpdates", Failure::conflict(), 2);
  auto t = f.make();
  REQUIRE(t->start(inbox.handler()).ok());
  f.tg.push_update(40, MockTelegramServer::text_update(40, "still here"));
  REQUIRE(inbox.wait_accepted(1));
  CHECK(f.logger->contains("another instance is polling this token, or a webhook is set"));
  t->stop();
  CHECK(f.tg.calls("getUpdates").size() >= 3);
}

TEST_CASE("telegram transport: getUpdates 5xx is retried, 401 stops polling") {
  Fixture f;
  Inbox inbox;
  SUBCASE("5xx") {
    f.tg.fail_next("getUpdates", Failure::server_error(502), 2);
    f.tg.push_update(50, MockTelegramServer::text_update(50, "after the outage"));
    auto t = f.make();
    REQUIRE(t->start(inbox.handler()).ok());
    REQUIRE(inbox.wait_accepted(1));
    t->stop();
    const auto polls = f.tg.calls("getUpdates");
    REQUIRE(polls.size() >= 3);
    CHECK(polls[0].status == 502);
    CHECK(polls[1].status == 502);
  }
  SUBCASE("401") {
    f.tg.fail_next("getUpdates", Failure{401, "Unauthorized", std::nullopt});
    auto t = f.make();
    REQUIRE(t->start(inbox.handler()).ok());
    for (int i = 0; i < 1000 && !f.logger->contains("polling stops"); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(f.logger->contains("polling stops"));
    CHECK(f.tg.calls("getUpdates").size() == 1);
    t->stop();
  }
}

TEST_CASE("telegram transport: the token never appears in a log line or an error") {
  Fixture f;
  const std::string token = f.tg.token();
  std::vector<Status> errors;

  // Refused at start: the token is wrong.
  auto wrong = f.options();
  wrong.token = "987654321:AAwrong-token_for_tests_0123456789abcdef";
  auto t_wrong = f.make(wrong);
  Inbox inbox;
  const Status refused = t_wrong->start(inbox.handler());
  CHECK(refused.code() == StatusCode::kUnauthenticated);
  CHECK(refused.message().find("the bot token was refused") != std::string::npos);
  CHECK(refused.message().find(wrong.token) == std::string::npos);
  errors.push_back(refused);
  auto me_wrong = telegram_get_me(wrong);
  CHECK(me_wrong.status().code() == StatusCode::kUnauthenticated);
  errors.push_back(me_wrong.status());

  // Unreachable: the request fails with the URL in the message.
  auto down = f.options();
  down.api_url = "http://127.0.0.1:1";
  down.retry.max_attempts = 2;
  auto t_down = f.make(down);
  errors.push_back(send_sync(*t_down, text_to("1001", "Hi")).status());
  CHECK(errors.back().code() == StatusCode::kUnavailable);

  // Failures logged on the way.
  auto t = f.make();
  f.tg.fail_next("sendMessage", Failure::server_error(503));
  f.tg.fail_next("sendMessage", Failure::blocked());
  errors.push_back(send_sync(*t, text_to("1001", "Hi")).status());
  CHECK(errors.back().code() == StatusCode::kPermissionDenied);
  f.tg.fail_next("getUpdates", Failure::conflict());
  REQUIRE(t->start(inbox.handler()).ok());
  REQUIRE(f.tg.wait_for_calls("getUpdates", 2));
  t->stop();

  auto me = telegram_get_me(f.options());
  REQUIRE(me.ok());
  CHECK(me->username == "mock_bot");
  CHECK(me->id == 123456789);

  CHECK_FALSE(f.logger->lines().empty());
  for (const auto& line : f.logger->lines()) {
    INFO(line);
    CHECK(line.find(token) == std::string::npos);
    CHECK(line.find(wrong.token) == std::string::npos);
    CHECK(line.find("AAHfake") == std::string::npos);
  }
  for (const auto& s : errors) {
    INFO(s.to_string());
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(token) == std::string::npos);
    CHECK(s.message().find("AAHfake") == std::string::npos);
    CHECK(s.message().find("AAwrong") == std::string::npos);
  }

  // A malformed token is refused without being quoted.
  auto bad = f.options();
  bad.token = "no-colon-secret";
  auto made = make_telegram_transport(bad);
  CHECK(made.status().code() == StatusCode::kInvalidArgument);
  CHECK(made.status().message().find("no-colon-secret") == std::string::npos);
}

TEST_CASE("telegram transport: stop() fails queued sends with kCancelled") {
  Fixture f;
  auto o = f.options();
  o.pacing.per_chat_interval = 10s;
  auto t = f.make(o);
  Outcome<Result<SentMessage>> first, second, third;
  t->send(text_to("1001", "goes out"), first.callback());
  t->send(text_to("1001", "waits for the interval"), second.callback());
  t->send(text_to("1001", "waits too"), third.callback());
  REQUIRE(first.get().ok());
  CHECK_FALSE(second.ready());
  t->stop();
  // stop() returned: every callback has run.
  REQUIRE(second.ready());
  REQUIRE(third.ready());
  CHECK(second.get().status().code() == StatusCode::kCancelled);
  CHECK(third.get().status().code() == StatusCode::kCancelled);
  CHECK(f.tg.calls("sendMessage").size() == 1);

  Outcome<Result<SentMessage>> after;
  t->send(text_to("1001", "after stop"), after.callback());
  CHECK(after.get().status().code() == StatusCode::kCancelled);
  CHECK(t->start(nullptr).code() == StatusCode::kFailedPrecondition);
}

// ---- documents
// -----------------------------------------------------------------------------------

TEST_CASE("telegram transport: a text with files goes as sendMessage, then sendDocument each") {
  Fixture f;
  TempDir dir;
  const std::string binary = binary_bytes(200000);
  REQUIRE(binary.find('\0') != std::string::npos);
  write_file(dir.file("report.bin"), binary);
  write_file(dir.file("данные.csv"), "a;b\n1;2\n");
  auto t = f.make();

  OutboundMessage m = files_to(
      "1001",
      {{dir.file("report.bin"), "Отчёт за май.pdf", "application/pdf", "Отчёт \xff за май"},
       {dir.file("данные.csv"), "", "", ""}},
      "Here are the files.");
  m.reply_to_message_id = "5001";
  m.thread_id = "7";
  m.buttons = {{{"Thanks", "thanks"}}, {{"Ask a human", "handoff"}}};
  auto result = send_sync(*t, m);
  REQUIRE(result.ok());

  const auto calls = f.tg.calls();
  REQUIRE(calls.size() == 3);
  CHECK(calls[0].method == "sendMessage");
  CHECK(calls[1].method == "sendDocument");
  CHECK(calls[2].method == "sendDocument");
  // Ids in the order sent: the text's, then each file's.
  REQUIRE(result->message_ids.size() == 3);
  CHECK(std::stoll(result->message_ids[0]) < std::stoll(result->message_ids[1]));
  CHECK(std::stoll(result->message_ids[1]) < std::stoll(result->message_ids[2]));
  CHECK(f.tg.message_text(std::stoll(result->message_ids[0])) == "Here are the files.");
  CHECK(f.tg.message_text(std::stoll(result->message_ids[1])) == "Отчёт \xEF\xBF\xBD за май");

  // The reply goes on the first message only, the buttons on the last only.
  CHECK(calls[0].params.at("reply_parameters").at("message_id") == 5001);
  CHECK_FALSE(calls[0].params.contains("reply_markup"));
  for (const auto& c : {calls[1], calls[2]}) {
    CHECK(c.status == 200);
    CHECK(c.params.at("chat_id") == 1001);
    CHECK(c.params.at("message_thread_id") == 7);
    CHECK_FALSE(c.params.contains("reply_parameters"));
    REQUIRE(c.uploads.size() == 1);
    CHECK(c.uploads[0].field == "document");
  }
  CHECK_FALSE(calls[1].params.contains("reply_markup"));
  const auto& keyboard = calls[2].params.at("reply_markup").at("inline_keyboard");
  REQUIRE(keyboard.size() == 2);
  CHECK(keyboard[0][0].at("callback_data") == "thanks");
  CHECK(keyboard[1][0].at("text") == "Ask a human");

  // The first file: its own name and type, sanitised caption, the exact bytes.
  CHECK(calls[1].params.at("caption") == "Отчёт \xEF\xBF\xBD за май");
  CHECK(calls[1].params.at("document").at("file_name") == "Отчёт за май.pdf");
  CHECK(calls[1].params.at("document").at("size") == binary.size());
  CHECK(calls[1].uploads[0].file_name == "Отчёт за май.pdf");
  CHECK(calls[1].uploads[0].content_type == "application/pdf");
  CHECK(calls[1].uploads[0].bytes == binary);
  // The second: named after its path, application/octet-stream, no caption.
  CHECK_FALSE(calls[2].params.contains("caption"));
  CHECK(calls[2].uploads[0].file_name == "данные.csv");
  CHECK(calls[2].uploads[0].content_type == "application/octet-stream");
  CHECK(calls[2].uploads[0].bytes == "a;b\n1;2\n");
}

TEST_CASE("telegram transport: with files and a long text, only the last message has buttons") {
  Fixture f;
  TempDir dir;
  write_file(dir.file("a.txt"), "a");
  auto t = f.make();
  std::string text;
  while (telegram::utf16_length(text) < telegram::kMaxMessageUtf16 + 100) text += "Some words. ";
  OutboundMessage m = files_to("1001", {{dir.file("a.txt"), "", "text/plain", "the file"}}, text);
  m.buttons = {{{"Yes", "yes"}}};
  auto result = send_sync(*t, m);
  REQUIRE(result.ok());
  const auto calls = f.tg.calls();
  REQUIRE(calls.size() == 3);
  CHECK(result->message_ids.size() == 3);
  std::size_t with_buttons = 0;
  for (const auto& c : calls) with_buttons += c.params.contains("reply_markup") ? 1 : 0;
  CHECK(with_buttons == 1);
  CHECK(calls.back().method == "sendDocument");
  CHECK(calls.back().params.contains("reply_markup"));

  // Without files, the buttons stay on the text's last part, as before.
  auto plain = send_sync(*t, [&] {
    OutboundMessage p = text_to("1001", "Just text");
    p.buttons = {{{"Yes", "yes"}}};
    return p;
  }());
  REQUIRE(plain.ok());
  CHECK(f.tg.calls().back().method == "sendMessage");
  CHECK(f.tg.calls().back().params.contains("reply_markup"));
}

TEST_CASE("telegram transport: a file sent again goes by its file_id, not uploaded again") {
  Fixture f;
  TempDir dir;
  const std::string path = dir.file("prices.pdf");
  write_file(path, binary_bytes(5000));
  auto t = f.make();

  // Files alone: no sendMessage, and the reply goes on the first file.
  OutboundMessage first = files_to("1001", {{path, "", "application/pdf", "Prices"}});
  first.reply_to_message_id = "5001";
  auto sent = send_sync(*t, first);
  REQUIRE(sent.ok());
  REQUIRE(sent->message_ids.size() == 1);
  REQUIRE(f.tg.calls().size() == 1);
  const auto upload = f.tg.calls("sendDocument").at(0);
  REQUIRE(upload.uploads.size() == 1);
  CHECK(upload.params.at("reply_parameters").at("message_id") == 5001);

  auto again = send_sync(*t, files_to("2002", {{path, "", "application/pdf", "Prices again"}}));
  REQUIRE(again.ok());
  auto docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 2);
  CHECK(docs[1].status == 200);
  CHECK(docs[1].uploads.empty());
  REQUIRE(docs[1].params.at("document").is_string());
  CHECK(docs[1].params.at("document").get<std::string>().starts_with("BQAC"));
  CHECK(docs[1].params.at("chat_id") == 2002);
  CHECK(docs[1].params.at("caption") == "Prices again");
  CHECK(again->message_ids.size() == 1);
  CHECK(again->message_ids != sent->message_ids);

  // Under another name or type it is another upload (a file_id keeps the name it came with).
  REQUIRE(send_sync(*t, files_to("1001", {{path, "Цены.pdf", "application/pdf", ""}})).ok());
  docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 3);
  CHECK(docs[2].uploads.size() == 1);

  // Changed on disk: uploaded again, with the new bytes.
  write_file(path, binary_bytes(6000, 1));
  REQUIRE(send_sync(*t, files_to("1001", {{path, "", "application/pdf", ""}})).ok());
  docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 4);
  REQUIRE(docs[3].uploads.size() == 1);
  CHECK(docs[3].uploads[0].bytes == binary_bytes(6000, 1));
  // ...and then reused in its new state, twice in one message too.
  REQUIRE(send_sync(*t, files_to("1001", {{path, "", "application/pdf", ""},
                                          {path, "", "application/pdf", ""}}))
              .ok());
  docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 6);
  CHECK(docs[4].uploads.empty());
  CHECK(docs[5].uploads.empty());
  CHECK(docs[4].params.at("document") == docs[5].params.at("document"));
  CHECK(docs[4].params.at("document") != docs[1].params.at("document"));  // the old bytes' id
}

TEST_CASE("telegram transport: a file_id Telegram refuses is forgotten and the file uploaded") {
  Fixture f;
  TempDir dir;
  const std::string path = dir.file("guide.pdf");
  write_file(path, binary_bytes(3000));
  auto t = f.make();
  REQUIRE(send_sync(*t, files_to("1001", {{path, "", "", "v1"}})).ok());
  f.tg.forget_files();

  auto result = send_sync(*t, files_to("1001", {{path, "", "", "v2"}}));
  REQUIRE(result.ok());
  CHECK(result->message_ids.size() == 1);
  auto docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 3);
  CHECK(docs[1].status == 400);  // the remembered file_id
  CHECK(docs[1].uploads.empty());
  CHECK(docs[2].status == 200);  // uploaded again, once
  REQUIRE(docs[2].uploads.size() == 1);
  CHECK(docs[2].uploads[0].bytes == binary_bytes(3000));
  CHECK(docs[2].params.at("caption") == "v2");
  CHECK(f.logger->contains("uploaded again"));

  // The new file_id is the one remembered.
  REQUIRE(send_sync(*t, files_to("1001", {{path, "", "", "v3"}})).ok());
  docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 4);
  CHECK(docs[3].status == 200);
  CHECK(docs[3].uploads.empty());

  // A refusal of the upload itself is final: no loop.
  f.tg.forget_files();
  f.tg.fail_next("sendDocument",
                 Failure{400, "Bad Request: wrong file identifier/HTTP URL specified", {}}, 2);
  auto refused = send_sync(*t, files_to("1001", {{path, "", "", "v4"}}));
  CHECK(refused.status().code() == StatusCode::kInvalidArgument);
  CHECK(refused.status().reason() == "bad_file_id");
  CHECK(f.tg.calls("sendDocument").size() == 6);
}

TEST_CASE("telegram transport: a file that cannot be sent fails the message before it goes") {
  Fixture f;
  TempDir dir;
  write_file(dir.file("good.pdf"), "fine");
  auto t = f.make();
  std::string bad_path;
  std::string expect_in_message;
  SUBCASE("missing") {
    bad_path = dir.file("нет.pdf");
    expect_in_message = "No such file";
  }
  SUBCASE("a folder") {
    bad_path = dir.file("");
    expect_in_message = "not a regular file";
  }
  SUBCASE("empty") {
    bad_path = dir.file("empty.pdf");
    write_file(bad_path, "");
    expect_in_message = "empty";
  }
  SUBCASE("over 50 MB") {
    bad_path = dir.file("huge.bin");
    write_file(bad_path, "x");
    std::filesystem::resize_file(bad_path, telegram::kMaxUploadBytes + 1);  // sparse
    expect_in_message = "50 MB";
  }
  OutboundMessage m =
      files_to("1001", {{dir.file("good.pdf"), "", "", ""}, {bad_path, "Отчёт.pdf", "", ""}},
               "The text would go first");
  auto result = send_sync(*t, m);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == StatusCode::kInvalidArgument);
  CAPTURE(result.status().message());
  CHECK(result.status().message().find("Отчёт.pdf") != std::string::npos);
  CHECK(result.status().message().find(expect_in_message) != std::string::npos);
  // Nothing went out: not the text, not the good file.
  CHECK(f.tg.calls().empty());
}

TEST_CASE("telegram transport: sendDocument is retried on 429 and 5xx like sendMessage") {
  Fixture f;
  TempDir dir;
  const std::string bytes = binary_bytes(70000);
  write_file(dir.file("doc.bin"), bytes);
  auto t = f.make();
  SUBCASE("429") {
    f.tg.fail_next("sendDocument", Failure::too_many_requests(1));
    auto result = send_sync(*t, files_to("1001", {{dir.file("doc.bin"), "", "", "c"}}, "text"));
    REQUIRE(result.ok());
    CHECK(result->message_ids.size() == 2);
    const auto docs = f.tg.calls("sendDocument");
    REQUIRE(docs.size() == 2);
    CHECK(docs[0].status == 429);
    CHECK(docs[1].status == 200);
    CHECK(docs[1].at - docs[0].at >= 1s);
    // The whole file both times.
    for (const auto& d : docs) {
      REQUIRE(d.uploads.size() == 1);
      CHECK(d.uploads[0].bytes == bytes);
    }
    CHECK(f.tg.calls("sendMessage").size() == 1);  // the text was not sent again
  }
  SUBCASE("5xx, and a file_id send too") {
    f.tg.fail_next("sendDocument", Failure::server_error(502), 2);
    REQUIRE(send_sync(*t, files_to("1001", {{dir.file("doc.bin"), "", "", ""}})).ok());
    CHECK(f.tg.calls("sendDocument").size() == 3);
    f.tg.fail_next("sendDocument", Failure::server_error(503));
    REQUIRE(send_sync(*t, files_to("1001", {{dir.file("doc.bin"), "", "", ""}})).ok());
    const auto docs = f.tg.calls("sendDocument");
    REQUIRE(docs.size() == 5);
    CHECK(docs[3].status == 503);
    CHECK(docs[4].status == 200);
    CHECK(docs[3].uploads.empty());
    CHECK(docs[4].uploads.empty());
  }
  SUBCASE("403 is final") {
    f.tg.fail_next("sendDocument", Failure::blocked());
    auto result = send_sync(*t, files_to("1001", {{dir.file("doc.bin"), "", "", ""}}));
    CHECK(result.status().code() == StatusCode::kPermissionDenied);
    CHECK(result.status().reason() == "blocked");
    CHECK(f.tg.calls("sendDocument").size() == 1);
  }
  for (const auto& line : f.logger->lines()) {
    INFO(line);
    CHECK(line.find(f.tg.token()) == std::string::npos);
  }
}

TEST_CASE("telegram transport: a caption over 1024 UTF-16 units is cut, ending in an ellipsis") {
  Fixture f;
  TempDir dir;
  write_file(dir.file("a.txt"), "a");
  auto t = f.make();
  std::string caption;
  while (telegram::utf16_length(caption) <= telegram::kMaxCaptionUtf16 + 50) {
    caption += "Слово 😀 ";
  }
  auto result = send_sync(*t, files_to("1001", {{dir.file("a.txt"), "", "", caption}}));
  REQUIRE(result.ok());
  const auto docs = f.tg.calls("sendDocument");
  REQUIRE(docs.size() == 1);
  const std::string sent = docs[0].params.at("caption");
  CHECK(telegram::utf16_length(sent) <= telegram::kMaxCaptionUtf16);
  CHECK(telegram::utf16_length(sent) > telegram::kMaxCaptionUtf16 / 2);
  CHECK(sent.ends_with("…"));
  CHECK(caption.starts_with(sent.substr(0, sent.size() - std::string("…").size())));
  CHECK(f.logger->contains("is cut"));

  // One that fits is sent whole.
  std::string fits(telegram::kMaxCaptionUtf16, 'x');
  REQUIRE(send_sync(*t, files_to("1001", {{dir.file("a.txt"), "", "", fits}})).ok());
  CHECK(f.tg.calls("sendDocument").back().params.at("caption") == fits);
}
