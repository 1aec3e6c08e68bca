// Parsing URLs for the HTTP client, and naming them in messages and logs without their secrets.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "llmassist/export.h"

namespace llmassist::detail {

// An absolute URL, split (RFC 3986, the subset HTTP uses: scheme://[user[:password]@]host
// [:port][/path][?query][#fragment]).
struct LLMASSIST_API ParsedUrl {
  // False when the text is not such a URL; the other fields are then meaningless.
  bool valid = false;
  std::string scheme;  // in lower case
  std::string user;
  std::string password;
  // In lower case; an IPv6 literal without its brackets (see ipv6).
  std::string host;
  bool ipv6 = false;
  // The port given, or the scheme's (80 for http, 443 for https, 0 for others).
  int port = 0;
  // "/" when the URL has none.
  std::string path;
  std::string query;     // without '?'
  std::string fragment;  // without '#'

  // host, bracketed when an IPv6 literal: what goes before ":port".
  [[nodiscard]] std::string host_for_authority() const;
};

// Splits `url`. Refuses (valid = false) whitespace and control characters anywhere, an empty
// host, and a port outside 1-65535.
[[nodiscard]] LLMASSIST_API ParsedUrl parse_url(std::string_view url);

struct LLMASSIST_API RedactedUrl {
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

[[nodiscard]] LLMASSIST_API RedactedUrl redact_url(std::string_view url);
[[nodiscard]] LLMASSIST_API RedactedUrl redact_url(const ParsedUrl& url);

// True when `text` contains none of `secrets` (empty secrets are ignored).
[[nodiscard]] LLMASSIST_API bool free_of_secrets(std::string_view text,
                                                 const std::vector<std::string>& secrets);

}  // namespace llmassist::detail
