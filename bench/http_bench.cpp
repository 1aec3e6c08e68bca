// How the libcurl HttpClient copes with many slow requests at once: N requests are sent together
// to a server that answers each after a delay. Measures the client: wall time, the process's
// peak thread count, how many connections the server accepted, and memory per request in
// flight: resident (VmRSS) and private (Private_Clean + Private_Dirty of
// /proc/self/smaps_rollup), sampled before the client exists and while the requests are in
// flight; the difference at the peak divided by N.
//
// The server is a single-threaded epoll loop (bench/support/bench_server.h) in a child process,
// so that this process holds the client alone: its threads and its memory. (Until 2026-12 it
// ran in this process, and its side of every connection counted as the client's.)
//
// Usage: llmassist-bench-http [requests=1000] [delay_ms=1000] [rounds=2]
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include "llmassist/http/curl_http_client.h"
#include "support/bench_server.h"

namespace {

using llmassist::bench::Clock;
using llmassist::bench::DelayingServer;
using llmassist::bench::MemoryPeak;
using llmassist::bench::private_kb;
using llmassist::bench::proc_status;
using namespace std::chrono_literals;

// The server, in a child process. `accepted` is shared memory the child keeps up to date.
struct ServerProcess {
  pid_t pid = -1;
  int port = 0;
  std::atomic<long>* accepted = nullptr;

  explicit ServerProcess(std::chrono::milliseconds delay) {
    void* shared = ::mmap(nullptr, sizeof(std::atomic<long>), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fds[2];
    if (shared == MAP_FAILED || ::pipe(fds) != 0) {
      std::perror("bench server: mmap or pipe");
      std::exit(1);
    }
    accepted = new (shared) std::atomic<long>(0);
    pid = ::fork();
    if (pid < 0) {
      std::perror("bench server: fork");
      std::exit(1);
    }
    if (pid == 0) {
      ::close(fds[0]);
      DelayingServer server(delay);
      const int p = server.port();
      if (::write(fds[1], &p, sizeof p) != sizeof p) std::_Exit(1);
      ::close(fds[1]);
      for (;;) {  // until the parent kills it
        accepted->store(static_cast<long>(server.connections_accepted()));
        std::this_thread::sleep_for(5ms);
      }
    }
    ::close(fds[1]);
    if (::read(fds[0], &port, sizeof port) != sizeof port) {
      std::fprintf(stderr, "bench server: the child did not start\n");
      std::exit(1);
    }
    ::close(fds[0]);
  }
  ~ServerProcess() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  // What the child saw at its last update (every 5 ms).
  [[nodiscard]] long connections_accepted() const {
    std::this_thread::sleep_for(20ms);
    return accepted->load();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 1000;
  const auto delay = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 1000);
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 2;

  // Each request holds a descriptor in each process.
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  ServerProcess server(delay);
  const long threads_before = proc_status("Threads");
  const long rss_before_kb = proc_status("VmHWM");
  const long current_rss_before_kb = proc_status("VmRSS");
  const long private_before_kb = private_kb();

  auto made = llmassist::make_curl_http_client({.logger = llmassist::null_logger()});
  if (!made.ok()) {
    fmt::print(stderr, "cannot create the client: {}\n", made.status().to_string());
    return 1;
  }
  auto client = std::move(made).value();
  const std::string url = fmt::format("http://127.0.0.1:{}/slow", server.port);

  fmt::print("{} concurrent GETs, server delay {} ms, {} rounds on one client\n", requests,
             delay.count(), rounds);
  fmt::print(
      "threads before the client: {} (main; the server is a process of its own); open "
      "files limit {}\n",
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
    MemoryPeak memory;
    while (done.load() < requests) {
      peak_threads = std::max(peak_threads, proc_status("Threads"));
      memory.sample();
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
    fmt::print(
        "round {}: memory before the client: RSS {} kB, private {} kB; at the peak: RSS {} kB, "
        "private {} kB; per request in flight: RSS {:.2f} KiB, private {:.2f} KiB\n",
        round, current_rss_before_kb, private_before_kb, memory.peak_rss_kb, memory.peak_private_kb,
        static_cast<double>(memory.peak_rss_kb - current_rss_before_kb) / requests,
        static_cast<double>(memory.peak_private_kb - private_before_kb) / requests);
  }
  const long rss_after_kb = proc_status("VmHWM");
  fmt::print("peak RSS (VmHWM): {} kB before the client, {} kB after ({} kB for the client)\n",
             rss_before_kb, rss_after_kb, rss_after_kb - rss_before_kb);
  client.reset();
  return 0;
}
