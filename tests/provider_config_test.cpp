// Building the provider chain from JSON: every provider type, the fallback section, and the
// errors a user sees for a wrong file; and an embedding provider from its embeddings object.
#include <doctest/doctest.h>

#include <fstream>
#include <map>

#include "llmassist/bot/provider_config.h"
#include "llmassist/providers/embedding_providers.h"
#include "support/mock_llm_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using llmassist::testing::MockLlmServer;

namespace {

ProviderConfigContext context(std::map<std::string, std::string> env = {}) {
  ProviderConfigContext c;
  c.logger = null_logger();
  c.getenv = [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  return c;
}

Status error_of(const std::string& config, std::map<std::string, std::string> env = {}) {
  return make_chain_from_config(config, context(std::move(env))).status();
}

CompletionRequest question(const std::string& text) {
  CompletionRequest r;
  r.messages = {{Role::kUser, text}};
  return r;
}

}  // namespace

TEST_CASE("config: providers of every type form the chain in order, keys from the environment") {
  MockLlmServer openai_server;
  MockLlmServer ollama_server;
  llmassist::testing::TempDir dir;
  std::ofstream(dir.file("faq.md")) << "## What are your opening hours?\n9 to 5.\n";
  const std::string config = R"({
    "providers": [
      {"type": "openai", "name": "router", "base_url": ")" +
                             openai_server.openai_url() + R"(",
       "model": "mock-model", "api_key_env": "ROUTER_KEY",
       "headers": {"HTTP-Referer": "https://example.org", "X-Title": "shop bot"},
       "temperature": 0.2, "max_tokens": 300, "stop": ["###"], "retries": 0,
       "timeouts": {"connect_ms": 2000, "first_byte_ms": 5000, "total_ms": 60000, "idle_ms": 10000},
       "extra_body": {"top_p": 0.9}},
      {"type": "ollama", "name": "local", "base_url": ")" +
                             ollama_server.ollama_url() + R"(",
       "model": "qwen3:1.7b", "options": {"top_k": 20}, "num_ctx": 8192, "keep_alive": "10m",
       "think": false},
      {"type": "knowledge_base", "name": "faq", "path": "faq.md", "min_score": 0.4}
    ],
    "fallback": {"failure_threshold": 2, "cooldown_ms": 10000, "max_keep_out_ms": 60000},
    "telegram": {"this section": "belongs to the bot and is left alone"}
  })";
  std::ofstream(dir.file("bot.json")) << config;
  auto chain =
      make_chain_from_config_file(dir.file("bot.json"), context({{"ROUTER_KEY", "sk-from-env"}}));
  REQUIRE_MESSAGE(chain.ok(), chain.status().to_string());
  auto stats = (*chain)->provider_stats();
  REQUIRE(stats.size() == 3);
  CHECK(stats[0].name == "router");
  CHECK(stats[1].name == "local");
  CHECK(stats[2].name == "faq");

  auto r = complete_sync(**chain, question("hello"));
  REQUIRE(r.ok());
  CHECK(r->provider == "router");
  CHECK(openai_server.last_header("Authorization") == "Bearer sk-from-env");
  CHECK(openai_server.last_header("X-Title") == "shop bot");
  auto body = openai_server.last_body();
  CHECK(body["temperature"] == 0.2);
  CHECK(body["max_tokens"] == 300);
  CHECK(body["top_p"] == 0.9);
  CHECK(body["stop"][0] == "###");

  MockLlmServer::Behavior down;
  down.status = 500;
  openai_server.set(down);
  r = complete_sync(**chain, question("hello"));
  REQUIRE(r.ok());
  CHECK(r->provider == "local");
  CHECK(openai_server.requests() == 2);  // "retries": 0
  auto ollama_body = ollama_server.last_body();
  CHECK(ollama_body["options"]["top_k"] == 20);
  CHECK(ollama_body["options"]["num_ctx"] == 8192);
  CHECK(ollama_body["keep_alive"] == "10m");

  ollama_server.set(down);
  r = complete_sync(**chain, question("What are your opening hours?"));
  REQUIRE(r.ok());
  CHECK(r->provider == "faq");  // found beside the config file
  CHECK(r->text == "9 to 5.");
}

