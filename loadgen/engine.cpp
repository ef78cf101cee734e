// The load generator's engine; see engine.hpp. One LoadThread per reactor thread owns its
// connections (ClientConn), its share of the load, its statistics and its ledger; they are
// merged only after the threads have ended, so nothing is shared while the load runs but a
// few relaxed counters for the progress line.
#include "loadgen/engine.hpp"

#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <ctime>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/buf/line_log.hpp"
#include "core/io/tls.hpp"
#include "core/io/worker_group.hpp"
#include "core/smtp/client_session.hpp"

namespace ringmta::loadgen {
namespace {

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t unix_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

constexpr std::string_view kDot = ".\r\n";
constexpr std::uint64_t kTickMs = 1;
constexpr std::uint64_t kMaxBackoffMs = 1000;

struct ReplyCount {
  std::uint16_t code;
  smtp::EnhancedCode enhanced;
  std::uint64_t count;
};

// Figures of one thread, merged into Results at the end.
struct ThreadStats {
  std::uint64_t started = 0, accepted = 0, tempfail = 0, permfail = 0, errors = 0;
  std::uint64_t warmup_messages = 0, interrupted = 0;
  std::uint64_t recipients_accepted = 0, recipients_rejected = 0, bytes_sent = 0;
  std::uint64_t connections_opened = 0, pipelined = 0, bdat = 0;
  std::uint64_t tls_handshakes = 0, tls_resumed = 0, tls_handshake_cpu_ns = 0;
  std::uint64_t waited = 0, max_wait_ns = 0;
  std::array<std::uint64_t, kConnErrorCount> conn_errors{};
  std::vector<ReplyCount> replies;
  std::array<stats::Histogram, kPhaseCount> latency;
  std::vector<SecondStats> timeline;

  void count_reply(const smtp::Reply& r) {
    for (ReplyCount& rc : replies) {
      if (rc.code == r.code && rc.enhanced == r.enhanced) {
        ++rc.count;
        return;
      }
    }
    replies.push_back({r.code, r.enhanced, 1});  // a new kind of reply: rare
  }
  SecondStats& second(std::size_t s) {
    while (timeline.size() <= s) timeline.emplace_back();
    return timeline[s];
  }
};

class LoadThread;

class ClientConn final : public io::ConnectionHandler, public smtp::ClientHandler {
 public:
  ClientConn(LoadThread& t, const smtp::ClientConfig& cfg, const MessageFactory& f);

  void on_connect(io::Connection& c) override;
  void on_recv(io::Connection& c, io::Slice data) override;
  void on_sent(io::Connection& c, std::size_t n) override;
  void on_timeout(io::Connection& c) override;
  void on_shutdown(io::Connection& c) override;
  void on_close(io::Connection& c, int err) override;

  void on_greeting(const smtp::Reply& r) override;
  void on_ehlo(const smtp::Reply& r) override;
  void on_rcpt_reply(std::size_t, const smtp::Reply&) override {}
  void on_transaction_done(const smtp::TransactionResult& r) override;
  void on_closed(const smtp::Reply&, std::string_view why) override;

  void attach(io::Connection* c, std::uint64_t t_connect) {
    conn_ = c;
    t_connect_ = t_connect;
  }
  // Starts the next message; intended_ns is its scheduled time (open loop) or now.
  void start_message(std::uint64_t intended_ns);
  void quit();
  // Closed loop with --think-time: the next message after a pause.
  void start_after(std::uint32_t us);
  bool in_transaction() const { return in_txn_; }
  std::uint32_t done() const { return done_; }
  bool listed_idle = false;  // in the thread's idle list

 private:
  void after_input();
  void pump();
  // Fills segs_ with what goes next (commands, or commands and the body); false: nothing.
  bool build_flight();
  void send_segments();
  // STARTTLS: the session dropped everything behind the 220; TLS takes over from here.
  void start_tls();
  void check_tls();
  // The handshake ended (done, failed or timed out): its CPU time into the figures, once.
  void count_handshake_cpu();
  void finish(const smtp::TransactionResult& r, std::uint64_t t_final);

