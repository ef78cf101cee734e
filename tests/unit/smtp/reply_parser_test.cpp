// ReplyParser: multi-line replies (RFC 5321 4.2.1), enhanced codes (RFC 3463), EHLO
// capabilities, and refusal of malformed replies.
#include "core/smtp/reply_parser.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ringmta::smtp {
namespace {

TEST(ReplyParser, SingleLineWithEnhancedCode) {
  ReplyParser p;
  const auto s = p.next("250 2.1.5 Recipient ok\r\n");
  ASSERT_TRUE(s.complete);
  EXPECT_EQ(p.reply().code, 250);
  EXPECT_EQ(p.reply().enhanced, (EnhancedCode{2, 1, 5}));
  EXPECT_EQ(p.reply().text, "Recipient ok");
}

TEST(ReplyParser, MultiLineJoinsTextAndStopsAtTheLastLine) {
  ReplyParser p;
  const std::string in = "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 go\r\n";
  const auto s = p.next(in);
  ASSERT_TRUE(s.complete);
  EXPECT_EQ(s.consumed, in.size() - 8);
  EXPECT_EQ(p.reply().text, "mx.example\nPIPELINING\nSIZE 1000");
  EXPECT_EQ(p.line_count(), 3u);
  const auto t = p.next(std::string_view(in).substr(s.consumed));
  ASSERT_TRUE(t.complete);
  EXPECT_EQ(p.reply().code, 354);
  EXPECT_FALSE(p.reply().enhanced.present());
}

TEST(ReplyParser, CodeAloneIsAReply) {
  ReplyParser p;
  ASSERT_TRUE(p.next("250\r\n").complete);
  EXPECT_EQ(p.reply().code, 250);
  EXPECT_EQ(p.reply().text, "");
}

TEST(ReplyParser, SplitAtEveryByte) {
  const std::string in = "451-4.3.0 first\r\n451 4.3.0 second\r\n";
  ReplyParser p;
  int complete = 0;
  for (char c : in) {
    const auto s = p.next(std::string_view(&c, 1));
    EXPECT_EQ(s.error, ReplyError::none);
    if (s.complete) {
      ++complete;
      EXPECT_EQ(p.reply().code, 451);
      EXPECT_EQ(p.reply().enhanced, (EnhancedCode{4, 3, 0}));
      EXPECT_EQ(p.reply().text, "first\n4.3.0 second");
    }
  }
  EXPECT_EQ(complete, 1);
}

TEST(ReplyParser, EnhancedCodeClassMustMatchTheReply) {
  // RFC 3463 2: the class digit matches the reply's first digit.
  ReplyParser p;
  ASSERT_TRUE(p.next("250 5.1.1 odd\r\n").complete);
  EXPECT_FALSE(p.reply().enhanced.present());
  EXPECT_EQ(p.reply().text, "5.1.1 odd");
  EnhancedCode e;
  EXPECT_EQ(parse_enhanced_code("5.7.1 no", 550, e), 6u);
  EXPECT_EQ(e, (EnhancedCode{5, 7, 1}));
  EXPECT_EQ(parse_enhanced_code("5.1234.1 no", 550, e), 0u);  // 1*3digit
  EXPECT_EQ(parse_enhanced_code("3.1.1 no", 354, e), 0u);    // class 2, 4 or 5 only
  EXPECT_EQ(parse_enhanced_code("2.0.0", 250, e), 5u);
}

TEST(ReplyParser, MalformedRepliesAreErrors) {
  EXPECT_EQ(ReplyParser().next("hello\r\n").error, ReplyError::malformed);
  EXPECT_EQ(ReplyParser().next("25 x\r\n").error, ReplyError::malformed);
  EXPECT_EQ(ReplyParser().next("250x\r\n").error, ReplyError::malformed);
  EXPECT_EQ(ReplyParser().next("650 x\r\n").error, ReplyError::malformed);
  EXPECT_EQ(ReplyParser().next("250-a\r\n251 b\r\n").error, ReplyError::code_mismatch);
  EXPECT_EQ(ReplyParser().next("250 ok\n").error, ReplyError::bare_newline);
  EXPECT_EQ(ReplyParser(16).next("250 " + std::string(40, 'x') + "\r\n").error,
            ReplyError::too_long);
}

TEST(ReplyParser, LongTextIsCutNotRefused) {
  ReplyParser p(2048, 8);
  ASSERT_TRUE(p.next("250-abcdef\r\n250 ghijkl\r\n").complete);
  EXPECT_EQ(p.reply().text, "abcdef\ng");  // 8 octets kept
}

TEST(EhloCapabilities, ParsesKeywordsAndSize) {
  const Capabilities c = parse_ehlo_capabilities(
      "mx.example greets you\nPIPELINING\nSIZE 10240000\n8bitmime\nSMTPUTF8\n"
      "ENHANCEDSTATUSCODES\nCHUNKING\nDSN\nSTARTTLS\nAUTH PLAIN LOGIN");
  EXPECT_TRUE(c.esmtp);
  EXPECT_TRUE(c.pipelining);
  EXPECT_TRUE(c.size);
  EXPECT_EQ(c.max_size, 10240000u);
  EXPECT_TRUE(c.eight_bit_mime);
  EXPECT_TRUE(c.smtputf8);
  EXPECT_TRUE(c.enhanced_status_codes);
  EXPECT_TRUE(c.chunking);
  EXPECT_TRUE(c.dsn);
  EXPECT_TRUE(c.starttls);
  EXPECT_TRUE(c.auth_plain);
  EXPECT_TRUE(c.auth_login);
  EXPECT_FALSE(c.binary_mime);
}

TEST(EhloCapabilities, GreetingLineIsNotAKeyword) {
  const Capabilities c = parse_ehlo_capabilities("PIPELINING");
  EXPECT_FALSE(c.pipelining);
  const Capabilities d = parse_ehlo_capabilities("mx\nSIZE");
  EXPECT_TRUE(d.size);
  EXPECT_EQ(d.max_size, 0u);
}

}  // namespace
}  // namespace ringmta::smtp
