// The embedding providers (OpenAI-compatible /embeddings, Ollama's /api/embed) against the mock
// LLM server over real loopback HTTP, and against a raw server for answers the mock would never
// give; the EmbeddingProvider conformance suite over both. Their config reader is tested in
// provider_config_test.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <future>
#include <memory>
#include <thread>

#include "llmassist/http/curl_http_client.h"
#include "llmassist/providers/embedding_providers.h"
#include "llmassist/testing/embedding_provider_conformance.h"
#include "support/capturing_logger.h"
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

constexpr const char* kKey = "sk-SECRET-embed-123";

std::shared_ptr<HttpClient> shared_client() {
  CurlHttpClientOptions o;
  o.logger = null_logger();
  return std::shared_ptr<HttpClient>(make_curl_http_client(o).value().release());
}

struct Setup {
  std::shared_ptr<HttpClient> http;
  std::shared_ptr<Logger> logger = null_logger();
  std::chrono::milliseconds total_timeout{5000};
  std::size_t max_response_bytes = std::size_t{16} << 20;
};

std::unique_ptr<EmbeddingProvider> make(Kind kind, const std::string& url, Setup s = {}) {
  if (kind == Kind::kOpenAi) {
    OpenAiEmbeddingOptions o;
    o.name = "openai-embed";
    o.base_url = url;
    o.model = "text-embedding-3-small";
    o.api_key = kKey;
    o.extra_headers = {{"X-Title", "llmassist tests"}};
    o.total_timeout = s.total_timeout;
    o.max_batch = 8;
    o.max_response_bytes = s.max_response_bytes;
    o.http = s.http;
    o.logger = s.logger;
    return make_openai_embedding_provider(o).value();
  }
  OllamaEmbeddingOptions o;
  o.name = "ollama-embed";
  o.base_url = url;
  o.model = "nomic-embed-text";
  o.extra_headers = {{"X-Title", "llmassist tests"}};
  o.truncate = false;
  o.keep_alive = "10m";
  o.total_timeout = s.total_timeout;
  o.max_batch = 8;
  o.max_response_bytes = s.max_response_bytes;
  o.http = s.http;
  o.logger = s.logger;
  return make_ollama_embedding_provider(o).value();
}

std::unique_ptr<EmbeddingProvider> make(Kind kind, const MockLlmServer& server, Setup s = {}) {
  return make(kind, kind == Kind::kOpenAi ? server.openai_url() : server.ollama_url(),
              std::move(s));
}

const char* path_of(Kind kind) { return kind == Kind::kOpenAi ? "/v1/embeddings" : "/api/embed"; }

EmbeddingRequest texts(std::vector<std::string> inputs) {
  EmbeddingRequest r;
  r.inputs = std::move(inputs);
  return r;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  return testing::embedding_checks::cosine(a, b);
}

bool near(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i] - b[i]) > 1e-6F) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("embeddings: the mock's bag of words is deterministic and measures shared words") {
  const auto parcel = MockLlmServer::bag_of_words("Where is my PARCEL?");
  CHECK(near(parcel, MockLlmServer::bag_of_words("where is my parcel")));  // case, punctuation
  double norm = 0;
  for (float x : parcel) norm += static_cast<double>(x) * x;
  CHECK(std::fabs(norm - 1.0) < 1e-6);
  CHECK(parcel.size() == 64);
  CHECK(MockLlmServer::bag_of_words("a b", 16).size() == 16);
  const auto close = MockLlmServer::bag_of_words("my parcel is late");
  const auto far = MockLlmServer::bag_of_words("opening hours on Sunday");
  CHECK(cosine(parcel, close) > cosine(parcel, far));
  // Cyrillic words stay whole: a shared word makes texts similar, another word does not.
  const auto ru = MockLlmServer::bag_of_words("Где моя посылка");
  CHECK(cosine(ru, MockLlmServer::bag_of_words("посылка пришла")) > 0.3);
  CHECK(!near(ru, MockLlmServer::bag_of_words("Где моя книга")));
  for (float x : MockLlmServer::bag_of_words("?!, ...")) CHECK(x == 0.0F);
}