  LoadThread& t_;
  io::Connection* conn_ = nullptr;
  smtp::ClientSession session_;
  MessageState state_;
  Message msg_{};
  bool in_txn_ = false;
  bool counted_ = false;     // started after warm-up: in the figures
  bool ehlo_recorded_ = false;
  std::uint32_t done_ = 0;   // transactions on this connection
  std::uint64_t t_connect_ = 0, t_connected_ = 0, t_greeting_ = 0;
  std::uint64_t t_intended_ = 0, t_started_ = 0, t_body_ = 0, t_eod_ = 0;
  // The flight in progress: up to four segments, advanced on partial sends.
  iovec segs_[4]{};
  unsigned nsegs_ = 0;
  std::size_t out_in_flight_ = 0;  // bytes of session output in this flight
  bool body_in_flight_ = false;
  bool sent_body_ = false;
  bool ready_reported_ = false;
  io::Timer think_;
  std::unique_ptr<io::TlsStream> tls_;  // after STARTTLS
  bool tls_up_ = false;
  bool tls_cpu_counted_ = false;
  bool tls_sending_ = false;        // the send in flight is TLS ciphertext
  bool tls_body_pending_ = false;   // the body is in ciphertext not yet sent
  std::uint64_t t_tls_ = 0;
  bool session_error_ = false;      // the session gave up (TLS or AUTH): an error
  ConnError session_why_ = ConnError::other;
};

class LoadThread {
 public:
  LoadThread(io::Reactor& r, const LoadConfig& cfg, const MessageFactory& f, unsigned index,
             unsigned threads, std::uint64_t run_start_ns);

  void start();
  void on_ready(ClientConn& c);
  void on_conn_closed(ClientConn& c, bool had_transaction, ConnError why, bool error);
  void record(const ClientConn& c);

  io::Reactor& reactor() { return r_; }
  const LoadConfig& config() const { return cfg_; }
  const MessageFactory& factory() const { return factory_; }
  ThreadStats& stats() { return st_; }
  buf::LineLog* ledger() { return ledger_.get(); }
  // --starttls: the shared client context and this thread's session for resumption.
  const io::TlsContext* tls() const { return tls_; }
  io::TlsSessionCache& tls_cache() { return tls_cache_; }
  void set_tls(const io::TlsContext* t) { tls_ = t; }
  std::uint64_t run_start() const { return run_start_; }
  std::uint64_t warmup_end() const { return warmup_end_; }
  std::uint64_t next_seq() {
    const std::uint64_t s = seq_;
    seq_ += stride_;
    return s;
  }
  bool counting(std::uint64_t t) const { return t >= warmup_end_; }
  void note_started() { ++started_; }
  void flush() {
    if (ledger_) ledger_->flush();
  }

  // Read by the main thread for the progress line.
  std::atomic<std::uint64_t> p_accepted{0}, p_failed{0}, p_errors{0}, p_p50{0}, p_p99{0};

 private:
  static void on_tick(io::Timer& t, void* ctx);
  void tick();
  void open_connection();
  bool may_start() const;
  void maybe_finish();
  unsigned wanted_connections() const;

