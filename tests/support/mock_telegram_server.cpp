#include "support/mock_telegram_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <tuple>

namespace llmassist::testing {

using nlohmann::json;

MockTelegramServer::Failure MockTelegramServer::Failure::too_many_requests(int seconds) {
  return {429, fmt::format("Too Many Requests: retry after {}", seconds), seconds};
}
MockTelegramServer::Failure MockTelegramServer::Failure::server_error(int code) {
  return {code, "Bad Gateway", std::nullopt};
}
MockTelegramServer::Failure MockTelegramServer::Failure::blocked() {
  return {403, "Forbidden: bot was blocked by the user", std::nullopt};
}
MockTelegramServer::Failure MockTelegramServer::Failure::cant_parse_entities() {
  return {400, "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3",
          std::nullopt};
}
MockTelegramServer::Failure MockTelegramServer::Failure::conflict() {
  return {409,
          "Conflict: terminated by other getUpdates request; make sure that only one bot "
          "instance is running",
          std::nullopt};
}

MockTelegramServer::MockTelegramServer(std::string token, MockHttpServer::Options http_options)
    : token_(std::move(token)), http_(std::move(http_options)) {
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); };
  http_.http().Post(R"((?:/([^/]+))?/bot([^/]+)/([A-Za-z]+))", handler);
  http_.http().Get(R"((?:/([^/]+))?/bot([^/]+)/([A-Za-z]+))", handler);
  http_.start();
}

MockTelegramServer::~MockTelegramServer() { http_.stop(); }

void MockTelegramServer::push_update(std::int64_t update_id, std::string raw_json) {
  {
    std::lock_guard lock(mu_);
    updates_[update_id] = std::move(raw_json);
  }
  http_.notify();
}

void MockTelegramServer::push_updates(std::vector<std::pair<std::int64_t, std::string>> updates) {
  {
    std::lock_guard lock(mu_);
    for (auto& [id, raw] : updates) updates_[id] = std::move(raw);
  }
  http_.notify();
}

std::string MockTelegramServer::text_update(std::int64_t update_id, const std::string& text,
                                            std::int64_t chat_id) {
  json update = json::parse(text_update(update_id, text, chat_id, Person{}));
  update["message"]["date"] = 1700000000;
  return update.dump();
}

std::string MockTelegramServer::text_update(std::int64_t update_id, const std::string& text,
                                            std::int64_t chat_id, const Person& from) {
  json user = {{"id", chat_id}, {"is_bot", false}, {"first_name", from.first_name}};
  json chat = {{"id", chat_id}, {"type", "private"}, {"first_name", from.first_name}};
  for (json* j : {&user, &chat}) {
    if (!from.last_name.empty()) (*j)["last_name"] = from.last_name;
    if (!from.username.empty()) (*j)["username"] = from.username;
  }
  const json update = {{"update_id", update_id},
                       {"message",
                        {{"message_id", update_id + 5000},
                         {"date", static_cast<std::int64_t>(std::time(nullptr))},
                         {"from", user},
                         {"chat", chat},
                         {"text", text}}}};
  return update.dump();
}

void MockTelegramServer::fail_next(const std::string& method, Failure failure, int count) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < count; ++i) failures_[method].push_back(failure);
}

void MockTelegramServer::set_drafts_supported(bool supported) {
  std::lock_guard lock(mu_);
  drafts_supported_ = supported;
}

void MockTelegramServer::forget_files() {
  std::lock_guard lock(mu_);
  files_.clear();
}

std::vector<MockTelegramServer::Call> MockTelegramServer::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

std::vector<MockTelegramServer::Call> MockTelegramServer::calls(const std::string& method) const {
  std::lock_guard lock(mu_);
  std::vector<Call> out;
  std::copy_if(calls_.begin(), calls_.end(), std::back_inserter(out),
               [&](const Call& c) { return c.method == method; });
  return out;
}

std::size_t MockTelegramServer::count_calls(const std::string& method, int status) const {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(std::count_if(calls_.begin(), calls_.end(), [&](const Call& c) {
    return c.method == method && (status == 0 || c.status == status);
  }));
}

bool MockTelegramServer::wait_for_calls(const std::string& method, std::size_t count,
                                        std::chrono::milliseconds timeout) {
  return http_.wait_until([&] { return count_calls(method) >= count; }, timeout);
}

std::int64_t MockTelegramServer::last_offset() const {
  std::lock_guard lock(mu_);
  return last_offset_;
}

std::size_t MockTelegramServer::pending_updates() const {
  std::lock_guard lock(mu_);
  return updates_.size();
}

std::string MockTelegramServer::message_text(std::int64_t message_id) const {
  std::lock_guard lock(mu_);
  auto it = messages_.find(message_id);
  return it == messages_.end() ? "" : it->second;
}

std::string MockTelegramServer::webhook_url() const {
  std::lock_guard lock(mu_);
  return webhook_url_;
}

