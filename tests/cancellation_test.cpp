#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "llmassist/cancellation.h"

using namespace llmassist;

TEST_CASE("cancel token: callbacks run once on cancel, late registrations run inline") {
  auto token = CancelToken::create();
  int a = 0;
  int b = 0;
  token->on_cancel([&] { ++a; });
  const auto id_b = token->on_cancel([&] { ++b; });
  token->remove(id_b);
  CHECK_FALSE(token->cancelled());
  token->cancel();
  token->cancel();
  CHECK(token->cancelled());
  CHECK(a == 1);
  CHECK(b == 0);
  int late = 0;
  CHECK(token->on_cancel([&] { ++late; }) == 0);
  CHECK(late == 1);
}

TEST_CASE("cancel token: remove() waits for a callback running on another thread") {
  auto token = CancelToken::create();
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  const auto id = token->on_cancel([&] {
    started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    finished = true;
  });
  std::thread canceller([&] { token->cancel(); });
  while (!started) std::this_thread::yield();
  token->remove(id);
  CHECK(finished.load());
  canceller.join();
}

TEST_CASE("cancel token: a callback may remove itself without deadlock") {
  auto token = CancelToken::create();
  std::uint64_t id = 0;
  bool ran = false;
  id = token->on_cancel([&] {
    token->remove(id);
    ran = true;
  });
  token->cancel();
  CHECK(ran);
}
