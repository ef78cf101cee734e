// TLS contexts and streams over memory BIOs; see tls.hpp.
#include "core/io/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <time.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ringmta::io {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;  // one TLS record's plaintext at most
constexpr std::size_t kCompactAbove = 64 * 1024;

int proto(TlsVersion v) { return v == TlsVersion::tls1_2 ? TLS1_2_VERSION : TLS1_3_VERSION; }

std::string openssl_errors() {
  std::string s;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

[[noreturn]] void fail(SSL_CTX* ctx, const std::string& what) {
  const std::string why = openssl_errors();
  SSL_CTX_free(ctx);
  throw std::runtime_error(what + ": " + why);
}

// The stream's session cache, reachable from OpenSSL's new-session callback.
int cache_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* cache = static_cast<TlsSessionCache*>(SSL_get_ex_data(ssl, cache_index()));
  if (cache == nullptr) return 0;  // not kept: OpenSSL frees it
  cache->store(session);           // takes the reference OpenSSL hands over
  return 1;
}

void set_versions(SSL_CTX* ctx, TlsVersion lo, TlsVersion hi) {
  if (proto(lo) > proto(hi)) fail(ctx, "TLS minimum version above the maximum");
  if (SSL_CTX_set_min_proto_version(ctx, proto(lo)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, proto(hi)) != 1) {
    fail(ctx, "TLS versions");
  }
}

}  // namespace

const char* tls_version_name(TlsVersion v) { return v == TlsVersion::tls1_2 ? "1.2" : "1.3"; }

