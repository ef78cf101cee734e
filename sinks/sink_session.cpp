// ringmta-sink sessions; see sink_session.hpp.
#include "sinks/sink_session.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace ringmta::sink {
namespace {

constexpr std::uint64_t kFlushEveryMs = 200;     // digest lines reach the file this soon
constexpr smtp::Reply kTimeout{421, {4, 4, 2}, "Timeout: closing connection"};
constexpr smtp::Reply kShuttingDown{421, {4, 3, 2}, "Service shutting down"};

std::string path_text(const smtp::Path& p) {
  if (p.null) return {};
  std::string s(p.local_part);
  if (!p.postmaster) {
    s += '@';
    s.append(p.domain);
  }
  return s;
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
std::uint64_t now_us() { return now_ns() / 1000; }

using M = SinkMetrics;

// Maildir files hold the message itself: transparency dots removed.
void write_unstuffed(std::string_view wire, bool stuffed, std::string& out) {
  out.clear();
  bool line_start = true;
  for (char c : wire) {
    if (stuffed && line_start && c == '.') {
      line_start = false;
      continue;
    }
    out += c;
    line_start = c == '\n';
  }
}

}  // namespace

// ---------------------------------------------------------------------------- SinkThread

SinkThread::SinkThread(io::Reactor& reactor, const SinkShared& shared)
    : reactor_(reactor),
      shared_(shared),
      rng_(shared.seed + reactor.index()),
      metrics_(shared.metrics->attach_thread()) {
  if (shared.mode == SinkMode::digest) {
    digest_ = std::make_unique<DigestLog>(shared.digest_path);
    flush_timer_.set_callback(
        [](io::Timer& t, void* ctx) {
          auto* self = static_cast<SinkThread*>(ctx);
          self->flush();
          self->reactor_.timers().arm(t, kFlushEveryMs);
        },
        this);
    reactor_.timers().arm(flush_timer_, kFlushEveryMs);
  }
}

SinkThread::~SinkThread() { flush(); }

std::string SinkThread::next_maildir_name() {
  char name[128];
  std::snprintf(name, sizeof(name), "%lld.%d_%u_%llu.ringmta-sink",
                static_cast<long long>(std::time(nullptr)), static_cast<int>(getpid()),
                reactor_.index(), static_cast<unsigned long long>(++maildir_seq_));
  return name;
}

std::unique_ptr<io::ConnectionHandler> SinkListen::on_accept(io::Connection& c) {
  auto s = std::make_unique<SinkSession>(thread_, thread_.shared().listeners[listener_], c);
  s->start();
  return s;
}

// ---------------------------------------------------------------------------- SinkSession

SinkSession::SinkSession(SinkThread& thread, const ListenerRuntime& listener,
                         io::Connection& conn)
    : thread_(thread),
      listener_(listener),
      conn_(conn),
      session_(listener.server, *this),
      delay_(&SinkSession::on_delay, this),
      client_ip_(conn.peer().host()) {
  thread_.metrics().inc(M::sessions_total);
  thread_.metrics().add(M::sessions_active, 1);
}

SinkSession::~SinkSession() = default;

Context SinkSession::context(std::string_view recipient) const {
  return Context{client_ip_, sender_, recipient, now_us()};
}

void SinkSession::start() {
  Behaviour& b = *listener_.behaviour;
  if (!b.try_enter_connection()) {
    session_.start(kTooManyConnections);  // 421: the session is closed from the start
    started_ = true;
    flush_output();
    return;
  }
  entered_ = true;
  start_clock(Phase::connect);
  const Action a = b.decide(Phase::connect, context({}), thread_.rng());
  count_cause(a);
  if (a.delay_us != 0) {
    delayed_phase_ = Phase::connect;
    delayed_close_ = a.kind == Action::Kind::disconnect;
    delayed_reply_ = a.kind == Action::Kind::accept ? smtp::Reply{} : a.reply;
    close_after_output_ = a.kind == Action::Kind::reply_and_disconnect;
    thread_.reactor().timers().arm(delay_, (a.delay_us + 999) / 1000);
    return;
  }
  switch (a.kind) {
    case Action::Kind::disconnect:
      close_now();
      return;
    case Action::Kind::reply_and_disconnect:
      close_after_output_ = true;
      [[fallthrough]];
    case Action::Kind::reply:
      session_.start(a.reply);  // 554: only QUIT is served (RFC 5321 3.1); 421 closes
      break;
    default:
      session_.start();
      break;
  }
  started_ = true;
  pump();
}

void SinkSession::on_delay(io::Timer&, void* ctx) {
  auto* self = static_cast<SinkSession*>(ctx);
  if (self->delayed_close_) {
    self->close_now();
    return;
  }
  if (!self->started_) {
    if (self->delayed_reply_.code == 0) self->session_.start();
    else self->session_.start(self->delayed_reply_);
    self->started_ = true;
  } else {
    self->session_.resume(self->delayed_reply_);
  }
  self->pump();
}

void SinkSession::start_clock(Phase phase) {
  clock_phase_ = phase;
  clock_start_ns_ = now_ns();
}

void SinkSession::record_latency() {
  if (clock_start_ns_ == 0) return;
  const std::uint64_t elapsed = now_ns() - clock_start_ns_;
  clock_start_ns_ = 0;
  using P = M::command_latency_seconds_phase;
  static constexpr P kPhase[] = {P::connect, P::ehlo, P::mail, P::rcpt, P::data, P::end_of_data};
  thread_.metrics().observe(M::command_latency_seconds[kPhase[static_cast<int>(clock_phase_)]],
                            elapsed);
}

void SinkSession::count_cause(const Action& a) {
  if (a.cause == Action::Cause::greylist) thread_.metrics().inc(M::greylisted_total);
  if (a.cause == Action::Cause::rate_limit) thread_.metrics().inc(M::rate_limited_total);
}

smtp::Decision SinkSession::act(Phase phase, const Action& a) {
  count_cause(a);
  if (a.kind == Action::Kind::disconnect_mid_data) {
    cutting_ = true;
    cut_after_ = a.after_bytes;
  }
  if (a.kind == Action::Kind::reply_and_disconnect) close_after_output_ = true;
  if (a.delay_us != 0) {
    delayed_phase_ = phase;
    delayed_close_ = a.kind == Action::Kind::disconnect;
    delayed_reply_ = (a.kind == Action::Kind::reply || a.kind == Action::Kind::reply_and_disconnect)
                         ? a.reply
                         : smtp::Reply{};
    // The wheel ticks in milliseconds: a delay rounds up to the next one.
    thread_.reactor().timers().arm(delay_, (a.delay_us + 999) / 1000);
    return smtp::Decision::defer();
  }
  switch (a.kind) {
    case Action::Kind::disconnect:
      mark_disconnect();  // after this feed; the session stops reading meanwhile
      return smtp::Decision::defer();
    case Action::Kind::reply:
    case Action::Kind::reply_and_disconnect:
      return smtp::Decision::respond(a.reply);
    case Action::Kind::accept:
    case Action::Kind::disconnect_mid_data:
      break;
  }
  return smtp::Decision::accept();
}

smtp::Decision SinkSession::on_helo(const smtp::Command&) {
  start_clock(Phase::ehlo);
  return act(Phase::ehlo, listener_.behaviour->decide(Phase::ehlo, context({}), thread_.rng()));
}

smtp::Decision SinkSession::on_mail(const smtp::Command& cmd) {
  start_clock(Phase::mail);
  sender_ = path_text(cmd.path);
  first_rcpt_.clear();
  rcpts_.clear();
  const Action a = listener_.behaviour->decide(Phase::mail, context({}), thread_.rng());
  in_transaction_ = a.kind == Action::Kind::accept;
  return act(Phase::mail, a);
}

smtp::Decision SinkSession::on_rcpt(const smtp::Command& cmd) {
  start_clock(Phase::rcpt);
  const std::string rcpt = path_text(cmd.path);
  const Action a = listener_.behaviour->decide(Phase::rcpt, context(rcpt), thread_.rng());
  const bool accepted = a.kind == Action::Kind::accept ||
                        a.kind == Action::Kind::disconnect_mid_data;
  using O = M::recipients_total_outcome;
  if (accepted) {
    thread_.metrics().inc(M::recipients_total[O::accepted]);
    if (first_rcpt_.empty()) first_rcpt_ = rcpt;
    if (!rcpts_.empty()) rcpts_ += ',';
    rcpts_ += rcpt;
  } else {
    thread_.metrics().inc(M::recipients_total[O::rejected]);
  }
  return act(Phase::rcpt, a);
}

smtp::Decision SinkSession::on_data_start(smtp::BodyFormat format) {
  start_clock(Phase::data);
  format_ = format;
  if (thread_.shared().mode == SinkMode::digest) digest_.begin(format);
  maildir_body_.clear();
  return act(Phase::data,
             listener_.behaviour->decide(Phase::data, context(first_rcpt_), thread_.rng()));
}

void SinkSession::on_body(std::string_view bytes) {
  if (cutting_) {
    if (bytes.size() >= cut_after_) {
      mark_disconnect();  // in the middle of DATA
      cutting_ = false;
      return;
    }
    cut_after_ -= bytes.size();
  }
  switch (thread_.shared().mode) {
    case SinkMode::digest:
      digest_.update(bytes);
      break;
    case SinkMode::maildir:
      maildir_body_.append(bytes);
      break;
    case SinkMode::discard:
    case SinkMode::count:
      break;
  }
}

smtp::Decision SinkSession::on_message(const smtp::MessageInfo& info) {
  start_clock(Phase::end_of_data);
  thread_.metrics().inc(M::received_bytes_total, info.wire_octets);
  if (close_now_) return smtp::Decision::defer();  // cut mid-data: never answered
  const Action a =
      listener_.behaviour->decide(Phase::end_of_data, context(first_rcpt_), thread_.rng());
  using O = M::messages_total_outcome;
  in_transaction_ = false;
  switch (a.kind) {
    case Action::Kind::accept:
    case Action::Kind::disconnect_mid_data:
      thread_.metrics().inc(M::messages_total[O::accepted]);
      accept_message();
      break;
    case Action::Kind::disconnect:
      thread_.metrics().inc(M::messages_total[O::disconnect]);
      break;
    case Action::Kind::reply:
    case Action::Kind::reply_and_disconnect:
      thread_.metrics().inc(M::messages_total[a.reply.code >= 500 ? O::permfail : O::tempfail]);
      break;
  }
  return act(Phase::end_of_data, a);
}

void SinkSession::accept_message() {
  switch (thread_.shared().mode) {
    case SinkMode::digest:
      digest_.finish();
      thread_.digest()->append(digest_.id(), digest_.body_octets(), digest_.sha256_hex(),
                               rcpts_);
      break;
    case SinkMode::maildir: {
      std::string text;
      write_unstuffed(maildir_body_, format_ == smtp::BodyFormat::dot_stuffed, text);
      const std::string name = thread_.next_maildir_name();
      const std::string tmp = thread_.shared().maildir + "/tmp/" + name;
      const std::string dst = thread_.shared().maildir + "/new/" + name;
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd >= 0) {
        std::size_t off = 0;
        while (off < text.size()) {
          const ssize_t w = ::write(fd, text.data() + off, text.size() - off);
          if (w <= 0) break;
          off += static_cast<std::size_t>(w);
        }
        ::close(fd);
        ::rename(tmp.c_str(), dst.c_str());  // maildir: appears whole in new/
      }
      break;
    }
    case SinkMode::discard:
    case SinkMode::count:
      break;
  }
}

