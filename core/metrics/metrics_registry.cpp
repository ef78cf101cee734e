// Per-thread blocks and the scrape-time sum into Prometheus metric families; see
// metrics_registry.hpp and thread_metrics.hpp.
#include "core/metrics/metrics_registry.hpp"

#include <prometheus/text_serializer.h>

#include <limits>
#include <stdexcept>
#include <utility>

namespace ringmta::metrics {

namespace detail {
struct ThreadBlock {
  explicit ThreadBlock(std::uint32_t slots)
      : lines(std::make_unique<SlotLine[]>(slots / 8 + 1)) {}  // value-initialised: zeros
  std::unique_ptr<SlotLine[]> lines;
};
}  // namespace detail

std::string_view kind_name(MetricKind k) {
  switch (k) {
    case MetricKind::kCounter:
      return "counter";
    case MetricKind::kGauge:
    case MetricKind::kCallbackGauge:
      return "gauge";
    case MetricKind::kHistogram:
      return "histogram";
  }
  return "?";
}

// --- ThreadMetrics (the parts that need the registry)

ThreadMetrics::ThreadMetrics(ThreadMetrics&& other) noexcept
    : lines_(std::exchange(other.lines_, nullptr)),
      slot_count_(std::exchange(other.slot_count_, 0)),
      block_(std::exchange(other.block_, nullptr)),
      registry_(std::move(other.registry_)) {}

ThreadMetrics& ThreadMetrics::operator=(ThreadMetrics&& other) noexcept {
  if (this != &other) {
    if (block_ != nullptr) registry_->release(block_);
    lines_ = std::exchange(other.lines_, nullptr);
    slot_count_ = std::exchange(other.slot_count_, 0);
    block_ = std::exchange(other.block_, nullptr);
    registry_ = std::move(other.registry_);
  }
  return *this;
}

ThreadMetrics::~ThreadMetrics() {
  if (block_ != nullptr) registry_->release(block_);
}

// --- MetricsRegistry

std::shared_ptr<MetricsRegistry> MetricsRegistry::create(std::string_view prefix,
                                                         std::span<const MetricDef> defs) {
  for (const MetricDef& d : defs) {
    if (d.kind == MetricKind::kHistogram) {
      if (d.buckets == nullptr || d.buckets->bounds.empty() || d.buckets->divisor <= 0) {
        throw std::invalid_argument("metric " + std::string(d.id) + ": histogram without buckets");
      }
      for (std::size_t i = 1; i < d.buckets->bounds.size(); ++i) {
        if (d.buckets->bounds[i] <= d.buckets->bounds[i - 1]) {
          throw std::invalid_argument("metric " + std::string(d.id) +
                                      ": bucket bounds must increase");
        }
      }
    }
  }
  if (total_slots(defs) > std::numeric_limits<std::uint32_t>::max() / 2) {
    throw std::invalid_argument("metric list too large");
  }
  // The constructor is private so that every registry is shared (ThreadMetrics and the
  // exporter hold it); hence no make_shared.
  return std::shared_ptr<MetricsRegistry>(new MetricsRegistry(prefix, defs));
}

MetricsRegistry::MetricsRegistry(std::string_view prefix, std::span<const MetricDef> defs)
    : prefix_(prefix),
      defs_(defs),
      slot_count_(static_cast<std::uint32_t>(total_slots(defs))),
      callbacks_(defs.size()) {}

MetricsRegistry::~MetricsRegistry() = default;

ThreadMetrics MetricsRegistry::attach_thread() {
  ThreadMetrics t;
  std::lock_guard lock(mutex_);
  detail::ThreadBlock* block = nullptr;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else {
    blocks_.push_back(std::make_unique<detail::ThreadBlock>(slot_count_));
    block = blocks_.back().get();
    // release() runs in destructors and must not allocate: room for every block up front.
    free_.reserve(blocks_.size());
  }
  t.lines_ = block->lines.get();
  t.slot_count_ = slot_count_;
  t.block_ = block;
  t.registry_ = shared_from_this();
  return t;
}

void MetricsRegistry::release(detail::ThreadBlock* block) {
  std::lock_guard lock(mutex_);
  free_.push_back(block);  // capacity reserved in attach_thread()
}

void MetricsRegistry::set_callback(CallbackGaugeId gauge, std::function<double()> fn) {
  if (gauge.index >= defs_.size() || defs_[gauge.index].kind != MetricKind::kCallbackGauge) {
    throw std::invalid_argument("set_callback: not a callback gauge of this list");
  }
  std::lock_guard lock(mutex_);
  callbacks_[gauge.index] = std::move(fn);
}

std::uint64_t MetricsRegistry::sum_slot(std::uint32_t slot) const {
  std::uint64_t sum = 0;
  for (const auto& block : blocks_) {
    sum += block->lines[slot / 8].slot[slot % 8].load(std::memory_order_relaxed);
  }
  return sum;
}

std::vector<std::uint64_t> MetricsRegistry::sum_all() const {
  std::vector<std::uint64_t> sums(slot_count_, 0);
  for (const auto& block : blocks_) {
    for (std::uint32_t i = 0; i < slot_count_; ++i) {
      sums[i] += block->lines[i / 8].slot[i % 8].load(std::memory_order_relaxed);
    }
  }
  return sums;
}

std::uint64_t MetricsRegistry::value(CounterId c) const {
  std::lock_guard lock(mutex_);
  return c.slot < slot_count_ ? sum_slot(c.slot) : 0;
}

std::int64_t MetricsRegistry::value(GaugeId g) const {
  std::lock_guard lock(mutex_);
  return g.slot < slot_count_ ? static_cast<std::int64_t>(sum_slot(g.slot)) : 0;
}

HistogramSnapshot MetricsRegistry::snapshot(HistogramId h) const {
  HistogramSnapshot s;
  const std::size_t n = h.buckets->bounds.size();
  if (h.slot + n + 2 > slot_count_) return s;
  std::lock_guard lock(mutex_);
  for (std::size_t j = 0; j <= n; ++j) {
    s.buckets.push_back(sum_slot(h.slot + static_cast<std::uint32_t>(j)));
    s.count += s.buckets.back();
  }
  s.sum = sum_slot(h.slot + static_cast<std::uint32_t>(n) + 1);
  return s;
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
  std::vector<std::uint64_t> sums;
  std::vector<std::function<double()>> callbacks;
  {
    std::lock_guard lock(mutex_);
    sums = sum_all();
    callbacks = callbacks_;
  }
  std::vector<prometheus::MetricFamily> families;
  families.reserve(defs_.size());
  std::size_t offset = 0;
  for (std::size_t i = 0; i < defs_.size(); ++i) {
    const MetricDef& d = defs_[i];
    const std::size_t base = offset;
    offset += slot_count(d);
    if (d.kind == MetricKind::kCallbackGauge && !callbacks[i]) continue;

    prometheus::MetricFamily family;
    family.name = prefix_ + std::string(d.id);
    family.help = std::string(d.help);
    const std::size_t stride = series_stride(d);
    for (std::size_t s = 0; s < series_count(d); ++s) {
      prometheus::ClientMetric m;
      if (!d.label.empty()) {
        m.label.push_back({std::string(d.label), std::string(d.label_values[s])});
      }
      const std::uint64_t* slots = sums.data() + base + s * stride;
      switch (d.kind) {
        case MetricKind::kCounter:
          family.type = prometheus::MetricType::Counter;
          m.counter.value = static_cast<double>(slots[0]);
          break;
        case MetricKind::kGauge:
          family.type = prometheus::MetricType::Gauge;
          m.gauge.value = static_cast<double>(static_cast<std::int64_t>(slots[0]));
          break;
        case MetricKind::kCallbackGauge:
          family.type = prometheus::MetricType::Gauge;
          m.gauge.value = callbacks[i]();
          break;
        case MetricKind::kHistogram: {
          family.type = prometheus::MetricType::Histogram;
          const auto bounds = d.buckets->bounds;
          std::uint64_t cumulative = 0;
          for (std::size_t j = 0; j < bounds.size(); ++j) {
            cumulative += slots[j];
            m.histogram.bucket.push_back(
                {cumulative, static_cast<double>(bounds[j]) / d.buckets->divisor});
          }
          cumulative += slots[bounds.size()];
          m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
          m.histogram.sample_count = cumulative;
          // Summed as integers (exact); one rounding here, to the double Prometheus wants.
          m.histogram.sample_sum =
              static_cast<double>(slots[bounds.size() + 1]) / d.buckets->divisor;
          break;
        }
      }
      family.metric.push_back(std::move(m));
    }
    families.push_back(std::move(family));
  }
  return families;
}

std::string MetricsRegistry::text() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace ringmta::metrics
