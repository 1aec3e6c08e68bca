// The Ollama provider: POST {base_url}/api/chat, Ollama's native API, streamed as NDJSON (one
// JSON object per line; the last has "done": true and the eval counts).
//
// Thinking models (qwen3, deepseek-r1): Ollama turns thinking on by default for them, so the
// provider always sends "think" explicitly (false unless configured). Whatever thinking still
// arrives — in message.thinking, or inline as <think>…</think> from older servers — goes to
// Completion::reasoning, never to the answer. An {"error": "..."} line, even with HTTP 200, is a
// failure.
//
// Thread-safety: as LlmProvider.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/http_client.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API OllamaProviderOptions {
  std::string name = "ollama";
  std::string base_url = "http://127.0.0.1:11434";  // without /api/chat
  std::string model;                                // required: "qwen3:1.7b", "llama3.2"
  std::optional<double> temperature;                // options.temperature
  std::optional<int> num_ctx;                       // options.num_ctx: the context window to load
  std::optional<int> max_tokens;                    // options.num_predict
  std::vector<std::string> stop;                    // options.stop
  // How long Ollama keeps the model loaded after a request ("5m", "-1" for ever); empty: the
  // server's default.
  std::string keep_alive;
  // Let a thinking model think (its reasoning is still kept from the answer). Default: false.
  bool think = false;
  // The model takes tools (function calling): requests with tools may come to it. false: a
  // FallbackChain passes such requests on to the next provider. Default true.
  bool tools = true;
  // Extra fields merged into "options", as a JSON object text ("{\"top_k\": 20}").
  std::string extra_options_json;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // Until the response headers: includes loading the model into memory on the first request.
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(120)};
  std::chrono::milliseconds total_timeout{std::chrono::seconds(300)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // The most answer text (with the model's reasoning) one completion may hold, in bytes of
  // UTF-8. A streamed answer that grows past it is stopped and the completion fails with
  // kOutOfRange (reason "answer_too_large"); a whole body likewise. 0: no limit. Default 256 KiB.
  std::size_t max_answer_bytes = 256 * 1024;
  std::shared_ptr<HttpClient> http;  // default: a make_curl_http_client() of its own
  std::shared_ptr<Logger> logger;    // default: stderr_logger()
};

// Errors: kInvalidArgument for a missing model, a base_url that is not http(s), or
// extra_options_json that is not a JSON object.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<LlmProvider>> make_ollama_provider(
    OllamaProviderOptions options);

}  // namespace llmassist
