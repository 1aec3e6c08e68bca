// Internal: reading JSON text from outside (Telegram, API clients, config files) with
// nlohmann's parser, less its one surprise: it takes a NUL byte for the end of its input, so
// "{...}\0junk" would read as the object before the NUL. JSON has no raw NUL anywhere (not
// even inside a string), so text holding one is not JSON.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace llmassist::detail {

[[nodiscard]] inline bool holds_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// The JSON in `text`, or a discarded value (is_discarded()) when it is not JSON, a NUL
// byte included. Never throws.
[[nodiscard]] inline nlohmann::json parse_json_text(std::string_view text) {
  if (holds_nul(text)) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
}

}  // namespace llmassist::detail
