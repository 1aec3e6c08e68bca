#include "providers/model_exchange.h"

#include <fmt/format.h>

#include "core/json_text.h"
#include "llmassist/http/curl_http_client.h"

namespace llmassist::detail {

Status check_endpoint(std::string_view provider, std::string_view model, std::string& base_url) {
  if (model.empty()) {
    return invalid_argument(fmt::format("provider {}: a model is required", provider));
  }
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0) {
    return invalid_argument(
        fmt::format("provider {}: base_url must start with http:// or https://", provider));
  }
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  return Status();
}

Result<nlohmann::json> parse_object_option(std::string_view provider, std::string_view what,
                                           const std::string& text) {
  if (text.empty()) return nlohmann::json::object();
  auto j = detail::parse_json_text(text);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument(fmt::format("provider {}: {} must be a JSON object", provider, what));
  }
  return j;
}

Result<std::shared_ptr<HttpClient>> client_or_default(std::shared_ptr<HttpClient> http,
                                                      std::shared_ptr<Logger> logger) {
  if (http) return http;
  CurlHttpClientOptions o;
  o.logger = std::move(logger);
  LLMASSIST_ASSIGN_OR_RETURN(auto client, make_curl_http_client(o));
  return std::shared_ptr<HttpClient>(std::move(client));
}

