// The curl HttpClient at the wire level: servers that script every byte of their replies
// (support/raw_http_server.h) for framing, interim replies, connection reuse and its failures
// (a POST is never sent twice), malformed replies, limits and the request as sent; an https
// server (cpp-httplib) with certificates made at run time (support/tls_test_cert.h); HTTP/2
// (nghttpd, when installed); scripted HTTP proxies and a SOCKS5 proxy (support/socks5_server.h),
// from the options and from the environment.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include "llmassist/http/curl_http_client.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "support/capturing_logger.h"
#include "support/child_process.h"
#include "support/free_port.h"
#include "support/http_test_client.h"
#include "support/raw_http_server.h"
#include "support/socks5_server.h"
#include "support/temp_dir.h"
#include "support/tls_test_cert.h"

using namespace llmassist;
using llmassist::testing::fetch;
using llmassist::testing::free_port;
using llmassist::testing::make_test_client;
using llmassist::testing::Pending;
using llmassist::testing::RawConnection;
using llmassist::testing::RawHttpServer;
using llmassist::testing::RawRequest;
using llmassist::testing::short_request;
using llmassist::testing::TlsTestCertificates;
using namespace std::chrono_literals;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string ok_response(std::string_view body, std::string_view extra_headers = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}

// Answers every request on the connection with respond(request) until the client closes it.
void serve_each(RawConnection& conn, const std::function<std::string(const RawRequest&)>& respond) {
  while (auto req = conn.read_request()) {
    if (!conn.write(respond(*req))) return;
  }
}

// `n` bytes of every value, in a pattern that shows where a piece went missing or moved.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

// A chunked reply and the body it carries: sizes in upper and lower case hex and with leading
// zeros, chunk extensions (one a quoted string with a ';' inside), data that looks like framing
// ("\r\n0\r\n\r\n"), and a trailer section.
struct ChunkedReply {
  std::string wire;
  std::string body;
};

ChunkedReply chunked_reply() {
  ChunkedReply r;
  r.wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n";
  auto chunk = [&](const std::string& size_line, const std::string& data) {
    r.wire += size_line + "\r\n" + data + "\r\n";
    r.body += data;
  };
  chunk("1", "a");
  chunk("1F;name=value", std::string(31, 'b'));
  chunk("0005;ext;q=\"a;b\"", "hello");
  chunk("1a", "x\r\n0\r\n\r\nlooks like the end");
  chunk("100", pattern(256));
  chunk("7 ; spaced = \"x\"", "padded!");  // whitespace around ';' and '=' (BWS)
  r.wire += "0\r\nX-Trailer: yes\r\nX-Checksum: 1234\r\n\r\n";
  return r;
}

// cpp-httplib runs each accepted connection as one task of its task queue; this pool counts
// them, which counts connections.
class CountingPool final : public httplib::ThreadPool {
 public:
  explicit CountingPool(std::shared_ptr<std::atomic<int>> counter)
      : httplib::ThreadPool(8), counter_(std::move(counter)) {}
  void enqueue(std::function<void()> fn) override {
    counter_->fetch_add(1);
    httplib::ThreadPool::enqueue(std::move(fn));
  }

 private:
  std::shared_ptr<std::atomic<int>> counter_;
};

// An https server on 127.0.0.1: GET /hello answers "hello over tls" with the client's port in
// X-Remote-Port; POST /echo answers the request body. Declare it before the client: an idle
// kept-alive connection keeps cpp-httplib's stop() waiting until the client closes it.
class TlsServer {
 public:
  TlsServer(const std::string& cert_file, const std::string& key_file,
            std::chrono::seconds keep_alive = 5s)
      : server_(cert_file.c_str(), key_file.c_str()) {
    // cpp-httplib writes without MSG_NOSIGNAL: a client that hangs up must not kill the run.
    std::signal(SIGPIPE, SIG_IGN);
    REQUIRE(server_.is_valid());
    server_.set_keep_alive_timeout(keep_alive.count());
    server_.new_task_queue = [c = connections_] { return new CountingPool(c); };
    server_.Get("/hello", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Remote-Port", std::to_string(req.remote_port));
      res.set_content("hello over tls", "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "application/octet-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    listener_ = std::thread([this] { server_.listen_after_bind(); });
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!server_.is_running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    if (!server_.is_running()) {
      server_.stop();
      listener_.join();
      FAIL("the https server did not start");
    }
  }
  ~TlsServer() {
    server_.stop();
    listener_.join();
  }
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int connections() const { return connections_->load(); }
  // "https://<host>:<port>" followed by `path`.
  [[nodiscard]] std::string url(std::string_view host, std::string_view path) const {
    return "https://" + std::string(host) + ":" + std::to_string(port_) + std::string(path);
  }

 private:
  httplib::SSLServer server_;
  std::shared_ptr<std::atomic<int>> connections_ = std::make_shared<std::atomic<int>>(0);
  int port_ = -1;
  std::thread listener_;
};

}  // namespace

// --- Framing ---

TEST_CASE("http client: chunked bodies with odd sizes, extensions and trailers arrive whole") {
  const ChunkedReply reply = chunked_reply();
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    serve_each(conn, [&](const RawRequest& req) {
      if (req.target != "/chunked") return ok_response("after");
      // A few bytes at a time: sizes, extensions and CRLFs split across reads.
      conn.write_in_pieces(reply.wire, 5);
      return std::string();
    });
  });
  std::string streamed;
  int body_calls = 0;
  auto client = make_test_client();

  SUBCASE("accumulated") {
    auto got = fetch(*client, short_request(server.url("/chunked")));
    REQUIRE(got.ok());
    CHECK(got->status == 200);
    CHECK(got->body == reply.body);
    CHECK(got->header("Content-Type") == "text/plain");
  }
  SUBCASE("streamed to on_body") {
    HttpRequest r = short_request(server.url("/chunked"));
    r.on_body = [&](std::string_view piece) {
      ++body_calls;
      streamed += piece;
      return true;
    };
    auto got = fetch(*client, r);
    REQUIRE(got.ok());
    CHECK(got->status == 200);
    CHECK(got->body.empty());
    CHECK(body_calls >= 1);
    CHECK(streamed == reply.body);
  }
  // The trailers were consumed exactly: the connection serves the next reply in step.
  auto after = fetch(*client, short_request(server.url("/after")));
  REQUIRE(after.ok());
  CHECK(after->body == "after");
  CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http client: a close-delimited body arrives whole and its connection is not reused") {
  const std::string body_10 = pattern(100000);
  const std::string body_11 = pattern(70001);
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() == 0) {
      // HTTP/1.0 without a length: the body ends where the connection does.
      if (!conn.read_request()) return;
      conn.write("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
      conn.write_in_pieces(body_10, 16384);
    } else if (conn.index() == 1) {
      // The same in HTTP/1.1: neither Content-Length nor chunked.
      if (!conn.read_request()) return;
      conn.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body_11);
    } else {
      serve_each(conn, [](const RawRequest&) { return ok_response("third"); });
    }
  });  // returning closes the connection
  auto client = make_test_client();

  auto first = fetch(*client, short_request(server.url("/one")));
  REQUIRE(first.ok());
  CHECK(first->status == 200);
  CHECK(first->body.size() == body_10.size());
  CHECK(first->body == body_10);

  auto second = fetch(*client, short_request(server.url("/two")));
  REQUIRE(second.ok());
  CHECK(second->body == body_11);

  auto third = fetch(*client, short_request(server.url("/three")));
  REQUIRE(third.ok());
  CHECK(third->body == "third");
  CHECK(server.connections_accepted() == 3);
  auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].connection == 0);
  CHECK(seen[1].connection == 1);
  CHECK(seen[2].connection == 2);
}

