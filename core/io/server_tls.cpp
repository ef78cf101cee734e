// Server-side STARTTLS plumbing; see server_tls.hpp.
#include "core/io/server_tls.hpp"

#include <chrono>

#include "core/smtp/server_session.hpp"

namespace ringmta::io {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

void ServerTls::start(const TlsContext& ctx) {
  stream_ = std::make_unique<TlsStream>(ctx);
  start_ns_ = now_ns();
}

void ServerTls::count(TlsHandshakeOutcome outcome) {
  if (counted_) return;  // a failed stream can be fed again before the close
  counted_ = true;
  observer_.tls_handshake_ended(outcome, stream_->handshake_cpu_us());
}

bool ServerTls::receive(std::string_view ciphertext, smtp::ServerSession& session) {
  stream_->feed(ciphertext);
  if (!up_ && stream_->established()) {
    up_ = true;
    count(stream_->info().resumed ? TlsHandshakeOutcome::resumed : TlsHandshakeOutcome::full);
    observer_.tls_established(now_ns() - start_ns_);
    session.tls_started();  // the state after the banner: EHLO again
    return false;
  }
  const TlsStatus s = stream_->status();
  if (s != TlsStatus::failed && s != TlsStatus::closed) return false;
  if (!up_ && s == TlsStatus::failed) count(TlsHandshakeOutcome::failed);
  // Nothing more from the peer reaches the session.
  stream_->discard_input();
  ended_ = true;
  return true;
}

void ServerTls::feed_session(smtp::ServerSession& session) {
  while (stream_->established() && !session.waiting() && !session.closed()) {
    const std::string_view p = stream_->plaintext();
    if (p.empty()) break;
    const std::size_t used = session.feed(p);
    stream_->consume_plaintext(used);
    if (used < p.size()) break;  // the session paused: deferred, output full, closed
  }
  if (session.closed()) stream_->discard_input();
}

bool ServerTls::accepts_output(const smtp::ServerSession& session) const {
  return established() && !session.wants_tls() && !ended_;
}

void ServerTls::write_output(smtp::ServerSession& session, std::size_t n) {
  // The replies become records now (the session's buffer is free again); the ciphertext
  // goes out from the stream's own buffer.
  if (n == 0) return;
  stream_->write(session.output().substr(0, n));
  session.consume_output(n);
}

std::string_view ServerTls::next_send() {
  const std::string_view ct = stream_->next_send();
  if (!ct.empty()) sending_ = true;
  return ct;
}

bool ServerTls::sent(std::size_t bytes) {
  if (!sending_) return false;
  sending_ = false;
  stream_->sent(bytes);
  return true;
}

bool ServerTls::handshake_timed_out() {
  if (!handshaking()) return false;
  count(TlsHandshakeOutcome::failed);
  return true;
}

}  // namespace ringmta::io
