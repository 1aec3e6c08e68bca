// A mock Telegram Bot API server on loopback: answers POST /bot<token>/<method> the way Telegram
// does, so that the TelegramTransport runs against real HTTP.
//
// - getUpdates serves the updates a test pushed, with Telegram's offset semantics (an update
//   whose id is below the offset asked for is confirmed and dropped for good), and long-polls:
//   it waits up to `timeout` seconds for an update, wakes when one is pushed, and gives up when
//   the server stops.
// - sendMessage, editMessageText, sendChatAction, answerCallbackQuery, sendMessageDraft (which
//   can be switched to answer 404, as a server without it does), getMe, setWebhook and
//   deleteWebhook answer like Telegram; messages get increasing message_ids, and an edit to the
//   same text answers "message is not modified".
// - sendDocument takes a multipart upload (the file in the part `document`) or JSON (or a form
//   field) whose `document` is a file_id it issued before; it answers with a Message whose
//   `document` has file_id, file_unique_id, file_name, mime_type and file_size, like Telegram.
//   A file_id it never issued (or forgot: forget_files()) gets 400 "wrong file identifier".
// - Every call is recorded (method, JSON parameters, the time it arrived, the HTTP status given)
//   for assertions, and the next N calls of a method can be made to fail: 429 with retry_after,
//   5xx, 403 blocked, 400 can't parse entities, 409 conflict. A wrong token gets 401. A
//   multipart call's fields are recorded as its parameters (chat_id and message_thread_id as
//   numbers, reply_markup and reply_parameters parsed from their JSON, the rest as strings), an
//   uploaded file as {"file_name", "content_type", "size"} under its field's name, with its
//   bytes in Call::uploads.
// - After setWebhook, the updates pushed can be POSTed to the webhook URL with the secret.
//
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/mock_http_server.h"

namespace llmassist::testing {

class MockTelegramServer {
 public:
  // A token shaped like a real one, so that redaction by shape is tested too.
  static constexpr const char* kDefaultToken = "123456789:AAHfake-TOKEN_for_tests_0123456789abcdef";

  struct Call {
    std::string method;
    nlohmann::json params;                     // the JSON body (or form fields), parsed
    std::chrono::steady_clock::time_point at;  // when the request arrived
    int status = 200;                          // the HTTP status answered
    // The path's first segment before /bot<token>, when the client's API root had one
    // (api_url("/bot-1")), else empty: several clients of one mock told apart.
    std::string via;
    // The files uploaded with a multipart call, in the order received.
    struct Upload {
      std::string field;  // the form field ("document")
      std::string file_name;
      std::string content_type;
      std::string bytes;
    };
    std::vector<Upload> uploads;
  };

  // How a call fails instead of succeeding.
  struct Failure {
    int code = 500;
    std::string description = "Internal Server Error";
    std::optional<int> retry_after;  // seconds, for 429

    static Failure too_many_requests(int retry_after_seconds);
    static Failure server_error(int code = 502);
    static Failure blocked();              // 403 "Forbidden: bot was blocked by the user"
    static Failure cant_parse_entities();  // 400
    static Failure conflict();             // 409, for getUpdates
  };

  explicit MockTelegramServer(std::string token = kDefaultToken,
                              MockHttpServer::Options http_options = {});
  ~MockTelegramServer();
  MockTelegramServer(const MockTelegramServer&) = delete;
  MockTelegramServer& operator=(const MockTelegramServer&) = delete;

  // The API root to give the transport ("http://127.0.0.1:<port>"); with `via` ("/name", one
  // segment) the calls through it are recorded with Call::via "name".
  [[nodiscard]] std::string api_url(std::string_view via = "") const { return http_.url(via); }
  [[nodiscard]] const std::string& token() const { return token_; }
  // The `telegram` section of a bot config on this server: polling with a short timeout, no
  // pacing (the tests' messages go out at once).
  [[nodiscard]] nlohmann::json bot_config_section() const {
    return {{"token", token()},
            {"api_url", api_url()},
            {"polling", {{"timeout_s", 1}}},
            {"pacing", {{"per_chat_interval_ms", 0}, {"global_per_second", 0}}}};
  }

