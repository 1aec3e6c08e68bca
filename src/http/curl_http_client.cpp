// The libcurl HttpClient. One I/O thread owns the multi handle and every easy handle; other
// threads only append to two queues under a mutex (new requests, cancellations) and wake the
// loop through an eventfd. So no curl handle is ever touched by two threads, and the callbacks
// of all requests run one at a time on the I/O thread.
//
// The loop is curl's socket interface over epoll: curl says which sockets to watch and when it
// wants to be called for its timeouts, and each event is handed to curl for its socket alone.
// (curl_multi_perform() and curl_multi_poll() walk every transfer and every socket on every
// wake-up: with a hundred requests waiting on a slow model, each answer cost a hundred.)
//
// curl's own timeouts cover connect and total; the first-byte and idle timeouts have no curl
// option with those meanings, so the loop keeps its own timer queue for them and wakes for the
// nearest one.
//
// Secrets: every message names a request by its redacted URL; curl's error text, which can quote
// a host, a URL or a proxy's user info, is used only with every known secret (the URL's user
// info, query and masked path segments, long header values, the proxies' passwords) replaced.
#include "llmassist/http/curl_http_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/http_text.h"
#include "http/url_redaction.h"
#include "llmassist/version.h"

namespace llmassist {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kComponent = "http.curl";
// The longest the loop sleeps with nothing to do; new work and cancellations wake it earlier.
constexpr milliseconds kMaxPollWait{10000};

// curl_global_init() is not safe to race with itself or with other curl calls; it runs once per
// process, before the first client exists, and is never undone (see curl_http_client.h).
Status ensure_curl_initialized() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return internal_error(fmt::format("curl_global_init failed: {}", curl_easy_strerror(result)));
  }
  return Status();
}

// RFC 9110 token characters: what a method or a header name may consist of.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// Whether `s` holds CR, LF or NUL: what would break a header line of a form part.
bool has_line_break_or_nul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// The last segment of a path, as a form part's default filename.
std::string_view last_segment(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Opens `path` to see that it can be read and is a regular file (a directory opens too, and
// then fails to read halfway through the body). The Status says why not.
Status check_readable_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return invalid_argument(std::generic_category().message(errno));
  struct stat st {};
  const bool stated = ::fstat(fd, &st) == 0;
  const int error = errno;
  ::close(fd);
  if (!stated) return invalid_argument(std::generic_category().message(error));
  if (!S_ISREG(st.st_mode)) return invalid_argument("not a regular file");
  return Status();
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

// RFC 9110 section 9.2.2: a request with one of these methods may be sent again.
bool idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == m) return true;
  }
  return false;
}

// `text` with %XX escapes decoded (as curl decodes a proxy's user info).
std::string percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The user info of a proxy URL, as written and decoded: what must never appear in a message.
void add_proxy_secrets(std::string_view proxy, std::vector<std::string>& secrets) {
  const detail::ParsedUrl url = detail::parse_url(proxy);
  if (!url.valid) {
    // Unparsable (curl may still accept it, as "host:port"): whatever precedes an '@' is hidden.
    if (const auto at = proxy.rfind('@'); at != std::string_view::npos) {
      std::string_view info = proxy.substr(0, at);
      if (const auto scheme = info.find("://"); scheme != std::string_view::npos) {
        info.remove_prefix(scheme + 3);
      }
      secrets.emplace_back(info);
      secrets.push_back(percent_decoded(info));
    }
    return;
  }
  for (const std::string* part : {&url.password, &url.user}) {
    if (part->empty()) continue;
    secrets.push_back(*part);
    secrets.push_back(percent_decoded(*part));
  }
}

// A proxy URL of the options without its user info; empty for none or "direct".
std::string proxy_display(const std::string& proxy) {
  if (proxy.empty() || proxy == "direct") return "";
  const detail::ParsedUrl url = detail::parse_url(proxy);
  if (!url.valid) return "<malformed>";
  return url.scheme + "://" + url.host_for_authority() +
         (url.port > 0 ? ":" + std::to_string(url.port) : "");
}

// `text` with every occurrence of each secret replaced by "<redacted>"; the longest first, so
// that a secret containing another is hidden whole.
std::string without_secrets(std::string text, std::vector<std::string> secrets) {
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
      text.replace(at, secret.size(), "<redacted>");
      at += std::string_view("<redacted>").size();
    }
  }
  return text;
}

template <typename Duration>
std::chrono::microseconds micros(Duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d);
}

enum class TimerKind : std::uint8_t { kFirstByte, kIdle };

class CurlEngine;
struct Transfer;
// Deadlines of the first-byte and idle timeouts: at most one entry per transfer at a time (the
// first-byte one until the headers arrive, then the idle one).
using TimerQueue = std::multimap<SteadyClock::time_point, Transfer*>;

