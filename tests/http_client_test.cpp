// The curl HttpClient against a real HTTP server over loopback.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "llmassist/http/curl_http_client.h"
#include "llmassist/http_client.h"
#include "support/http_test_client.h"
#include "support/mock_http_server.h"
#include "support/temp_dir.h"

using namespace llmassist;
using llmassist::testing::make_test_client;
using llmassist::testing::MockHttpServer;
using llmassist::testing::Pending;
using llmassist::testing::TempDir;
using namespace std::chrono_literals;

namespace {

// A loopback port bound but not listening while it lives: connecting to it is refused.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  [[nodiscard]] std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

HttpRequest get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  return r;
}

// Routes shared by most tests. `/hang` and `/stall` count their arrivals in `arrivals`.
void add_common_routes(MockHttpServer& server, std::atomic<int>& arrivals) {
  server.http().Get("/hello", [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Reply", "yes");
    res.set_content("hello " + req.get_header_value("X-Test"), "text/plain");
  });
  server.http().Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body, req.get_header_value("Content-Type"));
  });
  server.http().Get("/busy", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "7");
    res.set_content("try later", "text/plain");
  });
  // Never answers (until the server stops).
  server.http().Get("/hang", [&](const httplib::Request&, httplib::Response& res) {
    arrivals.fetch_add(1);
    server.notify();
    server.wait_for(30s);
    res.set_content("late", "text/plain");
  });
  // Sends the headers and one chunk, then nothing (until the server stops).
  server.http().Get("/stall", [&](const httplib::Request&, httplib::Response& res) {
    arrivals.fetch_add(1);
    server.notify();
    res.set_chunked_content_provider("text/plain",
                                     [&](std::size_t offset, httplib::DataSink& sink) {
                                       if (offset == 0) return sink.write("a", 1);
                                       server.wait_for(30s);
                                       return false;
                                     });
  });
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// What a form handler saw of one request.
struct SeenForm {
  std::mutex mu;
  int requests = 0;
  std::string content_type;
  std::string body;
  httplib::MultipartFormDataMap parts;
};

// POST (or PUT) /form records the request in `seen` and answers "got".
void add_form_route(MockHttpServer& server, SeenForm& seen) {
  const auto handler = [&](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(seen.mu);
      ++seen.requests;
      seen.content_type = req.get_header_value("Content-Type");
      seen.body = req.body;
      seen.parts = req.files;
    }
    res.set_content("got", "text/plain");
  };
  server.http().Post("/form", handler);
  server.http().Put("/form", handler);
}

HttpRequest form_post(std::string url, std::vector<HttpFormPart> form) {
  HttpRequest r;
  r.method = "POST";
  r.url = std::move(url);
  r.form = std::move(form);
  return r;
}

}  // namespace

TEST_CASE("http client: GET and POST carry headers and bodies both ways") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  HttpRequest hello = get(server.url("/hello"));
  hello.headers = {{"X-Test", "ping"}};
  auto got = send_sync(*client, hello);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "hello ping");
  CHECK(got->header("x-reply") == "yes");
  CHECK(got->header("X-REPLY") == "yes");
  CHECK_FALSE(got->header("x-missing").has_value());
  CHECK(got->time_to_first_byte <= got->total_time);

  HttpRequest post;
  post.method = "POST";
  post.url = server.url("/echo");
  post.headers = {{"Content-Type", "application/json"}};
  post.body = R"({"q":")" + std::string(100000, 'x') + R"("})";
  auto echoed = send_sync(*client, post);
  REQUIRE(echoed.ok());
  CHECK(echoed->status == 200);
  CHECK(echoed->body == post.body);
  CHECK(echoed->header("content-type") == "application/json");
}

TEST_CASE("http client: bodies much larger than the read buffer arrive whole") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  HttpRequest post;
  post.method = "POST";
  post.url = server.url("/echo");
  post.headers = {{"Content-Type", "application/json"}};
  post.body = R"({"q":")" + std::string(300000, 'x') + R"("})";
  auto echoed = send_sync(*client, post);
  REQUIRE(echoed.ok());
  CHECK(echoed->status == 200);
  CHECK(echoed->body == post.body);
}

