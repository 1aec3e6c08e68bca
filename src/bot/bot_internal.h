// Internal: what a Bot holds (bot.cpp runs it, builder.cpp assembles it).
#pragma once

#include <memory>
#include <string>

#include "llmassist/admin/admin_server.h"
#include "llmassist/assistant.h"
#include "llmassist/bot/bot.h"
#include "llmassist/message_store.h"

namespace llmassist {

struct Bot::Parts {
  std::shared_ptr<MessageStore> store;
  std::unique_ptr<Assistant> assistant;
  std::unique_ptr<AdminServer> admin;  // with an `admin` section
  std::string description;
};

}  // namespace llmassist
