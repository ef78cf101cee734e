// Histogram: percentiles against the exact order statistics of the same values, the bucket
// layout's error bound (exhaustively on small layouts), merging, edge values, and no allocation
// on record().
#include "core/stats/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "tests/unit/smtp/alloc_counter.hpp"

namespace ringmta::stats {
namespace {

constexpr std::uint64_t kLowest = 1'000;               // default: 1 us in ns
constexpr std::uint64_t kHighest = 60'000'000'000ull;  // default: 60 s in ns
constexpr double kBound = 1.0 / 128;                   // 2^-7, the default sub_bucket_bits
constexpr double kRequired = 0.01;                     // what the loadgen needs
const std::vector<double> kPercentiles = {50, 75, 90, 99, 99.9, 99.99, 100};

using Bucket = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

std::vector<Bucket> buckets_of(const Histogram& h) {
  std::vector<Bucket> out;
  h.for_each_bucket(
      [&](std::uint64_t lo, std::uint64_t hi, std::uint64_t n) { out.emplace_back(lo, hi, n); });
  return out;
}

// Nearest rank, the definition value_at_percentile() documents.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (p <= 0) return sorted.front();
  return sorted[percentile_rank(p, sorted.size()) - 1];
}

// Records `values`, then checks count/min/max/mean exactly and every percentile in `ps` against
// the sorted values. Returns the worst relative error seen (for the messages).
double check_against_exact(std::vector<std::uint64_t> values, const std::vector<double>& ps,
                           Histogram h = Histogram()) {
  unsigned __int128 sum = 0;
  for (const std::uint64_t v : values) {
    h.record(v);
    sum += v;
  }
  std::sort(values.begin(), values.end());
  EXPECT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_DOUBLE_EQ(h.mean(), static_cast<double>(sum) / static_cast<double>(values.size()));
  EXPECT_EQ(h.overflow(), 0u);
  const double bound = std::ldexp(1.0, -h.sub_bucket_bits());
  double worst = 0;
  for (const double p : ps) {
    const std::uint64_t exact = exact_percentile(values, p);
    const std::uint64_t got = h.value_at_percentile(p);
    // Highest-equivalent reporting never goes below the true value.
    EXPECT_GE(got, exact) << "p" << p;
    const double rel = std::fabs(static_cast<double>(got) - static_cast<double>(exact)) /
                       static_cast<double>(exact);
    EXPECT_LE(rel, kRequired) << "p" << p << " exact " << exact << " got " << got;
    EXPECT_LT(rel, bound) << "p" << p << " exact " << exact << " got " << got;
    worst = std::max(worst, rel);
  }
  EXPECT_EQ(h.value_at_percentile(100), values.back());
  EXPECT_EQ(h.value_at_percentile(0), values.front());
  return worst;
}

std::vector<double> dense_percentiles() {
  std::vector<double> ps = kPercentiles;
  for (double p = 0.5; p < 100; p += 0.5)
    ps.push_back(p);
  for (double p = 99.9; p < 100; p += 0.01)
    ps.push_back(p);
  return ps;
}

TEST(Histogram, DefaultLayoutIsSmallAndFixed) {
  const Histogram h;
  EXPECT_EQ(h.lowest(), kLowest);
  EXPECT_EQ(h.highest(), kHighest);
  EXPECT_EQ(h.sub_bucket_bits(), 7);
  EXPECT_EQ(h.bucket_count(), 3302u);  // 26 KiB of counts
  EXPECT_EQ(h.lowest_equivalent(kLowest), 1000u);
  EXPECT_EQ(h.highest_equivalent(kLowest), 1003u);  // 4 ns buckets at the bottom
}

TEST(Histogram, RejectsBadLayouts) {
  EXPECT_THROW(Histogram(0, 100, 7), std::invalid_argument);
  EXPECT_THROW(Histogram(100, 99, 7), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 100, 0), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 100, 17), std::invalid_argument);
  EXPECT_NO_THROW(Histogram(5, 5, 1));
  EXPECT_NO_THROW(Histogram(1, UINT64_MAX, 16));
}

