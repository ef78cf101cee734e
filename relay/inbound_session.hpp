// One inbound SMTP connection of ringmta-relay: a ServerSession (core/smtp) on a reactor
// connection (core/io) that enforces relay access and limits, keeps the message body as
// references to the receive buffers it arrived in, and hands the finished message to the
// thread's spool writer; the 250 goes out only when the spool says the record is durable.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/auth/failure_limiter.hpp"
#include "core/auth/users_file.hpp"
#include "core/io/reactor.hpp"
#include "core/io/held_input.hpp"
#include "core/io/server_tls.hpp"
#include "core/io/tls.hpp"
#include "core/metrics/metrics_registry.hpp"
#include "core/smtp/server_session.hpp"
#include "relay/relay_config.hpp"
#include "relay/queue/queue_manager.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/route_table.hpp"
#include "relay/spool/spool_state.hpp"
#include "relay/spool/spool_writer.hpp"

namespace ringmta::relay {

// Counts connections per client address across threads without a lock: a fixed table of
// atomic counters indexed by a hash of the address (two addresses may share a slot, which
// can only make the limit stricter).
class ClientCounter {
 public:
  bool try_enter(const io::SocketAddress& a, std::uint32_t limit);
  void leave(const io::SocketAddress& a);

 private:
  static constexpr std::size_t kSlots = 1 << 16;
  std::size_t slot(const io::SocketAddress& a) const;
  std::unique_ptr<std::atomic<std::uint32_t>[]> counts_ =
      std::make_unique<std::atomic<std::uint32_t>[]>(kSlots);
};

// Shared by every thread: configuration (read-only) and a few atomics.
struct RelayShared {
  const RelayConfig* config = nullptr;
  spool::SpoolConfig spool;
  spool::SpoolTotals totals;
  std::shared_ptr<metrics::MetricsRegistry> metrics;  // RelayMetrics
  std::atomic<std::uint32_t> connections{0};
  ClientCounter clients;
  std::vector<std::uint64_t> last_sequence;  // per thread, from recovery
  RouteTable routes;
  AliasTable aliases;
  std::shared_ptr<DestinationMetrics> destination_metrics;  // per destination, for /metrics
  std::unique_ptr<io::TlsContext> tls;    // with --starttls on|required
  std::unique_ptr<io::TlsContext> tls_client;  // when a route's outbound TLS is not none
  std::unique_ptr<auth::UserTable> users;  // with --auth-users
  // Failed AUTH attempts per client address, over all threads (a client's connections land
  // on any thread). Locked, which is fine off the hot path: only AUTH takes it.
  std::mutex auth_mutex;
  std::unique_ptr<auth::AuthFailureLimiter> auth_limiter;
  // Found at start, per thread (a directory t<N> goes to thread N mod threads): the live
  // messages and the segments that hold them (each thread takes its share when it starts).
  std::vector<std::vector<spool::LiveMessage>> recovered;
  std::vector<std::vector<spool::SegmentKey>> recovered_segments;
};

// Everything a worker thread owns.
class RelayThread {
 public:
  RelayThread(io::Reactor& reactor, RelayShared& shared);
  io::Reactor& reactor() { return reactor_; }
  RelayShared& shared() { return shared_; }
  spool::SpoolWriter& writer() { return writer_; }
  QueueManager& queue() { return queue_; }
  metrics::ThreadMetrics& metrics() { return metrics_; }
  // --test-drop-after-ack N: true for 1 message in N accepted on this thread.
  bool test_drop() {
    const std::uint32_t n = shared_.config->test_drop_after_ack;
    return n != 0 && ++test_accepted_ % n == 0;
  }
  // "Sun, 30 Nov 2025 00:12:34 +0000", reformatted at most once a second.
  std::string_view date();

 private:
  io::Reactor& reactor_;
  RelayShared& shared_;
  metrics::ThreadMetrics metrics_;
  spool::SpoolWriter writer_;
  QueueManager queue_;
  std::uint64_t test_accepted_ = 0;
  std::int64_t date_second_ = -1;
  char date_[32] = {};
};

class RelayListen : public io::ListenHandler {
 public:
  explicit RelayListen(RelayThread& t) : thread_(t) {}
  std::unique_ptr<io::ConnectionHandler> on_accept(io::Connection& c) override;