TEST_CASE("config: \"tools\": false keeps requests with tools away from a model") {
  MockLlmServer server;
  for (bool tools : {true, false}) {
    CAPTURE(tools);
    const std::string config = R"({"providers": [{"type": "ollama", "base_url": ")" +
                               server.ollama_url() + R"(", "model": "m", "tools": )" +
                               (tools ? "true" : "false") + "}]}";
    auto chain = make_chain_from_config(config, context());
    REQUIRE_MESSAGE(chain.ok(), chain.status().to_string());
    CHECK((*chain)->supports_tools() == tools);
  }
  CHECK(
      error_of(R"({"providers": [{"type": "openai", "model": "m", "tools": "yes"}]})").message() ==
      "$.providers[0].tools: expected true or false, got a string");
}

TEST_CASE("config: no providers means the shipped knowledge base") {
  for (const char* config : {"{}", R"({"providers": []})"}) {
    auto chain = make_chain_from_config(config, context());
    REQUIRE(chain.ok());
    auto r = complete_sync(**chain, question("How do I connect the bot to Telegram?"));
    REQUIRE(r.ok());
    CHECK(r->provider == "knowledge_base");
  }
}

TEST_CASE("config: mistakes are reported with their JSON path") {
  CHECK(
      error_of(R"({"providers": [{"type": "openai", "model": "m", "temprature": 1}]})").message() ==
      "$.providers[0].temprature: unknown key");
  CHECK(error_of(R"({"providers": [{"type": "openai", "model": "m", "temperature": "hot"}]})")
            .message() == "$.providers[0].temperature: expected a number, got a string");
  CHECK(error_of(R"({"providers": [{"type": "ollama"}]})").message() ==
        "$.providers[0].model: required");
  CHECK(error_of(R"({"providers": [{"type": "gemini", "model": "m"}]})")
            .message()
            .find("$.providers[0].type: unknown provider type \"gemini\"") == 0);
  CHECK(error_of(R"({"providers": [{"model": "m"}]})").message() ==
        "$.providers[0].type: required");
  CHECK(error_of(R"({"providers": {"type": "openai"}})").message() ==
        "$.providers: expected a list, got an object");
  CHECK(error_of(R"({"providers": ["openai"]})").message() ==
        "$.providers[0]: expected an object, got a string");
  CHECK(error_of(R"({"providers": [{"type": "openai", "model": "m", "max_tokens": 0}]})")
            .message()
            .find("$.providers[0].max_tokens: 0 is out of range") == 0);
  CHECK(error_of(R"({"providers": [{"type": "openai", "model": "m",
                    "timeouts": {"total": 5}}]})")
            .message() == "$.providers[0].timeouts.total: unknown key");
  CHECK(error_of(R"({"fallback": {"failure_threshold": "3"}})").message() ==
        "$.fallback.failure_threshold: expected an integer, got a string");
  CHECK(error_of(R"({"providers": [{"type": "openai", "model": "m", "headers": {"X": 1}}]})")
            .message() == "$.providers[0].headers.X: expected a string, got an integer");
  Status bad_json = error_of(R"({"providers": [)");
  CHECK(bad_json.code() == StatusCode::kInvalidArgument);
  CHECK(bad_json.message().find("not valid JSON") != std::string::npos);
  CHECK(error_of("[]").message() == "$: expected an object, got a list");
}

TEST_CASE("config: keys never live in the file, and a missing variable is named") {
  Status s = error_of(R"({"providers": [{"type": "openai", "model": "m", "api_key": "sk-123"}]})");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("api_key_env") != std::string::npos);
  CHECK(s.message().find("sk-123") == std::string::npos);
  s = error_of(R"({"providers": [{"type": "openai", "name": "router", "model": "m",
                  "api_key_env": "OPENROUTER_API_KEY"}]})");
  CHECK(s.message() ==
        "$.providers[0].api_key_env: provider router takes its key from the environment "
        "variable OPENROUTER_API_KEY, which is not set");
  CHECK(make_chain_from_config_file("/nonexistent/bot.json", context()).status().code() ==
        StatusCode::kNotFound);
  s = error_of(R"({"providers": [{"type": "knowledge_base", "path": "/nonexistent/faq.md"}]})");
  CHECK(s.code() == StatusCode::kNotFound);
  s = error_of(
      R"({"providers": [{"type": "openai", "model": "a"}, {"type": "openai", "model": "b"}]})");
  CHECK(s.message().find("two providers are named \"openai\"") != std::string::npos);
}

namespace {

// A provider type of a program's own: answers with a prefix from its config entry.
class PrefixProvider final : public LlmProvider {
 public:
  PrefixProvider(std::string name, std::string prefix)
      : name_(std::move(name)), prefix_(std::move(prefix)) {}
  std::string_view name() const override { return name_; }
  void complete(CompletionRequest request, TokenCallback, CompletionCallback on_done) override {
    Completion c;
    c.text = prefix_ + request.messages.back().content;
    c.provider = name_;
    on_done(std::move(c));
  }

