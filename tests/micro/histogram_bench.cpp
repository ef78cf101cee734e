// Cost of stats::Histogram::record(), the call the loadgen makes once per message to keep its
// latencies: over varied lognormal latencies (the realistic case) and over one repeated value.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/stats/histogram.hpp"

namespace ringmta::stats {
namespace {

constexpr std::size_t kValues = 4096;  // power of two: the loop indexes with a mask

// Latencies in ns around 250 us (lognormal, sigma 0.8), made once before any timing; 32 KiB, so
// they stay in L1/L2 next to the 26 KiB of counts, as on a loadgen thread.
const std::vector<std::uint64_t>& latencies() {
  static const std::vector<std::uint64_t> values = [] {
    std::mt19937_64 rng(12345);
    std::lognormal_distribution<double> logn(std::log(250'000.0), 0.8);
    std::vector<std::uint64_t> v(kValues);
    for (auto& x : v)
      x = static_cast<std::uint64_t>(logn(rng));
    return v;
  }();
  return values;
}

void BM_HistogramRecord(benchmark::State& state) {
  const std::vector<std::uint64_t>& values = latencies();
  Histogram h;
  std::size_t i = 0;
  for (auto _ : state) {
    std::uint64_t v = values[i++ & (kValues - 1)];
    benchmark::DoNotOptimize(v);
    h.record(v);
  }
  // Every iteration must have been counted, or the loop did not time what it claims.
  if (h.count() != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("count() differs from the number of record() calls");
  }
  benchmark::DoNotOptimize(h.value_at_percentile(99.9));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecord);

// One value over and over: every increment hits the same counter, so this is the latency of a
// dependent load-add-store chain rather than throughput.
void BM_HistogramRecordSame(benchmark::State& state) {
  Histogram h;
  for (auto _ : state) {
    std::uint64_t v = 250'000;
    benchmark::DoNotOptimize(v);
    h.record(v);
  }
  if (h.count() != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError("count() differs from the number of record() calls");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecordSame);

}  // namespace
}  // namespace ringmta::stats
