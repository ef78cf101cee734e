// Delivery status notifications; see dsn.hpp. The generated parts are built as plain text
// first (they are small), the boundary is chosen against them and the returned original,
// then everything is appended in wire form: the original in one append when it is already
// clean dot-stuffed CRLF text, which is what a message received with DATA always is.
#include "relay/dsn.hpp"

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <vector>

#include "core/smtp/ascii.hpp"
#include "core/smtp/rfc5322_date.hpp"

namespace ringmta::relay {
namespace {

// RFC 5322 2.1.1: a line is at most 998 octets without its CRLF, and should be 78.
constexpr std::size_t kMaxLine = 998;
constexpr std::size_t kWrap = 78;
// RFC 2046 5.1.1: a boundary is 1 to 70 characters.
constexpr std::size_t kMaxBoundaryToken = 40;

constexpr std::string_view kCrlf = "\r\n";

bool is_utf8_report(const DsnRequest& req) {
  if (req.envelope.smtputf8 || smtp::has_non_ascii(req.envelope.sender)) return true;
  return std::any_of(req.recipients.begin(), req.recipients.end(), [](const DsnRecipient& r) {
    return smtp::has_non_ascii(r.address) || smtp::has_non_ascii(r.orcpt);
  });
}

// Text from outside (addresses, HELO, reply text) made safe for one header or text line:
// controls (CR and LF included) and ill-formed UTF-8 become '?'; runs of white space become
// one space, none at either end; UTF-8 is kept where the report may carry it, else each
// non-ASCII character becomes '?'.
std::string clean_text(std::string_view s, bool utf8) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = smtp::utf8_sequence_length(s.substr(i));
      if (utf8 && n != 0) {
        out.append(s.substr(i, n));
      } else {
        out += '?';
      }
      i += n == 0 ? 1 : n;
      continue;
    }
    ++i;
    if (c == ' ' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Appends prefix + text as lines of at most `width` octets where a space allows, never more
// than kMaxLine; each further line starts with `cont`. A line ends before a space, which is
// dropped: with cont " " that is RFC 5322 folding, so a header unfolds to the text it was
// given (a run of kMaxLine octets with no space is cut, which adds a space on unfolding).
// text is clean_text() output: single spaces, none at either end.
void append_wrapped(std::string& out, std::string_view prefix, std::string_view cont,
                    std::string_view text, std::size_t width) {
  while (true) {
    out += prefix;
    const std::size_t hard = kMaxLine - std::min(prefix.size(), kMaxLine - 1);
    const std::size_t soft = width > prefix.size() ? std::min(width - prefix.size(), hard) : 0;
    std::size_t cut = std::string_view::npos;
    if (text.size() > soft) {
      cut = text.rfind(' ', soft);
      if (cut == 0 || cut == std::string_view::npos) {
        cut = text.find(' ', soft);
        if (cut != std::string_view::npos && (cut > hard || cut == 0)) cut = std::string_view::npos;
      }
    }
    if (cut == std::string_view::npos && text.size() <= hard) {
      out += text;
      out += kCrlf;
      return;
    }
    std::size_t skip = 1;  // the space the line ends before
    if (cut == std::string_view::npos) {
      cut = hard;  // no space in reach: cut, but not inside a UTF-8 sequence
      while (cut > 1 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      skip = 0;
    }
    out.append(text.substr(0, cut));
    out += kCrlf;
    text.remove_prefix(cut + skip);
    prefix = cont;
  }
}

// "Name: value" as one header field, folded only where kMaxLine requires.
void append_field(std::string& out, std::string_view name, std::string_view value,
                  std::size_t width = kMaxLine) {
  std::string prefix(name);
  prefix += ": ";
  append_wrapped(out, prefix, " ", value, width);
}

void append_date(std::string& out, std::string_view name, std::int64_t unix_seconds) {
  char date[smtp::kDateBytes];
  smtp::format_rfc5322_date(unix_seconds, date);
  append_field(out, name, std::string_view(date, sizeof(date)));
}

std::string date_text(std::int64_t unix_seconds) {
  char date[smtp::kDateBytes];
  smtp::format_rfc5322_date(unix_seconds, date);
  return std::string(date, sizeof(date));
}

constexpr char kHex[] = "0123456789ABCDEF";

int hex_value(unsigned char c) {
  if (smtp::is_digit(c)) return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

// RFC 3461 4 xtext, canonical: "+HH" escapes are decoded, then every byte outside
// "!".."~" and '+' and '=' is written "+HH". A value received as valid xtext keeps its
// meaning; one that was not (or was decoded) is encoded.
void append_xtext(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '+' && i + 2 < s.size() && hex_value(static_cast<unsigned char>(s[i + 1])) >= 0 &&
        hex_value(static_cast<unsigned char>(s[i + 2])) >= 0) {
      c = static_cast<unsigned char>(hex_value(static_cast<unsigned char>(s[i + 1])) * 16 +
                                     hex_value(static_cast<unsigned char>(s[i + 2])));
      i += 2;
    }
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

// RFC 6533 3 utf-8-addr-unitext: a valid "\x{HEX}" escape is kept, any other '\\', '+',
// '=' and SP are escaped, UTF-8 is kept, and what cannot be written (controls, ill-formed
// UTF-8) becomes '?'. A value received valid (utf-8-addr-xtext or -unitext) is unchanged.
// Only used in a global report: is_utf8_report() makes every report holding UTF-8 one.
void append_utf8_xtext(std::string& out, std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = smtp::utf8_sequence_length(s.substr(i));
      if (n == 0) {
        out += '?';
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    if (c == '\\') {
      // EmbeddedUnicodeChar = "\x{" 2*6HEXDIG "}"
      std::size_t j = i + 3;
      while (j < s.size() && j < i + 9 && smtp::is_hexdig(static_cast<unsigned char>(s[j]))) ++j;
      if (i + 2 < s.size() && s[i + 1] == 'x' && s[i + 2] == '{' && j < s.size() && s[j] == '}' &&
          j - (i + 3) >= 2) {
        out.append(s.substr(i, j + 1 - i));
        i = j + 1;
        continue;
      }
    }
    if (c == '\\' || c == '+' || c == '=' || c == ' ') {
      out += "\\x{";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      out += '}';
    } else {
      out += c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
    }
    ++i;
  }
}

// ---- The original ---------------------------------------------------------------------

// One line of a message as a receiver reads it: ends at CRLF, or at a bare CR or LF
// (which the copy turns into CRLF), or at the end of the bytes.
struct Line {
  std::string_view text;
  std::size_t next = 0;        // offset of the following line
  bool crlf = false;           // ended by CRLF (a true line end)
};

Line line_at(std::string_view s, std::size_t pos) {
  const std::size_t e = s.find_first_of("\r\n", pos);
  if (e == std::string_view::npos) return {s.substr(pos), s.size(), false};
  const bool crlf = s[e] == '\r' && e + 1 < s.size() && s[e + 1] == '\n';
  return {s.substr(pos, e - pos), e + (crlf ? 2 : 1), crlf};
}

struct WireScan {
  bool clean = true;  // appending the bytes unchanged is their wire form
  bool eight_bit = false;
};

// Whether bytes are already in wire form: every line ends in CRLF, including the last, and
// (raw) no line starts with "." / (stuffed) no line is a lone ".", which would end the DATA.
WireScan scan_wire(std::string_view s, bool stuffed) {
  WireScan r;
  bool line_start = true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) r.eight_bit = true;
    if (line_start && c == '.' &&
        (!stuffed || i + 1 == s.size() || s[i + 1] == '\r' || s[i + 1] == '\n')) {
      r.clean = false;
    }
    line_start = false;
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') {
        ++i;
        line_start = true;
      } else {
        r.clean = false;
      }
    } else if (c == '\n') {
      r.clean = false;
    }
  }
  if (!s.empty() && !line_start) r.clean = false;
  return r;
}

