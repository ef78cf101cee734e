// Markdown tables for docs/metrics.md; see metrics_markdown.hpp.
#include "core/metrics/metrics_markdown.hpp"

namespace ringmta::metrics {

namespace {

// Help texts may contain '|' (e.g. "accepted|tempfail"), which would split a table cell.
std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

void write_metrics_markdown(std::ostream& out, std::string_view title, std::string_view source,
                            std::string_view prefix, std::span<const MetricDef> defs) {
  out << "### " << title << "\n\n";
  out << "Declared in `" << source << "`.\n\n";
  out << "| Metric | Type | Label | Description |\n";
  out << "|---|---|---|---|\n";
  for (const MetricDef& d : defs) {
    out << "| `" << prefix << d.id << "` | " << kind_name(d.kind);
    if (d.kind == MetricKind::kCallbackGauge) out << " (read at scrape)";
    if (d.kind == MetricKind::kHistogram) out << " (" << d.buckets->docs << ")";
    out << " | ";
    if (!d.label.empty()) {
      out << "`" << d.label << "`:";
      const char* sep = " ";
      for (std::string_view v : d.label_values) {
        out << sep << "`" << v << "`";
        sep = ", ";
      }
    }
    out << " | " << cell(d.help) << " |\n";
  }
  out << "\n";
}

std::optional<std::string> generated_section(std::string_view document) {
  const std::size_t begin = document.find(kGeneratedBegin);
  if (begin == std::string_view::npos) return std::nullopt;
  const std::size_t body = document.find('\n', begin);
  if (body == std::string_view::npos) return std::nullopt;
  const std::size_t end = document.find(kGeneratedEnd, body);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(document.substr(body + 1, end - body - 1));
}

std::string replace_generated_section(std::string_view document, std::string_view generated) {
  std::string out;
  const std::size_t begin = document.find(kGeneratedBegin);
  const std::size_t body = begin == std::string_view::npos ? begin : document.find('\n', begin);
  const std::size_t end =
      body == std::string_view::npos ? body : document.find(kGeneratedEnd, body);
  if (end == std::string_view::npos) {
    out = std::string(document);
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += std::string(kGeneratedBegin) + "\n" + std::string(generated) +
           std::string(kGeneratedEnd) + "\n";
    return out;
  }
  out = std::string(document.substr(0, body + 1));
  out += generated;
  out += document.substr(end);
  return out;
}

}  // namespace ringmta::metrics
