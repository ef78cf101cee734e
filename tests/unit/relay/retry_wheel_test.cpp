// RetryWheel: every node fires exactly once, never before its due time and, when the wheel is
// advanced at next_wakeup_ms(), at the end of its 16 ms tick; on every level (seconds,
// minutes, days); cancel, reschedule and size() stay exact; a randomized run agrees with a
// sorted reference.
#include "relay/queue/retry_wheel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace ringmta::relay {
namespace {

constexpr std::uint64_t kTick = std::uint64_t{1} << RetryWheel::kTickShift;  // 16 ms
constexpr std::uint64_t kSecond = 1000;
constexpr std::uint64_t kMinute = 60 * kSecond;
constexpr std::uint64_t kHour = 60 * kMinute;
constexpr std::uint64_t kDay = 24 * kHour;
// Level boundaries in ms: a delay below kLevel1 ticks is on level 0, and so on.
constexpr std::uint64_t kLevel1Ms = (std::uint64_t{1} << 8) * kTick;   // 4.096 s
constexpr std::uint64_t kLevel2Ms = (std::uint64_t{1} << 16) * kTick;  // ~17.5 min
constexpr std::uint64_t kLevel3Ms = (std::uint64_t{1} << 24) * kTick;  // ~3.1 days

struct Job : WheelNode {
  int id = 0;
  int fires = 0;
  std::uint64_t fired_at = 0;
};

// When a node scheduled while the wheel stands at `now` fires: at the end of its due tick,
// and at the earliest the tick after `now`'s.
std::uint64_t expected_fire_ms(std::uint64_t due_ms, std::uint64_t now) {
  const std::uint64_t due_tick = due_ms / kTick + (due_ms % kTick != 0 ? 1 : 0);
  return std::max(due_tick, now / kTick + 1) * kTick;
}

// Drives the wheel as the queue does, advance() at each next_wakeup_ms(), up to `end`;
// every fired Job records the time. Checks that each wake-up is in the future.
void run_until(RetryWheel& w, std::uint64_t& now, std::uint64_t end) {
  for (;;) {
    const std::uint64_t next = w.next_wakeup_ms();
    if (next > end) break;
    ASSERT_GT(next, now);
    now = next;
    w.advance(now, [&](WheelNode& n) {
      auto& j = static_cast<Job&>(n);
      ++j.fires;
      j.fired_at = now;
    });
  }
  now = end;
  w.advance(now, [&](WheelNode& n) {
    auto& j = static_cast<Job&>(n);
    ++j.fires;
    j.fired_at = now;
  });
}

TEST(RetryWheel, EmptyWheel) {
  RetryWheel w(1'000'000);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
  int calls = 0;
  w.advance(1'000'000 + kDay, [&](WheelNode&) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
}

TEST(RetryWheel, ShortDelaysFireAtTheEndOfTheirTick) {
  const std::uint64_t start = 1'000'003;  // not on a tick boundary
  RetryWheel w(start);
  const std::vector<std::uint64_t> delays = {0,   1,    13,   15,   16,   17,   31,  32,
                                             100, 1000, 4079, 4080, 4095, 4096, 4097, 4111};
  std::vector<Job> jobs(delays.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) w.schedule(jobs[i], start + delays[i]);
  EXPECT_EQ(w.size(), jobs.size());
  std::uint64_t now = start;
  run_until(w, now, start + 10 * kSecond);
  EXPECT_EQ(w.size(), 0u);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(delays[i]);
    EXPECT_EQ(jobs[i].fires, 1);
    EXPECT_EQ(jobs[i].fired_at, expected_fire_ms(start + delays[i], start));
    EXPECT_GE(jobs[i].fired_at, start + delays[i]);
    EXPECT_LT(jobs[i].fired_at, std::max(start + delays[i], start) + kTick);
  }
}

TEST(RetryWheel, NeverBeforeItsTime) {
  const std::uint64_t start = 5'000'000;
  RetryWheel w(start);
  Job j;
  w.schedule(j, start + 1000);  // due at 5'001'000, whose tick ends at 5'001'008
  int calls = 0;
  auto count = [&](WheelNode&) { ++calls; };
  w.advance(start + 999, count);
  EXPECT_EQ(calls, 0);
  w.advance(start + 1000, count);  // due, but inside its tick: not yet (ticks end late)
  EXPECT_EQ(calls, 0);
  w.advance(start + 1007, count);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(j.linked());
  w.advance(start + 1008, count);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(j.linked());
  w.advance(start + kDay, count);
  EXPECT_EQ(calls, 1);
}

TEST(RetryWheel, PastDeadlineFiresOnTheNextTick) {
  RetryWheel w(1000);  // tick 62 (992..1007)
  Job a, b;
  w.schedule(a, 0);
  w.schedule(b, 1000);
  EXPECT_EQ(w.next_wakeup_ms(), 1008u);
  int calls = 0;
  w.advance(1007, [&](WheelNode&) { ++calls; });
  EXPECT_EQ(calls, 0);
  w.advance(1008, [&](WheelNode&) { ++calls; });
  EXPECT_EQ(calls, 2);
}

// One node per level and per level boundary, up to 5 days, driven by next_wakeup_ms().
TEST(RetryWheel, EveryLevelFiresOnTime) {
  const std::uint64_t start = 1'764'460'800'123;  // a realistic epoch time, off a tick
  RetryWheel w(start);
  const std::vector<std::uint64_t> delays = {
      5 * kSecond,    kLevel1Ms - 1, kLevel1Ms,     kLevel1Ms + 1, 90 * kSecond,
      5 * kMinute,    kLevel2Ms - 1, kLevel2Ms,     kLevel2Ms + 17, 2 * kHour,
      26 * kHour,     kLevel3Ms - 1, kLevel3Ms,     kLevel3Ms + 1, 4 * kDay,
      5 * kDay,       5 * kDay + 1};
  std::vector<Job> jobs(delays.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) w.schedule(jobs[i], start + delays[i]);
  std::uint64_t now = start;
  run_until(w, now, start + 5 * kDay + kMinute);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(delays[i]);
    EXPECT_EQ(jobs[i].fires, 1);
    EXPECT_EQ(jobs[i].fired_at, expected_fire_ms(start + delays[i], start));
  }
}

