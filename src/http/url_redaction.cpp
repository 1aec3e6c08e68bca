#include "http/url_redaction.h"

#include <algorithm>
#include <charconv>

#include "http/http_text.h"

namespace llmassist::detail {
namespace {

bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }

// What a host name may not contain (RFC 3986 gen-delims and characters never valid in a URL).
bool bad_host_char(char c) {
  return std::string_view("/?#@[]<>\"{}|\\^`%").find(c) != std::string_view::npos;
}

}  // namespace

std::string ParsedUrl::host_for_authority() const { return ipv6 ? "[" + host + "]" : host; }

ParsedUrl parse_url(std::string_view url) {
  ParsedUrl out;
  if (std::any_of(url.begin(), url.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      })) {
    return out;
  }
  const std::size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0 || !alpha(url[0])) return out;
  const std::string_view scheme = url.substr(0, colon);
  if (!std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return alpha(c) || digit(c) || c == '+' || c == '-' || c == '.';
      })) {
    return out;
  }
  out.scheme = lowered(scheme);
  std::string_view rest = url.substr(colon + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);

  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const std::size_t sep = userinfo.find(':');
    out.user = std::string(userinfo.substr(0, sep));
    if (sep != std::string_view::npos) out.password = std::string(userinfo.substr(sep + 1));
    authority = authority.substr(at + 1);
  }
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return out;
    const std::string_view literal = authority.substr(1, close - 1);
    if (literal.empty() || !std::all_of(literal.begin(), literal.end(), [](char c) {
          return digit(c) || (ascii_lower(c) >= 'a' && ascii_lower(c) <= 'f') || c == ':' ||
                 c == '.';
        })) {
      return out;
    }
    out.host = lowered(literal);
    out.ipv6 = true;
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return out;
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const std::size_t sep = authority.find(':');
    const std::string_view host = authority.substr(0, sep);
    if (host.empty() || std::any_of(host.begin(), host.end(), bad_host_char)) return out;
    out.host = lowered(host);
    if (sep != std::string_view::npos) {
      port = authority.substr(sep + 1);
      has_port = true;
    }
  }
  if (has_port && !port.empty()) {
    int value = 0;
    const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return out;
    }
    out.port = value;
  } else {
    out.port = out.scheme == "http" ? 80 : out.scheme == "https" ? 443 : 0;
  }

  const std::size_t hash = rest.find('#');
  if (hash != std::string_view::npos) {
    out.fragment = std::string(rest.substr(hash + 1));
    rest = rest.substr(0, hash);
  }
  const std::size_t question = rest.find('?');
  if (question != std::string_view::npos) {
    out.query = std::string(rest.substr(question + 1));
    rest = rest.substr(0, question);
  }
  out.path = rest.empty() ? "/" : std::string(rest);
  out.valid = true;
  return out;
}

RedactedUrl redact_url(std::string_view url) {
  const ParsedUrl parsed = parse_url(url);
  if (!parsed.valid) {
    RedactedUrl out;
    out.display = "<malformed url>";
    // The unparseable text itself may hold a secret; it never reaches a message.
    out.secrets.emplace_back(url);
    return out;
  }
  return redact_url(parsed);
}

RedactedUrl redact_url(const ParsedUrl& url) {
  RedactedUrl out;
  out.display = "<malformed url>";
  if (!url.valid) return out;
  out.valid = true;
  out.scheme = url.scheme;
  for (const std::string* secret : {&url.user, &url.password, &url.query, &url.fragment}) {
    if (!secret->empty()) out.secrets.push_back(*secret);
  }
  std::string shown;
  std::size_t begin = 0;
  const std::string& path = url.path;
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
  out.display = url.scheme + "://" + url.host_for_authority() +
                (url.port != 0 ? ":" + std::to_string(url.port) : std::string()) + shown;
  return out;
}

bool free_of_secrets(std::string_view text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (!secret.empty() && text.find(secret) != std::string_view::npos) return false;
  }
  return true;
}

}  // namespace llmassist::detail
