// AuthFailureLimiter: blocking at the limit, windows closing, independent clients, successes
// not resetting, the memory bound.
#include "core/auth/failure_limiter.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ringmta::auth {
namespace {

TEST(AuthFailureLimiter, BlocksAtTheLimitUntilTheWindowCloses) {
  AuthFailureLimiter l({.max_failures = 3, .window_ms = 1000, .max_clients = 100});
  EXPECT_FALSE(l.blocked("192.0.2.1", 0));
  l.record_failure("192.0.2.1", 0);
  l.record_failure("192.0.2.1", 400);
  EXPECT_FALSE(l.blocked("192.0.2.1", 500));
  EXPECT_EQ(l.failures("192.0.2.1", 500), 2u);
  l.record_failure("192.0.2.1", 999);
  EXPECT_TRUE(l.blocked("192.0.2.1", 999));
  EXPECT_FALSE(l.blocked("192.0.2.2", 999));  // another client
  // The window opened at the first failure (t=0) closes at t=1000.
  EXPECT_FALSE(l.blocked("192.0.2.1", 1000));
  EXPECT_EQ(l.failures("192.0.2.1", 1000), 0u);
  l.record_failure("192.0.2.1", 1500);  // a new window
  EXPECT_EQ(l.failures("192.0.2.1", 1500), 1u);
  EXPECT_FALSE(l.blocked("192.0.2.1", 1500));
}

TEST(AuthFailureLimiter, ZeroMaxNeverBlocks) {
  AuthFailureLimiter l({.max_failures = 0, .window_ms = 1000, .max_clients = 10});
  for (int i = 0; i < 100; ++i) l.record_failure("c", 5);
  EXPECT_FALSE(l.blocked("c", 5));
  EXPECT_EQ(l.failures("c", 5), 100u);
}

TEST(AuthFailureLimiter, PrunesClosedWindows) {
  AuthFailureLimiter l({.max_failures = 2, .window_ms = 100, .max_clients = 1000});
  for (int i = 0; i < 10; ++i) l.record_failure("c" + std::to_string(i), i * 10);
  EXPECT_EQ(l.tracked(), 10u);
  l.prune(150);  // windows opened at t <= 50 are closed (100 ms later)
  EXPECT_EQ(l.tracked(), 4u);
  EXPECT_EQ(l.failures("c9", 150), 1u);
}

TEST(AuthFailureLimiter, MemoryIsBounded) {
  AuthFailureLimiter l({.max_failures = 2, .window_ms = 1'000'000, .max_clients = 4});
  l.record_failure("old", 0);
  l.record_failure("old", 1);
  EXPECT_TRUE(l.blocked("old", 2));
  for (int i = 0; i < 3; ++i) l.record_failure("n" + std::to_string(i), 10 + i);
  EXPECT_EQ(l.tracked(), 4u);
  l.record_failure("newest", 20);  // full of open windows: the oldest ("old") goes
  EXPECT_EQ(l.tracked(), 4u);
  EXPECT_FALSE(l.blocked("old", 21));
  EXPECT_EQ(l.failures("n0", 21), 1u);
  EXPECT_EQ(l.failures("newest", 21), 1u);
}

}  // namespace
}  // namespace ringmta::auth
