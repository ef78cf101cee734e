// What ringmta-loadgen is asked to do: target, load shape (closed or open loop), message
// shape, protocol options, outputs. Filled by load_config.cpp from flags and --config TOML;
// read by the engine. Defaults point at loopback.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "core/io/socket_address.hpp"

namespace ringmta::loadgen {

enum class Arrival : std::uint8_t { constant, poisson };

struct LoadConfig {
  // Where and how hard.
  io::SocketAddress target;          // --target HOST:PORT (default 127.0.0.1:2525)
  unsigned threads = 1;              // --threads: loadgen reactor threads
  unsigned connections = 50;         // --connections: closed loop: concurrent; open loop: cap
  double rate = 0;                   // --rate R msg/s; 0 = closed loop
  Arrival arrival = Arrival::constant;  // --arrival constant|poisson (open loop)
  std::uint64_t messages = 0;        // --messages N: stop after N messages started (0: no cap)
  double duration_s = 10;            // --duration S: stop starting messages after S (0: no cap)
  double warmup_s = 0;               // --warmup S: messages started before this are not in figures
  double ramp_up_s = 0;              // --ramp-up S: rate (open) or connections (closed) grow linearly
  std::uint32_t messages_per_connection = 0;  // --messages-per-connection N; 0 = reuse forever
  std::uint32_t think_time_us = 0;   // --think-time: closed loop pause between messages

  // Protocol.
  std::string helo = "loadgen.ringmta.test";  // --helo
  bool pipelining = true;            // --no-pipelining: lockstep even if offered
  bool bdat = false;                 // --bdat: BDAT when CHUNKING is offered
  std::uint32_t connect_timeout_ms = 10'000;  // --connect-timeout
  std::uint32_t reply_timeout_ms = 60'000;    // --timeout: any one reply

  // TLS and AUTH (docs/tls.md).
  bool starttls = false;             // --starttls: STARTTLS required (no TLS offered = error)
  bool tls_verify = false;           // --tls-verify: check the server's certificate
  std::string tls_ca;                // --tls-ca FILE: trust anchors for --tls-verify
  bool tls_resumption = true;        // --tls-resumption on|off: offer the last session
  std::string auth;                  // --auth USER:PASS: AUTH PLAIN (or LOGIN) after TLS

  // Messages (parsed further by the message factory).
  std::string size = "1024";         // --size BYTES|SPEC
  std::string recipients = "1";      // --recipients N|uniform:A-B
  std::vector<std::string> to_domains = {"ringmta.test"};  // --to-domain DOMAIN[:WEIGHT]
  std::string from = "loadgen@ringmta.test";               // --from
  std::string run_id;                // --run-id (default: generated from time and pid)
  std::uint64_t seed = 1;            // --seed

  // Outputs.
  std::string json_path;             // --json FILE
  std::string ledger_path;           // --ledger FILE
  bool progress = true;              // --no-progress (only shown on a terminal anyway)
};

// ---- Loading (load_config.cpp) ----------------------------------------------------------------
// TOML keys are the flag names without "--" (`--no-pipelining` is `pipelining = false`);
// durations are "250us", "5ms", "1.5s", "2m", "1h" or a bare number of seconds.

// Parses the command line (and --config FILE). Returns -1 when the program should go on
// with `out` filled; otherwise the exit code: 0 after --help, --version or --print-config
// (written to out_stream), 2 after a usage or configuration error (one line on err_stream:
// "ringmta-loadgen: --flag: reason" or "ringmta-loadgen: FILE:LINE:COL: key: reason").
int load_loadgen_config(int argc, char** argv, LoadConfig& out, std::ostream& out_stream,
                        std::ostream& err_stream);

// The configuration as TOML that load_loadgen_config reads back to an equal LoadConfig.
// With run_id_generated the run id is written as a comment, so that a saved file still gets
// a fresh id per run (ids must not repeat across runs: the harness reconciles by id).
std::string format_loadgen_config(const LoadConfig& c, bool run_id_generated = false);

// "r<yyyymmddThhmmss>-<pid>" (UTC): the run id when --run-id is absent.
std::string default_run_id();

const char* arrival_name(Arrival a);  // "constant" | "poisson"

// Every field; the target compares by its text.
bool operator==(const LoadConfig& a, const LoadConfig& b);

}  // namespace ringmta::loadgen
