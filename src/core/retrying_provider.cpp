// The retry decorator: re-sends a failed request after a backoff scheduled on a Scheduler.
#include "llmassist/core/retrying_provider.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>

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

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(std::shared_ptr<LlmProvider> inner, RetryOptions options)
      : inner_(std::move(inner)),
        options_(std::move(options)),
        scheduler_(options_.scheduler ? options_.scheduler : make_thread_scheduler()),
        rng_(options_.seed != 0 ? options_.seed : std::random_device{}()) {}

  std::string_view name() const { return inner_->name(); }

  struct Attempt {
    CompletionRequest request;
    TokenCallback on_token;
    CompletionCallback on_done;
    int retries = 0;
    std::atomic<bool> streamed{false};
    std::atomic<bool> finished{false};
    std::uint64_t cancel_id = 0;
  };

  void start(const std::shared_ptr<Attempt>& a) {
    TokenCallback forward;
    if (a->on_token) {
      forward = [a](std::string_view delta) {
        a->streamed = true;
        return a->on_token(delta);
      };
    }
    inner_->complete(
        a->request, std::move(forward),
        [self = shared_from_this(), a](Result<Completion> r) { self->on_result(a, std::move(r)); });
  }

 private:
  void on_result(const std::shared_ptr<Attempt>& a, Result<Completion> r) {
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
    if (a->request.cancel) {
      // A cancel during the wait ends the request at once, not when the timer fires.
      a->cancel_id = a->request.cancel->on_cancel([self = shared_from_this(), a] {
        self->finish(a, cancelled("the request was cancelled while waiting to retry"));
      });
    }
    scheduler_->schedule(delay, [self = shared_from_this(), a] {
      if (a->request.cancel) a->request.cancel->remove(a->cancel_id);
      if (a->finished) return;
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

  void finish(const std::shared_ptr<Attempt>& a, Result<Completion> r) {
    if (a->finished.exchange(true)) return;
    a->on_done(std::move(r));
  }

  const std::shared_ptr<LlmProvider> inner_;
  const RetryOptions options_;
  const std::shared_ptr<Scheduler> scheduler_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

class RetryingProvider final : public LlmProvider {
 public:
  RetryingProvider(std::shared_ptr<LlmProvider> inner, RetryOptions options)
      : core_(std::make_shared<Core>(std::move(inner), std::move(options))) {}

  std::string_view name() const override { return core_->name(); }

  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    auto a = std::make_shared<Core::Attempt>();
    a->request = std::move(request);
    a->on_token = std::move(on_token);
    a->on_done = std::move(on_done);
    core_->start(a);
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