TEST_CASE("embeddings: both providers answer a vector per input, in order, with model and usage") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server);
    CHECK(p->max_batch() == 8);
    const std::vector<std::string> in = {"Where is my parcel?", "my parcel is late",
                                         "Какая погода завтра"};
    auto r = embed_sync(*p, texts(in));
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    REQUIRE(r->vectors.size() == 3);
    for (std::size_t i = 0; i < in.size(); ++i) {
      CHECK(near(r->vectors[i], MockLlmServer::bag_of_words(in[i])));
    }
    CHECK(cosine(r->vectors[0], r->vectors[1]) > cosine(r->vectors[0], r->vectors[2]));
    CHECK(r->provider == p->name());
    CHECK(r->model == p->model());  // the mock names the model asked for
    CHECK(r->prompt_tokens == 11);  // the mock counts words
    auto bodies = server.bodies(path_of(kind));
    REQUIRE(bodies.size() == 1);
    const auto& body = bodies[0];
    CHECK(body["model"] == std::string(p->model()));
    CHECK(body["input"] == nlohmann::json(in));
    CHECK(server.last_header("X-Title") == "llmassist tests");
    if (kind == Kind::kOpenAi) {
      CHECK(body["encoding_format"] == "float");
      CHECK_FALSE(body.contains("dimensions"));
      CHECK(server.last_header("Authorization") == std::string("Bearer ") + kKey);
    } else {
      CHECK(body["truncate"] == false);
      CHECK(body["keep_alive"] == "10m");
      CHECK(server.last_header("Authorization").empty());
    }
    CHECK(server.bodies("/api/chat").empty());
    server.clear_bodies();
    CHECK(server.bodies(path_of(kind)).empty());
  }
}

TEST_CASE("embeddings: OpenAI's data is put in the order of its index; dimensions are asked for") {
  MockLlmServer server;
  Behavior b;
  b.reversed_order = true;
  server.set(b);
  OpenAiEmbeddingOptions o;
  o.base_url = server.openai_url();
  o.model = "text-embedding-3-large";
  o.dimensions = 16;
  o.logger = null_logger();
  auto p = make_openai_embedding_provider(o).value();
  const std::vector<std::string> in = {"first text", "second one", "third and last"};
  auto r = embed_sync(*p, texts(in));
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  REQUIRE(r->vectors.size() == 3);
  for (std::size_t i = 0; i < in.size(); ++i) {
    CHECK(r->vectors[i].size() == 16);
    CHECK(near(r->vectors[i], MockLlmServer::bag_of_words(in[i], 16)));
  }
  CHECK(server.last_body()["dimensions"] == 16);
}

TEST_CASE("embeddings: a request with no inputs or more than max_batch is refused unsent") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    auto p = make(kind, server);
    auto none = embed_sync(*p, texts({}));
    CHECK(none.status().code() == StatusCode::kInvalidArgument);
    auto over = embed_sync(*p, texts(std::vector<std::string>(9, "word")));
    CHECK(over.status().code() == StatusCode::kInvalidArgument);
    CHECK(over.status().message().find("1 to 8 inputs, not 9") != std::string::npos);
    CHECK(server.requests() == 0);
    auto full = embed_sync(*p, texts(std::vector<std::string>(8, "word")));
    REQUIRE(full.ok());
    CHECK(full->vectors.size() == 8);
  }
}

