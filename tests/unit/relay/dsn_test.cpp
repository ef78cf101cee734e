// Delivery status notifications: every report is parsed back (wire lines, MIME structure,
// the delivery-status fields per recipient) and checked against its input; golden reports
// in tests/golden/relay/*.ref are compared byte for byte (CRLF written as LF in the file;
// RINGMTA_UPDATE_GOLDEN=1 rewrites them: review the diff).
#include "relay/dsn.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ringmta::relay {
namespace {

// ---- Reading a report back -------------------------------------------------------------

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  while (!s.empty()) {
    const std::size_t e = s.find("\r\n");
    if (e == std::string_view::npos) {
      lines.push_back(s);
      break;
    }
    lines.push_back(s.substr(0, e));
    s.remove_prefix(e + 2);
  }
  return lines;
}

// Undoes the wire form after checking it: CRLF line ends only, ending in CRLF, no line that
// is a lone "." (it would end the DATA).
std::string unstuff(std::string_view wire) {
  EXPECT_TRUE(wire.size() >= 2 && wire.substr(wire.size() - 2) == "\r\n");
  std::string out;
  for (std::string_view line : split_lines(wire)) {
    EXPECT_EQ(line.find_first_of("\r\n"), std::string_view::npos) << "bare CR or LF";
    EXPECT_NE(line, ".") << "a lone dot ends the DATA";
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    out.append(line);
    out += "\r\n";
  }
  return out;
}

struct Field {
  std::string name, value;
};
using Fields = std::vector<Field>;

// Header fields of a block of CRLF lines, unfolded (RFC 5322 2.2.3: the CRLF goes, the
// white space stays).
Fields parse_fields(std::string_view block) {
  Fields fields;
  for (std::string_view line : split_lines(block)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      EXPECT_FALSE(fields.empty());
      EXPECT_NE(line.find_first_not_of(" \t"), std::string_view::npos) << "blank folded line";
      if (!fields.empty()) fields.back().value += line;
      continue;
    }
    const std::size_t colon = line.find(':');
    EXPECT_NE(colon, std::string_view::npos) << line;
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    fields.push_back({std::string(line.substr(0, colon)), std::string(value)});
  }
  return fields;
}

std::string get(const Fields& f, std::string_view name) {
  for (const Field& x : f) {
    if (x.name == name) return x.value;
  }
  return "<absent>";
}
int count(const Fields& f, std::string_view name) {
  int n = 0;
  for (const Field& x : f) n += x.name == name;
  return n;
}

struct Part {
  Fields headers;
  std::string content;
};

struct Report {
  std::string unstuffed;
  Fields headers;
  std::string boundary;
  std::vector<Part> parts;
  std::vector<Fields> status;  // the delivery-status blocks: per message, then per recipient
  const Part& text() const { return parts.at(0); }
  const Part& original() const { return parts.at(2); }
};

// Parses a report and checks its MIME skeleton: three parts, the boundary only in delimiter
// lines, every line outside the returned original within 998 octets.
Report parse_report(std::string_view wire) {
  Report r;
  r.unstuffed = unstuff(wire);
  const std::string& u = r.unstuffed;
  const std::size_t head_end = u.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    ADD_FAILURE() << "no header section end";
    return r;
  }
  r.headers = parse_fields(std::string_view(u).substr(0, head_end + 2));
  const std::string ct = get(r.headers, "Content-Type");
  const std::size_t b = ct.find("boundary=\"");
  if (b == std::string::npos) {
    ADD_FAILURE() << "no boundary in " << ct;
    return r;
  }
  r.boundary = ct.substr(b + 10, ct.find('"', b + 10) - (b + 10));
  EXPECT_FALSE(r.boundary.empty());
  EXPECT_LE(r.boundary.size(), 70u);  // RFC 2046 5.1.1

  const std::string body = u.substr(head_end + 2);  // starts with the CRLF of the empty line
  const std::string delim = "\r\n--" + r.boundary;
  std::vector<std::size_t> at;
  for (std::size_t p = body.find(delim); p != std::string::npos; p = body.find(delim, p + 1)) {
    at.push_back(p);
  }
  // The boundary occurs nowhere but in the delimiters.
  std::size_t anywhere = 0;
  for (std::size_t p = body.find(r.boundary); p != std::string::npos;
       p = body.find(r.boundary, p + 1)) {
    ++anywhere;
  }
  EXPECT_EQ(at.size(), 4u);
  EXPECT_EQ(anywhere, at.size());
  if (at.size() != 4) return r;
  for (std::size_t i = 0; i < 3; ++i) {
    const std::size_t start = at[i] + delim.size();
    EXPECT_EQ(body.substr(start, 2), "\r\n");
    const std::string raw = body.substr(start + 2, at[i + 1] - start - 2);
    const std::size_t split = raw.find("\r\n\r\n");
    EXPECT_NE(split, std::string::npos);
    Part p;
    p.headers = parse_fields(std::string_view(raw).substr(0, split + 2));
    p.content = raw.substr(split + 4);
    r.parts.push_back(std::move(p));
  }
  EXPECT_EQ(body.substr(at[3] + delim.size()), "--\r\n");

  // Line lengths, the returned original aside (its lines are as received).
  const std::size_t original_at = u.size() - r.parts[2].content.size() - delim.size() - 4;
  for (std::string_view line : split_lines(std::string_view(u).substr(0, original_at))) {
    EXPECT_LE(line.size(), 998u) << line.substr(0, 80);
  }

  std::string_view st = r.parts[1].content;
  while (!st.empty()) {
    const std::size_t e = st.find("\r\n\r\n");
    const std::string_view block = st.substr(0, e == std::string_view::npos ? st.size() : e + 2);
    r.status.push_back(parse_fields(block));
    st.remove_prefix(e == std::string_view::npos ? st.size() : e + 4);
  }
  return r;
}

