// The internal HTTP server (src/http/http_server.h) over real loopback sockets: the library's
// client for ordinary exchanges, and a raw TCP client (RawClient below) for what only shows on
// the wire: framing, interim responses, keep-alive and its end, limits, timeouts.
//
// Every wait is bounded, so a server that misbehaves fails a test instead of hanging it. State
// that handlers touch is declared before the server, so that it outlives the worker threads
// (the server's destructor joins them).
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "http/http_server.h"
#include "llmassist/http/curl_http_client.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"
#include "support/http_test_client.h"

using namespace llmassist;
using llmassist::detail::http::Deferred;
using llmassist::detail::http::Request;
using llmassist::detail::http::Response;
using llmassist::detail::http::Server;
using llmassist::detail::http::ServerOptions;
using llmassist::detail::http::Stream;
using llmassist::testing::fetch;
using llmassist::testing::make_test_client;
using llmassist::testing::Pending;
using llmassist::testing::short_request;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

ServerOptions quiet_options() {
  ServerOptions options;
  options.logger = null_logger();
  options.threads = 4;
  return options;
}

// Binds to a free loopback port and starts.
void start(Server& server) {
  const Status bound = server.bind("127.0.0.1", 0);
  REQUIRE(bound.ok());
  REQUIRE(server.port() > 0);
  REQUIRE(server.start().ok());
}

std::string url(const Server& server, std::string_view path_and_query) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + std::string(path_and_query);
}

int count_headers(const HttpHeaders& headers, std::string_view name) {
  return static_cast<int>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
    return find_header({h}, name).has_value();
  }));
}

// A flag that one thread raises and others wait for, with a bound.
class Flag {
 public:
  void raise() {
    {
      std::lock_guard lock(mu_);
      raised_ = true;
    }
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, bound, [&] { return raised_; });
  }
  bool raised() {
    std::lock_guard lock(mu_);
    return raised_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool raised_ = false;
};

// Polls `condition` until it holds or `bound` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds bound = 2s) {
  const auto deadline = Clock::now() + bound;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// `n` bytes of every value, in a pattern that shows where a piece went missing or moved.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A response as read off the wire.
struct RawResponse {
  std::string status_line;  // "HTTP/1.1 200 OK"
  int status = 0;
  HttpHeaders headers;
  // The body, with chunked framing removed.
  std::string body;
  bool chunked = false;

  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

// A TCP connection to the server under test, driven byte by byte. Reads keep what arrives in a
// buffer, so a response that follows another is not lost; every read has a deadline.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends every byte; false when the server is gone or does not read within `bound`.
  bool send(std::string_view bytes, std::chrono::milliseconds bound = 2s) {
    const auto deadline = Clock::now() + bound;
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_until(POLLOUT, deadline)) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  // Reads one response: its head, then its body as framed (none after a HEAD request, nor for
  // 1xx, 204 and 304). nullopt when it does not arrive whole within `bound` or is malformed.
  std::optional<RawResponse> read_response(bool head_request = false,
                                           std::chrono::milliseconds bound = 2s) {
    const auto deadline = Clock::now() + bound;
    const auto head_end = find("\r\n\r\n", 0, deadline);
    if (!head_end) return std::nullopt;
    const std::string head = buffer_.substr(0, *head_end);
    buffer_.erase(0, *head_end + 4);

    RawResponse r;
    std::size_t line_end = head.find("\r\n");
    r.status_line = head.substr(0, line_end);
    const std::string_view line = r.status_line;
    if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[8] != ' ') return std::nullopt;
    if (std::from_chars(line.data() + 9, line.data() + 12, r.status).ec != std::errc{}) {
      return std::nullopt;
    }
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string_view field = std::string_view(head).substr(
          start, line_end == std::string::npos ? line_end : line_end - start);
      const std::size_t colon = field.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      r.headers.emplace_back(std::string(field.substr(0, colon)),
                             std::string(trim(field.substr(colon + 1))));
    }

    if (head_request || (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304) {
      return r;
    }
    if (const auto te = r.header("Transfer-Encoding")) {
      if (*te != "chunked") return std::nullopt;
      r.chunked = true;
      if (!read_chunked(r.body, deadline)) return std::nullopt;
    } else if (const auto cl = r.header("Content-Length")) {
      std::size_t n = 0;
      if (std::from_chars(cl->data(), cl->data() + cl->size(), n).ec != std::errc{}) {
        return std::nullopt;
      }
      if (!fill(n, deadline)) return std::nullopt;
      r.body = buffer_.substr(0, n);
      buffer_.erase(0, n);
    } else {
      // Delimited by the end of the connection.
      while (read_some(deadline) == ReadResult::kData) {
      }
      if (!closed_) return std::nullopt;
      r.body = std::move(buffer_);
      buffer_.clear();
    }
    return r;
  }

  // Reads until what has arrived contains `marker`; false on close or timeout.
  bool read_until(std::string_view marker, std::chrono::milliseconds bound = 2s) {
    return find(marker, 0, Clock::now() + bound).has_value();
  }

  // True when the server closes the connection (an end of stream or a reset) within `bound`.
  // Bytes that arrive meanwhile are kept in buffered().
  bool closed_within(std::chrono::milliseconds bound) {
    const auto deadline = Clock::now() + bound;
    for (;;) {
      switch (read_some(deadline)) {
        case ReadResult::kData:
          continue;
        case ReadResult::kClosed:
          return true;
        case ReadResult::kTimeout:
          return false;
      }
    }
  }

  [[nodiscard]] const std::string& buffered() const { return buffer_; }

 private:
  enum class ReadResult { kData, kClosed, kTimeout };

  bool wait_until(short events, Clock::time_point deadline) const {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left));
      if (r > 0) return true;
      if (r == 0 || errno != EINTR) return false;
    }
  }

  ReadResult read_some(Clock::time_point deadline) {
    if (closed_) return ReadResult::kClosed;
    if (!wait_until(POLLIN, deadline)) return ReadResult::kTimeout;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return ReadResult::kData;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
      return ReadResult::kData;  // nothing after all; the caller reads again
    }
    closed_ = true;  // 0: the server's FIN; < 0: a reset
    return ReadResult::kClosed;
  }

  bool fill(std::size_t n, Clock::time_point deadline) {
    while (buffer_.size() < n) {
      if (read_some(deadline) != ReadResult::kData) return false;
    }
    return true;
  }

  std::optional<std::size_t> find(std::string_view marker, std::size_t from,
                                  Clock::time_point deadline) {
    for (;;) {
      const std::size_t at = buffer_.find(marker, from);
      if (at != std::string::npos) return at;
      if (read_some(deadline) != ReadResult::kData) return std::nullopt;
    }
  }

  bool read_chunked(std::string& body, Clock::time_point deadline) {
    for (;;) {
      const auto eol = find("\r\n", 0, deadline);
      if (!eol) return false;
      std::size_t size = 0;
      const char* first = buffer_.data();
      const auto parsed = std::from_chars(first, first + *eol, size, 16);
      if (parsed.ec != std::errc{} || parsed.ptr == first) return false;
      buffer_.erase(0, *eol + 2);
      if (size == 0) break;
      if (!fill(size + 2, deadline) || buffer_.compare(size, 2, "\r\n") != 0) return false;
      body.append(buffer_, 0, size);
      buffer_.erase(0, size + 2);
    }
    // The trailer section, through its empty line.
    for (;;) {
      const auto eol = find("\r\n", 0, deadline);
      if (!eol) return false;
      buffer_.erase(0, *eol + 2);
      if (*eol == 0) return true;
    }
  }

  int fd_ = -1;
  std::string buffer_;
  bool closed_ = false;
};