 private:
  RelayThread& thread_;
};

class InboundSession final : public io::ConnectionHandler,
                             public smtp::ServerHandler,
                             private io::ServerTlsObserver {
 public:
  InboundSession(RelayThread& thread, io::Connection& conn);
  ~InboundSession() override;
  void start();

  void on_recv(io::Connection& c, io::Slice data) override;
  void on_sent(io::Connection& c, std::size_t bytes) override;
  void on_timeout(io::Connection& c) override;
  void on_shutdown(io::Connection& c) override;
  void on_close(io::Connection& c, int err) override;

  smtp::Decision on_helo(const smtp::Command& cmd) override;
  smtp::Decision on_mail(const smtp::Command& cmd) override;
  smtp::Decision on_rcpt(const smtp::Command& cmd) override;
  smtp::Decision on_data_start(smtp::BodyFormat format) override;
  void on_body(std::string_view bytes) override;
  smtp::Decision on_message(const smtp::MessageInfo& info) override;
  void on_transaction_abort() override;
  smtp::AuthVerdict on_auth(const smtp::AuthCredentials& c) override;

 private:
  struct Recipient {
    std::string address;
    std::uint8_t notify = 0;
    std::string orcpt;
  };
  struct Record;
  static void on_stored(spool::PendingMessage& m, int result);
  static void queue_orphan(Record& r);
  void stored(int result);
  void keep_piece(std::string_view bytes);
  void scan_body(std::string_view bytes);
  void hand_to_queue();
  bool add_recipient(std::string_view address, std::uint8_t notify, std::string_view orcpt);
  void pump();
  void flush_output();
  bool relay_allowed(std::string_view domain) const;

  RelayThread& thread_;
  io::Connection& conn_;
  smtp::ServerSession session_;
  io::HeldInput held_;  // plaintext received, not yet taken by the session
  bool entered_ = false;      // counted in the connection limits
  bool client_trusted_ = false;  // in relay_networks
  bool close_after_output_ = false;
  bool stopping_ = false;     // the relay is shutting down: close between transactions
  bool storing_ = false;      // a message is with the spool writer
  bool in_append_ = false;    // inside SpoolWriter::append (a failure may come back at once)
  int append_result_ = 1;     // 1: none yet
  std::string client_ip_;
  std::string helo_;
  bool esmtp_ = false;
  // The transaction.
  std::string sender_;
  std::vector<Recipient> rcpts_;
  std::size_t rcpt_count_ = 0;  // entries of rcpts_ in use (the vector keeps its strings)
  std::uint8_t ret_ = 0;
  std::string envid_;
  bool smtputf8_ = false;
  smtp::BodyFormat format_ = smtp::BodyFormat::dot_stuffed;
  // What the body scan found: a line starting with "." (the stored form and the other wire
  // form differ), the header section's Received: count (mail loops), the last byte.
  bool dot_line_ = false;
  bool line_start_ = true;
  bool in_headers_ = true;
  std::uint8_t received_match_ = 0;  // bytes of "received:" matched at a line start
  std::uint32_t received_count_ = 0;
  char last_byte_ = 0;
  std::vector<std::string> expanded_;  // alias expansion scratch
  // The message on its way to the spool (reused from message to message; handed over to
  // the spool writer for good if the connection closes while it is being stored).
  std::unique_ptr<Record> rec_;
  std::uint64_t message_id_ = 0;
  std::uint64_t eod_ns_ = 0;
  // STARTTLS: the stream once the client asked for it (the receive slices then carry
  // ciphertext; the session reads the stream's plaintext, and bodies are copied).
  io::ServerTls tls_{*this};
  // io::ServerTlsObserver: the handshake's outcome and CPU time, once.
  void tls_handshake_ended(io::TlsHandshakeOutcome outcome, std::uint64_t cpu_us) override;
  // --test-accept-delay: the 250 waits on this timer.
  io::Timer accept_delay_;
  char ok_text_[64] = {};
  std::size_t ok_len_ = 0;
  void send_ok();
};

}  // namespace ringmta::relay