// Advanced in coarse, uneven steps: each node fires in the first advance() that reaches the
// end of its tick, never in an earlier one.
TEST(RetryWheel, CoarseStepsFireInTheFirstCallThatReachesTheDeadline) {
  const std::uint64_t start = 7'777'777;
  RetryWheel w(start);
  std::mt19937_64 rng(42);
  std::vector<Job> jobs(400);
  std::vector<std::uint64_t> due(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    // Log-uniform over 1 ms .. 5 days.
    const double e = std::uniform_real_distribution<double>(0, 26.8)(rng);
    due[i] = start + static_cast<std::uint64_t>(std::exp2(e)) % (5 * kDay);
    jobs[i].id = static_cast<int>(i);
    w.schedule(jobs[i], due[i]);
  }
  std::uint64_t prev = start, now = start;
  std::size_t fired = 0;
  while (w.size() != 0) {
    prev = now;
    now += std::uniform_int_distribution<std::uint64_t>(1, 3 * kHour)(rng);
    w.advance(now, [&](WheelNode& n) {
      auto& j = static_cast<Job&>(n);
      const std::uint64_t at = expected_fire_ms(due[static_cast<std::size_t>(j.id)], start);
      EXPECT_LE(at, now) << j.id;
      EXPECT_GT(at, prev) << j.id;
      ++j.fires;
      ++fired;
    });
    ASSERT_LT(now, start + 6 * kDay);
  }
  EXPECT_EQ(fired, jobs.size());
  for (const Job& j : jobs) EXPECT_EQ(j.fires, 1) << j.id;
}

TEST(RetryWheel, OneBigJumpFiresEverythingInDeadlineOrder) {
  const std::uint64_t start = 123'456;
  RetryWheel w(start);
  const std::vector<std::uint64_t> delays = {5 * kDay, 1, kLevel2Ms, 3 * kHour, kLevel3Ms + 5,
                                             kLevel1Ms, 70 * kSecond, 200};
  std::vector<Job> jobs(delays.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].id = static_cast<int>(i);
    w.schedule(jobs[i], start + delays[i]);
  }
  std::vector<std::uint64_t> order;
  w.advance(start + 5 * kDay + kTick, [&](WheelNode& n) {
    order.push_back(delays[static_cast<std::size_t>(static_cast<Job&>(n).id)]);
  });
  std::vector<std::uint64_t> sorted = delays;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(order, sorted);
  EXPECT_EQ(w.size(), 0u);
}

