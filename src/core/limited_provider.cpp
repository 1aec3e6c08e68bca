// The concurrency limit decorator: a FIFO queue in front of a provider.
#include "llmassist/core/limited_provider.h"

#include <fmt/format.h>

#include <list>
#include <mutex>
#include <optional>
#include <utility>

#include "core/in_flight.h"

namespace llmassist {
namespace {

using Steady = std::chrono::steady_clock;

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(std::shared_ptr<LlmProvider> inner, ConcurrencyLimitOptions options)
      : name_(inner->name()),
        tools_(inner->supports_tools()),
        inner_(std::move(inner)),
        options_(std::move(options)) {}

  std::string_view name() const { return name_; }
  bool supports_tools() const { return tools_; }

  // A request that waits for a free place. Guarded by mu_ once queued.
  struct Waiting {
    CompletionRequest request;
    TokenCallback on_token;
    CompletionCallback on_done;
    Steady::time_point since;
    std::shared_ptr<CancelToken> token;  // request.cancel, kept apart: the request is moved on
    std::uint64_t cancel_id = 0;         // guarded by mu_: its callback on `token`, or 0
    bool queued = false;
    std::list<std::shared_ptr<Waiting>>::iterator at;
  };

  void submit(CompletionRequest request, TokenCallback on_token, CompletionCallback on_done) {
    // Queued or passed on, the request ends through its call: close() ends it with kCancelled
    // even when the wrapped provider, shared with others, lives on.
    auto call = calls_->start(std::move(on_token), std::move(on_done), request.cancel, name_);
    if (!call) return;
    request.cancel = call->cancel();
    on_token = nullptr;
    if (call->streams()) on_token = [call](std::string_view delta) { return call->token(delta); };
    on_done = [call](Result<Completion> r) { call->done(std::move(r)); };
    auto w = std::make_shared<Waiting>();
    w->request = std::move(request);
    w->on_token = std::move(on_token);
    w->on_done = std::move(on_done);
    w->since = Steady::now();
    w->token = w->request.cancel;
    std::shared_ptr<Scheduler> timers;
    std::optional<Steady::time_point> deadline;
    {
      std::unique_lock lock(mu_);
      if (closed_) {
        lock.unlock();
        w->on_done(cancelled("the provider is shutting down"));
        return;
      }
      if (in_flight_ < options_.max_in_flight && queue_.empty()) {
        ++in_flight_;
        lock.unlock();
        pass_on(w);
        return;
      }
      w->queued = true;
      w->at = queue_.insert(queue_.end(), w);
      deadline = deadline_of(*w);
      if (deadline) {
        if (!options_.scheduler) options_.scheduler = make_thread_scheduler();
        timers = options_.scheduler;
      }
    }
    // From here on another thread may pass `w` on or withdraw it at any time.
    if (w->token) {
      // Runs inline when the token is cancelled already.
      const std::uint64_t id =
          w->token->on_cancel([self = shared_from_this(), weak = std::weak_ptr<Waiting>(w)] {
            if (auto waiting = weak.lock()) {
              self->withdraw(waiting, cancelled("the request was cancelled while queued"));
            }
          });
      bool still_queued = false;
      {
        std::lock_guard lock(mu_);
        still_queued = w->queued;
        if (still_queued) w->cancel_id = id;
      }
      if (!still_queued && id != 0) w->token->remove(id);
    }
    if (timers) {
      const auto delay = std::chrono::ceil<std::chrono::milliseconds>(*deadline - w->since);
      timers->schedule(delay, [weak_self = weak_from_this(), weak = std::weak_ptr<Waiting>(w)] {
        auto self = weak_self.lock();
        auto waiting = weak.lock();
        if (self && waiting) self->withdraw(waiting, self->queue_timeout(*waiting));
      });
    }
  }

  // Ends every request, queued or passed on, with kCancelled and lets go of the wrapped provider.
  void close() {
    calls_->close(name_);
    std::list<std::shared_ptr<Waiting>> left;
    std::shared_ptr<LlmProvider> inner;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      left.swap(queue_);
      for (auto& w : left) w->queued = false;
      inner.swap(inner_);
    }
    for (auto& w : left) end(*w, cancelled("the provider was destroyed"));
    // With the last owner gone, the provider cancels what it has in flight (its contract).
    inner.reset();
  }

 private:
  // When a queued request must have been passed on; none: it may wait for ever.
  std::optional<Steady::time_point> deadline_of(const Waiting& w) const {
    if (w.request.timeout.count() > 0) return w.since + w.request.timeout;
    if (options_.max_queue_wait.count() > 0) return w.since + options_.max_queue_wait;
    return std::nullopt;
  }

