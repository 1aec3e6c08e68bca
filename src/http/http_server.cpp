#include "http/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "http/http_text.h"

namespace llmassist::detail::http {

// Where a request is. The I/O thread moves it from kReading to kHandling (suspending the
// connection); a worker, a Deferred or stop() moves it to kReady or kStreaming (resuming it).
enum class Phase : unsigned char { kReading, kHandling, kReady, kStreaming, kDone };

// One request and its response, shared by the I/O thread, the worker running its handler, and
// the Deferred or Stream the handler took.
//
// The suspension protocol: MHD_suspend_connection() (on the I/O thread) and
// MHD_resume_connection() (on any thread) are called under `mu`, with `suspended` set and
// cleared. A suspended connection is never closed by MHD, and stop() resumes every suspended
// one before it stops MHD, so `conn` is valid for those calls; once `finished` is set (MHD has
// completed the request, which it does for every request before MHD_stop_daemon() returns),
// nothing touches `conn` or `server` again: a Deferred or Stream may outlive the Server.
struct Exchange {
  Server::Impl* server = nullptr;
  MHD_Connection* conn = nullptr;
  std::size_t target_bytes = 0;  // the raw request target's length
  bool started = false;          // I/O thread only, like the four below
  bool refused = false;          // a refusal was queued: the rest of the body is dropped
  const void* route = nullptr;
  Request req;

  std::mutex mu;
  Phase phase = Phase::kReading;  // guarded by mu, like the rest
  bool suspended = false;
  bool finished = false;  // MHD is done with the request (answered, or the client left)
  Response response;      // kReady / kStreaming: what to queue
  std::string pending;    // a stream's bytes not yet sent
  bool stream_closed = false;
  bool stream_failed = false;
};

namespace {

using Holder = std::shared_ptr<Exchange>;

constexpr std::size_t kStreamBlockBytes = 16384;

std::string address_text(const sockaddr* addr) {
  if (addr == nullptr) return {};
  char text[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text, sizeof text);
  } else if (addr->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text,
                sizeof text);
  }
  return text;
}

bool has_header(const HttpHeaders& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return iequals(h.first, name); });
}

// Under ex.mu.
void resume_locked(Exchange& ex) {
  if (!ex.suspended) return;
  ex.suspended = false;
  MHD_resume_connection(ex.conn);
}

}  // namespace

struct Server::Impl {
  struct Route {
    std::string method;
    RoutePattern pattern;
    Handler handler;
  };

  explicit Impl(ServerOptions o)
      : options(std::move(o)),
        logger(options.logger ? options.logger : stderr_logger()),
        allowed_hosts(options.allowed_hosts) {}

  void log(LogLevel level, std::string_view message) const {
    logger->log(level, options.log_component, message);
  }

  // ---- the worker pool -------------------------------------------------------------------

  // False once stop() closed the pool (the job is not run).
  bool post(std::function<void()> job) {
    {
      std::lock_guard lock(pool_mu);
      if (pool_closed) return false;
      jobs.push_back(std::move(job));
    }
    pool_cv.notify_one();
    return true;
  }

