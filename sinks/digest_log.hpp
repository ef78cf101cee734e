// The sink's accounting log (mode digest): one line per accepted message, written by each
// worker thread into its own buffer and appended to the shared file in whole lines
// (O_APPEND), so threads never lock each other. Format (docs/result-format.md):
//   <X-Ringmta-Id or -> TAB <body octets> TAB <body sha256> TAB <recipients, comma-separated>
// where the body is the part after the header section, dot-stuffing undone (MessageDigest).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmta::sink {

class DigestLog {
 public:
  // Opens (creates) path for appending; throws std::runtime_error naming the file.
  explicit DigestLog(const std::string& path);
  ~DigestLog();  // flushes
  DigestLog(const DigestLog&) = delete;
  DigestLog& operator=(const DigestLog&) = delete;

  void append(std::string_view id, std::uint64_t octets, std::string_view sha256_hex,
              std::string_view recipients);
  // Writes buffered lines (called when the buffer fills, on a timer and at exit).
  void flush();
  std::uint64_t lines() const { return lines_; }

 private:
  int fd_ = -1;
  std::string buf_;
  std::uint64_t lines_ = 0;
  bool warned_ = false;
};

}  // namespace ringmta::sink
