// Naming a URL in messages and logs without its secrets.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmassist::detail {

struct RedactedUrl {
  // False when the URL cannot be parsed (then `display` is a placeholder).
  bool valid = false;
  // The scheme in lower case ("https"); empty when invalid.
  std::string scheme;
  // scheme://host:port/path, with user info, query and fragment dropped and every path segment
  // that contains ':' replaced by "<redacted>".
  std::string display;
  // The parts left out of `display` (user, password, query, fragment, masked segments): text
  // that must not appear in a message about this URL.
  std::vector<std::string> secrets;
};

[[nodiscard]] RedactedUrl redact_url(std::string_view url);

// True when `text` contains none of `secrets` (empty secrets are ignored).
[[nodiscard]] bool free_of_secrets(std::string_view text, const std::vector<std::string>& secrets);

}  // namespace llmassist::detail
