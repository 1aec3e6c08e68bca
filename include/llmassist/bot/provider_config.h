// Builds LLM providers and their FallbackChain from a JSON configuration: the `providers` list
// (in fallback order) and the optional `fallback` section of a config file. Other top-level
// sections (the bot's) are left to their readers. See docs/configuration.md.
//
// Secrets: a provider's key is never in the file. `api_key_env` names the environment variable
// that holds it; a config with an `api_key` field is refused.
//
// Errors name the place in the file as a JSON path: "$.providers[1].temperature: expected a
// number, got a string"; unknown keys are errors too ("did you mean"-free, but exact).
//
// Thread-safety: functions without shared state.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "llmassist/embedding_provider.h"
#include "llmassist/export.h"
#include "llmassist/fallback_chain.h"
#include "llmassist/http_client.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/scheduler.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API ProviderConfigContext {
  // Reads an environment variable; default: std::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // Relative knowledge-base paths are taken from here; default: the current folder.
  std::string base_dir;
  std::shared_ptr<HttpClient> http;      // shared by the HTTP providers; default: one is made
  std::shared_ptr<Scheduler> scheduler;  // for retries; default: one is made
  std::shared_ptr<Logger> logger;        // default: stderr_logger()
  std::shared_ptr<Clock> clock;          // for the chain; default: system_clock()
};

// Builds the chain from a config file's text. With no `providers` key (or an empty list), the
// chain holds the shipped sample knowledge base alone.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<FallbackChain>> make_chain_from_config(
    std::string_view json_text, const ProviderConfigContext& context = {});

// Reads `path` and builds the chain; relative knowledge-base paths are taken from the file's
// folder. kNotFound when the file cannot be read.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<FallbackChain>> make_chain_from_config_file(
    const std::string& path, ProviderConfigContext context = {});

// ---- an embedding provider ---------------------------------------------------------------------

// Builds the embedding provider one embeddings object describes (the bot's `memory.embeddings`),
// given as the JSON text of that object; `json_path` is its place in the file
// ("$.memory.embeddings"; empty: "$"), which every error names:
// "$.memory.embeddings.model: expected a string, got an integer". Keys (docs/configuration.md):
//   type         "openai" or "ollama"; required
//   name         default: the type
//   base_url     default: the provider's (OpenAiEmbeddingOptions, OllamaEmbeddingOptions)
//   model        required
//   max_batch    inputs per request, 1..2048
//   max_response_bytes, headers, proxy, ca_file, timeouts {connect_ms, total_ms}
//   openai only: api_key_env (the variable that holds the key; "api_key" is refused),
//                dimensions
//   ollama only: truncate (a boolean), keep_alive
// Unknown keys are errors. The context's http client, when set, is used for the requests (and
// "proxy" and "ca_file" are then the client's business); its scheduler and clock are not used.
[[nodiscard]] LLMASSIST_API Result<std::shared_ptr<EmbeddingProvider>>
make_embedding_provider_from_config(std::string_view json_object_text, std::string_view json_path,
                                    const ProviderConfigContext& context = {});

// ---- provider types of a program's own ---------------------------------------------------------

// One `providers` entry of a type registered with register_provider_type().
struct LLMASSIST_API ProviderSpec {
  std::string type;  // the entry's "type"
  std::string name;  // its "name", or the type when it has none
  // The whole entry as JSON text: the factory reads its own keys from it. "type", "name",
  // "retries", "max_in_flight", "proxy" and "ca_file" mean what they mean for every provider
  // (the retries and the limit are put around what the factory makes; `http` follows the
  // proxy and CA keys); no other key is checked by the config reader.
  std::string json;
  std::string path;  // its place in the file: "$.providers[2]"
  // The HTTP client the shipped providers of this config share (the context's, or one made for
  // the entry's "proxy" and "ca_file").
  std::shared_ptr<HttpClient> http;
  std::shared_ptr<Logger> logger;
  // The context's environment reader (for a key named by "api_key_env", say) and the folder
  // relative paths are taken from.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::string base_dir;
};
using ProviderFactory =
    std::function<Result<std::shared_ptr<LlmProvider>>(const ProviderSpec& spec)>;

// Makes `type` a provider type of the config, {"type": "<type>", ...}, built by `factory` for
// every entry of that type, in this process from now on. kInvalidArgument for an empty type or
// factory; kAlreadyExists for a shipped type (openai, ollama, knowledge_base) or one registered
// before. An error the factory returns is the config's error, with the entry's path in front.
// Thread-safe; register before building a chain that names the type.
[[nodiscard]] LLMASSIST_API Status register_provider_type(std::string type,
                                                          ProviderFactory factory);

}  // namespace llmassist