 private:
  std::string name_;
  std::string prefix_;
};

}  // namespace

TEST_CASE("config: a provider type of the program's own, registered from C++") {
  static const Status registered = register_provider_type(
      "prefix_test", [](const ProviderSpec& spec) -> Result<std::shared_ptr<LlmProvider>> {
        const auto entry = nlohmann::json::parse(spec.json);
        if (!entry.contains("prefix")) {
          return invalid_argument("prefix: required");
        }
        CHECK(spec.http != nullptr);
        CHECK(spec.path.rfind("$.providers[", 0) == 0);
        return std::make_shared<PrefixProvider>(spec.name, entry["prefix"].get<std::string>());
      });
  REQUIRE(registered.ok());
  // Named in the config like the shipped types, with the keys every provider has.
  auto chain = make_chain_from_config(
      R"({"providers": [{"type": "prefix_test", "name": "mine", "prefix": "> ", "retries": 1,
                         "max_in_flight": 4}]})");
  REQUIRE_MESSAGE(chain.ok(), chain.status().to_string());
  CompletionRequest r;
  r.messages = {{Role::kUser, "hello"}};
  auto answer = complete_sync(**chain, r);
  REQUIRE(answer.ok());
  CHECK(answer->text == "> hello");
  CHECK(answer->provider == "mine");
  // The factory's error comes back with the entry's path.
  auto refused = make_chain_from_config(R"({"providers": [{"type": "prefix_test"}]})");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message() == "$.providers[0]: prefix: required");
  // The unknown-type message lists it among the known ones.
  auto unknown = make_chain_from_config(R"({"providers": [{"type": "nope"}]})");
  CHECK(unknown.status().message().find("prefix_test") != std::string::npos);
  // Shipped types and a second registration of a name are refused.
  const auto factory = [](const ProviderSpec&) -> Result<std::shared_ptr<LlmProvider>> {
    return internal_error("unused");
  };
  CHECK(register_provider_type("openai", factory).code() == StatusCode::kAlreadyExists);
  CHECK(register_provider_type("prefix_test", factory).code() == StatusCode::kAlreadyExists);
  CHECK(register_provider_type("", factory).code() == StatusCode::kInvalidArgument);
  CHECK(register_provider_type("other", {}).code() == StatusCode::kInvalidArgument);
}

// ---- an embeddings object (make_embedding_provider_from_config)
// -----------------------------------------------------------------------

namespace {

constexpr const char* kKey = "sk-SECRET-embed-123";
constexpr const char* kPath = "$.memory.embeddings";

Status config_error(const std::string& json, std::map<std::string, std::string> env = {}) {
  return make_embedding_provider_from_config(json, kPath, context(std::move(env))).status();
}

EmbeddingRequest texts(std::vector<std::string> inputs) {
  EmbeddingRequest r;
  r.inputs = std::move(inputs);
  return r;
}

}  // namespace

TEST_CASE("embeddings config: an OpenAI-compatible provider, its key from the environment") {
  MockLlmServer server;
  const std::string config =
      R"({"type": "openai", "name": "embedder", "base_url": ")" + server.openai_url() + R"(",
      "model": "text-embedding-3-small", "api_key_env": "EMBED_KEY", "dimensions": 32,
      "max_batch": 16, "max_response_bytes": 1000000,
      "headers": {"X-Title": "shop bot"}, "timeouts": {"connect_ms": 2000, "total_ms": 30000},
      "proxy": "", "ca_file": ""})";
  auto p = make_embedding_provider_from_config(config, kPath, context({{"EMBED_KEY", kKey}}));
  REQUIRE_MESSAGE(p.ok(), p.status().to_string());
  CHECK((*p)->name() == "embedder");
  CHECK((*p)->model() == "text-embedding-3-small");
  CHECK((*p)->max_batch() == 16);
  auto r = embed_sync(**p, texts({"hello there"}));
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  CHECK(r->vectors[0].size() == 32);
  CHECK(server.last_header("Authorization") == std::string("Bearer ") + kKey);
  CHECK(server.last_header("X-Title") == "shop bot");
  CHECK(server.last_body()["dimensions"] == 32);
}

