// Internal: waits for an asynchronous call that reports exactly once through a callback of
// Result<T>. The synchronous wrappers of the asynchronous interfaces share it.
#pragma once

#include <future>
#include <memory>
#include <utility>

#include "llmassist/status.h"

namespace llmassist::detail {

// Calls `start` with a callback and blocks until the callback has run; returns what it got.
// The promise is held by a shared_ptr because the callbacks are std::functions, which must be
// copyable. Must not be called on the thread that would run the callback.
template <typename T, typename Start>
Result<T> await_result(Start&& start) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  std::forward<Start>(start)(
      [promise](Result<T> outcome) { promise->set_value(std::move(outcome)); });
  return future.get();
}

}  // namespace llmassist::detail
