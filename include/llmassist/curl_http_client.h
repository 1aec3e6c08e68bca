// The libcurl HttpClient: one I/O thread per client drives every transfer through curl's multi
// interface, so thousands of requests can wait on slow servers at once without a thread each.
// Connections are kept alive and reused across requests to the same host (HTTP/2 multiplexing
// over TLS when the server offers it).
//
// Process-wide effect: the first client created in a process calls curl_global_init() once
// (guarded by std::call_once); curl_global_cleanup() is never called, since another client or
// another library in the process may still use curl. This is the library's only process-wide
// state; clients themselves share nothing.
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

struct CurlHttpClientOptions {
  // Open connections allowed to one host (scheme, name and port); further requests wait in a
  // queue for a free one. 0 = no limit. Default: 0.
  int max_connections_per_host = 0;
  // Open connections allowed in total. 0 = no limit. Default: 0.
  int max_total_connections = 0;
  // Idle connections kept for reuse. 0 = curl's default, four times the number of transfers in
  // flight at the moment, which closes connections whenever a burst ebbs and opens them again
  // for the next one. Default: 1,024.
  int max_idle_connections = 1024;
  // Finished easy handles kept for the next requests (they keep their TLS session cache).
  // Default: 64.
  int max_cached_handles = 64;
  // The buffer each transfer in flight receives into (CURLOPT_BUFFERSIZE; curl's own default is
  // 16 KiB). A larger body is read in more pieces, not refused. An LLM or Telegram answer is a
  // few KiB, and with a hundred requests waiting on a slow model the buffers are most of the
  // client's memory. Clamped to curl's range (1 KiB to 10 MiB). Default: 4 KiB.
  std::size_t receive_buffer_bytes = 4096;
  // A response body that would grow beyond this while being accumulated fails the request with
  // kOutOfRange (streamed bodies are not limited). Default: 64 MiB.
  std::size_t max_body_bytes = std::size_t{64} << 20;
  // Sent as User-Agent unless the request has one. Default: "llmassist/<version>".
  std::string user_agent;
  // Verify the server's TLS certificate and host name. Turn off only for tests. Default: true.
  bool verify_tls = true;
  // A file of CA certificates to trust instead of the system's; empty = the system's.
  std::string ca_file;
  std::shared_ptr<Logger> logger;  // default: stderr_logger()
};

// Creates a client and starts its I/O thread. Errors: kInvalidArgument for negative limits,
// kInternal when curl cannot be initialized.
[[nodiscard]] Result<std::unique_ptr<HttpClient>> make_curl_http_client(
    const CurlHttpClientOptions& options = {});

}  // namespace llmassist
