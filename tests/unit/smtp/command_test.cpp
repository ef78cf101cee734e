// Unit tests for core/smtp/command.hpp: parse_command() for every verb (RFC 5321 4.1.1,
// RFC 3030 BDAT, RFC 3207 STARTTLS, RFC 4954 AUTH), the split between an unknown verb (500)
// and a known verb with bad arguments (501/555), and the encode_command() round trip.
#include "core/smtp/command.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/buf/out_buffer.hpp"
#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {
namespace {

// A readable dump of a Command for failure messages (no PrintTo: other test files in this
// binary may define one).
std::string describe(const Command& c) {
  std::string s = "{verb=" + std::string(verb_name(c.verb)) +
                  " error=" + std::to_string(static_cast<int>(c.error)) + " kw='" +
                  std::string(c.error_keyword) + "' arg='" + std::string(c.argument) +
                  "' initial='" + std::string(c.auth_initial) + "' local='" +
                  std::string(c.path.local_part) + "' domain='" + std::string(c.path.domain) +
                  "' null=" + std::to_string(c.path.null) +
                  " pm=" + std::to_string(c.path.postmaster) +
                  " chunk=" + std::to_string(c.chunk_size) + " last=" + std::to_string(c.last) +
                  "}";
  return s;
}

// Encodes c and returns the bytes (empty when encode_command refused).
std::string encode(const Command& c) {
  buf::OutBuffer out(4096);
  if (!encode_command(c, out)) return {};
  return std::string(out.view());
}

// ---------------------------------------------------------------------------------------------
// Verb recognition

struct VerbCase {
  std::string_view name;
  Verb verb;
};

constexpr VerbCase kAllVerbs[] = {
    {"HELO", Verb::helo}, {"EHLO", Verb::ehlo}, {"MAIL", Verb::mail},
    {"RCPT", Verb::rcpt}, {"DATA", Verb::data}, {"BDAT", Verb::bdat},
    {"RSET", Verb::rset}, {"NOOP", Verb::noop}, {"QUIT", Verb::quit},
    {"VRFY", Verb::vrfy}, {"HELP", Verb::help}, {"STARTTLS", Verb::starttls},
    {"AUTH", Verb::auth},
};

TEST(CommandVerb, VerbNameIsTheCanonicalUpperCaseName) {
  for (const VerbCase& v : kAllVerbs) EXPECT_EQ(verb_name(v.verb), v.name);
  EXPECT_EQ(verb_name(Verb::unknown), "unknown");
}

TEST(CommandVerb, PeekVerbIsCaseInsensitive) {
  // RFC 5321 2.4: verbs are not case sensitive.
  for (const VerbCase& v : kAllVerbs) {
    std::string lower(v.name);
    for (char& ch : lower) ch = to_lower(ch);
    std::string mixed(v.name);
    mixed[1] = to_lower(mixed[1]);
    EXPECT_EQ(peek_verb(v.name), v.verb) << v.name;
    EXPECT_EQ(peek_verb(lower), v.verb) << lower;
    EXPECT_EQ(peek_verb(mixed), v.verb) << mixed;
    EXPECT_EQ(peek_verb(std::string(v.name) + " arg"), v.verb) << v.name;
  }
}

TEST(CommandVerb, PeekVerbNeedsTheWholeWord) {
  EXPECT_EQ(peek_verb(""), Verb::unknown);
  EXPECT_EQ(peek_verb("MAI"), Verb::unknown);
  EXPECT_EQ(peek_verb("MAILX"), Verb::unknown);
  EXPECT_EQ(peek_verb("MAIL:FROM"), Verb::unknown);
  EXPECT_EQ(peek_verb(" MAIL FROM:<>"), Verb::unknown);
  EXPECT_EQ(peek_verb("START TLS"), Verb::unknown);
}

TEST(CommandVerb, UnknownVerbsAreUnknownVerb) {
  // RFC 5321 4.2.4: 500 for an unrecognised command.
  for (std::string_view line : {"", "XYZZY", "EXPN staff", "TURN", "MAILFROM:<a@example.org>",
                                " HELO example.org", "HELO\texample.org", "ELHO example.org",
                                "DATA\r", "QUIT\t"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::unknown) << line;
    EXPECT_EQ(c.error, CommandError::unknown_verb) << line;
    EXPECT_FALSE(c.ok());
  }
}

TEST(CommandVerb, KnownVerbWithBadArgumentsIsNotUnknownVerb) {
  // RFC 5321 4.2.2 "501 Syntax error in parameters or arguments", as opposed to 4.2.4's 500
  // for a command that is not recognised.
  for (std::string_view line : {"MAIL", "RCPT", "EHLO", "HELO", "VRFY", "BDAT", "AUTH",
                                "DATA now", "RSET x", "QUIT x", "STARTTLS x", "HELP "}) {
    const Command c = parse_command(line);
    EXPECT_NE(c.verb, Verb::unknown) << line;
    EXPECT_EQ(c.verb, peek_verb(line)) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandVerb, EveryVerbParsesInLowerCase) {
  for (std::string_view line : {"helo example.org", "ehlo example.org", "mail from:<>",
                                "rcpt to:<a@example.org>", "data", "bdat 1", "rset", "noop",
                                "quit", "vrfy user", "help", "starttls", "auth plain"}) {
    const Command c = parse_command(line);
    EXPECT_TRUE(c.ok()) << line << " " << describe(c);
    EXPECT_NE(c.verb, Verb::unknown) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// HELO / EHLO (RFC 5321 4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ),
// helo = "HELO" SP Domain)

TEST(CommandHelo, EhloTakesADomain) {
  const Command c = parse_command("EHLO mail.example.org");
  EXPECT_EQ(c.verb, Verb::ehlo);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.argument, "mail.example.org");
}

TEST(CommandHelo, EhloTakesAnAddressLiteral) {
  const Command v4 = parse_command("EHLO [192.0.2.1]");
  EXPECT_EQ(v4.error, CommandError::none);
  EXPECT_EQ(v4.argument, "[192.0.2.1]");
  const Command v6 = parse_command("EHLO [IPv6:2001:db8::1]");
  EXPECT_EQ(v6.error, CommandError::none);
  EXPECT_EQ(v6.argument, "[IPv6:2001:db8::1]");
}

TEST(CommandHelo, HeloTakesADomainButNoAddressLiteral) {
  const Command c = parse_command("HELO mail.example.org");
  EXPECT_EQ(c.verb, Verb::helo);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.argument, "mail.example.org");
  // RFC 5321 4.1.1.1: HELO's argument is a Domain only.
  const Command lit = parse_command("HELO [192.0.2.1]");
  EXPECT_EQ(lit.verb, Verb::helo);
  EXPECT_EQ(lit.error, CommandError::syntax);
}

TEST(CommandHelo, BadArgumentsAreSyntax) {
  for (std::string_view line :
       {"EHLO", "EHLO ", "EHLO  mail.example.org", "EHLO mail.example.org ", "EHLO bad_name",
        "EHLO -bad.example", "EHLO a b", "EHLO [192.0.2.256]", "EHLO [1.2.3]", "HELO",
        "HELO ", "HELO mail.example.org extra", "HELO exa..mple"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::syntax) << line;
    EXPECT_EQ(c.verb, peek_verb(line)) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// MAIL (RFC 5321 4.1.1.2: "MAIL FROM:" Reverse-path [SP Mail-parameters])

TEST(CommandMail, MailboxReversePath) {
  const Command c = parse_command("MAIL FROM:<user@example.org>");
  EXPECT_EQ(c.verb, Verb::mail);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.path.local_part, "user");
  EXPECT_EQ(c.path.domain, "example.org");
  EXPECT_FALSE(c.path.null);
  EXPECT_EQ(c.mail, MailParams{});
}

TEST(CommandMail, NullReversePath) {
  const Command c = parse_command("MAIL FROM:<>");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_TRUE(c.path.null);
}

TEST(CommandMail, FromKeywordIsCaseInsensitive) {
  for (std::string_view line : {"mail from:<user@example.org>", "Mail From:<user@example.org>",
                                "MAIL fRoM:<user@example.org>"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_EQ(c.path.local_part, "user") << line;
  }
}

TEST(CommandMail, NoSpaceAllowedAroundTheColon) {
  // RFC 5321 3.3: "spaces are not permitted on either side of the colon following FROM in the
  // MAIL command or TO in the RCPT command".
  for (std::string_view line : {"MAIL FROM: <user@example.org>", "MAIL FROM :<user@example.org>",
                                "MAIL FROM : <user@example.org>", "MAIL FROM: <>"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::mail) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandMail, MissingOrWrongFromIsSyntax) {
  for (std::string_view line : {"MAIL", "MAIL ", "MAIL  FROM:<>", "MAIL FROM:", "MAIL FROM",
                                "MAIL TO:<user@example.org>", "MAIL FROM:user@example.org",
                                "MAIL FROMX:<user@example.org>"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::mail) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandMail, MalformedReversePathIsBadSender) {
  // 501 5.1.7 (RFC 3463 X.1.7 bad sender's mailbox address syntax).
  for (std::string_view line :
       {"MAIL FROM:<user@example.org", "MAIL FROM:<bad..local@example.org>",
        "MAIL FROM:<user@-bad.example>", "MAIL FROM:<user@[256.1.1.1]>",
        "MAIL FROM:<Postmaster>", "MAIL FROM:<user>", "MAIL FROM:<\xFF@example.org>",
        "MAIL FROM:<\"unterminated@example.org>", "MAIL FROM:< >"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::mail) << line;
    EXPECT_EQ(c.error, CommandError::bad_sender) << line;
  }
}

TEST(CommandMail, OverlongAddressIsAddressTooLong) {
  // RFC 5321 4.5.3.1.9: "501 Path too long"; 4.5.3.1.1 (64) and 4.5.3.1.3 (256).
  const std::string local = "MAIL FROM:<" + std::string(65, 'a') + "@example.org>";
  EXPECT_EQ(parse_command(local).error, CommandError::address_too_long);
  const std::string path = "MAIL FROM:<" + std::string(64, 'a') + "@" + std::string(63, 'b') +
                           "." + std::string(63, 'c') + "." + std::string(63, 'd') + ">";
  EXPECT_EQ(parse_command(path).error, CommandError::address_too_long);
}

TEST(CommandMail, ParametersAreParsed) {
  const Command c = parse_command(
      "MAIL FROM:<user@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 "
      "AUTH=<>");
  ASSERT_EQ(c.error, CommandError::none) << describe(c);
  EXPECT_TRUE(c.mail.has_size);
  EXPECT_EQ(c.mail.size, 1000u);
  EXPECT_EQ(c.mail.body, BodyType::eight_bit_mime);
  EXPECT_TRUE(c.mail.smtputf8);
  EXPECT_EQ(c.mail.ret, DsnRet::hdrs);
  EXPECT_EQ(c.mail.envid, "QQ314159");
  EXPECT_EQ(c.mail.auth, "<>");
  EXPECT_EQ(c.rcpt, RcptParams{});
}

TEST(CommandMail, NullPathWithParameters) {
  const Command c = parse_command("MAIL FROM:<> SIZE=0 BODY=7BIT");
  ASSERT_EQ(c.error, CommandError::none);
  EXPECT_TRUE(c.path.null);
  EXPECT_EQ(c.mail.size, 0u);
  EXPECT_EQ(c.mail.body, BodyType::seven_bit);
}

TEST(CommandMail, UnknownParameterIsUnknownParameterWithKeyword) {
  // RFC 5321 4.1.1.11: 555 for an unrecognised MAIL/RCPT parameter.
  const std::string line = "MAIL FROM:<user@example.org> SIZE=10 XFOO=bar";
  const Command c = parse_command(line);
  EXPECT_EQ(c.error, CommandError::unknown_parameter);
  EXPECT_EQ(c.error_keyword, "XFOO");
  EXPECT_EQ(c.error_keyword.data(), line.data() + line.find("XFOO"));
  const Command rcpt_param = parse_command("MAIL FROM:<> NOTIFY=NEVER");
  EXPECT_EQ(rcpt_param.error, CommandError::unknown_parameter);
  EXPECT_EQ(rcpt_param.error_keyword, "NOTIFY");
}

TEST(CommandMail, BadOrDuplicateParameterIsBadParameterWithKeyword) {
  const Command bad = parse_command("MAIL FROM:<user@example.org> SIZE=abc");
  EXPECT_EQ(bad.error, CommandError::bad_parameter);
  EXPECT_EQ(bad.error_keyword, "SIZE");
  const Command dup = parse_command("MAIL FROM:<user@example.org> BODY=7BIT BODY=8BITMIME");
  EXPECT_EQ(dup.error, CommandError::bad_parameter);
  EXPECT_EQ(dup.error_keyword, "BODY");
  const Command utf8 = parse_command("MAIL FROM:<> SMTPUTF8=yes");
  EXPECT_EQ(utf8.error, CommandError::bad_parameter);
  EXPECT_EQ(utf8.error_keyword, "SMTPUTF8");
}

TEST(CommandMail, ParameterListSyntaxErrorsAreSyntax) {
  for (std::string_view line :
       {"MAIL FROM:<user@example.org> ", "MAIL FROM:<user@example.org>  SIZE=1",
        "MAIL FROM:<user@example.org>SIZE=1", "MAIL FROM:<user@example.org> SIZE=1 ",
        "MAIL FROM:<> SIZE=", "MAIL FROM:<> =1", "MAIL FROM:<>junk"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::mail) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandMail, SourceRouteIsAcceptedAndIgnored) {
  // RFC 5321 4.1.1.3 / appendix C: accept the source route, ignore it.
  const Command c = parse_command("MAIL FROM:<@relay.example,@b.example:user@example.org>");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.path.local_part, "user");
  EXPECT_EQ(c.path.domain, "example.org");
}

TEST(CommandMail, Utf8AddressIsFlaggedNonAscii) {
  const Command c = parse_command("MAIL FROM:<j\xC3\xB6rg@m\xC3\xBCnchen.example> SMTPUTF8");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_TRUE(c.path.non_ascii);
  EXPECT_TRUE(c.mail.smtputf8);
}

// ---------------------------------------------------------------------------------------------
// RCPT (RFC 5321 4.1.1.3: "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
// Forward-path ) [SP Rcpt-parameters])

TEST(CommandRcpt, ForwardPath) {
  const Command c = parse_command("RCPT TO:<user@example.org>");
  EXPECT_EQ(c.verb, Verb::rcpt);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.path.local_part, "user");
  EXPECT_EQ(c.path.domain, "example.org");
  EXPECT_EQ(c.rcpt, RcptParams{});
}

TEST(CommandRcpt, BarePostmasterAnyCase) {
  for (std::string_view line : {"RCPT TO:<Postmaster>", "rcpt to:<postmaster>",
                                "RCPT TO:<POSTMASTER>"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_TRUE(c.path.postmaster) << line;
    EXPECT_TRUE(c.path.domain.empty()) << line;
  }
}

TEST(CommandRcpt, NullPathIsBadRecipient) {
  // RFC 5321 4.1.1.3: the forward path cannot be "<>".
  const Command c = parse_command("RCPT TO:<>");
  EXPECT_EQ(c.verb, Verb::rcpt);
  EXPECT_EQ(c.error, CommandError::bad_recipient);
}

TEST(CommandRcpt, MalformedForwardPathIsBadRecipient) {
  for (std::string_view line : {"RCPT TO:<user@example.org", "RCPT TO:<user>",
                                "RCPT TO:<user@exa..mple>", "RCPT TO:<.user@example.org>",
                                "RCPT TO:<user@[1.2.3]>", "RCPT TO:<a@\xC0\xAF>"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::rcpt) << line;
    EXPECT_EQ(c.error, CommandError::bad_recipient) << line;
  }
}

TEST(CommandRcpt, NoSpaceAroundColonAndRightKeyword) {
  // RFC 5321 3.3: no spaces on either side of the colon after TO.
  for (std::string_view line : {"RCPT TO: <user@example.org>", "RCPT TO :<user@example.org>",
                                "RCPT FROM:<user@example.org>", "RCPT", "RCPT ",
                                "RCPT TO:user@example.org", "RCPT TO:"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::rcpt) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandRcpt, OverlongAddressIsAddressTooLong) {
  const std::string line = "RCPT TO:<" + std::string(65, 'a') + "@example.org>";
  EXPECT_EQ(parse_command(line).error, CommandError::address_too_long);
}

TEST(CommandRcpt, DsnParameters) {
  const Command c = parse_command(
      "RCPT TO:<\"a>b\"@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@example.org");
  ASSERT_EQ(c.error, CommandError::none) << describe(c);
  EXPECT_EQ(c.path.local_part, "\"a>b\"");
  EXPECT_EQ(c.rcpt.notify, kNotifySuccess | kNotifyDelay);
  EXPECT_EQ(c.rcpt.orcpt_type, "rfc822");
  EXPECT_EQ(c.rcpt.orcpt_value, "a@example.org");
  EXPECT_EQ(c.mail, MailParams{});
}

TEST(CommandRcpt, ParameterErrors) {
  const Command unknown = parse_command("RCPT TO:<user@example.org> SIZE=10");
  EXPECT_EQ(unknown.error, CommandError::unknown_parameter);
  EXPECT_EQ(unknown.error_keyword, "SIZE");
  const Command bad = parse_command("RCPT TO:<user@example.org> NOTIFY=NEVER,SUCCESS");
  EXPECT_EQ(bad.error, CommandError::bad_parameter);
  EXPECT_EQ(bad.error_keyword, "NOTIFY");
  const Command syntax = parse_command("RCPT TO:<user@example.org> NOTIFY=NEVER ");
  EXPECT_EQ(syntax.error, CommandError::syntax);
}

// ---------------------------------------------------------------------------------------------
// DATA, RSET, QUIT, STARTTLS take no argument (RFC 5321 4.1.1.4 / 4.1.1.5 / 4.1.1.10,
// RFC 3207 4)

TEST(CommandNoArgument, BareVerbsAreAccepted) {
  EXPECT_EQ(parse_command("DATA").verb, Verb::data);
  EXPECT_EQ(parse_command("RSET").verb, Verb::rset);
  EXPECT_EQ(parse_command("QUIT").verb, Verb::quit);
  EXPECT_EQ(parse_command("STARTTLS").verb, Verb::starttls);
  for (std::string_view line : {"DATA", "data", "Rset", "quit", "StartTLS"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_TRUE(c.argument.empty()) << line;
  }
}

TEST(CommandNoArgument, ArgumentsOrTrailingSpaceAreSyntax) {
  for (std::string_view line : {"DATA ", "DATA x", "RSET ", "RSET now", "QUIT ", "QUIT bye",
                                "STARTTLS ", "STARTTLS now", "DATA  "}) {
    const Command c = parse_command(line);
    EXPECT_NE(c.verb, Verb::unknown) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// NOOP, HELP (RFC 5321 4.1.1.9 / 4.1.1.8: [SP String]), VRFY (4.1.1.6: SP String)

TEST(CommandString, NoopWithAndWithoutArgument) {
  const Command bare = parse_command("NOOP");
  EXPECT_EQ(bare.verb, Verb::noop);
  EXPECT_EQ(bare.error, CommandError::none);
  EXPECT_TRUE(bare.argument.empty());
  const Command arg = parse_command("NOOP ping");
  EXPECT_EQ(arg.error, CommandError::none);
  EXPECT_EQ(arg.argument, "ping");
  const Command quoted = parse_command("NOOP \"a b\"");
  EXPECT_EQ(quoted.error, CommandError::none);
  EXPECT_EQ(quoted.argument, "\"a b\"");
}

TEST(CommandString, HelpWithAndWithoutArgument) {
  const Command bare = parse_command("HELP");
  EXPECT_EQ(bare.verb, Verb::help);
  EXPECT_EQ(bare.error, CommandError::none);
  EXPECT_TRUE(bare.argument.empty());
  const Command arg = parse_command("help MAIL");
  EXPECT_EQ(arg.error, CommandError::none);
  EXPECT_EQ(arg.argument, "MAIL");
}

TEST(CommandString, VrfyTakesAnAtomOrQuotedString) {
  const Command atom = parse_command("VRFY postmaster");
  EXPECT_EQ(atom.verb, Verb::vrfy);
  EXPECT_EQ(atom.error, CommandError::none);
  EXPECT_EQ(atom.argument, "postmaster");
  const Command quoted = parse_command("VRFY \"John Smith\"");
  EXPECT_EQ(quoted.error, CommandError::none);
  EXPECT_EQ(quoted.argument, "\"John Smith\"");
  const Command escaped = parse_command("VRFY \"a\\\"b\"");
  EXPECT_EQ(escaped.error, CommandError::none);
  EXPECT_EQ(escaped.argument, "\"a\\\"b\"");
  const Command utf8 = parse_command("VRFY j\xC3\xB6rg");
  EXPECT_EQ(utf8.error, CommandError::none);
  EXPECT_EQ(utf8.argument, "j\xC3\xB6rg");
}

TEST(CommandString, VrfyNeedsAnArgument) {
  EXPECT_EQ(parse_command("VRFY").error, CommandError::syntax);
  EXPECT_EQ(parse_command("VRFY ").error, CommandError::syntax);
}

TEST(CommandString, NonStringArgumentsAreSyntax) {
  for (std::string_view line :
       {"VRFY John Smith", "VRFY user ", "VRFY  user", "VRFY \"unterminated", "VRFY \"a\"b\"",
        "VRFY \"\\\"", "VRFY \"", "VRFY a\tb", "VRFY \xFF", "VRFY \"\xC0\xAF\"", "HELP ",
        "HELP  ping", "HELP ping ", "HELP a(b)"}) {
    const Command c = parse_command(line);
    EXPECT_NE(c.verb, Verb::unknown) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

TEST(CommandString, QuotedStringRejectsControlCharacters) {
  // RFC 5321 4.1.2: qtextSMTP = %d32-33 / %d35-91 / %d93-126.
  EXPECT_EQ(parse_command("VRFY \"a\x01" "b\"").error, CommandError::syntax);
  EXPECT_EQ(parse_command("VRFY \"a\tb\"").error, CommandError::syntax);
}

TEST(CommandString, QuotedPairRejectsEscapedControlCharacters) {
  // RFC 5321 4.1.2: quoted-pairSMTP = %d92 %d32-126, so a backslash may not escape a control.
  EXPECT_EQ(parse_command("VRFY \"a\\\x01\"").error, CommandError::syntax);
  EXPECT_EQ(parse_command("HELP \"a\\\t\"").error, CommandError::syntax);
}

TEST(CommandString, NoCommandAcceptsCrLfOrNul) {
  // Found by fuzzing: whatever a verb's grammar allows, a parsed command re-encodes as one
  // line (RFC 5321 2.3.8).
  for (std::string_view line : {std::string_view("NOOP a\r\nb"), std::string_view("NOOP a\rb"),
                                std::string_view("NOOP a\nb"), std::string_view("NOOP a\0b", 8),
                                std::string_view("HELP a\nb")}) {
    EXPECT_EQ(parse_command(line).error, CommandError::syntax) << line;
  }
}

TEST(CommandString, NoopIgnoresItsParameter) {
  // RFC 5321 4.1.1.9: "If a parameter string is specified, servers SHOULD ignore it."
  for (std::string_view line :
       {"NOOP ", "NOOP  ping", "NOOP ping ", "NOOP a b c", "NOOP \"a\\\t\""}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::noop) << line;
    EXPECT_TRUE(c.ok()) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// BDAT (RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ]; chunk-size = 1*DIGIT;
// end-marker = "LAST")

TEST(CommandBdat, ChunkSizeIsParsed) {
  const Command c = parse_command("BDAT 1000");
  EXPECT_EQ(c.verb, Verb::bdat);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.chunk_size, 1000u);
  EXPECT_FALSE(c.last);
}

TEST(CommandBdat, ZeroSizedChunkIsValid) {
  // RFC 3030 2: a zero-length "BDAT 0 LAST" ends a message whose data was all sent before.
  const Command zero = parse_command("BDAT 0");
  EXPECT_EQ(zero.error, CommandError::none);
  EXPECT_EQ(zero.chunk_size, 0u);
  const Command last = parse_command("BDAT 0 LAST");
  EXPECT_EQ(last.error, CommandError::none);
  EXPECT_EQ(last.chunk_size, 0u);
  EXPECT_TRUE(last.last);
}

TEST(CommandBdat, LastIsCaseInsensitive) {
  for (std::string_view line : {"BDAT 42 LAST", "BDAT 42 last", "bdat 42 Last", "BDAT 42 lAsT"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_EQ(c.chunk_size, 42u) << line;
    EXPECT_TRUE(c.last) << line;
  }
}

TEST(CommandBdat, LeadingZerosAreAccepted) {
  const Command c = parse_command("BDAT 007");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.chunk_size, 7u);
}

TEST(CommandBdat, NineteenDigitsAcceptedTwentyDigitOverflowIsSyntax) {
  const Command big = parse_command("BDAT 9999999999999999999");
  EXPECT_EQ(big.error, CommandError::none);
  EXPECT_EQ(big.chunk_size, 9999999999999999999u);
  const Command overflow = parse_command("BDAT 99999999999999999999");
  EXPECT_EQ(overflow.verb, Verb::bdat);
  EXPECT_EQ(overflow.error, CommandError::syntax);
  EXPECT_EQ(parse_command("BDAT 99999999999999999999 LAST").error, CommandError::syntax);
}

TEST(CommandBdat, BadArgumentsAreSyntax) {
  for (std::string_view line :
       {"BDAT", "BDAT ", "BDAT LAST", "BDAT -1", "BDAT +5", "BDAT 1a", "BDAT 0x10", "BDAT 10 ",
        "BDAT 10  LAST", "BDAT 10 LAST ", "BDAT 10 FIRST", "BDAT 10 LAST x", "BDAT 10 LASTX",
        "BDAT  10", "BDAT 1 2"}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::bdat) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// AUTH (RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response]; initial-response = base64 / "=";
// RFC 4422 3.1: sasl-mech = 1*20mech-char)

TEST(CommandAuth, MechanismWithoutInitialResponse) {
  const Command c = parse_command("AUTH PLAIN");
  EXPECT_EQ(c.verb, Verb::auth);
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.argument, "PLAIN");
  EXPECT_TRUE(c.auth_initial.empty());
}

TEST(CommandAuth, MechanismWithBase64InitialResponse) {
  const Command c = parse_command("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.argument, "PLAIN");
  EXPECT_EQ(c.auth_initial, "AGFsaWNlAHNlY3JldA==");
}

TEST(CommandAuth, EqualsSignIsAnEmptyInitialResponse) {
  // RFC 4954 4: "=" stands for a zero-length initial response.
  const Command c = parse_command("AUTH EXTERNAL =");
  EXPECT_EQ(c.error, CommandError::none);
  EXPECT_EQ(c.argument, "EXTERNAL");
  EXPECT_EQ(c.auth_initial, "=");
}

TEST(CommandAuth, Base64PaddingVariantsAreAccepted) {
  for (std::string_view b64 : {"dGVzdA==", "dGVzdDE=", "dGVzdDEy", "ab+/"}) {
    const std::string line = "AUTH PLAIN " + std::string(b64);
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_EQ(c.auth_initial, b64) << line;
  }
}

TEST(CommandAuth, MechanismNamesWithHyphenUnderscoreAndDigits) {
  for (std::string_view mech : {"SCRAM-SHA-256", "X_MECH", "CRAM-MD5", "ABCDEFGHIJ0123456789"}) {
    const std::string line = "AUTH " + std::string(mech);
    const Command c = parse_command(line);
    EXPECT_EQ(c.error, CommandError::none) << line;
    EXPECT_EQ(c.argument, mech) << line;
  }
}

TEST(CommandAuth, MechanismLongerThan20IsSyntax) {
  EXPECT_EQ(parse_command("AUTH ABCDEFGHIJ0123456789X").error, CommandError::syntax);
}

TEST(CommandAuth, BadArgumentsAreSyntax) {
  for (std::string_view line :
       {"AUTH", "AUTH ", "AUTH  PLAIN", "AUTH PLAIN ", "AUTH PL@IN", "AUTH PLAIN  dGVzdA==",
        "AUTH PLAIN abc", "AUTH PLAIN ab=c", "AUTH PLAIN a===", "AUTH PLAIN ====",
        "AUTH PLAIN ==", "AUTH PLAIN ab*d", "AUTH PLAIN dGVz dA==", "AUTH PLAIN dGVzdA== ",
        "AUTH PLAIN =="}) {
    const Command c = parse_command(line);
    EXPECT_EQ(c.verb, Verb::auth) << line;
    EXPECT_EQ(c.error, CommandError::syntax) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// encode_command

struct RoundTripCase {
  std::string_view line;
  bool canonical;  // encode() must give back exactly this line (plus CRLF)
};

class CommandRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(CommandRoundTrip, ParseEncodeParseGivesAnEqualCommand) {
  const RoundTripCase& t = GetParam();
  const Command first = parse_command(t.line);
  ASSERT_TRUE(first.ok()) << t.line << " " << describe(first);

  buf::OutBuffer out(4096);
  ASSERT_TRUE(encode_command(first, out)) << t.line;
  const std::string encoded(out.view());
  ASSERT_GE(encoded.size(), 2u);
  ASSERT_EQ(encoded.substr(encoded.size() - 2), "\r\n") << encoded;
  const std::string body = encoded.substr(0, encoded.size() - 2);

  const Command second = parse_command(body);
  EXPECT_TRUE(second.ok()) << body << " " << describe(second);
  EXPECT_EQ(first, second) << t.line << "\n  first  " << describe(first) << "\n  second "
                           << describe(second);
  // The canonical form is a fixed point.
  EXPECT_EQ(encode(second), encoded);
  if (t.canonical) {
    EXPECT_EQ(body, t.line);
  }
}

INSTANTIATE_TEST_SUITE_P(
    CommandTable, CommandRoundTrip,
    ::testing::Values(
        // Canonical lines: byte-identical after encoding.
        RoundTripCase{"EHLO mail.example.org", true}, RoundTripCase{"EHLO [192.0.2.1]", true},
        RoundTripCase{"EHLO [IPv6:2001:db8::1]", true},
        RoundTripCase{"HELO mail.example.org", true}, RoundTripCase{"MAIL FROM:<>", true},
        RoundTripCase{"MAIL FROM:<user@example.org>", true},
        RoundTripCase{"MAIL FROM:<user@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS "
                      "ENVID=QQ314159 AUTH=<>",
                      true},
        RoundTripCase{"MAIL FROM:<> SIZE=0 BODY=7BIT RET=FULL", true},
        RoundTripCase{"MAIL FROM:<\"john doe\"@example.org> BODY=BINARYMIME", true},
        RoundTripCase{"MAIL FROM:<user@[IPv6:::1]> AUTH=e+3Dmc2@example.com", true},
        RoundTripCase{"MAIL FROM:<j\xC3\xB6rg@m\xC3\xBCnchen.example> SMTPUTF8", true},
        RoundTripCase{"RCPT TO:<user@example.org>", true},
        RoundTripCase{"RCPT TO:<Postmaster>", true},
        RoundTripCase{"RCPT TO:<Postmaster@example.org>", true},
        RoundTripCase{"RCPT TO:<\"a>b\"@example.org> NOTIFY=NEVER", true},
        RoundTripCase{"RCPT TO:<user@[192.0.2.1]> NOTIFY=SUCCESS,FAILURE,DELAY "
                      "ORCPT=rfc822;user+2Bx@example.org",
                      true},
        RoundTripCase{"RCPT TO:<user@example.org> ORCPT=utf-8;j\xC3\xB6rg@example.org", true},
        RoundTripCase{"DATA", true}, RoundTripCase{"RSET", true}, RoundTripCase{"NOOP", true},
        RoundTripCase{"NOOP ping", true}, RoundTripCase{"QUIT", true},
        RoundTripCase{"VRFY postmaster", true}, RoundTripCase{"VRFY \"John Smith\"", true},
        RoundTripCase{"HELP", true}, RoundTripCase{"HELP MAIL", true},
        RoundTripCase{"STARTTLS", true}, RoundTripCase{"BDAT 0 LAST", true},
        RoundTripCase{"BDAT 1000", true}, RoundTripCase{"BDAT 9999999999999999999 LAST", true},
        RoundTripCase{"AUTH PLAIN", true},
        RoundTripCase{"AUTH PLAIN AGFsaWNlAHNlY3JldA==", true},
        RoundTripCase{"AUTH EXTERNAL =", true},
        RoundTripCase{"AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=", true},
        // Valid but not canonical: case, leading zeros, parameter order, source routes.
        RoundTripCase{"ehlo mail.example.org", false},
        RoundTripCase{"mail from:<user@example.org> size=007 body=8bitmime", false},
        RoundTripCase{"MAIL FROM:<user@example.org> AUTH=<> SIZE=5", false},
        RoundTripCase{"MAIL FROM:<@relay.example,@b.example:user@example.org>", false},
        RoundTripCase{"rcpt to:<postmaster>", false},
        RoundTripCase{"RCPT TO:<user@example.org> ORCPT=rfc822;a@b notify=delay,success", false},
        RoundTripCase{"RCPT TO:<user@example.org> NOTIFY=never", false},
        RoundTripCase{"bdat 0010 last", false}, RoundTripCase{"Data", false},
        RoundTripCase{"quit", false}, RoundTripCase{"starttls", false},
        RoundTripCase{"auth plain =", false}, RoundTripCase{"noop", false},
        RoundTripCase{"vrfy user", false}));

TEST(CommandEncode, NonCanonicalLinesEncodeToTheCanonicalForm) {
  EXPECT_EQ(encode(parse_command("mail from:<user@example.org> size=007 body=8bitmime")),
            "MAIL FROM:<user@example.org> SIZE=7 BODY=8BITMIME\r\n");
  EXPECT_EQ(encode(parse_command("MAIL FROM:<@relay.example:user@example.org>")),
            "MAIL FROM:<user@example.org>\r\n");
  EXPECT_EQ(encode(parse_command("RCPT TO:<a@example.org> ORCPT=rfc822;a@b notify=delay,success")),
            "RCPT TO:<a@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b\r\n");
  EXPECT_EQ(encode(parse_command("bdat 0010 last")), "BDAT 10 LAST\r\n");
}

TEST(CommandEncode, ConstructedCommandsEncode) {
  Command data;
  data.verb = Verb::data;
  EXPECT_EQ(encode(data), "DATA\r\n");

  Command bdat;
  bdat.verb = Verb::bdat;
  bdat.chunk_size = 65536;
  bdat.last = true;
  EXPECT_EQ(encode(bdat), "BDAT 65536 LAST\r\n");

  Command mail;
  mail.verb = Verb::mail;
  mail.path.local_part = "a";
  mail.path.domain = "example.org";
  mail.mail.has_size = true;
  mail.mail.size = 0;
  mail.mail.body = BodyType::binary_mime;
  EXPECT_EQ(encode(mail), "MAIL FROM:<a@example.org> SIZE=0 BODY=BINARYMIME\r\n");

  Command rcpt;
  rcpt.verb = Verb::rcpt;
  rcpt.path.local_part = "Postmaster";
  rcpt.path.postmaster = true;
  rcpt.rcpt.notify = kNotifyDelay | kNotifyFailure;
  EXPECT_EQ(encode(rcpt), "RCPT TO:<Postmaster> NOTIFY=FAILURE,DELAY\r\n");
}

TEST(CommandEncode, UnknownVerbIsNotEncoded) {
  buf::OutBuffer out(64);
  ASSERT_TRUE(out.append("x"));
  EXPECT_FALSE(encode_command(parse_command("XYZZY"), out));
  EXPECT_EQ(out.view(), "x");
}

TEST(CommandEncode, AppendsAfterExistingOutput) {
  // Pipelining: several commands go into one buffer.
  buf::OutBuffer out(128);
  ASSERT_TRUE(encode_command(parse_command("MAIL FROM:<>"), out));
  ASSERT_TRUE(encode_command(parse_command("RCPT TO:<a@example.org>"), out));
  ASSERT_TRUE(encode_command(parse_command("DATA"), out));
  EXPECT_EQ(out.view(), "MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n");
}

TEST(CommandEncode, TooSmallBufferWritesNothing) {
  const Command c = parse_command("MAIL FROM:<user@example.org> SIZE=1000");
  ASSERT_TRUE(c.ok());
  const std::string full = "MAIL FROM:<user@example.org> SIZE=1000\r\n";
  // Every capacity short of the full line fails and leaves earlier content untouched,
  // including one byte short (only the CRLF missing).
  for (std::size_t cap = 1; cap < full.size() + 1; ++cap) {
    buf::OutBuffer out(cap);
    ASSERT_TRUE(out.append("#"));
    EXPECT_FALSE(encode_command(c, out)) << cap;
    EXPECT_EQ(out.view(), "#") << cap;
  }
  buf::OutBuffer exact(full.size() + 1);
  ASSERT_TRUE(exact.append("#"));
  EXPECT_TRUE(encode_command(c, exact));
  EXPECT_EQ(exact.view(), "#" + full);
}

}  // namespace
}  // namespace ringmta::smtp
