// SMTP replies: a code, an optional enhanced status code (RFC 3463) and text, and how the
// server side writes them. The client side parses them with reply_parser.hpp.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/buf/out_buffer.hpp"

namespace ringmta::smtp {

// RFC 3463 2: class.subject.detail; class 0 means "absent".
struct EnhancedCode {
  std::uint8_t cls = 0;
  std::uint16_t subject = 0;
  std::uint16_t detail = 0;
  bool present() const { return cls != 0; }
  friend bool operator==(const EnhancedCode&, const EnhancedCode&) = default;
};

// A reply to send or a reply received. `text` is a view: it must outlive the use of the
// Reply (static strings for the server's own replies; the parser's buffer on the client).
struct Reply {
  std::uint16_t code = 0;
  EnhancedCode enhanced{};
  std::string_view text{};

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // RFC 5321 3.8: 421 means the server is closing the channel.
  bool closes() const { return code == 421; }
};

constexpr Reply make_reply(std::uint16_t code, EnhancedCode e, std::string_view text) {
  return Reply{code, e, text};
}

// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including the CRLF.
inline constexpr std::size_t kMaxReplyLine = 512;

// Writes one reply line "CODE [X.Y.Z ]text\r\n" (last line of a reply); text longer than the
// line limit is cut, and CR/LF in text are replaced so a reply can never be split.
// Returns false when out has no room.
bool write_reply(buf::OutBuffer& out, const Reply& r, bool with_enhanced);
// Writes one continuation line "CODE-text\r\n" (no enhanced code: used by EHLO).
bool write_reply_continuation(buf::OutBuffer& out, std::uint16_t code, std::string_view text);

}  // namespace ringmta::smtp
