#include "support/webhook_balancer.h"

#include <memory>
#include <stdexcept>

namespace llmassist::testing {

namespace {

constexpr const char* kSecretHeader = "X-Telegram-Bot-Api-Secret-Token";

}  // namespace

WebhookBalancer::WebhookBalancer(Options options)
    : options_(std::move(options)), delivered_(options_.backends.size(), 0) {
  if (options_.backends.empty()) throw std::invalid_argument("WebhookBalancer: no backends");
  for (const std::string& url : options_.backends) {
    // "http://host:port/path"
    const auto host_start = url.find("://");
    const auto port_start = url.find(':', host_start + 3);
    const auto path_start = url.find('/', host_start + 3);
    if (host_start == std::string::npos || port_start == std::string::npos ||
        path_start == std::string::npos || port_start > path_start) {
      throw std::invalid_argument("WebhookBalancer: not an http://host:port/path URL: " + url);
    }
    backends_.push_back({url.substr(host_start + 3, port_start - host_start - 3),
                         std::stoi(url.substr(port_start + 1, path_start - port_start - 1)),
                         url.substr(path_start)});
  }
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { run(); });
}

WebhookBalancer::~WebhookBalancer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WebhookBalancer::deliver(std::int64_t chat, std::string update) {
  std::vector<std::pair<std::int64_t, std::string>> one;
  one.emplace_back(chat, std::move(update));
  deliver(std::move(one));
}

void WebhookBalancer::deliver(std::vector<std::pair<std::int64_t, std::string>> updates) {
  {
    std::lock_guard lock(mu_);
    for (auto& [chat, update] : updates) {
      auto& queue = chats_[chat];
      // A chat with nothing queued is not being delivered either (its deliverer leaves it in
      // chats_ until its update got the 200): it becomes ready.
      if (queue.empty()) ready_.push_back(chat);
      queue.push_back(std::move(update));
      ++queued_;
    }
  }
  work_cv_.notify_all();
}

bool WebhookBalancer::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queued_ == 0; });
}

std::size_t WebhookBalancer::delivered() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (auto d : delivered_) n += d;
  return n;
}

std::vector<std::size_t> WebhookBalancer::delivered_by_backend() const {
  std::lock_guard lock(mu_);
  return delivered_;
}

std::size_t WebhookBalancer::failovers() const {
  std::lock_guard lock(mu_);
  return failovers_;
}

void WebhookBalancer::run() {
  // One client per backend on each thread: its connection is kept alive between updates, as a
  // balancer's pool keeps it, and is made again after a failure (a backend restarted).
  Clients clients(backends_.size());
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
    if (stopping_) return;
    const std::int64_t chat = ready_.front();
    ready_.pop_front();
    // The head stays queued while it is delivered, so that deliver() does not make the chat
    // ready a second time.
    const std::string update = chats_[chat].front();
    lock.unlock();
    const bool delivered = post_until_delivered(clients, update);
    lock.lock();
    if (!delivered) return;  // stopping
    auto& queue = chats_[chat];
    queue.pop_front();
    if (queue.empty()) {
      chats_.erase(chat);
    } else {
      ready_.push_back(chat);  // behind the chats already waiting: fair between chats
      work_cv_.notify_one();
    }
    if (--queued_ == 0) idle_cv_.notify_all();
  }
}

bool WebhookBalancer::post_until_delivered(Clients& clients, const std::string& update) {
  std::size_t backend;
  {
    std::lock_guard lock(mu_);
    backend = next_backend_++ % backends_.size();
  }
  while (true) {
    for (std::size_t tried = 0; tried < backends_.size(); ++tried) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return false;
      }
      if (post_once(clients[backend], backends_[backend], update)) {
        std::lock_guard lock(mu_);
        ++delivered_[backend];
        return true;
      }
      {
        std::lock_guard lock(mu_);
        ++failovers_;
      }
      backend = (backend + 1) % backends_.size();
    }
    std::this_thread::sleep_for(options_.pause);
  }
}

bool WebhookBalancer::post_once(std::unique_ptr<httplib::Client>& client, const Backend& b,
                                const std::string& update) {
  if (!client) {
    client = std::make_unique<httplib::Client>(b.host, b.port);
    client->set_keep_alive(true);
    // As Telegram's own servers: without it the body, written after the headers, waits for the
    // backend's delayed ACK of them (40 ms on Linux) before it leaves.
    client->set_tcp_nodelay(true);
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(options_.timeout);
    const auto usec =
        std::chrono::duration_cast<std::chrono::microseconds>(options_.timeout - seconds);
    client->set_connection_timeout(seconds.count(), usec.count());
    client->set_read_timeout(seconds.count(), usec.count());
    client->set_write_timeout(seconds.count(), usec.count());
  }
  httplib::Headers headers;
  if (!options_.secret.empty()) headers.emplace(kSecretHeader, options_.secret);
  auto res = client->Post(b.path.c_str(), headers, update, "application/json");
  if (!res) {
    client.reset();
    return false;
  }
  return res->status == 200;
}

}  // namespace llmassist::testing
