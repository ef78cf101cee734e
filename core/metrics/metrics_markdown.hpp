// The docs table of a metric list (docs/metrics.md), generated from the same list the binary
// exports, so the two cannot disagree; a unit test fails when the checked-in file is stale.
#pragma once

#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "core/metrics/metric_def.hpp"

namespace ringmta::metrics {

// One Markdown section: "### title", the source .def, then a table of name, type, label and
// help for every metric.
void write_metrics_markdown(std::ostream& out, std::string_view title, std::string_view source,
                            std::string_view prefix, std::span<const MetricDef> defs);

template <class List>
void write_metrics_markdown(std::ostream& out, std::string_view title) {
  write_metrics_markdown(out, title, List::kSourceFile, List::kPrefix, List::kDefs);
}

// docs/metrics.md keeps hand-written text around one generated block between these lines.
inline constexpr std::string_view kGeneratedBegin =
    "<!-- BEGIN generated from the metric lists (.def files): do not edit by hand -->";
inline constexpr std::string_view kGeneratedEnd = "<!-- END generated -->";

// The text between the markers (excluding the marker lines), or nothing if they are missing.
std::optional<std::string> generated_section(std::string_view document);
// `document` with the text between the markers replaced (markers appended if missing).
std::string replace_generated_section(std::string_view document, std::string_view generated);

}  // namespace ringmta::metrics
