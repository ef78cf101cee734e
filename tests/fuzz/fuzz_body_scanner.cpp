// libFuzzer target for BodyScanner: the SIMD and scalar paths, fed whole or in input-derived
// pieces, must agree, and both must match a plain reference reading of RFC 5321 (end of data,
// bare CR/LF, long lines, dot lines, 8-bit) with the body handed on as a prefix of the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/smtp/body_scanner.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using namespace ringmta::smtp;

struct Message {
  std::string body;            // released + body bytes, concatenated
  std::uint64_t consumed = 0;  // input bytes used by this message
  bool done = false;
  std::uint8_t flaws = 0;
  std::uint64_t wire = 0;
  std::uint64_t message = 0;
  std::uint64_t dots = 0;
  bool has_8bit = false;

  bool operator==(const Message&) const = default;
};

bool is_line_start(std::string_view s, std::size_t i) {
  return i == 0 || (i >= 2 && s[i - 2] == '\r' && s[i - 1] == '\n');
}

// The reference: what RFC 5321 says about bytes `s` (a message's input, `s` ending where the
// scanner stopped), written for clarity rather than speed.
struct Reference {
  std::uint8_t flaws_bare = 0;
  bool long_line = false;
  std::uint64_t dots = 0;
  bool has_8bit = false;
};

Reference reference(std::string_view s, bool dot_mode) {
  Reference r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) r.has_8bit = true;
    if (c == '\n' && (i == 0 || s[i - 1] != '\r')) r.flaws_bare |= kFlawBareLf;
    // A CR at the very end is not known to be bare yet.
    if (c == '\r' && i + 1 < s.size() && s[i + 1] != '\n') r.flaws_bare |= kFlawBareCr;
    if (c == '.' && is_line_start(s, i)) ++r.dots;
  }
  if (r.flaws_bare == 0) {
    // RFC 5321 4.5.3.1.6: 1000 octets with CRLF, the transparency dot not counted.
    std::size_t start = 0;
    for (std::size_t lf = s.find("\r\n"); lf != std::string_view::npos;
         lf = s.find("\r\n", start)) {
      std::size_t len = lf + 2 - start;
      if (dot_mode && s[start] == '.') --len;
      if (len > kMaxTextLine) r.long_line = true;
      start = lf + 2;
    }
  }
  return r;
}

void check_message(const Message& m, std::string_view input, bool dot_mode) {
  // input: everything from the message's start. The scanner's view of it:
  const std::string_view used = input.substr(0, m.consumed);
  FUZZ_CHECK(m.wire == m.body.size());
  if (dot_mode) {
    // RFC 5321 4.1.1.4: the data ends at the first CRLF "." CRLF, the DATA command's CRLF
    // counting as the first CRLF.
    const std::string framed = "\r\n" + std::string(input);
    const std::size_t end = framed.find("\r\n.\r\n");
    if (end != std::string::npos) {
      FUZZ_CHECK(m.done);
      FUZZ_CHECK(m.consumed == end + 3);
      FUZZ_CHECK(used.substr(used.size() - 3) == ".\r\n");
      FUZZ_CHECK(m.consumed == 3 || used.substr(used.size() - 5) == "\r\n.\r\n");
      FUZZ_CHECK_EQ_STR(m.body, used.substr(0, used.size() - 3));
    } else {
      FUZZ_CHECK(!m.done);
      FUZZ_CHECK(m.consumed == input.size());
      // What is not handed on is a held "." or ".\r" that may begin the end of data.
      FUZZ_CHECK_EQ_STR(m.body, used.substr(0, m.body.size()));
      const std::string_view held = used.substr(m.body.size());
      FUZZ_CHECK(held.empty() || held == "." || held == ".\r");
      if (!held.empty()) FUZZ_CHECK(is_line_start(used, m.body.size()));
    }
  } else {
    FUZZ_CHECK(!m.done);
    FUZZ_CHECK(m.consumed == input.size());
    FUZZ_CHECK_EQ_STR(m.body, used);
  }
  const std::string_view counted = m.done ? std::string_view(m.body) : used;
  const Reference ref = reference(counted, dot_mode);
  // With a bare CR or LF the message is refused anyway and line lengths are not defined.
  constexpr std::uint8_t kBare = kFlawBareCr | kFlawBareLf;
  FUZZ_CHECK((m.flaws & kBare) == ref.flaws_bare);
  if (ref.flaws_bare == 0) FUZZ_CHECK(((m.flaws & kFlawLongLine) != 0) == ref.long_line);
  FUZZ_CHECK(m.dots == ref.dots);
  FUZZ_CHECK(m.has_8bit == ref.has_8bit);
  if (!dot_mode) {
    FUZZ_CHECK(m.message == m.wire);
  } else {
    // RFC 1870: the message size leaves out one dot per dot line; a held "." is counted
    // as a dot line but its dot is not yet known to be a transparency dot.
    const bool held = !m.done && m.consumed != m.body.size();
    FUZZ_CHECK(m.message <= m.wire);
    FUZZ_CHECK(m.wire - m.message + (held ? 1 : 0) == m.dots);
  }
}

