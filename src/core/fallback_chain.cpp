// FallbackChain: the request walks the providers in order; per-provider health lives here.
#include "llmassist/fallback_chain.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>

#include "core/in_flight.h"

namespace llmassist {

std::string_view to_string(FailureClass c) noexcept {
  switch (c) {
    case FailureClass::kUnavailable:
      return "unavailable";
    case FailureClass::kTimeout:
      return "timeout";
    case FailureClass::kRateLimited:
      return "rate_limited";
    case FailureClass::kQuota:
      return "quota";
    case FailureClass::kAuth:
      return "auth";
    case FailureClass::kContext:
      return "context";
    case FailureClass::kMalformed:
      return "malformed";
    case FailureClass::kNoAnswer:
      return "no_answer";
    case FailureClass::kCancelled:
      return "cancelled";
    case FailureClass::kOther:
      return "other";
  }
  return "other";
}

FailureClass classify_failure(const Status& s) noexcept {
  switch (s.code()) {
    case StatusCode::kUnavailable:
      return FailureClass::kUnavailable;
    case StatusCode::kDeadlineExceeded:
      return FailureClass::kTimeout;
    case StatusCode::kResourceExhausted:
      return s.reason() == "insufficient_quota" ? FailureClass::kQuota : FailureClass::kRateLimited;
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied:
      return FailureClass::kAuth;
    case StatusCode::kOutOfRange:
      return FailureClass::kContext;
    case StatusCode::kInvalidArgument:
      return s.reason() == "context_length_exceeded" ? FailureClass::kContext
                                                     : FailureClass::kMalformed;
    case StatusCode::kNotFound:
      return s.reason() == "no_answer" ? FailureClass::kNoAnswer : FailureClass::kOther;
    case StatusCode::kCancelled:
      return FailureClass::kCancelled;
    default:
      return FailureClass::kOther;
  }
}

namespace {

// "primary (unavailable): HTTP 500: ..." — the provider's own prefix of its message dropped.
std::string describe(std::string_view name, const Status& failure) {
  std::string_view message = failure.message();
  if (message.size() > name.size() + 2 && message.substr(0, name.size()) == name &&
      message.substr(name.size(), 2) == ": ") {
    message.remove_prefix(name.size() + 2);
  }
  return fmt::format("{} ({}): {}", name, to_string(failure.code()), message);
}

// Failures that say nothing about the provider's health.
bool counts_against_health(FailureClass c) {
  return c != FailureClass::kContext && c != FailureClass::kNoAnswer &&
         c != FailureClass::kCancelled;
}

// The chain's state and logic, shared with the completion callbacks so that a request in flight
// never touches a destroyed chain. The providers are held here only: close() lets go of them, so
// that destroying the chain destroys those it owns alone.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(std::vector<std::shared_ptr<LlmProvider>> providers, FallbackChainOptions options)
      : options_(std::move(options)),
        clock_(options_.clock ? options_.clock : system_clock()),
        logger_(options_.logger ? options_.logger : stderr_logger()),
        providers_(std::move(providers)),
        count_(providers_.size()),
        health_(providers_.size()) {
    for (std::size_t i = 0; i < providers_.size(); ++i) {
      names_.emplace_back(providers_[i]->name());
      takes_tools_.push_back(providers_[i]->supports_tools());
      health_[i].stats.name = names_.back();
    }
  }

  const std::string& name() const { return options_.name; }
  bool supports_tools() const {
    return std::find(takes_tools_.begin(), takes_tools_.end(), true) != takes_tools_.end();
  }

  void complete(CompletionRequest request, TokenCallback on_token, CompletionCallback on_done) {
    auto call =
        in_flight_->start(std::move(on_token), std::move(on_done), request.cancel, options_.name);
    if (!call) return;
    auto attempt = std::make_shared<Attempt>();
    attempt->request = std::move(request);
    attempt->request.cancel = call->cancel();
    attempt->call = std::move(call);
    attempt->started = std::chrono::steady_clock::now();
    next(attempt, 0);
  }

  // Ends every request in flight with kCancelled, then lets go of the providers.
  void close() {
    in_flight_->close(options_.name);
    std::vector<std::shared_ptr<LlmProvider>> providers;
    {
      std::lock_guard lock(mu_);
      providers.swap(providers_);
    }
    providers.clear();
  }

