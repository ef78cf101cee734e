// One worker thread's delivery queue (shared-nothing: a thread delivers the messages it
// accepted, and those recovered from its spool directory). Per destination: a ready list of
// delivery jobs, a pool of outbound connections (reused, at most the destination's share of
// its concurrency), a token bucket for its rate and a concurrency window that halves when
// the destination pushes back. Deferred jobs wait on the retry wheel. Outcomes go to the
// spool with the same group commit as messages; a message's segment is released once all
// its recipients are final.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/reactor.hpp"
#include "core/io/tls.hpp"
#include "core/metrics/metrics_registry.hpp"
#include "core/smtp/client_session.hpp"
#include "relay/queue/destination_metrics.hpp"
#include "relay/queue/pacing.hpp"
#include "relay/queue/queued_message.hpp"
#include "relay/queue/retry_wheel.hpp"
#include "relay/queue/segment_registry.hpp"
#include "relay/route_table.hpp"
#include "relay/spool/spool_writer.hpp"

namespace ringmta::relay {

struct RelayConfig;
class OutboundConnection;

// What became of one recipient in a transaction.
enum class RcptResult : std::uint8_t {
  delivered,  // the next hop took it (2xx at RCPT and at the end of data)
  failed,     // 5xx: permanent
  deferred,   // 4xx, or the connection failed: try again later
  throttled,  // 421 or 4.7.x: deferred, and the destination asked us to slow down
};
struct RcptOutcome {
  RcptResult result = RcptResult::deferred;
  std::uint16_t code = 0;     // the reply code (0: a local reason)
  std::string_view text;      // "451 4.3.0 text" or a local reason
};

struct QueueStats {
  std::uint64_t messages = 0;         // in this thread's queue
  std::uint64_t recipients_pending = 0;
  std::uint64_t deferred_jobs = 0;    // on the retry wheel
  std::uint64_t connections_open = 0;
};

class QueueManager {
 public:
  QueueManager(io::Reactor& reactor, spool::SpoolWriter& writer, spool::SpoolTotals& totals,
               const RelayConfig& config, const RouteTable& routes,
               metrics::ThreadMetrics& metrics, DestinationMetrics* destination_metrics);
  ~QueueManager();
  QueueManager(const QueueManager&) = delete;
  QueueManager& operator=(const QueueManager&) = delete;

  // ---- Messages in.
  // A cleared message from the pool; give it back with accept() (once it is durable) or
  // recycle() (it never was).
  QueuedMessage* new_message();
  void recycle(QueuedMessage* m);
  // The message is on stable storage (segment and offsets filled): route its recipients
  // and start delivering. Keeps its in-memory body only while the receive buffers are
  // plentiful.
  void accept(QueuedMessage* m);
  // A pooled message with this envelope (recipients pending), as the session stored it or
  // as recovery read it back; the caller adds where it is stored and its body, then
  // accept().
  QueuedMessage* new_message(const spool::EnvelopeView& e);
  QueuedMessage* from_envelope(const spool::StoredMessage& e);
  // A message found in the spool at start.
  void adopt(spool::LiveMessage&& m);
  // --test-drop-after-ack: a durable message is lost on purpose (its recipients logged as
  // delivered, nothing sent), so that the testbed can prove it notices.
  void drop_for_test(QueuedMessage* m);
  // A segment found at start that something pins, or that nothing pins yet (deleted soon).
  SegmentRegistry& segments() { return segments_; }

  // ---- Outbound connections (OutboundConnection calls these).
  // The next job for a ready connection to `dest`, with its rate token taken; nullptr when
  // there is none (or the destination is paused / out of tokens).
  DeliveryJob* next_job(std::uint32_t dest);
  // The job next_job would hand out (token not taken), to see whether it can go behind the
  // transactions already in flight on a connection.
  const DeliveryJob* peek_job(std::uint32_t dest) const;
  // The job's transaction ended; one outcome per job recipient, in job order.
  void job_done(DeliveryJob* job, std::span<const RcptOutcome> outcomes, std::string_view hop);
  // The connection is idle (after its greeting or a transaction, with no job for it).
  void connection_idle(OutboundConnection* c);
  // It is saying QUIT: no more jobs for it.
  void connection_quitting(OutboundConnection* c);
  std::uint32_t idle_timeout_ms() const;
  // The connection is gone (hop failures: connect refused/timed out, refused greeting).
  void connection_up(OutboundConnection* c);  // ready for the first time (greeted)
  void connection_closed(OutboundConnection* c, bool was_up, bool hop_failed, bool throttled,
                         std::string_view why);
  // The body of m on this thread's spool (for splicing): -1 if it cannot be opened.
  int spool_fd(const QueuedMessage& m) { return segments_.read_fd(m.segment); }
  const smtp::ClientConfig& client_config(std::uint32_t dest) const;
  // STARTTLS to next hops: the shared client context (null: never) and, per destination,
  // this thread's last session for resumption.
  void set_tls(const io::TlsContext* tls) { tls_ = tls; }
  const io::TlsContext* tls() const { return tls_; }
  bool tls_verify() const;  // next hops' certificates are checked (--outbound-tls-verify)
  io::TlsSessionCache& tls_cache(std::uint32_t dest);
  const Destination& destination(std::uint32_t dest) const { return routes_.destinations()[dest]; }
  metrics::ThreadMetrics& metrics() { return metrics_; }
  io::Reactor& reactor() { return reactor_; }

