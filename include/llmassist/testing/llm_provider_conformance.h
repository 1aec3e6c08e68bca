// The LlmProvider conformance suite: what llm_provider.h promises, checked through the public
// interface, against a harness that lets each check tell the backend what to do.
//
//   class MyHarness final : public llmassist::testing::LlmProviderHarness { ... };
//   auto results = llmassist::testing::run_llm_provider_conformance(
//       [] { return std::make_unique<MyHarness>(); });
//
// A check the harness cannot stage (set_backend() returns false: an embedded provider cannot be
// made to hang) is skipped, with the reason, not failed.
//
// The checks: on_done is called exactly once; streamed tokens add up to the final text;
// on_token returning false and a cancelled token each give kCancelled, once; a request's timeout
// gives kDeadlineExceeded; a 503 is kUnavailable and a 429 kResourceExhausted (both retryable),
// a 400 a failure not to retry; many requests at once are each answered once; destroying the
// provider with requests in flight calls each on_done with kCancelled before it returns, also
// from inside one of its callbacks, and while on_token runs on another thread.
//
// Thread-safety: run one check at a time per factory unless its harnesses are independent.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/llm_provider.h"
#include "llmassist/testing/conformance.h"

namespace llmassist::testing {

// What the backend does with the requests that follow.
enum class LlmBackend {
  kAnswer,       // answers the text given to set_backend(), streamed in pieces when streaming
  kUnavailable,  // HTTP 503
  kRateLimited,  // HTTP 429
  kBadRequest,   // HTTP 400 (a request the backend refuses; not worth retrying)
  kHang,         // never answers
};

// A provider under test and the backend behind it. Made anew for each check.
class LlmProviderHarness {
 public:
  LlmProviderHarness() = default;
  virtual ~LlmProviderHarness() = default;
  LlmProviderHarness(const LlmProviderHarness&) = delete;
  LlmProviderHarness& operator=(const LlmProviderHarness&) = delete;

  // The provider; valid until destroy_provider().
  virtual LlmProvider& provider() = 0;
  // Makes the backend do `what` from now on (`answer`: the text for kAnswer). False when this
  // harness cannot stage it: the checks that need it are skipped.
  virtual bool set_backend(LlmBackend what, const std::string& answer) = 0;
  // Whether a kAnswer answer is the text given (false: the provider answers from its own data,
  // and the checks only compare the streamed text with the final one).
  [[nodiscard]] virtual bool controls_answer_text() const { return true; }
  // Whether a failure of the backend comes back with the code llm_provider.h gives it (503:
  // kUnavailable, 429: kResourceExhausted, 400: not retryable, a timeout: kDeadlineExceeded).
  // False for a provider that sums the failures of others up in codes of its own (the fallback
  // chain: kUnavailable, reason "all_providers_failed"): the checks then require a failure only.
  [[nodiscard]] virtual bool reports_backend_codes() const { return true; }
  // The question every check asks: a provider that answers from its own data should know it.
  [[nodiscard]] virtual std::string question() const { return "Say hello"; }
  // Destroys the provider (with what it wraps, when the harness owns that only through it).
  virtual void destroy_provider() = 0;
};

using LlmProviderFactory = std::function<Result<std::unique_ptr<LlmProviderHarness>>()>;

namespace provider_checks {

using namespace std::chrono_literals;

constexpr const char* kAnswerText = "Hello there — ünïcode ✓, and a second sentence.";

// One request's outcome, counted, and the text streamed to it.
struct Outcome : RequestOutcome<Completion> {
  std::string streamed;
  std::atomic<int> tokens{0};
};

inline CompletionRequest request(LlmProviderHarness& h) {
  CompletionRequest r;
  r.messages.push_back({Role::kUser, h.question()});
  return r;
}

inline void start(LlmProviderHarness& h, CompletionRequest r, std::shared_ptr<Outcome> out,
                  bool stream, bool stop_at_first_token = false) {
  TokenCallback on_token;
  if (stream) {
    on_token = [out, stop_at_first_token](std::string_view delta) {
      std::lock_guard lock(out->mu);
      out->streamed += delta;
      ++out->tokens;
      return !stop_at_first_token;
    };
  }
  h.provider().complete(std::move(r), std::move(on_token),
                        [out](Result<Completion> result) { out->record(std::move(result)); });
}

// Waits for on_done, then a little more to catch a second call.
inline bool finished_once(CheckContext& t, Outcome& out, std::string_view what) {
  return testing::finished_once(t, out, what, 100ms);
}

inline Status status_of(Outcome& out) { return out.status(); }

inline bool stage(CheckContext& t, LlmProviderHarness& h, LlmBackend what,
                  const std::string& answer, std::string_view name) {
  if (h.set_backend(what, answer)) return true;
  t.skip("the harness cannot make the backend " + std::string(name));
  return false;
}

inline void answers_once(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kAnswer, kAnswerText, "answer")) return;
  auto out = std::make_shared<Outcome>();
  start(h, request(h), out, false);
  if (!finished_once(t, *out, "a plain request")) return;
  std::lock_guard lock(out->mu);
  if (!t.expect_ok(out->result->status(), "a plain request")) return;
  const Completion& c = **out->result;
  t.expect(!c.text.empty(), "the completion has no text");
  if (h.controls_answer_text()) {
    t.expect(c.text == kAnswerText, "the completion is '" + c.text + "', not the backend's answer");
  }
  t.expect(!c.provider.empty(), "the completion does not name its provider");
}

