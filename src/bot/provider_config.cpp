// Providers and the fallback chain from JSON.
#include "llmassist/bot/provider_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "bot/json_reader.h"
#include "llmassist/core/limited_provider.h"
#include "llmassist/core/retrying_provider.h"
#include "llmassist/http/curl_http_client.h"
#include "llmassist/providers/embedding_providers.h"
#include "llmassist/providers/knowledge_base_provider.h"
#include "llmassist/providers/ollama_provider.h"
#include "llmassist/providers/openai_provider.h"

namespace llmassist {
namespace {

using detail::JsonObject;
using nlohmann::json;

// Shared dependencies, made on first use so that a knowledge-base-only chain starts no threads.
struct Deps {
  const ProviderConfigContext& ctx;
  std::shared_ptr<HttpClient> http;  // the context's, which every provider then uses
  std::shared_ptr<Scheduler> scheduler;
  // The clients made here, one per distinct ("proxy", "ca_file") of the providers.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<HttpClient>> made;

  // The client for a provider's "proxy" and "ca_file" keys (empty: the environment's proxy,
  // the system's CAs).
  Result<std::shared_ptr<HttpClient>> client(JsonObject& p) {
    LLMASSIST_ASSIGN_OR_RETURN(auto proxy, p.string("proxy"));
    LLMASSIST_ASSIGN_OR_RETURN(auto ca_file, p.string("ca_file"));
    if (http) return http;
    auto key = std::make_pair(proxy.value_or(""), ca_file.value_or(""));
    auto& client = made[key];
    if (!client) {
      CurlHttpClientOptions o;
      o.logger = ctx.logger;
      o.proxy = key.first;
      o.ca_file = key.second;
      auto result = make_curl_http_client(o);
      if (!result.ok()) {
        return Status(result.status().code(),
                      fmt::format("{}: {}", p.path_of("proxy"), result.status().message()));
      }
      client = std::move(result).value();
    }
    return client;
  }
  std::shared_ptr<Scheduler> timers() {
    if (!scheduler) scheduler = make_thread_scheduler();
    return scheduler;
  }
};

constexpr std::int64_t kMaxMs = 24LL * 3600 * 1000;

// "timeouts": {"connect_ms", "first_byte_ms", "total_ms", "idle_ms"}, each key only for options
// that have its timeout (an embedding provider's: connect and total).
template <typename Options>
Status read_timeouts(JsonObject& p, Options& o) {
  LLMASSIST_ASSIGN_OR_RETURN(const json* t, p.object("timeouts"));
  if (t == nullptr) return Status();
  LLMASSIST_ASSIGN_OR_RETURN(auto obj, JsonObject::of(*t, p.path_of("timeouts")));
  auto set = [&](std::string_view key, std::chrono::milliseconds& field) -> Status {
    LLMASSIST_ASSIGN_OR_RETURN(auto v, obj.integer(key, 0, kMaxMs));
    if (v) field = std::chrono::milliseconds(*v);
    return Status();
  };
  LLMASSIST_RETURN_IF_ERROR(set("connect_ms", o.connect_timeout));
  if constexpr (requires { o.first_byte_timeout; }) {
    LLMASSIST_RETURN_IF_ERROR(set("first_byte_ms", o.first_byte_timeout));
  }
  LLMASSIST_RETURN_IF_ERROR(set("total_ms", o.total_timeout));
  if constexpr (requires { o.idle_timeout; }) {
    LLMASSIST_RETURN_IF_ERROR(set("idle_ms", o.idle_timeout));
  }
  return obj.check_unknown();
}

// The fields both HTTP provider types share: endpoint, model, sampling defaults, timeouts.
template <typename Options>
Status read_http_common(JsonObject& p, Options& o) {
  LLMASSIST_ASSIGN_OR_RETURN(auto url, p.string("base_url"));
  if (url) o.base_url = *url;
  LLMASSIST_ASSIGN_OR_RETURN(auto model, p.string("model", true));
  o.model = *model;
  LLMASSIST_ASSIGN_OR_RETURN(o.temperature, p.number("temperature"));
  LLMASSIST_ASSIGN_OR_RETURN(auto max_tokens, p.integer("max_tokens", 1, 1 << 24));
  if (max_tokens) o.max_tokens = static_cast<int>(*max_tokens);
  LLMASSIST_ASSIGN_OR_RETURN(auto stop, p.strings("stop"));
  if (stop) o.stop = *stop;
  LLMASSIST_ASSIGN_OR_RETURN(auto answer_bytes,
                             p.integer("max_answer_bytes", 0, std::int64_t{1} << 30));
  if (answer_bytes) o.max_answer_bytes = static_cast<std::size_t>(*answer_bytes);
  LLMASSIST_ASSIGN_OR_RETURN(auto tools, p.boolean("tools"));
  if (tools) o.tools = *tools;
  return read_timeouts(p, o);
}

// The key from the environment variable the provider names; none when it names none.
Result<std::string> read_key(JsonObject& p, const ProviderConfigContext& ctx,
                             const std::string& name) {
  if (p.has("api_key")) {
    return invalid_argument(fmt::format(
        "{}: keys do not belong in the config file; put the key in an environment variable and "
        "name that variable in api_key_env",
        p.path_of("api_key")));
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto env, p.string("api_key_env"));
  if (!env || env->empty()) return std::string();
  auto value = ctx.getenv ? ctx.getenv(*env) : [&]() -> std::optional<std::string> {
    const char* v = std::getenv(env->c_str());
    return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  }();
  if (!value || value->empty()) {
    return invalid_argument(fmt::format(
        "{}: provider {} takes its key from the environment variable {}, which is not set",
        p.path_of("api_key_env"), name, *env));
  }
  return *value;
}

// "headers": {"Name": "value", ...}, added to every request.
Status read_headers(JsonObject& p, HttpHeaders& out) {
  LLMASSIST_ASSIGN_OR_RETURN(const json* headers, p.object("headers"));
  if (headers == nullptr) return Status();
  for (auto it = headers->begin(); it != headers->end(); ++it) {
    if (!it->is_string()) {
      return invalid_argument(fmt::format("{}.{}: expected a string, got {}", p.path_of("headers"),
                                          it.key(), detail::json_kind(*it)));
    }
    out.emplace_back(it.key(), it->get<std::string>());
  }
  return Status();
}

Result<std::shared_ptr<LlmProvider>> make_openai(JsonObject& p, const std::string& name,
                                                 Deps& deps) {
  OpenAiProviderOptions o;
  o.name = name;
  o.logger = deps.ctx.logger;
  LLMASSIST_RETURN_IF_ERROR(read_http_common(p, o));
  LLMASSIST_ASSIGN_OR_RETURN(o.api_key, read_key(p, deps.ctx, name));
  LLMASSIST_RETURN_IF_ERROR(read_headers(p, o.extra_headers));
  LLMASSIST_ASSIGN_OR_RETURN(const json* extra, p.object("extra_body"));
  if (extra != nullptr) o.extra_body_json = extra->dump();
  LLMASSIST_ASSIGN_OR_RETURN(o.http, deps.client(p));
  LLMASSIST_ASSIGN_OR_RETURN(auto made, make_openai_provider(std::move(o)));
  return std::shared_ptr<LlmProvider>(std::move(made));
}

Result<std::shared_ptr<LlmProvider>> make_ollama(JsonObject& p, const std::string& name,
                                                 Deps& deps) {
  OllamaProviderOptions o;
  o.name = name;
  o.logger = deps.ctx.logger;
  LLMASSIST_RETURN_IF_ERROR(read_http_common(p, o));
  LLMASSIST_ASSIGN_OR_RETURN(auto num_ctx, p.integer("num_ctx", 1, 1 << 24));
  if (num_ctx) o.num_ctx = static_cast<int>(*num_ctx);
  LLMASSIST_ASSIGN_OR_RETURN(auto keep_alive, p.string("keep_alive"));
  if (keep_alive) o.keep_alive = *keep_alive;
  LLMASSIST_ASSIGN_OR_RETURN(auto think, p.boolean("think"));
  if (think) o.think = *think;
  LLMASSIST_ASSIGN_OR_RETURN(const json* options, p.object("options"));
  if (options != nullptr) o.extra_options_json = options->dump();
  LLMASSIST_ASSIGN_OR_RETURN(o.http, deps.client(p));
  LLMASSIST_ASSIGN_OR_RETURN(auto made, make_ollama_provider(std::move(o)));
  return std::shared_ptr<LlmProvider>(std::move(made));
}

Result<std::shared_ptr<LlmProvider>> make_kb(JsonObject& p, const std::string& name, Deps& deps) {
  KnowledgeBaseOptions o;
  o.name = name;
  o.logger = deps.ctx.logger;
  LLMASSIST_ASSIGN_OR_RETURN(auto path, p.string("path"));
  if (path && !path->empty()) {
    std::filesystem::path file(*path);
    if (file.is_relative() && !deps.ctx.base_dir.empty()) file = deps.ctx.base_dir / file;
    o.path = file.string();
  }
  LLMASSIST_ASSIGN_OR_RETURN(auto min_score, p.number("min_score"));
  if (min_score) o.min_score = *min_score;
  LLMASSIST_ASSIGN_OR_RETURN(auto made, make_knowledge_base_provider(o));
  return std::shared_ptr<LlmProvider>(std::move(made));
}

// The provider types registered by the program (register_provider_type()).
struct Registry {
  std::mutex mu;
  std::map<std::string, ProviderFactory, std::less<>> types;
};
Registry& registry() {
  static Registry r;
  return r;
}
constexpr std::array<std::string_view, 3> kShippedTypes = {"openai", "ollama", "knowledge_base"};

ProviderFactory registered_type(std::string_view type) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.types.find(type);
  return it == r.types.end() ? ProviderFactory() : it->second;
}

// "openai, ollama, knowledge_base or mine" for the unknown-type message.
std::string known_types() {
  std::vector<std::string> names(kShippedTypes.begin(), kShippedTypes.end());
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    for (const auto& [name, factory] : r.types) names.push_back(name);
  }
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

Result<std::shared_ptr<LlmProvider>> make_one(const json& item, std::string path, Deps& deps) {
  LLMASSIST_ASSIGN_OR_RETURN(auto p, JsonObject::of(item, std::move(path)));
  LLMASSIST_ASSIGN_OR_RETURN(auto type, p.string("type", true));
  LLMASSIST_ASSIGN_OR_RETURN(auto name, p.string("name"));
  const std::string provider_name = name && !name->empty() ? *name : *type;
  LLMASSIST_ASSIGN_OR_RETURN(auto retries, p.integer("retries", 0, 10));
  LLMASSIST_ASSIGN_OR_RETURN(auto max_in_flight, p.integer("max_in_flight", 0, 1000000));
  std::shared_ptr<LlmProvider> provider;
  ProviderFactory custom;  // a registered type's factory
  if (*type == "openai") {
    LLMASSIST_ASSIGN_OR_RETURN(provider, make_openai(p, provider_name, deps));
  } else if (*type == "ollama") {
    LLMASSIST_ASSIGN_OR_RETURN(provider, make_ollama(p, provider_name, deps));
  } else if (*type == "knowledge_base") {
    LLMASSIST_ASSIGN_OR_RETURN(provider, make_kb(p, provider_name, deps));
  } else if ((custom = registered_type(*type))) {
    ProviderSpec spec;
    spec.type = *type;
    spec.name = provider_name;
    spec.json = item.dump();
    spec.path = p.path();
    LLMASSIST_ASSIGN_OR_RETURN(spec.http, deps.client(p));
    spec.logger = deps.ctx.logger ? deps.ctx.logger : stderr_logger();
    spec.getenv = deps.ctx.getenv;
    spec.base_dir = deps.ctx.base_dir;
    Result<std::shared_ptr<LlmProvider>> made = internal_error("not made");
    try {
      made = custom(spec);
    } catch (const std::exception& e) {
      return internal_error(
          fmt::format("{}: the factory of \"{}\" threw: {}", spec.path, spec.type, e.what()));
    }
    if (!made.ok()) return made.status().annotate(spec.path);
    if (!*made) return internal_error(fmt::format("{}: the factory made no provider", spec.path));
    provider = std::move(made).value();
  } else {
    return invalid_argument(fmt::format("{}: unknown provider type \"{}\" (expected {})",
                                        p.path_of("type"), *type, known_types()));
  }
  // A registered type's own keys are its factory's to check.
  if (!custom) LLMASSIST_RETURN_IF_ERROR(p.check_unknown());
  // The limit sits under the retries, so that it counts the requests at the provider: one
  // waiting out a backoff holds no place, and its retry queues again behind the others.
  if (max_in_flight.value_or(0) > 0) {
    ConcurrencyLimitOptions limit;
    limit.max_in_flight = static_cast<int>(*max_in_flight);
    limit.scheduler = deps.timers();
    LLMASSIST_ASSIGN_OR_RETURN(auto limited,
                               make_concurrency_limited_provider(std::move(provider), limit));
    provider = std::move(limited);
  }
  // HTTP providers retry a little by default (the OpenAI SDKs' 2); a knowledge base never fails
  // transiently.
  const int retry_count = static_cast<int>(retries.value_or(*type == "knowledge_base" ? 0 : 2));
  if (retry_count > 0) {
    RetryOptions r;
    r.max_retries = retry_count;
    r.scheduler = deps.timers();
    provider = make_retrying_provider(std::move(provider), r);
  }
  return provider;
}

// The fields both embedding provider types share.
template <typename Options>
Status read_embedding_common(JsonObject& p, Options& o, Deps& deps) {
  LLMASSIST_ASSIGN_OR_RETURN(auto url, p.string("base_url"));
  if (url) o.base_url = *url;
  LLMASSIST_ASSIGN_OR_RETURN(auto model, p.string("model", true));
  o.model = *model;
  LLMASSIST_ASSIGN_OR_RETURN(auto max_batch, p.integer("max_batch", 1, 2048));
  if (max_batch) o.max_batch = static_cast<int>(*max_batch);
  LLMASSIST_ASSIGN_OR_RETURN(auto response_bytes,
                             p.integer("max_response_bytes", 0, std::int64_t{1} << 30));
  if (response_bytes) o.max_response_bytes = static_cast<std::size_t>(*response_bytes);
  LLMASSIST_RETURN_IF_ERROR(read_headers(p, o.extra_headers));
  LLMASSIST_RETURN_IF_ERROR(read_timeouts(p, o));
  LLMASSIST_ASSIGN_OR_RETURN(o.http, deps.client(p));
  return Status();
}

}  // namespace

