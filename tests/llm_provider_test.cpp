// The HTTP providers against the mock LLM server over real loopback HTTP: one contract suite run
// for the OpenAI-compatible provider (SSE) and the Ollama provider (NDJSON), plus what is
// particular to each.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include "llmassist/http/curl_http_client.h"
#include "llmassist/providers/ollama_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "providers/provider_util.h"
#include "support/mock_llm_server.h"
#include "support/raw_http_server.h"

using namespace llmassist;
using namespace std::chrono_literals;
using llmassist::testing::json_response;
using llmassist::testing::MockLlmServer;
using llmassist::testing::RawConnection;
using llmassist::testing::RawHttpServer;
using Behavior = MockLlmServer::Behavior;

namespace {

enum class Kind { kOpenAi, kOllama };

std::shared_ptr<HttpClient> shared_client() {
  CurlHttpClientOptions o;
  o.logger = null_logger();
  return std::shared_ptr<HttpClient>(make_curl_http_client(o).value().release());
}

std::unique_ptr<LlmProvider> make(Kind kind, const MockLlmServer& server,
                                  std::chrono::milliseconds first_byte = 5s) {
  if (kind == Kind::kOpenAi) {
    OpenAiProviderOptions o;
    o.name = "openai-test";
    o.base_url = server.openai_url();
    o.model = "mock-model";
    o.api_key = "sk-SECRET-123";
    o.extra_headers = {{"HTTP-Referer", "https://example.org"}, {"X-Title", "llmassist tests"}};
    o.first_byte_timeout = first_byte;
    o.logger = null_logger();
    return make_openai_provider(o).value();
  }
  OllamaProviderOptions o;
  o.name = "ollama-test";
  o.base_url = server.ollama_url();
  o.model = "qwen3:1.7b";
  o.first_byte_timeout = first_byte;
  o.num_ctx = 4096;
  o.keep_alive = "5m";
  o.logger = null_logger();
  return make_ollama_provider(o).value();
}

CompletionRequest question(const std::string& text = "Say hello") {
  CompletionRequest r;
  r.messages = {{Role::kSystem, "You are terse."},
                {Role::kUser, text},
                {Role::kOperator, "an operator's earlier words"},
                {Role::kUser, text}};
  r.temperature = 0.25;
  r.max_tokens = 64;
  return r;
}

struct Streamed {
  Result<Completion> result = internal_error("not run");
  std::vector<std::string> tokens;
  std::string joined() const {
    std::string s;
    for (const auto& t : tokens) s += t;
    return s;
  }
};

Streamed stream(LlmProvider& p, CompletionRequest r = question()) {
  Streamed s;
  s.result = complete_sync(p, std::move(r), [&](std::string_view t) {
    s.tokens.emplace_back(t);
    return true;
  });
  return s;
}

}  // namespace

TEST_CASE("providers: whole and streamed answers agree, with usage and the request as sent") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server);
    auto whole = complete_sync(*p, question());
    REQUIRE_MESSAGE(whole.ok(), whole.status().to_string());
    CHECK(whole->text == "Hello, world!");
    CHECK(whole->model == "mock-model");
    CHECK(whole->usage.prompt_tokens == 11);
    CHECK(whole->usage.completion_tokens == 7);
    CHECK(whole->provider == p->name());
    auto body = server.last_body();
    CHECK(body["stream"] == false);
    REQUIRE(body["messages"].size() == 4);
    CHECK(body["messages"][0]["role"] == "system");
    CHECK(body["messages"][2]["role"] == "assistant");  // the operator's words
    auto s = stream(*p);
    REQUIRE_MESSAGE(s.result.ok(), s.result.status().to_string());
    CHECK(s.tokens == std::vector<std::string>{"Hello", ", ", "world", "!"});
    CHECK(s.result->text == whole->text);
    CHECK(s.result->usage.completion_tokens == 7);
    CHECK(s.result->finish_reason == "stop");
    body = server.last_body();
    CHECK(body["stream"] == true);
    if (kind == Kind::kOpenAi) {
      CHECK(body["model"] == "mock-model");
      CHECK(body["temperature"] == 0.25);
      CHECK(body["max_tokens"] == 64);
      CHECK(body["stream_options"]["include_usage"] == true);
      CHECK(server.last_header("Authorization") == "Bearer sk-SECRET-123");
      CHECK(server.last_header("X-Title") == "llmassist tests");
    } else {
      CHECK(body["model"] == "qwen3:1.7b");
      CHECK(body["think"] == false);  // always explicit
      CHECK(body["options"]["temperature"] == 0.25);
      CHECK(body["options"]["num_ctx"] == 4096);
      CHECK(body["options"]["num_predict"] == 64);
      CHECK(body["keep_alive"] == "5m");
    }
  }
}

