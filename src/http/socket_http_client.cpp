// The socket HttpClient. One I/O thread owns every connection and exchange; other threads only
// append to two queues under a mutex (new requests, cancellations) and wake the loop through an
// eventfd. The callbacks of all requests therefore run one at a time on the I/O thread.
//
// An exchange (one request and its response) goes: waiting for a connection slot (only under
// the connection limits) -> on a kept-alive idle connection, or on a new one that is resolved,
// connected, tunnelled through a proxy and shaken hands with over TLS as needed -> sending ->
// reading the head -> reading the body. A connection that the exchange leaves in a clean state
// (the whole body read, keep-alive) goes back to the idle pool, where epoll keeps watching it:
// an event on an idle connection means the server closed it (or broke the protocol), and it is
// closed at once; only a TLS message of its own (a session ticket) leaves it open.
//
// Sockets stay registered with epoll from connect to close; their interest changes only when
// the exchange moves between sending and reading.
#include "llmassist/socket_http_client.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/http_text.h"
#include "http/proxy_settings.h"
#include "http/resolver.h"
#include "http/tls_context.h"
#include "http/url_redaction.h"
#include "llmassist/version.h"

namespace llmassist {
namespace {

using detail::Address;
using detail::errno_text;
using detail::has_token;
using detail::iequals;
using detail::is_token;
using detail::numeric_address;
using detail::openssl_error_text;
using detail::ProxySettings;
using detail::Resolved;
using detail::Resolver;
using detail::TlsContext;
using detail::trim;

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kComponent = "http";
// The longest the loop sleeps with nothing to do; new work and cancellations wake it earlier.
constexpr milliseconds kMaxPollWait{10000};
// What a connect timeout of 0 stands for: a connection attempt is never left to hang forever.
constexpr milliseconds kDefaultConnectLimit{300000};
// How long a resolved name's addresses are used before it is looked up again.
constexpr std::chrono::seconds kResolveLifetime{60};
// Bytes read from a socket at a time, into the I/O thread's one buffer.
constexpr std::size_t kReadSize = 16384;
// A chunk-size line or a trailer line longer than this is not HTTP.
constexpr std::size_t kMaxLineBytes = 8192;
// A connection attempt to one of a name's addresses that has not completed after this long
// gives way to the next address (an unreachable IPv6 route that drops packets, say).
constexpr milliseconds kAddressAttempt{2000};
// A request sent on a kept-alive connection that the server had closed is sent again on
// another one, at most this many times.
constexpr int kMaxStaleRetries = 3;

template <typename Duration>
std::chrono::microseconds micros(Duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d);
}

struct Exchange;

struct Connection {
  enum class Stage : std::uint8_t {
    kResolving,     // waiting for the resolver
    kConnecting,    // TCP connect in progress
    kProxyConnect,  // CONNECT sent to the proxy, its reply being read
    kTlsHandshake,
    kOpen,  // ready for exchanges
  };

  std::uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  // The pool it belongs to: the origin, and the proxy when it goes through one.
  std::string pool;
  // Where the socket connects: the origin's host, or the proxy's.
  std::string connect_host;
  int connect_port = 0;
  // The origin's host and port (for TLS and CONNECT).
  std::string host;
  bool host_is_ip = false;
  int port = 0;
  bool tls = false;
  bool tunnel = false;  // CONNECT through a proxy first
  Stage stage = Stage::kResolving;
  std::uint32_t events = 0;  // what epoll watches it for
  bool registered = false;
  // Exchanges served so far (a stale kept-alive one fails the next before any answer).
  int served = 0;
  Exchange* exchange = nullptr;
  std::vector<Address> addresses;  // left to try while connecting
  std::size_t next_address = 0;
  int last_connect_error = 0;
  SteadyClock::time_point attempt_started;  // of the connect to addresses[next_address - 1]
  std::string tunnel_reply;  // the proxy's reply to CONNECT, while it is read
  std::string tunnel_request;
  std::size_t tunnel_sent = 0;
  // In the idle pool: since when, and where in the pool's LRU list.
  SteadyClock::time_point idle_since;
  std::optional<std::list<Connection*>::iterator> idle_at;
};

struct Exchange {
  enum class Phase : std::uint8_t { kWaiting, kConnecting, kSending, kHead, kBody };
  enum class BodyMode : std::uint8_t { kNone, kLength, kChunked, kUntilClose };
  enum class ChunkState : std::uint8_t { kSize, kData, kDataEnd, kTrailer };

  std::uint64_t id = 0;
  HttpRequest request;
  HttpCallback done;
  detail::ParsedUrl url;
  std::string display;               // the redacted URL
  std::vector<std::string> secrets;  // text that must not appear in messages
  std::string pool;
  bool tls = false;
  const detail::ParsedUrl* proxy = nullptr;
  std::string wire;  // the request as sent
  std::size_t sent = 0;
  Phase phase = Phase::kWaiting;
  Connection* conn = nullptr;
  std::optional<std::list<Exchange*>::iterator> waiting_at;  // in the waiting queue
  int stale_retries = 0;
  bool got_bytes = false;  // any byte of a response on the current connection

  SteadyClock::time_point started;
  SteadyClock::time_point connect_started;
  SteadyClock::time_point last_activity;
  std::optional<std::multimap<SteadyClock::time_point, Exchange*>::iterator> timer;
  std::uint64_t cancel_id = 0;

  HttpResponse response;
  std::string head;  // the response head while it arrives
  bool keep_alive = true;
  BodyMode body_mode = BodyMode::kNone;
  std::uint64_t remaining = 0;  // kLength: body bytes; kChunked kData: the chunk's
  ChunkState chunk_state = ChunkState::kSize;
  std::string line;  // a chunk-size or trailer line while it arrives

  [[nodiscard]] std::string what() const { return request.method + " " + display; }
};

using TimerQueue = std::multimap<SteadyClock::time_point, Exchange*>;

// The client's state and event loop. Shared by the public handle and the I/O thread, so that
// the handle may be destroyed from inside one of its own callbacks: the thread then finishes the
// loop on its own and the engine dies with it.
class Engine {
 public:
  // Throws std::system_error when the epoll or eventfd descriptors cannot be made.
  Engine(const SocketHttpClientOptions& options, ProxySettings proxies)
      : options_(options),
        logger_(options.logger ? options.logger : stderr_logger()),
        user_agent_(options.user_agent.empty()
                        ? std::string("llmassist/") + LLMASSIST_VERSION_STRING
                        : options.user_agent),
        proxies_(std::move(proxies)),
        epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      const int error = errno;
      close_descriptors();
      throw std::system_error(error, std::generic_category(), "epoll/eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = this;  // the tag of the wake-up descriptor
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  ~Engine() {
    for (auto& [id, c] : connections_) release_connection_resources(*c);
    if (resolver_) resolver_->stop();
    close_descriptors();
  }

  // The I/O thread's body: serves until request_stop(), then completes what is left.
  void loop() {
    run();
    shut_down();
  }

  void request_stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake();
  }

