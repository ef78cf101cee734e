// BodyScanner: the end of DATA only at CRLF.CRLF, every bare CR/LF look-alike flagged and
// never taken as the end, line limits, RFC 1870 size, and the SIMD fast path checked
// against the byte-at-a-time reference on random inputs cut at random points.
#include "core/smtp/body_scanner.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace ringmta::smtp {
namespace {

struct Scan {
  std::string body;
  std::size_t consumed = 0;
  bool done = false;
  std::uint8_t flaws = 0;
  std::uint64_t wire = 0, size = 0, dots = 0;
  bool high = false;
  friend bool operator==(const Scan&, const Scan&) = default;
};

Scan scan(const std::string& in, bool simd, const std::vector<std::size_t>& cuts = {}) {
  BodyScanner s(simd);
  s.begin_data();
  Scan r;
  std::size_t from = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (std::size_t end : ends) {
    if (end < from) continue;
    std::string_view piece = std::string_view(in).substr(from, end - from);
    while (!r.done && !piece.empty()) {
      const auto st = s.scan_data(piece);
      r.body.append(st.released);
      r.body.append(st.body);
      r.consumed += st.consumed;
      piece.remove_prefix(st.consumed);
      r.done = st.done;
    }
    from = end;
    if (r.done) break;
  }
  r.flaws = s.flaws();
  r.wire = s.wire_octets();
  r.size = s.message_octets();
  r.dots = s.dot_lines();
  r.high = s.has_8bit();
  return r;
}

TEST(BodyScanner, EndsOnlyAtCrlfDotCrlf) {
  const Scan r = scan("Subject: x\r\n\r\nhello\r\n.\r\nMAIL FROM:<x@y>\r\n", true);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "Subject: x\r\n\r\nhello\r\n");
  EXPECT_EQ(r.consumed, 24u);
  EXPECT_EQ(r.flaws, 0);
  EXPECT_EQ(r.wire, 21u);
}

TEST(BodyScanner, EmptyMessage) {
  const Scan r = scan(".\r\n", true);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.consumed, 3u);
  EXPECT_EQ(r.dots, 0u);
}

