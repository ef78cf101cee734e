// Command line parser (RFC 5321 4.1.1, 4.1.2); see command.hpp.
#include "core/smtp/command.hpp"

#include <array>

#include "core/smtp/ascii.hpp"

namespace ringmta::smtp {
namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, kVerbCount - 1> kVerbs = {{
    {"HELO", Verb::helo},
    {"EHLO", Verb::ehlo},
    {"MAIL", Verb::mail},
    {"RCPT", Verb::rcpt},
    {"DATA", Verb::data},
    {"BDAT", Verb::bdat},
    {"RSET", Verb::rset},
    {"NOOP", Verb::noop},
    {"QUIT", Verb::quit},
    {"VRFY", Verb::vrfy},
    {"HELP", Verb::help},
    {"STARTTLS", Verb::starttls},
    {"AUTH", Verb::auth},
}};

// RFC 5321 4.1.2: String = Atom / Quoted-string. VRFY, HELP and NOOP take one.
bool is_smtp_string(std::string_view s) {
  if (s.empty()) return false;
  if (s[0] == '"') {
    if (s.size() < 2 || s.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
        if (i + 2 >= s.size()) return false;
        const auto q = static_cast<unsigned char>(s[++i]);
        if (q < 32 || q > 126) return false;
        continue;
      }
      if (c < 32 || c > 126 || c == '"') {
        if (c < 0x80) return false;
      }
    }
    return is_valid_utf8(s);
  }
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(s.substr(i));
      if (n == 0) return false;
      i += n;
      continue;
    }
    if (!is_atext(c)) return false;
    ++i;
  }
  return true;
}

// AUTH mechanism names (RFC 4422 3.1): 1*20 of upper-case letters, digits, '-' and '_'.
bool is_sasl_mechanism(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (!is_let_dig(c) && c != '-' && c != '_') return false;
  }
  return true;
}

// RFC 4954 4: initial-response = base64 / "=".
bool is_base64_or_equals(std::string_view s) {
  if (s == "=") return true;
  if (s.empty() || s.size() % 4 != 0) return false;
  std::size_t pad = 0;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad != 0) return false;
    if (!is_let_dig(c) && c != '+' && c != '/') return false;
  }
  return pad <= 2;
}

void parse_mail_or_rcpt(std::string_view args, Command& c) {
  const bool mail = c.verb == Verb::mail;
  // RFC 5321 4.1.1.2/3: "FROM:" / "TO:" with no space on either side of the colon.
  const std::string_view prefix = mail ? "FROM:" : "TO:";
  if (!istarts_with(args, prefix)) {
    c.error = CommandError::syntax;
    return;
  }
  args.remove_prefix(prefix.size());
  const PathParse p = parse_path(args, mail ? PathKind::reverse : PathKind::forward, c.path);
  switch (p.error) {
    case AddressError::none:
      break;
    case AddressError::too_long:
      c.error = CommandError::address_too_long;
      return;
    case AddressError::syntax:
      if (args.empty() || args[0] != '<') {
        c.error = CommandError::syntax;
        return;
      }
      [[fallthrough]];
    default:
      c.error = mail ? CommandError::bad_sender : CommandError::bad_recipient;
      return;
  }
  args.remove_prefix(p.consumed);
  const ParamParse pp = mail ? parse_mail_params(args, c.mail) : parse_rcpt_params(args, c.rcpt);
  switch (pp.error) {
    case ParamError::none:
      return;
    case ParamError::unknown:
      c.error = CommandError::unknown_parameter;
      break;
    case ParamError::syntax:
      c.error = CommandError::syntax;
      break;
    case ParamError::bad_value:
    case ParamError::duplicate:
      c.error = CommandError::bad_parameter;
      break;
  }
  c.error_keyword = pp.keyword;
}

}  // namespace

std::string_view verb_name(Verb v) {
  for (const VerbName& n : kVerbs) {
    if (n.verb == v) return n.name;
  }
  return "unknown";
}

Verb peek_verb(std::string_view line) {
  const std::string_view word = line.substr(0, line.find(' '));
  for (const VerbName& n : kVerbs) {
    if (iequals(word, n.name)) return n.verb;
  }
  return Verb::unknown;
}

Command parse_command(std::string_view line) {
  Command c;
  c.verb = peek_verb(line);
  if (c.verb == Verb::unknown) {
    c.error = CommandError::unknown_verb;
    return c;
  }
  // No verb takes CR, LF or NUL in its arguments (RFC 5321 2.3.8), whatever its grammar
  // otherwise allows: a parsed command must re-encode as exactly one line.
  if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    c.error = CommandError::syntax;
    return c;
  }
  const std::size_t sp = line.find(' ');
  const bool has_args = sp != std::string_view::npos;
  // Exactly one SP separates verb and arguments; the grammar allows no trailing space.
  const std::string_view args = has_args ? line.substr(sp + 1) : std::string_view{};
  if (has_args && c.verb != Verb::noop && (args.empty() || args[0] == ' ')) {
    c.error = CommandError::syntax;
    return c;
  }
  switch (c.verb) {
    case Verb::helo:
    case Verb::ehlo:
      // RFC 5321 4.1.1.1: HELO takes a Domain, EHLO a Domain or an address literal.
      if (!has_args || (c.verb == Verb::helo ? !is_valid_domain(args, true)
                                             : !is_valid_ehlo_domain(args))) {
        c.error = CommandError::syntax;
      }
      c.argument = args;
      break;
    case Verb::mail:
    case Verb::rcpt:
      if (!has_args) {
        c.error = CommandError::syntax;
        break;
      }
      parse_mail_or_rcpt(args, c);
      break;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
      if (has_args) c.error = CommandError::syntax;  // RFC 5321 4.1.1.4/5/10, RFC 3207 4
      break;
    case Verb::vrfy:
      if (!has_args || !is_smtp_string(args)) c.error = CommandError::syntax;
      c.argument = args;
      break;
    case Verb::noop:
      // RFC 5321 4.1.1.9: a NOOP parameter SHOULD be ignored, so any text is accepted.
      c.argument = args;
      break;
    case Verb::help:
      if (has_args && !is_smtp_string(args)) c.error = CommandError::syntax;
      c.argument = args;
      break;
    case Verb::bdat: {
      // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ], end-marker = "LAST".
      const std::size_t sp2 = args.find(' ');
      const std::string_view size = args.substr(0, sp2);
      if (!has_args || !parse_decimal(size, 20, c.chunk_size)) {
        c.error = CommandError::syntax;
        break;
      }
      if (sp2 != std::string_view::npos) {
        if (!iequals(args.substr(sp2 + 1), "LAST")) {
          c.error = CommandError::syntax;
          break;
        }
        c.last = true;
      }
      break;
    }
    case Verb::auth: {
      // RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response].
      const std::size_t sp2 = args.find(' ');
      c.argument = args.substr(0, sp2);
      if (sp2 != std::string_view::npos) c.auth_initial = args.substr(sp2 + 1);
      if (!has_args || !is_sasl_mechanism(c.argument) ||
          (sp2 != std::string_view::npos && !is_base64_or_equals(c.auth_initial))) {
        c.error = CommandError::syntax;
      }
      break;
    }
    case Verb::unknown:
      break;
  }
  return c;
}

}  // namespace ringmta::smtp
