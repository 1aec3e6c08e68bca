// The Telegram Bot API transport: long polling or a webhook server for inbound updates, and a
// paced, retrying queue per chat for everything sent.
#include "llmassist/telegram/telegram_transport.h"
#include "core/json_text.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/constant_time.h"
#include "http/http_server.h"
#include "http/url_redaction.h"
#include "llmassist/http/curl_http_client.h"
#include "telegram/telegram_format.h"

namespace llmassist {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kComponent = "transport.telegram";
constexpr std::string_view kSecretHeader = "X-Telegram-Bot-Api-Secret-Token";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// chat_id as the Bot API takes it: an integer, or "@channelusername".
Status put_chat_id(json& body, std::string_view chat) {
  if (chat.empty()) return invalid_argument("telegram: no chat given");
  if (chat.front() == '@' && chat.size() > 1) {
    body["chat_id"] = telegram::sanitize_utf8(chat);
    return Status();
  }
  std::int64_t id = 0;
  const char* end = chat.data() + chat.size();
  const auto parsed = std::from_chars(chat.data(), end, id);
  if (parsed.ec != std::errc() || parsed.ptr != end) {
    return invalid_argument("telegram: the chat id is neither a number nor an @username");
  }
  body["chat_id"] = id;
  return Status();
}

// Whether a method the server does not know answered: a Bot API server older than the method.
bool method_missing(const Status& s) {
  if (s.code() == StatusCode::kNotFound) return true;
  if (s.code() != StatusCode::kInvalidArgument) return false;
  std::string lower = s.message();
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("method not found") != std::string::npos ||
         lower.find("method is not found") != std::string::npos;
}

milliseconds backoff(const TelegramRetryOptions& r, int failures) {
  milliseconds delay = std::max(r.initial_backoff, milliseconds(1));
  for (int i = 1; i < failures && delay < r.max_backoff; ++i) delay *= 2;
  return std::min(delay, std::max(r.max_backoff, milliseconds(1)));
}

// An upload is given this much more time to reach Telegram than request_timeout, at this rate
// (1 Mbit/s): a 50 MB file then has about 7 minutes.
constexpr std::uint64_t kMinUploadBytesPerSecond = 128 * 1024;

struct ApiCall {
  std::string method;
  std::string body;
  // When not empty, the call goes as multipart/form-data with these parts instead of `body`.
  std::vector<HttpFormPart> form;
  // The bytes of the files in `form`, for the time the upload may take.
  std::uint64_t upload_bytes = 0;
};

class Core;

// One outbound operation: one Bot API call or several in order (the parts of a long message, a
// draft that falls back to send-then-edit). The Core retries transient failures of each call;
// the operation sees only final outcomes. Its lane runs one call of it at a time; stop() may
// cancel it meanwhile, so the Core calls next(), on_result() and fail() under `mu` and only
// while `finished` is false.
class Op {
 public:
  virtual ~Op() = default;
  // The call to make now, or the Status that ends the operation without one.
  virtual Result<ApiCall> next(Core& core) = 0;
  // The final outcome of the call next() named. Returns true when another call follows.
  virtual bool on_result(Core& core, Result<telegram::MethodResult> result) = 0;
  // Ends the operation with `status` (a refused call, cancellation) without calling back yet.
  virtual void fail(Status status) = 0;
  // Calls the caller back with the outcome; only the first call does anything.
  virtual void complete() = 0;

  std::mutex mu;
  bool finished = false;  // under mu: the outcome is decided (complete() may still be due)
  int attempts = 0;       // of the current call
};

// Operations whose caller waits for a Status.
class StatusOp : public Op {
 public:
  explicit StatusOp(DoneCallback done) : done_(std::move(done)) {}
  void fail(Status status) override { status_ = std::move(status); }
  void complete() override {
    // Called once the outcome is decided (finished), by the one thread that decided it.
    if (auto done = std::exchange(done_, nullptr)) done(status_);
  }

 protected:
  Status status_;

 private:
  DoneCallback done_;
};

// The lifetime of the transport's work, shared with every HTTP callback and timer so that they
// may outlive the ChatTransport object; stop() ends it.
class Core final : public std::enable_shared_from_this<Core> {
 public:
  Core(TelegramTransportOptions options, std::shared_ptr<HttpClient> http,
       std::shared_ptr<Scheduler> scheduler, std::string api_display)
      : options_(std::move(options)),
        api_display_(std::move(api_display)),
        logger_(options_.logger ? options_.logger : stderr_logger()),
        scheduler_(std::move(scheduler)),
        http_(std::move(http)) {
    tokens_ = options_.pacing.global_per_second;
    refilled_ = SteadyClock::now();
  }

  ~Core() {
    if (worker_.joinable()) worker_.detach();
  }

  // ---- helpers shared with the operations ----

  // `text` with every occurrence of the token replaced: the last guard for logs and Statuses.
  [[nodiscard]] std::string scrub(std::string text) const {
    const std::string& token = options_.token;
    if (token.empty()) return text;
    for (std::size_t at = text.find(token); at != std::string::npos; at = text.find(token, at)) {
      text.replace(at, token.size(), "<redacted>");
    }
    return text;
  }
  [[nodiscard]] Status scrub(const Status& s) const {
    if (s.ok()) return s;
    Status out(s.code(), scrub(s.message()));
    if (!s.reason().empty()) out.with_reason(s.reason());
    if (s.retry_after()) out.with_retry_after(*s.retry_after());
    return out;
  }
  void log(LogLevel level, const std::string& message) const {
    try {
      logger_->log(level, kComponent, scrub(message));
    } catch (...) {
      // A logger must not throw; if one does, the transport goes on regardless.
    }
  }

  // A Bot API call with a JSON `body`, or with `form` (multipart/form-data) when it has parts.
  [[nodiscard]] HttpRequest request(std::string_view method, std::string body,
                                    milliseconds first_byte,
                                    std::vector<HttpFormPart> form = {}) const {
    HttpRequest r;
    r.method = "POST";
    r.url = fmt::format("{}/bot{}/{}", options_.api_url, options_.token, method);
    r.redacted_url = fmt::format("{}/bot<redacted>/{}", api_display_, method);
    if (form.empty()) {
      r.headers.emplace_back("Content-Type", "application/json");
      r.body = std::move(body);
    } else {
      r.form = std::move(form);
    }
    r.connect_timeout = options_.connect_timeout;
    r.first_byte_timeout = first_byte;
    r.idle_timeout = first_byte;
    r.cancel = cancel_;
    return r;
  }

  // A blocking Bot API call, for start() only.
  [[nodiscard]] Result<telegram::MethodResult> call_sync(std::string_view method,
                                                         std::string body) {
    auto response = send_sync(*http_, request(method, std::move(body), options_.request_timeout));
    if (!response.ok()) return scrub(response.status());
    auto parsed = telegram::parse_method_response(response->body, response->status, true);
    if (!parsed.ok()) return scrub(parsed.status().annotate(method));
    return parsed;
  }