// Sends `bytes` on a new connection and expects a response with `status`, then the end of the
// connection.
void expect_refused(const Server& server, std::string_view bytes, int status) {
  RawClient c(server.port());
  c.send(bytes);  // may fail part way: the server is free to stop reading
  const auto response = c.read_response();
  REQUIRE(response.has_value());
  CHECK(response->status == status);
  CHECK(c.closed_within(1s));
}

// A request refused either with an error status or by the connection closed without a
// response: libmicrohttpd 0.9.75 answers some malformed requests so, and cannot queue a response
// in the middle of a request body (a chunked body that outgrows the limit). Never served.
void expect_not_served(const Server& server, std::string_view bytes) {
  RawClient c(server.port());
  c.send(bytes);
  const auto response = c.read_response();
  if (response) CHECK(response->status >= 400);
  CHECK(c.closed_within(5s));
}

// A GET route answering "ok".
void ok_route(Server& server, std::string_view path) {
  server.route("GET", path,
               [](const Request&, Response& res) { res.set_content("ok", "text/plain"); });
}

// A route answering "ok" that counts its calls: a refused request never reaches it.
void counting_route(Server& server, const std::string& method, std::string_view path,
                    std::atomic<int>& calls) {
  server.route(method, path, [&calls](const Request&, Response& res) {
    calls.fetch_add(1);
    res.set_content("ok", "text/plain");
  });
}

std::string get_line(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

}  // namespace

TEST_CASE("http server: the error handler serves unmatched paths and empty error responses") {
  std::mutex mu;
  std::vector<int> seen;  // the statuses the error handler was called with; guarded by mu
  Server server(quiet_options());
  server.route("GET", "/forbidden-empty", [](const Request&, Response& res) { res.status = 403; });
  server.route("GET", "/forbidden-body", [](const Request&, Response& res) {
    res.status = 403;
    res.set_content("own words", "text/plain");
  });
  server.set_error_handler([&](const Request& req, Response& res) {
    {
      std::lock_guard lock(mu);
      seen.push_back(res.status);
    }
    res.set_content("error " + std::to_string(res.status) + " at " + req.path, "text/plain");
  });
  start(server);
  auto client = make_test_client();

  auto missing = fetch(*client, short_request(url(server, "/nowhere")));
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(missing->body == "error 404 at /nowhere");

  auto empty = fetch(*client, short_request(url(server, "/forbidden-empty")));
  REQUIRE(empty.ok());
  CHECK(empty->status == 403);
  CHECK(empty->body == "error 403 at /forbidden-empty");

  auto own = fetch(*client, short_request(url(server, "/forbidden-body")));
  REQUIRE(own.ok());
  CHECK(own->status == 403);
  CHECK(own->body == "own words");

  std::lock_guard lock(mu);
  CHECK(seen == std::vector<int>{404, 403});
}

TEST_CASE("http server: without an error handler an unmatched path is a 404 with no body") {
  Server server(quiet_options());
  server.route("GET", "/here",
               [](const Request&, Response& res) { res.set_content("here", "text/plain"); });
  start(server);
  auto client = make_test_client();

  auto missing = fetch(*client, short_request(url(server, "/not-here")));
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(missing->body.empty());

  // The connection it came on still serves.
  auto here = fetch(*client, short_request(url(server, "/here")));
  REQUIRE(here.ok());
  CHECK(here->body == "here");
}

TEST_CASE("http server: HEAD to a GET route sends the head without the body") {
  const std::string page = "<html>" + std::string(5000, 'p') + "</html>";
  Server server(quiet_options());
  server.route("GET", "/page",
               [&](const Request&, Response& res) { res.set_content(page, "text/html"); });
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send("HEAD /page HTTP/1.1\r\nHost: test\r\n\r\n"));
  const auto head = c.read_response(/*head_request=*/true);
  REQUIRE(head.has_value());
  CHECK(head->status == 200);
  CHECK(head->header("Content-Length") == std::to_string(page.size()));
  CHECK(head->header("Content-Type") == "text/html");

  // Nothing of the body followed: the next response on the connection parses from its start.
  REQUIRE(c.send(get_line("/page")));
  const auto get = c.read_response();
  REQUIRE(get.has_value());
  CHECK(get->status == 200);
  CHECK(get->body == page);
  CHECK(c.buffered().empty());
}

