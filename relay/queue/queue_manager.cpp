// The per-thread delivery queue; see queue_manager.hpp.
#include "relay/queue/queue_manager.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "core/smtp/ascii.hpp"
#include "relay/outbound/outbound_connection.hpp"
#include "relay/queue/bounce_write.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/spool/crc32c.hpp"

namespace ringmta::relay {
namespace {

using M = RelayMetrics;

constexpr std::uint64_t kSweepMs = 1000;
constexpr std::size_t kMaxJobRecipients = 100;  // per transaction (Postfix: 50)
constexpr std::uint64_t kMaxHopDownMs = 30'000;

std::uint64_t unix_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

std::string_view domain_of(std::string_view address) {
  const std::size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

}  // namespace

// ---------------------------------------------------------------------------- state

struct QueueManager::Dest {
  QueueManager* owner = nullptr;
  std::uint32_t index = 0;
  smtp::ClientConfig client;
  std::uint32_t share = 1;  // this thread's part of the destination's concurrency
  ConcurrencyWindow window;
  TokenBucket bucket;
  DeliveryJob* head = nullptr;
  DeliveryJob* tail = nullptr;
  std::size_t ready = 0;
  std::uint32_t open = 0;        // connections, from connect to close
  std::uint32_t connecting = 0;  // of them, not ready yet
  std::vector<OutboundConnection*> idle;
  bool kick_pending = false;  // in kicks_
  std::uint64_t paused_until = 0;
  io::Timer timer;
  std::vector<std::uint64_t> hop_down_until;
  std::size_t next_hop = 0;  // round robin among hops of equal priority
  io::TlsSessionCache tls_cache;
};

// An outcome record on its way to the spool.
struct QueueManager::OutcomeWrite {
  spool::PendingMessage pm;
  std::string payload;
  std::vector<spool::RecipientOutcome> entries;
  QueuedMessage* message = nullptr;
  QueueManager* owner = nullptr;
  bool has_final = false;
  OutcomeWrite* next_free = nullptr;
};

// ---------------------------------------------------------------------------- setup

QueueManager::QueueManager(io::Reactor& reactor, spool::SpoolWriter& writer,
                           spool::SpoolTotals& totals, const RelayConfig& config,
                           const RouteTable& routes, metrics::ThreadMetrics& metrics,
                           DestinationMetrics* destination_metrics)
    : reactor_(reactor),
      writer_(writer),
      totals_(totals),
      config_(config),
      routes_(routes),
      metrics_(metrics),
      dest_metrics_(destination_metrics),
      segments_(config.spool, writer.thread()),
      wheel_(reactor.now_ms()),
      rng_(static_cast<std::uint32_t>(unix_ms() ^ (writer.thread() * 7919u))) {
  const unsigned threads = config.threads == 0 ? 1 : config.threads;
  for (const Destination& route : routes.destinations()) {
    auto d = std::make_unique<Dest>();
    d->owner = this;
    d->index = static_cast<std::uint32_t>(route.index);
    d->share = (route.policy.concurrency + threads - 1) / threads;
    if (d->share == 0) d->share = 1;
    d->window.configure(d->share);
    d->bucket.configure(route.policy.rate / threads, reactor.now_ms());
    d->hop_down_until.assign(route.hops.size(), 0);
    smtp::ClientConfig& c = d->client;
    c.helo_name = config.server.hostname;
    c.use_bdat = route.policy.bdat;
    c.transactions_in_flight = route.policy.transactions_in_flight;
    c.starttls = static_cast<smtp::TlsPolicy>(route.policy.tls);
    c.max_recipients = kMaxJobRecipients;
    const std::uint32_t t = config.delivery.reply_timeout_ms;
    c.greeting_timeout_ms = c.helo_timeout_ms = c.mail_timeout_ms = c.rcpt_timeout_ms = t;
    c.data_init_timeout_ms = c.data_xfer_timeout_ms = c.data_done_timeout_ms = t;
    c.rset_timeout_ms = c.quit_timeout_ms = c.starttls_timeout_ms = t;
    d->timer.set_callback([](io::Timer&, void* ctx) {
      auto* dest = static_cast<Dest*>(ctx);
      dest->owner->kick(dest->index);
    }, d.get());
    dests_.push_back(std::move(d));
  }
  retry_timer_.set_callback([](io::Timer&, void* ctx) {
    auto* q = static_cast<QueueManager*>(ctx);
    q->wheel_.advance(q->reactor_.now_ms(), [q](WheelNode& n) { q->on_retry_due(n); });
    q->arm_retry_timer();
  }, this);
  sweep_timer_.set_callback([](io::Timer& t, void* ctx) {
    auto* q = static_cast<QueueManager*>(ctx);
    q->segments_.collect(q->writer_.current_sequence());
    if (!q->stopping_) q->reactor_.timers().arm(t, kSweepMs);
  }, this);
  reactor_.timers().arm(sweep_timer_, kSweepMs);
  reactor_.add_flush_hook(&QueueManager::flush_hook, this);
  writer_.set_segment_observer([](void* ctx, std::uint64_t seq) {
    auto* q = static_cast<QueueManager*>(ctx);
    q->segments_.add(spool::SegmentKey{q->writer_.thread(), seq});
  }, this);
}

QueueManager::~QueueManager() {
  reactor_.remove_flush_hook(this);
  writer_.set_segment_observer(nullptr, nullptr);
  for (auto& j : all_jobs_) RetryWheel::cancel(*j);
}

double QueueManager::random01() {
  return static_cast<double>(rng_() - std::minstd_rand::min()) /
         static_cast<double>(std::minstd_rand::max() - std::minstd_rand::min());
}

const smtp::ClientConfig& QueueManager::client_config(std::uint32_t dest) const {
  return dests_[dest]->client;
}

io::TlsSessionCache& QueueManager::tls_cache(std::uint32_t dest) { return dests_[dest]->tls_cache; }

// ---------------------------------------------------------------------------- pools

QueuedMessage* QueueManager::new_message() {
  QueuedMessage* m = free_messages_;
  if (m != nullptr) {
    free_messages_ = m->next_free;
  } else {
    all_messages_.push_back(std::make_unique<QueuedMessage>());
    m = all_messages_.back().get();
  }
  m->next_free = nullptr;
  m->rcpt_count = m->pending = m->jobs = m->jobs_running = m->outcome_writes = 0;
  m->bounces_writing = m->holds = 0;
  m->flags = m->ret = 0;
  m->in_memory = false;
  m->outcome_segments.clear();
  return m;
}

void QueueManager::recycle(QueuedMessage* m) {
  m->release_memory();
  m->next_free = free_messages_;
  free_messages_ = m;
}

DeliveryJob* QueueManager::new_job(QueuedMessage* m, std::uint32_t dest) {
  DeliveryJob* j = free_jobs_;
  if (j != nullptr) {
    free_jobs_ = j->next;
  } else {
    all_jobs_.push_back(std::make_unique<DeliveryJob>());
    j = all_jobs_.back().get();
  }
  j->next = nullptr;
  j->message = m;
  j->destination = dest;
  j->rcpts.clear();
  j->running = false;
  ++m->jobs;
  return j;
}

void QueueManager::free_job(DeliveryJob* j) {
  RetryWheel::cancel(*j);
  --j->message->jobs;
  j->message = nullptr;
  j->next = free_jobs_;
  free_jobs_ = j;
}

// ---------------------------------------------------------------------------- messages in

void QueueManager::accept(QueuedMessage* m) {
  segments_.pin(m->segment);
  ++messages_;
  metrics_.add(M::queue_messages, 1);
  // Keep the body in memory only while receive buffers are plentiful: a backlog must not
  // starve the inbound sessions (or our own replies) of buffers.
  io::BufferRing& ring = reactor_.buffers();
  if (m->in_memory && ring.in_use() * 2 > ring.count()) m->release_memory();
  route(m);
}

void QueueManager::drop_for_test(QueuedMessage* m) {
  segments_.pin(m->segment);
  ++messages_;
  metrics_.add(M::queue_messages, 1);
  m->release_memory();
  ++m->holds;
  changed_.clear();
  for (std::uint32_t i = 0; i < m->rcpt_count; ++i) {
    m->rcpts[i].state = spool::RecipientState::delivered;
    changed_.push_back(i);
  }
  m->pending = 0;
  write_outcomes(m, changed_);
  --m->holds;
  maybe_finish(m);
}

namespace {

// The envelope as the session stored it (views) or as recovery read it back (owning): the
// same fields, the same recipient members.
template <class StoredEnvelope>
QueuedMessage* fill_envelope(QueuedMessage* m, const StoredEnvelope& e) {
  m->id = e.id;
  m->arrival_unix_ms = e.arrival_unix_ms;
  m->body_format = e.body_format;
  m->flags = e.flags;
  m->ret = e.ret;
  m->sender = e.sender;
  m->envid = e.envid;
  m->client_ip = e.client_ip;
  m->helo = e.helo;
  m->rcpt_count = static_cast<std::uint32_t>(e.recipients.size());
  if (m->rcpts.size() < m->rcpt_count) m->rcpts.resize(m->rcpt_count);
  for (std::uint32_t i = 0; i < m->rcpt_count; ++i) {
    m->rcpts[i].reset(e.recipients[i].address, e.recipients[i].orcpt, e.recipients[i].notify);
  }
  return m;
}

}  // namespace

QueuedMessage* QueueManager::new_message(const spool::EnvelopeView& e) {
  return fill_envelope(new_message(), e);
}

QueuedMessage* QueueManager::from_envelope(const spool::StoredMessage& e) {
  return fill_envelope(new_message(), e);
}

void QueueManager::adopt(spool::LiveMessage&& lm) {
  QueuedMessage* m = from_envelope(lm.envelope);
  for (std::uint32_t i = 0; i < m->rcpt_count; ++i) {
    QueuedRecipient& r = m->rcpts[i];
    r.state = lm.outcomes[i].state;
    r.attempts = lm.outcomes[i].attempts;
    r.next_attempt_unix_ms = lm.outcomes[i].next_attempt_unix_ms;
  }
  m->segment = lm.segment;
  m->body_offset = lm.body_offset;
  m->body_length = lm.body_length;
  m->record_bytes = lm.record_bytes;
  m->outcome_segments = std::move(lm.outcome_segments);
  for (const spool::SegmentKey& k : m->outcome_segments) segments_.pin(k);
  accept(m);
}

void QueueManager::route(QueuedMessage* m) {
  // Group the recipients still to deliver by destination; one job per destination (split
  // past kMaxJobRecipients).
  const std::uint64_t now_unix = unix_ms();
  ++m->holds;
  m->pending = 0;
  for (std::uint32_t i = 0; i < m->rcpt_count; ++i) {
    QueuedRecipient& r = m->rcpts[i];
    if (spool::is_final(r.state)) continue;
    ++m->pending;
    const Destination* d = routes_.route(domain_of(r.address));
    r.destination = d != nullptr ? static_cast<std::uint32_t>(d->index) : kNoRoute;
    if (auto* c = cells(r.destination)) c->add(c->queued, 1);
  }
  pending_rcpts_ += m->pending;
  metrics_.add(M::queue_recipients, m->pending);
  // One pass: each recipient joins its destination's open job (a slot per destination, the
  // last for "no route"); a full job goes out and a new one opens.
  const std::size_t slots = dests_.size() + 1;
  if (groups_.size() < slots) groups_.resize(slots);
  auto send = [&](std::size_t slot) {
    const Group g = std::exchange(groups_[slot], Group{});
    if (g.wait_until > now_unix) defer(g.job, g.wait_until - now_unix);
    else make_ready(g.job);
  };
  grouped_.clear();
  for (std::uint32_t k = 0; k < m->rcpt_count; ++k) {
    const QueuedRecipient& r = m->rcpts[k];
    if (spool::is_final(r.state)) continue;
    const std::size_t slot = r.destination == kNoRoute ? dests_.size() : r.destination;
    Group& g = groups_[slot];
    if (g.job != nullptr && g.job->rcpts.size() >= kMaxJobRecipients) send(slot);
    if (g.job == nullptr) {
      g.job = new_job(m, r.destination);
      grouped_.push_back(static_cast<std::uint32_t>(slot));
    }
    g.job->rcpts.push_back(k);
    if (r.state == spool::RecipientState::deferred && r.next_attempt_unix_ms > g.wait_until) {
      g.wait_until = r.next_attempt_unix_ms;  // recovered: its retry time still holds
    }
  }
  for (const std::uint32_t slot : grouped_) {
    if (groups_[slot].job != nullptr) send(slot);
  }
  --m->holds;
  maybe_finish(m);
}

void QueueManager::make_ready(DeliveryJob* j) {
  if (j->destination == kNoRoute) {
    // Nowhere to send it (no route matches): deferred, in case the routes change.
    QueuedMessage* m = j->message;
    for (std::uint32_t idx : j->rcpts) {
      QueuedRecipient& r = m->rcpts[idx];
      r.state = spool::RecipientState::deferred;
      ++r.attempts;
      r.last_code = 0;
      r.last_reply = "4.4.4 no route to the recipient's domain in the routing table";
      r.last_hop.clear();
    }
    metrics_.inc(M::deliveries_total[M::deliveries_total_outcome::deferred], j->rcpts.size());
    defer(j, 0);
    return;
  }
  Dest& d = *dests_[j->destination];
  j->ready_since_ms = reactor_.now_ms();
  j->next = nullptr;
  if (d.tail != nullptr) d.tail->next = j;
  else d.head = j;
  d.tail = j;
  ++d.ready;
  // Handed out at the end of this reactor round (flush_hook), with whatever else became
  // ready in it: a connection then takes several at once, in one send.
  if (!d.kick_pending) {
    d.kick_pending = true;
    kicks_.push_back(j->destination);
  }
}

void QueueManager::flush_hook(void* ctx) {
  auto& q = *static_cast<QueueManager*>(ctx);
  // kick() may make more jobs ready (deferring others): take the list as it is now.
  for (std::size_t i = 0; i < q.kicks_.size(); ++i) {
    const std::uint32_t dest = q.kicks_[i];
    q.dests_[dest]->kick_pending = false;
    q.kick(dest);
  }
  q.kicks_.clear();
}

// ---------------------------------------------------------------------------- pacing

void QueueManager::arm_dest_timer(Dest& d, std::uint64_t delay_ms) {
  if (!d.timer.armed() || d.timer.expires_ms() > reactor_.now_ms() + delay_ms + 1) {
    reactor_.timers().arm(d.timer, delay_ms);
  }
}

void QueueManager::kick(std::uint32_t dest) {
  Dest& d = *dests_[dest];
  const std::uint64_t now = reactor_.now_ms();
  while (d.ready > 0 && !stopping()) {
    if (now < d.paused_until) {
      arm_dest_timer(d, d.paused_until - now);
      return;
    }
    if (!d.idle.empty()) {
      DeliveryJob* j = next_job(dest);
      if (j == nullptr) return;  // out of tokens: the timer calls again
      OutboundConnection* c = d.idle.back();
      d.idle.pop_back();
      c->start(j);
      continue;
    }
    // No idle connection: open one if the window allows and none already on its way would
    // serve the waiting jobs.
    if (d.open >= d.window.current() || d.open >= d.share || d.connecting >= d.ready) return;
    const std::size_t before = d.ready;
    open_connection(d);
    if (d.ready < before || d.connecting == 0) return;  // no hop up: the jobs were deferred
  }
}

const DeliveryJob* QueueManager::peek_job(std::uint32_t dest) const {
  const Dest& d = *dests_[dest];
  if (stopping() || reactor_.now_ms() < d.paused_until) return nullptr;
  return d.head;
}

DeliveryJob* QueueManager::next_job(std::uint32_t dest) {
  Dest& d = *dests_[dest];
  const std::uint64_t now = reactor_.now_ms();
  if (stopping() || d.head == nullptr || now < d.paused_until) return nullptr;
  if (!d.bucket.take(now)) {
    arm_dest_timer(d, d.bucket.wait_ms(now));
    return nullptr;
  }
  DeliveryJob* j = d.head;
  d.head = j->next;
  if (d.head == nullptr) d.tail = nullptr;
  --d.ready;
  j->next = nullptr;
  j->running = true;
  ++j->message->jobs_running;
  return j;
}

void QueueManager::open_connection(Dest& d) {
  const Destination& route = routes_.destinations()[d.index];
  const std::uint64_t now = reactor_.now_ms();
  // The lowest priority with a hop that is up; round robin among its hops.
  std::size_t chosen = route.hops.size();
  for (std::size_t i = 0; i < route.hops.size() && chosen == route.hops.size();) {
    const std::uint32_t prio = route.hops[i].priority;
    std::size_t end = i;
    while (end < route.hops.size() && route.hops[end].priority == prio) ++end;
    const std::size_t n = end - i;
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t h = i + (d.next_hop + k) % n;
      if (d.hop_down_until[h] <= now) {
        chosen = h;
        d.next_hop = (d.next_hop + k + 1) % n;
        break;
      }
    }
    i = end;
  }
  if (chosen == route.hops.size()) {
    defer_all_ready(d, "4.4.1 no next hop answers (all are down)");
    return;
  }
  auto handler = std::make_unique<OutboundConnection>(*this, d.index, chosen);
  if (reactor_.connect(route.hops[chosen].address, std::move(handler),
                       config_.delivery.connect_timeout_ms) == nullptr) {
    defer_all_ready(d, "4.3.0 cannot open a connection (out of file descriptors?)");
    return;
  }
  ++d.open;
  ++d.connecting;
  metrics_.add(M::outbound_connections_active, 1);
  if (auto* c = cells(d.index)) c->add(c->connections, 1);
}

void QueueManager::connection_idle(OutboundConnection* c) {
  Dest& d = *dests_[c->destination()];
  d.idle.push_back(c);
  if (d.ready > 0) kick(c->destination());
}

void QueueManager::connection_quitting(OutboundConnection* c) {
  Dest& d = *dests_[c->destination()];
  for (std::size_t i = 0; i < d.idle.size(); ++i) {
    if (d.idle[i] == c) {
      d.idle[i] = d.idle.back();
      d.idle.pop_back();
      return;
    }
  }
}

std::uint32_t QueueManager::idle_timeout_ms() const { return config_.delivery.idle_timeout_ms; }

bool QueueManager::tls_verify() const { return config_.delivery.tls_verify; }

void QueueManager::connection_up(OutboundConnection* c) {
  Dest& d = *dests_[c->destination()];
  if (d.connecting > 0) --d.connecting;
  metrics_.inc(M::outbound_connections_total[M::outbound_connections_total_event::opened]);
}

void QueueManager::connection_closed(OutboundConnection* c, bool was_up, bool hop_failed,
                                     bool throttled, std::string_view why) {
  Dest& d = *dests_[c->destination()];
  --d.open;
  if (!was_up && d.connecting > 0) --d.connecting;
  metrics_.add(M::outbound_connections_active, -1);
  if (auto* dc = cells(d.index)) dc->add(dc->connections, -1);
  connection_quitting(c);
  const std::uint64_t now = reactor_.now_ms();
  if (hop_failed) {
    metrics_.inc(M::outbound_connections_total[M::outbound_connections_total_event::failed]);
    const std::uint64_t down = config_.delivery.retry.first_delay_ms < kMaxHopDownMs
                                   ? config_.delivery.retry.first_delay_ms
                                   : kMaxHopDownMs;
    d.hop_down_until[c->hop()] = now + down;
  }
  if (throttled) {
    metrics_.inc(M::throttles_total);
    d.window.on_throttle();
    d.paused_until = now + config_.delivery.throttle_pause_ms;
  }
  if (d.ready > 0 && !stopping()) {
    if (hop_failed && d.open == 0) {
      // Try the next hop at once; if none is up, the jobs are deferred with this reason.
      const std::size_t before = d.ready;
      open_connection(d);
      if (d.ready < before) return;
      (void)why;
    }
    kick(c->destination());
  }
  if (hop_failed && d.ready > 0 && d.open == 0 && !stopping()) defer_all_ready(d, why);
}

// ---------------------------------------------------------------------------- outcomes

void QueueManager::job_done(DeliveryJob* j, std::span<const RcptOutcome> outcomes,
                            std::string_view hop) {
  QueuedMessage* m = j->message;
  Dest& d = *dests_[j->destination];
  ++m->holds;  // a spool failure may call back at once: m must outlive this call
  j->running = false;
  --m->jobs_running;
  metrics_.inc(M::transactions_total);
  const std::uint64_t now_unix = unix_ms();
  changed_.clear();  // recipients with a new state for the outcome record
  failed_.clear();
  bool throttled = false;
  std::uint16_t max_attempts = 0;
  std::size_t keep = 0;
  using O = M::deliveries_total_outcome;
  DestinationMetrics::Cells* dc = cells(j->destination);
  for (std::size_t i = 0; i < j->rcpts.size(); ++i) {
    const std::uint32_t idx = j->rcpts[i];
    QueuedRecipient& r = m->rcpts[idx];
    const RcptOutcome o = i < outcomes.size() ? outcomes[i] : RcptOutcome{};
    r.last_code = o.code;
    r.last_reply.assign(o.text);
    r.last_hop.assign(hop);
    switch (o.result) {
      case RcptResult::delivered:
        ++r.attempts;
        r.state = spool::RecipientState::delivered;
        changed_.push_back(idx);
        --m->pending;
        metrics_.inc(M::deliveries_total[O::delivered]);
        if (dc != nullptr) {
          dc->inc(dc->delivered);
          dc->add(dc->queued, -1);
        }
        metrics_.observe(M::delivery_latency_seconds,
                         std::chrono::milliseconds(now_unix > m->arrival_unix_ms
                                                       ? now_unix - m->arrival_unix_ms
                                                       : 0));
        d.window.on_success();
        break;
      case RcptResult::failed:
        ++r.attempts;
        r.state = spool::RecipientState::failed;
        failed_.push_back(idx);
        --m->pending;
        metrics_.inc(M::deliveries_total[O::failed]);
        if (dc != nullptr) {
          dc->inc(dc->failed);
          dc->add(dc->queued, -1);
        }
        break;
      case RcptResult::deferred:
      case RcptResult::throttled:
        ++r.attempts;
        r.state = spool::RecipientState::deferred;
        if (r.attempts > max_attempts) max_attempts = r.attempts;
        metrics_.inc(M::deliveries_total[o.result == RcptResult::throttled ? O::throttled
                                                                             : O::deferred]);
        throttled = throttled || o.result == RcptResult::throttled;
        if (dc != nullptr) dc->inc(dc->deferred);
        j->rcpts[keep++] = idx;
        break;
    }
  }
  j->rcpts.resize(keep);
  const std::size_t finals = changed_.size() + failed_.size();
  pending_rcpts_ -= finals;
  metrics_.add(M::queue_recipients, -static_cast<std::int64_t>(finals));
  if (throttled) {
    metrics_.inc(M::throttles_total);
    d.window.on_throttle();
    d.paused_until = reactor_.now_ms() + config_.delivery.throttle_pause_ms;
  }
  if (!failed_.empty()) {
    bounce(m, failed_);  // writes the bounce, then the failed recipients' outcomes
  }
  // What stays waits for its retry time (throttled recipients too: the destination's
  // window and pause slow the rest of its mail).
  if (j->rcpts.empty()) {
    free_job(j);
  } else {
    for (std::uint32_t idx : j->rcpts) {
      if (m->rcpts[idx].state == spool::RecipientState::deferred) changed_.push_back(idx);
    }
    defer(j, retry_delay_ms(config_.delivery.retry, max_attempts, random01()));
  }
  if (!changed_.empty()) write_outcomes(m, changed_);
  --m->holds;
  maybe_finish(m);
}

// ---------------------------------------------------------------------------- retries

void QueueManager::defer(DeliveryJob* j, std::uint64_t delay_ms) {
  QueuedMessage* m = j->message;
  const std::uint64_t now_unix = unix_ms();
  if (now_unix + delay_ms > m->arrival_unix_ms + config_.delivery.retry.lifetime_ms) {
    if (now_unix >= m->arrival_unix_ms + config_.delivery.retry.lifetime_ms) {
      fail_expired(j);
      return;
    }
    // The last try comes when the lifetime ends.
    delay_ms = m->arrival_unix_ms + config_.delivery.retry.lifetime_ms - now_unix;
  }
  if (delay_ms == 0) delay_ms = config_.delivery.retry.first_delay_ms;
  for (std::uint32_t idx : j->rcpts) {
    m->rcpts[idx].next_attempt_unix_ms = now_unix + delay_ms;
  }
  // A message waiting for a retry does not keep receive buffers.
  if (m->in_memory && m->jobs_running == 0) m->release_memory();
  wheel_.schedule(*j, reactor_.now_ms() + delay_ms);
  metrics_.add(M::queue_deferred_jobs, 1);
  arm_retry_timer();
}

void QueueManager::arm_retry_timer() {
  const std::uint64_t next = wheel_.next_wakeup_ms();
  if (next == UINT64_MAX) {
    retry_timer_.cancel();
    return;
  }
  reactor_.timers().arm_at(retry_timer_, next);
}

void QueueManager::on_retry_due(WheelNode& n) {
  auto* j = static_cast<DeliveryJob*>(&n);
  metrics_.add(M::queue_deferred_jobs, -1);
  if (stopping()) return;
  make_ready(j);
}

void QueueManager::defer_all_ready(Dest& d, std::string_view why) {
  // The destination cannot be reached now: every waiting job is deferred (a retry later),
  // as Postfix does with a dead destination.
  while (d.head != nullptr) {
    DeliveryJob* j = d.head;
    d.head = j->next;
    --d.ready;
    j->next = nullptr;
    QueuedMessage* m = j->message;
    ++m->holds;
    std::uint16_t max_attempts = 0;
    changed_.clear();
    for (std::uint32_t idx : j->rcpts) {
      QueuedRecipient& r = m->rcpts[idx];
      r.state = spool::RecipientState::deferred;
      ++r.attempts;
      if (r.attempts > max_attempts) max_attempts = r.attempts;
      r.last_code = 0;
      r.last_reply.assign(why);
      changed_.push_back(idx);
    }
    metrics_.inc(M::deliveries_total[M::deliveries_total_outcome::deferred], j->rcpts.size());
    if (auto* c = cells(j->destination)) c->inc(c->deferred, j->rcpts.size());
    defer(j, retry_delay_ms(config_.delivery.retry, max_attempts, random01()));
    if (!changed_.empty()) write_outcomes(m, changed_);
    --m->holds;
    maybe_finish(m);
  }
  d.tail = nullptr;
}

void QueueManager::fail_expired(DeliveryJob* j) {
  QueuedMessage* m = j->message;
  ++m->holds;
  failed_.clear();
  for (std::uint32_t idx : j->rcpts) {
    QueuedRecipient& r = m->rcpts[idx];
    r.state = spool::RecipientState::failed;
    --m->pending;
    failed_.push_back(idx);
    // RFC 3463 X.4.7: delivery time expired; the last answer stays in the report.
    if (r.last_reply.empty()) r.last_reply = "no answer";
    r.last_reply.insert(0, "5.4.7 delivery time expired; last: ");
    r.last_code = 0;  // the report's status is 5.4.7; the last reply stays in its text
  }
  metrics_.inc(M::deliveries_total[M::deliveries_total_outcome::expired], failed_.size());
  if (auto* c = cells(j->destination)) {
    c->inc(c->failed, failed_.size());
    c->add(c->queued, -static_cast<std::int64_t>(failed_.size()));
  }
  pending_rcpts_ -= failed_.size();
  metrics_.add(M::queue_recipients, -static_cast<std::int64_t>(failed_.size()));
  free_job(j);
  bounce(m, failed_);
  --m->holds;
  maybe_finish(m);
}

// ---------------------------------------------------------------------------- the spool

void QueueManager::write_outcomes(QueuedMessage* m, std::span<const std::uint32_t> rcpts) {
  OutcomeWrite* w = free_writes_;
  if (w != nullptr) {
    free_writes_ = w->next_free;
  } else {
    all_writes_.push_back(std::make_unique<OutcomeWrite>());
    w = all_writes_.back().get();
  }
  w->owner = this;
  w->message = m;
  w->has_final = false;
  w->entries.clear();
  for (std::uint32_t idx : rcpts) {
    const QueuedRecipient& r = m->rcpts[idx];
    w->entries.push_back(spool::RecipientOutcome{idx, r.state, r.attempts,
                                                 r.state == spool::RecipientState::deferred
                                                     ? r.next_attempt_unix_ms
                                                     : 0});
    w->has_final = w->has_final || spool::is_final(r.state);
  }
  w->payload.clear();
  spool::encode_outcome(m->id, w->entries, w->payload);
  spool::PendingMessage& pm = w->pm;
  pm.type = spool::RecordType::outcome;
  pm.iov.clear();
  pm.iov.push_back(iovec{nullptr, 0});
  pm.iov.push_back(iovec{w->payload.data(), w->payload.size()});
  pm.payload_bytes = w->payload.size();
  pm.payload_crc = spool::crc32c(w->payload);
  pm.done = &QueueManager::on_outcome_written;
  pm.owner = w;
  ++m->outcome_writes;
  writer_.append(pm);
}

void QueueManager::on_outcome_written(spool::PendingMessage& pm, int result) {
  auto* w = static_cast<OutcomeWrite*>(pm.owner);
  w->owner->outcome_written(w, result);
}

void QueueManager::outcome_written(OutcomeWrite* w, int result) {
  QueuedMessage* m = w->message;
  --m->outcome_writes;
  if (result != 0) {
    // The states stand in memory; only a restart would try those recipients again.
    if (!write_error_logged_) {
      write_error_logged_ = true;
      std::fprintf(stderr,
                   "ringmta-relay: cannot log delivery outcomes in the spool (%s): recipients "
                   "delivered meanwhile would be delivered again after a restart\n",
                   std::strerror(-result));
    }
  } else if (w->has_final && m->pending > 0) {
    // A final outcome of a message still in the queue: its segment must stay as long as
    // the message does.
    const spool::SegmentKey k{writer_.thread(), w->pm.segment_sequence};
    if (m->outcome_segments.empty() || m->outcome_segments.back() != k) {
      segments_.pin(k);
      m->outcome_segments.push_back(k);
    }
  }
  w->message = nullptr;
  w->next_free = free_writes_;
  free_writes_ = w;
  maybe_finish(m);
}

void QueueManager::maybe_finish(QueuedMessage* m) {
  if (m->pending != 0 || m->jobs != 0 || m->outcome_writes != 0 || m->bounces_writing != 0 ||
      m->holds != 0) {
    return;
  }
  // Every recipient is final and on disk: the message's records may go.
  segments_.unpin(m->segment);
  for (const spool::SegmentKey& k : m->outcome_segments) segments_.unpin(k);
  totals_.bytes.fetch_sub(m->record_bytes, std::memory_order_relaxed);
  totals_.messages.fetch_sub(1, std::memory_order_relaxed);
  --messages_;
  metrics_.add(M::queue_messages, -1);
  recycle(m);
}

// ---------------------------------------------------------------------------- stopping

void QueueManager::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  retry_timer_.cancel();
  sweep_timer_.cancel();
  for (auto& d : dests_) {
    d->timer.cancel();
    std::vector<OutboundConnection*> idle;
    idle.swap(d->idle);
    for (OutboundConnection* c : idle) c->quit();
  }
}

QueueStats QueueManager::stats() const {
  QueueStats s;
  s.messages = messages_;
  s.recipients_pending = pending_rcpts_;
  s.deferred_jobs = wheel_.size();
  for (const auto& d : dests_) s.connections_open += d->open;
  return s;
}

}  // namespace ringmta::relay
