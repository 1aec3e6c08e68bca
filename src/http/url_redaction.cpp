#include "http/url_redaction.h"

#include <curl/curl.h>

#include <memory>

namespace llmassist::detail {
namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};

// One part of a parsed URL; empty when the URL has none.
std::string part(CURLU* u, CURLUPart which, unsigned flags = 0) {
  char* text = nullptr;
  if (curl_url_get(u, which, &text, flags) != CURLUE_OK || text == nullptr) return {};
  std::string out(text);
  curl_free(text);
  return out;
}

}  // namespace

RedactedUrl redact_url(std::string_view url) {
  RedactedUrl out;
  out.display = "<malformed url>";
  const std::unique_ptr<CURLU, UrlDeleter> parsed(curl_url());
  if (!parsed) return out;
  const std::string copy(url);
  // Without a default scheme: a URL must say whether it is http or https.
  if (curl_url_set(parsed.get(), CURLUPART_URL, copy.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    // The unparseable text itself may hold a secret; it never reaches a message.
    out.secrets.push_back(copy);
    return out;
  }
  out.valid = true;
  out.scheme = part(parsed.get(), CURLUPART_SCHEME);
  for (auto which : {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_QUERY, CURLUPART_FRAGMENT}) {
    if (auto secret = part(parsed.get(), which); !secret.empty()) {
      out.secrets.push_back(std::move(secret));
    }
  }
  const std::string path = part(parsed.get(), CURLUPART_PATH);
  std::string shown;
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    const std::string_view segment(path.data() + begin, end - begin);
    if (segment.find(':') != std::string_view::npos) {
      out.secrets.emplace_back(segment);
      shown += "<redacted>";
    } else {
      shown += segment;
    }
    if (end == path.size()) break;
    shown += '/';
    begin = end + 1;
  }
  out.display = out.scheme + "://" + part(parsed.get(), CURLUPART_HOST) + ":" +
                part(parsed.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT) + shown;
  return out;
}

bool free_of_secrets(std::string_view text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (!secret.empty() && text.find(secret) != std::string_view::npos) return false;
  }
  return true;
}

}  // namespace llmassist::detail