TEST_CASE("http server: the path, query parameters and headers reach the handler decoded") {
  struct Seen {
    std::string method, path, match, remote_addr;
    std::vector<std::pair<std::string, std::string>> params;
    std::string q, x, absent_param, header_lower, header_upper, absent_header;
    bool has_empty = false, has_absent_param = true, has_header_mixed = false,
         has_absent_header = true;
  };
  std::mutex mu;
  Seen seen;  // guarded by mu
  Server server(quiet_options());
  server.route("GET", "/files/{name}", [&](const Request& req, Response& res) {
    std::lock_guard lock(mu);
    seen.method = req.method;
    seen.path = req.path;
    seen.match = req.path_params.at(0);
    seen.remote_addr = req.remote_addr;
    seen.params = req.params;
    seen.q = req.get_param_value("q");
    seen.x = req.get_param_value("x");
    seen.absent_param = req.get_param_value("absent");
    seen.has_empty = req.has_param("empty");
    seen.has_absent_param = req.has_param("absent");
    seen.header_lower = req.get_header_value("x-custom-header");
    seen.header_upper = req.get_header_value("X-CUSTOM-HEADER");
    seen.absent_header = req.get_header_value("X-Absent");
    seen.has_header_mixed = req.has_header("x-CuStOm-HeAdEr");
    seen.has_absent_header = req.has_header("X-Absent");
    res.set_content("ok", "text/plain");
  });
  start(server);
  auto client = make_test_client();

  HttpRequest r =
      short_request(url(server, "/files/a%20b%25d?q=hello+world&x=%41%2b%26%3d&q=second&empty="));
  r.headers = {{"X-Custom-Header", "Mixed Value"}};
  auto got = fetch(*client, r);
  REQUIRE(got.ok());
  CHECK(got->status == 200);

  std::lock_guard lock(mu);
  CHECK(seen.method == "GET");
  CHECK(seen.path == "/files/a b%d");
  CHECK(seen.match == "a b%d");
  CHECK(seen.remote_addr == "127.0.0.1");
  const std::vector<std::pair<std::string, std::string>> params = {
      {"q", "hello world"}, {"x", "A+&="}, {"q", "second"}, {"empty", ""}};
  CHECK(seen.params == params);
  CHECK(seen.q == "hello world");  // the first of the repeated ones
  CHECK(seen.x == "A+&=");
  CHECK(seen.has_empty);
  CHECK_FALSE(seen.has_absent_param);
  CHECK(seen.absent_param.empty());
  CHECK(seen.header_lower == "Mixed Value");
  CHECK(seen.header_upper == "Mixed Value");
  CHECK(seen.has_header_mixed);
  CHECK_FALSE(seen.has_absent_header);
  CHECK(seen.absent_header.empty());
}

TEST_CASE("http server: a binary body arrives byte for byte") {
  std::mutex mu;
  std::string received;  // guarded by mu
  ServerOptions options = quiet_options();
  options.max_body_bytes = std::size_t{2} << 20;
  Server server(options);
  server.route("POST", "/upload", [&](const Request& req, Response& res) {
    {
      std::lock_guard lock(mu);
      received = req.body;
    }
    res.set_content(req.body, "application/octet-stream");
  });
  start(server);
  auto client = make_test_client();

  const std::string body = pattern(std::size_t{1} << 20);
  HttpRequest r = short_request(url(server, "/upload"), "POST", body);
  r.headers = {{"Content-Type", "application/octet-stream"}};
  auto got = fetch(*client, r, 5s);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body.size() == body.size());
  CHECK(got->body == body);
  std::lock_guard lock(mu);
  CHECK(received.size() == body.size());
  CHECK(received == body);
}

TEST_CASE("http server: a chunked request body arrives whole") {
  Server server(quiet_options());
  server.route("POST", "/echo",
               [](const Request& req, Response& res) { res.set_content(req.body, "text/plain"); });
  start(server);

  RawClient c(server.port());
  // Sent in pieces, with pauses: the server must not expect a chunk in one read.
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::this_thread::sleep_for(20ms);
  REQUIRE(c.send("5\r\nhel"));
  std::this_thread::sleep_for(20ms);
  REQUIRE(c.send("lo\r\n1\r\n,\r\nA\r\n world 123\r\n"));
  std::this_thread::sleep_for(20ms);
  REQUIRE(c.send("0\r\n\r\n"));
  const auto first = c.read_response();
  REQUIRE(first.has_value());
  CHECK(first->status == 200);
  CHECK(first->body == "hello, world 123");

  // A chunk extension and a trailer field, on the same connection.
  REQUIRE(
      c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
             "4;name=value\r\nabcd\r\n0\r\nX-Trailer: t\r\n\r\n"));
  const auto second = c.read_response();
  REQUIRE(second.has_value());
  CHECK(second->status == 200);
  CHECK(second->body == "abcd");
}

TEST_CASE("http server: Expect: 100-continue gets an interim 100 before the final response") {
  std::atomic<int> calls{0};
  Server server(quiet_options());
  server.route("POST", "/echo", [&](const Request& req, Response& res) {
    calls.fetch_add(1);
    res.set_content(req.body, "text/plain");
  });
  start(server);

  RawClient c(server.port());
  REQUIRE(
      c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
             "Expect: 100-continue\r\n\r\n"));
  const auto interim = c.read_response();
  REQUIRE(interim.has_value());
  CHECK(interim->status == 100);
  CHECK(interim->status_line.rfind("HTTP/1.1 100", 0) == 0);
  CHECK(calls.load() == 0);

  REQUIRE(c.send("hello"));
  const auto final_response = c.read_response();
  REQUIRE(final_response.has_value());
  CHECK(final_response->status == 200);
  CHECK(final_response->body == "hello");
  CHECK(calls.load() == 1);
}

