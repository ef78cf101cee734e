// Bounces: the delivery status notification for a message's failed recipients, written to
// the spool as a message from <> to the original sender, then queued and delivered like any
// other. The failed recipients' outcomes are logged only once the bounce is durable, so a
// crash in between sends the bounce twice at worst, never not at all.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/smtp/reply_parser.hpp"
#include "relay/dsn.hpp"
#include "relay/queue/bounce_write.hpp"
#include "relay/queue/queue_manager.hpp"
#include "relay/queue/queue_summary.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/spool/crc32c.hpp"

namespace ringmta::relay {

using M = RelayMetrics;

namespace {

// "550 5.1.1 text" (code, enhanced code, text) or a local reason "5.4.7 text" back into its
// parts, for the report.
void split_reply(const QueuedRecipient& r, DsnRecipient& out) {
  std::string_view text = r.last_reply;
  if (r.last_code != 0) {
    if (text.size() >= 4 && text[3] == ' ') text.remove_prefix(4);
    smtp::EnhancedCode e{};
    const std::size_t used = smtp::parse_enhanced_code(text, r.last_code, e);
    out.reply = smtp::Reply{r.last_code, e, text.substr(used)};
    return;
  }
  // A local reason: its enhanced code (if it starts with one) is the status.
  smtp::EnhancedCode e{};
  std::size_t used = smtp::parse_enhanced_code(text, 500, e);
  if (used == 0) used = smtp::parse_enhanced_code(text, 400, e);
  if (e.present()) {
    out.status = smtp::EnhancedCode{5, e.subject, e.detail};  // it failed for good
  }
  out.reason = text.substr(used);
}

}  // namespace

void QueueManager::bounce(QueuedMessage* m, std::span<const std::uint32_t> failed) {
  // Which failures the sender wants to hear of (none for <>, none with NOTIFY=NEVER).
  BounceWrite* w = free_bounces_;
  if (w != nullptr) {
    free_bounces_ = w->next_free;
  } else {
    all_bounces_.push_back(std::make_unique<BounceWrite>());
    w = all_bounces_.back().get();
  }
  w->owner = this;
  w->message = m;
  w->failed.assign(failed.begin(), failed.end());
  w->dsn_rcpts.clear();
  for (std::uint32_t idx : failed) {
    const QueuedRecipient& r = m->rcpts[idx];
    if (!dsn_wanted(m->sender, r.notify, DsnAction::failed)) continue;
    DsnRecipient d;
    d.address = r.address;
    d.orcpt = r.orcpt;
    d.action = DsnAction::failed;
    d.remote_mta = r.last_hop;
    split_reply(r, d);
    d.last_attempt_unix = static_cast<std::int64_t>(unix_now_ms() / 1000);
    w->dsn_rcpts.push_back(d);
  }
  if (w->dsn_rcpts.empty()) {
    w->message = nullptr;
    w->next_free = free_bounces_;
    free_bounces_ = w;
    write_outcomes(m, failed);
    return;
  }
  // The start of the original: all of it up to the report's size limit (and one byte more,
  // so that the report knows it is over).
  const std::size_t want =
      static_cast<std::size_t>(std::min<std::uint64_t>(m->body_length, kDefaultDsnSizeLimit + 1));
  w->original.clear();
  if (m->in_memory) {
    for (const iovec& v : m->body_iov) {
      if (w->original.size() >= want) break;
      const std::size_t n = std::min(v.iov_len, want - w->original.size());
      w->original.append(static_cast<const char*>(v.iov_base), n);
    }
  } else {
    // A blocking read, from the page cache almost always: bounces are rare and small.
    w->original.resize(want);
    const int fd = segments_.read_fd(m->segment);
    const ssize_t got = fd < 0 ? -1
                               : ::pread(fd, w->original.data(), want,
                                         static_cast<off_t>(m->body_offset));
    w->original.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  }
  const std::uint64_t now_ms = unix_now_ms();
  w->id = writer_.next_id();
  const std::string message_id =
      make_dsn_message_id(w->id, static_cast<std::int64_t>(now_ms / 1000), config_.server.hostname);
  DsnRequest req;
  req.reporting_mta = config_.server.hostname;
  req.message_id = message_id;
  req.now_unix = static_cast<std::int64_t>(now_ms / 1000);
  req.envelope.sender = m->sender;
  req.envelope.envid = m->envid;
  req.envelope.ret = static_cast<smtp::DsnRet>(m->ret);
  req.envelope.smtputf8 = (m->flags & spool::kFlagSmtputf8) != 0;
  req.envelope.client_ip = m->client_ip;
  req.envelope.helo = m->helo;
  req.envelope.arrival_unix_ms = m->arrival_unix_ms;
  req.recipients = w->dsn_rcpts;
  req.original = w->original;
  req.original_format = m->body_format == spool::StoredBody::raw ? smtp::BodyFormat::raw
                                                                 : smtp::BodyFormat::dot_stuffed;
  w->body.clear();
  const DsnResult res = build_dsn(req, w->body);
  if (!res.ok()) {
    // Only a null sender or no recipient is refused, both excluded above.
    w->message = nullptr;
    w->next_free = free_bounces_;
    free_bounces_ = w;
    write_outcomes(m, failed);
    return;
  }
  const bool dot_line = (!w->body.empty() && w->body[0] == '.') ||
                        w->body.find("\n.") != std::string::npos;
  w->flags = static_cast<std::uint8_t>((res.smtputf8 ? spool::kFlagSmtputf8 : 0) |
                                       (res.eight_bit ? spool::kFlag8bit : 0) |
                                       (dot_line ? spool::kFlagNeedsTransform : 0));
  w->arrival_unix_ms = now_ms;
  w->rcpt_view = spool::RecipientView{m->sender, 0, {}};
  spool::EnvelopeView& e = w->view;
  e = spool::EnvelopeView{};
  e.id = w->id;
  e.arrival_unix_ms = now_ms;
  e.body_format = spool::StoredBody::dot_stuffed;
  e.flags = w->flags;
  e.sender = "";
  e.helo = config_.server.hostname;
  e.recipients = std::span<const spool::RecipientView>(&w->rcpt_view, 1);
  w->envelope.clear();
  if (!spool::encode_envelope(e, w->body.size(), w->envelope)) {
    // The sender address cannot be longer than a field allows (it was accepted): unreachable.
    w->message = nullptr;
    w->next_free = free_bounces_;
    free_bounces_ = w;
    write_outcomes(m, failed);
    return;
  }
  spool::PendingMessage& pm = w->pm;
  pm.type = spool::RecordType::message;
  pm.iov.clear();
  pm.iov.push_back(iovec{nullptr, 0});
  pm.iov.push_back(iovec{w->envelope.data(), w->envelope.size()});
  pm.iov.push_back(iovec{w->body.data(), w->body.size()});
  pm.payload_bytes = w->envelope.size() + w->body.size();
  pm.payload_crc = spool::crc32c(w->body, spool::crc32c(w->envelope));
  pm.done = &QueueManager::on_bounce_written;
  pm.owner = w;
  ++m->bounces_writing;
  writer_.append(pm);
}

void QueueManager::on_bounce_written(spool::PendingMessage& pm, int result) {
  auto* w = static_cast<BounceWrite*>(pm.owner);
  w->owner->bounce_written(w, result);
}

void QueueManager::bounce_written(BounceWrite* w, int result) {
  QueuedMessage* m = w->message;
  --m->bounces_writing;
  ++m->holds;
  if (result == 0) {
    metrics_.inc(M::bounces_total);
    // The bounce is a message of ours now: queued from the spool like a recovered one.
    QueuedMessage* b = new_message();
    b->id = w->id;
    b->arrival_unix_ms = w->arrival_unix_ms;
    b->body_format = spool::StoredBody::dot_stuffed;
    b->flags = w->flags;
    b->ret = 0;
    b->sender.clear();
    b->envid.clear();
    b->client_ip.clear();
    b->helo = config_.server.hostname;
    b->rcpt_count = 1;
    if (b->rcpts.empty()) b->rcpts.resize(1);
    b->rcpts[0].reset(m->sender, {}, 0);
    b->body_length = w->body.size();
    b->segment = spool::SegmentKey{writer_.thread(), w->pm.segment_sequence};
    b->body_offset = w->pm.offset + spool::kHeaderSize + w->envelope.size();
    b->record_bytes = spool::kHeaderSize + w->pm.payload_bytes;
    accept(b);
    write_outcomes(m, w->failed);
  }
  // Not written: the spool has failed (the relay accepts nothing more). The recipients stay
  // undecided on disk, so a restart tries them again; the message keeps its segment until
  // then (the hold below is never given back).
  if (result != 0) ++m->holds;
  w->message = nullptr;
  w->next_free = free_bounces_;
  free_bounces_ = w;
  --m->holds;
  maybe_finish(m);
}

}  // namespace ringmta::relay