TEST_CASE("http client: after Connection: close the next request opens a new connection") {
  std::string first_reply;
  SUBCASE("Connection: close") {
    first_reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfirst";
  }
  SUBCASE("an HTTP/1.0 reply without keep-alive") {
    first_reply = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
  }
  std::atomic<int> verdicts{0};
  std::atomic<bool> client_closed{false};
  std::atomic<bool> reused_anyway{false};
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() != 0) {
      serve_each(conn, [](const RawRequest&) { return ok_response("second"); });
      return;
    }
    if (!conn.read_request()) return;
    // The server keeps its side open: only a client that honours the reply closes it.
    conn.write(first_reply);
    client_closed = conn.wait_for_client_close(1500ms);
    reused_anyway = conn.read_request(0ms).has_value();
    verdicts.fetch_add(1);
    server.notify();
  });
  auto client = make_test_client();

  auto first = fetch(*client, short_request(server.url("/a")));
  REQUIRE(first.ok());
  CHECK(first->body == "first");
  auto second = fetch(*client, short_request(server.url("/b")));
  REQUIRE(second.ok());
  CHECK(second->body == "second");
  REQUIRE(server.wait_until([&] { return verdicts.load() == 1; }, 3s));
  CHECK_FALSE(reused_anyway.load());
  CHECK(client_closed.load());
  CHECK(server.connections_accepted() == 2);
}

TEST_CASE("http client: interim 1xx replies are skipped, with their headers") {
  bool one_write = false;
  SUBCASE("written one by one") { one_write = false; }
  SUBCASE("all in one write") { one_write = true; }
  const std::string interim =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
  const std::string final_reply =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nhello";
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    serve_each(conn, [&](const RawRequest& req) {
      if (req.target != "/interim") return ok_response("again");
      if (one_write) return interim + final_reply;
      conn.write("HTTP/1.1 100 Continue\r\n\r\n");
      conn.sleep(5ms);
      conn.write("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
      conn.sleep(5ms);
      return final_reply;
    });
  });
  int header_calls = 0;
  int status_in_headers = 0;
  auto client = make_test_client();

  HttpRequest r = short_request(server.url("/interim"), "POST", "payload");
  r.on_headers = [&](const HttpResponse& head) {
    ++header_calls;
    status_in_headers = head.status;
    return true;
  };
  auto got = fetch(*client, r);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "hello");
  CHECK(got->headers == HttpHeaders{{"Content-Length", "5"}, {"X-Final", "yes"}});
  CHECK_FALSE(got->header("Link").has_value());
  CHECK(header_calls == 1);
  CHECK(status_in_headers == 200);

  auto again = fetch(*client, short_request(server.url("/again")));
  REQUIRE(again.ok());
  CHECK(again->body == "again");
  CHECK(server.connections_accepted() == 1);
}

TEST_CASE("http client: HEAD, 204 and 304 replies end at their headers, on a reused connection") {
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest& req) -> std::string {
      if (req.method == "HEAD") {
        return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n";
      }
      if (req.target == "/no-content") return "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
      if (req.target == "/not-modified") {
        return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n";
      }
      if (req.target == "/not-modified-with-length") {
        // A 304 may carry the length the 200 would have had; it still has no body.
        return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n";
      }
      return ok_response("after");
    });
  });
  auto client = make_test_client();

  auto head = fetch(*client, short_request(server.url("/file"), "HEAD"));
  REQUIRE(head.ok());
  CHECK(head->status == 200);
  CHECK(head->body.empty());
  CHECK(head->header("Content-Length") == "1234");

  auto no_content = fetch(*client, short_request(server.url("/no-content")));
  REQUIRE(no_content.ok());
  CHECK(no_content->status == 204);
  CHECK(no_content->body.empty());
  CHECK(no_content->header("X-A") == "1");

  auto not_modified = fetch(*client, short_request(server.url("/not-modified")));
  REQUIRE(not_modified.ok());
  CHECK(not_modified->status == 304);
  CHECK(not_modified->body.empty());

  auto with_length = fetch(*client, short_request(server.url("/not-modified-with-length")));
  REQUIRE(with_length.ok());
  CHECK(with_length->status == 304);
  CHECK(with_length->body.empty());

  auto after = fetch(*client, short_request(server.url("/after")));
  REQUIRE(after.ok());
  CHECK(after->body == "after");
  CHECK(server.connections_accepted() == 1);
}

