#include "llmassist/http_client.h"

#include "core/await_result.h"
#include "http/http_text.h"

namespace llmassist {

std::optional<std::string_view> find_header(const HttpHeaders& headers,
                                            std::string_view name) noexcept {
  for (const auto& [key, value] : headers) {
    if (detail::iequals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

Result<HttpResponse> send_sync(HttpClient& client, HttpRequest request) {
  return detail::await_result<HttpResponse>(
      [&](HttpCallback done) { client.send(std::move(request), std::move(done)); });
}

}  // namespace llmassist
