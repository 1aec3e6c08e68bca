// What the HTTP tests share on the client side: a curl client that ignores the environment's
// proxies, and bounded waits for an outcome, so that a bug fails a test instead of hanging it.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "llmassist/http/curl_http_client.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"

namespace llmassist::testing {

// A client with a silent logger that goes direct unless the options name a proxy.
inline std::unique_ptr<HttpClient> make_test_client(CurlHttpClientOptions options = {}) {
  if (!options.logger) options.logger = null_logger();
  if (options.proxy.empty()) options.proxy = "direct";
  auto client = make_curl_http_client(options);
  REQUIRE(client.ok());
  return std::move(client).value();
}

// One asynchronous outcome, waited for with a bound.
class Pending {
 public:
  HttpCallback callback() {
    return [p = promise_](Result<HttpResponse> r) { p->set_value(std::move(r)); };
  }
  Result<HttpResponse> get(std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    if (future_.wait_for(bound) != std::future_status::ready) {
      return internal_error("test: no outcome within the bound");
    }
    return future_.get();
  }

 private:
  std::shared_ptr<std::promise<Result<HttpResponse>>> promise_ =
      std::make_shared<std::promise<Result<HttpResponse>>>();
  std::future<Result<HttpResponse>> future_ = promise_->get_future();
};

// send_sync() with a bound. Whatever the request's callbacks capture must be declared before
// the client: past the bound, the client's destruction still calls them.
inline Result<HttpResponse> fetch(HttpClient& client, HttpRequest request,
                                  std::chrono::milliseconds bound = std::chrono::seconds(3)) {
  Pending pending;
  client.send(std::move(request), pending.callback());
  return pending.get(bound);
}

// A request with timeouts short enough that a client waiting for bytes that never come fails
// with kDeadlineExceeded within the tests' bounds.
inline HttpRequest short_request(std::string url, std::string method = "GET",
                                 std::string body = "") {
  HttpRequest r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.body = std::move(body);
  r.connect_timeout = std::chrono::seconds(2);
  r.first_byte_timeout = std::chrono::seconds(2);
  r.idle_timeout = std::chrono::seconds(2);
  return r;
}

}  // namespace llmassist::testing
