#include "llmassist/scheduler.h"

#include <condition_variable>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace llmassist {
namespace {

class ThreadScheduler final : public Scheduler {
 public:
  ThreadScheduler() : thread_([this] { run(); }) {}

  ~ThreadScheduler() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // destroyed by its own last task: the loop sees stopping_ and ends
    } else {
      thread_.join();
    }
  }

  void schedule(std::chrono::milliseconds delay, std::function<void()> task) override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      tasks_.push({std::chrono::steady_clock::now() + delay, next_seq_++, std::move(task)});
    }
    wake_.notify_all();
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

  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (tasks_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto due = tasks_.top().due;
      if (std::chrono::steady_clock::now() < due) {
        wake_.wait_until(lock, due);
        continue;
      }
      auto fn = std::move(const_cast<Task&>(tasks_.top()).fn);
      tasks_.pop();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::priority_queue<Task, std::vector<Task>, std::greater<>> tasks_;
  std::uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

std::shared_ptr<Scheduler> make_thread_scheduler() { return std::make_shared<ThreadScheduler>(); }

}  // namespace llmassist
