#include "llmassist/types.h"

#include "llmassist/account_store.h"

#include <array>
#include <utility>

namespace llmassist {
namespace {

template <typename Enum, std::size_t N>
std::optional<Enum> parse_name(const std::array<std::pair<Enum, std::string_view>, N>& names,
                               std::string_view name) {
  for (const auto& [value, text] : names) {
    if (text == name) return value;
  }
  return std::nullopt;
}

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                         Enum value) {
  for (const auto& [v, text] : names) {
    if (v == value) return text;
  }
  return "unknown";
}

constexpr std::array<std::pair<Role, std::string_view>, 5> kRoles{{
    {Role::kUser, "user"},
    {Role::kAssistant, "assistant"},
    {Role::kOperator, "operator"},
    {Role::kSystem, "system"},
    {Role::kTool, "tool"},
}};

constexpr std::array<std::pair<ChatMode, std::string_view>, 2> kModes{{
    {ChatMode::kBot, "bot"},
    {ChatMode::kOperator, "operator"},
}};

constexpr std::array<std::pair<ReplyStatus, std::string_view>, 8> kStatuses{{
    {ReplyStatus::kNew, "new"},
    {ReplyStatus::kGenerating, "generating"},
    {ReplyStatus::kPending, "pending"},
    {ReplyStatus::kApproved, "approved"},
    {ReplyStatus::kRejected, "rejected"},
    {ReplyStatus::kSent, "sent"},
    {ReplyStatus::kFailed, "failed"},
    {ReplyStatus::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<AccountRole, std::string_view>, 3> kAccountRoles{{
    {AccountRole::kViewer, "viewer"},
    {AccountRole::kOperator, "operator"},
    {AccountRole::kAdmin, "admin"},
}};

}  // namespace

std::string_view to_string(Role role) noexcept { return name_of(kRoles, role); }
std::optional<Role> parse_role(std::string_view name) noexcept { return parse_name(kRoles, name); }

std::string_view to_string(ChatMode mode) noexcept { return name_of(kModes, mode); }
std::optional<ChatMode> parse_chat_mode(std::string_view name) noexcept {
  return parse_name(kModes, name);
}

std::string_view to_string(AccountRole role) noexcept { return name_of(kAccountRoles, role); }
std::optional<AccountRole> parse_account_role(std::string_view name) noexcept {
  return parse_name(kAccountRoles, name);
}

std::string_view to_string(ReplyStatus status) noexcept { return name_of(kStatuses, status); }
std::optional<ReplyStatus> parse_reply_status(std::string_view name) noexcept {
  return parse_name(kStatuses, name);
}

bool is_legal_transition(ReplyStatus from, ReplyStatus to) noexcept {
  using S = ReplyStatus;
  switch (from) {
    case S::kNew:
      return to == S::kGenerating || to == S::kCancelled;
    case S::kGenerating:
      // Back to new: a worker gives the question up (shutting down) for another to take.
      return to == S::kGenerating || to == S::kPending || to == S::kApproved || to == S::kFailed ||
             to == S::kNew || to == S::kCancelled;
    case S::kPending:
      return to == S::kPending || to == S::kApproved || to == S::kRejected || to == S::kCancelled;
    case S::kRejected:
      return to == S::kGenerating || to == S::kCancelled;
    case S::kApproved:
      // Failed: delivery failed for good (the user blocked the bot).
      return to == S::kApproved || to == S::kSent || to == S::kFailed || to == S::kCancelled;
    case S::kFailed:
      // An operator answers by hand (approved), or rejects it to ask for a new draft (rejected:
      // the pipeline regenerates rejected replies, in chat order); a worker may also take it
      // straight back (generating).
      return to == S::kFailed || to == S::kApproved || to == S::kRejected || to == S::kGenerating ||
             to == S::kCancelled;
    case S::kSent:
    case S::kCancelled:
      return false;
  }
  return false;
}

}  // namespace llmassist