TEST_CASE("http client: an HTTP error status is a response, not a transport error") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  auto busy = send_sync(*client, get(server.url("/busy")));
  REQUIRE(busy.ok());
  CHECK(busy->status == 503);
  CHECK(busy->header("retry-after") == "7");
  CHECK(busy->body == "try later");

  auto missing = send_sync(*client, get(server.url("/nothing-here")));
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
}

TEST_CASE("http client: connection refused is kUnavailable") {
  RefusingPort port;
  auto client = make_test_client();
  auto got = send_sync(*client, get(port.url("/v1/models")));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CHECK(got.status().message().find("127.0.0.1") != std::string::npos);
}

TEST_CASE("http client: malformed requests are kInvalidArgument") {
  auto client = make_test_client();
  CHECK(send_sync(*client, get("not a url")).status().code() == StatusCode::kInvalidArgument);
  CHECK(send_sync(*client, get("ftp://127.0.0.1/file")).status().code() ==
        StatusCode::kInvalidArgument);
  HttpRequest bad_method = get("http://127.0.0.1:1/");
  bad_method.method = "GE T";
  CHECK(send_sync(*client, bad_method).status().code() == StatusCode::kInvalidArgument);
  HttpRequest injected = get("http://127.0.0.1:1/");
  injected.headers = {{"X-A", "1\r\nX-B: 2"}};
  CHECK(send_sync(*client, injected).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("http client: timeouts are kDeadlineExceeded and name the timeout") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  SUBCASE("first byte") {
    HttpRequest r = get(server.url("/hang"));
    r.first_byte_timeout = 200ms;
    auto got = send_sync(*client, r);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(got.status().message().find("first-byte timeout") != std::string::npos);
  }
  SUBCASE("total, while the body stalls") {
    HttpRequest r = get(server.url("/stall"));
    r.total_timeout = 300ms;
    auto got = send_sync(*client, r);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(got.status().message().find("total timeout") != std::string::npos);
  }
  SUBCASE("total, before any headers") {
    HttpRequest r = get(server.url("/hang"));
    r.total_timeout = 200ms;
    auto got = send_sync(*client, r);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(got.status().message().find("total timeout") != std::string::npos);
  }
  SUBCASE("idle") {
    HttpRequest r = get(server.url("/stall"));
    r.idle_timeout = 200ms;
    auto got = send_sync(*client, r);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(got.status().message().find("idle timeout") != std::string::npos);
  }
}

TEST_CASE("http client: a streamed body arrives chunk by chunk") {
  MockHttpServer server;
  std::atomic<bool> first_seen{false};
  std::atomic<bool> last_written{false};
  server.http().Get("/stream", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream",
                                     [&](std::size_t offset, httplib::DataSink& sink) {
                                       if (offset == 0) return sink.write("data: first\n\n", 13);
                                       // The last chunk waits until the client has seen the first:
                                       // only incremental delivery lets this finish without the
                                       // bound.
                                       server.wait_until([&] { return first_seen.load(); }, 5s);
                                       last_written = true;
                                       sink.write("data: last\n\n", 12);
                                       sink.done();
                                       return true;
                                     });
  });
  server.start();
  auto client = make_test_client();

  std::string streamed;
  bool last_written_at_first_chunk = true;
  bool headers_seen_first = false;
  int status_in_headers = 0;
  HttpRequest r = get(server.url("/stream"));
  r.on_headers = [&](const HttpResponse& head) {
    headers_seen_first = streamed.empty();
    status_in_headers = head.status;
    return true;
  };
  r.on_body = [&](std::string_view chunk) {
    if (streamed.empty()) {
      last_written_at_first_chunk = last_written.load();
      first_seen = true;
      server.notify();
    }
    streamed += chunk;
    return true;
  };
  auto got = send_sync(*client, r);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body.empty());
  CHECK(headers_seen_first);
  CHECK(status_in_headers == 200);
  CHECK_FALSE(last_written_at_first_chunk);
  CHECK(streamed == "data: first\n\ndata: last\n\n");
}