  [[nodiscard]] bool drafts_supported() const { return drafts_supported_.load(); }
  void drafts_unsupported() {
    if (drafts_supported_.exchange(false)) {
      log(LogLevel::kInfo,
          "sendMessageDraft is not available on this Bot API server; drafts are sent as a "
          "message that is then edited");
    }
  }
  [[nodiscard]] std::optional<std::string> draft_message(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = draft_messages_.find(key);
    if (it == draft_messages_.end()) return std::nullopt;
    return it->second;
  }
  void remember_draft(const std::string& key, std::string message_id) {
    std::lock_guard lock(mu_);
    // Bounded: a draft older than the last thousand is finished long ago.
    if (draft_messages_.emplace(key, std::move(message_id)).second) {
      draft_order_.push_back(key);
      if (draft_order_.size() > 1000) {
        draft_messages_.erase(draft_order_.front());
        draft_order_.pop_front();
      }
    }
  }

  // The file_id of a file uploaded before, by SendOp's key for the file; refreshed as the most
  // recently used.
  [[nodiscard]] std::optional<std::string> known_file(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = known_files_.find(key);
    if (it == known_files_.end()) return std::nullopt;
    files_by_use_.splice(files_by_use_.begin(), files_by_use_, it->second);
    return it->second->second;
  }
  void remember_file(const std::string& key, std::string file_id) {
    std::lock_guard lock(mu_);
    if (auto it = known_files_.find(key); it != known_files_.end()) {
      it->second->second = std::move(file_id);
      files_by_use_.splice(files_by_use_.begin(), files_by_use_, it->second);
      return;
    }
    files_by_use_.emplace_front(key, std::move(file_id));
    known_files_.emplace(key, files_by_use_.begin());
    // Bounded like the drafts: the least recently sent file is uploaded again if it comes back.
    if (known_files_.size() > kMaxKnownFiles) {
      known_files_.erase(files_by_use_.back().first);
      files_by_use_.pop_back();
    }
  }
  void forget_file(const std::string& key) {
    std::lock_guard lock(mu_);
    if (auto it = known_files_.find(key); it != known_files_.end()) {
      files_by_use_.erase(it->second);
      known_files_.erase(it);
    }
  }

  // ---- outbound ----

