// The EmbeddingProvider conformance suite: what embedding_provider.h promises, checked through
// the public interface, against a harness that lets each check tell the backend what to do.
//
//   class MyHarness final : public llmassist::testing::EmbeddingProviderHarness { ... };
//   auto results = llmassist::testing::run_embedding_provider_conformance(
//       [] { return std::make_unique<MyHarness>(); });
//
// A check the harness cannot stage (set_backend() returns false: a local model cannot be made to
// answer 429) is skipped, with the reason, not failed.
//
// The checks: on_done is called exactly once, with one vector per input, all of one length, of
// finite numbers, naming the provider and the model; the vectors follow the order of the inputs;
// a request with no inputs or more than max_batch() is kInvalidArgument, and max_batch() inputs
// are answered; a cancelled token gives kCancelled and a request's timeout kDeadlineExceeded; a
// 503 is kUnavailable and a 429 kResourceExhausted (both retryable), a 400 a failure not to
// retry, an answer with a vector too few kInvalidArgument; many requests at once are each
// answered once; destroying the provider with requests in flight calls each on_done with
// kCancelled before it returns, also from inside one of its callbacks.
//
// The order check needs a deterministic model: the same text twice gives (nearly) the same
// vector, two different texts different ones.
//
// Thread-safety: run one check at a time per factory unless its harnesses are independent.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/embedding_provider.h"
#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// What the backend does with the requests that follow.
enum class EmbeddingBackend {
  kAnswer,       // embeds the inputs
  kUnavailable,  // HTTP 503
  kRateLimited,  // HTTP 429
  kBadRequest,   // HTTP 400 (a request the backend refuses; not worth retrying)
  kHang,         // never answers
  kShortAnswer,  // answers one vector fewer than there are inputs
};

// A provider under test and the backend behind it. Made anew for each check.
class EmbeddingProviderHarness {
 public:
  EmbeddingProviderHarness() = default;
  virtual ~EmbeddingProviderHarness() = default;
  EmbeddingProviderHarness(const EmbeddingProviderHarness&) = delete;
  EmbeddingProviderHarness& operator=(const EmbeddingProviderHarness&) = delete;

  // The provider; valid until destroy_provider().
  virtual EmbeddingProvider& provider() = 0;
  // Makes the backend do `what` from now on. False when this harness cannot stage it: the
  // checks that need it are skipped.
  virtual bool set_backend(EmbeddingBackend what) = 0;
  // Destroys the provider (with what it wraps, when the harness owns that only through it).
  virtual void destroy_provider() = 0;
};

using EmbeddingProviderFactory = std::function<Result<std::unique_ptr<EmbeddingProviderHarness>>()>;

namespace embedding_checks {

using namespace std::chrono_literals;

// Texts of both languages the bot's users write, none sharing a word with another.
inline std::vector<std::string> texts() {
  return {"Where is my parcel?", "Какая погода завтра в Москве", "opening hours on Sunday"};
}

// One request's outcome, counted.
struct Outcome : RequestOutcome<Embeddings> {};

inline EmbeddingRequest request(std::vector<std::string> inputs = texts()) {
  EmbeddingRequest r;
  r.inputs = std::move(inputs);
  return r;
}

inline void start(EmbeddingProviderHarness& h, EmbeddingRequest r, std::shared_ptr<Outcome> out) {
  h.provider().embed(std::move(r),
                     [out](Result<Embeddings> result) { out->record(std::move(result)); });
}

inline bool finished_once(CheckContext& t, Outcome& out, std::string_view what) {
  return testing::finished_once(t, out, what, 50ms);
}

inline Status status_of(Outcome& out) { return out.status(); }

// Runs one request to its end; the result, or a failure recorded in `t` (then empty).
inline std::optional<Result<Embeddings>> run(CheckContext& t, EmbeddingProviderHarness& h,
                                             EmbeddingRequest r, std::string_view what) {
  auto out = std::make_shared<Outcome>();
  start(h, std::move(r), out);
  if (!finished_once(t, *out, what)) return std::nullopt;
  std::lock_guard lock(out->mu);
  return std::move(*out->result);
}

inline bool stage(CheckContext& t, EmbeddingProviderHarness& h, EmbeddingBackend what,
                  std::string_view name) {
  if (h.set_backend(what)) return true;
  t.skip("the harness cannot make the backend " + std::string(name));
  return false;
}

inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double dot = 0;
  double na = 0;
  double nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0;
}