TEST_CASE("http client: a body callback returning false cancels the request") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  int calls = 0;
  HttpRequest r = get(server.url("/stall"));
  r.on_body = [&](std::string_view) {
    ++calls;
    return false;
  };
  auto got = send_sync(*client, r);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kCancelled);
  CHECK(calls == 1);

  // The client goes on serving.
  auto after = send_sync(*client, get(server.url("/hello")));
  REQUIRE(after.ok());
  CHECK(after->status == 200);
}

TEST_CASE("http client: a CancelToken cancels a hanging request promptly") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  auto token = CancelToken::create();
  HttpRequest r = get(server.url("/hang"));
  r.cancel = token;
  Pending pending;
  const auto sent_at = std::chrono::steady_clock::now();
  client->send(r, pending.callback());
  REQUIRE(server.wait_until([&] { return arrivals.load() == 1; }, 5s));
  token->cancel();
  auto got = pending.get();
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kCancelled);
  // Generous: the handler would hang for 30 s.
  CHECK(std::chrono::steady_clock::now() - sent_at < 10s);

  auto after = send_sync(*client, get(server.url("/hello")));
  REQUIRE(after.ok());
  CHECK(after->status == 200);

  // A token cancelled before sending stops the request before it starts.
  HttpRequest early = get(server.url("/hello"));
  early.cancel = token;
  CHECK(send_sync(*client, early).status().code() == StatusCode::kCancelled);
}

TEST_CASE("http client: sequential requests reuse one kept-alive connection") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  for (int i = 0; i < 20; ++i) {
    auto got = send_sync(*client, get(server.url("/hello")));
    REQUIRE(got.ok());
    CHECK(got->status == 200);
  }
  CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http client: 200 concurrent slow requests all complete") {
  MockHttpServer server;
  server.http().Get("/slow", [&](const httplib::Request&, httplib::Response& res) {
    server.wait_for(200ms);
    res.set_content("ok", "text/plain");
  });
  server.start();
  constexpr int kRequests = 200;
  // Declared before the client, which calls back into them until it is destroyed.
  std::mutex mu;
  std::vector<Result<HttpResponse>> outcomes;
  std::promise<void> all_done;
  auto client = make_test_client();

  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kRequests; ++i) {
    client->send(get(server.url("/slow")), [&](Result<HttpResponse> r) {
      std::lock_guard lock(mu);
      outcomes.push_back(std::move(r));
      if (outcomes.size() == kRequests) all_done.set_value();
    });
  }
  REQUIRE(all_done.get_future().wait_for(30s) == std::future_status::ready);
  // Sanity only: far below running them one after another (200 x 200 ms).
  CHECK(std::chrono::steady_clock::now() - started < kRequests * 200ms);
  std::lock_guard lock(mu);
  for (const auto& r : outcomes) {
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
  }
}

TEST_CASE("http client: under a per-host limit, requests wait for a connection in turn") {
  MockHttpServer server;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  server.http().Get("/slow", [&](const httplib::Request&, httplib::Response& res) {
    const int now = inside.fetch_add(1) + 1;
    int seen = most_inside.load();
    while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
    }
    server.wait_for(30ms);
    inside.fetch_sub(1);
    res.set_content("ok", "text/plain");
  });
  server.start();
  constexpr int kRequests = 20;
  std::mutex mu;
  std::vector<Result<HttpResponse>> outcomes;
  std::promise<void> all_done;
  CurlHttpClientOptions options;
  options.max_connections_per_host = 2;
  auto client = make_test_client(options);
  for (int i = 0; i < kRequests; ++i) {
    client->send(get(server.url("/slow")), [&](Result<HttpResponse> r) {
      std::lock_guard lock(mu);
      outcomes.push_back(std::move(r));
      if (outcomes.size() == kRequests) all_done.set_value();
    });
  }
  REQUIRE(all_done.get_future().wait_for(30s) == std::future_status::ready);
  CHECK(most_inside.load() == 2);
  CHECK(server.connections_accepted() == 2);
  std::lock_guard lock(mu);
  for (const auto& r : outcomes) {
    REQUIRE(r.ok());
    CHECK(r->body == "ok");
  }
}

