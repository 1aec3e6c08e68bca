// How the curl HttpClient copes with many slow requests at once: N requests are sent together
// to an in-process server that answers each after a delay. Measures the client: wall time, the
// process's peak thread count and peak resident memory (sampled from /proc/self/status while the
// requests are in flight), and how many connections the server accepted.
//
// The server is a single-threaded epoll loop written here, so that it adds one thread, not one
// per request, and the thread count shows the client's cost.
//
// Usage: llmassist-bench-http [requests=1000] [delay_ms=1000] [rounds=2]
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>

#include "llmassist/curl_http_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Answers every GET with "ok" after a fixed delay; keeps connections alive.
class DelayingServer {
 public:
  explicit DelayingServer(std::chrono::milliseconds delay) : delay_(delay) {
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
      int wait_ms = -1;
      if (!due_.empty()) {
        const auto until =
            std::chrono::ceil<std::chrono::milliseconds>(due_.begin()->first - Clock::now());
        wait_ms = static_cast<int>(std::max<std::int64_t>(0, until.count()));
      }
      const int n = ::epoll_wait(epoll_fd_, events, 256, wait_ms);
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
    // Requests carry no body: each "\r\n\r\n" ends one.
    std::string& in = it->second.in;
    for (auto end = in.find("\r\n\r\n"); end != std::string::npos; end = in.find("\r\n\r\n")) {
      in.erase(0, end + 4);
      due_.emplace(Clock::now() + delay_, std::pair{fd, it->second.generation});
    }
  }

  void answer_due() {
    static constexpr std::string_view kResponse =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    const auto now = Clock::now();
    while (!due_.empty() && due_.begin()->first <= now) {
      const auto [fd, generation] = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = connections_.find(fd);
      if (it == connections_.end() || it->second.generation != generation) continue;
      // A response this small fits an empty socket buffer in one write.
      [[maybe_unused]] auto n = ::write(fd, kResponse.data(), kResponse.size());
    }
  }

  const std::chrono::milliseconds delay_;
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
long proc_status(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 1000;
  const auto delay = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 1000);
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 2;

  // Each request holds two descriptors in this process (client and server side).
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  DelayingServer server(delay);
  const long threads_before = proc_status("Threads");
  const long rss_before_kb = proc_status("VmHWM");

  auto made = llmassist::make_curl_http_client({.logger = llmassist::null_logger()});
  if (!made.ok()) {
    fmt::print(stderr, "cannot create the client: {}\n", made.status().to_string());
    return 1;
  }
  auto client = std::move(made).value();
  const std::string url = fmt::format("http://127.0.0.1:{}/slow", server.port());

  fmt::print("{} concurrent GETs, server delay {} ms, {} rounds on one client\n", requests,
             delay.count(), rounds);
  fmt::print("threads before the client: {} (main + bench server); open files limit {}\n",
             threads_before, static_cast<long>(files.rlim_cur));
  for (int round = 1; round <= rounds; ++round) {
    std::atomic<int> done{0};
    std::atomic<int> ok{0};
    const auto started = Clock::now();
    for (int i = 0; i < requests; ++i) {
      llmassist::HttpRequest request;
      request.url = url;
      client->send(std::move(request), [&](llmassist::Result<llmassist::HttpResponse> r) {
        if (r.ok() && r->status == 200) ok.fetch_add(1);
        done.fetch_add(1);
      });
    }
    long peak_threads = 0;
    while (done.load() < requests) {
      peak_threads = std::max(peak_threads, proc_status("Threads"));
      if (Clock::now() - started > 60s) {
        fmt::print("round {}: gave up after 60 s with {} of {} done\n", round, done.load(),
                   requests);
        return 1;
      }
      std::this_thread::sleep_for(5ms);
    }
    const auto wall = std::chrono::duration<double>(Clock::now() - started).count();
    fmt::print(
        "round {}: {} ok of {} in {:.3f} s wall (ideal {:.3f} s); peak threads {}; "
        "connections accepted so far {}\n",
        round, ok.load(), requests, wall, std::chrono::duration<double>(delay).count(),
        peak_threads, server.connections_accepted());
  }
  const long rss_after_kb = proc_status("VmHWM");
  fmt::print("peak RSS (VmHWM): {} kB before the client, {} kB after ({} kB for the client)\n",
             rss_before_kb, rss_after_kb, rss_after_kb - rss_before_kb);
  client.reset();
  return 0;
}