nlohmann::json chat_messages(const std::vector<ChatMessage>& messages, ToolWire wire) {
  using nlohmann::json;
  json out = json::array();
  for (const auto& m : messages) {
    json item = {{"role", model_role(m.role)}, {"content", m.content}};
    if (m.role == Role::kAssistant && !m.tool_calls.empty()) {
      json calls = json::array();
      for (const auto& c : m.tool_calls) {
        if (wire == ToolWire::kOpenAi) {
          calls.push_back({{"id", c.id},
                           {"type", "function"},
                           {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        } else {
          json args = parse_json_text(c.arguments);
          if (args.is_discarded() || !args.is_object()) args = json::object();
          calls.push_back({{"function", {{"name", c.name}, {"arguments", std::move(args)}}}});
        }
      }
      // OpenAI takes null for a turn that is only calls; Ollama an empty text.
      if (m.content.empty() && wire == ToolWire::kOpenAi) item["content"] = nullptr;
      item["tool_calls"] = std::move(calls);
    }
    if (m.role == Role::kTool) {
      if (wire == ToolWire::kOpenAi) {
        item["tool_call_id"] = m.tool_call_id;
      } else {
        item["tool_name"] = m.tool_name;
      }
    }
    out.push_back(std::move(item));
  }
  return out;
}

Result<nlohmann::json> tool_specs(std::string_view provider, const std::vector<ToolSpec>& tools) {
  using nlohmann::json;
  json out = json::array();
  for (const auto& t : tools) {
    if (t.name.empty()) {
      return invalid_argument(fmt::format("{}: a tool without a name", provider));
    }
    json parameters = t.parameters.empty()
                          ? json{{"type", "object"}, {"properties", json::object()}}
                          : parse_json_text(t.parameters);
    if (parameters.is_discarded() || !parameters.is_object()) {
      return invalid_argument(
          fmt::format("{}: the parameters of tool \"{}\" are not a JSON object (a JSON schema)",
                      provider, clip(t.name, 64)));
    }
    json function = {{"name", t.name}, {"parameters", std::move(parameters)}};
    if (!t.description.empty()) function["description"] = t.description;
    out.push_back({{"type", "function"}, {"function", std::move(function)}});
  }
  return out;
}

Status add_tools(nlohmann::json& body, std::string_view provider,
                 const std::vector<ToolSpec>& tools, bool enabled) {
  if (tools.empty() || !enabled) return Status();
  LLMASSIST_ASSIGN_OR_RETURN(body["tools"], tool_specs(provider, tools));
  return Status();
}

std::string arguments_text(const nlohmann::json& function) {
  auto a = function.find("arguments");
  if (a == function.end() || a->is_null()) return "{}";
  if (a->is_string()) return a->get<std::string>();
  return a->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string dump_body(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {
constexpr std::size_t kMaxErrorBody = 64 * 1024;
}

HttpRequest post_request(const ExchangeTarget& target, std::string body,
                         std::shared_ptr<CancelToken> cancel) {
  HttpRequest request;
  request.method = "POST";
  request.url = target.url;
  request.headers = target.headers;
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = std::move(body);
  request.connect_timeout = target.connect_timeout;
  request.first_byte_timeout = target.first_byte_timeout;
  request.total_timeout = target.total_timeout;
  request.idle_timeout = target.idle_timeout;
  request.cancel = std::move(cancel);
  return request;
}

bool lost_unsent(const Result<HttpResponse>& result) {
  return !result.ok() && result.status().reason() == "not_resent";
}

void ModelExchange::start(HttpClient& http, const ExchangeTarget& target, std::string body,
                          std::shared_ptr<CancelToken> cancel) {
  HttpRequest request = post_request(target, std::move(body), std::move(cancel));
  max_answer_bytes_ = target.max_answer_bytes;
  http_ = &http;
  // Kept without the callbacks (they hold this exchange): no cycle through it.
  resend_ = request;
  send(std::move(request));
}

void ModelExchange::send(HttpRequest request) {
  auto self = shared_from_this();
  if (streaming()) {
    request.on_headers = [self](const HttpResponse& head) {
      self->status_ = head.status;
      return true;
    };
    request.on_body = [self](std::string_view chunk) {
      if (self->status_ != 200) {
        if (self->error_body_.size() < kMaxErrorBody) self->error_body_.append(chunk);
        return true;
      }
      const bool go_on = self->lines_.feed(chunk, [&](std::string_view line) {
        return self->on_stream_line(line) && !self->failure_;
      });
      if (!go_on && !self->failure_ && !self->caller_stopped_ && !self->stream_complete()) {
        self->fail(invalid_argument(
            fmt::format("{}: a streamed line is longer than the limit", self->provider_)));
      }
      return go_on;
    };
  }
  http_->send(std::move(request),
              [self](Result<HttpResponse> result) { self->finish(std::move(result)); });
}

bool ModelExchange::room_for(std::size_t more) {
  if (max_answer_bytes_ == 0) return true;
  const std::size_t held = completion_.text.size() + completion_.reasoning.size();
  if (held + more <= max_answer_bytes_) return true;
  // The stream is stopped here: a model (or a server posing as one) that never ends its answer
  // costs this much memory, not all of it.
  fail(Status(StatusCode::kOutOfRange,
              fmt::format("{}: the answer passed {} bytes (max_answer_bytes); the stream was "
                          "stopped",
                          provider_, max_answer_bytes_))
           .with_reason("answer_too_large"));
  return false;
}

bool ModelExchange::add_reasoning(std::string_view piece) {
  if (!room_for(piece.size())) return false;
  completion_.reasoning.append(piece);
  return true;
}

bool ModelExchange::add_tool_call_part(std::size_t index, std::string_view id,
                                       std::string_view name, std::string_view arguments) {
  if (failure_ || !room_for(id.size() + name.size() + arguments.size())) return false;
  // An index far past the calls so far is a broken stream, not a reason to allocate.
  constexpr std::size_t kMaxToolCalls = 128;
  auto& calls = completion_.tool_calls;
  if (index >= kMaxToolCalls || index > calls.size()) {
    fail(invalid_argument(fmt::format("{}: a streamed tool call has the index {} after {} calls",
                                      provider_, index, calls.size())));
    return false;
  }
  if (index == calls.size()) {
    calls.emplace_back();
    calls.back().arguments.clear();
  }
  ToolCall& call = calls[index];
  if (!id.empty()) call.id = id;
  if (!name.empty()) call.name.append(name);
  call.arguments.append(arguments);
  return true;
}

bool ModelExchange::add_text(std::string_view piece) {
  if (failure_ || !room_for(piece.size())) return false;
  const std::string answer = think_.feed(piece);
  if (answer.empty()) return true;
  completion_.text += answer;
  if (on_token_ && !on_token_(answer)) {
    caller_stopped_ = true;
    return false;
  }
  return true;
}

void ModelExchange::check_tool_calls() {
  int n = 0;
  for (ToolCall& call : completion_.tool_calls) {
    ++n;
    if (call.name.empty()) {
      fail(invalid_argument(fmt::format("{}: the model called a tool without a name", provider_)));
      return;
    }
    // Ollama gives calls no id; a result must still say which call it answers.
    if (call.id.empty()) call.id = fmt::format("call_{}", n);
    if (call.arguments.find_first_not_of(" \t\r\n") == std::string::npos) call.arguments = "{}";
  }
}

void ModelExchange::fail(Status status) {
  if (!failure_) failure_ = std::move(status);
}

void ModelExchange::finish(Result<HttpResponse> result) {
  std::optional<HttpRequest> again = std::move(resend_);
  resend_.reset();
  const bool withdrawn = again && again->cancel && again->cancel->cancelled();
  if (again && !withdrawn && !failure_ && !caller_stopped_ && lost_unsent(result) && status_ == 0 &&
      completion_.text.empty()) {
    send(*std::move(again));
    return;
  }
  // Failures found while reading the stream explain a transfer we stopped ourselves.
  if (failure_) {
    on_done_(*failure_);
    return;
  }
  if (caller_stopped_) {
    on_done_(cancelled(fmt::format("{}: the caller stopped the stream", provider_)));
    return;
  }
  if (!result.ok()) {
    // A stream we ended on purpose after its last event is a success, not a cancellation.
    if (!(streaming() && status_ == 200 && stream_complete() &&
          result.status().code() == StatusCode::kCancelled)) {
      on_done_(result.status().annotate(provider_));
      return;
    }
  } else if (result->status != 200) {
    const std::string& body = streaming() ? error_body_ : result->body;
    auto [message, code] = error_detail(body);
    on_done_(http_failure(provider_, *result, message, code));
    return;
  }
  if (streaming()) {
    on_stream_end(lines_.rest());
    if (!failure_ && !stream_complete()) {
      fail(unavailable(
          fmt::format("{}: the stream ended before the answer was complete", provider_)));
    }
  } else {
    on_full_body(result->body);
  }
  if (!failure_) {
    const std::string tail = think_.finish();
    completion_.text += tail;
    if (!tail.empty() && on_token_ && !on_token_(tail)) caller_stopped_ = true;
    completion_.reasoning += think_.reasoning();
    check_tool_calls();
    if (!failure_ && completion_.text.empty() && completion_.tool_calls.empty()) {
      fail(
          invalid_argument(fmt::format("{}: the model returned an empty answer{}", provider_,
                                       completion_.finish_reason.empty()
                                           ? ""
                                           : " (finish reason: " + completion_.finish_reason + ")"))
              .with_reason("empty_answer"));
    }
  }
  if (failure_) {
    on_done_(*failure_);
    return;
  }
  completion_.provider = provider_;
  completion_.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  on_done_(std::move(completion_));
}

}  // namespace llmassist::detail
