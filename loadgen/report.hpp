// What ringmta-loadgen prints and writes from a run's Results: the end-of-run summary (in the
// spirit of wrk2), the JSON result file (schema in docs/result-format.md) and the live
// progress line. Pure formatting: no clocks, no I/O beyond the stream given.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "loadgen/results.hpp"

namespace ringmta::loadgen {

// The "schema" field of the JSON file; bumped when a field changes meaning or goes away.
inline constexpr const char* kResultSchema = "ringmta-loadgen/1";

// Percentiles in the summary table and in the JSON (the summary adds 100, the max).
inline constexpr double kReportPercentiles[] = {50, 75, 90, 99, 99.9, 99.99};

// The loadgen's own CPU over the run (warm-up included), to flag a run it limited.
struct CpuUse {
  double total_s = 0;       // user + system
  double wall_s = 0;        // warmup_s + duration_s
  double one_core_pct = 0;  // total / wall, in % of one core
  double capacity_pct = 0;  // one_core_pct / threads
  bool saturated = false;   // capacity_pct above kSaturatedPct
};
inline constexpr double kSaturatedPct = 90;
CpuUse cpu_use(const Results& r);

// Accepted messages per second over the measured duration (0 when it is 0).
double throughput_msg_s(const Results& r);

// The human summary, several lines ending with a newline.
void write_summary(std::ostream& out, const Results& r);

// Every figure as one JSON document (docs/result-format.md), ending with a newline.
void write_json(std::ostream& out, const Results& r);

// One line for a live display, without a newline; fields have fixed widths so that "\r"
// redraws it cleanly. p50/p99 of 0 mean "no sample in that second" and show as "-".
std::string progress_line(std::uint64_t second, double accepted_per_s, std::uint64_t p50_ns,
                          std::uint64_t p99_ns, std::uint64_t errors);

// A latency with a unit chosen by its size: "850ns", "12.34us", "1.23ms", "2.50s".
std::string format_latency(std::uint64_t ns);

}  // namespace ringmta::loadgen
