// A decorator that caps the requests a provider has in flight at once: the protection for a
// provider's rate limits and for a local model's capacity (a llama.cpp server with 4 slots, an
// API key allowed N concurrent requests). Requests beyond `max_in_flight` wait in one queue and
// are passed on in the order they came (FIFO) as earlier ones finish.
//
// While a request waits:
// - its CancelToken ends it at once (on_done with kCancelled), and it never reaches the provider;
// - its timeout counts: a request with a timeout of its own (CompletionRequest::timeout) is given
//   what remains of it when it is passed on, and fails with kDeadlineExceeded when it runs out in
//   the queue; one without waits at most `max_queue_wait`, then has the provider's whole
//   configured timeout once passed on;
// - destroying the decorator ends it with kCancelled before the destructor returns. Requests
//   already passed on are the wrapped provider's: they end as its contract says (destroyed with
//   its last owner, it cancels them).
// Waiting costs no thread: a queued request is a small record, its deadline a Scheduler timer.
//
// Thread-safety: as LlmProvider. The decorator keeps the wrapped provider's name.
#pragma once

#include <chrono>
#include <memory>

#include "llmassist/export.h"
#include "llmassist/llm_provider.h"
#include "llmassist/scheduler.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API ConcurrencyLimitOptions {
  // Requests in flight at the wrapped provider at once; at least 1. Default: 8.
  int max_in_flight = 8;
  // The longest a request without a timeout of its own waits in the queue before it fails with
  // kDeadlineExceeded. Zero: no limit. Default: 180 s (the HTTP providers' total timeout).
  std::chrono::milliseconds max_queue_wait{std::chrono::seconds(180)};
  // Runs the queue deadlines. Default: a scheduler of its own, made when the first request has to
  // wait.
  std::shared_ptr<Scheduler> scheduler;
};

// Wraps `provider`. Errors: kInvalidArgument for a missing provider, max_in_flight below 1 or a
// negative max_queue_wait.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<LlmProvider>> make_concurrency_limited_provider(
    std::shared_ptr<LlmProvider> provider, ConcurrencyLimitOptions options = {});

}  // namespace llmassist
