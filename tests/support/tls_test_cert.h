// Certificates for TLS tests, made at run time with OpenSSL (no openssl program, no files in
// the tree to expire): a test CA, a server certificate it signed for "localhost" (subjectAltName
// DNS:localhost and IP:127.0.0.1), one it signed for another name, and a second, unrelated CA
// that trusts none of them. All are EC P-256 keys and PEM files in a temporary folder removed
// with this object.
//
// Thread-safety: immutable once constructed.
#pragma once

#include <string>

#include "support/temp_dir.h"

namespace llmassist::testing {

class TlsTestCertificates {
 public:
  // Generates everything; throws std::runtime_error (with OpenSSL's reason) when it cannot.
  TlsTestCertificates();
  TlsTestCertificates(const TlsTestCertificates&) = delete;
  TlsTestCertificates& operator=(const TlsTestCertificates&) = delete;

  // The CA that signed both server certificates (PEM): a client's ca_file.
  [[nodiscard]] const std::string& ca_file() const { return ca_file_; }
  // The server's certificate for localhost and 127.0.0.1, and its private key (PEM).
  [[nodiscard]] const std::string& cert_file() const { return cert_file_; }
  [[nodiscard]] const std::string& key_file() const { return key_file_; }
  // A certificate and key from the same CA for "wrong-name.invalid" only: a host-name mismatch
  // for a client that connects to localhost.
  [[nodiscard]] const std::string& wrong_name_cert_file() const { return wrong_name_cert_file_; }
  [[nodiscard]] const std::string& wrong_name_key_file() const { return wrong_name_key_file_; }
  // A CA unrelated to the certificates above: trusting only it, verification fails.
  [[nodiscard]] const std::string& other_ca_file() const { return other_ca_file_; }

 private:
  TempDir dir_;
  std::string ca_file_;
  std::string cert_file_;
  std::string key_file_;
  std::string wrong_name_cert_file_;
  std::string wrong_name_key_file_;
  std::string other_ca_file_;
};

}  // namespace llmassist::testing