// Appends bytes in wire form. stuffed: the bytes are dot-stuffed already (lines after a
// CRLF keep their dots; a lone "." is doubled); raw: every leading dot is doubled. Bare CR
// and LF become CRLF, and a line they start is stuffed as new; a last line gets its CRLF.
void append_wire(std::string& out, std::string_view s, bool stuffed, const WireScan& scan) {
  if (scan.clean) {
    out.append(s);
    return;
  }
  bool true_start = true;
  for (std::size_t pos = 0; pos < s.size();) {
    const Line l = line_at(s, pos);
    if (!l.text.empty() && l.text[0] == '.' && (!stuffed || !true_start || l.text.size() == 1)) {
      out += '.';
    }
    out.append(l.text);
    out += kCrlf;
    true_start = l.crlf;
    pos = l.next;
  }
}

void append_wire(std::string& out, std::string_view s) {
  append_wire(out, s, false, scan_wire(s, false));
}

// What of the original goes back.
struct Returned {
  std::string_view bytes;
  bool full = false;
  bool too_big = false;      // RET=FULL failure, but over the size limit
  bool headers_cut = false;  // the header section alone is over the size limit
};

Returned choose_returned(const DsnRequest& req, bool failed) {
  Returned r;
  const std::string_view orig = req.original;
  // RFC 3461 4.3: RET=FULL asks for the whole message in a "failed" DSN; other reports
  // and RET=HDRS or no RET (our choice, as the relay's documented default) get headers.
  if (failed && req.envelope.ret == smtp::DsnRet::full) {
    if (orig.size() <= req.size_limit) {
      r.bytes = orig;
      r.full = true;
      return r;
    }
    r.too_big = true;
  }
  // The header section: up to the first empty line (not included), or everything.
  std::size_t end = 0;
  std::size_t within_limit = 0;  // the end of the last whole line within the limit
  for (std::size_t pos = 0; pos < orig.size();) {
    const Line l = line_at(orig, pos);
    if (l.text.empty()) break;
    end = l.next;
    if (end <= req.size_limit) within_limit = end;
    pos = l.next;
  }
  if (end > req.size_limit) {
    r.headers_cut = true;
    end = within_limit;
    if (end == 0) {
      // One line longer than the limit: cut inside it, not inside a UTF-8 sequence.
      end = req.size_limit;
      while (end > 0 && (static_cast<unsigned char>(orig[end]) & 0xC0) == 0x80) --end;
    }
  }
  r.bytes = orig.substr(0, end);
  return r;
}