TEST_CASE("providers: reasoning never reaches the answer, as a field or inline <think>") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    for (bool inline_think : {false, true}) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(inline_think);
      MockLlmServer server;
      Behavior b;
      b.reasoning = "The user wants a greeting. I will greet.";
      b.inline_think = inline_think;
      server.set(b);
      auto p = make(kind, server);
      auto whole = complete_sync(*p, question());
      REQUIRE(whole.ok());
      CHECK(whole->text == "Hello, world!");
      CHECK(whole->reasoning.find("I will greet") != std::string::npos);
      auto s = stream(*p);
      REQUIRE(s.result.ok());
      CHECK(s.joined() == "Hello, world!");
      CHECK(s.joined().find("greet") == std::string::npos);
      CHECK(s.result->reasoning.find("I will greet") != std::string::npos);
    }
  }
}

TEST_CASE("providers: HTTP failures map to codes the fallback chain branches on") {
  struct Case {
    int status;
    std::string code;
    std::string body;
    StatusCode expected;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {401, "", "", StatusCode::kUnauthenticated, ""},
      {403, "", "", StatusCode::kPermissionDenied, ""},
      {429, "", "", StatusCode::kResourceExhausted, ""},
      {429, "insufficient_quota", "", StatusCode::kResourceExhausted, "insufficient_quota"},
      {500, "", "", StatusCode::kUnavailable, ""},
      {503, "", "", StatusCode::kUnavailable, ""},
      {400, "", R"({"error": {"message": "This model's maximum context length is 8192 tokens"}})",
       StatusCode::kOutOfRange, "context_length_exceeded"},
      {400, "", R"({"error": {"message": "invalid value for temperature"}})",
       StatusCode::kInvalidArgument, ""},
      {502, "", "<html>bad gateway</html>", StatusCode::kUnavailable, ""},
  };
  MockLlmServer server;
  auto p = make(Kind::kOpenAi, server);
  for (const auto& c : cases) {
    CAPTURE(c.status);
    CAPTURE(c.code);
    Behavior b;
    b.status = c.status;
    b.error_code = c.code;
    b.error_body = c.body;
    server.set(b);
    for (bool streaming : {false, true}) {
      auto r = streaming ? stream(*p).result : complete_sync(*p, question());
      CHECK(r.status().code() == c.expected);
      CHECK(r.status().reason() == c.reason);
      CHECK(r.status().message().find("openai-test: HTTP " + std::to_string(c.status)) == 0);
      CHECK(r.status().message().find("SECRET") == std::string::npos);
    }
  }
  // The server's own words are quoted.
  Behavior b;
  b.status = 500;
  server.set(b);
  CHECK(complete_sync(*p, question()).status().message().find("mock failure 500") !=
        std::string::npos);
}

TEST_CASE("providers: Retry-After comes back with a 429 or 503") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    Behavior b;
    b.status = 429;
    b.retry_after_seconds = 7;
    server.set(b);
    auto p = make(kind, server);
    auto r = complete_sync(*p, question());
    REQUIRE(r.status().retry_after().has_value());
    CHECK(*r.status().retry_after() == 7s);
  }
}

