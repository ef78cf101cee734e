// ringmta-relay's metrics, generated from relay/relay_metrics.def.
#pragma once

#include "core/metrics/metric_def.hpp"

namespace ringmta::relay {
#define RINGMTA_METRIC_LIST_NAME RelayMetrics
#define RINGMTA_METRIC_LIST_FILE "relay/relay_metrics.def"
#include "core/metrics/metric_list.inc"
}  // namespace ringmta::relay
