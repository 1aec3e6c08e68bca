// The LlmProvider conformance suite (llmassist/testing/llm_provider_conformance.h) against the
// OpenAI and Ollama providers over the mock LLM server, the fallback chain, the retrying and the
// concurrency-limited providers (each around an OpenAI provider over the mock), and the
// knowledge-base provider, which answers from its own data at once: it cannot be made to fail
// with an HTTP status, to hang or to answer a given text, so those checks are skipped for it.
// The fallback chain reports its providers' failures in codes of its own (fallback_chain.h).
// The OpenAI and Ollama providers run it with an HTTP client of their own and over a client
// shared with a second provider (as llmassist-bot's config shares one among a chain's
// providers), and the chain over two such providers: destroying a provider must end what it has
// in flight whoever owns the client.
#include <doctest/doctest.h>

#include <memory>

#include "llmassist/core/limited_provider.h"
#include "llmassist/core/retrying_provider.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/http/curl_http_client.h"
#include "llmassist/providers/knowledge_base_provider.h"
#include "llmassist/providers/ollama_provider.h"
#include "llmassist/providers/openai_provider.h"
#include "llmassist/testing/llm_provider_conformance.h"
#include "support/mock_llm_server.h"

namespace llmassist {
namespace {

using testing::LlmBackend;
using testing::MockLlmServer;

enum class Kind {
  kOpenAi,
  kOllama,
  kOpenAiShared,  // over a client shared with an Ollama provider, which lives on
  kOllamaShared,  // over a client shared with an OpenAI provider, which lives on
  kChain,
  kChainShared,  // an OpenAI and an Ollama provider over one client
  kRetrying,
  kLimited,
};

// Splits `text` into pieces of a few bytes, at UTF-8 character boundaries.
std::vector<std::string> pieces(const std::string& text) {
  std::vector<std::string> out;
  std::string piece;
  for (char c : text) {
    const bool continuation = (static_cast<unsigned char>(c) & 0xC0) == 0x80;
    if (!continuation && piece.size() >= 5) {
      out.push_back(piece);
      piece.clear();
    }
    piece += c;
  }
  if (!piece.empty()) out.push_back(piece);
  return out;
}

class MockBackedHarness final : public testing::LlmProviderHarness {
 public:
  explicit MockBackedHarness(Kind kind) : kind_(kind) {
    const bool shared =
        kind == Kind::kOpenAiShared || kind == Kind::kOllamaShared || kind == Kind::kChainShared;
    if (shared) {
      CurlHttpClientOptions o;
      o.logger = null_logger();
      http_ = std::shared_ptr<HttpClient>(make_curl_http_client(o).value());
    }
    // Without a shared client, each provider makes one of its own.
    std::shared_ptr<LlmProvider> openai = openai_provider();
    std::shared_ptr<LlmProvider> ollama = ollama_provider();
    switch (kind) {
      case Kind::kOpenAi:
        provider_ = std::move(openai);
        break;
      case Kind::kOllama:
        provider_ = std::move(ollama);
        break;
      case Kind::kOpenAiShared:
        provider_ = std::move(openai);
        bystander_ = std::move(ollama);
        break;
      case Kind::kOllamaShared:
        provider_ = std::move(ollama);
        bystander_ = std::move(openai);
        break;
      case Kind::kChain: {
        FallbackChainOptions o;
        o.logger = null_logger();
        provider_ = make_fallback_chain({openai}, o).value();
        break;
      }
      case Kind::kChainShared: {
        FallbackChainOptions o;
        o.logger = null_logger();
        provider_ = make_fallback_chain({openai, ollama}, o).value();
        break;
      }
      case Kind::kRetrying: {
        RetryOptions o;
        o.max_retries = 1;
        o.base_delay = std::chrono::milliseconds(10);
        provider_ = make_retrying_provider(openai, o);
        break;
      }
      case Kind::kLimited: {
        ConcurrencyLimitOptions o;
        o.max_in_flight = 2;
        provider_ = make_concurrency_limited_provider(openai, o).value();
        break;
      }
    }
  }

  ~MockBackedHarness() override {
    destroy_provider();
    bystander_.reset();
  }

  LlmProvider& provider() override { return *provider_; }
  // The chain sums its providers' failures up in codes of its own (fallback_chain.h).
  [[nodiscard]] bool reports_backend_codes() const override {
    return kind_ != Kind::kChain && kind_ != Kind::kChainShared;
  }

