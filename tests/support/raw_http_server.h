// A TCP server on 127.0.0.1 and an ephemeral port whose every connection is scripted byte by
// byte, for tests of an HTTP client's wire behaviour: chunk framing, interim replies, a server
// that closes at the wrong moment, malformed replies, proxies.
//
// Usage: construct, start(handler), point the client at url(). Each accepted connection runs
// `handler` on a thread of its own with a RawConnection: read_request() reads the next request,
// write() sends raw bytes, close() hangs up; returning from the handler closes the connection.
// Every wait is bounded and every wait ends when stop() is called, so a test never hangs on a
// client that misbehaves: stop() wakes all waits, shuts every socket down and joins every
// thread.
//
// Writes use MSG_NOSIGNAL: a client that hangs up mid-response does not raise SIGPIPE.
//
// Thread-safety: start() once, from the test's thread; everything else from any thread,
// including handlers. A RawConnection belongs to its handler's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "llmassist/http_client.h"

namespace llmassist::testing {

// One request as read off the wire.
struct RawRequest {
  // Which connection it came on: 0 for the first one the server accepted, and so on.
  int connection = -1;
  std::string method;
  // The request target as sent: "/path?query", an absolute URL (to a proxy), "host:port"
  // (CONNECT).
  std::string target;
  std::string version;  // "HTTP/1.1"
  // In the order received, names as spelled.
  HttpHeaders headers;
  // Exactly Content-Length bytes (chunked request bodies are not decoded).
  std::string body;
  // The request line and headers as received, through the empty line.
  std::string head;

  // The first header named `name` (case-insensitive).
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
  // How many headers are named `name` (case-insensitive).
  [[nodiscard]] int count_headers(std::string_view name) const noexcept;
};

class RawHttpServer;

// The server's side of one accepted connection. Every wait ends early when the server stops.
// A whole "200 OK" response with a JSON body and its Content-Length.
inline std::string json_response(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

class RawConnection {
 public:
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  ~RawConnection();

  // 0 for the first connection the server accepted, and so on.
  [[nodiscard]] int index() const { return index_; }

  // Reads the next request: its head, then as many body bytes as its Content-Length says.
  // Empty when the client closed the connection, sent something that is not a request,
  // `timeout` passed, or the server is stopping. The request is also recorded by the server.
  std::optional<RawRequest> read_request(
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Sends all of `bytes`. False when the client is gone, 5 s passed, or the server stops.
  bool write(std::string_view bytes);
  // Sends `bytes` in pieces of `piece` bytes with `pause` between them (the socket has
  // TCP_NODELAY), so that the client receives them in separate reads.
  bool write_in_pieces(std::string_view bytes, std::size_t piece,
                       std::chrono::milliseconds pause = std::chrono::milliseconds(1));
  // Waits until the client closes its side of the connection (true), or `timeout` passes or
  // the server stops (false). Bytes arriving meanwhile are kept for read_request().
  bool wait_for_client_close(std::chrono::milliseconds timeout);
  // Sleeps for `duration` or until the server stops; true when the full duration passed.
  bool sleep(std::chrono::milliseconds duration);
  // Closes the connection now (a FIN; with unread bytes pending, the kernel sends a reset).
  // Idempotent.
  void close();
  // For a proxy's CONNECT tunnel: connects to 127.0.0.1:`port` and copies bytes both ways
  // (starting with any bytes already received and not yet read) until either side closes or
  // the server stops. False when the connection to `port` cannot be made.
  bool relay_to(int port);

 private:
  friend class RawHttpServer;
  RawConnection(RawHttpServer& server, int fd, int index);

  // Waits for more bytes into buffer_ until `deadline`; false on end of stream, error,
  // timeout or stop.
  bool fill(std::chrono::steady_clock::time_point deadline);

  RawHttpServer& server_;
  int fd_;  // written under server_.mu_ (close() and stop() race otherwise)
  const int index_;
  std::string buffer_;  // received, not yet consumed
  bool eof_ = false;
};

class RawHttpServer {
 public:
  using Handler = std::function<void(RawConnection&)>;

  // Binds and listens; throws std::runtime_error when it cannot.
  RawHttpServer();
  ~RawHttpServer();
  RawHttpServer(const RawHttpServer&) = delete;
  RawHttpServer& operator=(const RawHttpServer&) = delete;

  // Starts accepting connections, each handled by `handler` on a thread of its own.
  void start(Handler handler);
  // Wakes every wait, shuts every connection down, closes the listening socket and joins all
  // threads. Idempotent; the destructor calls it.
  void stop();

  [[nodiscard]] int port() const { return port_; }
  // "127.0.0.1:<port>".
  [[nodiscard]] std::string authority() const;
  // "http://127.0.0.1:<port>" followed by `path`.
  [[nodiscard]] std::string url(std::string_view path = "") const;

  [[nodiscard]] int connections_accepted() const { return connections_.load(); }
  // Every request read by a handler so far, in the order read.
  [[nodiscard]] std::vector<RawRequest> requests() const;

  // Waits until `predicate` holds or `timeout` passes; notify() (and every recorded request)
  // wakes it early. Returns the predicate's last value.
  template <typename Predicate>
  bool wait_until(Predicate predicate, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return wake_.wait_for(lock, timeout, [&] { return stopping_ || predicate(); }) && predicate();
  }
  void notify();
  [[nodiscard]] bool stopping() const;

 private:
  friend class RawConnection;

  struct Worker {
    std::unique_ptr<RawConnection> connection;
    std::thread thread;
  };

  void accept_loop();
  void record(const RawRequest& request);
  // Waits until `fd` is ready for `events` (POLLIN or POLLOUT), `deadline` passes or the
  // server stops. True when ready.
  bool wait_ready(int fd, short events, std::chrono::steady_clock::time_point deadline) const;

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd, made readable once by stop(): every poll includes it
  int port_ = -1;
  Handler handler_;
  std::thread acceptor_;
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;             // guarded by mu_
  std::list<Worker> workers_;         // guarded by mu_
  std::vector<RawRequest> requests_;  // guarded by mu_
};

}  // namespace llmassist::testing
