// The spool segments one worker thread is responsible for: how many live messages and final
// outcomes of live messages pin each one, a read descriptor for splicing bodies out of it,
// and its deletion once nothing pins it (never while its writer still appends to it).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "relay/spool/spool_state.hpp"

namespace ringmta::relay {

class SegmentRegistry {
 public:
  SegmentRegistry(std::string spool_dir, unsigned own_thread)
      : dir_(std::move(spool_dir)), own_thread_(own_thread) {}
  ~SegmentRegistry();
  SegmentRegistry(const SegmentRegistry&) = delete;
  SegmentRegistry& operator=(const SegmentRegistry&) = delete;

  // A segment exists (created by this thread's writer, or found at start): deleted once
  // nothing pins it and it is not the writer's current one.
  void add(const spool::SegmentKey& k);
  void pin(const spool::SegmentKey& k);
  void unpin(const spool::SegmentKey& k);
  // A descriptor to read the segment (opened on first use); -1 with errno set on failure.
  int read_fd(const spool::SegmentKey& k);
  // Deletes the segments nothing pins, except `current` (this thread's writer's segment),
  // in sequence order, then syncs the directories once. Returns how many went.
  std::size_t collect(std::uint64_t current_sequence);
  std::size_t size() const { return segments_.size(); }
  std::string path(const spool::SegmentKey& k) const;

 private:
  struct Entry {
    unsigned pins = 0;
    int fd = -1;
  };
  std::string dir_;
  unsigned own_thread_;
  std::map<spool::SegmentKey, Entry> segments_;
  std::size_t unpinned_ = 0;  // entries at 0 pins (a hint for collect)
};

}  // namespace ringmta::relay
