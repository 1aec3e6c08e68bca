#include "llmassist/runtime_settings.h"

#include <fmt/format.h>

namespace llmassist {
namespace {

constexpr std::size_t kMaxPromptBytes = 32 * 1024;

std::string_view key_of(RuntimeSetting s) {
  return s == RuntimeSetting::kPolicy ? "runtime.policy" : "runtime.system_prompt";
}

std::string_view name_of(RuntimeSetting s) {
  return s == RuntimeSetting::kPolicy ? "policy" : "system_prompt";
}

// The stored value; empty when never set or cleared, or when the store keeps no settings.
Result<std::string> stored(MessageStore& store, RuntimeSetting s) {
  auto value = store.get_setting(key_of(s));
  const StatusCode code = value.status().code();
  if (code == StatusCode::kNotFound || code == StatusCode::kUnimplemented) return std::string();
  return value;
}

}  // namespace

Result<RuntimeSettings> read_runtime_settings(MessageStore& store) {
  RuntimeSettings out;
  LLMASSIST_ASSIGN_OR_RETURN(auto policy, stored(store, RuntimeSetting::kPolicy));
  if (policy == "auto") out.policy = ModerationPolicy::kAuto;
  if (policy == "review") out.policy = ModerationPolicy::kReview;
  LLMASSIST_ASSIGN_OR_RETURN(auto prompt, stored(store, RuntimeSetting::kSystemPrompt));
  if (!prompt.empty()) out.system_prompt = std::move(prompt);
  return out;
}

Status check_runtime_setting(RuntimeSetting setting, const std::string& value) {
  if (setting == RuntimeSetting::kPolicy) {
    if (value != "auto" && value != "review") {
      return invalid_argument("policy: expected auto or review");
    }
    return Status();
  }
  if (value.find_first_not_of(" \t\r\n") == std::string::npos) {
    return invalid_argument("system_prompt: must not be empty (clear it with null)");
  }
  if (value.size() > kMaxPromptBytes) {
    return invalid_argument(fmt::format("system_prompt: at most {} bytes", kMaxPromptBytes));
  }
  return Status();
}

Status set_runtime_setting(MessageStore& store, RuntimeSetting setting,
                           std::optional<std::string> value, std::string_view actor) {
  if (value) LLMASSIST_RETURN_IF_ERROR(check_runtime_setting(setting, *value));
  LLMASSIST_ASSIGN_OR_RETURN(auto before, stored(store, setting));
  const std::string after = value.value_or("");
  if (before == after) return Status();
  LLMASSIST_RETURN_IF_ERROR(store.put_setting(key_of(setting), after));
  AuditEvent event;
  event.actor = std::string(actor);
  event.action = "settings";
  event.before = before;
  event.after = after;
  event.detail = after.empty() ? fmt::format("{}: as configured", name_of(setting))
                               : std::string(name_of(setting));
  return store.append_audit(event).status();
}

}  // namespace llmassist
