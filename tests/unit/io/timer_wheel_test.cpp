// TimerWheel: deadlines fire once, in order, not early; re-arm and cancel are O(1) and
// safe from inside a callback; delays longer than the wheel wrap correctly.
#include "core/io/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace ringmta::io {
namespace {

struct Fired {
  std::vector<int> order;
};

struct Tagged {
  Timer timer;
  int id;
  Fired* fired;
  Tagged(int i, Fired* f) : id(i), fired(f) {
    timer.set_callback([](Timer&, void* ctx) {
      auto* self = static_cast<Tagged*>(ctx);
      self->fired->order.push_back(self->id);
    }, this);
  }
};

TEST(TimerWheel, FiresInDeadlineOrderAndNotEarly) {
  TimerWheel w(1000);
  Fired f;
  Tagged a(1, &f), b(2, &f), c(3, &f);
  // The wheel's now is a truncated millisecond: a delay d fires at tick now + d + 1, so it is
  // never early.
  w.arm(a.timer, 30);
  w.arm(b.timer, 10);
  w.arm(c.timer, 20);
  EXPECT_EQ(w.ms_until_next(), 11);
  w.advance(1010);
  EXPECT_TRUE(f.order.empty());
  w.advance(1025);
  EXPECT_EQ(f.order, (std::vector<int>{2, 3}));
  EXPECT_EQ(w.armed_count(), 1u);
  w.advance(1030);
  EXPECT_EQ(f.order, (std::vector<int>{2, 3}));
  w.advance(1031);
  EXPECT_EQ(f.order, (std::vector<int>{2, 3, 1}));
  EXPECT_EQ(w.ms_until_next(), -1);
}

TEST(TimerWheel, RearmAndCancel) {
  TimerWheel w(0);
  Fired f;
  Tagged a(1, &f), b(2, &f);
  w.arm(a.timer, 5);
  w.arm(b.timer, 5);
  w.arm(a.timer, 50);  // re-arm moves it
  b.timer.cancel();
  EXPECT_FALSE(b.timer.armed());
  w.advance(10);
  EXPECT_TRUE(f.order.empty());
  w.advance(51);
  EXPECT_EQ(f.order, (std::vector<int>{1}));
}

TEST(TimerWheel, LongerThanTheWheelWraps) {
  TimerWheel w(0);
  Fired f;
  Tagged a(1, &f), b(2, &f);
  w.arm(a.timer, TimerWheel::kSlots * 3 + 7);  // same slot as b, three laps later
  w.arm(b.timer, 7);
  w.advance(8);
  EXPECT_EQ(f.order, (std::vector<int>{2}));
  for (std::uint64_t t = 9; t < TimerWheel::kSlots * 3 + 8; t += 500) w.advance(t);
  EXPECT_EQ(f.order, (std::vector<int>{2}));
  w.advance(TimerWheel::kSlots * 3 + 8);
  EXPECT_EQ(f.order, (std::vector<int>{2, 1}));
}

TEST(TimerWheel, BigJumpFiresEverythingDue) {
  TimerWheel w(0);
  Fired f;
  Tagged a(1, &f), b(2, &f), c(3, &f);
  w.arm(a.timer, 100);
  w.arm(b.timer, 9000);
  w.arm(c.timer, 20000);
  w.advance(15000);
  EXPECT_EQ(f.order.size(), 2u);
  EXPECT_TRUE(c.timer.armed());
}

TEST(TimerWheel, CallbackMayRearmItself) {
  TimerWheel w(0);
  int count = 0;
  Timer t;
  struct Ctx {
    TimerWheel* w;
    int* count;
  } ctx{&w, &count};
  t.set_callback([](Timer& self, void* p) {
    auto* c = static_cast<Ctx*>(p);
    if (++*c->count < 5) c->w->arm(self, 10);
  }, &ctx);
  w.arm(t, 10);
  for (std::uint64_t now = 1; now <= 100; ++now) w.advance(now);
  EXPECT_EQ(count, 5);
}

TEST(TimerWheel, NextDueIsExactOrALookAheadBound) {
  TimerWheel w(0);
  Fired f;
  Tagged a(1, &f), b(2, &f);
  w.arm(a.timer, 300'000);  // a 5-minute session deadline
  w.advance(1);
  EXPECT_EQ(w.ms_until_next(), 300'000);  // due at 300001: the cached bound is exact here
  w.arm(b.timer, 5);
  EXPECT_EQ(w.ms_until_next(), 6);  // due at 7, now 1
  w.advance(7);  // b fired; the next is found by a bounded scan, not a full walk
  EXPECT_EQ(f.order, (std::vector<int>{2}));
  const auto next = w.ms_until_next();
  EXPECT_GT(next, 0);
  EXPECT_LE(next, static_cast<std::int64_t>(TimerWheel::kScan));  // wakes to look again
  EXPECT_EQ(w.armed_count(), 1u);
}

TEST(TimerWheel, DestroyingAnArmedTimerUnlinksIt) {
  TimerWheel w(0);
  {
    Timer t;
    w.arm(t, 10);
    EXPECT_EQ(w.armed_count(), 1u);
  }
  EXPECT_EQ(w.armed_count(), 0u);
  w.advance(100);
}

}  // namespace
}  // namespace ringmta::io