TEST_CASE("embeddings: bad options are refused at creation") {
  OpenAiEmbeddingOptions o;
  o.logger = null_logger();
  CHECK(make_openai_embedding_provider(o).status().code() == StatusCode::kInvalidArgument);
  o.model = "m";
  o.base_url = "ftp://example.org";
  CHECK(make_openai_embedding_provider(o).status().code() == StatusCode::kInvalidArgument);
  o.base_url = "http://127.0.0.1:9/v1/";
  o.dimensions = 0;
  CHECK(make_openai_embedding_provider(o).status().code() == StatusCode::kInvalidArgument);
  o.dimensions.reset();
  for (int bad : {0, -1, 2049}) {
    o.max_batch = bad;
    CHECK(make_openai_embedding_provider(o).status().code() == StatusCode::kInvalidArgument);
  }
  OllamaEmbeddingOptions l;
  l.logger = null_logger();
  CHECK(make_ollama_embedding_provider(l).status().code() == StatusCode::kInvalidArgument);
  l.model = "m";
  l.max_batch = 0;
  CHECK(make_ollama_embedding_provider(l).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("embeddings: HTTP failures map to the codes the LLM providers give, the key unsaid") {
  struct Case {
    int status;
    std::string code;
    StatusCode expected;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {401, "", StatusCode::kUnauthenticated, ""},
      {403, "", StatusCode::kPermissionDenied, ""},
      {404, "", StatusCode::kNotFound, ""},
      {429, "", StatusCode::kResourceExhausted, ""},
      {429, "insufficient_quota", StatusCode::kResourceExhausted, "insufficient_quota"},
      {400, "", StatusCode::kInvalidArgument, ""},
      {500, "", StatusCode::kUnavailable, ""},
      {503, "", StatusCode::kUnavailable, ""},
  };
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    auto logger = std::make_shared<testing::CapturingLogger>();
    Setup s;
    s.logger = logger;
    auto p = make(kind, server, s);
    for (const auto& c : cases) {
      CAPTURE(static_cast<int>(kind));
      CAPTURE(c.status);
      CAPTURE(c.code);
      Behavior b;
      b.status = c.status;
      b.error_code = c.code;
      server.set(b);
      auto r = embed_sync(*p, texts({"hello"}));
      CHECK(r.status().code() == c.expected);
      if (kind == Kind::kOpenAi) CHECK(r.status().reason() == c.reason);
      CHECK(r.status().message().find(std::string(p->name()) + ": HTTP " +
                                      std::to_string(c.status)) == 0);
      // The server's own words are quoted; the key is not.
      CHECK(r.status().message().find("mock failure") != std::string::npos);
      CHECK(r.status().to_string().find("SECRET") == std::string::npos);
    }
    // Ollama says "quota" in words only: its 429 is a plain rate limit, retried.
    Behavior limited;
    limited.status = 429;
    limited.retry_after_seconds = 7;
    server.set(limited);
    auto r = embed_sync(*p, texts({"hello"}));
    REQUIRE(r.status().retry_after().has_value());
    CHECK(*r.status().retry_after() == 7s);
    Behavior down;
    down.status = 503;
    down.retry_after_seconds = 2;
    server.set(down);
    r = embed_sync(*p, texts({"hello"}));
    CHECK(r.status().code() == StatusCode::kUnavailable);
    REQUIRE(r.status().retry_after().has_value());
    CHECK(*r.status().retry_after() == 2s);
    for (const auto& line : logger->lines()) CHECK(line.find("SECRET") == std::string::npos);
  }
}

TEST_CASE("embeddings: timeouts, a closed port, cancellation") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    Behavior hang;
    hang.hang = true;
    server.set(hang);
    Setup s;
    s.total_timeout = 300ms;
    auto p = make(kind, server, s);
    auto r = embed_sync(*p, texts({"hello"}));
    CHECK(r.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(r.status().message().find("total timeout") != std::string::npos);
    // A request's own timeout replaces the configured one.
    auto patient = make(kind, server);  // 5 s
    auto request = texts({"hello"});
    request.timeout = 200ms;
    CHECK(embed_sync(*patient, request).status().code() == StatusCode::kDeadlineExceeded);
    // Cancelling a request in flight ends it; the provider serves the next one.
    request = texts({"hello"});
    request.cancel = CancelToken::create();
    std::atomic<int> calls{0};
    std::promise<Status> status;
    patient->embed(request, [&](Result<Embeddings> result) {
      if (++calls == 1) status.set_value(result.status());
    });
    const int before = server.requests();
    for (int i = 0; i < 500 && server.requests() == before; ++i) std::this_thread::sleep_for(5ms);
    request.cancel->cancel();
    CHECK(status.get_future().get().code() == StatusCode::kCancelled);
    // A token cancelled before the call: never sent.
    auto early = texts({"hello"});
    early.cancel = CancelToken::create();
    early.cancel->cancel();
    CHECK(embed_sync(*patient, early).status().code() == StatusCode::kCancelled);
    server.set(Behavior{});
    CHECK(embed_sync(*patient, texts({"hello"})).ok());
    CHECK(calls == 1);
    auto closed = make(
        kind, std::string(kind == Kind::kOpenAi ? "http://127.0.0.1:1/v1" : "http://127.0.0.1:1"));
    CHECK(embed_sync(*closed, texts({"hello"})).status().code() == StatusCode::kUnavailable);
  }
}

TEST_CASE("embeddings: a malformed answer or a wrong number of vectors is kInvalidArgument") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    CAPTURE(static_cast<int>(kind));
    MockLlmServer server;
    auto p = make(kind, server);
    Behavior b;
    b.malformed = true;
    server.set(b);
    auto r = embed_sync(*p, texts({"a", "b"}));
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("not JSON") != std::string::npos);
    for (int extra : {-1, 1, -2}) {
      CAPTURE(extra);
      Behavior wrong;
      wrong.extra_vectors = extra;
      server.set(wrong);
      r = embed_sync(*p, texts({"a", "b"}));
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK(r.status().message().find("vectors for 2 inputs") != std::string::npos);
    }
  }
}

