// Deadlines for one reactor thread: a hashed timer wheel (1 ms ticks, 4096 slots, laps for
// longer delays) with intrusive timers, so arming, re-arming and cancelling are O(1) and
// no allocation happens per timer. Not thread-safe: one wheel per reactor.
#pragma once

#include <array>
#include <cstdint>

namespace ringmta::io {

class TimerWheel;

// Embed in the object that owns the deadline; it must outlive its arming (cancel first).
class Timer {
 public:
  using Callback = void (*)(Timer&, void* ctx);
  Timer() = default;
  Timer(Callback cb, void* ctx) : cb_(cb), ctx_(ctx) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer();

  void set_callback(Callback cb, void* ctx) {
    cb_ = cb;
    ctx_ = ctx;
  }
  bool armed() const { return wheel_ != nullptr; }
  std::uint64_t expires_ms() const { return expires_; }
  void cancel();

 private:
  friend class TimerWheel;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  TimerWheel* wheel_ = nullptr;
  std::uint64_t expires_ = 0;
  Callback cb_ = nullptr;
  void* ctx_ = nullptr;
};

class TimerWheel {
 public:
  static constexpr std::size_t kSlots = 4096;  // power of two
  static constexpr std::uint64_t kScan = 1024;   // look-ahead when searching the next timer

  explicit TimerWheel(std::uint64_t now_ms) : now_(now_ms) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  ~TimerWheel();

  // Arms (or re-arms) t to fire no earlier than delay_ms from now (now is truncated to the
  // millisecond, so it fires at tick now + delay_ms + 1, at most 1 ms late).
  void arm(Timer& t, std::uint64_t delay_ms);
  void arm_at(Timer& t, std::uint64_t when_ms);
  // Fires every timer due at or before now_ms, in deadline order per tick. Callbacks may
  // arm or cancel any timer, including the one firing.
  void advance(std::uint64_t now_ms);
  // Milliseconds until the reactor should call advance() again: the earliest armed timer,
  // or at most kScan ms ahead when the next ones are further out; -1 if none is armed.
  std::int64_t ms_until_next() const;
  std::size_t armed_count() const { return count_; }
  std::uint64_t now() const { return now_; }

 private:
  friend class Timer;
  void unlink(Timer& t);
  void find_next_due();

  std::array<Timer*, kSlots> slots_{};
  std::uint64_t now_;
  std::uint64_t next_due_ = UINT64_MAX;  // a lower bound of the earliest expiry
  std::size_t count_ = 0;
};

}  // namespace ringmta::io