TEST_CASE("http client: thousands of requests queued for an unreachable host all fail") {
  // One connection in all, held by a slow request while the others queue. TCP to a multicast
  // address fails inside connect() itself (ENETUNREACH), so once the slow one is done each
  // queued request fails at once and frees the slot for the next: they are served from the
  // loop, not one call deeper per request (which overflowed the stack). Each queued request
  // holds a curl handle, so "thousands" here are five.
  MockHttpServer server;
  server.http().Get("/slow", [&](const httplib::Request&, httplib::Response& res) {
    server.wait_for(100ms);
    res.set_content("ok", "text/plain");
  });
  server.start();
  constexpr int kRequests = 5000;
  std::mutex mu;
  int unavailable_count = 0;
  int done_count = 0;
  std::promise<void> all_done;
  CurlHttpClientOptions options;
  options.max_total_connections = 1;
  auto client = make_test_client(options);
  Pending slow;
  client->send(get(server.url("/slow")), slow.callback());
  for (int i = 0; i < kRequests; ++i) {
    client->send(get("http://224.0.0.1:9/x"), [&](Result<HttpResponse> r) {
      std::lock_guard lock(mu);
      if (!r.ok() && r.status().code() == StatusCode::kUnavailable) ++unavailable_count;
      if (++done_count == kRequests) all_done.set_value();
    });
  }
  auto first = slow.get();
  REQUIRE(first.ok());
  CHECK(first->body == "ok");
  REQUIRE(all_done.get_future().wait_for(60s) == std::future_status::ready);
  std::lock_guard lock(mu);
  CHECK(unavailable_count == kRequests);
}

TEST_CASE("http client: destroying the client cancels every request in flight") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  constexpr int kRequests = 5;
  std::mutex mu;
  std::vector<StatusCode> codes;
  auto client = make_test_client();

  for (int i = 0; i < kRequests; ++i) {
    client->send(get(server.url("/hang")), [&](Result<HttpResponse> r) {
      std::lock_guard lock(mu);
      codes.push_back(r.status().code());
    });
  }
  REQUIRE(server.wait_until([&] { return arrivals.load() == kRequests; }, 5s));
  client.reset();
  std::lock_guard lock(mu);
  REQUIRE(codes.size() == kRequests);
  for (StatusCode code : codes) CHECK(code == StatusCode::kCancelled);
}

TEST_CASE("http client: a completion callback may drop the last owner of the client") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  // The client is owned by what its own callback releases, as a provider chain is by the
  // callback of its last request.
  auto client = std::shared_ptr<HttpClient>(make_test_client());
  std::weak_ptr<HttpClient> watch = client;
  std::promise<StatusCode> hanging;
  client->send(get(server.url("/hang")),
               [&](Result<HttpResponse> r) { hanging.set_value(r.status().code()); });
  REQUIRE(server.wait_until([&] { return arrivals.load() == 1; }, 5s));
  std::promise<void> released;
  auto owner = std::make_shared<std::shared_ptr<HttpClient>>(std::move(client));
  (*owner)->send(get(server.url("/hello")), [owner, &released](Result<HttpResponse> r) mutable {
    CHECK(r.ok());
    owner->reset();  // the last owner: the client is destroyed on its own I/O thread
    released.set_value();
  });
  owner.reset();
  auto done = released.get_future();
  REQUIRE(done.wait_for(5s) == std::future_status::ready);
  // The request still in flight is completed with kCancelled once the callback returned.
  auto cancelled_code = hanging.get_future();
  REQUIRE(cancelled_code.wait_for(5s) == std::future_status::ready);
  CHECK(cancelled_code.get() == StatusCode::kCancelled);
  CHECK(watch.expired());
}

TEST_CASE("http client: a completion callback may send the next request") {
  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client();

  Pending second;
  client->send(get(server.url("/hello")), [&](Result<HttpResponse> first) {
    CHECK(first.ok());
    client->send(get(server.url("/busy")), second.callback());
  });
  auto got = second.get();
  REQUIRE(got.ok());
  CHECK(got->status == 503);
}

