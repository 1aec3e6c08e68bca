#include "support/mock_http_server.h"

#include <sys/socket.h>

#include <csignal>
#include <functional>
#include <list>
#include <stdexcept>

namespace llmassist::testing {
namespace {

// cpp-httplib hands each accepted connection to its task queue as one task; this queue runs
// every task on a thread of its own (a pool would cap the requests that can wait at once) and
// counts them, which counts the connections.
class ThreadPerConnection final : public httplib::TaskQueue {
 public:
  explicit ThreadPerConnection(std::shared_ptr<std::atomic<int>> counter)
      : counter_(std::move(counter)) {}
  ~ThreadPerConnection() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    counter_->fetch_add(1);
    std::lock_guard lock(mu_);
    reap_finished();
    auto finished = std::make_shared<std::atomic<bool>>(false);
    workers_.push_back(Worker{std::thread([fn = std::move(fn), finished] {
                                fn();
                                finished->store(true);
                              }),
                              finished});
  }

  void shutdown() override {
    std::list<Worker> workers;
    {
      std::lock_guard lock(mu_);
      workers.swap(workers_);
    }
    for (auto& w : workers) w.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };

  void reap_finished() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->finished->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::shared_ptr<std::atomic<int>> counter_;
  std::mutex mu_;
  std::list<Worker> workers_;
};

}  // namespace

MockHttpServer::MockHttpServer(Options options) {
  std::signal(SIGPIPE, SIG_IGN);
  std::function<bool(int)> raise_backlog;
  if (!options.tls_cert_file.empty() && !options.tls_key_file.empty()) {
    auto tls = std::make_unique<Server<httplib::SSLServer>>(options.tls_cert_file.c_str(),
                                                            options.tls_key_file.c_str());
    if (!tls->is_valid()) throw std::runtime_error("mock HTTP server: bad TLS certificate");
    raise_backlog = [s = tls.get()](int backlog) { return s->raise_backlog(backlog); };
    server_ = std::move(tls);
    tls_ = true;
  } else {
    auto plain = std::make_unique<Server<httplib::Server>>();
    raise_backlog = [s = plain.get()](int backlog) { return s->raise_backlog(backlog); };
    server_ = std::move(plain);
  }
  // Without it, Nagle's algorithm and the client's delayed ACK add 40 ms to many responses.
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_timeout(options.keep_alive_timeout.count());
  server_->set_keep_alive_max_count(options.keep_alive_max_requests);
  server_->new_task_queue = [counter = connections_] { return new ThreadPerConnection(counter); };
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("mock HTTP server: cannot bind to 127.0.0.1");
  if (!raise_backlog(4096)) throw std::runtime_error("mock HTTP server: listen failed");
}

MockHttpServer::~MockHttpServer() { stop(); }

void MockHttpServer::start() {
  if (started_) return;
  started_ = true;
  auto exited = std::make_shared<std::atomic<bool>>(false);
  listener_ = std::thread([this, exited] {
    server_->listen_after_bind();
    exited->store(true);
  });
  // stop() before the listener runs would be lost, and the listener would then accept forever.
  while (!server_->is_running()) {
    if (exited->load()) throw std::runtime_error("mock HTTP server: listening failed");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void MockHttpServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  server_->stop();
  if (listener_.joinable()) listener_.join();
}

std::string MockHttpServer::url(std::string_view path) const {
  return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_) +
         std::string(path);
}

bool MockHttpServer::wait_for(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, duration, [&] { return stopping_; });
}

void MockHttpServer::notify() {
  { std::lock_guard lock(mu_); }
  wake_.notify_all();
}

bool MockHttpServer::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

}  // namespace llmassist::testing