TEST(RetryWheel, CancelBeforeFiring) {
  const std::uint64_t start = 10'000;
  RetryWheel w(start);
  Job near, mid, far, kept;
  w.schedule(near, start + 100);
  w.schedule(mid, start + 10 * kMinute);
  w.schedule(far, start + 4 * kDay);
  w.schedule(kept, start + 2 * kHour);
  EXPECT_EQ(w.size(), 4u);
  RetryWheel::cancel(near);
  EXPECT_FALSE(near.linked());
  EXPECT_EQ(w.size(), 3u);
  RetryWheel::cancel(mid);
  RetryWheel::cancel(far);
  EXPECT_EQ(w.size(), 1u);
  RetryWheel::cancel(far);  // twice: nothing
  Job never;
  RetryWheel::cancel(never);  // never scheduled: nothing
  EXPECT_EQ(w.size(), 1u);
  std::uint64_t now = start;
  run_until(w, now, start + 5 * kDay);
  EXPECT_EQ(near.fires + mid.fires + far.fires, 0);
  EXPECT_EQ(kept.fires, 1);
  EXPECT_EQ(kept.fired_at, expected_fire_ms(start + 2 * kHour, start));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
}

TEST(RetryWheel, CancelEverythingEmptiesTheWheel) {
  RetryWheel w(0);
  std::vector<Job> jobs(100);
  for (std::size_t i = 0; i < jobs.size(); ++i) w.schedule(jobs[i], (i + 1) * 997 * kSecond);
  for (Job& j : jobs) RetryWheel::cancel(j);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
  // An empty wheel jumps: a later schedule is relative to the new time.
  w.advance(10 * kDay, [](WheelNode&) { ADD_FAILURE(); });
  Job j;
  w.schedule(j, 10 * kDay + 50);
  EXPECT_EQ(w.next_wakeup_ms(), expected_fire_ms(10 * kDay + 50, 10 * kDay));
}

