// libFuzzer target for build_dsn(): recipients, replies, envelope fields and the original
// message come from the input. The report must always be well-formed wire text with one
// MIME structure: CRLF lines, no lone ".", the boundary only in its four delimiter lines,
// lines within 998 octets outside the returned original, flags that match the bytes, the
// returned original equal to the input as a reader sees it, the same report from a raw
// original and its dot-stuffed form, and a Diagnostic-Code that unfolds to the reply.
//
// Input: flags (bit 0: raw original, bits 1-2: RET none/FULL/HDRS, bit 3: SMTPUTF8, bit 4:
// a 100-byte size limit), recipient count - 1 (mod 4), per recipient an action (mod 5), a
// reply code (u16; 0 = no reply), an enhanced code (3 bytes) and strings (address, ORCPT,
// remote MTA, reason: u8 length, then bytes; reply text: u16 length); then the sender,
// ENVID, HELO, client IP and Message-ID (u8 length each); the rest is the original.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/dsn.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace ringmta;
using relay::DsnAction;

bool has_8bit(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// The original as a receiver reads it (the reference for what the report returns): lines
// end at CRLF or a bare CR or LF; a stuffed line after a CRLF loses its first dot unless
// it is a lone "."; every line ends in CRLF.
std::string as_read(std::string_view s, bool stuffed) {
  std::string out;
  bool after_crlf = true;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t e = pos;
    while (e < s.size() && s[e] != '\r' && s[e] != '\n') ++e;
    std::string_view line = s.substr(pos, e - pos);
    if (stuffed && after_crlf && line.size() > 1 && line[0] == '.') line.remove_prefix(1);
    out.append(line);
    out += "\r\n";
    if (e == s.size()) break;
    after_crlf = s[e] == '\r' && e + 1 < s.size() && s[e + 1] == '\n';
    pos = e + (after_crlf ? 2 : 1);
  }
  return out;
}

std::string stuffed_form(std::string_view content) {
  std::string out;
  bool start = true;
  for (char c : content) {
    if (start && c == '.') out += '.';
    out += c;
    start = c == '\n';
  }
  return out;
}

std::vector<std::string_view> lines_of(std::string_view s) {
  std::vector<std::string_view> v;
  while (!s.empty()) {
    const std::size_t e = s.find("\r\n");
    FUZZ_CHECK(e != std::string_view::npos);
    v.push_back(s.substr(0, e));
    s.remove_prefix(e + 2);
  }
  return v;
}

std::string without_spaces(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != ' ') out += c;
  }
  return out;
}

