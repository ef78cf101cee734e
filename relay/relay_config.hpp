// Configuration of ringmta-relay: command-line flags (CLI11) and the --config TOML file
// (toml++) merged into one RelayConfig, checked at start with the file, line and reason of any
// bad setting; --print-config writes every setting back as TOML, defaults included.
//
// ---- TOML schema ------------------------------------------------------------------------------
// Keys are the flag names without "--"; a `--no-X` flag is `X = false`. Lists take an array (or
// one string); the flags --relay-network and --accept-domain, repeatable, are the keys
// relay-networks and accept-domains. Unknown keys are refused. DURATION: a number and a unit
// (ns, us, ms, s, m, h): "500us", "1ms", "5m". BYTES: an integer or text with K, M or G
// (1024-based): "64M". Postfix's nearest parameter is named where there is one.
//
//   listen = ["127.0.0.1:2525"]         # numeric HOST:PORT, IPv6 as "[::1]:2525"; no repeats
//   threads = 2                         # worker threads, 1..1024; default min(2, CPUs)
//   metrics = "127.0.0.1:9100"          # Prometheus /metrics; off when absent
//   verbose = false                     # one log line per session
//   recv-buffers = 1024                 # receive buffers per thread (power of two)
//   recv-buffer-size = 16384            # bytes per receive buffer
//
//   spool = "spool"                     # spool directory (Postfix queue_directory)
//   durability = "batch"                # batch (group commit) | always (a sync per message,
//                                       # as Postfix) | none (no sync: measuring only)
//   batch-max-messages = 64             # 1..100000: a group commit closes at this many...
//   batch-max-wait = "0s"               # ...or this long after its first message (<= 1s);
//                                       # 0: as soon as no sync is running (the messages
//                                       # that arrive during one sync form the next batch);
//                                       # both ignored with durability = "always"
//   segment-size = "64M"                # preallocated size of a spool file, >= 1M
//   spool-quota-bytes = 0               # 0 = none; else at least one segment
//   spool-quota-messages = 0            # 0 = none
//
//   relay-networks = ["127.0.0.0/8", "::1/128"]   # clients that may relay anywhere
//                                       # (Postfix mynetworks); [] or "none": no client
//   accept-domains = ["example.test", "*.example.test"]   # recipient domains anyone may
//                                       # send to (Postfix relay_domains); default none
//
//   hostname = "localhost"              # banner, EHLO reply, Received: (Postfix myhostname)
//   max-message-size = "35M"            # 1 byte..1023M (Postfix message_size_limit)
//   max-recipients = 100                # per message (Postfix smtpd_recipient_limit)
//   command-timeout = "5m"              # wait for a command (Postfix smtpd_timeout)
//   data-timeout = "5m"                 # wait for message data
//   pipelining = true                   # also size, 8bitmime, smtputf8, enhancedstatuscodes,
//                                       # chunking, dsn: the EHLO extensions offered
//   max-connections = 10000             # in total; beyond, 421 4.7.0; 0 = no limit
//   max-connections-per-client = 100    # per client IP; 0 = no limit (Postfix
//                                       # smtpd_client_connection_count_limit)
//
//   [[route]]                           # where mail for a domain goes (Postfix transport;
//   domain = "*"                        # "*" is the default route, as relayhost), the same
//   hops = ["127.0.0.1:2526"]           # as route = ["*=127.0.0.1:2526"] in flag form
//
// Command-line flags override the file; a list flag replaces the file's whole list.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/socket_address.hpp"
#include "core/smtp/server_session.hpp"

namespace ringmta::relay {

enum class Durability : std::uint8_t {
  batch,   // group commit: one fdatasync covers every message of a batch (default)
  always,  // one fdatasync per message, as Postfix
  none,    // no sync: unsafe, only to measure what durability costs
};
std::string_view durability_name(Durability d);  // "batch" | "always" | "none"

// An IPv4 or IPv6 network in CIDR form: "127.0.0.0/8", "::1/128", "10.1.2.3" (= /32).
struct Network {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4
  unsigned prefix = 0;                   // 0..32 or 0..128

