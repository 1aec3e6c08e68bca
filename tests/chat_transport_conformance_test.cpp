// The ChatTransport conformance suite (llmassist/testing/chat_transport_conformance.h) against
// the console transport over a pair of pipes, the Telegram transport polling and on a webhook
// over the mock Bot API server, and the API channel's transport over an in-memory store.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "llmassist/admin/api_transport.h"
#include "llmassist/console/console_transport.h"
#include "llmassist/telegram/telegram_transport.h"
#include "llmassist/testing/chat_transport_conformance.h"
#include "support/free_port.h"
#include "support/memory_store.h"
#include "support/mock_telegram_server.h"

namespace llmassist {
namespace {

class ConsoleHarness final : public testing::ChatTransportHarness {
 public:
  ConsoleHarness() {
    REQUIRE(::pipe(in_) == 0);
    REQUIRE(::pipe(out_) == 0);
    ::fcntl(out_[0], F_SETFL, ::fcntl(out_[0], F_GETFL) | O_NONBLOCK);
    ConsoleTransportOptions o;
    o.input_fd = in_[0];
    o.output_fd = out_[1];
    o.chat_id = "conformance";
    o.user_name = "Ann";
    o.logger = null_logger();
    transport_ = make_console_transport(o);
  }
  ~ConsoleHarness() override {
    transport_.reset();
    for (int fd : {in_[0], in_[1], out_[0], out_[1]}) ::close(fd);
  }
  ChatTransport& transport() override { return *transport_; }
  std::string chat() const override { return "conformance"; }
  Status user_writes(const std::string& text) override {
    const std::string line = text + "\n";
    if (::write(in_[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return unavailable("writing to the console's input failed");
    }
    return Status();
  }
  // The console's user presses a button by typing the number it shows beside the label; this
  // harness does not map a button's data to that number.
  Status user_presses(const std::string&, const std::string&) override {
    return Status(StatusCode::kUnimplemented,
                  "the console harness does not map a button's data to its number");
  }
  std::string received() override {
    std::lock_guard lock(mu_);
    char buffer[4096];
    ssize_t n = 0;
    while ((n = ::read(out_[0], buffer, sizeof buffer)) > 0) {
      seen_.append(buffer, static_cast<std::size_t>(n));
    }
    return seen_;
  }

 private:
  int in_[2] = {-1, -1};
  int out_[2] = {-1, -1};
  std::unique_ptr<ChatTransport> transport_;
  std::mutex mu_;
  std::string seen_;
};

// The user is Ann in chat 1001 of the mock Bot API server; what she receives is what the bot
// sent there (texts and button labels). On a webhook, the mock posts what she does as Telegram
// does: again and again, until the webhook answers 200.
class TelegramHarness final : public testing::ChatTransportHarness {
 public:
  explicit TelegramHarness(TelegramMode mode) {
    TelegramTransportOptions o;
    o.token = tg_.token();
    o.api_url = tg_.api_url();
    o.mode = mode;
    o.polling.timeout = std::chrono::seconds(1);
    o.pacing.per_chat_interval = std::chrono::milliseconds(0);
    o.pacing.global_per_second = 0;
    o.retry.initial_backoff = std::chrono::milliseconds(50);
    o.retry.max_backoff = std::chrono::milliseconds(200);
    o.logger = null_logger();
    if (mode == TelegramMode::kWebhook) {
      o.webhook.port = testing::free_port();
      o.webhook.path = "/tg/hook";
      o.webhook.public_url = "http://127.0.0.1:" + std::to_string(o.webhook.port) + "/tg/hook";
      o.webhook.secret_token = "conformance-secret";
      telegram_ = std::thread([this] {
        while (!quit_) {
          if (tg_.pending_updates() > 0 && !tg_.webhook_url().empty()) tg_.deliver_to_webhook();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }
    transport_ = make_telegram_transport(o).value();
  }
  ~TelegramHarness() override {
    transport_->stop();
    quit_ = true;
    if (telegram_.joinable()) telegram_.join();
    transport_.reset();
  }
  ChatTransport& transport() override { return *transport_; }
  std::string chat() const override { return "1001"; }
  Status user_writes(const std::string& text) override {
    const std::int64_t id = next_update_++;
    tg_.push_update(id, testing::MockTelegramServer::text_update(id, text, 1001));
    return Status();
  }
  Status user_presses(const std::string& message_id, const std::string& data) override {
    const std::int64_t id = next_update_++;
    const nlohmann::json update = {
        {"update_id", id},
        {"callback_query",
         {{"id", "cb-" + std::to_string(id)},
          {"from", {{"id", 1001}, {"is_bot", false}, {"first_name", "Ann"}}},
          {"chat_instance", "1"},
          {"data", data},
          {"message",
           {{"message_id", std::stoll(message_id)},
            {"date", 1700000000},
            {"chat", {{"id", 1001}, {"type", "private"}, {"first_name", "Ann"}}},
            {"text", "Pick one"}}}}}};
    tg_.push_update(id, update.dump());
    return Status();
  }
  std::string received() override {
    std::string out;
    for (const auto& call : tg_.calls("sendMessage")) {
      if (call.status != 200) continue;
      out += call.params.value("text", "") + "\n";
      if (!call.params.contains("reply_markup")) continue;
      nlohmann::json markup = call.params.at("reply_markup");
      if (markup.is_string()) markup = nlohmann::json::parse(markup.get<std::string>());
      for (const auto& row : markup.value("inline_keyboard", nlohmann::json::array())) {
        for (const auto& button : row) out += "[" + button.value("text", "") + "]\n";
      }
    }
    return out;
  }

 private:
  testing::MockTelegramServer tg_;
  std::unique_ptr<ChatTransport> transport_;
  std::atomic<std::int64_t> next_update_{1};
  std::atomic<bool> quit_{false};
  std::thread telegram_;  // on a webhook: Telegram's deliveries
};

// The user asks through the API channel (ApiTransport::ask()). The channel shows nothing send()
// sends: its caller reads the stored reply, so the suite checks only what it can of sending.
class ApiHarness final : public testing::ChatTransportHarness {
 public:
  ApiHarness() {
    store_ = std::shared_ptr<MessageStore>(testing::make_memory_store(system_clock()));
    transport_ = make_api_transport({.store = store_, .logger = null_logger()}).value();
  }
  ~ApiHarness() override { transport_->stop(); }
  ChatTransport& transport() override { return *transport_; }
  std::string chat() const override { return "conformance"; }
  Status user_writes(const std::string& text) override {
    // The handler runs inside ask(): a thread of its own, as a request of the API server does.
    std::thread([transport = transport_, text] {
      transport->ask({.user_id = "ann", .chat_id = "conformance", .text = text},
                     [](Result<ApiAnswer>) {});
    }).detach();
    return Status();
  }
  std::string received() override { return ""; }
  [[nodiscard]] bool redelivers() const override { return false; }
  [[nodiscard]] bool shows_messages() const override { return false; }

 private:
  std::shared_ptr<MessageStore> store_;
  std::shared_ptr<ApiTransport> transport_;
};

void run_suite(const testing::ChatTransportFactory& factory) {
  for (const std::string& name : testing::chat_transport_check_names()) {
    SUBCASE(name.c_str()) {
      const testing::CheckResult r = testing::run_chat_transport_check(name, factory);
      if (r.skipped) MESSAGE(name << ": skipped: " << r.message);
      CHECK_MESSAGE(r.passed, name << ":\n" << r.message);
    }
  }
}

TEST_CASE("ChatTransport conformance: the console transport") {
  const testing::ChatTransportFactory factory =
      []() -> Result<std::unique_ptr<testing::ChatTransportHarness>> {
    return std::unique_ptr<testing::ChatTransportHarness>(new ConsoleHarness());
  };
  run_suite(factory);
}

TEST_CASE("ChatTransport conformance: the Telegram transport, polling") {
  run_suite([]() -> Result<std::unique_ptr<testing::ChatTransportHarness>> {
    return std::unique_ptr<testing::ChatTransportHarness>(
        new TelegramHarness(TelegramMode::kPolling));
  });
}

TEST_CASE("ChatTransport conformance: the Telegram transport, on a webhook") {
  run_suite([]() -> Result<std::unique_ptr<testing::ChatTransportHarness>> {
    return std::unique_ptr<testing::ChatTransportHarness>(
        new TelegramHarness(TelegramMode::kWebhook));
  });
}

TEST_CASE("ChatTransport conformance: the API channel's transport") {
  run_suite([]() -> Result<std::unique_ptr<testing::ChatTransportHarness>> {
    return std::unique_ptr<testing::ChatTransportHarness>(new ApiHarness());
  });
}

}  // namespace
}  // namespace llmassist
