// What one entry of a metric list (an X-macro .def file, expanded by metric_list.inc) becomes:
// a constexpr MetricDef for scraping and docs, and a typed handle (slot number) for the hot
// path. Everything here is constexpr so that slot offsets are fixed at compile time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

// metric_list.inc is included inside a namespace and cannot include this header itself.
#define RINGMTA_METRICS_METRIC_DEF_HPP 1

namespace ringmta::metrics {

enum class MetricKind : std::uint8_t {
  kCounter,        // per-thread slots, summed at scrape
  kGauge,          // per-thread signed slots (add/set), summed at scrape
  kCallbackGauge,  // no slots: a function evaluated at scrape (set_callback)
  kHistogram,      // per-thread buckets and an integer sum, summed at scrape
};

std::string_view kind_name(MetricKind k);

// Histogram buckets. Observations are integers in a raw unit (nanoseconds, bytes), so the
// bucket choice and _sum are exact; the export divides by `divisor` (1e9: ns to seconds).
struct BucketSet {
  std::span<const std::uint64_t> bounds;  // upper bounds (le), strictly increasing; +Inf implied
  double divisor;                         // exported value = raw / divisor
  std::string_view name_suffix;           // a histogram using these must be named *_seconds etc.
  std::string_view docs;                  // one phrase for docs/metrics.md
};

namespace detail {
inline constexpr std::uint64_t kLatencyBoundsNs[] = {
    10'000,        20'000,        50'000,                         // 10 µs
    100'000,       200'000,       500'000,                        // 100 µs
    1'000'000,     2'000'000,     5'000'000,                      // 1 ms
    10'000'000,    20'000'000,    50'000'000,                     // 10 ms
    100'000'000,   200'000'000,   500'000'000,                    // 100 ms
    1'000'000'000, 2'000'000'000, 5'000'000'000, 10'000'000'000,  // 1 s .. 10 s
};
inline constexpr std::uint64_t kSizeBoundsBytes[] = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
};
inline constexpr std::uint64_t kMessageCountBounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
constexpr std::uint64_t kSecondNs = 1'000'000'000;
inline constexpr std::uint64_t kDelayBoundsNs[] = {
    1'000'000,        10'000'000,        100'000'000,                // 1 ms .. 100 ms
    kSecondNs,        2 * kSecondNs,     5 * kSecondNs,               // 1 s
    10 * kSecondNs,   30 * kSecondNs,    60 * kSecondNs,              // 10 s .. 1 min
    300 * kSecondNs,  900 * kSecondNs,   3600 * kSecondNs,            // 5 min .. 1 h
    4 * 3600 * kSecondNs, 24 * 3600 * kSecondNs, 5 * 24 * 3600 * kSecondNs,  // 4 h .. 5 d
};
}  // namespace detail

// Loopback-fine latencies: observe nanoseconds, exported in seconds; 10 µs .. 10 s, 1-2-5.
inline constexpr BucketSet kLatencyBuckets{detail::kLatencyBoundsNs, 1e9, "_seconds",
                                           "10 µs to 10 s, 1-2-5 per decade"};
// Message and buffer sizes: observe bytes; 256 B .. 64 MiB, powers of 4.
inline constexpr BucketSet kSizeBuckets{detail::kSizeBoundsBytes, 1.0, "_bytes",
                                        "256 B to 64 MiB, powers of 4"};
// Delivery delays, retries included: observe nanoseconds, exported in seconds; 1 ms .. 5 d.
inline constexpr BucketSet kDelayBuckets{detail::kDelayBoundsNs, 1e9, "_seconds",
                                         "1 ms to 5 days (a retry schedule's range)"};
// How many messages something covered (a group commit's batch): 1 .. 1024, powers of 2.
inline constexpr BucketSet kMessageCountBuckets{detail::kMessageCountBounds, 1.0, "_messages",
                                                "1 to 1024 messages, powers of 2"};

struct MetricDef {
  std::string_view id;    // name without the list's prefix, e.g. "messages_total"
  std::string_view help;  // one sentence, exported as # HELP and in the docs table
  MetricKind kind;
  std::string_view label;                          // empty: the metric has no label
  std::span<const std::string_view> label_values;  // the fixed values of `label`
  const BucketSet* buckets = nullptr;              // histograms only
};

// --- Slot layout of a thread's block: one slot per counter/gauge series; per histogram
// series, one slot per bound, one for +Inf, then the sum (raw units).

constexpr std::size_t series_count(const MetricDef& d) {
  return d.label.empty() ? 1 : d.label_values.size();
}
constexpr std::size_t series_stride(const MetricDef& d) {
  switch (d.kind) {
    case MetricKind::kCallbackGauge:
      return 0;
    case MetricKind::kHistogram:
      return d.buckets->bounds.size() + 2;
    default:
      return 1;
  }
}
constexpr std::size_t slot_count(const MetricDef& d) {
  return series_count(d) * series_stride(d);
}
constexpr std::size_t slot_offset(std::span<const MetricDef> defs, std::size_t index) {
  std::size_t offset = 0;
  for (std::size_t i = 0; i < index; ++i)
    offset += slot_count(defs[i]);
  return offset;
}
constexpr std::size_t total_slots(std::span<const MetricDef> defs) {
  return slot_offset(defs, defs.size());
}

// --- Hot-path handles: plain slot numbers, valid only with a ThreadMetrics of the same list.

struct CounterId {
  std::uint32_t slot;
};
struct GaugeId {
  std::uint32_t slot;
};
struct HistogramId {
  std::uint32_t slot;
  const BucketSet* buckets;
};
struct CallbackGaugeId {
  std::uint32_t index;  // position in the list (it has no slot)
};

// A metric with one label: index it with the label's enum (generated per metric).
template <class Id, class Label>
struct Labeled {
  Id first;
  std::uint32_t stride;
  constexpr Id operator[](Label value) const {
    Id id = first;
    id.slot += static_cast<std::uint32_t>(value) * stride;
    return id;
  }
};

// --- Compile-time helpers used by metric_list.inc.

// "accepted, tempfail" (what #__VA_ARGS__ gives) -> {"accepted", "tempfail"}.
constexpr std::size_t count_label_values(std::string_view list) {
  std::size_t n = 1;
  for (char c : list)
    n += c == ',' ? 1 : 0;
  return n;
}
template <std::size_t N>
constexpr std::array<std::string_view, N> split_label_values(std::string_view list) {
  std::array<std::string_view, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    out[i] = item;
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  return out;
}

// Prometheus allows more, but lower snake_case keeps names, labels and enums alike.
constexpr bool is_snake_case(std::string_view s) {
  if (s.empty() || s.front() < 'a' || s.front() > 'z' || s.back() == '_') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}
constexpr bool all_snake_case(std::span<const std::string_view> values) {
  for (std::string_view v : values) {
    if (!is_snake_case(v)) return false;
  }
  return true;
}

}  // namespace ringmta::metrics
