// Buffered, per-thread digest lines appended to one file; see digest_log.hpp.
#include "sinks/digest_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace ringmta::sink {
namespace {
constexpr std::size_t kFlushAt = 32 * 1024;
}

DigestLog::DigestLog(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open digest log " + path + ": " + std::strerror(errno));
  }
  buf_.reserve(kFlushAt + 4096);
}

DigestLog::~DigestLog() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

void DigestLog::append(std::string_view id, std::uint64_t octets, std::string_view sha256_hex,
                       std::string_view recipients) {
  buf_.append(id.empty() ? std::string_view("-") : id);
  buf_ += '\t';
  char num[24];
  const int n = std::snprintf(num, sizeof(num), "%llu", static_cast<unsigned long long>(octets));
  buf_.append(num, static_cast<std::size_t>(n));
  buf_ += '\t';
  buf_.append(sha256_hex);
  buf_ += '\t';
  buf_.append(recipients);
  buf_ += '\n';
  ++lines_;
  if (buf_.size() >= kFlushAt) flush();
}

void DigestLog::flush() {
  // Whole lines in one write: O_APPEND keeps concurrent writers' lines apart. (A short write
  // would split a line; a regular file on a local disk does not do that short of ENOSPC.)
  std::size_t off = 0;
  while (off < buf_.size()) {
    const ssize_t w = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      // Disk full or I/O error: the lines are lost, so the harness will count those messages
      // as lost. Said once per thread, not per line.
      if (!warned_) {
        std::fprintf(stderr, "ringmta-sink: digest log write failed: %s; lines are lost\n",
                     std::strerror(errno));
        warned_ = true;
      }
      break;
    }
    off += static_cast<std::size_t>(w);
  }
  buf_.clear();
}

}  // namespace ringmta::sink
