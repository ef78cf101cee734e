// LineFramer: zero-copy lines when whole, gathering across reads, and the flaws that make
// a command line unacceptable (RFC 5321 2.3.8, 4.5.3.1.4).
#include "core/smtp/line_framer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ringmta::smtp {
namespace {

TEST(LineFramer, WholeLineIsAViewOfTheInput) {
  LineFramer f(512);
  const std::string in = "NOOP\r\nQUIT\r\n";
  const FrameStep s = f.next(in);
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.consumed, 6u);
  EXPECT_EQ(s.line.text, "NOOP");
  EXPECT_EQ(s.line.flaw, LineFlaw::none);
  EXPECT_EQ(s.line.text.data(), in.data());  // no copy
  const FrameStep t = f.next(std::string_view(in).substr(6));
  ASSERT_TRUE(t.has_line);
  EXPECT_EQ(t.line.text, "QUIT");
}

TEST(LineFramer, LineCutAcrossReadsIsGathered) {
  LineFramer f(512);
  FrameStep s = f.next("MAIL FR");
  EXPECT_FALSE(s.has_line);
  EXPECT_EQ(s.consumed, 7u);
  EXPECT_TRUE(f.has_partial());
  s = f.next("OM:<a@b>\r");
  EXPECT_FALSE(s.has_line);
  s = f.next("\nRSET\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.consumed, 1u);  // only up to the LF
  EXPECT_EQ(s.line.text, "MAIL FROM:<a@b>");
  EXPECT_EQ(s.line.flaw, LineFlaw::none);
  EXPECT_FALSE(f.has_partial());
}

TEST(LineFramer, BareLfEndsALineAndIsFlagged) {
  LineFramer f(512);
  const FrameStep s = f.next("NOOP\nRSET\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.line.flaw, LineFlaw::bare_lf);
  EXPECT_EQ(s.line.text, "NOOP");
  EXPECT_EQ(s.consumed, 5u);
}

TEST(LineFramer, BareCrDoesNotEndALineAndIsFlagged) {
  LineFramer f(512);
  const FrameStep s = f.next("NOOP\rRSET\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.line.flaw, LineFlaw::bare_cr);
  EXPECT_EQ(s.consumed, 11u);
}

TEST(LineFramer, BareCrAtTheEndOfAGatheredLine) {
  LineFramer f(512);
  f.next("NOOP\r");
  const FrameStep s = f.next("\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.line.flaw, LineFlaw::bare_cr);
}

TEST(LineFramer, LimitCountsTheCrlf) {
  LineFramer f(10);
  FrameStep s = f.next("12345678\r\n");  // 10 octets: fits
  EXPECT_EQ(s.line.flaw, LineFlaw::none);
  s = f.next("123456789\r\n");  // 11 octets
  EXPECT_EQ(s.line.flaw, LineFlaw::too_long);
}

TEST(LineFramer, OverlongLineAcrossReadsIsReadToItsEnd) {
  LineFramer f(10);
  FrameStep s = f.next(std::string(30, 'x'));
  EXPECT_FALSE(s.has_line);
  EXPECT_EQ(s.consumed, 30u);
  s = f.next(std::string(30, 'y'));
  EXPECT_FALSE(s.has_line);
  s = f.next("zz\r\nNOOP\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.line.flaw, LineFlaw::too_long);
  EXPECT_EQ(s.consumed, 4u);
  s = f.next("NOOP\r\n");
  EXPECT_EQ(s.line.text, "NOOP");
  EXPECT_EQ(s.line.flaw, LineFlaw::none);
}

TEST(LineFramer, ResetDropsAPartialLine) {
  LineFramer f(512);
  f.next("RSET");
  f.reset();
  EXPECT_FALSE(f.has_partial());
  const FrameStep s = f.next("NOOP\r\n");
  EXPECT_EQ(s.line.text, "NOOP");
}

TEST(LineFramer, EmptyLine) {
  LineFramer f(512);
  const FrameStep s = f.next("\r\n");
  ASSERT_TRUE(s.has_line);
  EXPECT_EQ(s.line.text, "");
  EXPECT_EQ(s.line.flaw, LineFlaw::none);
}

}  // namespace
}  // namespace ringmta::smtp
