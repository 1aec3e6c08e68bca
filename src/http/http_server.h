// Internal: a small HTTP/1.1 server for the library's own endpoints (the admin page and its API,
// the Telegram webhook). Blocking sockets, one thread that accepts and a fixed pool of worker
// threads, each serving one connection at a time (its kept-alive requests in turn), so a
// handler may block (an event stream waits for events) without stopping the others.
//
// What it speaks: HTTP/1.1 and 1.0 requests with a Content-Length or chunked body (and
// "Expect: 100-continue"); responses with a length, or chunked from a content provider. It
// refuses what it will not read with a status and closes the connection: a head over
// max_header_bytes (431), a body over max_body_bytes (413), a malformed request (400), a
// transfer coding other than chunked (501). A client that sends nothing for read_timeout, in
// the middle of a request or between kept-alive requests, is disconnected, and so is one whose
// request takes longer than request_timeout to arrive.
//
// Thread-safety: routes and handlers are set before start(); start() and stop() from one
// thread; handlers run on the worker threads, several at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist::detail::http {

struct Request {
  std::string method;
  // The path, percent-decoded, without the query.
  std::string path;
  // Header fields in the order received.
  HttpHeaders headers;
  // The query's parameters, decoded ('+' as a space), in order.
  std::vector<std::pair<std::string, std::string>> params;
  std::string body;
  // The client's address, as text.
  std::string remote_addr;
  // The route's pattern matched against `path`: [0] the whole path, [n] its n-th group.
  std::smatch matches;

  // The first header of that name (case-insensitive), or "".
  [[nodiscard]] std::string get_header_value(std::string_view name) const;
  [[nodiscard]] bool has_header(std::string_view name) const;
  // The first query parameter of that name, or "".
  [[nodiscard]] std::string get_param_value(std::string_view name) const;
  [[nodiscard]] bool has_param(std::string_view name) const;
};

// Writes a streamed response's pieces; see Response::set_chunked_content_provider().
class DataSink {
 public:
  virtual ~DataSink() = default;
  // Sends a piece now. False when the client is gone (the provider should stop).
  virtual bool write(const char* data, std::size_t size) = 0;
  // Ends the response; the provider is not called again.
  virtual void done() = 0;
};

// Called again and again until it calls sink.done() (or returns false, which drops the
// connection). `offset` is the number of bytes written so far.
using ContentProvider = std::function<bool(std::size_t offset, DataSink& sink)>;
// Called once when a streamed response ends: true when it ended with done().
using ContentReleaser = std::function<void(bool success)>;

struct Response {
  // 200 when a handler set content and left it as is.
  int status = -1;
  HttpHeaders headers;
  std::string body;

  // Adds a header (values with CR or LF are dropped).
  void set_header(std::string_view name, std::string_view value);
  void set_content(std::string body_text, std::string_view content_type);
  void set_content(const char* data, std::size_t size, std::string_view content_type);
  // Streams the body with chunked transfer coding: `provider` runs on the worker thread after
  // the handler returned, and may block between pieces.
  void set_chunked_content_provider(std::string_view content_type, ContentProvider provider,
                                    ContentReleaser releaser = nullptr);

  ContentProvider provider;  // set by set_chunked_content_provider()
  ContentReleaser releaser;
};

using Handler = std::function<void(const Request&, Response&)>;

// A route pattern that matches exactly `path` (its regex characters escaped).
[[nodiscard]] std::string literal_pattern(std::string_view path);

struct ServerOptions {
  // Worker threads: the connections served at once. Others wait for a free one.
  int threads = 8;
  std::size_t max_header_bytes = std::size_t{64} << 10;
  std::size_t max_body_bytes = std::size_t{1} << 20;
  // How long a client may be silent: in the middle of a request, or between kept-alive ones.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(5)};
  // How long a request may take to arrive whole, from its first byte: a client that trickles
  // it in (a byte now and then, never silent for read_timeout) is disconnected too.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  // How long a write may wait for a client that does not read.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(5)};
  // Requests served on one connection before it is closed.
  int max_requests_per_connection = 100;
  int listen_backlog = 512;
  // Added to every response (unless the handler set the same name).
  HttpHeaders default_headers;
  std::string log_component = "http.server";
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Routes: `pattern` is an ECMAScript regex matched against the whole decoded path. The first
  // route registered that matches a request's method and path serves it; HEAD is served by the
  // GET route, without the body.
  void route(std::string method, const std::string& pattern, Handler handler);
  // Called for a response with an error status (>= 400) and no body: the request matched no
  // route (404), or it was refused before any handler (400, 413, 431, 501).
  void set_error_handler(Handler handler);
  // Called when a handler throws; without it the response is a 500 with no body.
  void set_exception_handler(std::function<void(const Request&, Response&, std::exception_ptr)>);

  // Listens on host:port (port 0: any free port, see port()). Errors: kUnavailable (the address
  // cannot be bound, or is in use), kInvalidArgument (a host that is not an address).
  Status bind(const std::string& host, int port);
  // Starts accepting on the bound socket, with the worker threads.
  void start();
  // Stops accepting, disconnects every client (a handler blocked on its socket sees the client
  // gone), and joins the threads. Idempotent.
  void stop();

  [[nodiscard]] int port() const { return port_; }

 private:
  struct Route {
    std::string method;
    std::regex pattern;
    Handler handler;
  };

  void accept_loop();
  void worker_loop();
  void serve(int fd, const std::string& remote);
  // Finds the route and runs it (or the error handler); fills `res`.
  void handle(Request& req, Response& res);
  void finish_error(const Request& req, Response& res);
  void log(LogLevel level, std::string_view message) const;

  const ServerOptions options_;
  const std::shared_ptr<Logger> logger_;
  std::vector<Route> routes_;
  Handler error_handler_;
  std::function<void(const Request&, Response&, std::exception_ptr)> exception_handler_;

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::pair<int, std::string>> queued_;  // accepted, not yet served; guarded by mu_
  std::vector<int> serving_;                         // guarded by mu_
  bool stopping_ = false;                            // guarded by mu_
  std::atomic<bool> started_{false};
};

}  // namespace llmassist::detail::http