inline void tokens_add_up(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kAnswer, kAnswerText, "answer")) return;
  auto out = std::make_shared<Outcome>();
  start(h, request(h), out, true);
  if (!finished_once(t, *out, "a streamed request")) return;
  std::lock_guard lock(out->mu);
  if (!t.expect_ok(out->result->status(), "a streamed request")) return;
  const Completion& c = **out->result;
  t.expect(out->tokens.load() > 0, "on_token was never called");
  t.expect(out->streamed == c.text,
           "the streamed tokens ('" + out->streamed + "') do not add up to '" + c.text + "'");
  if (h.controls_answer_text()) t.expect(c.text == kAnswerText, "not the backend's answer");
}

inline void token_false_cancels(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kAnswer, kAnswerText, "answer")) return;
  auto out = std::make_shared<Outcome>();
  start(h, request(h), out, true, /*stop_at_first_token=*/true);
  if (!finished_once(t, *out, "a request whose on_token returns false")) return;
  t.expect_code(status_of(*out), StatusCode::kCancelled, "on_token returned false");
}

inline void cancel_token(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kHang, "", "hang")) return;
  auto out = std::make_shared<Outcome>();
  CompletionRequest r = request(h);
  r.cancel = CancelToken::create();
  auto token = r.cancel;
  start(h, std::move(r), out, true);
  std::this_thread::sleep_for(50ms);
  t.expect(out->calls.load() == 0, "a hanging request finished before it was cancelled");
  token->cancel();
  if (!finished_once(t, *out, "a cancelled request")) return;
  t.expect_code(status_of(*out), StatusCode::kCancelled, "a cancelled request");
}

inline void timeout(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kHang, "", "hang")) return;
  auto out = std::make_shared<Outcome>();
  CompletionRequest r = request(h);
  r.timeout = 300ms;
  start(h, std::move(r), out, false);
  if (!finished_once(t, *out, "a request that times out")) return;
  if (!h.reports_backend_codes()) {
    t.expect(!status_of(*out).ok(), "a request past its timeout succeeded");
    return;
  }
  t.expect_code(status_of(*out), StatusCode::kDeadlineExceeded, "a request past its timeout");
}

inline void failure(CheckContext& t, LlmProviderHarness& h, LlmBackend what, std::string_view name,
                    std::optional<StatusCode> code, bool retryable) {
  if (!stage(t, h, what, "", name)) return;
  auto out = std::make_shared<Outcome>();
  start(h, request(h), out, true);
  if (!finished_once(t, *out, name)) return;
  const Status s = status_of(*out);
  if (!t.expect(!s.ok(), std::string(name) + ": the request succeeded")) return;
  if (!h.reports_backend_codes()) return;
  if (code) t.expect_code(s, *code, name);
  const bool transient =
      s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded ||
      (s.code() == StatusCode::kResourceExhausted && s.reason() != "insufficient_quota");
  t.expect(transient == retryable,
           std::string(name) + (retryable ? ": not a retryable failure: " : ": retryable: ") +
               s.to_string());
}

inline void unavailable(CheckContext& t, LlmProviderHarness& h) {
  failure(t, h, LlmBackend::kUnavailable, "fail with 503", StatusCode::kUnavailable, true);
}
inline void rate_limited(CheckContext& t, LlmProviderHarness& h) {
  failure(t, h, LlmBackend::kRateLimited, "fail with 429", StatusCode::kResourceExhausted, true);
}
inline void bad_request(CheckContext& t, LlmProviderHarness& h) {
  failure(t, h, LlmBackend::kBadRequest, "fail with 400", std::nullopt, false);
}