// Answers no well-behaved server gives, from a raw one: each is refused with kInvalidArgument
// (or, for an error object with HTTP 200, kUnavailable as for the LLM providers), never a crash.
TEST_CASE("embeddings: answers out of shape are refused") {
  using namespace std::string_literals;
  struct Case {
    Kind kind;
    std::string body;
    std::string says;
    StatusCode code = StatusCode::kInvalidArgument;
  };
  const std::vector<Case> cases = {
      {Kind::kOpenAi,
       R"({"data":[{"embedding":[0.1,0.2],"index":0},{"embedding":[0.3],"index":1}]})",
       "vector 1 has 1 numbers, vector 0 has 2"},
      {Kind::kOpenAi,
       R"({"data":[{"embedding":[0.1,1e999],"index":0},{"embedding":[1,2],"index":1}]})",
       "not JSON"},  // past a double's range: the parser refuses it
      {Kind::kOpenAi,
       R"({"data":[{"embedding":[0.1,1e300],"index":0},{"embedding":[1,2],"index":1}]})",
       "not a finite number"},  // past a float's range
      {Kind::kOpenAi,
       R"({"data":[{"embedding":[0.1,"x"],"index":0},{"embedding":[1,2],"index":1}]})",
       "not a finite number"},
      {Kind::kOpenAi, R"({"data":[{"embedding":[1],"index":0},{"embedding":[2],"index":0}]})",
       "two vectors have index 0"},
      {Kind::kOpenAi, R"({"data":[{"embedding":[1],"index":0},{"embedding":[2],"index":5}]})",
       "outside 0..1"},
      {Kind::kOpenAi, R"({"data":[{"embedding":[1],"index":-1},{"embedding":[2],"index":1}]})",
       "outside 0..1"},
      {Kind::kOpenAi, R"({"data":[{"embedding":"AAAA","index":0},{"embedding":"AAAA","index":1}]})",
       "a string, not a list of numbers"},  // base64, though floats were asked for
      {Kind::kOpenAi, R"({"data":[{"embedding":[],"index":0},{"embedding":[],"index":1}]})",
       "vector 0 is empty"},
      {Kind::kOpenAi, R"({"object":"list"})", "no data list"},
      {Kind::kOpenAi,
       R"({"data":[{"embedding":[1],"index":0},{"embedding":[2],"index":1}]})"s + "\0junk"s,
       "not JSON"},
      {Kind::kOpenAi, R"({"error":{"message":"upstream down"}})", "upstream down",
       StatusCode::kUnavailable},
      {Kind::kOllama, R"({"model":"m","embeddings":[[1,2],[3]]})", "vector 1 has 1 numbers"},
      {Kind::kOllama, R"({"model":"m","embeddings":[[1,2],null]})", "not a list of numbers"},
      {Kind::kOllama, R"({"model":"m","embedding":[1,2]})", "no embeddings list"},
      {Kind::kOllama, R"({"model":"m","embeddings":[[1],[2]]})"s + "\0"s, "not JSON"},
      {Kind::kOllama, R"([1, 2])", "not JSON"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    RawHttpServer server;
    server.start([&](RawConnection& conn) {
      while (conn.read_request()) {
        conn.write(json_response(c.body));
      }
    });
    auto p = make(c.kind, c.kind == Kind::kOpenAi ? server.url("/v1") : server.url());
    auto r = embed_sync(*p, texts({"a", "b"}));
    CHECK(r.status().code() == c.code);
    CHECK_MESSAGE(r.status().message().find(c.says) != std::string::npos, r.status().message());
  }
}

TEST_CASE("embeddings: an answer past max_response_bytes is stopped") {
  for (Kind kind : {Kind::kOpenAi, Kind::kOllama}) {
    MockLlmServer server;
    Setup s;
    s.max_response_bytes = 2000;  // 8 vectors of 64 numbers take some 10 KB
    auto p = make(kind, server, s);
    auto r = embed_sync(*p, texts(std::vector<std::string>(8, "a few words here")));
    CHECK(r.status().code() == StatusCode::kOutOfRange);
    CHECK(r.status().reason() == "response_too_large");
    CHECK(embed_sync(*p, texts({"one"})).ok());  // a small answer passes
  }
}

TEST_CASE("embeddings: many requests in flight at once over one client") {
  MockLlmServer server;
  constexpr int kRequests = 40;
  Behavior held;
  held.hold_until_in_flight = kRequests;  // every request waits until all have arrived
  server.set(held);
  Setup s;
  s.http = shared_client();
  auto openai = make(Kind::kOpenAi, server, s);
  auto ollama = make(Kind::kOllama, server, s);
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kRequests; ++i) {
    EmbeddingProvider& p = i % 2 == 0 ? *openai : *ollama;
    const std::string text = "request number " + std::to_string(i);
    p.embed(texts({text, "shared words"}), [&, text](Result<Embeddings> r) {
      if (r.ok() && r->vectors.size() == 2 &&
          near(r->vectors[0], MockLlmServer::bag_of_words(text))) {
        ++ok;
      }
      ++done;
    });
  }
  REQUIRE(testing::wait_until([&] { return done.load() == kRequests; }, 30s));
  CHECK(ok == kRequests);
  CHECK(server.max_in_flight() == kRequests);
  CHECK(server.bodies("/v1/embeddings").size() == kRequests / 2);
  CHECK(server.bodies("/api/embed").size() == kRequests / 2);
}

