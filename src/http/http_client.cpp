#include "llmassist/http_client.h"

#include "core/await_result.h"

namespace llmassist {
namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string_view> find_header(const HttpHeaders& headers,
                                            std::string_view name) noexcept {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

Result<HttpResponse> send_sync(HttpClient& client, HttpRequest request) {
  return detail::await_result<HttpResponse>(
      [&](HttpCallback done) { client.send(std::move(request), std::move(done)); });
}

}  // namespace llmassist