  void send(HttpRequest request, HttpCallback done) {
    bool first = false;
    {
      std::lock_guard lock(mu_);
      first = incoming_.empty();
      incoming_.push_back(Submission{std::move(request), std::move(done), SteadyClock::now()});
    }
    // A queue that was not empty has a wake-up on its way already.
    if (first) wake();
  }

 private:
  struct Submission {
    HttpRequest request;
    HttpCallback done;
    SteadyClock::time_point at;
  };

  // ---- the loop ----------------------------------------------------------------------------

  void run() {
    std::vector<Submission> batch;
    std::vector<std::uint64_t> cancels;
    std::array<epoll_event, 64> events{};
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        batch.swap(incoming_);
        cancels.swap(cancel_requests_);
      }
      for (auto& s : batch) adopt(std::move(s));
      batch.clear();
      for (std::uint64_t id : cancels) {
        if (Exchange* x = find(id)) fail(*x, cancelled(fmt::format("{}: cancelled", x->what())));
      }
      cancels.clear();
      fire_timers(SteadyClock::now());
      expire_idle(SteadyClock::now());
      serve_waiting();
      graveyard_.clear();

      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                 poll_wait(SteadyClock::now()));
      for (int i = 0; i < n; ++i) {
        void* tag = events[static_cast<std::size_t>(i)].data.ptr;
        const std::uint32_t got = events[static_cast<std::size_t>(i)].events;
        if (tag == this) {
          std::uint64_t count = 0;
          [[maybe_unused]] const ssize_t r = ::read(wake_fd_, &count, sizeof count);
        } else if (resolver_ && tag == resolver_.get()) {
          for (Resolved& answer : resolver_->take_answers()) on_resolved(std::move(answer));
        } else {
          auto* c = static_cast<Connection*>(tag);
          if (c->fd >= 0) on_event(*c, got);  // fd < 0: closed earlier in this batch
        }
      }
      serve_waiting();
      graveyard_.clear();
    }
  }

  // Completes every exchange in flight, and every request submitted meanwhile (a `done` may
  // submit another), with kCancelled.
  void shut_down() {
    while (true) {
      std::vector<Submission> batch;
      {
        std::lock_guard lock(mu_);
        batch.swap(incoming_);
        cancel_requests_.clear();
      }
      if (batch.empty() && active_.empty()) break;
      std::vector<std::uint64_t> ids;
      ids.reserve(active_.size());
      for (const auto& [id, x] : active_) ids.push_back(id);
      for (std::uint64_t id : ids) {
        if (Exchange* x = find(id)) fail(*x, cancelled_by_shutdown(x->request));
      }
      for (auto& s : batch) complete(std::move(s.done), cancelled_by_shutdown(s.request));
    }
    graveyard_.clear();
  }

  static Status cancelled_by_shutdown(const HttpRequest& request) {
    return cancelled(fmt::format("{} {}: the HTTP client was shut down", request.method,
                                 request.redacted_url.empty()
                                     ? detail::redact_url(request.url).display
                                     : request.redacted_url));
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
  }

  void close_descriptors() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  Exchange* find(std::uint64_t id) {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
  }

  void log(LogLevel level, std::string_view message) { logger_->log(level, kComponent, message); }

  // ---- taking requests ---------------------------------------------------------------------

  // A client sends to a few URLs over and over (an API's endpoints): each is parsed once.
  const std::pair<detail::ParsedUrl, detail::RedactedUrl>& parsed(const std::string& url) {
    if (auto it = urls_.find(url); it != urls_.end()) return it->second;
    if (urls_.size() >= kMaxUrls) urls_.clear();
    detail::ParsedUrl p = detail::parse_url(url);
    detail::RedactedUrl r = p.valid ? detail::redact_url(p) : detail::redact_url(url);
    return urls_.emplace(url, std::make_pair(std::move(p), std::move(r))).first->second;
  }
  static constexpr std::size_t kMaxUrls = 256;

  void adopt(Submission s) {
    auto owned = std::make_unique<Exchange>();
    Exchange& x = *owned;
    x.id = next_id_++;
    x.request = std::move(s.request);
    x.done = std::move(s.done);
    x.started = s.at;
    x.last_activity = s.at;
    const auto& [url, redacted] = parsed(x.request.url);
    x.url = url;
    x.display = redacted.display;
    x.secrets = redacted.secrets;
    if (!x.request.redacted_url.empty()) {
      x.display = x.request.redacted_url;
      // Whatever the caller hid, the path may hold.
      x.secrets.push_back(x.url.path);
    }
    for (const auto& [name, value] : x.request.headers) {
      // Short values ("1", "json") are not secrets and would censor every message.
      if (value.size() >= 6) x.secrets.push_back(value);
    }
    if (Status st = prepare(x); !st.ok()) return reject(std::move(owned), std::move(st));
    if (const auto& token = x.request.cancel) {
      if (token->cancelled()) {
        return reject(std::move(owned), cancelled(fmt::format("{}: cancelled", x.what())));
      }
      const std::uint64_t id = x.id;
      x.cancel_id = token->on_cancel([this, id] {
        {
          std::lock_guard lock(mu_);
          cancel_requests_.push_back(id);
        }
        wake();
      });
      if (x.cancel_id == 0) {  // cancelled meanwhile; the callback's request finds nothing
        return reject(std::move(owned), cancelled(fmt::format("{}: cancelled", x.what())));
      }
    }
    active_.emplace(x.id, std::move(owned));
    schedule(x);
    dispatch(x);
  }

  // Checks the request and writes it out as it goes on the wire.
  Status prepare(Exchange& x) {
    const HttpRequest& r = x.request;
    if (!x.url.valid) return invalid_argument(fmt::format("{}: malformed URL", x.what()));
    if (x.url.scheme != "http" && x.url.scheme != "https") {
      return invalid_argument(
          fmt::format("{}: unsupported scheme; only http and https are allowed", x.what()));
    }
    if (!is_token(r.method)) return invalid_argument(fmt::format("{}: invalid method", x.display));
    bool has_host = false;
    bool has_user_agent = false;
    bool has_accept = false;
    for (const auto& [name, value] : r.headers) {
      if (!is_token(name))
        return invalid_argument(fmt::format("{}: invalid header name", x.what()));
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return invalid_argument(
            fmt::format("{}: the value of header {} contains CR, LF or NUL", x.what(), name));
      }
      has_host = has_host || iequals(name, "host");
      has_user_agent = has_user_agent || iequals(name, "user-agent");
      has_accept = has_accept || iequals(name, "accept");
    }
    x.tls = x.url.scheme == "https";
    const std::optional<detail::ParsedUrl>& proxy = x.tls ? proxies_.https : proxies_.http;
    if (proxy && !detail::bypasses_proxy(proxies_, x.url.host)) x.proxy = &*proxy;
    x.pool = x.url.scheme + "://" + x.url.host_for_authority() + ":" + std::to_string(x.url.port);
    // What Host says, and an absolute-form target: the port only when not the scheme's own.
    std::string authority = x.url.host_for_authority();
    if (x.url.port != (x.tls ? 443 : 80)) authority += ":" + std::to_string(x.url.port);
    if (x.proxy != nullptr) {
      const std::string via = x.proxy->host_for_authority() + ":" + std::to_string(x.proxy->port);
      // Plain requests to any origin share the proxy's connections; tunnels are per origin.
      x.pool = x.tls ? x.pool + " via " + via : "proxy " + via;
    }

    std::string& w = x.wire;
    w.reserve(256 + r.body.size());
    w += r.method;
    w += ' ';
    if (x.proxy != nullptr && !x.tls) {
      w += x.url.scheme;
      w += "://";
      w += authority;
    }
    w += x.url.path;
    if (!x.url.query.empty()) {
      w += '?';
      w += x.url.query;
    }
    w += " HTTP/1.1\r\n";
    if (!has_host) {
      w += "Host: ";
      w += authority;
      w += "\r\n";
    }
    if (!has_user_agent) {
      w += "User-Agent: ";
      w += user_agent_;
      w += "\r\n";
    }
    if (!has_accept) w += "Accept: */*\r\n";
    for (const auto& [name, value] : r.headers) {
      // The body is framed here, by its length.
      if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) continue;
      w += name;
      w += ": ";
      w += value;
      w += "\r\n";
    }
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
      w += "Content-Length: ";
      w += std::to_string(r.body.size());
      w += "\r\n";
    }
    w += "\r\n";
    w += r.body;
    return Status();
  }

  // Completes an exchange that never became active.
  void reject(std::unique_ptr<Exchange> x, Status status) {
    HttpCallback done = std::move(x->done);
    if (x->request.cancel && x->cancel_id != 0) x->request.cancel->remove(x->cancel_id);
    x.reset();
    complete(std::move(done), std::move(status));
  }

  void complete(HttpCallback done, Result<HttpResponse> result) {
    if (!done) return;
    try {
      done(std::move(result));
    } catch (const std::exception& e) {
      log(LogLevel::kError, fmt::format("a completion callback threw: {}", e.what()));
    } catch (...) {
      log(LogLevel::kError, "a completion callback threw");
    }
  }

  // ---- connections for exchanges -------------------------------------------------------------

  [[nodiscard]] bool may_open(const std::string& pool) const {
    if (options_.max_total_connections > 0 && open_total_ >= options_.max_total_connections) {
      return false;
    }
    if (options_.max_connections_per_host > 0) {
      auto it = open_per_pool_.find(pool);
      if (it != open_per_pool_.end() && it->second >= options_.max_connections_per_host) {
        return false;
      }
    }
    return true;
  }

  // Gives `x` a connection: an idle one of its pool, a new one, or (under the limits) a place
  // in the queue.
  void dispatch(Exchange& x) {
    if (Connection* c = take_idle(x.pool)) return attach(x, *c);
    if (!may_open(x.pool) && options_.max_total_connections > 0 &&
        open_total_ >= options_.max_total_connections && !idle_lru_.empty()) {
      // The total is reached, partly by idle connections of other pools: one makes room.
      close_connection(*idle_lru_.front());
    }
    if (!may_open(x.pool)) {
      x.phase = Exchange::Phase::kWaiting;
      x.waiting_at = waiting_.insert(waiting_.end(), &x);
      return;
    }
    open_connection(x);
  }

  void unqueue(Exchange& x) {
    if (!x.waiting_at) return;
    waiting_.erase(*x.waiting_at);
    x.waiting_at.reset();
  }

  // Slots came free (close_connection() asked): the waiting exchanges that can go now, go, in
  // their order. Run from the loop, not from close_connection() itself: an exchange that fails
  // at once (a refused connection) frees its slot again, and the next one would nest a level
  // deeper for each waiting exchange.
  void serve_waiting() {
    while (serve_waiting_ && !waiting_.empty()) {
      serve_waiting_ = false;
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        Exchange* x = *it;
        ++it;  // dispatch() changes no entry but x's (it may queue x again, at the end)
        if (!idle_by_pool_.contains(x->pool) && !may_open(x->pool)) continue;
        unqueue(*x);
        dispatch(*x);
      }
    }
    serve_waiting_ = false;
  }

  Connection* take_idle(const std::string& pool) {
    auto it = idle_by_pool_.find(pool);
    if (it == idle_by_pool_.end()) return nullptr;
    Connection* c = it->second.back();  // the most recently used: the least likely stale
    it->second.pop_back();
    if (it->second.empty()) idle_by_pool_.erase(it);
    idle_lru_.erase(*c->idle_at);
    c->idle_at.reset();
    return c;
  }

  void make_idle(Connection& c) {
    if (options_.max_idle_connections == 0) return close_connection(c);
    c.exchange = nullptr;
    c.idle_since = SteadyClock::now();
    idle_by_pool_[c.pool].push_back(&c);
    c.idle_at = idle_lru_.insert(idle_lru_.end(), &c);
    watch(c, EPOLLIN | EPOLLRDHUP);
    if (static_cast<int>(idle_lru_.size()) > options_.max_idle_connections) {
      close_connection(*idle_lru_.front());
    }
  }

  void forget_idle(Connection& c) {
    if (!c.idle_at) return;
    idle_lru_.erase(*c.idle_at);
    c.idle_at.reset();
    auto it = idle_by_pool_.find(c.pool);
    if (it == idle_by_pool_.end()) return;
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), &c), list.end());
    if (list.empty()) idle_by_pool_.erase(it);
  }

  void expire_idle(SteadyClock::time_point now) {
    const auto lifetime = options_.idle_connection_lifetime;
    if (lifetime.count() <= 0) return;
    while (!idle_lru_.empty() && idle_lru_.front()->idle_since + lifetime <= now) {
      close_connection(*idle_lru_.front());
    }
  }

  // Puts `x` on the open connection `c` and starts sending.
  void attach(Exchange& x, Connection& c) {
    x.conn = &c;
    c.exchange = &x;
    x.phase = Exchange::Phase::kSending;
    x.sent = 0;
    x.got_bytes = false;
    reset_response(x);
    schedule(x);
    send_request(c);
  }

  void open_connection(Exchange& x) {
    auto owned = std::make_unique<Connection>();
    Connection& c = *owned;
    c.id = next_connection_id_++;
    c.pool = x.pool;
    c.host = x.url.host;
    c.host_is_ip = numeric_address(x.url.host, x.url.port).has_value();
    c.port = x.url.port;
    c.tls = x.tls;
    c.tunnel = x.tls && x.proxy != nullptr;
    c.connect_host = x.proxy != nullptr ? x.proxy->host : x.url.host;
    c.connect_port = x.proxy != nullptr ? x.proxy->port : x.url.port;
    c.exchange = &x;
    connections_.emplace(c.id, std::move(owned));
    ++open_total_;
    ++open_per_pool_[c.pool];
    x.conn = &c;
    x.phase = Exchange::Phase::kConnecting;
    x.connect_started = SteadyClock::now();
    x.sent = 0;
    x.got_bytes = false;
    reset_response(x);
    schedule(x);

    if (auto numeric = numeric_address(c.connect_host, c.connect_port)) {
      c.addresses.push_back(*numeric);
      return start_connect(c);
    }
    const std::string key = c.connect_host + ":" + std::to_string(c.connect_port);
    if (auto it = dns_cache_.find(key);
        it != dns_cache_.end() && it->second.expires > SteadyClock::now()) {
      c.addresses = it->second.addresses;
      return start_connect(c);
    }
    c.stage = Connection::Stage::kResolving;
    auto& waiters = resolving_[key];
    waiters.push_back(c.id);
    if (waiters.size() > 1) return;  // a lookup of that name is under way
    if (!resolver_) {
      try {
        resolver_ = std::make_shared<Resolver>();
      } catch (const std::exception& e) {
        resolving_.erase(key);
        return fail(x, unavailable(fmt::format("{}: cannot resolve {}: {}", x.what(),
                                               c.connect_host, e.what())));
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = resolver_.get();
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, resolver_->ready_fd(), &ev);
    }
    Resolver::lookup(resolver_, c.connect_host, c.connect_port);
  }

  void on_resolved(Resolved answer) {
    auto waiting = resolving_.find(answer.key);
    if (waiting == resolving_.end()) return;
    const std::vector<std::uint64_t> ids = std::move(waiting->second);
    resolving_.erase(waiting);
    if (answer.addresses.empty()) {
      for (std::uint64_t id : ids) {
        auto it = connections_.find(id);
        if (it == connections_.end()) continue;
        Connection& c = *it->second;
        if (Exchange* x = c.exchange) {
          fail(*x, unavailable(fmt::format("{}: cannot resolve host {}: {}", x->what(),
                                           c.connect_host, answer.error)));
        } else {
          close_connection(c);
        }
      }
      return;
    }
    dns_cache_[answer.key] =
        CachedAddresses{answer.addresses, SteadyClock::now() + kResolveLifetime};
    for (std::uint64_t id : ids) {
      auto it = connections_.find(id);
      if (it == connections_.end()) continue;
      it->second->addresses = answer.addresses;
      start_connect(*it->second);
    }
  }

  // Connects to the next address of `c`; when none is left, fails its exchange.
  void start_connect(Connection& c) {
    c.stage = Connection::Stage::kConnecting;
    while (c.next_address < c.addresses.size()) {
      const Address& a = c.addresses[c.next_address++];
      if (c.fd >= 0) {
        unwatch(c);
        ::close(c.fd);
        c.fd = -1;
      }
      c.fd = ::socket(a.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) {
        c.last_connect_error = errno;
        continue;
      }
      c.attempt_started = SteadyClock::now();
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(c.fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&a.storage), a.length) == 0) {
        return on_connected(c);
      }
      if (errno == EINPROGRESS) {
        watch(c, EPOLLOUT);
        if (c.exchange != nullptr) schedule(*c.exchange);
        return;
      }
      c.last_connect_error = errno;
    }
    connect_failed(c);
  }

  void connect_failed(Connection& c) {
    Exchange* x = c.exchange;
    const std::string why = errno_text(c.last_connect_error != 0 ? c.last_connect_error : EIO);
    const bool via_proxy = c.connect_host != c.host || c.connect_port != c.port;
    if (x == nullptr) return close_connection(c);
    fail(*x, unavailable(fmt::format("{}: cannot connect to {}{} port {}: {}", x->what(),
                                     via_proxy ? "the proxy " : "", c.connect_host, c.connect_port,
                                     why)));
  }

  void on_connected(Connection& c) {
    if (c.tunnel) {
      c.stage = Connection::Stage::kProxyConnect;
      const std::string target =
          (c.host_is_ip && c.host.find(':') != std::string::npos ? "[" + c.host + "]" : c.host) +
          ":" + std::to_string(c.port);
      c.tunnel_request = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nUser-Agent: {1}\r\n\r\n",
                                     target, user_agent_);
      c.tunnel_sent = 0;
      return proxy_step(c);
    }
    start_tls_or_open(c);
  }

  void start_tls_or_open(Connection& c) {
    if (!c.tls) return on_open(c);
    if (!tls_) {
      auto made = TlsContext::make(options_.verify_tls, options_.ca_file);
      if (!made.ok()) {
        if (Exchange* x = c.exchange) {
          return fail(*x, Status(made.status().code(),
                                 fmt::format("{}: {}", x->what(), made.status().message())));
        }
        return close_connection(c);
      }
      tls_ = std::move(made).value();
    }
    auto ssl = tls_->connect(c.fd, c.host, c.host_is_ip, c.pool);
    if (!ssl.ok()) {
      if (Exchange* x = c.exchange) {
        return fail(*x, unavailable(fmt::format("{}: {}", x->what(), ssl.status().message())));
      }
      return close_connection(c);
    }
    c.ssl = *ssl;
    c.stage = Connection::Stage::kTlsHandshake;
    handshake(c);
  }

  void handshake(Connection& c) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(c.ssl);
    if (rc == 1) return on_open(c);
    const int error = SSL_get_error(c.ssl, rc);
    if (error == SSL_ERROR_WANT_READ) return watch(c, EPOLLIN);
    if (error == SSL_ERROR_WANT_WRITE) return watch(c, EPOLLOUT);
    std::string why;
    const long verified = SSL_get_verify_result(c.ssl);
    if (verified != X509_V_OK) {
      why = fmt::format("TLS certificate verification failed: {}",
                        X509_verify_cert_error_string(verified));
      ERR_clear_error();
    } else if (error == SSL_ERROR_SYSCALL) {
      const int e = errno;
      ERR_clear_error();
      why = e != 0 ? "TLS handshake: " + errno_text(e)
                   : "TLS handshake: the server closed the connection";
    } else {
      why = "TLS handshake failed: " + openssl_error_text();
    }
    if (Exchange* x = c.exchange)
      return fail(*x, unavailable(fmt::format("{}: {}", x->what(), why)));
    close_connection(c);
  }

  void on_open(Connection& c) {
    c.stage = Connection::Stage::kOpen;
    if (Exchange* x = c.exchange) {
      x->phase = Exchange::Phase::kSending;
      schedule(*x);
      return send_request(c);
    }
    make_idle(c);
  }

  // The CONNECT exchange with the proxy: send, then read its reply head.
  void proxy_step(Connection& c) {
    while (c.tunnel_sent < c.tunnel_request.size()) {
      const ssize_t n = ::send(c.fd, c.tunnel_request.data() + c.tunnel_sent,
                               c.tunnel_request.size() - c.tunnel_sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.tunnel_sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return watch(c, EPOLLOUT);
      return proxy_failed(c, errno_text(n < 0 ? errno : EPIPE));
    }
    watch(c, EPOLLIN | EPOLLRDHUP);
    std::array<char, 2048> buffer{};
    while (true) {
      // Looks before it takes: not one byte past the reply's head may be read, since the TLS
      // handshake follows on the same socket.
      const ssize_t seen = ::recv(c.fd, buffer.data(), buffer.size(), MSG_PEEK);
      if (seen < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (seen <= 0) {
        return proxy_failed(c, seen == 0 ? "the proxy closed the connection" : errno_text(errno));
      }
      const std::size_t before = c.tunnel_reply.size();
      c.tunnel_reply.append(buffer.data(), static_cast<std::size_t>(seen));
      const std::size_t end = c.tunnel_reply.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
      const std::size_t take =
          end == std::string::npos ? static_cast<std::size_t>(seen) : end + 4 - before;
      c.tunnel_reply.resize(before + take);
      [[maybe_unused]] const ssize_t got = ::recv(c.fd, buffer.data(), take, 0);
      if (end != std::string::npos) break;
      if (c.tunnel_reply.size() > options_.max_header_bytes) {
        return proxy_failed(c, "the proxy's reply to CONNECT is too large");
      }
    }
    int status = 0;
    const std::string_view reply(c.tunnel_reply);
    if (reply.starts_with("HTTP/1.") && reply.size() > 12) {
      std::from_chars(reply.data() + 9, reply.data() + 12, status);
    }
    if (status < 200 || status > 299) {
      return proxy_failed(c, status == 0
                                 ? "the proxy's reply to CONNECT is not HTTP"
                                 : fmt::format("the proxy refused CONNECT with {}", status));
    }
    c.tunnel_reply.clear();
    c.tunnel_request.clear();
    start_tls_or_open(c);
  }

  void proxy_failed(Connection& c, const std::string& why) {
    if (Exchange* x = c.exchange) {
      return fail(*x, unavailable(fmt::format("{}: through the proxy {} port {}: {}", x->what(),
                                              c.connect_host, c.connect_port, why)));
    }
    close_connection(c);
  }

  // ---- epoll --------------------------------------------------------------------------------

  void watch(Connection& c, std::uint32_t events) {
    if (c.registered && c.events == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    ::epoll_ctl(epoll_fd_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
    c.registered = true;
    c.events = events;
  }

  void unwatch(Connection& c) {
    if (c.registered) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    c.registered = false;
    c.events = 0;
  }

  void on_event(Connection& c, std::uint32_t got) {
    switch (c.stage) {
      case Connection::Stage::kResolving:
        return;
      case Connection::Stage::kConnecting: {
        int error = 0;
        socklen_t len = sizeof error;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error == 0 && (got & EPOLLOUT) != 0) return on_connected(c);
        c.last_connect_error = error != 0 ? error : ECONNREFUSED;
        return start_connect(c);
      }
      case Connection::Stage::kProxyConnect:
        return proxy_step(c);
      case Connection::Stage::kTlsHandshake:
        return handshake(c);
      case Connection::Stage::kOpen:
        break;
    }
    Exchange* x = c.exchange;
    if (x == nullptr) return idle_event(c);
    if (x->phase == Exchange::Phase::kSending) return send_request(c);
    receive(c);
  }

  // Something happened on an idle connection: the server closed it, or sent what nobody asked
  // for, and it is closed. Only a TLS message of its own (a session ticket, a key update) leaves
  // it open.
  void idle_event(Connection& c) {
    if (c.ssl != nullptr) {
      ERR_clear_error();
      char byte = 0;
      const int n = SSL_peek(c.ssl, &byte, 1);
      if (n <= 0 && SSL_get_error(c.ssl, n) == SSL_ERROR_WANT_READ) return;
      ERR_clear_error();
    }
    close_connection(c);
  }

  // ---- sending ------------------------------------------------------------------------------

  // Returns the bytes written, 0 when the socket would block, -1 on an error (`error` says).
  ssize_t write_some(Connection& c, const char* data, std::size_t size, std::string& error,
                     std::uint32_t& wait_for) {
    if (c.ssl == nullptr) {
      const ssize_t n = ::send(c.fd, data, size, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for = EPOLLOUT;
        return 0;
      }
      error = errno_text(errno);
      return -1;
    }
    ERR_clear_error();
    const int n = SSL_write(c.ssl, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
    if (n > 0) return n;
    const int e = SSL_get_error(c.ssl, n);
    if (e == SSL_ERROR_WANT_WRITE) {
      wait_for = EPOLLOUT;
      return 0;
    }
    if (e == SSL_ERROR_WANT_READ) {
      wait_for = EPOLLIN;
      return 0;
    }
    error = e == SSL_ERROR_SYSCALL ? errno_text(errno != 0 ? errno : EPIPE)
                                   : "TLS: " + openssl_error_text();
    return -1;
  }

  void send_request(Connection& c) {
    Exchange& x = *c.exchange;
    while (x.sent < x.wire.size()) {
      std::string error;
      std::uint32_t wait_for = 0;
      const ssize_t n =
          write_some(c, x.wire.data() + x.sent, x.wire.size() - x.sent, error, wait_for);
      if (n > 0) {
        x.sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0) return watch(c, wait_for);
      return connection_lost(x, "sending the request: " + error);
    }
    x.phase = Exchange::Phase::kHead;
    watch(c, EPOLLIN | EPOLLRDHUP);
    // An answer may already be there (a reused connection's closing): it is read on the event.
  }

  // ---- receiving ----------------------------------------------------------------------------

  void receive(Connection& c) {
    // Reads for this exchange only: once it has ended, the connection may already carry the
    // next one (give_back()), still sending, which epoll brings back here when it reads.
    Exchange* const current = c.exchange;
    while (current != nullptr && c.exchange == current) {
      Exchange& x = *current;
      ssize_t n = 0;
      bool eof = false;
      std::string error;
      if (c.ssl == nullptr) {
        n = ::recv(c.fd, buffer_.data(), buffer_.size(), 0);
        if (n == 0) {
          eof = true;
        } else if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) return;
          error = errno_text(errno);
        }
      } else {
        ERR_clear_error();
        const int r = SSL_read(c.ssl, buffer_.data(), static_cast<int>(buffer_.size()));
        n = r;
        if (r <= 0) {
          const int e = SSL_get_error(c.ssl, r);
          if (e == SSL_ERROR_WANT_READ) return watch(c, EPOLLIN | EPOLLRDHUP);
          if (e == SSL_ERROR_WANT_WRITE) return watch(c, EPOLLOUT);
          if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
            ERR_clear_error();
            eof = true;
          } else {
            error = e == SSL_ERROR_SYSCALL ? errno_text(errno) : "TLS: " + openssl_error_text();
          }
        }
      }
      if (eof) return on_eof(c, x);
      if (n < 0) return connection_lost(x, "receiving: " + error);
      x.got_bytes = true;
      x.last_activity = SteadyClock::now();
      feed(c, x, std::string_view(buffer_.data(), static_cast<std::size_t>(n)));
    }
  }

  void on_eof(Connection& c, Exchange& x) {
    if (x.phase == Exchange::Phase::kBody && x.body_mode == Exchange::BodyMode::kUntilClose) {
      x.keep_alive = false;
      return succeed(c, x);
    }
    if (x.phase == Exchange::Phase::kBody) {
      return connection_lost(x, "the server closed the connection before the end of the body");
    }
    connection_lost(x, "the server closed the connection without an answer");
  }

  // The connection failed under `x`. A kept-alive connection that fails before any answer was
  // most likely closed by the server while idle: the request goes again on another connection.
  void connection_lost(Exchange& x, const std::string& why) {
    Connection* c = x.conn;
    if (c != nullptr && c->served > 0 && !x.got_bytes && x.stale_retries < kMaxStaleRetries &&
        (x.phase == Exchange::Phase::kSending || x.phase == Exchange::Phase::kHead)) {
      ++x.stale_retries;
      detach(x);
      close_connection(*c);
      x.sent = 0;
      return dispatch(x);
    }
    fail(x, unavailable(fmt::format("{}: {}", x.what(), why)));
  }

  void reset_response(Exchange& x) {
    x.response = HttpResponse();
    x.head.clear();
    x.keep_alive = true;
    x.body_mode = Exchange::BodyMode::kNone;
    x.remaining = 0;
    x.chunk_state = Exchange::ChunkState::kSize;
    x.line.clear();
  }

  // Takes in bytes of the response.
  void feed(Connection& c, Exchange& x, std::string_view data) {
    while (!data.empty() && c.exchange == &x) {
      if (x.phase == Exchange::Phase::kHead) {
        const std::size_t before = x.head.size();
        x.head.append(data);
        // The end of the head may straddle the previous piece.
        const std::size_t from = before >= 3 ? before - 3 : 0;
        const std::size_t end = x.head.find("\r\n\r\n", from);
        if (end == std::string::npos) {
          if (x.head.size() > options_.max_header_bytes) {
            return protocol_error(
                x, fmt::format("the response headers exceed {} bytes", options_.max_header_bytes));
          }
          return;
        }
        if (end + 4 > options_.max_header_bytes) {
          return protocol_error(
              x, fmt::format("the response headers exceed {} bytes", options_.max_header_bytes));
        }
        const std::size_t used = end + 4 - before;
        data.remove_prefix(used);
        x.head.resize(end + 4);
        if (!parse_head(x)) return;
        if (x.phase == Exchange::Phase::kHead) continue;  // an interim 1xx reply
        if (x.body_mode == Exchange::BodyMode::kNone ||
            (x.body_mode == Exchange::BodyMode::kLength && x.remaining == 0)) {
          return finish_body(c, x, data);
        }
        continue;
      }
      // kBody
      switch (x.body_mode) {
        case Exchange::BodyMode::kLength: {
          const std::size_t take =
              static_cast<std::size_t>(std::min<std::uint64_t>(x.remaining, data.size()));
          if (!deliver(x, data.substr(0, take))) return;
          data.remove_prefix(take);
          x.remaining -= take;
          if (x.remaining == 0) return finish_body(c, x, data);
          break;
        }
        case Exchange::BodyMode::kUntilClose:
          if (!deliver(x, data)) return;
          data = {};
          break;
        case Exchange::BodyMode::kChunked:
          if (!feed_chunked(c, x, data)) return;
          break;
        case Exchange::BodyMode::kNone:
          return finish_body(c, x, data);
      }
    }
  }

  // One step of the chunked decoder; consumes from `data`. False when the exchange ended.
  bool feed_chunked(Connection& c, Exchange& x, std::string_view& data) {
    using CS = Exchange::ChunkState;
    switch (x.chunk_state) {
      case CS::kData: {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(x.remaining, data.size()));
        if (!deliver(x, data.substr(0, take))) return false;
        data.remove_prefix(take);
        x.remaining -= take;
        if (x.remaining == 0) x.chunk_state = CS::kDataEnd;
        return true;
      }
      case CS::kSize:
      case CS::kDataEnd:
      case CS::kTrailer: {
        const std::size_t lf = data.find('\n');
        x.line.append(data.substr(0, lf == std::string_view::npos ? data.size() : lf + 1));
        data.remove_prefix(lf == std::string_view::npos ? data.size() : lf + 1);
        if (x.line.size() > kMaxLineBytes) {
          protocol_error(x, "a chunk-size or trailer line is too long");
          return false;
        }
        if (lf == std::string_view::npos) return true;
        const std::string_view line = trim(x.line);
        if (x.chunk_state == CS::kDataEnd) {
          if (!line.empty()) {
            protocol_error(x, "a chunk does not end where its size says");
            return false;
          }
          x.chunk_state = CS::kSize;
        } else if (x.chunk_state == CS::kSize) {
          const std::string_view size = trim(line.substr(0, line.find(';')));
          std::uint64_t value = 0;
          const auto [end, error] =
              std::from_chars(size.data(), size.data() + size.size(), value, 16);
          if (size.empty() || error != std::errc() || end != size.data() + size.size()) {
            protocol_error(x, "a malformed chunk size");
            return false;
          }
          x.remaining = value;
          x.chunk_state = value == 0 ? CS::kTrailer : CS::kData;
        } else if (line.empty()) {  // kTrailer: the empty line ends the body
          x.line.clear();
          finish_body(c, x, data);
          return false;
        }
        x.line.clear();
        return true;
      }
    }
    return true;
  }

  // Parses the complete head in x.head. False when the exchange ended.
  bool parse_head(Exchange& x) {
    std::string_view head(x.head);
    const std::size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    // "HTTP/1.1 200 OK"
    int status = 0;
    if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
        std::from_chars(status_line.data() + 9, status_line.data() + 12, status).ec !=
            std::errc() ||
        status < 100 || status > 999 || (status_line.size() > 12 && status_line[12] != ' ')) {
      protocol_error(x, "the response does not begin with an HTTP/1.x status line");
      return false;
    }
    const bool http10 = status_line[7] == '0';
    HttpHeaders headers;
    std::string_view rest = head.substr(eol + 2);
    while (!rest.empty()) {
      const std::size_t end = rest.find("\r\n");
      const std::string_view line = rest.substr(0, end);
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
      if (line.empty()) break;
      if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
        // An obsolete folded continuation of the previous header's value.
        headers.back().second += ' ';
        headers.back().second += trim(line);
        continue;
      }
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;  // not a header; tolerated
      headers.emplace_back(std::string(trim(line.substr(0, colon))),
                           std::string(trim(line.substr(colon + 1))));
    }
    x.head.clear();
    if (status < 200) return true;  // interim: the final reply follows

    x.response.status = status;
    x.response.headers = std::move(headers);
    x.response.time_to_first_byte = micros(x.last_activity - x.started);
    const auto connection = x.response.header("connection");
    x.keep_alive = http10 ? (connection && has_token(*connection, "keep-alive"))
                          : !(connection && has_token(*connection, "close"));
    const auto encoding = x.response.header("transfer-encoding");
    const auto length = x.response.header("content-length");
    if (x.request.method == "HEAD" || status == 204 || status == 304) {
      x.body_mode = Exchange::BodyMode::kNone;
    } else if (encoding) {
      // The last coding decides: chunked frames the body, anything else runs until close.
      std::string_view codings = *encoding;
      const std::size_t comma = codings.rfind(',');
      if (comma != std::string_view::npos) codings.remove_prefix(comma + 1);
      if (iequals(trim(codings), "chunked")) {
        x.body_mode = Exchange::BodyMode::kChunked;
      } else {
        x.body_mode = Exchange::BodyMode::kUntilClose;
        x.keep_alive = false;
      }
    } else if (length) {
      const std::string_view text = trim(*length);
      std::uint64_t value = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        protocol_error(x, "a malformed Content-Length");
        return false;
      }
      x.body_mode = Exchange::BodyMode::kLength;
      x.remaining = value;
    } else {
      x.body_mode = Exchange::BodyMode::kUntilClose;
      x.keep_alive = false;
    }
    x.phase = Exchange::Phase::kBody;
    schedule(x);  // the first-byte timeout gives way to the idle one
    if (x.request.on_headers) {
      bool go_on = false;
      try {
        go_on = x.request.on_headers(x.response);
      } catch (...) {
        fail(x, internal_error(fmt::format("{}: the headers callback threw", x.what())));
        return false;
      }
      if (!go_on) {
        fail(x, cancelled(fmt::format("{}: cancelled by the headers callback", x.what())));
        return false;
      }
    }
    return true;
  }

  // Hands a piece of the body over. False when the exchange ended.
  bool deliver(Exchange& x, std::string_view piece) {
    if (piece.empty()) return true;
    if (x.request.on_body) {
      bool go_on = false;
      try {
        go_on = x.request.on_body(piece);
      } catch (...) {
        fail(x, internal_error(fmt::format("{}: the body callback threw", x.what())));
        return false;
      }
      if (!go_on) {
        fail(x, cancelled(fmt::format("{}: cancelled by the body callback", x.what())));
        return false;
      }
      return true;
    }
    if (x.response.body.size() + piece.size() > options_.max_body_bytes) {
      fail(x, Status(StatusCode::kOutOfRange,
                     fmt::format("{}: the response body exceeds the limit of {} bytes", x.what(),
                                 options_.max_body_bytes)));
      return false;
    }
    x.response.body.append(piece);
    return true;
  }

  // The body is complete; `extra` is whatever followed it in the same read.
  void finish_body(Connection& c, Exchange& x, std::string_view extra) {
    // Bytes after the response: the server speaks out of turn, the connection is not reused.
    if (!extra.empty()) x.keep_alive = false;
    succeed(c, x);
  }

  // ---- ending exchanges ---------------------------------------------------------------------

  void succeed(Connection& c, Exchange& x) {
    const auto now = SteadyClock::now();
    x.response.total_time = micros(now - x.started);
    if (x.response.time_to_first_byte.count() == 0) {
      x.response.time_to_first_byte = x.response.total_time;
    }
    const bool reuse = x.keep_alive && (c.ssl == nullptr || SSL_pending(c.ssl) == 0);
    detach(x);
    ++c.served;
    if (reuse) {
      give_back(c);
    } else {
      close_connection(c);
    }
    HttpCallback done = std::move(x.done);
    HttpResponse response = std::move(x.response);
    drop(x);
    complete(std::move(done), std::move(response));
  }

  // A connection an exchange has left in a clean state: to the next waiting exchange of its
  // pool, or to the idle pool.
  void give_back(Connection& c) {
    c.exchange = nullptr;
    for (Exchange* next : waiting_) {
      if (next->pool == c.pool) {
        unqueue(*next);
        return attach(*next, c);
      }
    }
    make_idle(c);
  }

  void protocol_error(Exchange& x, const std::string& why) {
    fail(x, unavailable(fmt::format("{}: {}", x.what(), why)));
  }

  // Ends `x` with an error: its connection (if any) is closed, since it is in an unknown state.
  void fail(Exchange& x, Status status) {
    Connection* c = x.conn;
    detach(x);
    if (c != nullptr) close_connection(*c);
    HttpCallback done = std::move(x.done);
    drop(x);
    complete(std::move(done), std::move(status));
  }

  // Unlinks `x` from its connection, the waiting queue and its timer.
  void detach(Exchange& x) {
    if (x.conn != nullptr) {
      x.conn->exchange = nullptr;
      x.conn = nullptr;
    }
    unqueue(x);
    if (x.timer) {
      timers_.erase(*x.timer);
      x.timer.reset();
    }
  }

  void drop(Exchange& x) {
    if (x.request.cancel && x.cancel_id != 0) x.request.cancel->remove(x.cancel_id);
    active_.erase(x.id);  // destroys x
  }

  void release_connection_resources(Connection& c) {
    if (c.ssl != nullptr) {
      TlsContext::free_ssl(c.ssl);
      c.ssl = nullptr;
    }
    if (c.fd >= 0) {
      unwatch(c);
      ::close(c.fd);
      c.fd = -1;
    }
  }

  // Closes `c`; its memory lives until the current batch of events is handled.
  void close_connection(Connection& c) {
    forget_idle(c);
    if (c.exchange != nullptr) {
      c.exchange->conn = nullptr;
      c.exchange = nullptr;
    }
    release_connection_resources(c);
    auto it = connections_.find(c.id);
    if (it == connections_.end()) return;
    --open_total_;
    if (auto p = open_per_pool_.find(c.pool); p != open_per_pool_.end() && --p->second <= 0) {
      open_per_pool_.erase(p);
    }
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
    if (!waiting_.empty()) serve_waiting_ = true;
  }

  // ---- timeouts -----------------------------------------------------------------------------

  // The exchange's nearest deadline for its phase, and which timeout it is.
  enum class Limit : std::uint8_t { kNone, kConnect, kNextAddress, kFirstByte, kTotal, kIdle };
  std::pair<SteadyClock::time_point, Limit> deadline(const Exchange& x) const {
    const HttpRequest& r = x.request;
    auto best = std::make_pair(SteadyClock::time_point::max(), Limit::kNone);
    auto consider = [&](SteadyClock::time_point at, Limit limit) {
      if (at < best.first) best = {at, limit};
    };
    if (x.phase == Exchange::Phase::kConnecting) {
      consider(x.connect_started +
                   (r.connect_timeout.count() > 0 ? r.connect_timeout : kDefaultConnectLimit),
               Limit::kConnect);
      const Connection* c = x.conn;
      if (c != nullptr && c->stage == Connection::Stage::kConnecting &&
          c->next_address < c->addresses.size()) {
        consider(c->attempt_started + kAddressAttempt, Limit::kNextAddress);
      }
    }
    if (x.phase != Exchange::Phase::kBody && r.first_byte_timeout.count() > 0) {
      consider(x.started + r.first_byte_timeout, Limit::kFirstByte);
    }
    if (r.total_timeout.count() > 0) consider(x.started + r.total_timeout, Limit::kTotal);
    if (x.phase == Exchange::Phase::kBody && r.idle_timeout.count() > 0) {
      consider(x.last_activity + r.idle_timeout, Limit::kIdle);
    }
    return best;
  }

  void schedule(Exchange& x) {
    const auto [at, limit] = deadline(x);
    if (x.timer) {
      if ((*x.timer)->first == at) return;
      timers_.erase(*x.timer);
      x.timer.reset();
    }
    if (limit != Limit::kNone) x.timer = timers_.emplace(at, &x);
  }

  void fire_timers(SteadyClock::time_point now) {
    while (!timers_.empty() && timers_.begin()->first <= now) {
      Exchange& x = *timers_.begin()->second;
      timers_.erase(timers_.begin());
      x.timer.reset();
      const auto [at, limit] = deadline(x);
      if (at > now) {  // the idle deadline moved on with the data
        schedule(x);
        continue;
      }
      const HttpRequest& r = x.request;
      switch (limit) {
        case Limit::kNextAddress:
          x.conn->last_connect_error = ETIMEDOUT;
          start_connect(*x.conn);
          break;
        case Limit::kConnect:
          fail(x, deadline_exceeded(fmt::format(
                      "{}: connect timeout of {} ms passed", x.what(),
                      (r.connect_timeout.count() > 0 ? r.connect_timeout : kDefaultConnectLimit)
                          .count())));
          break;
        case Limit::kFirstByte:
          fail(x, deadline_exceeded(
                      fmt::format("{}: first-byte timeout of {} ms passed without response headers",
                                  x.what(), r.first_byte_timeout.count())));
          break;
        case Limit::kTotal:
          fail(x, deadline_exceeded(fmt::format("{}: total timeout of {} ms passed", x.what(),
                                                r.total_timeout.count())));
          break;
        case Limit::kIdle:
          fail(x, deadline_exceeded(fmt::format("{}: idle timeout of {} ms passed without data",
                                                x.what(), r.idle_timeout.count())));
          break;
        case Limit::kNone:
          break;
      }
    }
  }

  // How long the loop may sleep: until the nearest deadline or idle expiry.
  int poll_wait(SteadyClock::time_point now) const {
    milliseconds wait = kMaxPollWait;
    auto sooner = [&](SteadyClock::time_point due) {
      const auto until = std::chrono::ceil<milliseconds>(due - now);
      wait = std::clamp(until, milliseconds(0), wait);
    };
    if (!timers_.empty()) sooner(timers_.begin()->first);
    if (!idle_lru_.empty() && options_.idle_connection_lifetime.count() > 0) {
      sooner(idle_lru_.front()->idle_since + options_.idle_connection_lifetime);
    }
    return static_cast<int>(wait.count());
  }

  // ---- state --------------------------------------------------------------------------------

  const SocketHttpClientOptions options_;
  const std::shared_ptr<Logger> logger_;
  const std::string user_agent_;
  const ProxySettings proxies_;

  std::mutex mu_;
  std::vector<Submission> incoming_;            // guarded by mu_
  std::vector<std::uint64_t> cancel_requests_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_

  const int epoll_fd_;
  const int wake_fd_;  // written by other threads when they queue work

  // The I/O thread's own state.
  std::uint64_t next_id_ = 1;
  std::uint64_t next_connection_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Exchange>> active_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> graveyard_;  // closed during this batch of events
  int open_total_ = 0;
  std::unordered_map<std::string, int> open_per_pool_;
  std::unordered_map<std::string, std::vector<Connection*>> idle_by_pool_;
  std::list<Connection*> idle_lru_;  // the longest idle first
  std::list<Exchange*> waiting_;     // for a connection slot, oldest first
  bool serve_waiting_ = false;       // slots came free: see serve_waiting()
  TimerQueue timers_;
  std::unordered_map<std::string, std::pair<detail::ParsedUrl, detail::RedactedUrl>> urls_;
  struct CachedAddresses {
    std::vector<Address> addresses;
    SteadyClock::time_point expires;
  };
  std::unordered_map<std::string, CachedAddresses> dns_cache_;
  std::unordered_map<std::string, std::vector<std::uint64_t>> resolving_;  // key -> connections
  std::shared_ptr<Resolver> resolver_;
  std::unique_ptr<TlsContext> tls_;
  std::array<char, kReadSize> buffer_{};
};

