// Unit tests for core/smtp/address.hpp: the RFC 5321 4.1.2 path grammar (dot-string and quoted
// local parts, null and Postmaster paths, source routes, domains, address literals), RFC 6531
// UTF-8 and the RFC 5321 4.5.3.1 size limits. Hex escapes are split before hex-like letters.
#include "core/smtp/address.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace ringmta::smtp {
namespace {

struct Parsed {
  PathParse parse;
  Path path;
};

// The result's views point into `s`, which must outlive it.
Parsed parse_reverse(std::string_view s) {
  Parsed r;
  r.parse = parse_path(s, PathKind::reverse, r.path);
  return r;
}

Parsed parse_forward(std::string_view s) {
  Parsed r;
  r.parse = parse_path(s, PathKind::forward, r.path);
  return r;
}

// Joins labels of the given lengths with dots ("aaa.bbb..."); used to build exact-length domains.
std::string domain_of_labels(std::initializer_list<std::size_t> lengths) {
  std::string d;
  char fill = 'a';
  for (std::size_t n : lengths) {
    if (!d.empty()) d += '.';
    d.append(n, fill);
    fill = fill == 'z' ? 'a' : static_cast<char>(fill + 1);
  }
  return d;
}

// "Rejected as a bad local part or as junk in the path": both end up as 501 bad sender/recipient
// at the command layer, and the parser's split between the two is not part of its contract.
bool is_local_part_rejection(AddressError e) {
  return e == AddressError::local_part || e == AddressError::syntax;
}

// ---------------------------------------------------------------------------------------------
// Plain mailboxes and `consumed`

TEST(AddressPath, SimpleMailboxFillsLocalPartAndDomain) {
  const Parsed r = parse_forward("<user@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.parse.consumed, 18u);
  EXPECT_EQ(r.path.local_part, "user");
  EXPECT_EQ(r.path.domain, "example.org");
  EXPECT_FALSE(r.path.null);
  EXPECT_FALSE(r.path.postmaster);
  EXPECT_FALSE(r.path.non_ascii);
  EXPECT_FALSE(r.path.quoted);
}

TEST(AddressPath, ConsumedStopsAtTheClosingBracket) {
  const std::string_view line = "<user@example.org> SIZE=100 BODY=8BITMIME";
  const Parsed r = parse_reverse(line);
  ASSERT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.parse.consumed, 18u);
  EXPECT_EQ(line.substr(r.parse.consumed), " SIZE=100 BODY=8BITMIME");
}

TEST(AddressPath, ResultViewsPointIntoTheInput) {
  const std::string line = "<user@example.org>";
  const Parsed r = parse_forward(line);
  ASSERT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part.data(), line.data() + 1);
  EXPECT_EQ(r.path.domain.data(), line.data() + 6);
}

TEST(AddressPath, OutputIsResetOnEveryCall) {
  Path p;
  ASSERT_EQ(parse_path("<\"q\"@example.org>", PathKind::forward, p).error, AddressError::none);
  ASSERT_TRUE(p.quoted);
  const PathParse r = parse_path("<>", PathKind::reverse, p);
  EXPECT_EQ(r.error, AddressError::none);
  EXPECT_TRUE(p.null);
  EXPECT_FALSE(p.quoted);
  EXPECT_TRUE(p.local_part.empty());
  EXPECT_TRUE(p.domain.empty());
}

