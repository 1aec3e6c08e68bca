// EmbeddingProvider: one embedding model behind one API. Turns texts into vectors, so that the
// memory can recall what a user said by meaning as well as by words (hybrid search).
//
// Contract:
// - embed() is asynchronous: it returns at once and later calls `on_done` exactly once, with one
//   vector per input, in the order of the inputs, all of the same length, or the Status of the
//   failure (codes as for LlmProvider: kUnavailable for network errors and 5xx,
//   kResourceExhausted for 429 with retry_after() when the server said, kUnauthenticated /
//   kPermissionDenied for a bad key, kDeadlineExceeded for timeouts, kInvalidArgument for a
//   malformed server answer — not JSON, a vector too many or too few, ragged lengths, a value
//   that is not a finite number — or a request it refused, kCancelled).
// - Vectors are as the model gives them; callers that compare by cosine normalise them.
// - A request with no inputs, or with more than max_batch(), is kInvalidArgument; it is never
//   sent.
// - Callbacks run on the provider's I/O thread, or inline on the calling thread when the answer
//   is at hand at once (a request refused before it is sent, a provider that computes in
//   process): callers must not hold a lock that their callbacks take. Callbacks must return
//   quickly and must not block on another request of the same provider.
//
// Thread-safety: embed() may be called from many threads at once. The provider must outlive
// every request it has accepted; destroying it cancels those still in flight (their on_done runs
// with kCancelled before the destructor returns).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/export.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API EmbeddingRequest {
  std::vector<std::string> inputs;  // 1..the provider's batch limit texts, UTF-8
  // Overall deadline; zero: the provider's configured timeout.
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<CancelToken> cancel;  // optional
};

struct LLMASSIST_API Embeddings {
  std::vector<std::vector<float>> vectors;  // one per input, in order
  std::string provider;                     // the provider's name
  std::string model;                        // the model that made them
  int prompt_tokens = 0;                    // as the server counted, when it says
  std::chrono::milliseconds latency{0};
};

using EmbeddingCallback = std::function<void(Result<Embeddings>)>;

class LLMASSIST_API EmbeddingProvider {
 public:
  EmbeddingProvider() = default;
  virtual ~EmbeddingProvider() = default;
  EmbeddingProvider(const EmbeddingProvider&) = delete;
  EmbeddingProvider& operator=(const EmbeddingProvider&) = delete;

  // The provider's configured name, used in logs and stored with each vector.
  [[nodiscard]] virtual std::string_view name() const = 0;
  // The model's name: vectors of different models are never compared with each other.
  [[nodiscard]] virtual std::string_view model() const = 0;
  // How many inputs one request may carry at most (callers split larger batches).
  [[nodiscard]] virtual int max_batch() const = 0;

  // Starts embedding `request.inputs`; see the contract above.
  virtual void embed(EmbeddingRequest request, EmbeddingCallback on_done) = 0;
};

// Runs embed() and waits for it: for simple callers, tools and tests. Must not be called from a
// provider's own callback.
[[nodiscard]] LLMASSIST_API Result<Embeddings> embed_sync(EmbeddingProvider& provider,
                                                          EmbeddingRequest request);

}  // namespace llmassist