  // Queues `op` behind the chat's earlier operations (`chat` empty: a lane of its own, unpaced).
  void enqueue(const std::string& chat, std::shared_ptr<Op> op) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        const bool paced = !chat.empty();
        const std::string key = paced ? "c:" + chat : fmt::format("e:{}", next_lane_++);
        Lane& lane = lanes_[key];
        lane.paced = paced;
        lane.ops.push_back(std::move(op));
        if (!lane.busy && lane.ops.size() == 1) ready_.push_back(key);
        op = nullptr;
      }
    }
    if (op) {
      settle(*op, cancelled("telegram: the transport is stopped"));
      return;
    }
    // Issued here when pacing lets it go: a hand-off to the scheduler's thread would cost a
    // wake-up per message. From inside one of the transport's own callbacks, through the
    // scheduler instead, so that a callback that sends never nests another.
    if (tl_inside_ == this) {
      schedule(milliseconds(0), [](Core& core) { core.pump(); });
      return;
    }
    Active active(*this);
    if (active) pump();
  }

  // ---- lifecycle ----

  Status start(InboundHandler handler) {
    std::lock_guard starting(start_mu_);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return failed_precondition("telegram: the transport was stopped");
      if (started_) return failed_precondition("telegram: the transport is already started");
      started_ = true;
      handler_ = std::move(handler);
    }
    auto me = call_sync("getMe", "{}");
    if (me.ok()) {
      try {
        const json bot = json::parse(me->result_json);
        log(LogLevel::kInfo, fmt::format("signed in as @{}", bot.value("username", std::string())));
      } catch (...) {
        // The name is for the log only.
      }
    }
    Status s = me.status();
    if (s.ok() && options_.mode == TelegramMode::kWebhook) s = start_webhook();
    if (s.ok()) {
      std::lock_guard lock(mu_);
      if (stopping_) s = cancelled("telegram: stopped while starting");
    }
    if (!s.ok()) {
      stop_webhook();
      std::lock_guard lock(mu_);
      started_ = false;  // start() may be tried again
      return s;
    }
    worker_ = std::thread([self = shared_from_this()] { self->inbound_loop(); });
    if (options_.mode == TelegramMode::kPolling) poll();
    return Status();
  }

  void stop() {
    {
      std::unique_lock lock(mu_);
      if (stopping_) {
        // A second caller waits for the first, unless it runs inside one of our callbacks or
        // inside the first stop() (a cancelled send's callback).
        if (tl_inside_ != this && stopping_thread_ != std::this_thread::get_id()) {
          stopped_cv_.wait(lock, [&] { return stop_done_; });
        }
        return;
      }
      stopping_ = true;
      stopping_thread_ = std::this_thread::get_id();
    }
    inbound_cv_.notify_all();
    cancel_->cancel();  // also ends a getMe or setWebhook that start() waits for
    // A start() under way finishes first (it sees stopping_), so that nothing it starts is missed.
    { std::lock_guard starting(start_mu_); }
    stop_webhook();
    if (worker_.joinable()) {
      if (worker_.get_id() == std::this_thread::get_id()) {
        worker_.detach();  // stop() from inside the handler: the loop ends when it returns
      } else {
        worker_.join();
      }
    }
    std::vector<std::shared_ptr<Op>> queued;
    {
      std::lock_guard lock(mu_);
      for (auto& [key, lane] : lanes_) {
        for (auto& op : lane.ops) queued.push_back(std::move(op));
      }
      lanes_.clear();
      ready_.clear();
    }
    for (auto& op : queued) {
      settle(*op, cancelled("telegram: the transport stopped before this was sent"));
    }
    std::unique_lock lock(mu_);
    const int self = tl_inside_ == this ? 1 : 0;
    idle_cv_.wait(lock, [&] { return active_ <= self; });
    stop_done_ = true;
    stopped_cv_.notify_all();
  }

 private:
  struct Lane {
    bool paced = false;
    bool busy = false;  // a call in flight
    SteadyClock::time_point not_before{};
    std::deque<std::shared_ptr<Op>> ops;
  };

  // Marks a callback as running, so that stop() can wait for it; refused once stopping.
  class Active {
   public:
    explicit Active(Core& core) : core_(core) {
      std::lock_guard lock(core_.mu_);
      entered_ = !core_.stopping_;
      if (!entered_) return;
      ++core_.active_;
      previous_ = tl_inside_;
      tl_inside_ = &core_;
    }
    ~Active() {
      if (!entered_) return;
      tl_inside_ = previous_;
      std::lock_guard lock(core_.mu_);
      --core_.active_;
      core_.idle_cv_.notify_all();
    }
    Active(const Active&) = delete;
    Active& operator=(const Active&) = delete;
    explicit operator bool() const { return entered_; }

   private:
    Core& core_;
    bool entered_ = false;
    const Core* previous_ = nullptr;
  };

  template <typename F>
  void schedule(milliseconds delay, F fn) {
    std::weak_ptr<Core> weak = weak_from_this();
    scheduler_->schedule(delay, [weak, fn = std::move(fn)]() mutable {
      if (auto self = weak.lock()) {
        Active active(*self);
        if (active) fn(*self);
      }
    });
  }

  // Takes one message from the global bucket, or says when the next is due. Adaptive pacing
  // lets everything through outside a flood-control spell (see flood_controlled()).
  bool take_token(SteadyClock::time_point now, SteadyClock::time_point& retry_at) {
    const int rate = options_.pacing.global_per_second;
    if (rate <= 0) return true;
    if (options_.pacing.adaptive && now >= paced_until_) return true;
    const double elapsed = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min<double>(rate, tokens_ + elapsed * rate);
    refilled_ = now;
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return true;
    }
    const auto wait = std::chrono::duration<double>((1.0 - tokens_) / rate);
    retry_at = std::min(retry_at, now + std::chrono::duration_cast<SteadyClock::duration>(wait) +
                                      std::chrono::milliseconds(1));
    return false;
  }

  // Issues the head call of every lane that may go now; arms a timer for the earliest that may
  // go later.
  void pump() {
    std::vector<std::pair<std::string, std::shared_ptr<Op>>> issue;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      const auto now = SteadyClock::now();
      auto wake = SteadyClock::time_point::max();
      for (auto it = ready_.begin(); it != ready_.end();) {
        Lane& lane = lanes_[*it];
        if (lane.not_before > now) {
          wake = std::min(wake, lane.not_before);
          ++it;
          continue;
        }
        if (lane.paced && !take_token(now, wake)) {
          ++it;
          continue;
        }
        lane.busy = true;
        issue.emplace_back(*it, lane.ops.front());
        it = ready_.erase(it);
      }
      if (wake != SteadyClock::time_point::max() && (wake < timer_at_ || timer_at_ <= now)) {
        timer_at_ = wake;
        const auto delay = std::chrono::ceil<milliseconds>(wake - now);
        schedule(delay, [](Core& core) { core.pump(); });
      }
    }
    for (auto& [key, op] : issue) send_call(key, op);
  }

  // Ends `op` with `status` unless its outcome is decided already; calls back.
  static void settle(Op& op, Status status) {
    {
      std::lock_guard lock(op.mu);
      if (op.finished) return;
      op.fail(std::move(status));
      op.finished = true;
    }
    op.complete();
  }

  void send_call(const std::string& key, const std::shared_ptr<Op>& op) {
    Result<ApiCall> call = cancelled("telegram: cancelled");
    {
      std::lock_guard lock(op->mu);
      if (op->finished) return;  // cancelled by stop()
      call = op->next(*this);
    }
    if (!call.ok()) {
      settle(*op, scrub(call.status()));
      finish_call(key, false);
      return;
    }
    // An upload's response comes only once the whole file is sent.
    const milliseconds timeout = options_.request_timeout +
                                 milliseconds(call->upload_bytes * 1000 / kMinUploadBytesPerSecond);
    auto req = request(call->method, std::move(call->body), timeout, std::move(call->form));
    http_->send(std::move(req), [self = shared_from_this(), key, op,
                                 method = call->method](Result<HttpResponse> response) {
      self->on_response(key, op, method, std::move(response));
    });
  }

  void on_response(const std::string& key, const std::shared_ptr<Op>& op, const std::string& method,
                   Result<HttpResponse> response) {
    Active active(*this);
    if (!active) return;  // stop() has failed the operation already
    Result<telegram::MethodResult> result =
        response.ok() ? telegram::parse_method_response(response->body, response->status)
                      : Result<telegram::MethodResult>(response.status());
    if (!result.ok()) {
      const Status s = scrub(result.status().annotate(method));
      result = s;
      int attempts = 0;
      {
        std::lock_guard lock(op->mu);
        attempts = ++op->attempts;
      }
      const bool transient = s.code() == StatusCode::kUnavailable ||
                             s.code() == StatusCode::kDeadlineExceeded ||
                             s.code() == StatusCode::kResourceExhausted;
      // Flood control slows every chat down, whether this call is tried again or not.
      if (s.code() == StatusCode::kResourceExhausted) {
        flood_controlled(s.retry_after().value_or(backoff(options_.retry, attempts)));
      }
      if (transient && attempts < options_.retry.max_attempts) {
        milliseconds delay = backoff(options_.retry, attempts);
        // A first network failure is most often a connection that broke under the request (the
        // HTTP client itself resends only a request whose kept-alive connection had been
        // closed before it): try again at once, on a fresh connection. Later failures back off.
        if (attempts == 1 && s.code() == StatusCode::kUnavailable) delay = milliseconds(0);
        if (s.code() == StatusCode::kResourceExhausted) delay = s.retry_after().value_or(delay);
        if (delay <= options_.retry.max_retry_after) {
          log(LogLevel::kWarning,
              fmt::format("{} (attempt {} of {}); trying again in {} ms", s.message(), attempts,
                          options_.retry.max_attempts, delay.count()));
          retry_later(key, delay);
          return;
        }
      }
    }
    bool more = false;
    {
      std::lock_guard lock(op->mu);
      if (op->finished) return;  // cancelled by stop()
      more = op->on_result(*this, std::move(result));
      if (more) {
        op->attempts = 0;
      } else {
        op->finished = true;
      }
    }
    finish_call(key, more);
    if (!more) op->complete();
    pump();
  }

  // Telegram answered a 429: with adaptive pacing, the global limit holds from now until the
  // cooldown after the wait Telegram asked for, starting from an empty bucket (the burst that
  // met the limit has used it up).
  void flood_controlled(milliseconds retry_after) {
    if (!options_.pacing.adaptive || options_.pacing.global_per_second <= 0) return;
    const auto now = SteadyClock::now();
    bool began = false;
    {
      std::lock_guard lock(mu_);
      began = now >= paced_until_;
      if (began) {
        tokens_ = 0;
        refilled_ = now;
      }
      paced_until_ = std::max(paced_until_, now + retry_after + options_.pacing.adaptive_cooldown);
    }
    if (began) {
      log(LogLevel::kWarning,
          fmt::format("telegram: flood control (429): sending at most {} messages a second "
                      "over all chats for {} s (longer if more 429s follow)",
                      options_.pacing.global_per_second,
                      std::chrono::duration_cast<std::chrono::seconds>(
                          retry_after + options_.pacing.adaptive_cooldown)
                          .count()));
    }
  }

  // The lane's head call is over for now: it waits `delay` and then is made again.
  void retry_later(const std::string& key, milliseconds delay) {
    {
      std::lock_guard lock(mu_);
      auto it = lanes_.find(key);
      if (it == lanes_.end()) return;
      it->second.busy = false;
      it->second.not_before = std::max(it->second.not_before, SteadyClock::now() + delay);
      ready_.push_back(key);
    }
    pump();
  }

  // The lane's head call ended; `more`: its operation has another call.
  void finish_call(const std::string& key, bool more) {
    std::lock_guard lock(mu_);
    auto it = lanes_.find(key);
    if (it == lanes_.end()) return;
    Lane& lane = it->second;
    lane.busy = false;
    if (lane.paced) lane.not_before = SteadyClock::now() + options_.pacing.per_chat_interval;
    if (!more) lane.ops.pop_front();
    if (!lane.ops.empty()) {
      ready_.push_back(key);
    } else if (!lane.paced || options_.pacing.per_chat_interval.count() == 0) {
      lanes_.erase(it);
    }
    // Idle lanes keep their not_before for the pacing of the next message; sweep the stale ones
    // now and then.
    if (++finished_calls_ % 256 == 0) {
      const auto now = SteadyClock::now();
      std::erase_if(lanes_, [&](const auto& entry) {
        return entry.second.ops.empty() && !entry.second.busy && entry.second.not_before <= now;
      });
    }
  }

  // ---- inbound ----

  // One getUpdates answer, in update_id order; an update without an event is to be skipped.
  struct PolledUpdate {
    std::int64_t update_id = 0;
    std::optional<InboundEvent> event;
    std::string skip_reason;
  };
  struct PollBatch {
    std::vector<PolledUpdate> updates;
    std::optional<std::int64_t> max_update_id;
  };
  // An update POSTed to the webhook, its request held open until the handler has returned.
  struct WebhookUpdate {
    InboundEvent event;
    std::shared_ptr<detail::http::Deferred> reply;
  };
  using InboundJob = std::variant<PollBatch, WebhookUpdate>;
  // Webhook updates handed to the handler in one call at most.
  static constexpr std::size_t kMaxWebhookBatch = 64;

  void poll() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    json body = json::object();
    if (const auto offset = offset_.load(); offset != 0) body["offset"] = offset;
    body["timeout"] = options_.polling.timeout.count();
    body["limit"] = options_.polling.limit;
    body["allowed_updates"] = options_.polling.allowed_updates;
    // Telegram holds the request for `timeout`; the response timeout must outlast it.
    const milliseconds wait = options_.polling.timeout + options_.request_timeout;
    http_->send(request("getUpdates", dump(body), wait),
                [self = shared_from_this()](Result<HttpResponse> response) {
                  self->on_updates(std::move(response));
                });
  }

  void poll_after(milliseconds delay) {
    if (delay.count() <= 0) {
      poll();
    } else {
      schedule(delay, [](Core& core) { core.poll(); });
    }
  }

  static Result<telegram::UpdateBatch> read_updates(const Result<HttpResponse>& response) {
    if (!response.ok()) return response.status();
    if (response->status == 200) return telegram::parse_updates(response->body);
    // Not 200: the error as Telegram states it, or the bare HTTP status.
    auto error = telegram::parse_method_response(response->body, response->status);
    if (!error.ok()) return error.status();
    return unavailable(fmt::format("telegram: getUpdates answered HTTP {}", response->status));
  }

  void on_updates(Result<HttpResponse> response) {
    Active active(*this);
    if (!active) return;
    Result<telegram::UpdateBatch> batch = read_updates(response);
    if (!batch.ok()) {
      const Status s = scrub(batch.status().annotate("getUpdates"));
      const int failures = ++poll_failures_;
      milliseconds delay = backoff(options_.retry, failures);
      switch (s.code()) {
        case StatusCode::kUnauthenticated:
          log(LogLevel::kError, s.message() + "; polling stops");
          return;
        case StatusCode::kFailedPrecondition:
          log(LogLevel::kError,
              fmt::format("{}: another instance is polling this token, or a webhook is set "
                          "(deleteWebhook removes it); trying again in {} ms",
                          s.message(), delay.count()));
          break;
        case StatusCode::kResourceExhausted:
          delay = s.retry_after().value_or(delay);
          [[fallthrough]];
        default:
          log(LogLevel::kWarning,
              fmt::format("{}; trying again in {} ms", s.message(), delay.count()));
      }
      poll_after(delay);
      return;
    }
    poll_failures_ = 0;
    PollBatch job;
    job.max_update_id = batch->max_update_id;
    for (auto& e : batch->events) {
      job.updates.push_back({e.update_id, std::move(e.event), {}});
    }
    for (auto& s : batch->skipped) {
      if (s.update_id) job.updates.push_back({*s.update_id, std::nullopt, s.reason});
    }
    std::stable_sort(
        job.updates.begin(), job.updates.end(),
        [](const PolledUpdate& a, const PolledUpdate& b) { return a.update_id < b.update_id; });
    {
      std::lock_guard lock(mu_);
      inbound_.emplace_back(std::move(job));
    }
    inbound_cv_.notify_all();
  }

  // The handler's verdict on `events`; Status() in `status` only when it took them all.
  InboundAck call_handler(std::span<const InboundEvent> events) {
    InboundAck ack;
    try {
      ack = handler_ ? handler_(events) : InboundAck{events.size(), Status()};
    } catch (const std::exception& e) {
      return {0, internal_error(fmt::format("the handler threw: {}", e.what()))};
    } catch (...) {
      return {0, internal_error("the handler threw")};
    }
    ack.persisted = std::min(ack.persisted, events.size());
    if (ack.persisted < events.size() && ack.status.ok()) {
      ack.status = internal_error("the handler did not take every event");
    }
    return ack;
  }

  void inbound_loop() {
    int failures = 0;
    for (;;) {
      std::optional<PollBatch> batch;
      {
        std::unique_lock lock(mu_);
        inbound_cv_.wait(lock, [&] { return stopping_ || !inbound_.empty(); });
        if (stopping_) return;
        if (auto* polled = std::get_if<PollBatch>(&inbound_.front())) {
          batch = std::move(*polled);
          inbound_.pop_front();
        }
      }
      if (batch) {
        failures = deliver_batch(*batch, failures);
      } else {
        deliver_webhook_updates();
      }
    }
  }

  // Hands the webhook updates at the head of the queue to the handler together, then answers
  // each request: 200 for those it took, 503 for the rest (Telegram sends them again).
  void deliver_webhook_updates() {
    std::vector<WebhookUpdate> run;
    {
      std::lock_guard lock(mu_);
      while (!inbound_.empty() && run.size() < kMaxWebhookBatch) {
        auto* update = std::get_if<WebhookUpdate>(&inbound_.front());
        if (update == nullptr) break;
        run.push_back(std::move(*update));
        inbound_.pop_front();
      }
    }
    std::vector<InboundEvent> events;
    events.reserve(run.size());
    for (const WebhookUpdate& u : run) events.push_back(u.event);
    const InboundAck ack = call_handler(events);
    if (!ack.status.ok()) {
      log(LogLevel::kWarning,
          fmt::format("the handler refused {} ({}); Telegram is asked to send it again",
                      events[ack.persisted].dedup_key, ack.status.to_string()));
    }
    for (std::size_t i = 0; i < run.size(); ++i) {
      detail::http::Response res;
      if (i < ack.persisted) {
        res.status = 200;
        res.set_content("{}", "application/json");
      } else {
        json_error(res, 503, "not stored, retry later");
      }
      run[i].reply->complete(std::move(res));
    }
  }

  // Delivers a polled batch in order, confirming each update the handler took; polls again.
  // The events between two skipped updates go to the handler together. Returns the count of
  // handler failures in a row.
  int deliver_batch(PollBatch& batch, int failures) {
    const auto& updates = batch.updates;
    std::size_t next = 0;
    while (next < updates.size()) {
      const PolledUpdate& u = updates[next];
      if (!u.event) {
        log(LogLevel::kInfo, fmt::format("update {} skipped: {}", u.update_id, u.skip_reason));
        offset_ = std::max(offset_.load(), u.update_id + 1);
        ++next;
        continue;
      }
      {
        std::lock_guard lock(mu_);
        if (stopping_) return failures;
      }
      std::vector<InboundEvent> run;
      for (std::size_t i = next; i < updates.size() && updates[i].event; ++i) {
        run.push_back(std::move(*batch.updates[i].event));
      }
      const InboundAck ack = call_handler(run);
      if (ack.persisted > 0) {
        offset_ = std::max(offset_.load(), updates[next + ack.persisted - 1].update_id + 1);
      }
      if (!ack.status.ok()) {
        const milliseconds delay = backoff(options_.retry, ++failures);
        log(LogLevel::kWarning,
            fmt::format("the handler refused update {} ({}); it is offered again in {} ms",
                        updates[next + ack.persisted].update_id, ack.status.to_string(),
                        delay.count()));
        poll_after(delay);
        return failures;
      }
      failures = 0;
      next += run.size();
    }
    if (batch.max_update_id) offset_ = std::max(offset_.load(), *batch.max_update_id + 1);
    poll();
    return failures;
  }

  // ---- webhook ----

  static void json_error(detail::http::Response& res, int status, std::string_view description) {
    res.status = status;
    res.set_content(
        dump(
            json{{"ok", false}, {"error_code", status}, {"description", std::string(description)}}),
        "application/json");
  }

  void on_webhook(const detail::http::Request& req, detail::http::Response& res) {
    const std::string& secret = options_.webhook.secret_token;
    if (!secret.empty()) {
      if (!req.has_header(kSecretHeader)) {
        log(LogLevel::kWarning, "webhook: a request without the secret token was refused");
        json_error(res, 401, "missing secret token");
        return;
      }
      if (!detail::constant_time_equal(req.get_header_value(kSecretHeader), secret)) {
        log(LogLevel::kWarning, "webhook: a request with a wrong secret token was refused");
        json_error(res, 403, "wrong secret token");
        return;
      }
    }
    json update = detail::parse_json_text(req.body);
    if (update.is_discarded() || !update.is_object()) {
      log(LogLevel::kWarning, "webhook: a body that is not a JSON object was refused");
      json_error(res, 400, "the body is not a JSON object");
      return;
    }
    auto parsed = telegram::parse_update(update);
    if (!parsed.ok()) {
      // Acknowledged and dropped: Telegram would otherwise send it again forever.
      log(LogLevel::kInfo, fmt::format("webhook: update skipped: {}", parsed.status().message()));
      res.status = 200;
      res.set_content("{}", "application/json");
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        json_error(res, 503, "stopping");
        return;
      }
      if (inbound_.size() >= options_.webhook.max_queued_updates) {
        log(LogLevel::kWarning, "webhook: the inbound queue is full; Telegram will retry");
        json_error(res, 503, "busy, retry later");
        return;
      }
      inbound_.emplace_back(WebhookUpdate{std::move(parsed->event), res.defer()});
    }
    inbound_cv_.notify_all();
  }

  void stop_webhook() {
    if (server_) server_->stop();
  }

  Status start_webhook() {
    const TelegramWebhookOptions& w = options_.webhook;
    detail::http::ServerOptions so;
    so.max_body_bytes = w.max_body_bytes;
    so.connection_limit = w.max_connections;
    so.per_address_connection_limit = w.max_connections_per_address;
    so.connection_timeout = w.connection_timeout;
    // A burst of Telegram's connections must not lose SYNs to a short backlog.
    so.listen_backlog = 1024;
    so.log_component = "telegram.webhook";
    so.logger = logger_;
    server_ = std::make_unique<detail::http::Server>(std::move(so));
    server_->route("POST", w.path,
                   [this](const detail::http::Request& req, detail::http::Response& res) {
                     on_webhook(req, res);
                   });
    if (Status bound = server_->bind(w.listen_host, w.port); !bound.ok()) {
      return unavailable(fmt::format("telegram: the webhook server: {}", bound.message()));
    }
    if (Status started = server_->start(); !started.ok()) {
      return unavailable(fmt::format("telegram: the webhook server: {}", started.message()));
    }
    if (w.secret_token.empty()) {
      log(LogLevel::kWarning,
          "webhook: no secret token is set; anyone who finds the URL can post updates");
    }
    log(LogLevel::kInfo,
        fmt::format("webhook: listening on {}:{}{}", w.listen_host, w.port, w.path));
    if (w.public_url.empty()) return Status();
    json body = {{"url", w.public_url}, {"allowed_updates", options_.polling.allowed_updates}};
    if (!w.secret_token.empty()) body["secret_token"] = w.secret_token;
    auto set = call_sync("setWebhook", dump(body));
    if (!set.ok()) return set.status();
    return Status();
  }

  const TelegramTransportOptions options_;
  const std::string api_display_;  // api_url without anything secret, for messages
  const std::shared_ptr<Logger> logger_;
  const std::shared_ptr<CancelToken> cancel_ = CancelToken::create();
  std::atomic<bool> drafts_supported_{true};

  std::mutex start_mu_;  // held by start() throughout; orders stop() after it
  std::mutex mu_;
  std::condition_variable idle_cv_;     // active_ fell
  std::condition_variable stopped_cv_;  // stop_done_
  std::condition_variable inbound_cv_;  // inbound_ grew, or stopping_
  bool started_ = false;
  bool stopping_ = false;
  bool stop_done_ = false;
  std::thread::id stopping_thread_;
  int active_ = 0;  // callbacks running (Active)
  InboundHandler handler_;

  // Outbound, under mu_.
  std::map<std::string, Lane> lanes_;
  std::list<std::string> ready_;  // lanes whose head call waits to be made, in arrival order
  std::uint64_t next_lane_ = 0;
  std::uint64_t finished_calls_ = 0;
  double tokens_ = 0;
  SteadyClock::time_point refilled_;
  // Adaptive pacing: the global limit holds until then (the epoch: not now).
  SteadyClock::time_point paced_until_{};
  SteadyClock::time_point timer_at_{};
  std::unordered_map<std::string, std::string> draft_messages_;  // "chat/draft" → message id
  std::deque<std::string> draft_order_;
  // Uploaded files: (key, file_id), the most recently used first, and the keys' places in it.
  static constexpr std::size_t kMaxKnownFiles = 1000;
  std::list<std::pair<std::string, std::string>> files_by_use_;
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator>
      known_files_;

  // Inbound.
  std::deque<InboundJob> inbound_;  // under mu_
  std::atomic<std::int64_t> offset_{0};
  int poll_failures_ = 0;  // the poll chain runs one step at a time
  std::thread worker_;
  std::unique_ptr<detail::http::Server> server_;

  static thread_local const Core* tl_inside_;

  const std::shared_ptr<Scheduler> scheduler_;
  // Last member: destroyed first, completing requests in flight while the rest still exists.
  const std::shared_ptr<HttpClient> http_;
};

