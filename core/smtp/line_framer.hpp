// Resumable line framing for command lines (server) and reply lines (client). A receive
// buffer may cut a line anywhere: a line wholly inside the input is returned as a view of
// the input (no copy); only a line cut by a buffer boundary is gathered into the framer's
// own fixed buffer, allocated once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace ringmta::smtp {

enum class LineFlaw : std::uint8_t {
  none,
  too_long,  // longer than max_line (with its CRLF); text is cut
  bare_lf,   // ended by LF without CR (RFC 5321 2.3.8: lines end with CRLF only)
  bare_cr,   // holds a CR not followed by LF
};

struct FramedLine {
  std::string_view text{};  // without the line ending; valid until the next call
  LineFlaw flaw = LineFlaw::none;
};

struct FrameStep {
  std::size_t consumed = 0;  // input bytes used
  bool has_line = false;
  FramedLine line{};
};

class LineFramer {
 public:
  // max_line counts the CRLF, as RFC 5321 4.5.3.1.4/5 do.
  explicit LineFramer(std::size_t max_line);

  // Frames at most one line from the start of `in`. A bare LF ends a line (so that the
  // session stays in step and can refuse it); a bare CR does not.
  FrameStep next(std::string_view in);
  // Forgets a partly received line (after STARTTLS the plaintext before it is dropped).
  void reset() {
    partial_ = 0;
    partial_total_ = 0;
  }
  // Overwrites the framer's buffer (a line gathered there may have held an AUTH secret).
  void wipe();
  bool has_partial() const { return partial_total_ != 0; }
  std::size_t max_line() const { return max_line_; }

 private:
  FramedLine finish(std::string_view whole, std::size_t total_len);

  std::unique_ptr<char[]> buf_;
  std::size_t max_line_;
  std::size_t partial_ = 0;      // bytes gathered in buf_
  std::size_t partial_total_ = 0;  // bytes of the line seen so far, stored or not
};

}  // namespace ringmta::smtp