// Every value of small layouts (with and without scaling) lies in its bucket, buckets tile the
// range without gaps, and each is narrower than 2^-b of its lower bound.
TEST(Histogram, LayoutErrorBoundExhaustive) {
  struct Layout {
    std::uint64_t lowest, highest;
    int bits;
  };
  for (const Layout l : {Layout{1, 200'000, 3}, Layout{1, 100'000, 7}, Layout{100, 300'000, 4},
                         Layout{1'000, 2'000'000, 7}, Layout{7, 7, 1}, Layout{3, 1'000, 1}}) {
    SCOPED_TRACE(::testing::Message() << l.lowest << ".." << l.highest << " b=" << l.bits);
    const Histogram h(l.lowest, l.highest, l.bits);
    std::size_t buckets = 0;
    std::uint64_t prev_upper = 0;
    for (std::uint64_t v = l.lowest; v <= l.highest; ++v) {
      const std::uint64_t lo = h.lowest_equivalent(v);
      const std::uint64_t hi = h.highest_equivalent(v);
      ASSERT_LE(lo, v);
      ASSERT_GE(hi, v);
      ASSERT_LT(static_cast<double>(hi - lo), std::ldexp(static_cast<double>(lo), -l.bits))
          << "v=" << v;
      if (v == l.lowest || lo != h.lowest_equivalent(v - 1)) {
        ++buckets;
        if (v != l.lowest) {
          ASSERT_EQ(lo, prev_upper + 1) << "gap before " << v;
        }
      }
      prev_upper = hi;
    }
    EXPECT_EQ(buckets, h.bucket_count());
  }
}

// The same properties on the default layout, sampled, and the bucket walk from lowest to
// highest visits exactly bucket_count() buckets.
TEST(Histogram, DefaultLayoutErrorBound) {
  const Histogram h;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> log_u(std::log(kLowest), std::log(kHighest));
  double worst = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    const auto v = std::clamp<std::uint64_t>(std::llround(std::exp(log_u(rng))), kLowest, kHighest);
    const std::uint64_t lo = h.lowest_equivalent(v);
    const std::uint64_t hi = h.highest_equivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_GE(hi, v);
    worst = std::max(worst, static_cast<double>(hi - lo) / static_cast<double>(lo));
  }
  EXPECT_LT(worst, kBound);
  EXPECT_GT(worst, kBound * 0.95);  // the bound is tight, so the check is on the right figure
  std::size_t walked = 0;
  for (std::uint64_t v = kLowest;; ++walked) {
    ASSERT_EQ(h.lowest_equivalent(v), v);
    const std::uint64_t hi = h.highest_equivalent(v);
    if (hi >= kHighest) break;
    v = hi + 1;
  }
  EXPECT_EQ(walked + 1, h.bucket_count());
}

TEST(Histogram, LogUniformOverWholeRange) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> log_u(std::log(kLowest), std::log(kHighest));
  std::vector<std::uint64_t> values(1'000'000);
  for (auto& v : values) {
    v = std::clamp<std::uint64_t>(std::llround(std::exp(log_u(rng))), kLowest, kHighest);
  }
  const double worst = check_against_exact(values, dense_percentiles());
  RecordProperty("worst_relative_error_ppm", static_cast<int>(worst * 1e6));
}

