// When deferred deliveries come due: a hierarchical timing wheel (as the Linux kernel's timer
// wheel, Varghese & Lauck) of intrusive nodes, so a queue of a million deferred recipients
// costs O(1) to insert, cancel and expire, and nothing ever scans the queue. Four levels of
// 256 slots, 16 ms apart at the lowest: the far levels hold coarse buckets that are spread
// into the finer ones as their time comes (a deadline beyond ~2 years is clamped).
// Not thread-safe: one per queue (per worker thread).
#pragma once

#include <array>
#include <cstdint>

namespace ringmta::relay {

class RetryWheel;

struct WheelNode {
  WheelNode* prev = nullptr;
  WheelNode* next = nullptr;
  std::uint64_t due_ms = 0;
  RetryWheel* wheel = nullptr;  // the wheel it is on, so that the static cancel() keeps size()
  bool linked() const { return prev != nullptr; }
};

class RetryWheel {
 public:
  static constexpr unsigned kLevels = 4;
  static constexpr unsigned kSlotBits = 8;
  static constexpr unsigned kSlots = 1u << kSlotBits;
  static constexpr unsigned kTickShift = 4;  // 16 ms

  explicit RetryWheel(std::uint64_t now_ms);
  RetryWheel(const RetryWheel&) = delete;
  RetryWheel& operator=(const RetryWheel&) = delete;

  // Schedules n (unlinking it first if scheduled) to be due no earlier than due_ms and at most
  // one tick (16 ms) after.
  void schedule(WheelNode& n, std::uint64_t due_ms);
  static void cancel(WheelNode& n);
  // Moves time to now_ms and calls f(node) for every node now due (unlinked before the
  // call; f may schedule it again, or schedule others).
  template <typename F>
  void advance(std::uint64_t now_ms, F&& f);
  // The time by which advance() should be called next: the start of the next non-empty
  // lowest-level slot, or the next cascade of a higher level; UINT64_MAX when empty.
  std::uint64_t next_wakeup_ms() const;
  std::size_t size() const { return size_; }

 private:
  struct Head : WheelNode {};
  static void unlink(WheelNode& n);
  void link(WheelNode& n, bool cascading);
  void cascade(unsigned level);
  static void push(Head& head, WheelNode& n);

  std::array<std::array<Head, kSlots>, kLevels> slots_{};
  std::uint64_t tick_;  // the last tick processed (ticks of 16 ms since the epoch)
  std::size_t size_ = 0;
};

template <typename F>
void RetryWheel::advance(std::uint64_t now_ms, F&& f) {
  const std::uint64_t target = now_ms >> kTickShift;
  while (tick_ < target) {
    ++tick_;
    // Entering a new lap of a level: spread that level's current slot into the ones below.
    for (unsigned level = 1; level < kLevels; ++level) {
      if ((tick_ & ((std::uint64_t{1} << (kSlotBits * level)) - 1)) != 0) break;
      cascade(level);
    }
    Head& head = slots_[0][tick_ & (kSlots - 1)];
    while (head.next != &head && head.next != nullptr) {
      WheelNode* n = head.next;
      cancel(*n);  // counts it out of size()
      f(*n);
    }
    if (size_ == 0) {
      tick_ = target;  // nothing left to find: jump
      break;
    }
  }
}

}  // namespace ringmta::relay
