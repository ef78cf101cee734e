// Client side of replies: assembles multi-line replies (RFC 5321 4.2.1) from bytes cut
// anywhere, reads the enhanced status code (RFC 3463, RFC 2034) and the EHLO capability list
// (RFC 5321 4.1.1.1). Storage is fixed at construction: no allocation per reply.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/smtp/line_framer.hpp"
#include "core/smtp/reply.hpp"

namespace ringmta::smtp {

enum class ReplyError : std::uint8_t {
  none,
  malformed,      // not "DDD", "DDD text" or "DDD-text", or a bad first digit
  code_mismatch,  // lines of one reply with different codes
  bare_newline,   // CR or LF not paired (RFC 5321 2.3.8)
  too_long,       // a line over the framer's limit
};

class ReplyParser {
 public:
  // max_line: longest accepted reply line with CRLF (RFC 5321 4.5.3.1.5 says 512; real
  // servers exceed it, so the default is larger). max_text: text kept per reply; more is cut.
  explicit ReplyParser(std::size_t max_line = 2048, std::size_t max_text = 4096);

  struct Step {
    std::size_t consumed = 0;
    bool complete = false;  // reply() holds a whole reply
    ReplyError error = ReplyError::none;
  };
  // Consumes input up to the end of one reply (or all of it). After an error the
  // connection's framing cannot be trusted: the caller drops the session.
  Step next(std::string_view in);

  // The last complete reply; text is every line's text joined with '\n', the enhanced code
  // is the first line's. Valid until the next call to next().
  const Reply& reply() const { return reply_; }
  std::size_t line_count() const { return lines_; }
  // Forgets a partly received reply (after STARTTLS's 220 the plaintext behind it is dropped).
  void reset() {
    framer_.reset();
    lines_ = 0;
    text_len_ = 0;
    reply_ = Reply{};
  }

 private:
  ReplyError take_line(std::string_view line, bool& last);

  LineFramer framer_;
  std::unique_ptr<char[]> text_;
  std::size_t max_text_;
  std::size_t text_len_ = 0;
  std::size_t lines_ = 0;
  std::uint16_t code_ = 0;
  EnhancedCode enhanced_{};
  Reply reply_{};
};

// Reads "X.Y.Z " at the start of text when its class matches the reply code's first digit
// (RFC 3463 2: class 2, 4 or 5; subject and detail 1-3 digits). Returns bytes used, 0 if none.
std::size_t parse_enhanced_code(std::string_view text, std::uint16_t code, EnhancedCode& out);

// What a server offered in its EHLO reply.
struct Capabilities {
  bool esmtp = false;  // EHLO answered 250 (HELO servers offer nothing)
  bool pipelining = false;
  bool size = false;
  std::uint64_t max_size = 0;  // 0: no limit declared
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool enhanced_status_codes = false;
  bool chunking = false;
  bool binary_mime = false;
  bool dsn = false;
  bool starttls = false;
  bool auth_plain = false;
  bool auth_login = false;
};

// Parses the text of an EHLO reply (lines joined by '\n', the first being the greeting).
Capabilities parse_ehlo_capabilities(std::string_view text);

}  // namespace ringmta::smtp