// --- Connection reuse and its failures ---

TEST_CASE("http client: a kept-alive connection the server closed while idle is replaced") {
  std::atomic<bool> closed{false};
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() != 0) {
      serve_each(conn, [](const RawRequest&) { return ok_response("second"); });
      return;
    }
    if (!conn.read_request()) return;
    conn.write(ok_response("first"));  // keep-alive: HTTP/1.1, a length, no Connection: close
    conn.close();
    closed = true;
    server.notify();
  });
  auto client = make_test_client();

  auto first = fetch(*client, short_request(server.url("/a")));
  REQUIRE(first.ok());
  CHECK(first->body == "first");
  REQUIRE(server.wait_until([&] { return closed.load(); }, 3s));
  std::this_thread::sleep_for(50ms);  // the FIN reaches the idle connection

  auto second = fetch(*client, short_request(server.url("/b")));
  REQUIRE(second.ok());
  CHECK(second->body == "second");
  CHECK(server.connections_accepted() == 2);
  auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].connection == 1);
}

TEST_CASE("http client: a reused connection closed before any reply byte is retried once") {
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() != 0) {
      serve_each(conn, [](const RawRequest& req) { return ok_response("retried:" + req.body); });
      return;
    }
    if (!conn.read_request()) return;
    conn.write(ok_response("first"));
    // The next request is read, then the connection closes without a byte of reply, as a
    // server does that timed the connection out just as the request arrived.
    conn.read_request();
  });
  auto client = make_test_client();

  auto first = fetch(*client, short_request(server.url("/first")));
  REQUIRE(first.ok());
  CHECK(first->body == "first");
  HttpRequest put = short_request(server.url("/second"), "PUT", "payload");
  put.headers = {{"X-Attempt", "same"}};
  auto second = fetch(*client, put);
  REQUIRE(second.ok());
  CHECK(second->status == 200);
  CHECK(second->body == "retried:payload");
  CHECK(server.connections_accepted() == 2);
  auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].connection == 0);
  CHECK(seen[2].connection == 1);
  // The same request again, body and headers included.
  CHECK(seen[2].method == "PUT");
  CHECK(seen[2].target == "/second");
  CHECK(seen[2].body == "payload");
  CHECK(seen[2].header("X-Attempt") == "same");
}

// The server read a request on a kept-alive connection and closed it without a reply: it may
// have acted on it. An idempotent request may go again on a fresh connection; a POST must not.
TEST_CASE("http client: a POST whose kept-alive connection closed after sending is not resent") {
  std::string method;
  SUBCASE("POST") { method = "POST"; }
  SUBCASE("POST with an empty body") { method = "POST-EMPTY"; }
  SUBCASE("PATCH") { method = "PATCH"; }
  SUBCASE("POST with a form") { method = "POST-FORM"; }
  const bool empty = method == "POST-EMPTY";
  const bool form = method == "POST-FORM";
  if (empty || form) method = "POST";
  testing::TempDir dir;
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() != 0) {
      serve_each(conn, [](const RawRequest&) { return ok_response("second copy"); });
      return;
    }
    if (!conn.read_request()) return;
    conn.write(ok_response("first"));
    conn.read_request();  // then closes without a byte of reply
  });
  auto client = make_test_client();

  REQUIRE(fetch(*client, short_request(server.url("/warm-up"))).ok());
  HttpRequest post = short_request(server.url("/sendMessage"), method, empty ? "" : "{\"n\":1}");
  post.headers = {{"Content-Type", "application/json"}};
  if (form) {
    {
      std::ofstream out(dir.file("doc.bin"), std::ios::binary);
      out << "document bytes";
    }
    post.body.clear();
    post.headers.clear();
    post.form = {{"chat_id", "1", "", "", ""}, {"document", "", dir.file("doc.bin"), "", ""}};
  }
  auto got = fetch(*client, post);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CAPTURE(got.status().message());
  CHECK(got.status().message().find("not sent again") != std::string::npos);
  CHECK(got.status().reason() == "not_resent");
  // Give a resent copy time to arrive, had there been one.
  std::this_thread::sleep_for(200ms);
  const auto seen = server.requests();
  const auto copies = std::count_if(seen.begin(), seen.end(),
                                    [](const RawRequest& r) { return r.target == "/sendMessage"; });
  CHECK(copies == 1);
  if (form) {
    const auto sent = std::find_if(seen.begin(), seen.end(),
                                   [](const RawRequest& r) { return r.target == "/sendMessage"; });
    REQUIRE(sent != seen.end());
    CHECK(sent->header("Content-Type").value_or("").starts_with("multipart/form-data"));
    CHECK(sent->body.find("document bytes") != std::string::npos);
  }
  // Nothing 100-continue: the body went with the headers.
  for (const auto& r : seen) CHECK(r.count_headers("Expect") == 0);
}

TEST_CASE("http client: a GET whose kept-alive connection closed after sending is retried") {
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() != 0) {
      serve_each(conn, [](const RawRequest&) { return ok_response("second copy"); });
      return;
    }
    if (!conn.read_request()) return;
    conn.write(ok_response("first"));
    conn.read_request();
  });
  auto client = make_test_client();

  REQUIRE(fetch(*client, short_request(server.url("/warm-up"))).ok());
  auto got = fetch(*client, short_request(server.url("/getUpdates")));
  REQUIRE(got.ok());
  CHECK(got->body == "second copy");
  const auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].target == "/getUpdates");
  CHECK(seen[2].target == "/getUpdates");
  CHECK(seen[2].connection == 1);
}

