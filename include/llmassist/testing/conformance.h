// What the conformance suites (message_store_conformance.h, chat_transport_conformance.h,
// llm_provider_conformance.h, embedding_provider_conformance.h) share: a check's result, the
// context a check records its failures in, and the runner. Header-only and tied to no test
// framework: a suite returns its results, each with its name, and the caller reports them with
// whatever framework it uses (see docs/testing-your-own.md).
//
// Thread-safety: a CheckContext belongs to one check; expect() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/clock.h"
#include "llmassist/status.h"

namespace llmassist::testing {

// The outcome of one named check.
struct CheckResult {
  std::string name;
  bool passed = true;
  // The check does not apply to this implementation (its harness said so); `message` says why.
  bool skipped = false;
  // Every failure, one per line (empty when passed), or why it was skipped.
  std::string message;
};

// Where a check records what went wrong. A check goes on after a failed expect() unless the
// failure makes the rest meaningless (then it returns).
class CheckContext {
 public:
  // Records `what` as a failure unless `ok`; returns `ok`.
  bool expect(bool ok, std::string_view what) {
    if (!ok) {
      std::lock_guard lock(mu_);
      if (!failures_.empty()) failures_ += '\n';
      failures_ += what;
    }
    return ok;
  }
  bool expect_ok(const Status& s, std::string_view what) {
    return expect(s.ok(), std::string(what) + ": " + s.to_string());
  }
  bool expect_code(const Status& s, StatusCode code, std::string_view what) {
    return expect(s.code() == code, std::string(what) + ": expected " +
                                        std::string(to_string(code)) + ", got " + s.to_string());
  }
  // Marks the check as not applying (it should return right after).
  void skip(std::string why) {
    std::lock_guard lock(mu_);
    skipped_ = true;
    skip_reason_ = std::move(why);
  }

  [[nodiscard]] CheckResult result(std::string name) const {
    std::lock_guard lock(mu_);
    CheckResult r;
    r.name = std::move(name);
    r.passed = failures_.empty();
    r.skipped = skipped_ && failures_.empty();
    r.message = failures_.empty() ? skip_reason_ : failures_;
    return r;
  }

 private:
  mutable std::mutex mu_;
  std::string failures_;
  bool skipped_ = false;
  std::string skip_reason_;
};

// Polls `done` every few milliseconds until it holds or `timeout` passes; returns whether it
// held. For waiting on asynchronous work, never for judging speed: the timeouts are generous.
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// One asynchronous request's end, as the provider checks see it: the first result, and how many
// times on_done was called.
template <typename T>
struct RequestOutcome {
  std::mutex mu;
  std::optional<Result<T>> result;
  std::atomic<int> calls{0};

