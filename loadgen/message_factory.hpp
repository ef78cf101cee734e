// ringmta-loadgen's message factory: realistic RFC 5322 messages stamped with X-Ringmta-Id,
// made without allocation from a pool of body templates generated and hashed at start. One
// factory is shared read-only by every thread; each thread owns a MessageState for its buffers.
#pragma once

#include "core/smtp/rfc5322_date.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen/size_spec.hpp"

namespace ringmta::loadgen {

inline constexpr std::uint32_t kMaxRecipients = 1000;  // per message (RFC 5321 4.5.3.1.8: >= 100)
inline constexpr std::uint32_t kListedRecipients = 3;  // To: names this many, then a group
inline constexpr std::size_t kMaxRunIdBytes = 64;
using smtp::kDateBytes;  // "Sun, 30 Nov 2025 00:12:34 +0000"

// ---- Settings --------------------------------------------------------------------------------

// --recipients: "3" (fixed) or "uniform:1-5"; 1 to kMaxRecipients.
struct RecipientCount {
  std::uint32_t min = 1;
  std::uint32_t max = 1;
  friend bool operator==(const RecipientCount&, const RecipientCount&) = default;
};
bool parse_recipient_count(std::string_view text, RecipientCount& out, std::string* why);
std::string format_recipient_count(const RecipientCount& c);  // parses back

// --to-domain DOMAIN[:WEIGHT]: recipients' domains are drawn in proportion to the weights.
struct DomainWeight {
  std::string domain;        // lower case, RFC 5321 Domain syntax (ASCII)
  std::uint32_t weight = 1;  // 1 to 1,000,000
  friend bool operator==(const DomainWeight&, const DomainWeight&) = default;
};
bool parse_domain_weight(std::string_view text, DomainWeight& out, std::string* why);
std::string format_domain_weight(const DomainWeight& d);  // "example.test:3"; parses back

struct MessageFactoryConfig {
  // Names the run in X-Ringmta-Id "<run>-<seq>" and Message-ID: 1 to kMaxRunIdBytes of
  // letters, digits, '-', '_' and '.' (not first, not doubled), e.g. "r20261130T0012-ab12".
  std::string run_id;
  // Envelope sender and From:, local@domain. "" = the null sender (MAIL FROM:<>); the header
  // then says From: MAILER-DAEMON@ringmta.test.
  std::string from = "loadgen@ringmta.test";
  SizeSpec size;  // total message octets (header + body); 1K
  RecipientCount recipients;
  std::vector<DomainWeight> to_domains = {{"example.test", 1}};
  std::uint64_t seed = 1;  // templates, recipients and subjects are a function of it (and seq)
  std::size_t max_templates = 1024;                         // body pool: at most this many
  std::uint64_t max_pool_bytes = std::uint64_t{256} << 20;  // ... and this many body bytes
  // Unix seconds written in every Date: (reproducible output); absent = the wall clock.
  std::optional<std::int64_t> fixed_date;
};

// ---- Messages --------------------------------------------------------------------------------

// One message, as views: the caller sends header then body (two iovecs, no copy); for DATA it
// appends ".\r\n" (no body line starts with '.', so the bytes need no stuffing), for BDAT it
// sends them as they are. Views into the MessageState last until its next make(); body and
// body_sha256_hex point into the factory's pool and last as long as the factory.
struct Message {
  std::string_view sender;                       // envelope MAIL FROM (no brackets; "" = <>)
  std::span<const std::string_view> recipients;  // envelope RCPT TO, distinct, in order
  std::string_view header;                       // every header line and the empty line, CRLF
  std::string_view body;                         // CRLF lines, ends with CRLF
  std::uint64_t total_octets = 0;                // header.size() + body.size()
  std::string_view body_sha256_hex;              // SHA-256 of body, 64 lower-case hex digits
  std::string_view id;                           // X-Ringmta-Id value, "<run>-<seq>"
  std::uint32_t template_index = 0;              // which pool template the body is
};

class MessageFactory;

// A thread's buffers for MessageFactory::make(), sized for one factory by its new_state() (the
// only allocation). Movable, not copyable; the views make() returns point into it.
class MessageState {
 public:
  MessageState() = default;  // empty: assign from MessageFactory::new_state() before use
  MessageState(MessageState&&) noexcept = default;
  MessageState& operator=(MessageState&&) noexcept = default;

 private:
  friend class MessageFactory;
  const MessageFactory* owner_ = nullptr;
  std::unique_ptr<char[]> header_;                  // max_header_bytes()
  std::unique_ptr<char[]> addresses_;               // one slot of max_address_bytes per rcpt
  std::unique_ptr<std::string_view[]> recipients_;  // config().recipients.max views
  std::int64_t date_second_ = 0;                    // what date_ holds
  bool date_valid_ = false;
  char date_[kDateBytes] = {};
};

class MessageFactory {
 public:
  // Checks the config and builds the body pool (start-up only: it allocates up to
  // max_pool_bytes and hashes every template). Throws std::invalid_argument with the reason,
  // e.g. a size below min_message_bytes().
  explicit MessageFactory(MessageFactoryConfig config);
  MessageFactory(const MessageFactory&) = delete;
  MessageFactory& operator=(const MessageFactory&) = delete;

  // A state for one thread (allocates its buffers once). It must not outlive the factory.
  MessageState new_state() const;

  // The message numbered seq (unique across threads; the caller counts). Everything but Date:
  // is a function of (config, seq) alone, whichever thread asks. Thread-safe with one state
  // per thread; no allocation, no lock, no exception.
  Message make(std::uint64_t seq, MessageState& state) const;

  // Every header block is exactly this long: an X-Ringmta-Pad: header makes up the difference
  // so that total_octets is exactly the size drawn from the spec.
  std::size_t max_header_bytes() const { return header_bytes_; }
  // The smallest message the config allows: the header block and one empty body line.
  std::uint64_t min_message_bytes() const { return header_bytes_ + 2; }

  // The body pool, for tests and the result file.
  std::size_t template_count() const { return templates_.size(); }
  std::string_view template_body(std::size_t i) const;
  std::string_view template_sha256_hex(std::size_t i) const;
  std::uint64_t pool_bytes() const { return pool_bytes_; }  // sum of the template sizes

  const MessageFactoryConfig& config() const { return config_; }

 private:
  struct BodyTemplate {
    std::uint64_t offset = 0;  // into pool_
    std::uint64_t size = 0;
    char sha256_hex[64] = {};
  };

  void check_config();
  void compute_header_bytes();
  void build_pool();
  std::string_view pick_domain(Rng& rng) const;

  MessageFactoryConfig config_;
  std::string_view header_from_;  // From: mailbox (config_.from unless null)
  std::string_view from_domain_;  // Message-ID's right side, the domain of header_from_
  std::vector<std::uint64_t> cumulative_weights_;  // by to_domains index
  std::size_t max_address_bytes_ = 0;              // longest recipient address
  std::size_t header_bytes_ = 0;
  std::unique_ptr<char[]> pool_;
  std::uint64_t pool_bytes_ = 0;
  std::vector<BodyTemplate> templates_;
};

// RFC 5322 3.3 date-time in UTC, e.g. "Sun, 30 Nov 2025 00:12:34 +0000": writes exactly
// kDateBytes to out. Seconds are clamped to years 1970-9999. No allocation.
using smtp::format_rfc5322_date;

}  // namespace ringmta::loadgen
