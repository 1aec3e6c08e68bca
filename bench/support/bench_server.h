// Shared by the benchmarks: a one-thread epoll HTTP server with a fixed delay, and a reader of
// /proc/self/status.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace llmassist::bench {

using Clock = std::chrono::steady_clock;

// Answers every request with one fixed response after a fixed delay, on one epoll thread, keeping
// connections alive: a server that holds thousands of slow requests at the cost of one thread, so
// that a benchmark's thread count shows the client's cost. Requests may carry a body
// (Content-Length); chunked request bodies are not supported.
class DelayingServer {
 public:
  // `body` is sent with `content_type`; a delay of zero answers at once.
  DelayingServer(std::chrono::milliseconds delay, std::string body = "ok",
                 std::string content_type = "text/plain")
      : delay_(delay),
        response_("HTTP/1.1 200 OK\r\nContent-Type: " + content_type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd_ < 0 ||
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 4096) != 0) {
      std::perror("bench server: listen");
      std::exit(1);
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    watch(listen_fd_);
    watch(stop_fd_);
    thread_ = std::thread([this] { run(); });
  }

  ~DelayingServer() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
    for (const auto& [fd, c] : connections_) ::close(fd);
    ::close(listen_fd_);
    ::close(stop_fd_);
    ::close(epoll_fd_);
  }

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int connections_accepted() const { return accepted_.load(); }

 private:
  struct Connection {
    std::string in;
    std::uint64_t generation = 0;
  };

  void watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  void run() {
    epoll_event events[256];
    while (true) {
      // A nanosecond timeout (epoll_pwait2): a millisecond one would answer up to 1 ms late, and
      // a benchmark of "100 ms" would measure a slower LLM than it says.
      timespec wait{};
      timespec* timeout = nullptr;
      if (!due_.empty()) {
        const auto until = std::max(Clock::duration::zero(), due_.begin()->first - Clock::now());
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until).count();
        wait.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        wait.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        timeout = &wait;
      }
      const int n = ::epoll_pwait2(epoll_fd_, events, 256, timeout, nullptr);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd_) return;
        if (fd == listen_fd_) {
          accept_all();
        } else {
          read_from(fd);
        }
      }
      answer_due();
    }
  }

  void accept_all() {
    while (true) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      const int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      accepted_.fetch_add(1);
      connections_[fd] = Connection{{}, ++generation_};
      watch(fd);
    }
  }

  void read_from(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    char buffer[4096];
    while (true) {
      const ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got > 0) {
        it->second.in.append(buffer, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      ::close(fd);  // end of stream or error; closing also removes it from the epoll set
      connections_.erase(it);
      return;
    }
    // Each request is its head, up to "\r\n\r\n", and Content-Length bytes of body.
    std::string& in = it->second.in;
    while (true) {
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) break;
      const std::size_t length = content_length(std::string_view(in).substr(0, end));
      if (in.size() < end + 4 + length) break;
      in.erase(0, end + 4 + length);
      due_.emplace(Clock::now() + delay_, std::pair{fd, it->second.generation});
    }
  }

  static std::size_t content_length(std::string_view head) {
    for (std::size_t pos = 0; pos < head.size();) {
      const auto eol = head.find("\r\n", pos);
      const std::string_view line =
          head.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
      if (line.size() > 15 && ::strncasecmp(line.data(), "content-length:", 15) == 0) {
        return std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
      }
      if (eol == std::string_view::npos) break;
      pos = eol + 2;
    }
    return 0;
  }

  void answer_due() {
    const auto now = Clock::now();
    while (!due_.empty() && due_.begin()->first <= now) {
      const auto [fd, generation] = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = connections_.find(fd);
      if (it == connections_.end() || it->second.generation != generation) continue;
      // A response of a few kB fits an empty socket buffer in one write.
      [[maybe_unused]] auto n = ::write(fd, response_.data(), response_.size());
    }
  }

  const std::chrono::milliseconds delay_;
  const std::string response_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::uint64_t generation_ = 0;
  std::unordered_map<int, Connection> connections_;
  std::multimap<Clock::time_point, std::pair<int, std::uint64_t>> due_;
  std::thread thread_;
};

// A "Name:   value kB" field of /proc/self/status, as a number; -1 when missing.
inline long proc_status(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

// Private memory: Private_Clean + Private_Dirty of /proc/self/smaps_rollup, in kB (pages of this
// process alone; shared library pages count in RSS but not here). -1 when unreadable.
inline long private_kb() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  long total = -1;
  while (std::getline(in, line)) {
    for (const char* field : {"Private_Clean:", "Private_Dirty:"}) {
      if (line.rfind(field, 0) == 0) {
        total = std::max(total, 0L) + std::strtol(line.c_str() + std::strlen(field), nullptr, 10);
      }
    }
  }
  return total;
}

// Samples of memory while requests are in flight: the highest seen.
struct MemoryPeak {
  long peak_rss_kb = 0;
  long peak_private_kb = 0;
  void sample() {
    peak_rss_kb = std::max(peak_rss_kb, proc_status("VmRSS"));
    peak_private_kb = std::max(peak_private_kb, private_kb());
  }
};

}  // namespace llmassist::bench
