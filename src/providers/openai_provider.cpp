// The OpenAI-compatible provider: chat completions, whole or streamed over SSE.
#include "llmassist/providers/openai_provider.h"
#include "core/json_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "core/in_flight.h"
#include "providers/model_exchange.h"

namespace llmassist {
namespace {

using nlohmann::json;

using detail::string_or_empty;

class OpenAiExchange final : public detail::ModelExchange {
 public:
  using ModelExchange::ModelExchange;

 private:
  bool on_stream_line(std::string_view line) override {
    if (line.empty()) return dispatch();
    if (line.front() == ':') return true;  // an SSE comment: keep-alive, "OPENROUTER PROCESSING"
    if (line.rfind("data:", 0) == 0) {
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (!data_.empty()) data_ += '\n';
      data_.append(line);
    }
    return true;  // event:, id:, retry: carry nothing we use
  }

  void on_stream_end(std::string_view rest) override {
    if (!rest.empty()) on_stream_line(rest);
    dispatch();
  }

  bool dispatch() {
    if (data_.empty()) return true;
    std::string data;
    data.swap(data_);
    if (data == "[DONE]") {
      done_ = true;
      return true;
    }
    json event = detail::parse_json_text(data);
    if (event.is_discarded() || !event.is_object()) {
      fail(invalid_argument(
          fmt::format("{}: malformed stream event: {}", provider(), detail::clip(data, 120))));
      return false;
    }
    if (event.contains("error")) {
      auto [message, code] = detail::openai_error(event);
      HttpResponse as_http;
      as_http.status = 500;
      if (!code.empty() &&
          std::all_of(code.begin(), code.end(),
                      [](unsigned char ch) { return std::isdigit(ch) != 0; }) &&
          code.size() == 3) {
        as_http.status = std::stoi(code);
      }
      fail(detail::http_failure(provider(), as_http, "error in the stream: " + message, code));
      return false;
    }
    return read_chunk(event);
  }

  bool read_chunk(const json& chunk) {
    Completion& c = completion();
    if (auto m = chunk.find("model"); m != chunk.end() && m->is_string()) c.model = *m;
    read_usage(chunk);
    auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array() || choices->empty()) return true;
    const json& choice = (*choices)[0];
    if (!choice.is_object()) return true;
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) {
      c.finish_reason = *f;
    }
    auto delta = choice.find("delta");
    if (delta == choice.end() || !delta->is_object()) return true;
    for (const char* key : {"reasoning", "reasoning_content"}) {
      const std::string r = string_or_empty(*delta, key);
      if (!r.empty()) add_reasoning(r);
    }
    if (auto calls = delta->find("tool_calls"); calls != delta->end() && calls->is_array()) {
      for (const json& part : *calls) {
        if (!part.is_object()) continue;
        auto i = part.find("index");
        // The index says which call a piece belongs to; without one, each piece is a new call.
        const std::size_t index = i != part.end() && i->is_number_unsigned()
                                      ? i->get<std::size_t>()
                                      : completion().tool_calls.size();
        auto f = part.find("function");
        const json function = f != part.end() && f->is_object() ? *f : json::object();
        std::string arguments;
        if (auto a = function.find("arguments"); a != function.end() && !a->is_null()) {
          arguments = detail::arguments_text(function);
        }
        if (!add_tool_call_part(index, string_or_empty(part, "id"),
                                string_or_empty(function, "name"), arguments)) {
          return false;
        }
      }
    }
    const std::string text = string_or_empty(*delta, "content");
    return text.empty() || add_text(text);
  }

  void read_usage(const json& j) {
    auto u = j.find("usage");
    if (u == j.end() || !u->is_object()) return;
    auto num = [&](const char* key) {
      auto it = u->find(key);
      return it != u->end() && it->is_number_integer() ? it->get<int>() : 0;
    };
    completion().usage.prompt_tokens = num("prompt_tokens");
    completion().usage.completion_tokens = num("completion_tokens");
  }