inline void many_at_once(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kAnswer, kAnswerText, "answer")) return;
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 16; ++i) {
    outs.push_back(std::make_shared<Outcome>());
    start(h, request(h), outs.back(), i % 2 == 0);
  }
  for (auto& out : outs) {
    if (!finished_once(t, *out, "one of 16 requests at once")) return;
    t.expect_ok(status_of(*out), "one of 16 requests at once");
  }
}

inline void destroy_in_flight(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kHang, "", "hang")) return;
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < 3; ++i) {
    outs.push_back(std::make_shared<Outcome>());
    start(h, request(h), outs.back(), i == 0);
  }
  std::this_thread::sleep_for(50ms);
  h.destroy_provider();
  expect_ended_by_destruction(t, outs);
}

// Destroys the provider from inside a request's on_done, on the provider's callback thread:
// another request in flight still ends with kCancelled before the destructor returns.
inline void destroy_from_callback(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kHang, "", "hang")) return;
  check_destroy_from_callback<Completion, Outcome>(
      t, [&](std::shared_ptr<Outcome> out) { start(h, request(h), std::move(out), true); },
      [&](std::shared_ptr<CancelToken> cancel, std::function<void(Result<Completion>)> done) {
        CompletionRequest r = request(h);
        r.cancel = std::move(cancel);
        h.provider().complete(std::move(r), {}, std::move(done));
      },
      [&h] { h.destroy_provider(); });
}

// Destroys the provider while on_token runs on the provider's thread: the destructor waits for
// it, then the request ends once, and no token follows its on_done.
inline void destroy_during_token(CheckContext& t, LlmProviderHarness& h) {
  if (!stage(t, h, LlmBackend::kAnswer, kAnswerText, "answer")) return;
  struct State {
    std::atomic<bool> in_token{false};
    std::atomic<bool> token_after_done{false};
    std::atomic<int> done_calls{0};
    std::mutex mu;
    Status status;
  };
  auto state = std::make_shared<State>();
  h.provider().complete(
      request(h),
      [state](std::string_view) {
        if (state->done_calls.load() > 0) state->token_after_done = true;
        if (!state->in_token.exchange(true)) std::this_thread::sleep_for(200ms);
        return true;
      },
      [state](Result<Completion> res) {
        {
          std::lock_guard lock(state->mu);
          state->status = res.status();
        }
        ++state->done_calls;
      });
  if (!wait_until([&] { return state->in_token.load() || state->done_calls.load() > 0; }, 20s)) {
    t.expect(false, "the streamed request neither streamed nor ended");
    return;
  }
  const bool ended_before = state->done_calls.load() > 0;
  h.destroy_provider();
  t.expect(state->done_calls.load() == 1,
           "destroying the provider while on_token ran: on_done was called " +
               std::to_string(state->done_calls.load()) + " times before the destructor returned");
  std::this_thread::sleep_for(100ms);
  t.expect(state->done_calls.load() == 1, "on_done was called again after the destructor");
  t.expect(!state->token_after_done.load(), "on_token was called after on_done");
  if (!ended_before) {
    std::lock_guard lock(state->mu);
    t.expect(state->status.ok() || state->status.code() == StatusCode::kCancelled,
             "a request streaming at destruction ended with " + state->status.to_string());
  }
}

inline const std::vector<NamedCheck<LlmProviderHarness>>& all() {
  static const std::vector<NamedCheck<LlmProviderHarness>> checks = {
      {"on_done is called exactly once", &answers_once},
      {"streamed tokens add up to the final text", &tokens_add_up},
      {"on_token returning false gives kCancelled once", &token_false_cancels},
      {"a cancelled token gives kCancelled once", &cancel_token},
      {"a timeout gives kDeadlineExceeded", &timeout},
      {"a 503 is kUnavailable, retryable", &unavailable},
      {"a 429 is kResourceExhausted, retryable", &rate_limited},
      {"a 400 is a failure not to retry", &bad_request},
      {"many requests at once are each answered once", &many_at_once},
      {"destroying the provider with requests in flight is safe", &destroy_in_flight},
      {"destroying the provider inside a callback ends the others, once", &destroy_from_callback},
      {"destroying the provider while on_token runs is safe", &destroy_during_token},
  };
  return checks;
}

}  // namespace provider_checks

inline std::vector<std::string> llm_provider_check_names() {
  return check_names(provider_checks::all());
}

inline CheckResult run_llm_provider_check(std::string_view name,
                                          const LlmProviderFactory& factory) {
  return run_factory_check(provider_checks::all(), name, factory);
}

inline std::vector<CheckResult> run_llm_provider_conformance(const LlmProviderFactory& factory) {
  return run_every_check(provider_checks::all(), [&](std::string_view name) {
    return run_llm_provider_check(name, factory);
  });
}

}  // namespace llmassist::testing