bool parse_tls_version(std::string_view t, TlsVersion& out) {
  if (t == "1.2" || t == "tls1.2" || t == "TLSv1.2") {
    out = TlsVersion::tls1_2;
    return true;
  }
  if (t == "1.3" || t == "tls1.3" || t == "TLSv1.3") {
    out = TlsVersion::tls1_3;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------- TlsContext

std::unique_ptr<TlsContext> TlsContext::server(const TlsServerOptions& o) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) fail(ctx, "SSL_CTX_new");
  set_versions(ctx, o.min_version, o.max_version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
    fail(ctx, "TLS certificate " + o.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail(ctx, "TLS key " + o.key_file + " (is it the key of " + o.cert_file + "?)");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail(ctx, "TLS key " + o.key_file + " does not match " + o.cert_file);
  }
  static constexpr unsigned char kSidContext[] = "ringmta";
  SSL_CTX_set_session_id_context(ctx, kSidContext, sizeof(kSidContext) - 1);
  SSL_CTX_set_session_cache_mode(ctx, o.session_cache ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
  if (!o.session_tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  // TLS 1.3: one ticket per handshake is enough for a client that reuses its last session
  // (OpenSSL's default is two); none when resumption is off altogether.
  SSL_CTX_set_num_tickets(ctx, (o.session_tickets || o.session_cache) ? 1 : 0);
  return std::unique_ptr<TlsContext>(
      new TlsContext(ctx, true, o.session_tickets || o.session_cache));
}

std::unique_ptr<TlsContext> TlsContext::client(const TlsClientOptions& o) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) fail(ctx, "SSL_CTX_new");
  set_versions(ctx, o.min_version, o.max_version);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  if (o.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int ok = o.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                     : SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr);
    if (ok != 1) fail(ctx, "TLS CA file " + (o.ca_file.empty() ? "(system)" : o.ca_file));
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (o.resumption) {
    // Sessions are kept by the caller's TlsSessionCache (per thread), not in the context.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  return std::unique_ptr<TlsContext>(new TlsContext(ctx, false, o.resumption));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

// ---------------------------------------------------------------------------- TlsSessionCache

TlsSessionCache::~TlsSessionCache() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
}

void TlsSessionCache::store(SSL_SESSION* s) {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  session_ = s;
  ++stored_;
}

// ---------------------------------------------------------------------------- TlsStream

TlsStream::TlsStream(const TlsContext& ctx, TlsSessionCache* cache, std::string_view server_name)
    : server_(ctx.is_server()) {
  ssl_ = SSL_new(ctx.native());
  if (ssl_ == nullptr) throw std::runtime_error("SSL_new: " + openssl_errors());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rbio_, -1);  // no bytes yet is "retry", not end of file
  SSL_set_bio(ssl_, rbio_, wbio_);
  if (server_) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (!server_name.empty()) {
    const std::string name(server_name);
    SSL_set_tlsext_host_name(ssl_, name.c_str());
    if (SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE) SSL_set1_host(ssl_, name.c_str());
  }
  if (cache != nullptr && ctx.resumption()) {
    SSL_set_ex_data(ssl_, cache_index(), cache);
    if (cache->get() != nullptr) {
      // A copy per connection: when a resumed connection gets its new ticket, OpenSSL
      // removes the session it resumed from the client cache, which marks that very object
      // not resumable, and other connections about to offer it would fall back to a full
      // handshake.
      if (SSL_SESSION* copy = SSL_SESSION_dup(cache->get())) {
        SSL_set_session(ssl_, copy);
        SSL_SESSION_free(copy);
      }
    }
  }
}

TlsStream::~TlsStream() {
  // OpenSSL marks the session of a connection freed without a shutdown as not resumable.
  // SMTP peers close after QUIT without close_notify as a rule; only a failed stream should
  // lose its session.
  if (status_ == TlsStatus::established || status_ == TlsStatus::closed) {
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  SSL_free(ssl_);  // frees both BIOs
}

void TlsStream::start() {
  if (server_ || status_ != TlsStatus::handshaking) return;
  ERR_clear_error();
  const int r = do_handshake();
  if (r != 1) {
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) set_failed("handshake", e);
  }
  drain_output();
}

TlsStatus TlsStream::feed(std::string_view ct) {
  if (status_ == TlsStatus::failed || status_ == TlsStatus::closed) return status_;
  ERR_clear_error();
  while (!ct.empty()) {
    const int n = BIO_write(rbio_, ct.data(), static_cast<int>(ct.size()));
    if (n <= 0) {
      set_failed("BIO_write", SSL_ERROR_SSL);
      drain_output();
      return status_;
    }
    ct.remove_prefix(static_cast<std::size_t>(n));
  }
  if (status_ == TlsStatus::handshaking) {
    const int r = do_handshake();
    if (r == 1) {
      status_ = TlsStatus::established;
    } else {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) set_failed("handshake", e);
    }
  }
  if (status_ == TlsStatus::established) pump_read();
  drain_output();
  return status_;
}

int TlsStream::do_handshake() {
  // Two real syscalls per step (the vDSO does not serve CPU clocks), a handful of steps per
  // connection, and only while handshaking: a few µs against a handshake's hundreds.
  const std::uint64_t t0 = thread_cpu_ns();
  const int r = SSL_do_handshake(ssl_);
  handshake_cpu_ns_ += thread_cpu_ns() - t0;
  return r;
}

void TlsStream::pump_read() {
  if (plain_pos_ == plain_.size()) {
    plain_.clear();
    plain_pos_ = 0;
  } else if (plain_pos_ > kCompactAbove) {
    plain_.erase(0, plain_pos_);
    plain_pos_ = 0;
  }
  for (;;) {
    const std::size_t old = plain_.size();
    plain_.resize(old + kReadChunk);
    std::size_t got = 0;
    const int r = SSL_read_ex(ssl_, plain_.data() + old, kReadChunk, &got);
    plain_.resize(old + (r == 1 ? got : 0));
    if (r == 1) continue;
    const int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    if (e == SSL_ERROR_ZERO_RETURN) {
      status_ = TlsStatus::closed;
      return;
    }
    set_failed("read", e);
    return;
  }
}

void TlsStream::set_failed(const char* where, int ssl_error) {
  status_ = TlsStatus::failed;
  error_ = where;
  error_ += ": ";
  if (ssl_error == SSL_ERROR_SSL || ERR_peek_error() != 0) {
    error_ += openssl_errors();
  } else {
    error_ += "SSL error " + std::to_string(ssl_error);
  }
  ERR_clear_error();
}