class SocketHttpClient final : public HttpClient {
 public:
  explicit SocketHttpClient(std::shared_ptr<Engine> engine)
      : engine_(std::move(engine)), io_([engine = engine_] { engine->loop(); }) {}

  ~SocketHttpClient() override {
    engine_->request_stop();
    if (io_.get_id() == std::this_thread::get_id()) {
      // Destroyed by one of its own callbacks: the loop ends (completing what is left with
      // kCancelled) once that callback returns, and the thread releases the engine.
      io_.detach();
    } else {
      io_.join();
    }
  }

  void send(HttpRequest request, HttpCallback done) override {
    engine_->send(std::move(request), std::move(done));
  }

 private:
  const std::shared_ptr<Engine> engine_;
  std::thread io_;  // after engine_: starts once the engine is ready
};

}  // namespace

Result<std::unique_ptr<HttpClient>> make_socket_http_client(
    const SocketHttpClientOptions& options) {
  if (options.max_connections_per_host < 0 || options.max_total_connections < 0 ||
      options.max_idle_connections < 0) {
    return invalid_argument("connection limits must not be negative");
  }
  LLMASSIST_ASSIGN_OR_RETURN(ProxySettings proxies, detail::proxy_settings(options.proxy));
  try {
    auto engine = std::make_shared<Engine>(options, std::move(proxies));
    return std::unique_ptr<HttpClient>(std::make_unique<SocketHttpClient>(std::move(engine)));
  } catch (const std::exception& e) {
    return internal_error(fmt::format("cannot start the HTTP client: {}", e.what()));
  }
}

}  // namespace llmassist
