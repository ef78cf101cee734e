// The queue as the spool describes it after a restart: message records merged with the
// outcome records that followed them, giving each message's recipients still to deliver, and
// which segments must be kept. A segment is kept while it holds a live message (one with a
// recipient not final) or the final outcome of a recipient of a live message; once neither,
// it can be deleted in any order (a deferred outcome never pins: losing it only loses the
// retry time, never a delivery).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay/spool/recovery.hpp"

namespace ringmta::spool {

struct SegmentKey {
  unsigned thread = 0;
  std::uint64_t sequence = 0;
  friend auto operator<=>(const SegmentKey&, const SegmentKey&) = default;
};

struct LiveMessage {
  StoredMessage envelope;
  std::vector<RecipientOutcome> outcomes;  // one per recipient, index = position
  SegmentKey segment;                      // where the message record is
  std::uint64_t body_offset = 0;
  std::uint64_t body_length = 0;
  std::uint64_t record_bytes = 0;
  std::vector<SegmentKey> outcome_segments;  // segments holding final outcomes of it
  std::string digest;  // "id TAB octets TAB sha256" when asked for (queue --digest)
  std::size_t pending() const;
};

class SpoolState : public RecoveryVisitor {
 public:
  explicit SpoolState(bool with_digest = false) : with_digest_(with_digest) {}
  void on_message(const RecoveredMessage& m) override;
  void on_outcome(const RecoveredOutcome& o) override;
  void on_segment(unsigned thread, std::uint64_t sequence, const std::string& path) override;

  // After recovery: the live messages, in the order their records were found.
  std::vector<LiveMessage> take_live();
  // Every segment found, with how many live messages or final outcomes of live messages it
  // holds (0: nothing in it matters any more). Valid after take_live().
  const std::map<SegmentKey, unsigned>& pins() const { return pins_; }
  const std::map<SegmentKey, std::string>& paths() const { return paths_; }
  std::uint64_t live_bytes() const { return live_bytes_; }
  std::uint64_t outcome_records() const { return outcome_records_; }

 private:
  bool with_digest_;
  std::vector<LiveMessage> messages_;  // in record order; final ones dropped at the end
  std::unordered_map<std::uint64_t, std::size_t> by_id_;
  std::map<SegmentKey, unsigned> pins_;
  std::map<SegmentKey, std::string> paths_;
  std::uint64_t live_bytes_ = 0;
  std::uint64_t outcome_records_ = 0;
};

// At start, before any writer opens its new segment: deletes the segments nothing pins, in
// sequence order, then syncs their directories. Returns how many went; one log line each.
std::size_t delete_unpinned_segments(const SpoolState& state, std::vector<std::string>* log);

}  // namespace ringmta::spool