  bool set_backend(LlmBackend what, const std::string& answer) override {
    MockLlmServer::Behavior b;
    switch (what) {
      case LlmBackend::kAnswer:
        b.tokens = pieces(answer);
        break;
      case LlmBackend::kUnavailable:
        b.status = 503;
        break;
      case LlmBackend::kRateLimited:
        b.status = 429;
        break;
      case LlmBackend::kBadRequest:
        b.status = 400;
        break;
      case LlmBackend::kHang:
        b.hang = true;
        break;
    }
    server_.set(b);
    return true;
  }

  // The only owner: a wrapper owns what it wraps alone. The bystander and a shared client live
  // on.
  void destroy_provider() override { provider_.reset(); }

 private:
  std::shared_ptr<LlmProvider> openai_provider() {
    OpenAiProviderOptions o;
    o.base_url = server_.openai_url();
    o.model = "mock-model";
    o.api_key = "sk-conformance";
    o.logger = null_logger();
    o.http = http_;
    return make_openai_provider(o).value();
  }
  std::shared_ptr<LlmProvider> ollama_provider() {
    OllamaProviderOptions o;
    o.base_url = server_.ollama_url();
    o.model = "qwen3:1.7b";
    o.logger = null_logger();
    o.http = http_;
    return make_ollama_provider(o).value();
  }

  const Kind kind_;
  MockLlmServer server_;
  std::shared_ptr<HttpClient> http_;        // shared by the providers; null: each has its own
  std::shared_ptr<LlmProvider> bystander_;  // the other provider on a shared client
  std::shared_ptr<LlmProvider> provider_;   // what the checks call
};

class KnowledgeBaseHarness final : public testing::LlmProviderHarness {
 public:
  KnowledgeBaseHarness() {
    KnowledgeBaseOptions o;
    o.text = "# Greetings\n\n## Say hello\nHello from the knowledge base, ✓.\n";
    o.logger = null_logger();
    provider_ = make_knowledge_base_provider(o).value();
  }
  LlmProvider& provider() override { return *provider_; }
  // It answers from its entries, at once: nothing to fail, hang or script.
  bool set_backend(LlmBackend what, const std::string&) override {
    return what == LlmBackend::kAnswer;
  }
  [[nodiscard]] bool controls_answer_text() const override { return false; }
  void destroy_provider() override { provider_.reset(); }

 private:
  std::unique_ptr<LlmProvider> provider_;
};

void run_suite(const testing::LlmProviderFactory& factory) {
  for (const std::string& name : testing::llm_provider_check_names()) {
    SUBCASE(name.c_str()) {
      const testing::CheckResult r = testing::run_llm_provider_check(name, factory);
      if (r.skipped) MESSAGE(name << ": skipped: " << r.message);
      CHECK_MESSAGE(r.passed, name << ":\n" << r.message);
    }
  }
}

testing::LlmProviderFactory over_mock(Kind kind) {
  return [kind]() -> Result<std::unique_ptr<testing::LlmProviderHarness>> {
    return std::unique_ptr<testing::LlmProviderHarness>(new MockBackedHarness(kind));
  };
}

TEST_CASE("LlmProvider conformance: the OpenAI provider") { run_suite(over_mock(Kind::kOpenAi)); }
TEST_CASE("LlmProvider conformance: the Ollama provider") { run_suite(over_mock(Kind::kOllama)); }
TEST_CASE("LlmProvider conformance: the OpenAI provider over a shared HTTP client") {
  run_suite(over_mock(Kind::kOpenAiShared));
}
TEST_CASE("LlmProvider conformance: the Ollama provider over a shared HTTP client") {
  run_suite(over_mock(Kind::kOllamaShared));
}
TEST_CASE("LlmProvider conformance: the fallback chain") { run_suite(over_mock(Kind::kChain)); }
TEST_CASE("LlmProvider conformance: the fallback chain of two providers over one HTTP client") {
  run_suite(over_mock(Kind::kChainShared));
}
TEST_CASE("LlmProvider conformance: the retrying provider") {
  run_suite(over_mock(Kind::kRetrying));
}
TEST_CASE("LlmProvider conformance: the concurrency-limited provider") {
  run_suite(over_mock(Kind::kLimited));
}
TEST_CASE("LlmProvider conformance: the knowledge-base provider") {
  run_suite([]() -> Result<std::unique_ptr<testing::LlmProviderHarness>> {
    return std::unique_ptr<testing::LlmProviderHarness>(new KnowledgeBaseHarness());
  });
}

}  // namespace
}  // namespace llmassist