TEST_CASE("providers: malformed answers give clear errors, never a crash") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    Behavior b;
    b.malformed = true;
    server.set(b);
    auto p = make(kind, server);
    auto whole = complete_sync(*p, question());
    CHECK(whole.status().code() == StatusCode::kInvalidArgument);
    CHECK(whole.status().message().find("not JSON") != std::string::npos);
    auto s = stream(*p);
    CHECK(s.result.status().code() == StatusCode::kInvalidArgument);
    CHECK(s.result.status().message().find("malformed") != std::string::npos);
  }
  MockLlmServer server;
  Behavior b;
  b.empty_choices = true;
  server.set(b);
  auto p = make(Kind::kOpenAi, server);
  auto whole = complete_sync(*p, question());
  CHECK(whole.status().code() == StatusCode::kInvalidArgument);
  CHECK(whole.status().message().find("no choices") != std::string::npos);
  auto s = stream(*p);
  CHECK(s.result.status().code() == StatusCode::kInvalidArgument);
  CHECK(s.result.status().reason() == "empty_answer");
}

TEST_CASE("providers: a stream cut in the middle, or an error event in it, is a failure") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    Behavior cut;
    cut.cut_after_tokens = 2;
    server.set(cut);
    auto p = make(kind, server);
    auto s = stream(*p);
    CHECK_FALSE(s.result.ok());
    CHECK(s.result.status().code() == StatusCode::kUnavailable);
    CHECK(s.tokens.size() == 2);
    Behavior err;
    err.error_event = true;
    server.set(err);
    s = stream(*p);
    CHECK(s.result.status().code() == StatusCode::kUnavailable);
    CHECK(s.joined() == "Hello");  // the error is not text
  }
}

TEST_CASE("providers: a hanging server times out, a closed port is unavailable") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    Behavior hang;
    hang.hang = true;
    server.set(hang);
    auto p = make(kind, server, 300ms);
    auto r = complete_sync(*p, question());
    CHECK(r.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(r.status().message().find("first-byte timeout") != std::string::npos);
  }
  OpenAiProviderOptions o;
  o.base_url = "http://127.0.0.1:1/v1";  // nothing listens on port 1
  o.model = "m";
  o.logger = null_logger();
  auto p = make_openai_provider(o).value();
  auto r = complete_sync(*p, question());
  CHECK(r.status().code() == StatusCode::kUnavailable);
}

TEST_CASE("providers: cancelling a stream stops it and the provider serves the next request") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    Behavior slow;
    slow.tokens = std::vector<std::string>(50, "tick ");
    slow.token_delay = 50ms;
    server.set(slow);
    auto p = make(kind, server);
    auto request = question();
    request.cancel = CancelToken::create();
    std::atomic<int> seen{0};
    auto r = complete_sync(*p, request, [&](std::string_view) {
      if (++seen == 3) request.cancel->cancel();
      return true;
    });
    CHECK(r.status().code() == StatusCode::kCancelled);
    CHECK(seen < 50);
    // A token callback returning false stops the stream too.
    r = complete_sync(*p, question(), [](std::string_view) { return false; });
    CHECK(r.status().code() == StatusCode::kCancelled);
    server.set(Behavior{});
    CHECK(complete_sync(*p, question()).ok());
  }
}

