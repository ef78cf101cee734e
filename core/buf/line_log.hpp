// Appends text lines to a file from one thread: a buffer filled without allocation (its
// capacity is reserved once) and written in whole lines with O_APPEND, so several threads,
// each with its own LineLog on the same file, never interleave inside a line or lock each
// other. Used for the sink's digest log and the loadgen's ledger.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmta::buf {

class LineLog {
 public:
  // Opens (creates) path for appending; throws std::runtime_error naming the file. `who`
  // prefixes the one warning printed if writing fails (disk full).
  LineLog(const std::string& path, std::string_view who);
  ~LineLog();  // flushes
  LineLog(const LineLog&) = delete;
  LineLog& operator=(const LineLog&) = delete;

  // Builds one line: add fields, then end_line().
  LineLog& add(std::string_view s) {
    buf_.append(s);
    return *this;
  }
  LineLog& add(char c) {
    buf_ += c;
    return *this;
  }
  LineLog& add_uint(std::uint64_t v);
  void end_line();
  // Writes complete lines (on a timer and at exit; end_line does it when the buffer fills).
  void flush();
  std::uint64_t lines() const { return lines_; }

 private:
  int fd_ = -1;
  std::string who_;
  std::string buf_;
  std::size_t complete_ = 0;  // bytes of buf_ that are whole lines
  std::uint64_t lines_ = 0;
  bool warned_ = false;
};

}  // namespace ringmta::buf
