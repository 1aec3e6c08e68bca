// Internal: the requests a provider has accepted and not yet answered, so that destroying the
// provider can end each with kCancelled before its destructor returns (llm_provider.h).
//
// A provider makes one InFlightSet, opens an InFlightCall per request with start(), passes
// call->cancel() down as the request's token, and routes every token and the result through
// call->token() and call->done(). Its destructor calls close() first: every open call's token is
// cancelled (the work below winds down) and its on_done runs with kCancelled, on the destructor's
// thread, unless it ran already or is running on another thread (then close() waits for it to
// return). A token or result that comes later is dropped. close() never waits for an I/O thread to
// deliver anything, so it may run on one, or inside a callback of the same provider.
//
// Ownership: the calls hold the set; the HTTP callbacks, timers and wrapped requests hold the
// calls: none of them refers to the provider, which may be gone when they run.
//
// The set is a template of what a request gives back: InFlightSet is the one of completions
// (LlmProvider), EmbeddingInFlightSet the one of embeddings (EmbeddingProvider, whose calls
// stream nothing: their token callback is empty).
//
// Thread-safety: all methods may be called from any thread. The cost per request is one CancelToken
// and two insertions under one mutex; per token, one lock and unlock of it.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/embedding_provider.h"
#include "llmassist/llm_provider.h"

namespace llmassist::detail {

template <typename Value>
class BasicInFlightSet;

template <typename Value>
class BasicInFlightCall {
 public:
  using Done = std::function<void(Result<Value>)>;
  using Set = BasicInFlightSet<Value>;

  BasicInFlightCall(std::shared_ptr<Set> set, TokenCallback on_token, Done on_done)
      : set_(std::move(set)),
        on_token_(std::move(on_token)),
        on_done_(std::move(on_done)),
        cancel_(CancelToken::create()) {}
  inline ~BasicInFlightCall();
  BasicInFlightCall(const BasicInFlightCall&) = delete;
  BasicInFlightCall& operator=(const BasicInFlightCall&) = delete;

  // The token to pass down: cancelled with the caller's, and when the provider is destroyed.
  [[nodiscard]] const std::shared_ptr<CancelToken>& cancel() const { return cancel_; }
  // Whether the caller gave a token callback.
  [[nodiscard]] bool streams() const { return static_cast<bool>(on_token_); }
  // Whether on_done has been called (or is being called).
  [[nodiscard]] inline bool ended() const;

  // Gives `delta` to the caller's on_token unless the call has ended; false: stop the request.
  inline bool token(std::string_view delta);
  // Calls the caller's on_done with `result` unless it was called already; returns whether this
  // call made it.
  inline bool done(Result<Value> result);

 private:
  friend Set;

  const std::shared_ptr<Set> set_;
  const TokenCallback on_token_;
  Done on_done_;
  const std::shared_ptr<CancelToken> cancel_;
  std::shared_ptr<CancelToken> caller_cancel_;  // set by start() before the call is shared
  std::uint64_t caller_cancel_id_ = 0;          // likewise
  // Guarded by the set's mutex:
  bool ended_ = false;        // on_done was claimed
  bool in_set_ = false;       // in the set's calls_: from start() until on_done returned
  std::thread::id in_token_;  // the thread running on_token, if one does
  std::thread::id in_done_;   // the thread running on_done, if one does
};

template <typename Value>
class BasicInFlightSet : public std::enable_shared_from_this<BasicInFlightSet<Value>> {
 public:
  using Call = BasicInFlightCall<Value>;

  [[nodiscard]] static std::shared_ptr<BasicInFlightSet> create() {
    return std::shared_ptr<BasicInFlightSet>(new BasicInFlightSet());
  }

