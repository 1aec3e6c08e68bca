#include "support/tls_test_cert.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace llmassist::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

[[noreturn]] void fail(const std::string& what) {
  char reason[256] = "no reason given";
  if (unsigned long code = ERR_get_error(); code != 0) {
    ERR_error_string_n(code, reason, sizeof reason);
  }
  ERR_clear_error();
  throw std::runtime_error("test certificates: " + what + ": " + reason);
}

Key make_key() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("EC key generation");
  return key;
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) fail(std::string("extension ") + value);
}

// A certificate for `common_name` and `key`, signed by `issuer` with `issuer_key`, or
// self-signed (a CA) when `issuer` is null. `alt_names` is a subjectAltName value, or null.
Cert make_cert(const char* common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
               const char* alt_names, long serial) {
  Cert cert(X509_new());
  if (!cert) fail("X509_new");
  const bool is_ca = issuer == nullptr;
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), is_ca ? name : X509_get_subject_name(issuer)) != 1) {
    fail(std::string("certificate fields for ") + common_name);
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, is_ca ? cert.get() : issuer, cert.get(), nullptr, nullptr, 0);
  if (is_ca) {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  } else {
    add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    if (alt_names != nullptr) add_extension(cert.get(), &ctx, NID_subject_alt_name, alt_names);
  }
  if (X509_sign(cert.get(), is_ca ? key : issuer_key, EVP_sha256()) <= 0) {
    fail(std::string("signing the certificate for ") + common_name);
  }
  return cert;
}

std::unique_ptr<std::FILE, FileClose> open_for_writing(const std::string& path) {
  std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "wb"));
  if (!file) throw std::runtime_error("test certificates: cannot write " + path);
  return file;
}

void write_cert(const std::string& path, X509* cert) {
  auto file = open_for_writing(path);
  if (PEM_write_X509(file.get(), cert) != 1) fail("writing " + path);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  auto file = open_for_writing(path);
  if (PEM_write_PrivateKey(file.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("writing " + path);
  }
}

}  // namespace

TlsTestCertificates::TlsTestCertificates()
    : ca_file_(dir_.file("ca.pem")),
      cert_file_(dir_.file("server.pem")),
      key_file_(dir_.file("server-key.pem")),
      wrong_name_cert_file_(dir_.file("wrong-name.pem")),
      wrong_name_key_file_(dir_.file("wrong-name-key.pem")),
      other_ca_file_(dir_.file("other-ca.pem")) {
  Key ca_key = make_key();
  Cert ca = make_cert("llmassist test CA", ca_key.get(), nullptr, nullptr, nullptr, 1);
  write_cert(ca_file_, ca.get());

  Key server_key = make_key();
  Cert server = make_cert("localhost", server_key.get(), ca.get(), ca_key.get(),
                          "DNS:localhost,IP:127.0.0.1", 2);
  write_cert(cert_file_, server.get());
  write_key(key_file_, server_key.get());

  Key wrong_key = make_key();
  Cert wrong = make_cert("wrong-name.invalid", wrong_key.get(), ca.get(), ca_key.get(),
                         "DNS:wrong-name.invalid", 3);
  write_cert(wrong_name_cert_file_, wrong.get());
  write_key(wrong_name_key_file_, wrong_key.get());

  // Same subject as the real CA, so that only the signature, not a missing issuer name, fails
  // the chain.
  Key other_key = make_key();
  Cert other = make_cert("llmassist test CA", other_key.get(), nullptr, nullptr, nullptr, 1);
  write_cert(other_ca_file_, other.get());
}

}  // namespace llmassist::testing
