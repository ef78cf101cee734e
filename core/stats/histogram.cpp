// Histogram set-up, merging and read-out; record() is inline in histogram.hpp because the
// loadgen calls it once per message on its hot path.
#include "core/stats/histogram.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ringmta::stats {

namespace {
// Above 16 bits the counts array (2^b per power of two) outgrows any use for latencies.
constexpr int kMaxSubBucketBits = 16;
}  // namespace

Histogram::Histogram(std::uint64_t lowest, std::uint64_t highest, int sub_bucket_bits)
    : lowest_(lowest), highest_(highest), sub_bucket_bits_(sub_bucket_bits) {
  if (lowest == 0 || highest < lowest) {
    throw std::invalid_argument("Histogram: need 1 <= lowest <= highest");
  }
  if (sub_bucket_bits < 1 || sub_bucket_bits > kMaxSubBucketBits) {
    throw std::invalid_argument("Histogram: sub_bucket_bits must be in 1..16");
  }
  // Scaling by more would leave `lowest` with fewer than b significant bits, and buckets near it
  // wider than 2^-b of their value.
  const int lowest_log2 = std::bit_width(lowest) - 1;
  unit_shift_ = std::max(0, lowest_log2 - sub_bucket_bits);
  linear_mask_ = (std::uint64_t{1} << (sub_bucket_bits + 1)) - 1;
  first_index_ = 0;
  first_index_ = raw_index(lowest);
  counts_.assign(raw_index(highest) - first_index_ + 1, 0);
}

void Histogram::merge(const Histogram& other) {
  if (other.lowest_ != lowest_ || other.highest_ != highest_ ||
      other.sub_bucket_bits_ != sub_bucket_bits_) {
    throw std::invalid_argument("Histogram::merge: different lowest, highest or sub_bucket_bits");
  }
  // Index loop rather than iterators: merging a histogram into itself must double it.
  for (std::size_t i = 0; i < counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  overflow_ += other.overflow_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  overflow_ = 0;
  sum_ = 0;
}

double Histogram::mean() const {
  if (count_ == 0) return 0.0;
  return static_cast<double>(sum_) / static_cast<double>(count_);
}

std::uint64_t percentile_rank(double p, std::uint64_t count) {
  if (count == 0) return 0;
  if (!(p > 0.0)) return 1;
  if (p >= 100.0) return count;
  // Nearest rank, ceil(p/100 * count). In floating point 99.9/100*1000 is 999.0000000000001,
  // whose plain ceil would skip a rank: round away that noise (percentiles are given to far
  // fewer than 9 significant digits) before taking the ceiling.
  const double exact = p / 100.0 * static_cast<double>(count);
  const double rank = std::ceil(exact * (1 - 1e-9));
  return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(rank), 1, count);
}

std::uint64_t Histogram::value_at_percentile(double p) const {
  if (count_ == 0) return 0;
  if (!(p > 0.0)) return min_;  // also NaN
  std::uint64_t rank = count_;
  if (p < 100.0) {
    rank = percentile_rank(p, count_);
  }
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The true value lies in [lower, upper] and never above max_: capping at max_ keeps the
      // bound and makes p100 exact. The floor only matters for values clamped up to lowest_.
      return std::max(std::min(bucket_upper(i), max_), min_);
    }
  }
  return max_;  // not reached: the counts add up to count_
}

std::uint64_t Histogram::lowest_equivalent(std::uint64_t v) const {
  return bucket_lower(index_of(std::clamp(v, lowest_, highest_)));
}

std::uint64_t Histogram::highest_equivalent(std::uint64_t v) const {
  return bucket_upper(index_of(std::clamp(v, lowest_, highest_)));
}

// Inverse of raw_index(): the index is m * 2^b + q with q the top b+1 bits of the scaled value
// (q in [2^b, 2^(b+1)) for magnitude m >= 1; q is the scaled value itself for m == 0).
std::uint64_t Histogram::bucket_lower(std::size_t index) const {
  const std::size_t raw = index + first_index_;
  const std::size_t top = raw >> sub_bucket_bits_;
  const int m = top == 0 ? 0 : static_cast<int>(top) - 1;
  const std::uint64_t q = raw - (static_cast<std::size_t>(m) << sub_bucket_bits_);
  return q << (m + unit_shift_);
}

std::uint64_t Histogram::bucket_upper(std::size_t index) const {
  const std::size_t raw = index + first_index_;
  const std::size_t top = raw >> sub_bucket_bits_;
  const int m = top == 0 ? 0 : static_cast<int>(top) - 1;
  // Added as width - 1 so that the top bucket of a layout reaching 2^64 - 1 does not wrap.
  return bucket_lower(index) + ((std::uint64_t{1} << (m + unit_shift_)) - 1);
}

}  // namespace ringmta::stats