  // Opens a call for a request whose caller gave these callbacks and `caller_cancel` (may be
  // null). Null when the set is closed: then on_done has run with kCancelled, inline.
  std::shared_ptr<Call> start(TokenCallback on_token, typename Call::Done on_done,
                              const std::shared_ptr<CancelToken>& caller_cancel,
                              std::string_view provider) {
    auto call =
        std::make_shared<Call>(this->shared_from_this(), std::move(on_token), std::move(on_done));
    if (caller_cancel) {
      call->caller_cancel_ = caller_cancel;
      // Runs inline when the caller's token is cancelled already.
      call->caller_cancel_id_ =
          caller_cancel->on_cancel([token = std::weak_ptr<CancelToken>(call->cancel_)] {
            if (auto t = token.lock()) t->cancel();
          });
    }
    bool open = false;
    {
      std::lock_guard lock(mu_);
      open = !closed_;
      if (open) {
        calls_.emplace(call.get(), call);
        call->in_set_ = true;
      } else {
        call->ended_ = true;
      }
    }
    if (!open) {
      call->on_done_(cancelled(std::string(provider) + ": the provider was destroyed"));
      return nullptr;
    }
    return call;
  }

  // Ends every open call with kCancelled, and refuses new ones; returns when each on_done has run
  // (but one running on this thread: close() was called from inside it).
  void close(std::string_view provider) {
    std::vector<std::shared_ptr<Call>> open;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      for (auto& [raw, weak] : calls_) {
        // A call whose last owner lets go of it now leaves the set in its destructor.
        if (auto held = weak.lock()) open.push_back(std::move(held));
      }
    }
    for (auto& c : open) c->cancel_->cancel();
    const Status why = cancelled(std::string(provider) + ": the provider was destroyed");
    for (auto& c : open) c->done(why);
    const auto me = std::this_thread::get_id();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] {
      for (auto& c : open) {
        if (c->in_set_ && c->in_done_ != me) return false;
      }
      return true;
    });
  }

 private:
  friend Call;
  BasicInFlightSet() = default;

  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_: the open calls.
  std::unordered_map<Call*, std::weak_ptr<Call>> calls_;
  bool closed_ = false;  // guarded by mu_
};

template <typename Value>
BasicInFlightCall<Value>::~BasicInFlightCall() {
  if (caller_cancel_ && caller_cancel_id_ != 0) caller_cancel_->remove(caller_cancel_id_);
  // A request dropped without its on_done (against the contract of what ran it) leaves the set.
  std::lock_guard lock(set_->mu_);
  if (in_set_) {
    set_->calls_.erase(this);
    set_->cv_.notify_all();
  }
}

template <typename Value>
bool BasicInFlightCall<Value>::ended() const {
  std::lock_guard lock(set_->mu_);
  return ended_;
}

template <typename Value>
bool BasicInFlightCall<Value>::token(std::string_view delta) {
  const auto me = std::this_thread::get_id();
  {
    std::lock_guard lock(set_->mu_);
    if (ended_) return false;
    in_token_ = me;
  }
  const bool go_on = on_token_(delta);
  std::lock_guard lock(set_->mu_);
  in_token_ = {};
  set_->cv_.notify_all();
  return go_on && !ended_;
}

template <typename Value>
bool BasicInFlightCall<Value>::done(Result<Value> result) {
  const auto me = std::this_thread::get_id();
  {
    std::unique_lock lock(set_->mu_);
    if (ended_) return false;
    ended_ = true;
    // A token being delivered on another thread (close() racing the I/O thread) returns first;
    // one on this thread is below us on the stack (close() called from inside on_token).
    set_->cv_.wait(lock, [&] { return in_token_ == std::thread::id() || in_token_ == me; });
    in_done_ = me;
  }
  Done on_done = std::move(on_done_);
  on_done(std::move(result));
  // What the caller's callback holds goes before close() may return.
  on_done = nullptr;
  std::lock_guard lock(set_->mu_);
  in_done_ = {};
  if (in_set_) {
    in_set_ = false;
    set_->calls_.erase(this);
  }
  set_->cv_.notify_all();
  return true;
}

using InFlightCall = BasicInFlightCall<Completion>;
using InFlightSet = BasicInFlightSet<Completion>;
using EmbeddingInFlightSet = BasicInFlightSet<Embeddings>;

}  // namespace llmassist::detail
