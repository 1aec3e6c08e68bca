// A load balancer in front of several webhook servers, delivering Telegram updates the way
// Telegram does to a bot behind one: each update is POSTed (with the secret in
// X-Telegram-Bot-Api-Secret-Token) to one backend, taken in turn (round robin); when that
// backend is down (no connection), answers anything but 200, or does not answer within the
// timeout, the update goes to the next, and around again with a short pause after each full
// round, until one answers 200. So an update a backend refused (503) or lost with its process
// is delivered again, possibly to another backend, and an update may reach the bots more than
// once (a backend killed after storing it but before answering): the bots' dedup on the update
// id is what makes that harmless.
//
// Updates of one chat are delivered one after another (the next only once the previous got its
// 200), as Telegram does; different chats in parallel, on `threads` threads.
//
// Test support (like the mock servers): a small HTTP client over cpp-httplib.
//
// Thread-safety: every method from any thread; the destructor stops the threads (updates not
// delivered by then are dropped).
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace llmassist::testing {

class WebhookBalancer {
 public:
  struct Options {
    // The backends' webhook URLs ("http://127.0.0.1:PORT/path"); at least one.
    std::vector<std::string> backends;
    // Sent with every update; empty: no header.
    std::string secret;
    // Deliveries at once (each to one chat). Default 8.
    int threads = 8;
    // A backend that has not answered within this is taken as down for that update. Default 10 s.
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};
    // After every backend refused an update, before trying them again. Default 20 ms.
    std::chrono::milliseconds pause{20};
  };

  explicit WebhookBalancer(Options options);
  ~WebhookBalancer();
  WebhookBalancer(const WebhookBalancer&) = delete;
  WebhookBalancer& operator=(const WebhookBalancer&) = delete;

  // Queues an update (its JSON text) of `chat`, after the chat's earlier ones.
  void deliver(std::int64_t chat, std::string update);
  // Queues many at once, each after its chat's earlier ones.
  void deliver(std::vector<std::pair<std::int64_t, std::string>> updates);

  // Waits until every queued update got its 200 (or `timeout`); whether they all did.
  bool wait_idle(std::chrono::milliseconds timeout);

  // Updates answered 200, in all and by each backend (in the order of Options::backends).
  [[nodiscard]] std::size_t delivered() const;
  [[nodiscard]] std::vector<std::size_t> delivered_by_backend() const;
  // Attempts that did not get a 200 (no connection, another status, a timeout), each followed by
  // an attempt at the next backend.
  [[nodiscard]] std::size_t failovers() const;

 private:
  struct Backend {
    std::string host;
    int port = 0;
    std::string path;
  };
  using Clients = std::vector<std::unique_ptr<httplib::Client>>;  // by backend
  void run();
  // Posts `update` until a backend answers 200; false when stopping first.
  bool post_until_delivered(Clients& clients, const std::string& update);
  // Whether `b` answered 200; a client whose connection failed is dropped.
  bool post_once(std::unique_ptr<httplib::Client>& client, const Backend& b,
                 const std::string& update);

  const Options options_;
  std::vector<Backend> backends_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;                        // ready_ grew, or stopping_
  std::condition_variable idle_cv_;                        // queued_ fell to 0
  std::map<std::int64_t, std::deque<std::string>> chats_;  // queued updates, by chat
  std::deque<std::int64_t> ready_;  // chats with queued updates and none being delivered
  std::size_t queued_ = 0;          // updates queued or being delivered
  std::size_t next_backend_ = 0;    // round robin
  std::vector<std::size_t> delivered_;
  std::size_t failovers_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace llmassist::testing
