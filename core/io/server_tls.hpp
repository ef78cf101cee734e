// The server side of STARTTLS between a reactor connection and a ServerSession (core/smtp),
// shared by the relay's inbound sessions and the sink: the TlsStream made after the 220, the
// handshake's outcome reported once, plaintext fed to the session, its replies encrypted and
// the ciphertext sent. What the owner counts goes through ServerTlsObserver (no metric here).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/io/tls.hpp"

namespace ringmta::smtp {
class ServerSession;
}

namespace ringmta::io {

enum class TlsHandshakeOutcome : std::uint8_t { full, resumed, failed };

// The outcome as a metric's label: any enum with the values full, resumed and failed.
template <class Label>
constexpr Label outcome_label(TlsHandshakeOutcome o) {
  switch (o) {
    case TlsHandshakeOutcome::full:
      return Label::full;
    case TlsHandshakeOutcome::resumed:
      return Label::resumed;
    case TlsHandshakeOutcome::failed:
      break;
  }
  return Label::failed;
}

// The owner's metrics for a ServerTls. Called on the connection's thread.
class ServerTlsObserver {
 public:
  virtual ~ServerTlsObserver() = default;
  // The handshake ended (done, failed or timed out): once per stream, with its CPU time.
  virtual void tls_handshake_ended(TlsHandshakeOutcome outcome, std::uint64_t cpu_us) = 0;
  // It completed, elapsed_ns after ServerTls::start (after tls_handshake_ended).
  virtual void tls_established(std::uint64_t elapsed_ns) { (void)elapsed_ns; }
};

// One server connection's TLS, from STARTTLS on. Not thread-safe (one reactor thread).
class ServerTls {
 public:
  // The observer must outlive this object.
  explicit ServerTls(ServerTlsObserver& observer) : observer_(observer) {}

  // The session answered 220 to STARTTLS and the caller dropped every plaintext byte
  // received after it (CVE-2011-0411): the stream sees only what is received from now on.
  // ctx (server role) must outlive this object.
  void start(const TlsContext& ctx);
  bool active() const { return stream_ != nullptr; }
  // The handshake completed (and the session started over).
  bool up() const { return up_; }
  bool handshaking() const { return stream_ != nullptr && !up_; }
  bool established() const { return stream_ != nullptr && stream_->established(); }
  // receive() found the stream failed or closed by the peer.
  bool ended() const { return ended_; }
  // Decrypted bytes the session has not taken yet (for receive backpressure).
  std::size_t plaintext_bytes() const { return stream_->plaintext().size(); }

  // Ciphertext received (copied in). Once the handshake completes: counted, the observer
  // told, session.tls_started(). True when the stream failed or the peer closed it: its input
  // is dropped and the caller sends what the stream holds (an alert), then closes.
  bool receive(std::string_view ciphertext, smtp::ServerSession& session);
  // Hands the plaintext to the session while it takes it; drops the input once it closed.
  void feed_session(smtp::ServerSession& session);
  // Whether the session's replies go into the stream now (established, not failed, the
  // session not in STARTTLS's plaintext 220).
  bool accepts_output(const smtp::ServerSession& session) const;
  // Encrypts the first n bytes of the session's output and consumes them from it.
  void write_output(smtp::ServerSession& session, std::size_t n);
  // Ciphertext to send now, or empty (nothing waits, or a send is in flight). The caller
  // hands it to Connection::send as is and reports on_sent to sent().
  std::string_view next_send();
  // Connection::on_sent: true if the send was ciphertext (then it is accounted for here).
  bool sent(std::size_t bytes);
  // Connection::on_timeout: true if the handshake was still running (counted as failed;
  // no reply can go in either form, the caller closes).
  bool handshake_timed_out();

 private:
  void count(TlsHandshakeOutcome outcome);

  ServerTlsObserver& observer_;
  std::unique_ptr<TlsStream> stream_;
  bool up_ = false;       // handshake completed
  bool counted_ = false;  // its outcome was reported
  bool sending_ = false;  // the send in flight is ciphertext
  bool ended_ = false;    // failed or closed by the peer
  std::uint64_t start_ns_ = 0;
};

}  // namespace ringmta::io
