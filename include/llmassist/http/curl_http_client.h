// The library's HttpClient, over libcurl. One I/O thread per client drives every transfer through
// curl's multi interface (curl_multi_socket_action over epoll), so thousands of requests can wait
// on slow servers at once without a thread each. Connections are kept alive and reused across
// requests to the same host; over https, HTTP/2 is used where the server offers it, and requests
// to one host share its connection (multiplexing).
//
// What curl does and this client leaves to it: HTTP/1.1 and HTTP/2 framing, interim 1xx replies
// (skipped), TLS with the server's certificate chain and host name verified (OpenSSL, the system's
// CA store or `ca_file`), name resolution, and proxies. No redirects are followed (a 3xx is a
// response like any other), no cookies are kept, no compression is offered.
//
// Proxies: `proxy` for every request, or else the environment's, exactly as curl reads it:
// http_proxy (lower case only: a CGI request can set HTTP_PROXY), https_proxy or HTTPS_PROXY,
// all_proxy or ALL_PROXY, except for the hosts no_proxy or NO_PROXY names. A proxy is an http://
// or https:// URL (https requests tunnel through it with CONNECT, plain http requests are sent to
// it in absolute form), socks4://, socks4a://, socks5:// (names resolved here) or socks5h://
// (names resolved by the proxy); user name and password go in the URL ("http://user:pass@host:
// 3128"), percent-encoded where needed. A proxy's password (from the options or the environment)
// never appears in a log line or an error message.
//
// A request that is not idempotent (POST, PATCH, anything but GET, HEAD, OPTIONS, TRACE, PUT and
// DELETE) is sent at most once: curl would send it again on a fresh connection when a kept-alive
// one closes without a reply, though the server may have acted on it; this client fails it with
// kUnavailable instead. Idempotent requests may be sent again by curl in that case.
//
// Process-wide effect: the first client created in a process calls curl_global_init() once
// (guarded by std::call_once); curl_global_cleanup() is never called, since another client or
// another library in the process may still use curl. Clients themselves share nothing.
//
// Thread-safety: as HttpClient.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "llmassist/export.h"
#include "llmassist/http_client.h"
#include "llmassist/logger.h"
#include "llmassist/status.h"

namespace llmassist {

struct LLMASSIST_API CurlHttpClientOptions {
  // Open connections allowed to one host (scheme, name and port); further requests wait in a
  // queue for a free one. 0 = no limit. Default: 0.
  int max_connections_per_host = 0;
  // Open connections allowed in total. 0 = no limit. Default: 0.
  int max_total_connections = 0;
  // Idle connections kept for reuse (CURLMOPT_MAXCONNECTS). 0 = curl's default, four times the
  // number of transfers in flight at the moment, which closes connections whenever a burst ebbs
  // and opens them again for the next one. Default: 1,024.
  int max_idle_connections = 1024;
  // A kept-alive connection idle for longer than this is not reused (CURLOPT_MAXAGE_CONN).
  // Default: 60 s.
  std::chrono::seconds idle_connection_lifetime{60};
  // Finished easy handles kept for the next requests. Default: 64.
  int max_cached_handles = 64;
  // The buffer each transfer in flight receives into (CURLOPT_BUFFERSIZE; curl's own default is
  // 16 KiB). A larger body is read in more pieces, not refused. An LLM or Telegram answer is a
  // few KiB, and with a thousand requests waiting on a slow model the buffers would be most of
  // the client's memory. Clamped to curl's range (1 KiB to 10 MiB). Default: 4 KiB.
  std::size_t receive_buffer_bytes = 4096;
  // A response body that would grow beyond this while being accumulated fails the request with
  // kOutOfRange (streamed bodies are not limited). Default: 64 MiB.
  std::size_t max_body_bytes = std::size_t{64} << 20;
  // Response headers larger than this in total fail the request with kUnavailable (curl itself
  // refuses a single header line over 100 KiB). Default: 256 KiB.
  std::size_t max_header_bytes = std::size_t{256} << 10;
  // Offer HTTP/2 over https (ALPN) and multiplex requests to one host over one connection.
  // Plain http is always HTTP/1.1. Default: true.
  bool http2 = true;
  // Sent as User-Agent unless the request has one. Default: "llmassist/<version>".
  std::string user_agent;
  // Verify the server's (and an https proxy's) TLS certificate and host name. Turn off only for
  // tests. Default: true.
  bool verify_tls = true;
  // A file of CA certificates (PEM) to trust instead of the system's (CURLOPT_CAINFO). Empty: the
  // file the environment's SSL_CERT_FILE names, if set, else the system's store. Default: empty.
  std::string ca_file;
  // The proxy for every request (see above: "http://[user:password@]host:port", "socks5h://...");
  // empty = the environment's; "direct" = none, whatever the environment says. Default: empty.
  std::string proxy;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// Creates a client and starts its I/O thread. Errors: kInvalidArgument for negative limits or a
// malformed or unsupported proxy URL, kInternal when curl or the I/O thread's descriptors cannot
// be set up.
[[nodiscard]] LLMASSIST_API Result<std::unique_ptr<HttpClient>> make_curl_http_client(
    const CurlHttpClientOptions& options = {});

}  // namespace llmassist
