// The hierarchical retry wheel; see retry_wheel.hpp.
#include "relay/queue/retry_wheel.hpp"

namespace ringmta::relay {

RetryWheel::RetryWheel(std::uint64_t now_ms) : tick_(now_ms >> kTickShift) {
  for (auto& level : slots_) {
    for (Head& h : level) h.prev = h.next = &h;
  }
}

void RetryWheel::push(Head& head, WheelNode& n) {
  n.next = &head;
  n.prev = head.prev;
  head.prev->next = &n;
  head.prev = &n;
}

void RetryWheel::unlink(WheelNode& n) {
  n.prev->next = n.next;
  n.next->prev = n.prev;
  n.prev = n.next = nullptr;
}

void RetryWheel::cancel(WheelNode& n) {
  if (!n.linked()) return;
  unlink(n);
  if (n.wheel != nullptr) --n.wheel->size_;
  n.wheel = nullptr;
}

void RetryWheel::schedule(WheelNode& n, std::uint64_t due_ms) {
  cancel(n);  // from this wheel or another
  n.due_ms = due_ms;
  link(n, false);
  n.wheel = this;
  ++size_;
}

void RetryWheel::link(WheelNode& n, bool cascading) {
  // Due at the end of its tick (never early), and at the earliest the next tick; when a
  // cascade brings it down, this tick (whose slot is processed right after).
  // (Rounded up without n.due_ms + 15, which wraps for a due time near UINT64_MAX.)
  std::uint64_t due = (n.due_ms >> kTickShift) + ((n.due_ms & ((1u << kTickShift) - 1)) != 0);
  if (cascading && due <= tick_) due = tick_;
  if (!cascading && due <= tick_) due = tick_ + 1;
  const std::uint64_t delta = due - tick_;
  unsigned level = 0;
  while (level + 1 < kLevels && delta >= (std::uint64_t{1} << (kSlotBits * (level + 1)))) {
    ++level;
  }
  const std::uint64_t span = std::uint64_t{1} << (kSlotBits * kLevels);
  if (delta >= span) due = tick_ + span - 1;  // beyond the last level: clamped
  const unsigned slot =
      static_cast<unsigned>((due >> (kSlotBits * level)) & (kSlots - 1));
  push(slots_[level][slot], n);
}

void RetryWheel::cascade(unsigned level) {
  Head& head = slots_[level][(tick_ >> (kSlotBits * level)) & (kSlots - 1)];
  while (head.next != &head) {
    WheelNode* n = head.next;
    unlink(*n);  // still on this wheel: size() and n->wheel stay
    link(*n, true);  // now closer: lands on a lower level (or this tick's slot at level 0)
  }
}

std::uint64_t RetryWheel::next_wakeup_ms() const {
  if (size_ == 0) return UINT64_MAX;
  // The next non-empty lowest slot within this lap...
  for (std::uint64_t t = tick_ + 1; t <= tick_ + kSlots; ++t) {
    if ((t & (kSlots - 1)) == 0) return t << kTickShift;  // ...or the next cascade
    const Head& h = slots_[0][t & (kSlots - 1)];
    if (h.next != &h) return t << kTickShift;
  }
  return (tick_ + 1) << kTickShift;
}

}  // namespace ringmta::relay
