// HttpClient: outbound HTTP for the parts that talk to remote APIs (LLM providers, Telegram).
//
// Requests are asynchronous: send() hands a request to the client and returns at once; the
// `done` callback later receives the response or the transport error. A response body can be
// streamed to a callback as it arrives (SSE, NDJSON) instead of being accumulated.
//
// Errors follow one rule: a transport failure is a non-OK Status; an HTTP status, even 4xx or
// 5xx, is not a transport failure and arrives as an OK Result whose HttpResponse carries it, so
// that each caller maps statuses to its own meaning (a 429 with Retry-After, a 401 bad key).
//
// Thread-safety: send() may be called from many threads at once, including from inside a
// `done`, body or headers callback. The callbacks of all requests run on the client's single
// I/O thread, one at a time: they must return quickly, must not throw, and must not block on
// another request of the same client (send_sync() from a callback deadlocks). A callback may
// drop the last owner of the client (and of what owns it): the client then finishes on its I/O
// thread once that callback returns, completing what is left with kCancelled.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmassist/cancellation.h"
#include "llmassist/export.h"
#include "llmassist/status.h"

namespace llmassist {

// Header fields in the order sent or received; names keep their original spelling.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The value of the first header named `name`, compared case-insensitively; empty when absent.
[[nodiscard]] LLMASSIST_API std::optional<std::string_view> find_header(
    const HttpHeaders& headers, std::string_view name) noexcept;

struct LLMASSIST_API HttpResponse {
  // The final HTTP status (interim 1xx responses are skipped).
  int status = 0;
  // The final response's headers.
  HttpHeaders headers;
  // The body; empty when HttpRequest::on_body was set (the chunks went there instead).
  std::string body;
  // From send() to the end of the transfer.
  std::chrono::microseconds total_time{0};
  // From send() to the arrival of the complete response headers.
  std::chrono::microseconds time_to_first_byte{0};

  // find_header(headers, name).
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
};

// One part of a multipart/form-data body (HttpRequest::form): a value, or a file read from disk.
struct LLMASSIST_API HttpFormPart {
  // The field's name. Required.
  std::string name;
  // The part's bytes, sent as is; only when `file_path` is empty.
  std::string value;
  // A local file whose bytes are the part, read while the request is sent; empty: a value part.
  std::string file_path;
  // The filename the part is labelled with. Default (empty): the last segment of `file_path`
  // for a file, none for a value (setting one makes a value an uploaded file of those bytes).
  std::string file_name;
  // The part's Content-Type. Default (empty): application/octet-stream for a part with a
  // filename, none for a plain value.
  std::string content_type;
};

struct LLMASSIST_API HttpRequest {
  // "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", ... Default: GET.
  std::string method = "GET";
  // An absolute http:// or https:// URL. Other schemes are refused with kInvalidArgument.
  std::string url;
  // Extra request headers. Values must not contain CR or LF (kInvalidArgument).
  HttpHeaders headers;
  // The request body, sent as is (set Content-Type in `headers`).
  std::string body;
  // When not empty, the body is these parts as multipart/form-data, and the client sets the
  // Content-Type with its boundary. `body` must then be empty, the method one that carries a
  // body (not GET or HEAD), `headers` must not set Content-Type, and no name, filename or
  // content type may hold CR, LF or NUL (kInvalidArgument otherwise). Every file is opened
  // before anything is sent: one that cannot be read, or that is not a regular file, fails the
  // request with kInvalidArgument naming its path. Files are read as the body goes out, never
  // held in memory whole.
  std::vector<HttpFormPart> form;

  // Each timeout is measured on its own clock; zero disables it (for the connect timeout: falls
  // back to 300 s).
  // Establishing the TCP (and TLS) connection. Default: 10 s.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // From send() until the complete response headers have arrived: covers waiting for a free
  // connection, connecting, sending, and the server's think time (an LLM's time to first token).
  // Default: 120 s.
  std::chrono::milliseconds first_byte_timeout{std::chrono::seconds(120)};
  // The whole exchange, from send() to the last byte of the body. Default: none (0), because a
  // stream may legitimately run long; the idle timeout catches a stalled one.
  std::chrono::milliseconds total_timeout{0};
  // After the headers: the longest gap between two pieces of the body. Default: 60 s.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};

  // Cancels the request when cancelled: the transfer stops, its connection is closed, and
  // `done` receives kCancelled. Optional.
  std::shared_ptr<CancelToken> cancel;

  // Called once when the final response headers have arrived, before any body. Returning false
  // cancels the request (kCancelled). Optional; runs on the I/O thread.
  std::function<bool(const HttpResponse& head)> on_headers;
  // Streams the body: called with each piece as it arrives, in order. Returning false cancels
  // the request (kCancelled). When set, HttpResponse::body stays empty. Optional; runs on the
  // I/O thread.
  std::function<bool(std::string_view chunk)> on_body;

  // How the request is named in error messages and logs. Default (empty): the URL reduced to
  // scheme://host:port/path, without user info, query or fragment, and with every path segment
  // that contains ':' (such as Telegram's bot<id>:<token>) replaced by "<redacted>". Set it when
  // the path itself carries a secret of another shape.
  std::string redacted_url;
};

// What `done` receives: the response (any HTTP status), or a transport error:
//   kUnavailable       connection refused or reset, DNS failure, TLS failure, the server closed
//                      the connection early: transient, retry or fall back. Reason
//                      "not_resent": a kept-alive connection closed after a non-idempotent
//                      request (POST, PATCH) was written to it, and the client did not send
//                      it again, since the server may have acted on it; the caller decides;
//   kDeadlineExceeded  one of the timeouts passed; the message names it ("connect timeout",
//                      "first-byte timeout", "idle timeout", "total timeout");
//   kCancelled         the CancelToken, a callback returning false, or the client's destruction;
//   kInvalidArgument   a malformed request (URL, scheme, method, header, form), or a form file
//                      that cannot be read (before sending, or while sending: it changed);
//   kOutOfRange        the accumulated body outgrew the client's limit.
// Messages name the request by its redacted URL only: never a query string or a header value.
using HttpCallback = std::function<void(Result<HttpResponse>)>;

class LLMASSIST_API HttpClient {
 public:
  HttpClient() = default;
  virtual ~HttpClient() = default;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts `request` and returns at once. `done` is called exactly once, on the I/O thread, with
  // the outcome. Destroying the client completes every unfinished request with kCancelled
  // before the destructor returns (when destroyed from one of its own callbacks: right after
  // that callback returns); send() must not race with the destructor (a `done` running
  // during destruction may still send, and that request is cancelled too).
  virtual void send(HttpRequest request, HttpCallback done) = 0;
};

// Sends `request` and blocks until its outcome. Must not be called on `client`'s I/O thread
// (from inside one of its callbacks): it would wait for itself.
[[nodiscard]] LLMASSIST_API Result<HttpResponse> send_sync(HttpClient& client, HttpRequest request);

}  // namespace llmassist