// One request from adoption by the I/O thread to its completion. Lives on the heap at a fixed
// address: curl's callbacks and CURLOPT_PRIVATE point at it.
struct Transfer {
  std::uint64_t id = 0;
  CurlEngine* client = nullptr;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  // The multipart body, when the request has a form; freed with the transfer.
  curl_mime* mime = nullptr;
  HttpRequest request;
  HttpCallback done;
  detail::RedactedUrl url;
  // Header values that must not appear in messages (API keys, tokens).
  std::vector<std::string> secrets;
  HttpResponse response;
  SteadyClock::time_point started;
  SteadyClock::time_point last_activity;
  // The status of the header block being read; the final one is >= 200.
  int block_status = 0;
  bool headers_done = false;
  // Bytes of response headers received so far (interim blocks included).
  std::size_t header_bytes = 0;
  // How often curl was about to send the request (CURLOPT_PREREQFUNCTION): more than once when
  // it retries on a fresh connection after a kept-alive one closed without a reply.
  int attempts = 0;
  // False for POST, PATCH and other methods a server may act on twice: never sent again.
  bool may_resend = true;
  std::uint64_t cancel_id = 0;
  std::optional<TimerQueue::iterator> timer;
  TimerKind timer_kind = TimerKind::kFirstByte;
  // Set when one of our callbacks stopped the transfer: the outcome to report instead of curl's
  // write error.
  std::optional<Status> abort;
  std::array<char, CURL_ERROR_SIZE> error_text{};

  [[nodiscard]] std::string what() const { return request.method + " " + url.display; }
};