thread_local const Core* Core::tl_inside_ = nullptr;

// ---- the operations -----------------------------------------------------------------------------

// A file about to be sent, as found on disk when the message was handed over; "" when it can be
// sent, else why not.
std::string examine_file(const Attachment& a, std::uint64_t& size, std::string& identity) {
  if (a.path.empty()) return "no path is given";
  const int fd = ::open(a.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fmt::format("{} cannot be read: {}", a.path, std::generic_category().message(errno));
  }
  struct stat st {};
  const bool stated = ::fstat(fd, &st) == 0;
  const int error = errno;
  ::close(fd);
  if (!stated) {
    return fmt::format("{} cannot be read: {}", a.path, std::generic_category().message(error));
  }
  if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", a.path);
  size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) return fmt::format("{} is empty, and Telegram takes no empty file", a.path);
  if (size > telegram::kMaxUploadBytes) {
    return fmt::format("{} is {} bytes, more than the {} MB a bot may upload", a.path, size,
                       telegram::kMaxUploadBytes >> 20);
  }
  // Another file, or this one changed, is another identity: the file_id of the old bytes must
  // not stand for the new.
  identity = fmt::format("{}:{}:{}:{}.{:09}", st.st_dev, st.st_ino, size, st.st_mtim.tv_sec,
                         st.st_mtim.tv_nsec);
  return "";
}