inline void answers_once(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kAnswer, "answer")) return;
  auto r = run(t, h, request(), "a plain request");
  if (!r || !t.expect_ok(r->status(), "a plain request")) return;
  const Embeddings& e = **r;
  if (!t.expect(e.vectors.size() == texts().size(),
                std::to_string(e.vectors.size()) + " vectors for " +
                    std::to_string(texts().size()) + " inputs")) {
    return;
  }
  const std::size_t dims = e.vectors[0].size();
  t.expect(dims > 0, "the first vector is empty");
  for (const auto& v : e.vectors) {
    t.expect(v.size() == dims, "the vectors are of different lengths");
    bool finite = true;
    for (float x : v) finite = finite && std::isfinite(x);
    t.expect(finite, "a vector holds a number that is not finite");
  }
  t.expect(e.provider == h.provider().name(), "the embeddings name the provider '" + e.provider +
                                                  "', not '" + std::string(h.provider().name()) +
                                                  "'");
  t.expect(!e.model.empty(), "the embeddings do not name their model");
}

inline void follows_input_order(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kAnswer, "answer")) return;
  const auto in = texts();
  const std::vector<std::string> reversed(in.rbegin(), in.rend());
  auto forward = run(t, h, request(in), "a request");
  auto backward = run(t, h, request(reversed), "the request reversed");
  if (!forward || !backward || !t.expect_ok(forward->status(), "a request") ||
      !t.expect_ok(backward->status(), "the request reversed")) {
    return;
  }
  const auto& f = (*forward)->vectors;
  const auto& b = (*backward)->vectors;
  if (!t.expect(f.size() == in.size() && b.size() == in.size(), "a vector per input")) return;
  t.expect(cosine(f[0], f[1]) < 0.999, "two different texts have the same vector");
  for (std::size_t i = 0; i < in.size(); ++i) {
    t.expect(cosine(f[i], b[in.size() - 1 - i]) > 0.999,
             "the vector of '" + in[i] + "' is not at its input's place");
  }
}

inline void batch_limits(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kAnswer, "answer")) return;
  const int max = h.provider().max_batch();
  if (!t.expect(max >= 1, "max_batch() is " + std::to_string(max))) return;
  auto none = run(t, h, request({}), "a request with no inputs");
  if (none) t.expect_code(none->status(), StatusCode::kInvalidArgument, "no inputs");
  std::vector<std::string> full;
  for (int i = 0; i < max; ++i) full.push_back("text number " + std::to_string(i));
  auto at_limit = run(t, h, request(full), "max_batch() inputs");
  if (at_limit && t.expect_ok(at_limit->status(), "max_batch() inputs")) {
    t.expect((*at_limit)->vectors.size() == full.size(), "max_batch() inputs: a vector short");
  }
  full.push_back("one too many");
  auto over = run(t, h, request(full), "max_batch() + 1 inputs");
  if (over) t.expect_code(over->status(), StatusCode::kInvalidArgument, "max_batch() + 1 inputs");
}

inline void cancel_token(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kHang, "hang")) return;
  auto out = std::make_shared<Outcome>();
  EmbeddingRequest r = request();
  r.cancel = CancelToken::create();
  auto token = r.cancel;
  start(h, std::move(r), out);
  std::this_thread::sleep_for(50ms);
  t.expect(out->calls.load() == 0, "a hanging request finished before it was cancelled");
  token->cancel();
  if (!finished_once(t, *out, "a cancelled request")) return;
  t.expect_code(status_of(*out), StatusCode::kCancelled, "a cancelled request");
}

inline void timeout(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kHang, "hang")) return;
  EmbeddingRequest r = request();
  r.timeout = 300ms;
  auto result = run(t, h, std::move(r), "a request that times out");
  if (result) {
    t.expect_code(result->status(), StatusCode::kDeadlineExceeded, "a request past its timeout");
  }
}

inline void failure(CheckContext& t, EmbeddingProviderHarness& h, EmbeddingBackend what,
                    std::string_view name, std::optional<StatusCode> code, bool retryable) {
  if (!stage(t, h, what, name)) return;
  auto result = run(t, h, request(), name);
  if (!result) return;
  const Status s = result->status();
  if (!t.expect(!s.ok(), std::string(name) + ": the request succeeded")) return;
  if (code) t.expect_code(s, *code, name);
  const bool transient =
      s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded ||
      (s.code() == StatusCode::kResourceExhausted && s.reason() != "insufficient_quota");
  t.expect(transient == retryable,
           std::string(name) + (retryable ? ": not a retryable failure: " : ": retryable: ") +
               s.to_string());
}

