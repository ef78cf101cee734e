// ringmta-relay inbound sessions; see inbound_session.hpp.
#include "relay/inbound_session.hpp"

#include <netinet/in.h>

#include <ctime>
#include <cstdio>

#include "core/smtp/ascii.hpp"
#include "core/smtp/rfc5322_date.hpp"
#include "relay/spool/crc32c.hpp"
#include "relay/spool/record.hpp"

namespace ringmta::relay {
namespace {

using M = RelayMetrics;

// Receive buffers a message may pin before it is copied into one buffer of its own: large
// messages would otherwise starve every other connection of receive buffers.
constexpr std::uint64_t kSpillAt = 256 * 1024;
constexpr std::size_t kMaxPieces = 1000;  // writev takes at most IOV_MAX (1024) pieces

constexpr smtp::Reply kTooManyConnections{421, {4, 7, 0}, "Too many connections, try later"};
constexpr smtp::Reply kTooManyFromYou{421, {4, 7, 0},
                                      "Too many connections from your address, try later"};
constexpr smtp::Reply kSpoolFailed{421, {4, 3, 0},
                                   "Spool failure: not accepting mail, try another server"};
constexpr smtp::Reply kQuota{452, {4, 3, 1}, "Insufficient system storage"};
constexpr smtp::Reply kRelayDenied{554, {5, 7, 1}, "Relay access denied"};
constexpr smtp::Reply kStoreFailed{451, {4, 3, 0},
                                   "Error: could not store the message, try again later"};
constexpr smtp::Reply kTimeout{421, {4, 4, 2}, "Timeout: closing connection"};
constexpr smtp::Reply kShuttingDown{421, {4, 3, 2}, "Service shutting down"};
// RFC 5321 6.3: a message with too many Received: headers is in a loop (Postfix
// hopcount_limit); RFC 3463 X.4.6: routing loop detected.
constexpr smtp::Reply kMailLoop{554, {5, 4, 6}, "Too many hops: mail forwarding loop"};
constexpr smtp::Reply kTooManyExpanded{452, {4, 5, 3},
                                       "Too many recipients after alias expansion"};
// Recipients of one message after alias expansion (each alias already expands to at most
// 1000, checked when the configuration is loaded).
constexpr std::size_t kMaxExpandedRecipients = 1000;
constexpr std::string_view kReceived = "received:";

// RFC 3461 4.2: ORCPT's value is xtext ("+" and "=" and controls as +HH); a UTF-8 address
// goes as utf-8-addr-xtext (RFC 6533 3: \x{HH} for those).
void orcpt_of(std::string_view address, std::string& out) {
  bool ascii = true;
  for (char c : address) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  out.assign(ascii ? "rfc822;" : "utf-8;");
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : address) {
    const auto c = static_cast<unsigned char>(ch);
    const bool plain = ascii ? (c > 0x20 && c < 0x7F && c != '+' && c != '=')
                             : (c > 0x20 && c != 0x7F && c != '+' && c != '=' && c != '\\');
    if (plain) {
      out += ch;
    } else if (ascii) {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += "\\x{";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      out += '}';
    }
  }
}

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

std::string path_text(const smtp::Path& p) {
  if (p.null) return {};
  std::string s(p.local_part);
  if (!p.postmaster) {
    s += '@';
    s.append(p.domain);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------- ClientCounter

std::size_t ClientCounter::slot(const io::SocketAddress& a) const {
  // FNV-1a over the address bytes (not the port).
  std::uint64_t h = 1469598103934665603ull;
  const unsigned char* p = nullptr;
  std::size_t n = 0;
  if (a.storage.ss_family == AF_INET) {
    p = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in&>(a.storage).sin_addr);
    n = 4;
  } else {
    p = reinterpret_cast<const unsigned char*>(
        &reinterpret_cast<const sockaddr_in6&>(a.storage).sin6_addr);
    n = 16;
  }
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h & (kSlots - 1);
}

bool ClientCounter::try_enter(const io::SocketAddress& a, std::uint32_t limit) {
  auto& c = counts_[slot(a)];
  const std::uint32_t before = c.fetch_add(1, std::memory_order_relaxed);
  if (limit != 0 && before >= limit) {
    c.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void ClientCounter::leave(const io::SocketAddress& a) {
  counts_[slot(a)].fetch_sub(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------- RelayThread

RelayThread::RelayThread(io::Reactor& reactor, RelayShared& shared)
    : reactor_(reactor),
      shared_(shared),
      metrics_(shared.metrics->attach_thread()),
      writer_(reactor, shared.spool, shared.totals, reactor.index(),
              reactor.index() < shared.last_sequence.size()
                  ? shared.last_sequence[reactor.index()]
                  : 0),
      queue_(reactor, writer_, shared.totals, *shared.config, shared.routes, metrics_,
             shared.destination_metrics.get()) {
  queue_.set_tls(shared.tls_client.get());
  // This thread's share of what recovery found (moved out: each thread takes its own).
  if (reactor.index() < shared.recovered.size()) {
    for (const spool::SegmentKey& k : shared.recovered_segments[reactor.index()]) {
      queue_.segments().add(k);
    }
    for (spool::LiveMessage& m : shared.recovered[reactor.index()]) queue_.adopt(std::move(m));
    shared.recovered[reactor.index()].clear();
  }
  writer_.set_observer(
      [](void* ctx, std::uint64_t messages, std::uint64_t sync_ns) {
        auto* self = static_cast<RelayThread*>(ctx);
        self->metrics_.observe(M::commit_batch_messages, messages);
        self->metrics_.observe(M::sync_latency_seconds, sync_ns);
      },
      this);
}

std::string_view RelayThread::date() {
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (now != date_second_) {
    smtp::format_rfc5322_date(now, date_);
    date_second_ = now;
  }
  return std::string_view(date_, smtp::kDateBytes);
}

std::unique_ptr<io::ConnectionHandler> RelayListen::on_accept(io::Connection& c) {
  auto s = std::make_unique<InboundSession>(thread_, c);
  s->start();
  return s;
}

// ---------------------------------------------------------------------------- Record

struct InboundSession::Record {
  spool::PendingMessage pm;
  std::vector<io::Slice> pieces;
  std::vector<iovec> body_iov;  // the body's pieces in order (slices, static bytes)
  std::uint64_t body_bytes = 0;
  std::string spill;
  bool spilled = false;
  std::string envelope;
  std::string received;
  std::vector<spool::RecipientView> views;
  // What was stored, for the queue (views into the session's transaction and `views`,
  // valid until the session's next transaction, which waits for this one's reply).
  spool::EnvelopeView stored;
  InboundSession* session = nullptr;  // nullptr: the session is gone, delete when stored
  RelayThread* thread = nullptr;

  void clear() {
    pieces.clear();
    body_iov.clear();
    body_bytes = 0;
    spill.clear();
    spilled = false;
  }
};

// ---------------------------------------------------------------------------- InboundSession

InboundSession::InboundSession(RelayThread& thread, io::Connection& conn)
    : thread_(thread),
      conn_(conn),
      session_(thread.shared().config->server, *this),
      client_ip_(conn.peer().host()),
      rec_(std::make_unique<Record>()) {
  rec_->session = this;
  rec_->thread = &thread;
  thread_.metrics().inc(M::sessions_total);
  thread_.metrics().add(M::sessions_active, 1);
}

InboundSession::~InboundSession() = default;

void InboundSession::start() {
  RelayShared& sh = thread_.shared();
  const RelayConfig& cfg = *sh.config;
  using R = M::sessions_refused_total_reason;
  const smtp::Reply* refuse = nullptr;
  if (sh.totals.failed.load(std::memory_order_relaxed)) {
    refuse = &kSpoolFailed;
    thread_.metrics().inc(M::sessions_refused_total[R::spool_failed]);
  } else if (sh.connections.fetch_add(1, std::memory_order_relaxed) >= cfg.max_connections &&
             cfg.max_connections != 0) {
    sh.connections.fetch_sub(1, std::memory_order_relaxed);
    refuse = &kTooManyConnections;
    thread_.metrics().inc(M::sessions_refused_total[R::connection_limit]);
  } else if (!sh.clients.try_enter(conn_.peer(), cfg.max_connections_per_client)) {
    sh.connections.fetch_sub(1, std::memory_order_relaxed);
    refuse = &kTooManyFromYou;
    thread_.metrics().inc(M::sessions_refused_total[R::client_limit]);
  }
  if (refuse != nullptr) {
    session_.start(*refuse);  // 421: closed from the start
    flush_output();
    return;
  }
  entered_ = true;
  for (const Network& n : cfg.relay_networks) {
    if (n.contains(conn_.peer())) {
      client_trusted_ = true;
      break;
    }
  }
  session_.start();
  pump();
}

bool InboundSession::relay_allowed(std::string_view domain) const {
  for (const std::string& d : thread_.shared().config->accepted_domains) {
    if (domain_matches(d, domain)) return true;
  }
  return false;
}

smtp::Decision InboundSession::on_helo(const smtp::Command& cmd) {
  helo_.assign(cmd.argument);
  esmtp_ = cmd.verb == smtp::Verb::ehlo;
  return smtp::Decision::accept();
}

smtp::Decision InboundSession::on_mail(const smtp::Command& cmd) {
  RelayShared& sh = thread_.shared();
  using R = M::mail_refused_total_reason;
  if (sh.totals.failed.load(std::memory_order_relaxed)) {
    thread_.metrics().inc(M::mail_refused_total[R::spool_failed]);
    return smtp::Decision::respond(kSpoolFailed);
  }
  const RelayConfig& cfg = *sh.config;
  if ((cfg.quota_bytes != 0 &&
       sh.totals.bytes.load(std::memory_order_relaxed) >= cfg.quota_bytes) ||
      (cfg.quota_messages != 0 &&
       sh.totals.messages.load(std::memory_order_relaxed) >= cfg.quota_messages)) {
    // 452 4.3.1 (RFC 3463: mail system full); what is already spooled is untouched.
    thread_.metrics().inc(M::mail_refused_total[R::quota]);
    return smtp::Decision::respond(kQuota);
  }
  sender_ = path_text(cmd.path);
  ret_ = static_cast<std::uint8_t>(cmd.mail.ret);
  envid_.assign(cmd.mail.envid);
  smtputf8_ = cmd.mail.smtputf8;
  rcpt_count_ = 0;
  return smtp::Decision::accept();
}

smtp::Decision InboundSession::on_rcpt(const smtp::Command& cmd) {
  using O = M::recipients_total_outcome;
  // Bare <Postmaster> (RFC 5321 4.1.1.3) is always accepted; anything else needs a trusted
  // client network or an accepted domain: no open relay.
  if (!cmd.path.postmaster && !client_trusted_ && !session_.authenticated() &&
      !relay_allowed(cmd.path.domain)) {
    thread_.metrics().inc(M::recipients_total[O::relay_denied]);
    return smtp::Decision::respond(kRelayDenied);
  }
  std::string orcpt;
  if (!cmd.rcpt.orcpt_type.empty()) {
    orcpt.assign(cmd.rcpt.orcpt_type);
    orcpt += ';';
    orcpt.append(cmd.rcpt.orcpt_value);
  }
  const std::string address = path_text(cmd.path);
  const AliasTable& aliases = thread_.shared().aliases;
  expanded_.clear();
  if (!aliases.empty() && !cmd.path.postmaster && aliases.expand(address, expanded_)) {
    // Forwarded: each target keeps the recipient the client gave as its ORCPT (RFC 3461
    // 4.2), so a bounce names the address the sender knows.
    if (rcpt_count_ + expanded_.size() > kMaxExpandedRecipients) {
      return smtp::Decision::respond(kTooManyExpanded);
    }
    if (orcpt.empty()) orcpt_of(address, orcpt);
    for (const std::string& target : expanded_) add_recipient(target, cmd.rcpt.notify, orcpt);
  } else {
    if (rcpt_count_ + 1 > kMaxExpandedRecipients) return smtp::Decision::respond(kTooManyExpanded);
    add_recipient(address, cmd.rcpt.notify, orcpt);
  }
  thread_.metrics().inc(M::recipients_total[O::accepted]);
  return smtp::Decision::accept();
}

bool InboundSession::add_recipient(std::string_view address, std::uint8_t notify,
                                   std::string_view orcpt) {
  if (rcpt_count_ == rcpts_.size()) rcpts_.emplace_back();
  Recipient& r = rcpts_[rcpt_count_++];
  r.address.assign(address);
  r.notify = notify;
  r.orcpt.assign(orcpt);
  return true;
}

smtp::Decision InboundSession::on_data_start(smtp::BodyFormat format) {
  format_ = format;
  rec_->clear();
  // Over TLS the body is the stream's plaintext, reused as it is read: keep a copy.
  if (tls_.active()) rec_->spilled = true;
  dot_line_ = false;
  line_start_ = true;
  in_headers_ = true;
  received_match_ = 0;
  received_count_ = 0;
  last_byte_ = 0;
  return smtp::Decision::accept();
}

void InboundSession::scan_body(std::string_view bytes) {
  if (bytes.empty()) return;
  // Lines starting with ".": the stored form (stuffed from DATA, raw from BDAT) then differs
  // from the other wire form, and delivery must pick the matching command.
  if (!dot_line_ &&
      ((line_start_ && bytes[0] == '.') || bytes.find("\n.") != std::string_view::npos)) {
    dot_line_ = true;
  }
  // Received: headers in the header section (up to the first empty line), for loops.
  for (std::size_t i = 0; i < bytes.size() && in_headers_; ++i) {
    const char c = bytes[i];
    if (line_start_) {
      if (c == '\r' || c == '\n') {
        in_headers_ = false;  // the empty line ending the headers
        break;
      }
      received_match_ = 0;
    }
    if (received_match_ < kReceived.size()) {  // 0xFF: this line is not one
      if (smtp::to_lower(c) == kReceived[received_match_]) {
        if (++received_match_ == kReceived.size()) ++received_count_;
      } else {
        received_match_ = 0xFF;  // this line is something else
      }
    }
    line_start_ = c == '\n';
  }
  line_start_ = bytes.back() == '\n';
  last_byte_ = bytes.back();
}

void InboundSession::keep_piece(std::string_view bytes) {
  Record& r = *rec_;
  if (r.spilled) {
    r.spill.append(bytes);
    return;
  }
  // A view into a receive buffer: keep a reference to that buffer, not a copy. Otherwise
  // it is the scanner's static "." or ".\r", which lives forever.
  for (const io::Slice& s : held_.slices()) {
    if (s.contains(bytes.data())) {
      r.pieces.push_back(s.sub(bytes.data(), bytes.size()));
      break;
    }
  }
  r.body_iov.push_back(iovec{const_cast<char*>(bytes.data()), bytes.size()});
  if (r.body_bytes + bytes.size() > kSpillAt || r.body_iov.size() >= kMaxPieces) {
    // Too much pinned: copy what there is into one buffer and go on appending to it.
    r.spill.reserve(r.body_bytes + bytes.size() + 64 * 1024);
    for (const iovec& v : r.body_iov) r.spill.append(static_cast<const char*>(v.iov_base), v.iov_len);
    r.pieces.clear();
    r.body_iov.clear();
    r.spilled = true;
  }
}

void InboundSession::on_body(std::string_view bytes) {
  scan_body(bytes);
  keep_piece(bytes);
  rec_->body_bytes += bytes.size();
  thread_.metrics().inc(M::received_bytes_total, bytes.size());
}

smtp::Decision InboundSession::on_message(const smtp::MessageInfo& info) {
  Record& r = *rec_;
  eod_ns_ = now_ns();
  const RelayConfig& cfg = *thread_.shared().config;
  if (received_count_ > cfg.delivery.max_received) {
    thread_.metrics().inc(M::messages_total[M::messages_total_outcome::loop]);
    rec_->clear();
    return smtp::Decision::respond(kMailLoop);
  }
  message_id_ = thread_.writer().next_id();
  char idhex[17];
  std::snprintf(idhex, sizeof(idhex), "%016llx", static_cast<unsigned long long>(message_id_));
  // RFC 5321 4.4: our own trace header first, as its own buffer ahead of the body pieces.
  r.received.assign("Received: from ");
  r.received += helo_.empty() ? std::string_view("unknown") : std::string_view(helo_);
  r.received += " (";
  r.received += client_ip_;
  r.received += ")\r\n\tby ";
  r.received += cfg.server.hostname;
  r.received += " (ringmta) with ";
  r.received += smtputf8_ ? "UTF8SMTP" : (esmtp_ ? "ESMTP" : "SMTP");
  // RFC 3848 (and RFC 6531 for UTF8SMTP): S for TLS, A for an authenticated client.
  if (esmtp_ || smtputf8_) {
    if (tls_.up()) r.received += 'S';
    if (session_.authenticated()) r.received += 'A';
  }
  r.received += " id ";
  r.received += idhex;
  if (rcpt_count_ == 1) {
    r.received += "\r\n\tfor <";
    r.received += rcpts_[0].address;
    r.received += '>';
  }
  r.received += "; ";
  r.received += thread_.date();
  r.received += "\r\n";

  r.views.resize(rcpt_count_);
  for (std::size_t i = 0; i < rcpt_count_; ++i) {
    r.views[i] = spool::RecipientView{rcpts_[i].address, rcpts_[i].notify, rcpts_[i].orcpt};
  }
  spool::EnvelopeView e;
  e.id = message_id_;
  e.arrival_unix_ms = unix_ms();
  e.body_format = format_ == smtp::BodyFormat::raw ? spool::StoredBody::raw
                                                   : spool::StoredBody::dot_stuffed;
  const bool ends_crlf = r.body_bytes == 0 || last_byte_ == '\n';
  e.flags = static_cast<std::uint8_t>(
      (smtputf8_ ? spool::kFlagSmtputf8 : 0) | (info.has_8bit ? spool::kFlag8bit : 0) |
      (dot_line_ || !ends_crlf ? spool::kFlagNeedsTransform : 0));
  e.ret = ret_;
  e.sender = sender_;
  e.envid = envid_;
  e.client_ip = client_ip_;
  e.helo = helo_;
  e.recipients = r.views;
  r.stored = e;
  r.envelope.clear();
  const std::uint64_t body = r.received.size() + r.body_bytes;
  if (!spool::encode_envelope(e, body, r.envelope)) {
    thread_.metrics().inc(M::messages_total[M::messages_total_outcome::spool_error]);
    return smtp::Decision::respond(kStoreFailed);
  }
  // The record: header (filled by the writer), envelope, Received:, the body pieces.
  spool::PendingMessage& pm = r.pm;
  pm.iov.clear();
  pm.iov.push_back(iovec{nullptr, 0});
  pm.iov.push_back(iovec{r.envelope.data(), r.envelope.size()});
  pm.iov.push_back(iovec{r.received.data(), r.received.size()});
  std::uint32_t crc = spool::crc32c(r.envelope);
  crc = spool::crc32c(r.received, crc);
  if (r.spilled) {
    pm.iov.push_back(iovec{r.spill.data(), r.spill.size()});
    crc = spool::crc32c(r.spill, crc);
  } else {
    for (const iovec& v : r.body_iov) {
      pm.iov.push_back(v);
      crc = spool::crc32c(std::string_view(static_cast<const char*>(v.iov_base), v.iov_len),
                          crc);
    }
  }
  pm.payload_bytes = r.envelope.size() + body;
  pm.payload_crc = crc;
  pm.done = &InboundSession::on_stored;
  pm.owner = rec_.get();
  storing_ = true;
  in_append_ = true;
  append_result_ = 1;
  thread_.writer().append(pm);
  in_append_ = false;
  if (append_result_ != 1) {
    // Failed at once (no segment could be created: the disk is full): answer now.
    storing_ = false;
    rec_->clear();
    thread_.metrics().inc(M::messages_total[M::messages_total_outcome::spool_error]);
    return smtp::Decision::respond(kStoreFailed);
  }
  return smtp::Decision::defer();  // the 250 waits for the spool
}

void InboundSession::on_stored(spool::PendingMessage& m, int result) {
  auto* r = static_cast<Record*>(m.owner);
  if (r->session == nullptr) {
    // The connection went away while the message was being stored. Stored, it is ours all
    // the same (the client may never learn it, and may send it again): it is queued from
    // the spool like a recovered one.
    if (result == 0) queue_orphan(*r);
    delete r;
    return;
  }
  r->session->stored(result);
}

void InboundSession::queue_orphan(Record& r) {
  spool::StoredMessage e;
  std::uint64_t body_length = 0;
  std::size_t used = 0;
  if (!spool::decode_envelope(r.envelope, e, body_length, used)) return;  // we encoded it
  QueueManager& q = r.thread->queue();
  QueuedMessage* m = q.from_envelope(e);
  m->body_length = body_length;
  m->segment = spool::SegmentKey{r.thread->writer().thread(), r.pm.segment_sequence};
  m->body_offset = r.pm.offset + spool::kHeaderSize + r.envelope.size();
  m->record_bytes = spool::kHeaderSize + r.pm.payload_bytes;
  q.accept(m);
}

void InboundSession::stored(int result) {
  if (in_append_) {
    append_result_ = result;
    return;
  }
  storing_ = false;
  if (result == 0) hand_to_queue();  // its body references go with it
  rec_->clear();  // the receive buffers go back to the ring
  using O = M::messages_total_outcome;
  thread_.metrics().inc(M::messages_total[result == 0 ? O::accepted : O::spool_error]);
  thread_.metrics().observe(M::accept_latency_seconds, now_ns() - eod_ns_);
  if (result != 0) {
    session_.resume(kStoreFailed);
  } else {
    const int n = std::snprintf(ok_text_, sizeof(ok_text_), "Ok: queued as %016llx",
                                static_cast<unsigned long long>(message_id_));
    ok_len_ = static_cast<std::size_t>(n);
    if (const std::uint32_t delay = thread_.shared().config->test_accept_delay_ms; delay != 0) {
      accept_delay_.set_callback([](io::Timer&, void* ctx) {
        static_cast<InboundSession*>(ctx)->send_ok();
      }, this);
      thread_.reactor().timers().arm(accept_delay_, delay);
      return;
    }
    session_.resume(smtp::Reply{250, {2, 0, 0}, std::string_view(ok_text_, ok_len_)});
  }
  pump();
}

void InboundSession::send_ok() {
  session_.resume(smtp::Reply{250, {2, 0, 0}, std::string_view(ok_text_, ok_len_)});
  pump();
}

void InboundSession::hand_to_queue() {
  Record& r = *rec_;
  QueueManager& q = thread_.queue();
  QueuedMessage* m = q.new_message(r.stored);
  m->body_length = r.received.size() + r.body_bytes;
  m->segment = spool::SegmentKey{thread_.writer().thread(), r.pm.segment_sequence};
  m->body_offset = r.pm.offset + spool::kHeaderSize + r.envelope.size();
  m->record_bytes = spool::kHeaderSize + r.pm.payload_bytes;
  // The body moves over as references (the containers swap, so both keep their capacity).
  m->received.swap(r.received);
  m->pieces.swap(r.pieces);
  m->body_iov.clear();
  m->body_iov.push_back(iovec{m->received.data(), m->received.size()});
  if (r.spilled) {
    m->spill.swap(r.spill);
    m->body_iov.push_back(iovec{m->spill.data(), m->spill.size()});
  } else {
    m->body_iov.insert(m->body_iov.end(), r.body_iov.begin(), r.body_iov.end());
  }
  m->in_memory = true;
  if (thread_.test_drop()) {
    q.drop_for_test(m);
    return;
  }
  q.accept(m);
}

void InboundSession::on_transaction_abort() {
  rcpt_count_ = 0;
  if (!storing_) rec_->clear();
}

void InboundSession::on_recv(io::Connection&, io::Slice data) {
  if (tls_.active()) {
    // Ciphertext: copied into the stream, the buffer goes back. Failed or closed: send what
    // the stream holds (an alert), nothing more from the session, then close.
    if (tls_.receive(data.view(), session_)) close_after_output_ = true;
    pump();
    return;
  }
  held_.push(std::move(data));
  pump();
}

void InboundSession::tls_handshake_ended(io::TlsHandshakeOutcome outcome, std::uint64_t cpu_us) {
  using O = M::tls_handshakes_total_outcome;
  thread_.metrics().inc(M::tls_handshakes_total[io::outcome_label<O>(outcome)]);
  thread_.metrics().inc(M::tls_handshake_cpu_microseconds_total, cpu_us);
}

smtp::AuthVerdict InboundSession::on_auth(const smtp::AuthCredentials& c) {
  using O = M::auth_total_outcome;
  const RelayShared& sh = thread_.shared();
  RelayShared& shared = thread_.shared();
  const std::uint64_t now = thread_.reactor().now_ms();
  if (shared.auth_limiter != nullptr) {
    const std::lock_guard lock(shared.auth_mutex);
    if (shared.auth_limiter->blocked(client_ip_, now)) {
      thread_.metrics().inc(M::auth_total[O::blocked]);
      return smtp::AuthVerdict::too_many_failures;
    }
  }
  if (sh.users != nullptr && sh.users->verify(c.user, c.password)) {
    thread_.metrics().inc(M::auth_total[O::accepted]);
    return smtp::AuthVerdict::accept;
  }
  if (shared.auth_limiter != nullptr) {
    const std::lock_guard lock(shared.auth_mutex);
    shared.auth_limiter->record_failure(client_ip_, now);
  }
  thread_.metrics().inc(M::auth_total[O::rejected]);
  return smtp::AuthVerdict::reject;
}

void InboundSession::pump() {
  if (tls_.active()) {
    tls_.feed_session(session_);
  } else {
    held_.feed(session_, [this] { return !session_.closed(); });
  }
  if (session_.closed() || session_.wants_tls()) {
    // Nothing more is read as commands (after QUIT/421, or STARTTLS: CVE-2011-0411, what
    // followed it is dropped and the stream sees only bytes received from here on).
    held_.clear();
  }
  if (session_.wants_tls() && !tls_.active() && thread_.shared().tls) {
    tls_.start(*thread_.shared().tls);
  }
  if (stopping_ && !session_.waiting() && !session_.closed() &&
      (session_.state() == smtp::SessionState::greeted ||
       session_.state() == smtp::SessionState::ready)) {
    session_.shutdown(kShuttingDown);  // its message is stored: now it may go
  }
  flush_output();
  if (conn_.closing()) return;
  io::HeldInput::apply_backpressure(conn_,
                                    tls_.active() ? tls_.plaintext_bytes() : held_.bytes());
  conn_.set_deadline(session_.timeout_ms());
}

void InboundSession::flush_output() {
  if (conn_.closing() || conn_.sending()) return;
  if (tls_.active()) {
    if (tls_.accepts_output(session_)) tls_.write_output(session_, session_.output().size());
    if (const std::string_view ct = tls_.next_send(); !ct.empty()) {
      conn_.send(ct);
      return;
    }
    if (tls_.established() || tls_.ended()) {
      if (session_.closed() || close_after_output_) conn_.close();
      return;
    }
    // Not established yet: the plaintext 220 to STARTTLS (below) still goes as it is.
  }
  const std::string_view out = session_.output();
  if (!out.empty()) {
    conn_.send(out);
    return;
  }
  if (session_.closed() || close_after_output_) conn_.close();
}

void InboundSession::on_sent(io::Connection&, std::size_t bytes) {
  if (tls_.sent(bytes)) {
    pump();
    return;
  }
  session_.consume_output(bytes);
  pump();
}

void InboundSession::on_timeout(io::Connection&) {
  if (tls_.handshake_timed_out()) {
    // The handshake did not finish in time: no reply can be sent in either form.
    conn_.close();
    return;
  }
  if (session_.waiting()) {
    conn_.set_deadline(session_.timeout_ms());  // the spool is working on our message
    return;
  }
  session_.shutdown(kTimeout);
  flush_output();
}

void InboundSession::on_shutdown(io::Connection&) {
  // Stopping: sessions between transactions get 421 now; one in a transaction finishes it
  // first (the reactor waits for file operations; its grace period bounds the rest).
  stopping_ = true;
  pump();
}

void InboundSession::on_close(io::Connection&, int) {
  if (storing_) {
    // The writer still holds the record: it outlives us and is freed once stored.
    rec_->session = nullptr;
    (void)rec_.release();
  }
  if (entered_) {
    thread_.shared().connections.fetch_sub(1, std::memory_order_relaxed);
    thread_.shared().clients.leave(conn_.peer());
  }
  thread_.metrics().add(M::sessions_active, -1);
  if (thread_.shared().config->verbose) {
    // One line per session (off by default: nothing is logged per message).
    std::fprintf(stderr, "ringmta-relay: session from %s: %s\n", client_ip_.c_str(),
                 session_.summary().c_str());
  }
}

}  // namespace ringmta::relay