// A MIME type fit for a part header: printable ASCII.
bool plain_mime_type(std::string_view type) {
  return std::all_of(type.begin(), type.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// send(): one message, split into parts that go out in order, then its files (sendDocument),
// one each; Markdown is rendered to HTML, and a part whose HTML Telegram refuses goes again as
// its plain Markdown text. Every file is checked before anything is sent; the first upload of a
// file leaves its file_id with the Core, and later sends of the same file send that instead.
class SendOp final : public Op {
 public:
  SendOp(OutboundMessage message, SendCallback done)
      : message_(std::move(message)), done_(std::move(done)) {
    if (message_.format == TextFormat::kMarkdown) {
      for (auto& part : telegram::split_markdown(message_.text)) {
        std::string html = telegram::render_markdown_html(part);
        if (telegram::html_visible_utf16_length(html) == 0) {
          add_plain(part);
        } else {
          parts_.push_back({std::move(html), true, std::move(part)});
        }
      }
    } else {
      add_plain(message_.text);
    }
    add_documents();
    if (status_.ok() && parts_.empty() && documents_.empty()) {
      status_ = invalid_argument("telegram: the message text is empty");
    }
  }

  Result<ApiCall> next(Core& core) override {
    if (!status_.ok()) return status_;
    OutboundMessage m;
    m.chat_external_id = message_.chat_external_id;
    m.thread_id = message_.thread_id;
    if (ids_.empty()) m.reply_to_message_id = message_.reply_to_message_id;
    if (index_ < parts_.size()) {
      m.text = parts_[index_].text;
      // The buttons go on the last message: the last part, unless files follow.
      if (index_ + 1 == parts_.size() && documents_.empty()) m.buttons = message_.buttons;
      auto body = telegram::build_send_message(m, parts_[index_].html);
      if (!body.ok()) return body.status();
      return ApiCall{"sendMessage", std::move(body).value()};
    }
    Document& d = documents_[document_];
    if (document_ + 1 == documents_.size()) m.buttons = message_.buttons;
    if (d.caption_cut && !d.cut_logged) {
      d.cut_logged = true;
      core.log(LogLevel::kWarning,
               fmt::format("telegram: the caption of {} is longer than the {} UTF-16 units "
                           "Telegram takes; it is cut and ends in \"…\"",
                           d.file_name, telegram::kMaxCaptionUtf16));
    }
    d.file_id = d.upload ? std::nullopt : core.known_file(d.key);
    if (d.file_id) {
      auto body = telegram::build_send_document(m, d.caption, *d.file_id);
      if (!body.ok()) return body.status();
      return ApiCall{"sendDocument", std::move(body).value()};
    }
    auto fields = telegram::build_send_document_fields(m, d.caption);
    if (!fields.ok()) return fields.status();
    ApiCall call{"sendDocument", {}, {}, d.size};
    for (auto& field : *fields) {
      call.form.push_back({std::move(field.name), std::move(field.value), {}, {}, {}});
    }
    call.form.push_back({"document", {}, d.path, d.file_name, d.mime_type});
    return call;
  }

  bool on_result(Core& core, Result<telegram::MethodResult> result) override {
    if (index_ >= parts_.size()) return on_document_result(core, std::move(result));
    if (result.ok()) {
      ids_.push_back(result->message_id);
      return ++index_ < parts_.size() || !documents_.empty();
    }
    Part& part = parts_[index_];
    if (part.html && result.status().reason() == "parse_entities") {
      core.log(LogLevel::kWarning, fmt::format("{}; part {} goes again as plain text",
                                               result.status().message(), index_ + 1));
      // The Markdown source may be longer than the rendered text (fences added by the split).
      std::vector<Part> plain;
      for (auto& piece : telegram::split_message(part.source)) {
        plain.push_back({std::move(piece), false, {}});
      }
      if (plain.empty()) plain.push_back({"…", false, {}});
      parts_.erase(parts_.begin() + static_cast<std::ptrdiff_t>(index_));
      parts_.insert(parts_.begin() + static_cast<std::ptrdiff_t>(index_), plain.begin(),
                    plain.end());
      return true;
    }
    status_ = result.status();
    return false;
  }

  void fail(Status status) override { status_ = std::move(status); }

  void complete() override {
    auto done = std::exchange(done_, nullptr);
    if (!done) return;
    if (!status_.ok()) {
      done(status_);
    } else {
      done(SentMessage{ids_});
    }
  }

 private:
  struct Part {
    std::string text;
    bool html = false;
    std::string source;  // the Markdown the HTML came from
  };

  // One attachment, checked.
  struct Document {
    std::string path;
    std::string file_name;  // as the user sees it
    std::string mime_type;
    std::string caption;  // fit to Telegram's limit
    bool caption_cut = false;
    bool cut_logged = false;
    std::uint64_t size = 0;
    // What the file_id is remembered by: the path, the file's identity on disk (device, inode,
    // size, modification time), and the name and type it goes with (a file_id sends the file
    // under the name and type it was uploaded with).
    std::string key;
    // The call in flight sends this file_id instead of uploading.
    std::optional<std::string> file_id;
    // Upload even when a file_id is known: Telegram refused the one it had.
    bool upload = false;
  };

  // Checks every attachment before anything is sent: a file that cannot go out fails the
  // whole message, so that no half of it reaches the user.
  void add_documents() {
    for (std::size_t i = 0; i < message_.attachments.size() && status_.ok(); ++i) {
      const Attachment& a = message_.attachments[i];
      Document d;
      d.path = a.path;
      d.file_name = telegram::attachment_file_name(a);
      d.mime_type = a.mime_type.empty() ? "application/octet-stream" : a.mime_type;
      if (!plain_mime_type(d.mime_type)) {
        status_ = invalid_argument(fmt::format(
            "telegram: the file {} has a MIME type with control characters", d.file_name));
        return;
      }
      d.caption = telegram::fit_caption(a.caption);
      d.caption_cut =
          telegram::utf16_length(telegram::sanitize_utf8(a.caption)) > telegram::kMaxCaptionUtf16;
      std::string identity;
      if (std::string why = examine_file(a, d.size, identity); !why.empty()) {
        status_ = invalid_argument(fmt::format("telegram: the file {}: {}", d.file_name, why));
        return;
      }
      d.key = fmt::format("{}\n{}\n{}\n{}", d.path, identity, d.file_name, d.mime_type);
      documents_.push_back(std::move(d));
    }
  }

  bool on_document_result(Core& core, Result<telegram::MethodResult> result) {
    Document& d = documents_[document_];
    if (result.ok()) {
      ids_.push_back(result->message_id);
      if (!d.file_id && !result->file_id.empty()) core.remember_file(d.key, result->file_id);
      return ++document_ < documents_.size();
    }
    if (d.file_id && !d.upload && result.status().reason() == "bad_file_id") {
      core.forget_file(d.key);
      core.log(LogLevel::kInfo,
               fmt::format("{}; {} is uploaded again", result.status().message(), d.file_name));
      d.upload = true;
      return true;
    }
    status_ = result.status();
    return false;
  }

  void add_plain(std::string_view text) {
    for (auto& piece : telegram::split_message(text)) {
      if (piece.find_first_not_of(" \t\r\n") != std::string::npos) {
        parts_.push_back({std::move(piece), false, {}});
      }
    }
  }

  const OutboundMessage message_;
  std::vector<Part> parts_;
  std::size_t index_ = 0;  // the part in flight; parts_.size() once the files go
  std::vector<Document> documents_;
  std::size_t document_ = 0;  // the file in flight, once the parts are sent
  std::vector<std::string> ids_;
  Status status_;
  SendCallback done_;
};

// edit(): editMessageText, with the same Markdown fallback; "not modified" is success.
class EditOp final : public StatusOp {
 public:
  EditOp(std::string message_id, OutboundMessage message, DoneCallback done)
      : StatusOp(std::move(done)),
        message_id_(std::move(message_id)),
        message_(std::move(message)) {
    html_ = message_.format == TextFormat::kMarkdown;
  }

  Result<ApiCall> next(Core&) override {
    OutboundMessage m = message_;
    if (html_) m.text = telegram::render_markdown_html(message_.text);
    auto body = telegram::build_edit_message_text(m, message_id_, html_);
    if (!body.ok()) return body.status();
    return ApiCall{"editMessageText", std::move(body).value()};
  }

  bool on_result(Core& core, Result<telegram::MethodResult> result) override {
    if (result.ok() || result.status().reason() == "not_modified") return false;
    if (html_ && result.status().reason() == "parse_entities") {
      core.log(LogLevel::kWarning,
               result.status().message() + "; the edit goes again as plain text");
      html_ = false;
      return true;
    }
    status_ = result.status();
    return false;
  }

 private:
  const std::string message_id_;
  const OutboundMessage message_;
  bool html_ = false;
};

// One call whose only outcome is its Status (sendChatAction, answerCallbackQuery).
class SimpleOp final : public StatusOp {
 public:
  SimpleOp(ApiCall call, Status refused, DoneCallback done)
      : StatusOp(std::move(done)), call_(std::move(call)), refused_(std::move(refused)) {}

  Result<ApiCall> next(Core&) override {
    if (!refused_.ok()) return refused_;
    return call_;
  }
  bool on_result(Core&, Result<telegram::MethodResult> result) override {
    status_ = result.status();
    return false;
  }

 private:
  const ApiCall call_;
  const Status refused_;
};

// send_draft(): sendMessageDraft, or where the server lacks it, one message per draft that later
// drafts edit.
class DraftOp final : public StatusOp {
 public:
  DraftOp(std::string chat, std::int64_t draft_id, std::string text, DoneCallback done)
      : StatusOp(std::move(done)), chat_(std::move(chat)), draft_id_(draft_id) {
    // A draft shows the beginning of a long answer; the final send() carries all of it.
    auto parts = telegram::split_message(text);
    if (!parts.empty()) text_ = std::move(parts.front());
    key_ = fmt::format("{}/{}", chat_, draft_id_);
  }

  Result<ApiCall> next(Core& core) override {
    if (text_.find_first_not_of(" \t\r\n") == std::string::npos) {
      return invalid_argument("telegram: the draft text is empty");
    }
    native_ = core.drafts_supported();
    if (native_) {
      json body = json::object();
      LLMASSIST_RETURN_IF_ERROR(put_chat_id(body, chat_));
      body["draft_id"] = draft_id_;
      body["text"] = telegram::sanitize_utf8(text_);
      return ApiCall{"sendMessageDraft", dump(body)};
    }
    OutboundMessage m;
    m.chat_external_id = chat_;
    m.text = text_;
    editing_ = core.draft_message(key_);
    auto body = editing_ ? telegram::build_edit_message_text(m, *editing_, false)
                         : telegram::build_send_message(m, false);
    if (!body.ok()) return body.status();
    return ApiCall{editing_ ? "editMessageText" : "sendMessage", std::move(body).value()};
  }

  bool on_result(Core& core, Result<telegram::MethodResult> result) override {
    if (native_) {
      if (result.ok()) return false;
      if (method_missing(result.status())) {
        core.drafts_unsupported();
        return true;  // next() sees it and sends the fallback
      }
      status_ = result.status();
      return false;
    }
    if (result.ok()) {
      if (!editing_) core.remember_draft(key_, result->message_id);
      return false;
    }
    if (result.status().reason() != "not_modified") status_ = result.status();
    return false;
  }

 private:
  const std::string chat_;
  const std::int64_t draft_id_;
  std::string text_;
  std::string key_;
  std::optional<std::string> editing_;
  bool native_ = true;  // the call in flight is sendMessageDraft
};

// ---- the transport ------------------------------------------------------------------------------

class TelegramTransport final : public ChatTransport {
 public:
  explicit TelegramTransport(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~TelegramTransport() override { core_->stop(); }

  std::string_view channel() const override { return telegram::kChannel; }

  Status start(InboundHandler handler) override { return core_->start(std::move(handler)); }
  void stop() override { core_->stop(); }

  void send(OutboundMessage message, SendCallback done) override {
    std::string chat = message.chat_external_id;
    core_->enqueue(chat, std::make_shared<SendOp>(std::move(message), std::move(done)));
  }

  void edit(std::string chat_external_id, std::string message_id, OutboundMessage message,
            DoneCallback done) override {
    message.chat_external_id = chat_external_id;
    core_->enqueue(chat_external_id, std::make_shared<EditOp>(std::move(message_id),
                                                              std::move(message), std::move(done)));
  }

  void send_typing(std::string chat_external_id, DoneCallback done) override {
    json body = json::object();
    const Status s = put_chat_id(body, chat_external_id);
    body["action"] = "typing";
    core_->enqueue(
        "", std::make_shared<SimpleOp>(ApiCall{"sendChatAction", dump(body)}, s, std::move(done)));
  }

  void answer_callback(std::string callback_id, std::string text, DoneCallback done) override {
    json body = {{"callback_query_id", telegram::sanitize_utf8(callback_id)}};
    if (!text.empty()) body["text"] = telegram::sanitize_utf8(text);
    const Status s = callback_id.empty() ? invalid_argument("telegram: no callback id") : Status();
    core_->enqueue("", std::make_shared<SimpleOp>(ApiCall{"answerCallbackQuery", dump(body)}, s,
                                                  std::move(done)));
  }

  void send_draft(std::string chat_external_id, std::int64_t draft_id, std::string text,
                  DoneCallback done) override {
    const std::string chat = chat_external_id;
    core_->enqueue(chat, std::make_shared<DraftOp>(std::move(chat_external_id), draft_id,
                                                   std::move(text), std::move(done)));
  }

 private:
  const std::shared_ptr<Core> core_;
};

bool valid_token(std::string_view token) {
  if (token.empty() || token.size() > 200 || token.find(':') == std::string_view::npos) {
    return false;
  }
  return std::all_of(token.begin(), token.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ':' ||
           c == '_' || c == '-';
  });
}

bool valid_secret(std::string_view secret) {
  if (secret.size() > 256) return false;
  return std::all_of(secret.begin(), secret.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
  });
}

// Checks the options; returns the API root fit for messages.
Result<std::string> check_options(TelegramTransportOptions& o) {
  // The token itself is never quoted, even when it is malformed.
  if (!valid_token(o.token)) {
    return invalid_argument(
        "telegram: the bot token is missing or malformed (expected <digits>:<letters>)");
  }
  while (!o.api_url.empty() && o.api_url.back() == '/') o.api_url.pop_back();
  const auto redacted = detail::redact_url(o.api_url);
  if (!redacted.valid || (redacted.scheme != "http" && redacted.scheme != "https")) {
    return invalid_argument("telegram: api_url must be an http:// or https:// URL");
  }
  std::string display = redacted.display;
  while (!display.empty() && display.back() == '/') display.pop_back();
  if (o.polling.limit < 1 || o.polling.limit > 100) {
    return invalid_argument("telegram: polling.limit must be 1 to 100");
  }
  if (o.polling.timeout.count() < 0) {
    return invalid_argument("telegram: polling.timeout must not be negative");
  }
  if (o.pacing.per_chat_interval.count() < 0 || o.pacing.global_per_second < 0 ||
      o.pacing.adaptive_cooldown.count() < 0) {
    return invalid_argument("telegram: pacing limits must not be negative");
  }
  if (o.retry.max_attempts < 1) {
    return invalid_argument("telegram: retry.max_attempts must be at least 1");
  }
  if (o.max_connections < 2) {
    return invalid_argument(
        "telegram: max_connections must be at least 2 (the long poll holds one)");
  }
  if (o.mode == TelegramMode::kWebhook) {
    const std::string& secret = o.webhook.secret_token;
    if (secret.size() < kMinWebhookSecret && !o.webhook.allow_no_secret) {
      return invalid_argument(fmt::format(
          "telegram: webhook.secret must be at least {} characters (it is {}), so that nobody "
          "else can post updates; allow_no_secret turns the check off for a local test setup",
          kMinWebhookSecret, secret.size()));
    }
    if (!secret.empty() && !valid_secret(secret)) {
      return invalid_argument(
          "telegram: webhook.secret must be up to 256 characters of A-Z, a-z, 0-9, _ and -");
    }
    if (o.webhook.listen_host.empty()) {
      return invalid_argument(
          "telegram: webhook listen must be host:port, e.g. 127.0.0.1:8081 (an empty host "
          "would listen on every address)");
    }
    if (o.webhook.path.empty() || o.webhook.path.front() != '/') {
      return invalid_argument("telegram: webhook.path must begin with '/'");
    }
    if (o.webhook.port < 1 || o.webhook.port > 65535) {
      return invalid_argument("telegram: webhook.port must be 1 to 65535");
    }
  }
  return display;
}

Result<std::shared_ptr<HttpClient>> client_for(const TelegramTransportOptions& o) {
  if (o.http) return o.http;
  CurlHttpClientOptions c;
  c.logger = o.logger;
  c.max_connections_per_host = o.max_connections;
  c.proxy = o.proxy;
  c.ca_file = o.ca_file;
  LLMASSIST_ASSIGN_OR_RETURN(auto client, make_curl_http_client(c));
  return std::shared_ptr<HttpClient>(std::move(client));
}

}  // namespace

