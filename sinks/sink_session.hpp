// One ringmta-sink connection: a ServerSession (core/smtp) driven by a reactor connection
// (core/io), answering as the listener's Behaviour says (delays, failures, disconnects) and
// accounting for accepted messages (count, digest log, maildir).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/io/reactor.hpp"
#include "core/io/held_input.hpp"
#include "core/io/server_tls.hpp"
#include "core/io/tls.hpp"
#include "core/metrics/metrics_registry.hpp"
#include "core/smtp/message_digest.hpp"
#include "core/smtp/server_session.hpp"
#include "sinks/behaviour.hpp"
#include "sinks/digest_log.hpp"
#include "sinks/sink_config.hpp"
#include "sinks/sink_metrics.hpp"

namespace ringmta::sink {

// Per listener, shared by every thread (read-only; the Behaviour's own state is atomic).
struct ListenerRuntime {
  smtp::ServerConfig server;
  std::unique_ptr<Behaviour> behaviour;
  std::unique_ptr<io::TlsContext> tls;  // with server.starttls
};

struct SinkShared {
  std::vector<ListenerRuntime> listeners;
  SinkMode mode = SinkMode::discard;
  std::string digest_path;
  std::string maildir;
  std::uint64_t seed = 1;
  std::shared_ptr<metrics::MetricsRegistry> metrics;  // SinkMetrics
};

// Everything a worker thread owns.
class SinkThread {
 public:
  SinkThread(io::Reactor& reactor, const SinkShared& shared);
  ~SinkThread();
  io::Reactor& reactor() { return reactor_; }
  const SinkShared& shared() const { return shared_; }
  Rng& rng() { return rng_; }
  DigestLog* digest() { return digest_.get(); }
  metrics::ThreadMetrics& metrics() { return metrics_; }
  // A fresh maildir file name part, unique across threads and restarts.
  std::string next_maildir_name();
  void flush() {
    if (digest_) digest_->flush();
  }

 private:
  io::Reactor& reactor_;
  const SinkShared& shared_;
  Rng rng_;
  std::unique_ptr<DigestLog> digest_;
  metrics::ThreadMetrics metrics_;
  io::Timer flush_timer_;
  std::uint64_t maildir_seq_ = 0;
};

class SinkListen : public io::ListenHandler {
 public:
  SinkListen(SinkThread& thread, std::size_t listener) : thread_(thread), listener_(listener) {}
  std::unique_ptr<io::ConnectionHandler> on_accept(io::Connection& c) override;

 private:
  SinkThread& thread_;
  std::size_t listener_;
};

class SinkSession final : public io::ConnectionHandler,
                          public smtp::ServerHandler,
                          private io::ServerTlsObserver {
 public:
  SinkSession(SinkThread& thread, const ListenerRuntime& listener, io::Connection& conn);
  ~SinkSession() override;

  // The banner (or 421 when over the connection limit), after the connect phase's delay.
  void start();

  // io::ConnectionHandler
  void on_recv(io::Connection& c, io::Slice data) override;
  void on_sent(io::Connection& c, std::size_t bytes) override;
  void on_timeout(io::Connection& c) override;
  void on_shutdown(io::Connection& c) override;
  void on_close(io::Connection& c, int err) override;

  // smtp::ServerHandler
  smtp::Decision on_helo(const smtp::Command& cmd) override;
  smtp::Decision on_mail(const smtp::Command& cmd) override;
  smtp::Decision on_rcpt(const smtp::Command& cmd) override;
  smtp::Decision on_data_start(smtp::BodyFormat format) override;
  void on_body(std::string_view bytes) override;
  smtp::Decision on_message(const smtp::MessageInfo& info) override;
  void on_transaction_abort() override;

 private:
  // Turns a Behaviour action into the session's decision; delays become deferrals.
  smtp::Decision act(Phase phase, const Action& a);
  void pump();
  void flush_output();
  void close_now();
  // Decides to disconnect without answering the current command (done after this feed).
  void mark_disconnect();
  void accept_message();
  Context context(std::string_view recipient) const;
  static void on_delay(io::Timer& t, void* ctx);
  // Starts the latency clock of a command; record_latency() stops it when its reply goes.
  void start_clock(Phase phase);
  void record_latency();
  void count_cause(const Action& a);
  // io::ServerTlsObserver: the handshake's outcome and CPU time (once), its time and the
  // TLS sessions gauge when it completed.
  void tls_handshake_ended(io::TlsHandshakeOutcome outcome, std::uint64_t cpu_us) override;
  void tls_established(std::uint64_t elapsed_ns) override;

  SinkThread& thread_;
  const ListenerRuntime& listener_;
  io::Connection& conn_;
  smtp::ServerSession session_;
  io::HeldInput held_;  // received, not yet consumed (the session was waiting)
  io::ServerTls tls_{*this};            // after STARTTLS
  io::Timer delay_;
  smtp::Reply delayed_reply_{};  // code 0: the default positive reply
  Phase delayed_phase_ = Phase::connect;
  bool delayed_close_ = false;   // the delayed action is a disconnect
  bool started_ = false;
  bool entered_ = false;         // counted in the Behaviour's connection limit
  bool close_now_ = false;       // disconnect without reply (after the current feed)
  // When close_now_: output bytes owed to commands before the disconnect (replies the
  // session writes after it, e.g. to the rest of a message cut mid-data, are not sent).
  std::size_t owed_output_ = 0;
  bool close_after_output_ = false;
  bool stopping_ = false;        // the sink is shutting down: close when idle
  std::uint64_t cut_after_ = 0;  // disconnect_mid_data: body bytes still allowed
  bool cutting_ = false;
  std::string sender_;           // this transaction, for behaviour contexts and greylisting
  std::string first_rcpt_;
  std::string rcpts_;            // accepted recipients, comma-separated (digest log)
  std::string maildir_body_;     // maildir mode: the message being received
  smtp::MessageDigest digest_;
  smtp::BodyFormat format_ = smtp::BodyFormat::dot_stuffed;
  std::string client_ip_;
  std::uint64_t clock_start_ns_ = 0;  // 0: no command is being timed
  Phase clock_phase_ = Phase::connect;
  bool in_transaction_ = false;       // MAIL accepted and the transaction not ended
};

}  // namespace ringmta::sink
