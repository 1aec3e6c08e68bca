// The Ollama provider: /api/chat, whole or streamed as NDJSON.
#include "llmassist/providers/ollama_provider.h"
#include "core/json_text.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/in_flight.h"
#include "providers/model_exchange.h"

namespace llmassist {
namespace {

using nlohmann::json;

class OllamaExchange final : public detail::ModelExchange {
 public:
  using ModelExchange::ModelExchange;

 private:
  bool on_stream_line(std::string_view line) override {
    if (line.find_first_not_of(" \t") == std::string_view::npos) return true;
    json j = detail::parse_json_text(line);
    if (j.is_discarded() || !j.is_object()) {
      fail(invalid_argument(
          fmt::format("{}: malformed stream line: {}", provider(), detail::clip(line, 120))));
      return false;
    }
    return read(j);
  }

  void on_stream_end(std::string_view rest) override {
    if (!rest.empty() && !done_) on_stream_line(rest);
  }

  void on_full_body(std::string_view body) override {
    json j = detail::parse_json_text(body);
    if (j.is_discarded() || !j.is_object()) {
      fail(invalid_argument(
          fmt::format("{}: the response is not JSON: {}", provider(), detail::clip(body, 120))));
      return;
    }
    read(j);
    if (!done_) fail(invalid_argument(fmt::format("{}: the response is not done", provider())));
  }

  // One object of the answer: a piece of the message, or the final one with "done": true.
  bool read(const json& j) {
    if (auto e = j.find("error"); e != j.end()) {
      const std::string message = e->is_string() ? e->get<std::string>() : e->dump();
      fail(unavailable(
          fmt::format("{}: the server reported an error: {}", provider(), detail::clip(message))));
      return false;
    }
    Completion& c = completion();
    if (auto m = j.find("model"); m != j.end() && m->is_string()) c.model = *m;
    if (auto msg = j.find("message"); msg != j.end() && msg->is_object()) {
      if (auto t = msg->find("thinking"); t != msg->end() && t->is_string()) {
        add_reasoning(t->get<std::string>());
      }
      if (auto calls = msg->find("tool_calls"); calls != msg->end() && calls->is_array()) {
        // Each call arrives whole (its arguments an object), in a line of its own or with others.
        for (const json& call : *calls) {
          if (!call.is_object()) continue;
          auto f = call.find("function");
          const json function = f != call.end() && f->is_object() ? *f : json::object();
          if (!add_tool_call_part(
                  completion().tool_calls.size(), detail::string_or_empty(call, "id"),
                  detail::string_or_empty(function, "name"), detail::arguments_text(function))) {
            return false;
          }
        }
      }
      if (auto t = msg->find("content"); t != msg->end() && t->is_string()) {
        if (!add_text(t->get<std::string>())) return false;
      }
    }
    if (auto d = j.find("done"); d != j.end() && d->is_boolean() && d->get<bool>()) {
      done_ = true;
      if (auto r = j.find("done_reason"); r != j.end() && r->is_string()) c.finish_reason = *r;
      if (c.finish_reason.empty()) c.finish_reason = "stop";
      auto count = [&](const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
      };
      c.usage.prompt_tokens = count("prompt_eval_count");
      c.usage.completion_tokens = count("eval_count");
    }
    return true;
  }

  std::pair<std::string, std::string> error_detail(std::string_view body) override {
    return detail::ollama_error_detail(body);
  }

  bool stream_complete() const override { return done_; }

  bool done_ = false;
};

class OllamaProvider final : public LlmProvider {
 public:
  OllamaProvider(OllamaProviderOptions options, json extra, std::shared_ptr<HttpClient> http)
      : options_(std::move(options)),
        extra_(std::move(extra)),
        target_(detail::target_for(options_.base_url + "/api/chat", options_)),
        http_(std::move(http)) {}

  // Ends what is in flight with kCancelled, whether the HTTP client is this provider's alone or
  // shared with others.
  ~OllamaProvider() override { in_flight_->close(options_.name); }
  OllamaProvider(const OllamaProvider&) = delete;
  OllamaProvider& operator=(const OllamaProvider&) = delete;

  std::string_view name() const override { return options_.name; }
  bool supports_tools() const override { return options_.tools; }

  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    const bool stream = static_cast<bool>(on_token);
    json body = json::object();
    body["model"] = options_.model;
    body["messages"] = detail::chat_messages(request.messages, detail::ToolWire::kOllama);
    if (Status s = detail::add_tools(body, options_.name, request.tools, options_.tools); !s.ok()) {
      on_done(std::move(s));
      return;
    }
    body["stream"] = stream;
    // Sent always: Ollama thinks by default for thinking models when "think" is absent.
    body["think"] = options_.think;
    json opts = extra_;
    if (auto t = request.temperature ? request.temperature : options_.temperature) {
      opts["temperature"] = *t;
    }
    if (options_.num_ctx) opts["num_ctx"] = *options_.num_ctx;
    if (auto n = request.max_tokens ? request.max_tokens : options_.max_tokens) {
      opts["num_predict"] = *n;
    }
    const auto& stop = request.stop.empty() ? options_.stop : request.stop;
    if (!stop.empty()) opts["stop"] = stop;
    if (!opts.empty()) body["options"] = std::move(opts);
    if (!options_.keep_alive.empty()) body["keep_alive"] = options_.keep_alive;
    detail::ExchangeTarget target = target_;
    if (request.timeout.count() > 0) target.total_timeout = request.timeout;
    detail::start_exchange<OllamaExchange>(*in_flight_, options_.name, *http_, target,
                                           detail::dump_body(body), request.cancel,
                                           std::move(on_token), std::move(on_done));
  }

 private:
  const OllamaProviderOptions options_;
  const json extra_;
  const detail::ExchangeTarget target_;
  const std::shared_ptr<detail::InFlightSet> in_flight_ = detail::InFlightSet::create();
  // Last member: destroyed first; a client of this provider's alone ends the transfers the
  // destructor cancelled while the rest still exists.
  const std::shared_ptr<HttpClient> http_;
};

}  // namespace

Result<std::unique_ptr<LlmProvider>> make_ollama_provider(OllamaProviderOptions options) {
  LLMASSIST_RETURN_IF_ERROR(detail::check_endpoint(options.name, options.model, options.base_url));
  LLMASSIST_ASSIGN_OR_RETURN(json extra, detail::parse_object_option(options.name, "extra options",
                                                                     options.extra_options_json));
  LLMASSIST_ASSIGN_OR_RETURN(auto http, detail::client_or_default(options.http, options.logger));
  return std::unique_ptr<LlmProvider>(
      new OllamaProvider(std::move(options), std::move(extra), std::move(http)));
}

}  // namespace llmassist
