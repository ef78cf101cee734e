// Certificates for the TLS unit tests; see test_certs.hpp.
#include "test_certs.hpp"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

namespace ringmta::io {
namespace {

namespace fs = std::filesystem;

// A self-signed ECDSA P-256 certificate for "localhost" in dir/NAME.pem, dir/NAME.key.
void make_cert(const fs::path& dir, const std::string& name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen((dir / (name + ".pem")).c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen((dir / (name + ".key")).c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

}  // namespace

TestCerts::TestCerts() {
  static std::atomic<int> made{0};
  dir_ = fs::temp_directory_path() /
         ("ringmta-tls-" + std::to_string(getpid()) + "-" + std::to_string(made++));
  fs::create_directories(dir_);
  make_cert(dir_, "server");
  make_cert(dir_, "other");
}

TestCerts::~TestCerts() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

TlsServerOptions TestCerts::server_options() const {
  TlsServerOptions o;
  o.cert_file = file("server.pem");
  o.key_file = file("server.key");
  return o;
}

}  // namespace ringmta::io