// ---- Boundary -------------------------------------------------------------------------

std::uint64_t mix64(std::uint64_t x) {
  // splitmix64's finaliser.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// "=_" + the Message-ID's left part ("=_" cannot occur in quoted-printable or base64
// text); if any of the contents holds it, "/" and 16 hex digits derived from the id and a
// counter are added until none does. Substrings without CR or LF survive dot-stuffing
// and line-end repair unchanged, so searching the bytes as given is enough.
std::string choose_boundary(std::string_view message_id,
                            std::initializer_list<std::string_view> contents) {
  std::string base = "=_";
  std::uint64_t seed = 0xcbf29ce484222325ull;  // FNV-1a over the id
  for (char c : message_id) {
    seed = (seed ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    if (c == '@') break;
    if ((smtp::is_let_dig(static_cast<unsigned char>(c)) || c == '.' || c == '-') &&
        base.size() < 2 + kMaxBoundaryToken) {
      base += c;
    }
  }
  std::string b = base;
  for (std::uint64_t k = 1;; ++k) {
    const bool used = std::any_of(contents.begin(), contents.end(), [&b](std::string_view s) {
      return s.find(b) != std::string_view::npos;
    });
    if (!used) return b;
    std::uint64_t v = mix64(seed + k);
    b = base;
    b += '/';
    for (int i = 0; i < 16; ++i, v >>= 4) b += kHex[v & 15];
  }
}

// ---- The report -----------------------------------------------------------------------

const char* action_name(DsnAction a) {
  switch (a) {
    case DsnAction::failed: return "failed";
    case DsnAction::delayed: return "delayed";
    case DsnAction::delivered: return "delivered";
    case DsnAction::relayed: return "relayed";
    case DsnAction::expanded: return "expanded";
  }
  return "failed";
}

smtp::EnhancedCode status_of(const DsnRecipient& r) {
  if (r.status.present()) return r.status;
  if (r.reply.code != 0) {
    if (r.reply.enhanced.present()) return r.reply.enhanced;
    const auto cls = static_cast<std::uint8_t>(r.reply.code / 100);
    if (cls == 2 || cls == 4 || cls == 5) return {cls, 0, 0};
  }
  switch (r.action) {
    case DsnAction::failed: return {5, 0, 0};
    case DsnAction::delayed: return {4, 0, 0};
    default: return {2, 0, 0};
  }
}

std::string status_text(smtp::EnhancedCode e) {
  return std::to_string(e.cls) + "." + std::to_string(e.subject) + "." + std::to_string(e.detail);
}

// The reply's lines as the next hop sent them: "550-5.1.1 first", ..., "550 5.1.1 last".
std::vector<std::string> reply_lines(const smtp::Reply& r, bool utf8) {
  std::vector<std::string> lines;
  std::string_view text = r.text;
  const std::string code = std::to_string(r.code);
  for (bool first = true;; first = false) {
    const std::size_t nl = text.find('\n');
    const bool last = nl == std::string_view::npos;
    std::string line = code;
    line += last ? ' ' : '-';
    if (first && r.enhanced.present()) {
      line += status_text(r.enhanced);
      line += ' ';
    }
    line += clean_text(text.substr(0, nl), utf8);
    while (line.back() == ' ') line.pop_back();
    lines.push_back(std::move(line));
    if (last) return lines;
    text.remove_prefix(nl + 1);
  }
}

// "HOST:PORT" / "[v6]:PORT" without the port.
std::string_view host_of(std::string_view mta) {
  if (!mta.empty() && mta[0] == '[') {
    const std::size_t close = mta.find(']');
    return close == std::string_view::npos ? mta : mta.substr(0, close + 1);
  }
  const std::size_t colon = mta.rfind(':');
  if (colon == std::string_view::npos || mta.find(':') != colon) return mta;
  return mta.substr(0, colon);
}

bool has_action(const DsnRequest& req, DsnAction a) {
  return std::any_of(req.recipients.begin(), req.recipients.end(),
                     [a](const DsnRecipient& r) { return r.action == a; });
}

void append_paragraph(std::string& out, std::string_view text) {
  append_wrapped(out, "", "", text, kWrap);
  out += kCrlf;
}

std::string recipient_summary(const DsnRecipient& r, bool utf8) {
  const std::string host = clean_text(r.remote_mta, utf8);
  std::string reason = clean_text(r.reason, utf8);
  if (!reason.empty()) return reason;
  switch (r.action) {
    case DsnAction::failed:
    case DsnAction::delayed:
      if (r.reply.code != 0) return host.empty() ? "the next hop said:" : "host " + host + " said:";
      return r.action == DsnAction::failed ? "delivery failed" : "not delivered yet";
    case DsnAction::delivered:
      return host.empty() ? "delivered" : "delivered to host " + host;
    case DsnAction::relayed:
      return (host.empty() ? std::string("relayed") : "relayed to host " + host) +
             ", which sends no delivery notifications";
    case DsnAction::expanded:
      return "delivered, and forwarded to other addresses";
  }
  return {};
}

// Part 1, text/plain: for people.
std::string text_part(const DsnRequest& req, const Returned& ret, bool utf8) {
  std::string out;
  append_paragraph(out, "This is the mail system at host " +
                            clean_text(req.reporting_mta, utf8) + ".");
  if (has_action(req, DsnAction::failed)) {
    append_paragraph(out, "Your message could not be delivered to one or more of its "
                          "recipients. The mail system has given up on them, for the reasons "
                          "below.");
  }
  if (has_action(req, DsnAction::delayed)) {
    append_paragraph(out, "Your message has not been delivered yet to one or more of its "
                          "recipients. The mail system will keep trying until the time given "
                          "below; you do not need to send it again.");
  }
  if (has_action(req, DsnAction::delivered) || has_action(req, DsnAction::expanded)) {
    append_paragraph(out, "Your message was delivered to the recipients marked delivered "
                          "below.");
  }
  if (has_action(req, DsnAction::relayed)) {
    append_paragraph(out, "Your message was passed on, for the recipients marked relayed "
                          "below, to a mail system that sends no delivery notifications: "
                          "there will be no further notice about them.");
  }
  const std::string limit = std::to_string(req.size_limit);
  if (ret.full) {
    append_paragraph(out, "Your message is attached.");
  } else if (ret.too_big) {
    append_paragraph(out, "Your message is larger than " + limit +
                              " bytes: only its header section is attached.");
  } else {
    append_paragraph(out, "The header section of your message is attached.");
  }
  if (ret.headers_cut) {
    append_paragraph(out, "The header section is longer than " + limit +
                              " bytes: only its first " + limit + " bytes are attached.");
  }
  for (std::size_t i = 0; i < req.recipients.size(); ++i) {
    const DsnRecipient& r = req.recipients[i];
    if (i != 0) out += kCrlf;
    append_wrapped(out, "", "    ",
                   "<" + clean_text(r.address, utf8) + ">: " + recipient_summary(r, utf8), kWrap);
    if (r.reply.code != 0) {
      for (const std::string& line : reply_lines(r.reply, utf8)) {
        append_wrapped(out, "    ", "    ", line, kWrap);
      }
    }
    if (r.action == DsnAction::delayed && r.retry_until_unix != 0) {
      append_wrapped(out, "    ", "    ",
                     "The mail system will keep trying until " + date_text(r.retry_until_unix) +
                         ".",
                     kWrap);
    }
  }
  return out;
}

// Part 2, message/(global-)delivery-status: for programs (RFC 3464 2.2, 2.3).
std::string status_part(const DsnRequest& req, bool utf8) {
  std::string out;
  const DsnEnvelope& env = req.envelope;
  if (!env.envid.empty()) {
    std::string v;
    append_xtext(v, env.envid);
    append_field(out, "Original-Envelope-Id", v);
  }
  append_field(out, "Reporting-MTA", "dns; " + clean_text(req.reporting_mta, utf8));
  if (!env.helo.empty() || !env.client_ip.empty()) {
    // As the Received: header names the client: "dns; HELO (IP)".
    std::string helo = clean_text(env.helo, utf8);
    std::string v = "dns; " + (helo.empty() ? std::string("unknown") : helo);
    const std::string ip = clean_text(env.client_ip, utf8);
    if (!ip.empty()) v += " (" + ip + ")";
    append_field(out, "Received-From-MTA", v);
  }
  if (env.arrival_unix_ms != 0) {
    append_date(out, "Arrival-Date", static_cast<std::int64_t>(env.arrival_unix_ms / 1000));
  }
  for (const DsnRecipient& r : req.recipients) {
    out += kCrlf;
    const std::size_t semi = r.orcpt.find(';');
    if (semi != std::string_view::npos && semi != 0) {
      const std::string_view type = r.orcpt.substr(0, semi);
      std::string v = clean_text(type, false);
      v += ';';
      if (smtp::iequals(type, "UTF-8")) {
        append_utf8_xtext(v, r.orcpt.substr(semi + 1));
      } else {
        append_xtext(v, r.orcpt.substr(semi + 1));
      }
      append_field(out, "Original-Recipient", v);
    }
    if (smtp::has_non_ascii(r.address)) {
      // RFC 6533 3: the utf-8 address type, as a plain utf-8-address (the report is global).
      append_field(out, "Final-Recipient", "utf-8; " + clean_text(r.address, true));
    } else {
      append_field(out, "Final-Recipient", "rfc822; " + clean_text(r.address, false));
    }
    append_field(out, "Action", action_name(r.action));
    append_field(out, "Status", status_text(status_of(r)));
    if (!r.remote_mta.empty()) {
      append_field(out, "Remote-MTA", "dns; " + clean_text(host_of(r.remote_mta), utf8));
    }
    if (r.reply.code != 0) {
      // RFC 3464 2.3.6: "smtp; " and the reply; each line of a multi-line reply starts a
      // folded line, so the field unfolds to the lines joined by spaces.
      const std::vector<std::string> lines = reply_lines(r.reply, utf8);
      for (std::size_t i = 0; i < lines.size(); ++i) {
        append_wrapped(out, i == 0 ? "Diagnostic-Code: smtp; " : " ", " ", lines[i], kWrap);
      }
    }
    if (r.last_attempt_unix != 0) append_date(out, "Last-Attempt-Date", r.last_attempt_unix);
    if (r.action == DsnAction::delayed && r.retry_until_unix != 0) {
      append_date(out, "Will-Retry-Until", r.retry_until_unix);
    }
  }
  return out;
}

const char* subject_of(const DsnRequest& req) {
  if (has_action(req, DsnAction::failed)) return "Undelivered Mail Returned to Sender";
  if (has_action(req, DsnAction::delayed)) return "Delayed Mail (still being retried)";
  return "Successful Mail Delivery Report";
}

void append_part_header(std::string& out, std::string_view boundary, std::string_view description,
                        std::string_view type, bool eight_bit) {
  out += "\r\n--";
  out += boundary;
  out += kCrlf;
  append_field(out, "Content-Description", description);
  append_field(out, "Content-Type", type);
  if (eight_bit) append_field(out, "Content-Transfer-Encoding", "8bit");
  out += kCrlf;
}

}  // namespace

DsnResult build_dsn(const DsnRequest& req, std::string& out) {
  DsnResult res;
  if (req.envelope.sender.empty()) {
    res.error = DsnError::null_sender;  // RFC 3461 6.1 / RFC 5321 6.1: never bounce a bounce
    return res;
  }
  if (req.recipients.empty()) {
    res.error = DsnError::no_recipients;
    return res;
  }
  if (req.message_id.empty()) {
    res.error = DsnError::no_message_id;
    return res;
  }
  const bool utf8 = is_utf8_report(req);
  const bool failed = has_action(req, DsnAction::failed);
  const Returned ret = choose_returned(req, failed);
  const bool stuffed = req.original_format == smtp::BodyFormat::dot_stuffed;
  const WireScan scan = scan_wire(ret.bytes, stuffed);

  const std::string text = text_part(req, ret, utf8);
  const std::string status = status_part(req, utf8);
  const std::string boundary = choose_boundary(req.message_id, {text, status, ret.bytes});
  const bool text_8bit = smtp::has_non_ascii(text);
  const bool status_8bit = smtp::has_non_ascii(status);
  res.eight_bit = text_8bit || status_8bit || scan.eight_bit;
  res.full_message = ret.full;

  std::string head;
  head.reserve(1024 + text.size() + status.size());
  append_date(head, "Date", req.now_unix);
  append_field(head, "From",
               "Mail Delivery System <MAILER-DAEMON@" + clean_text(req.reporting_mta, utf8) + ">");
  const std::string to = clean_text(req.envelope.sender, utf8);
  append_field(head, "To", to);
  append_field(head, "Subject", subject_of(req));
  append_field(head, "Message-ID", clean_text(req.message_id, false));
  append_field(head, "Auto-Submitted", "auto-replied");  // RFC 3834 5
  append_field(head, "MIME-Version", "1.0");
  head += "Content-Type: multipart/report; report-type=";
  head += utf8 ? "global-delivery-status" : "delivery-status";
  head += ";\r\n\tboundary=\"";
  head += boundary;
  head += "\"\r\n";
  if (res.eight_bit) append_field(head, "Content-Transfer-Encoding", "8bit");
  res.smtputf8 = smtp::has_non_ascii(head);
  head += "\r\nThis is a delivery status notification in MIME format.\r\n";

  append_part_header(head, boundary, "Notification",
                     utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
                     text_8bit);
  head += text;
  append_part_header(head, boundary, "Delivery report",
                     utf8 ? "message/global-delivery-status" : "message/delivery-status",
                     status_8bit);
  head += status;
  const char* description = ret.full ? "Undelivered Message"
                            : failed ? "Undelivered Message Headers"
                                     : "Message Headers";
  const char* type = ret.full ? (utf8 ? "message/global" : "message/rfc822")
                              : (utf8 ? "message/global-headers" : "text/rfc822-headers");
  append_part_header(head, boundary, description, type, scan.eight_bit);

  out.reserve(out.size() + head.size() + ret.bytes.size() + boundary.size() + 16);
  append_wire(out, head);
  append_wire(out, ret.bytes, stuffed, scan);
  std::string tail = "\r\n--";
  tail += boundary;
  tail += "--\r\n";
  append_wire(out, tail);
  return res;
}

bool dsn_wanted(std::string_view sender, std::uint8_t notify, DsnAction action) {
  if (sender.empty() || (notify & smtp::kNotifyNever) != 0) return false;
  switch (action) {
    case DsnAction::failed: return notify == 0 || (notify & smtp::kNotifyFailure) != 0;
    case DsnAction::delayed: return (notify & smtp::kNotifyDelay) != 0;
    case DsnAction::delivered:
    case DsnAction::relayed:
    case DsnAction::expanded: return (notify & smtp::kNotifySuccess) != 0;
  }
  return false;
}

std::string make_dsn_message_id(std::uint64_t id, std::int64_t now_unix,
                                std::string_view hostname) {
  char buf[48];
  const int n = std::snprintf(buf, sizeof(buf), "<%016llx.%lld@", static_cast<unsigned long long>(id),
                              static_cast<long long>(now_unix));
  std::string s(buf, static_cast<std::size_t>(n));
  s.append(hostname);
  s += '>';
  return s;
}

}  // namespace ringmta::relay
