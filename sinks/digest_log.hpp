// The sink's accounting log (mode digest): one line per accepted message, written by each
// worker thread into its own buffer and appended to the shared file in whole lines
// (O_APPEND), so threads never lock each other. Format (docs/result-format.md):
//   <X-Ringmta-Id or -> TAB <body octets> TAB <body sha256> TAB <recipients, comma-separated>
// where the body is the part after the header section, dot-stuffing undone (MessageDigest).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/buf/line_log.hpp"

namespace ringmta::sink {

class DigestLog {
 public:
  // Opens (creates) path for appending; throws std::runtime_error naming the file.
  explicit DigestLog(const std::string& path) : log_(path, "ringmta-sink: digest log") {}

  void append(std::string_view id, std::uint64_t octets, std::string_view sha256_hex,
              std::string_view recipients) {
    log_.add(id.empty() ? std::string_view("-") : id).add('\t').add_uint(octets).add('\t');
    log_.add(sha256_hex).add('\t').add(recipients).end_line();
  }
  void flush() { log_.flush(); }
  std::uint64_t lines() const { return log_.lines(); }

 private:
  buf::LineLog log_;
};

}  // namespace ringmta::sink
