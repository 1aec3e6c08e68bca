// Runtime settings: what an admin changes while the bot runs (the admin page's Settings, the
// REST API's /api/settings), kept in the store's settings table so that every process sharing
// the database sees them. Each one overrides the config file's value until it is cleared. The
// Assistant reads them at every rescan (AssistantOptions::rescan_interval), so a change takes
// effect within about a second, without a restart.
//
// Thread-safety: free functions over a thread-safe MessageStore.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "llmassist/assistant.h"
#include "llmassist/export.h"
#include "llmassist/message_store.h"
#include "llmassist/status.h"

namespace llmassist {

enum class RuntimeSetting : std::uint8_t {
  kPolicy,        // "auto" or "review": the moderation policy
  kSystemPrompt,  // the assistant's role (up to 32 KiB)
};

// The overrides in force; an empty field means "as configured".
struct LLMASSIST_API RuntimeSettings {
  std::optional<ModerationPolicy> policy;
  std::optional<std::string> system_prompt;
};

[[nodiscard]] LLMASSIST_API Result<RuntimeSettings> read_runtime_settings(MessageStore& store);

// OK when `value` is one `setting` may take; kInvalidArgument saying why otherwise.
[[nodiscard]] LLMASSIST_API Status check_runtime_setting(RuntimeSetting setting,
                                                         const std::string& value);

// Sets one override (or clears it, with std::nullopt) and records an audit event "settings" by
// `actor` with the value before and after. kInvalidArgument for a value the setting cannot take.
[[nodiscard]] LLMASSIST_API Status set_runtime_setting(MessageStore& store, RuntimeSetting setting,
                                                       std::optional<std::string> value,
                                                       std::string_view actor);

}  // namespace llmassist
