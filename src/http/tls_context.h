// TLS for the HTTP client, over OpenSSL.
//
// Thread-safety: a TlsContext belongs to one client's I/O thread; openssl_error_text() works on
// the calling thread's error queue.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "llmassist/status.h"

namespace llmassist::detail {

// The first error in OpenSSL's queue for this thread, and the queue emptied.
[[nodiscard]] std::string openssl_error_text();

// A client's TLS configuration, made on its first https request: TLS 1.2 or later, the
// server's chain and host name verified against the system's CA store or `ca_file` (unless
// `verify` is false). Each origin's latest session is kept, so that a new connection resumes
// it instead of a full handshake.
class TlsContext {
 public:
  // Errors: kInvalidArgument for a CA file that cannot be loaded, kInternal otherwise.
  [[nodiscard]] static Result<std::unique_ptr<TlsContext>> make(bool verify,
                                                                const std::string& ca_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A new client-side TLS connection to `host` over the connected socket `fd`, set up to send
  // SNI (for a name), to verify the host name or IP address, and to resume the last session of
  // `origin`. Free it with free_ssl(). Errors: kUnavailable.
  [[nodiscard]] Result<SSL*> connect(int fd, const std::string& host, bool ip_literal,
                                     const std::string& origin);
  static void free_ssl(SSL* ssl);

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  static int origin_index();
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

  SSL_CTX* const ctx_;
  std::unordered_map<std::string, SSL_SESSION*> sessions_;
};

}  // namespace llmassist::detail
