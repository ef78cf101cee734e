// Retry schedule, token bucket; see pacing.hpp.
#include "relay/queue/pacing.hpp"

#include <cmath>

namespace ringmta::relay {
namespace {

// Token arithmetic is in doubles: a token due at a whole millisecond may come out a hair
// short of 1 then. take() accepts that much less than a token, and wait_ms() aims for half
// of it, so that waiting wait_ms() always finds a token (and never waits a ms too long).
constexpr double kTokenSlack = 1e-9;
// The longest wait_ms() answers (a day): a slower token is waited for again, and a rate as
// small as the configuration allows (any positive number) cannot overflow the conversion.
constexpr double kMaxWaitMs = 86'400'000;

}  // namespace

std::uint64_t retry_delay_ms(const RetryPolicy& p, unsigned attempts, double random01) {
  double d = static_cast<double>(p.first_delay_ms);
  const double cap = static_cast<double>(p.max_delay_ms);
  // pow, not a loop: the cost must not grow with the attempt count (with factor 1 a loop
  // would never reach the cap). An infinite power is capped below.
  if (attempts > 1 && d > 0 && d < cap && p.factor > 1) {
    d *= std::pow(p.factor, static_cast<double>(attempts - 1));
  }
  if (d > cap) d = cap;
  d *= 1.0 + p.jitter * (2.0 * random01 - 1.0);
  return d < 1 ? 1 : static_cast<std::uint64_t>(d);
}

void TokenBucket::configure(double rate, std::uint64_t now_ms) {
  rate_ = rate;
  capacity_ = rate > 1 ? rate : 1;
  tokens_ = capacity_;
  last_ms_ = now_ms;
}

void TokenBucket::refill(std::uint64_t now_ms) {
  if (now_ms > last_ms_) {
    tokens_ += rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0;
    if (tokens_ > capacity_) tokens_ = capacity_;
    last_ms_ = now_ms;
  }
}

bool TokenBucket::take(std::uint64_t now_ms) {
  if (unlimited()) return true;
  refill(now_ms);
  if (tokens_ < 1 - kTokenSlack) return false;
  tokens_ -= 1;
  return true;
}

std::uint64_t TokenBucket::wait_ms(std::uint64_t now_ms) {
  if (unlimited()) return 0;
  refill(now_ms);
  const double need = 1 - kTokenSlack / 2 - tokens_;
  if (need <= 0) return 0;
  const double ms = std::ceil(need * 1000.0 / rate_);
  return ms >= kMaxWaitMs ? static_cast<std::uint64_t>(kMaxWaitMs) : static_cast<std::uint64_t>(ms);
}

}  // namespace ringmta::relay