// Checks one report; returns the returned original's content (unstuffed).
std::string check_report(std::string_view wire, const relay::DsnRequest& req,
                         const relay::DsnResult& res) {
  // Wire form: CRLF lines only, ending in CRLF, no lone "." (it would end the DATA).
  FUZZ_CHECK(wire.size() >= 2 && wire.substr(wire.size() - 2) == "\r\n");
  std::string u;
  for (std::string_view line : lines_of(wire)) {
    FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos);
    FUZZ_CHECK(line != ".");
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    u.append(line);
    u += "\r\n";
  }
  const std::size_t head_end = u.find("\r\n\r\n");
  FUZZ_CHECK(head_end != std::string::npos);
  const std::string_view head = std::string_view(u).substr(0, head_end + 2);
  const std::string_view body = std::string_view(u).substr(head_end + 2);
  FUZZ_CHECK(res.smtputf8 == has_8bit(head));
  FUZZ_CHECK(res.eight_bit == has_8bit(body));

  // The boundary parameter of the top-level Content-Type field (a line of its own: other
  // fields' values, such as a To: holding `boundary="`, never start a line with it).
  const std::size_t ct = head.find("\r\nContent-Type: multipart/report; report-type=");
  FUZZ_CHECK(ct != std::string_view::npos);
  const std::size_t fold = head.find("\r\n", ct + 2);  // the field's second line...
  FUZZ_CHECK(head.substr(fold, 13) == "\r\n\tboundary=\"");  // ...holds the boundary
  const std::size_t b = fold + 3;
  const std::string_view boundary = head.substr(b + 10, head.find('"', b + 10) - (b + 10));
  FUZZ_CHECK(!boundary.empty() && boundary.size() <= 70);
  const std::string delim = "\r\n--" + std::string(boundary);
  std::vector<std::size_t> at;
  for (std::size_t p = body.find(boundary); p != std::string_view::npos;
       p = body.find(boundary, p + 1)) {
    FUZZ_CHECK(p >= 4 && body.substr(p - 4, delim.size()) == delim);
    at.push_back(p - 4);
  }
  FUZZ_CHECK(at.size() == 4);
  for (std::size_t i = 0; i < 3; ++i) FUZZ_CHECK(body.substr(at[i] + delim.size(), 2) == "\r\n");
  FUZZ_CHECK(body.substr(at[3] + delim.size()) == "--\r\n");

  auto part_content = [&](std::size_t i) {
    const std::string_view raw =
        body.substr(at[i] + delim.size() + 2, at[i + 1] - at[i] - delim.size() - 2);
    const std::size_t split = raw.find("\r\n\r\n");
    FUZZ_CHECK(split != std::string_view::npos);
    return raw.substr(split + 4);
  };
  // Every line up to the returned original is within RFC 5322's 998 octets.
  const std::string_view original = part_content(2);
  const std::size_t original_at = static_cast<std::size_t>(original.data() - u.data());
  for (std::string_view line : lines_of(std::string_view(u).substr(0, original_at))) {
    FUZZ_CHECK(line.size() <= 998);
  }

  // The delivery-status part: a per-message block, then one block per recipient, in order.
  const std::string_view status = part_content(1);
  std::vector<std::string> diagnostics;  // unfolded, one per recipient ("" if none)
  std::size_t blocks = 0;
  for (std::string_view line : lines_of(status)) {
    if (line.empty()) {
      ++blocks;
      diagnostics.emplace_back();
      continue;
    }
    if (line[0] == ' ') {
      if (!diagnostics.empty() && !diagnostics.back().empty()) diagnostics.back() += line;
      continue;
    }
    if (line.substr(0, 17) == "Diagnostic-Code: ") {
      FUZZ_CHECK(!diagnostics.empty() && diagnostics.back().empty());
      diagnostics.back() = line.substr(17);
    }
  }
  FUZZ_CHECK(blocks == req.recipients.size());
  for (std::size_t i = 0; i < req.recipients.size(); ++i) {
    const smtp::Reply& reply = req.recipients[i].reply;
    FUZZ_CHECK(diagnostics[i].empty() == (reply.code == 0));
    // For printable ASCII text: folding added or kept only spaces.
    bool plain = true;
    for (char c : reply.text) plain = plain && ((c >= 0x20 && c < 0x7f) || c == '\n');
    if (reply.code == 0 || !plain) continue;
    std::string expect = "smtp;";
    std::string_view text = reply.text;
    for (bool first = true;; first = false) {
      const std::size_t nl = text.find('\n');
      expect += std::to_string(reply.code);
      expect += nl == std::string_view::npos ? "" : "-";
      if (first && reply.enhanced.present()) {
        expect += std::to_string(reply.enhanced.cls) + "." + std::to_string(reply.enhanced.subject) +
                  "." + std::to_string(reply.enhanced.detail);
      }
      expect += text.substr(0, nl);
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
    FUZZ_CHECK_EQ_STR(without_spaces(diagnostics[i]), without_spaces(expect));
  }
  return std::string(original);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::InputReader in(data, size);
  const std::uint8_t flags = in.byte();
  const std::size_t count = 1 + in.byte() % 4;
  auto str8 = [&in] { return in.bytes(in.byte()); };

  std::vector<relay::DsnRecipient> rcpts(count);
  for (relay::DsnRecipient& r : rcpts) {
    r.action = static_cast<DsnAction>(in.byte() % 5);
    const std::uint16_t code = in.u16();
    const std::uint8_t cls = in.byte(), subject = in.byte(), detail = in.byte();
    r.address = str8();
    r.orcpt = str8();
    r.remote_mta = str8();
    r.reason = str8();
    r.reply = smtp::make_reply(code, {static_cast<std::uint8_t>(cls % 8), subject, detail},
                               in.bytes(in.u16()));
    r.last_attempt_unix = code;
    r.retry_until_unix = code * 7;
  }
  relay::DsnRequest req;
  req.reporting_mta = "relay.example";
  req.now_unix = 1764460800;
  req.envelope.sender = str8();
  req.envelope.envid = str8();
  req.envelope.helo = str8();
  req.envelope.client_ip = str8();
  req.message_id = str8();
  req.envelope.ret = static_cast<smtp::DsnRet>(((flags >> 1) & 3) % 3);
  req.envelope.smtputf8 = (flags & 8) != 0;
  req.envelope.arrival_unix_ms = 1764460800000;
  req.recipients = rcpts;
  req.original = in.rest();
  const bool raw = (flags & 1) != 0;
  req.original_format = raw ? smtp::BodyFormat::raw : smtp::BodyFormat::dot_stuffed;
  if ((flags & 16) != 0) req.size_limit = 100;

  std::string out;
  const relay::DsnResult res = relay::build_dsn(req, out);
  if (req.envelope.sender.empty() || req.message_id.empty()) {
    FUZZ_CHECK(!res.ok() && out.empty());
    return 0;
  }
  FUZZ_CHECK(res.ok());
  const std::string returned = check_report(out, req, res);

  const std::string content = as_read(req.original, !raw);
  if (res.full_message) {
    FUZZ_CHECK_EQ_STR(returned, content);
  } else {
    // A header section: a prefix of the content (a cut line gets its own CRLF), no empty line.
    const std::string_view cut =
        returned.empty() ? std::string_view() : std::string_view(returned).substr(0, returned.size() - 2);
    FUZZ_CHECK(content.compare(0, cut.size(), cut) == 0);
    FUZZ_CHECK(returned.substr(0, 2) != "\r\n" && returned.find("\r\n\r\n") == std::string::npos);
  }

  // The same content given raw and dot-stuffed makes the same report, when the limit does
  // not tell the two sizes apart.
  const std::string stuffed = stuffed_form(content);
  if (stuffed.size() <= req.size_limit) {
    relay::DsnRequest a = req, b = req;
    a.original = content;
    a.original_format = smtp::BodyFormat::raw;
    b.original = stuffed;
    b.original_format = smtp::BodyFormat::dot_stuffed;
    std::string wa, wb;
    const relay::DsnResult rb = relay::build_dsn(b, wb);
    FUZZ_CHECK(relay::build_dsn(a, wa).ok() && rb.ok());
    FUZZ_CHECK_EQ_STR(wa, wb);
    // A clean stuffed original is in the report byte for byte.
    FUZZ_CHECK(!rb.full_message || wb.find(stuffed) != std::string::npos);
  }
  return 0;
}
