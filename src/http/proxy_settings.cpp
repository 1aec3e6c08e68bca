#include "http/proxy_settings.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "http/http_text.h"

namespace llmassist::detail {
namespace {

const char* env(const char* lower_name, const char* upper_name) {
  if (const char* v = std::getenv(lower_name); v != nullptr && *v != '\0') return v;
  if (upper_name == nullptr) return nullptr;
  const char* v = std::getenv(upper_name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

Result<ParsedUrl> parse_proxy(std::string_view text, std::string_view origin) {
  std::string with_scheme(text);
  if (with_scheme.find("://") == std::string::npos) with_scheme = "http://" + with_scheme;
  ParsedUrl url = parse_url(with_scheme);
  if (!url.valid || url.scheme != "http") {
    return invalid_argument(
        fmt::format("the proxy from {} must be an http://host:port URL", origin));
  }
  if (!url.user.empty()) {
    return invalid_argument(
        fmt::format("the proxy from {}: proxies that need a user name are not supported", origin));
  }
  // Without a port, 1080 (as curl), not http's 80.
  const std::size_t host_at = with_scheme.find("://") + 3;
  const std::string_view authority =
      std::string_view(with_scheme).substr(host_at, with_scheme.find('/', host_at) - host_at);
  const std::size_t bracket = authority.rfind(']');
  if (authority.find(':', bracket == std::string_view::npos ? 0 : bracket) ==
      std::string_view::npos) {
    url.port = 1080;
  }
  return url;
}

}  // namespace

Result<ProxySettings> proxy_settings(const std::string& option) {
  ProxySettings out;
  if (option == "direct") return out;
  if (!option.empty()) {
    LLMASSIST_ASSIGN_OR_RETURN(auto url, parse_proxy(option, "the proxy option"));
    out.http = url;
    out.https = url;
    return out;
  }
  out.direct_loopback = true;
  // As curl: http_proxy only in lower case (HTTP_PROXY can be set by a CGI request's header).
  if (const char* v = env("http_proxy", nullptr)) {
    LLMASSIST_ASSIGN_OR_RETURN(out.http, parse_proxy(v, "http_proxy"));
  }
  if (const char* v = env("https_proxy", "HTTPS_PROXY")) {
    LLMASSIST_ASSIGN_OR_RETURN(out.https, parse_proxy(v, "https_proxy"));
  }
  if (const char* v = env("no_proxy", "NO_PROXY")) {
    std::string_view list(v);
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      std::string_view item = trim(list.substr(0, comma));
      while (!item.empty() && item.front() == '.') item.remove_prefix(1);
      if (!item.empty()) out.no_proxy.push_back(lowered(item));
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

// Hosts that no_proxy names (or their domain) and, with the environment's proxies, loopback
// hosts go direct.
bool bypasses_proxy(const ProxySettings& p, const std::string& host) {
  if (p.direct_loopback && (host == "localhost" || host.ends_with(".localhost") ||
                            host.starts_with("127.") || host == "::1")) {
    return true;
  }
  return std::any_of(p.no_proxy.begin(), p.no_proxy.end(), [&](const std::string& item) {
    if (item == "*") return true;
    if (!iequals(host, item) && !(host.size() > item.size() && host.ends_with(item) &&
                                  host[host.size() - item.size() - 1] == '.')) {
      return false;
    }
    return true;
  });
}

}  // namespace llmassist::detail