TEST(RetryWheel, CancelFromInsideTheCallback) {
  RetryWheel w(0);
  Job a, b, c;
  w.schedule(a, 100);
  w.schedule(b, 100);  // same tick as a
  w.schedule(c, kHour);
  int calls = 0;
  w.advance(200, [&](WheelNode& n) {
    ++calls;
    RetryWheel::cancel(&n == &a ? static_cast<WheelNode&>(b) : static_cast<WheelNode&>(a));
    RetryWheel::cancel(c);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
}

TEST(RetryWheel, RescheduleMovesTheNode) {
  const std::uint64_t start = 50'000;
  RetryWheel w(start);
  Job a, b, c;
  w.schedule(a, start + 10 * kSecond);
  w.schedule(a, start + 2 * kSecond);  // earlier, same level
  w.schedule(b, start + 1 * kSecond);
  w.schedule(b, start + 1 * kDay);  // later, other level
  w.schedule(c, start + 4 * kDay);
  w.schedule(c, start + 300);  // from level 3 to level 0
  EXPECT_EQ(w.size(), 3u);
  std::uint64_t now = start;
  run_until(w, now, start + 2 * kDay);
  EXPECT_EQ(a.fires, 1);
  EXPECT_EQ(a.fired_at, expected_fire_ms(start + 2 * kSecond, start));
  EXPECT_EQ(b.fires, 1);
  EXPECT_EQ(b.fired_at, expected_fire_ms(start + kDay, start));
  EXPECT_EQ(c.fires, 1);
  EXPECT_EQ(c.fired_at, expected_fire_ms(start + 300, start));
  EXPECT_EQ(w.size(), 0u);
}

// A node that schedules itself again from its callback, as a deferred job retried with a
// growing delay: each attempt fires once, at the end of its tick.
TEST(RetryWheel, RescheduleFromTheCallback) {
  const std::uint64_t start = 999;
  RetryWheel w(start);
  Job j;
  std::uint64_t delay = 5 * kSecond;
  std::uint64_t due = start + delay;
  w.schedule(j, due);
  std::vector<std::uint64_t> late;
  std::uint64_t now = start;
  int attempts = 0;
  while (w.size() != 0) {
    const std::uint64_t next = w.next_wakeup_ms();
    ASSERT_GT(next, now);
    now = next;
    w.advance(now, [&](WheelNode& n) {
      ++attempts;
      EXPECT_GE(now, due);
      EXPECT_LT(now, due + kTick);
      if (attempts < 20) {
        delay = std::min<std::uint64_t>(delay * 2, 18 * kHour);
        due = now + delay;
        w.schedule(n, due);
      }
    });
    EXPECT_EQ(w.size(), attempts < 20 ? 1u : 0u);
  }
  EXPECT_EQ(attempts, 20);
}

TEST(RetryWheel, ManyNodesInTheSameSlot) {
  const std::uint64_t start = 0;
  RetryWheel w(start);
  // 1000 due at the same ms, 1000 spread over the same tick, 1000 in one level-2 slot.
  std::vector<Job> same(1000), tick(1000), far(1000);
  for (Job& j : same) w.schedule(j, 3 * kHour + 5);
  for (std::size_t i = 0; i < tick.size(); ++i) w.schedule(tick[i], 3 * kHour + 1 + i % kTick);
  for (std::size_t i = 0; i < far.size(); ++i) w.schedule(far[i], kDay + i * 37);
  EXPECT_EQ(w.size(), 3000u);
  std::uint64_t now = start;
  run_until(w, now, 2 * kDay);
  EXPECT_EQ(w.size(), 0u);
  for (const Job& j : same) {
    ASSERT_EQ(j.fires, 1);
    ASSERT_EQ(j.fired_at, 3 * kHour + kTick);  // 3 h is on a tick boundary
  }
  for (const Job& j : tick) {
    ASSERT_EQ(j.fires, 1);
    ASSERT_EQ(j.fired_at, 3 * kHour + kTick);
  }
  for (std::size_t i = 0; i < far.size(); ++i) {
    ASSERT_EQ(far[i].fires, 1);
    ASSERT_EQ(far[i].fired_at, expected_fire_ms(kDay + i * 37, start)) << i;
  }
}

TEST(RetryWheel, NextWakeupIsTheNextSlotOrCascade) {
  const std::uint64_t start = 256 * kTick * 10 + 5 * kTick + 3;  // tick 2565
  RetryWheel w(start);
  const std::uint64_t lap_end = 256 * kTick * 11;  // the next level-1 cascade (tick 2816)
  Job a, b, c;
  w.schedule(a, start + kHour);  // far: only the cascade is known
  EXPECT_EQ(w.next_wakeup_ms(), lap_end);
  w.schedule(b, start + 2 * kSecond);  // within the lap: its tick end
  EXPECT_EQ(w.next_wakeup_ms(), expected_fire_ms(start + 2 * kSecond, start));
  w.schedule(c, start + 20);
  EXPECT_EQ(w.next_wakeup_ms(), expected_fire_ms(start + 20, start));
  RetryWheel::cancel(c);
  EXPECT_EQ(w.next_wakeup_ms(), expected_fire_ms(start + 2 * kSecond, start));
  RetryWheel::cancel(b);
  EXPECT_EQ(w.next_wakeup_ms(), lap_end);
  // Beyond the lap's end a level-0 node is still only found at the cascade.
  Job d;
  w.schedule(d, lap_end + 100);
  EXPECT_EQ(w.next_wakeup_ms(), lap_end);
  int calls = 0;
  w.advance(lap_end, [&](WheelNode&) { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(w.next_wakeup_ms(), expected_fire_ms(lap_end + 100, lap_end));
  RetryWheel::cancel(a);
  RetryWheel::cancel(d);
  EXPECT_EQ(w.next_wakeup_ms(), UINT64_MAX);
}

TEST(RetryWheel, FarDeadlinesAreNotEarly) {
  const std::uint64_t start = 1'764'460'800'000;
  RetryWheel w(start);
  Job years, never, never2;
  w.schedule(years, start + 3 * 365 * kDay);  // beyond the wheel: clamped, not early
  w.schedule(never, UINT64_MAX);
  w.schedule(never2, UINT64_MAX - 3);
  int calls = 0;
  std::uint64_t now = start;
  for (int i = 0; i < 6; ++i) {
    now += kDay;
    w.advance(now, [&](WheelNode&) { ++calls; });
  }
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_TRUE(years.linked() && never.linked() && never2.linked());
}

// Random schedules, cancels and advances against a sorted reference of (due tick, id).
TEST(RetryWheel, RandomizedAgainstSortedReference) {
  std::mt19937_64 rng(20251130);
  std::uint64_t now = 1'700'000'000'000 + 7;
  RetryWheel w(now);
  std::vector<Job> jobs(3000);
  for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].id = static_cast<int>(i);
  std::map<int, std::uint64_t> fire_at;  // id -> expected fire time (end of its due tick)
  std::multimap<std::uint64_t, int> by_time;
  auto drop = [&](int id) {
    auto it = fire_at.find(id);
    if (it == fire_at.end()) return;
    auto [lo, hi] = by_time.equal_range(it->second);
    for (auto k = lo; k != hi; ++k) {
      if (k->second == id) {
        by_time.erase(k);
        break;
      }
    }
    fire_at.erase(it);
  };
  std::size_t fired_total = 0;
  for (int step = 0; step < 10000; ++step) {
    const unsigned op = std::uniform_int_distribution<unsigned>(0, 99)(rng);
    if (op < 50) {
      const int id = std::uniform_int_distribution<int>(0, static_cast<int>(jobs.size()) - 1)(rng);
      // Mostly seconds to hours, some days, some in the past.
      const double e = std::uniform_real_distribution<double>(-2, 28.7)(rng);
      std::uint64_t due = now + static_cast<std::uint64_t>(std::exp2(std::max(e, 0.0)));
      if (e < 0) due = now - std::min<std::uint64_t>(now, 5000);
      drop(id);
      w.schedule(jobs[static_cast<std::size_t>(id)], due);
      const std::uint64_t at = expected_fire_ms(due, now);
      fire_at[id] = at;
      by_time.emplace(at, id);
    } else if (op < 65) {
      const int id = std::uniform_int_distribution<int>(0, static_cast<int>(jobs.size()) - 1)(rng);
      drop(id);
      RetryWheel::cancel(jobs[static_cast<std::size_t>(id)]);
    } else {
      std::uint64_t to;
      if (op < 85 || w.next_wakeup_ms() == UINT64_MAX) {
        to = now + std::uniform_int_distribution<std::uint64_t>(0, 10 * kSecond)(rng);
      } else if (op < 95) {
        to = w.next_wakeup_ms();
      } else {
        to = now + std::uniform_int_distribution<std::uint64_t>(0, 20 * kMinute)(rng);
      }
      // What must fire: everything whose tick ends by `to`, in time order.
      std::map<int, std::uint64_t> expect;
      for (auto it = by_time.begin(); it != by_time.end() && it->first <= to;) {
        expect.emplace(it->second, it->first);
        fire_at.erase(it->second);
        it = by_time.erase(it);
      }
      std::map<int, std::uint64_t> got;
      std::uint64_t last_at = 0;
      w.advance(to, [&](WheelNode& n) {
        auto& j = static_cast<Job&>(n);
        EXPECT_GE(to, j.due_ms);
        const auto e = expect.find(j.id);
        if (e == expect.end()) {
          ADD_FAILURE() << "fired early: " << j.id << " due " << j.due_ms << " at " << to;
          return;
        }
        EXPECT_TRUE(got.emplace(j.id, e->second).second) << "fired twice: " << j.id;
        EXPECT_GE(e->second, last_at) << "out of order: " << j.id;
        last_at = e->second;
      });
      ASSERT_EQ(got, expect) << "step " << step << " advance to " << to;
      fired_total += got.size();
      now = std::max(now, to);
    }
    ASSERT_EQ(w.size(), fire_at.size()) << "step " << step;
    if (!by_time.empty()) {
      // The wake-up is in the future and no later than the earliest deadline.
      const std::uint64_t next = w.next_wakeup_ms();
      ASSERT_GT(next, now);
      ASSERT_LE(next, by_time.begin()->first);
    } else {
      ASSERT_EQ(w.next_wakeup_ms(), UINT64_MAX);
    }
  }
  EXPECT_GT(fired_total, 1000u);  // the run did exercise firing
}

}  // namespace
}  // namespace ringmta::relay
