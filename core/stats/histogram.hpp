// Latency histogram for the load generator, in the manner of HdrHistogram (which Debian does not
// ship): log-linear buckets in memory fixed at construction, record() in O(1) without allocation
// or locks. One histogram per thread, merged into one at the end of a run.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringmta::stats {

// The nearest rank of percentile p (0..100) among count values: ceil(p/100 * count), with
// floating-point noise below 1e-9 relative ignored (so p99.9 of 1000 values is rank 999), in
// [1, count]; 0 when count is 0. Histogram and its tests use the same rule.
std::uint64_t percentile_rank(double p, std::uint64_t count);

// Layout. A value is first clamped to [lowest, highest], then scaled down by 2^unit_shift, the
// largest shift that still leaves `lowest` with sub_bucket_bits (b) significant bits. Scaled
// values below 2^(b+1) get one bucket each; above that, every power of two [2^k, 2^(k+1)) is cut
// into 2^b equal buckets, as in HdrHistogram. A bucket's width is therefore at most 2^-b of its
// lower bound for every value from `lowest` up, which is the relative error bound.
//
// Not thread-safe: one writer, and merge() only once the writers are done.
class Histogram {
 public:
  // Values in [lowest, highest] are kept with relative error below 2^-sub_bucket_bits (7 bits:
  // < 0.79%, inside the loadgen's 1%); defaults cover 1 us .. 60 s in nanoseconds (3,302 buckets,
  // 26 KiB). Throws std::invalid_argument unless 1 <= lowest <= highest and 1 <= bits <= 16.
  explicit Histogram(std::uint64_t lowest = 1'000, std::uint64_t highest = 60'000'000'000ull,
                     int sub_bucket_bits = 7);

  // Values below `lowest` are counted in the lowest bucket; values above `highest` in the highest
  // bucket and in overflow(). min(), max() and mean() still see the value as given.
  void record(std::uint64_t v) noexcept { record_n(v, 1); }
  // n occurrences of v at once (n == 0 changes nothing).
  void record_n(std::uint64_t v, std::uint64_t n) noexcept;

  // Adds other's counts to this one. Throws std::invalid_argument unless other was built with
  // the same lowest, highest and sub_bucket_bits. Does not allocate.
  void merge(const Histogram& other);
  // Back to empty, keeping the layout and the memory.
  void reset() noexcept;

  std::uint64_t count() const { return count_; }
  // Exact smallest and largest recorded values; 0 when empty.
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  // Exact mean of the recorded values (from a 128-bit running sum); 0 when empty.
  double mean() const;
  // How many recorded values were above highest (and were counted in the top bucket).
  std::uint64_t overflow() const { return overflow_; }

  // The value at percentile p (0..100, clamped) by nearest rank: the value at rank
  // ceil(p/100 * count()) in sorted order. Reported, like HdrHistogram, as the highest value
  // equivalent to that value's bucket, but capped at the exact max() (so p100 == max() unless
  // values overflowed, then it is highest_equivalent(highest)); p <= 0 gives min(). For values in
  // [lowest, highest] the result is never below the true value and over it by less than 2^-b of
  // it. 0 when empty.
  std::uint64_t value_at_percentile(double p) const;

  // Non-empty buckets in increasing order, for export: f(lower, upper, count), bounds inclusive.
  // The first bucket also holds the values below lowest, the last one those above highest.
  template <typename F>
  void for_each_bucket(F&& f) const;
  // Buckets in the layout (all of them, empty or not): memory is bucket_count() * 8 bytes.
  std::size_t bucket_count() const { return counts_.size(); }

  // Inclusive bounds of the bucket that v (after clamping to [lowest, highest]) is counted in.
  std::uint64_t lowest_equivalent(std::uint64_t v) const;
  std::uint64_t highest_equivalent(std::uint64_t v) const;

  std::uint64_t lowest() const { return lowest_; }
  std::uint64_t highest() const { return highest_; }
  int sub_bucket_bits() const { return sub_bucket_bits_; }

 private:
  // Bucket of v, v already in [lowest_, highest_]. The magnitude comes from the bit width;
  // OR-ing in the linear mask gives every scaled value below 2^(b+1) magnitude 0 without a test.
  std::size_t raw_index(std::uint64_t v) const noexcept {
    const std::uint64_t u = v >> unit_shift_;
    const int m = std::bit_width(u | linear_mask_) - (sub_bucket_bits_ + 1);
    return (static_cast<std::size_t>(m) << sub_bucket_bits_) + static_cast<std::size_t>(u >> m);
  }
  std::size_t index_of(std::uint64_t clamped) const noexcept {
    return raw_index(clamped) - first_index_;
  }
  std::uint64_t bucket_lower(std::size_t index) const;
  std::uint64_t bucket_upper(std::size_t index) const;

  std::uint64_t lowest_;
  std::uint64_t highest_;
  int sub_bucket_bits_;
  int unit_shift_;
  std::uint64_t linear_mask_;  // 2^(b+1) - 1, in scaled units
  std::size_t first_index_;    // raw_index(lowest_): buckets below it are never used
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  std::uint64_t overflow_ = 0;
  // 128 bits so that the sum stays exact for any count of any uint64 values a run can produce.
  unsigned __int128 sum_ = 0;
};

inline void Histogram::record_n(std::uint64_t v, std::uint64_t n) noexcept {
  if (n == 0) return;
  // Written so that g++ -O2 turns the clamps and min/max into conditional moves: the only
  // branch left on the value is the (rare, well predicted) overflow.
  std::uint64_t clamped = v < lowest_ ? lowest_ : v;
  const bool over = v > highest_;
  clamped = over ? highest_ : clamped;
  overflow_ += over ? n : 0;
  counts_[index_of(clamped)] += n;
  count_ += n;
  sum_ += static_cast<unsigned __int128>(v) * n;
  min_ = v < min_ ? v : min_;
  max_ = v > max_ ? v : max_;
}

template <typename F>
void Histogram::for_each_bucket(F&& f) const {
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) f(bucket_lower(i), bucket_upper(i), counts_[i]);
  }
}

}  // namespace ringmta::stats