  void work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(pool_mu);
        pool_cv.wait(lock, [&] { return pool_closed || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  // ---- responses -------------------------------------------------------------------------

  void finish_error(const Request& req, Response& res) const {
    if (!error_handler) return;
    try {
      error_handler(req, res);
    } catch (...) {
      log(LogLevel::kError, "the error handler threw");
    }
  }

  // The status a handler left, and the error handler's body for an empty error.
  void finish(const Request& req, Response& res) const {
    if (res.status == -1) res.status = 200;
    if (res.status >= 400 && res.body.empty() && !res.streamed) finish_error(req, res);
  }

  static ssize_t read_stream(void* cls, std::uint64_t, char* buf, std::size_t max) {
    Exchange& ex = **static_cast<Holder*>(cls);
    std::lock_guard lock(ex.mu);
    if (ex.stream_failed) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!ex.pending.empty()) {
      const std::size_t n = std::min(max, ex.pending.size());
      std::memcpy(buf, ex.pending.data(), n);
      ex.pending.erase(0, n);
      return static_cast<ssize_t>(n);
    }
    if (ex.stream_closed) return MHD_CONTENT_READER_END_OF_STREAM;
    if (ex.server->stopping.load()) return MHD_CONTENT_READER_END_WITH_ERROR;
    // Nothing to send: hold no thread and no poll slot until a write() resumes us.
    ex.suspended = true;
    MHD_suspend_connection(ex.conn);
    return 0;
  }

  static void free_stream(void* cls) { delete static_cast<Holder*>(cls); }

  MHD_Result queue(const Holder& ex, const Response& res) const {
    MHD_Response* r = nullptr;
    if (res.streamed) {
      r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, kStreamBlockBytes, &read_stream,
                                            new Holder(ex), &free_stream);
    } else {
      r = MHD_create_response_from_buffer(res.body.size(), const_cast<char*>(res.body.data()),
                                          MHD_RESPMEM_MUST_COPY);
    }
    if (r == nullptr) return MHD_NO;
    for (const auto& [name, value] : res.headers) {
      MHD_add_response_header(r, name.c_str(), value.c_str());
    }
    for (const auto& [name, value] : options.default_headers) {
      if (!has_header(res.headers, name)) MHD_add_response_header(r, name.c_str(), value.c_str());
    }
    const MHD_Result queued = MHD_queue_response(ex->conn, static_cast<unsigned>(res.status), r);
    MHD_destroy_response(r);
    return queued;
  }

  // Answers `status` before any handler ran (the error handler gives the body).
  MHD_Result refuse(const Holder& ex, int status, std::string_view why) {
    ex->refused = true;
    log(LogLevel::kInfo, fmt::format("{} from {} refused with {}: {}", ex->req.method,
                                     ex->req.remote_addr, status, why));
    Response res;
    res.status = status;
    finish(ex->req, res);
    res.set_header("Connection", "close");
    return queue(ex, res);
  }

  // Runs on a worker: the handler, then the response handed to the I/O thread.
  void run(const Holder& ex) {
    const auto& route = *static_cast<const Route*>(ex->route);
    Response res;
    res.exchange = ex;
    try {
      route.handler(ex->req, res);
    } catch (...) {
      res = Response();
      if (exception_handler) {
        try {
          exception_handler(ex->req, res, std::current_exception());
        } catch (...) {
          res = Response();
        }
      } else {
        log(LogLevel::kError,
            fmt::format("{} {}: the handler threw", ex->req.method, ex->req.path.substr(0, 200)));
      }
      if (res.status == -1) res.status = 500;
    }
    if (res.deferred && res.exchange) return;  // the Deferred answers
    respond(*ex, std::move(res));
  }

  // Hands a handler's response to the I/O thread. Ignored unless the request still waits for
  // one (a stop() or a departed client came first).
  void respond(Exchange& ex, Response res) const {
    res.exchange.reset();  // the response is held by the exchange: no cycle
    res.deferred = false;
    std::lock_guard lock(ex.mu);
    respond_locked(ex, std::move(res));
  }

  // Under ex.mu, with `ex` not finished (so the server exists).
  void respond_locked(Exchange& ex, Response res) const {
    if (ex.finished || ex.phase != Phase::kHandling) return;
    finish(ex.req, res);
    ex.phase = res.streamed ? Phase::kStreaming : Phase::kReady;
    ex.response = std::move(res);
    resume_locked(ex);
  }

  // ---- MHD's callbacks, on the I/O thread --------------------------------------------------

  static void* on_uri(void* cls, const char* uri, MHD_Connection* conn) {
    auto& self = *static_cast<Impl*>(cls);
    auto ex = std::make_shared<Exchange>();
    ex->server = &self;
    ex->conn = conn;
    ex->target_bytes = uri ? std::strlen(uri) : 0;
    {
      std::lock_guard lock(self.live_mu);
      self.live.insert(ex.get());
    }
    return new Holder(std::move(ex));
  }

  static void on_completed(void* cls, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    auto& self = *static_cast<Impl*>(cls);
    auto* holder = static_cast<Holder*>(*con_cls);
    if (holder == nullptr) return;
    *con_cls = nullptr;
    {
      std::lock_guard lock((*holder)->mu);
      (*holder)->finished = true;
      (*holder)->suspended = false;
      (*holder)->phase = Phase::kDone;
    }
    {
      std::lock_guard lock(self.live_mu);
      self.live.erase(holder->get());
    }
    delete holder;
  }

