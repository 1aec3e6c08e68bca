// Internal: reading the summariser's answer — the summary, then an optional "Facts:" list of
// lasting facts, one a line ("- ..."). The model writes it, so it is read leniently: "Facts:" in
// any case, or "Факты:"; "-", "*", "•" or a number as the bullet; "none" / "нет" is no fact.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist::detail {

struct SummaryAnswer {
  std::string summary;             // trimmed; empty when the answer held none
  std::vector<std::string> facts;  // at most 20, each at most 300 characters
};

[[nodiscard]] LLMASSIST_API SummaryAnswer parse_summary_answer(std::string_view text);

}  // namespace llmassist::detail
