// Pacing of one destination: the retry delay (exponential, capped, jittered), the token
// bucket (rate over simulated time, burst, unlimited, wait_ms) and the concurrency window
// (halved on throttle down to 1, grown back by one per window of successes, capped).
#include "relay/queue/pacing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>

namespace ringmta::relay {
namespace {

RetryPolicy policy(std::uint64_t first, double factor, std::uint64_t max, double jitter) {
  RetryPolicy p;
  p.first_delay_ms = first;
  p.factor = factor;
  p.max_delay_ms = max;
  p.jitter = jitter;
  return p;
}

// ---- retry_delay_ms ---------------------------------------------------------------------

TEST(RetryDelay, GrowsByTheFactorUpToTheCap) {
  const RetryPolicy p = policy(300'000, 2.0, 4'000'000, 0.2);
  // random01 = 0.5: no jitter.
  EXPECT_EQ(retry_delay_ms(p, 1, 0.5), 300'000u);
  EXPECT_EQ(retry_delay_ms(p, 2, 0.5), 600'000u);
  EXPECT_EQ(retry_delay_ms(p, 3, 0.5), 1'200'000u);
  EXPECT_EQ(retry_delay_ms(p, 4, 0.5), 2'400'000u);
  EXPECT_EQ(retry_delay_ms(p, 5, 0.5), 4'000'000u);  // 4'800'000 capped
  EXPECT_EQ(retry_delay_ms(p, 6, 0.5), 4'000'000u);
  EXPECT_EQ(retry_delay_ms(p, 100, 0.5), 4'000'000u);
  EXPECT_EQ(retry_delay_ms(p, 0, 0.5), 300'000u);  // 0 counts as the first
}

TEST(RetryDelay, NonIntegerFactor) {
  const RetryPolicy p = policy(1000, 1.5, 10'000, 0);
  EXPECT_EQ(retry_delay_ms(p, 1, 0.9), 1000u);
  EXPECT_EQ(retry_delay_ms(p, 2, 0.9), 1500u);
  EXPECT_EQ(retry_delay_ms(p, 3, 0.9), 2250u);
  EXPECT_EQ(retry_delay_ms(p, 4, 0.9), 3375u);
  EXPECT_EQ(retry_delay_ms(p, 7, 0.9), 10'000u);  // 11390.625 capped
}

TEST(RetryDelay, FactorOneIsConstant) {
  const RetryPolicy p = policy(60'000, 1.0, 3'600'000, 0);
  for (unsigned a : {1u, 2u, 10u, 1000u}) EXPECT_EQ(retry_delay_ms(p, a, 0.3), 60'000u) << a;
}

TEST(RetryDelay, JitterStaysWithinItsBounds) {
  const RetryPolicy p = policy(300'000, 2.0, 4'000'000, 0.2);
  EXPECT_EQ(retry_delay_ms(p, 1, 0.0), 240'000u);  // 300'000 * (1 - 0.2)
  EXPECT_EQ(retry_delay_ms(p, 1, 1.0), 360'000u);  // 300'000 * (1 + 0.2)
  EXPECT_EQ(retry_delay_ms(p, 9, 0.0), 3'200'000u);
  EXPECT_EQ(retry_delay_ms(p, 9, 1.0), 4'800'000u);
  for (unsigned attempts : {1u, 3u, 5u, 20u}) {
    const std::uint64_t base = retry_delay_ms(p, attempts, 0.5);
    std::uint64_t prev = 0;
    for (int i = 0; i <= 1000; ++i) {
      const double r = i / 1000.0;
      const std::uint64_t d = retry_delay_ms(p, attempts, r);
      ASSERT_GE(d, base * 8 / 10) << attempts << " " << r;
      ASSERT_LE(d, base * 12 / 10) << attempts << " " << r;
      ASSERT_GE(d, prev) << "not monotonic in random01 at " << r;
      prev = d;
    }
  }
  // The largest jitter the configuration allows (0.5).
  const RetryPolicy wide = policy(1000, 2.0, 8000, 0.5);
  EXPECT_EQ(retry_delay_ms(wide, 1, 0.0), 500u);
  EXPECT_EQ(retry_delay_ms(wide, 1, 1.0), 1500u);
  EXPECT_EQ(retry_delay_ms(wide, 30, 1.0), 12'000u);
}

TEST(RetryDelay, AtLeastOneMillisecond) {
  const RetryPolicy p = policy(1, 2.0, 1, 0.5);
  EXPECT_EQ(retry_delay_ms(p, 1, 0.0), 1u);  // 0.5 ms
  EXPECT_EQ(retry_delay_ms(p, 1, 1.0), 1u);  // 1.5 ms, truncated
}

TEST(RetryDelay, HugeAttemptCountsAreSafeAndFast) {
  const auto t0 = std::chrono::steady_clock::now();
  // The largest delays the configuration allows (a day) with the largest factor and jitter.
  const RetryPolicy big = policy(86'400'000, 10.0, 86'400'000, 0.5);
  EXPECT_EQ(retry_delay_ms(big, UINT_MAX, 1.0), 129'600'000u);
  const RetryPolicy p = policy(300'000, 2.0, 4'000'000, 0.2);
  EXPECT_EQ(retry_delay_ms(p, UINT_MAX, 0.5), 4'000'000u);
  EXPECT_EQ(retry_delay_ms(p, UINT_MAX - 1, 0.0), 3'200'000u);
  // Factor 1 never reaches the cap: the count must not cost a loop of its size.
  const RetryPolicy flat = policy(1000, 1.0, 86'400'000, 0);
  EXPECT_EQ(retry_delay_ms(flat, UINT_MAX, 0.5), 1000u);
  const RetryPolicy slow = policy(1, 1.0000001, 86'400'000, 0);
  EXPECT_EQ(retry_delay_ms(slow, UINT_MAX, 0.5), 86'400'000u);  // 1.0000001^4e9 > 8.64e7
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(elapsed, std::chrono::milliseconds(200));
}

// ---- TokenBucket ------------------------------------------------------------------------

TEST(TokenBucket, RateZeroIsUnlimited) {
  TokenBucket b;
  b.configure(0, 1000);
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(b.take(1000));
  EXPECT_EQ(b.wait_ms(1000), 0u);
  // A default bucket is unlimited too.
  TokenBucket d;
  EXPECT_TRUE(d.unlimited());
  EXPECT_TRUE(d.take(0));
  EXPECT_TRUE(d.take(0));
}

TEST(TokenBucket, BurstIsOneSecondOfTokens) {
  TokenBucket b;
  b.configure(10, 5000);
  EXPECT_FALSE(b.unlimited());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(5000)) << i;
  EXPECT_FALSE(b.take(5000));
  EXPECT_EQ(b.wait_ms(5000), 100u);
  EXPECT_FALSE(b.take(5099));
  EXPECT_EQ(b.wait_ms(5099), 1u);
  EXPECT_TRUE(b.take(5100));
  EXPECT_FALSE(b.take(5100));
  // A long idle time fills the bucket to one second's worth, no more.
  int n = 0;
  while (b.take(5100 + 3'600'000)) ++n;
  EXPECT_EQ(n, 10);
}

TEST(TokenBucket, RateBelowOneHoldsOneToken) {
  TokenBucket b;
  b.configure(0.5, 0);
  EXPECT_TRUE(b.take(0));
  EXPECT_FALSE(b.take(0));
  EXPECT_EQ(b.wait_ms(0), 2000u);
  EXPECT_FALSE(b.take(1999));
  EXPECT_EQ(b.wait_ms(1999), 1u);
  EXPECT_TRUE(b.take(2000));
  int n = 0;
  while (b.take(1'000'000)) ++n;
  EXPECT_EQ(n, 1);
}

// Taken as fast as it allows, 1 ms steps for 10 s: the burst plus rate * 10 s.
TEST(TokenBucket, RateOverSimulatedTime) {
  for (double rate : {1.0, 7.0, 50.0, 333.0}) {
    TokenBucket b;
    b.configure(rate, 1'000'000);
    const int burst = static_cast<int>(rate);
    int taken = 0;
    for (std::uint64_t t = 1'000'000; t <= 1'010'000; ++t) {
      while (b.take(t)) ++taken;
    }
    const int expected = burst + static_cast<int>(rate * 10);
    EXPECT_GE(taken, expected - 1) << rate;
    EXPECT_LE(taken, expected) << rate;
  }
}

// A sender that sleeps wait_ms() each time: the token is there then, not a ms earlier, and
// the long-run rate is the configured one.
TEST(TokenBucket, WaitMsIsExact) {
  for (double rate : {0.25, 3.0, 40.0, 1000.0, 12345.0}) {
    TokenBucket b;
    std::uint64_t now = 77;
    b.configure(rate, now);
    while (b.take(now)) {
    }
    const int n = 500;
    for (int i = 0; i < n; ++i) {
      const std::uint64_t w = b.wait_ms(now);
      if (w > 0) {
        ASSERT_FALSE(b.take(now + w - 1)) << rate << " " << i;
        ASSERT_EQ(b.wait_ms(now + w - 1), 1u) << rate << " " << i;
      }
      now += w;
      ASSERT_TRUE(b.take(now)) << rate << " " << i;
    }
    // n tokens at `rate`, each wait rounded up to a whole ms.
    const double ideal = n * 1000.0 / rate;
    EXPECT_GE(static_cast<double>(now - 77), ideal - 1000.0 / rate) << rate;
    EXPECT_LE(static_cast<double>(now - 77), ideal + n) << rate;
  }
}

TEST(TokenBucket, ReconfigureAndClockGoingBack) {
  TokenBucket b;
  b.configure(2, 10'000);
  EXPECT_TRUE(b.take(10'000));
  EXPECT_TRUE(b.take(10'000));
  EXPECT_FALSE(b.take(9'000));  // an earlier time adds nothing
  EXPECT_EQ(b.wait_ms(9'000), 500u);
  b.configure(0, 10'000);
  EXPECT_TRUE(b.unlimited());
  EXPECT_TRUE(b.take(10'000));
  b.configure(1, 20'000);  // full again
  EXPECT_TRUE(b.take(20'000));
  EXPECT_FALSE(b.take(20'000));
  EXPECT_EQ(b.wait_ms(20'000), 1000u);
}

// Any positive rate is valid configuration: a wait longer than a day is answered as a day
// (then asked again), never as 0 or a wrapped value.
TEST(TokenBucket, LongWaitsAreADay) {
  for (double rate : {1e-30, 1e-6}) {
    TokenBucket b;
    b.configure(rate, 0);
    EXPECT_TRUE(b.take(0));
    EXPECT_EQ(b.wait_ms(0), 86'400'000u) << rate;
    EXPECT_FALSE(b.take(86'400'000)) << rate;
    EXPECT_EQ(b.wait_ms(86'400'000), 86'400'000u) << rate;
  }
  TokenBucket b;
  b.configure(1.0 / 43'200, 0);  // one token in 12 hours
  EXPECT_TRUE(b.take(0));
  EXPECT_EQ(b.wait_ms(0), 43'200'000u);
  EXPECT_TRUE(b.take(43'200'000));
}

// ---- ConcurrencyWindow ------------------------------------------------------------------

TEST(ConcurrencyWindow, StartsAtTheLimit) {
  ConcurrencyWindow w;
  EXPECT_EQ(w.limit(), 1u);
  EXPECT_EQ(w.current(), 1u);
  w.configure(20);
  EXPECT_EQ(w.limit(), 20u);
  EXPECT_EQ(w.current(), 20u);
  w.configure(0);  // at least one connection
  EXPECT_EQ(w.limit(), 1u);
  EXPECT_EQ(w.current(), 1u);
}

TEST(ConcurrencyWindow, HalvesOnThrottleWithAFloorOfOne) {
  ConcurrencyWindow w;
  w.configure(20);
  w.on_throttle();
  EXPECT_EQ(w.current(), 10u);
  w.on_throttle();
  EXPECT_EQ(w.current(), 5u);
  w.on_throttle();
  EXPECT_EQ(w.current(), 2u);  // 2.5
  w.on_throttle();
  EXPECT_EQ(w.current(), 1u);  // 1.25
  w.on_throttle();
  EXPECT_EQ(w.current(), 1u);
  for (int i = 0; i < 100; ++i) w.on_throttle();
  EXPECT_EQ(w.current(), 1u);
  EXPECT_EQ(w.limit(), 20u);
}

// From window n it takes n successes to reach n + 1: from 4 back to 8 is 4+5+6+7 = 22.
TEST(ConcurrencyWindow, GrowsBackByOnePerWindowOfSuccesses) {
  for (std::uint32_t limit : {2u, 3u, 8u, 10u, 64u}) {
    ConcurrencyWindow w;
    w.configure(limit);
    for (int i = 0; i < 10; ++i) w.on_throttle();
    ASSERT_EQ(w.current(), 1u);
    for (std::uint32_t n = 1; n < limit; ++n) {
      for (std::uint32_t k = 0; k + 1 < n; ++k) {
        w.on_success();
        ASSERT_EQ(w.current(), n) << "limit " << limit << " after " << k + 1 << " of " << n;
      }
      w.on_success();
      ASSERT_EQ(w.current(), n + 1) << "limit " << limit << " window " << n;
    }
    for (int i = 0; i < 1000; ++i) w.on_success();
    EXPECT_EQ(w.current(), limit);
  }
}

TEST(ConcurrencyWindow, NeverAboveItsLimit) {
  ConcurrencyWindow w;
  w.configure(8);
  for (int i = 0; i < 1000; ++i) {
    w.on_success();
    ASSERT_EQ(w.current(), 8u);
  }
  w.on_throttle();  // 4
  w.on_throttle();  // 2
  for (int i = 0; i < 5; ++i) w.on_success();  // 2 -> 3 after 2, -> 4 after 3 more
  EXPECT_EQ(w.current(), 4u);
  for (int i = 0; i < 10'000; ++i) {
    w.on_success();
    ASSERT_LE(w.current(), 8u);
  }
  EXPECT_EQ(w.current(), 8u);
  w.configure(3);  // a lower limit takes effect at once
  EXPECT_EQ(w.current(), 3u);
  w.on_success();
  EXPECT_EQ(w.current(), 3u);
}

}  // namespace
}  // namespace ringmta::relay
