// CancelToken: lets the caller of an asynchronous operation (an LLM completion, an HTTP request,
// a send) withdraw it. The operation checks cancelled() at its own pace and may register a
// callback to react at once (an HTTP client aborts the transfer and frees the connection).
//
// Thread-safety: all methods may be called from any thread. A callback runs exactly once: on the
// thread that calls cancel(), or inline in on_cancel() when the token is already cancelled.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "llmassist/export.h"

namespace llmassist {

class LLMASSIST_API CancelToken final {
 public:
  // A fresh, uncancelled token. Tokens are shared: copy the shared_ptr, not the token.
  [[nodiscard]] static std::shared_ptr<CancelToken> create();

  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;
  ~CancelToken();

  void cancel();
  [[nodiscard]] bool cancelled() const noexcept;

  // Registers `callback` to run on cancellation; returns an id for remove(). Runs it at once,
  // inline, when the token is already cancelled (and then returns 0).
  std::uint64_t on_cancel(std::function<void()> callback);
  // Unregisters a callback that has not run yet. After remove() returns, the callback is not
  // running and will not run.
  void remove(std::uint64_t id);

 private:
  CancelToken();
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace llmassist
