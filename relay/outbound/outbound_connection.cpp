// Outbound SMTP connections of the relay; see outbound_connection.hpp.
#include "relay/outbound/outbound_connection.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "relay/relay_metrics.hpp"

namespace ringmta::relay {
namespace {

using M = RelayMetrics;

// 421, or an enhanced code 4.7.x (RFC 3463: security or policy status, e.g. "4.7.0 rate
// limited"): the destination asks us to slow down rather than rejecting this message.
bool is_throttle(std::uint16_t code, const smtp::EnhancedCode& e) {
  return code == 421 || (code >= 400 && code < 500 && e.cls == 4 && e.subject == 7);
}

void format_reply(std::string& out, const smtp::Reply& r) {
  char head[32];
  int n = 0;
  if (r.enhanced.present()) {
    n = std::snprintf(head, sizeof(head), "%u %u.%u.%u ", r.code, r.enhanced.cls,
                      r.enhanced.subject, r.enhanced.detail);
  } else {
    n = std::snprintf(head, sizeof(head), "%u ", r.code);
  }
  out.assign(head, static_cast<std::size_t>(n));
  out.append(r.text);
}

}  // namespace

OutboundConnection::OutboundConnection(QueueManager& queue, std::uint32_t dest, std::size_t hop)
    : queue_(queue),
      dest_(dest),
      hop_(hop),
      hop_text_(queue.destination(dest).hops[hop].address.to_string()) {}

// ---------------------------------------------------------------------------- connection

void OutboundConnection::on_connect(io::Connection& c) {
  conn_ = &c;
  session_ = std::make_unique<smtp::ClientSession>(queue_.client_config(dest_), *this);
  c.set_deadline(session_->timeout_ms());
}

void OutboundConnection::on_recv(io::Connection&, io::Slice data) {
  if (!session_) return;
  if (tls_) {
    tls_->feed(data.view());  // ciphertext, copied into the stream
    check_tls();
    if (tls_up_ && conn_ != nullptr) {
      const std::string_view p = tls_->plaintext();
      session_->feed(p);
      tls_->consume_plaintext(p.size());
    }
    pump();
    return;
  }
  if (body_sending_) {
    // The next hop may answer the end of the body before we learn that our send of it
    // completed (both completions in one batch): the session hears the reply after the
    // body is sent, as it expects.
    early_.push_back(std::move(data));
    return;
  }
  session_->feed(data.view());
  if (session_->wants_tls() && !tls_) start_tls();
  pump();
}

void OutboundConnection::start_tls() {
  // The hop answered 220 to STARTTLS; the session dropped whatever followed it in that read
  // (CVE-2011-0411). No client context: the policy is none, so wants_tls cannot happen.
  if (queue_.tls() == nullptr) {
    close_reason_ = "4.7.5 STARTTLS answered but this relay has no TLS client";
    conn_->close();
    return;
  }
  tls_ = std::make_unique<io::TlsStream>(*queue_.tls(), &queue_.tls_cache(dest_));
  tls_->start();  // the ClientHello, sent by flush()
}

void OutboundConnection::check_tls() {
  using O = M::outbound_tls_total_outcome;
  if (!tls_up_ && tls_->established()) {
    tls_up_ = true;
    queue_.metrics().inc(M::outbound_tls_total[tls_->info().resumed ? O::resumed : O::full]);
    session_->tls_started();  // EHLO again, over TLS
    return;
  }
  if (tls_->status() == io::TlsStatus::failed || tls_->status() == io::TlsStatus::closed) {
    if (!tls_up_) {
      queue_.metrics().inc(M::outbound_tls_total[O::failed]);
      close_reason_ = "4.7.5 TLS handshake with " + hop_text_ + " failed: " + tls_->error();
    }
    tls_->discard_input();
    if (conn_ != nullptr) conn_->close();
  }
}

void OutboundConnection::flush_tls() {
  if (tls_up_ && !session_->wants_tls()) {
    // Commands and body become TLS records in order; the body goes in once it is due.
    for (int round = 0; round < 4; ++round) {
      const std::string_view out = session_->output();
      if (!out.empty()) {
        tls_->write(out);
        session_->consume_output(out.size());
      }
      if (!session_->body_due() || body_from_ == BodyFrom::none || job_ == nullptr) break;
      const QueuedMessage& m = *job_->message;
      switch (body_from_) {
        case BodyFrom::memory:
          for (std::size_t i = 0; i < m.body_iov.size(); i += IOV_MAX) {
            const std::size_t n = m.body_iov.size() - i < IOV_MAX ? m.body_iov.size() - i : IOV_MAX;
            tls_->writev(m.body_iov.data() + i, static_cast<unsigned>(n));
          }
          break;
        case BodyFrom::copy:
          tls_->write(body_copy_);
          break;
        case BodyFrom::spool: {
          // Encryption needs the bytes in memory: read them (from the page cache, usually).
          tls_body_.resize(m.body_length);
          const int fd = queue_.spool_fd(m);
          const ssize_t got = fd < 0 ? -1
                                     : ::pread(fd, tls_body_.data(), tls_body_.size(),
                                               static_cast<off_t>(m.body_offset));
          if (got != static_cast<ssize_t>(tls_body_.size())) {
            close_reason_ = "4.3.0 cannot read the message from the spool";
            conn_->close();
            return;
          }
          tls_->write(tls_body_);
          tls_body_.clear();
          break;
        }
        case BodyFrom::none:
          break;
      }
      body_from_ = BodyFrom::none;
      session_->body_sent();  // DATA's final "." (or nothing, with BDAT) comes next
    }
  }
  const std::string_view ct = tls_->next_send();
  if (!ct.empty()) {
    tls_sending_ = true;
    conn_->send(ct);
    return;
  }
  if (session_->closed()) conn_->close();
}

void OutboundConnection::on_sent(io::Connection&, std::size_t bytes) {
  if (tls_sending_) {
    tls_sending_ = false;
    tls_->sent(bytes);
    pump();
    return;
  }
  if (body_sending_) {
    if (body_from_ == BodyFrom::spool) {
      body_left_ = 0;  // send_file reports once, with everything (or closes the connection)
    } else {
      // Step over the pieces that went out whole; trim the first one that did not. The
      // first head_left_ bytes are the session's commands sent along with the body.
      std::size_t n = bytes;
      while (n > 0 && body_iov_at_ < body_iov_.size()) {
        iovec& v = body_iov_[body_iov_at_];
        if (n >= v.iov_len) {
          n -= v.iov_len;
          ++body_iov_at_;
        } else {
          v.iov_base = static_cast<char*>(v.iov_base) + n;
          v.iov_len -= n;
          n = 0;
        }
      }
      const std::size_t head = bytes < head_left_ ? bytes : head_left_;
      if (head != 0) {
        session_->consume_output(head);
        head_left_ -= head;
        if (head_left_ != 0) {
          // consume_output may have moved what is left of its buffer.
          body_iov_[body_iov_at_] = iovec{const_cast<char*>(session_->output().data()), head_left_};
        }
      }
      const std::size_t body = bytes - head;
      body_left_ -= body < body_left_ ? body : body_left_;
    }
    if (body_left_ != 0 || head_left_ != 0) {
      send_body();  // the socket took part of it
      return;
    }
    body_sending_ = false;
    body_from_ = BodyFrom::none;
    session_->body_sent();
    for (const io::Slice& early : early_) session_->feed(early.view());
    early_.clear();
  } else if (session_) {
    session_->consume_output(bytes);
  }
  pump();
}

void OutboundConnection::on_timeout(io::Connection& c) {
  if (!session_) {
    c.close();
    return;
  }
  if (tls_ && !tls_up_) {
    close_reason_ = "4.7.5 TLS handshake with " + hop_text_ + " timed out";
    queue_.metrics().inc(M::outbound_tls_total[M::outbound_tls_total_outcome::failed]);
    c.close();
    return;
  }
  if (idle_) {
    idle_ = false;
    queue_.connection_quitting(this);
    session_->quit();  // kept no longer than the idle time (Postfix connection cache)
    flush();
    c.set_deadline(session_->timeout_ms());
    return;
  }
  close_reason_ = "4.4.2 timeout waiting for " + hop_text_;
  session_->on_timeout();  // ends a transaction in flight (deferred), then the session
  pump();
}

void OutboundConnection::on_shutdown(io::Connection& c) {
  queue_.shutdown();  // the reactor is stopping: no new transaction anywhere on this thread
  quit_requested_ = true;
  if (!session_) {
    c.close();
    return;
  }
  if (idle_ || session_->ready()) quit();
}

void OutboundConnection::quit() {
  quit_requested_ = true;
  if (conn_ == nullptr) return;
  if (session_ && session_->ready() && job_ == nullptr) {
    idle_ = false;
    queue_.connection_quitting(this);
    session_->quit();
    flush();
  }
}

void OutboundConnection::on_close(io::Connection&, int err) {
  conn_ = nullptr;
  if (close_reason_.empty()) {
    if (err < 0) {
      close_reason_ = std::string(greeted_ || session_ ? "4.4.2 connection to " : "4.4.1 connect to ") +
                      hop_text_ + " failed: " + std::strerror(-err);
    } else {
      close_reason_ = "4.4.2 " + hop_text_ + " closed the connection";
    }
  }
  if (job_ != nullptr && session_) session_->on_connection_lost();  // ends the transaction
  if (job_ != nullptr) finish_job(nullptr, close_reason_);
  queue_.connection_closed(this, greeted_, !greeted_, throttled_, close_reason_);
}

// ---------------------------------------------------------------------------- session

void OutboundConnection::on_greeting(const smtp::Reply& r) {
  if (!r.positive()) {
    format_reply(close_reason_, r);
    throttled_ = is_throttle(r.code, r.enhanced);
  }
}

void OutboundConnection::on_rcpt_reply(std::size_t index, const smtp::Reply& r) {
  if (index >= rcpt_replies_.size()) return;
  RcptReply& rr = rcpt_replies_[index];
  rr.code = r.code;
  rr.throttle = is_throttle(r.code, r.enhanced);
  if (!r.positive()) format_reply(rr.text, r);
}

void OutboundConnection::on_transaction_done(const smtp::TransactionResult& r) {
  finish_job(&r, {});
}

void OutboundConnection::on_closed(const smtp::Reply& last, std::string_view why) {
  if (last.code != 0) {
    format_reply(close_reason_, last);
    throttled_ = throttled_ || is_throttle(last.code, last.enhanced);
  } else if (!why.empty()) {
    close_reason_ = "4.4.2 " + hop_text_ + ": " + std::string(why);
  }
}

void OutboundConnection::pump() {
  if (!session_ || conn_ == nullptr) return;
  if (session_->ready() && job_ == nullptr && !idle_) {
    if (!greeted_) {
      greeted_ = true;
      queue_.connection_up(this);
    }
    const std::uint32_t limit = queue_.destination(dest_).policy.messages_per_connection;
    if (quit_requested_ || (limit != 0 && transactions_ >= limit)) {
      session_->quit();
    } else {
      take_job();
      if (conn_ == nullptr) return;
    }
  }
  flush();
  if (conn_ != nullptr && !conn_->closing()) {
    if (idle_) {
      const std::uint32_t idle_ms = queue_.idle_timeout_ms();
      conn_->set_deadline(idle_ms == 0 ? 1 : idle_ms);
    } else {
      conn_->set_deadline(session_->timeout_ms());
    }
  }
}

void OutboundConnection::take_job() {
  if (DeliveryJob* j = queue_.next_job(dest_)) {
    start(j);
    return;
  }
  idle_ = true;  // before telling the queue: it may hand us a job at once (start())
  queue_.connection_idle(this);
}

void OutboundConnection::start(DeliveryJob* job) {
  idle_ = false;
  job_ = job;
  QueuedMessage& m = *job->message;
  if (transactions_ > 0) {
    queue_.metrics().inc(M::outbound_connections_total[M::outbound_connections_total_event::reused]);
  }
  ++transactions_;
  const std::size_t n = job->rcpts.size();
  rcpt_views_.resize(n);
  rcpt_params_.resize(n);
  rcpt_replies_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const QueuedRecipient& r = m.rcpts[job->rcpts[i]];
    rcpt_views_[i] = r.address;
    smtp::RcptParams& p = rcpt_params_[i];
    p = smtp::RcptParams{};
    p.notify = r.notify;
    const std::size_t semi = r.orcpt.find(';');
    if (semi != std::string::npos) {
      p.orcpt_type = std::string_view(r.orcpt).substr(0, semi);
      p.orcpt_value = std::string_view(r.orcpt).substr(semi + 1);
    }
    rcpt_replies_[i].code = 0;
    rcpt_replies_[i].throttle = false;
    rcpt_replies_[i].text.clear();
  }
  smtp::Envelope env;
  env.sender = m.sender;
  env.recipients = rcpt_views_;
  env.rcpt_params = rcpt_params_;
  env.mail.body = (m.flags & spool::kFlag8bit) != 0 ? smtp::BodyType::eight_bit_mime
                                                     : smtp::BodyType::unspecified;
  env.mail.smtputf8 = (m.flags & spool::kFlagSmtputf8) != 0;
  env.mail.ret = static_cast<smtp::DsnRet>(m.ret);
  env.mail.envid = m.envid;
  // DATA or BDAT, and the body in that form without a copy where possible: the stored bytes
  // serve both forms unless the message has dot-lines (or, raw, lacks its final CRLF).
  const bool transform = (m.flags & spool::kFlagNeedsTransform) != 0;
  const bool can_bdat = session_->will_use_bdat();
  bool bdat = false;
  body_copy_.clear();
  if (m.body_format == spool::StoredBody::dot_stuffed) {
    bdat = can_bdat && !transform;
  } else {
    bdat = can_bdat || !transform;
    if (!bdat) prepare_stuffed_copy(m);
  }
  env.allow_bdat = bdat;
  std::uint64_t octets = m.body_length;
  if (!body_copy_.empty()) {
    body_from_ = BodyFrom::copy;
    octets = body_copy_.size();
  } else if (m.in_memory) {
    body_from_ = BodyFrom::memory;
  } else {
    body_from_ = BodyFrom::spool;
  }
  body_left_ = octets;
  body_sending_ = false;
  if (!session_->send_message(env, octets)) {
    finish_job(nullptr, "4.3.0 the connection was not ready");
    return;
  }
  // The reply deadline replaces the idle one now (the queue may start a job on an idle
  // connection from outside pump(): an idle deadline left armed would cut the transaction
  // short, after the next hop may have taken the message).
  if (conn_ != nullptr) conn_->set_deadline(session_->timeout_ms());
  flush();
}