  io::Reactor& r_;
  const LoadConfig& cfg_;
  const MessageFactory& factory_;
  smtp::ClientConfig client_cfg_;
  unsigned index_;
  std::uint64_t seq_, stride_;
  std::uint64_t quota_;          // messages this thread may start (UINT64_MAX: no cap)
  std::uint64_t started_ = 0;
  std::uint64_t run_start_, warmup_end_, issue_end_, hard_end_;
  double rate_ = 0;              // this thread's share, msg/s
  unsigned conn_cap_;            // this thread's connections (closed) or cap (open)
  unsigned open_ = 0;            // connections open or opening
  std::vector<ClientConn*> idle_;
  std::vector<std::uint64_t> pending_;  // open loop: scheduled times waiting for a connection
  std::size_t pending_head_ = 0;
  std::uint64_t next_arrival_ = 0;
  std::mt19937_64 rng_;
  io::Timer tick_;
  std::uint64_t backoff_ms_ = 0;
  std::uint64_t reconnect_at_ = 0;
  std::uint64_t published_second_ = 0;
  bool stopping_ = false;
  bool finished_ = false;
  bool ever_ready_ = false;  // some connection reached the point of sending a message
  ThreadStats st_;
  std::unique_ptr<buf::LineLog> ledger_;
  const io::TlsContext* tls_ = nullptr;
  io::TlsSessionCache tls_cache_;
};

// ---------------------------------------------------------------------------- ClientConn

ClientConn::ClientConn(LoadThread& t, const smtp::ClientConfig& cfg, const MessageFactory& f)
    : t_(t), session_(cfg, *this), state_(f.new_state()) {
  think_.set_callback(
      [](io::Timer&, void* ctx) {
        auto* self = static_cast<ClientConn*>(ctx);
        self->start_message(now_ns());
      },
      this);
}

void ClientConn::on_connect(io::Connection&) {
  t_connected_ = now_ns();
  if (t_.counting(t_connected_)) {
    t_.stats().latency[static_cast<int>(Phase::connect)].record(t_connected_ - t_connect_);
  }
  conn_->set_deadline(session_.timeout_ms());
}

void ClientConn::on_greeting(const smtp::Reply&) {
  t_greeting_ = now_ns();
  if (t_.counting(t_greeting_)) {
    t_.stats().latency[static_cast<int>(Phase::banner)].record(t_greeting_ - t_connected_);
  }
}

void ClientConn::on_ehlo(const smtp::Reply&) {
  if (ehlo_recorded_) return;  // the EHLO over TLS is part of the session set-up, not timed
  ehlo_recorded_ = true;
  const std::uint64_t t = now_ns();
  if (t_.counting(t)) t_.stats().latency[static_cast<int>(Phase::ehlo)].record(t - t_greeting_);
}

void ClientConn::on_closed(const smtp::Reply&, std::string_view why) {
  // Closed by the session itself before any message: TLS or AUTH trouble is an error.
  if (why.find("STARTTLS") != std::string_view::npos) {
    session_error_ = true;
    session_why_ = ConnError::tls;
  } else if (why.find("AUTH") != std::string_view::npos) {
    session_error_ = true;
    session_why_ = ConnError::auth;
  }
}

void ClientConn::on_recv(io::Connection&, io::Slice data) {
  if (tls_) {
    tls_->feed(data.view());
    check_tls();
    if (tls_ && tls_->established()) {
      const std::string_view p = tls_->plaintext();
      session_.feed(p);
      tls_->consume_plaintext(p.size());
    }
  } else {
    session_.feed(data.view());
    if (session_.wants_tls()) start_tls();
  }
  after_input();
}

void ClientConn::start_tls() {
  if (t_.tls() == nullptr) {
    session_.on_connection_lost();
    return;
  }
  t_tls_ = now_ns();
  tls_ = std::make_unique<io::TlsStream>(*t_.tls(), &t_.tls_cache());
  tls_->start();  // the ClientHello, sent by pump()
}

void ClientConn::check_tls() {
  if (!tls_up_ && tls_->established()) {
    tls_up_ = true;
    const std::uint64_t t = now_ns();
    if (t_.counting(t)) t_.stats().latency[static_cast<int>(Phase::tls)].record(t - t_tls_);
    ++t_.stats().tls_handshakes;
    if (tls_->info().resumed) ++t_.stats().tls_resumed;
    count_handshake_cpu();
    session_.tls_started();  // EHLO again, over TLS
    return;
  }
  if (tls_->status() == io::TlsStatus::failed || tls_->status() == io::TlsStatus::closed) {
    if (!tls_up_) {
      session_error_ = true;
      session_why_ = ConnError::tls;
      count_handshake_cpu();
    }
    session_.on_connection_lost();
  }
}

void ClientConn::count_handshake_cpu() {
  if (tls_cpu_counted_) return;
  tls_cpu_counted_ = true;
  t_.stats().tls_handshake_cpu_ns += tls_->handshake_cpu_ns();
}

void ClientConn::after_input() {
  pump();
  if (session_.closed()) {
    if (!conn_->sending()) conn_->close();  // QUIT answered, or the session ended
    return;
  }
  if (session_.ready() && !in_txn_ && !ready_reported_) {
    ready_reported_ = true;
    t_.on_ready(*this);
  }
  if (!conn_->closing()) conn_->set_deadline(session_.timeout_ms());
}

void ClientConn::start_message(std::uint64_t intended_ns) {
  ready_reported_ = false;
  const std::uint64_t seq = t_.next_seq();
  msg_ = t_.factory().make(seq, state_);
  t_intended_ = intended_ns;
  t_started_ = now_ns();
  counted_ = t_.counting(t_intended_);
  in_txn_ = true;
  sent_body_ = false;
  t_.note_started();
  if (counted_) {
    ++t_.stats().started;
    if (session_.capabilities().pipelining && t_.config().pipelining) ++t_.stats().pipelined;
    if (session_.will_use_bdat()) ++t_.stats().bdat;
  } else {
    ++t_.stats().warmup_messages;
  }
  smtp::Envelope env;
  env.sender = msg_.sender;
  env.recipients = msg_.recipients;
  session_.send_message(env, msg_.header.size() + msg_.body.size());
  pump();
  conn_->set_deadline(session_.timeout_ms());
}

void ClientConn::start_after(std::uint32_t us) {
  ready_reported_ = false;
  t_.reactor().timers().arm(think_, (us + 999) / 1000);
}

void ClientConn::quit() {
  ready_reported_ = true;
  session_.quit();
  pump();
}

void ClientConn::pump() {
  if (conn_ == nullptr || conn_->closing() || conn_->sending()) return;
  if (!tls_) {
    if (build_flight()) send_segments();
    return;
  }
  // Over TLS: what the session has to send becomes records now (its output is free again
  // at once); the ciphertext goes out from the stream's buffer.
  for (int i = 0; i < 64 && tls_->established() && build_flight(); ++i) {
    tls_->writev(segs_, nsegs_);
    nsegs_ = 0;
    session_.consume_output(out_in_flight_);
    out_in_flight_ = 0;
    if (body_in_flight_) {
      body_in_flight_ = false;
      tls_body_pending_ = true;  // timed when its ciphertext has gone
    }
  }
  const std::string_view ct = tls_->next_send();
  if (!ct.empty()) {
    tls_sending_ = true;
    conn_->send(ct);
  }
}

bool ClientConn::build_flight() {
  const std::string_view out = session_.output();
  nsegs_ = 0;
  if (session_.body_due()) {
    const bool bdat = session_.will_use_bdat();
    if (!bdat && !out.empty()) {
      // Commands still to go before the body: send them first.
      segs_[nsegs_++] = iovec{const_cast<char*>(out.data()), out.size()};
      out_in_flight_ = out.size();
      return true;
    }
    // BDAT: the pipelined commands end with "BDAT n LAST" and the chunk follows at once.
    // DATA: the body is dot-stuffed already (no line starts with '.') and ends in CRLF.
    if (!out.empty()) segs_[nsegs_++] = iovec{const_cast<char*>(out.data()), out.size()};
    out_in_flight_ = out.size();
    segs_[nsegs_++] = iovec{const_cast<char*>(msg_.header.data()), msg_.header.size()};
    segs_[nsegs_++] = iovec{const_cast<char*>(msg_.body.data()), msg_.body.size()};
    const std::size_t before = session_.output().size();
    session_.body_sent();
    if (!bdat) {
      segs_[nsegs_++] = iovec{const_cast<char*>(kDot.data()), kDot.size()};
      // The session queued its own ".\r\n" after what is in flight: drop it once the
      // flight is done (its bytes sit behind out_in_flight_).
      out_in_flight_ += session_.output().size() - before;
    }
    t_body_ = now_ns();
    body_in_flight_ = true;
    sent_body_ = true;
    return true;
  }
  if (out.empty()) return false;
  segs_[nsegs_++] = iovec{const_cast<char*>(out.data()), out.size()};
  out_in_flight_ = out.size();
  return true;
}

void ClientConn::send_segments() {
  unsigned first = 0;
  while (first < nsegs_ && segs_[first].iov_len == 0) ++first;
  if (first == nsegs_) return;
  if (nsegs_ - first == 1) {
    conn_->send(std::string_view(static_cast<char*>(segs_[first].iov_base),
                                 segs_[first].iov_len));
  } else {
    conn_->sendv(segs_ + first, nsegs_ - first);
  }
}

void ClientConn::on_sent(io::Connection&, std::size_t n) {
  if (tls_sending_) {
    tls_sending_ = false;
    tls_->sent(n);
    if (tls_body_pending_ && tls_->pending_output() == 0) {
      tls_body_pending_ = false;
      t_eod_ = now_ns();
      if (counted_) {
        t_.stats().latency[static_cast<int>(Phase::envelope)].record(t_body_ - t_started_);
      }
    }
    after_input();
    return;
  }
  // Advance over what went out; a partial send continues with the rest.
  for (unsigned i = 0; i < nsegs_ && n > 0; ++i) {
    const std::size_t take = n < segs_[i].iov_len ? n : segs_[i].iov_len;
    segs_[i].iov_base = static_cast<char*>(segs_[i].iov_base) + take;
    segs_[i].iov_len -= take;
    n -= take;
  }
  for (unsigned i = 0; i < nsegs_; ++i) {
    if (segs_[i].iov_len != 0) {
      send_segments();
      return;
    }
  }
  nsegs_ = 0;
  session_.consume_output(out_in_flight_);
  out_in_flight_ = 0;
  if (body_in_flight_) {
    body_in_flight_ = false;
    t_eod_ = now_ns();
    if (counted_) {
      t_.stats().latency[static_cast<int>(Phase::envelope)].record(t_body_ - t_started_);
    }
  }
  after_input();
}

void ClientConn::on_transaction_done(const smtp::TransactionResult& r) {
  finish(r, now_ns());
}

void ClientConn::finish(const smtp::TransactionResult& r, std::uint64_t t_final) {
  in_txn_ = false;
  ++done_;
  ThreadStats& st = t_.stats();
  const bool delivered = r.delivered;
  const bool error = r.ending == smtp::Ending::timeout || r.ending == smtp::Ending::protocol ||
                     r.ending == smtp::Ending::closed;
  // The timeline has every message, warm-up included (its seconds are marked by warmup_s);
  // every other figure only those started after the warm-up.
  SecondStats& sec = st.second((t_final - t_.run_start()) / 1'000'000'000ull);
  const bool permanent = r.data.code >= 500 || (r.data.code == 0 && r.mail.code >= 500);
  if (delivered) ++sec.accepted;
  else if (error) ++sec.errors;
  else if (permanent) ++sec.permfail;
  else ++sec.tempfail;
  if (counted_) {
    if (delivered) {
      ++st.accepted;
      st.bytes_sent += msg_.header.size() + msg_.body.size();
      if (sent_body_ && t_eod_ >= t_body_) {
        // Open loop: measured from when the end of data would have gone had the message
        // started on schedule, so the time it waited (a stalled server, no free connection)
        // counts, as in wrk2; closed loop: from when it went.
        std::uint64_t acc = t_final - t_eod_;
        if (t_.config().rate > 0 && t_started_ > t_intended_) acc += t_started_ - t_intended_;
        st.latency[static_cast<int>(Phase::accept)].record(acc);
        sec.accept_latency.record(acc);
      }
    } else if (error) {
      ++st.errors;
      const ConnError e = r.ending == smtp::Ending::timeout    ? ConnError::reply_timeout
                          : r.ending == smtp::Ending::protocol ? ConnError::protocol
                                                               : ConnError::closed;
      ++st.conn_errors[static_cast<int>(e)];
    } else if (permanent) {
      ++st.permfail;
    } else {
      ++st.tempfail;
    }
    st.recipients_accepted += r.accepted;
    st.recipients_rejected += r.rejected;
    if (!error) st.count_reply(r.data.code != 0 ? r.data : r.mail);
    st.latency[static_cast<int>(Phase::transaction)].record(t_final - t_intended_);
    if (delivered) t_.p_accepted.fetch_add(1, std::memory_order_relaxed);
    else if (error) t_.p_errors.fetch_add(1, std::memory_order_relaxed);
    else t_.p_failed.fetch_add(1, std::memory_order_relaxed);
  }
  if (buf::LineLog* l = t_.ledger()) {
    // id, code, enhanced, unix ms, body sha256, accepted/recipients, text (one line).
    const smtp::Reply& fr = r.data.code != 0 ? r.data : r.mail;
    l->add(msg_.id).add('\t').add_uint(error ? 0 : fr.code).add('\t');
    if (fr.enhanced.present() && !error) {
      l->add_uint(fr.enhanced.cls).add('.').add_uint(fr.enhanced.subject).add('.');
      l->add_uint(fr.enhanced.detail);
    } else {
      l->add('-');
    }
    l->add('\t').add_uint(unix_ms()).add('\t').add(msg_.body_sha256_hex).add('\t');
    l->add_uint(r.accepted).add('/').add_uint(msg_.recipients.size()).add('\t');
    if (error) {
      l->add(r.ending == smtp::Ending::timeout    ? "connection error: reply timeout"
             : r.ending == smtp::Ending::protocol ? "connection error: protocol error"
                                                  : "connection error: connection closed");
    } else {
      for (const char c : fr.text) l->add(c == '\t' || c == '\n' || c == '\r' ? ' ' : c);
    }
    l->end_line();
  }
}

void ClientConn::on_timeout(io::Connection&) {
  if (tls_ && !tls_up_) {
    session_error_ = true;  // the handshake did not finish in time
    session_why_ = ConnError::tls;
    count_handshake_cpu();
  }
  session_.on_timeout();
  after_input();
  if (!conn_->closing()) conn_->close();
}

void ClientConn::on_shutdown(io::Connection& c) {
  // The user stopped the run (SIGINT/SIGTERM): a transaction in flight is interrupted.
  if (in_txn_) {
    in_txn_ = false;
    ++t_.stats().interrupted;
  }
  c.close();
}

void ClientConn::on_close(io::Connection&, int err) {
  const bool had_txn = in_txn_;
  if (in_txn_) session_.on_connection_lost();  // reports the transaction as failed
  ConnError why = ConnError::other;
  bool error = err != 0 || had_txn;
  if (err == -ECONNREFUSED) why = ConnError::refused;
  else if (err == -ETIMEDOUT && t_connected_ == 0) why = ConnError::connect_timeout;
  else if (err == -ECONNRESET || err == -EPIPE) why = ConnError::reset;
  else if (had_txn) why = ConnError::closed;
  if (t_connected_ == 0 && err == 0) error = false;
  if (session_error_ && !had_txn) {
    why = session_why_;
    error = true;
  }
  t_.on_conn_closed(*this, had_txn, why, error && !had_txn);
}

// ---------------------------------------------------------------------------- LoadThread

LoadThread::LoadThread(io::Reactor& r, const LoadConfig& cfg, const MessageFactory& f,
                       unsigned index, unsigned threads, std::uint64_t run_start_ns)
    : r_(r),
      cfg_(cfg),
      factory_(f),
      index_(index),
      seq_(index),
      stride_(threads),
      run_start_(run_start_ns),
      rng_(cfg.seed * 7919 + index),
      tick_(&LoadThread::on_tick, this) {
  client_cfg_.helo_name = cfg.helo;
  client_cfg_.use_pipelining = cfg.pipelining;
  client_cfg_.use_bdat = cfg.bdat;
  client_cfg_.starttls = cfg.starttls ? smtp::TlsPolicy::required : smtp::TlsPolicy::none;
  if (!cfg.auth.empty()) {
    const std::size_t colon = cfg.auth.find(':');
    client_cfg_.auth_user = cfg.auth.substr(0, colon);
    client_cfg_.auth_password = cfg.auth.substr(colon + 1);
  }
  client_cfg_.greeting_timeout_ms = client_cfg_.helo_timeout_ms = client_cfg_.mail_timeout_ms =
      client_cfg_.rcpt_timeout_ms = client_cfg_.data_init_timeout_ms =
          client_cfg_.data_xfer_timeout_ms = client_cfg_.data_done_timeout_ms =
              client_cfg_.rset_timeout_ms = client_cfg_.quit_timeout_ms =
                  client_cfg_.starttls_timeout_ms = client_cfg_.auth_timeout_ms =
                      cfg.reply_timeout_ms;
  // This thread's share of the load.
  const auto share = [&](std::uint64_t total) {
    return total / threads + (index < total % threads ? 1 : 0);
  };
  quota_ = cfg.messages != 0 ? share(cfg.messages) : UINT64_MAX;
  conn_cap_ = static_cast<unsigned>(share(cfg.connections));
  if (conn_cap_ == 0) conn_cap_ = 1;
  rate_ = cfg.rate / threads;
  warmup_end_ = run_start_ + static_cast<std::uint64_t>(cfg.warmup_s * 1e9);
  issue_end_ = cfg.duration_s > 0 ? run_start_ + static_cast<std::uint64_t>(cfg.duration_s * 1e9)
                                  : UINT64_MAX;
  const std::uint64_t slack = (static_cast<std::uint64_t>(cfg.reply_timeout_ms) + 5000) *
                              1'000'000ull;
  hard_end_ = issue_end_ == UINT64_MAX ? UINT64_MAX : issue_end_ + slack;
  st_.timeline.reserve(static_cast<std::size_t>(cfg.duration_s) + 8);
  if (!cfg.ledger_path.empty()) {
    ledger_ = std::make_unique<buf::LineLog>(cfg.ledger_path, "ringmta-loadgen: ledger");
  }
  pending_.reserve(1024);
}

unsigned LoadThread::wanted_connections() const {
  if (cfg_.rate > 0) return conn_cap_;  // open loop: a cap, opened on demand
  if (cfg_.ramp_up_s <= 0) return conn_cap_;
  const double f = static_cast<double>(now_ns() - run_start_) / (cfg_.ramp_up_s * 1e9);
  const unsigned n = static_cast<unsigned>(std::ceil(conn_cap_ * (f < 1 ? f : 1)));
  return n == 0 ? 1 : n;
}

void LoadThread::start() {
  next_arrival_ = run_start_;
  if (cfg_.rate <= 0) {
    for (unsigned i = 0; i < wanted_connections() && (quota_ == UINT64_MAX || i < quota_); ++i) {
      open_connection();
    }
  }
  r_.timers().arm(tick_, kTickMs);
}

void LoadThread::open_connection() {
  auto c = std::make_unique<ClientConn>(*this, client_cfg_, factory_);
  ClientConn* raw = c.get();
  const std::uint64_t t = now_ns();
  io::Connection* conn = r_.connect(cfg_.target, std::move(c), cfg_.connect_timeout_ms);
  if (conn == nullptr) {
    ++st_.conn_errors[static_cast<int>(ConnError::other)];
    return;
  }
  raw->attach(conn, t);
  ++open_;
  ++st_.connections_opened;
}

bool LoadThread::may_start() const {
  return !stopping_ && started_ < quota_ && now_ns() < issue_end_;
}

void LoadThread::on_ready(ClientConn& c) {
  backoff_ms_ = 0;  // a connection got through: no more back-off
  ever_ready_ = true;
  if (cfg_.messages_per_connection != 0 && c.done() >= cfg_.messages_per_connection) {
    c.quit();
    return;
  }
  if (cfg_.rate > 0) {
    if (pending_head_ < pending_.size()) {
      const std::uint64_t intended = pending_[pending_head_++];
      const std::uint64_t wait = now_ns() - intended;
      if (counting(intended)) {
        ++st_.waited;
        if (wait > st_.max_wait_ns) st_.max_wait_ns = wait;
      }
      c.start_message(intended);
      return;
    }
    if (stopping_ || started_ >= quota_ || now_ns() >= issue_end_) {
      c.quit();
      return;
    }
    c.listed_idle = true;
    idle_.push_back(&c);
    return;
  }
  if (!may_start()) {
    c.quit();
    return;
  }
  // Closed loop: the next message now, or after the think time.
  if (cfg_.think_time_us != 0 && c.done() != 0) {
    c.start_after(cfg_.think_time_us);
    return;
  }
  c.start_message(now_ns());
}

void LoadThread::on_conn_closed(ClientConn& c, bool, ConnError why, bool error) {
  --open_;
  if (c.listed_idle) {
    for (std::size_t i = 0; i < idle_.size(); ++i) {
      if (idle_[i] == &c) {
        idle_[i] = idle_.back();
        idle_.pop_back();
        break;
      }
    }
  }
  if (error) {
    ++st_.conn_errors[static_cast<int>(why)];
    // Connection trouble: open the next one a little later, longer each time.
    backoff_ms_ = backoff_ms_ == 0 ? 10 : std::min<std::uint64_t>(backoff_ms_ * 2, kMaxBackoffMs);
    reconnect_at_ = r_.now_ms() + backoff_ms_;
  }
  maybe_finish();
}

void LoadThread::on_tick(io::Timer&, void* ctx) { static_cast<LoadThread*>(ctx)->tick(); }

void LoadThread::tick() {
  const std::uint64_t now = now_ns();
  if (now >= hard_end_) {
    stopping_ = true;  // replies overdue: give up on what is in flight
    r_.request_stop();
    return;
  }
  if (started_ >= quota_ || now >= issue_end_) stopping_ = true;
  // Nothing ever got through (the target refuses or never answers): once a connect timeout
  // has passed with every attempt failing, give up rather than retry for ever.
  if (!ever_ready_ && st_.connections_opened > 0 &&
      now - run_start_ > static_cast<std::uint64_t>(cfg_.connect_timeout_ms) * 1'000'000ull &&
      open_ == 0) {
    stopping_ = true;
  }
  if (!stopping_ && cfg_.rate > 0) {
    // Open loop: every arrival due by now, whether or not the server keeps up.
    while (next_arrival_ <= now && started_ + (pending_.size() - pending_head_) < quota_ &&
           next_arrival_ < issue_end_) {
      const std::uint64_t intended = next_arrival_;
      double r = rate_;
      if (cfg_.ramp_up_s > 0) {
        const double f = static_cast<double>(intended - run_start_) / (cfg_.ramp_up_s * 1e9);
        if (f < 1) r = rate_ * (f > 0.01 ? f : 0.01);
      }
      double gap_s = 1.0 / r;
      if (cfg_.arrival == Arrival::poisson) {
        gap_s = std::exponential_distribution<double>(r)(rng_);
      }
      next_arrival_ += static_cast<std::uint64_t>(gap_s * 1e9) + 1;
      if (!idle_.empty()) {
        ClientConn* c = idle_.back();
        idle_.pop_back();
        c->listed_idle = false;
        c->start_message(intended);
      } else {
        if (pending_head_ == pending_.size()) {
          pending_.clear();
          pending_head_ = 0;
        }
        pending_.push_back(intended);
        if (open_ < conn_cap_ && r_.now_ms() >= reconnect_at_) open_connection();
      }
    }
  }
  if (!stopping_ && cfg_.rate <= 0 && r_.now_ms() >= reconnect_at_) {
    // Each open connection will start at least one message: none beyond what is left.
    while (open_ < wanted_connections() && (quota_ == UINT64_MAX || started_ + open_ < quota_)) {
      const unsigned before = open_;
      open_connection();
      if (open_ == before) break;
    }
  }
  // Publish last second's accept latency for the progress line.
  const std::uint64_t sec = (now - run_start_) / 1'000'000'000ull;
  if (sec > published_second_ && sec - 1 < st_.timeline.size()) {
    const stats::Histogram& h = st_.timeline[sec - 1].accept_latency;
    p_p50.store(h.value_at_percentile(50), std::memory_order_relaxed);
    p_p99.store(h.value_at_percentile(99), std::memory_order_relaxed);
    published_second_ = sec;
  }
  if (stopping_) {
    for (ClientConn* c : idle_) {
      c->listed_idle = false;
      c->quit();
    }
    idle_.clear();
    maybe_finish();
  }
  if (!finished_) r_.timers().arm(tick_, kTickMs);
}

void LoadThread::maybe_finish() {
  if (!stopping_ || finished_) return;
  if (open_ == 0) {
    finished_ = true;
    tick_.cancel();
    r_.request_stop();
  }
}

}  // namespace

// ---------------------------------------------------------------------------- run_load

Results run_load(const LoadConfig& config, const MessageFactory& factory, ProgressFn progress,
                 void* progress_ctx) {
  io::ReactorConfig rc;
  if (const std::string missing = io::Reactor::probe_kernel(rc); !missing.empty()) {
    throw std::runtime_error(missing);
  }
  rc.max_connections = config.connections + 64;
  rc.shutdown_grace_ms = 2000;
  std::unique_ptr<io::TlsContext> tls;
  if (config.starttls) {
    io::TlsClientOptions o;
    o.verify = config.tls_verify;
    o.ca_file = config.tls_ca;
    o.resumption = config.tls_resumption;
    tls = io::TlsContext::client(o);  // throws with OpenSSL's reason (a bad CA file)
  }
  io::WorkerGroup group(rc, config.threads, {});
  std::vector<std::unique_ptr<LoadThread>> threads(config.threads);
  rusage ru0{};
  getrusage(RUSAGE_SELF, &ru0);
  const std::uint64_t start = now_ns();
  Results res;
  res.start_unix_ms = unix_ms();

  std::atomic<bool> done{false};
  std::thread reporter;
  if (progress != nullptr) {
    reporter = std::thread([&] {
      while (!done.load()) {
        for (int i = 0; i < 10 && !done.load(); ++i) {
          timespec ts{0, 100'000'000};
          nanosleep(&ts, nullptr);
        }
        if (done.load()) break;
        Progress p;
        p.elapsed_s = static_cast<double>(now_ns() - start) / 1e9;
        for (auto& t : threads) {
          if (!t) continue;
          p.accepted += t->p_accepted.load(std::memory_order_relaxed);
          p.failed += t->p_failed.load(std::memory_order_relaxed);
          p.errors += t->p_errors.load(std::memory_order_relaxed);
          p.last_p50_ns = std::max(p.last_p50_ns, t->p_p50.load(std::memory_order_relaxed));
          p.last_p99_ns = std::max(p.last_p99_ns, t->p_p99.load(std::memory_order_relaxed));
        }
        progress(p, progress_ctx);
      }
    });
  }
  try {
    group.run(
        nullptr, [&](io::Reactor& r) { threads[r.index()]->flush(); }, true,
        [&](io::Reactor& r) {
          threads[r.index()] = std::make_unique<LoadThread>(r, config, factory, r.index(),
                                                            config.threads, start);
          threads[r.index()]->set_tls(tls.get());
          threads[r.index()]->start();
        });
  } catch (...) {
    done.store(true);
    if (reporter.joinable()) reporter.join();
    throw;
  }
  done.store(true);
  if (reporter.joinable()) reporter.join();
  const std::uint64_t end = now_ns();
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);

