// Scans message content as it arrives: finds the end of DATA (only CRLF "." CRLF, RFC 5321
// 4.1.1.4), and notes what makes a message unacceptable: bare CR or bare LF anywhere (SMTP
// smuggling, CVE-2023-51764/5/6) and text lines over 1000 octets (RFC 5321 4.5.3.1.6). The
// body is handed on as views of the input in wire format (dot-stuffed, CRLF): no copy. It is
// the relay's hot path, so whole 64-byte blocks without anything of interest are skipped with
// SSE2 compares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmta::smtp {

enum BodyFlaw : std::uint8_t {
  kFlawBareCr = 1,
  kFlawBareLf = 2,
  kFlawLongLine = 4,
};

// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF, not counting the
// leading dot added for transparency.
inline constexpr std::size_t kMaxTextLine = 1000;

class BodyScanner {
 public:
  // simd=false forces the byte-at-a-time path (used to test the fast path against it).
  explicit BodyScanner(bool simd = true) : simd_(simd) {}

  // Starts a DATA body: the DATA command's CRLF counts as the start of the first line, so
  // an immediate ".\r\n" is an empty message.
  void begin_data();
  // Starts a BDAT message (RFC 3030): length-framed, no dot handling; lines starting with
  // '.' are counted (a relay needs to know whether to dot-stuff for DATA).
  void begin_chunked();

  struct DataStep {
    // Bytes held back by an earlier call (a "." or ".\r" that could have begun the end of
    // data) and now known to be body: emit them before `body`. Static storage.
    std::string_view released{};
    std::string_view body{};   // body bytes of this input: a prefix of it
    std::size_t consumed = 0;  // input bytes used, including the terminator when done
    bool done = false;         // the end of data was seen (and is not part of body)
  };
  // DATA: scans `in` until the end of data or the end of input.
  DataStep scan_data(std::string_view in);
  // BDAT: every byte of `in` is body.
  void scan_chunk(std::string_view in);
  // BDAT LAST: the message ends here, so a CR still waiting for its LF is a bare CR.
  void end_chunked() {
    if (state_ == State::cr) flaws_ |= kFlawBareCr;
  }

  std::uint8_t flaws() const { return flaws_; }
  // Bytes handed on as body so far (wire format).
  std::uint64_t wire_octets() const { return wire_octets_; }
  // RFC 1870 message size: octets with CRLFs, without transparency dots or the final dot.
  std::uint64_t message_octets() const { return wire_octets_ - stuffed_dots_; }
  // Lines whose first byte is '.' (DATA: stuffed lines; BDAT: lines to stuff for DATA).
  std::uint64_t dot_lines() const { return dot_lines_; }
  bool has_8bit() const { return has_8bit_; }

 private:
  enum class State : std::uint8_t {
    line_start,  // after CRLF (or at the start)
    mid,         // inside a line
    cr,          // inside a line, after CR
    dot,         // DATA: line start then "."
    dot_cr,      // DATA: line start then ".\r"
  };

  // Byte-at-a-time transition; returns true at the end of data.
  bool step(unsigned char c);
  // Skips whole clean 64-byte blocks from in[pos]; returns the new position.
  std::size_t skip_blocks(const char* in, std::size_t pos, std::size_t end);
  void end_line();

  State state_ = State::line_start;
  bool dot_mode_ = true;
  bool simd_;
  bool has_8bit_ = false;
  std::uint8_t flaws_ = 0;
  std::uint8_t held_ = 0;  // DATA: bytes of "." / ".\r" held back at the end of an input
  std::size_t line_len_ = 0;
  std::uint64_t wire_octets_ = 0;
  std::uint64_t stuffed_dots_ = 0;
  std::uint64_t dot_lines_ = 0;
};

}  // namespace ringmta::smtp