TEST_CASE("http client: a retry that fails again, or a reply cut short, is kUnavailable") {
  bool partial_reply = false;
  SUBCASE("the retry's fresh connection closes too") { partial_reply = false; }
  SUBCASE("reply bytes had arrived: no retry") { partial_reply = true; }
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (conn.index() == 0) {
      if (!conn.read_request()) return;
      conn.write(ok_response("first"));
    }
    if (!conn.read_request()) return;
    if (partial_reply) conn.write("HTTP/1.1 200 OK\r\nContent-Len");
  });  // returning closes the connection
  auto client = make_test_client();

  auto first = fetch(*client, short_request(server.url("/first")));
  REQUIRE(first.ok());
  auto second = fetch(*client, short_request(server.url("/second")));
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == StatusCode::kUnavailable);
  CHECK(server.connections_accepted() == (partial_reply ? 1 : 2));
}

TEST_CASE("http client: a fresh connection closed without a reply is kUnavailable") {
  RawHttpServer server;
  server.start([&](RawConnection& conn) { conn.read_request(); });
  auto client = make_test_client();

  auto got = fetch(*client, short_request(server.url("/x")));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CHECK(server.connections_accepted() == 1);
}

// --- Malformed replies and limits ---

TEST_CASE("http client: a truncated or malformed reply is kUnavailable") {
  std::string reply;
  bool hang_up = true;  // or keep the connection open until the client closes it
  SUBCASE("a Content-Length body cut short") {
    reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
  }
  SUBCASE("a chunked body cut short") {
    reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
  }
  SUBCASE("headers cut short") { reply = "HTTP/1.1 200 OK\r\nContent-Type: te"; }
  SUBCASE("a malformed status line") {
    reply = "HTTP/1.1 two hundred OK\r\nContent-Length: 0\r\n\r\n";
    hang_up = false;
  }
  SUBCASE("not HTTP at all") {
    reply = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    hang_up = false;
  }
  SUBCASE("a malformed chunk size") {
    reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    hang_up = false;
  }
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (!conn.read_request()) return;
    conn.write(reply);
    if (!hang_up) conn.wait_for_client_close(3s);
  });
  auto client = make_test_client();

  const auto started = std::chrono::steady_clock::now();
  auto got = fetch(*client, short_request(server.url("/x")));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  // Refused as soon as seen, not after a timeout.
  CHECK(std::chrono::steady_clock::now() - started < 1500ms);
}

TEST_CASE("http client: headers beyond max_header_bytes are kUnavailable") {
  std::string head;
  bool fits = false;
  SUBCASE("one long header line, never finished") {
    // curl's own limit for one line (100 KiB) ends this one; the option, the total.
    head = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(128 * 1024, 'a');
  }
  SUBCASE("many headers, a complete head") {
    head = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 100; ++i) head += "X-Header-" + std::to_string(i) + ": some value\r\n";
    head += "Content-Length: 2\r\n\r\nok";
  }
  SUBCASE("well under the limit") {
    head =
        "HTTP/1.1 200 OK\r\nX-Medium: " + std::string(500, 'm') + "\r\nContent-Length: 2\r\n\r\nok";
    fits = true;
  }
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (!conn.read_request()) return;
    conn.write(head);
    conn.wait_for_client_close(3s);
  });
  CurlHttpClientOptions options;
  options.max_header_bytes = 1024;
  auto client = make_test_client(options);

  const auto started = std::chrono::steady_clock::now();
  auto got = fetch(*client, short_request(server.url("/x")));
  if (fits) {
    REQUIRE(got.ok());
    CHECK(got->body == "ok");
    CHECK(got->header("X-Medium") == std::string(500, 'm'));
  } else {
    CAPTURE(got.ok() ? got->headers.size() : 0);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kUnavailable);
    CHECK(std::chrono::steady_clock::now() - started < 1500ms);
  }
}

TEST_CASE("http client: a body beyond max_body_bytes is kOutOfRange unless streamed") {
  const std::string big = pattern(5000);
  std::string reply;
  bool stream = false;
  bool fits = false;
  SUBCASE("Content-Length") { reply = ok_response(big); }
  SUBCASE("chunked") {
    reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::size_t at = 0; at < big.size(); at += 1000) {
      reply += "3e8\r\n" + big.substr(at, 1000) + "\r\n";
    }
    reply += "0\r\n\r\n";
  }
  SUBCASE("close-delimited") { reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big; }
  SUBCASE("streamed to on_body: not limited") {
    reply = ok_response(big);
    stream = true;
    fits = true;
  }
  SUBCASE("exactly the limit") {
    reply = ok_response(big.substr(0, 1000));
    fits = true;
  }
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    if (!conn.read_request()) return;
    conn.write(reply);
    conn.wait_for_client_close(3s);
  });
  std::string streamed;
  CurlHttpClientOptions options;
  options.max_body_bytes = 1000;
  auto client = make_test_client(options);

  HttpRequest r = short_request(server.url("/x"));
  if (stream) {
    r.on_body = [&](std::string_view piece) {
      streamed += piece;
      return true;
    };
  }
  auto got = fetch(*client, r);
  if (!fits) {
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kOutOfRange);
  } else if (stream) {
    REQUIRE(got.ok());
    CHECK(got->body.empty());
    CHECK(streamed == big);
  } else {
    REQUIRE(got.ok());
    CHECK(got->body == big.substr(0, 1000));
  }
}

// --- The request as sent ---

