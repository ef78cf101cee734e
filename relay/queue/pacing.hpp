// How fast one destination is fed: the retry schedule (exponential with jitter), a token
// bucket for its message rate, and its concurrency window (additive increase, halved when the
// destination pushes back with 421 or 4.7.x, as Postfix's concurrency feedback and TCP's
// congestion control do). Pure arithmetic on times the caller passes; per thread.
#pragma once

#include <cstdint>

#include "relay/delivery_config.hpp"

namespace ringmta::relay {

// The delay before the next attempt after `attempts` failed ones (1 = the first failed):
// first_delay * factor^(attempts-1), at most max_delay, times (1 + jitter * (2 * random01 - 1)).
std::uint64_t retry_delay_ms(const RetryPolicy& p, unsigned attempts, double random01);

class TokenBucket {
 public:
  // rate: tokens per second (0 = unlimited); holds at most max(1, rate) tokens (one second).
  void configure(double rate, std::uint64_t now_ms);
  bool unlimited() const { return rate_ <= 0; }
  // Takes a token if there is one.
  bool take(std::uint64_t now_ms);
  // How long until a token will be there (0 if there is one now), at most a day.
  std::uint64_t wait_ms(std::uint64_t now_ms);

 private:
  void refill(std::uint64_t now_ms);
  double rate_ = 0;
  double capacity_ = 1;
  double tokens_ = 1;
  std::uint64_t last_ms_ = 0;
};

class ConcurrencyWindow {
 public:
  void configure(std::uint32_t limit) {
    limit_ = limit < 1 ? 1 : limit;
    window_ = limit_;
    successes_ = 0;
  }
  std::uint32_t limit() const { return limit_; }
  std::uint32_t current() const { return window_; }
  // A delivery went through: grow by one connection per `current()` successes (counted in
  // whole numbers: window += 1/window in floating point needs more than that).
  void on_success() {
    if (window_ >= limit_) return;
    if (++successes_ >= window_) {
      ++window_;
      successes_ = 0;
    }
  }
  // The destination asked us to slow down: halve (at least 1).
  void on_throttle() {
    window_ = window_ / 2 < 1 ? 1 : window_ / 2;
    successes_ = 0;
  }

 private:
  std::uint32_t limit_ = 1;
  std::uint32_t window_ = 1;
  std::uint32_t successes_ = 0;  // since the window last changed
};

}  // namespace ringmta::relay