  static MHD_Result collect(void* cls, MHD_ValueKind, const char* key, const char* value) {
    static_cast<HttpHeaders*>(cls)->emplace_back(key ? key : "", value ? value : "");
    return MHD_YES;
  }

  // The head has arrived: the request, its checks, its route.
  MHD_Result begin(const Holder& ex, const char* url, const char* method) {
    Request& req = ex->req;
    MHD_Connection* conn = ex->conn;
    req.method = method;
    req.path = url;
    if (const MHD_ConnectionInfo* info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
      req.remote_addr = address_text(info->client_addr);
    }
    if (ex->target_bytes > options.max_target_bytes || req.path.size() > options.max_target_bytes) {
      return refuse(ex, 414, "the request target is too long");
    }
    MHD_get_connection_values(conn, MHD_HEADER_KIND, &collect, &req.headers);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &collect, &req.params);
    if (!allowed_hosts.empty()) {
      const std::string host = req.get_header_value("Host");
      const bool allowed =
          std::any_of(allowed_hosts.begin(), allowed_hosts.end(),
                      [&](const std::string& h) { return h == "*" || iequals(h, host); });
      if (!allowed) return refuse(ex, 421, "a Host this server does not answer for");
    }
    // MHD would wait for the end of a body it cannot frame.
    if (req.has_header("Transfer-Encoding") &&
        !iequals(trim(req.get_header_value("Transfer-Encoding")), "chunked")) {
      return refuse(ex, 501, "a transfer coding other than chunked");
    }
    if (req.has_header("Content-Length")) {
      const std::string text = req.get_header_value("Content-Length");
      std::uint64_t length = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
      if (ec != std::errc() || end != text.data() + text.size() ||
          length > options.max_body_bytes) {
        return refuse(ex, 413, "the body is too large");
      }
    }
    const std::string_view wanted = req.method == "HEAD" ? std::string_view("GET") : req.method;
    for (const Route& r : routes) {
      if (r.method == wanted && r.pattern.match(req.path, &req.path_params)) {
        ex->route = &r;
        return MHD_YES;
      }
    }
    return refuse(ex, 404, "no route");
  }

  static MHD_Result on_request(void* cls, MHD_Connection*, const char* url, const char* method,
                               const char*, const char* upload_data, std::size_t* upload_size,
                               void** con_cls) {
    auto& self = *static_cast<Impl*>(cls);
    auto* holder = static_cast<Holder*>(*con_cls);
    if (holder == nullptr) return MHD_NO;
    const Holder& ex = *holder;
    if (!ex->started) {
      ex->started = true;
      return self.begin(ex, url, method);
    }
    if (*upload_size != 0) {
      const std::size_t size = *upload_size;
      *upload_size = 0;
      if (ex->refused) return MHD_YES;
      // body.size() <= max_body_bytes here, and `size` is what MHD holds: no overflow.
      if (size > self.options.max_body_bytes - ex->req.body.size()) {
        // Nothing more is read: the 413 goes out and the connection closes.
        return self.refuse(ex, 413, "the body grew too large");
      }
      ex->req.body.append(upload_data, size);
      return MHD_YES;
    }
    if (ex->refused) return MHD_YES;
    std::unique_lock lock(ex->mu);
    switch (ex->phase) {
      case Phase::kReading:
        if (self.stopping.load()) {
          lock.unlock();
          Response res;
          res.status = 503;
          self.finish(ex->req, res);
          return self.queue(ex, res);
        }
        ex->phase = Phase::kHandling;
        ex->suspended = true;
        MHD_suspend_connection(ex->conn);
        lock.unlock();
        self.post([&self, ex = Holder(ex)] { self.run(ex); });
        return MHD_YES;
      case Phase::kReady:
      case Phase::kStreaming: {
        Response res = std::move(ex->response);
        ex->response = Response();
        lock.unlock();
        return self.queue(ex, res);
      }
      case Phase::kHandling:
      case Phase::kDone:
        return MHD_YES;
    }
    return MHD_YES;
  }

  static void on_mhd_log(void* cls, const char* format, va_list args) {
    char text[512];
    std::vsnprintf(text, sizeof text, format, args);
    std::string_view message(text);
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
      message.remove_suffix(1);
    }
    static_cast<Impl*>(cls)->log(LogLevel::kDebug, message);
  }

  const ServerOptions options;
  const std::shared_ptr<Logger> logger;
  std::vector<Route> routes;
  std::vector<std::string> allowed_hosts;
  Handler error_handler;
  std::function<void(const Request&, Response&, std::exception_ptr)> exception_handler;

  int listen_fd = -1;
  int port = 0;
  MHD_Daemon* daemon = nullptr;
  std::atomic<bool> stopping{false};

  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::deque<std::function<void()>> jobs;  // guarded by pool_mu
  bool pool_closed = false;                // guarded by pool_mu
  std::vector<std::thread> workers;

  std::mutex live_mu;
  std::unordered_set<Exchange*> live;  // requests MHD has not completed; guarded by live_mu
};

