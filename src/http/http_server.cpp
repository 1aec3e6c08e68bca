#include "http/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "http/http_text.h"

namespace llmassist::detail::http {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kReadSize = 16384;
// A chunk-size or trailer line longer than this is not HTTP.
constexpr std::size_t kMaxLineBytes = 8192;

std::string_view reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded (a malformed escape is kept as it is); '+' as a space in a query.
std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (!item.empty()) {
      const std::size_t eq = item.find('=');
      out.emplace_back(
          percent_decode(item.substr(0, eq), true),
          eq == std::string_view::npos ? std::string() : percent_decode(item.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

// Why a request is refused before any handler: the status and a line for the log.
struct Refusal {
  int status = 400;
  std::string why;
};

// One client connection on a worker thread: blocking reads and writes, each bounded by the
// server's timeouts. Also the sink of a streamed response.
class Connection final : public DataSink {
 public:
  Connection(int fd, const ServerOptions& options) : fd_(fd), options_(options) {}

  // Reads more into the buffer. False on end of stream, an error, read_timeout passing, or the
  // request's deadline.
  bool read_more() {
    auto wait = options_.read_timeout;
    if (deadline_) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - SteadyClock::now());
      if (left.count() <= 0) return false;
      wait = std::min(wait, left);
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (ready <= 0) return false;
    char chunk[kReadSize];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // Sends everything, waiting for the client at most write_timeout at a time.
  bool write_all(std::string_view data) {
    while (!data.empty()) {
      // Never blocks in send() itself: the wait is poll()'s, bounded by write_timeout.
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(options_.write_timeout.count())) <= 0) return false;
        continue;
      }
      return false;
    }
    return true;
  }

  std::string& buffer() { return buffer_; }
  // The whole head read_head() found, without its empty line, taken out of the buffer.
  std::string take_head() {
    const std::size_t end = buffer_.find("\r\n\r\n");
    std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    return head;
  }

  // Closes gently after a refusal: what the client is still sending is read and dropped for a
  // moment, so that closing with unread data (which resets the connection) does not destroy
  // the refusal before the client has read it.
  void linger() {
    ::shutdown(fd_, SHUT_WR);
    const auto until = SteadyClock::now() + std::chrono::milliseconds(500);
    std::size_t dropped = 0;
    char chunk[kReadSize];
    while (dropped < (std::size_t{4} << 20)) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - SteadyClock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
      if (n > 0) dropped += static_cast<std::size_t>(n);
    }
  }
  // From a request's first byte: it must arrive whole within request_timeout.
  void request_begins() {
    if (!deadline_) deadline_ = SteadyClock::now() + options_.request_timeout;
  }
  void request_read() { deadline_.reset(); }

  // ---- DataSink, for a streamed response ----
  bool write(const char* data, std::size_t size) override {
    if (failed_ || done_) return false;
    if (size == 0) return true;
    std::string piece = fmt::format("{:x}\r\n", size);
    piece.append(data, size);
    piece += "\r\n";
    if (!write_all(piece)) failed_ = true;
    written_ += size;
    return !failed_;
  }
  void done() override { done_ = true; }

  void begin_stream() {
    done_ = false;
    failed_ = false;
    written_ = 0;
  }
  [[nodiscard]] bool stream_done() const { return done_; }
  [[nodiscard]] bool stream_failed() const { return failed_; }
  [[nodiscard]] std::size_t written() const { return written_; }

 private:
  const int fd_;
  const ServerOptions& options_;
  std::string buffer_;                               // read, not yet used
  std::optional<SteadyClock::time_point> deadline_;  // of the request being read
  bool done_ = false;
  bool failed_ = false;
  std::size_t written_ = 0;
};

