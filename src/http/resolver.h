// Name resolution for the HTTP client. getaddrinfo() blocks, so names are looked up on a helper
// thread, one at a time; numeric hosts need no lookup at all.
//
// Thread-safety: Resolver's methods may be called from any thread.
#pragma once

#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace llmassist::detail {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

// A numeric host's address (IPv4 or IPv6, without brackets), without a lookup; nullopt for a
// name.
[[nodiscard]] std::optional<Address> numeric_address(const std::string& host, int port);

struct Resolved {
  std::string key;  // "host:port", as asked
  std::vector<Address> addresses;
  std::string error;  // when addresses is empty
};

// The helper thread holds the resolver too and may outlive the client that made it (a lookup
// cannot be interrupted): the client only stops listening. Answers come back through
// ready_fd(), an eventfd for the client's epoll.
class Resolver {
 public:
  // Throws std::system_error when the eventfd cannot be made.
  Resolver();
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  [[nodiscard]] int ready_fd() const { return ready_fd_; }

  // Queues a lookup of host:port; starts the thread on the first.
  static void lookup(const std::shared_ptr<Resolver>& self, std::string host, int port);
  // The answers that arrived, and ready_fd() read.
  [[nodiscard]] std::vector<Resolved> take_answers();
  // Drops queued lookups; the thread ends after the one under way.
  void stop();

 private:
  void run();

  const int ready_fd_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::pair<std::string, int>> jobs_;  // guarded by mu_
  std::vector<Resolved> answers_;                 // guarded by mu_
  bool started_ = false;                          // guarded by mu_
  bool stopping_ = false;                         // guarded by mu_
};

}  // namespace llmassist::detail
