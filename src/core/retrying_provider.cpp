// The retry decorator: re-sends a failed request after a backoff scheduled on a Scheduler.
#include "llmassist/core/retrying_provider.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <string>

#include "core/in_flight.h"

namespace llmassist {

bool is_retryable(const Status& s) noexcept {
  switch (s.code()) {
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kAborted:
      return true;
    case StatusCode::kResourceExhausted:
      return s.reason() != "insufficient_quota";
    default:
      return false;
  }
}

namespace {

// The decorator's state, shared with the callbacks of requests in flight (which hold it, not
// the provider). The wrapped provider is held here only: close() lets go of it, so that the
// decorator's destruction destroys it when it is the last owner.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(std::shared_ptr<LlmProvider> inner, RetryOptions options)
      : name_(inner->name()),
        tools_(inner->supports_tools()),
        inner_(std::move(inner)),
        options_(std::move(options)),
        scheduler_(options_.scheduler ? options_.scheduler : make_thread_scheduler()),
        rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {}

  std::string_view name() const { return name_; }
  bool supports_tools() const { return tools_; }

  struct Attempt {
    CompletionRequest request;  // its cancel: the call's token
    std::shared_ptr<detail::InFlightCall> call;
    int retries = 0;
    std::atomic<bool> streamed{false};
    std::uint64_t cancel_id = 0;
  };

  void submit(CompletionRequest request, TokenCallback on_token, CompletionCallback on_done) {
    auto call = in_flight_->start(std::move(on_token), std::move(on_done), request.cancel, name_);
    if (!call) return;
    auto a = std::make_shared<Attempt>();
    a->request = std::move(request);
    a->request.cancel = call->cancel();
    a->call = std::move(call);
    start(a);
  }

  // Ends every request in flight with kCancelled, then lets go of the wrapped provider.
  void close() {
    in_flight_->close(name_);
    std::shared_ptr<LlmProvider> inner;
    {
      std::lock_guard lock(mu_);
      inner.swap(inner_);
    }
    inner.reset();
  }

 private:
  void start(const std::shared_ptr<Attempt>& a) {
    std::shared_ptr<LlmProvider> inner;
    {
      std::lock_guard lock(mu_);
      inner = inner_;
    }
    if (!inner) {
      finish(a, cancelled(name_ + ": the provider was destroyed"));
      return;
    }
    TokenCallback forward;
    if (a->call->streams()) {
      forward = [a](std::string_view delta) {
        a->streamed = true;
        return a->call->token(delta);
      };
    }
    inner->complete(
        a->request, std::move(forward),
        [self = shared_from_this(), a](Result<Completion> r) { self->on_result(a, std::move(r)); });
  }

  void on_result(const std::shared_ptr<Attempt>& a, Result<Completion> r) {
    if (a->call->ended()) return;  // ended by close() or a cancel while waiting
    if (r.ok() || a->streamed || a->retries >= options_.max_retries || !is_retryable(r.status())) {
      finish(a, std::move(r));
      return;
    }
    const Status failure = r.status();
    if (failure.retry_after() && *failure.retry_after() > options_.max_retry_after) {
      finish(a, std::move(r));  // not worth waiting here: let a fallback answer
      return;
    }
    auto delay = backoff(a->retries);
    if (failure.retry_after()) delay = std::max(delay, *failure.retry_after());
    ++a->retries;
    // A cancel during the wait (the caller's, or the provider's destruction) ends the request at
    // once, not when the timer fires.
    a->cancel_id = a->request.cancel->on_cancel([self = shared_from_this(), a] {
      self->finish(a, cancelled("the request was cancelled while waiting to retry"));
    });
    scheduler_->schedule(delay, [self = shared_from_this(), a] {
      a->request.cancel->remove(a->cancel_id);
      if (a->call->ended()) return;
      self->start(a);
    });
  }

  std::chrono::milliseconds backoff(int retry) {
    const double base = static_cast<double>(options_.base_delay.count()) * std::pow(2.0, retry);
    const double capped = std::min(base, static_cast<double>(options_.max_delay.count()));
    double factor = 1.0;
    if (options_.jitter > 0) {
      std::lock_guard lock(rng_mu_);
      factor = std::uniform_real_distribution<double>(1.0 - options_.jitter,
                                                      1.0 + options_.jitter)(rng_);
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(capped * factor));
  }

  static void finish(const std::shared_ptr<Attempt>& a, Result<Completion> r) {
    a->call->done(std::move(r));
  }

  const std::string name_;
  const bool tools_;  // the wrapped provider's supports_tools()

  std::mutex mu_;
  std::shared_ptr<LlmProvider> inner_;  // guarded by mu_; reset by close()
  const RetryOptions options_;
  const std::shared_ptr<Scheduler> scheduler_;
  const std::shared_ptr<detail::InFlightSet> in_flight_ = detail::InFlightSet::create();
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

class RetryingProvider final : public LlmProvider {
 public:
  RetryingProvider(std::shared_ptr<LlmProvider> inner, RetryOptions options)
      : core_(std::make_shared<Core>(std::move(inner), std::move(options))) {}
  ~RetryingProvider() override { core_->close(); }
  RetryingProvider(const RetryingProvider&) = delete;
  RetryingProvider& operator=(const RetryingProvider&) = delete;

  std::string_view name() const override { return core_->name(); }
  bool supports_tools() const override { return core_->supports_tools(); }

  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    core_->submit(std::move(request), std::move(on_token), std::move(on_done));
  }

 private:
  const std::shared_ptr<Core> core_;
};

}  // namespace

std::unique_ptr<LlmProvider> make_retrying_provider(std::shared_ptr<LlmProvider> provider,
                                                    RetryOptions options) {
  return std::make_unique<RetryingProvider>(std::move(provider), std::move(options));
}

}  // namespace llmassist