std::string MockTelegramServer::webhook_secret() const {
  std::lock_guard lock(mu_);
  return webhook_secret_;
}

std::optional<MockTelegramServer::Failure> MockTelegramServer::take_failure(
    const std::string& method) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(method);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  Failure f = it->second.front();
  it->second.pop_front();
  return f;
}

void MockTelegramServer::record(const std::string& method, const json& params, int status,
                                std::chrono::steady_clock::time_point at, std::string via,
                                std::vector<Call::Upload> uploads) {
  {
    std::lock_guard lock(mu_);
    calls_.push_back({method, params, at, status, std::move(via), std::move(uploads)});
  }
  http_.notify();
}

void MockTelegramServer::answer(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

namespace {

json error_body(const MockTelegramServer::Failure& f) {
  json body = {{"ok", false}, {"error_code", f.code}, {"description", f.description}};
  if (f.retry_after) body["parameters"] = {{"retry_after", *f.retry_after}};
  return body;
}

json message_object(std::int64_t id, const json& chat_id, const std::string& text) {
  return {{"message_id", id},
          {"date", static_cast<std::int64_t>(std::time(nullptr))},
          {"chat", {{"id", chat_id}, {"type", "private"}}},
          {"text", text}};
}

json error_reply(int code, const std::string& description) {
  return {{"ok", false}, {"error_code", code}, {"description", description}};
}

// A form field's value as the Bot API reads it: ids as numbers, objects from their JSON.
json form_value(const std::string& name, const std::string& text) {
  if (name == "chat_id" || name == "message_thread_id" || name == "reply_to_message_id") {
    const json number = json::parse(text, nullptr, false);
    if (number.is_number_integer()) return number;
  }
  if (name == "reply_markup" || name == "reply_parameters") {
    json parsed = json::parse(text, nullptr, false);
    if (!parsed.is_discarded()) return parsed;
  }
  return text;
}

}  // namespace

std::pair<int, json> MockTelegramServer::send_document(const json& params,
                                                       const std::vector<Call::Upload>& uploads) {
  std::lock_guard lock(mu_);
  json document;
  const auto upload = std::find_if(uploads.begin(), uploads.end(),
                                   [](const Call::Upload& u) { return u.field == "document"; });
  if (upload != uploads.end()) {
    const std::string file_id = fmt::format("BQACAgIAAxkBAAIMock{:04}", next_file_);
    document = {{"file_id", file_id},
                {"file_unique_id", fmt::format("AgADMock{:04}", next_file_)},
                {"file_name", upload->file_name},
                {"mime_type", upload->content_type},
                {"file_size", upload->bytes.size()}};
    ++next_file_;
    files_[file_id] = document;
  } else if (params.contains("document") && params["document"].is_string()) {
    const auto known = files_.find(params["document"].get<std::string>());
    if (known == files_.end()) {
      return {400, error_reply(400, "Bad Request: wrong file identifier/HTTP URL specified")};
    }
    document = known->second;
  } else {
    return {400, error_reply(400, "Bad Request: there is no document in the request")};
  }
  const std::int64_t id = next_message_id_++;
  std::string caption;
  if (params.contains("caption") && params["caption"].is_string()) {
    caption = params["caption"].get<std::string>();
  }
  messages_[id] = caption;
  json message = message_object(id, params.value("chat_id", json()), "");
  message.erase("text");
  message["document"] = document;
  if (!caption.empty()) message["caption"] = caption;
  return {200, message};
}

void MockTelegramServer::serve(const httplib::Request& req, httplib::Response& res) {
  const auto at = std::chrono::steady_clock::now();
  const std::string via = req.matches[1];
  const std::string token = req.matches[2];
  const std::string method = req.matches[3];
  json params = json::object();
  if (!req.body.empty()) {
    params = json::parse(req.body, nullptr, false);
    if (params.is_discarded()) params = json::object();
  }
  for (const auto& [key, value] : req.params) params[key] = value;
  std::vector<Call::Upload> uploads;
  if (req.is_multipart_form_data()) {
    for (const auto& [name, part] : req.files) {
      if (part.filename.empty()) {
        params[name] = form_value(name, part.content);
        continue;
      }
      params[name] = {{"file_name", part.filename},
                      {"content_type", part.content_type},
                      {"size", part.content.size()}};
      uploads.push_back({name, part.filename, part.content_type, part.content});
    }
  }

  if (token != token_) {
    record(method, params, 401, at, via, std::move(uploads));
    answer(res, 401, {{"ok", false}, {"error_code", 401}, {"description", "Unauthorized"}});
    return;
  }
  if (auto failure = take_failure(method)) {
    record(method, params, failure->code, at, via, std::move(uploads));
    answer(res, failure->code, error_body(*failure));
    return;
  }
  if (method == "getUpdates") {
    get_updates(params, res, at);
    return;
  }

  int status = 200;
  json result;
  if (method == "getMe") {
    result = {{"id", 123456789},
              {"is_bot", true},
              {"first_name", "Mock"},
              {"username", "mock_bot"},
              {"can_join_groups", true},
              {"can_read_all_group_messages", false},
              {"supports_inline_queries", false}};
  } else if (method == "sendMessage") {
    std::lock_guard lock(mu_);
    const std::int64_t id = next_message_id_++;
    messages_[id] = params.value("text", "");
    result = message_object(id, params.value("chat_id", json()), messages_[id]);
  } else if (method == "editMessageText") {
    std::lock_guard lock(mu_);
    const std::int64_t id = params.value("message_id", std::int64_t{0});
    auto it = messages_.find(id);
    const std::string text = params.value("text", "");
    if (it == messages_.end()) {
      status = 400;
      result = {{"ok", false},
                {"error_code", 400},
                {"description", "Bad Request: message to edit not found"}};
    } else if (it->second == text) {
      status = 400;
      result = {{"ok", false},
                {"error_code", 400},
                {"description",
                 "Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a current content and reply markup of the "
                 "message"}};
    } else {
      it->second = text;
      result = message_object(id, params.value("chat_id", json()), text);
    }
  } else if (method == "sendMessageDraft") {
    std::lock_guard lock(mu_);
    if (!drafts_supported_) {
      status = 404;
      result = {{"ok", false}, {"error_code", 404}, {"description", "Not Found: method not found"}};
    } else {
      result = true;
    }
  } else if (method == "setWebhook") {
    std::lock_guard lock(mu_);
    webhook_url_ = params.value("url", "");
    webhook_secret_ = params.value("secret_token", "");
    result = true;
  } else if (method == "deleteWebhook") {
    std::lock_guard lock(mu_);
    webhook_url_.clear();
    webhook_secret_.clear();
    result = true;
  } else if (method == "sendDocument") {
    std::tie(status, result) = send_document(params, uploads);
  } else if (method == "sendChatAction" || method == "answerCallbackQuery") {
    result = true;
  } else {
    status = 404;
    result = {{"ok", false}, {"error_code", 404}, {"description", "Not Found"}};
  }
  record(method, params, status, at, via, std::move(uploads));
  if (status == 200) {
    answer(res, 200, {{"ok", true}, {"result", result}});
  } else {
    answer(res, status, result);
  }
}

void MockTelegramServer::get_updates(const json& params, httplib::Response& res,
                                     std::chrono::steady_clock::time_point at) {
  const auto offset = params.value("offset", std::int64_t{0});
  const auto limit = std::clamp<std::int64_t>(params.value("limit", std::int64_t{100}), 1, 100);
  const auto timeout = std::clamp<std::int64_t>(params.value("timeout", std::int64_t{0}), 0, 60);
  {
    std::lock_guard lock(mu_);
    last_offset_ = offset;
    // Telegram forgets every update below the offset: they are confirmed.
    if (offset != 0) updates_.erase(updates_.begin(), updates_.lower_bound(offset));
  }
  // Recorded once the offset took effect but before the long poll, so that a test can wait for
  // a poll to begin.
  record("getUpdates", params, 200, at);
  http_.wait_until(
      [&] {
        std::lock_guard lock(mu_);
        return !updates_.empty();
      },
      std::chrono::seconds(timeout));
  std::string body = R"({"ok":true,"result":[)";
  {
    std::lock_guard lock(mu_);
    std::int64_t n = 0;
    for (const auto& [id, raw] : updates_) {
      if (n++ == limit) break;
      if (n > 1) body += ',';
      body += raw;
    }
  }
  body += "]}";
  res.status = 200;
  res.set_content(body, "application/json");
}

MockTelegramServer::WebhookReply MockTelegramServer::post_to_webhook(
    const std::string& body, const std::optional<std::string>& secret) const {
  const std::string url = webhook_url();
  // "http://host:port/path"
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return {};
  const auto path_start = url.find('/', scheme_end + 3);
  const std::string origin = url.substr(0, path_start);
  const std::string path = path_start == std::string::npos ? "/" : url.substr(path_start);
  httplib::Client client(origin);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  httplib::Headers headers;
  if (secret) headers.emplace("X-Telegram-Bot-Api-Secret-Token", *secret);
  auto r = client.Post(path.c_str(), headers, body, "application/json");
  if (!r) return {};
  return {r->status, r->body};
}

std::vector<int> MockTelegramServer::deliver_to_webhook() {
  std::vector<std::pair<std::int64_t, std::string>> queued;
  std::string secret;
  {
    std::lock_guard lock(mu_);
    queued.assign(updates_.begin(), updates_.end());
    secret = webhook_secret_;
  }
  std::vector<int> statuses;
  for (const auto& [id, raw] : queued) {
    const auto reply =
        post_to_webhook(raw, secret.empty() ? std::nullopt : std::optional<std::string>(secret));
    statuses.push_back(reply.status);
    if (reply.status == 200) {
      std::lock_guard lock(mu_);
      updates_.erase(id);
    }
  }
  return statuses;
}

}  // namespace llmassist::testing
