#include "http/tls_context.h"

#include <dirent.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdlib>
#include <string_view>

namespace llmassist::detail {
namespace {

// True when `dir` holds OpenSSL's hashed certificate links (<hash>.0): then CA certificates can
// be looked up one at a time, as a chain needs them, instead of loading the whole bundle.
bool hashed_cert_dir(const char* dir) {
  DIR* d = ::opendir(dir);
  if (d == nullptr) return false;
  bool found = false;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (name.size() == 10 && name.ends_with(".0")) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

}  // namespace

std::string openssl_error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

Result<std::unique_ptr<TlsContext>> TlsContext::make(bool verify, const std::string& ca_file) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return internal_error("TLS: " + openssl_error_text());
  auto out = std::unique_ptr<TlsContext>(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A server that closes without close_notify ends a close-delimited body, as it does for
  // browsers; a body with a length is still checked for completeness.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &TlsContext::on_new_session);
  SSL_CTX_set_app_data(ctx, out.get());
  if (!verify) return out;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
      return invalid_argument(
          fmt::format("TLS: cannot load CA file {}: {}", ca_file, openssl_error_text()));
    }
  } else if (std::getenv(X509_get_default_cert_file_env()) == nullptr &&
             std::getenv(X509_get_default_cert_dir_env()) == nullptr &&
             hashed_cert_dir(X509_get_default_cert_dir())) {
    // The hashed directory alone: the bundle file would load every CA up front (about 1.5 MiB
    // of memory for Debian's ~140 certificates).
    if (SSL_CTX_load_verify_dir(ctx, X509_get_default_cert_dir()) != 1) {
      return internal_error("TLS: cannot use the system's CA directory: " + openssl_error_text());
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return internal_error("TLS: cannot use the system's CA certificates: " + openssl_error_text());
  }
  return out;
}

TlsContext::~TlsContext() {
  for (auto& [origin, session] : sessions_) SSL_SESSION_free(session);
  SSL_CTX_free(ctx_);
}

Result<SSL*> TlsContext::connect(int fd, const std::string& host, bool ip_literal,
                                 const std::string& origin) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    if (ssl != nullptr) SSL_free(ssl);
    return unavailable("TLS: " + openssl_error_text());
  }
  if (ip_literal) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  SSL_set_ex_data(ssl, origin_index(), new std::string(origin));
  if (auto it = sessions_.find(origin); it != sessions_.end()) SSL_set_session(ssl, it->second);
  SSL_set_connect_state(ssl);
  return ssl;
}

void TlsContext::free_ssl(SSL* ssl) {
  delete static_cast<std::string*>(SSL_get_ex_data(ssl, origin_index()));
  SSL_free(ssl);
}

int TlsContext::origin_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// A session ticket arrived: the origin's next connection resumes it. Returns 1: kept.
int TlsContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const auto* origin = static_cast<const std::string*>(SSL_get_ex_data(ssl, origin_index()));
  if (self == nullptr || origin == nullptr) return 0;
  auto [it, inserted] = self->sessions_.try_emplace(*origin, session);
  if (!inserted) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
  return 1;
}

}  // namespace llmassist::detail
