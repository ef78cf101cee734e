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

// Whether the body as stored is what BDAT sends: a raw body always is; a dot-stuffed one
// only when unstuffing changes nothing (no dot-lines, the final CRLF there).
bool bdat_as_stored(const QueuedMessage& m) {
  return m.body_format == spool::StoredBody::raw || (m.flags & spool::kFlagNeedsTransform) == 0;
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
  const smtp::ClientConfig& cfg = queue_.client_config(dest_);
  session_ = std::make_unique<smtp::ClientSession>(cfg, *this);
  const std::size_t depth = cfg.transactions_in_flight < 1 ? 1 : cfg.transactions_in_flight;
  slots_.resize(depth);
  laid_.resize(depth);
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
  if (body_on_its_way()) {
    // A reply may come before we learn that the body it answers went out (both completions
    // in one batch): the session hears it once the body is sent, as it expects, and no
    // transaction ends while the kernel may still read its message.
    early_.push_back(std::move(data));
    return;
  }
  session_->feed(data.view());
  if (session_->wants_tls() && !tls_) start_tls();
  pump();
}

void OutboundConnection::feed_early() {
  if (early_.empty() || body_on_its_way()) return;
  // Replies only: STARTTLS is never in flight with a body, so no switch to TLS here.
  for (const io::Slice& early : early_) session_->feed(early.view());
  early_.clear();
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

void OutboundConnection::count_tls(M::outbound_tls_total_outcome outcome) {
  // Once per connection (a failed stream may be fed again before the close): the outcome,
  // the handshake's CPU time, and one log line, as Postfix's "TLS connection established"
  // (per connection, never per message; the transactions over it inherit the outcome).
  if (tls_counted_) return;
  tls_counted_ = true;
  queue_.metrics().inc(M::outbound_tls_total[outcome]);
  queue_.metrics().inc(M::outbound_tls_handshake_cpu_microseconds_total, tls_->handshake_cpu_us());
  const std::string& dest = queue_.destination(dest_).pattern;
  if (outcome == M::outbound_tls_total_outcome::failed) {
    std::fprintf(stderr, "ringmta-relay: outbound TLS to %s (%s) failed: %s\n", hop_text_.c_str(),
                 dest.c_str(), close_reason_.c_str());
    return;
  }
  const io::TlsInfo& info = tls_->info();
  std::fprintf(stderr, "ringmta-relay: outbound TLS to %s (%s): %s %s, %s, certificate %s\n",
               hop_text_.c_str(), dest.c_str(), info.version, info.cipher,
               info.resumed ? "resumed" : "full handshake",
               queue_.tls_verify() ? "verified" : "not verified");
}

void OutboundConnection::check_tls() {
  using O = M::outbound_tls_total_outcome;
  if (!tls_up_ && tls_->established()) {
    tls_up_ = true;
    count_tls(tls_->info().resumed ? O::resumed : O::full);
    session_->tls_started();  // EHLO again, over TLS
    return;
  }
  if (tls_->status() == io::TlsStatus::failed || tls_->status() == io::TlsStatus::closed) {
    if (!tls_up_) {
      close_reason_ = "4.7.5 TLS handshake with " + hop_text_ + " failed: " + tls_->error();
      count_tls(O::failed);
    }
    tls_->discard_input();
    if (conn_ != nullptr) conn_->close();
  }
}

void OutboundConnection::flush_tls() {
  if (tls_up_ && !session_->wants_tls()) {
    // Writing the output may let the session write more (RCPTs that did not fit, then
    // BDAT, whose body is due at once): a few rounds.
    for (int round = 0; round < 4 && conn_ != nullptr; ++round) {
      lay_out_body();  // a due body (and the commands before it) into the stream
      const std::string_view out = session_->output();
      if (out.empty()) break;
      tls_->write(out);
      session_->consume_output(out.size());
    }
    if (conn_ == nullptr) return;
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
  if (spool_sending_) {
    // send_file reports once, with everything (or closes the connection).
    spool_sending_ = false;
    body_from_ = BodyFrom::none;
    session_->body_sent();
  } else if (session_) {
    account_sent(bytes);
  }
  feed_early();
  pump();
}

void OutboundConnection::on_timeout(io::Connection& c) {
  if (!session_) {
    c.close();
    return;
  }
  if (tls_ && !tls_up_) {
    close_reason_ = "4.7.5 TLS handshake with " + hop_text_ + " timed out";
    count_tls(M::outbound_tls_total_outcome::failed);
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
  session_->on_timeout();  // ends the transactions in flight (deferred), then the session
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
  if (session_ && session_->ready() && slot_count_ == 0) {
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
  laid_count_ = 0;  // the socket is gone: nothing more of it is sent
  body_in_flight_ = false;
  spool_sending_ = false;
  // Replies held back while bodies were going out are the hop's word all the same (a 250
  // for one transaction, then a 421 and a close, say): heard before the rest ends.
  if (session_) feed_early();
  early_.clear();
  if (slot_count_ > 0 && session_) session_->on_connection_lost();  // ends the transactions
  while (slot_count_ > 0) finish_job(front_slot(), nullptr, close_reason_);
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
  if (slot_count_ == 0) return;
  Slot& slot = front_slot();  // replies are for the oldest transaction
  if (index >= slot.rcpt_replies.size()) return;
  RcptReply& rr = slot.rcpt_replies[index];
  rr.code = r.code;
  rr.throttle = is_throttle(r.code, r.enhanced);
  if (!r.positive()) format_reply(rr.text, r);
}

void OutboundConnection::on_transaction_done(const smtp::TransactionResult& r) {
  if (slot_count_ == 0) return;
  // A local refusal is reported from inside send_message, for the transaction being begun.
  finish_job(r.ending == smtp::Ending::refused_local ? back_slot() : front_slot(), &r, {});
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
  if (session_->ready() && slot_count_ == 0 && !idle_) {
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
  } else if (slot_count_ > 0) {
    chain();
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
  if (begin(job)) chain();
  // The reply deadline replaces the idle one now (the queue may start a job on an idle
  // connection from outside pump(): an idle deadline left armed would cut the transaction
  // short, after the next hop may have taken the message).
  if (conn_ != nullptr) conn_->set_deadline(session_->timeout_ms());
  flush();
}

void OutboundConnection::chain() {
  const std::uint32_t limit = queue_.destination(dest_).policy.messages_per_connection;
  while (conn_ != nullptr && !quit_requested_ && session_->can_pipeline_message() &&
         (limit == 0 || transactions_ < limit)) {
    const DeliveryJob* next = queue_.peek_job(dest_);
    // Only what goes by BDAT as stored: a body that needs dot-stuffing waits its turn.
    if (next == nullptr || !bdat_as_stored(*next->message)) return;
    DeliveryJob* j = queue_.next_job(dest_);
    if (j == nullptr || !begin(j)) return;
  }
}

bool OutboundConnection::begin(DeliveryJob* job) {
  QueuedMessage& m = *job->message;
  if (transactions_ > 0) {
    queue_.metrics().inc(M::outbound_connections_total[M::outbound_connections_total_event::reused]);
  }
  ++transactions_;
  ++slot_count_;
  Slot& slot = back_slot();
  slot.job = job;
  const std::size_t n = job->rcpts.size();
  slot.rcpt_views.resize(n);
  slot.rcpt_params.resize(n);
  slot.rcpt_replies.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const QueuedRecipient& r = m.rcpts[job->rcpts[i]];
    slot.rcpt_views[i] = r.address;
    smtp::RcptParams& p = slot.rcpt_params[i];
    p = smtp::RcptParams{};
    p.notify = r.notify;
    const std::size_t semi = r.orcpt.find(';');
    if (semi != std::string::npos) {
      p.orcpt_type = std::string_view(r.orcpt).substr(0, semi);
      p.orcpt_value = std::string_view(r.orcpt).substr(semi + 1);
    }
    slot.rcpt_replies[i].code = 0;
    slot.rcpt_replies[i].throttle = false;
    slot.rcpt_replies[i].text.clear();
  }
  smtp::Envelope env;
  env.sender = m.sender;
  env.recipients = slot.rcpt_views;
  env.rcpt_params = slot.rcpt_params;
  env.mail.body = (m.flags & spool::kFlag8bit) != 0 ? smtp::BodyType::eight_bit_mime
                                                     : smtp::BodyType::unspecified;
  env.mail.smtputf8 = (m.flags & spool::kFlagSmtputf8) != 0;
  env.mail.ret = static_cast<smtp::DsnRet>(m.ret);
  env.mail.envid = m.envid;
  // DATA or BDAT, and the body in that form without a copy where possible: the stored bytes
  // serve both forms unless the message has dot-lines (or, raw, lacks its final CRLF).
  const bool transform = (m.flags & spool::kFlagNeedsTransform) != 0;
  const bool bdat = session_->will_use_bdat() && bdat_as_stored(m);
  // A raw body with dot-lines for a hop without CHUNKING: stuffed into our copy. Only one
  // at a time (DATA is never written behind another transaction), so the last copy is out.
  const bool copy = m.body_format == spool::StoredBody::raw && !bdat && transform;
  if (copy) {
    body_copy_.clear();
    prepare_stuffed_copy(m);
  }
  env.allow_bdat = bdat;
  std::uint64_t octets = m.body_length;
  if (copy) {
    body_from_ = BodyFrom::copy;
    octets = body_copy_.size();
  } else if (m.in_memory) {
    body_from_ = BodyFrom::memory;
  } else {
    body_from_ = BodyFrom::spool;
  }
  const std::size_t before = slot_count_;
  if (!session_->send_message(env, octets)) {
    body_from_ = BodyFrom::none;
    finish_job(back_slot(), nullptr, "4.3.0 the connection was not ready");
    return false;
  }
  if (slot_count_ < before) {  // refused locally (SIZE, SMTPUTF8): already finished
    body_from_ = BodyFrom::none;
    return false;
  }
  if (before > 1) queue_.metrics().inc(M::outbound_pipelined_transactions_total);
  lay_out_body();  // with BDAT it is due at once
  return true;
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

// ---------------------------------------------------------------------------- sending

void OutboundConnection::lay_out_body() {
  if (!session_->body_due() || body_from_ == BodyFrom::none || slot_count_ == 0) return;
  const QueuedMessage& m = *back_slot().job->message;
  if (tls_) {
    // Commands and body become TLS records in order (the plaintext is copied as it is
    // encrypted, so nothing of the message is referenced after this).
    const std::string_view out = session_->output();
    if (!out.empty()) {
      tls_->write(out);
      session_->consume_output(out.size());
    }
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
          body_from_ = BodyFrom::none;
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
    return;
  }
  if (body_from_ == BodyFrom::spool) return;  // spliced from the file by flush()
  LaidBody& b = laid_[(laid_head_ + laid_count_) % laid_.size()];
  ++laid_count_;
  b.at = out_consumed_ + session_->output().size();
  b.iov_at = 0;
  b.left = 0;
  if (body_from_ == BodyFrom::memory) {
    b.iov.assign(m.body_iov.begin(), m.body_iov.end());
  } else {
    b.iov.assign(1, iovec{body_copy_.data(), body_copy_.size()});
  }
  for (const iovec& v : b.iov) b.left += v.iov_len;
  body_from_ = BodyFrom::none;
  session_->body_sent();  // it is in the stream: DATA's "." (or the next transaction) follows
}

void OutboundConnection::flush() {
  if (conn_ == nullptr || conn_->sending() || conn_->closing() || !session_) return;
  if (tls_) {
    flush_tls();
    return;
  }
  lay_out_body();
  if (laid_count_ > 0 || !session_->output().empty()) {
    send_stream();
    return;
  }
  if (session_->body_due() && body_from_ == BodyFrom::spool) {
    send_spool_body();
    return;
  }
  if (session_->closed()) conn_->close();
}

void OutboundConnection::send_stream() {
  // Commands and bodies in the order of the stream: one sendmsg, one segment for the next
  // hop to read where it fits, instead of a send per transaction.
  const std::string_view out = session_->output();
  send_iov_.clear();
  body_in_flight_ = false;
  std::uint64_t pos = out_consumed_;
  for (std::size_t k = 0; k < laid_count_; ++k) {
    LaidBody& b = laid_[(laid_head_ + k) % laid_.size()];
    if (b.at > pos) {
      send_iov_.push_back(iovec{const_cast<char*>(out.data() + (pos - out_consumed_)),
                                static_cast<std::size_t>(b.at - pos)});
      pos = b.at;
    }
    for (std::size_t i = b.iov_at; i < b.iov.size(); ++i) send_iov_.push_back(b.iov[i]);
    body_in_flight_ = true;
  }
  const std::uint64_t end = out_consumed_ + out.size();
  if (end > pos) {
    send_iov_.push_back(iovec{const_cast<char*>(out.data() + (pos - out_consumed_)),
                              static_cast<std::size_t>(end - pos)});
  }
  const std::size_t count = send_iov_.size() < IOV_MAX ? send_iov_.size() : IOV_MAX;
  if (!conn_->sendv_owned(send_iov_.data(), static_cast<unsigned>(count))) {
    body_in_flight_ = false;
    conn_->close();  // on_close ends the transactions (deferred)
  }
}

void OutboundConnection::account_sent(std::size_t bytes) {
  // Step through the stream as send_stream laid it out: session output up to the next
  // body, that body, and so on.
  body_in_flight_ = false;
  std::size_t n = bytes;
  while (n > 0) {
    if (laid_count_ > 0 && laid_[laid_head_].at == out_consumed_) {
      LaidBody& b = laid_[laid_head_];
      while (n > 0 && b.iov_at < b.iov.size()) {
        iovec& v = b.iov[b.iov_at];
        const std::size_t k = n < v.iov_len ? n : v.iov_len;
        v.iov_base = static_cast<char*>(v.iov_base) + k;
        v.iov_len -= k;
        b.left -= k;
        n -= k;
        if (v.iov_len == 0) ++b.iov_at;
      }
      if (b.left == 0) {
        laid_head_ = (laid_head_ + 1) % laid_.size();
        --laid_count_;
      }
      continue;
    }
    const std::uint64_t room = laid_count_ > 0 ? laid_[laid_head_].at - out_consumed_
                                               : session_->output().size();
    const std::size_t k = n < room ? n : static_cast<std::size_t>(room);
    if (k == 0) break;  // more reported than was sent: cannot happen
    session_->consume_output(k);
    out_consumed_ += k;
    n -= k;
  }
}

void OutboundConnection::send_spool_body() {
  const QueuedMessage& m = *back_slot().job->message;
  const int fd = queue_.spool_fd(m);
  spool_sending_ = fd >= 0 && conn_->send_file(fd, m.body_offset, m.body_length);
  if (!spool_sending_) {
    if (fd < 0) close_reason_ = "4.3.0 cannot read the message from the spool";
    conn_->close();  // on_close ends the transactions (deferred)
  }
}

// ---------------------------------------------------------------------------- outcomes

void OutboundConnection::finish_job(Slot& slot, const smtp::TransactionResult* r,
                                    std::string_view local_reason) {
  DeliveryJob* j = slot.job;
  if (j == nullptr) return;
  const std::size_t n = j->rcpts.size();
  outcomes_.resize(n);
  // The transaction's final answer (end of data / BDAT LAST, or what ended it).
  if (r != nullptr && r->data.code != 0) {
    format_reply(final_text_, r->data);
  } else {
    final_text_.assign(local_reason.empty() ? std::string_view(close_reason_) : local_reason);
  }
  const bool data_throttle =
      r != nullptr && r->data.code != 0 && is_throttle(r->data.code, r->data.enhanced);
  for (std::size_t i = 0; i < n; ++i) {
    const RcptReply& rr = slot.rcpt_replies[i];
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
  // Out of the ring before the queue hears of it (it may hand this connection more work).
  slot.job = nullptr;
  if (&slot == &front_slot()) slot_head_ = (slot_head_ + 1) % slots_.size();
  --slot_count_;
  queue_.job_done(j, outcomes_, hop_text_);
}

}  // namespace ringmta::relay
