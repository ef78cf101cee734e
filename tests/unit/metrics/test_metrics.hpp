// The unit tests' metric list (test_metrics.def), the sink's and the relay's, expanded by
// metric_list.inc.
#pragma once

#include "core/metrics/metric_def.hpp"

namespace ringmta::metrics::test_lists {
#define RINGMTA_METRIC_LIST_NAME TestMetrics
#define RINGMTA_METRIC_LIST_FILE "tests/unit/metrics/test_metrics.def"
#include "core/metrics/metric_list.inc"

// The sink includes its own expansion; this one is for the docs table and its checks.
#define RINGMTA_METRIC_LIST_NAME SinkMetrics
#define RINGMTA_METRIC_LIST_FILE "sinks/sink_metrics.def"
#include "core/metrics/metric_list.inc"

#define RINGMTA_METRIC_LIST_NAME RelayMetrics
#define RINGMTA_METRIC_LIST_FILE "relay/relay_metrics.def"
#include "core/metrics/metric_list.inc"
}  // namespace ringmta::metrics::test_lists