// Reads one line (through CRLF or LF) from the connection's buffer, reading more as needed.
// nullopt when the connection ends first or the line outgrows `limit`.
std::optional<std::string> read_line(Connection& c, std::size_t limit) {
  while (true) {
    std::string& b = c.buffer();
    const std::size_t lf = b.find('\n');
    if (lf != std::string::npos) {
      std::string line = b.substr(0, lf);
      b.erase(0, lf + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (b.size() > limit || !c.read_more()) return std::nullopt;
  }
}

// Reads exactly `size` body bytes into `out`.
bool read_exactly(Connection& c, std::size_t size, std::string& out) {
  while (c.buffer().size() < size) {
    if (!c.read_more()) return false;
  }
  out.append(c.buffer(), 0, size);
  c.buffer().erase(0, size);
  return true;
}

// What a request's head says about how it goes on.
struct Framing {
  bool http10 = false;
  bool keep_alive = false;
  bool chunked = false;
  std::size_t content_length = 0;
};

enum class HeadRead : std::uint8_t { kComplete, kTooLarge, kEnded };

// Reads until the buffer holds a whole head (empty lines before it are dropped, RFC 9112 2.2).
HeadRead read_head(Connection& conn, std::size_t max_header_bytes) {
  std::string& b = conn.buffer();
  while (true) {
    while (b.starts_with("\r\n")) b.erase(0, 2);
    while (b.starts_with("\n")) b.erase(0, 1);
    if (!b.empty()) conn.request_begins();
    const std::size_t end = b.find("\r\n\r\n");
    if (end != std::string::npos) {
      return end + 4 > max_header_bytes ? HeadRead::kTooLarge : HeadRead::kComplete;
    }
    if (b.size() > max_header_bytes) return HeadRead::kTooLarge;
    if (!conn.read_more()) return HeadRead::kEnded;
  }
}

// The request line into method, path and query; nullopt when it is not HTTP/1.x.
std::optional<Refusal> parse_request_line(std::string_view line, Request& req, Framing& f) {
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = line.rfind(' ');
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = sp1 == std::string_view::npos || sp2 <= sp1
                                      ? std::string_view()
                                      : line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version =
      sp2 == std::string_view::npos ? std::string_view() : line.substr(sp2 + 1);
  if (!is_token(method) || target.empty() ||
      target.find_first_of(" \t") != std::string_view::npos ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return Refusal{400, "a malformed request line"};
  }
  req.method = std::string(method);
  f.http10 = version == "HTTP/1.0";
  std::string_view path = target;
  if (path.starts_with("http://") || path.starts_with("https://")) {
    const std::size_t slash = path.find('/', path.find("//") + 2);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  const std::size_t question = path.find('?');
  if (question != std::string_view::npos) {
    req.params = parse_query(path.substr(question + 1));
    path = path.substr(0, question);
  }
  const std::size_t hash = path.find('#');
  if (hash != std::string_view::npos) path = path.substr(0, hash);
  req.path = percent_decode(path, false);
  return std::nullopt;
}

// A whole head (without its empty line) into `req` and `f`; a refusal when it is not HTTP, or
// its body is refused before it is read.
std::optional<Refusal> parse_head(std::string_view head, Request& req, Framing& f,
                                  std::size_t max_body_bytes) {
  const std::size_t eol = head.find("\r\n");
  if (auto refused = parse_request_line(head.substr(0, eol), req, f)) return refused;
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    const std::size_t colon = field.find(':');
    // No folded lines, no space before the colon: both are how requests get smuggled.
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
      return Refusal{400, "a malformed header field"};
    }
    req.headers.emplace_back(std::string(field.substr(0, colon)),
                             std::string(trim(field.substr(colon + 1))));
  }
  const std::string connection = req.get_header_value("Connection");
  f.keep_alive = f.http10 ? has_token(connection, "keep-alive") : !has_token(connection, "close");
  bool has_length = false;
  for (const auto& [name, value] : req.headers) {
    if (iequals(name, "transfer-encoding")) {
      if (!iequals(trim(value), "chunked")) {
        return Refusal{501, "a transfer coding other than chunked"};
      }
      f.chunked = true;
    } else if (iequals(name, "content-length")) {
      std::size_t n = 0;
      const std::string_view text = trim(value);
      const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || p != text.data() + text.size() ||
          (has_length && n != f.content_length)) {
        return Refusal{400, "a malformed Content-Length"};
      }
      f.content_length = n;
      has_length = true;
    }
  }
  if (f.chunked && has_length) return Refusal{400, "both Content-Length and Transfer-Encoding"};
  if (!f.chunked && f.content_length > max_body_bytes) {
    return Refusal{413, "the request's body is too large"};
  }
  return std::nullopt;
}

// Reads the body `f` announces into `body`. False when the connection ended first; `refusal`
// is set when the body is malformed or too large.
bool read_body(Connection& conn, const Framing& f, std::size_t max_body_bytes, std::string& body,
               std::optional<Refusal>& refusal) {
  if (!f.chunked) return read_exactly(conn, f.content_length, body);
  while (true) {
    auto size_line = read_line(conn, kMaxLineBytes);
    if (!size_line) return false;
    const std::string_view line(*size_line);
    const std::string_view text = trim(line.substr(0, line.find(';')));
    std::size_t size = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), size, 16);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
      refusal = Refusal{400, "a malformed chunk size"};
      return true;
    }
    if (size == 0) {
      // Trailers, ignored, up to the empty line.
      while (true) {
        auto trailer = read_line(conn, kMaxLineBytes);
        if (!trailer) return false;
        if (trailer->empty()) return true;
      }
    }
    if (body.size() + size > max_body_bytes) {
      refusal = Refusal{413, "the request's body is too large"};
      return true;
    }
    if (!read_exactly(conn, size, body)) return false;
    auto end = read_line(conn, 2);
    if (!end) return false;
    if (!end->empty()) {
      refusal = Refusal{400, "a chunk does not end where its size says"};
      return true;
    }
  }
}