TEST_CASE("providers: bad options are refused at creation") {
  OpenAiProviderOptions o;
  o.logger = null_logger();
  CHECK(make_openai_provider(o).status().code() == StatusCode::kInvalidArgument);  // no model
  o.model = "m";
  o.base_url = "ftp://example.org";
  CHECK(make_openai_provider(o).status().code() == StatusCode::kInvalidArgument);
  o.base_url = "http://127.0.0.1:9/v1";
  o.extra_body_json = "[1, 2]";
  CHECK(make_openai_provider(o).status().code() == StatusCode::kInvalidArgument);
  OllamaProviderOptions l;
  l.logger = null_logger();
  CHECK(make_ollama_provider(l).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("providers: many requests share one client's I/O thread") {
  MockLlmServer server;
  Behavior b;
  b.delay = 100ms;
  server.set(b);
  OpenAiProviderOptions o;
  o.base_url = server.openai_url();
  o.model = "m";
  o.http = shared_client();
  o.logger = null_logger();
  auto p = make_openai_provider(o).value();
  constexpr int kRequests = 50;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kRequests; ++i) {
    p->complete(question(), {}, [&](Result<Completion> r) {
      if (r.ok() && r->text == "Hello, world!") ++ok;
      ++done;
    });
  }
  while (done < kRequests) std::this_thread::sleep_for(5ms);
  CHECK(ok == kRequests);
}

TEST_CASE("provider util: the think filter handles tags split anywhere across chunks") {
  const std::string text = "<think>plan: greet\nthen stop</think>\n\nHello <b>there</b>, friend.";
  for (std::size_t cut1 = 0; cut1 < text.size(); ++cut1) {
    for (std::size_t cut2 = cut1; cut2 < text.size(); cut2 += 7) {
      detail::ThinkFilter f;
      std::string out = f.feed(text.substr(0, cut1));
      out += f.feed(text.substr(cut1, cut2 - cut1));
      out += f.feed(text.substr(cut2));
      out += f.finish();
      CHECK(out == "Hello <b>there</b>, friend.");
      CHECK(f.reasoning() == "plan: greet\nthen stop");
    }
  }
  std::string reasoning;
  CHECK(detail::strip_think("no tags at all <thin", &reasoning) == "no tags at all <thin");
  CHECK(detail::strip_think("<think>never closed", &reasoning).empty());
  CHECK(reasoning == "never closed");
  CHECK(detail::strip_think("stray </think>closing") == "stray closing");
}

TEST_CASE("provider util: lines split across chunks, CRLF or LF") {
  detail::LineSplitter s;
  std::vector<std::string> lines;
  auto take = [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  };
  CHECK(s.feed("data: a\r", take));
  CHECK(s.feed("\ndata: b\n\n: comm", take));
  CHECK(s.feed("ent\n", take));
  CHECK(lines == std::vector<std::string>{"data: a", "data: b", "", ": comment"});
  detail::LineSplitter small(8);
  CHECK_FALSE(small.feed("0123456789abc", take));  // a line over the limit
}

TEST_CASE("providers: a cancelled request frees its connection for the next one") {
  MockLlmServer server;
  CurlHttpClientOptions c;
  c.max_connections_per_host = 1;  // the next request can only run on a freed connection
  c.logger = null_logger();
  auto http = std::shared_ptr<HttpClient>(make_curl_http_client(c).value().release());
  auto provider = [&](std::chrono::milliseconds first_byte) {
    OpenAiProviderOptions o;
    o.base_url = server.openai_url();
    o.model = "m";
    o.first_byte_timeout = first_byte;  // includes waiting for a free connection
    o.http = http;
    o.logger = null_logger();
    return make_openai_provider(o).value();
  };
  auto patient = provider(60s);  // would hold the connection for a minute
  auto hasty = provider(2s);     // gives up unless the connection is freed
  Behavior hang;
  hang.hang = true;
  server.set_next(hang, 1);
  auto request = question();
  request.cancel = CancelToken::create();
  std::promise<Result<Completion>> first;
  patient->complete(request, {}, [&](Result<Completion> r) { first.set_value(std::move(r)); });
  for (int i = 0; i < 500 && server.requests() < 1; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(server.requests() == 1);
  request.cancel->cancel();
  CHECK(first.get_future().get().status().code() == StatusCode::kCancelled);
  auto next = complete_sync(*hasty, question());
  REQUIRE_MESSAGE(next.ok(), next.status().to_string());
  CHECK(next->text == "Hello, world!");
}

TEST_CASE("providers: an endless streamed answer is stopped at max_answer_bytes") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    Behavior endless;
    endless.endless = true;
    endless.tokens = {std::string(1000, 'x')};
    endless.reasoning = "thinking it over";
    server.set(endless);
    auto p = make(kind, server);  // the default cap, 256 KiB
    auto s = stream(*p);
    REQUIRE_FALSE(s.result.ok());
    CHECK(s.result.status().code() == StatusCode::kOutOfRange);
    CHECK(s.result.status().reason() == "answer_too_large");
    CHECK(s.result.status().message().find("max_answer_bytes") != std::string::npos);
    CHECK(s.joined().size() <= 256u * 1024);
    CHECK(s.joined().size() > 200u * 1024);
    // The stream was cancelled, not read to its end; the provider serves the next request.
    server.set(Behavior{});
    auto next = stream(*p);
    REQUIRE(next.result.ok());
    CHECK(next.result->text == "Hello, world!");
  }
}