TlsInfo TlsStream::info() const {
  TlsInfo i;
  if (status_ != TlsStatus::established && status_ != TlsStatus::closed) return i;
  i.version = SSL_get_version(ssl_);
  i.cipher = SSL_get_cipher_name(ssl_);
  i.resumed = SSL_session_reused(ssl_) == 1;
  return i;
}

std::string_view TlsStream::plaintext() const {
  return std::string_view(plain_).substr(plain_pos_);
}

void TlsStream::consume_plaintext(std::size_t n) {
  plain_pos_ += n < plain_.size() - plain_pos_ ? n : plain_.size() - plain_pos_;
  if (plain_pos_ == plain_.size()) {
    plain_.clear();
    plain_pos_ = 0;
  }
}

void TlsStream::discard_input() {
  plain_.clear();
  plain_pos_ = 0;
  (void)BIO_reset(rbio_);
}

bool TlsStream::write(std::string_view plain) {
  if (status_ != TlsStatus::established) return false;
  ERR_clear_error();
  while (!plain.empty()) {
    std::size_t n = 0;
    // A memory BIO takes everything: SSL_write_ex only fails on a broken stream.
    if (SSL_write_ex(ssl_, plain.data(), plain.size(), &n) != 1) {
      set_failed("write", SSL_get_error(ssl_, 0));
      drain_output();
      return false;
    }
    plain.remove_prefix(n);
  }
  drain_output();
  return true;
}

bool TlsStream::writev(const iovec* iov, unsigned count) {
  // Small pieces are gathered so that they share records (a record per piece costs 22+
  // bytes and a MAC each).
  std::size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += iov[i].iov_len;
  if (total <= kReadChunk) {
    std::string gather;
    gather.reserve(total);
    for (unsigned i = 0; i < count; ++i) {
      gather.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    return write(gather);
  }
  for (unsigned i = 0; i < count; ++i) {
    if (!write(std::string_view(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len))) {
      return false;
    }
  }
  return true;
}

void TlsStream::close_notify() {
  if (status_ != TlsStatus::established && status_ != TlsStatus::closed) return;
  ERR_clear_error();
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
  drain_output();
}

void TlsStream::normalize() {
  // Outside a send: all waiting ciphertext in out_[flight_], in order.
  std::string& f = out_[flight_];
  std::string& other = out_[flight_ ^ 1u];
  if (flight_pos_ == f.size()) {
    f.clear();  // everything of it went: the other one (filled meanwhile) is next
    flight_pos_ = 0;
    flight_ ^= 1u;
  } else if (!other.empty()) {
    f.append(other);  // a partial send left a tail: keep the order
    other.clear();
  }
}

void TlsStream::drain_output() {
  if (!in_flight_) normalize();
  std::string* to = &out_[in_flight_ ? flight_ ^ 1u : flight_];
  for (;;) {
    const std::size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return;
    const std::size_t old = to->size();
    to->resize(old + pending);
    const int n = BIO_read(wbio_, to->data() + old, static_cast<int>(pending));
    to->resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
    if (n <= 0) return;
  }
}

std::string_view TlsStream::next_send() {
  if (in_flight_) return {};
  normalize();
  const std::string_view v = std::string_view(out_[flight_]).substr(flight_pos_);
  if (v.empty()) return {};
  in_flight_ = true;
  return v;
}

void TlsStream::sent(std::size_t n) {
  in_flight_ = false;
  flight_pos_ += n;
  if (flight_pos_ > out_[flight_].size()) flight_pos_ = out_[flight_].size();
}

std::size_t TlsStream::pending_output() const {
  return out_[flight_].size() - flight_pos_ + out_[flight_ ^ 1u].size();
}

bool ktls_available() {
  std::ifstream f("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string word;
  while (f >> word) {
    if (word == "tls") return true;
  }
  return false;
}

}  // namespace ringmta::io
