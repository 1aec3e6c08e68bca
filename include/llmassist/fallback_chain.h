// FallbackChain: an LlmProvider made of an ordered list of providers. Each request goes to the
// first provider that is not cooling down; when it fails, the chain classifies the failure and
// moves on to the next, until one answers or all have failed.
//
// What moves the chain on: every failure but cancellation — connection refused or reset,
// timeouts, HTTP 5xx, 429 (rate limit or exhausted quota), 401/403 (a bad key: also logged as an
// error naming the provider, never the key), a context too long for the model, a malformed
// answer, a knowledge base without an answer.
//
// Health, per provider:
// - a circuit breaker: `failure_threshold` failures in a row (of the kinds that say the provider
//   is unwell: not "context too long", not "no answer") open its circuit for `cooldown`; while
//   open it is skipped at no cost; then one request probes it: success closes the circuit,
//   failure opens it again. An exhausted quota opens it at once.
// - Retry-After: a 429 or 503 that says when to come back keeps the provider out until then
//   (at most `max_keep_out`).
//
// Tools: a request that offers tools (CompletionRequest::tools) goes only to the providers whose
// supports_tools() is true; the others are passed by, without counting as failures or attempts
// (a knowledge base, a model configured with `tools: false`). The chain supports tools when any
// of its providers does; when none does, such a request fails with kFailedPrecondition (reason
// "no_tool_provider").
//
// Streaming: the chain falls back only before the first token reached the caller. A stream that
// breaks after that is reported as that attempt's failure; another model's text is never
// spliced onto it. The Completion says which provider answered and how many were tried. When
// all fail, the error lists each provider's failure; its code is kNotFound (reason "no_answer")
// when every provider simply had no answer, kCancelled when the request was cancelled, and
// kUnavailable (reason "all_providers_failed") otherwise.
//
// Thread-safety: complete() and provider_stats() may be called from many threads at once.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmassist/clock.h"
#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

// How a provider's attempt ended, for counters and for the chain's decisions.
enum class FailureClass : std::uint8_t {
  kUnavailable,  // connection refused/reset, DNS, HTTP 5xx
  kTimeout,      // a connect, first-byte or total timeout
  kRateLimited,  // HTTP 429
  kQuota,        // HTTP 429 insufficient_quota: no point retrying
  kAuth,         // HTTP 401/403: the key is wrong or lacks access
  kContext,      // the prompt is too long for the model
  kMalformed,    // the server's answer could not be understood, or it refused the request
  kNoAnswer,     // a knowledge base had no answer
  kCancelled,
  kOther,
};
[[nodiscard]] LLMASSIST_API std::string_view to_string(FailureClass c) noexcept;
[[nodiscard]] LLMASSIST_API FailureClass classify_failure(const Status& status) noexcept;

struct LLMASSIST_API ProviderStats {
  std::string name;
  std::int64_t attempts = 0;
  std::int64_t successes = 0;
  std::int64_t skipped = 0;  // requests that passed it by while its circuit was open
  // Failures by class, indexed by FailureClass.
  std::array<std::int64_t, 10> failures{};
  int consecutive_failures = 0;
  bool circuit_open = false;
  std::optional<Timestamp> unavailable_until;  // circuit open or Retry-After, whichever is later
  std::chrono::milliseconds total_latency{0};  // of its successful answers
  std::chrono::milliseconds last_latency{0};
  std::string last_error;
};

struct LLMASSIST_API FallbackChainOptions {
  std::string name = "fallback";  // the chain's own name
  // Failures in a row that open a provider's circuit. Default 3.
  int failure_threshold = 3;
  // How long an open circuit skips its provider before probing it again. Default 30 s.
  std::chrono::milliseconds cooldown{std::chrono::seconds(30)};
  // The longest a Retry-After may keep a provider out. Default 10 min.
  std::chrono::milliseconds max_keep_out{std::chrono::minutes(10)};
  std::shared_ptr<Clock> clock;    // default: system_clock()
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

class LLMASSIST_API FallbackChain : public LlmProvider {
 public:
  // A snapshot of each provider's counters and state, in chain order.
  [[nodiscard]] virtual std::vector<ProviderStats> provider_stats() const = 0;
};

// Errors: kInvalidArgument for an empty list, a null provider, two providers of one name, or a
// failure_threshold below 1.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<FallbackChain>> make_fallback_chain(
    std::vector<std::shared_ptr<LlmProvider>> providers, FallbackChainOptions options = {});

}  // namespace llmassist
