// Internal: the JSON form of the domain types, one shape for every tool that prints or serves
// them (the operator console's --json, the admin server's REST API). Times are ISO 8601 UTC with
// milliseconds ("2026-11-21T07:51:11.123Z"); optional times are null when unset.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llmassist/account_store.h"
#include "llmassist/export.h"
#include "llmassist/message_store.h"
#include "llmassist/moderation_queue.h"
#include "llmassist/types.h"

namespace llmassist::detail {

// "2026-11-21T07:51:11.123Z".
[[nodiscard]] LLMASSIST_API std::string iso(Timestamp t);

[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const Chat& chat);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const Message& message);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const Reply& reply);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const PendingItem& item);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const AuditEvent& event);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const LatencySummary& latency);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const Stats& stats);
// Accounts and tokens carry no secret: there is none in them to print.
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const Account& account);
[[nodiscard]] LLMASSIST_API nlohmann::json to_json(const ApiToken& token);

template <typename T>
nlohmann::json to_json_array(const std::vector<T>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : items) out.push_back(to_json(item));
  return out;
}

}  // namespace llmassist::detail