TEST(BodyScanner, HeldDotIsReleasedWhenItIsBody) {
  BodyScanner s;
  s.begin_data();
  auto a = s.scan_data("x\r\n.");
  EXPECT_EQ(a.body, "x\r\n");  // the '.' may start the terminator: held
  EXPECT_EQ(a.consumed, 4u);
  auto b = s.scan_data(".y\r\n");
  EXPECT_EQ(b.released, ".");  // static bytes, not the caller's buffer
  EXPECT_EQ(b.body, ".y\r\n");
  auto c = s.scan_data(".\r");
  EXPECT_EQ(c.body, "");
  auto d = s.scan_data("\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.released, "");
  EXPECT_EQ(d.body, "");
  EXPECT_EQ(d.consumed, 1u);
  EXPECT_EQ(s.wire_octets(), 8u);   // "x\r\n" + "..y\r\n"
  EXPECT_EQ(s.message_octets(), 7u);  // one transparency dot
}

TEST(BodyScanner, HeldDotCrReleasedOnBareCr) {
  BodyScanner s;
  s.begin_data();
  s.scan_data("a\r\n.\r");
  const auto b = s.scan_data("b\r\n.\r\n");
  EXPECT_EQ(b.released, ".\r");
  EXPECT_TRUE(b.done);
  EXPECT_EQ(b.body, "b\r\n");
  EXPECT_NE(s.flaws() & kFlawBareCr, 0);
}

// Every smuggling look-alike of RFC 5321's end of data (CVE-2023-51764/5/6).
class Smuggling : public ::testing::TestWithParam<std::string> {};

TEST_P(Smuggling, LookAlikeIsNotTheEndAndIsFlagged) {
  const std::string in = "x" + GetParam() + "MAIL FROM:<evil@x>\r\nDATA\r\nforged\r\n.\r\n";
  for (bool simd : {true, false}) {
    const Scan r = scan(in, simd);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.consumed, in.size()) << "ended early: smuggled";
    EXPECT_NE(r.flaws & (kFlawBareCr | kFlawBareLf), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Smuggling,
                         ::testing::Values("\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r",
                                           "\r", "\n"),
                         [](const auto& param_info) { return std::to_string(param_info.index); });

TEST(BodyScanner, LineLimitCountsCrlfButNotTheTransparencyDot) {
  EXPECT_EQ(scan(std::string(998, 'a') + "\r\n.\r\n", true).flaws, 0);
  EXPECT_EQ(scan(std::string(999, 'a') + "\r\n.\r\n", true).flaws, kFlawLongLine);
  EXPECT_EQ(scan(std::string(999, 'a') + "\r\n.\r\n", false).flaws, kFlawLongLine);
  EXPECT_EQ(scan("." + std::string(998, 'a') + "\r\n.\r\n", true).flaws, 0);
  EXPECT_EQ(scan("x\r\n" + std::string(5000, 'a') + "\r\n.\r\n", true).flaws, kFlawLongLine);
}

TEST(BodyScanner, StuffedLineAtTheLimitAtEveryBlockOffset) {
  // The fast path handles stuffed lines inside 64-byte blocks: their dot is not counted
  // wherever the line starts relative to a block.
  for (std::size_t offset = 0; offset < 140; ++offset) {
    const std::string prefix = offset == 0 ? "" : std::string(offset, 'p') + "\r\n";
    for (bool simd : {true, false}) {
      EXPECT_EQ(scan(prefix + "." + std::string(998, 'a') + "\r\n.\r\n", simd).flaws, 0)
          << "offset " << offset << " simd " << simd;
      EXPECT_EQ(scan(prefix + "." + std::string(999, 'a') + "\r\n.\r\n", simd).flaws,
                kFlawLongLine)
          << "offset " << offset << " simd " << simd;
    }
  }
}

TEST(BodyScanner, EightBitIsNoted) {
  EXPECT_TRUE(scan("caf\xc3\xa9\r\n.\r\n", true).high);
  EXPECT_FALSE(scan("cafe\r\n.\r\n", true).high);
  EXPECT_TRUE(scan(std::string(200, 'a') + "\xff" + std::string(200, 'b') + "\r\n.\r\n", true)
                  .high);
}

TEST(BodyScanner, ChunkedCountsDotLinesAndFlaws) {
  BodyScanner s;
  s.begin_chunked();
  s.scan_chunk("a\r\n.b\r");
  s.scan_chunk("\n.\r\n");
  EXPECT_EQ(s.flaws(), 0);
  EXPECT_EQ(s.dot_lines(), 2u);
  EXPECT_EQ(s.wire_octets(), 10u);
  s.scan_chunk("x\ny");
  EXPECT_EQ(s.flaws(), kFlawBareLf);
}

TEST(BodyScanner, LargeCleanBodyUsesTheFastPathAndAgrees) {
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n";
  body += ".\r\n";
  const Scan fast = scan(body, true);
  EXPECT_TRUE(fast.done);
  EXPECT_EQ(fast.consumed, body.size());
  EXPECT_EQ(fast, scan(body, false));
}

// Random bodies over an alphabet rich in CR, LF and '.', scanned SIMD and scalar, whole and
// cut at random points: identical results; and the end found where a naive search finds it.
TEST(BodyScanner, SimdAgreesWithScalarOnRandomInput) {
  std::mt19937 rng(12345);
  const char alphabet[] = {'a', 'b', '.', '\r', '\n', '\r', '\n', '.', ' ', '\xe9'};
  for (int iter = 0; iter < 3000; ++iter) {
    const std::size_t len = rng() % 400;
    std::string in;
    for (std::size_t i = 0; i < len; ++i) {
      // Long runs of plain text, so whole 64-byte blocks take the fast path too.
      in += (rng() % 4 == 0) ? alphabet[rng() % sizeof(alphabet)] : 'x';
    }
    if (rng() % 2 == 0) in += "\r\n.\r\n";
    std::vector<std::size_t> cuts;
    for (int c = rng() % 4; c > 0; --c) cuts.push_back(len == 0 ? 0 : rng() % (len + 1));
    std::sort(cuts.begin(), cuts.end());
    const Scan reference = scan(in, false);
    ASSERT_EQ(reference, scan(in, true)) << "iteration " << iter;
    ASSERT_EQ(reference, scan(in, true, cuts)) << "iteration " << iter;
    ASSERT_EQ(reference, scan(in, false, cuts)) << "iteration " << iter;
    const std::size_t end = ("\r\n" + in).find("\r\n.\r\n");
    if (end == std::string::npos) {
      EXPECT_FALSE(reference.done);
    } else {
      ASSERT_TRUE(reference.done);
      EXPECT_EQ(reference.consumed, end + 3) << "iteration " << iter;
      EXPECT_EQ(reference.body, in.substr(0, end));
    }
  }
}

// Random but mostly well-formed lines (so whole blocks take the fast path), many starting
// with '.', some long, a few with a bare CR or LF: SIMD and scalar agree, whole and cut.
TEST(BodyScanner, SimdAgreesWithScalarOnRandomLines) {
  std::mt19937 rng(777);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string in;
    const int lines = static_cast<int>(rng() % 40);
    for (int l = 0; l < lines; ++l) {
      const unsigned kind = rng() % 10;
      if (kind < 3) in += '.';
      if (kind == 3) in += "..";
      if (kind == 4) in += ".\r";
      std::size_t len = rng() % 90;
      if (rng() % 50 == 0) len = 990 + rng() % 20;  // around the 1000-octet limit
      for (std::size_t i = 0; i < len; ++i) in += static_cast<char>('a' + rng() % 26);
      if (rng() % 200 == 0) in += '\n';
      if (rng() % 200 == 0) in += '\r';
      in += "\r\n";
    }
    if (rng() % 2 == 0) in += ".\r\n";
    std::vector<std::size_t> cuts;
    for (int c = static_cast<int>(rng() % 4); c > 0; --c) cuts.push_back(rng() % (in.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    const Scan reference = scan(in, false);
    ASSERT_EQ(reference, scan(in, true)) << "iteration " << iter;
    ASSERT_EQ(reference, scan(in, true, cuts)) << "iteration " << iter;
    BodyScanner a(true), b(false);
    a.begin_chunked();
    b.begin_chunked();
    a.scan_chunk(in);
    b.scan_chunk(in);
    ASSERT_EQ(a.flaws(), b.flaws());
    ASSERT_EQ(a.dot_lines(), b.dot_lines());
    ASSERT_EQ(a.has_8bit(), b.has_8bit());
  }
}

}  // namespace
}  // namespace ringmta::smtp
