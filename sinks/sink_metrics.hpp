// ringmta-sink's metrics, generated from sinks/sink_metrics.def (names, help, labels, buckets
// in one list; docs/metrics.md is generated from it too).
#pragma once

#include "core/metrics/metric_def.hpp"

namespace ringmta::sink {
#define RINGMTA_METRIC_LIST_NAME SinkMetrics
#define RINGMTA_METRIC_LIST_FILE "sinks/sink_metrics.def"
#include "core/metrics/metric_list.inc"
}  // namespace ringmta::sink
