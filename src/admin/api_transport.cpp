#include "llmassist/admin/api_transport.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace llmassist {
namespace {

constexpr std::string_view kChannel = "api";

class ApiTransportImpl final : public ApiTransport {
 public:
  explicit ApiTransportImpl(ApiTransportOptions options)
      : options_(std::move(options)),
        logger_(options_.logger ? options_.logger : stderr_logger()) {}
  ~ApiTransportImpl() override { stop(); }

  std::string_view channel() const override { return kChannel; }

  Status start(InboundHandler handler) override {
    {
      std::lock_guard lock(mu_);
      if (running_) return failed_precondition("the API transport is already started");
      running_ = true;
    }
    {
      std::lock_guard lock(handler_mu_);
      handler_ = std::move(handler);
    }
    watcher_ = std::thread([this] { watch(); });
    return Status();
  }

  void stop() override {
    std::map<ReplyId, std::vector<Waiter>> left;
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      running_ = false;
      left.swap(waiting_);
    }
    {
      std::lock_guard lock(handler_mu_);
      handler_ = nullptr;
    }
    changed_.notify_all();
    if (watcher_.joinable()) watcher_.join();
    for (auto& [id, waiters] : left) {
      for (auto& w : waiters) {
        w.done(unavailable(fmt::format(
            "the assistant stopped before reply {} was answered; GET /api/replies/{} shows it", id,
            id)));
      }
    }
  }

  void ask(ApiQuestion question, ApiAnswerCallback done) override {
    InboundEvent e;
    e.kind = InboundKind::kMessage;
    e.channel = std::string(kChannel);
    e.chat_external_id = std::move(question.chat_id);
    e.user_id = question.user_id;
    e.user_name = std::move(question.user_id);
    e.text = std::move(question.text);
    InboundAck ack;
    {
      std::lock_guard lock(handler_mu_);
      if (!handler_) {
        done(unavailable("no assistant serves the API channel"));
        return;
      }
      ack = handler_(std::span<const InboundEvent>(&e, 1));
    }
    if (ack.persisted != 1) {
      done(ack.status.ok() ? unavailable("the question was not stored") : ack.status);
      return;
    }
    const ReplyId id = ack.replies.empty() ? 0 : ack.replies.front();
    if (id == 0) {
      done(ApiAnswer{});
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (running_) {
        waiting_[id].push_back(
            {std::move(done), std::chrono::steady_clock::now() + options_.timeout});
        done = nullptr;
      }
    }
    if (!done) {
      changed_.notify_one();
      return;
    }
    done(unavailable("the API transport stopped"));
  }

  void send(OutboundMessage message, SendCallback done) override {
    bool running = false;
    {
      std::lock_guard lock(mu_);
      running = running_;
    }
    if (!running) {
      done(cancelled("the API transport is stopped"));
      return;
    }
    SentMessage sent;
    if (message.reply_id != 0) sent.message_ids.push_back(fmt::format("api:{}", message.reply_id));
    done(std::move(sent));
  }
  void edit(std::string, std::string, OutboundMessage, DoneCallback done) override {
    done(Status());
  }
  void send_typing(std::string, DoneCallback done) override { done(Status()); }
  void answer_callback(std::string, std::string, DoneCallback done) override { done(Status()); }
  void send_draft(std::string, std::int64_t, std::string, DoneCallback done) override {
    done(Status());
  }

 private:
  struct Waiter {
    ApiAnswerCallback done;
    std::chrono::steady_clock::time_point deadline;
  };

  // Looks at the waiting questions' replies whenever the store changes, and answers those that
  // came far enough (or waited too long).
  void watch() {
    std::uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock lock(mu_);
        if (!running_) return;
        if (waiting_.empty()) {
          changed_.wait_for(lock, options_.poll_interval,
                            [&] { return !running_ || !waiting_.empty(); });
          continue;
        }
      }
      seen = options_.store->wait_for_change(seen, options_.poll_interval);
      std::vector<ReplyId> ids;
      {
        std::lock_guard lock(mu_);
        if (!running_) return;
        for (const auto& [id, waiters] : waiting_) ids.push_back(id);
      }
      const auto now = std::chrono::steady_clock::now();
      for (ReplyId id : ids) {
        auto reply = options_.store->get_reply(id);
        std::optional<Result<ApiAnswer>> outcome;
        if (!reply.ok()) {
          outcome = reply.status();
        } else {
          outcome = settled(*reply);
        }
        std::vector<Waiter> done;
        {
          std::lock_guard lock(mu_);
          auto it = waiting_.find(id);
          if (it == waiting_.end()) continue;
          if (outcome) {
            done.swap(it->second);
            waiting_.erase(it);
          } else {
            auto& waiters = it->second;
            for (auto w = waiters.begin(); w != waiters.end();) {
              if (w->deadline > now) {
                ++w;
                continue;
              }
              done.push_back(std::move(*w));
              w = waiters.erase(w);
            }
            if (waiters.empty()) waiting_.erase(it);
            if (!done.empty()) {
              outcome = deadline_exceeded(fmt::format(
                  "reply {} is not answered yet; GET /api/replies/{} shows it later", id, id));
            }
          }
        }
        for (auto& w : done) w.done(*outcome);
      }
    }
  }

  // The answer for a reply that came as far as a caller waits for; nullopt while it goes on.
  static std::optional<Result<ApiAnswer>> settled(const Reply& r) {
    ApiAnswer a;
    a.reply_id = r.id;
    a.status = r.status;
    a.provider = r.provider;
    switch (r.status) {
      case ReplyStatus::kSent:
        a.answer = r.final_text;
        return a;
      case ReplyStatus::kPending:
      case ReplyStatus::kCancelled:
        return a;
      case ReplyStatus::kFailed:
        return unavailable(fmt::format(
            "no provider could answer; reply {} is failed and waits for an operator", r.id));
      default:
        return std::nullopt;
    }
  }

  ApiTransportOptions options_;
  std::shared_ptr<Logger> logger_;
  std::mutex handler_mu_;  // one call of the handler at a time
  InboundHandler handler_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool running_ = false;                            // guarded by mu_
  std::map<ReplyId, std::vector<Waiter>> waiting_;  // guarded by mu_
  std::thread watcher_;
};

}  // namespace

Result<std::shared_ptr<ApiTransport>> make_api_transport(ApiTransportOptions options) {
  if (!options.store) return invalid_argument("the API transport needs the store");
  if (options.timeout.count() <= 0 || options.poll_interval.count() <= 0) {
    return invalid_argument("the API transport's timeout and poll interval must be positive");
  }
  return std::shared_ptr<ApiTransport>(std::make_shared<ApiTransportImpl>(std::move(options)));
}

}  // namespace llmassist
