// Hashed timer wheel; see timer_wheel.hpp.
#include "core/io/timer_wheel.hpp"

namespace ringmta::io {

Timer::~Timer() { cancel(); }

void Timer::cancel() {
  if (wheel_ != nullptr) wheel_->unlink(*this);
}

TimerWheel::~TimerWheel() {
  for (Timer*& head : slots_) {
    while (head != nullptr) unlink(*head);
  }
}

void TimerWheel::unlink(Timer& t) {
  Timer*& head = slots_[t.expires_ & (kSlots - 1)];
  if (t.prev_ != nullptr) t.prev_->next_ = t.next_;
  else head = t.next_;
  if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
  t.prev_ = t.next_ = nullptr;
  t.wheel_ = nullptr;
  --count_;
}

void TimerWheel::arm(Timer& t, std::uint64_t delay_ms) {
  // The wheel's time is whole milliseconds, truncated: the real time may be up to 1 ms
  // later, so one more tick makes "not before delay_ms" hold.
  arm_at(t, now_ + delay_ms + 1);
}

void TimerWheel::arm_at(Timer& t, std::uint64_t when_ms) {
  if (t.wheel_ != nullptr) unlink(t);
  if (when_ms <= now_) when_ms = now_ + 1;  // fires on the next advance, never re-entrantly
  t.expires_ = when_ms;
  Timer*& head = slots_[when_ms & (kSlots - 1)];
  t.prev_ = nullptr;
  t.next_ = head;
  if (head != nullptr) head->prev_ = &t;
  head = &t;
  t.wheel_ = this;
  ++count_;
  if (when_ms < next_due_) next_due_ = when_ms;
}

void TimerWheel::advance(std::uint64_t now_ms) {
  // Visit each tick from the last one seen; a gap longer than the wheel visits each slot
  // once (timers of later laps stay where they are).
  std::uint64_t from = now_ + 1;
  if (now_ms >= from + kSlots) from = now_ms - kSlots + 1;
  for (std::uint64_t tick = from; tick <= now_ms; ++tick) {
    now_ = tick;
    Timer* t = slots_[tick & (kSlots - 1)];
    while (t != nullptr) {
      Timer* next = t->next_;
      if (t->expires_ <= now_ms) {
        unlink(*t);
        // The callback may re-arm t or cancel `next`; restart the slot scan if so.
        Timer::Callback cb = t->cb_;
        void* ctx = t->ctx_;
        if (cb != nullptr) cb(*t, ctx);
        next = slots_[tick & (kSlots - 1)];
        // Skip timers of this slot that are not due (later laps) from the start again.
        while (next != nullptr && next->expires_ > now_ms) next = next->next_;
      }
      t = next;
    }
  }
  if (now_ms > now_) now_ = now_ms;
  if (next_due_ <= now_) find_next_due();
}

void TimerWheel::find_next_due() {
  // A timer in the slot of tick T expires at T or a later lap (T + k * kSlots), so over the
  // next kScan ticks the first slot holding a timer that expires at its own tick is the next.
  next_due_ = UINT64_MAX;
  if (count_ == 0) return;
  for (std::uint64_t tick = now_ + 1; tick <= now_ + kScan; ++tick) {
    for (const Timer* t = slots_[tick & (kSlots - 1)]; t != nullptr; t = t->next_) {
      if (t->expires_ == tick) {
        next_due_ = tick;
        return;
      }
    }
  }
  next_due_ = now_ + kScan;  // nothing soon: look again then
}

std::int64_t TimerWheel::ms_until_next() const {
  if (count_ == 0) return -1;
  return next_due_ <= now_ ? 0 : static_cast<std::int64_t>(next_due_ - now_);
}

}  // namespace ringmta::io
