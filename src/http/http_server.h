// Internal: the HTTP/1.1 server for the library's own endpoints (the admin page and its API, the
// Telegram webhook), on libmicrohttpd. MHD's one internal epoll thread reads and writes every
// connection; it never runs a handler. A request whose head and body have arrived is suspended
// and its handler runs on a small pool of worker threads; the connection is resumed with the
// response. A handler that waits for something holds no thread while it waits:
// - it may take a Deferred (Response::defer()) and complete it later, from any thread;
// - it may answer with a Stream (Response::stream()), a thread-safe pipe whose bytes are sent
//   as they are written; while the pipe is empty the connection is suspended.
//
// Refused before any handler runs, with a status (and the error handler's body): a path or
// request target over max_target_bytes (414), a Host not in allowed_hosts (421), a
// Content-Length over max_body_bytes (413, before the body is read), a body that grows past it
// while arriving (413, the connection closed), a path matching no route (404). MHD itself
// answers a request head larger than the connection's memory (431, or 414 for the request line)
// and malformed requests (400), with its own short bodies. Connections over the limits in total
// or per client address are closed at once; a connection silent for connection_timeout is
// closed.
//
// Thread-safety: routes and handlers are set before start(); start() and stop() from one
// thread; handlers run on the worker threads, several at once; Deferred and Stream from any
// thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/route_pattern.h"
#include "llmassist/export.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist::detail::http {

struct Exchange;

struct LLMASSIST_API Request {
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
  // The values of the matched route's {parameters}, in order.
  std::vector<std::string> path_params;

  // The first header of that name (case-insensitive), or "".
  [[nodiscard]] std::string get_header_value(std::string_view name) const;
  [[nodiscard]] bool has_header(std::string_view name) const;
  // The first query parameter of that name, or "".
  [[nodiscard]] std::string get_param_value(std::string_view name) const;
  [[nodiscard]] bool has_param(std::string_view name) const;
};

// A streamed response's body: bytes written here are sent to the client in order (chunked).
// Thread-safe; never blocks.
class LLMASSIST_API Stream {
 public:
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Queues bytes to send. False when the client is gone, the server stops, the stream was
  // closed, or more than the server's max_stream_buffer_bytes wait unsent (a client that does
  // not read): then the response ends and later writes fail too.
  bool write(std::string_view data);
  // Ends the body once what was written is sent. Idempotent.
  void close();
  // False once write() would fail.
  [[nodiscard]] bool open() const;

  explicit Stream(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}

 private:
  std::shared_ptr<Exchange> exchange_;
};

struct Response;

// A response to be given later: complete() it once, from any thread. A Deferred dropped without
// complete() answers 500. Thread-safe.
class LLMASSIST_API Deferred {
 public:
  explicit Deferred(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}
  ~Deferred();
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  // Sends `response` (with the server's default headers and error handler, as for a handler's).
  // Calls after the first are ignored; so is a call after the client left.
  void complete(Response response);
  // Runs `job` on the server's worker threads (so that the rest of the work, once a callback
  // came on another library's thread, does not run there); on the caller's thread when the
  // request is over (the client left, the server stopped).
  void run(std::function<void()> job);

 private:
  std::shared_ptr<Exchange> exchange_;
  bool completed_ = false;
};

struct LLMASSIST_API Response {
  // 200 when a handler set content and left it as is.
  int status = -1;
  HttpHeaders headers;
  std::string body;

  // Adds a header (values with CR or LF are dropped).
  void set_header(std::string_view name, std::string_view value);
  void set_content(std::string body_text, std::string_view content_type);
  void set_content(const char* data, std::size_t size, std::string_view content_type);
  // Answers with a streamed body of that type (status 200 unless set): the returned stream
  // may be written from any thread, now or later. Only in a handler.
  std::shared_ptr<Stream> stream(std::string_view content_type);
  // Answers later: the response is what the returned Deferred completes (this one is
  // discarded). Only in a handler.
  std::shared_ptr<Deferred> defer();

  // Set by stream() / defer(); the server reads them.
  std::shared_ptr<Exchange> exchange;
  bool streamed = false;
  bool deferred = false;
};

using Handler = std::function<void(const Request&, Response&)>;

struct LLMASSIST_API ServerOptions {
  // Worker threads that run handlers. Handlers that wait take a Deferred or a Stream instead
  // of blocking, so a few suffice.
  int threads = 4;
  // Connections open at once, in total; more are closed as they arrive.
  unsigned connection_limit = 1024;
  // Connections open at once from one client address; more are closed as they arrive.
  unsigned per_address_connection_limit = 64;
  // A connection silent this long (in the middle of a request, or between kept-alive ones) is
  // closed. Whole seconds; 0 is taken as 1.
  std::chrono::seconds connection_timeout{30};
  // Memory for one connection's request head and buffers (MHD's pool). A request head larger
  // than about half of it is refused by MHD (414 for the request line, 431 for the headers).
  std::size_t connection_memory_bytes = std::size_t{32} << 10;
  // A request target (path and query) over this is answered 414.
  std::size_t max_target_bytes = std::size_t{8} << 10;
  std::size_t max_body_bytes = std::size_t{1} << 20;
  // Bytes a Stream may hold unsent before its client counts as gone.
  std::size_t max_stream_buffer_bytes = std::size_t{1} << 20;
  // The Host header's accepted values ("127.0.0.1:8080", "admin.example.org"), compared
  // case-insensitively; any other is answered 421. Empty, or an entry "*": any Host.
  std::vector<std::string> allowed_hosts;
  int listen_backlog = 512;
  // Added to every response (unless the handler set the same name).
  HttpHeaders default_headers;
  std::string log_component = "http.server";
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

class LLMASSIST_API Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Routes: `pattern` is a path template (http/route_pattern.h); its parameters' values reach
  // the handler in Request::path_params. The first route registered that matches a request's
  // method and path serves it; HEAD is served by the GET route, without the body.
  void route(std::string method, std::string_view pattern, Handler handler);
  // Called for a response with an error status (>= 400) and no body: the request matched no
  // route (404), or it was refused before any handler (413, 414, 421).
  void set_error_handler(Handler handler);
  // Called when a handler throws; without it the response is a 500 (then the error handler's).
  void set_exception_handler(std::function<void(const Request&, Response&, std::exception_ptr)>);
  // Replaces ServerOptions::allowed_hosts (before start(); after bind() the port is known).
  void set_allowed_hosts(std::vector<std::string> hosts);

  // Listens on host:port (port 0: any free port, see port()). Errors: kUnavailable (the address
  // cannot be bound, or is in use), kInvalidArgument (a host that is not an address).
  Status bind(const std::string& host, int port);
  // Starts serving on the bound socket. kUnavailable when MHD cannot start.
  Status start();
  // Stops: waits for the handlers running, answers deferred responses 503, ends streams, closes
  // every connection and joins the threads. Idempotent.
  void stop();

  [[nodiscard]] int port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmassist::detail::http