TEST_CASE("http server: kept-alive requests on one connection are answered in order") {
  Server server(quiet_options());
  server.route("GET", "/n/{id}", [](const Request& req, Response& res) {
    res.set_content("reply " + req.path_params.at(0), "text/plain");
  });
  start(server);

  RawClient c(server.port());
  for (int i = 1; i <= 3; ++i) {
    CAPTURE(i);
    REQUIRE(c.send(get_line("/n/" + std::to_string(i))));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 200);
    CHECK(got->body == "reply " + std::to_string(i));
  }
}

TEST_CASE("http server: pipelined requests are answered in order") {
  Server server(quiet_options());
  server.route("GET", "/n/{id}", [](const Request& req, Response& res) {
    res.set_content("reply " + req.path_params.at(0), "text/plain");
  });
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send(get_line("/n/1") + get_line("/n/2") + get_line("/n/3")));
  for (int i = 1; i <= 3; ++i) {
    CAPTURE(i);
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->body == "reply " + std::to_string(i));
  }
}

TEST_CASE("http server: the connection ends after Connection: close or HTTP/1.0") {
  ServerOptions options = quiet_options();
  // Long beside the bounds below: a close within them is not the timeout's.
  options.connection_timeout = 5s;
  Server server(options);
  server.route("GET", "/n/{id}", [](const Request& req, Response& res) {
    res.set_content("reply " + req.path_params.at(0), "text/plain");
  });
  start(server);

  SUBCASE("Connection: close from the client") {
    RawClient c(server.port());
    REQUIRE(c.send(get_line("/n/1", "Connection: close\r\n")));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->body == "reply 1");
    CHECK(c.closed_within(1s));
  }
  SUBCASE("HTTP/1.0 without keep-alive") {
    RawClient c(server.port());
    REQUIRE(c.send("GET /n/2 HTTP/1.0\r\n\r\n"));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 200);
    CHECK(got->body == "reply 2");
    CHECK(c.closed_within(1s));
  }
}

TEST_CASE("http server: a head over the connection's memory is refused with 431") {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<int> seen;  // guarded by mu
  ServerOptions options = quiet_options();
  options.connection_memory_bytes = 4096;
  Server server(options);
  counting_route(server, "GET", "/n", calls);
  server.set_error_handler([&](const Request&, Response& res) {
    {
      std::lock_guard lock(mu);
      seen.push_back(res.status);
    }
    res.set_content("refused " + std::to_string(res.status), "text/plain");
  });
  start(server);

  {
    // Under the limit: served.
    RawClient c(server.port());
    REQUIRE(c.send(get_line("/n", "X-Fill: " + std::string(500, 'a') + "\r\n")));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 200);
  }
  RawClient c(server.port());
  c.send(get_line("/n", "X-Big: " + std::string(4000, 'a') + "\r\n"));
  const auto got = c.read_response();
  REQUIRE(got.has_value());
  // MHD answers it, with its own body, before any handler or the error handler.
  CHECK(got->status == 431);
  CHECK(c.closed_within(1s));
  CHECK(calls.load() == 1);
}

TEST_CASE("http server: a body over max_body_bytes is refused with 413, without the handler") {
  std::atomic<int> calls{0};
  ServerOptions options = quiet_options();
  options.max_body_bytes = 1000;
  Server server(options);
  server.route("POST", "/upload", [&](const Request& req, Response& res) {
    calls.fetch_add(1);
    res.set_content(std::to_string(req.body.size()), "text/plain");
  });
  server.set_error_handler([](const Request&, Response& res) {
    res.set_content("refused " + std::to_string(res.status), "text/plain");
  });
  start(server);

  {
    // At the limit: served.
    RawClient c(server.port());
    REQUIRE(c.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n" +
                   std::string(1000, 'b')));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 200);
    CHECK(got->body == "1000");
  }
  SUBCASE("by its Content-Length, before the body is sent") {
    RawClient c(server.port());
    REQUIRE(c.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n"));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 413);
    CHECK(got->body == "refused 413");
    CHECK(c.closed_within(1s));
  }
  SUBCASE("by its Content-Length, with the whole body sent before reading") {
    RawClient c(server.port());
    c.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 200000\r\n\r\n" +
           std::string(200000, 'b'));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 413);
    CHECK(c.closed_within(1s));
  }
  SUBCASE("from the library's client") {
    auto client = make_test_client();
    auto got =
        fetch(*client, short_request(url(server, "/upload"), "POST", std::string(200000, 'b')));
    REQUIRE(got.ok());
    CHECK(got->status == 413);
    CHECK(got->body == "refused 413");
  }
  SUBCASE("chunked, once the chunks outgrow it") {
    RawClient c(server.port());
    const std::string chunk = "190\r\n" + std::string(400, 'c') + "\r\n";
    expect_not_served(server,
                      "POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" +
                          chunk + chunk + chunk + "0\r\n\r\n");
  }
  CHECK(calls.load() == 1);
}

TEST_CASE("http server: a malformed request is refused with 400") {
  std::atomic<int> calls{0};
  Server server(quiet_options());
  counting_route(server, "POST", "/n", calls);
  counting_route(server, "GET", "/n", calls);
  start(server);

  SUBCASE("a request line that is not one") { expect_not_served(server, "GARBAGE\r\n\r\n"); }
  SUBCASE("a header line without a colon") {
    expect_refused(server, "GET /n HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n", 400);
  }
  SUBCASE("a Content-Length that is not a number") {
    expect_refused(server, "POST /n HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n", 400);
  }
  SUBCASE("a chunk size that is not hexadecimal") {
    expect_refused(server,
                   "POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "zz\r\nhello\r\n0\r\n\r\n",
                   400);
  }
  CHECK(calls.load() == 0);
}