Result<std::shared_ptr<EmbeddingProvider>> make_embedding_provider_from_config(
    std::string_view json_object_text, std::string_view json_path,
    const ProviderConfigContext& context) {
  const std::string path = json_path.empty() ? std::string("$") : std::string(json_path);
  auto doc = detail::parse_config_json(json_object_text);
  if (!doc.ok()) return doc.status().annotate(path);
  LLMASSIST_ASSIGN_OR_RETURN(auto p, JsonObject::of(*doc, path));
  Deps deps{context, context.http, context.scheduler};
  LLMASSIST_ASSIGN_OR_RETURN(auto type, p.string("type", true));
  LLMASSIST_ASSIGN_OR_RETURN(auto name, p.string("name"));
  const std::string provider_name = name && !name->empty() ? *name : *type;
  Result<std::unique_ptr<EmbeddingProvider>> made = internal_error("not made");
  if (*type == "openai") {
    OpenAiEmbeddingOptions o;
    o.name = provider_name;
    o.logger = context.logger;
    LLMASSIST_RETURN_IF_ERROR(read_embedding_common(p, o, deps));
    LLMASSIST_ASSIGN_OR_RETURN(o.api_key, read_key(p, context, provider_name));
    LLMASSIST_ASSIGN_OR_RETURN(auto dimensions, p.integer("dimensions", 1, 1 << 16));
    if (dimensions) o.dimensions = static_cast<int>(*dimensions);
    LLMASSIST_RETURN_IF_ERROR(p.check_unknown());
    made = make_openai_embedding_provider(std::move(o));
  } else if (*type == "ollama") {
    OllamaEmbeddingOptions o;
    o.name = provider_name;
    o.logger = context.logger;
    LLMASSIST_RETURN_IF_ERROR(read_embedding_common(p, o, deps));
    LLMASSIST_ASSIGN_OR_RETURN(o.truncate, p.boolean("truncate"));
    LLMASSIST_ASSIGN_OR_RETURN(auto keep_alive, p.string("keep_alive"));
    if (keep_alive) o.keep_alive = *keep_alive;
    LLMASSIST_RETURN_IF_ERROR(p.check_unknown());
    made = make_ollama_embedding_provider(std::move(o));
  } else {
    return invalid_argument(
        fmt::format("{}: unknown embeddings type \"{}\" (expected openai or ollama)",
                    p.path_of("type"), *type));
  }
  // What the factory refuses (a base_url that is not http) is named by the object's path.
  if (!made.ok()) return made.status().annotate(p.path());
  return std::shared_ptr<EmbeddingProvider>(std::move(made).value());
}