TEST_CASE("http client: error messages never carry the query, headers or tokens in the path") {
  RefusingPort port;
  auto client = make_test_client();

  HttpRequest r = get(port.url("/v1/chat?key=SECRET1"));
  r.headers = {{"Authorization", "Bearer SECRET2-abcdef"}};
  auto refused = send_sync(*client, r);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("SECRET") == std::string::npos);
  CHECK(refused.status().message().find("/v1/chat") != std::string::npos);

  auto telegram = send_sync(*client, get(port.url("/bot123456:SECRET3token/getMe")));
  REQUIRE_FALSE(telegram.ok());
  CHECK(telegram.status().message().find("SECRET") == std::string::npos);
  CHECK(telegram.status().message().find("getMe") != std::string::npos);

  MockHttpServer server;
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  HttpRequest hanging = get(server.url("/hang?key=SECRET4"));
  hanging.first_byte_timeout = 100ms;
  auto timed_out = send_sync(*client, hanging);
  REQUIRE_FALSE(timed_out.ok());
  CHECK(timed_out.status().message().find("SECRET") == std::string::npos);
}

TEST_CASE("http client: a form goes as multipart/form-data, its fields and files whole") {
  TempDir dir;
  // Every byte value, NULs included, over more than one read buffer.
  std::string binary;
  for (int i = 0; i < 3 * 65536 + 17; ++i) binary += static_cast<char>((i * 7) % 256);
  REQUIRE(binary.find('\0') != std::string::npos);
  const std::string report = dir.file("report.bin");
  write_file(report, binary);
  const std::string plain = dir.file("данные.txt");
  write_file(plain, "строка\n");
  MockHttpServer server;
  SeenForm seen;
  add_form_route(server, seen);
  server.start();
  auto client = make_test_client();

  HttpRequest r = form_post(server.url("/form"),
                            {{"chat_id", "1001", "", "", ""},
                             {"caption", "Отчёт: \"май\"", "", "", ""},
                             {"note", "in memory", "", "note.txt", "text/plain"},
                             {"document", "", report, "Отчёт за май.pdf", "application/pdf"},
                             {"extra", "", plain, "", ""}});
  auto got = send_sync(*client, r);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "got");

  std::unique_lock lock(seen.mu);
  CHECK(seen.requests == 1);
  CHECK(seen.content_type.starts_with("multipart/form-data; boundary="));
  REQUIRE(seen.parts.size() == 5);
  const auto part = [&](const std::string& name) {
    REQUIRE(seen.parts.count(name) == 1);
    return seen.parts.find(name)->second;
  };
  CHECK(part("chat_id").content == "1001");
  CHECK(part("chat_id").filename.empty());
  CHECK(part("chat_id").content_type.empty());
  CHECK(part("caption").content == "Отчёт: \"май\"");
  CHECK(part("note").content == "in memory");
  CHECK(part("note").filename == "note.txt");
  CHECK(part("note").content_type == "text/plain");
  const auto document = part("document");
  CHECK(document.filename == "Отчёт за май.pdf");
  CHECK(document.content_type == "application/pdf");
  CHECK(document.content.size() == binary.size());
  CHECK(document.content == binary);
  // Without a filename or a type: the path's last segment, application/octet-stream.
  CHECK(part("extra").filename == "данные.txt");
  CHECK(part("extra").content_type == "application/octet-stream");
  CHECK(part("extra").content == "строка\n");

  lock.unlock();

  // Another method keeps the form.
  HttpRequest put = form_post(server.url("/form"), {{"only", "one", "", "", ""}});
  put.method = "PUT";
  REQUIRE(send_sync(*client, put).ok());
  lock.lock();
  CHECK(seen.requests == 2);
  CHECK(seen.parts.size() == 1);
  CHECK(seen.parts.find("only")->second.content == "one");
}

