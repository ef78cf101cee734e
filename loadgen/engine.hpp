// The load generator's engine: one io_uring reactor per thread, each with its share of the
// connections and of the load. Closed loop: each connection sends its next message as soon
// as the last one ended. Open loop: messages arrive on a schedule (constant or Poisson),
// whatever the server does, and each one's latency runs from its scheduled time, so a stalled
// server shows up in the percentiles instead of slowing the load (coordinated omission).
#pragma once

#include "loadgen/load_config.hpp"
#include "loadgen/message_factory.hpp"
#include "loadgen/results.hpp"

namespace ringmta::loadgen {

// Called about once a second from the main thread while the run goes on.
struct Progress {
  double elapsed_s = 0;
  std::uint64_t accepted = 0;   // so far, all threads
  std::uint64_t failed = 0;     // 4xx/5xx final replies
  std::uint64_t errors = 0;
  std::uint64_t last_p50_ns = 0;  // accept latency over the last second (the busiest thread)
  std::uint64_t last_p99_ns = 0;
};
using ProgressFn = void (*)(const Progress&, void* ctx);

// Runs the whole load and returns the merged results. Throws std::runtime_error for a
// failure to start (kernel, files); SIGINT/SIGTERM end the run early, with results so far.
Results run_load(const LoadConfig& config, const MessageFactory& factory, ProgressFn progress,
                 void* progress_ctx);

}  // namespace ringmta::loadgen