// The status line and header fields of `res`, with the framing this server decides.
std::string response_head(const Response& res, const HttpHeaders& defaults, bool streamed,
                          bool keep_alive, bool http10) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", res.status, reason(res.status));
  for (const auto& [name, value] : defaults) {
    if (!find_header(res.headers, name)) out += fmt::format("{}: {}\r\n", name, value);
  }
  for (const auto& [name, value] : res.headers) {
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
        iequals(name, "connection")) {
      continue;
    }
    out += fmt::format("{}: {}\r\n", name, value);
  }
  if (streamed) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (!res.provider) {
    out += fmt::format("Content-Length: {}\r\n", res.body.size());
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

// Runs a streamed response's provider until it is done. False when the client is gone, the
// provider gave up, or it threw (`failure` then says what).
bool stream_body(Connection& conn, Response& res, std::string& failure) {
  conn.begin_stream();
  bool ok = true;
  while (ok && !conn.stream_done()) {
    try {
      ok = res.provider(conn.written(), conn) && !conn.stream_failed();
    } catch (const std::exception& e) {
      failure = e.what();
      ok = false;
    } catch (...) {
      failure = "an exception";
      ok = false;
    }
  }
  return ok && conn.write_all("0\r\n\r\n");
}

}  // namespace

std::string literal_pattern(std::string_view path) {
  std::string out;
  for (const char c : path) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// ---- Request and Response -----------------------------------------------------------------

std::string Request::get_header_value(std::string_view name) const {
  return std::string(find_header(headers, name).value_or(std::string_view()));
}

bool Request::has_header(std::string_view name) const {
  return find_header(headers, name).has_value();
}

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
}

void Response::set_content(const char* data, std::size_t size, std::string_view content_type) {
  set_content(std::string(data, size), content_type);
}

void Response::set_chunked_content_provider(std::string_view content_type,
                                            ContentProvider content_provider,
                                            ContentReleaser content_releaser) {
  set_header("Content-Type", content_type);
  provider = std::move(content_provider);
  releaser = std::move(content_releaser);
}

// ---- Server -------------------------------------------------------------------------------

Server::Server(ServerOptions options)
    : options_(std::move(options)), logger_(options_.logger ? options_.logger : stderr_logger()) {}

Server::~Server() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void Server::route(std::string method, const std::string& pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), std::regex(pattern), std::move(handler)});
}

void Server::set_error_handler(Handler handler) { error_handler_ = std::move(handler); }

void Server::set_exception_handler(
    std::function<void(const Request&, Response&, std::exception_ptr)> handler) {
  exception_handler_ = std::move(handler);
}

void Server::log(LogLevel level, std::string_view message) const {
  logger_->log(level, options_.log_component, message);
}

Status Server::bind(const std::string& host, int port) {
  if (listen_fd_ >= 0) return failed_precondition("http server: already bound");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
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
        ::listen(fd, std::max(1, options_.listen_backlog)) != 0) {
      last_error = errno;
      ::close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    port_ =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    listen_fd_ = fd;
    break;
  }
  ::freeaddrinfo(list);
  if (listen_fd_ < 0) {
    return unavailable(fmt::format("cannot listen on {} port {}: {}", host, port,
                                   errno_text(last_error != 0 ? last_error : EADDRNOTAVAIL)));
  }
  return Status();
}

void Server::start() {
  if (listen_fd_ < 0 || started_.exchange(true)) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    workers_.emplace_back([this] { worker_loop(); });
  }
  acceptor_ = std::thread([this] { accept_loop(); });
}