inline void unavailable(CheckContext& t, EmbeddingProviderHarness& h) {
  failure(t, h, EmbeddingBackend::kUnavailable, "fail with 503", StatusCode::kUnavailable, true);
}
inline void rate_limited(CheckContext& t, EmbeddingProviderHarness& h) {
  failure(t, h, EmbeddingBackend::kRateLimited, "fail with 429", StatusCode::kResourceExhausted,
          true);
}
inline void bad_request(CheckContext& t, EmbeddingProviderHarness& h) {
  failure(t, h, EmbeddingBackend::kBadRequest, "fail with 400", std::nullopt, false);
}
inline void short_answer(CheckContext& t, EmbeddingProviderHarness& h) {
  failure(t, h, EmbeddingBackend::kShortAnswer, "answer a vector short",
          StatusCode::kInvalidArgument, false);
}

inline void many_at_once(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kAnswer, "answer")) return;
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 16; ++i) {
    outs.push_back(std::make_shared<Outcome>());
    start(h, request({"request " + std::to_string(i)}), outs.back());
  }
  for (auto& out : outs) {
    if (!finished_once(t, *out, "one of 16 requests at once")) return;
    t.expect_ok(status_of(*out), "one of 16 requests at once");
  }
}

inline void destroy_in_flight(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kHang, "hang")) return;
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 3; ++i) {
    outs.push_back(std::make_shared<Outcome>());
    start(h, request(), outs.back());
  }
  std::this_thread::sleep_for(50ms);
  h.destroy_provider();
  expect_ended_by_destruction(t, outs);
}

// Destroys the provider from inside a request's on_done, on the provider's callback thread:
// another request in flight still ends with kCancelled before the destructor returns.
inline void destroy_from_callback(CheckContext& t, EmbeddingProviderHarness& h) {
  if (!stage(t, h, EmbeddingBackend::kHang, "hang")) return;
  check_destroy_from_callback<Embeddings, Outcome>(
      t, [&](std::shared_ptr<Outcome> out) { start(h, request(), std::move(out)); },
      [&](std::shared_ptr<CancelToken> cancel, std::function<void(Result<Embeddings>)> done) {
        EmbeddingRequest r = request();
        r.cancel = std::move(cancel);
        h.provider().embed(std::move(r), std::move(done));
      },
      [&h] { h.destroy_provider(); });
}

inline const std::vector<NamedCheck<EmbeddingProviderHarness>>& all() {
  static const std::vector<NamedCheck<EmbeddingProviderHarness>> checks = {
      {"on_done is called once, with a vector per input", &answers_once},
      {"the vectors follow the order of the inputs", &follows_input_order},
      {"no inputs or more than max_batch is kInvalidArgument", &batch_limits},
      {"a cancelled token gives kCancelled once", &cancel_token},
      {"a timeout gives kDeadlineExceeded", &timeout},
      {"a 503 is kUnavailable, retryable", &unavailable},
      {"a 429 is kResourceExhausted, retryable", &rate_limited},
      {"a 400 is a failure not to retry", &bad_request},
      {"an answer a vector short is kInvalidArgument", &short_answer},
      {"many requests at once are each answered once", &many_at_once},
      {"destroying the provider with requests in flight is safe", &destroy_in_flight},
      {"destroying the provider inside a callback ends the others, once", &destroy_from_callback},
  };
  return checks;
}

}  // namespace embedding_checks

inline std::vector<std::string> embedding_provider_check_names() {
  return check_names(embedding_checks::all());
}

inline CheckResult run_embedding_provider_check(std::string_view name,
                                                const EmbeddingProviderFactory& factory) {
  return run_factory_check(embedding_checks::all(), name, factory);
}

inline std::vector<CheckResult> run_embedding_provider_conformance(
    const EmbeddingProviderFactory& factory) {
  return run_every_check(embedding_checks::all(), [&](std::string_view name) {
    return run_embedding_provider_check(name, factory);
  });
}

}  // namespace llmassist::testing
