// A mock LLM server on loopback that speaks the real wire formats: OpenAI chat completions
// (POST /v1/chat/completions, JSON or server-sent events) and Ollama (POST /api/chat, JSON or
// NDJSON). Tests switch its behaviour between requests: status codes with Retry-After, latency,
// hangs, slow tokens, a stream cut in the middle, malformed JSON, an empty choice list, an error
// event mid-stream, thinking text.
//
// Thread-safety: every method from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/mock_http_server.h"

namespace llmassist::testing {

class MockLlmServer {
 public:
  struct Behavior {
    int status = 200;
    // The body of a non-200 answer; default: {"error": {"message": "mock failure <status>",
    // "code": error_code}} (OpenAI) or {"error": "mock failure <status>"} (Ollama).
    std::string error_body;
    std::string error_code;
    std::optional<int> retry_after_seconds;
    std::chrono::milliseconds delay{0};  // before the response headers
    bool hang = false;                   // never answer (until the server stops)
    std::vector<std::string> tokens = {"Hello", ", ", "world", "!"};
    std::chrono::milliseconds token_delay{0};  // between streamed tokens
    std::string reasoning;                     // OpenAI delta.reasoning / Ollama message.thinking
    bool inline_think = false;   // put the reasoning inline as <think>…</think> in the content
    int cut_after_tokens = -1;   // >= 0: drop the connection after this many tokens
    bool malformed = false;      // a body (or stream event) that is not JSON
    bool empty_choices = false;  // OpenAI: "choices": []
    bool error_event = false;    // a stream error event after the first token (HTTP 200)
    bool sse_comments = true;    // OpenAI stream: ": OPENROUTER PROCESSING" lines
    // Answer "Answer to: <the last user message>" instead of `tokens`, so that tests can tell
    // which question an answer belongs to.
    bool echo_question = false;
    // > 0: the request waits until this many requests are being handled at once (then all of
    // them go on), for at most hold_timeout; before `delay`. Shows how many a client has in
    // flight at once.
    int hold_until_in_flight = 0;
    std::chrono::milliseconds hold_timeout{10000};
    // Streams: `tokens` again and again, never ending the answer (until the client goes away,
    // the server stops, or a bound of 100,000 tokens).
    bool endless = false;
  };

  MockLlmServer();
  ~MockLlmServer();

  void set(Behavior behavior);
  // For the next `count` requests only, then back to the current behaviour.
  void set_next(Behavior behavior, int count = 1);

  // "http://127.0.0.1:<port>/v1" for the OpenAI provider; the root URL for Ollama.
  [[nodiscard]] std::string openai_url() const { return http_.url("/v1"); }
  [[nodiscard]] std::string ollama_url() const { return http_.url(); }

  [[nodiscard]] int requests() const;
  // Requests being handled now, and the most there were at once. A request counts from its
  // arrival until its handler returns (a streamed body's events are sent after that).
  [[nodiscard]] int in_flight() const { return in_flight_.load(); }
  [[nodiscard]] int max_in_flight() const { return max_in_flight_.load(); }
  [[nodiscard]] nlohmann::json last_body() const;
  [[nodiscard]] std::string last_header(const std::string& name) const;
  [[nodiscard]] MockHttpServer& http() { return http_; }

 private:
  Behavior take();  // the behaviour for the request being served
  void serve_openai(const httplib::Request& req, httplib::Response& res);
  void serve_ollama(const httplib::Request& req, httplib::Response& res);
  bool prelude(const Behavior& b);  // delay / hang; false when the server is stopping
  void record(const httplib::Request& req, nlohmann::json body);
  // Runs a handler, counted in in_flight().
  template <typename Handler>
  void counted(Handler&& handler);

  MockHttpServer http_;
  mutable std::mutex mu_;
  Behavior behavior_;
  std::vector<Behavior> next_;
  int requests_ = 0;
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> hold_target_{0};  // the behaviours' hold_until_in_flight, for waking them
  nlohmann::json last_body_;
  httplib::Headers last_headers_;
};

}  // namespace llmassist::testing
