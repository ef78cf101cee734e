// Segment pins and deletion; see segment_registry.hpp.
#include "relay/queue/segment_registry.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

namespace ringmta::relay {

SegmentRegistry::~SegmentRegistry() {
  for (auto& [k, e] : segments_) {
    if (e.fd >= 0) ::close(e.fd);
  }
}

std::string SegmentRegistry::path(const spool::SegmentKey& k) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/t%u/seg-%016llx.log", k.thread,
                static_cast<unsigned long long>(k.sequence));
  return dir_ + name;
}

void SegmentRegistry::add(const spool::SegmentKey& k) {
  if (segments_.emplace(k, Entry{}).second) ++unpinned_;
}

void SegmentRegistry::pin(const spool::SegmentKey& k) { ++segments_[k].pins; }

void SegmentRegistry::unpin(const spool::SegmentKey& k) {
  const auto it = segments_.find(k);
  if (it == segments_.end() || it->second.pins == 0) return;
  if (--it->second.pins == 0) ++unpinned_;
}

int SegmentRegistry::read_fd(const spool::SegmentKey& k) {
  Entry& e = segments_[k];
  if (e.fd < 0) e.fd = ::open(path(k).c_str(), O_RDONLY | O_CLOEXEC);
  return e.fd;
}

std::size_t SegmentRegistry::collect(std::uint64_t current_sequence) {
  if (unpinned_ == 0) return 0;
  unpinned_ = 0;
  std::size_t n = 0;
  std::set<unsigned> dirs;
  for (auto it = segments_.begin(); it != segments_.end();) {
    const spool::SegmentKey& k = it->first;
    if (it->second.pins != 0 ||
        (k.thread == own_thread_ && k.sequence >= current_sequence)) {
      if (it->second.pins == 0) ++unpinned_;  // the current one: try again later
      ++it;
      continue;
    }
    if (it->second.fd >= 0) ::close(it->second.fd);
    if (::unlink(path(k).c_str()) != 0 && errno != ENOENT) {
      std::fprintf(stderr, "ringmta-relay: cannot delete %s: %s\n", path(k).c_str(),
                   std::strerror(errno));
    }
    dirs.insert(k.thread);
    ++n;
    it = segments_.erase(it);
  }
  for (unsigned t : dirs) {
    const std::string d = dir_ + "/t" + std::to_string(t);
    const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  return n;
}

}  // namespace ringmta::relay
