// Unit tests for core/smtp/esmtp_params.hpp: MAIL and RCPT parameters (RFC 5321 4.1.2
// esmtp-param; SIZE RFC 1870, BODY RFC 6152/3030, SMTPUTF8 RFC 6531, RET/ENVID/NOTIFY/ORCPT
// RFC 3461, AUTH RFC 4954, utf-8 ORCPT RFC 6533) and the RFC 3461 4 xtext check.
#include "core/smtp/esmtp_params.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmta::smtp {
namespace {

struct MailResult {
  ParamParse parse;
  MailParams params;
};

struct RcptResult {
  ParamParse parse;
  RcptParams params;
};

// Views in the results point into `s`, which must outlive them.
MailResult mail(std::string_view s) {
  MailResult r;
  r.parse = parse_mail_params(s, r.params);
  return r;
}

RcptResult rcpt(std::string_view s) {
  RcptResult r;
  r.parse = parse_rcpt_params(s, r.params);
  return r;
}

// ---------------------------------------------------------------------------------------------
// General syntax: " " param *(SP param), param = esmtp-keyword ["=" esmtp-value]
// (RFC 5321 4.1.2)

TEST(EsmtpParamsSyntax, EmptyListIsValidAndLeavesDefaults) {
  const MailResult m = mail("");
  EXPECT_EQ(m.parse.error, ParamError::none);
  EXPECT_EQ(m.params, MailParams{});
  const RcptResult r = rcpt("");
  EXPECT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params, RcptParams{});
}

TEST(EsmtpParamsSyntax, OutputIsResetOnEveryCall) {
  MailParams m;
  ASSERT_EQ(parse_mail_params(" SIZE=10 SMTPUTF8", m).error, ParamError::none);
  ASSERT_TRUE(m.has_size);
  EXPECT_EQ(parse_mail_params("", m).error, ParamError::none);
  EXPECT_EQ(m, MailParams{});
  RcptParams r;
  ASSERT_EQ(parse_rcpt_params(" NOTIFY=NEVER", r).error, ParamError::none);
  EXPECT_EQ(parse_rcpt_params("", r).error, ParamError::none);
  EXPECT_EQ(r, RcptParams{});
}