TEST_CASE("http client: the request on the wire has Host, User-Agent, lengths, headers, body") {
  RawHttpServer server;
  server.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest&) { return ok_response("ok"); });
  });
  auto client = make_test_client();

  HttpRequest plain = short_request(server.url("/path/to?q=1&r=two"));
  plain.headers = {
      {"X-First", "1"}, {"x-second", "two words"}, {"X-First", "3"}, {"Accept", "text/plain"}};
  REQUIRE(fetch(*client, plain).ok());

  const std::string binary = std::string("\0\r\n", 3) + "\xff\x01 body \r\n\r\nend";
  HttpRequest post = short_request(server.url("/submit"), "POST", binary);
  post.headers = {{"Content-Type", "application/octet-stream"}};
  REQUIRE(fetch(*client, post).ok());

  REQUIRE(fetch(*client, short_request(server.url("/empty"), "POST")).ok());

  HttpRequest own_agent = short_request(server.url("/agent"));
  own_agent.headers = {{"User-Agent", "mine/1.0"}};
  REQUIRE(fetch(*client, own_agent).ok());

  REQUIRE(fetch(*client, short_request(server.url("/put"), "PUT", "x")).ok());

  CurlHttpClientOptions options;
  options.user_agent = "custom-agent/2";
  auto custom = make_test_client(options);
  REQUIRE(fetch(*custom, short_request(server.url("/custom"))).ok());

  auto seen = server.requests();
  REQUIRE(seen.size() == 6);
  for (const auto& req : seen) {
    CAPTURE(req.head);
    CHECK(req.version == "HTTP/1.1");
    CHECK(req.count_headers("Host") == 1);
    CHECK(req.header("Host") == server.authority());
    CHECK(req.count_headers("User-Agent") == 1);
    CHECK(req.count_headers("Transfer-Encoding") == 0);
  }

  const RawRequest& got_plain = seen[0];
  CHECK(got_plain.head.starts_with("GET /path/to?q=1&r=two HTTP/1.1\r\n"));
  CHECK(std::string(got_plain.header("User-Agent").value_or("")).starts_with("llmassist/"));
  HttpHeaders custom_headers;
  for (const auto& h : got_plain.headers) {
    if (lower(h.first).starts_with("x-") || lower(h.first) == "accept") custom_headers.push_back(h);
  }
  CHECK(custom_headers == plain.headers);
  CHECK(got_plain.body.empty());

  const RawRequest& got_post = seen[1];
  CHECK(got_post.method == "POST");
  CHECK(got_post.target == "/submit");
  CHECK(got_post.header("Content-Length") == std::to_string(binary.size()));
  CHECK(got_post.header("Content-Type") == "application/octet-stream");
  CHECK(got_post.body == binary);

  const RawRequest& got_empty = seen[2];
  CHECK(got_empty.method == "POST");
  CHECK(got_empty.header("Content-Length") == "0");
  CHECK(got_empty.body.empty());

  CHECK(seen[3].header("User-Agent") == "mine/1.0");

  CHECK(seen[4].method == "PUT");
  CHECK(seen[4].header("Content-Length") == "1");
  CHECK(seen[4].body == "x");

  CHECK(seen[5].header("User-Agent") == "custom-agent/2");

  // The first client's five requests shared one connection.
  for (int i = 0; i < 5; ++i) CHECK(seen[i].connection == seen[0].connection);
  CHECK(server.connections_accepted() == 2);
}

// --- TLS ---

TEST_CASE("http client: https to localhost with the test CA succeeds and reuses the connection") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  CurlHttpClientOptions options;
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);

  auto first = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(first.ok());
  CHECK(first->status == 200);
  CHECK(first->body == "hello over tls");
  auto second = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(second.ok());
  CHECK(second->body == "hello over tls");
  CHECK(second->header("X-Remote-Port") == first->header("X-Remote-Port"));
  CHECK(server.connections() == 1);
}

TEST_CASE("http client: https to 127.0.0.1 is verified against the certificate's IP address") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  CurlHttpClientOptions options;
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);

  auto got = fetch(*client, short_request(server.url("127.0.0.1", "/hello")));
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "hello over tls");
}

TEST_CASE("http client: an https server that fails verification is kUnavailable") {
  TlsTestCertificates certs;
  CurlHttpClientOptions options;
  std::string cert_file = certs.cert_file();
  std::string key_file = certs.key_file();
  bool says_certificate = true;
  SUBCASE("signed by a CA the client does not trust") { options.ca_file = certs.other_ca_file(); }
  SUBCASE("not in the system's CA store") {}
  SUBCASE("issued for another host name") {
    options.ca_file = certs.ca_file();
    cert_file = certs.wrong_name_cert_file();
    key_file = certs.wrong_name_key_file();
    says_certificate = false;  // the message may name the host-name mismatch instead
  }
  TlsServer server(cert_file, key_file);
  auto client = make_test_client(options);

  auto got = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CAPTURE(got.status().message());
  if (says_certificate) {
    CHECK(lower(got.status().message()).find("certificate") != std::string::npos);
  }
}

TEST_CASE("http client: with verify_tls off, https accepts a certificate it cannot verify") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  CurlHttpClientOptions options;
  options.verify_tls = false;
  auto client = make_test_client(options);

  auto got = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "hello over tls");
}

TEST_CASE("http client: a 1 MiB body goes over TLS and comes back whole") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  CurlHttpClientOptions options;
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);

  const std::string body = pattern(std::size_t{1} << 20);
  HttpRequest post = short_request(server.url("localhost", "/echo"), "POST", body);
  post.headers = {{"Content-Type", "application/octet-stream"}};
  auto got = fetch(*client, post, 10s);
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body.size() == body.size());
  CHECK(got->body == body);
}

TEST_CASE("http client: an idle TLS connection the server closed is replaced") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file(), 1s);  // closes idle connections after 1 s
  CurlHttpClientOptions options;
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);

  auto first = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(first.ok());
  std::this_thread::sleep_for(1300ms);
  auto second = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(second.ok());
  CHECK(second->body == "hello over tls");
  CHECK(server.connections() == 2);
}

// --- Proxies ---

