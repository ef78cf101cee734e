// The hot-path side of metrics: a worker thread's own block of counters, written by that
// thread only (relaxed load + store, no read-modify-write, no lock, no allocation) and read by
// the scrape thread, which sums every thread's block (metrics_registry.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <memory>

#include "core/metrics/metric_def.hpp"

namespace ringmta::metrics {

class MetricsRegistry;

namespace detail {
// Blocks are made of whole cache lines so two threads' counters never share a line.
struct alignas(64) SlotLine {
  std::atomic<std::uint64_t> slot[8];
};
struct ThreadBlock;
}  // namespace detail

// One thread's writer for one metric list; get it from MetricsRegistry::attach_thread() and
// use it from that thread only. Handles (CounterId...) must come from the same list.
class ThreadMetrics {
 public:
  ThreadMetrics() = default;  // detached: only assignment, attached() and destruction allowed
  ThreadMetrics(ThreadMetrics&& other) noexcept;
  ThreadMetrics& operator=(ThreadMetrics&& other) noexcept;
  ThreadMetrics(const ThreadMetrics&) = delete;
  ThreadMetrics& operator=(const ThreadMetrics&) = delete;
  // Hands the block back to the registry (its values still count; the next thread reuses it).
  ~ThreadMetrics();

  bool attached() const { return lines_ != nullptr; }

  void inc(CounterId c, std::uint64_t n = 1) noexcept { bump(c.slot, n); }

  // Gauges: this thread's share; the export is the sum of all threads' shares. add() with a
  // negative delta is fine (two's complement, summed modulo 2^64 then read as signed).
  void add(GaugeId g, std::int64_t delta) noexcept {
    bump(g.slot, static_cast<std::uint64_t>(delta));
  }
  void set(GaugeId g, std::int64_t value) noexcept {
    slot(g.slot).store(static_cast<std::uint64_t>(value), std::memory_order_relaxed);
  }

  // `raw` in the histogram's raw unit: nanoseconds for kLatencyBuckets, bytes for kSizeBuckets.
  void observe(HistogramId h, std::uint64_t raw) noexcept {
    const auto bounds = h.buckets->bounds;
    // First bound >= raw: Prometheus buckets are "less than or equal"; past the end is +Inf.
    const auto bucket = static_cast<std::uint32_t>(
        std::lower_bound(bounds.begin(), bounds.end(), raw) - bounds.begin());
    bump(h.slot + bucket, 1);
    bump(h.slot + static_cast<std::uint32_t>(bounds.size()) + 1, raw);
  }
  // Latencies (kLatencyBuckets); a negative duration (clock misuse) counts as zero.
  void observe(HistogramId h, std::chrono::nanoseconds d) noexcept {
    observe(h, d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count()));
  }

 private:
  friend class MetricsRegistry;

  std::atomic<std::uint64_t>& slot(std::uint32_t i) noexcept {
    assert(i < slot_count_ && "metric handle from another list?");
    return lines_[i / 8].slot[i % 8];
  }
  // Single writer: a plain load + store is enough and avoids a locked instruction; the
  // scrape thread may see the old or the new value, never a torn one.
  void bump(std::uint32_t i, std::uint64_t n) noexcept {
    auto& s = slot(i);
    s.store(s.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  detail::SlotLine* lines_ = nullptr;
  std::uint32_t slot_count_ = 0;
  detail::ThreadBlock* block_ = nullptr;
  std::shared_ptr<MetricsRegistry> registry_;  // keeps the block's memory alive
};

}  // namespace ringmta::metrics