  // on_done's body: keeps the first result, counts every call.
  void record(Result<T> r) {
    std::lock_guard lock(mu);
    if (!result) result.emplace(std::move(r));
    ++calls;
  }
  Status status() {
    std::lock_guard lock(mu);
    return result ? result->status() : Status();
  }
};

// Waits for on_done, then `grace` more to catch a second call.
template <typename Outcome>
bool finished_once(CheckContext& t, Outcome& out, std::string_view what,
                   std::chrono::milliseconds grace) {
  if (!t.expect(wait_until([&] { return out.calls.load() > 0; }, std::chrono::seconds(20)),
                std::string(what) + ": on_done was not called")) {
    return false;
  }
  std::this_thread::sleep_for(grace);
  return t.expect(out.calls.load() == 1, std::string(what) + ": on_done was called " +
                                             std::to_string(out.calls.load()) + " times");
}

// After a provider was destroyed: each request of `outs`, in flight then, ended exactly once
// before the destructor returned, with kCancelled.
template <typename Outcome>
void expect_ended_by_destruction(CheckContext& t,
                                 const std::vector<std::shared_ptr<Outcome>>& outs) {
  for (const auto& out : outs) {
    t.expect(out->calls.load() == 1, "destroying the provider: on_done was called " +
                                         std::to_string(out->calls.load()) +
                                         " times before the destructor returned");
    t.expect_code(out->status(), StatusCode::kCancelled, "a request in flight at destruction");
  }
}

// The check that destroys a provider from inside a request's on_done, on the provider's
// callback thread: another request in flight still ends with kCancelled before the destructor
// returns, and no on_done is called twice. `start_other(out)` starts a request that hangs;
// `start_first(cancel, on_done)` one that hangs until `cancel` fires, ending with on_done;
// `destroy()` destroys the provider.
template <typename T, typename Outcome>
void check_destroy_from_callback(
    CheckContext& t, const std::function<void(std::shared_ptr<Outcome>)>& start_other,
    const std::function<void(std::shared_ptr<CancelToken>, std::function<void(Result<T>)>)>&
        start_first,
    const std::function<void()>& destroy) {
  struct State {
    std::atomic<bool> destroyed{false};
    std::atomic<int> other_calls_then{-1};
  };
  auto state = std::make_shared<State>();
  auto other = std::make_shared<Outcome>();
  start_other(other);
  auto first = std::make_shared<Outcome>();
  auto token = CancelToken::create();
  start_first(token, [first, other, state, destroy](Result<T> res) {
    first->record(std::move(res));
    if (first->calls.load() != 1) return;
    destroy();
    state->other_calls_then = other->calls.load();
    state->destroyed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  token->cancel();
  if (!t.expect(wait_until([&] { return state->destroyed.load(); }, std::chrono::seconds(20)),
                "destroying the provider inside on_done did not return")) {
    return;
  }
  t.expect_code(first->status(), StatusCode::kCancelled, "the cancelled request");
  t.expect(state->other_calls_then.load() == 1,
           "destroying the provider inside on_done: the other request's on_done was called " +
               std::to_string(state->other_calls_then.load()) +
               " times before the destructor returned");
  t.expect_code(other->status(), StatusCode::kCancelled, "a request in flight at destruction");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  t.expect(first->calls.load() == 1 && other->calls.load() == 1,
           "destroying the provider inside on_done: an on_done was called again");
}

// A clock that stands still until advanced, for the checks of leases and backoff. Whole
// milliseconds, so that a store that keeps milliseconds gives back what it was given.
class SteppedClock final : public Clock {
 public:
  SteppedClock() : ms_(1'800'000'000'000) {}  // 2027-01-15, 08:00 UTC
  [[nodiscard]] Timestamp now() const override {
    return Timestamp(std::chrono::milliseconds(ms_.load()));
  }
  void advance(std::chrono::milliseconds d) { ms_ += d.count(); }

 private:
  std::atomic<std::int64_t> ms_;
};

// A named check of a harness type.
template <typename Harness>
struct NamedCheck {
  std::string_view name;
  void (*run)(CheckContext&, Harness&);
};

// The names of `checks`, in order.
template <typename Harness>
std::vector<std::string> check_names(const std::vector<NamedCheck<Harness>>& checks) {
  std::vector<std::string> out;
  for (const auto& c : checks) out.emplace_back(c.name);
  return out;
}

// Runs the check of `checks` called `name`. `with_harness(t, run)` makes the harness (failing
// `t` when it cannot) and calls run(harness).
template <typename Harness, typename WithHarness>
CheckResult run_named_check(const std::vector<NamedCheck<Harness>>& checks, std::string_view name,
                            const WithHarness& with_harness) {
  CheckContext t;
  for (const auto& check : checks) {
    if (check.name != name) continue;
    with_harness(t, [&](Harness& h) { check.run(t, h); });
    return t.result(std::string(name));
  }
  t.expect(false, "no such check");
  return t.result(std::string(name));
}

// run_named_check() with a harness from `factory()`, a Result<std::unique_ptr<Harness>>.
template <typename Harness, typename Factory>
CheckResult run_factory_check(const std::vector<NamedCheck<Harness>>& checks, std::string_view name,
                              const Factory& factory) {
  return run_named_check(checks, name, [&](CheckContext& t, const auto& run) {
    auto harness = factory();
    if (t.expect_ok(harness.status(), "the factory made no harness")) run(**harness);
  });
}

// run_named_check() for the store suites: a new SteppedClock, a store from `factory(clock)` (a
// Result<std::unique_ptr<Store>>; `t` fails when it makes none) and Harness{store, clock}.
template <typename Harness, typename Factory>
CheckResult run_clocked_store_check(const std::vector<NamedCheck<Harness>>& checks,
                                    std::string_view name, const Factory& factory) {
  return run_named_check(checks, name, [&](CheckContext& t, const auto& run) {
    auto clock = std::make_shared<SteppedClock>();
    auto store = factory(clock);
    if (!t.expect_ok(store.status(), "the factory made no store")) return;
    if (!t.expect(*store != nullptr, "the factory made a null store")) return;
    Harness h{**store, *clock};
    run(h);
  });
}

// Every check of `checks`, in order, each run by `run_one(name)`.
template <typename Harness, typename RunOne>
std::vector<CheckResult> run_every_check(const std::vector<NamedCheck<Harness>>& checks,
                                         const RunOne& run_one) {
  std::vector<CheckResult> out;
  for (const auto& c : checks) out.push_back(run_one(c.name));
  return out;
}

}  // namespace llmassist::testing
