// A real HTTP server on 127.0.0.1 and an ephemeral port, for tests that speak HTTP over loopback
// (the HTTP client now; mock LLM and Telegram servers build on it).
//
// Usage: construct, register handlers on http(), start(), point the code under test at url().
// Every connection gets its own thread, so any number of requests may wait in handlers at once;
// handlers that wait use wait_for(), which stop() interrupts, so that a test never hangs on a
// server whose client has gone.
//
// Constructing one makes the process ignore SIGPIPE: cpp-httplib writes without MSG_NOSIGNAL,
// and a client that hangs up mid-response must not kill the test run.
//
// Thread-safety: http() only before start(); everything else from any thread, including
// handlers.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace llmassist::testing {

class MockHttpServer {
 public:
  struct Options {
    // How long an idle kept-alive connection stays open. cpp-httplib's stop() waits for it.
    std::chrono::seconds keep_alive_timeout{2};
    // Requests served on one connection before the server closes it.
    std::size_t keep_alive_max_requests = 10000;
    // With both set (PEM files), the server speaks https (see support/tls_test_cert.h).
    std::string tls_cert_file;
    std::string tls_key_file;
  };

  MockHttpServer() : MockHttpServer(Options{}) {}
  explicit MockHttpServer(Options options);
  ~MockHttpServer();
  MockHttpServer(const MockHttpServer&) = delete;
  MockHttpServer& operator=(const MockHttpServer&) = delete;

  // The server, to register handlers on before start().
  [[nodiscard]] httplib::Server& http() { return *server_; }

  // Starts serving; returns once the server accepts connections.
  void start();
  // Stops serving: wakes every wait_for(), closes the listening socket and joins all threads.
  // Idempotent; the destructor calls it.
  void stop();

  [[nodiscard]] int port() const { return port_; }
  // "http://127.0.0.1:<port>" (https with TLS) followed by `path`.
  [[nodiscard]] std::string url(std::string_view path = "") const;

  // Connections accepted so far: with keep-alive, fewer than requests.
  [[nodiscard]] int connections_accepted() const { return connections_->load(); }

  // For handlers: sleeps for `duration` or until stop(), whichever is first. Returns true when
  // the full duration passed.
  bool wait_for(std::chrono::milliseconds duration);
  // For handlers and tests: waits until `predicate` holds or `timeout` passes; notify() wakes
  // it early. Returns the predicate's last value.
  template <typename Predicate>
  bool wait_until(Predicate predicate, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return wake_.wait_for(lock, timeout, [&] { return stopping_ || predicate(); }) && predicate();
  }
  // Wakes wait_until() callers to re-check their predicates.
  void notify();
  [[nodiscard]] bool stopping() const;

 private:
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of connections beyond that loses SYNs,
  // and the clients' retransmission backoff (1 s, 2 s, 4 s, ...) then looks like a hang. This
  // subclass reaches the listening socket to raise the backlog.
  template <typename Base>
  class Server final : public Base {
   public:
    using Base::Base;
    // Calling listen() again on a listening socket only changes its backlog (Linux).
    bool raise_backlog(int backlog) { return ::listen(this->svr_sock_.load(), backlog) == 0; }
  };

  std::unique_ptr<httplib::Server> server_;
  bool tls_ = false;
  std::shared_ptr<std::atomic<int>> connections_ = std::make_shared<std::atomic<int>>(0);
  int port_ = -1;
  std::thread listener_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;
};

}  // namespace llmassist::testing