  std::vector<ProviderStats> provider_stats() const {
    std::lock_guard lock(mu_);
    std::vector<ProviderStats> out;
    const Timestamp now = clock_->now();
    for (const auto& h : health_) {
      ProviderStats s = h.stats;
      const Timestamp until = std::max(h.open_until, h.keep_out_until);
      s.circuit_open = h.open_until > now || h.probing;
      if (until > now) s.unavailable_until = until;
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  struct Health {
    ProviderStats stats;
    Timestamp open_until{};        // circuit open until then
    Timestamp keep_out_until{};    // Retry-After until then
    bool breaker_tripped = false;  // the circuit has opened and not closed since
    bool probing = false;          // a half-open probe is in flight
  };
  struct Attempt {
    CompletionRequest request;  // its cancel: the call's token
    std::shared_ptr<detail::InFlightCall> call;
    std::chrono::steady_clock::time_point started;
    std::vector<std::string> errors;
    std::vector<FailureClass> classes;
    int tried = 0;
    std::atomic<bool> streamed{false};
  };

  enum class Gate { kGo, kProbe, kSkip };

  // Whether provider i may take a request now; describes why not in `why`.
  Gate gate(std::size_t i, std::string& why) {
    std::lock_guard lock(mu_);
    Health& h = health_[i];
    const Timestamp now = clock_->now();
    auto remaining = [&](Timestamp until) {
      return std::chrono::duration_cast<std::chrono::seconds>(until - now).count() + 1;
    };
    if (h.keep_out_until > now) {
      ++h.stats.skipped;
      why = fmt::format("skipped: asked to retry after {} s more", remaining(h.keep_out_until));
      return Gate::kSkip;
    }
    if (h.breaker_tripped) {
      if (h.open_until > now || h.probing) {
        ++h.stats.skipped;
        why = h.probing
                  ? "skipped: circuit open, a probe is in flight"
                  : fmt::format("skipped: circuit open for {} s more", remaining(h.open_until));
        return Gate::kSkip;
      }
      h.probing = true;
      return Gate::kProbe;
    }
    return Gate::kGo;
  }

  void next(const std::shared_ptr<Attempt>& attempt, std::size_t index) {
    for (; index < count_; ++index) {
      if (attempt->request.cancel->cancelled()) {
        finish_failed(attempt, cancelled("the request was cancelled"));
        return;
      }
      // A request with tools passes by a provider that cannot take them: not a failure, and not
      // counted in its statistics.
      if (!attempt->request.tools.empty() && !takes_tools_[index]) {
        attempt->errors.push_back(
            fmt::format("{}: skipped: it does not take tools", names_[index]));
        attempt->classes.push_back(FailureClass::kOther);
        continue;
      }
      std::string why;
      const Gate g = gate(index, why);
      if (g == Gate::kSkip) {
        attempt->errors.push_back(fmt::format("{}: {}", names_[index], why));
        continue;
      }
      run(attempt, index);
      return;
    }
    finish_all_failed(attempt);
  }

  void run(const std::shared_ptr<Attempt>& attempt, std::size_t index) {
    ++attempt->tried;
    std::shared_ptr<LlmProvider> provider;
    {
      std::lock_guard lock(mu_);
      ++health_[index].stats.attempts;
      if (index < providers_.size()) provider = providers_[index];
    }
    if (!provider) {  // closed
      finish_failed(attempt, cancelled(options_.name + ": the chain was destroyed"));
      return;
    }
    TokenCallback forward;
    if (attempt->call->streams()) {
      forward = [attempt](std::string_view delta) {
        attempt->streamed = true;
        return attempt->call->token(delta);
      };
    }
    const auto provider_start = std::chrono::steady_clock::now();
    // The callback may run inline, or after the chain is gone: it keeps the core alive.
    provider->complete(
        attempt->request, std::move(forward),
        [self = shared_from_this(), attempt, index, provider_start](Result<Completion> result) {
          self->on_result(attempt, index, provider_start, std::move(result));
        });
  }

  void on_result(const std::shared_ptr<Attempt>& attempt, std::size_t index,
                 std::chrono::steady_clock::time_point provider_start, Result<Completion> result) {
    {
      const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - provider_start);
      if (result.ok()) {
        record_success(index, latency);
        result->providers_tried = attempt->tried;
        if (result->provider.empty()) result->provider = names_[index];
        result->latency = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - attempt->started);
        attempt->call->done(std::move(result));
        return;
      }
      const Status failure = result.status();
      const FailureClass cls = classify_failure(failure);
      record_failure(index, failure, cls);
      const std::string_view name = names_[index];
      attempt->errors.push_back(describe(name, failure));
      attempt->classes.push_back(cls);
      if (cls == FailureClass::kCancelled) {
        finish_failed(attempt, failure);
        return;
      }
      if (attempt->streamed) {
        finish_failed(attempt, Status(failure.code(),
                                      fmt::format("{}: the stream broke after the answer began: {}",
                                                  name, failure.message()))
                                   .with_reason("stream_broken"));
        return;
      }
      if (attempt->call->ended()) return;  // ended by close()
      if (index + 1 < count_) {
        logger_->log(LogLevel::kWarning, "llm.fallback",
                     fmt::format("{} failed ({}), trying {}: {}", name, to_string(cls),
                                 names_[index + 1], failure.message()));
      }
      next(attempt, index + 1);
    }
  }

  void record_success(std::size_t index, std::chrono::milliseconds latency) {
    std::lock_guard lock(mu_);
    Health& h = health_[index];
    ++h.stats.successes;
    h.stats.consecutive_failures = 0;
    h.stats.total_latency += latency;
    h.stats.last_latency = latency;
    if (h.breaker_tripped) {
      logger_->log(LogLevel::kInfo, "llm.fallback",
                   fmt::format("{} answered again: circuit closed", h.stats.name));
    }
    h.breaker_tripped = false;
    h.probing = false;
    h.open_until = {};
  }