TEST(Histogram, UniformOverWholeRange) {
  std::mt19937_64 rng(2);
  std::uniform_int_distribution<std::uint64_t> uni(kLowest, kHighest);
  std::vector<std::uint64_t> values(500'000);
  for (auto& v : values)
    v = uni(rng);
  check_against_exact(values, dense_percentiles());
}

// Request latencies as a load generator sees them: lognormal around 250 us.
TEST(Histogram, LognormalLatencies) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> logn(std::log(250'000.0), 0.8);
  std::vector<std::uint64_t> values(1'000'000);
  for (auto& v : values) {
    v = std::clamp<std::uint64_t>(std::llround(logn(rng)), kLowest, kHighest);
  }
  check_against_exact(values, dense_percentiles());
}

// Mostly fast with a slow tail three magnitudes up (a stalled peer): the tail percentiles land
// in a different part of the layout from the median.
TEST(Histogram, BimodalWithSlowTail) {
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> fast(std::log(50'000.0), 0.3);
  std::lognormal_distribution<double> slow(std::log(2'000'000'000.0), 0.5);
  std::bernoulli_distribution is_slow(0.002);
  std::vector<std::uint64_t> values(1'000'000);
  for (auto& v : values) {
    const double x = is_slow(rng) ? slow(rng) : fast(rng);
    v = std::clamp<std::uint64_t>(std::llround(x), kLowest, kHighest);
  }
  check_against_exact(values, dense_percentiles());
}

// A layout without scaling (lowest 1): small values are exact, larger ones within the bound.
TEST(Histogram, SmallValuesOnUnscaledLayout) {
  std::mt19937_64 rng(5);
  std::geometric_distribution<std::uint64_t> geo(0.001);
  std::vector<std::uint64_t> values(300'000);
  for (auto& v : values)
    v = 1 + geo(rng);
  check_against_exact(values, dense_percentiles(), Histogram(1, 10'000'000, 7));
  // Below 2^(b+1) every value has a bucket of its own: each percentile is exact.
  Histogram h(1, 10'000'000, 7);
  std::vector<std::uint64_t> small;
  for (std::uint64_t v = 1; v <= 255; ++v) {
    h.record(v);
    small.push_back(v);
  }
  for (const double p : dense_percentiles()) {
    EXPECT_EQ(h.value_at_percentile(p), exact_percentile(small, p)) << p;
  }
}

// Coarser layouts keep their own (looser) bound.
TEST(Histogram, OtherPrecisions) {
  for (const int bits : {3, 5, 10}) {
    SCOPED_TRACE(bits);
    std::mt19937_64 rng(6);
    std::lognormal_distribution<double> logn(std::log(250'000.0), 1.0);
    std::vector<std::uint64_t> values(200'000);
    for (auto& v : values) {
      v = std::clamp<std::uint64_t>(std::llround(logn(rng)), kLowest, kHighest);
    }
    const Histogram h(kLowest, kHighest, bits);
    std::vector<std::uint64_t> sorted = values;
    Histogram filled = h;
    for (const std::uint64_t v : values)
      filled.record(v);
    std::sort(sorted.begin(), sorted.end());
    for (const double p : kPercentiles) {
      const double exact = static_cast<double>(exact_percentile(sorted, p));
      const double got = static_cast<double>(filled.value_at_percentile(p));
      EXPECT_GE(got, exact);
      EXPECT_LT((got - exact) / exact, std::ldexp(1.0, -bits)) << "p" << p;
    }
  }
}

TEST(Histogram, MinMaxMeanExact) {
  Histogram h;
  for (const std::uint64_t v : {1'234'567ull, 1'001ull, 59'999'999'999ull, 77'777ull})
    h.record(v);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 1'001u);
  EXPECT_EQ(h.max(), 59'999'999'999u);
  EXPECT_DOUBLE_EQ(h.mean(), (1'234'567.0 + 1'001.0 + 59'999'999'999.0 + 77'777.0) / 4);
  // The running sum does not wrap where a uint64 one would.
  Histogram big(1, UINT64_MAX, 7);
  big.record(UINT64_MAX);
  big.record(UINT64_MAX - 1);
  big.record_n(UINT64_MAX, 1'000);
  EXPECT_EQ(big.count(), 1'002u);
  EXPECT_EQ(big.min(), UINT64_MAX - 1);
  EXPECT_EQ(big.max(), UINT64_MAX);
  EXPECT_DOUBLE_EQ(big.mean(), static_cast<double>(UINT64_MAX));
  EXPECT_EQ(big.overflow(), 0u);
  EXPECT_EQ(big.value_at_percentile(100), UINT64_MAX);
  EXPECT_EQ(big.highest_equivalent(UINT64_MAX), UINT64_MAX);  // the top bucket does not wrap
}

TEST(Histogram, EmptyReadsZero) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.overflow(), 0u);
  for (const double p : kPercentiles)
    EXPECT_EQ(h.value_at_percentile(p), 0u);
  EXPECT_TRUE(buckets_of(h).empty());
}

TEST(Histogram, EdgeValues) {
  Histogram h;
  const std::uint64_t first_upper = h.highest_equivalent(kLowest);
  const std::uint64_t last_lower = h.lowest_equivalent(kHighest);
  const std::uint64_t last_upper = h.highest_equivalent(kHighest);
  ASSERT_LE(last_lower, kHighest);
  ASSERT_GE(last_upper, kHighest);

  // 0 and anything below lowest share the lowest bucket; min/max keep the real value.
  h.record(0);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.value_at_percentile(50), 0u);  // capped at the exact max
  EXPECT_EQ(buckets_of(h), (std::vector<Bucket>{{kLowest, first_upper, 1}}));
  h.record(kLowest - 1);
  h.record(kLowest);
  EXPECT_EQ(buckets_of(h), (std::vector<Bucket>{{kLowest, first_upper, 3}}));
  EXPECT_EQ(h.value_at_percentile(100), kLowest);
  EXPECT_EQ(h.overflow(), 0u);

  // highest itself is in range.
  h.record(kHighest);
  EXPECT_EQ(h.overflow(), 0u);
  EXPECT_EQ(h.max(), kHighest);
  EXPECT_EQ(h.value_at_percentile(100), kHighest);

  // Above highest: clamped into the top bucket and counted as overflow; max stays exact.
  h.record(kHighest + 1);
  h.record_n(UINT64_MAX, 2);
  EXPECT_EQ(h.overflow(), 3u);
  EXPECT_EQ(h.count(), 7u);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.value_at_percentile(100), last_upper);
  EXPECT_EQ(buckets_of(h),
            (std::vector<Bucket>{{kLowest, first_upper, 3}, {last_lower, last_upper, 4}}));
  EXPECT_EQ(h.value_at_percentile(0), 0u);
  EXPECT_EQ(h.value_at_percentile(-5), 0u);
  EXPECT_EQ(h.value_at_percentile(250), last_upper);

  h.record_n(5'000, 0);
  EXPECT_EQ(h.count(), 7u);
  EXPECT_EQ(h.min(), 0u);
  // n == 0 is a no-op: it must not seed min/max of an empty histogram either.
  Histogram none;
  none.record_n(5'000, 0);
  EXPECT_EQ(none.count(), 0u);
  EXPECT_EQ(none.max(), 0u);
  EXPECT_TRUE(buckets_of(none).empty());
  none.record(7'000);
  EXPECT_EQ(none.min(), 7'000u);

  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.overflow(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_TRUE(buckets_of(h).empty());
  h.record(5'000);
  EXPECT_EQ(h.min(), 5'000u);  // reset restored the min sentinel
  EXPECT_EQ(h.max(), 5'000u);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  Histogram a;
  Histogram b;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> uni(0, kHighest * 2);
  std::uniform_int_distribution<std::uint64_t> times(1, 20);
  for (int i = 0; i < 2'000; ++i) {
    const std::uint64_t v = uni(rng);
    const std::uint64_t n = times(rng);
    a.record_n(v, n);
    for (std::uint64_t k = 0; k < n; ++k)
      b.record(v);
  }
  EXPECT_EQ(buckets_of(a), buckets_of(b));
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.overflow(), b.overflow());
  EXPECT_GT(a.overflow(), 0u);
  EXPECT_EQ(a.mean(), b.mean());
}

// Merging per-thread histograms gives what one histogram of all the values would have.
TEST(Histogram, MergeEqualsRecordingBoth) {
  std::mt19937_64 rng(8);
  std::lognormal_distribution<double> fast(std::log(80'000.0), 0.5);
  std::lognormal_distribution<double> slow(std::log(30'000'000.0), 1.5);
  Histogram a;
  Histogram b;
  Histogram both;
  for (int i = 0; i < 200'000; ++i) {
    const auto x = static_cast<std::uint64_t>(fast(rng));
    const auto y = static_cast<std::uint64_t>(slow(rng));
    a.record(x);
    b.record(y);
    both.record(x);
    both.record(y);
  }
  b.record(kHighest * 3);  // an overflow on one side only
  both.record(kHighest * 3);
  b.record(10);  // and a below-lowest value
  both.record(10);

  Histogram merged = a;
  merged.merge(b);
  EXPECT_EQ(buckets_of(merged), buckets_of(both));
  EXPECT_EQ(merged.count(), both.count());
  EXPECT_EQ(merged.min(), both.min());
  EXPECT_EQ(merged.max(), both.max());
  EXPECT_EQ(merged.mean(), both.mean());  // exact sums, so bit-identical
  EXPECT_EQ(merged.overflow(), both.overflow());
  EXPECT_GE(merged.overflow(), 1u);
  for (const double p : dense_percentiles()) {
    EXPECT_EQ(merged.value_at_percentile(p), both.value_at_percentile(p)) << p;
  }
  // Order does not matter, and merging an empty histogram changes nothing (min included).
  Histogram other_way = b;
  other_way.merge(a);
  other_way.merge(Histogram());
  EXPECT_EQ(buckets_of(other_way), buckets_of(both));
  EXPECT_EQ(other_way.min(), both.min());
  EXPECT_EQ(other_way.max(), both.max());
  // Into an empty one.
  Histogram empty;
  empty.merge(both);
  EXPECT_EQ(buckets_of(empty), buckets_of(both));
  EXPECT_EQ(empty.min(), both.min());
}

TEST(Histogram, MergeIntoItselfDoubles) {
  Histogram h;
  h.record(2'000);
  h.record(3'000'000);
  h.merge(h);
  EXPECT_EQ(h.count(), 4u);
  const std::vector<Bucket> buckets = buckets_of(h);
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(std::get<2>(buckets[0]), 2u);
  EXPECT_EQ(std::get<2>(buckets[1]), 2u);
  EXPECT_EQ(h.mean(), (2'000.0 + 3'000'000.0) / 2);
}

TEST(Histogram, MergeRejectsOtherLayouts) {
  Histogram h;
  h.record(5'000);
  EXPECT_THROW(h.merge(Histogram(kLowest, kHighest, 8)), std::invalid_argument);
  EXPECT_THROW(h.merge(Histogram(kLowest + 1, kHighest, 7)), std::invalid_argument);
  EXPECT_THROW(h.merge(Histogram(kLowest, kHighest - 1, 7)), std::invalid_argument);
  EXPECT_EQ(h.count(), 1u);  // untouched
}

// The loadgen records on its hot path: record(), record_n(), reading percentiles, walking the
// buckets and merging must not touch the heap.
TEST(Histogram, RecordDoesNotAllocate) {
  Histogram h;
  Histogram other;
  other.record(123'456);
  std::mt19937_64 rng(9);
  std::uniform_int_distribution<std::uint64_t> uni(0, kHighest * 2);
  std::vector<std::uint64_t> values(100'000);
  for (auto& v : values)
    v = uni(rng);

  const ringmta::testing::CountAllocations allocations;
  for (const std::uint64_t v : values)
    h.record(v);
  h.record_n(42'000, 7);
  std::uint64_t sink = h.value_at_percentile(99.9);
  std::uint64_t seen = 0;
  h.for_each_bucket([&](std::uint64_t, std::uint64_t, std::uint64_t n) { seen += n; });
  h.merge(other);
  h.reset();
  EXPECT_EQ(allocations.count(), 0u);
  EXPECT_EQ(seen, values.size() + 7);
  EXPECT_GT(sink, 0u);
}

// Sanity only (no timing assertion: this binary runs under the sanitizers): 10M records, every
// one accounted for. The ns/record figure of a Release build is BM_HistogramRecord.
TEST(Histogram, TenMillionRecords) {
  Histogram h;
  std::uint64_t x = 88172645463325252ull;  // xorshift64: cheap enough not to dominate
  unsigned __int128 sum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10'000'000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::uint64_t v = kLowest + x % (10'000'000'000ull);
    h.record(v);
    sum += v;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(h.count(), 10'000'000u);
  EXPECT_EQ(h.overflow(), 0u);
  EXPECT_DOUBLE_EQ(h.mean(), static_cast<double>(sum) / 1e7);
  RecordProperty(
      "elapsed_ms",
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
}

// 99.9/100*1000 is 999.0000000000001 in doubles: the nearest rank must still be 999.
TEST(Histogram, PercentileRankSurvivesFloatingPointRounding) {
  EXPECT_EQ(percentile_rank(99.9, 1000), 999u);
  EXPECT_EQ(percentile_rank(99.99, 10000), 9999u);
  EXPECT_EQ(percentile_rank(50, 3), 2u);
  EXPECT_EQ(percentile_rank(0, 3), 1u);
  EXPECT_EQ(percentile_rank(100, 3), 3u);
  EXPECT_EQ(percentile_rank(100, 0), 0u);
  Histogram h(1, 1'000'000, 10);  // 10 bits: every value up to 2048 is exact
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v);
  EXPECT_EQ(h.value_at_percentile(99.9), 999u);
  EXPECT_EQ(h.value_at_percentile(99), 990u);
  EXPECT_EQ(h.value_at_percentile(50), 500u);
  Histogram g(1, 1'000'000, 7);
  for (std::uint64_t v = 1; v <= 10000; ++v) g.record(v % 200 + 1);
  EXPECT_LE(g.value_at_percentile(99.99), 200u);
}

}  // namespace
}  // namespace ringmta::stats