Result<std::unique_ptr<ChatTransport>> make_telegram_transport(TelegramTransportOptions options) {
  LLMASSIST_ASSIGN_OR_RETURN(std::string display, check_options(options));
  LLMASSIST_ASSIGN_OR_RETURN(auto http, client_for(options));
  auto scheduler = options.scheduler ? options.scheduler : make_thread_scheduler();
  auto core = std::make_shared<Core>(std::move(options), std::move(http), std::move(scheduler),
                                     std::move(display));
  return std::unique_ptr<ChatTransport>(new TelegramTransport(std::move(core)));
}

Result<TelegramBotInfo> telegram_get_me(const TelegramTransportOptions& options) {
  TelegramTransportOptions o = options;
  o.mode = TelegramMode::kPolling;  // the webhook settings do not matter for getMe
  LLMASSIST_ASSIGN_OR_RETURN(std::string display, check_options(o));
  LLMASSIST_ASSIGN_OR_RETURN(auto http, client_for(o));
  HttpRequest r;
  r.method = "POST";
  r.url = o.api_url + "/bot" + o.token + "/getMe";
  r.redacted_url = display + "/bot<redacted>/getMe";
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = "{}";
  r.connect_timeout = o.connect_timeout;
  r.first_byte_timeout = o.request_timeout;
  const auto scrub = [&](const Status& s) {
    std::string message = s.message();
    for (std::size_t at = message.find(o.token); at != std::string::npos;
         at = message.find(o.token, at)) {
      message.replace(at, o.token.size(), "<redacted>");
    }
    return Status(s.code(), std::move(message));
  };
  auto response = send_sync(*http, std::move(r));
  if (!response.ok()) return scrub(response.status());
  auto result = telegram::parse_method_response(response->body, response->status, true);
  if (!result.ok()) return scrub(result.status().annotate("getMe"));
  try {
    const json bot = json::parse(result->result_json);
    TelegramBotInfo info;
    info.id = bot.at("id").get<std::int64_t>();
    info.username = bot.value("username", std::string());
    info.first_name = bot.value("first_name", std::string());
    info.can_join_groups = bot.value("can_join_groups", false);
    info.can_read_all_group_messages = bot.value("can_read_all_group_messages", false);
    info.supports_inline_queries = bot.value("supports_inline_queries", false);
    return info;
  } catch (const std::exception&) {
    return invalid_argument("telegram: getMe answered without a readable bot");
  }
}

}  // namespace llmassist