Result<std::unique_ptr<FallbackChain>> make_chain_from_config(
    std::string_view json_text, const ProviderConfigContext& context) {
  LLMASSIST_ASSIGN_OR_RETURN(json doc, detail::parse_config_json(json_text));
  LLMASSIST_ASSIGN_OR_RETURN(auto root, JsonObject::of(doc, "$"));
  Deps deps{context, context.http, context.scheduler};
  std::vector<std::shared_ptr<LlmProvider>> providers;
  LLMASSIST_ASSIGN_OR_RETURN(const json* list, root.array("providers"));
  if (list != nullptr) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      LLMASSIST_ASSIGN_OR_RETURN(auto p,
                                 make_one((*list)[i], fmt::format("$.providers[{}]", i), deps));
      providers.push_back(std::move(p));
    }
  }
  if (providers.empty()) {
    KnowledgeBaseOptions o;
    o.logger = context.logger;
    LLMASSIST_ASSIGN_OR_RETURN(auto kb, make_knowledge_base_provider(o));
    providers.push_back(std::move(kb));
  }
  FallbackChainOptions chain;
  chain.logger = context.logger;
  chain.clock = context.clock;
  LLMASSIST_ASSIGN_OR_RETURN(const json* fallback, root.object("fallback"));
  if (fallback != nullptr) {
    LLMASSIST_ASSIGN_OR_RETURN(auto f, JsonObject::of(*fallback, "$.fallback"));
    LLMASSIST_ASSIGN_OR_RETURN(auto threshold, f.integer("failure_threshold", 1, 1000));
    if (threshold) chain.failure_threshold = static_cast<int>(*threshold);
    LLMASSIST_ASSIGN_OR_RETURN(auto cooldown, f.integer("cooldown_ms", 0, kMaxMs));
    if (cooldown) chain.cooldown = std::chrono::milliseconds(*cooldown);
    LLMASSIST_ASSIGN_OR_RETURN(auto keep_out, f.integer("max_keep_out_ms", 0, kMaxMs));
    if (keep_out) chain.max_keep_out = std::chrono::milliseconds(*keep_out);
    LLMASSIST_RETURN_IF_ERROR(f.check_unknown());
  }
  return make_fallback_chain(std::move(providers), std::move(chain));
}

Result<std::unique_ptr<FallbackChain>> make_chain_from_config_file(const std::string& path,
                                                                   ProviderConfigContext context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot read the config file {}", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (context.base_dir.empty()) {
    context.base_dir = std::filesystem::absolute(path).parent_path().string();
  }
  auto chain = make_chain_from_config(text.str(), context);
  if (!chain.ok()) return chain.status().annotate(path);
  return chain;
}

Status register_provider_type(std::string type, ProviderFactory factory) {
  if (type.empty()) return invalid_argument("register_provider_type: the type is empty");
  if (!factory) {
    return invalid_argument(fmt::format("register_provider_type: no factory for \"{}\"", type));
  }
  if (std::find(kShippedTypes.begin(), kShippedTypes.end(), type) != kShippedTypes.end()) {
    return already_exists(
        fmt::format("register_provider_type: \"{}\" is a shipped provider type", type));
  }
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  if (!r.types.emplace(type, std::move(factory)).second) {
    return already_exists(
        fmt::format("register_provider_type: \"{}\" is registered already", type));
  }
  return Status();
}

}  // namespace llmassist
