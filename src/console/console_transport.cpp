#include "llmassist/console/console_transport.h"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace llmassist {
namespace {

class ConsoleTransport final : public ChatTransport {
 public:
  explicit ConsoleTransport(ConsoleTransportOptions options) : options_(std::move(options)) {
    if (options_.user_name.empty()) {
      const char* user = std::getenv("USER");
      options_.user_name = user != nullptr && *user != '\0' ? user : "you";
    }
    if (!options_.logger) options_.logger = stderr_logger();
    if (::pipe(wake_) != 0) wake_[0] = wake_[1] = -1;
  }

  ~ConsoleTransport() override {
    stop();
    if (wake_[0] >= 0) ::close(wake_[0]);
    if (wake_[1] >= 0) ::close(wake_[1]);
  }

  std::string_view channel() const override { return "console"; }

  Status start(InboundHandler handler) override {
    if (reader_.joinable()) return failed_precondition("the console transport is running");
    if (wake_[0] < 0) return internal_error("the console transport could not create a pipe");
    handler_ = std::move(handler);
    stopping_ = false;
    reader_ = std::thread([this] { read_loop(); });
    return Status();
  }

  void stop() override {
    if (!reader_.joinable()) return;
    stopping_ = true;
    const char byte = 0;
    [[maybe_unused]] auto n = ::write(wake_[1], &byte, 1);
    if (reader_.get_id() == std::this_thread::get_id()) {
      reader_.detach();  // stopped from the handler or on_end: the loop ends by itself
    } else {
      reader_.join();
    }
  }

  void send(OutboundMessage message, SendCallback done) override {
    if (stopping_) {
      done(cancelled("the console transport is stopping"));
      return;
    }
    // The text (unless only files go), then a line per file, as Telegram sends them: each is
    // a message of its own, and has an id.
    const bool text = !message.text.empty() || message.attachments.empty();
    std::string out = text ? fmt::format("{}: {}\n", options_.bot_name, message.text) : "";
    for (const Attachment& a : message.attachments) {
      std::string_view name = a.file_name;
      if (name.empty()) name = std::string_view(a.path).substr(a.path.rfind('/') + 1);
      out += fmt::format("{}: [file: {}]{}{}\n", options_.bot_name, name,
                         a.caption.empty() ? "" : " ", a.caption);
    }
    SentMessage sent;
    {
      std::lock_guard lock(mu_);
      buttons_.clear();
      int n = 0;
      for (const auto& row : message.buttons) {
        for (const auto& b : row) {
          buttons_[std::to_string(++n)] = b.callback_data;
          out += fmt::format("  [{}] {}\n", n, b.text);
        }
      }
      const std::size_t count = message.attachments.size() + (text ? 1 : 0);
      for (std::size_t i = 0; i < count; ++i) sent.message_ids.push_back(std::to_string(++id_));
    }
    write_all(out);
    done(std::move(sent));
  }

  void edit(std::string, std::string, OutboundMessage message, DoneCallback done) override {
    write_all(fmt::format("{} (edited): {}\n", options_.bot_name, message.text));
    done(Status());
  }

  void send_typing(std::string, DoneCallback done) override { done(Status()); }

  void answer_callback(std::string, std::string text, DoneCallback done) override {
    if (!text.empty()) write_all(fmt::format("({})\n", text));
    done(Status());
  }

  void send_draft(std::string, std::int64_t, std::string, DoneCallback done) override {
    done(Status());  // a terminal shows the final answer only
  }

 private:
  void write_all(const std::string& text) {
    std::lock_guard lock(write_mu_);
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
      const ssize_t n = ::write(options_.output_fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  void read_loop() {
    std::string buffer;
    std::int64_t line_no = 0;
    const std::int64_t run = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    while (!stopping_) {
      pollfd fds[2] = {{options_.input_fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0 || stopping_) break;
      char chunk[4096];
      const ssize_t n = ::read(options_.input_fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (!buffer.empty()) deliver(buffer, run, ++line_no);
        if (options_.on_end) options_.on_end();
        return;
      }
      buffer.append(chunk, static_cast<std::size_t>(n));
      for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) deliver(line, run, ++line_no);
      }
    }
  }

  // Hands one line to the handler, offering it again until it is taken (or we stop).
  void deliver(const std::string& line, std::int64_t run, std::int64_t line_no) {
    InboundEvent e;
    e.channel = "console";
    e.dedup_key = fmt::format("console:{}:{}", run, line_no);
    e.chat_external_id = options_.chat_id;
    e.user_id = options_.user_name;
    e.user_name = options_.user_name;
    e.text = line;
    e.message_id = std::to_string(line_no);
    e.sent_at = std::chrono::system_clock::now();
    {
      std::lock_guard lock(mu_);
      auto button = buttons_.find(line);
      if (button != buttons_.end()) {
        e.kind = InboundKind::kCallback;
        e.callback_id = line;
        e.callback_data = button->second;
        e.text.clear();
      }
    }
    while (!stopping_) {
      const InboundAck ack = handler_(std::span<const InboundEvent>(&e, 1));
      if (ack.persisted == 1) return;
      options_.logger->log(LogLevel::kWarning, "transport.console",
                           "a message was not taken, trying again: " + ack.status.to_string());
      pollfd wake{wake_[0], POLLIN, 0};
      ::poll(&wake, 1, 1000);
    }
  }

  ConsoleTransportOptions options_;
  InboundHandler handler_;
  std::thread reader_;
  std::atomic<bool> stopping_{false};
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  std::map<std::string, std::string> buttons_;  // guarded by mu_: number -> callback data
  std::mutex write_mu_;
  std::atomic<std::int64_t> id_{0};
};

}  // namespace

std::unique_ptr<ChatTransport> make_console_transport(ConsoleTransportOptions options) {
  return std::make_unique<ConsoleTransport>(std::move(options));
}

}  // namespace llmassist