  // Also takes Postfix's bracketed IPv6 ("[::1]/128"). Refuses host bits set beyond the
  // prefix ("10.1.2.3/8"), naming the network meant. False with a reason in *why.
  static bool parse(std::string_view text, Network& out, std::string* why);
  // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a dual-stack socket reports) match IPv4
  // networks, and IPv4 addresses match IPv6 networks through their mapped form; so ::/0
  // matches every address and 0.0.0.0/0 every IPv4 one.
  bool contains(const io::SocketAddress& a) const;
  std::string to_string() const;  // "127.0.0.0/8", "::1/128": parse() reads it back
  friend bool operator==(const Network&, const Network&) = default;
};

// Whether a recipient domain matches a pattern of accept-domains or route: "example.test"
// exactly, "*.example.test" its sub-domains (not example.test itself), "*" any domain. The
// pattern is lower case (as the loader leaves it); the domain is compared ignoring case.
bool domain_matches(std::string_view pattern, std::string_view domain);

// Where mail for a domain goes: --route DOMAIN=HOST:PORT[,HOST:PORT...]. Which route wins
// and how hops are tried is the queue manager's business; the loader only checks the text.
struct Route {
  // Lower case: a domain, "*.suffix" (its sub-domains), "*" (the default route), or an
  // address literal such as "[127.0.0.1]" (recipients written user@[127.0.0.1]).
  std::string domain;
  // Numeric HOST:PORT, port not 0, no repeats. Postfix's "[127.0.0.1]:2526" (brackets: no MX
  // lookup) is read as 127.0.0.1:2526, since ringmta never looks anything up.
  std::vector<io::SocketAddress> hops;

  static bool parse(std::string_view text, Route& out, std::string* why);
  std::string to_string() const;  // "DOMAIN=HOST:PORT,HOST:PORT": parse() reads it back
};
bool operator==(const Route& a, const Route& b);  // hops compare by their text

inline constexpr std::string_view kDefaultListen = "127.0.0.1:2525";

// min(2, hardware threads), at least 1: the relay shares small machines with the testbed.
unsigned default_thread_count();

struct RelayConfig {
  // ---- Process
  std::vector<io::SocketAddress> listen;      // --listen HOST:PORT (repeatable); 127.0.0.1:2525
  unsigned threads = default_thread_count();  // --threads N: min(2, CPUs)
  std::optional<io::SocketAddress> metrics;   // --metrics HOST:PORT; off when absent
  bool verbose = false;  // --verbose: one log line per session (off the hot path: default off)
  unsigned recv_buffers = 1024;       // --recv-buffers: per thread, a power of two
  unsigned recv_buffer_size = 16384;  // --recv-buffer-size: bytes each

  // ---- Spool
  std::string spool = "spool";                // --spool DIR
  Durability durability = Durability::batch;  // --durability batch|always|none
  // A group commit closes after this many messages or this long after its first message,
  // whichever comes first; both are ignored with Durability::always.
  std::uint32_t batch_max_messages = 64;    // --batch-max-messages N: 1..100000
  std::uint32_t batch_max_wait_us = 0;      // --batch-max-wait DURATION: 0..1s; 0 = when no
                                            // sync runs (natural group commit)
  std::uint64_t segment_bytes = 64u << 20;  // --segment-size BYTES: >= 1M, preallocated
  std::uint64_t quota_bytes = 0;            // --spool-quota-bytes BYTES: 0 = none
  std::uint64_t quota_messages = 0;         // --spool-quota-messages N: 0 = none

  // ---- Relaying
  // --relay-network CIDR (repeatable; key relay-networks): clients that may relay anywhere.
  // Default 127.0.0.0/8 and ::1/128; "none" for no client.
  std::vector<Network> relay_networks;
  // --accept-domain DOMAIN (repeatable; key accept-domains): recipient domains anyone may
  // send to, lower case, "*.suffix" for sub-domains. Default none.
  std::vector<std::string> accepted_domains;
  std::vector<Route> routes;  // --route DOMAIN=HOST:PORT[,...] (repeatable; [[route]])

  // ---- SMTP server
  // --hostname (default "localhost"), --max-message-size (35M), --max-recipients (100),
  // --command-timeout and --data-timeout (5m), --no-pipelining, --no-size, --no-8bitmime,
  // --no-smtputf8, --no-enhancedstatuscodes, --no-chunking, --no-dsn. STARTTLS stays off.
  smtp::ServerConfig server;
  std::uint32_t max_connections = 10000;           // --max-connections: total; beyond, 421 4.7.0
                                                   // at the banner; 0 = no limit
  std::uint32_t max_connections_per_client = 100;  // --max-connections-per-client: 0 = none

  RelayConfig();  // fills the list defaults (listen, relay_networks)
};
// Every field; addresses compare by their text, ServerConfig by every field.
bool operator==(const RelayConfig& a, const RelayConfig& b);

// Parses the command line (and --config FILE). Returns -1 when the program should go on with
// `out` filled; otherwise the exit code: 0 after --help, --version or --print-config (written
// to out_stream), 2 after a usage or configuration error (one line on err_stream:
// "ringmta-relay: FILE:LINE:COL: key: reason" or "ringmta-relay: --flag: reason").
int load_relay_config(int argc, char** argv, RelayConfig& out, std::ostream& out_stream,
                      std::ostream& err_stream);

// The configuration as TOML, every setting written out with its value (like postconf -d),
// that load_relay_config reads back to an equal RelayConfig.
std::string format_relay_config(const RelayConfig& c);

}  // namespace ringmta::relay