std::string xtext_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// ---- Inputs ----------------------------------------------------------------------------

// The original as the content a reader sees (raw, as from BDAT).
constexpr std::string_view kOriginal =
    "Received: from client.example (192.0.2.1)\r\n"
    "\tby relay.example (ringmta) with ESMTP id 00000000000000ff\r\n"
    "\tfor <bob@example.net>; Sun, 30 Nov 2025 00:00:00 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: lunch\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "X-Ringmta-Id: run1-42\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    ".a line that starts with a dot\r\n"
    ".\r\n"
    "..\r\n"
    "See you.\r\n";

std::string header_section(std::string_view m) {
  return std::string(m.substr(0, m.find("\r\n\r\n") + 2));
}

std::string stuff(std::string_view raw) {
  std::string out;
  bool start = true;
  for (char c : raw) {
    if (start && c == '.') out += '.';
    out += c;
    start = c == '\n';
  }
  return out;
}

constexpr std::int64_t kArrival = 1764460800;  // Sun, 30 Nov 2025 00:00:00 +0000

DsnRecipient failed_550(std::string_view address = "bob@example.net") {
  DsnRecipient r;
  r.address = address;
  r.action = DsnAction::failed;
  r.remote_mta = "127.0.0.1:2526";
  r.reply = smtp::make_reply(550, {5, 1, 1}, "<bob@example.net>: Recipient address rejected");
  r.last_attempt_unix = kArrival + 60;
  return r;
}

struct Request {
  std::vector<DsnRecipient> recipients;
  std::string original = stuff(kOriginal);
  DsnRequest req;

  explicit Request(std::vector<DsnRecipient> r) : recipients(std::move(r)) {
    req.reporting_mta = "relay.example";
    req.message_id = "<00000000000000ff.1764460860@relay.example>";
    req.now_unix = kArrival + 60;
    req.envelope.sender = "alice@example.org";
    req.envelope.client_ip = "192.0.2.1";
    req.envelope.helo = "client.example";
    req.envelope.arrival_unix_ms = static_cast<std::uint64_t>(kArrival) * 1000 + 250;
    sync();
  }
  // Points the request's views at this object's members (after changing them).
  void sync() {
    req.recipients = recipients;
    req.original = original;
  }
  std::string build(DsnResult* result = nullptr) {
    sync();
    std::string out;
    const DsnResult r = build_dsn(req, out);
    EXPECT_TRUE(r.ok());
    if (result != nullptr) *result = r;
    return out;
  }
};

// ---- Structure ---------------------------------------------------------------------------