  void on_full_body(std::string_view body) override {
    json j = detail::parse_json_text(body);
    if (j.is_discarded() || !j.is_object()) {
      fail(invalid_argument(
          fmt::format("{}: the response is not JSON: {}", provider(), detail::clip(body, 120))));
      return;
    }
    if (j.contains("error")) {
      auto [message, code] = detail::openai_error(j);
      fail(unavailable(fmt::format("{}: the server answered with an error: {}", provider(),
                                   detail::clip(message))));
      return;
    }
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array() || choices->empty() ||
        !(*choices)[0].is_object()) {
      fail(invalid_argument(fmt::format("{}: the response has no choices", provider())));
      return;
    }
    const json& choice = (*choices)[0];
    Completion& c = completion();
    if (auto m = j.find("model"); m != j.end() && m->is_string()) c.model = *m;
    read_usage(j);
    c.finish_reason = string_or_empty(choice, "finish_reason");
    auto message = choice.find("message");
    if (message == choice.end() || !message->is_object()) {
      fail(invalid_argument(fmt::format("{}: the choice has no message", provider())));
      return;
    }
    for (const char* key : {"reasoning", "reasoning_content"}) {
      const std::string r = string_or_empty(*message, key);
      if (!r.empty()) add_reasoning(r);
    }
    if (auto calls = message->find("tool_calls"); calls != message->end() && calls->is_array()) {
      for (const json& call : *calls) {
        if (!call.is_object()) continue;
        auto f = call.find("function");
        const json function = f != call.end() && f->is_object() ? *f : json::object();
        if (!add_tool_call_part(completion().tool_calls.size(), string_or_empty(call, "id"),
                                string_or_empty(function, "name"),
                                detail::arguments_text(function))) {
          return;
        }
      }
    }
    add_text(string_or_empty(*message, "content"));
  }

  std::pair<std::string, std::string> error_detail(std::string_view body) override {
    return detail::openai_error_detail(body);
  }

  bool stream_complete() const override { return done_ || !completion().finish_reason.empty(); }

  std::string data_;  // the data lines of the event being read
  bool done_ = false;
};

class OpenAiProvider final : public LlmProvider {
 public:
  OpenAiProvider(OpenAiProviderOptions options, json extra, std::shared_ptr<HttpClient> http)
      : options_(std::move(options)),
        extra_(std::move(extra)),
        target_(detail::target_for(options_.base_url + "/chat/completions", options_)),
        http_(std::move(http)) {
    if (!options_.api_key.empty()) {
      target_.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
    }
    for (const auto& h : options_.extra_headers) target_.headers.push_back(h);
  }

  // Ends what is in flight with kCancelled, whether the HTTP client is this provider's alone or
  // shared with others.
  ~OpenAiProvider() override { in_flight_->close(options_.name); }
  OpenAiProvider(const OpenAiProvider&) = delete;
  OpenAiProvider& operator=(const OpenAiProvider&) = delete;

  std::string_view name() const override { return options_.name; }
  bool supports_tools() const override { return options_.tools; }

  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    const bool stream = static_cast<bool>(on_token);
    json body = extra_.is_object() ? extra_ : json::object();
    body["model"] = options_.model;
    body["messages"] = detail::chat_messages(request.messages, detail::ToolWire::kOpenAi);
    if (Status s = detail::add_tools(body, options_.name, request.tools, options_.tools); !s.ok()) {
      on_done(std::move(s));
      return;
    }
    body["stream"] = stream;
    if (stream) body["stream_options"] = {{"include_usage", true}};
    if (auto t = request.temperature ? request.temperature : options_.temperature) {
      body["temperature"] = *t;
    }
    if (auto n = request.max_tokens ? request.max_tokens : options_.max_tokens) {
      body["max_tokens"] = *n;
    }
    const auto& stop = request.stop.empty() ? options_.stop : request.stop;
    if (!stop.empty()) body["stop"] = stop;
    detail::ExchangeTarget target = target_;
    if (stream) target.headers.emplace_back("Accept", "text/event-stream");
    if (request.timeout.count() > 0) target.total_timeout = request.timeout;
    detail::start_exchange<OpenAiExchange>(*in_flight_, options_.name, *http_, target,
                                           detail::dump_body(body), request.cancel,
                                           std::move(on_token), std::move(on_done));
  }

 private:
  const OpenAiProviderOptions options_;
  const json extra_;
  detail::ExchangeTarget target_;
  const std::shared_ptr<detail::InFlightSet> in_flight_ = detail::InFlightSet::create();
  // Last member: destroyed first; a client of this provider's alone ends the transfers the
  // destructor cancelled while the rest still exists.
  const std::shared_ptr<HttpClient> http_;
};

}  // namespace

Result<std::unique_ptr<LlmProvider>> make_openai_provider(OpenAiProviderOptions options) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_endpoint(options.name, options.model, options.base_url));
  LLMASSIST_ASSIGN_OR_RETURN(
      json extra, detail::parse_object_option(options.name, "extra body", options.extra_body_json));
  LLMASSIST_ASSIGN_OR_RETURN(auto http, detail::client_or_default(options.http, options.logger));
  return std::unique_ptr<LlmProvider>(
      new OpenAiProvider(std::move(options), std::move(extra), std::move(http)));
}

}  // namespace llmassist
