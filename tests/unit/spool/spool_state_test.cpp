// Merging message and outcome records into the live queue after a restart: final outcomes
// stay final, deferred ones carry the retry time, a message with every recipient final is
// gone, and a segment is pinned exactly while it holds a live message or a final outcome of
// one.
#include "relay/spool/spool_state.hpp"

#include <gtest/gtest.h>

namespace ringmta::spool {
namespace {

RecoveredMessage message(std::uint64_t id, unsigned rcpts, std::uint64_t seq) {
  RecoveredMessage m;
  m.envelope.id = id;
  m.envelope.sender = "s@example.test";
  for (unsigned i = 0; i < rcpts; ++i) {
    m.envelope.recipients.push_back({"r" + std::to_string(i) + "@example.test", 0, ""});
  }
  m.body = "Subject: x\r\n\r\nbody\r\n";
  m.thread = 0;
  m.sequence = seq;
  m.record_bytes = 100;
  return m;
}

void outcome(SpoolState& st, std::uint64_t id, std::uint64_t seq,
             std::vector<RecipientOutcome> entries) {
  RecoveredOutcome o;
  o.message_id = id;
  o.entries = &entries;
  o.thread = 0;
  o.sequence = seq;
  st.on_outcome(o);
}

TEST(SpoolState, OutcomesDecideWhatIsLiveAndWhatIsPinned) {
  SpoolState st;
  for (std::uint64_t seq = 1; seq <= 4; ++seq) st.on_segment(0, seq, "seg" + std::to_string(seq));
  st.on_message(message(1, 2, 1));  // both delivered: gone
  st.on_message(message(2, 2, 1));  // one delivered, one deferred: live
  st.on_message(message(3, 1, 2));  // untouched: live
  outcome(st, 1, 2, {{0, RecipientState::delivered, 1, 0}});
  outcome(st, 2, 2, {{0, RecipientState::delivered, 1, 0}, {1, RecipientState::deferred, 1, 5000}});
  outcome(st, 1, 3, {{1, RecipientState::failed, 2, 0}});
  outcome(st, 2, 3, {{1, RecipientState::deferred, 2, 9000}});
  // A later record cannot revive a final recipient.
  outcome(st, 2, 4, {{0, RecipientState::deferred, 3, 1}});
  // An outcome for a message whose record is gone (deleted earlier) is history.
  outcome(st, 99, 4, {{0, RecipientState::delivered, 1, 0}});
  const std::vector<LiveMessage> live = st.take_live();
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].envelope.id, 2u);
  EXPECT_EQ(live[0].pending(), 1u);
  EXPECT_EQ(live[0].outcomes[0].state, RecipientState::delivered);
  EXPECT_EQ(live[0].outcomes[1].state, RecipientState::deferred);
  EXPECT_EQ(live[0].outcomes[1].attempts, 2);
  EXPECT_EQ(live[0].outcomes[1].next_attempt_unix_ms, 9000u);
  EXPECT_EQ(live[1].envelope.id, 3u);
  EXPECT_EQ(live[1].pending(), 1u);
  // Segment 1: message 2's record. Segment 2: message 3's record and message 2's final
  // outcome for recipient 0. Segment 3: only message 1's outcome (message 1 is final) and a
  // deferred one (never pins). Segment 4: nothing that matters.
  const auto& pins = st.pins();
  EXPECT_EQ(pins.at({0, 1}), 1u);
  EXPECT_EQ(pins.at({0, 2}), 2u);
  EXPECT_EQ(pins.at({0, 3}), 0u);
  EXPECT_EQ(pins.at({0, 4}), 0u);
  EXPECT_EQ(st.live_bytes(), 200u);
  EXPECT_EQ(st.outcome_records(), 6u);
}

TEST(SpoolState, OutcomeRecordsRoundTrip) {
  const std::vector<RecipientOutcome> in = {{0, RecipientState::delivered, 1, 0},
                                            {7, RecipientState::deferred, 3, 1700000000123},
                                            {70000, RecipientState::failed, 65535, 0}};
  std::string p;
  encode_outcome(42, in, p);
  EXPECT_EQ(p.size(), 8 + 2 + in.size() * kOutcomeEntryBytes);
  std::uint64_t id = 0;
  std::vector<RecipientOutcome> out;
  ASSERT_TRUE(decode_outcome(p, id, out));
  EXPECT_EQ(id, 42u);
  EXPECT_EQ(out, in);
  // Cut short, or a state that does not exist: refused.
  EXPECT_FALSE(decode_outcome(std::string_view(p).substr(0, p.size() - 1), id, out));
  std::string bad = p;
  bad[8 + 2 + 4] = 9;
  EXPECT_FALSE(decode_outcome(bad, id, out));
}

}  // namespace
}  // namespace ringmta::spool