void SinkSession::on_transaction_abort() {
  in_transaction_ = false;
  cutting_ = false;
  first_rcpt_.clear();
  rcpts_.clear();
}

void SinkSession::on_recv(io::Connection&, io::Slice data) {
  if (close_now_) return;
  if (tls_.active()) {
    // Ciphertext: copied into the stream, the buffer goes back.
    if (tls_.receive(data.view(), session_)) {
      // Failed or closed: send what the stream holds (an alert), nothing more from the
      // session, then close.
      mark_disconnect();
      owed_output_ = 0;
      close_after_output_ = true;
    }
    pump();
    return;
  }
  held_.push(std::move(data));
  pump();
}

void SinkSession::tls_handshake_ended(io::TlsHandshakeOutcome outcome, std::uint64_t cpu_us) {
  using O = M::tls_handshakes_total_outcome;
  thread_.metrics().inc(M::tls_handshakes_total[io::outcome_label<O>(outcome)]);
  thread_.metrics().inc(M::tls_handshake_cpu_microseconds_total, cpu_us);
}

void SinkSession::tls_established(std::uint64_t elapsed_ns) {
  thread_.metrics().observe(M::tls_handshake_seconds, elapsed_ns);
  thread_.metrics().add(M::tls_sessions_active, 1);
}