void finish(const BodyScanner& sc, Message& m) {
  m.flaws = sc.flaws();
  m.wire = sc.wire_octets();
  m.message = sc.message_octets();
  m.dots = sc.dot_lines();
  m.has_8bit = sc.has_8bit();
}

// DATA: messages follow each other (as in a session); each piece is scanned to its end.
std::vector<Message> run_data(bool simd, const std::vector<std::string_view>& pieces) {
  std::vector<Message> out;
  BodyScanner sc(simd);
  sc.begin_data();
  Message cur;
  for (std::string_view piece : pieces) {
    std::size_t pos = 0;
    while (pos < piece.size()) {
      const std::string_view in = piece.substr(pos);
      const BodyScanner::DataStep st = sc.scan_data(in);
      FUZZ_CHECK(st.released.empty() || st.released == "." || st.released == ".\r");
      // The body is a view of the input's first bytes (no copy, nothing skipped).
      FUZZ_CHECK(st.body.empty() || st.body.data() == in.data());
      FUZZ_CHECK(st.body.size() <= st.consumed && st.consumed <= in.size());
      FUZZ_CHECK(st.consumed > 0);
      if (!st.done) FUZZ_CHECK(st.consumed == in.size());
      cur.body.append(st.released);
      cur.body.append(st.body);
      cur.consumed += st.consumed;
      FUZZ_CHECK(sc.wire_octets() == cur.body.size());
      pos += st.consumed;
      if (st.done) {
        cur.done = true;
        finish(sc, cur);
        out.push_back(std::move(cur));
        cur = Message{};
        sc.begin_data();
      }
    }
  }
  finish(sc, cur);
  out.push_back(std::move(cur));
  return out;
}

// BDAT: every byte is body; one message.
std::vector<Message> run_chunked(bool simd, const std::vector<std::string_view>& pieces) {
  BodyScanner sc(simd);
  sc.begin_chunked();
  Message m;
  for (std::string_view piece : pieces) {
    sc.scan_chunk(piece);
    m.body.append(piece);
    m.consumed += piece.size();
    FUZZ_CHECK(sc.wire_octets() == m.body.size());
  }
  finish(sc, m);
  return {m};
}

std::vector<std::string_view> cut(std::string_view s, const std::vector<std::size_t>& sizes) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; !s.empty(); ++i) {
    const std::size_t n = sizes.empty() ? s.size() : sizes[i % sizes.size()];
    pieces.push_back(s.substr(0, n));
    s.remove_prefix(pieces.back().size());
  }
  return pieces;
}

void check_same(const std::vector<Message>& a, const std::vector<Message>& b) {
  FUZZ_CHECK(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    FUZZ_CHECK_EQ_STR(a[i].body, b[i].body);
    FUZZ_CHECK(a[i] == b[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ringmta::fuzz::InputReader in(data, size);
  const std::uint8_t flags = in.byte();
  const bool chunked = (flags & 1) != 0;
  std::vector<std::size_t> sizes;
  for (int i = 0, n = (flags >> 1) & 7; i < n; ++i)
    sizes.push_back(in.byte() + 1u);
  if (sizes.empty()) sizes.push_back(65);  // straddles the 64-byte SIMD blocks
  const std::string_view bytes = in.rest();

  const auto whole = cut(bytes, {});
  const auto pieces = cut(bytes, sizes);
  const auto single = cut(bytes, {1});
  const auto run = chunked ? run_chunked : run_data;
  const std::vector<Message> simd_whole = run(true, whole);
  check_same(simd_whole, run(false, whole));
  check_same(simd_whole, run(true, pieces));
  check_same(simd_whole, run(false, single));

  std::string_view rest = bytes;
  for (const Message& m : simd_whole) {
    check_message(m, rest, !chunked);
    rest.remove_prefix(m.consumed);
  }
  FUZZ_CHECK(rest.empty());
  return 0;
}
