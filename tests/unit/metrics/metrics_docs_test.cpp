// docs/metrics.md must match the metric lists: the table is generated from the .def files and
// this test fails when the checked-in copy is stale. With RINGMTA_UPDATE_DOCS=1 in the
// environment it rewrites the generated part instead (the hand-written text is kept).
#include "core/metrics/metrics_markdown.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/unit/metrics/test_metrics.hpp"

#ifndef RINGMTA_SOURCE_DIR
#define RINGMTA_SOURCE_DIR "."
#endif

namespace ringmta::metrics {
namespace {

// Every binary's list, in the order of docs/metrics.md; a new list adds a line here.
std::string all_lists_markdown() {
  std::ostringstream out;
  write_metrics_markdown<test_lists::SinkMetrics>(out, "ringmta-sink");
  write_metrics_markdown<test_lists::RelayMetrics>(out, "ringmta-relay");
  return out.str();
}

constexpr const char* kDocsPath = RINGMTA_SOURCE_DIR "/docs/metrics.md";
constexpr const char* kRegenerate =
    "RINGMTA_UPDATE_DOCS=1 build/<dir>/bin/unit_metrics --gtest_filter='MetricsDocs.*'";

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(MetricsDocs, DocsMetricsMdIsUpToDate) {
  const std::string generated = all_lists_markdown();
  const std::string current = read_file(kDocsPath);
  const char* update = std::getenv("RINGMTA_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(kDocsPath, std::ios::binary | std::ios::trunc)
        << replace_generated_section(current, generated);
    SUCCEED() << "rewrote " << kDocsPath;
    return;
  }
  ASSERT_FALSE(current.empty()) << kDocsPath << " is missing; create it with: " << kRegenerate;
  const auto section = generated_section(current);
  ASSERT_TRUE(section.has_value())
      << kDocsPath << " lacks the generated-section markers; add them with: " << kRegenerate;
  EXPECT_EQ(*section, generated) << kDocsPath
                                 << " is stale (a metric list changed); regenerate with:\n  "
                                 << kRegenerate;
}

TEST(MetricsDocs, TableHasOneRowPerMetricWithLabelsAndEscapedHelp) {
  std::ostringstream out;
  write_metrics_markdown<test_lists::TestMetrics>(out, "test");
  const std::string md = out.str();
  EXPECT_TRUE(md.starts_with("### test\n\nDeclared in `tests/unit/metrics/test_metrics.def`.\n"))
      << md;
  EXPECT_NE(md.find("| `ringmta_test_events_total` | counter |  | Events counted by the test. |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `ringmta_test_replies_total` | counter | `class`: `ok`, `tempfail`, "
                    "`permfail` | Replies by class (with a \\| to check docs escaping). |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `ringmta_test_spool_free_bytes` | gauge (read at scrape) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `ringmta_test_wait_seconds` | histogram (10 µs to 10 s, 1-2-5 per "
                    "decade) |"),
            std::string::npos)
      << md;
  std::size_t rows = 0;
  for (std::size_t p = md.find("\n| `"); p != std::string::npos; p = md.find("\n| `", p + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, test_lists::TestMetrics::kDefs.size());
}

TEST(MetricsDocs, GeneratedSectionIsReplacedInPlace) {
  const std::string doc = "intro\n" + std::string(kGeneratedBegin) + "\nold\n" +
                          std::string(kGeneratedEnd) + "\noutro\n";
  const std::string updated = replace_generated_section(doc, "new\n");
  EXPECT_EQ(updated, "intro\n" + std::string(kGeneratedBegin) + "\nnew\n" +
                         std::string(kGeneratedEnd) + "\noutro\n");
  EXPECT_EQ(generated_section(updated), "new\n");
  EXPECT_EQ(generated_section("no markers"), std::nullopt);
  EXPECT_EQ(generated_section(replace_generated_section("intro", "x\n")), "x\n");
}

}  // namespace
}  // namespace ringmta::metrics