// ---- Request, Response -------------------------------------------------------------------

std::string Request::get_header_value(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return {};
}

bool Request::has_header(std::string_view name) const { return http::has_header(headers, name); }

std::string Request::get_param_value(std::string_view name) const {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

bool Request::has_param(std::string_view name) const {
  return std::any_of(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
}

void Response::set_header(std::string_view name, std::string_view value) {
  if (name.find_first_of("\r\n") != std::string_view::npos ||
      value.find_first_of("\r\n") != std::string_view::npos) {
    return;
  }
  headers.emplace_back(std::string(name), std::string(value));
}

void Response::set_content(std::string body_text, std::string_view content_type) {
  body = std::move(body_text);
  set_header("Content-Type", content_type);
  if (status == -1) status = 200;
}

void Response::set_content(const char* data, std::size_t size, std::string_view content_type) {
  set_content(std::string(data, size), content_type);
}

std::shared_ptr<Stream> Response::stream(std::string_view content_type) {
  set_header("Content-Type", content_type);
  streamed = true;
  return std::make_shared<Stream>(exchange);
}

std::shared_ptr<Deferred> Response::defer() {
  deferred = true;
  return std::make_shared<Deferred>(exchange);
}

// ---- Stream, Deferred ----------------------------------------------------------------------

bool Stream::write(std::string_view data) {
  if (!exchange_) return false;
  Exchange& ex = *exchange_;
  std::lock_guard lock(ex.mu);
  if (ex.finished || ex.stream_failed || ex.stream_closed) return false;
  bool written = false;
  if (ex.pending.size() + data.size() > ex.server->options.max_stream_buffer_bytes) {
    ex.stream_failed = true;
  } else {
    ex.pending.append(data);
    written = true;
  }
  // Before the handler's response is queued (kHandling) the bytes just wait.
  if (ex.phase != Phase::kHandling) resume_locked(ex);
  return written;
}

void Stream::close() {
  if (!exchange_) return;
  Exchange& ex = *exchange_;
  std::lock_guard lock(ex.mu);
  if (ex.finished || ex.stream_closed) return;
  ex.stream_closed = true;
  if (ex.phase != Phase::kHandling) resume_locked(ex);
}

bool Stream::open() const {
  if (!exchange_) return false;
  std::lock_guard lock(exchange_->mu);
  return !exchange_->finished && !exchange_->stream_failed && !exchange_->stream_closed;
}

Deferred::~Deferred() {
  if (!completed_) {
    Response res;
    res.status = 500;
    complete(std::move(res));
  }
}

void Deferred::complete(Response response) {
  if (completed_ || !exchange_) return;
  completed_ = true;
  response.exchange.reset();
  response.deferred = false;
  std::lock_guard lock(exchange_->mu);
  // After stop() the server may be gone: `finished` (set by MHD before that) says so.
  if (exchange_->finished) return;
  exchange_->server->respond_locked(*exchange_, std::move(response));
}

void Deferred::run(std::function<void()> job) {
  if (exchange_) {
    std::lock_guard lock(exchange_->mu);
    if (!exchange_->finished && exchange_->server->post(job)) return;
  }
  job();
}

// ---- Server ------------------------------------------------------------------------------

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
  stop();
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
}

void Server::route(std::string method, std::string_view pattern, Handler handler) {
  impl_->routes.push_back({std::move(method), RoutePattern(pattern), std::move(handler)});
}

void Server::set_error_handler(Handler handler) { impl_->error_handler = std::move(handler); }

void Server::set_exception_handler(
    std::function<void(const Request&, Response&, std::exception_ptr)> handler) {
  impl_->exception_handler = std::move(handler);
}

void Server::set_allowed_hosts(std::vector<std::string> hosts) {
  impl_->allowed_hosts = std::move(hosts);
}

int Server::port() const { return impl_->port; }

Status Server::bind(const std::string& host, int port) {
  Impl& s = *impl_;
  if (s.listen_fd >= 0) return failed_precondition("http server: already bound");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    return invalid_argument(fmt::format("cannot listen on {}: {}", host, ::gai_strerror(rc)));
  }
  int last_error = 0;
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 ||
        ::listen(fd, std::max(1, s.options.listen_backlog)) != 0) {
      last_error = errno;
      ::close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    s.port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    s.listen_fd = fd;
    break;
  }
  ::freeaddrinfo(list);
  if (s.listen_fd < 0) {
    return unavailable(fmt::format("cannot listen on {} port {}: {}", host, port,
                                   errno_text(last_error != 0 ? last_error : EADDRNOTAVAIL)));
  }
  return Status();
}