  void record_failure(std::size_t index, const Status& failure, FailureClass cls) {
    std::lock_guard lock(mu_);
    Health& h = health_[index];
    const Timestamp now = clock_->now();
    ++h.stats.failures[static_cast<std::size_t>(cls)];
    h.stats.last_error = failure.to_string();
    const bool was_probe = h.probing;
    h.probing = false;
    if (cls == FailureClass::kAuth) {
      logger_->log(LogLevel::kError, "llm.fallback",
                   fmt::format("{} refused its credentials ({}): check the provider's API key",
                               h.stats.name, failure.message()));
    }
    if (failure.retry_after() &&
        (cls == FailureClass::kRateLimited || cls == FailureClass::kUnavailable)) {
      h.keep_out_until = now + std::min(*failure.retry_after(), options_.max_keep_out);
    }
    if (!counts_against_health(cls)) {
      if (was_probe) h.open_until = now + options_.cooldown;  // no verdict: wait another round
      return;
    }
    ++h.stats.consecutive_failures;
    const bool trip = was_probe || cls == FailureClass::kQuota ||
                      h.stats.consecutive_failures >= options_.failure_threshold;
    if (trip) {
      h.breaker_tripped = true;
      h.open_until = now + options_.cooldown;
      logger_->log(
          LogLevel::kWarning, "llm.fallback",
          fmt::format("{}: circuit open for {} ms after {} failure(s) in a row ({})", h.stats.name,
                      options_.cooldown.count(), h.stats.consecutive_failures, to_string(cls)));
    }
  }

  void finish_failed(const std::shared_ptr<Attempt>& attempt, Status status) {
    attempt->call->done(std::move(status));
  }

  void finish_all_failed(const std::shared_ptr<Attempt>& attempt) {
    std::string list;
    for (const auto& e : attempt->errors) list += (list.empty() ? "" : "; ") + e;
    if (!attempt->request.tools.empty() && !supports_tools()) {
      finish_failed(attempt,
                    Status(StatusCode::kFailedPrecondition,
                           fmt::format("no provider of {} takes tools: {}", options_.name, list))
                        .with_reason("no_tool_provider"));
      return;
    }
    const bool all_no_answer =
        !attempt->classes.empty() && attempt->classes.size() == attempt->errors.size() &&
        std::all_of(attempt->classes.begin(), attempt->classes.end(),
                    [](FailureClass c) { return c == FailureClass::kNoAnswer; });
    if (all_no_answer) {
      finish_failed(
          attempt,
          not_found(fmt::format("no provider had an answer: {}", list)).with_reason("no_answer"));
      return;
    }
    finish_failed(attempt, unavailable(fmt::format("all {} providers failed: {}", count_, list))
                               .with_reason("all_providers_failed"));
  }

  const FallbackChainOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<Logger> logger_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<LlmProvider>> providers_;  // guarded by mu_; emptied by close()
  const std::size_t count_;                              // how many providers the chain has
  std::vector<std::string> names_;                       // theirs, in order; set in construction
  std::vector<bool> takes_tools_;                        // their supports_tools(), in order
  std::vector<Health> health_;                           // guarded by mu_
  const std::shared_ptr<detail::InFlightSet> in_flight_ = detail::InFlightSet::create();
};

class Chain final : public FallbackChain {
 public:
  Chain(std::vector<std::shared_ptr<LlmProvider>> providers, FallbackChainOptions options)
      : core_(std::make_shared<Core>(std::move(providers), std::move(options))) {}
  ~Chain() override { core_->close(); }
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  std::string_view name() const override { return core_->name(); }
  bool supports_tools() const override { return core_->supports_tools(); }
  void complete(CompletionRequest request, TokenCallback on_token,
                CompletionCallback on_done) override {
    core_->complete(std::move(request), std::move(on_token), std::move(on_done));
  }
  std::vector<ProviderStats> provider_stats() const override { return core_->provider_stats(); }

 private:
  const std::shared_ptr<Core> core_;
};

}  // namespace

Result<std::unique_ptr<FallbackChain>> make_fallback_chain(
    std::vector<std::shared_ptr<LlmProvider>> providers, FallbackChainOptions options) {
  if (providers.empty()) return invalid_argument("a fallback chain needs at least one provider");
  std::set<std::string, std::less<>> names;
  for (const auto& p : providers) {
    if (!p) return invalid_argument("a fallback chain was given a null provider");
    if (!names.insert(std::string(p->name())).second) {
      return invalid_argument(fmt::format("two providers are named \"{}\"", p->name()));
    }
  }
  if (options.failure_threshold < 1) {
    return invalid_argument("failure_threshold must be at least 1");
  }
  return std::unique_ptr<FallbackChain>(new Chain(std::move(providers), std::move(options)));
}

}  // namespace llmassist
