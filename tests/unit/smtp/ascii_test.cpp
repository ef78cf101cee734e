// Unit tests for core/smtp/ascii.hpp: character classes, ASCII case folding, RFC 3629 UTF-8
// validation (overlongs, surrogates, > U+10FFFF, truncation) and bounded decimal parsing.
// Note: hex escapes are split ("\xC3\xA9" "abc") so that following hex letters stay separate.
#include "core/smtp/ascii.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmta::smtp {
namespace {

// ---------------------------------------------------------------------------------------------
// Character classes

TEST(AsciiClasses, AtextAcceptsLettersDigitsAndTheRfc5322Specials) {
  // RFC 5322 3.2.3: atext = ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~".
  for (unsigned char c : std::string_view("azAZ09!#$%&'*+-/=?^_`{|}~")) {
    EXPECT_TRUE(is_atext(c)) << "char " << static_cast<int>(c);
  }
}

TEST(AsciiClasses, AtextRejectsSpecialsControlsSpaceAndNonAscii) {
  // RFC 5322 3.2.3: specials are not atext.
  for (unsigned char c : std::string_view("()<>[]:;@\\,.\" \t")) {
    EXPECT_FALSE(is_atext(c)) << "char " << static_cast<int>(c);
  }
  EXPECT_FALSE(is_atext(0));
  EXPECT_FALSE(is_atext(0x7F));
  EXPECT_FALSE(is_atext(0x80));
  EXPECT_FALSE(is_atext(0xFF));
}

TEST(AsciiClasses, LetDigAndHexdigBoundaries) {
  EXPECT_TRUE(is_let_dig('a'));
  EXPECT_TRUE(is_let_dig('Z'));
  EXPECT_TRUE(is_let_dig('0'));
  EXPECT_FALSE(is_let_dig('-'));
  EXPECT_FALSE(is_let_dig('@'));  // 0x40, just below 'A'
  EXPECT_FALSE(is_let_dig('['));  // 0x5B, just above 'Z'
  EXPECT_FALSE(is_let_dig('`'));  // 0x60, folds onto '@' with | 0x20
  EXPECT_FALSE(is_let_dig('{'));  // 0x7B, folds onto '[' ... must not count as a letter
  EXPECT_FALSE(is_let_dig(0xC1));  // 0xC1 | 0x20 == 0xE1, not a letter either
  EXPECT_TRUE(is_hexdig('f'));
  EXPECT_TRUE(is_hexdig('F'));
  EXPECT_FALSE(is_hexdig('g'));
  // RFC 3461 4: the xtext hexchar takes upper-case hex digits only.
  EXPECT_TRUE(is_hexdig_upper('A'));
  EXPECT_TRUE(is_hexdig_upper('9'));
  EXPECT_FALSE(is_hexdig_upper('a'));
  EXPECT_FALSE(is_hexdig_upper('G'));
}

TEST(AsciiClasses, ToLowerFoldsOnlyAsciiUpperCase) {
  EXPECT_EQ(to_lower('A'), 'a');
  EXPECT_EQ(to_lower('Z'), 'z');
  EXPECT_EQ(to_lower('a'), 'a');
  EXPECT_EQ(to_lower('@'), '@');
  EXPECT_EQ(to_lower('['), '[');
  EXPECT_EQ(to_lower('\xC3'), '\xC3');
}

// ---------------------------------------------------------------------------------------------
// iequals / istarts_with / has_non_ascii

TEST(AsciiIequals, MatchesAnyCaseAgainstUpperCanonicalForm) {
  EXPECT_TRUE(iequals("ehlo", "EHLO"));
  EXPECT_TRUE(iequals("EHLO", "EHLO"));
  EXPECT_TRUE(iequals("eHlO", "EHLO"));
  EXPECT_TRUE(iequals("8bitmime", "8BITMIME"));
  EXPECT_TRUE(iequals("", ""));
}

TEST(AsciiIequals, RejectsDifferentLengthsAndDifferentLetters) {
  EXPECT_FALSE(iequals("ehl", "EHLO"));
  EXPECT_FALSE(iequals("ehlox", "EHLO"));
  EXPECT_FALSE(iequals("helo", "EHLO"));
  EXPECT_FALSE(iequals("", "EHLO"));
}

TEST(AsciiIequals, DoesNotFoldNonLettersThatDifferByBit5) {
  // Only a-z fold; '{' (0x7B) vs '[' (0x5B) and '`' (0x60) vs '@' (0x40) differ by 0x20 too.
  EXPECT_FALSE(iequals("{", "["));
  EXPECT_FALSE(iequals("`", "@"));
  EXPECT_FALSE(iequals("\xE9", "\xC9"));  // Latin-1 e-acute / E-acute bytes stay distinct
}

TEST(AsciiIequals, UpperArgumentMustBeCanonical) {
  // The contract: `upper` is already upper case, so a lower-case `upper` never matches letters.
  EXPECT_FALSE(iequals("ehlo", "ehlo"));
}

TEST(AsciiIstartsWith, ComparesOnlyThePrefix) {
  EXPECT_TRUE(istarts_with("from:<a@b>", "FROM:"));
  EXPECT_TRUE(istarts_with("FROM:", "FROM:"));
  EXPECT_TRUE(istarts_with("anything", ""));
  EXPECT_FALSE(istarts_with("FROM", "FROM:"));
  EXPECT_FALSE(istarts_with("FROM :<a@b>", "FROM:"));
}

TEST(AsciiHasNonAscii, DetectsAnyByteAbove0x7F) {
  EXPECT_FALSE(has_non_ascii(""));
  EXPECT_FALSE(has_non_ascii("plain ascii \x7F"));
  EXPECT_TRUE(has_non_ascii("caf\xC3\xA9"));
  EXPECT_TRUE(has_non_ascii("\x80"));
}

// ---------------------------------------------------------------------------------------------
// utf8_sequence_length: RFC 3629 4 (Syntax of UTF-8 Byte Sequences)

struct Utf8Case {
  const char* name;
  std::string bytes;
  std::size_t expected;
};

class AsciiUtf8SequenceLength : public ::testing::TestWithParam<Utf8Case> {};

TEST_P(AsciiUtf8SequenceLength, ReturnsLengthOfWellFormedSequenceOrZero) {
  const Utf8Case& c = GetParam();
  EXPECT_EQ(utf8_sequence_length(c.bytes), c.expected) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    AsciiRfc3629, AsciiUtf8SequenceLength,
    ::testing::Values(
        Utf8Case{"ascii_letter", "A", 1}, Utf8Case{"ascii_nul", std::string(1, '\0'), 1},
        Utf8Case{"ascii_del", "\x7F", 1},
        // Two bytes: C2..DF 80..BF.
        Utf8Case{"u0080_lowest_2byte", "\xC2\x80", 2},
        Utf8Case{"u00e9_e_acute", "\xC3\xA9", 2}, Utf8Case{"u07ff_highest_2byte", "\xDF\xBF", 2},
        Utf8Case{"overlong_slash_c0af", "\xC0\xAF", 0},
        Utf8Case{"overlong_c1bf", "\xC1\xBF", 0},
        Utf8Case{"overlong_nul_c080", "\xC0\x80", 0},
        // Three bytes: E0 A0..BF / E1..EC / ED 80..9F / EE..EF.
        Utf8Case{"u0800_lowest_3byte", "\xE0\xA0\x80", 3},
        Utf8Case{"overlong_u07ff_e09fbf", "\xE0\x9F\xBF", 0},
        Utf8Case{"overlong_slash_e080af", "\xE0\x80\xAF", 0},
        Utf8Case{"u20ac_euro", "\xE2\x82\xAC", 3},
        Utf8Case{"ud7ff_below_surrogates", "\xED\x9F\xBF", 3},
        Utf8Case{"surrogate_high_d800", "\xED\xA0\x80", 0},
        Utf8Case{"surrogate_low_dfff", "\xED\xBF\xBF", 0},
        Utf8Case{"ue000_above_surrogates", "\xEE\x80\x80", 3},
        Utf8Case{"uffff", "\xEF\xBF\xBF", 3},
        // Four bytes: F0 90..BF / F1..F3 / F4 80..8F.
        Utf8Case{"u10000_lowest_4byte", "\xF0\x90\x80\x80", 4},
        Utf8Case{"u1f600_emoji", "\xF0\x9F\x98\x80", 4},
        Utf8Case{"overlong_uffff_f08fbfbf", "\xF0\x8F\xBF\xBF", 0},
        Utf8Case{"u10ffff_highest", "\xF4\x8F\xBF\xBF", 4},
        Utf8Case{"u110000_above_max_f490", "\xF4\x90\x80\x80", 0},
        Utf8Case{"lead_f5_above_max", "\xF5\x80\x80\x80", 0},
        Utf8Case{"lead_f7_above_max", "\xF7\xBF\xBF\xBF", 0},
        // Bytes that never start a sequence.
        Utf8Case{"lone_continuation_80", "\x80", 0}, Utf8Case{"lone_continuation_bf", "\xBF", 0},
        Utf8Case{"five_byte_lead_f8", "\xF8\x88\x80\x80\x80", 0},
        Utf8Case{"six_byte_lead_fc", "\xFC\x84\x80\x80\x80\x80", 0},
        Utf8Case{"byte_fe", "\xFE", 0}, Utf8Case{"byte_ff", "\xFF", 0},
        // Truncated sequences (end of input) and a non-continuation in the middle.
        Utf8Case{"truncated_2_of_2", "\xC3", 0}, Utf8Case{"truncated_2_of_3", "\xE2\x82", 0},
        Utf8Case{"truncated_1_of_3", "\xE2", 0},
        Utf8Case{"truncated_3_of_4", "\xF0\x9F\x98", 0},
        Utf8Case{"ascii_instead_of_2nd", "\xC3" "A", 0},
        Utf8Case{"ascii_instead_of_3rd", "\xE2\x82" "A", 0},
        Utf8Case{"ascii_instead_of_4th", "\xF0\x9F\x98" "A", 0},
        Utf8Case{"new_lead_instead_of_3rd", "\xE2\x82\xC3\xA9", 0},
        // Only the first sequence is measured; what follows does not matter.
        Utf8Case{"followed_by_ascii", "\xC3\xA9" "abc", 2},
        Utf8Case{"followed_by_garbage", "\xE2\x82\xAC\xFF", 3}),
    [](const ::testing::TestParamInfo<Utf8Case>& p) { return std::string(p.param.name); });

TEST(AsciiUtf8SequenceLengthView, TruncationIsJudgedByTheViewNotTheBuffer) {
  // The bytes after the view would complete the sequence; they must not be read.
  const std::string_view euro = "\xE2\x82\xAC";
  EXPECT_EQ(utf8_sequence_length(euro.substr(0, 2)), 0u);
  EXPECT_EQ(utf8_sequence_length(euro.substr(0, 1)), 0u);
  EXPECT_EQ(utf8_sequence_length(euro), 3u);
  EXPECT_FALSE(is_valid_utf8(euro.substr(0, 2)));
}

// ---------------------------------------------------------------------------------------------
// is_valid_utf8

TEST(AsciiIsValidUtf8, EmptyAndAsciiAreValid) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("user@example.org"));
}