void SinkSession::pump() {
  if (close_now_) {
    flush_output();  // what is owed, then the close
    return;
  }
  if (tls_.active()) {
    tls_.feed_session(session_);  // a stream exists only after STARTTLS: started_ holds
  } else {
    held_.feed(session_, [this] { return started_ && !close_now_; });
  }
  if (session_.closed() || session_.wants_tls()) {
    held_.clear();  // nothing more is read as commands (after QUIT/421, or STARTTLS)
  }
  if (session_.wants_tls() && !tls_.active() && listener_.tls) tls_.start(*listener_.tls);
  if (close_now_) {
    close_now();
    return;
  }
  if (stopping_ && !session_.waiting() && !session_.closed() &&
      (session_.state() == smtp::SessionState::greeted ||
       session_.state() == smtp::SessionState::ready)) {
    session_.shutdown(kShuttingDown);
  }
  flush_output();
  if (conn_.closing()) return;
  io::HeldInput::apply_backpressure(conn_,
                                    tls_.active() ? tls_.plaintext_bytes() : held_.bytes());
  conn_.set_deadline(session_.timeout_ms());
}

void SinkSession::flush_output() {
  if (conn_.closing() || conn_.sending()) return;
  if (tls_.accepts_output(session_)) {
    // Over TLS the replies go into the stream now (only those owed, when closing).
    std::string_view out = session_.output();
    if (close_now_) {
      out = out.substr(0, owed_output_);
      owed_output_ -= out.size();
    } else if (!out.empty()) {
      if (!session_.waiting()) record_latency();
      thread_.metrics().inc(M::reply_writes_total);
    }
    tls_.write_output(session_, out.size());
  }
  if (tls_.active()) {
    if (const std::string_view ct = tls_.next_send(); !ct.empty()) {
      conn_.send(ct);
      return;
    }
    if (tls_.established() || close_now_) {
      if (close_now_ || session_.closed() || close_after_output_) conn_.close();
      return;
    }
    // Not established yet: the plaintext 220 to STARTTLS (below) still goes as it is.
  }
  std::string_view out = session_.output();
  if (close_now_) {
    out = out.substr(0, owed_output_);
    if (out.empty()) {
      conn_.close();
      return;
    }
    conn_.send(out);
    return;
  }
  if (!out.empty()) {
    if (!session_.waiting()) record_latency();  // the reply to the timed command goes now
    thread_.metrics().inc(M::reply_writes_total);
    conn_.send(out);  // the session's buffer stays put until on_sent
    return;
  }
  if (session_.closed() || close_after_output_) conn_.close();
}

