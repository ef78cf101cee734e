// Configuration of ringmta-sink: command-line flags (CLI11) and the --config TOML file
// (toml++) merged into one SinkConfig, checked at start with the file, line and reason of any
// bad setting; --print-config writes the effective configuration back as TOML.
//
// ---- TOML schema ------------------------------------------------------------------------------
// Keys are the flag names without "--" (so `--digest-log` is `digest-log`); a `--no-X` flag is
// `X = false`. Unknown keys are refused. Durations: "250us", "5ms", "1.5s", "2m", "1h".
// Delay SPEC: a duration, "uniform:LOW-HIGH" or "lognormal:MEDIAN,SIGMA".
//
//   # Process-wide (top level only)
//   threads = 2                   # worker threads; default min(2, CPUs)
//   mode = "discard"              # discard | count | digest | maildir
//   digest-log = "ids.log"        # required with (and only with) mode = "digest"
//   maildir = "/tmp/sink"         # required with (and only with) mode = "maildir"
//   metrics = "127.0.0.1:9101"    # Prometheus /metrics; off when absent
//   seed = 1                      # failure and delay draws (0 .. 2^63-1)
//   recv-buffers = 1024           # receive buffers per thread (power of two)
//   recv-buffer-size = 16384      # bytes per receive buffer
//
//   # Listener settings. At the top level they apply to the top-level `listen` addresses and
//   # to --listen; each [[listener]] table is a complete listener that starts from the
//   # built-in defaults (it does not inherit top-level settings).
//   listen = "127.0.0.1:2525"     # or ["127.0.0.1:2525", "[::1]:2525"]; required in [[listener]]
//   hostname = "localhost"        # banner and EHLO name
//   max-message-size = 36700160   # bytes (or "35M", "512K", "1G"); 0 = no limit
//   max-recipients = 100
//   max-connections = 0           # concurrent; beyond it 421 4.7.0 at the banner; 0 = no limit
//   pipelining = true             # also size, 8bitmime, smtputf8, enhancedstatuscodes,
//                                 # chunking, dsn: the EHLO extensions offered
//   starttls = "off"              # off | on (offered) | required (530 5.7.0 to MAIL before it)
//   tls-cert = "server.pem"       # PEM chain, leaf first (required when starttls is not off)
//   tls-key = "server.key"        # PEM private key
//   magic = true                  # magic recipient local parts (tempfail+x@d, ...)
//   greylist-capacity = 262144    # greylist triples remembered; when full, RCPTs pass
//   # ...and every profile key below, which sets the listener's default profile.
//
//   # Profile keys: at the top level, in [[listener]], and in domain tables.
//   tempfail-rate = 0.0           # probability of 451 4.3.0 at end of data
//   permfail-rate = 0.0           # probability of 554 5.6.0 at end of data
//   disconnect-rate = 0.0         # probability of closing without a reply at end of data
//   delay = "0s"                  # SPEC for every phase of this table
//   delay-connect = "0s"          # one per phase: connect, ehlo, mail, rcpt, data,
//                                 # end-of-data; a per-phase key wins over `delay`
//   greylist-wait = "5m"          # greylisting at RCPT; absent or "off" = off
//   rate-limit = 0                # per second, 0 = off: messages at MAIL (listener), or
//                                 # recipients of the domain at RCPT (domain table)
//   rate-limit-burst = 0          # tokens after idling; 0 = one second's worth
//   rate-limit-reply = 421        # 421 (4.7.0, then close) or 451 (4.7.1)
//
//   [[listener.rule]]             # ([[rule]] at the top level) first-match rules of a phase:
//   phase = "rcpt"                # connect | ehlo | mail | rcpt | data | end-of-data (required)
//   probability = 0.1             # default 1; one draw per decision, the rules of a phase take
//                                 # consecutive slices of it, so their sum is at most 1
//   action = "reply"              # reply | disconnect | reply-and-disconnect |
//                                 # disconnect-mid-data (phase data only); default reply
//   reply = "451 4.3.0 Try later" # 4xx/5xx (connect: 421 or 554); enhanced code optional, its
//                                 # class must match; reply-and-disconnect defaults to 421 4.3.2
//   after-bytes = 4096            # disconnect-mid-data: body bytes read before closing
//   delay = "1s"                  # SPEC replacing the phase's delay when this rule fires
//
//   [listener.domain."slow.test"] # ([domain."slow.test"] at the top level) replaces the
//   delay-rcpt = "200ms"          # profile for recipients of slow.test ("*.slow.test" = its
//   [[listener.domain."slow.test".rule]]   # sub-domains; exact names win, then the longest
//   phase = "rcpt"                # suffix). Profile keys and rules only, for phases rcpt,
//   reply = "452 4.2.2 Full"      # data and end-of-data; data and end-of-data follow the
//                                 # first accepted recipient. Nothing is inherited.
//
// Command-line flags override the file; a listener setting given as a flag applies to every
// listener's default profile (domain tables keep theirs).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/socket_address.hpp"
#include "core/smtp/server_session.hpp"
#include "sinks/behaviour.hpp"

namespace ringmta::sink {

enum class SinkMode : std::uint8_t {
  discard,  // read and drop (Postfix smtp-sink)
  count,    // drop, but count messages and bytes
  digest,   // log the id of each accepted message to digest_log (for the harness' ledger)
  maildir,  // store each message in maildir
};
std::string_view mode_name(SinkMode m);

inline constexpr std::string_view kDefaultListen = "127.0.0.1:2525";

struct ListenerConfig {
  io::SocketAddress address;
  smtp::ServerConfig server;  // hostname, extensions, size and recipient limits, STARTTLS
  std::string tls_cert;       // with server.starttls: PEM chain and key (docs/tls.md)
  std::string tls_key;
  BehaviourConfig behaviour;  // rules, delays, domains, greylisting, rate and connection limits
};
// Addresses compare by their text; ServerConfig by every field.
bool operator==(const ListenerConfig& a, const ListenerConfig& b);

// min(2, hardware threads), at least 1: the sink shares small machines with the relay.
unsigned default_thread_count();

struct SinkConfig {
  unsigned threads = default_thread_count();
  std::vector<ListenerConfig> listeners;  // at least one after load_sink_config
  SinkMode mode = SinkMode::discard;
  std::string digest_log;  // mode digest
  std::string maildir;     // mode maildir
  std::optional<io::SocketAddress> metrics;
  std::uint64_t seed = 1;  // per-thread Rng: Rng(seed + thread index)
  unsigned recv_buffers = 1024;       // per thread (io_uring provided-buffer ring)
  unsigned recv_buffer_size = 16384;  // bytes each
};
bool operator==(const SinkConfig& a, const SinkConfig& b);

// Parses the command line (and --config FILE). Returns -1 when the program should go on
// with `out` filled; otherwise the exit code: 0 after --help, --version or --print-config
// (written to out_stream), 2 after a usage or configuration error (one line on err_stream:
// "ringmta-sink: FILE:LINE:COL: key: reason" or "ringmta-sink: --flag: reason").
int load_sink_config(int argc, char** argv, SinkConfig& out, std::ostream& out_stream,
                     std::ostream& err_stream);

// The configuration as a TOML document (every listener as a [[listener]] table, defaults
// written out) that load_sink_config reads back to an equal SinkConfig.
std::string format_sink_config(const SinkConfig& c);

}  // namespace ringmta::sink