TEST_CASE("http server: a transfer coding other than chunked is refused") {
  std::atomic<int> calls{0};
  Server server(quiet_options());
  counting_route(server, "POST", "/n", calls);
  start(server);

  SUBCASE("gzip") {
    expect_not_served(server, "POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n");
  }
  SUBCASE("gzip, then chunked") {
    expect_not_served(server,
                      "POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      "0\r\n\r\n");
  }
  CHECK(calls.load() == 0);
}

TEST_CASE("http server: a client silent in the middle of a request is disconnected") {
  std::atomic<int> calls{0};
  ServerOptions options = quiet_options();
  options.connection_timeout = 1s;
  Server server(options);
  counting_route(server, "POST", "/n", calls);
  start(server);

  std::string half;
  SUBCASE("in the head") { half = "POST /n HTTP/1.1\r\nHost: test\r\n"; }
  SUBCASE("in the body") {
    half = "POST /n HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc";
  }
  SUBCASE("in a chunked body") {
    half = "POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
  }
  RawClient c(server.port());
  REQUIRE(c.send(half));
  const auto sent = Clock::now();
  CHECK(c.closed_within(5s));
  CHECK(Clock::now() - sent >= 500ms);
  CHECK(calls.load() == 0);
}

TEST_CASE("http server: an idle kept-alive connection is closed after connection_timeout") {
  ServerOptions options = quiet_options();
  options.connection_timeout = 1s;
  Server server(options);
  ok_route(server, "/n");
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send(get_line("/n")));
  const auto got = c.read_response();
  REQUIRE(got.has_value());
  CHECK(got->status == 200);
  const auto answered = Clock::now();
  CHECK(c.closed_within(5s));
  CHECK(Clock::now() - answered >= 500ms);
}

TEST_CASE("http server: default headers are added unless the handler set the same name") {
  ServerOptions options = quiet_options();
  options.default_headers = {{"X-Frame-Options", "DENY"}, {"Cache-Control", "no-store"}};
  Server server(options);
  server.route("GET", "/plain",
               [](const Request&, Response& res) { res.set_content("plain", "text/plain"); });
  server.route("GET", "/own", [](const Request&, Response& res) {
    res.set_header("cache-control", "max-age=60");
    res.set_content("own", "text/plain");
  });
  start(server);
  auto client = make_test_client();

  auto plain = fetch(*client, short_request(url(server, "/plain")));
  REQUIRE(plain.ok());
  CHECK(plain->header("X-Frame-Options") == "DENY");
  CHECK(plain->header("Cache-Control") == "no-store");

  auto own = fetch(*client, short_request(url(server, "/own")));
  REQUIRE(own.ok());
  CHECK(own->header("X-Frame-Options") == "DENY");
  CHECK(own->header("Cache-Control") == "max-age=60");
  CHECK(count_headers(own->headers, "Cache-Control") == 1);

  // Every response, an error too.
  auto missing = fetch(*client, short_request(url(server, "/missing")));
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  CHECK(missing->header("X-Frame-Options") == "DENY");
}

TEST_CASE("http server: set_content sets the status, Content-Type and Content-Length") {
  const std::string binary("a\0b\r\n\xff", 6);
  Server server(quiet_options());
  server.route("GET", "/text", [](const Request&, Response& res) {
    res.set_content("h\xc3\xa9llo w\xc3\xb6rld", "text/plain; charset=utf-8");
  });
  server.route("GET", "/binary", [&](const Request&, Response& res) {
    res.set_content(binary.data(), binary.size(), "application/octet-stream");
  });
  server.route("GET", "/created", [](const Request&, Response& res) {
    res.status = 201;
    res.set_content("made", "text/plain");
  });
  server.route("GET", "/headers", [](const Request&, Response& res) {
    res.set_header("X-Good", "fine");
    res.set_header("X-Bad", "a\r\nInjected: yes");
    res.set_header("X-Bad-Too", "b\nInjected-Too: yes");
    res.set_content("h", "text/plain");
  });
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send(get_line("/text")));
  const auto text = c.read_response();
  REQUIRE(text.has_value());
  CHECK(text->status == 200);
  CHECK(text->header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(text->header("Content-Length") == "13");
  CHECK(text->body == "h\xc3\xa9llo w\xc3\xb6rld");

  REQUIRE(c.send(get_line("/binary")));
  const auto bin = c.read_response();
  REQUIRE(bin.has_value());
  CHECK(bin->status == 200);
  CHECK(bin->header("Content-Type") == "application/octet-stream");
  CHECK(bin->header("Content-Length") == "6");
  CHECK(bin->body == binary);

  REQUIRE(c.send(get_line("/created")));
  const auto created = c.read_response();
  REQUIRE(created.has_value());
  CHECK(created->status == 201);
  CHECK(created->body == "made");

  REQUIRE(c.send(get_line("/headers")));
  const auto headers = c.read_response();
  REQUIRE(headers.has_value());
  CHECK(headers->header("X-Good") == "fine");
  CHECK_FALSE(headers->header("X-Bad").has_value());
  CHECK_FALSE(headers->header("X-Bad-Too").has_value());
  CHECK_FALSE(headers->header("Injected").has_value());
  CHECK_FALSE(headers->header("Injected-Too").has_value());
  CHECK(headers->body == "h");
}

TEST_CASE("http server: a handler that throws gets the exception handler's response") {
  Server server(quiet_options());
  server.route("GET", "/throws",
               [](const Request&, Response&) { throw std::runtime_error("boom"); });
  server.route("GET", "/fine",
               [](const Request&, Response& res) { res.set_content("fine", "text/plain"); });
  server.set_exception_handler([](const Request& req, Response& res, std::exception_ptr e) {
    std::string what = "?";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    res.status = 503;
    res.set_content("caught " + what + " at " + req.path, "text/plain");
  });
  start(server);
  auto client = make_test_client();

  auto got = fetch(*client, short_request(url(server, "/throws")));
  REQUIRE(got.ok());
  CHECK(got->status == 503);
  CHECK(got->body == "caught boom at /throws");

  auto fine = fetch(*client, short_request(url(server, "/fine")));
  REQUIRE(fine.ok());
  CHECK(fine->status == 200);
  CHECK(fine->body == "fine");
}

