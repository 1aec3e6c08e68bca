#include "llmassist/cancellation.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace llmassist {

struct CancelToken::State {
  std::mutex mu;
  std::condition_variable idle;
  std::atomic<bool> cancelled{false};
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, std::function<void()>> callbacks;
  // While cancel() runs callbacks: which one, and on which thread, so that remove() can wait
  // for it (unless remove() is called from inside that very callback).
  std::uint64_t running = 0;
  std::thread::id running_thread;
};

CancelToken::CancelToken() : state_(std::make_unique<State>()) {}
CancelToken::~CancelToken() = default;

std::shared_ptr<CancelToken> CancelToken::create() {
  return std::shared_ptr<CancelToken>(new CancelToken());
}

void CancelToken::cancel() {
  std::unique_lock lock(state_->mu);
  if (state_->cancelled.exchange(true)) return;
  while (!state_->callbacks.empty()) {
    auto node = state_->callbacks.extract(state_->callbacks.begin());
    state_->running = node.key();
    state_->running_thread = std::this_thread::get_id();
    lock.unlock();
    node.mapped()();
    lock.lock();
    state_->running = 0;
    state_->idle.notify_all();
  }
}

bool CancelToken::cancelled() const noexcept { return state_->cancelled.load(); }

std::uint64_t CancelToken::on_cancel(std::function<void()> callback) {
  {
    std::lock_guard lock(state_->mu);
    if (!state_->cancelled.load()) {
      const std::uint64_t id = state_->next_id++;
      state_->callbacks.emplace(id, std::move(callback));
      return id;
    }
  }
  callback();
  return 0;
}

void CancelToken::remove(std::uint64_t id) {
  std::unique_lock lock(state_->mu);
  state_->callbacks.erase(id);
  if (state_->running_thread == std::this_thread::get_id()) return;
  state_->idle.wait(lock, [&] { return state_->running != id; });
}

}  // namespace llmassist
