// Answers as a chat received them, after kills: a bot killed between Telegram's acceptance of
// an answer and the store's record of it sends that answer again after its restart, right after
// itself (the chat's next answer waits for it). Delivery is at least once on the wire.
#pragma once

#include <string>
#include <vector>

namespace llmassist::testing {

// `texts` with each run of equal neighbours made one; adds the dropped ones to `repeats`.
inline std::vector<std::string> without_adjacent_repeats(const std::vector<std::string>& texts,
                                                         int& repeats) {
  std::vector<std::string> unique;
  for (const auto& t : texts) {
    if (!unique.empty() && unique.back() == t) {
      ++repeats;
      continue;
    }
    unique.push_back(t);
  }
  return unique;
}

}  // namespace llmassist::testing
