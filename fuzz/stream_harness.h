// The harness of the two stream targets: a provider (OpenAI-compatible SSE, Ollama NDJSON)
// reading a response body through an HttpClient that delivers it from memory, in the pieces
// the input chooses, on the caller's thread. The provider's own parser runs as in production;
// only the network is left out.
//
// Thread-safety: one harness per input, used on one thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "llmassist/http_client.h"
#include "llmassist/llm_provider.h"

namespace llmassist::fuzz {

// Answers every request at once with status 200 and `pieces` as the body: streamed piece by
// piece when the request streams (stopping, with kCancelled, when on_body says so), whole
// otherwise.
class MemoryHttpClient final : public HttpClient {
 public:
  explicit MemoryHttpClient(std::vector<std::string_view> pieces) : pieces_(std::move(pieces)) {}

  void send(HttpRequest request, HttpCallback done) override {
    HttpResponse head;
    head.status = status_;
    if (request.on_body) {
      if (request.on_headers && !request.on_headers(head)) {
        done(cancelled("stopped at the headers"));
        return;
      }
      for (const std::string_view piece : pieces_) {
        if (!request.on_body(piece)) {
          done(cancelled("stopped by on_body"));
          return;
        }
      }
    } else {
      for (const std::string_view piece : pieces_) head.body.append(piece);
    }
    done(std::move(head));
  }

  void set_status(int status) { status_ = status; }

 private:
  std::vector<std::string_view> pieces_;
  int status_ = 200;
};

// What a caller saw of one completion: the streamed tokens and the result, latency aside.
struct Observed {
  std::vector<std::string> tokens;
  int results = 0;  // how many times on_done ran: exactly once, always
  bool ok = false;
  StatusCode code = StatusCode::kOk;
  std::string message;
  std::string text, reasoning, model, finish_reason;
  std::vector<std::string> tool_calls;  // each as "id name arguments"
  int prompt_tokens = 0, completion_tokens = 0;

  bool operator==(const Observed&) const = default;
};

// Runs one completion against a provider made by `make(client)`; `stream` asks for tokens.
template <typename Make>
Observed observe(Make make, std::vector<std::string_view> pieces, bool stream, int status = 200) {
  auto client = std::make_shared<MemoryHttpClient>(std::move(pieces));
  client->set_status(status);
  auto provider = make(client);
  require(provider.ok(), "the provider could not be made");
  Observed seen;
  CompletionRequest request;
  request.messages.push_back(ChatMessage{Role::kUser, "question"});
  request.tools.push_back(ToolSpec{"lookup", "looks things up", ""});
  TokenCallback on_token;
  if (stream) {
    on_token = [&seen](std::string_view t) {
      seen.tokens.emplace_back(t);
      return true;
    };
  }
  (*provider)->complete(std::move(request), std::move(on_token), [&seen](Result<Completion> r) {
    ++seen.results;
    seen.ok = r.ok();
    if (!r.ok()) {
      seen.code = r.status().code();
      seen.message = r.status().message();
      return;
    }
    seen.text = r->text;
    seen.reasoning = r->reasoning;
    seen.model = r->model;
    seen.finish_reason = r->finish_reason;
    for (const auto& c : r->tool_calls) {
      require(!c.id.empty() && !c.name.empty(), "a tool call without an id or a name");
      seen.tool_calls.push_back(c.id + " " + c.name + " " + c.arguments);
    }
    seen.prompt_tokens = r->usage.prompt_tokens;
    seen.completion_tokens = r->usage.completion_tokens;
  });
  require(seen.results == 1, "the completion callback did not run exactly once");
  if (seen.ok) {
    std::string joined;
    for (const auto& t : seen.tokens) joined += t;
    if (stream) require(joined == seen.text, "the streamed tokens are not the answer");
    require(!seen.text.empty() || !seen.tool_calls.empty(),
            "a successful completion without text or tool calls");
  }
  return seen;
}

// The stream check both targets make: the body fed whole and fed in the input's pieces gives
// the same tokens and the same result; the same body read unstreamed, and as an error body,
// only must not crash.
template <typename Make>
void check_stream(Make make, std::string_view body) {
  TailBytes tail(body);
  const Observed whole = observe(make, {body}, true);
  const Observed pieces = observe(make, fuzzed_pieces(body, tail), true);
  require(whole == pieces, "a stream read in pieces differs from the stream read whole");
  (void)observe(make, {body}, false);
  (void)observe(make, {body}, true, 500);
  (void)observe(make, {body}, false, 429);
}

// The maker check_stream takes, for a provider factory such as make_openai_provider: its
// options with a model, a base URL nobody listens on, and `client`.
template <typename Options, typename Factory>
auto provider_maker(Factory factory) {
  return [factory](std::shared_ptr<HttpClient> client) {
    Options o;
    o.name = "fuzz";
    o.base_url = "http://127.0.0.1:9";
    o.model = "fuzz-model";
    o.http = std::move(client);
    return factory(std::move(o));
  };
}

}  // namespace llmassist::fuzz