void OutboundConnection::prepare_stuffed_copy(const QueuedMessage& m) {
  // A raw (BDAT) body with dot-lines to a hop without CHUNKING: stuffed into a buffer of
  // this connection (the one copy on the delivery path; rare).
  std::string raw;
  if (m.in_memory) {
    for (const iovec& v : m.body_iov) raw.append(static_cast<const char*>(v.iov_base), v.iov_len);
  } else {
    raw.resize(m.body_length);
    const int fd = queue_.spool_fd(m);
    const ssize_t got = fd < 0 ? -1
                               : ::pread(fd, raw.data(), raw.size(),
                                         static_cast<off_t>(m.body_offset));
    if (got != static_cast<ssize_t>(raw.size())) raw.clear();
  }
  bool line_start = true;
  for (char c : raw) {
    if (line_start && c == '.') body_copy_ += '.';
    body_copy_ += c;
    line_start = c == '\n';
  }
  if (body_copy_.size() < 2 || body_copy_.compare(body_copy_.size() - 2, 2, "\r\n") != 0) {
    body_copy_ += "\r\n";
  }
}

void OutboundConnection::flush() {
  if (conn_ == nullptr || conn_->sending() || conn_->closing() || !session_) return;
  if (tls_) {
    flush_tls();
    return;
  }
  const std::string_view out = session_->output();
  const bool body = session_->body_due() && !body_sending_ && body_from_ != BodyFrom::none;
  if (!out.empty() && !(body && body_from_ != BodyFrom::spool)) {
    conn_->send(out);
    return;
  }
  if (body) {
    // With BDAT the body follows the commands at once: from memory (or our copy) both go in
    // one send, one segment for the next hop to read, instead of two.
    body_sending_ = true;
    head_left_ = 0;
    body_iov_.clear();
    body_iov_at_ = 0;
    if (!out.empty()) {
      body_iov_.push_back(iovec{const_cast<char*>(out.data()), out.size()});
      head_left_ = out.size();
    }
    if (body_from_ == BodyFrom::memory) {
      const QueuedMessage& m = *job_->message;
      body_iov_.insert(body_iov_.end(), m.body_iov.begin(), m.body_iov.end());
    } else if (body_from_ == BodyFrom::copy) {
      body_iov_.push_back(iovec{body_copy_.data(), body_copy_.size()});
    }
    send_body();
    return;
  }
  if (session_->closed()) conn_->close();
}