void SinkSession::mark_disconnect() {
  if (close_now_) return;
  close_now_ = true;
  owed_output_ = session_.output().size();
}

void SinkSession::close_now() {
  // "Disconnect without a reply" is about the command being answered; replies the session
  // already owes to earlier pipelined commands (a 250 to a message!) still go out first.
  mark_disconnect();
  close_after_output_ = true;
  held_.clear();
  delay_.cancel();
  flush_output();
}

void SinkSession::on_sent(io::Connection&, std::size_t bytes) {
  if (tls_.sent(bytes)) {
    pump();
    return;
  }
  session_.consume_output(bytes);
  if (close_now_) owed_output_ -= bytes < owed_output_ ? bytes : owed_output_;
  pump();
}

void SinkSession::on_timeout(io::Connection&) {
  if (tls_.handshake_timed_out()) {
    // The handshake did not finish in time: no reply can be sent in either form.
    conn_.close();
    return;
  }
  if (session_.waiting()) {
    conn_.set_deadline(session_.timeout_ms());  // a configured delay is running
    return;
  }
  session_.shutdown(kTimeout);
  flush_output();
}

void SinkSession::on_shutdown(io::Connection&) {
  stopping_ = true;
  if (!started_ || tls_.handshaking()) {
    close_now();
    return;
  }
  pump();
}

void SinkSession::on_close(io::Connection&, int) {
  delay_.cancel();
  if (entered_) listener_.behaviour->leave_connection();
  if (in_transaction_) {
    thread_.metrics().inc(M::messages_total[M::messages_total_outcome::disconnect]);
  }
  thread_.metrics().add(M::sessions_active, -1);
  if (tls_.up()) thread_.metrics().add(M::tls_sessions_active, -1);
}

}  // namespace ringmta::sink