TEST_CASE("http client: a form after a form or a body does not carry the one before") {
  TempDir dir;
  const std::string file = dir.file("a.bin");
  write_file(file, std::string("A\0B", 3));
  MockHttpServer server;
  SeenForm seen;
  add_form_route(server, seen);
  std::atomic<int> arrivals{0};
  add_common_routes(server, arrivals);
  server.start();
  auto client = make_test_client(CurlHttpClientOptions{});

  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    REQUIRE(send_sync(*client,
                      form_post(server.url("/form"), {{"round", std::to_string(round), "", "", ""},
                                                      {"file", "", file, "", "image/png"}}))
                .ok());
    {
      std::lock_guard lock(seen.mu);
      REQUIRE(seen.parts.size() == 2);
      CHECK(seen.parts.find("round")->second.content == std::to_string(round));
      CHECK(seen.parts.find("file")->second.content == std::string("A\0B", 3));
      CHECK(seen.parts.find("file")->second.content_type == "image/png");
    }
    // A plain POST on the same (reused) easy handle and connection has no form in it.
    HttpRequest post;
    post.method = "POST";
    post.url = server.url("/echo");
    post.headers = {{"Content-Type", "application/json"}};
    post.body = "{}";
    auto echoed = send_sync(*client, post);
    REQUIRE(echoed.ok());
    CHECK(echoed->body == "{}");
    CHECK(echoed->header("content-type") == "application/json");
  }
  CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http client: a malformed form or an unreadable file is kInvalidArgument, not sent") {
  TempDir dir;
  const std::string file = dir.file("ok.txt");
  write_file(file, "fine");
  MockHttpServer server;
  SeenForm seen;
  add_form_route(server, seen);
  server.start();
  auto client = make_test_client();
  const std::string url = server.url("/form");

  const auto refused = [&](HttpRequest r) {
    auto got = send_sync(*client, std::move(r));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    return got.status().message();
  };
  SUBCASE("a missing file, named") {
    const std::string missing = dir.file("нет такого.pdf");
    const std::string message =
        refused(form_post(url, {{"a", "1", "", "", ""}, {"document", "", missing, "", ""}}));
    CHECK(message.find(missing) != std::string::npos);
    CHECK(message.find("document") != std::string::npos);
  }
  SUBCASE("a folder") {
    const std::string message = refused(form_post(url, {{"document", "", dir.file(""), "", ""}}));
    CHECK(message.find("not a regular file") != std::string::npos);
  }
  SUBCASE("an unreadable file") {
    write_file(dir.file("secret.txt"), "x");
    std::filesystem::permissions(dir.file("secret.txt"), std::filesystem::perms::none);
    // (root reads everything: then the file goes out, which is right too.)
    if (::access(dir.file("secret.txt").c_str(), R_OK) == 0) return;
    const std::string message =
        refused(form_post(url, {{"document", "", dir.file("secret.txt"), "", ""}}));
    CHECK(message.find("secret.txt") != std::string::npos);
  }
  SUBCASE("a body too") {
    HttpRequest r = form_post(url, {{"a", "1", "", "", ""}});
    r.body = "{}";
    refused(r);
  }
  SUBCASE("GET") {
    HttpRequest r = form_post(url, {{"a", "1", "", "", ""}});
    r.method = "GET";
    refused(r);
  }
  SUBCASE("its own Content-Type") {
    HttpRequest r = form_post(url, {{"a", "1", "", "", ""}});
    r.headers = {{"Content-Type", "multipart/form-data"}};
    refused(r);
  }
  SUBCASE("a part without a name") { refused(form_post(url, {{"", "1", "", "", ""}})); }
  SUBCASE("CR or LF in a name, a filename or a type") {
    refused(form_post(url, {{"a\r\nX-Injected: 1", "1", "", "", ""}}));
    refused(form_post(url, {{"a", "", file, "x\ny.txt", ""}}));
    refused(form_post(url, {{"a", "1", "", "", "text/plain\r\nX-Injected: 1"}}));
  }
  SUBCASE("a value and a file") { refused(form_post(url, {{"a", "1", file, "", ""}})); }
  std::lock_guard lock(seen.mu);
  CHECK(seen.requests == 0);
}