TEST(AddressPath, MissingOpeningBracketIsSyntax) {
  // RFC 5321 4.1.2: Path = "<" [ A-d-l ":" ] Mailbox ">".
  EXPECT_EQ(parse_forward("user@example.org").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward(" <user@example.org>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("").parse.consumed, 0u);
}

TEST(AddressPath, MissingClosingBracketIsSyntax) {
  EXPECT_EQ(parse_forward("<user@example.org").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_reverse("<").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("<user").parse.error, AddressError::syntax);
}

TEST(AddressPath, MailboxWithoutDomainIsSyntax) {
  // RFC 5321 4.1.2: Mailbox = Local-part "@" ( Domain / address-literal ).
  EXPECT_EQ(parse_forward("<user>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_reverse("<user>").parse.error, AddressError::syntax);
}

// ---------------------------------------------------------------------------------------------
// Dot-string local parts (RFC 5321 4.1.2: Dot-string = Atom *("." Atom))

TEST(AddressDotString, DottedLocalPartIsAccepted) {
  const Parsed r = parse_forward("<first.middle.last@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "first.middle.last");
  EXPECT_FALSE(r.path.quoted);
}

TEST(AddressDotString, EveryAtextSpecialIsAllowedUnquoted) {
  // RFC 5321 4.1.2 Atom = 1*atext, atext from RFC 5322 3.2.3.
  const std::string_view line = "<!#$%&'*+-/=?^_`{|}~@example.org>";
  const Parsed r = parse_forward(line);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "!#$%&'*+-/=?^_`{|}~");
  EXPECT_EQ(r.parse.consumed, line.size());
}

TEST(AddressDotString, EmptyAtomsAreRejectedAsLocalPart) {
  // RFC 5321 4.1.2: every Atom has at least one atext, so no leading, trailing or double dot.
  EXPECT_EQ(parse_forward("<.user@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<user.@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<us..er@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<.@example.org>").parse.error, AddressError::local_part);
}

TEST(AddressDotString, NonAtextCharactersAreRejected) {
  // Specials (RFC 5322 3.2.3) need the quoted form.
  for (std::string_view line : {"<a b@example.org>", "<a,b@example.org>", "<a(b)@example.org>",
                                "<a\"b@example.org>", "<a\\b@example.org>", "<a:b@example.org>",
                                "<a;b@example.org>", "<a[b]@example.org>", "<a\tb@example.org>"}) {
    const Parsed r = parse_forward(line);
    EXPECT_TRUE(is_local_part_rejection(r.parse.error))
        << line << " -> " << static_cast<int>(r.parse.error);
  }
}

TEST(AddressDotString, EmptyLocalPartIsRejected) {
  // "<@example.org>" reads as a source route without its ':' and mailbox.
  EXPECT_EQ(parse_forward("<@example.org>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_reverse("<@example.org>").parse.error, AddressError::syntax);
}

// ---------------------------------------------------------------------------------------------
// Quoted local parts (RFC 5321 4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE)

TEST(AddressQuoted, QuotedLocalPartKeepsItsQuotes) {
  const std::string_view line = "<\"john doe\"@example.org>";
  const Parsed r = parse_forward(line);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "\"john doe\"");
  EXPECT_EQ(r.path.domain, "example.org");
  EXPECT_TRUE(r.path.quoted);
  EXPECT_EQ(r.parse.consumed, line.size());
}

TEST(AddressQuoted, EscapedQuoteAndBackslashAreAccepted) {
  // RFC 5321 4.1.2: quoted-pairSMTP = %d92 %d32-126.
  const Parsed a = parse_forward("<\"a\\\"b\"@example.org>");
  EXPECT_EQ(a.parse.error, AddressError::none);
  EXPECT_EQ(a.path.local_part, "\"a\\\"b\"");
  const Parsed b = parse_forward("<\"a\\\\\"@example.org>");
  EXPECT_EQ(b.parse.error, AddressError::none);
  EXPECT_EQ(b.path.local_part, "\"a\\\\\"");
  const Parsed c = parse_forward("<\"\\ \"@example.org>");  // escaped space (%d32)
  EXPECT_EQ(c.parse.error, AddressError::none);
  EXPECT_EQ(c.path.local_part, "\"\\ \"");
}

TEST(AddressQuoted, ClosingBracketInsideQuotesDoesNotEndThePath) {
  const std::string_view line = "<\"a>b\"@example.org> NOTIFY=NEVER";
  const Parsed r = parse_forward(line);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "\"a>b\"");
  EXPECT_EQ(r.path.domain, "example.org");
  EXPECT_EQ(r.parse.consumed, 19u);
  EXPECT_EQ(line.substr(r.parse.consumed), " NOTIFY=NEVER");
}

TEST(AddressQuoted, SpecialsInsideQuotesAreAccepted) {
  const Parsed r = parse_forward("<\"a@b,c:d;e<f>[g]\"@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "\"a@b,c:d;e<f>[g]\"");
}

TEST(AddressQuoted, EmptyQuotedStringIsAccepted) {
  // RFC 5321 4.1.2: *QcontentSMTP, so "" is grammatical.
  const Parsed r = parse_forward("<\"\"@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "\"\"");
  EXPECT_TRUE(r.path.quoted);
}

TEST(AddressQuoted, UnterminatedQuoteIsLocalPartError) {
  EXPECT_EQ(parse_forward("<\"abc@example.org>").parse.error, AddressError::local_part);
  // The backslash escapes the would-be closing quote.
  EXPECT_EQ(parse_forward("<\"abc\\\"@example.org>").parse.error, AddressError::local_part);
}

TEST(AddressQuoted, ControlCharactersAreRejectedRawAndEscaped) {
  // RFC 5321 4.1.2: qtextSMTP = %d32-33 / %d35-91 / %d93-126 (no TAB, no controls);
  // quoted-pairSMTP = %d92 %d32-126 (no escaped controls either).
  EXPECT_EQ(parse_forward("<\"a\tb\"@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<\"a\x01" "b\"@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<\"a\x7F" "b\"@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<\"a\\\x01\"@example.org>").parse.error, AddressError::local_part);
  EXPECT_EQ(parse_forward("<\"a\\\t\"@example.org>").parse.error, AddressError::local_part);
}

TEST(AddressQuoted, TextAfterClosingQuoteMustBeAt) {
  // Local-part = Dot-string / Quoted-string: no mixing of the two.
  EXPECT_EQ(parse_forward("<\"a\"b@example.org>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("<\"a\".b@example.org>").parse.error, AddressError::syntax);
}

// ---------------------------------------------------------------------------------------------
// Null reverse path (RFC 5321 4.1.1.2: Reverse-path = Path / "<>")

TEST(AddressNullPath, NullReversePathIsAccepted) {
  const Parsed r = parse_reverse("<>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.null);
  EXPECT_EQ(r.parse.consumed, 2u);
  EXPECT_TRUE(r.path.local_part.empty());
  EXPECT_TRUE(r.path.domain.empty());
}

TEST(AddressNullPath, NullReversePathFollowedByParameters) {
  const Parsed r = parse_reverse("<> SIZE=0");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.null);
  EXPECT_EQ(r.parse.consumed, 2u);
}

TEST(AddressNullPath, NullPathIsNotAForwardPath) {
  // RFC 5321 4.1.1.3: Forward-path = Path; "<>" is only a Reverse-path.
  const Parsed r = parse_forward("<>");
  EXPECT_EQ(r.parse.error, AddressError::local_part);
  EXPECT_FALSE(r.path.null);
}

TEST(AddressNullPath, SpaceInsideBracketsIsNotNull) {
  const Parsed r = parse_reverse("< >");
  EXPECT_EQ(r.parse.error, AddressError::local_part);
  EXPECT_FALSE(r.path.null);
}

// ---------------------------------------------------------------------------------------------
// <Postmaster> (RFC 5321 4.1.1.3: "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
// Forward-path ), and 4.5.1: "Postmaster" is case-insensitive)

TEST(AddressPostmaster, BarePostmasterIsAForwardPath) {
  const Parsed r = parse_forward("<Postmaster>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.postmaster);
  EXPECT_EQ(r.path.local_part, "Postmaster");
  EXPECT_TRUE(r.path.domain.empty());
  EXPECT_EQ(r.parse.consumed, 12u);
}

TEST(AddressPostmaster, BarePostmasterIsCaseInsensitive) {
  for (std::string_view line : {"<postmaster>", "<POSTMASTER>", "<pOsTmAsTeR>"}) {
    const Parsed r = parse_forward(line);
    EXPECT_EQ(r.parse.error, AddressError::none) << line;
    EXPECT_TRUE(r.path.postmaster) << line;
    EXPECT_EQ(r.path.local_part, line.substr(1, 10)) << line;
    EXPECT_EQ(r.parse.consumed, 12u) << line;
  }
}

TEST(AddressPostmaster, BarePostmasterIsNotAReversePath) {
  const Parsed r = parse_reverse("<Postmaster>");
  EXPECT_EQ(r.parse.error, AddressError::syntax);
  EXPECT_FALSE(r.path.postmaster);
}

TEST(AddressPostmaster, PostmasterWithDomainIsAnOrdinaryMailbox) {
  const Parsed r = parse_forward("<Postmaster@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_FALSE(r.path.postmaster);
  EXPECT_EQ(r.path.local_part, "Postmaster");
  EXPECT_EQ(r.path.domain, "example.org");
}

TEST(AddressPostmaster, OtherBareLocalPartsAreNotPostmaster) {
  EXPECT_EQ(parse_forward("<postmasters>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("<postmaste>").parse.error, AddressError::syntax);
  EXPECT_EQ(parse_forward("<post.master>").parse.error, AddressError::syntax);
}

TEST(AddressPostmaster, QuotedPostmasterWithoutDomainIsRejected) {
  // The special case is the literal "<Postmaster>", not a quoted string.
  const Parsed r = parse_forward("<\"Postmaster\">");
  EXPECT_EQ(r.parse.error, AddressError::syntax);
  EXPECT_FALSE(r.path.postmaster);
}

TEST(AddressPostmaster, SourceRouteBeforeBarePostmasterIsRejected) {
  // RFC 5321 4.1.1.3: "<Postmaster>" is a literal alternative with no A-d-l; with a source route
  // the text is a Path, whose Mailbox needs "@" Domain (4.1.2).
  const Parsed r = parse_forward("<@relay.example:Postmaster>");
  EXPECT_EQ(r.parse.error, AddressError::syntax);
  EXPECT_FALSE(r.path.postmaster);
}

// ---------------------------------------------------------------------------------------------
// Source routes (RFC 5321 4.1.2 A-d-l; 4.1.1.3 and appendix C: accept and ignore)

TEST(AddressSourceRoute, SingleHopIsSkipped) {
  const std::string_view line = "<@relay.example:user@example.org>";
  const Parsed r = parse_forward(line);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part, "user");
  EXPECT_EQ(r.path.domain, "example.org");
  EXPECT_EQ(r.parse.consumed, line.size());
}

TEST(AddressSourceRoute, SeveralHopsAreSkippedOnEitherPathKind) {
  const std::string_view line = "<@a.example,@b.example,@c.example:user@example.org> SIZE=1";
  for (PathKind kind : {PathKind::reverse, PathKind::forward}) {
    Path p;
    const PathParse r = parse_path(line, kind, p);
    EXPECT_EQ(r.error, AddressError::none);
    EXPECT_EQ(p.local_part, "user");
    EXPECT_EQ(p.domain, "example.org");
    EXPECT_EQ(r.consumed, line.size() - 7);
  }
}

TEST(AddressSourceRoute, MalformedRoutesAreSyntax) {
  // A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain.
  for (std::string_view line :
       {"<@:user@example.org>", "<@a.example,b.example:user@example.org>",
        "<@a.example,:user@example.org>", "<@a.example user@example.org>",
        "<@-bad.example:user@example.org>", "<@a..example:user@example.org>",
        "<@a.example>"}) {
    EXPECT_EQ(parse_forward(line).parse.error, AddressError::syntax) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// Domains (RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str])

TEST(AddressDomain, ValidDomains) {
  for (std::string_view d : {"example.org", "localhost", "a", "a.b.c.d.e", "1.example",
                             "123.456", "a-b.example", "a--b.example", "xn--bcher-kva.example",
                             "EXAMPLE.ORG", "a1-2b.c3"}) {
    EXPECT_TRUE(is_valid_domain(d, false)) << d;
  }
}

TEST(AddressDomain, InvalidDomains) {
  for (std::string_view d : {"", ".", "a.", ".a", "a..b", "-a.example", "a-.example",
                             "example.-org", "example.org-", "a_b.example", "a b.example",
                             "a@b.example", "[192.0.2.1]", "a.example.", "exa*mple.org"}) {
    EXPECT_FALSE(is_valid_domain(d, true)) << d;
  }
}

TEST(AddressDomain, LabelOf63OctetsIsAcceptedAnd64Rejected) {
  // RFC 1035 2.3.4: labels are 63 octets or less.
  EXPECT_TRUE(is_valid_domain(domain_of_labels({63, 3}), false));
  EXPECT_TRUE(is_valid_domain(domain_of_labels({3, 63}), false));
  EXPECT_FALSE(is_valid_domain(domain_of_labels({64, 3}), false));
  EXPECT_FALSE(is_valid_domain(domain_of_labels({3, 64}), false));
  EXPECT_FALSE(is_valid_domain(std::string(64, 'a'), false));
}

TEST(AddressDomain, TotalOf255OctetsIsAcceptedAnd256Rejected) {
  // RFC 5321 4.5.3.1.2: at most 255 octets.
  const std::string d255 = domain_of_labels({63, 63, 63, 63});
  ASSERT_EQ(d255.size(), 255u);
  EXPECT_TRUE(is_valid_domain(d255, false));
  const std::string d256 = domain_of_labels({63, 63, 63, 62, 1});
  ASSERT_EQ(d256.size(), 256u);
  EXPECT_FALSE(is_valid_domain(d256, false));
}

TEST(AddressDomain, ULabelsNeedAllowUtf8AndAreFlagged) {
  // RFC 6531 3.3: sub-domain =/ U-label.
  const std::string_view d = "m\xC3\xBCnchen.example";
  bool non_ascii = false;
  EXPECT_TRUE(is_valid_domain(d, true, &non_ascii));
  EXPECT_TRUE(non_ascii);
  EXPECT_FALSE(is_valid_domain(d, false));
}

TEST(AddressDomain, AsciiDomainIsNotFlaggedNonAscii) {
  bool non_ascii = true;
  EXPECT_TRUE(is_valid_domain("example.org", true, &non_ascii));
  EXPECT_FALSE(non_ascii);
}

TEST(AddressDomain, IllFormedUtf8DomainIsRejected) {
  EXPECT_FALSE(is_valid_domain("\xFF.example", true));
  EXPECT_FALSE(is_valid_domain("ex\xED\xA0\x80.example", true));  // surrogate
  EXPECT_FALSE(is_valid_domain("ex\xC3", true));                   // truncated
}

TEST(AddressDomain, BadDomainInPathIsDomainError) {
  for (std::string_view line : {"<user@>", "<user@-bad.example>", "<user@bad-.example>",
                                "<user@exa mple.org>", "<user@example.org.>",
                                "<user@example..org>", "<user@exa_mple.org>"}) {
    EXPECT_EQ(parse_forward(line).parse.error, AddressError::domain) << line;
  }
}

TEST(AddressDomain, LabelOf64OctetsInPathIsDomainError) {
  // RFC 1035 2.3.4 via RFC 5321 2.3.5: a 64-octet label makes the domain name invalid.
  const std::string line = "<user@" + domain_of_labels({64, 3}) + ">";
  EXPECT_EQ(parse_forward(line).parse.error, AddressError::domain);
  const std::string ok = "<user@" + domain_of_labels({63, 3}) + ">";
  EXPECT_EQ(parse_forward(ok).parse.error, AddressError::none);
}

TEST(AddressDomain, EhloDomainAcceptsDomainOrAddressLiteral) {
  // RFC 5321 4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ).
  EXPECT_TRUE(is_valid_ehlo_domain("mail.example.org"));
  EXPECT_TRUE(is_valid_ehlo_domain("[192.0.2.1]"));
  EXPECT_TRUE(is_valid_ehlo_domain("[IPv6:2001:db8::1]"));
  EXPECT_TRUE(is_valid_ehlo_domain("m\xC3\xBCnchen.example"));
  EXPECT_FALSE(is_valid_ehlo_domain(""));
  EXPECT_FALSE(is_valid_ehlo_domain("[1.2.3]"));
  EXPECT_FALSE(is_valid_ehlo_domain("192.0.2.1]"));
  EXPECT_FALSE(is_valid_ehlo_domain("-bad.example"));
}

// ---------------------------------------------------------------------------------------------
// Address literals (RFC 5321 4.1.3)

TEST(AddressLiteral, Ipv4LiteralsAreAccepted) {
  for (std::string_view s : {"[0.0.0.0]", "[192.0.2.1]", "[255.255.255.255]", "[1.2.3.4]",
                             "[001.002.003.004]"}) {
    EXPECT_TRUE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, InvalidIpv4LiteralsAreRejected) {
  // IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT representing 0-255.
  for (std::string_view s : {"[256.1.1.1]", "[1.2.3.256]", "[1.2.3]", "[1.2.3.4.5]",
                             "[1..2.3]", "[1.2.3.]", "[.1.2.3]", "[1234.1.1.1]", "[0001.1.1.1]",
                             "[-1.2.3.4]", "[1.2.3.a]", "[1.2.3.4 ]", "[ 1.2.3.4]", "[]",
                             "[1.2.3.4", "1.2.3.4]", "1.2.3.4"}) {
    EXPECT_FALSE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, Ipv6LiteralsAreAccepted) {
  for (std::string_view s :
       {"[IPv6:2001:db8::1]", "[IPv6:::1]", "[IPv6:::]", "[IPv6:2001:db8:0:0:0:0:0:1]",
        "[IPv6:2001:DB8::ABCD]", "[IPv6:fe80::1:2:3:4]", "[IPv6:1:2:3:4:5:6::]",
        "[IPv6:::1:2:3:4:5:6]",
        // IPv6v4-full and IPv6v4-comp: embedded IPv4.
        "[IPv6:::ffff:192.0.2.1]", "[IPv6:0:0:0:0:0:ffff:192.0.2.1]",
        "[IPv6:2001:db8:1:2:3:4:192.0.2.1]", "[IPv6:::192.0.2.1]", "[IPv6:1:2:3:4::192.0.2.1]"}) {
    EXPECT_TRUE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, Ipv6TagIsCaseInsensitive) {
  // RFC 5234 2.3: quoted strings in ABNF ("IPv6:") are case-insensitive.
  EXPECT_TRUE(is_valid_address_literal("[ipv6:::1]"));
  EXPECT_TRUE(is_valid_address_literal("[IPV6:::1]"));
}

TEST(AddressLiteral, InvalidIpv6LiteralsAreRejected) {
  for (std::string_view s :
       {"[IPv6:]", "[IPv6:1::2::3]", "[IPv6:1:2:3:4:5:6:7:8:9]", "[IPv6:1:2:3:4:5:6:7]",
        "[IPv6:12345::]", "[IPv6:g::1]", "[IPv6:::ffff:256.1.1.1]", "[IPv6:::ffff:1.2.3]",
        "[IPv6:::1%eth0]", "[IPv6: ::1]", "[IPv6:192.0.2.1]", "[IPv6::1]", "[IPv6:1:]",
        "[IPv6 ::1]", "[::1]"}) {
    EXPECT_FALSE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, Ipv6CompressedFormHasAtMostSixGroupsBesidesTheDoubleColon) {
  // RFC 5321 4.1.3 IPv6-comp: 'The "::" represents at least 2 16-bit groups of zeros. No more
  // than 6 groups in addition to the "::" may be present.'
  EXPECT_FALSE(is_valid_address_literal("[IPv6:1:2:3:4:5:6:7::]"));
  EXPECT_FALSE(is_valid_address_literal("[IPv6:::1:2:3:4:5:6:7]"));
  EXPECT_FALSE(is_valid_address_literal("[IPv6:1:2:3::4:5:6:7]"));
}

TEST(AddressLiteral, Ipv6v4CompressedFormHasAtMostFourGroupsBesidesTheDoubleColon) {
  // RFC 5321 4.1.3 IPv6v4-comp: 'No more than 4 groups in addition to the "::" and
  // IPv4-address-literal may be present.'
  EXPECT_FALSE(is_valid_address_literal("[IPv6:1:2:3:4:5::192.0.2.1]"));
  EXPECT_FALSE(is_valid_address_literal("[IPv6:::1:2:3:4:5:192.0.2.1]"));
}

TEST(AddressLiteral, GeneralAddressLiteralsAreAccepted) {
  // General-address-literal = Standardized-tag ":" 1*dcontent; dcontent = %d33-90 / %d94-126.
  for (std::string_view s : {"[x400:c=us;a=;p=example]", "[tag:a]", "[a-b:!~]", "[X1:{}^_`]"}) {
    EXPECT_TRUE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, InvalidGeneralAddressLiteralsAreRejected) {
  for (std::string_view s : {"[tag:]", "[:abc]", "[tag-:abc]", "[ta_g:abc]", "[tag:a b]",
                             "[tag:a[b]", "[tag:a\\b]", "[tag:a]b]", "[tag:a\x7F]", "[noColon]",
                             "[t\xC3\xA4g:abc]", "[tag:\xC3\xA4]"}) {
    EXPECT_FALSE(is_valid_address_literal(s)) << s;
  }
}

TEST(AddressLiteral, LiteralsInPaths) {
  const Parsed v4 = parse_forward("<user@[192.0.2.1]>");
  EXPECT_EQ(v4.parse.error, AddressError::none);
  EXPECT_EQ(v4.path.domain, "[192.0.2.1]");
  EXPECT_EQ(v4.parse.consumed, 18u);
  const Parsed v6 = parse_forward("<user@[IPv6:2001:db8::1]>");
  EXPECT_EQ(v6.parse.error, AddressError::none);
  EXPECT_EQ(v6.path.domain, "[IPv6:2001:db8::1]");
  EXPECT_FALSE(v6.path.non_ascii);
  EXPECT_EQ(parse_forward("<user@[256.1.1.1]>").parse.error, AddressError::domain);
  EXPECT_EQ(parse_forward("<user@[1.2.3]>").parse.error, AddressError::domain);
  EXPECT_EQ(parse_forward("<user@[192.0.2.1]x>").parse.error, AddressError::domain);
  EXPECT_EQ(parse_forward("<user@[IPv6:1::2::3]>").parse.error, AddressError::domain);
}

// ---------------------------------------------------------------------------------------------
// UTF-8 (RFC 6531 3.3: atext, qtextSMTP and sub-domain extended with UTF8-non-ascii)

TEST(AddressUtf8, Utf8LocalPartAndULabelAreFlagged) {
  // <用户@例子.广告>
  const std::string_view line =
      "<\xE7\x94\xA8\xE6\x88\xB7@\xE4\xBE\x8B\xE5\xAD\x90.\xE5\xB9\xBF\xE5\x91\x8A>";
  const Parsed r = parse_forward(line);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.non_ascii);
  EXPECT_EQ(r.path.local_part, "\xE7\x94\xA8\xE6\x88\xB7");
  EXPECT_EQ(r.path.domain, "\xE4\xBE\x8B\xE5\xAD\x90.\xE5\xB9\xBF\xE5\x91\x8A");
  EXPECT_EQ(r.parse.consumed, line.size());
}

TEST(AddressUtf8, Utf8OnlyInLocalPartIsFlagged) {
  const Parsed r = parse_reverse("<j\xC3\xB6rg@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.non_ascii);
  EXPECT_EQ(r.path.local_part, "j\xC3\xB6rg");
}

TEST(AddressUtf8, Utf8OnlyInDomainIsFlagged) {
  const Parsed r = parse_forward("<user@m\xC3\xBCnchen.example>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.non_ascii);
}

TEST(AddressUtf8, Utf8InQuotedLocalPartIsFlagged) {
  const Parsed r = parse_forward("<\"\xE7\x94\xA8 \xE6\x88\xB7\"@example.org>");
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_TRUE(r.path.non_ascii);
  EXPECT_TRUE(r.path.quoted);
}

TEST(AddressUtf8, AsciiPathIsNotFlagged) {
  EXPECT_FALSE(parse_forward("<user@example.org>").path.non_ascii);
  EXPECT_FALSE(parse_forward("<\"a b\"@[192.0.2.1]>").path.non_ascii);
}

TEST(AddressUtf8, IllFormedUtf8InLocalPartIsBadUtf8) {
  for (std::string_view line :
       {"<\xFF@example.org>", "<a\xC0\xAF@example.org>",       // invalid byte, overlong '/'
        "<a\xED\xA0\x80@example.org>",                          // surrogate U+D800
        "<a\xF4\x90\x80\x80@example.org>",                      // U+110000 > U+10FFFF
        "<a\xE2\x82@example.org>",                              // truncated 3-byte sequence
        "<a\x80@example.org>",                                  // lone continuation byte
        "<a.\xC3@example.org>"}) {                              // truncated after a dot
    EXPECT_EQ(parse_forward(line).parse.error, AddressError::bad_utf8) << line;
  }
}

TEST(AddressUtf8, IllFormedUtf8InQuotedLocalPartIsBadUtf8) {
  EXPECT_EQ(parse_forward("<\"a\xC0\xAF\"@example.org>").parse.error, AddressError::bad_utf8);
  EXPECT_EQ(parse_forward("<\"a\xFF\"@example.org>").parse.error, AddressError::bad_utf8);
}

TEST(AddressUtf8, IllFormedUtf8InDomainIsBadUtf8) {
  EXPECT_EQ(parse_forward("<user@\xFF.example>").parse.error, AddressError::bad_utf8);
  EXPECT_EQ(parse_forward("<user@ex\xED\xA0\x80.org>").parse.error, AddressError::bad_utf8);
  EXPECT_EQ(parse_forward("<user@ex\xC3>").parse.error, AddressError::bad_utf8);
  EXPECT_EQ(parse_forward("<user@[tag:\xFF]>").parse.error, AddressError::bad_utf8);
}

// ---------------------------------------------------------------------------------------------
// Size limits (RFC 5321 4.5.3.1)

TEST(AddressLimits, LocalPartOf64OctetsIsAcceptedAnd65TooLong) {
  // RFC 5321 4.5.3.1.1: local part at most 64 octets.
  const std::string ok = "<" + std::string(64, 'a') + "@example.org>";
  const Parsed r = parse_forward(ok);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.path.local_part.size(), 64u);
  const std::string bad = "<" + std::string(65, 'a') + "@example.org>";
  EXPECT_EQ(parse_forward(bad).parse.error, AddressError::too_long);
  EXPECT_EQ(parse_reverse(bad).parse.error, AddressError::too_long);
}

TEST(AddressLimits, LocalPartLimitCountsOctetsNotCharacters) {
  // 32 x U+00E9 is 64 octets; 33 is 66.
  std::string ok = "<";
  for (int i = 0; i < 32; ++i) ok += "\xC3\xA9";
  ok += "@example.org>";
  EXPECT_EQ(parse_forward(ok).parse.error, AddressError::none);
  std::string bad = "<";
  for (int i = 0; i < 33; ++i) bad += "\xC3\xA9";
  bad += "@example.org>";
  EXPECT_EQ(parse_forward(bad).parse.error, AddressError::too_long);
}

TEST(AddressLimits, PathOf256OctetsIsAcceptedAnd257TooLong) {
  // RFC 5321 4.5.3.1.3: a path is at most 256 octets including the punctuation.
  const std::string ok = "<" + std::string(64, 'u') + "@" + domain_of_labels({63, 63, 61}) + ">";
  ASSERT_EQ(ok.size(), 256u);
  const Parsed r = parse_forward(ok);
  EXPECT_EQ(r.parse.error, AddressError::none);
  EXPECT_EQ(r.parse.consumed, 256u);
  const std::string bad = "<" + std::string(64, 'u') + "@" + domain_of_labels({63, 63, 62}) + ">";
  ASSERT_EQ(bad.size(), 257u);
  EXPECT_EQ(parse_forward(bad).parse.error, AddressError::too_long);
  EXPECT_EQ(parse_reverse(bad).parse.error, AddressError::too_long);
}

TEST(AddressLimits, Domain255OctetsMakesThePathTooLong) {
  // A 255-octet domain is valid on its own (4.5.3.1.2) but no path can hold it with a local
  // part and brackets within 256 octets (4.5.3.1.3).
  const std::string line = "<u@" + domain_of_labels({63, 63, 63, 63}) + ">";
  EXPECT_EQ(parse_forward(line).parse.error, AddressError::too_long);
}

TEST(AddressLimits, DomainOver255OctetsIsTooLong) {
  // RFC 5321 4.5.3.1.2: the domain is at most 255 octets. A well-formed but longer domain is a
  // size-limit violation (and the path exceeds 4.5.3.1.3's 256 octets as well).
  const std::string line = "<u@" + domain_of_labels({63, 63, 63, 62, 1}) + ">";
  EXPECT_EQ(parse_forward(line).parse.error, AddressError::too_long);
}

}  // namespace
}  // namespace ringmta::smtp
