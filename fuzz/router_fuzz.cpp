// libFuzzer target: the route templates (http/route_pattern.h) with the admin server's shapes,
// matched against fuzzed paths. Invariants: matching never crashes or recurses (any length); a
// match yields one value per parameter, "{id}" values are digits, others non-empty without '/';
// and putting the values back into the template gives the path again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/route_pattern.h"

namespace {

using llmassist::detail::http::RoutePattern;

const std::vector<RoutePattern>& patterns() {
  static const std::vector<RoutePattern> all = [] {
    std::vector<RoutePattern> p;
    for (const char* t : {"/",
                          "/health",
                          "/metrics",
                          "/openapi.json",
                          "/api/accounts",
                          "/api/accounts/{name}",
                          "/api/audit",
                          "/api/chats",
                          "/api/chats/{id}",
                          "/api/chats/{id}/handback",
                          "/api/chats/{id}/handoff",
                          "/api/chats/{id}/messages",
                          "/api/chats/{id}/reply",
                          "/api/events",
                          "/api/queue",
                          "/api/replies",
                          "/api/replies/{id}",
                          "/api/replies/{id}/approve",
                          "/api/replies/{id}/claim",
                          "/api/replies/{id}/edit",
                          "/api/replies/{id}/reject",
                          "/api/session",
                          "/api/settings",
                          "/api/stats",
                          "/api/tokens",
                          "/api/tokens/{id}",
                          "/v1/chat/handle",
                          "/v1/chat/reset",
                          "/telegram/webhook",
                          "/a/{x}/{id}/{y}"}) {
      p.emplace_back(t);
    }
    return p;
  }();
  return all;
}

// The template with its parameters replaced by `values`.
std::string rebuild(std::string_view pattern, const std::vector<std::string>& values) {
  std::string out;
  std::size_t next = 0;
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '{') {
      const std::size_t end = pattern.find('}', i);
      out += values.at(next++);
      i = end + 1;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> values;
  for (const RoutePattern& p : patterns()) {
    values.clear();
    if (!p.match(path, &values)) continue;
    if (values.size() != p.names().size()) __builtin_trap();
    for (std::size_t n = 0; n < values.size(); ++n) {
      const std::string& v = values[n];
      if (v.empty() || v.find('/') != std::string::npos) __builtin_trap();
      if (p.names()[n] == "id" && v.find_first_not_of("0123456789") != std::string::npos) {
        __builtin_trap();
      }
    }
    if (rebuild(p.text(), values) != path) __builtin_trap();
  }
  // A template built from the input itself must match its own text when it has no parameters.
  if (path.find_first_of("{}") == std::string_view::npos && !path.empty() && path[0] == '/') {
    if (!RoutePattern(path).match(path, nullptr)) __builtin_trap();
  }
  return 0;
}
