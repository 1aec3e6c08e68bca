// Internal: one request to an HTTP model API, from sending to the Completion — the lifecycle the
// OpenAI-compatible and Ollama providers share. A provider subclass knows its wire format: how a
// streamed line reads, how a whole body reads, how an error body reads.
//
// Ownership: an exchange is shared by the HTTP callbacks; it holds no reference to the provider
// or its HttpClient, so the provider may be destroyed while requests are in flight (the provider
// ends them with kCancelled through its InFlightSet, core/in_flight.h, and cancels their token).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/in_flight.h"
#include "llmassist/http_client.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "providers/provider_util.h"

namespace llmassist::detail {

// What every HTTP provider checks at creation: a model, and a base_url that is http(s) (its
// trailing slashes are removed).
[[nodiscard]] Status check_endpoint(std::string_view provider, std::string_view model,
                                    std::string& base_url);

// `text` as a JSON object (an empty text is an empty object); `what` names it in the error.
[[nodiscard]] Result<nlohmann::json> parse_object_option(std::string_view provider,
                                                         std::string_view what,
                                                         const std::string& text);

// The client a provider was given, or a socket client of its own.
[[nodiscard]] Result<std::shared_ptr<HttpClient>> client_or_default(
    std::shared_ptr<HttpClient> http, std::shared_ptr<Logger> logger);

// How an API writes tool calls: OpenAI's arguments are a JSON text and each call has an id that
// its result quotes (tool_call_id); Ollama's arguments are an object and a result names its tool
// (tool_name).
enum class ToolWire { kOpenAi, kOllama };

// The conversation as a model API takes it: [{"role": ..., "content": ...}, ...], with the
// assistant's tool calls and the tools' results in the API's form.
[[nodiscard]] nlohmann::json chat_messages(const std::vector<ChatMessage>& messages, ToolWire wire);

// The request's tools as both APIs take them: [{"type": "function", "function": {"name",
// "description", "parameters"}}]. kInvalidArgument for a tool without a name or whose parameters
// are not a JSON object.
[[nodiscard]] Result<nlohmann::json> tool_specs(std::string_view provider,
                                                const std::vector<ToolSpec>& tools);

// Puts `tools` into the request body as "tools" (tool_specs()), when there are any and the
// provider takes tools (`enabled`); tool_specs()'s error otherwise.
[[nodiscard]] Status add_tools(nlohmann::json& body, std::string_view provider,
                               const std::vector<ToolSpec>& tools, bool enabled);

// A tool call's arguments as text: a string as it is (OpenAI sends a JSON text), anything else
// (Ollama's object) dumped; absent: "{}".
[[nodiscard]] std::string arguments_text(const nlohmann::json& function);

// The request body as sent: invalid UTF-8 replaced rather than refused.
[[nodiscard]] std::string dump_body(const nlohmann::json& body);

// Timeouts and the endpoint for one exchange.
struct ExchangeTarget {
  std::string url;
  HttpHeaders headers;
  std::chrono::milliseconds connect_timeout{0};
  std::chrono::milliseconds first_byte_timeout{0};
  std::chrono::milliseconds total_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  std::size_t max_answer_bytes = 0;  // answer and reasoning text together; 0: no limit
};

// The endpoint `url` with the timeouts of a provider's options (any options struct with
// connect_timeout, first_byte_timeout, total_timeout and idle_timeout).
template <typename Options>
ExchangeTarget target_for(std::string url, const Options& o) {
  ExchangeTarget t;
  t.url = std::move(url);
  t.connect_timeout = o.connect_timeout;
  t.first_byte_timeout = o.first_byte_timeout;
  t.total_timeout = o.total_timeout;
  t.idle_timeout = o.idle_timeout;
  t.max_answer_bytes = o.max_answer_bytes;
  return t;
}

// The POST of `body` (JSON) to the target, with its headers and timeouts; no callbacks attached.
[[nodiscard]] HttpRequest post_request(const ExchangeTarget& target, std::string body,
                                       std::shared_ptr<CancelToken> cancel);

// Whether `result` is a request that a kept-alive connection lost after it was written, and that
// the HTTP client therefore did not send again (reason "not_resent"). A model API request has no
// effect but its cost: the providers send such a request once more, once, on a fresh connection.
[[nodiscard]] bool lost_unsent(const Result<HttpResponse>& result);

class ModelExchange : public std::enable_shared_from_this<ModelExchange> {
 public:
  ModelExchange(std::string provider, TokenCallback on_token, CompletionCallback on_done)
      : provider_(std::move(provider)),
        on_token_(std::move(on_token)),
        on_done_(std::move(on_done)),
        started_(std::chrono::steady_clock::now()) {}
  virtual ~ModelExchange() = default;

