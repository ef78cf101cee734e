// Buffered line appender; see line_log.hpp.
#include "core/buf/line_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/buf/out_buffer.hpp"

namespace ringmta::buf {
namespace {
constexpr std::size_t kFlushAt = 32 * 1024;
}

LineLog::LineLog(const std::string& path, std::string_view who) : who_(who) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  buf_.reserve(kFlushAt + 8192);
}

LineLog::~LineLog() {
  complete_ = buf_.size();  // a half-built line is written too rather than lost
  flush();
  if (fd_ >= 0) ::close(fd_);
}

LineLog& LineLog::add_uint(std::uint64_t v) {
  char tmp[20];
  buf_.append(tmp, format_decimal(v, tmp));
  return *this;
}

void LineLog::end_line() {
  buf_ += '\n';
  complete_ = buf_.size();
  ++lines_;
  if (buf_.size() >= kFlushAt) flush();
}

void LineLog::flush() {
  // Whole lines in one write: O_APPEND keeps concurrent writers' lines apart (a regular
  // file on a local disk does not short-write short of ENOSPC).
  std::size_t off = 0;
  while (off < complete_) {
    const ssize_t w = ::write(fd_, buf_.data() + off, complete_ - off);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      if (!warned_) {
        std::fprintf(stderr, "%s: write failed: %s; lines are lost\n", who_.c_str(),
                     std::strerror(errno));
        warned_ = true;
      }
      break;
    }
    off += static_cast<std::size_t>(w);
  }
  buf_.erase(0, complete_);
  complete_ = 0;
}

}  // namespace ringmta::buf
