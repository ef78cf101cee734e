// SMTP commands as typed values: parse_command() is a pure function from one command line
// (without its CRLF) to a Command, and encode_command() writes the canonical line back, so
// parse(encode(c)) == c. The same parser serves the relay, the sink and the loadgen.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/buf/out_buffer.hpp"
#include "core/smtp/address.hpp"
#include "core/smtp/esmtp_params.hpp"

namespace ringmta::smtp {

// RFC 5321 4.5.3.1.4: 512 octets per command line, CRLF included. Extensions raise it for
// MAIL and RCPT (SIZE, BODY, SMTPUTF8, DSN and AUTH parameters each add an allowance), so
// those two get 1024.
inline constexpr std::size_t kMaxCommandLine = 512;
inline constexpr std::size_t kMaxParamCommandLine = 1024;

enum class Verb : std::uint8_t {
  unknown,
  helo,
  ehlo,
  mail,
  rcpt,
  data,
  bdat,
  rset,
  noop,
  quit,
  vrfy,
  help,
  starttls,
  auth,
};
inline constexpr std::size_t kVerbCount = static_cast<std::size_t>(Verb::auth) + 1;

// Canonical (upper-case) name of a verb; "unknown" for Verb::unknown.
std::string_view verb_name(Verb v);

// Why a line is not a valid command. A known verb with bad arguments is distinct from an
// unknown verb: RFC 5321 4.2.4 answers 501 to the first and 500 to the second.
enum class CommandError : std::uint8_t {
  none,
  unknown_verb,       // 500 5.5.2
  syntax,             // 501 5.5.4: arguments do not match the command's grammar
  bad_sender,         // 501 5.1.7: reverse path malformed
  bad_recipient,      // 501 5.1.3: forward path malformed
  address_too_long,   // 501 5.5.4 (RFC 5321 4.5.3.1.9 "Path too long")
  unknown_parameter,  // 555 5.5.4
  bad_parameter,      // 501 5.5.4
};

struct Command {
  Verb verb = Verb::unknown;
  CommandError error = CommandError::none;
  // For an error: the ESMTP keyword at fault, if any (a view into the line).
  std::string_view error_keyword{};

  // HELO/EHLO: the domain; VRFY/HELP/NOOP: the optional string; AUTH: the mechanism.
  std::string_view argument{};
  // AUTH: the initial response (RFC 4954 4), may be "=" for an empty one.
  std::string_view auth_initial{};
  // MAIL/RCPT.
  Path path{};
  MailParams mail{};
  RcptParams rcpt{};
  // BDAT (RFC 3030 2): chunk size and LAST.
  std::uint64_t chunk_size = 0;
  bool last = false;

  bool ok() const { return error == CommandError::none; }
  friend bool operator==(const Command&, const Command&) = default;
};

// Parses one command line, CRLF already removed. Never fails loudly: every input yields a
// Command whose `error` says what is wrong. Views in the result point into `line`.
Command parse_command(std::string_view line);

// Just the verb of a line (for per-verb line limits before a full parse).
Verb peek_verb(std::string_view line);

// Writes the canonical form of a valid command, with CRLF. Returns false if it did not fit
// (nothing is written then).
bool encode_command(const Command& c, buf::OutBuffer& out);

}  // namespace ringmta::smtp