  // Sends `body` (JSON) to the target; streams when the caller gave a token callback.
  void start(HttpClient& http, const ExchangeTarget& target, std::string body,
             std::shared_ptr<CancelToken> cancel);

 protected:
  // Handles one line of a streamed body. Returns false to stop the transfer (after fail() or
  // when the stream is complete and nothing more is wanted).
  virtual bool on_stream_line(std::string_view line) = 0;
  // Called when a streamed body ended: whatever a last line without "\n" holds.
  virtual void on_stream_end(std::string_view rest) = 0;
  // Reads a whole (non-streamed) 200 body into the completion, or fail()s.
  virtual void on_full_body(std::string_view body) = 0;
  // Extracts the server's error message and machine code from an error body.
  virtual std::pair<std::string, std::string> error_detail(std::string_view body) = 0;
  // Whether a streamed answer reached its proper end ([DONE], done: true, a finish_reason).
  [[nodiscard]] virtual bool stream_complete() const = 0;

  // Adds answer text (reasoning filtered out); streams it to the caller. Returns false when the
  // caller asked to stop or the answer passed max_answer_bytes (then the exchange fails with
  // kOutOfRange).
  bool add_text(std::string_view piece);
  // A streamed piece of the tool call at `index` (the API's index, or the order of arrival):
  // its id and name when given, and more of its arguments' text. Counted in max_answer_bytes.
  bool add_tool_call_part(std::size_t index, std::string_view id, std::string_view name,
                          std::string_view arguments);
  bool add_reasoning(std::string_view piece);
  // Records the failure that ends the exchange; the first one wins.
  void fail(Status status);
  // The answer's tool calls, once complete: each has a name (else the answer is malformed), an
  // id (made up when the API gave none) and arguments ("{}" when it sent none).
  void check_tool_calls();

  Completion& completion() { return completion_; }
  const Completion& completion() const { return completion_; }
  const std::string& provider() const { return provider_; }
  bool streaming() const { return static_cast<bool>(on_token_); }

 private:
  // Sends `request` with this exchange's callbacks attached.
  void send(HttpRequest request);
  void finish(Result<HttpResponse> result);

  const std::string provider_;
  const TokenCallback on_token_;
  const CompletionCallback on_done_;
  const std::chrono::steady_clock::time_point started_;
  Completion completion_;
  ThinkFilter think_;
  LineSplitter lines_;
  int status_ = 0;  // the HTTP status, once the headers arrived
  // The request once more, for the one resend finish() may make: a completion that a reused
  // connection lost after it was written (kUnavailable, reason "not_resent") is sent again once,
  // on a fresh connection. The HTTP client never repeats a POST itself; a completion has no
  // effect but its cost, so this layer may. Cleared once used.
  std::optional<HttpRequest> resend_;
  HttpClient* http_ = nullptr;  // the client start() was given; it outlives its callbacks
  std::string error_body_;      // a streamed non-200 body, kept for its error message
  std::optional<Status> failure_;
  bool caller_stopped_ = false;
  std::size_t max_answer_bytes_ = 0;

  // False, and the exchange failed, when `more` bytes would take the answer past the limit.
  bool room_for(std::size_t more);
};

// Starts an `Exchange` (a ModelExchange of the provider's wire format) for one request, as a
// call of the provider's `in_flight` set: the caller's callbacks are the call's, so that
// destroying the provider ends it with kCancelled (in_flight.h).
template <typename Exchange>
void start_exchange(InFlightSet& in_flight, std::string_view provider, HttpClient& http,
                    const ExchangeTarget& target, std::string body,
                    const std::shared_ptr<CancelToken>& caller_cancel, TokenCallback on_token,
                    CompletionCallback on_done) {
  auto call = in_flight.start(std::move(on_token), std::move(on_done), caller_cancel, provider);
  if (!call) return;
  TokenCallback tokens;
  if (call->streams()) tokens = [call](std::string_view delta) { return call->token(delta); };
  auto exchange = std::make_shared<Exchange>(
      std::string(provider), std::move(tokens),
      [call](Result<Completion> result) { call->done(std::move(result)); });
  exchange->start(http, target, std::move(body), call->cancel());
}

}  // namespace llmassist::detail
