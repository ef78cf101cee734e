// Reading the spool back at start: every segment of every thread directory is scanned, every
// record checked; torn tails (a crash mid-write) are cut off, records that fail their check
// are copied aside to <spool>/quarantine/ with a log line, and the messages found are handed
// to the caller (the queue). Segments from a newer format version stop the start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "relay/spool/record.hpp"

namespace ringmta::spool {

struct RecoveredMessage {
  StoredMessage envelope;
  std::string_view body;  // as stored (wire format, Received: first); valid during the call
  std::string segment;    // file path
  unsigned thread = 0;    // the t<N> directory
  std::uint64_t sequence = 0;
  std::uint64_t offset = 0;       // of the record
  std::uint64_t body_offset = 0;  // of the body in the file
  std::uint64_t record_bytes = 0;
};

struct RecoveredOutcome {
  std::uint64_t message_id = 0;
  const std::vector<RecipientOutcome>* entries = nullptr;
  unsigned thread = 0;
  std::uint64_t sequence = 0;
};

// What recovery hands over, record by record: per thread directory in segment order, each
// segment's records in file order (an outcome always comes after its message's record in
// this order when both are in the same directory).
class RecoveryVisitor {
 public:
  virtual ~RecoveryVisitor() = default;
  virtual void on_message(const RecoveredMessage& m) = 0;
  virtual void on_outcome(const RecoveredOutcome&) {}
  // Every segment found, with its sequence (also those with no records).
  virtual void on_segment(unsigned /*thread*/, std::uint64_t /*sequence*/,
                          const std::string& /*path*/) {}
};

struct RecoveryReport {
  std::uint64_t segments = 0;
  std::uint64_t messages = 0;
  std::uint64_t recipients = 0;
  std::uint64_t bytes = 0;          // record bytes of the messages found
  std::uint64_t torn_tails = 0;     // segments whose last write was cut short
  std::uint64_t corrupt_records = 0;
  std::uint64_t removed_empty = 0;  // segments created but never written (crash at creation)
  std::map<unsigned, std::uint64_t> last_sequence;  // per thread directory
  double elapsed_ms = 0;
  std::vector<std::string> log;     // one line per repair, for the operator
};

// Scans `dir`. With repair, cuts torn tails, quarantines bad records and removes empty
// segments; without it, only reads (ringmta-relay queue). Returns false with *error set when
// the spool cannot be used (a newer format, an unreadable file).
bool recover_spool(const std::string& dir, bool repair, RecoveryVisitor& visit,
                   RecoveryReport& report, std::string* error);
// The same, for callers that want only the message records.
bool recover_spool(const std::string& dir, bool repair,
                   const std::function<void(const RecoveredMessage&)>& visit,
                   RecoveryReport& report, std::string* error);

}  // namespace ringmta::spool
