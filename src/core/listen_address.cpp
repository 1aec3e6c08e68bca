#include "core/listen_address.h"

#include <fmt/format.h>

#include <charconv>

namespace llmassist::detail {

Result<ListenAddress> parse_listen_address(std::string_view text, std::string_view what) {
  const auto refused = [&] {
    return invalid_argument(
        fmt::format("{} must be host:port, e.g. 127.0.0.1:8080, not \"{}\"", what, text));
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size() || colon + 6 < text.size()) {
    return refused();
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return refused();  // an IPv6 address needs its brackets: "[::1]:8080"
  }
  if (host.empty() || host.find_first_of(" \t[]/") != std::string_view::npos) return refused();
  int port = -1;
  const std::string_view digits = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port < 0 || port > 65535) {
    return refused();
  }
  return ListenAddress{std::string(host), port};
}

}  // namespace llmassist::detail
