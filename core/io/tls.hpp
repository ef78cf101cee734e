// TLS over the reactor (OpenSSL 3, memory BIOs): a TlsContext per role (shared by every
// thread: SSL_CTX is thread-safe) and a sans-I/O TlsStream per connection: ciphertext in
// (feed), plaintext out (plaintext), plaintext in (write), ciphertext out (next_send). The
// caller keeps driving its io::Connection exactly as for plaintext; the stream only sees the
// bytes the caller hands it, so a STARTTLS switch is exact: a stream created after the
// plaintext was cut never sees a byte received before (CVE-2011-0411).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <sys/uio.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct bio_st BIO;

namespace ringmta::io {

enum class TlsVersion : std::uint8_t { tls1_2, tls1_3 };
const char* tls_version_name(TlsVersion v);  // "1.2" | "1.3"
// "1.2" or "1.3" (also "tls1.2", "TLSv1.3"); false if neither.
bool parse_tls_version(std::string_view text, TlsVersion& out);

struct TlsServerOptions {
  std::string cert_file;  // PEM chain, leaf first
  std::string key_file;   // PEM private key
  TlsVersion min_version = TlsVersion::tls1_2;
  TlsVersion max_version = TlsVersion::tls1_3;
  // Resumption: stateless tickets (TLS 1.2 and 1.3) and the server-side session cache
  // (TLS 1.2 session ids). Both on by default.
  bool session_tickets = true;
  bool session_cache = true;
};

struct TlsClientOptions {
  bool verify = false;        // check the server's chain (and name, when server_name is set)
  std::string ca_file;        // PEM trust anchors for verify ("" = the system's)
  TlsVersion min_version = TlsVersion::tls1_2;
  TlsVersion max_version = TlsVersion::tls1_3;
  bool resumption = true;     // offer the last session (TlsSessionCache) on new connections
};

// One role's OpenSSL context, made at start-up: throws std::runtime_error with OpenSSL's
// reason (a missing or mismatched certificate and key, a bad CA file).
class TlsContext {
 public:
  static std::unique_ptr<TlsContext> server(const TlsServerOptions& o);
  static std::unique_ptr<TlsContext> client(const TlsClientOptions& o);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool is_server() const { return server_; }
  bool resumption() const { return resumption_; }

 private:
  TlsContext(SSL_CTX* ctx, bool server, bool resumption)
      : ctx_(ctx), server_(server), resumption_(resumption) {}
  SSL_CTX* ctx_;
  bool server_;
  bool resumption_;
};

// Client side: the session to offer on the next connection (TLS 1.3 tickets arrive after
// the handshake; TLS 1.2 sessions with it). One per thread and destination: no locks.
class TlsSessionCache {
 public:
  TlsSessionCache() = default;
  ~TlsSessionCache();
  TlsSessionCache(const TlsSessionCache&) = delete;
  TlsSessionCache& operator=(const TlsSessionCache&) = delete;
  // Takes one reference of s (replacing the one held).
  void store(SSL_SESSION* s);
  SSL_SESSION* get() const { return session_; }
  std::uint64_t stored() const { return stored_; }

 private:
  SSL_SESSION* session_ = nullptr;
  std::uint64_t stored_ = 0;
};

enum class TlsStatus : std::uint8_t {
  handshaking,  // more bytes needed (or output to send)
  established,  // the handshake is done; plaintext flows
  closed,       // the peer sent close_notify
  failed,       // fatal error or alert: send what next_send() holds (an alert), then close
};

// What a finished handshake agreed on.
struct TlsInfo {
  const char* version = "";  // "TLSv1.3"
  const char* cipher = "";   // "TLS_AES_256_GCM_SHA384"
  bool resumed = false;      // an earlier session was resumed (abbreviated handshake)
};

// One connection's TLS state. Not thread-safe (a connection lives on one reactor thread).
class TlsStream {
 public:
  // cache: client only, may be null (no resumption). server_name: SNI and, with verify,
  // the name checked; "" for none. The context and cache must outlive the stream.
  TlsStream(const TlsContext& ctx, TlsSessionCache* cache = nullptr,
            std::string_view server_name = {});
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Client: writes the ClientHello (send it with next_send). Server: nothing to do.
  void start();
  // Ciphertext received from the peer (copied in). Decrypts what it can into plaintext().
  TlsStatus feed(std::string_view ciphertext);
  TlsStatus status() const { return status_; }
  bool established() const { return status_ == TlsStatus::established; }
  // Why the stream failed (OpenSSL's reason, or the peer's alert), "" otherwise.
  const std::string& error() const { return error_; }
  TlsInfo info() const;
  // Thread CPU time spent in the handshake (SSL_do_handshake calls while handshaking), so
  // far: final once established or failed. A TLS 1.3 client reads its session tickets later,
  // with the data (SSL_read): that part is not in here.
  std::uint64_t handshake_cpu_ns() const { return handshake_cpu_ns_; }
  // The same, rounded to microseconds (what the *_handshake_cpu_microseconds_total metrics
  // count: their slots hold integers).
  std::uint64_t handshake_cpu_us() const { return (handshake_cpu_ns_ + 500) / 1000; }

  // Decrypted bytes not yet consumed by the caller.
  std::string_view plaintext() const;
  void consume_plaintext(std::size_t n);
  // Drops every received byte not yet consumed (plaintext and ciphertext).
  void discard_input();

  // Encrypts plaintext for the peer (only once established). The records join the
  // ciphertext waiting in next_send().
  bool write(std::string_view plain);
  bool writev(const iovec* iov, unsigned count);
  // Queues a close_notify alert.
  void close_notify();

  // Ciphertext to send. The view stays valid and unchanged until sent() is called (new
  // records queue behind it), so it can be handed to Connection::send as is. Empty when
  // nothing waits or a send is already in flight.
  std::string_view next_send();
  // n bytes of the view given by next_send went out; the rest is given again next time.
  void sent(std::size_t n);
  bool send_in_flight() const { return in_flight_; }
  // Ciphertext waiting (in flight or not).
  std::size_t pending_output() const;

 private:
  // SSL_do_handshake, its thread CPU time added to handshake_cpu_ns_.
  int do_handshake();
  void normalize();
  void drain_output();
  void pump_read();
  void set_failed(const char* where, int ssl_error);

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext in (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext out (owned by ssl_)
  TlsStatus status_ = TlsStatus::handshaking;
  bool server_ = false;
  std::string error_;
  std::string plain_;          // decrypted, from plain_pos_
  std::size_t plain_pos_ = 0;
  std::string out_[2];         // ciphertext: out_[flight_] is being sent, the other fills
  unsigned flight_ = 0;
  std::size_t flight_pos_ = 0; // bytes of out_[flight_] already sent
  bool in_flight_ = false;
  std::uint64_t handshake_cpu_ns_ = 0;
};

// Whether the kernel can take over the record layer (kTLS: the "tls" upper-layer protocol
// in /proc/sys/net/ipv4/tcp_available_ulp). ringmta uses memory BIOs today; this is what the
// sink logs at start so a run says whether offload was possible.
bool ktls_available();

}  // namespace ringmta::io
