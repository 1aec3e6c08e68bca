// A decorator that retries a provider a little before giving up: the baseline of the OpenAI
// SDKs. Transient failures — network errors and HTTP 5xx (kUnavailable), timeouts
// (kDeadlineExceeded), 409 (kAborted) and 429 (kResourceExhausted, but never "insufficient_quota")
// — are retried up to `max_retries` times after 0.5·2ⁿ s (capped, with jitter). A Retry-After is
// honoured when it is short; a longer one ends the retries at once, so that a fallback chain
// moves to a healthy provider instead of sleeping. Nothing is retried once a token has reached
// the caller. Waiting costs no thread: retries are scheduled on a Scheduler.
//
// Thread-safety: as LlmProvider. The decorator keeps the wrapped provider's name.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/scheduler.h"

namespace llmassist {

struct LLMASSIST_API RetryOptions {
  int max_retries = 2;                                           // retries after the first attempt
  std::chrono::milliseconds base_delay{500};                     // the first backoff
  std::chrono::milliseconds max_delay{std::chrono::seconds(8)};  // backoff cap
  // The longest Retry-After worth waiting for here; a longer one is returned to the caller
  // (whose chain keeps the provider out for that long). Default 8 s.
  std::chrono::milliseconds max_retry_after{std::chrono::seconds(8)};
  double jitter = 0.25;  // each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
  std::shared_ptr<Scheduler> scheduler;  // default: a scheduler of its own
  std::uint64_t seed = 0;                // jitter seed; 0 draws one at random
};

[[nodiscard]] LLMASSIST_API bool is_retryable(const Status& status) noexcept;

// Wraps `provider`. With max_retries 0 it passes calls straight through.
[[nodiscard]] LLMASSIST_API std::unique_ptr<LlmProvider> make_retrying_provider(
    std::shared_ptr<LlmProvider> provider, RetryOptions options = {});

}  // namespace llmassist