TEST_CASE("http server: a handler that throws without an exception handler is a 500") {
  Server server(quiet_options());
  server.route("GET", "/throws", [](const Request&, Response& res) {
    res.set_content("half done", "text/plain");
    throw std::runtime_error("boom");
  });
  server.route("GET", "/throws-int", [](const Request&, Response&) { throw 42; });
  start(server);
  auto client = make_test_client();

  for (const char* path : {"/throws", "/throws-int"}) {
    CAPTURE(path);
    auto got = fetch(*client, short_request(url(server, path)));
    REQUIRE(got.ok());
    CHECK(got->status == 500);
    CHECK(got->body.empty());
  }
}

TEST_CASE("http server: stop() closes idle kept-alive connections at once") {
  ServerOptions options = quiet_options();
  options.connection_timeout = 5s;
  Server server(options);
  ok_route(server, "/n");
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send(get_line("/n")));
  REQUIRE(c.read_response().has_value());
  auto client = make_test_client();
  auto got = fetch(*client, short_request(url(server, "/n")));
  REQUIRE(got.ok());

  const auto before = Clock::now();
  server.stop();
  CHECK(Clock::now() - before < 2s);
  CHECK(c.closed_within(1s));
}

TEST_CASE("http server: start() and stop() of an unstarted or stopped server are harmless") {
  {
    Server never_bound(quiet_options());
    never_bound.stop();
    never_bound.stop();
  }
  {
    Server never_started(quiet_options());
    const Status bound = never_started.bind("127.0.0.1", 0);
    REQUIRE(bound.ok());
    never_started.stop();
  }
  {
    // Destroyed without stop(): the destructor stops it.
    Server server(quiet_options());
    start(server);
  }
  Server server(quiet_options());
  ok_route(server, "/n");
  start(server);
  auto client = make_test_client();
  auto got = fetch(*client, short_request(url(server, "/n")));
  REQUIRE(got.ok());
  CHECK(got->status == 200);

  server.stop();
  server.stop();
  CHECK_FALSE(server.start().ok());  // a stopped server: no longer bound, nothing to start
  server.stop();
  // No longer served.
  HttpRequest after = short_request(url(server, "/n"));
  after.first_byte_timeout = 500ms;
  auto refused = fetch(*client, after);
  CHECK_FALSE(refused.ok());
}

TEST_CASE("http server: bind picks a free port for 0 and reports a port in use") {
  Server first(quiet_options());
  const Status bound = first.bind("127.0.0.1", 0);
  REQUIRE(bound.ok());
  CHECK(first.port() > 0);

  Server second(quiet_options());
  const Status in_use = second.bind("127.0.0.1", first.port());
  CHECK(in_use.code() == StatusCode::kUnavailable);

  // A port some other socket listens on.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  Server third(quiet_options());
  const Status taken = third.bind("127.0.0.1", ntohs(addr.sin_port));
  ::close(fd);
  CHECK(taken.code() == StatusCode::kUnavailable);

  Server fourth(quiet_options());
  const Status not_address = fourth.bind("not-an-address", 0);
  CHECK(not_address.code() == StatusCode::kInvalidArgument);

  // The first one serves on the port it picked.
  ok_route(first, "/n");
  REQUIRE(first.start().ok());
  auto client = make_test_client();
  auto got = fetch(*client, short_request(url(first, "/n")));
  REQUIRE(got.ok());
  CHECK(got->body == "ok");
}

// ---- routes, streams, deferred responses -------------------------------------------------

TEST_CASE("http server: routes by method and path template, with the parameters in path_params") {
  Server server(quiet_options());
  for (const std::string method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    server.route(method, "/api/items/{id}", [method](const Request& req, Response& res) {
      res.set_content(
          method + " " + req.path_params.at(0) + " " + req.method + " [" + req.body + "]",
          "text/plain");
    });
  }
  server.route("GET", "/api/items/{id}/notes/{name}", [](const Request& req, Response& res) {
    res.set_content(req.path + " | " + req.path_params.at(0) + " | " + req.path_params.at(1) +
                        " | " + std::to_string(req.path_params.size()),
                    "text/plain");
  });
  // The first route that matches wins, even when a later one matches more exactly.
  server.route("GET", "/first/{what}",
               [](const Request&, Response& res) { res.set_content("broad", "text/plain"); });
  server.route("GET", "/first/exact",
               [](const Request&, Response& res) { res.set_content("exact", "text/plain"); });
  start(server);
  auto client = make_test_client();

  for (const std::string method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    CAPTURE(method);
    const bool with_body = method != "GET" && method != "DELETE";
    auto got = fetch(
        *client, short_request(url(server, "/api/items/42"), method, with_body ? "payload" : ""));
    REQUIRE(got.ok());
    CHECK(got->status == 200);
    CHECK(got->body == method + " 42 " + method + " [" + (with_body ? "payload" : "") + "]");
  }
  auto notes = fetch(*client, short_request(url(server, "/api/items/7/notes/draft")));
  REQUIRE(notes.ok());
  CHECK(notes->body == "/api/items/7/notes/draft | 7 | draft | 2");
  auto first = fetch(*client, short_request(url(server, "/first/exact")));
  REQUIRE(first.ok());
  CHECK(first->body == "broad");
  // The template must match the whole path, segment by segment; the method must match too.
  for (const char* path : {"/api/items/42/extra", "/x/api/items/42", "/api/items/abc",
                           "/api/items/", "/api/items", "/api/items/4a2", "/first/"}) {
    CAPTURE(path);
    auto got = fetch(*client, short_request(url(server, path)));
    REQUIRE(got.ok());
    CHECK(got->status == 404);
  }
  auto wrong_method = fetch(*client, short_request(url(server, "/first/exact"), "POST", "x"));
  REQUIRE(wrong_method.ok());
  CHECK(wrong_method->status == 404);
}