// The client's state and event loop. Shared by the public handle and the I/O thread, so that
// the handle may be destroyed from inside one of its own callbacks: the thread then finishes the
// loop on its own and the engine dies with it.
class CurlEngine {
 public:
  // Throws std::system_error when the epoll or eventfd descriptors cannot be made.
  CurlEngine(const CurlHttpClientOptions& options, CURLM* multi,
             std::vector<std::string> proxy_secrets)
      : options_(options),
        logger_(options.logger ? options.logger : stderr_logger()),
        user_agent_(options.user_agent.empty()
                        ? std::string("llmassist/") + LLMASSIST_VERSION_STRING
                        : options.user_agent),
        multi_(multi),
        receive_buffer_(static_cast<long>(std::clamp<std::size_t>(
            options.receive_buffer_bytes, std::size_t{1024}, std::size_t{10} << 20))),
        proxy_secrets_(std::move(proxy_secrets)),
        ca_file_(!options.ca_file.empty() ? options.ca_file : env_or_empty("SSL_CERT_FILE")),
        proxy_display_(proxy_display(options.proxy)),
        epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      const int error = errno;
      close_descriptors();
      throw std::system_error(error, std::generic_category(), "epoll/eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlEngine::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlEngine::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }

  CurlEngine(const CurlEngine&) = delete;
  CurlEngine& operator=(const CurlEngine&) = delete;

  ~CurlEngine() {
    for (CURL* easy : spare_handles_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
    close_descriptors();
  }

  // The I/O thread's body: serves until request_stop(), then completes what is left.
  void loop() { run(); }

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

  // ---- called from curl's callbacks, on the I/O thread ------------------------------------

  // The headers have arrived: the first-byte timeout gives way to the idle timeout.
  void arm_idle_timer(Transfer& t) {
    if (t.request.idle_timeout.count() > 0) {
      set_timer(t, t.last_activity + t.request.idle_timeout, TimerKind::kIdle);
    } else {
      cancel_timer(t);
    }
  }

  [[nodiscard]] std::size_t max_body_bytes() const { return options_.max_body_bytes; }
  [[nodiscard]] std::size_t max_header_bytes() const { return options_.max_header_bytes; }
  void log(LogLevel level, std::string_view message) { logger_->log(level, kComponent, message); }

 private:
  struct Submission {
    HttpRequest request;
    HttpCallback done;
    SteadyClock::time_point at;
  };

  void run() {
    std::vector<Submission> batch;
    std::vector<std::uint64_t> cancels;
    std::array<epoll_event, 64> events{};
    while (true) {
      bool stop = false;
      {
        std::lock_guard lock(mu_);
        batch.swap(incoming_);
        cancels.swap(cancel_requests_);
        stop = stopping_;
      }
      if (stop) {
        for (auto& s : batch) complete(std::move(s.done), cancelled_by_shutdown(s.request));
        break;
      }
      for (auto& s : batch) adopt(std::move(s));
      batch.clear();
      for (std::uint64_t id : cancels) {
        if (Transfer* t = find(id)) {
          finish(*t, cancelled(fmt::format("{}: cancelled", t->what())));
        }
      }
      cancels.clear();
      run_curl_timeout(SteadyClock::now());
      fire_timers(SteadyClock::now());

      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                 poll_wait(SteadyClock::now()));
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        const std::uint32_t got = events[static_cast<std::size_t>(i)].events;
        if (fd == wake_fd_) {
          std::uint64_t count = 0;
          [[maybe_unused]] const ssize_t r = ::read(wake_fd_, &count, sizeof count);
          continue;
        }
        if (unwatched(fd)) continue;
        int mask = 0;
        if (got & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (got & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (got & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        int running = 0;
        curl_multi_socket_action(multi_, fd, mask, &running);
        collect_done();
      }
    }
    shut_down();
  }

  // What curl asked for with its timer: a call once its timeout has come.
  void run_curl_timeout(SteadyClock::time_point now) {
    if (!curl_due_ || *curl_due_ > now) return;
    curl_due_.reset();
    int running = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done();
  }

  // Finishes the transfers curl reports done.
  void collect_done() {
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      const CURLcode code = msg->data.result;
      if (t != nullptr) finish(*t, outcome(*t, code));
    }
  }

  // CURLMOPT_SOCKETFUNCTION: watch `s` for what curl waits for, or no more.
  //
  // A kept-alive connection is watched for its response, then not, then again for the next
  // request's: three epoll_ctl calls per exchange if each were passed on. The connections'
  // sockets, which this engine opens and closes itself (open_socket(), close_socket()), stay
  // registered instead while curl does not watch them; they are dropped from epoll only when
  // something happens on one nobody waits for (the server closed an idle connection), or when
  // closed. Other descriptors curl may watch (a resolver's pipe) are passed on as they come.
  static int on_socket(CURL*, curl_socket_t s, int what, void* self_ptr, void*) {
    auto* self = static_cast<CurlEngine*>(self_ptr);
    std::uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
    const auto own = self->sockets_.find(s);
    if (own == self->sockets_.end()) {
      if (what == CURL_POLL_REMOVE) {
        ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      } else {
        self->register_socket(s, events, /*registered=*/false);
      }
      return 0;
    }
    Watch& w = own->second;
    w.wanted = what != CURL_POLL_REMOVE;
    if (!w.wanted || (w.registered && w.events == events)) return 0;
    self->register_socket(s, events, w.registered);
    w.registered = true;
    w.events = events;
    return 0;
  }

  // Adds `s` to epoll, or changes what it is watched for.
  void register_socket(curl_socket_t s, std::uint32_t events, bool registered) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = s;
    if (::epoll_ctl(epoll_fd_, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0) {
      ::epoll_ctl(epoll_fd_, errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    }
  }

  // An event on one of the connections' sockets that curl does not watch (an idle connection
  // the server closed): it leaves epoll; curl finds the connection dead when it next looks.
  bool unwatched(int fd) {
    const auto own = sockets_.find(fd);
    if (own == sockets_.end() || own->second.wanted) return false;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    own->second.registered = false;
    return true;
  }

  // CURLOPT_OPENSOCKETFUNCTION: the connections' sockets are ours to open and close, so that
  // on_socket() knows a descriptor's registration is still its own.
  static curl_socket_t open_socket(void* self_ptr, curlsocktype purpose, curl_sockaddr* address) {
    auto* self = static_cast<CurlEngine*>(self_ptr);
    const curl_socket_t s =
        ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (s != CURL_SOCKET_BAD && purpose == CURLSOCKTYPE_IPCXN) self->sockets_[s] = Watch{};
    return s;
  }

  // CURLOPT_CLOSESOCKETFUNCTION
  static int close_socket(void* self_ptr, curl_socket_t s) {
    auto* self = static_cast<CurlEngine*>(self_ptr);
    if (const auto own = self->sockets_.find(s); own != self->sockets_.end()) {
      if (own->second.registered) ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      self->sockets_.erase(own);
    }
    return ::close(s);
  }

  // CURLMOPT_TIMERFUNCTION: when curl wants run_curl_timeout(); -1 is never.
  static int on_timer(CURLM*, long timeout_ms, void* self_ptr) {
    auto* self = static_cast<CurlEngine*>(self_ptr);
    if (timeout_ms < 0) {
      self->curl_due_.reset();
    } else {
      self->curl_due_ = SteadyClock::now() + milliseconds(timeout_ms);
    }
    return 0;
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
  }

  void close_descriptors() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  // Completes every transfer in flight, and every request submitted meanwhile (a `done` may
  // submit another), with kCancelled.
  void shut_down() {
    while (true) {
      std::vector<Submission> batch;
      {
        std::lock_guard lock(mu_);
        batch.swap(incoming_);
        cancel_requests_.clear();
      }
      if (batch.empty() && active_.empty()) return;
      std::vector<std::uint64_t> ids;
      ids.reserve(active_.size());
      for (const auto& [id, t] : active_) ids.push_back(id);
      for (std::uint64_t id : ids) {
        if (Transfer* t = find(id)) finish(*t, cancelled_by_shutdown(t->request));
      }
      for (auto& s : batch) complete(std::move(s.done), cancelled_by_shutdown(s.request));
    }
  }

  static Status cancelled_by_shutdown(const HttpRequest& request) {
    return cancelled(fmt::format("{} {}: the HTTP client was shut down", request.method,
                                 request.redacted_url.empty()
                                     ? detail::redact_url(request.url).display
                                     : request.redacted_url));
  }

  Transfer* find(std::uint64_t id) {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second.get();
  }

  // Takes a submitted request onto the I/O thread and starts it, or completes it at once when
  // it cannot start.
  void adopt(Submission s) {
    auto t = std::make_unique<Transfer>();
    t->id = next_id_++;
    t->client = this;
    t->request = std::move(s.request);
    t->done = std::move(s.done);
    t->started = s.at;
    t->last_activity = s.at;
    t->url = redacted(t->request.url);
    if (!t->request.redacted_url.empty()) {
      t->url.display = t->request.redacted_url;
      // Whatever the caller hid, the path may hold: keep it out of curl's detail text too.
      if (auto path_at = t->request.url.find('/', t->request.url.find("//") + 2);
          path_at != std::string::npos) {
        t->url.secrets.push_back(t->request.url.substr(path_at));
      }
    }
    for (const auto& [name, value] : t->request.headers) {
      // Short values ("1", "json") are not secrets and would censor every message.
      if (value.size() >= 6) t->secrets.push_back(value);
    }

    if (Status st = configure(*t); !st.ok()) return reject(std::move(t), std::move(st));
    if (const auto& token = t->request.cancel) {
      if (token->cancelled()) {
        return reject(std::move(t), cancelled(fmt::format("{}: cancelled", t->what())));
      }
      const std::uint64_t id = t->id;
      t->cancel_id = token->on_cancel([this, id] {
        {
          std::lock_guard lock(mu_);
          cancel_requests_.push_back(id);
        }
        wake();
      });
      if (t->cancel_id == 0) {  // cancelled meanwhile; the callback's request finds nothing
        return reject(std::move(t), cancelled(fmt::format("{}: cancelled", t->what())));
      }
    }
    if (const CURLMcode mc = curl_multi_add_handle(multi_, t->easy); mc != CURLM_OK) {
      return reject(std::move(t), internal_error(fmt::format("{}: curl_multi_add_handle: {}",
                                                             t->what(), curl_multi_strerror(mc))));
    }
    if (t->request.first_byte_timeout.count() > 0) {
      set_timer(*t, t->started + t->request.first_byte_timeout, TimerKind::kFirstByte);
    }
    const std::uint64_t id = t->id;
    active_.emplace(id, std::move(t));
  }

  // A client sends to a few URLs over and over (an API's endpoints): each is parsed once.
  const detail::RedactedUrl& redacted(const std::string& url) {
    if (auto it = redactions_.find(url); it != redactions_.end()) return it->second;
    if (redactions_.size() >= kMaxRedactions) redactions_.clear();
    return redactions_.emplace(url, detail::redact_url(url)).first->second;
  }
  static constexpr std::size_t kMaxRedactions = 256;

  // Sets up an easy handle for `t`. Everything that can be checked before connecting is.
  Status configure(Transfer& t) {
    const HttpRequest& r = t.request;
    if (!t.url.valid) return invalid_argument(fmt::format("{}: malformed URL", t.what()));
    if (t.url.scheme != "http" && t.url.scheme != "https") {
      return invalid_argument(
          fmt::format("{}: unsupported scheme; only http and https are allowed", t.what()));
    }
    if (!is_token(r.method)) {
      return invalid_argument(fmt::format("{}: invalid method", t.url.display));
    }
    for (const auto& [name, value] : r.headers) {
      if (!is_token(name)) {
        return invalid_argument(fmt::format("{}: invalid header name", t.what()));
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return invalid_argument(
            fmt::format("{}: the value of header {} contains CR, LF or NUL", t.what(), name));
      }
    }
    const bool has_user_agent = find_header(r.headers, "user-agent").has_value();
    const bool has_expect = find_header(r.headers, "expect").has_value();
    const bool has_content_type = find_header(r.headers, "content-type").has_value();
    if (!r.form.empty()) LLMASSIST_RETURN_IF_ERROR(check_form(t, has_content_type));
    t.may_resend = idempotent(r.method);

    t.easy = take_handle();
    if (t.easy == nullptr)
      return internal_error(fmt::format("{}: curl_easy_init failed", t.what()));
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &CurlEngine::open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &CurlEngine::close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    // Never signals: the I/O thread is not the main thread, and timeouts are ours to enforce.
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_text.data());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &on_prerequest);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
    // A proxy's CONNECT reply would otherwise look like the final response headers.
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, receive_buffer_);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN,
                     static_cast<long>(options_.idle_connection_lifetime.count()));
    if (options_.http2) {
      curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
      // Concurrent requests to an https host wait for its first connection to learn whether it
      // multiplexes instead of each opening one. (Plain http never does: nothing to wait for.)
      if (t.url.scheme == "https") curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    } else {
      curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    }
    // Unset: curl reads the environment itself. "" turns every proxy off, the environment's too.
    if (!options_.proxy.empty()) {
      curl_easy_setopt(e, CURLOPT_PROXY, options_.proxy == "direct" ? "" : options_.proxy.c_str());
    }
    if (r.connect_timeout.count() > 0) {
      curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count()));
    }
    if (r.total_timeout.count() > 0) {
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.total_timeout.count()));
    }
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!ca_file_.empty()) {
      curl_easy_setopt(e, CURLOPT_CAINFO, ca_file_.c_str());
      curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, ca_file_.c_str());
    }
    if (!has_user_agent) curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent_.c_str());

    if (!r.form.empty()) {
      LLMASSIST_RETURN_IF_ERROR(attach_form(t));
      // CURLOPT_MIMEPOST makes the request a POST; another method keeps the form as its body.
      if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    } else if (r.method == "GET" && r.body.empty()) {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
      if (r.method == "POST") {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
      } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      }
      if (r.method == "POST" || !r.body.empty()) {
        // The body stays in `t.request` until the transfer ends, so curl need not copy it.
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      }
    }

    std::vector<std::string> lines;
    for (const auto& [name, value] : r.headers) {
      // "Name;" is curl's way to send a header with an empty value.
      lines.push_back(value.empty() ? name + ";" : name + ": " + value);
    }
    // curl would wait up to a second for "100 Continue" before sending a larger body.
    if (!has_expect) lines.emplace_back("Expect:");
    // curl would label a body as a form (application/x-www-form-urlencoded); a multipart form
    // keeps the Content-Type curl gives it, with the boundary.
    if (!has_content_type && r.form.empty()) lines.emplace_back("Content-Type:");
    for (const auto& line : lines) {
      curl_slist* grown = curl_slist_append(t.header_list, line.c_str());
      if (grown == nullptr) return internal_error(fmt::format("{}: out of memory", t.what()));
      t.header_list = grown;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);
    return Status();
  }

  // Checks a form before anything is sent: its shape, and that each of its files can be read.
  static Status check_form(const Transfer& t, bool has_content_type) {
    const HttpRequest& r = t.request;
    if (!r.body.empty()) {
      return invalid_argument(
          fmt::format("{}: a request has a body or a form, not both", t.what()));
    }
    if (r.method == "GET" || r.method == "HEAD") {
      return invalid_argument(fmt::format("{}: {} carries no form", t.what(), r.method));
    }
    if (has_content_type) {
      return invalid_argument(fmt::format(
          "{}: a form sets its own Content-Type (multipart/form-data with its boundary)",
          t.what()));
    }
    for (const HttpFormPart& part : r.form) {
      if (part.name.empty()) {
        return invalid_argument(fmt::format("{}: a form part has no name", t.what()));
      }
      if (has_line_break_or_nul(part.name) || has_line_break_or_nul(part.file_name) ||
          has_line_break_or_nul(part.content_type)) {
        return invalid_argument(fmt::format(
            "{}: the name, filename or content type of form part {} contains CR, LF or NUL",
            t.what(), has_line_break_or_nul(part.name) ? "<unprintable>" : part.name));
      }
      if (part.file_path.empty()) continue;
      if (!part.value.empty()) {
        return invalid_argument(
            fmt::format("{}: form part {} has both a value and a file; it is one or the other",
                        t.what(), part.name));
      }
      if (Status readable = check_readable_file(part.file_path); !readable.ok()) {
        return invalid_argument(fmt::format("{}: form part {}: cannot read the file {}: {}",
                                            t.what(), part.name, part.file_path,
                                            readable.message()));
      }
    }
    return Status();
  }

  // Builds the multipart body of `t` (checked by check_form()) with curl's mime API.
  static Status attach_form(Transfer& t) {
    t.mime = curl_mime_init(t.easy);
    if (t.mime == nullptr) return internal_error(fmt::format("{}: out of memory", t.what()));
    for (const HttpFormPart& part : t.request.form) {
      curl_mimepart* p = curl_mime_addpart(t.mime);
      if (p == nullptr) return internal_error(fmt::format("{}: out of memory", t.what()));
      CURLcode code = curl_mime_name(p, part.name.c_str());
      std::string file_name = part.file_name;
      if (!part.file_path.empty()) {
        if (code == CURLE_OK) code = curl_mime_filedata(p, part.file_path.c_str());
        if (code == CURLE_READ_ERROR) {
          // Readable a moment ago (check_form()): it changed under us.
          return invalid_argument(fmt::format("{}: form part {}: cannot read the file {}", t.what(),
                                              part.name, part.file_path));
        }
        if (file_name.empty()) file_name = last_segment(part.file_path);
      } else if (code == CURLE_OK) {
        code = curl_mime_data(p, part.value.data(), part.value.size());
      }
      if (code == CURLE_OK && !file_name.empty()) code = curl_mime_filename(p, file_name.c_str());
      // Without a type curl would guess one from the filename's extension, for some.
      std::string type = part.content_type;
      if (type.empty() && !file_name.empty()) type = "application/octet-stream";
      if (code == CURLE_OK && !type.empty()) code = curl_mime_type(p, type.c_str());
      if (code != CURLE_OK) {
        return internal_error(
            fmt::format("{}: form part {}: {}", t.what(), part.name, curl_easy_strerror(code)));
      }
    }
    if (const CURLcode code = curl_easy_setopt(t.easy, CURLOPT_MIMEPOST, t.mime);
        code != CURLE_OK) {
      return internal_error(fmt::format("{}: {}", t.what(), curl_easy_strerror(code)));
    }
    return Status();
  }

  // Completes a transfer that never reached the multi handle.
  void reject(std::unique_ptr<Transfer> t, Status status) {
    release(*t);
    HttpCallback done = std::move(t->done);
    t.reset();
    complete(std::move(done), std::move(status));
  }

  // Removes an active transfer from curl, frees it, then reports `result`. Removing a transfer
  // that has not finished closes its connection instead of returning it to the cache.
  void finish(Transfer& t, Result<HttpResponse> result) {
    if (!result.ok() && result.status().code() != StatusCode::kCancelled) {
      log(LogLevel::kDebug, result.status().message());
    }
    curl_multi_remove_handle(multi_, t.easy);
    release(t);
    HttpCallback done = std::move(t.done);
    active_.erase(t.id);  // destroys t
    complete(std::move(done), std::move(result));
  }

  void release(Transfer& t) {
    cancel_timer(t);
    if (t.request.cancel && t.cancel_id != 0) t.request.cancel->remove(t.cancel_id);
    t.cancel_id = 0;
    curl_slist_free_all(t.header_list);
    t.header_list = nullptr;
    // Unbinds itself from the easy handle, which no longer uses it (removed from the multi).
    curl_mime_free(t.mime);
    t.mime = nullptr;
    if (t.easy != nullptr) give_back_handle(t.easy);
    t.easy = nullptr;
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

  // What a transfer that curl reports as done amounts to.
  Result<HttpResponse> outcome(Transfer& t, CURLcode code) {
    const auto now = SteadyClock::now();
    if (code == CURLE_OK && !t.headers_done && !t.abort) {
      // curl ends a reply whose connection closed inside its headers as if it were complete.
      return unavailable(fmt::format(
          "{}: the connection closed before the response headers were complete", t.what()));
    }
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
      t.response.status = static_cast<int>(status);
      t.response.total_time = micros(now - t.started);
      if (!t.headers_done) t.response.time_to_first_byte = t.response.total_time;
      return std::move(t.response);
    }
    if (t.abort) return *std::move(t.abort);

    const HttpRequest& r = t.request;
    if (code == CURLE_ABORTED_BY_CALLBACK && t.attempts > 1 && !t.may_resend) {
      return unavailable(
                 fmt::format("{}: the connection closed after the request was sent, without a "
                             "reply; not sent again, since the server may have acted on it",
                             t.what()))
          .with_reason("not_resent");
    }
    std::string why = sanitized_detail(t, code);
    if (!proxy_display_.empty()) why += " (proxy " + proxy_display_ + ")";
    switch (code) {
      case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t connect_us = 0;
        curl_off_t pretransfer_us = 0;
        curl_easy_getinfo(t.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(t.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        const bool connected = t.headers_done || connect_us > 0 || pretransfer_us > 0;
        const milliseconds connect_limit =
            r.connect_timeout.count() > 0 ? r.connect_timeout : milliseconds(300000);
        if (!connected && (r.total_timeout.count() == 0 || connect_limit <= r.total_timeout)) {
          return deadline_exceeded(
              fmt::format("{}: connect timeout of {} ms passed", t.what(), connect_limit.count()));
        }
        return deadline_exceeded(
            fmt::format("{}: total timeout of {} ms passed", t.what(), r.total_timeout.count()));
      }
      // (The URL and its scheme were checked before; curl's "unsupported protocol" after that
      // is a reply in a version it does not speak: the default below.)
      case CURLE_URL_MALFORMAT:
      case CURLE_BAD_FUNCTION_ARGUMENT:
        return invalid_argument(fmt::format("{}: {}", t.what(), why));
      case CURLE_READ_ERROR:
        // Only a form's file is read while sending: it vanished or shrank after the check.
        if (!r.form.empty()) {
          std::string files;
          for (const HttpFormPart& part : r.form) {
            if (part.file_path.empty()) continue;
            files += (files.empty() ? "" : ", ") + part.file_path;
          }
          return invalid_argument(
              fmt::format("{}: a file of the form could not be read while it was sent ({}): {}",
                          t.what(), files, why));
        }
        return unavailable(fmt::format("{}: {}", t.what(), why));
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      default:
        // Everything else is a failure of the network or of the peer (TLS, HTTP/2 framing, a
        // garbled reply): another attempt or another provider may fare better.
        return unavailable(fmt::format("{}: {}", t.what(), why));
    }
  }

  void set_timer(Transfer& t, SteadyClock::time_point at, TimerKind kind) {
    cancel_timer(t);
    t.timer = timers_.emplace(at, &t);
    t.timer_kind = kind;
  }

  void cancel_timer(Transfer& t) {
    if (t.timer) timers_.erase(*t.timer);
    t.timer.reset();
  }

  void fire_timers(SteadyClock::time_point now) {
    while (!timers_.empty() && timers_.begin()->first <= now) {
      Transfer& t = *timers_.begin()->second;
      timers_.erase(timers_.begin());
      t.timer.reset();
      if (t.timer_kind == TimerKind::kFirstByte) {
        finish(t, deadline_exceeded(
                      fmt::format("{}: first-byte timeout of {} ms passed without response headers",
                                  t.what(), t.request.first_byte_timeout.count())));
        continue;
      }
      // The idle entry is not moved on every piece of data; it is checked when it comes due.
      const auto due = t.last_activity + t.request.idle_timeout;
      if (due > now) {
        set_timer(t, due, TimerKind::kIdle);
        continue;
      }
      finish(t, deadline_exceeded(fmt::format("{}: idle timeout of {} ms passed without data",
                                              t.what(), t.request.idle_timeout.count())));
    }
  }

  // How long the loop may sleep: until the nearest timer, ours or curl's.
  int poll_wait(SteadyClock::time_point now) const {
    milliseconds wait = kMaxPollWait;
    auto sooner = [&](SteadyClock::time_point due) {
      const auto until = std::chrono::ceil<milliseconds>(due - now);
      wait = std::clamp(until, milliseconds(0), wait);
    };
    if (!timers_.empty()) sooner(timers_.begin()->first);
    if (curl_due_) sooner(*curl_due_);
    return static_cast<int>(wait.count());
  }

  CURL* take_handle() {
    if (spare_handles_.empty()) return curl_easy_init();
    CURL* easy = spare_handles_.back();
    spare_handles_.pop_back();
    return easy;
  }

  void give_back_handle(CURL* easy) {
    if (static_cast<int>(spare_handles_.size()) < options_.max_cached_handles) {
      // Forgets this request's options; keeps the DNS and TLS session caches.
      curl_easy_reset(easy);
      spare_handles_.push_back(easy);
    } else {
      curl_easy_cleanup(easy);
    }
  }

  // ---- curl callbacks ------------------------------------------------------------------------

  // CURLOPT_PREREQFUNCTION: curl is about to send the request on a connection. A second time
  // means curl retries it after a reused connection closed without a reply; the server may have
  // received the first copy, so a request that is not idempotent stops here.
  static int on_prerequest(void* user, char*, char*, int, int) {
    auto& t = *static_cast<Transfer*>(user);
    ++t.attempts;
    return t.attempts > 1 && !t.may_resend ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
  }

  // curl's error text for `t` ("Failed to connect to host port 1: Connection refused"), or its
  // description of `code` when there is none, with every secret known to the client hidden.
  std::string sanitized_detail(const Transfer& t, CURLcode code) const {
    std::string text(t.error_text.data());
    if (text.empty()) return curl_easy_strerror(code);
    std::vector<std::string> secrets = t.url.secrets;
    secrets.insert(secrets.end(), t.secrets.begin(), t.secrets.end());
    secrets.insert(secrets.end(), proxy_secrets_.begin(), proxy_secrets_.end());
    text = without_secrets(std::move(text), std::move(secrets));
    // A URL curl quotes may carry a query string none of the secrets covers whole.
    if (const auto query = text.find('?'); query != std::string::npos) {
      text.erase(query);
      text += "?<redacted>";
    }
    return text;
  }

  // Receives the response header lines one at a time, including those of interim (1xx)
  // responses; only the final block is kept.
  static std::size_t on_header_line(char* data, std::size_t size, std::size_t count, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const std::size_t length = size * count;
    t.last_activity = SteadyClock::now();
    if (t.headers_done) return length;  // trailers
    t.header_bytes += length;
    if (t.header_bytes > t.client->max_header_bytes()) {
      t.abort = unavailable(fmt::format("{}: the response headers exceed the limit of {} bytes",
                                        t.what(), t.client->max_header_bytes()));
      return 0;
    }
    const std::string_view line = detail::trim(std::string_view(data, length));
    if (line.starts_with("HTTP/")) {
      t.response.headers.clear();
      t.block_status = 0;
      if (const auto space = line.find(' '); space != std::string_view::npos) {
        for (char c : line.substr(space + 1, 3)) {
          if (c < '0' || c > '9') break;
          t.block_status = t.block_status * 10 + (c - '0');
        }
      }
      return length;
    }
    if (line.empty()) {
      if (t.block_status < 200) return length;  // the end of an interim response
      t.headers_done = true;
      t.response.status = t.block_status;
      t.response.time_to_first_byte = micros(t.last_activity - t.started);
      t.client->arm_idle_timer(t);
      if (t.request.on_headers &&
          !run_callback(t, "headers", [&] { return t.request.on_headers(t.response); })) {
        return 0;
      }
      return length;
    }
    if ((data[0] == ' ' || data[0] == '\t') && !t.response.headers.empty()) {
      // An obsolete folded continuation of the previous header's value.
      t.response.headers.back().second += ' ';
      t.response.headers.back().second += line;
      return length;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return length;  // not a header; tolerated
    t.response.headers.emplace_back(std::string(detail::trim(line.substr(0, colon))),
                                    std::string(detail::trim(line.substr(colon + 1))));
    return length;
  }

  // Runs one of the request's callbacks (`which`: "headers", "body"). False, with t.abort set,
  // when it threw or asked to stop.
  template <typename Callback>
  static bool run_callback(Transfer& t, const char* which, Callback&& callback) {
    bool go_on = false;
    try {
      go_on = callback();
    } catch (...) {
      t.abort = internal_error(fmt::format("{}: the {} callback threw", t.what(), which));
      return false;
    }
    if (!go_on) {
      t.abort = cancelled(fmt::format("{}: cancelled by the {} callback", t.what(), which));
    }
    return go_on;
  }

  static std::size_t on_body_bytes(char* data, std::size_t size, std::size_t count, void* user) {
    auto& t = *static_cast<Transfer*>(user);
    const std::size_t length = size * count;
    t.last_activity = SteadyClock::now();
    if (t.request.on_body) {
      const auto body = [&] { return t.request.on_body(std::string_view(data, length)); };
      return run_callback(t, "body", body) ? length : 0;
    }
    if (t.response.body.size() + length > t.client->max_body_bytes()) {
      t.abort = Status(StatusCode::kOutOfRange,
                       fmt::format("{}: the response body exceeds the limit of {} bytes", t.what(),
                                   t.client->max_body_bytes()));
      return 0;
    }
    t.response.body.append(data, length);
    return length;
  }

  const CurlHttpClientOptions options_;
  const std::shared_ptr<Logger> logger_;
  const std::string user_agent_;
  CURLM* const multi_;
  const long receive_buffer_;  // CURLOPT_BUFFERSIZE
  // The passwords (and user names) of the proxies in the options and the environment: never
  // in a message.
  const std::vector<std::string> proxy_secrets_;
  const std::string ca_file_;  // CURLOPT_CAINFO; empty: curl's default
  // The options' proxy as named in messages (scheme://host:port); empty when none is set.
  const std::string proxy_display_;

  std::mutex mu_;
  std::vector<Submission> incoming_;            // guarded by mu_
  std::vector<std::uint64_t> cancel_requests_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_

  const int epoll_fd_;  // the sockets curl watches, and wake_fd_
  const int wake_fd_;   // written by other threads when they queue work

  // The I/O thread's own state.
  std::optional<SteadyClock::time_point> curl_due_;  // when curl wants its timeout call
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Transfer>> active_;
  TimerQueue timers_;
  std::vector<CURL*> spare_handles_;
  // The connections' sockets (see on_socket()): registered with epoll or not, with what, and
  // whether curl watches them now.
  struct Watch {
    std::uint32_t events = 0;
    bool registered = false;
    bool wanted = false;
  };
  std::unordered_map<curl_socket_t, Watch> sockets_;
  std::unordered_map<std::string, detail::RedactedUrl> redactions_;  // see redacted()
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(std::shared_ptr<CurlEngine> engine)
      : engine_(std::move(engine)), io_([engine = engine_] { engine->loop(); }) {}

  ~CurlHttpClient() override {
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
  const std::shared_ptr<CurlEngine> engine_;
  std::thread io_;  // after engine_: starts once the engine is ready
};

}  // namespace

Result<std::unique_ptr<HttpClient>> make_curl_http_client(const CurlHttpClientOptions& options) {
  if (options.max_connections_per_host < 0 || options.max_total_connections < 0 ||
      options.max_idle_connections < 0 || options.max_cached_handles < 0) {
    return invalid_argument("connection and handle limits must not be negative");
  }
  std::vector<std::string> proxy_secrets;
  if (!options.proxy.empty() && options.proxy != "direct") {
    const detail::ParsedUrl url = detail::parse_url(options.proxy);
    const std::string_view schemes[] = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};
    if (!url.valid ||
        std::find(std::begin(schemes), std::end(schemes), url.scheme) == std::end(schemes)) {
      return invalid_argument(fmt::format(
          "proxy {}: not a proxy URL (http://, https://, socks4://, socks4a://, socks5:// or "
          "socks5h://, then [user:password@]host[:port])",
          url.valid ? url.scheme + "://" + url.host_for_authority() : "<malformed>"));
    }
    add_proxy_secrets(options.proxy, proxy_secrets);
  }
  // curl reads these itself when `proxy` is empty; their passwords are secrets all the same.
  for (const char* name : {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    if (const std::string value = env_or_empty(name); !value.empty()) {
      add_proxy_secrets(value, proxy_secrets);
    }
  }
  LLMASSIST_RETURN_IF_ERROR(ensure_curl_initialized());
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return internal_error("curl_multi_init failed");
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(options.max_connections_per_host));
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(options.max_total_connections));
  if (options.max_idle_connections > 0) {
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(options.max_idle_connections));
  }
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  try {
    auto engine = std::make_shared<CurlEngine>(options, multi, std::move(proxy_secrets));
    multi = nullptr;  // the engine owns it now
    return std::unique_ptr<HttpClient>(std::make_unique<CurlHttpClient>(std::move(engine)));
  } catch (const std::exception& e) {
    if (multi != nullptr) curl_multi_cleanup(multi);
    return internal_error(fmt::format("cannot start the HTTP client: {}", e.what()));
  }
}

}  // namespace llmassist