TEST_CASE("http client: plain http through a proxy is sent to it in absolute form") {
  RawHttpServer proxy;
  proxy.start([&](RawConnection& conn) {
    serve_each(conn,
               [](const RawRequest&) { return ok_response("from proxy", "X-Via: test\r\n"); });
  });
  CurlHttpClientOptions options;
  options.proxy = "http://" + proxy.authority();
  auto client = make_test_client(options);

  auto got = fetch(*client, short_request("http://example.invalid/x"));
  REQUIRE(got.ok());
  CHECK(got->status == 200);
  CHECK(got->body == "from proxy");
  CHECK(got->header("X-Via") == "test");

  auto with_port = fetch(*client, short_request("http://example.invalid:8080/y?z=1"));
  REQUIRE(with_port.ok());

  auto seen = proxy.requests();
  REQUIRE(seen.size() == 2);
  CAPTURE(seen[0].head);
  CHECK(seen[0].head.starts_with("GET http://example.invalid/x HTTP/1.1\r\n"));
  CHECK(seen[0].header("Host") == "example.invalid");
  CHECK(seen[1].target == "http://example.invalid:8080/y?z=1");
  CHECK(seen[1].header("Host") == "example.invalid:8080");
}

// Sets an environment variable for the life of the object, and puts back what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_CASE("http client: the environment's proxy serves all but the hosts no_proxy names") {
  RawHttpServer proxy;
  proxy.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest&) { return ok_response("from proxy"); });
  });
  RawHttpServer direct;
  direct.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest&) { return ok_response("direct"); });
  });
  const ScopedEnv http_proxy("http_proxy", "http://" + proxy.authority());
  const ScopedEnv no_proxy("no_proxy", "skip.invalid,127.0.0.1");
  CurlHttpClientOptions options;
  options.logger = null_logger();  // proxy left empty: the environment's
  auto made = make_curl_http_client(options);
  REQUIRE(made.ok());
  auto& client = **made;

  auto proxied = fetch(client, short_request("http://example.invalid/x"));
  REQUIRE(proxied.ok());
  CHECK(proxied->body == "from proxy");
  // no_proxy names the address.
  auto loopback = fetch(client, short_request("http://" + direct.authority() + "/y"));
  REQUIRE(loopback.ok());
  CHECK(loopback->body == "direct");
  // no_proxy names the domain: its hosts go direct (and, being .invalid, do not resolve; on a
  // machine whose resolver does not answer, the connect timeout ends it instead). curl matches
  // names case-insensitively, subdomains included.
  auto skipped = fetch(client, short_request("http://www.skip.invalid/z"));
  CHECK_FALSE(skipped.ok());

  const auto seen = proxy.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].target == "http://example.invalid/x");
}

TEST_CASE("http client: a malformed proxy is refused when the client is made") {
  CurlHttpClientOptions options;
  options.logger = null_logger();
  for (const char* bad : {"127.0.0.1:3128", "ftp://127.0.0.1:21", "http://", "socks5://a b:1"}) {
    CAPTURE(bad);
    options.proxy = bad;
    auto made = make_curl_http_client(options);
    REQUIRE_FALSE(made.ok());
    CHECK(made.status().code() == StatusCode::kInvalidArgument);
  }
  options.proxy = "ftp://user:secret@127.0.0.1:3128";
  auto made = make_curl_http_client(options);
  REQUIRE_FALSE(made.ok());
  CHECK(made.status().message().find("secret") == std::string::npos);
  for (const char* good : {"http://127.0.0.1:3128", "socks5://127.0.0.1:1080",
                           "socks5h://u:p@127.0.0.1:1080", "https://proxy.invalid"}) {
    CAPTURE(good);
    options.proxy = good;
    CHECK(make_curl_http_client(options).ok());
  }
}

TEST_CASE("http client: https through a proxy tunnels with CONNECT") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  RawHttpServer proxy;
  proxy.start([&](RawConnection& conn) {
    auto req = conn.read_request();
    if (!req || req->method != "CONNECT") return;
    conn.write("HTTP/1.1 200 Connection established\r\n\r\n");
    conn.relay_to(server.port());
  });
  CurlHttpClientOptions options;
  options.proxy = "http://" + proxy.authority();
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);

  auto first = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(first.ok());
  CHECK(first->status == 200);
  CHECK(first->body == "hello over tls");
  auto second = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(second.ok());
  CHECK(second->body == "hello over tls");

  const std::string target = "localhost:" + std::to_string(server.port());
  auto seen = proxy.requests();
  REQUIRE(seen.size() == 1);  // the tunnel was kept and reused
  CHECK(seen[0].head.starts_with("CONNECT " + target + " HTTP/1.1\r\n"));
  CHECK(seen[0].header("Host") == target);
  CHECK(proxy.connections_accepted() == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("http client: a proxy refusing CONNECT is kUnavailable and names the proxy") {
  RawHttpServer proxy;
  proxy.start([&](RawConnection& conn) {
    if (!conn.read_request()) return;
    conn.write(
        "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\n"
        "Content-Length: 0\r\n\r\n");
    conn.wait_for_client_close(3s);
  });
  CurlHttpClientOptions options;
  options.proxy = "http://" + proxy.authority();
  auto client = make_test_client(options);

  auto got = fetch(*client, short_request("https://localhost:9/hello"));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kUnavailable);
  CAPTURE(got.status().message());
  CHECK(lower(got.status().message()).find("proxy") != std::string::npos);
  auto seen = proxy.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "CONNECT");
}

