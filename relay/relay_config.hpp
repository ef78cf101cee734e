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
//   # Delivery (docs/routing.md); pacing is per destination, over all threads
//   destination-concurrency = 20        # connections at once, 1..10000 (Postfix
//                                       # default_destination_concurrency_limit)
//   messages-per-connection = 1000      # then a new connection; 0 = no limit
//   destination-rate = 0                # messages/s, a token bucket; 0 = no limit
//   bdat = true                         # BDAT where the next hop offers CHUNKING
//   transactions-in-flight = 8          # with BDAT: transactions written ahead of their
//                                       # replies on one connection, 1..64; 1: one at a time
//   connect-timeout = "30s"             # 1ms..1h (Postfix smtp_connect_timeout)
//   delivery-timeout = "5m"             # each reply of the next hop, 1ms..1h
//   idle-timeout = "2s"                 # an idle connection kept for reuse, 0..1h; 0: closed
//                                       # at once (Postfix smtp_connection_cache_time_limit)
//   throttle-pause = "1s"               # after 421 / 4.7.x: no new connection for this long
//                                       # (0..1h) and the concurrency halved
//   max-received = 50                   # more Received: headers is a loop, 1..1000 (Postfix
//                                       # hopcount_limit)
//   retry-first-delay = "5m"            # 1ms..24h (Postfix minimal_backoff_time), then each
//   retry-factor = 2                    # delay 1..10 times the one before, up to
//   retry-max-delay = "4000s"           # 1ms..24h, >= retry-first-delay (maximal_backoff_time),
//   retry-jitter = 0.2                  # each moved by up to this share either way, 0..0.5
//   max-queue-lifetime = "120h"         # then bounced; 1ms..2400h (Postfix
//                                       # maximal_queue_lifetime = 5d; no day unit here)
//
//   [[route]]                           # where mail for a domain goes (Postfix transport;
//   domain = "*"                        # "*" is the default route, as relayhost), the same
//   hops = ["127.0.0.1:2526"]           # as route = ["*=127.0.0.1:2526"] in flag form
//
//   [[route]]
//   domain = "example.test"             # also "*.example.test" (its sub-domains only) or an
//                                       # address literal "[127.0.0.1]"; no domain twice
//   hops = ["127.0.0.1:2526", "127.0.0.1:2527"]   # strings: failover in the order written
//   # hops = [{ address = "127.0.0.1:2526", priority = 10 },   # lower first, 0..65535;
//   #         { address = "127.0.0.1:2527", priority = 10 }]   # equal ones share the load
//   concurrency = 5                     # overrides of destination-concurrency,
//   messages-per-connection = 100       # messages-per-connection, destination-rate (key
//   rate = 50.0                         # rate) and bdat for this destination only; absent:
//   bdat = false                        # the global value (transactions-in-flight and
//                                       # tls likewise)
//
//   [[alias]]                           # forwarding (Postfix virtual_alias_maps), also
//   address = "info@example.test"       # alias = ["info@example.test=a@example.test,..."];
//   to = ["a@example.test", "b@other.test"]   # "@example.test" as address: all of a domain.
//                                       # Targets are expanded again (10 deep at most, 1000
//                                       # recipients at most, no cycle); keys ignore case
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
#include "relay/delivery_config.hpp"

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

// Where mail for a domain goes: --route DOMAIN=HOST:PORT[,HOST:PORT...] or a [[route]] table.
// Which route wins is RouteTable's business (route_table.hpp); the loader checks the text.
struct Route {
  // Lower case: a domain, "*.suffix" (its sub-domains), "*" (the default route), or an
  // address literal such as "[127.0.0.1]" (recipients written user@[127.0.0.1]).
  std::string domain;
  // Numeric HOST:PORT, port not 0, no repeats. Postfix's "[127.0.0.1]:2526" (brackets: no MX
  // lookup) is read as 127.0.0.1:2526, since ringmta never looks anything up.
  std::vector<io::SocketAddress> hops;
  // The hops' priorities, one per hop (lower is tried first, equal ones share the load); a
  // missing one is the hop's position, as the flag form and a list of strings give.
  std::vector<std::uint32_t> priorities;
  // This destination's overrides of RelayConfig::delivery.policy ([[route]] keys concurrency,
  // messages-per-connection, rate, bdat, transactions-in-flight, tls); unset: the global value.
  std::optional<std::uint32_t> concurrency;
  std::optional<std::uint32_t> messages_per_connection;
  std::optional<double> rate;
  std::optional<bool> bdat;
  std::optional<std::uint32_t> transactions_in_flight;
  std::optional<std::uint8_t> tls;  // smtp::TlsPolicy

