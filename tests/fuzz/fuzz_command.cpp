// libFuzzer target for parse_command() and encode_command(): any line yields a Command whose
// views lie in the line, and a valid one encodes to one canonical line that parses back equal.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/buf/out_buffer.hpp"
#include "core/smtp/command.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using ringmta::buf::OutBuffer;
using namespace ringmta::smtp;

// Empty views carry no bytes, so where they point does not matter.
bool lies_in(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  const auto p = reinterpret_cast<std::uintptr_t>(part.data());
  const auto w = reinterpret_cast<std::uintptr_t>(whole.data());
  return p >= w && p + part.size() <= w + whole.size();
}

void check_views(const Command& c, std::string_view line) {
  FUZZ_CHECK(lies_in(c.error_keyword, line));
  FUZZ_CHECK(lies_in(c.argument, line));
  FUZZ_CHECK(lies_in(c.auth_initial, line));
  FUZZ_CHECK(lies_in(c.path.local_part, line));
  FUZZ_CHECK(lies_in(c.path.domain, line));
  FUZZ_CHECK(lies_in(c.mail.envid, line));
  FUZZ_CHECK(lies_in(c.mail.auth, line));
  FUZZ_CHECK(lies_in(c.rcpt.orcpt_type, line));
  FUZZ_CHECK(lies_in(c.rcpt.orcpt_value, line));
}

void check_line(std::string_view line) {
  const Command c = parse_command(line);
  FUZZ_CHECK(c.verb == peek_verb(line));
  FUZZ_CHECK((c.verb == Verb::unknown) == (c.error == CommandError::unknown_verb));
  check_views(c, line);
  if (!c.ok()) return;

  // Canonical forms are never longer than twice the input (numbers lose leading zeros,
  // source routes are dropped); the slack covers verbs with no arguments.
  OutBuffer out(2 * line.size() + 64);
  FUZZ_CHECK(encode_command(c, out));
  const std::string_view encoded = out.view();
  FUZZ_CHECK(encoded.size() >= 2 && encoded.substr(encoded.size() - 2) == "\r\n");
  const std::string_view body = encoded.substr(0, encoded.size() - 2);
  // One command is one line on the wire: a CR or LF inside would split it.
  FUZZ_CHECK(body.find_first_of("\r\n") == std::string_view::npos);
  // RFC 5321 4.5.3.1.4: a parsed command must encode within what a server reads.
  const std::size_t limit =
      c.verb == Verb::mail || c.verb == Verb::rcpt ? kMaxParamCommandLine : kMaxCommandLine;
  if (line.size() + 2 <= limit) FUZZ_CHECK(encoded.size() <= limit);

  const Command again = parse_command(body);
  if (!(again == c)) {
    std::fprintf(stderr, "line:    %s\nencoded: %s\n", ringmta::fuzz::escape(line).c_str(),
                 ringmta::fuzz::escape(encoded).c_str());
  }
  FUZZ_CHECK(again == c);

  // The canonical form is a fixed point.
  OutBuffer out2(encoded.size());
  FUZZ_CHECK(encode_command(again, out2));
  FUZZ_CHECK_EQ_STR(out2.view(), encoded);

  // Too little room: false, and what the buffer held before is left alone.
  OutBuffer small(encoded.size() + 1);
  FUZZ_CHECK(small.append("ab"));
  FUZZ_CHECK(!encode_command(c, small));
  FUZZ_CHECK(small.view() == "ab");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  // As is (a caller may hand over anything), and with every CR and LF removed (what the
  // framer can hand over).
  check_line(line);
  std::string stripped;
  stripped.reserve(size);
  for (char ch : line) {
    if (ch != '\r' && ch != '\n') stripped += ch;
  }
  if (stripped.size() != size) check_line(stripped);
  return 0;
}