namespace {

// "user:password" of the proxies below: a password with characters that a URL must
// percent-encode, to show that curl decodes it and that neither form leaks.
constexpr std::string_view kProxyUser = "alice";
constexpr std::string_view kProxyPassword = "p@ss:w0rd!";
constexpr std::string_view kProxyPasswordEncoded = "p%40ss%3Aw0rd%21";
// base64("alice:p@ss:w0rd!")
constexpr std::string_view kProxyBasic = "Basic YWxpY2U6cEBzczp3MHJkIQ==";

std::string proxy_url(std::string_view scheme, int port, std::string_view password) {
  return std::string(scheme) + "://" + std::string(kProxyUser) + ":" + std::string(password) +
         "@127.0.0.1:" + std::to_string(port);
}

// An HTTP proxy that demands kProxyBasic: requests in absolute form are answered by the proxy
// itself, CONNECT is tunnelled to `tunnel_port`; anything without the right credentials is 407.
void serve_authenticating_proxy(RawConnection& conn, int tunnel_port) {
  while (auto req = conn.read_request()) {
    if (req->header("Proxy-Authorization") != kProxyBasic) {
      if (!conn.write("HTTP/1.1 407 Proxy Authentication Required\r\n"
                      "Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")) {
        return;
      }
      continue;
    }
    if (req->method == "CONNECT") {
      conn.write("HTTP/1.1 200 Connection established\r\n\r\n");
      conn.relay_to(tunnel_port);
      return;
    }
    if (!conn.write(ok_response("via proxy " + req->target))) return;
  }
}

// Neither form of the password in `text`.
void check_no_password(std::string_view text) {
  CAPTURE(text);
  CHECK(text.find(kProxyPassword) == std::string_view::npos);
  CHECK(text.find(kProxyPasswordEncoded) == std::string_view::npos);
  CHECK(text.find("w0rd") == std::string_view::npos);
}

}  // namespace

TEST_CASE("http client: an authenticated http proxy, absolute form and CONNECT") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  RawHttpServer proxy;
  proxy.start([&](RawConnection& conn) { serve_authenticating_proxy(conn, server.port()); });
  auto logger = std::make_shared<llmassist::testing::CapturingLogger>();
  CurlHttpClientOptions options;
  options.proxy = proxy_url("http", proxy.port(), kProxyPasswordEncoded);
  options.ca_file = certs.ca_file();
  options.logger = logger;
  auto client = make_test_client(options);

  auto plain = fetch(*client, short_request("http://example.invalid/x"));
  REQUIRE(plain.ok());
  CHECK(plain->body == "via proxy http://example.invalid/x");
  auto tls = fetch(*client, short_request(server.url("localhost", "/hello")));
  REQUIRE(tls.ok());
  CHECK(tls->body == "hello over tls");
  auto seen = proxy.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].method == "CONNECT");

  SUBCASE("a wrong password: kUnavailable, and the password nowhere") {
    CurlHttpClientOptions wrong = options;
    const std::string bad_password = "n0t-the-w0rd";
    wrong.proxy = proxy_url("http", proxy.port(), bad_password);
    auto bad = make_test_client(wrong);
    for (const std::string url : {"https://localhost:9/hello", "http://example.invalid/y"}) {
      auto got = fetch(*bad, short_request(url));
      if (got.ok()) {
        CHECK(got->status == 407);  // a plain request: the proxy's reply is the response
        continue;
      }
      CHECK(got.status().code() == StatusCode::kUnavailable);
      check_no_password(got.status().message());
      CHECK(got.status().message().find(bad_password) == std::string::npos);
    }
    const auto lines = logger->lines();
    CHECK_FALSE(lines.empty());  // the failure was logged...
    for (const auto& line : lines) {
      check_no_password(line);  // ...without the password
      CHECK(line.find(bad_password) == std::string::npos);
    }
  }
}

TEST_CASE("http client: socks5:// resolves names itself, socks5h:// lets the proxy resolve them") {
  RawHttpServer upstream;
  upstream.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest& req) { return ok_response("upstream " + req.target); });
  });
  llmassist::testing::Socks5Server socks{std::string(kProxyUser), std::string(kProxyPassword)};
  auto logger = std::make_shared<llmassist::testing::CapturingLogger>();
  const std::string target = "http://localhost:" + std::to_string(upstream.port()) + "/x";

  // Fetches `target` through the proxy as `scheme`; what the proxy was asked to connect to.
  auto connect_asked = [&](std::string_view scheme) {
    CurlHttpClientOptions options;
    options.proxy = proxy_url(scheme, socks.port(), kProxyPasswordEncoded);
    auto client = make_test_client(options);
    auto got = fetch(*client, short_request(target));
    REQUIRE(got.ok());
    CHECK(got->body == "upstream /x");
    const auto asked = socks.connects();
    REQUIRE(asked.size() == 1);
    CHECK(asked[0].port == upstream.port());
    return asked[0];
  };
  SUBCASE("socks5h://") {
    const auto asked = connect_asked("socks5h");
    CHECK(asked.address_type == 0x03);  // a domain name
    CHECK(asked.host == "localhost");
  }
  SUBCASE("socks5://") {
    const auto asked = connect_asked("socks5");
    CHECK(asked.address_type != 0x03);  // an address, resolved by the client
    CHECK((asked.host == "127.0.0.1" || asked.host == "::1"));
  }
  SUBCASE("https through socks5h://") {
    TlsTestCertificates certs;
    TlsServer server(certs.cert_file(), certs.key_file());
    CurlHttpClientOptions options;
    options.proxy = proxy_url("socks5h", socks.port(), kProxyPasswordEncoded);
    options.ca_file = certs.ca_file();
    auto client = make_test_client(options);
    auto got = fetch(*client, short_request(server.url("localhost", "/hello")));
    REQUIRE(got.ok());
    CHECK(got->body == "hello over tls");
  }
  SUBCASE("a wrong password: kUnavailable, and the password nowhere") {
    CurlHttpClientOptions options;
    options.proxy = proxy_url("socks5h", socks.port(), "n0t-the-w0rd");
    options.logger = logger;
    auto client = make_test_client(options);
    auto got = fetch(*client, short_request(target));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kUnavailable);
    CHECK(socks.refused() == 1);
    CHECK(got.status().message().find("n0t-the-w0rd") == std::string::npos);
    const auto lines = logger->lines();
    CHECK_FALSE(lines.empty());
    for (const auto& line : lines) CHECK(line.find("n0t-the-w0rd") == std::string::npos);
  }
}

