// Message bodies and command lines shared by the micro-benchmarks: realistic wire-format
// content generated once, deterministically, outside every timed loop.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ringmta::bench {

struct DataBody {
  std::string wire;             // DATA body on the wire: content then ".\r\n", size exactly
  std::size_t stuffed_lines;    // lines whose transparency dot was doubled
  // The content (wire minus the terminator): what a scanner hands on as body.
  std::string_view content() const { return std::string_view(wire).substr(0, wire.size() - 3); }
};

// Text lines between two dot-stuffed ones by default: "a few" (about 1%).
inline constexpr std::size_t kDefaultDotEvery = 100;

// RFC 5322 headers, an empty line, then ASCII text lines of 60..76 characters (CRLF) with
// an empty line every 12 lines and a dot-stuffed line every `dot_every` lines (the first is
// text line 3; 0: none), then the end of data. `total` (at least 1024) is the exact size,
// "\r\n.\r\n" included.
DataBody make_data_body(std::size_t total, std::size_t dot_every = kDefaultDotEvery);

}  // namespace ringmta::bench