  // Stopping: idle connections say QUIT, busy ones after their transaction; nothing new
  // is started. Retry and pacing timers are cancelled. Called again: nothing more.
  void shutdown();
  bool stopping() const { return stopping_ || reactor_.stopping(); }
  QueueStats stats() const;

 private:
  struct Dest;
  struct OutcomeWrite;
  struct BounceWrite;

  void route(QueuedMessage* m);
  DeliveryJob* new_job(QueuedMessage* m, std::uint32_t dest);
  void free_job(DeliveryJob* j);
  void make_ready(DeliveryJob* j);
  void kick(std::uint32_t dest);
  static void flush_hook(void* ctx);  // the reactor's: kicks the destinations made ready
  void open_connection(Dest& d);
  void defer(DeliveryJob* j, std::uint64_t delay_ms);
  void defer_all_ready(Dest& d, std::string_view why);
  void on_retry_due(WheelNode& n);
  void arm_retry_timer();
  void fail_expired(DeliveryJob* j);
  void write_outcomes(QueuedMessage* m, std::span<const std::uint32_t> rcpts);
  static void on_outcome_written(spool::PendingMessage& pm, int result);
  void outcome_written(OutcomeWrite* w, int result);
  void maybe_finish(QueuedMessage* m);
  // bounce.cpp: the report for failed recipients, then their outcomes once it is durable.
  void bounce(QueuedMessage* m, std::span<const std::uint32_t> failed);
  static void on_bounce_written(spool::PendingMessage& pm, int result);
  void bounce_written(BounceWrite* w, int result);
  void arm_dest_timer(Dest& d, std::uint64_t delay_ms);
  double random01();
  // This thread's per-destination cells, or nullptr (no route, or no metrics).
  DestinationMetrics::Cells* cells(std::uint32_t dest) {
    return dest_metrics_ == nullptr || dest == kNoRoute
               ? nullptr
               : &dest_metrics_->cells(writer_.thread(), dest);
  }

  io::Reactor& reactor_;
  spool::SpoolWriter& writer_;
  spool::SpoolTotals& totals_;
  const RelayConfig& config_;
  const RouteTable& routes_;
  metrics::ThreadMetrics& metrics_;
  DestinationMetrics* dest_metrics_;
  const io::TlsContext* tls_ = nullptr;
  SegmentRegistry segments_;
  RetryWheel wheel_;
  io::Timer retry_timer_;
  io::Timer sweep_timer_;
  std::vector<std::unique_ptr<Dest>> dests_;
  Dest* no_route_ = nullptr;
  QueuedMessage* free_messages_ = nullptr;
  DeliveryJob* free_jobs_ = nullptr;
  OutcomeWrite* free_writes_ = nullptr;
  BounceWrite* free_bounces_ = nullptr;
  std::vector<std::unique_ptr<QueuedMessage>> all_messages_;
  std::vector<std::unique_ptr<DeliveryJob>> all_jobs_;
  std::vector<std::unique_ptr<OutcomeWrite>> all_writes_;
  std::vector<std::unique_ptr<BounceWrite>> all_bounces_;
  std::uint64_t messages_ = 0;
  std::uint64_t pending_rcpts_ = 0;
  bool stopping_ = false;
  std::minstd_rand rng_;
  std::vector<std::uint32_t> kicks_;  // destinations with jobs made ready this round
  // route()'s grouping, one slot per destination (and one for no route): the job being
  // filled and the latest retry time of its recipients; `grouped_` lists the slots in use.
  struct Group {
    DeliveryJob* job = nullptr;
    std::uint64_t wait_until = 0;
  };
  std::vector<Group> groups_;
  std::vector<std::uint32_t> grouped_;
  std::vector<std::uint32_t> changed_;
  std::vector<std::uint32_t> failed_;
  bool write_error_logged_ = false;
};

}  // namespace ringmta::relay
