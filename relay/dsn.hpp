// Delivery status notifications (RFC 3464 in a RFC 6522 multipart/report, RFC 6533 for
// UTF-8): the bounce, delay and success reports the relay queues from <> to a message's
// sender. Pure code: the caller passes names, times, the envelope, what happened to each
// recipient and the stored original; out comes the whole report in dot-stuffed wire form,
// ready to be spooled and delivered like any message. docs/bounces.md says what is sent when.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/smtp/esmtp_params.hpp"
#include "core/smtp/reply.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::relay {

// RFC 3464 2.3.3 action-value.
enum class DsnAction : std::uint8_t { failed, delayed, delivered, relayed, expanded };

// Postfix bounce_size_limit: a failed message larger than this goes back as headers only.
inline constexpr std::size_t kDefaultDsnSizeLimit = 50'000;

// The original transaction, as the spool stored it.
struct DsnEnvelope {
  std::string_view sender;      // reverse path without <>; "" (null) is refused
  std::string_view envid;       // ENVID as received (xtext), or empty
  smtp::DsnRet ret = smtp::DsnRet::unspecified;
  bool smtputf8 = false;        // MAIL had SMTPUTF8: the report uses the RFC 6533 types
  std::string_view client_ip;   // for Received-From-MTA; both empty: the field is left out
  std::string_view helo;
  std::uint64_t arrival_unix_ms = 0;  // 0: no Arrival-Date
};

// One reported recipient.
struct DsnRecipient {
  std::string_view address;     // the final recipient, without <>
  std::string_view orcpt;       // ORCPT as received, "type;xtext", or empty
  DsnAction action = DsnAction::failed;
  // RFC 3463 code; absent: the reply's enhanced code, else X.0.0 from the reply code, else
  // 5.0.0 / 4.0.0 / 2.0.0 from the action.
  smtp::EnhancedCode status{};
  std::string_view remote_mta;  // the next hop, "HOST:PORT", or empty
  // The next hop's reply as ReplyParser gives it (text lines joined by '\n', the first
  // line's enhanced code taken out); code 0: there was none (no Diagnostic-Code).
  smtp::Reply reply{};
  std::string_view reason;      // for the text part when there is no reply ("no route to ...")
  std::int64_t last_attempt_unix = 0;  // 0: no Last-Attempt-Date
  std::int64_t retry_until_unix = 0;   // delayed: Will-Retry-Until; 0: none
};

struct DsnRequest {
  std::string_view reporting_mta;  // this relay's hostname
  std::string_view message_id;     // "<...@...>", e.g. from make_dsn_message_id()
  std::int64_t now_unix = 0;       // the Date: of the report
  DsnEnvelope envelope;
  std::span<const DsnRecipient> recipients;
  // The stored message, starting with the relay's Received: header. dot_stuffed (from DATA:
  // CRLF lines, leading dots doubled, no final "." line) is embedded as it is; raw (BDAT) is
  // stuffed while it is copied.
  std::string_view original;
  smtp::BodyFormat original_format = smtp::BodyFormat::dot_stuffed;
  // The most of the original returned whole (RET=FULL); above it, and for any header
  // section longer than it, the report says so and returns less.
  std::size_t size_limit = kDefaultDsnSizeLimit;
};

enum class DsnError : std::uint8_t { none, null_sender, no_recipients, no_message_id };

struct DsnResult {
  DsnError error = DsnError::none;
  bool eight_bit = false;      // the body has 8-bit bytes: send with BODY=8BITMIME
  bool smtputf8 = false;       // UTF-8 in the report's envelope or header: send with SMTPUTF8
  bool full_message = false;   // the whole original was returned, not only its header section
  bool ok() const { return error == DsnError::none; }
};

// Appends the report to `out` (nothing on error): every line ends in CRLF, lines starting
// with "." are doubled, no final ".\r\n". Views in `req` are read during the call only.
DsnResult build_dsn(const DsnRequest& req, std::string& out);

// Whether a recipient's outcome is reported to a sender, given its NOTIFY bits as stored
// (smtp::NotifyFlag; 0 = not given: failures only). Never for the null sender.
bool dsn_wanted(std::string_view sender, std::uint8_t notify, DsnAction action);

// "<%016x.UNIX@hostname>": a report's Message-ID from a spool id, unique per relay.
std::string make_dsn_message_id(std::uint64_t id, std::int64_t now_unix,
                                std::string_view hostname);

}  // namespace ringmta::relay