  // Queues an Update (raw JSON text, served as is: it may be garbage) for getUpdates and the
  // webhook. `update_id` orders it and decides its confirmation.
  void push_update(std::int64_t update_id, std::string raw_json);
  // Queues many at once (a burst that arrives in one instant): one lock, one wake-up.
  void push_updates(std::vector<std::pair<std::int64_t, std::string>> updates);
  // Who sends a message, as Telegram describes a user.
  struct Person {
    std::string first_name = "Ann";
    std::string last_name;  // empty: none
    std::string username;   // without "@"; empty: none
  };
  // A text message update from user/chat 1001 (Ann), in a private chat.
  static std::string text_update(std::int64_t update_id, const std::string& text,
                                 std::int64_t chat_id = 1001);
  // The same from `from`, dated now.
  static std::string text_update(std::int64_t update_id, const std::string& text,
                                 std::int64_t chat_id, const Person& from);

  // The next `count` calls of `method` fail with `failure`.
  void fail_next(const std::string& method, Failure failure, int count = 1);
  // Whether sendMessageDraft exists (default) or answers 404 "method not found".
  void set_drafts_supported(bool supported);
  // Forgets every file_id issued so far: sending one again answers 400 "wrong file identifier",
  // as Telegram does for a file_id it will not take (another bot's, an expired reference).
  void forget_files();

  [[nodiscard]] std::vector<Call> calls() const;
  [[nodiscard]] std::vector<Call> calls(const std::string& method) const;
  // How many calls of `method` were answered `status` (any status when 0), without copying them.
  [[nodiscard]] std::size_t count_calls(const std::string& method, int status = 0) const;
  // Waits until `method` has been called at least `count` times (or `timeout`).
  bool wait_for_calls(const std::string& method, std::size_t count,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The offset of the latest getUpdates (0 when none gave one).
  [[nodiscard]] std::int64_t last_offset() const;
  // Updates still queued (not confirmed by an offset).
  [[nodiscard]] std::size_t pending_updates() const;
  // The current text of a message sent or edited through the mock.
  [[nodiscard]] std::string message_text(std::int64_t message_id) const;

  // What setWebhook set (empty URL after deleteWebhook).
  [[nodiscard]] std::string webhook_url() const;
  [[nodiscard]] std::string webhook_secret() const;
  struct WebhookReply {
    int status = 0;  // 0: no connection
    std::string body;
  };
  // POSTs `body` to the webhook URL with `secret` in X-Telegram-Bot-Api-Secret-Token (no
  // header when empty).
  WebhookReply post_to_webhook(const std::string& body,
                               const std::optional<std::string>& secret) const;
  // POSTs each queued update with the recorded secret, dropping those answered 200; returns the
  // statuses in order.
  std::vector<int> deliver_to_webhook();

  [[nodiscard]] MockHttpServer& http() { return http_; }

 private:
  void serve(const httplib::Request& req, httplib::Response& res);
  void answer(httplib::Response& res, int status, const nlohmann::json& body);
  void get_updates(const nlohmann::json& params, httplib::Response& res,
                   std::chrono::steady_clock::time_point at);
  std::optional<Failure> take_failure(const std::string& method);
  void record(const std::string& method, const nlohmann::json& params, int status,
              std::chrono::steady_clock::time_point at, std::string via = {},
              std::vector<Call::Upload> uploads = {});
  // sendDocument: the status and the result (or error body) to answer.
  std::pair<int, nlohmann::json> send_document(const nlohmann::json& params,
                                               const std::vector<Call::Upload>& uploads);

  const std::string token_;
  MockHttpServer http_;
  mutable std::mutex mu_;
  std::map<std::int64_t, std::string> updates_;  // by update_id
  std::map<std::string, std::deque<Failure>> failures_;
  std::vector<Call> calls_;
  std::map<std::int64_t, std::string> messages_;  // message_id → text
  std::int64_t next_message_id_ = 100;
  std::map<std::string, nlohmann::json> files_;  // file_id → the Document issued for it
  std::int64_t next_file_ = 1;
  std::int64_t last_offset_ = 0;
  bool drafts_supported_ = true;
  std::string webhook_url_;
  std::string webhook_secret_;
};

}  // namespace llmassist::testing