void Server::stop() {
  if (!started_.exchange(false)) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // Wakes the blocked accept() and every read or write of a client.
    ::shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : serving_) ::shutdown(fd, SHUT_RDWR);
    for (auto& [fd, remote] : queued_) ::close(fd);
    queued_.clear();
  }
  wake_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : workers_) t.join();
  workers_.clear();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void Server::accept_loop() {
  while (true) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
    std::lock_guard lock(mu_);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE ||
          errno == ENOBUFS || errno == ENOMEM) {
        if (errno != EINTR && errno != ECONNABORTED) {
          log(LogLevel::kWarning, fmt::format("accept failed: {}", errno_text(errno)));
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        continue;
      }
      log(LogLevel::kError,
          fmt::format("accept failed: {}; no longer listening", errno_text(errno)));
      return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char text[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, text,
                  sizeof text);
    } else if (peer.ss_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr, text,
                  sizeof text);
    }
    queued_.emplace_back(fd, text);
    wake_.notify_one();
  }
}

void Server::worker_loop() {
  while (true) {
    int fd = -1;
    std::string remote;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
      if (stopping_) return;
      fd = queued_.front().first;
      remote = std::move(queued_.front().second);
      queued_.erase(queued_.begin());
      serving_.push_back(fd);
    }
    serve(fd, remote);
    {
      std::lock_guard lock(mu_);
      serving_.erase(std::find(serving_.begin(), serving_.end(), fd));
      ::close(fd);
    }
  }
}

void Server::serve(int fd, const std::string& remote) {
  Connection conn(fd, options_);
  for (int served = 0; served < options_.max_requests_per_connection; ++served) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    Request req;
    req.remote_addr = remote;
    Framing framing;
    std::optional<Refusal> refusal;
    switch (read_head(conn, options_.max_header_bytes)) {
      case HeadRead::kEnded:
        return;  // closed, silent too long, or stopping
      case HeadRead::kTooLarge:
        refusal = Refusal{431, "the request's head is too large"};
        break;
      case HeadRead::kComplete:
        refusal = parse_head(conn.take_head(), req, framing, options_.max_body_bytes);
        break;
    }
    if (!refusal && (framing.chunked || framing.content_length > 0)) {
      if (!framing.http10 && has_token(req.get_header_value("Expect"), "100-continue") &&
          !conn.write_all("HTTP/1.1 100 Continue\r\n\r\n")) {
        return;
      }
      if (!read_body(conn, framing, options_.max_body_bytes, req.body, refusal)) return;
    }
    conn.request_read();

    Response res;
    bool keep_alive = framing.keep_alive;
    if (refusal) {
      log(LogLevel::kWarning,
          fmt::format("refused a request from {}: {} ({})", remote, refusal->why, refusal->status));
      res.status = refusal->status;
      finish_error(req, res);
      keep_alive = false;  // what is left of the request cannot be read as the next one
    } else {
      handle(req, res);
    }
    if (served + 1 >= options_.max_requests_per_connection) keep_alive = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) keep_alive = false;
    }

    const bool head_only = req.method == "HEAD";
    const bool streamed = static_cast<bool>(res.provider) && !head_only;
    std::string out = response_head(res, options_.default_headers, streamed, keep_alive,
                                    framing.http10);
    if (!head_only && !streamed) out += res.body;
    if (!conn.write_all(out)) {
      if (res.releaser) res.releaser(false);
      return;
    }
    if (refusal) return conn.linger();
    if (streamed) {
      std::string failure;
      const bool ok = stream_body(conn, res, failure);
      if (!failure.empty()) {
        log(LogLevel::kError,
            fmt::format("{} {}: the stream failed: {}", req.method, req.path, failure));
      }
      if (res.releaser) res.releaser(ok);
      if (!ok) return;
    } else if (res.releaser) {
      res.releaser(true);
    }
    if (!keep_alive) return;
  }
}


void Server::handle(Request& req, Response& res) {
  const std::string_view method = req.method == "HEAD" ? std::string_view("GET") : req.method;
  for (const Route& r : routes_) {
    if (r.method != method) continue;
    if (!std::regex_match(req.path, req.matches, r.pattern)) continue;
    try {
      r.handler(req, res);
    } catch (...) {
      res = Response();
      if (exception_handler_) {
        try {
          exception_handler_(req, res, std::current_exception());
        } catch (...) {
          res = Response();
        }
      }
      if (res.status == -1) res.status = 500;
      if (!exception_handler_) {
        log(LogLevel::kError, fmt::format("{} {}: the handler threw", req.method, req.path));
      }
    }
    if (res.status == -1) res.status = 200;
    if (res.status >= 400 && res.body.empty() && !res.provider) finish_error(req, res);
    return;
  }
  res.status = 404;
  finish_error(req, res);
}

void Server::finish_error(const Request& req, Response& res) {
  if (!error_handler_) return;
  try {
    error_handler_(req, res);
  } catch (...) {
    log(LogLevel::kError, "the error handler threw");
  }
}

}  // namespace llmassist::detail::http