  // Merge.
  res.run_id = factory.config().run_id;
  res.target = config.target.to_string();
  res.mode = config.rate > 0 ? "open" : "closed";
  res.rate = config.rate;
  res.threads = config.threads;
  res.connections = config.connections;
  res.size_spec = config.size;
  res.seed = config.seed;
  res.warmup_s = config.warmup_s;
  const double total_s = static_cast<double>(end - start) / 1e9;
  res.duration_s = total_s > config.warmup_s ? total_s - config.warmup_s : total_s;
  std::size_t seconds = 0;
  for (auto& t : threads) seconds = std::max(seconds, t->stats().timeline.size());
  res.timeline.resize(seconds);
  for (auto& t : threads) {
    ThreadStats& s = t->stats();
    res.started += s.started;
    res.accepted += s.accepted;
    res.tempfail += s.tempfail;
    res.permfail += s.permfail;
    res.errors += s.errors;
    res.warmup_messages += s.warmup_messages;
    res.recipients_accepted += s.recipients_accepted;
    res.recipients_rejected += s.recipients_rejected;
    res.bytes_sent += s.bytes_sent;
    res.connections_opened += s.connections_opened;
    res.pipelined_transactions += s.pipelined;
    res.bdat_transactions += s.bdat;
    res.tls_handshakes += s.tls_handshakes;
    res.tls_resumed += s.tls_resumed;
    res.tls_handshake_cpu_ns += s.tls_handshake_cpu_ns;
    res.waited_for_connection += s.waited;
    res.max_connection_wait_ns = std::max(res.max_connection_wait_ns, s.max_wait_ns);
    for (std::size_t i = 0; i < kConnErrorCount; ++i) res.conn_errors[i] += s.conn_errors[i];
    for (const ReplyCount& rc2 : s.replies) {
      std::string key = std::to_string(rc2.code);
      if (rc2.enhanced.present()) {
        key += " " + std::to_string(rc2.enhanced.cls) + "." + std::to_string(rc2.enhanced.subject) +
               "." + std::to_string(rc2.enhanced.detail);
      }
      res.replies[key] += rc2.count;
    }
    for (std::size_t p = 0; p < kPhaseCount; ++p) res.latency[p].merge(s.latency[p]);
    for (std::size_t i = 0; i < s.timeline.size(); ++i) {
      SecondStats& d = res.timeline[i];
      const SecondStats& x = s.timeline[i];
      d.accepted += x.accepted;
      d.tempfail += x.tempfail;
      d.permfail += x.permfail;
      d.errors += x.errors;
      d.accept_latency.merge(x.accept_latency);
    }
  }
  const auto secs = [](const timeval& a, const timeval& b) {
    return static_cast<double>(b.tv_sec - a.tv_sec) + static_cast<double>(b.tv_usec - a.tv_usec) / 1e6;
  };
  res.cpu_user_s = secs(ru0.ru_utime, ru1.ru_utime);
  res.cpu_system_s = secs(ru0.ru_stime, ru1.ru_stime);
  return res;
}

}  // namespace ringmta::loadgen
