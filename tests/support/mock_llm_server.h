// A mock LLM server on loopback that speaks the real wire formats: OpenAI chat completions
// (POST /v1/chat/completions, JSON or server-sent events) and Ollama (POST /api/chat, JSON or
// NDJSON), and their embeddings (POST /v1/embeddings, POST /api/embed). Tests switch its
// behaviour between requests: status codes with Retry-After, latency, hangs, slow tokens, a
// stream cut in the middle, malformed JSON, an empty choice list, an error event mid-stream,
// thinking text, a wrong number of vectors.
//
// Its embeddings are a hashed bag of words (bag_of_words()): deterministic, and texts that share
// words are near each other, so that tests can reason about similarity.
//
// Thread-safety: every method from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/mock_http_server.h"

namespace llmassist::testing {

class MockLlmServer {
 public:
  // A tool call the mock's answer makes.
  struct ToolCallAnswer {
    std::string id;  // OpenAI's call id; Ollama's answer carries none
    std::string name;
    std::string arguments = "{}";  // a JSON object's text
  };

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
    // Embeddings: the length of the vectors when the request names no "dimensions" (OpenAI);
    // answer this many vectors more than inputs (< 0: fewer); OpenAI: list "data" in reverse
    // order (each item keeps its "index").
    int embedding_dims = 64;
    int extra_vectors = 0;
    bool reversed_order = false;
    // The answer calls these tools (finish_reason "tool_calls"), its text `tokens` (empty: none).
    // OpenAI streams each call in pieces (id and name first, then the arguments in two halves);
    // Ollama sends each whole, its arguments an object.
    std::vector<ToolCallAnswer> tool_calls;
    // Decides an answer from its request: called with the request body and this behaviour's
    // copy, which it may change (tokens, tool_calls, ...). A model played by a test.
    std::function<void(const nlohmann::json& body, Behavior& answer)> script;
  };

  // The mock's embedding of `text`: its words (runs of ASCII letters and digits, lower-cased, and
  // of bytes >= 0x80, so that Cyrillic words stay whole; all else separates) each hashed (FNV-1a,
  // 32 bits) into one of `dims` buckets, +1 per word, the vector then L2-normalised. A text
  // without words gives the zero vector.
  [[nodiscard]] static std::vector<float> bag_of_words(std::string_view text, int dims = 64);

  // Answers "Answer to: <question>" after `delay` (Behavior::echo_question).
  [[nodiscard]] static Behavior echoing(std::chrono::milliseconds delay = {}) {
    Behavior b;
    b.echo_question = true;
    b.delay = delay;
    return b;
  }

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
  // Every request body received at `path` ("/v1/embeddings", "/api/chat"), in order (a body
  // that is not JSON as a discarded value).
  [[nodiscard]] std::vector<nlohmann::json> bodies(const std::string& path) const;
  void clear_bodies();
  [[nodiscard]] std::string last_header(const std::string& name) const;
  [[nodiscard]] MockHttpServer& http() { return http_; }

 private:
  Behavior take();  // the behaviour for the request being served
  void serve_openai(const httplib::Request& req, httplib::Response& res);
  void serve_ollama(const httplib::Request& req, httplib::Response& res);
  void serve_embeddings(const httplib::Request& req, httplib::Response& res, bool openai);
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
  std::map<std::string, std::vector<nlohmann::json>> bodies_;
  httplib::Headers last_headers_;
};

}  // namespace llmassist::testing
