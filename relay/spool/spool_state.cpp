// Merging recovered records into the live queue; see spool_state.hpp.
#include "relay/spool/spool_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <set>

#include "core/smtp/message_digest.hpp"

namespace ringmta::spool {

std::size_t LiveMessage::pending() const {
  std::size_t n = 0;
  for (const RecipientOutcome& o : outcomes) n += is_final(o.state) ? 0 : 1;
  return n;
}

void SpoolState::on_segment(unsigned thread, std::uint64_t sequence, const std::string& path) {
  const SegmentKey k{thread, sequence};
  pins_.emplace(k, 0);
  paths_[k] = path;
}

void SpoolState::on_message(const RecoveredMessage& m) {
  // A message record seen twice (it cannot be, ids are unique) keeps its first copy.
  if (!by_id_.emplace(m.envelope.id, messages_.size()).second) return;
  LiveMessage& lm = messages_.emplace_back();
  lm.envelope = m.envelope;
  lm.outcomes.resize(m.envelope.recipients.size());
  for (std::size_t i = 0; i < lm.outcomes.size(); ++i) {
    lm.outcomes[i].index = static_cast<std::uint32_t>(i);
  }
  lm.segment = SegmentKey{m.thread, m.sequence};
  lm.body_offset = m.body_offset;
  lm.body_length = m.body.size();
  lm.record_bytes = m.record_bytes;
  if (with_digest_) {
    smtp::MessageDigest md;
    md.begin(m.envelope.body_format == StoredBody::raw ? smtp::BodyFormat::raw
                                                        : smtp::BodyFormat::dot_stuffed);
    md.update(m.body);
    md.finish();
    lm.digest = std::string(md.id().empty() ? std::string_view("-") : md.id()) + '\t' +
                std::to_string(md.body_octets()) + '\t' + std::string(md.sha256_hex());
  }
}

void SpoolState::on_outcome(const RecoveredOutcome& o) {
  ++outcome_records_;
  const auto it = by_id_.find(o.message_id);
  if (it == by_id_.end()) return;  // its message is gone: it was final, this is history
  LiveMessage& lm = messages_[it->second];
  bool any_final = false;
  for (const RecipientOutcome& e : *o.entries) {
    if (e.index >= lm.outcomes.size()) continue;  // cannot happen with a sound record
    RecipientOutcome& cur = lm.outcomes[e.index];
    if (is_final(cur.state)) continue;  // final stays final
    cur = e;
    any_final = any_final || is_final(e.state);
  }
  if (any_final) {
    const SegmentKey k{o.thread, o.sequence};
    if (lm.outcome_segments.empty() || lm.outcome_segments.back() != k) {
      lm.outcome_segments.push_back(k);
    }
  }
}

std::vector<LiveMessage> SpoolState::take_live() {
  std::vector<LiveMessage> live;
  live.reserve(messages_.size());
  for (LiveMessage& m : messages_) {
    if (m.pending() == 0) continue;
    ++pins_[m.segment];
    for (const SegmentKey& k : m.outcome_segments) ++pins_[k];
    live_bytes_ += m.record_bytes;
    live.push_back(std::move(m));
  }
  messages_.clear();
  by_id_.clear();
  return live;
}

std::size_t delete_unpinned_segments(const SpoolState& state, std::vector<std::string>* log) {
  std::size_t n = 0;
  std::set<std::string> dirs;
  for (const auto& [key, pins] : state.pins()) {  // sequence order within each thread
    if (pins != 0) continue;
    const auto p = state.paths().find(key);
    if (p == state.paths().end()) continue;
    if (::unlink(p->second.c_str()) == 0) {
      ++n;
      dirs.insert(p->second.substr(0, p->second.rfind('/')));
    } else if (log != nullptr) {
      log->push_back("cannot delete " + p->second + " (all of it delivered)");
    }
  }
  for (const std::string& d : dirs) {
    const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  return n;
}

}  // namespace ringmta::spool
