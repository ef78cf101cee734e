// The spool's on-disk records: binary, length-prefixed, every header and payload checked by
// CRC-32C. No text field is ever parsed from a line (an address cannot inject a record, the
// class of bug behind CVE-2020-7247 and CVE-2020-28021). A segment file is a sequence of
// records starting with a segment record; zero bytes (preallocated space) end it.
//
// Header, 24 bytes, little-endian:
//   u32 magic "RGMS" | u16 version | u8 type | u8 flags | u32 payload length |
//   u32 payload crc32c | u32 header crc32c (of the 16 bytes before it) | u32 zero
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringmta::spool {

inline constexpr std::uint32_t kRecordMagic = 0x534D4752u;  // bytes "RGMS"
inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 24;
inline constexpr std::uint32_t kMaxPayload = 1u << 30;  // 1 GiB: larger is corruption

enum class RecordType : std::uint8_t { segment = 1, message = 2, outcome = 3 };

struct RecordHeader {
  std::uint16_t version = kFormatVersion;
  RecordType type = RecordType::message;
  std::uint8_t flags = 0;
  std::uint32_t length = 0;       // payload bytes
  std::uint32_t payload_crc = 0;  // crc32c of the payload
};

// Writes the 24 header bytes (the header's own crc included).
void encode_header(const RecordHeader& h, char* out);

enum class HeaderCheck : std::uint8_t {
  ok,
  end,            // zero bytes: the end of the written part of a segment
  short_input,    // fewer than 24 bytes left
  bad_magic,
  bad_crc,        // the header is damaged (or torn mid-header)
  newer_version,  // written by a newer ringmta: refuse, do not touch
  too_long,
};
HeaderCheck decode_header(std::string_view bytes, RecordHeader& out);

// ---- Segment record: the first record of every segment file. ---------------------------------
struct SegmentInfo {
  std::uint32_t thread = 0;
  std::uint64_t sequence = 0;
  std::uint64_t created_unix_ms = 0;
  friend bool operator==(const SegmentInfo&, const SegmentInfo&) = default;
};
void encode_segment_payload(const SegmentInfo& s, std::string& out);
bool decode_segment_payload(std::string_view payload, SegmentInfo& out);

// ---- Message record: the envelope, then the body as received. ------------------------------
enum class StoredBody : std::uint8_t { dot_stuffed = 0, raw = 1 };

struct RecipientView {
  std::string_view address;
  std::uint8_t notify = 0;       // RFC 3461 NOTIFY bits (smtp::NotifyFlag)
  std::string_view orcpt{};      // "type;value" as received, or empty
};

// What the writer has at hand when a message completes (views into the session's state).
struct EnvelopeView {
  std::uint64_t id = 0;
  std::uint64_t arrival_unix_ms = 0;
  StoredBody body_format = StoredBody::dot_stuffed;
  std::uint8_t flags = 0;        // kFlagSmtputf8 | kFlag8bit
  std::uint8_t ret = 0;          // smtp::DsnRet
  std::string_view sender;       // "" = null reverse path
  std::string_view envid;
  std::string_view client_ip;
  std::string_view helo;
  std::span<const RecipientView> recipients;
};
inline constexpr std::uint8_t kFlagSmtputf8 = 1;
inline constexpr std::uint8_t kFlag8bit = 2;
// The body's stored and other wire forms differ: it has a line starting with "." (stuffed
// from DATA, or to be stuffed for DATA), or (raw) it does not end in CRLF. Without this flag
// the stored bytes serve DATA and BDAT alike, so delivery picks either without a copy.
inline constexpr std::uint8_t kFlagNeedsTransform = 4;

// Appends the envelope part of a message payload; the body (body_length bytes) follows it.
// Strings longer than 65535 bytes are refused (false): no legal SMTP field is.
bool encode_envelope(const EnvelopeView& e, std::uint64_t body_length, std::string& out);

// What recovery reads back (owning).
struct StoredRecipient {
  std::string address;
  std::uint8_t notify = 0;
  std::string orcpt;
  friend bool operator==(const StoredRecipient&, const StoredRecipient&) = default;
};
struct StoredMessage {
  std::uint64_t id = 0;
  std::uint64_t arrival_unix_ms = 0;
  StoredBody body_format = StoredBody::dot_stuffed;
  std::uint8_t flags = 0;
  std::uint8_t ret = 0;
  std::string sender, envid, client_ip, helo;
  std::vector<StoredRecipient> recipients;
  friend bool operator==(const StoredMessage&, const StoredMessage&) = default;
};
// Reads the envelope part alone (as encode_envelope wrote it): the body length it declares
// and how many bytes it took.
bool decode_envelope(std::string_view bytes, StoredMessage& out, std::uint64_t& body_length,
                     std::size_t& used, std::string* why = nullptr);
// Splits a message payload into its envelope and a view of the body.
bool decode_message_payload(std::string_view payload, StoredMessage& out, std::string_view& body,
                            std::string* why);

// ---- Outcome record: what became of some recipients of a message. -------------------------
// Written with the same group commit as messages, into the writing thread's current segment
// (which need not be the message's). Recipients are named by their index in the message
// record. A later record for the same recipient supersedes an earlier one.
enum class RecipientState : std::uint8_t {
  pending = 0,    // never written: the state of a recipient no record mentions
  delivered = 1,  // the next hop took responsibility (final)
  failed = 2,     // permanently failed or expired; a bounce, if due, is already queued (final)
  deferred = 3,   // temporarily failed; next_attempt says when to try again
};
inline bool is_final(RecipientState s) {
  return s == RecipientState::delivered || s == RecipientState::failed;
}

struct RecipientOutcome {
  std::uint32_t index = 0;
  RecipientState state = RecipientState::pending;
  std::uint16_t attempts = 0;
  std::uint64_t next_attempt_unix_ms = 0;  // deferred only
  friend bool operator==(const RecipientOutcome&, const RecipientOutcome&) = default;
};

inline constexpr std::size_t kOutcomeEntryBytes = 4 + 1 + 2 + 8;
// Appends an outcome payload (at most 65535 entries: split larger lists).
void encode_outcome(std::uint64_t message_id, std::span<const RecipientOutcome> entries,
                    std::string& out);
// Decodes one; entries is cleared first. False when malformed.
bool decode_outcome(std::string_view payload, std::uint64_t& message_id,
                    std::vector<RecipientOutcome>& entries);

// ---- Reading a whole segment. ---------------------------------------------------------------
struct SegmentScan {
  bool has_segment_record = false;
  SegmentInfo info;
  std::uint64_t valid_end = 0;  // bytes of good records from the start
  bool torn_tail = false;       // the last record was cut short (a crash mid-write)
  bool newer_version = false;   // written by a newer format: leave the file alone
  struct Bad {
    std::uint64_t offset;
    std::uint64_t length;  // header + payload (the header was sound, the payload was not)
  };
  std::vector<Bad> corrupt;     // records whose payload failed its check, skipped
  std::uint64_t records = 0;
};
// Visits every good record after the segment record: f(header, payload, offset). Stops at
// the first zero header or the end; a record running past the end, or a damaged header that
// is followed by nothing valid, is a torn tail.
template <typename F>
SegmentScan scan_segment(std::string_view bytes, F&& f);

}  // namespace ringmta::spool

#include "relay/spool/record_scan.inl"