// JSON holds no raw NUL byte; nlohmann's parser would take one for the end of the input and read
// the object before it. An answer, a stream event or a stream line with a NUL is malformed.
TEST_CASE("providers: an answer or a stream event with a NUL byte in it is malformed") {
  using namespace std::string_literals;
  const std::string openai_answer =
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},)"
      R"("finish_reason":"stop"}]})"s +
      "\0junk"s;
  const std::string openai_stream =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\0junk\n\n"
      "data: [DONE]\n\n"s;
  const std::string ollama_answer =
      R"({"model":"m","message":{"role":"assistant","content":"Hi"},"done":true})"s + "\0junk"s;
  const std::string ollama_stream =
      R"({"model":"m","message":{"role":"assistant","content":"Hi"},"done":false})"s + "\0junk\n"s +
      R"({"model":"m","message":{"role":"assistant","content":""},"done":true})"s + "\n"s;
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    for (bool streamed : {false, true}) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(streamed);
      const std::string body = kind == Kind::kOpenAi ? (streamed ? openai_stream : openai_answer)
                                                     : (streamed ? ollama_stream : ollama_answer);
      const std::string type = !streamed               ? "application/json"
                               : kind == Kind::kOpenAi ? "text/event-stream"
                                                       : "application/x-ndjson";
      RawHttpServer server;
      server.start([&](RawConnection& conn) {
        while (conn.read_request()) {
          conn.write("HTTP/1.1 200 OK\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
        }
      });
      std::unique_ptr<LlmProvider> p;
      if (kind == Kind::kOpenAi) {
        OpenAiProviderOptions o;
        o.base_url = server.url("/v1");
        o.model = "m";
        o.logger = null_logger();
        p = make_openai_provider(o).value();
      } else {
        OllamaProviderOptions o;
        o.base_url = server.url();
        o.model = "m";
        o.logger = null_logger();
        p = make_ollama_provider(o).value();
      }
      auto r = streamed ? stream(*p).result : complete_sync(*p, question());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
    }
  }
}

// The server read a completion on a kept-alive connection and closed it without a reply: the
// HTTP client does not send a POST twice (reason not_resent), and the provider sends it once
// more, on a fresh connection. Once: a second loss is the answer.
TEST_CASE("providers: a completion lost by a kept-alive connection is sent once more, once") {
  bool lost_twice = false;
  SUBCASE("the second copy is answered") {}
  SUBCASE("the second copy is lost too") { lost_twice = true; }
  const std::string answer =
      R"({"id":"c1","object":"chat.completion","model":"mock-model","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"Hello again"},"finish_reason":"stop"}]})";
  const std::string reply = json_response(answer);
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() == 0) {
      if (!conn.read_request()) return;
      conn.write(reply);
      conn.read_request();  // then closes without a byte of reply
      return;
    }
    // (curl may open a connection for a retry of its own that the client stops before it
    // sends: such a connection reads nothing.)
    if (!conn.read_request()) return;
    if (!lost_twice) conn.write(reply);
  });
  OpenAiProviderOptions o;
  o.name = "openai-test";
  o.base_url = server.url("/v1");
  o.model = "mock-model";
  o.logger = null_logger();
  o.http = shared_client();
  auto provider = make_openai_provider(o).value();
  REQUIRE(complete_sync(*provider, question("warm-up")).ok());
  auto second = complete_sync(*provider, question("the one lost"));
  // The first copy went on the warm-up's connection, the second on a fresh one.
  std::vector<int> copies_on;
  for (const auto& r : server.requests()) {
    if (r.body.find("the one lost") != std::string::npos) copies_on.push_back(r.connection);
  }
  REQUIRE(copies_on.size() == 2);
  CHECK(copies_on[0] == 0);
  CHECK(copies_on[1] > 0);
  if (lost_twice) {
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == StatusCode::kUnavailable);
  } else {
    REQUIRE_MESSAGE(second.ok(), second.status().to_string());
    CHECK(second->text == "Hello again");
  }
}