TEST(EsmtpParamsSyntax, MissingLeadingSpaceIsSyntax) {
  EXPECT_EQ(mail("SIZE=10").parse.error, ParamError::syntax);
  EXPECT_EQ(rcpt("NOTIFY=NEVER").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, DoubleSpacesAreSyntax) {
  // RFC 5321 4.1.2: Mail-parameters = esmtp-param *(SP esmtp-param): exactly one SP.
  EXPECT_EQ(mail("  SIZE=10").parse.error, ParamError::syntax);
  EXPECT_EQ(mail(" SIZE=10  BODY=7BIT").parse.error, ParamError::syntax);
  EXPECT_EQ(rcpt(" NOTIFY=NEVER  ORCPT=rfc822;a@b").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, TrailingSpaceIsSyntax) {
  EXPECT_EQ(mail(" ").parse.error, ParamError::syntax);
  EXPECT_EQ(mail(" SIZE=10 ").parse.error, ParamError::syntax);
  EXPECT_EQ(rcpt(" NOTIFY=NEVER ").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, TabIsNotASeparator) {
  EXPECT_EQ(mail("\tSIZE=10").parse.error, ParamError::syntax);
  EXPECT_EQ(mail(" SIZE=10\tBODY=7BIT").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, BadKeywordIsSyntaxAndNamesTheKeyword) {
  // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
  const MailResult dash = mail(" -X=1");
  EXPECT_EQ(dash.parse.error, ParamError::syntax);
  EXPECT_EQ(dash.parse.keyword, "-X");
  const MailResult underscore = mail(" X_Y=1");
  EXPECT_EQ(underscore.parse.error, ParamError::syntax);
  EXPECT_EQ(underscore.parse.keyword, "X_Y");
  const MailResult empty = mail(" =1");
  EXPECT_EQ(empty.parse.error, ParamError::syntax);
  EXPECT_EQ(empty.parse.keyword, "");
  EXPECT_EQ(mail(" S\xC3\xA9ZE=1").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, EmptyValueAfterEqualsIsSyntax) {
  // esmtp-value = 1*(%d33-60 / %d62-126): "KEY=" has no value.
  const MailResult m = mail(" ENVID=");
  EXPECT_EQ(m.parse.error, ParamError::syntax);
  EXPECT_EQ(m.parse.keyword, "ENVID");
  EXPECT_EQ(rcpt(" NOTIFY=").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, EqualsOrControlInValueIsSyntax) {
  // esmtp-value excludes "=" (%d61) and controls.
  const MailResult eq = mail(" SIZE=1=2");
  EXPECT_EQ(eq.parse.error, ParamError::syntax);
  EXPECT_EQ(eq.parse.keyword, "SIZE");
  EXPECT_EQ(mail(" ENVID=a\x01" "b").parse.error, ParamError::syntax);
  EXPECT_EQ(mail(" ENVID=a\x7F" "b").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, IllFormedUtf8InValueIsSyntax) {
  // RFC 6531 3.3 extends esmtp-value with UTF8-non-ascii, which must be well formed.
  EXPECT_EQ(mail(" FOO=a\xFF").parse.error, ParamError::syntax);
  EXPECT_EQ(rcpt(" ORCPT=utf-8;a\xC0\xAF@b").parse.error, ParamError::syntax);
}

TEST(EsmtpParamsSyntax, UnknownKeywordIsUnknownAndNamesIt) {
  // RFC 5321 4.1.1.11: an unrecognised parameter gets 555.
  const MailResult m = mail(" SIZE=10 XFOO=bar");
  EXPECT_EQ(m.parse.error, ParamError::unknown);
  EXPECT_EQ(m.parse.keyword, "XFOO");
  const MailResult novalue = mail(" XFOO");
  EXPECT_EQ(novalue.parse.error, ParamError::unknown);
  EXPECT_EQ(novalue.parse.keyword, "XFOO");
  const RcptResult r = rcpt(" X-BAR=1");
  EXPECT_EQ(r.parse.error, ParamError::unknown);
  EXPECT_EQ(r.parse.keyword, "X-BAR");
}

TEST(EsmtpParamsSyntax, MailKeywordsAreUnknownOnRcptAndViceVersa) {
  for (std::string_view s : {" SIZE=1", " BODY=7BIT", " SMTPUTF8", " RET=FULL", " ENVID=x",
                             " AUTH=<>"}) {
    EXPECT_EQ(rcpt(s).parse.error, ParamError::unknown) << s;
  }
  for (std::string_view s : {" NOTIFY=NEVER", " ORCPT=rfc822;a@b"}) {
    EXPECT_EQ(mail(s).parse.error, ParamError::unknown) << s;
  }
}

TEST(EsmtpParamsSyntax, KeywordsAreCaseInsensitive) {
  // RFC 5321 2.4: verbs and extension keywords are not case sensitive.
  const MailResult m = mail(" size=10 Body=8bitmime smtpUTF8 ret=hdrs envid=abc auth=<>");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_TRUE(m.params.has_size);
  EXPECT_EQ(m.params.size, 10u);
  EXPECT_EQ(m.params.body, BodyType::eight_bit_mime);
  EXPECT_TRUE(m.params.smtputf8);
  EXPECT_EQ(m.params.ret, DsnRet::hdrs);
  EXPECT_EQ(m.params.envid, "abc");
  EXPECT_EQ(m.params.auth, "<>");
  const RcptResult r = rcpt(" notify=success,Delay orcpt=RFC822;a@b");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.notify, kNotifySuccess | kNotifyDelay);
  EXPECT_EQ(r.params.orcpt_type, "RFC822");
}

TEST(EsmtpParamsSyntax, ErrorStopsAtTheFirstBadParameter) {
  const MailResult m = mail(" XFOO=1 SIZE=abc");
  EXPECT_EQ(m.parse.error, ParamError::unknown);
  EXPECT_EQ(m.parse.keyword, "XFOO");
}

// ---------------------------------------------------------------------------------------------
// SIZE (RFC 1870 3: size-value ::= 1*20DIGIT)

TEST(EsmtpParamsSize, ParsesValue) {
  const MailResult m = mail(" SIZE=1048576");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_TRUE(m.params.has_size);
  EXPECT_EQ(m.params.size, 1048576u);
}

TEST(EsmtpParamsSize, ZeroIsAValidSize) {
  const MailResult m = mail(" SIZE=0");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_TRUE(m.params.has_size);
  EXPECT_EQ(m.params.size, 0u);
}

TEST(EsmtpParamsSize, AbsentSizeLeavesHasSizeFalse) {
  const MailResult m = mail(" BODY=7BIT");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_FALSE(m.params.has_size);
}

TEST(EsmtpParamsSize, TwentyDigitsUpToUint64MaxAreAccepted) {
  const MailResult m = mail(" SIZE=18446744073709551615");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_EQ(m.params.size, UINT64_MAX);
  const MailResult zeros = mail(" SIZE=00000000000000000042");
  ASSERT_EQ(zeros.parse.error, ParamError::none);
  EXPECT_EQ(zeros.params.size, 42u);
}

TEST(EsmtpParamsSize, TwentyOneDigitsIsBadValue) {
  const MailResult m = mail(" SIZE=000000000000000000001");
  EXPECT_EQ(m.parse.error, ParamError::bad_value);
  EXPECT_EQ(m.parse.keyword, "SIZE");
}

TEST(EsmtpParamsSize, OverflowingValueIsBadValue) {
  EXPECT_EQ(mail(" SIZE=18446744073709551616").parse.error, ParamError::bad_value);
  EXPECT_EQ(mail(" SIZE=99999999999999999999").parse.error, ParamError::bad_value);
}

TEST(EsmtpParamsSize, NonNumericOrMissingValueIsBadValue) {
  for (std::string_view s : {" SIZE", " SIZE=abc", " SIZE=-1", " SIZE=+1", " SIZE=1k",
                             " SIZE=1.5"}) {
    const MailResult m = mail(s);
    EXPECT_EQ(m.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(m.parse.keyword, "SIZE") << s;
    EXPECT_FALSE(m.params.has_size) << s;
  }
}

TEST(EsmtpParamsSize, RepeatedSizeIsDuplicate) {
  const MailResult m = mail(" SIZE=1 size=2");
  EXPECT_EQ(m.parse.error, ParamError::duplicate);
  EXPECT_EQ(m.parse.keyword, "size");
}

// ---------------------------------------------------------------------------------------------
// BODY (RFC 6152 2: BODY=7BIT / 8BITMIME; RFC 3030 3: BINARYMIME)

TEST(EsmtpParamsBody, EachBodyTypeIsRecognised) {
  EXPECT_EQ(mail(" BODY=7BIT").params.body, BodyType::seven_bit);
  EXPECT_EQ(mail(" BODY=8BITMIME").params.body, BodyType::eight_bit_mime);
  EXPECT_EQ(mail(" BODY=BINARYMIME").params.body, BodyType::binary_mime);
  EXPECT_EQ(mail(" BODY=binarymime").params.body, BodyType::binary_mime);
  EXPECT_EQ(mail("").params.body, BodyType::unspecified);
}

TEST(EsmtpParamsBody, UnknownOrMissingBodyTypeIsBadValue) {
  for (std::string_view s : {" BODY", " BODY=8BIT", " BODY=BINARY", " BODY=7BITX",
                             " BODY=8BITMIMEX", " BODY=QUOTED-PRINTABLE"}) {
    const MailResult m = mail(s);
    EXPECT_EQ(m.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(m.parse.keyword, "BODY") << s;
  }
}

TEST(EsmtpParamsBody, RepeatedBodyIsDuplicateEvenWithTheSameValue) {
  EXPECT_EQ(mail(" BODY=7BIT BODY=7BIT").parse.error, ParamError::duplicate);
  EXPECT_EQ(mail(" BODY=7BIT BODY=8BITMIME").parse.error, ParamError::duplicate);
}

// ---------------------------------------------------------------------------------------------
// SMTPUTF8 (RFC 6531 3.4: the parameter has no value)

TEST(EsmtpParamsSmtputf8, FlagWithoutValueIsAccepted) {
  const MailResult m = mail(" SMTPUTF8");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_TRUE(m.params.smtputf8);
  EXPECT_FALSE(mail("").params.smtputf8);
}

TEST(EsmtpParamsSmtputf8, AnyValueIsBadValue) {
  for (std::string_view s : {" SMTPUTF8=yes", " SMTPUTF8=1", " SMTPUTF8=SMTPUTF8"}) {
    const MailResult m = mail(s);
    EXPECT_EQ(m.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(m.parse.keyword, "SMTPUTF8") << s;
  }
}

TEST(EsmtpParamsSmtputf8, RepeatedFlagIsDuplicate) {
  EXPECT_EQ(mail(" SMTPUTF8 SMTPUTF8").parse.error, ParamError::duplicate);
}

// ---------------------------------------------------------------------------------------------
// RET (RFC 3461 4.3: RET=FULL / HDRS)

TEST(EsmtpParamsRet, FullAndHdrsAreRecognised) {
  EXPECT_EQ(mail(" RET=FULL").params.ret, DsnRet::full);
  EXPECT_EQ(mail(" RET=HDRS").params.ret, DsnRet::hdrs);
  EXPECT_EQ(mail(" RET=full").params.ret, DsnRet::full);
  EXPECT_EQ(mail("").params.ret, DsnRet::unspecified);
}

TEST(EsmtpParamsRet, OtherValuesAreBadValue) {
  for (std::string_view s : {" RET", " RET=HEADERS", " RET=NONE", " RET=FULLX"}) {
    EXPECT_EQ(mail(s).parse.error, ParamError::bad_value) << s;
  }
}

TEST(EsmtpParamsRet, RepeatedRetIsDuplicate) {
  EXPECT_EQ(mail(" RET=FULL RET=HDRS").parse.error, ParamError::duplicate);
}

// ---------------------------------------------------------------------------------------------
// ENVID (RFC 3461 4.4: ENVID=xtext, at most 100 characters)

TEST(EsmtpParamsEnvid, XtextValueIsKeptAsReceived) {
  const MailResult m = mail(" ENVID=QQ314159+2B+3Dx");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_EQ(m.params.envid, "QQ314159+2B+3Dx");
}

TEST(EsmtpParamsEnvid, HundredCharactersAcceptedAndHundredOneRejected) {
  const std::string ok = " ENVID=" + std::string(100, 'e');
  const MailResult m = mail(ok);
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_EQ(m.params.envid.size(), 100u);
  const std::string bad = " ENVID=" + std::string(101, 'e');
  const MailResult b = mail(bad);
  EXPECT_EQ(b.parse.error, ParamError::bad_value);
  EXPECT_EQ(b.parse.keyword, "ENVID");
}

TEST(EsmtpParamsEnvid, InvalidXtextIsBadValue) {
  // RFC 3461 4: hexchar is "+" followed by two upper-case hex digits.
  for (std::string_view s : {" ENVID", " ENVID=a+", " ENVID=a+4", " ENVID=a+2b", " ENVID=+G0",
                             " ENVID=caf\xC3\xA9"}) {
    EXPECT_EQ(mail(s).parse.error, ParamError::bad_value) << s;
  }
}

TEST(EsmtpParamsEnvid, RepeatedEnvidIsDuplicate) {
  EXPECT_EQ(mail(" ENVID=a ENVID=b").parse.error, ParamError::duplicate);
}

// ---------------------------------------------------------------------------------------------
// AUTH (RFC 4954 5: AUTH=xtext mailbox / "<>")

TEST(EsmtpParamsAuth, MailboxAndEmptyIdentityAreAccepted) {
  const MailResult a = mail(" AUTH=e+3Dmc2@example.com");
  ASSERT_EQ(a.parse.error, ParamError::none);
  EXPECT_EQ(a.params.auth, "e+3Dmc2@example.com");
  const MailResult b = mail(" AUTH=<>");
  ASSERT_EQ(b.parse.error, ParamError::none);
  EXPECT_EQ(b.params.auth, "<>");
}

TEST(EsmtpParamsAuth, InvalidXtextOrMissingValueIsBadValue) {
  for (std::string_view s : {" AUTH", " AUTH=a+zz@example.com", " AUTH=a+@example.com",
                             " AUTH=j\xC3\xB6rg@example.com"}) {
    const MailResult m = mail(s);
    EXPECT_EQ(m.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(m.parse.keyword, "AUTH") << s;
  }
}

TEST(EsmtpParamsAuth, RepeatedAuthIsDuplicate) {
  EXPECT_EQ(mail(" AUTH=<> AUTH=a@b").parse.error, ParamError::duplicate);
}

TEST(EsmtpParamsMail, AllParametersTogether) {
  const MailResult m = mail(
      " SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=sender@example.org");
  ASSERT_EQ(m.parse.error, ParamError::none);
  EXPECT_TRUE(m.params.has_size);
  EXPECT_EQ(m.params.size, 12345u);
  EXPECT_EQ(m.params.body, BodyType::eight_bit_mime);
  EXPECT_TRUE(m.params.smtputf8);
  EXPECT_EQ(m.params.ret, DsnRet::hdrs);
  EXPECT_EQ(m.params.envid, "QQ314159");
  EXPECT_EQ(m.params.auth, "sender@example.org");
  EXPECT_TRUE(m.parse.keyword.empty());
}

// ---------------------------------------------------------------------------------------------
// NOTIFY (RFC 3461 4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ))

TEST(EsmtpParamsNotify, NeverAlone) {
  const RcptResult r = rcpt(" NOTIFY=NEVER");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.notify, kNotifyNever);
}

TEST(EsmtpParamsNotify, EachFlagAlone) {
  EXPECT_EQ(rcpt(" NOTIFY=SUCCESS").params.notify, kNotifySuccess);
  EXPECT_EQ(rcpt(" NOTIFY=FAILURE").params.notify, kNotifyFailure);
  EXPECT_EQ(rcpt(" NOTIFY=DELAY").params.notify, kNotifyDelay);
  EXPECT_EQ(rcpt("").params.notify, 0);
}

TEST(EsmtpParamsNotify, CombinationsInAnyOrder) {
  EXPECT_EQ(rcpt(" NOTIFY=SUCCESS,FAILURE").params.notify, kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(rcpt(" NOTIFY=DELAY,SUCCESS").params.notify, kNotifySuccess | kNotifyDelay);
  EXPECT_EQ(rcpt(" NOTIFY=FAILURE,DELAY,SUCCESS").params.notify,
            kNotifySuccess | kNotifyFailure | kNotifyDelay);
  EXPECT_EQ(rcpt(" NOTIFY=failure,delay").params.notify, kNotifyFailure | kNotifyDelay);
}

TEST(EsmtpParamsNotify, NeverMixedWithOtherFlagsIsBadValue) {
  // RFC 3461 4.1: NEVER must appear by itself.
  for (std::string_view s : {" NOTIFY=NEVER,SUCCESS", " NOTIFY=SUCCESS,NEVER",
                             " NOTIFY=FAILURE,NEVER,DELAY", " NOTIFY=NEVER,NEVER"}) {
    const RcptResult r = rcpt(s);
    EXPECT_EQ(r.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(r.parse.keyword, "NOTIFY") << s;
  }
}

TEST(EsmtpParamsNotify, RepeatedFlagIsBadValue) {
  EXPECT_EQ(rcpt(" NOTIFY=SUCCESS,SUCCESS").parse.error, ParamError::bad_value);
  EXPECT_EQ(rcpt(" NOTIFY=FAILURE,DELAY,failure").parse.error, ParamError::bad_value);
}

TEST(EsmtpParamsNotify, EmptyItemsAndUnknownWordsAreBadValue) {
  for (std::string_view s : {" NOTIFY", " NOTIFY=SUCCESS,", " NOTIFY=,SUCCESS",
                             " NOTIFY=SUCCESS,,FAILURE", " NOTIFY=ALWAYS", " NOTIFY=SUCCES",
                             " NOTIFY=,"}) {
    EXPECT_EQ(rcpt(s).parse.error, ParamError::bad_value) << s;
  }
}

TEST(EsmtpParamsNotify, RepeatedNotifyParameterIsDuplicate) {
  const RcptResult r = rcpt(" NOTIFY=SUCCESS NOTIFY=FAILURE");
  EXPECT_EQ(r.parse.error, ParamError::duplicate);
  EXPECT_EQ(r.parse.keyword, "NOTIFY");
  EXPECT_EQ(rcpt(" NOTIFY=NEVER NOTIFY=NEVER").parse.error, ParamError::duplicate);
}

// ---------------------------------------------------------------------------------------------
// ORCPT (RFC 3461 4.2: ORCPT=addr-type ";" xtext; RFC 6533 3: the utf-8 addr-type)

TEST(EsmtpParamsOrcpt, Rfc822TypeWithXtextAddress) {
  const RcptResult r = rcpt(" ORCPT=rfc822;Bob+2Bext@example.org");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.orcpt_type, "rfc822");
  EXPECT_EQ(r.params.orcpt_value, "Bob+2Bext@example.org");
}

TEST(EsmtpParamsOrcpt, Rfc822AddressMustBeXtext) {
  for (std::string_view s : {" ORCPT=rfc822;a+b@example.org", " ORCPT=rfc822;a+2b@example.org",
                             " ORCPT=rfc822;j\xC3\xB6rg@example.org"}) {
    const RcptResult r = rcpt(s);
    EXPECT_EQ(r.parse.error, ParamError::bad_value) << s;
    EXPECT_EQ(r.parse.keyword, "ORCPT") << s;
  }
}

TEST(EsmtpParamsOrcpt, MissingPartsAreBadValue) {
  for (std::string_view s : {" ORCPT", " ORCPT=rfc822", " ORCPT=;a@example.org",
                             " ORCPT=rfc822;"}) {
    EXPECT_EQ(rcpt(s).parse.error, ParamError::bad_value) << s;
  }
}

TEST(EsmtpParamsOrcpt, AddrTypeMustBeAnAtom) {
  // RFC 3461 4.2: addr-type = atom (RFC 822), so no specials such as '@' or ','.
  EXPECT_EQ(rcpt(" ORCPT=rfc@822;a@example.org").parse.error, ParamError::bad_value);
  EXPECT_EQ(rcpt(" ORCPT=rfc,822;a@example.org").parse.error, ParamError::bad_value);
  const RcptResult x = rcpt(" ORCPT=x-other;a@example.org");
  ASSERT_EQ(x.parse.error, ParamError::none);
  EXPECT_EQ(x.params.orcpt_type, "x-other");
}

TEST(EsmtpParamsOrcpt, AddressOf500AcceptedAnd501Rejected) {
  // RFC 3461 4.2: the ORCPT address (xtext) is at most 500 characters.
  const std::string ok = " ORCPT=rfc822;" + std::string(500, 'a');
  const RcptResult r = rcpt(ok);
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.orcpt_value.size(), 500u);
  const std::string bad = " ORCPT=rfc822;" + std::string(501, 'a');
  EXPECT_EQ(rcpt(bad).parse.error, ParamError::bad_value);
}

TEST(EsmtpParamsOrcpt, Utf8TypeCarriesRawUtf8) {
  // RFC 6533 3: utf-8-addr-unitext = 1*(QUCHAR / EmbeddedUnicodeChar).
  const RcptResult r = rcpt(" ORCPT=utf-8;j\xC3\xB6rg@m\xC3\xBCnchen.example");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.orcpt_type, "utf-8");
  EXPECT_EQ(r.params.orcpt_value, "j\xC3\xB6rg@m\xC3\xBCnchen.example");
  const RcptResult upper = rcpt(" ORCPT=UTF-8;a@example.org");
  ASSERT_EQ(upper.parse.error, ParamError::none);
  EXPECT_EQ(upper.params.orcpt_type, "UTF-8");
}

TEST(EsmtpParamsOrcpt, Utf8TypeAcceptsEmbeddedUnicodeChar) {
  // RFC 6533 3: EmbeddedUnicodeChar = "\x{" HEXPOINT "}", e.g. \x{2B} for '+'.
  const RcptResult r = rcpt(" ORCPT=utf-8;a\\x{2B}b@example.org");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.orcpt_value, "a\\x{2B}b@example.org");
}

TEST(EsmtpParamsOrcpt, Utf8TypeRejectsRawPlus) {
  // RFC 6533 3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e, i.e. no '+' (0x2B), '=' or
  // '\'; a '+' in the address must be written \x{2B}.
  const RcptResult r = rcpt(" ORCPT=utf-8;a+b@example.org");
  EXPECT_EQ(r.parse.error, ParamError::bad_value);
  EXPECT_EQ(r.parse.keyword, "ORCPT");
}

TEST(EsmtpParamsOrcpt, Utf8TypeRejectsBackslashOutsideEmbeddedUnicodeChar) {
  // RFC 6533 3: '\' (0x5C) is not a QCHAR; it only appears as the start of "\x{...}".
  EXPECT_EQ(rcpt(" ORCPT=utf-8;a\\b@example.org").parse.error, ParamError::bad_value);
}

TEST(EsmtpParamsOrcpt, RepeatedOrcptIsDuplicate) {
  const RcptResult r = rcpt(" ORCPT=rfc822;a@b ORCPT=rfc822;c@d");
  EXPECT_EQ(r.parse.error, ParamError::duplicate);
  EXPECT_EQ(r.parse.keyword, "ORCPT");
}

TEST(EsmtpParamsRcpt, NotifyAndOrcptTogether) {
  const RcptResult r = rcpt(" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@example.org");
  ASSERT_EQ(r.parse.error, ParamError::none);
  EXPECT_EQ(r.params.notify, kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(r.params.orcpt_type, "rfc822");
  EXPECT_EQ(r.params.orcpt_value, "user@example.org");
}

// ---------------------------------------------------------------------------------------------
// is_valid_xtext (RFC 3461 4: xtext = *( xchar / hexchar ))

TEST(EsmtpParamsXtext, PrintableAsciiExceptPlusAndEqualsIsXchar) {
  EXPECT_TRUE(is_valid_xtext(""));
  EXPECT_TRUE(is_valid_xtext("!"));
  EXPECT_TRUE(is_valid_xtext("~"));
  EXPECT_TRUE(is_valid_xtext("user@example.org"));
  EXPECT_TRUE(is_valid_xtext("<>()[]\\\"';:,."));
}

TEST(EsmtpParamsXtext, SpaceControlsEqualsAndNonAsciiAreNotXchar) {
  EXPECT_FALSE(is_valid_xtext(" "));
  EXPECT_FALSE(is_valid_xtext("a b"));
  EXPECT_FALSE(is_valid_xtext("a=b"));
  EXPECT_FALSE(is_valid_xtext("a\tb"));
  EXPECT_FALSE(is_valid_xtext("\x7F"));
  EXPECT_FALSE(is_valid_xtext(std::string_view("a\0b", 3)));
  EXPECT_FALSE(is_valid_xtext("caf\xC3\xA9"));
}

TEST(EsmtpParamsXtext, HexcharNeedsTwoUpperCaseHexDigits) {
  EXPECT_TRUE(is_valid_xtext("+2B"));
  EXPECT_TRUE(is_valid_xtext("+3D"));
  EXPECT_TRUE(is_valid_xtext("a+20b"));
  EXPECT_TRUE(is_valid_xtext("+00+FF"));
  EXPECT_TRUE(is_valid_xtext("x+2B"));   // hexchar ending exactly at the end of the text
  EXPECT_FALSE(is_valid_xtext("+"));
  EXPECT_FALSE(is_valid_xtext("+2"));
  EXPECT_FALSE(is_valid_xtext("a+2"));   // one digit short at the end
  EXPECT_FALSE(is_valid_xtext("+2b"));   // lower case
  EXPECT_FALSE(is_valid_xtext("+g0"));
  EXPECT_FALSE(is_valid_xtext("+G0"));
  EXPECT_FALSE(is_valid_xtext("++2B"));
  EXPECT_FALSE(is_valid_xtext("a+ 2"));
}

TEST(EsmtpParamsXtext, HexcharMayNotReachPastTheEndOfTheView) {
  // The view ends one digit into "+2B": what follows in memory must not complete it.
  const std::string_view buffer = "a+2B";
  EXPECT_FALSE(is_valid_xtext(buffer.substr(0, 3)));
  EXPECT_FALSE(is_valid_xtext(buffer.substr(0, 2)));
  EXPECT_TRUE(is_valid_xtext(buffer));
}

}  // namespace
}  // namespace ringmta::smtp
