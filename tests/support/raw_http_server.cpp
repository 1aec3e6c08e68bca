#include "support/raw_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <stdexcept>

namespace llmassist::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxHead = std::size_t{1} << 20;
constexpr auto kWriteBound = std::chrono::seconds(5);

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The head (request line and header lines, without the final empty line) parsed into
// `request`; false when it is not a request.
bool parse_head(std::string_view head, RawRequest& request) {
  std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1) return false;
  request.method = line.substr(0, sp1);
  request.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  request.version = line.substr(sp2 + 1);
  while (line_end != std::string_view::npos) {
    std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    line = head.substr(start, line_end == std::string_view::npos ? line_end : line_end - start);
    if (line.empty()) continue;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    request.headers.emplace_back(std::string(line.substr(0, colon)),
                                 std::string(trim(line.substr(colon + 1))));
  }
  return true;
}

}  // namespace

int RawRequest::count_headers(std::string_view name) const noexcept {
  return static_cast<int>(std::count_if(headers.begin(), headers.end(),
                                        [&](const auto& h) { return iequals(h.first, name); }));
}

// --- RawConnection ---

RawConnection::RawConnection(RawHttpServer& server, int fd, int index)
    : server_(server), fd_(fd), index_(index) {}

RawConnection::~RawConnection() { close(); }

void RawConnection::close() {
  std::lock_guard lock(server_.mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawConnection::fill(Clock::time_point deadline) {
  if (eof_ || fd_ < 0) return false;
  char chunk[65536];
  while (true) {
    if (!server_.wait_ready(fd_, POLLIN, deadline)) return false;
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    eof_ = true;  // end of stream, or a reset: either way the client is gone
    return false;
  }
}

std::optional<RawRequest> RawConnection::read_request(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHead || !fill(deadline)) return std::nullopt;
  }
  RawRequest request;
  request.connection = index_;
  request.head = buffer_.substr(0, head_end + 4);
  if (!parse_head(std::string_view(buffer_).substr(0, head_end), request)) return std::nullopt;
  buffer_.erase(0, head_end + 4);
  std::size_t length = 0;
  if (auto value = request.header("Content-Length")) {
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), length);
    if (ec != std::errc() || end != value->data() + value->size()) return std::nullopt;
  }
  while (buffer_.size() < length) {
    if (!fill(deadline)) return std::nullopt;
  }
  request.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  server_.record(request);
  return request;
}

bool RawConnection::write(std::string_view bytes) {
  const auto deadline = Clock::now() + kWriteBound;
  while (!bytes.empty()) {
    if (fd_ < 0) return false;
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!server_.wait_ready(fd_, POLLOUT, deadline)) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool RawConnection::write_in_pieces(std::string_view bytes, std::size_t piece,
                                    std::chrono::milliseconds pause) {
  piece = std::max<std::size_t>(piece, 1);
  while (!bytes.empty()) {
    std::size_t n = std::min(piece, bytes.size());
    if (!write(bytes.substr(0, n))) return false;
    bytes.remove_prefix(n);
    if (!bytes.empty() && pause.count() > 0 && !sleep(pause)) return false;
  }
  return true;
}

bool RawConnection::wait_for_client_close(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  return eof_;
}

bool RawConnection::sleep(std::chrono::milliseconds duration) {
  std::unique_lock lock(server_.mu_);
  return !server_.wake_.wait_for(lock, duration, [&] { return server_.stopping_; });
}

bool RawConnection::relay_to(int port) {
  int up = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (up < 0) return false;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{up};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return false;
    if (!server_.wait_ready(up, POLLOUT, Clock::now() + kWriteBound)) return false;
    int error = 0;
    socklen_t len = sizeof error;
    if (::getsockopt(up, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) return false;
  }
  int one = 1;
  ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  auto send_all = [&](int fd, std::string_view bytes) {
    const auto deadline = Clock::now() + kWriteBound;
    while (!bytes.empty()) {
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!server_.wait_ready(fd, POLLOUT, deadline)) return false;
      } else {
        return false;
      }
    }
    return true;
  };
  // Returns false when `from` has ended or failed; what it sent before is passed on first.
  auto pass = [&](int from, int to) {
    char chunk[65536];
    ssize_t n = ::recv(from, chunk, sizeof chunk, 0);
    if (n > 0) return send_all(to, std::string_view(chunk, static_cast<std::size_t>(n)));
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
  };

  if (!buffer_.empty()) {
    if (!send_all(up, buffer_)) return true;
    buffer_.clear();
  }
  if (eof_) return true;
  // Bounded like every other wait: a tunnel idle this long is given up.
  constexpr int kIdleMs = 10000;
  while (true) {
    pollfd fds[3] = {{fd_, POLLIN, 0}, {up, POLLIN, 0}, {server_.wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 3, kIdleMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[2].revents != 0) return true;
    if (fds[0].revents != 0 && !pass(fd_, up)) break;
    if (fds[1].revents != 0 && !pass(up, fd_)) break;
  }
  // One side ended: the other learns it as an end of stream.
  ::shutdown(up, SHUT_WR);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  return true;
}

// --- RawHttpServer ---

RawHttpServer::RawHttpServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("raw HTTP server: socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("raw HTTP server: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    ::close(listen_fd_);
    throw std::runtime_error("raw HTTP server: eventfd() failed");
  }
}

RawHttpServer::~RawHttpServer() {
  stop();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void RawHttpServer::start(Handler handler) {
  handler_ = std::move(handler);
  acceptor_ = std::thread([this] { accept_loop(); });
}

void RawHttpServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& w : workers_) {
      if (w.connection->fd_ >= 0) ::shutdown(w.connection->fd_, SHUT_RDWR);
    }
  }
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  wake_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Worker> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& w : workers) w.thread.join();
}

void RawHttpServer::accept_loop() {
  while (wait_ready(listen_fd_, POLLIN, Clock::time_point::max())) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    auto connection =
        std::unique_ptr<RawConnection>(new RawConnection(*this, fd, connections_.fetch_add(1)));
    RawConnection* raw = connection.get();
    workers_.push_back(Worker{std::move(connection), std::thread([this, raw] {
                                // A handler must not throw (doctest's REQUIRE would, on a thread
                                // that cannot report it): such a connection is simply closed.
                                try {
                                  handler_(*raw);
                                } catch (...) {
                                }
                                raw->close();
                              })});
  }
}

bool RawHttpServer::wait_ready(int fd, short events, Clock::time_point deadline) const {
  while (true) {
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      timeout_ms = static_cast<int>(std::min<long long>(left, 60'000));
    }
    pollfd fds[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, timeout_ms);
    if (ready < 0 && errno != EINTR) return false;
    if (fds[1].revents != 0) return false;
    if (ready > 0 && fds[0].revents != 0) return true;
  }
}

void RawHttpServer::record(const RawRequest& request) {
  {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
  }
  wake_.notify_all();
}

std::vector<RawRequest> RawHttpServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::string RawHttpServer::authority() const { return "127.0.0.1:" + std::to_string(port_); }

std::string RawHttpServer::url(std::string_view path) const {
  return "http://" + authority() + std::string(path);
}

void RawHttpServer::notify() {
  { std::lock_guard lock(mu_); }
  wake_.notify_all();
}

bool RawHttpServer::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

}  // namespace llmassist::testing
