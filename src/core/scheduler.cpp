#include "llmassist/scheduler.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace llmassist {
namespace {

class ThreadScheduler final : public Scheduler {
 public:
  ThreadScheduler() : state_(std::make_shared<State>()), thread_([s = state_] { run(*s); }) {}

  ~ThreadScheduler() override {
    {
      std::lock_guard lock(state_->mu);
      state_->stopping = true;
    }
    state_->wake.notify_all();
    if (thread_.get_id() == std::this_thread::get_id()) {
      // Destroyed by one of its own tasks: the thread owns the state too, so the loop can still
      // read it when the task returns; it sees `stopping` and ends.
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  void schedule(std::chrono::milliseconds delay, std::function<void()> task) override {
    bool sooner = false;
    {
      std::lock_guard lock(state_->mu);
      if (state_->stopping) return;
      const auto due = std::chrono::steady_clock::now() + delay;
      // The thread sleeps until the earliest task is due: it needs waking only when this one
      // is due before that (a burst of timers set for later costs it no wake-up each).
      sooner = state_->tasks.empty() || due < state_->tasks.top().due;
      state_->tasks.push({due, state_->next_seq++, std::move(task)});
    }
    if (sooner) state_->wake.notify_one();
  }

 private:
  struct Task {
    std::chrono::steady_clock::time_point due;
    std::uint64_t seq;  // keeps tasks due at the same time in the order they were scheduled
    std::function<void()> fn;
    bool operator>(const Task& other) const {
      return due != other.due ? due > other.due : seq > other.seq;
    }
  };

  // Shared by the scheduler and its thread, so that either may be the last to go.
  struct State {
    std::mutex mu;
    std::condition_variable wake;
    std::priority_queue<Task, std::vector<Task>, std::greater<>> tasks;
    std::uint64_t next_seq = 0;
    bool stopping = false;
  };

  static void run(State& s) {
    std::unique_lock lock(s.mu);
    while (!s.stopping) {
      if (s.tasks.empty()) {
        s.wake.wait(lock);
        continue;
      }
      const auto due = s.tasks.top().due;
      if (std::chrono::steady_clock::now() < due) {
        s.wake.wait_until(lock, due);
        continue;
      }
      auto fn = std::move(const_cast<Task&>(s.tasks.top()).fn);
      s.tasks.pop();
      lock.unlock();
      fn();
      fn = nullptr;  // what the task owned goes now, while the lock is free
      lock.lock();
    }
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace

std::shared_ptr<Scheduler> make_thread_scheduler() { return std::make_shared<ThreadScheduler>(); }

}  // namespace llmassist