TEST_CASE("embeddings config: an Ollama provider with its own keys and the defaults") {
  MockLlmServer server;
  const std::string config = R"({"type": "ollama", "base_url": ")" + server.ollama_url() +
                             R"(", "model": "bge-m3", "truncate": true, "keep_alive": "-1"})";
  auto p = make_embedding_provider_from_config(config, kPath, context());
  REQUIRE_MESSAGE(p.ok(), p.status().to_string());
  CHECK((*p)->name() == "ollama");  // the type, when no name is given
  CHECK((*p)->max_batch() == OllamaEmbeddingOptions{}.max_batch);
  REQUIRE(embed_sync(**p, texts({"привет"})).ok());
  CHECK(server.last_body()["truncate"] == true);
  CHECK(server.last_body()["keep_alive"] == "-1");
  CHECK(server.last_body()["model"] == "bge-m3");
}

TEST_CASE("embeddings config: mistakes are reported with their JSON path") {
  CHECK(config_error(R"({"type": "openai", "model": 5})").message() ==
        "$.memory.embeddings.model: expected a string, got an integer");
  CHECK(config_error(R"({"type": "openai"})").message() == "$.memory.embeddings.model: required");
  CHECK(config_error(R"({"model": "m"})").message() == "$.memory.embeddings.type: required");
  CHECK(config_error(R"({"type": "cohere", "model": "m"})").message() ==
        "$.memory.embeddings.type: unknown embeddings type \"cohere\" (expected openai or ollama)");
  CHECK(config_error(R"({"type": "openai", "model": "m", "modle": "x"})").message() ==
        "$.memory.embeddings.modle: unknown key");
  // Keys of the other type, and of the LLM providers, are unknown here.
  CHECK(config_error(R"({"type": "ollama", "model": "m", "dimensions": 8})").message() ==
        "$.memory.embeddings.dimensions: unknown key");
  CHECK(config_error(R"({"type": "openai", "model": "m", "truncate": true})").message() ==
        "$.memory.embeddings.truncate: unknown key");
  CHECK(config_error(R"({"type": "openai", "model": "m", "temperature": 0.1})").message() ==
        "$.memory.embeddings.temperature: unknown key");
  CHECK(config_error(R"({"type": "openai", "model": "m", "timeouts": {"idle_ms": 5}})").message() ==
        "$.memory.embeddings.timeouts.idle_ms: unknown key");
  CHECK(config_error(R"({"type": "openai", "model": "m", "max_batch": 0})")
            .message()
            .find("$.memory.embeddings.max_batch: 0 is out of range") == 0);
  CHECK(config_error(R"({"type": "openai", "model": "m", "dimensions": "64"})").message() ==
        "$.memory.embeddings.dimensions: expected an integer, got a string");
  CHECK(config_error(R"({"type": "ollama", "model": "m", "truncate": "yes"})").message() ==
        "$.memory.embeddings.truncate: expected true or false, got a string");
  CHECK(config_error(R"({"type": "openai", "model": "m", "headers": {"X": 1}})").message() ==
        "$.memory.embeddings.headers.X: expected a string, got an integer");
  CHECK(config_error(R"({"type": "openai", "model": "m", "base_url": "ftp://x"})").message() ==
        "$.memory.embeddings: provider openai: base_url must start with http:// or https://");
  CHECK(config_error(R"(["openai"])").message() ==
        "$.memory.embeddings: expected an object, got a list");
  Status bad = config_error(R"({"type": )");
  CHECK(bad.code() == StatusCode::kInvalidArgument);
  CHECK(bad.message().find("$.memory.embeddings: ") == 0);
  CHECK(bad.message().find("not valid JSON") != std::string::npos);
}

TEST_CASE("embeddings config: the key never lives in the file; a missing variable is named") {
  Status s = config_error(R"({"type": "openai", "model": "m", "api_key": "sk-in-file-123"})");
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().find("$.memory.embeddings.api_key: ") == 0);
  CHECK(s.message().find("api_key_env") != std::string::npos);
  CHECK(s.message().find("sk-in-file-123") == std::string::npos);
  s = config_error(R"({"type": "openai", "name": "embedder", "model": "m",
                       "api_key_env": "EMBED_KEY"})");
  CHECK(s.message() ==
        "$.memory.embeddings.api_key_env: provider embedder takes its key from the environment "
        "variable EMBED_KEY, which is not set");
  // Ollama takes no key.
  CHECK(config_error(R"({"type": "ollama", "model": "m", "api_key_env": "K"})", {{"K", "v"}})
            .message() == "$.memory.embeddings.api_key_env: unknown key");
}