TEST_CASE(
    "http client: the environment's HTTPS_PROXY, ALL_PROXY and NO_PROXY, as curl reads them") {
  TlsTestCertificates certs;
  TlsServer server(certs.cert_file(), certs.key_file());
  RawHttpServer http_proxy;
  http_proxy.start([&](RawConnection& conn) { serve_authenticating_proxy(conn, server.port()); });
  llmassist::testing::Socks5Server socks{std::string(kProxyUser), std::string(kProxyPassword)};
  RawHttpServer upstream;
  upstream.start([&](RawConnection& conn) {
    serve_each(conn, [](const RawRequest& req) { return ok_response("upstream " + req.target); });
  });
  const ScopedEnv https_proxy("HTTPS_PROXY",
                              proxy_url("http", http_proxy.port(), kProxyPasswordEncoded));
  const ScopedEnv all_proxy("ALL_PROXY", proxy_url("socks5h", socks.port(), kProxyPasswordEncoded));
  const ScopedEnv no_proxy("NO_PROXY", "127.0.0.1");
  auto logger = std::make_shared<llmassist::testing::CapturingLogger>();
  CurlHttpClientOptions options;
  options.logger = logger;  // proxy left empty: the environment's
  options.ca_file = certs.ca_file();
  auto made = make_curl_http_client(options);
  REQUIRE(made.ok());
  auto& client = **made;

  // https: HTTPS_PROXY, tunnelled.
  auto tls = fetch(client, short_request(server.url("localhost", "/hello")));
  REQUIRE(tls.ok());
  CHECK(tls->body == "hello over tls");
  REQUIRE(http_proxy.requests().size() == 1);
  CHECK(http_proxy.requests()[0].method == "CONNECT");
  // http, with no http_proxy: ALL_PROXY.
  const std::string port = std::to_string(upstream.port());
  auto via_socks = fetch(client, short_request("http://localhost:" + port + "/s"));
  REQUIRE(via_socks.ok());
  CHECK(via_socks->body == "upstream /s");
  REQUIRE(socks.connects().size() == 1);
  CHECK(socks.connects()[0].host == "localhost");
  // NO_PROXY names 127.0.0.1: direct.
  auto direct = fetch(client, short_request("http://127.0.0.1:" + port + "/d"));
  REQUIRE(direct.ok());
  CHECK(direct->body == "upstream /d");
  CHECK(socks.connects().size() == 1);
  CHECK(http_proxy.requests().size() == 1);
  // A failure through the environment's proxy names no password either.
  auto refused = fetch(client, short_request("http://localhost:9/nothing"));
  REQUIRE_FALSE(refused.ok());
  check_no_password(refused.status().message());
  for (const auto& line : logger->lines()) check_no_password(line);
}

// --- HTTP/2 ---

TEST_CASE("http client: HTTP/2 over TLS, concurrent requests multiplexed on one connection") {
  const char* nghttpd = "/usr/sbin/nghttpd";
  if (::access(nghttpd, X_OK) != 0) {
    MESSAGE("HTTP/2 test skipped: nghttpd (Debian's nghttp2-server) is not installed");
    return;
  }
  TlsTestCertificates certs;
  llmassist::testing::TempDir docs;
  {
    std::FILE* f = std::fopen((docs.path() / "hello.txt").c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("hello over h2", f);
    std::fclose(f);
  }
  const int port = free_port();
  const std::string log = (docs.path() / "nghttpd.log").string();
  const pid_t pid = llmassist::testing::spawn(
      {nghttpd, "-v", "--address=127.0.0.1", "--echo-upload", "-d", docs.path().string(),
       std::to_string(port), certs.key_file(), certs.cert_file()},
      log);
  REQUIRE(pid > 0);
  bool stopped = false;
  auto stop_server = [&] {
    if (std::exchange(stopped, true)) return;
    ::kill(pid, SIGTERM);
    llmassist::testing::wait_exit(pid);
  };
  struct StopAtExit {
    std::function<void()> stop;
    ~StopAtExit() { stop(); }
  } stop_at_exit{stop_server};
  CurlHttpClientOptions options;
  options.ca_file = certs.ca_file();
  auto client = make_test_client(options);
  const std::string url = "https://localhost:" + std::to_string(port) + "/hello.txt";
  REQUIRE(
      llmassist::testing::eventually([&] { return fetch(*client, short_request(url)).ok(); }, 10s));

  constexpr int kRequests = 20;
  std::vector<Pending> pending(kRequests);
  for (auto& p : pending) client->send(short_request(url), p.callback());
  for (auto& p : pending) {
    auto got = p.get();
    REQUIRE(got.ok());
    CHECK(got->status == 200);
    CHECK(got->body == "hello over h2");
  }
  HttpRequest post = short_request(url, "POST", "echo me");
  auto echoed = fetch(*client, post);
  REQUIRE(echoed.ok());
  CHECK(echoed->body == "echo me");

  // nghttpd -v logs each frame as "[id=<session>] ... stream_id=<n>": all the requests, on
  // streams of one session (connection).
  stop_server();
  std::ifstream in(log);
  std::string line;
  std::set<std::string> sessions;
  std::set<std::string> streams;
  while (std::getline(in, line)) {
    if (line.find("recv HEADERS frame") == std::string::npos) continue;
    if (const auto at = line.find("[id="); at != std::string::npos) {
      sessions.insert(line.substr(at, line.find(']', at) - at));
    }
    if (const auto at = line.find("stream_id="); at != std::string::npos) {
      streams.insert(line.substr(at, line.find_first_of(">,", at) - at));
    }
  }
  CHECK(sessions.size() == 1);
  CHECK(streams.size() >= kRequests);
}