  Status queue_timeout(const Waiting& w) const {
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - w.since);
    return deadline_exceeded(fmt::format(
        "{}: the request waited {} ms for one of the {} places in flight, and its time ran out",
        name_, waited.count(), options_.max_in_flight));
  }

  // Takes `w` out of the queue, if it is still there, and ends it with `why`.
  void withdraw(const std::shared_ptr<Waiting>& w, Status why) {
    {
      std::lock_guard lock(mu_);
      if (!w->queued) return;
      w->queued = false;
      queue_.erase(w->at);
    }
    end(*w, std::move(why));
  }

  // Ends a request taken out of the queue, which no other thread can reach any more.
  void end(Waiting& w, Status why) {
    forget_cancel(w);
    w.on_done(std::move(why));
  }

  // Unregisters the request's cancel callback (from inside that callback, remove() returns at
  // once).
  void forget_cancel(Waiting& w) {
    std::uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      id = std::exchange(w.cancel_id, 0);
    }
    if (id != 0) w.token->remove(id);
  }

  // Hands a request that holds a place to the provider; its end frees the place.
  void pass_on(const std::shared_ptr<Waiting>& w) {
    std::shared_ptr<LlmProvider> inner;
    {
      std::lock_guard lock(mu_);
      inner = inner_;
    }
    forget_cancel(*w);
    if (!inner) {
      w->on_done(cancelled("the provider was destroyed"));
      release();
      return;
    }
    if (w->request.timeout.count() > 0) {
      const auto left = w->request.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 Steady::now() - w->since);
      if (left.count() <= 0) {
        w->on_done(queue_timeout(*w));
        release();
        return;
      }
      w->request.timeout = left;
    }
    inner->complete(
        std::move(w->request), std::move(w->on_token),
        [self = shared_from_this(), done = std::move(w->on_done)](Result<Completion> r) {
          done(std::move(r));
          self->release();
        });
  }

  // A request ended: its place goes to the next in the queue.
  void release() { dispatch_after(true); }

  // Passes on queued requests while there are places. One thread at a time does it: a provider
  // that answers inline (a knowledge base) ends a request inside pass_on(), and the loop that is
  // already running takes the freed place instead of a recursion as deep as the queue.
  void dispatch_after(bool ended) {
    std::unique_lock lock(mu_);
    if (ended) --in_flight_;
    if (dispatching_) return;
    dispatching_ = true;
    while (!closed_ && in_flight_ < options_.max_in_flight && !queue_.empty()) {
      auto w = std::move(queue_.front());
      queue_.pop_front();
      w->queued = false;
      ++in_flight_;
      lock.unlock();
      pass_on(w);
      lock.lock();
    }
    dispatching_ = false;
  }

  const std::string name_;

  const bool tools_;  // the wrapped provider's supports_tools()
  std::mutex mu_;
  std::shared_ptr<LlmProvider> inner_;         // guarded by mu_; reset by close()
  ConcurrencyLimitOptions options_;            // scheduler guarded by mu_ (made on first need)
  std::list<std::shared_ptr<Waiting>> queue_;  // guarded by mu_
  int in_flight_ = 0;                          // guarded by mu_
  bool dispatching_ = false;                   // guarded by mu_
  bool closed_ = false;                        // guarded by mu_
  // Every request accepted and not yet ended, queued or passed on.
  const std::shared_ptr<detail::InFlightSet> calls_ = detail::InFlightSet::create();
};

class LimitedProvider final : public LlmProvider {
 public:
  LimitedProvider(std::shared_ptr<LlmProvider> inner, ConcurrencyLimitOptions options)
      : core_(std::make_shared<Core>(std::move(inner), std::move(options))) {}
  ~LimitedProvider() override { core_->close(); }

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

Result<std::unique_ptr<LlmProvider>> make_concurrency_limited_provider(
    std::shared_ptr<LlmProvider> provider, ConcurrencyLimitOptions options) {
  if (!provider) return invalid_argument("a concurrency limit needs a provider to wrap");
  if (options.max_in_flight < 1) {
    return invalid_argument(
        fmt::format("max_in_flight must be at least 1, not {}", options.max_in_flight));
  }
  if (options.max_queue_wait.count() < 0) {
    return invalid_argument("max_queue_wait must not be negative");
  }
  return std::unique_ptr<LlmProvider>(
      std::make_unique<LimitedProvider>(std::move(provider), std::move(options)));
}

}  // namespace llmassist