TEST_CASE("http server: a stream written from another thread arrives in order, holding no worker") {
  std::mutex mu;
  std::shared_ptr<Stream> stream;  // guarded by mu
  Flag opened;
  ServerOptions options = quiet_options();
  options.threads = 1;
  Server server(options);
  server.route("GET", "/stream", [&](const Request&, Response& res) {
    auto s = res.stream("text/event-stream");
    CHECK(s->write("one\n"));
    {
      std::lock_guard lock(mu);
      stream = s;
    }
    opened.raise();
  });
  ok_route(server, "/n");
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send(get_line("/stream")));
  REQUIRE(opened.wait(2s));
  CHECK(c.read_until("one\n"));
  // The one worker is free while the stream waits.
  auto client = make_test_client();
  auto other = fetch(*client, short_request(url(server, "/n")));
  REQUIRE(other.ok());
  CHECK(other->body == "ok");
  std::thread writer([&] {
    std::lock_guard lock(mu);
    CHECK(stream->write("two\n"));
    CHECK(stream->write("three\n"));
    stream->close();
    CHECK_FALSE(stream->write("after close"));
  });
  writer.join();
  CHECK(c.read_until("three\n"));
  CHECK(c.read_until("0\r\n\r\n"));  // the chunked body's end
}

TEST_CASE("http server: a stream whose client left fails write(); stop() ends open streams") {
  std::mutex mu;
  std::vector<std::shared_ptr<Stream>> streams;  // guarded by mu
  Server server(quiet_options());
  server.route("GET", "/stream", [&](const Request&, Response& res) {
    auto s = res.stream("text/plain");
    s->write("hello\n");
    std::lock_guard lock(mu);
    streams.push_back(s);
  });
  start(server);
  {
    RawClient gone(server.port());
    REQUIRE(gone.send(get_line("/stream")));
    REQUIRE(gone.read_until("hello\n"));
  }
  // The departure shows when the server next writes to the connection.
  CHECK(eventually(
      [&] {
        std::lock_guard lock(mu);
        return !streams.empty() && !streams[0]->write(std::string(4096, 'x'));
      },
      5s));

  RawClient open(server.port());
  REQUIRE(open.send(get_line("/stream")));
  REQUIRE(open.read_until("hello\n"));
  const auto before = Clock::now();
  server.stop();
  CHECK(Clock::now() - before < 2s);
  CHECK(open.closed_within(1s));
  std::lock_guard lock(mu);
  REQUIRE(streams.size() == 2);
  CHECK_FALSE(streams[1]->open());
  CHECK_FALSE(streams[1]->write("after stop"));
}

TEST_CASE("http server: a deferred response is completed later from any thread") {
  std::mutex mu;
  std::vector<std::shared_ptr<Deferred>> waiting;  // guarded by mu
  ServerOptions options = quiet_options();
  options.threads = 1;
  Server server(options);
  server.route("POST", "/later", [&](const Request& req, Response& res) {
    auto d = res.defer();
    res.set_content("discarded", "text/plain");
    std::lock_guard lock(mu);
    waiting.push_back(d);
    CHECK(req.body == "question");
  });
  ok_route(server, "/n");
  server.set_error_handler([](const Request&, Response& res) {
    res.set_content(R"({"error":"e)" + std::to_string(res.status) + "\"}", "application/json");
  });
  start(server);

  RawClient c(server.port());
  REQUIRE(c.send("POST /later HTTP/1.1\r\nHost: test\r\nContent-Length: 8\r\n\r\nquestion"));
  CHECK(eventually([&] {
    std::lock_guard lock(mu);
    return waiting.size() == 1;
  }));
  // Nothing holds the one worker while the answer is awaited.
  auto client = make_test_client();
  auto other = fetch(*client, short_request(url(server, "/n")));
  REQUIRE(other.ok());
  CHECK(other->body == "ok");
  std::thread answerer([&] {
    Response r;
    r.set_content("the answer", "text/plain");
    std::lock_guard lock(mu);
    waiting[0]->complete(std::move(r));
    waiting[0]->complete(Response());  // ignored
  });
  answerer.join();
  auto got = c.read_response();
  REQUIRE(got.has_value());
  CHECK(got->status == 200);
  CHECK(got->body == "the answer");

  // A Deferred dropped without an answer is a 500 (the error handler's body).
  REQUIRE(c.send("POST /later HTTP/1.1\r\nHost: test\r\nContent-Length: 8\r\n\r\nquestion"));
  CHECK(eventually([&] {
    std::lock_guard lock(mu);
    return waiting.size() == 2;
  }));
  {
    std::lock_guard lock(mu);
    waiting.clear();
  }
  got = c.read_response();
  REQUIRE(got.has_value());
  CHECK(got->status == 500);
  CHECK(got->body == R"({"error":"e500"})");

  // stop() answers one still waiting with 503.
  RawClient pending(server.port());
  REQUIRE(pending.send("POST /later HTTP/1.1\r\nHost: test\r\nContent-Length: 8\r\n\r\nquestion"));
  CHECK(eventually([&] {
    std::lock_guard lock(mu);
    return waiting.size() == 1;
  }));
  server.stop();
  got = pending.read_response();
  REQUIRE(got.has_value());
  CHECK(got->status == 503);
  std::lock_guard lock(mu);
  waiting[0]->complete(Response());  // after stop(): ignored, and harmless
}

// ---- the findings of the security review -----------------------------------------------