void OutboundConnection::send_body() {
  bool ok = false;
  switch (body_from_) {
    case BodyFrom::memory:
    case BodyFrom::copy: {
      std::size_t count = body_iov_.size() - body_iov_at_;
      if (count > IOV_MAX) count = IOV_MAX;
      ok = conn_->sendv_owned(body_iov_.data() + body_iov_at_, static_cast<unsigned>(count));
      break;
    }
    case BodyFrom::spool: {
      const QueuedMessage& m = *job_->message;
      const int fd = queue_.spool_fd(m);
      ok = fd >= 0 && conn_->send_file(fd, m.body_offset, m.body_length);
      if (fd < 0) close_reason_ = "4.3.0 cannot read the message from the spool";
      break;
    }
    case BodyFrom::none:
      break;
  }
  if (!ok) conn_->close();  // on_close ends the transaction (deferred)
}

void OutboundConnection::finish_job(const smtp::TransactionResult* r,
                                    std::string_view local_reason) {
  DeliveryJob* j = job_;
  if (j == nullptr) return;
  job_ = nullptr;
  body_sending_ = false;
  body_from_ = BodyFrom::none;
  const std::size_t n = j->rcpts.size();
  outcomes_.resize(n);
  // The transaction's final answer (end of data / BDAT LAST, or what ended it).
  if (r != nullptr && r->ending == smtp::Ending::reply && r->data.code != 0) {
    format_reply(final_text_, r->data);
  } else if (r != nullptr && r->data.code != 0) {
    format_reply(final_text_, r->data);
  } else {
    final_text_.assign(local_reason.empty() ? std::string_view(close_reason_) : local_reason);
  }
  const bool data_throttle =
      r != nullptr && r->data.code != 0 && is_throttle(r->data.code, r->data.enhanced);
  for (std::size_t i = 0; i < n; ++i) {
    const RcptReply& rr = rcpt_replies_[i];
    RcptOutcome& o = outcomes_[i];
    if (rr.code >= 500) {
      o = {RcptResult::failed, rr.code, rr.text};
    } else if (rr.code >= 400) {
      o = {rr.throttle ? RcptResult::throttled : RcptResult::deferred, rr.code, rr.text};
    } else if (r != nullptr && r->delivered && rr.code >= 200 && rr.code < 300) {
      o = {RcptResult::delivered, r->data.code, {}};
    } else if (r != nullptr && r->data.code >= 500 &&
               (r->ending == smtp::Ending::reply || r->ending == smtp::Ending::refused_local)) {
      o = {RcptResult::failed, r->data.code, final_text_};
    } else {
      // 4xx at the end of data, or the transaction ended without an answer (timeout,
      // connection lost, a malformed reply): try again later.
      const std::uint16_t code = r != nullptr ? r->data.code : 0;
      o = {data_throttle ? RcptResult::throttled : RcptResult::deferred, code, final_text_};
    }
  }
  if (data_throttle) throttled_ = true;
  queue_.job_done(j, outcomes_, hop_text_);
}

}  // namespace ringmta::relay
