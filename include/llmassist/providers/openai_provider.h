// The OpenAI-compatible provider: POST {base_url}/chat/completions, as served by OpenAI,
// OpenRouter, vLLM, llama.cpp's server and Ollama's /v1. Streams over server-sent events when the
// caller asks for tokens, with usage requested through stream_options.include_usage.
//
// Behaviour worth knowing:
// - SSE comment lines (OpenRouter's ": OPENROUTER PROCESSING") are skipped; an `error` object
//   arriving as a data event mid-stream is a failure, not text; a stream that ends without
//   [DONE] or a finish_reason is a failure (kUnavailable: the connection broke).
// - The model's reasoning (`reasoning`, `reasoning_content`, or <think>…</think> inside the
//   content) is kept in Completion::reasoning and never reaches the answer or on_token.
// - HTTP errors map as detail::http_failure documents in docs/configuration.md: 401/403 to
//   kUnauthenticated/kPermissionDenied, 429 to kResourceExhausted with Retry-After (and reason
//   "insufficient_quota"), 5xx to kUnavailable, a context too long to kOutOfRange. The server's
//   {"error": {...}} message is quoted; the key never is.
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

struct LLMASSIST_API OpenAiProviderOptions {
  std::string name = "openai";  // the provider's name in results, logs and statistics
  std::string base_url = "https://api.openai.com/v1";  // without the trailing /chat/completions
  std::string model;                  // required: "gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"
  std::string api_key;                // sent as "Authorization: Bearer …"; empty: no header
  HttpHeaders extra_headers;          // e.g. OpenRouter's HTTP-Referer and X-Title
  std::optional<double> temperature;  // default for requests that set none
  std::optional<int> max_tokens;      // default for requests that set none
  std::vector<std::string> stop;      // default stop sequences
  // Extra fields merged into every request body, as a JSON object text ("{\"top_p\": 0.9}").
  std::string extra_body_json;
  // The model takes tools (function calling): requests with tools may come to it. false: a
  // FallbackChain passes such requests on to the next provider. Default true.
  bool tools = true;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // Until the response headers (the model's think time before its first token).
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(60)};
  // The whole request; a request's own timeout replaces it. 0: none.
  std::chrono::milliseconds total_timeout{std::chrono::seconds(180)};
  // Longest silence inside a streamed answer.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  // The most answer text (with the model's reasoning) one completion may hold, in bytes of
  // UTF-8. A streamed answer that grows past it is stopped and the completion fails with
  // kOutOfRange (reason "answer_too_large"); a whole body likewise. 0: no limit. Default 256 KiB.
  std::size_t max_answer_bytes = 256 * 1024;
  std::shared_ptr<HttpClient> http;  // default: a make_curl_http_client() of its own
  std::shared_ptr<Logger> logger;    // default: stderr_logger()
};

// Errors: kInvalidArgument for a missing model, a base_url that is not http(s), or
// extra_body_json that is not a JSON object.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<LlmProvider>> make_openai_provider(
    OpenAiProviderOptions options);

}  // namespace llmassist