TEST_CASE("http server: a path of 60,000 digits is refused with 414 and the server serves on") {
  std::atomic<int> calls{0};
  Server server(quiet_options());
  server.route("GET", "/api/replies/{id}", [&](const Request&, Response& res) {
    calls.fetch_add(1);
    res.set_content("reply", "text/plain");
  });
  ok_route(server, "/health");
  start(server);
  {
    RawClient c(server.port());
    c.send(get_line("/api/replies/" + std::string(60000, '7')));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 414);
  }
  {
    // Just over the 8 KiB limit, within the connection's memory: ours, with the error handler.
    RawClient c(server.port());
    REQUIRE(c.send(get_line("/api/replies/" + std::string(8200, '7'))));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 414);
  }
  {
    // The query counts too.
    RawClient c(server.port());
    REQUIRE(c.send(get_line("/health?q=" + std::string(8200, 'q'))));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 414);
  }
  CHECK(calls.load() == 0);
  auto client = make_test_client();
  auto long_id =
      fetch(*client, short_request(url(server, "/api/replies/" + std::string(4000, '7'))));
  REQUIRE(long_id.ok());
  CHECK(long_id->status == 200);
  auto health = fetch(*client, short_request(url(server, "/health")));
  REQUIRE(health.ok());
  CHECK(health->body == "ok");
}

TEST_CASE("http server: a chunk size of FFFFFFFFFFFFFFFF does not pass the body limit") {
  std::atomic<int> calls{0};
  ServerOptions options = quiet_options();
  options.max_body_bytes = 256 * 1024;
  Server server(options);
  counting_route(server, "POST", "/n", calls);
  start(server);
  RawClient c(server.port());
  REQUIRE(
      c.send("POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\nFFFFFFFFFFFFFFFF\r\n"));
  // The chunk's data: the server must stop reading once the body passes the limit, long
  // before 16 MiB (64 times the limit) went in.
  const std::string block(0x10000, 'x');
  std::size_t sent = 0;
  while (sent < (std::size_t{16} << 20) && c.send(block, 1s)) sent += block.size();
  CHECK(sent < (std::size_t{16} << 20));
  const auto got = c.read_response();
  if (got) CHECK(got->status >= 400);
  CHECK(c.closed_within(5s));
  CHECK(calls.load() == 0);
}

TEST_CASE("http server: a 200 MiB upload is cut off at the body limit") {
  std::atomic<int> calls{0};
  ServerOptions options = quiet_options();
  options.max_body_bytes = 256 * 1024;
  Server server(options);
  counting_route(server, "POST", "/n", calls);
  start(server);
  SUBCASE("chunked: counted as it arrives") {
    RawClient c(server.port());
    REQUIRE(c.send("POST /n HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    std::size_t sent = 0;
    while (sent < (std::size_t{200} << 20) && c.send(chunk, 1s)) sent += 0x10000;
    // The server stopped reading long before 200 MiB: the limit plus what the sockets buffer.
    CHECK(sent < (std::size_t{16} << 20));
    const auto got = c.read_response();
    if (got) CHECK(got->status == 413);
    CHECK(c.closed_within(5s));
  }
  SUBCASE("Content-Length: refused before the body is read") {
    RawClient c(server.port());
    REQUIRE(c.send("POST /n HTTP/1.1\r\nHost: test\r\nContent-Length: 209715200\r\n\r\n"));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 413);
    CHECK(c.closed_within(2s));
  }
  CHECK(calls.load() == 0);
}

TEST_CASE("http server: 100 connections sending half a request head do not stop /health") {
  ServerOptions options = quiet_options();
  options.per_address_connection_limit = 200;
  Server server(options);
  ok_route(server, "/health");
  start(server);
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 100; ++i) {
    slow.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(slow.back()->send("GET /health HTTP/1.1\r\nHost: te"));
  }
  RawClient c(server.port());
  REQUIRE(c.send(get_line("/health")));
  // The bound only keeps a broken server from hanging the test.
  const auto got = c.read_response(false, 10s);
  REQUIRE(got.has_value());
  CHECK(got->status == 200);
  CHECK(got->body == "ok");
}

TEST_CASE("http server: the connection over the per-address limit is closed") {
  ServerOptions options = quiet_options();
  options.per_address_connection_limit = 4;
  Server server(options);
  ok_route(server, "/n");
  start(server);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(held.back()->send(get_line("/n")));
    REQUIRE(held.back()->read_response().has_value());  // each is open and served
  }
  RawClient fifth(server.port());
  fifth.send(get_line("/n"));
  CHECK_FALSE(fifth.read_response().has_value());
  CHECK(fifth.closed_within(2s));
  // One closes: a new one is served.
  held.pop_back();
  CHECK(eventually(
      [&] {
        RawClient again(server.port());
        return again.send(get_line("/n")) && again.read_response().has_value();
      },
      5s));
}

TEST_CASE("http server: a Host not in allowed_hosts is refused with 421 and the error body") {
  std::atomic<int> calls{0};
  ServerOptions options = quiet_options();
  options.allowed_hosts = {"127.0.0.1:8080", "Admin.Example.org"};
  Server server(options);
  counting_route(server, "GET", "/n", calls);
  server.set_error_handler([](const Request&, Response& res) {
    res.set_content("refused " + std::to_string(res.status), "text/plain");
  });
  start(server);
  for (const char* host : {"127.0.0.1:8080", "admin.example.org"}) {
    CAPTURE(host);
    RawClient c(server.port());
    REQUIRE(c.send("GET /n HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 200);
  }
  for (const char* host : {"evil.example.com", "127.0.0.1:8081", "admin.example.org.evil.com"}) {
    CAPTURE(host);
    RawClient c(server.port());
    REQUIRE(c.send("GET /n HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    const auto got = c.read_response();
    REQUIRE(got.has_value());
    CHECK(got->status == 421);
    CHECK(got->body == "refused 421");
  }
  CHECK(calls.load() == 2);
}
