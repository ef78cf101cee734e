// Certificates for the TLS unit tests (tls_test, server_tls_test), made at run time: a
// temporary folder with two self-signed ECDSA P-256 certificates for "localhost".
#pragma once

#include <filesystem>
#include <string>

#include "core/io/tls.hpp"

namespace ringmta::io {

// server.pem/.key and other.pem/.key in a fresh folder, removed with this object.
class TestCerts {
 public:
  TestCerts();
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  std::string file(const char* name) const { return (dir_ / name).string(); }
  // The server certificate and key, every other option at its default.
  TlsServerOptions server_options() const;

 private:
  std::filesystem::path dir_;
};

}  // namespace ringmta::io