  std::uint32_t priority(std::size_t hop) const;
  // `defaults` with this route's overrides applied.
  DeliveryPolicy policy(const DeliveryPolicy& defaults) const;

  // The flag form; priorities are the hops' positions.
  static bool parse(std::string_view text, Route& out, std::string* why);
  // "DOMAIN=HOST:PORT,HOST:PORT": the flag form, which parse() reads back (it has no room for
  // priorities or overrides; --print-config writes [[route]] tables).
  std::string to_string() const;
};
// Every field; hops compare by their text, priorities as priority() gives them.
bool operator==(const Route& a, const Route& b);

// Limits of alias expansion (Postfix virtual_alias_recursion_limit and
// virtual_alias_expansion_limit are 1000 each; a chain of ten aliases is already unusual).
inline constexpr std::size_t kMaxAliasDepth = 10;         // aliases in a chain
inline constexpr std::size_t kMaxAliasRecipients = 1000;  // final recipients of one alias

// Expands every alias as AliasTable (route_table.hpp) does and returns "" when each one
// expands: no cycle, at most kMaxAliasDepth aliases in a chain, at most kMaxAliasRecipients
// final recipients. Else the reason (naming the cycle or the chain), and *failed is the index
// of the first alias whose expansion failed. Defined with AliasTable: one piece of code
// decides both.
std::string check_aliases(const std::vector<Alias>& aliases, std::size_t* failed);

inline constexpr std::string_view kDefaultListen = "127.0.0.1:2525";

// min(2, hardware threads), at least 1: the relay shares small machines with the testbed.
unsigned default_thread_count();

struct RelayConfig {
  // ---- Process
  std::vector<io::SocketAddress> listen;      // --listen HOST:PORT (repeatable); 127.0.0.1:2525
  unsigned threads = default_thread_count();  // --threads N: min(2, CPUs)
  std::optional<io::SocketAddress> metrics;   // --metrics HOST:PORT; off when absent
  bool verbose = false;  // --verbose: one log line per session (off the hot path: default off)
  // For testing the testbed only (the harness must catch a relay that loses or slows mail):
  // --test-drop-after-ack N: 1 message in N is acked (250, durable) and then dropped, its
  // recipients logged as delivered without delivery; --test-accept-delay DURATION: the 250
  // to the end of data waits this long more. 0: off (the default).
  // ---- TLS and AUTH (docs/tls.md, docs/auth.md)
  // --starttls off|on|required (server.starttls / server.require_tls), --tls-cert FILE,
  // --tls-key FILE (PEM; needed unless off). --auth-users FILE: AUTH PLAIN/LOGIN against
  // that users file (server.auth), after TLS unless --auth-without-tls; authenticated
  // clients may relay to any domain. --max-auth-failures N per session (server), and
  // auth_client_failures per client address within 15 minutes, then 421 to AUTH.
  std::string tls_cert;
  std::string tls_key;
  std::string auth_users;
  std::uint32_t auth_client_failures = 10;
  std::uint32_t test_drop_after_ack = 0;
  std::uint32_t test_accept_delay_ms = 0;
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
  // --alias ADDRESS=TARGET[,TARGET...] (repeatable; [[alias]]): address lower case
  // ("local@domain" or "@domain"), targets mailboxes as written; checked by check_aliases.
  std::vector<Alias> aliases;

  // ---- Delivery
  // --destination-concurrency, --messages-per-connection, --destination-rate, --no-bdat,
  // --transactions-in-flight;
  // --connect-timeout, --delivery-timeout (reply_timeout_ms), --idle-timeout,
  // --throttle-pause, --max-received; --retry-first-delay, --retry-factor, --retry-max-delay,
  // --retry-jitter, --max-queue-lifetime (retry.lifetime_ms). Defaults as in
  // delivery_config.hpp.
  DeliveryConfig delivery;

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