Status Server::start() {
  Impl& s = *impl_;
  if (s.daemon != nullptr) return failed_precondition("http server: already started");
  if (s.listen_fd < 0) return failed_precondition("http server: not bound");
  const unsigned flags =
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  const auto timeout =
      static_cast<unsigned>(std::max<long long>(1, s.options.connection_timeout.count()));
  s.daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::on_request, &s,                           //
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(s.listen_fd),              //
      MHD_OPTION_CONNECTION_LIMIT, s.options.connection_limit,                     //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, s.options.per_address_connection_limit,  //
      MHD_OPTION_CONNECTION_TIMEOUT, timeout,                                      //
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, s.options.connection_memory_bytes,       //
      MHD_OPTION_URI_LOG_CALLBACK, &Impl::on_uri, &s,                              //
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, &s,                        //
      MHD_OPTION_EXTERNAL_LOGGER, &Impl::on_mhd_log, &s,                           //
      MHD_OPTION_END);
  if (s.daemon == nullptr) return unavailable("http server: libmicrohttpd could not start");
  s.listen_fd = -1;  // MHD's now; MHD_stop_daemon() closes it
  {
    std::lock_guard lock(s.pool_mu);
    s.pool_closed = false;
  }
  s.stopping = false;
  for (int i = 0; i < std::max(1, s.options.threads); ++i) {
    s.workers.emplace_back([&s] { s.work(); });
  }
  return Status();
}

void Server::stop() {
  Impl& s = *impl_;
  if (s.daemon == nullptr) return;
  s.stopping = true;
  // No new connections from here on.
  const MHD_socket listening = MHD_quiesce_daemon(s.daemon);
  if (listening != MHD_INVALID_SOCKET) ::close(listening);
  {
    std::lock_guard lock(s.pool_mu);
    s.pool_closed = true;  // the queued jobs still run; no new ones
  }
  s.pool_cv.notify_all();
  for (auto& t : s.workers) t.join();
  s.workers.clear();
  // MHD must not be stopped with a connection suspended: answer every request still waiting
  // (a Deferred not completed, a job never run: 503) and end every idle stream.
  std::vector<const Exchange*> answered;
  {
    std::lock_guard lock(s.live_mu);
    for (Exchange* ex : s.live) {
      std::lock_guard ex_lock(ex->mu);
      if (ex->phase == Phase::kHandling) {
        Response res;
        res.status = 503;
        s.respond_locked(*ex, std::move(res));  // a request waiting for its handler
        answered.push_back(ex);
      }
      ex->stream_failed = true;
      resume_locked(*ex);
    }
  }
  // The I/O thread sends those answers: a moment for it, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!answered.empty() && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(s.live_mu);
      answered.erase(std::remove_if(answered.begin(), answered.end(),
                                    [&](const Exchange* ex) {
                                      return s.live.count(const_cast<Exchange*>(ex)) == 0;
                                    }),
                     answered.end());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  MHD_stop_daemon(s.daemon);
  s.daemon = nullptr;
}

}  // namespace llmassist::detail::http