// The server read a request on a kept-alive connection and closed it without a reply: the
// provider sends it once more, on a fresh connection.
TEST_CASE("embeddings: a request lost by a kept-alive connection is sent once more") {
  const std::string answer = R"({"data":[{"embedding":[0.6,0.8],"index":0}],"model":"m"})";
  const std::string reply = json_response(answer);
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() == 0) {
      if (!conn.read_request()) return;
      conn.write(reply);
      conn.read_request();  // then closes without a byte of reply
      return;
    }
    if (!conn.read_request()) return;
    conn.write(reply);
  });
  Setup s;
  s.http = shared_client();
  auto p = make(Kind::kOpenAi, server.url("/v1"), s);
  REQUIRE(embed_sync(*p, texts({"warm-up"})).ok());
  auto second = embed_sync(*p, texts({"the one lost"}));
  REQUIRE_MESSAGE(second.ok(), second.status().to_string());
  CHECK(second->vectors[0] == std::vector<float>{0.6F, 0.8F});
  int copies = 0;
  for (const auto& r : server.requests()) {
    if (r.body.find("the one lost") != std::string::npos) ++copies;
  }
  CHECK(copies == 2);
}

// ---- the conformance suite
// -----------------------------------------------------------------------

namespace {

class MockEmbeddingHarness final : public testing::EmbeddingProviderHarness {
 public:
  explicit MockEmbeddingHarness(Kind kind) { provider_ = make(kind, server_); }
  EmbeddingProvider& provider() override { return *provider_; }
  bool set_backend(testing::EmbeddingBackend what) override {
    Behavior b;
    switch (what) {
      case testing::EmbeddingBackend::kAnswer:
        break;
      case testing::EmbeddingBackend::kUnavailable:
        b.status = 503;
        break;
      case testing::EmbeddingBackend::kRateLimited:
        b.status = 429;
        break;
      case testing::EmbeddingBackend::kBadRequest:
        b.status = 400;
        break;
      case testing::EmbeddingBackend::kHang:
        b.hang = true;
        break;
      case testing::EmbeddingBackend::kShortAnswer:
        b.extra_vectors = -1;
        break;
    }
    server_.set(b);
    return true;
  }
  void destroy_provider() override { provider_.reset(); }

 private:
  MockLlmServer server_;
  std::unique_ptr<EmbeddingProvider> provider_;
};

void run_suite(Kind kind) {
  for (const std::string& name : testing::embedding_provider_check_names()) {
    SUBCASE(name.c_str()) {
      auto result = testing::run_embedding_provider_check(
          name, [kind]() -> Result<std::unique_ptr<testing::EmbeddingProviderHarness>> {
            return std::unique_ptr<testing::EmbeddingProviderHarness>(
                new MockEmbeddingHarness(kind));
          });
      CHECK_MESSAGE(result.passed, result.message);
      CHECK_FALSE(result.skipped);
    }
  }
}

}  // namespace

TEST_CASE("embedding conformance: the OpenAI-compatible provider") { run_suite(Kind::kOpenAi); }
TEST_CASE("embedding conformance: the Ollama provider") { run_suite(Kind::kOllama); }
