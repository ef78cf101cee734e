// What one ringmta-loadgen run measured: counts by outcome, latency histograms per phase and
// a per-second timeline, merged from every thread at the end. The summary, the JSON file
// (docs/result-format.md) and the progress line are written from this.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/stats/histogram.hpp"

namespace ringmta::loadgen {

enum class Phase : std::uint8_t {
  connect,      // TCP connect until established
  banner,       // established until the 220
  ehlo,         // EHLO sent until its reply (the first EHLO, before any STARTTLS)
  tls,          // STARTTLS's 220 received until the TLS handshake completed (--starttls)
  envelope,     // MAIL sent until the body may go (354, or BDAT pipelined at once)
  accept,       // end of data sent until the final reply: what a relay's users feel (open
                // loop: plus how late the message started, so stalls are not hidden)
  transaction,  // intended start (open loop: schedule; closed: start) until the final reply
};
inline constexpr std::size_t kPhaseCount = 7;
const char* phase_name(Phase p);  // "connect", "banner", "ehlo", "tls", ..., "transaction"

enum class ConnError : std::uint8_t {
  refused,      // ECONNREFUSED
  connect_timeout,
  reset,        // ECONNRESET/EPIPE while in use
  closed,       // the server closed (421 or plain close) while a message was in flight
  reply_timeout,
  protocol,     // malformed reply
  tls,          // STARTTLS not offered or refused, or the TLS handshake failed
  auth,         // AUTH not offered or refused
  other,
};
inline constexpr std::size_t kConnErrorCount = 9;
const char* conn_error_name(ConnError e);

struct SecondStats {  // one second of the timeline (by the second a message finished)
  std::uint64_t accepted = 0;   // 2xx to the end of data
  std::uint64_t tempfail = 0;   // 4xx final reply (any phase)
  std::uint64_t permfail = 0;   // 5xx final reply (any phase)
  std::uint64_t errors = 0;     // ended by a connection error or timeout
  stats::Histogram accept_latency{1'000, 60'000'000'000ull, 4};  // ns, coarse (~6%)
};

struct Results {
  // Identity.
  std::string run_id;
  std::string target;
  std::string mode;  // "closed" | "open"
  double rate = 0;
  unsigned threads = 0;
  unsigned connections = 0;
  std::string size_spec;
  std::uint64_t seed = 0;

  // Time.
  double duration_s = 0;        // measured: from the end of warm-up to the last reply
  double warmup_s = 0;
  std::uint64_t start_unix_ms = 0;

  // Counts (after warm-up unless noted).
  std::uint64_t started = 0;    // messages started
  std::uint64_t accepted = 0;
  std::uint64_t tempfail = 0;
  std::uint64_t permfail = 0;
  std::uint64_t errors = 0;     // transactions ended by a connection error or timeout
  std::uint64_t warmup_messages = 0;  // started during warm-up (in the ledger, not in figures)
  std::uint64_t recipients_accepted = 0;
  std::uint64_t recipients_rejected = 0;
  std::uint64_t bytes_sent = 0;       // message octets of accepted messages
  std::map<std::string, std::uint64_t> replies;  // "250 2.0.0", "451 4.3.0", "421", ...
  std::array<std::uint64_t, kConnErrorCount> conn_errors{};
  std::uint64_t connections_opened = 0;
  std::uint64_t pipelined_transactions = 0;  // server offered PIPELINING and it was used
  std::uint64_t bdat_transactions = 0;
  // --starttls: handshakes that completed, and how many of them resumed a session.
  std::uint64_t tls_handshakes = 0;
  std::uint64_t tls_resumed = 0;
  // Thread CPU time the loadgen spent in TLS handshakes (all of them, failed ones too).
  std::uint64_t tls_handshake_cpu_ns = 0;
  // Open loop: messages that waited for a free connection (the cap was reached) and the
  // longest such wait; the wait is part of their transaction latency.
  std::uint64_t waited_for_connection = 0;
  std::uint64_t max_connection_wait_ns = 0;

  // Latency per phase, nanoseconds.
  std::array<stats::Histogram, kPhaseCount> latency;

  // Per-second timeline from the start of the run (warm-up included, marked by warmup_s).
  std::vector<SecondStats> timeline;

  // Saturation self-check: the loadgen's own CPU time over the run.
  double cpu_user_s = 0;
  double cpu_system_s = 0;
};

}  // namespace ringmta::loadgen