TEST(AsciiIsValidUtf8, MixedWellFormedTextIsValid) {
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE7\x94\xA8\xE6\x88\xB7"));
}

TEST(AsciiIsValidUtf8, RejectsIllFormedSequenceAnywhereInTheText) {
  EXPECT_FALSE(is_valid_utf8("\xFF" "abc"));
  EXPECT_FALSE(is_valid_utf8("ab\xC0\xAF" "c"));        // overlong '/'
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));           // truncated at the end
  EXPECT_FALSE(is_valid_utf8("abc\xF4\x90\x80\x80"));   // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("abc\x80"));               // stray continuation
}

TEST(AsciiIsValidUtf8, RejectsCesu8SurrogatePair) {
  // RFC 3629 3: surrogate code points (U+D800..U+DFFF) must not be encoded, so the CESU-8 form
  // of U+1F600 (ED A0 BD ED B8 80) is ill formed.
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\xBD\xED\xB8\x80"));
}

TEST(AsciiIsValidUtf8, NulByteIsWellFormed) {
  // U+0000 is a valid code point; grammars reject it elsewhere.
  EXPECT_TRUE(is_valid_utf8(std::string_view("a\0b", 3)));
}

// ---------------------------------------------------------------------------------------------
// parse_decimal

TEST(AsciiParseDecimal, ParsesDigitsExactly) {
  std::uint64_t v = 99;
  ASSERT_TRUE(parse_decimal("0", 20, v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(parse_decimal("1234567", 20, v));
  EXPECT_EQ(v, 1234567u);
  ASSERT_TRUE(parse_decimal("007", 3, v));
  EXPECT_EQ(v, 7u);
}

TEST(AsciiParseDecimal, RejectsEmptyAndNonDigits) {
  std::uint64_t v = 0;
  EXPECT_FALSE(parse_decimal("", 20, v));
  EXPECT_FALSE(parse_decimal("12a", 20, v));
  EXPECT_FALSE(parse_decimal("a12", 20, v));
  EXPECT_FALSE(parse_decimal("+1", 20, v));
  EXPECT_FALSE(parse_decimal("-1", 20, v));
  EXPECT_FALSE(parse_decimal(" 1", 20, v));
  EXPECT_FALSE(parse_decimal("1 ", 20, v));
  EXPECT_FALSE(parse_decimal("1.0", 20, v));
  EXPECT_FALSE(parse_decimal("0x10", 20, v));
}

TEST(AsciiParseDecimal, MaxDigitsIsInclusive) {
  std::uint64_t v = 0;
  ASSERT_TRUE(parse_decimal("255", 3, v));
  EXPECT_EQ(v, 255u);
  EXPECT_FALSE(parse_decimal("1000", 3, v));
  // The digit count, not the value, is limited: leading zeros count.
  EXPECT_FALSE(parse_decimal("0001", 3, v));
}

TEST(AsciiParseDecimal, AcceptsUint64MaxAndRejectsOneMore) {
  std::uint64_t v = 0;
  ASSERT_TRUE(parse_decimal("18446744073709551615", 20, v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_FALSE(parse_decimal("18446744073709551616", 20, v));
  EXPECT_FALSE(parse_decimal("18446744073709551620", 20, v));  // overflow in the last digit
  EXPECT_FALSE(parse_decimal("19000000000000000000", 20, v));  // overflow on the last multiply
  EXPECT_FALSE(parse_decimal("99999999999999999999", 20, v));
}

TEST(AsciiParseDecimal, TwentyZerosIsZero) {
  std::uint64_t v = 5;
  ASSERT_TRUE(parse_decimal("00000000000000000000", 20, v));
  EXPECT_EQ(v, 0u);
}

TEST(AsciiParseDecimal, LongInputOverOverflowLimitFailsWithoutWrapping) {
  // 30 digits with a large max_digits: the overflow check, not the digit limit, must stop it.
  std::uint64_t v = 0;
  EXPECT_FALSE(parse_decimal("100000000000000000000000000000", 64, v));
  EXPECT_FALSE(parse_decimal("36893488147419103232", 64, v));  // 2^65: wraps to 0 if unchecked
}

}  // namespace
}  // namespace ringmta::smtp
