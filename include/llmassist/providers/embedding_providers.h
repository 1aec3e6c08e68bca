// The embedding providers over HTTP (EmbeddingProvider, embedding_provider.h):
//
// - OpenAI-compatible: POST {base_url}/embeddings with {"model", "input": [...],
//   "encoding_format": "float"} (and "dimensions" when set), as served by OpenAI, OpenRouter,
//   vLLM, llama.cpp's server, LM Studio and Ollama's /v1. The answer's "data" items are put in
//   the order of their "index".
// - Ollama's native API: POST {base_url}/api/embed with {"model", "input": [...]} (and
//   "truncate", "keep_alive" when set); the answer is {"model", "embeddings": [[...]],
//   "prompt_eval_count"}.
//
// An answer is checked before it is given back: one vector per input, all of one non-zero length,
// every value a finite number; else kInvalidArgument. HTTP failures map as for the LLM providers
// (docs/configuration.md, "What moves the chain on"): 401/403 kUnauthenticated/kPermissionDenied,
// 429 kResourceExhausted with Retry-After (reason "insufficient_quota" when the server says so),
// 5xx kUnavailable, a timeout kDeadlineExceeded, a body that is not JSON kInvalidArgument. The
// server's error message is quoted; the key never is. A request a kept-alive connection lost
// before any answer (the HTTP client's reason "not_resent") is sent once more on a fresh one.
//
// Thread-safety: as EmbeddingProvider.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "llmassist/embedding_provider.h"
#include "llmassist/export.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API OpenAiEmbeddingOptions {
  std::string name = "openai";                         // the provider's name in results and logs
  std::string base_url = "https://api.openai.com/v1";  // without the trailing /embeddings
  std::string model;          // required: "text-embedding-3-small", "BAAI/bge-m3"
  std::string api_key;        // sent as "Authorization: Bearer …"; empty: no header
  HttpHeaders extra_headers;  // e.g. OpenRouter's HTTP-Referer and X-Title
  // The length of the vectors asked for (text-embedding-3 models can shorten theirs); empty: the
  // model's own. Must be > 0 when set.
  std::optional<int> dimensions;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // The whole request, from sending to the last byte of the answer; a request's own timeout
  // replaces it. 0: none.
  std::chrono::milliseconds total_timeout{std::chrono::seconds(60)};
  // The most inputs one request may carry (max_batch()); 1..2048 (OpenAI's own limit).
  int max_batch = 64;
  // The largest answer read, in bytes; a bigger one is stopped and the request fails with
  // kOutOfRange (reason "response_too_large"). 0: no limit. Default 16 MiB (64 vectors of 3072
  // numbers take about 4 MiB of JSON).
  std::size_t max_response_bytes = std::size_t{16} << 20;
  std::shared_ptr<HttpClient> http;  // default: a make_curl_http_client() of its own
  std::shared_ptr<Logger> logger;    // default: stderr_logger()
};

struct LLMASSIST_API OllamaEmbeddingOptions {
  std::string name = "ollama";
  std::string base_url = "http://127.0.0.1:11434";  // without /api/embed
  std::string model;                                // required: "nomic-embed-text", "bge-m3"
  HttpHeaders extra_headers;  // e.g. the credentials of a proxy in front of Ollama
  // Whether Ollama cuts an input longer than the model's context (true) or refuses it (false,
  // an HTTP 400); empty: the server's default (true).
  std::optional<bool> truncate;
  // How long Ollama keeps the model loaded after a request ("5m", "-1" for ever); empty: the
  // server's default.
  std::string keep_alive;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  // The whole request, loading the model into memory on the first one included; a request's own
  // timeout replaces it. 0: none.
  std::chrono::milliseconds total_timeout{std::chrono::seconds(120)};
  // The most inputs one request may carry (max_batch()); 1..2048.
  int max_batch = 32;
  // As OpenAiEmbeddingOptions::max_response_bytes. Default 16 MiB.
  std::size_t max_response_bytes = std::size_t{16} << 20;
  std::shared_ptr<HttpClient> http;  // default: a make_curl_http_client() of its own
  std::shared_ptr<Logger> logger;    // default: stderr_logger()
};

// Errors: kInvalidArgument for a missing model, a base_url that is not http(s), a max_batch out
// of 1..2048, or dimensions <= 0.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<EmbeddingProvider>>
make_openai_embedding_provider(OpenAiEmbeddingOptions options);

// Errors: kInvalidArgument for a missing model, a base_url that is not http(s), or a max_batch
// out of 1..2048.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<EmbeddingProvider>>
make_ollama_embedding_provider(OllamaEmbeddingOptions options);

}  // namespace llmassist