TEST(Dsn, FailedRecipientBounce) {
  Request q({failed_550()});
  DsnResult res;
  const std::string wire = q.build(&res);
  const Report r = parse_report(wire);
  ASSERT_EQ(r.parts.size(), 3u);

  EXPECT_EQ(get(r.headers, "Date"), "Sun, 30 Nov 2025 00:01:00 +0000");
  EXPECT_EQ(get(r.headers, "From"), "Mail Delivery System <MAILER-DAEMON@relay.example>");
  EXPECT_EQ(get(r.headers, "To"), "alice@example.org");
  EXPECT_EQ(get(r.headers, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(get(r.headers, "Message-ID"), "<00000000000000ff.1764460860@relay.example>");
  EXPECT_EQ(get(r.headers, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(get(r.headers, "MIME-Version"), "1.0");
  EXPECT_EQ(get(r.headers, "Content-Type"),
            "multipart/report; report-type=delivery-status;\tboundary=\"" + r.boundary + "\"");
  EXPECT_EQ(count(r.headers, "Content-Transfer-Encoding"), 0);
  // Derived from the Message-ID.
  EXPECT_EQ(r.boundary, "=_00000000000000ff.1764460860");

  EXPECT_EQ(get(r.parts[0].headers, "Content-Type"), "text/plain; charset=us-ascii");
  EXPECT_EQ(get(r.parts[1].headers, "Content-Type"), "message/delivery-status");
  EXPECT_EQ(get(r.parts[2].headers, "Content-Type"), "text/rfc822-headers");

  const std::string& text = r.text().content;
  EXPECT_NE(text.find("This is the mail system at host relay.example."), std::string::npos);
  EXPECT_NE(text.find("could not be delivered"), std::string::npos);
  EXPECT_NE(text.find("<bob@example.net>: host 127.0.0.1:2526 said:\r\n"
                      "    550 5.1.1 <bob@example.net>: Recipient address rejected\r\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("The header section of your message is attached."), std::string::npos);

  ASSERT_EQ(r.status.size(), 2u);
  const Fields& m = r.status[0];
  EXPECT_EQ(get(m, "Reporting-MTA"), "dns; relay.example");
  EXPECT_EQ(get(m, "Received-From-MTA"), "dns; client.example (192.0.2.1)");
  EXPECT_EQ(get(m, "Arrival-Date"), "Sun, 30 Nov 2025 00:00:00 +0000");
  EXPECT_EQ(count(m, "Original-Envelope-Id"), 0);
  const Fields& p = r.status[1];
  EXPECT_EQ(count(p, "Original-Recipient"), 0);  // RFC 3461 6.3: only with ORCPT
  EXPECT_EQ(get(p, "Final-Recipient"), "rfc822; bob@example.net");
  EXPECT_EQ(get(p, "Action"), "failed");
  EXPECT_EQ(get(p, "Status"), "5.1.1");
  EXPECT_EQ(get(p, "Remote-MTA"), "dns; 127.0.0.1");
  EXPECT_EQ(get(p, "Diagnostic-Code"),
            "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected");
  EXPECT_EQ(get(p, "Last-Attempt-Date"), "Sun, 30 Nov 2025 00:01:00 +0000");
  EXPECT_EQ(count(p, "Will-Retry-Until"), 0);

  // No RET: the header section, without the empty line that ends it.
  EXPECT_EQ(r.original().content, header_section(kOriginal));
  EXPECT_FALSE(res.full_message);
  EXPECT_FALSE(res.eight_bit);
  EXPECT_FALSE(res.smtputf8);
}

TEST(Dsn, SeveralRecipientsGetOneBlockEach) {
  DsnRecipient no_route;
  no_route.address = "carol@nowhere.example";
  no_route.action = DsnAction::failed;
  no_route.status = {5, 4, 4};
  no_route.reason = "no route to nowhere.example";
  DsnRecipient later = failed_550("dave@example.net");
  later.action = DsnAction::delayed;
  later.reply = smtp::make_reply(451, {}, "try again later");
  later.retry_until_unix = kArrival + 5 * 86400;
  Request q({failed_550(), no_route, later});
  const Report r = parse_report(q.build());
  ASSERT_EQ(r.status.size(), 4u);
  EXPECT_EQ(get(r.headers, "Subject"), "Undelivered Mail Returned to Sender");

  EXPECT_EQ(get(r.status[2], "Final-Recipient"), "rfc822; carol@nowhere.example");
  EXPECT_EQ(get(r.status[2], "Status"), "5.4.4");
  EXPECT_EQ(count(r.status[2], "Remote-MTA"), 0);
  EXPECT_EQ(count(r.status[2], "Diagnostic-Code"), 0);
  EXPECT_EQ(count(r.status[2], "Last-Attempt-Date"), 0);
  EXPECT_NE(r.text().content.find("<carol@nowhere.example>: no route to nowhere.example\r\n"),
            std::string::npos);

  EXPECT_EQ(get(r.status[3], "Action"), "delayed");
  EXPECT_EQ(get(r.status[3], "Status"), "4.0.0");  // from the reply's class
  EXPECT_EQ(get(r.status[3], "Diagnostic-Code"), "smtp; 451 try again later");
  EXPECT_EQ(get(r.status[3], "Will-Retry-Until"), "Fri, 05 Dec 2025 00:00:00 +0000");
  EXPECT_NE(r.text().content.find("until Fri, 05 Dec 2025 00:00:00 +0000."), std::string::npos);
}

TEST(Dsn, StatusComesFromTheCallerTheReplyOrTheAction) {
  DsnRecipient given = failed_550();
  given.status = {5, 7, 1};
  DsnRecipient no_enhanced = failed_550();
  no_enhanced.reply = smtp::make_reply(554, {}, "no thanks");
  DsnRecipient nothing;
  nothing.address = "x@example.net";
  DsnRecipient delivered = nothing;
  delivered.action = DsnAction::delivered;
  DsnRecipient delayed = nothing;
  delayed.action = DsnAction::delayed;
  Request q({given, no_enhanced, nothing, delivered, delayed});
  const Report r = parse_report(q.build());
  ASSERT_EQ(r.status.size(), 6u);
  EXPECT_EQ(get(r.status[1], "Status"), "5.7.1");
  EXPECT_EQ(get(r.status[2], "Status"), "5.0.0");
  EXPECT_EQ(get(r.status[2], "Diagnostic-Code"), "smtp; 554 no thanks");
  EXPECT_EQ(get(r.status[3], "Status"), "5.0.0");
  EXPECT_EQ(get(r.status[4], "Status"), "2.0.0");
  EXPECT_EQ(get(r.status[5], "Status"), "4.0.0");
}

TEST(Dsn, SubjectAndTextFollowTheActions) {
  DsnRecipient delayed = failed_550();
  delayed.action = DsnAction::delayed;
  DsnRecipient relayed = failed_550();
  relayed.action = DsnAction::relayed;
  relayed.reply = smtp::make_reply(250, {2, 0, 0}, "Ok: queued as 4F2A");
  DsnRecipient delivered = relayed;
  delivered.action = DsnAction::delivered;
  {
    Request q({delayed});
    const Report r = parse_report(q.build());
    EXPECT_EQ(get(r.headers, "Subject"), "Delayed Mail (still being retried)");
    EXPECT_NE(r.text().content.find("not been delivered yet"), std::string::npos);
  }
  {
    Request q({relayed, delivered});
    const Report r = parse_report(q.build());
    EXPECT_EQ(get(r.headers, "Subject"), "Successful Mail Delivery Report");
    ASSERT_EQ(r.status.size(), 3u);
    EXPECT_EQ(get(r.status[1], "Action"), "relayed");
    EXPECT_EQ(get(r.status[1], "Status"), "2.0.0");
    EXPECT_EQ(get(r.status[2], "Action"), "delivered");
    EXPECT_NE(r.text().content.find("<bob@example.net>: relayed to host 127.0.0.1:2526, which "
                                    "sends no delivery\r\n    notifications\r\n"),
              std::string::npos)
        << r.text().content;
    EXPECT_EQ(get(r.parts[2].headers, "Content-Description"), "Message Headers");
  }
}

// ---- ENVID and ORCPT ---------------------------------------------------------------------

TEST(Dsn, EnvidAndOrcptComeBackAsXtext) {
  DsnRecipient a = failed_550();
  a.orcpt = "rfc822;b+2Btag@example.net";
  DsnRecipient b = failed_550("c@example.net");
  b.orcpt = "rfc822;c+40example.net";  // an escape that was not needed
  DsnRecipient c = failed_550("d@example.net");
  c.orcpt = "utf-8;d\\x{E9}@example.net";
  DsnRecipient d = failed_550("e@example.net");
  d.orcpt = "rfc822;e x=y@example.net";  // not xtext (given decoded): encoded
  Request q({a, b, c, d});
  q.req.envelope.envid = "QQ314159+2BA=";
  const Report r = parse_report(q.build());
  ASSERT_EQ(r.status.size(), 5u);
  const std::string envid = get(r.status[0], "Original-Envelope-Id");
  EXPECT_EQ(envid, "QQ314159+2BA+3D");
  EXPECT_EQ(xtext_decode(envid), "QQ314159+A=");
  EXPECT_EQ(get(r.status[1], "Original-Recipient"), "rfc822;b+2Btag@example.net");
  EXPECT_EQ(xtext_decode("b+2Btag@example.net"), "b+tag@example.net");
  EXPECT_EQ(get(r.status[2], "Original-Recipient"), "rfc822;c@example.net");
  EXPECT_EQ(get(r.status[3], "Original-Recipient"), "utf-8;d\\x{E9}@example.net");
  EXPECT_EQ(get(r.status[4], "Original-Recipient"), "rfc822;e+20x+3Dy@example.net");
  // The field comes before Final-Recipient (RFC 3464 2.3 order).
  EXPECT_EQ(r.status[1][0].name, "Original-Recipient");
}

// ---- Diagnostic-Code ------------------------------------------------------------------------

TEST(Dsn, MultiLineReplyFoldsIntoOneDiagnosticCode) {
  DsnRecipient a = failed_550();
  a.remote_mta = "[::1]:2526";
  a.reply = smtp::make_reply(
      550, {5, 1, 1},
      "The email account that you tried to reach does not exist. Please try\n"
      "5.1.1 double-checking the recipient's email address for typos or\n"
      "5.1.1 unnecessary spaces. For more information, go to\n"
      "5.1.1  https://support.example.com/mail/?p=NoSuchUser a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0");
  Request q({a});
  const Report r = parse_report(q.build());
  ASSERT_EQ(r.status.size(), 2u);
  EXPECT_EQ(get(r.status[1], "Remote-MTA"), "dns; [::1]");
  EXPECT_EQ(get(r.status[1], "Diagnostic-Code"),
            "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please "
            "try 550-5.1.1 double-checking the recipient's email address for typos or "
            "550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1 "
            "https://support.example.com/mail/?p=NoSuchUser "
            "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0");
  // Each reply line starts a folded line; lines stay within 78 octets where spaces allow.
  const std::string& st = r.parts[1].content;
  EXPECT_NE(st.find("\r\n 550-5.1.1 double-checking"), std::string::npos) << st;
  EXPECT_NE(st.find("\r\n 550 5.1.1 https://"), std::string::npos) << st;
  for (std::string_view line : split_lines(st)) EXPECT_LE(line.size(), 78u) << line;
  // The text part shows the reply lines as sent, indented.
  EXPECT_NE(r.text().content.find("<bob@example.net>: host [::1]:2526 said:\r\n"
                                  "    550-5.1.1 The email account that you tried to reach"),
            std::string::npos)
      << r.text().content;
}

TEST(Dsn, LongAndHostileReplyTextStaysWithinLines) {
  DsnRecipient a = failed_550();
  const std::string word(3000, 'w');
  // A CR and a control in a line, a 2000-space run, a 3000-octet word.
  const std::string text = word + " x\r\n\t\x01" + std::string(2000, ' ') + "y\nsecond  line  ";
  a.reply = smtp::make_reply(550, {}, text);
  Request q({a});
  const Report r = parse_report(q.build());  // checks every line <= 998 and no CR/LF injection
  ASSERT_EQ(r.status.size(), 2u);
  std::string diag = get(r.status[1], "Diagnostic-Code");
  // Unfolded, the reply is all there; cutting the 3000-octet word only added spaces.
  std::string no_spaces;
  for (char c : diag) {
    if (c != ' ') no_spaces += c;
  }
  EXPECT_EQ(no_spaces, "smtp;550-" + word + "x?550-?y550secondline");
}

TEST(Dsn, DotLinesInTheReplyAndGeneratedText) {
  DsnRecipient a = failed_550();
  a.reply = smtp::make_reply(550, {5, 1, 1}, ".\n..\n. dot");
  Request q({a});
  // A host name long enough that its line wraps and starts with the dot.
  q.req.reporting_mta = ".relay-with-a-rather-long-name-for-wrapping.example.test";
  const std::string wire = q.build();
  EXPECT_NE(wire.find("\r\n..relay-with-a-rather-long-name"), std::string::npos) << wire;
  const Report r = parse_report(wire);
  ASSERT_EQ(r.status.size(), 2u);
  EXPECT_EQ(get(r.status[1], "Diagnostic-Code"), "smtp; 550-5.1.1 . 550-.. 550 . dot");
  EXPECT_NE(r.text().content.find("\r\n    550-5.1.1 .\r\n    550-..\r\n    550 . dot\r\n"),
            std::string::npos);
}

// ---- What of the original goes back ------------------------------------------------------

TEST(Dsn, RetFullReturnsTheMessage) {
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::full;
  DsnResult res;
  const std::string wire = q.build(&res);
  const Report r = parse_report(wire);
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_TRUE(res.full_message);
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "message/rfc822");
  EXPECT_EQ(get(r.original().headers, "Content-Description"), "Undelivered Message");
  EXPECT_EQ(r.original().content, kOriginal);
  EXPECT_NE(r.text().content.find("Your message is attached."), std::string::npos);
  // The stored dot-stuffed bytes are in the report unchanged.
  EXPECT_NE(wire.find(q.original), std::string::npos);
}

TEST(Dsn, RetHdrsReturnsTheHeaderSection) {
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::hdrs;
  DsnResult res;
  const Report r = parse_report(q.build(&res));
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_FALSE(res.full_message);
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(get(r.original().headers, "Content-Description"), "Undelivered Message Headers");
  EXPECT_EQ(r.original().content, header_section(kOriginal));
  EXPECT_EQ(r.unstuffed.find("Hello Bob"), std::string::npos);
}

TEST(Dsn, RetFullOverTheLimitReturnsHeaders) {
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::full;
  q.req.size_limit = q.original.size() - 1;
  DsnResult res;
  const Report r = parse_report(q.build(&res));
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_FALSE(res.full_message);
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(r.original().content, header_section(kOriginal));
  EXPECT_NE(r.text().content.find("Your message is larger than " +
                                  std::to_string(q.req.size_limit) +
                                  " bytes: only its header section is attached.\r\n"),
            std::string::npos)
      << r.text().content;
  // At the limit exactly, it is whole.
  q.req.size_limit = q.original.size();
  q.build(&res);
  EXPECT_TRUE(res.full_message);
}

TEST(Dsn, RetFullOnlyForFailures) {
  DsnRecipient delayed = failed_550();
  delayed.action = DsnAction::delayed;
  Request q({delayed});
  q.req.envelope.ret = smtp::DsnRet::full;
  DsnResult res;
  const Report r = parse_report(q.build(&res));
  EXPECT_FALSE(res.full_message);
  EXPECT_EQ(r.original().content, header_section(kOriginal));
}

TEST(Dsn, AHeaderSectionOverTheLimitIsCutAtALine) {
  Request q({failed_550()});
  q.req.size_limit = 200;
  const Report r = parse_report(q.build());
  const std::string headers = header_section(kOriginal);
  ASSERT_GT(headers.size(), 200u);
  const std::string& got = r.original().content;
  EXPECT_LE(got.size(), 200u);
  EXPECT_EQ(headers.substr(0, got.size()), got);
  EXPECT_EQ(got.substr(got.size() - 2), "\r\n");
  EXPECT_GT(got.size(), 150u);  // the lines that fit are all there
  EXPECT_NE(r.text().content.find("longer than 200 bytes"), std::string::npos);
}

TEST(Dsn, MessageWithoutBodyOrHeaders) {
  Request q({failed_550()});
  q.original = "Subject: x\r\n";  // no empty line: all header
  EXPECT_EQ(parse_report(q.build()).original().content, "Subject: x\r\n");
  q.original = "\r\nbody only\r\n";
  EXPECT_EQ(parse_report(q.build()).original().content, "");
  q.original = "";
  q.req.envelope.ret = smtp::DsnRet::full;
  EXPECT_EQ(parse_report(q.build()).original().content, "");
}

TEST(Dsn, DotStuffedAndRawOriginalsGiveTheSameReport) {
  for (const smtp::DsnRet ret : {smtp::DsnRet::full, smtp::DsnRet::hdrs}) {
    Request stuffed({failed_550()});
    stuffed.req.envelope.ret = ret;
    Request raw({failed_550()});
    raw.req.envelope.ret = ret;
    raw.original = std::string(kOriginal);
    raw.req.original_format = smtp::BodyFormat::raw;
    const std::string a = stuffed.build();
    const std::string b = raw.build();
    EXPECT_EQ(a, b);
    if (ret == smtp::DsnRet::full) {
      EXPECT_EQ(parse_report(b).original().content, kOriginal);
    }
  }
}

TEST(Dsn, RawOriginalIsRepairedIntoWireForm) {
  // BDAT content: bare LF and CR, a dot after each, no CRLF at the end.
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::full;
  q.req.original_format = smtp::BodyFormat::raw;
  q.original = "Subject: x\r\n\r\none\n.two\r.three\r\n.\r\nlast";
  const std::string wire = q.build();
  EXPECT_NE(wire.find("\r\none\r\n..two\r\n..three\r\n..\r\nlast\r\n\r\n--"), std::string::npos);
  EXPECT_EQ(parse_report(wire).original().content,
            "Subject: x\r\n\r\none\r\n.two\r\n.three\r\n.\r\nlast\r\n");
}

TEST(Dsn, StuffedOriginalThatIsNotCleanIsRepaired) {
  // Not what DATA can store, but the copy must still never end the DATA early or leave
  // a bare line end: a lone "." is doubled, a bare LF's next line is stuffed as new.
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::full;
  q.original = "Subject: x\r\n\r\n.\r\na\n.b\r\n..c";
  const std::string wire = q.build();
  EXPECT_NE(wire.find("\r\n\r\n..\r\na\r\n..b\r\n..c\r\n\r\n--"), std::string::npos) << wire;
  EXPECT_EQ(parse_report(wire).original().content, "Subject: x\r\n\r\n.\r\na\r\n.b\r\n.c\r\n");
}

// ---- Boundary --------------------------------------------------------------------------

TEST(Dsn, BoundaryAvoidsTheContent) {
  const std::string usual = "=_00000000000000ff.1764460860";
  // In the original, the reply text and the original once more with the second choice.
  for (int round = 0; round < 2; ++round) {
    Request q({failed_550()});
    q.req.envelope.ret = smtp::DsnRet::full;
    std::string second;
    {
      Request probe({failed_550()});
      probe.original = "X-Trap: " + usual + "\r\n\r\n";
      second = parse_report(probe.build()).boundary;
      EXPECT_NE(second, usual);
      EXPECT_EQ(second.substr(0, usual.size() + 1), usual + "/");
    }
    q.original = "X-Trap: --" + usual + "\r\n";
    if (round == 1) q.original += "X-Trap-2: --" + second + "--\r\n";
    q.original += "\r\n--" + usual + "--\r\n";
    DsnRecipient a = failed_550();
    a.reply = smtp::make_reply(550, {}, usual);
    q.recipients = {a};
    const Report r = parse_report(q.build());  // checks the boundary is only in delimiters
    EXPECT_NE(r.boundary, usual);
    if (round == 1) {
      EXPECT_NE(r.boundary, second);
    }
    EXPECT_EQ(r.original().content, q.original);
  }
}

// A To: or Message-ID: value holding `boundary="..."` is only a field value: the boundary is
// the one in the Content-Type field. (fuzz_dsn once took the first `boundary="` in the
// header; tests/fuzz/corpus/dsn/regress-boundary-text-in-header-field.)
TEST(Dsn, BoundaryTextInOtherHeaderFields) {
  Request q({failed_550()});
  const std::string sender = "\"x boundary=\\\"o\\\"\"@example.org";
  q.req.envelope.sender = sender;
  q.req.message_id = "<boundary=\"o\".1@relay.example>";
  const Report r = parse_report(q.build());
  EXPECT_EQ(r.boundary, "=_boundaryo.1");  // the letters, digits, '.' and '-' of the left part
  EXPECT_EQ(count(r.headers, "Content-Type"), 1);
  EXPECT_EQ(get(r.headers, "To"), sender);
  EXPECT_EQ(get(r.headers, "Message-ID"), "<boundary=\"o\".1@relay.example>");
}

// ---- 8-bit and UTF-8 ---------------------------------------------------------------------

TEST(Dsn, EightBitOriginal) {
  Request q({failed_550()});
  q.req.envelope.ret = smtp::DsnRet::full;
  q.original = "Subject: caf\xC3\xA9 menu\r\n\r\nCr\xC3\xA8me br\xC3\xBBl\xC3\xA9\xC3\xA9\r\n";
  DsnResult res;
  Report r = parse_report(q.build(&res));
  EXPECT_TRUE(res.eight_bit);
  EXPECT_FALSE(res.smtputf8);
  EXPECT_EQ(get(r.headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "message/rfc822");
  EXPECT_EQ(get(r.original().headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(count(r.text().headers, "Content-Transfer-Encoding"), 0);

  // Headers only, and they are ASCII: a 7-bit report.
  q.req.envelope.ret = smtp::DsnRet::hdrs;
  q.original = "Subject: menu\r\n\r\nCr\xC3\xA8me\r\n";
  r = parse_report(q.build(&res));
  EXPECT_FALSE(res.eight_bit);
  EXPECT_EQ(count(r.headers, "Content-Transfer-Encoding"), 0);
}

TEST(Dsn, NonAsciiReplyInAnAsciiReportIsReplaced) {
  DsnRecipient a = failed_550();
  a.reply = smtp::make_reply(550, {5, 1, 1}, "Benutzer unbekannt \xC3\xBC \xFF");
  Request q({a});
  DsnResult res;
  const Report r = parse_report(q.build(&res));
  EXPECT_FALSE(res.eight_bit);
  EXPECT_EQ(get(r.status[1], "Diagnostic-Code"), "smtp; 550 5.1.1 Benutzer unbekannt ? ?");
}

TEST(Dsn, Smtputf8MessageGetsAGlobalReport) {
  DsnRecipient a = failed_550("j\xC3\xB6rg@b\xC3\xBC" "cher.example");
  a.orcpt = "utf-8;j\xC3\xB6rg@b\xC3\xBC" "cher.example";
  a.reply = smtp::make_reply(550, {5, 1, 1}, "unbekannt: j\xC3\xB6rg");
  Request q({a});
  q.req.envelope.smtputf8 = true;
  q.original = "Subject: Gr\xC3\xBC\xC3\x9F" "e\r\n\r\nHallo\r\n";
  DsnResult res;
  Report r = parse_report(q.build(&res));
  EXPECT_TRUE(res.eight_bit);
  EXPECT_FALSE(res.smtputf8);  // the sender, and so the report's header, is ASCII
  EXPECT_NE(get(r.headers, "Content-Type").find("report-type=global-delivery-status;"),
            std::string::npos);
  EXPECT_EQ(get(r.text().headers, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(get(r.text().headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(get(r.parts[1].headers, "Content-Type"), "message/global-delivery-status");
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "message/global-headers");
  EXPECT_EQ(get(r.original().headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(get(r.status[1], "Final-Recipient"), "utf-8; j\xC3\xB6rg@b\xC3\xBC" "cher.example");
  EXPECT_EQ(get(r.status[1], "Original-Recipient"), "utf-8;j\xC3\xB6rg@b\xC3\xBC" "cher.example");
  EXPECT_EQ(get(r.status[1], "Diagnostic-Code"), "smtp; 550 5.1.1 unbekannt: j\xC3\xB6rg");
  EXPECT_NE(r.text().content.find("<j\xC3\xB6rg@b\xC3\xBC" "cher.example>:"), std::string::npos);

  q.req.envelope.ret = smtp::DsnRet::full;
  r = parse_report(q.build(&res));
  EXPECT_EQ(get(r.original().headers, "Content-Type"), "message/global");

  // A UTF-8 sender: the report's To: needs SMTPUTF8.
  q.req.envelope.sender = "\xC3\xA5sa@example.org";
  r = parse_report(q.build(&res));
  EXPECT_TRUE(res.smtputf8);
  EXPECT_EQ(get(r.headers, "To"), "\xC3\xA5sa@example.org");
}

TEST(Dsn, Utf8OrcptKeepsItsValidForm) {
  // utf-8-addr-xtext and -unitext as received stay; what neither allows is escaped.
  DsnRecipient a = failed_550();
  a.orcpt = "utf-8;b\xC3\xA9\\x{E9}@example.net";
  DsnRecipient b = failed_550();
  b.orcpt = "utf-8;b+1=2 \\x{}\\\x01@example.net";
  Request q({a, b});
  const Report r = parse_report(q.build());
  ASSERT_EQ(r.status.size(), 3u);
  EXPECT_NE(get(r.headers, "Content-Type").find("global-delivery-status"), std::string::npos);
  EXPECT_EQ(get(r.status[1], "Original-Recipient"), "utf-8;b\xC3\xA9\\x{E9}@example.net");
  EXPECT_EQ(get(r.status[2], "Original-Recipient"),
            "utf-8;b\\x{2B}1\\x{3D}2\\x{20}\\x{5C}x{}\\x{5C}?@example.net");
}

// ---- Refusals and helpers ----------------------------------------------------------------

TEST(Dsn, RefusesWhatCannotBeReported) {
  Request q({failed_550()});
  std::string out = "kept";
  q.sync();
  q.req.envelope.sender = "";
  EXPECT_EQ(build_dsn(q.req, out).error, DsnError::null_sender);
  q.req.envelope.sender = "alice@example.org";
  q.req.recipients = {};
  EXPECT_EQ(build_dsn(q.req, out).error, DsnError::no_recipients);
  q.sync();
  q.req.message_id = "";
  EXPECT_EQ(build_dsn(q.req, out).error, DsnError::no_message_id);
  EXPECT_EQ(out, "kept");
}

TEST(Dsn, AppendsToWhatIsThere) {
  Request q({failed_550()});
  q.sync();
  std::string out = "X";
  ASSERT_TRUE(build_dsn(q.req, out).ok());
  EXPECT_EQ(out.substr(1), q.build());
}

TEST(Dsn, NotifyDecidesWhichReportsAreSent) {
  using smtp::kNotifyDelay, smtp::kNotifyFailure, smtp::kNotifyNever, smtp::kNotifySuccess;
  struct Case {
    std::uint8_t notify;
    bool failed, delayed, success;
  };
  const Case cases[] = {
      {0, true, false, false},  // not given: failures only
      {kNotifyNever, false, false, false},
      {kNotifyFailure, true, false, false},
      {kNotifyDelay, false, true, false},
      {kNotifySuccess, false, false, true},
      {kNotifySuccess | kNotifyFailure, true, false, true},
      {kNotifySuccess | kNotifyFailure | kNotifyDelay, true, true, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.notify));
    EXPECT_EQ(dsn_wanted("a@b.example", c.notify, DsnAction::failed), c.failed);
    EXPECT_EQ(dsn_wanted("a@b.example", c.notify, DsnAction::delayed), c.delayed);
    EXPECT_EQ(dsn_wanted("a@b.example", c.notify, DsnAction::delivered), c.success);
    EXPECT_EQ(dsn_wanted("a@b.example", c.notify, DsnAction::relayed), c.success);
    EXPECT_EQ(dsn_wanted("a@b.example", c.notify, DsnAction::expanded), c.success);
    for (DsnAction a : {DsnAction::failed, DsnAction::delayed, DsnAction::delivered,
                        DsnAction::relayed, DsnAction::expanded}) {
      EXPECT_FALSE(dsn_wanted("", c.notify, a));  // never to the null sender
    }
  }
}

TEST(Dsn, MessageIdFromSpoolIdTimeAndHost) {
  EXPECT_EQ(make_dsn_message_id(0xff, 1764460860, "relay.example"),
            "<00000000000000ff.1764460860@relay.example>");
  EXPECT_EQ(make_dsn_message_id(~0ull, 0, "h"), "<ffffffffffffffff.0@h>");
}

// ---- Golden reports ------------------------------------------------------------------------

namespace fs = std::filesystem;
const fs::path kGoldenDir = "tests/golden/relay";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The .ref holds the report with each CRLF as LF (unstuff() has checked there is no other
// line end), so it reads and diffs as text.
void check_golden(const std::string& name, const std::string& wire) {
  unstuff(wire);
  std::string text;
  for (std::string_view line : split_lines(wire)) {
    text.append(line);
    text += '\n';
  }
  const fs::path ref = kGoldenDir / (name + ".ref");
  if (std::getenv("RINGMTA_UPDATE_GOLDEN") != nullptr) {
    fs::create_directories(kGoldenDir);
    std::ofstream(ref, std::ios::binary) << text;
    GTEST_SKIP() << "rewrote " << ref;
  }
  ASSERT_TRUE(fs::exists(ref)) << "missing " << ref;
  EXPECT_EQ(read_file(ref), text);
}

TEST(DsnGolden, FailedWithFullMessage) {
  DsnRecipient a = failed_550();
  a.orcpt = "rfc822;bob@example.net";
  a.reply = smtp::make_reply(550, {5, 1, 1},
                             "The email account that you tried to reach does not exist.\n"
                             "5.1.1 Please check the address and try again.");
  DsnRecipient b;
  b.address = "carol@nowhere.example";
  b.action = DsnAction::failed;
  b.status = {5, 4, 4};
  b.reason = "no route to nowhere.example";
  Request q({a, b});
  q.req.envelope.envid = "run1-42";
  q.req.envelope.ret = smtp::DsnRet::full;
  check_golden("dsn_failed_full", q.build());
}

TEST(DsnGolden, DelayedUtf8HeadersOnly) {
  DsnRecipient a = failed_550("j\xC3\xB6rg@example.net");
  a.action = DsnAction::delayed;
  a.reply = smtp::make_reply(451, {4, 3, 0}, "Temporary failure, try again later");
  a.retry_until_unix = kArrival + 5 * 86400;
  Request q({a});
  q.req.envelope.smtputf8 = true;
  q.original = "Received: from client.example (192.0.2.1)\r\n"
               "Subject: Gr\xC3\xBC\xC3\x9F" "e\r\n"
               "\r\n"
               "Hallo\r\n";
  check_golden("dsn_delayed_utf8", q.build());
}

}  // namespace
}  // namespace ringmta::relay
