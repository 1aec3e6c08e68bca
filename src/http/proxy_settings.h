// Which proxy, if any, the HTTP client goes through for a URL: from its `proxy` option or the
// environment (see socket_http_client.h).
//
// Thread-safety: pure functions (proxy_settings() reads the environment).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/url_redaction.h"
#include "llmassist/status.h"

namespace llmassist::detail {

struct ProxySettings {
  std::optional<ParsedUrl> http;      // for http:// requests
  std::optional<ParsedUrl> https;     // for https:// requests (CONNECT)
  std::vector<std::string> no_proxy;  // host suffixes; "*" = every host
  bool direct_loopback = false;       // loopback hosts never go through the proxy
};

// The settings for the client option `option`: "" = the environment's, "direct" = none, or a
// proxy URL. Errors: kInvalidArgument for a proxy that is not http://host[:port].
[[nodiscard]] Result<ProxySettings> proxy_settings(const std::string& option);

// True when requests to `host` (lower case) go direct whatever the proxy.
[[nodiscard]] bool bypasses_proxy(const ProxySettings& p, const std::string& host);

}  // namespace llmassist::detail
