// Internal: what every MemoryManager of ours puts into a prompt the same way — the token
// estimate, the redraft instruction after a rejection, and how a summary, recalled items and
// knowledge passages are shown to the model.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"
#include "llmassist/memory_manager.h"

namespace llmassist::detail {

// Tokens a text costs, estimated from its characters (never bytes): a Latin-script character
// about a quarter of a token, a Cyrillic one (which tokenizers split finer) about 0.4, other
// characters one each third. `scale` is the calibration (the model's count over the estimate).
[[nodiscard]] LLMASSIST_API double estimate_tokens(std::string_view text, double scale = 1.0);

// Tokens of a whole prompt: the messages' texts plus a few for each message's framing.
[[nodiscard]] LLMASSIST_API int estimate_prompt_tokens(const std::vector<ChatMessage>& messages,
                                                       double scale = 1.0);

// The system message that ends a redraft's context, or none when the request is no redraft.
[[nodiscard]] LLMASSIST_API std::optional<ChatMessage> redraft_instruction(
    const ContextRequest& request);

// The system message carrying a session's summary.
[[nodiscard]] LLMASSIST_API std::string summary_message(std::string_view summary);

// The system message carrying recalled items, each on its own line.
[[nodiscard]] LLMASSIST_API std::string recalled_message(const std::vector<RecalledItem>& items);

// The system message carrying knowledge passages, each with its source.
[[nodiscard]] LLMASSIST_API std::string passages_message(const std::vector<UsedPassage>& passages);

}  // namespace llmassist::detail
