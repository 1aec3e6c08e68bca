#include "llmassist/bot/bot.h"

#include <thread>

#include "bot/bot_internal.h"
#include "bot/bot_parts.h"
#include "llmassist/bot/builder.h"

namespace llmassist {

Result<std::shared_ptr<MessageStore>> open_message_store(const BotConfig& config,
                                                         std::shared_ptr<Logger> logger) {
  return detail::open_store(config, std::move(logger));
}

Result<std::unique_ptr<AccountStore>> open_account_store(const BotConfig& config,
                                                         std::shared_ptr<Logger> logger) {
  return detail::open_accounts(config, std::move(logger));
}

Result<std::unique_ptr<AdminServer>> make_admin_server(const BotConfig& config,
                                                       BotOptions options) {
  auto logger = options.logger ? options.logger : stderr_logger();
  LLMASSIST_ASSIGN_OR_RETURN(auto shared, detail::complete_parts(config, {}, logger));
  return detail::assemble_admin(config, shared, logger, {});
}

Result<std::unique_ptr<Bot>> Bot::create(const BotConfig& config, BotOptions options) {
  BotBuilder builder(config);
  builder.logger(std::move(options.logger)).on_console_end(std::move(options.on_console_end));
  return builder.build();
}

Bot::Bot(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Bot::~Bot() { stop(std::chrono::milliseconds(0)); }

Status Bot::start() {
  LLMASSIST_RETURN_IF_ERROR(parts_->assistant->start());
  if (!parts_->admin) return Status();
  Status s = parts_->admin->start();
  if (!s.ok()) parts_->assistant->stop(std::chrono::milliseconds(0));
  return s;
}

void Bot::stop(std::chrono::milliseconds grace) {
  if (parts_->admin) parts_->admin->stop();
  parts_->assistant->stop(grace);
}

std::string Bot::admin_url() const { return parts_->admin ? parts_->admin->url() : ""; }
const std::string& Bot::description() const { return parts_->description; }
AssistantStats Bot::stats() const { return parts_->assistant->stats(); }

bool Bot::wait_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool idle = true;
    for (auto status : {ReplyStatus::kNew, ReplyStatus::kGenerating, ReplyStatus::kRejected,
                        ReplyStatus::kApproved}) {
      auto waiting = parts_->store->list_replies({.status = status, .limit = 1});
      if (!waiting.ok() || !waiting->empty()) idle = false;
    }
    const auto s = parts_->assistant->stats();
    if (idle && s.drafts_in_flight == 0 && s.sends_in_flight == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace llmassist
