// Per-destination series for /metrics: the routing table's entries are known only at start,
// so these are not in relay_metrics.def. Each worker thread has its own cells and is the
// only writer of them (relaxed atomics: no lock, no shared cache line on the hot path); a
// scrape sums the threads.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ringmta::relay {

class RouteTable;

class DestinationMetrics final : public prometheus::Collectable {
 public:
  struct Cells {
    std::atomic<std::int64_t> queued{0};       // recipients waiting or in flight
    std::atomic<std::int64_t> connections{0};  // open, connecting included
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> deferred{0};    // throttled included
    std::atomic<std::uint64_t> failed{0};      // 5xx and expired
    void add(std::atomic<std::int64_t>& g, std::int64_t v) {
      g.store(g.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }
    void inc(std::atomic<std::uint64_t>& c, std::uint64_t v = 1) {
      c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }
  };

  DestinationMetrics(const RouteTable& routes, unsigned threads);
  // The cells of one destination for one thread (that thread writes them, nobody else).
  Cells& cells(unsigned thread, std::uint32_t destination) {
    return per_thread_[thread % per_thread_.size()][destination];
  }
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::vector<std::string> names_;  // the route patterns, by destination index
  std::vector<std::unique_ptr<Cells[]>> per_thread_;
};

}  // namespace ringmta::relay
