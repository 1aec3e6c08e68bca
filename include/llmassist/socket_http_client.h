// The library's HttpClient: HTTP/1.1 over non-blocking sockets and epoll, with OpenSSL for
// https. One I/O thread per client drives every exchange, so thousands of requests can wait on
// slow servers at once without a thread each. Connections are kept alive and reused across
// requests to the same origin (scheme, host and port).
//
// What it speaks: HTTP/1.1 (and HTTP/1.0 replies); bodies framed by Content-Length, by chunked
// transfer coding, or by the server closing the connection; interim 1xx replies are skipped.
// No HTTP/2, no compression (requests do not offer any), no redirects (a 3xx is a response like
// any other), no cookies. A request sent on a kept-alive connection that the server had closed
// meanwhile is sent again, once, on a new connection.
//
// TLS: OpenSSL is set up on the first https request, not before: a client that only speaks
// plain HTTP (a local Bot API server, a local Ollama) never loads certificates or TLS state.
// The server's certificate chain and host name are verified against the system's CA store (or
// `ca_file`); SNI is sent.
//
// Proxies: `proxy` for every request, or else the environment's: https_proxy (or HTTPS_PROXY)
// and http_proxy (lower case only, as curl: a CGI request can set HTTP_PROXY), except for the
// hosts no_proxy (or NO_PROXY) names and for loopback hosts (localhost, 127.x.x.x, ::1). An
// http:// proxy without a user name: https requests tunnel through it with CONNECT, plain http
// requests are sent to it in absolute form.
//
// Name resolution: numeric hosts at once; names through getaddrinfo() on a helper thread
// (started on the first name), with each answer kept for a minute.
//
// Thread-safety: as HttpClient.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct SocketHttpClientOptions {
  // Open connections allowed to one origin; further requests wait for a free one. 0 = no
  // limit. Default: 0.
  int max_connections_per_host = 0;
  // Open connections allowed in total. 0 = no limit. Default: 0.
  int max_total_connections = 0;
  // Idle connections kept for reuse; beyond it the longest idle one is closed. Default: 1,024.
  int max_idle_connections = 1024;
  // An idle connection unused for this long is closed. Default: 60 s.
  std::chrono::milliseconds idle_connection_lifetime{std::chrono::seconds(60)};
  // A response body that would grow beyond this while being accumulated fails the request with
  // kOutOfRange (streamed bodies are not limited). Default: 64 MiB.
  std::size_t max_body_bytes = std::size_t{64} << 20;
  // Response headers larger than this fail the request with kUnavailable. Default: 256 KiB.
  std::size_t max_header_bytes = std::size_t{256} << 10;
  // Sent as User-Agent unless the request has one. Default: "llmassist/<version>".
  std::string user_agent;
  // Verify the server's TLS certificate and host name. Turn off only for tests. Default: true.
  bool verify_tls = true;
  // A file of CA certificates (PEM) to trust instead of the system's; empty = the system's.
  std::string ca_file;
  // "http://host:port" of a proxy for every request; empty = the environment's (see above);
  // "direct" = none, whatever the environment says.
  std::string proxy;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// Creates a client and starts its I/O thread. Errors: kInvalidArgument for negative limits or a
// malformed proxy, kInternal when the I/O thread's descriptors cannot be made.
[[nodiscard]] Result<std::unique_ptr<HttpClient>> make_socket_http_client(
    const SocketHttpClientOptions& options = {});

}  // namespace llmassist
