// Per-destination series; see destination_metrics.hpp.
#include "relay/queue/destination_metrics.hpp"

#include "relay/route_table.hpp"

namespace ringmta::relay {

DestinationMetrics::DestinationMetrics(const RouteTable& routes, unsigned threads) {
  for (const Destination& d : routes.destinations()) names_.push_back(d.pattern);
  if (threads == 0) threads = 1;
  for (unsigned t = 0; t < threads; ++t) {
    per_thread_.push_back(std::make_unique<Cells[]>(names_.size() == 0 ? 1 : names_.size()));
  }
}

std::vector<prometheus::MetricFamily> DestinationMetrics::Collect() const {
  using prometheus::MetricType;
  struct Family {
    const char* name;
    const char* help;
    MetricType type;
  };
  static constexpr Family kFamilies[] = {
      {"ringmta_relay_destination_queue_recipients",
       "Recipients queued for a destination (a routing-table entry): waiting, deferred or in "
       "flight.", MetricType::Gauge},
      {"ringmta_relay_destination_connections",
       "Outbound connections open to a destination's next hops, connecting ones included.",
       MetricType::Gauge},
      {"ringmta_relay_destination_deliveries_total",
       "Delivery attempts per destination and recipient, by outcome: delivered, deferred "
       "(4xx, throttled, no answer) or failed (5xx, lifetime expired).", MetricType::Counter},
  };
  std::vector<prometheus::MetricFamily> out;
  for (const Family& f : kFamilies) {
    prometheus::MetricFamily fam;
    fam.name = f.name;
    fam.help = f.help;
    fam.type = f.type;
    out.push_back(std::move(fam));
  }
  for (std::size_t d = 0; d < names_.size(); ++d) {
    std::int64_t queued = 0, connections = 0;
    std::uint64_t delivered = 0, deferred = 0, failed = 0;
    for (const auto& cells : per_thread_) {
      const Cells& c = cells[d];
      queued += c.queued.load(std::memory_order_relaxed);
      connections += c.connections.load(std::memory_order_relaxed);
      delivered += c.delivered.load(std::memory_order_relaxed);
      deferred += c.deferred.load(std::memory_order_relaxed);
      failed += c.failed.load(std::memory_order_relaxed);
    }
    prometheus::ClientMetric m;
    m.label.push_back({"destination", names_[d]});
    m.gauge.value = static_cast<double>(queued);
    out[0].metric.push_back(m);
    m.gauge.value = static_cast<double>(connections);
    out[1].metric.push_back(m);
    m.gauge.value = 0;
    const std::pair<const char*, std::uint64_t> outcomes[] = {
        {"delivered", delivered}, {"deferred", deferred}, {"failed", failed}};
    for (const auto& [name, value] : outcomes) {
      prometheus::ClientMetric c;
      c.label.push_back({"destination", names_[d]});
      c.label.push_back({"outcome", name});
      c.counter.value = static_cast<double>(value);
      out[2].metric.push_back(std::move(c));
    }
  }
  return out;
}

}  // namespace ringmta::relay
