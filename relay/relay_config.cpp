// Loading ringmta-relay's configuration: the CLI11 command line, the --config TOML file
// (toml++), their merge and checks (each error names the flag, or the file, line and key),
// and --print-config. Follows the sink's and the loadgen's loaders; the schema is documented
// in relay_config.hpp.
#include "relay/relay_config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <ostream>
#include <sstream>
#include <thread>

#include "core/config/starttls_setting.hpp"
#include "core/config/toml_value.hpp"
#include "core/smtp/address.hpp"
#include "core/smtp/ascii.hpp"
#include "core/smtp/client_session.hpp"

#ifndef RINGMTA_VERSION
#define RINGMTA_VERSION "unknown"
#endif

namespace ringmta::relay {
namespace {

using config::BareNumber;
using config::ConfigError;
using config::fail_at;
using config::in_quotes;
using config::kNsPerSecond;
using config::Origin;
using config::toml_string;
using config::Value;

constexpr const char* kProgram = "ringmta-relay";
constexpr std::string_view kDefaultRelayNetworks[] = {"127.0.0.0/8", "::1/128"};

constexpr std::uint64_t kMaxBatchWaitNs = kNsPerSecond;
constexpr std::uint64_t kNsPerMs = 1'000'000;
constexpr std::uint64_t kMsPerHour = 3600 * 1000;
constexpr std::uint64_t kMaxTimeoutMs = kMsPerHour;
constexpr std::uint64_t kMaxRetryDelayMs = 24 * kMsPerHour;  // a deferred message, tried daily
// Postfix caps maximal_queue_lifetime at 100 days too.
constexpr std::uint64_t kMaxQueueLifetimeMs = 100 * 24 * kMsPerHour;
constexpr std::uint64_t kMinSegmentBytes = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxSegmentBytes = std::uint64_t{64} << 30;
// The spool keeps a message in one record, whose payload is at most 1 GiB
// (spool::kMaxPayload); 1M of it is left for the envelope and the Received: header.
constexpr std::uint64_t kMaxMessageBytes = std::uint64_t{1023} << 20;

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    c = smtp::to_lower(c);
  return r;
}

// ---- Networks --------------------------------------------------------------------------------

// Bytes of a socket address as an IPv6 address (IPv4 mapped to ::ffff:a.b.c.d). False for
// other families.
bool address_bytes(const io::SocketAddress& a, bool& v6, std::array<std::uint8_t, 16>& out) {
  out = {};
  if (a.storage.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a.storage);
    std::memcpy(out.data(), &in.sin_addr, 4);
    v6 = false;
    return true;
  }
  if (a.storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a.storage);
    std::memcpy(out.data(), &in6.sin6_addr, 16);
    v6 = true;
    return true;
  }
  return false;
}

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Whether the first `bits` bits of a and b agree.
bool same_prefix(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                 unsigned bits) {
  const unsigned whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> (bits % 8));
  return (a[whole] & mask) == (b[whole] & mask);
}

// ---- Domains and hops ------------------------------------------------------------------------

constexpr std::string_view kDomainAdvice =
    "write example.test, or *.example.test for its sub-domains";

// An accept-domains or route pattern, lower-cased into out. False with a reason.
bool parse_domain_pattern(std::string_view text, bool is_route, std::string& out,
                          std::string& why) {
  const std::string shown = in_quotes(text);
  if (text == "*") {
    if (is_route) {
      out = "*";
      return true;
    }
    why = shown +
          " would accept mail for every domain from every client (an open relay); name the "
          "domains, or list the clients in relay-networks";
    return false;
  }
  if (is_route && !text.empty() && text.front() == '[') {
    if (!smtp::is_valid_address_literal(text)) {
      why = shown + " is not an address literal (such as [127.0.0.1] or [IPv6:::1])";
      return false;
    }
    out = lower(text);
    return true;
  }
  const std::string_view name = text.starts_with("*.") ? text.substr(2) : text;
  if (!smtp::is_valid_domain(name, false)) {
    if (smtp::has_non_ascii(name) && smtp::is_valid_domain(name, true)) {
      why = shown + " is not ASCII: write the xn-- form of an internationalised domain";
    } else if (is_route) {
      why = shown +
            " is not a route domain (a domain, *.example.test for its sub-domains, * for every "
            "other domain, or an address literal such as [127.0.0.1])";
    } else {
      why = shown + " is not a domain name (" + std::string(kDomainAdvice) + ")";
    }
    return false;
  }
  out = lower(text);
  return true;
}

// One hop: numeric HOST:PORT, port not 0; Postfix's "[127.0.0.1]:2526" is read without the
// brackets. False with a reason that starts with the quoted text.
bool parse_hop(std::string_view text, io::SocketAddress& out, std::string& why) {
  std::string t(text);
  if (t.starts_with("[")) {
    const std::size_t close = t.find(']');
    if (close != std::string::npos && t.find(':') > close)
      t = t.substr(1, close - 1) + t.substr(close + 1);
  }
  std::string io_why;
  if (!io::parse_socket_address(t, out, &io_why)) {
    // parse_socket_address ends its reason with the text, which is already in front.
    const std::size_t tail = io_why.rfind(": \"");
    why = in_quotes(text) + ": " + io_why.substr(0, tail);
    return false;
  }
  if (out.port() == 0) {
    why = in_quotes(text) + ": port 0 cannot be connected to";
    return false;
  }
  return true;
}

// ---- Keys ------------------------------------------------------------------------------------

struct Extension {
  std::string_view key;
  bool smtp::ServerConfig::*field;
  std::string_view help;
};
constexpr Extension kExtensions[] = {
    {"pipelining", &smtp::ServerConfig::pipelining, "PIPELINING (RFC 2920)"},
    {"size", &smtp::ServerConfig::size, "SIZE (RFC 1870)"},
    {"8bitmime", &smtp::ServerConfig::eight_bit_mime, "8BITMIME (RFC 6152)"},
    {"smtputf8", &smtp::ServerConfig::smtputf8, "SMTPUTF8 (RFC 6531)"},
    {"enhancedstatuscodes", &smtp::ServerConfig::enhanced_status_codes,
     "ENHANCEDSTATUSCODES (RFC 2034)"},
    {"chunking", &smtp::ServerConfig::chunking, "CHUNKING, i.e. BDAT (RFC 3030)"},
    {"dsn", &smtp::ServerConfig::dsn, "DSN (RFC 3461)"},
};

// What the TOML file and the flags have set so far; later sources win.
struct Sources {
  std::map<std::string, Origin, std::less<>> origin;  // by key: where it was last set

  // Where a cross-setting check points: where `key` was set, else its flag.
  Origin at(std::string_view key) const {
    const auto it = origin.find(key);
    return it != origin.end() ? it->second : Origin::flag("--" + std::string(key));
  }
};

Durability parse_durability(const Value& v) {
  const std::string s = v.text("batch, always or none");
  for (Durability d : {Durability::batch, Durability::always, Durability::none}) {
    if (s == durability_name(d)) return d;
  }
  v.fail("must be batch, always or none, got " + v.shown());
}

// Postfix writes days ("5d"), which the shared duration parser has no unit for: say what to
// write instead of only "unknown unit".
void refuse_days(const Value& v) {
  if (v.node() != nullptr && !v.node()->is_string()) return;
  const std::string t = v.text("a duration");
  if (t.size() < 2 || t.back() != 'd' || !smtp::is_digit(t[t.size() - 2])) return;
  std::uint64_t hours_ns = 0;
  std::string why;
  if (!config::parse_duration_ns(t.substr(0, t.size() - 1) + "h", hours_ns, why) ||
      hours_ns > std::numeric_limits<std::uint64_t>::max() / 24) {
    return;
  }
  v.fail(in_quotes(t) + ": there is no day unit; write " +
         config::format_duration_ns(hours_ns * 24));
}

// A duration in whole milliseconds, min_ms..max_ms; units required, a bare 0 allowed.
std::uint64_t duration_ms(const Value& v, std::uint64_t min_ms, std::uint64_t max_ms) {
  refuse_days(v);
  const std::uint64_t ns = v.duration_ns(max_ms * kNsPerMs, BareNumber::refused);
  if (ns % kNsPerMs != 0 || ns < min_ms * kNsPerMs) {
    v.fail("must be whole milliseconds" +
           (min_ms > 0 ? ", at least " + config::format_duration_ns(min_ms * kNsPerMs) : "") +
           ", got " + v.shown());
  }
  return ns / kNsPerMs;
}

std::uint32_t timeout_ms(const Value& v, std::uint64_t min_ms = 1) {
  return static_cast<std::uint32_t>(duration_ms(v, min_ms, kMaxTimeoutMs));
}

// Pacing, read alike globally (destination-concurrency, messages-per-connection,
// destination-rate) and per [[route]] (concurrency, messages-per-connection, rate).
std::uint32_t read_concurrency(const Value& v) {
  return static_cast<std::uint32_t>(v.integer(1, 10'000, "a connection count from 1 to 10000"));
}
std::uint32_t read_messages_per_connection(const Value& v) {
  return static_cast<std::uint32_t>(
      v.integer(0, 10'000'000, "a message count from 0 (no limit) to 10000000"));
}
std::uint32_t read_transactions_in_flight(const Value& v) {
  return static_cast<std::uint32_t>(v.integer(1, smtp::kMaxTransactionsInFlight,
                                              "a transaction count from 1 to 64"));
}
std::uint8_t read_tls_policy(const Value& v) {
  const std::string t = v.text("none, opportunistic or required");
  if (t == "none") return 0;
  if (t == "opportunistic") return 1;
  if (t == "required") return 2;
  v.fail("must be none, opportunistic or required, got " + v.shown());
  return 0;
}
const char* tls_policy_text(std::uint8_t p) {
  return p == 0 ? "none" : p == 1 ? "opportunistic" : "required";
}
double read_rate(const Value& v) {
  return v.number(0, 1e6, "messages per second from 0 (no limit) to 1000000");
}

// Every key that takes one value (not listen, relay-networks, accept-domains, route, alias).
// False: not such a key.
bool apply_key(std::string_view key, const Value& v, RelayConfig& c, Sources& src) {
  smtp::ServerConfig& s = c.server;
  DeliveryConfig& d = c.delivery;
  RetryPolicy& retry = c.delivery.retry;
  if (key == "threads") {
    c.threads = static_cast<unsigned>(v.integer(1, 1024, "a thread count from 1 to 1024"));
  } else if (key == "metrics") {
    c.metrics = v.address();
  } else if (key == "verbose") {
    c.verbose = v.boolean();
  } else if (key == "starttls") {
    config::read_starttls(v, s);
  } else if (key == "tls-cert" || key == "tls-key" || key == "auth-users") {
    const std::string f = v.text("a file name");
    if (f.empty()) v.fail("must be a file name, not empty");
    (key == "tls-cert" ? c.tls_cert : key == "tls-key" ? c.tls_key : c.auth_users) = f;
    if (key == "auth-users") s.auth = true;
  } else if (key == "auth-without-tls") {
    s.auth_requires_tls = !v.boolean();
  } else if (key == "max-auth-failures") {
    s.max_auth_failures =
        static_cast<std::uint32_t>(v.integer(0, 1000, "a count from 0 (no limit) to 1000"));
  } else if (key == "auth-client-failures") {
    c.auth_client_failures =
        static_cast<std::uint32_t>(v.integer(0, 1'000'000, "a count from 0 (no limit) up"));
  } else if (key == "test-drop-after-ack") {
    c.test_drop_after_ack =
        static_cast<std::uint32_t>(v.integer(0, 1'000'000'000, "a count from 0 (off) up"));
  } else if (key == "test-accept-delay") {
    c.test_accept_delay_ms = static_cast<std::uint32_t>(duration_ms(v, 0, 60'000));
  } else if (key == "recv-buffers") {
    const auto n = v.integer(1, 32768, "a power of two from 1 to 32768");
    if ((n & (n - 1)) != 0)
      v.fail("must be a power of two (io_uring buffer ring), got " + v.shown());
    c.recv_buffers = static_cast<unsigned>(n);
  } else if (key == "recv-buffer-size") {
    c.recv_buffer_size =
        static_cast<unsigned>(v.integer(512, 1 << 20, "bytes from 512 to 1048576"));
  } else if (key == "spool") {
    c.spool = v.text("a directory name");
    if (c.spool.empty()) v.fail("must be a directory name, not empty");
  } else if (key == "durability") {
    c.durability = parse_durability(v);
  } else if (key == "batch-max-messages") {
    c.batch_max_messages =
        static_cast<std::uint32_t>(v.integer(1, 100'000, "a message count from 1 to 100000"));
  } else if (key == "batch-max-wait") {
    const std::uint64_t ns = v.duration_ns(kMaxBatchWaitNs, BareNumber::refused);
    if (ns % 1'000 != 0) v.fail("must be whole microseconds, got " + v.shown());
    c.batch_max_wait_us = static_cast<std::uint32_t>(ns / 1'000);
  } else if (key == "segment-size") {
    const std::uint64_t n = v.size();
    if (n < kMinSegmentBytes || n > kMaxSegmentBytes) {
      v.fail("must be from 1M to 64G, got " + v.shown());
    }
    c.segment_bytes = n;
  } else if (key == "spool-quota-bytes") {
    c.quota_bytes = v.size();
  } else if (key == "spool-quota-messages") {
    c.quota_messages = static_cast<std::uint64_t>(
        v.integer(0, std::numeric_limits<std::int64_t>::max(), "a message count (0: no quota)"));
  } else if (key == "hostname") {
    const std::string h = v.text("a host name");
    if (!smtp::is_valid_domain(h, false)) {
      v.fail("must be a host name such as mx.example.test, got " + v.shown());
    }
    s.hostname = h;
  } else if (key == "max-message-size") {
    const std::uint64_t n = v.size();
    if (n == 0 || n > kMaxMessageBytes) {
      v.fail(
          "must be from 1 byte to 1023M (the spool keeps a message in one record of at most "
          "1G; there is no 0 = no limit), got " +
          v.shown());
    }
    s.max_message_size = n;
  } else if (key == "max-recipients") {
    // RFC 5321 4.5.3.1.8 asks for at least 100; fewer is allowed here to test clients.
    s.max_recipients = static_cast<std::uint32_t>(v.integer(1, 1'000'000, "from 1 to 1000000"));
  } else if (key == "command-timeout") {
    s.command_timeout_ms = timeout_ms(v);
  } else if (key == "data-timeout") {
    s.data_timeout_ms = timeout_ms(v);
  } else if (key == "max-connections") {
    c.max_connections = static_cast<std::uint32_t>(
        v.integer(0, 10'000'000, "a count from 0 (no limit) to 10000000"));
  } else if (key == "max-connections-per-client") {
    c.max_connections_per_client = static_cast<std::uint32_t>(
        v.integer(0, 10'000'000, "a count from 0 (no limit) to 10000000"));
  } else if (key == "destination-concurrency") {
    d.policy.concurrency = read_concurrency(v);
  } else if (key == "messages-per-connection") {
    d.policy.messages_per_connection = read_messages_per_connection(v);
  } else if (key == "destination-rate") {
    d.policy.rate = read_rate(v);
  } else if (key == "bdat") {
    d.policy.bdat = v.boolean();
  } else if (key == "transactions-in-flight") {
    d.policy.transactions_in_flight = read_transactions_in_flight(v);
  } else if (key == "outbound-tls") {
    d.policy.tls = read_tls_policy(v);
  } else if (key == "outbound-tls-verify") {
    d.tls_verify = v.boolean();
  } else if (key == "outbound-tls-ca") {
    d.tls_ca = v.text("a file name");
    if (d.tls_ca.empty()) v.fail("must be a file name, not empty");
  } else if (key == "connect-timeout") {
    d.connect_timeout_ms = timeout_ms(v);
  } else if (key == "delivery-timeout") {
    d.reply_timeout_ms = timeout_ms(v);
  } else if (key == "idle-timeout") {
    d.idle_timeout_ms = timeout_ms(v, 0);
  } else if (key == "throttle-pause") {
    d.throttle_pause_ms = timeout_ms(v, 0);
  } else if (key == "max-received") {
    d.max_received = static_cast<std::uint32_t>(v.integer(1, 1000, "a count from 1 to 1000"));
  } else if (key == "retry-first-delay") {
    retry.first_delay_ms = duration_ms(v, 1, kMaxRetryDelayMs);
  } else if (key == "retry-factor") {
    retry.factor = v.number(1, 10, "a factor from 1 to 10");
  } else if (key == "retry-max-delay") {
    retry.max_delay_ms = duration_ms(v, 1, kMaxRetryDelayMs);
  } else if (key == "retry-jitter") {
    retry.jitter = v.number(0, 0.5, "a share from 0 to 0.5");
  } else if (key == "max-queue-lifetime") {
    retry.lifetime_ms = duration_ms(v, 1, kMaxQueueLifetimeMs);
  } else {
    const auto* e = std::find_if(std::begin(kExtensions), std::end(kExtensions),
                                 [&](const Extension& x) { return x.key == key; });
    if (e == std::end(kExtensions)) return false;
    s.*(e->field) = v.boolean();
  }
  src.origin.insert_or_assign(std::string(key), v.origin());
  return true;
}

// ---- List keys: values from one source (the file, or the flags) replace the list ----------

void set_listen(const std::vector<Value>& values, RelayConfig& c) {
  c.listen.clear();
  for (const Value& v : values) {
    const io::SocketAddress a = v.address();
    // Port 0 may repeat: each listener gets its own ephemeral port.
    for (const io::SocketAddress& other : c.listen) {
      if (a.port() != 0 && other.to_string() == a.to_string()) {
        v.fail(a.to_string() + " is given twice");
      }
    }
    c.listen.push_back(a);
  }
}

void set_relay_networks(const std::vector<Value>& values, RelayConfig& c) {
  c.relay_networks.clear();
  for (const Value& v : values) {
    const std::string s = v.text("a network such as \"10.0.0.0/8\" or \"::1/128\"");
    if (s == "none") {
      if (values.size() > 1) {
        v.fail("'none' (no client may relay) cannot be combined with networks");
      }
      return;
    }
    Network n;
    std::string why;
    if (!Network::parse(s, n, &why)) v.fail(why);
    if (std::find(c.relay_networks.begin(), c.relay_networks.end(), n) != c.relay_networks.end()) {
      v.fail(n.to_string() + " is given twice");
    }
    c.relay_networks.push_back(n);
  }
}

void set_accepted_domains(const std::vector<Value>& values, RelayConfig& c) {
  c.accepted_domains.clear();
  for (const Value& v : values) {
    std::string d;
    std::string why;
    if (!parse_domain_pattern(v.text("a domain such as \"example.test\""), false, d, why)) {
      v.fail(why);
    }
    if (std::find(c.accepted_domains.begin(), c.accepted_domains.end(), d) !=
        c.accepted_domains.end()) {
      v.fail(in_quotes(d) + " is given twice (names ignore case)");
    }
    c.accepted_domains.push_back(std::move(d));
  }
}

// Appends r; a second route for the same domain is refused at `where` (its domain).
void add_route(Route r, const Value& where, RelayConfig& c) {
  for (const Route& other : c.routes) {
    if (other.domain == r.domain) {
      where.fail(in_quotes(r.domain) + " has a route already (names ignore case)");
    }
  }
  c.routes.push_back(std::move(r));
}

Route route_from_text(const Value& v) {
  Route r;
  std::string why;
  if (!Route::parse(v.text("a route \"DOMAIN=HOST:PORT\" or a [[route]] table"), r, &why)) {
    v.fail(why);
  }
  return r;
}

void set_routes(const std::vector<Value>& values, RelayConfig& c) {
  c.routes.clear();
  for (const Value& v : values)
    add_route(route_from_text(v), v, c);
}

// ---- Aliases ---------------------------------------------------------------------------------

// A mailbox local@domain as RCPT takes it (core/smtp/address.hpp), written without the angle
// brackets. False with a reason that starts with the quoted text.
bool check_mailbox(std::string_view text, std::string& why) {
  const std::string path = "<" + std::string(text) + ">";
  smtp::Path p;
  const smtp::PathParse r = smtp::parse_path(path, smtp::PathKind::forward, p);
  // A leading '@' is a source route ("@a:b@c"), which parse_path skips.
  if (r.error == smtp::AddressError::none && r.consumed == path.size() && !p.postmaster &&
      !text.starts_with('@')) {
    return true;
  }
  why = in_quotes(text) + " is not a mailbox local@domain";
  switch (r.error) {
    case smtp::AddressError::local_part:
      why += " (bad local part)";
      break;
    case smtp::AddressError::domain:
      why += " (bad domain)";
      break;
    case smtp::AddressError::too_long:
      why += " (too long, RFC 5321 4.5.3.1)";
      break;
    case smtp::AddressError::bad_utf8:
      why += " (ill-formed UTF-8)";
      break;
    default:
      break;
  }
  return false;
}

// What an alias applies to, lower-cased into out: a mailbox, or "@domain" for every address of
// the domain. False with a reason.
bool parse_alias_address(std::string_view text, std::string& out, std::string& why) {
  std::string ignored;
  const bool ok = text.starts_with('@') ? smtp::is_valid_domain(text.substr(1), true) ||
                                              smtp::is_valid_address_literal(text.substr(1))
                                        : check_mailbox(text, ignored);
  if (!ok) {
    why = in_quotes(text) +
          " is not an address to alias: write local@domain, or @domain for every address of a "
          "domain";
    return false;
  }
  out = lower(text);
  return true;
}

bool add_target(Alias& a, std::string_view target, std::string& why) {
  if (!check_mailbox(target, why)) return false;
  if (std::find(a.targets.begin(), a.targets.end(), target) != a.targets.end()) {
    why = in_quotes(target) + " is given twice";
    return false;
  }
  a.targets.emplace_back(target);
  return true;
}

// "ADDRESS=TARGET[,TARGET...]". The '=' is the first after the address's '@' (a local part may
// hold '='), else the first; targets are cut at commas (a quoted local part with a comma needs
// [[alias]]).
Alias alias_from_text(const Value& v) {
  const std::string text =
      v.text("an alias \"ADDRESS=TARGET[,TARGET...]\" or an [[alias]] table");
  const std::string shown = in_quotes(text);
  std::size_t eq = text.find('=', text.find('@'));
  if (eq == std::string::npos) eq = text.find('=');
  if (eq == std::string::npos) {
    v.fail(shown + " is not an alias: write ADDRESS=TARGET[,TARGET...], e.g. " +
           "info@example.test=someone@example.test");
  }
  Alias a;
  std::string why;
  if (!parse_alias_address(std::string_view(text).substr(0, eq), a.address, why)) v.fail(why);
  std::string_view targets = std::string_view(text).substr(eq + 1);
  if (targets.empty()) v.fail(shown + ": no target after '='");
  while (true) {
    const std::size_t comma = targets.find(',');
    if (!add_target(a, targets.substr(0, comma), why)) v.fail(shown + ": target " + why);
    if (comma == std::string_view::npos) break;
    targets = targets.substr(comma + 1);
  }
  return a;
}

// The aliases of one source (the file, or the flags), which replace any before: each is
// checked as it is added, then their expansion as a whole.
class AliasList {
 public:
  explicit AliasList(RelayConfig& c) : c_(c) { c_.aliases.clear(); }

  // A second alias for the same address is refused at `where` (its address).
  void add(Alias a, const Value& where) {
    if (!keys_.insert(a.address).second) {
      where.fail(in_quotes(a.address) + " has an alias already (addresses ignore case)");
    }
    origins_.push_back(where.origin());
    c_.aliases.push_back(std::move(a));
  }

  // Cycles, depth and fan-out (check_aliases), pointed at the alias whose expansion fails.
  void finish() const {
    std::size_t failed = 0;
    const std::string why = check_aliases(c_.aliases, &failed);
    if (!why.empty()) fail_at(origins_[failed], why);
  }

 private:
  RelayConfig& c_;
  std::set<std::string, std::less<>> keys_;
  std::vector<Origin> origins_;
};

void set_aliases(const std::vector<Value>& values, RelayConfig& c) {
  AliasList list(c);
  for (const Value& v : values)
    list.add(alias_from_text(v), v);
  list.finish();
}

// ---- TOML ------------------------------------------------------------------------------------

class TomlReader {
 public:
  TomlReader(const std::string& file, RelayConfig& cfg, Sources& src)
      : file_(file), cfg_(cfg), src_(src) {}

  void read_root(const toml::table& root) {
    for (const auto& [key, node] : root) {
      const std::string_view k = key.str();
      if (k == "listen") {
        const std::vector<Value> values = list(node, k);
        if (values.empty()) value(node, k).fail("must name at least one address \"HOST:PORT\"");
        set_listen(values, cfg_);
      } else if (k == "relay-networks") {
        set_relay_networks(list(node, k), cfg_);
      } else if (k == "accept-domains") {
        set_accepted_domains(list(node, k), cfg_);
      } else if (k == "route") {
        read_routes(node);
      } else if (k == "alias") {
        read_aliases(node);
      } else if (!apply_key(k, value(node, k), cfg_, src_)) {
        unknown_key(key);
      }
    }
  }

 private:
  Origin at(const toml::node& n, std::string_view name) const { return Origin::at(file_, n, name); }
  Value value(const toml::node& n, std::string_view key) const { return Value(n, at(n, key)); }

  // An array's elements, or the one value.
  std::vector<Value> list(const toml::node& node, std::string_view key) const {
    std::vector<Value> values;
    if (const auto* arr = node.as_array()) {
      for (const toml::node& e : *arr)
        values.push_back(value(e, key));
    } else {
      values.push_back(value(node, key));
    }
    return values;
  }

  // [[route]] tables, or routes in flag form ("DOMAIN=HOST:PORT,..."), or a mix.
  void read_routes(const toml::node& node) {
    if (node.is_table()) {
      const std::string why =
          "must be [[route]] tables or \"DOMAIN=HOST:PORT\" strings, not a table: write "
          "[[route]]";
      value(node, "route").fail(why);
    }
    for (const Value& v : list(node, "route")) {
      if (const toml::node* n = v.node(); n != nullptr && n->is_table()) {
        read_route_table(*n->as_table());
      } else {
        add_route(route_from_text(v), v, cfg_);
      }
    }
  }

  void read_route_table(const toml::table& t) {
    Route r;
    std::optional<Value> domain;
    bool has_hops = false;
    for (const auto& [key, node] : t) {
      const std::string_view k = key.str();
      const Value v = value(node, k);
      if (k == "domain") {
        domain.emplace(v);
        std::string why;
        if (!parse_domain_pattern(domain->text("a domain, \"*.suffix\" or \"*\""), true, r.domain,
                                  why)) {
          domain->fail(why);
        }
      } else if (k == "hops") {
        read_hops(node, r);
        has_hops = true;
      } else if (k == "concurrency") {
        r.concurrency = read_concurrency(v);
      } else if (k == "messages-per-connection") {
        r.messages_per_connection = read_messages_per_connection(v);
      } else if (k == "rate") {
        r.rate = read_rate(v);
      } else if (k == "bdat") {
        r.bdat = v.boolean();
      } else if (k == "transactions-in-flight") {
        r.transactions_in_flight = read_transactions_in_flight(v);
      } else if (k == "tls") {
        r.tls = read_tls_policy(v);
      } else {
        fail_at(Origin::at(file_, key, k),
                "unknown [[route]] key (a route has domain, hops, and the overrides concurrency, "
                "messages-per-connection, rate, bdat, transactions-in-flight and tls)");
      }
    }
    const Origin table = at(t, "[[route]]");
    if (!domain) fail_at(table, "needs domain = \"example.test\" (\"*\" for the default route)");
    if (!has_hops) fail_at(table, "needs hops = [\"HOST:PORT\", ...]");
    add_route(std::move(r), *domain, cfg_);
  }

  // hops = ["HOST:PORT", ...] (each one's priority is its position: failover in the order
  // written), inline tables { address = "HOST:PORT", priority = N }, or a mix.
  void read_hops(const toml::node& node, Route& r) {
    const std::vector<Value> hops = list(node, "hops");
    if (hops.empty()) value(node, "hops").fail("must name at least one hop \"HOST:PORT\"");
    for (const Value& h : hops) {
      std::optional<Value> address;
      auto priority = static_cast<std::uint32_t>(r.hops.size());
      if (const toml::node* n = h.node(); n != nullptr && n->is_table()) {
        for (const auto& [key, field] : *n->as_table()) {
          const std::string_view k = key.str();
          if (k == "address") {
            address.emplace(value(field, k));
          } else if (k == "priority") {
            // As an MX preference (RFC 1035 3.3.9: 16 bits).
            priority = static_cast<std::uint32_t>(value(field, k).integer(
                0, 65535, "a priority from 0 to 65535 (lower is tried first)"));
          } else {
            fail_at(Origin::at(file_, key, k), "unknown hop key (a hop has address and priority)");
          }
        }
        if (!address) fail_at(at(*n, "hops"), "needs address = \"HOST:PORT\"");
      } else {
        address.emplace(h);
      }
      io::SocketAddress a;
      std::string why;
      if (!parse_hop(address->text("a hop \"HOST:PORT\""), a, why)) address->fail(why);
      for (const io::SocketAddress& other : r.hops) {
        if (other.to_string() == a.to_string()) {
          address->fail("hop " + a.to_string() + " is given twice");
        }
      }
      r.hops.push_back(a);
      r.priorities.push_back(priority);
    }
  }

  // [[alias]] tables, or aliases in flag form ("ADDRESS=TARGET,..."), or a mix.
  void read_aliases(const toml::node& node) {
    if (node.is_table()) {
      value(node, "alias").fail(
          "must be [[alias]] tables or \"ADDRESS=TARGET\" strings, not a table: write "
          "[[alias]]");
    }
    AliasList aliases(cfg_);
    for (const Value& v : list(node, "alias")) {
      if (const toml::node* n = v.node(); n != nullptr && n->is_table()) {
        read_alias_table(*n->as_table(), aliases);
      } else {
        aliases.add(alias_from_text(v), v);
      }
    }
    aliases.finish();
  }

  void read_alias_table(const toml::table& t, AliasList& aliases) {
    Alias a;
    std::optional<Value> address;
    bool has_to = false;
    for (const auto& [key, node] : t) {
      const std::string_view k = key.str();
      std::string why;
      if (k == "address") {
        address.emplace(value(node, k));
        const std::string text = address->text("an address \"info@example.test\" or \"@example.test\"");
        if (!parse_alias_address(text, a.address, why)) address->fail(why);
      } else if (k == "to") {
        const std::vector<Value> targets = list(node, k);
        if (targets.empty()) value(node, k).fail("must name at least one mailbox");
        for (const Value& v : targets) {
          if (!add_target(a, v.text("a mailbox \"someone@example.test\""), why)) v.fail(why);
        }
        has_to = true;
      } else {
        fail_at(Origin::at(file_, key, k), "unknown [[alias]] key (an alias has address and to)");
      }
    }
    const Origin table = at(t, "[[alias]]");
    if (!address) {
      fail_at(table, "needs address = \"info@example.test\" (\"@example.test\": every address of "
                     "the domain)");
    }
    if (!has_to) fail_at(table, "needs to = [\"someone@example.test\", ...]");
    aliases.add(std::move(a), *address);
  }

  [[noreturn]] void unknown_key(const toml::key& key) const {
    // Postfix habits: main.cf names of the settings that exist here.
    static const std::map<std::string_view, std::string_view> kPostfix = {
        {"mynetworks", "relay-networks"},
        {"relay_domains", "accept-domains"},
        {"relayhost", "[[route]] with domain = \"*\""},
        {"transport_maps", "[[route]]"},
        {"message_size_limit", "max-message-size"},
        {"smtpd_recipient_limit", "max-recipients"},
        {"myhostname", "hostname"},
        {"queue_directory", "spool"},
        {"smtpd_timeout", "command-timeout"},
        {"smtpd_client_connection_count_limit", "max-connections-per-client"},
        {"virtual_alias_maps", "[[alias]]"},
        {"default_destination_concurrency_limit", "destination-concurrency"},
        {"smtp_connect_timeout", "connect-timeout"},
        {"smtp_connection_cache_time_limit", "idle-timeout"},
        {"hopcount_limit", "max-received"},
        {"minimal_backoff_time", "retry-first-delay"},
        {"maximal_backoff_time", "retry-max-delay"},
        {"maximal_queue_lifetime", "max-queue-lifetime"},
    };
    const std::string_view k = key.str();
    std::string hint;
    std::string dashed(k);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    if (const auto it = kPostfix.find(k); it != kPostfix.end()) {
      hint = " (Postfix's " + std::string(k) + " is " + std::string(it->second) + " here)";
    } else if (dashed != k) {
      hint = " (did you mean " + in_quotes(dashed) + "?)";
    } else if (k == "relay-network" || k == "accept-domain") {
      hint = " (did you mean " + in_quotes(std::string(k) + "s") + "? it takes a list)";
    } else if (k == "routes" || k == "aliases") {
      hint = k == "routes" ? " (write [[route]] tables)" : " (write [[alias]] tables)";
    } else if (k.starts_with("no-")) {
      hint = " (write " + std::string(k.substr(3)) + " = false)";
    } else if (k == "config" || k == "print-config" || k == "help" || k == "version") {
      hint = " (a command-line flag only)";
    }
    fail_at(Origin::at(file_, key, k), "unknown key" + hint);
  }

  const std::string& file_;
  RelayConfig& cfg_;
  Sources& src_;
};

// The checks between settings, each pointing at the setting to change: where it was given
// (file line or flag), or its flag when it was left at its default.
void check(const RelayConfig& c, const Sources& src) {
  if (c.metrics && c.metrics->port() != 0) {
    for (const io::SocketAddress& a : c.listen) {
      if (a.to_string() == c.metrics->to_string()) {
        fail_at(src.at("metrics"), a.to_string() + " is also a listen address");
      }
    }
  }
  if (c.quota_bytes != 0 && c.quota_bytes < c.segment_bytes) {
    fail_at(src.at("spool-quota-bytes"),
            "must be 0 (no quota) or at least one spool segment (segment-size is " +
                config::format_size(c.segment_bytes) + "), got " +
                config::format_size(c.quota_bytes));
  }
  if (const std::string_view missing = config::missing_tls_files(c.server, c.tls_cert, c.tls_key);
      !missing.empty()) {
    fail_at(src.at("starttls"), std::string(missing));
  }
  if (c.server.auth && c.server.auth_requires_tls && !c.server.starttls) {
    fail_at(src.at("auth-users"),
            "AUTH is offered only after STARTTLS: set starttls on or required, or "
            "auth-without-tls");
  }
  const RetryPolicy& r = c.delivery.retry;
  if (r.max_delay_ms < r.first_delay_ms) {
    const std::string first = config::format_duration_ns(r.first_delay_ms * kNsPerMs);
    const std::string max = config::format_duration_ns(r.max_delay_ms * kNsPerMs);
    // Points at retry-max-delay, unless only retry-first-delay was given.
    if (src.origin.contains("retry-max-delay") || !src.origin.contains("retry-first-delay")) {
      fail_at(src.at("retry-max-delay"),
              "must be at least retry-first-delay (" + first + "), got " + max);
    }
    fail_at(src.at("retry-first-delay"),
            "must be at most retry-max-delay (" + max + "), got " + first);
  }
}

// ---- Command line ----------------------------------------------------------------------------

constexpr const char* kDescription =
    "ringmta-relay: an SMTP relay on io_uring. It accepts mail on --listen, stores each message\n"
    "durably in --spool before answering 250, and passes it on to the --route hops.\n";

constexpr const char* kFooter =
    "\nWho may relay (checked at RCPT): a client in a relay network may send to any domain;\n"
    "any client may send to an accepted domain; other recipients are refused (relay access\n"
    "denied). The defaults relay for loopback clients only.\n"
    "\n"
    "Postfix main.cf                        ringmta-relay (flag; TOML key)\n"
    "  mynetworks                           --relay-network; relay-networks\n"
    "  relay_domains                        --accept-domain; accept-domains\n"
    "  relayhost = [127.0.0.1]:2526         --route '*=127.0.0.1:2526'; [[route]]\n"
    "  transport_maps                       --route DOMAIN=HOST:PORT; [[route]]\n"
    "  virtual_alias_maps                   --alias ADDRESS=TARGET; [[alias]]\n"
    "  smtp_connect_timeout                 --connect-timeout\n"
    "  minimal_backoff_time                 --retry-first-delay\n"
    "  maximal_backoff_time                 --retry-max-delay\n"
    "  maximal_queue_lifetime = 5d          --max-queue-lifetime 120h\n"
    "  hopcount_limit                       --max-received\n"
    "  message_size_limit                   --max-message-size\n"
    "  smtpd_recipient_limit                --max-recipients\n"
    "  smtpd_client_connection_count_limit  --max-connections-per-client\n"
    "  smtpd_timeout                        --command-timeout\n"
    "  myhostname                           --hostname\n"
    "  queue_directory                      --spool (Postfix syncs each message: "
    "--durability always)\n"
    "\n"
    "DURATION: a number and a unit: 500us, 1ms, 1.5s, 5m, 120h (no day unit). BYTES: 1024,\n"
    "512K, 64M, 1G. --config FILE (TOML) takes every setting under its flag's name (--no-dsn\n"
    "is dsn = false; the lists are relay-networks, accept-domains, [[route]] and [[alias]]\n"
    "tables); flags override the file, a list flag replaces the file's list; --print-config\n"
    "shows every setting.\n"
    "Exit codes: 0 ok; 1 the spool cannot be used (written by a newer version, unreadable, a\n"
    "failed sync) or the kernel lacks an io_uring feature; 2 bad usage or configuration.\n"
    "'ringmta-relay queue --spool DIR [--digest]' lists the queue (see queue --help).\n"
    "\n"
    "Examples:\n"
    "  ringmta-relay --route '*=127.0.0.1:2526'\n"
    "  ringmta-relay --listen 127.0.0.1:2525 --spool /var/tmp/rs --durability always \\\n"
    "      --route 'example.test=127.0.0.1:2526,127.0.0.1:2527' --route '*=127.0.0.1:2528'\n"
    "  ringmta-relay --route '*=127.0.0.1:2587' --destination-rate 50 \\\n"
    "      --alias 'info@example.test=ann@example.test,bob@other.test'\n"
    "  ringmta-relay --config relay.toml --print-config";

// --help stays within 100 columns: CLI11 does not wrap, but indents after a '\n'.
constexpr std::size_t kHelpColumn = 36;
std::string wrapped(std::string_view text) {
  constexpr std::size_t kWidth = 100 - kHelpColumn;
  std::string out;
  std::size_t line = 0;
  while (!text.empty()) {
    const std::size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    if (line > 0 && line + 1 + word.size() > kWidth) {
      out += '\n';
      line = 0;
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out.append(word);
    line += word.size();
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
  }
  return out;
}

// A flag that sets a one-value key, applied after the file.
struct Flag {
  std::string key;
  bool is_switch = false;
  bool switch_value = false;  // the key's value when a switch flag is given
  std::string text;
  CLI::Option* option = nullptr;
};

// A repeatable flag whose values replace a list key's.
struct ListFlag {
  std::string flag;
  std::vector<std::string> texts;
  void (*set)(const std::vector<Value>&, RelayConfig&) = nullptr;
};

// CLI11's parse errors, as one line that names the flag where it can.
std::string usage_error(const CLI::ParseError& e, const std::vector<std::string>& extras) {
  if (!extras.empty()) {
    const std::string& a = extras.front();
    if (a.starts_with("-")) {
      return a.substr(0, a.find('=')) + ": unknown option (ringmta-relay --help lists them)";
    }
    return in_quotes(a) + ": unexpected argument (options take the form --name VALUE)";
  }
  std::string msg = e.what();
  constexpr std::string_view kOverride = " was given a disallowed flag override";
  if (const std::size_t at = msg.find(kOverride); at != std::string::npos) {
    return "--" + msg.substr(0, at) + ": takes no value";
  }
  // CLI11 writes e.g. "--threads: 1 required TEXT missing"; keep its words on one line.
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return msg + " (ringmta-relay --help lists the options)";
}

}  // namespace

// ---- Public helpers --------------------------------------------------------------------------

std::string_view durability_name(Durability d) {
  switch (d) {
    case Durability::batch:
      return "batch";
    case Durability::always:
      return "always";
    case Durability::none:
      return "none";
  }
  return "?";
}

bool Network::parse(std::string_view text, Network& out, std::string* why) {
  const auto bad = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  const std::string shown = in_quotes(text);
  const std::size_t slash = text.find('/');
  std::string_view host = text.substr(0, slash);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // Postfix writes IPv6 networks as [::1]/128
  }
  Network n;
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), n.bytes.data()) == 1) {
    n.v6 = false;
  } else if (inet_pton(AF_INET6, h.c_str(), n.bytes.data()) == 1) {
    n.v6 = true;
  } else {
    return bad(shown +
               " is not a network: an IPv4 or IPv6 address with an optional /PREFIX, such as "
               "10.0.0.0/8 or ::1/128 (numeric, no host names)");
  }
  const unsigned max = n.v6 ? 128 : 32;
  n.prefix = max;
  if (slash != std::string_view::npos) {
    std::uint64_t p = 0;
    if (!smtp::parse_decimal(text.substr(slash + 1), 3, p) || p > max) {
      return bad(shown + ": the prefix length must be a number from 0 to " + std::to_string(max) +
                 (n.v6 ? " for IPv6" : " for IPv4"));
    }
    n.prefix = static_cast<unsigned>(p);
  }
  Network masked = n;
  for (unsigned bit = n.prefix; bit < max; ++bit) {
    masked.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  if (masked.bytes != n.bytes) {
    return bad(shown + ": the address has bits set beyond the /" + std::to_string(n.prefix) +
               " prefix; the network is " + masked.to_string());
  }
  out = n;
  return true;
}

bool Network::contains(const io::SocketAddress& a) const {
  bool a6 = false;
  std::array<std::uint8_t, 16> addr{};
  if (!address_bytes(a, a6, addr)) return false;
  if (v6 && !a6) {
    // An IPv4 client against an IPv6 network: compare its mapped form ::ffff:a.b.c.d.
    std::array<std::uint8_t, 16> mapped{};
    std::memcpy(mapped.data(), kMappedPrefix, 12);
    std::memcpy(mapped.data() + 12, addr.data(), 4);
    addr = mapped;
  } else if (!v6 && a6) {
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
    if (std::memcmp(addr.data(), kMappedPrefix, 12) != 0) return false;
    std::array<std::uint8_t, 16> v4{};
    std::memcpy(v4.data(), addr.data() + 12, 4);
    addr = v4;
  }
  return same_prefix(addr, bytes, prefix);
}

std::string Network::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), host, sizeof host);
  return std::string(host) + "/" + std::to_string(prefix);
}

bool domain_matches(std::string_view pattern, std::string_view domain) {
  if (pattern == "*") return true;
  const auto tail_equal = [&](std::string_view want) {  // domain ends with want, any case
    if (domain.size() < want.size()) return false;
    const std::string_view tail = domain.substr(domain.size() - want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (smtp::to_lower(tail[i]) != want[i]) return false;
    }
    return true;
  };
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.test"
    return domain.size() > suffix.size() && tail_equal(suffix);
  }
  return domain.size() == pattern.size() && tail_equal(pattern);
}

bool Route::parse(std::string_view text, Route& out, std::string* why) {
  const auto bad = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  const std::string shown = in_quotes(text);
  const std::size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return bad(shown + " is not a route: write DOMAIN=HOST:PORT[,HOST:PORT...], e.g. " +
               "*=127.0.0.1:2526");
  }
  Route r;
  std::string reason;
  if (!parse_domain_pattern(text.substr(0, eq), true, r.domain, reason)) return bad(reason);
  std::string_view hops = text.substr(eq + 1);
  if (hops.empty()) return bad(shown + ": no hop HOST:PORT after '='");
  while (true) {
    const std::size_t comma = hops.find(',');
    io::SocketAddress a;
    if (!parse_hop(hops.substr(0, comma), a, reason)) return bad(shown + ": hop " + reason);
    for (const io::SocketAddress& other : r.hops) {
      if (other.to_string() == a.to_string()) {
        return bad(shown + ": hop " + a.to_string() + " is given twice");
      }
    }
    r.hops.push_back(a);
    r.priorities.push_back(static_cast<std::uint32_t>(r.priorities.size()));
    if (comma == std::string_view::npos) break;
    hops = hops.substr(comma + 1);
  }
  out = std::move(r);
  return true;
}

std::string Route::to_string() const {
  std::string s = domain + "=";
  for (std::size_t i = 0; i < hops.size(); ++i) {
    if (i > 0) s += ',';
    s += hops[i].to_string();
  }
  return s;
}

std::uint32_t Route::priority(std::size_t hop) const {
  return hop < priorities.size() ? priorities[hop] : static_cast<std::uint32_t>(hop);
}

DeliveryPolicy Route::policy(const DeliveryPolicy& defaults) const {
  DeliveryPolicy p = defaults;
  p.concurrency = concurrency.value_or(p.concurrency);
  p.messages_per_connection = messages_per_connection.value_or(p.messages_per_connection);
  p.rate = rate.value_or(p.rate);
  p.bdat = bdat.value_or(p.bdat);
  p.transactions_in_flight = transactions_in_flight.value_or(p.transactions_in_flight);
  p.tls = tls.value_or(p.tls);
  return p;
}

bool operator==(const Route& a, const Route& b) {
  if (a.to_string() != b.to_string() || a.concurrency != b.concurrency ||
      a.messages_per_connection != b.messages_per_connection || a.rate != b.rate ||
      a.bdat != b.bdat || a.transactions_in_flight != b.transactions_in_flight ||
      a.tls != b.tls) {
    return false;
  }
  for (std::size_t i = 0; i < a.hops.size(); ++i) {
    if (a.priority(i) != b.priority(i)) return false;
  }
  return true;
}

unsigned default_thread_count() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 2 : std::min(2u, hw);
}

RelayConfig::RelayConfig() {
  listen.resize(1);
  io::parse_socket_address(kDefaultListen, listen[0], nullptr);
  for (std::string_view s : kDefaultRelayNetworks) {
    relay_networks.emplace_back();
    Network::parse(s, relay_networks.back(), nullptr);
  }
}

bool operator==(const RelayConfig& a, const RelayConfig& b) {
  const auto texts = [](const std::vector<io::SocketAddress>& v) {
    std::vector<std::string> r;
    for (const io::SocketAddress& x : v)
      r.push_back(x.to_string());
    return r;
  };
  const bool metrics_equal = a.metrics.has_value() == b.metrics.has_value() &&
                             (!a.metrics || a.metrics->to_string() == b.metrics->to_string());
  const smtp::ServerConfig& x = a.server;
  const smtp::ServerConfig& y = b.server;
  const bool server_equal =
      x.hostname == y.hostname && x.greeting == y.greeting &&
      x.max_message_size == y.max_message_size && x.max_recipients == y.max_recipients &&
      x.pipelining == y.pipelining && x.size == y.size && x.eight_bit_mime == y.eight_bit_mime &&
      x.smtputf8 == y.smtputf8 && x.enhanced_status_codes == y.enhanced_status_codes &&
      x.chunking == y.chunking && x.dsn == y.dsn && x.starttls == y.starttls &&
      x.require_tls == y.require_tls && x.auth == y.auth &&
      x.auth_requires_tls == y.auth_requires_tls && x.max_auth_failures == y.max_auth_failures &&
      x.command_timeout_ms == y.command_timeout_ms && x.data_timeout_ms == y.data_timeout_ms &&
      x.output_buffer_bytes == y.output_buffer_bytes;
  return texts(a.listen) == texts(b.listen) && a.threads == b.threads && metrics_equal &&
         a.verbose == b.verbose && a.test_drop_after_ack == b.test_drop_after_ack &&
         a.tls_cert == b.tls_cert && a.tls_key == b.tls_key && a.auth_users == b.auth_users &&
         a.auth_client_failures == b.auth_client_failures &&
         a.test_accept_delay_ms == b.test_accept_delay_ms && a.recv_buffers == b.recv_buffers &&
         a.recv_buffer_size == b.recv_buffer_size && a.spool == b.spool &&
         a.durability == b.durability && a.batch_max_messages == b.batch_max_messages &&
         a.batch_max_wait_us == b.batch_max_wait_us && a.segment_bytes == b.segment_bytes &&
         a.quota_bytes == b.quota_bytes && a.quota_messages == b.quota_messages &&
         a.relay_networks == b.relay_networks && a.accepted_domains == b.accepted_domains &&
         a.routes == b.routes && a.aliases == b.aliases && a.delivery == b.delivery &&
         server_equal && a.max_connections == b.max_connections &&
         a.max_connections_per_client == b.max_connections_per_client;
}

// ---- Loading ---------------------------------------------------------------------------------

int load_relay_config(int argc, char** argv, RelayConfig& out, std::ostream& out_stream,
                      std::ostream& err_stream) {
  CLI::App app(kDescription, kProgram);
  app.get_formatter()->column_width(kHelpColumn);
  app.footer(kFooter);

  std::string config_file;
  bool print_config = false;
  std::deque<Flag> flags;  // deque: CLI11 keeps references to the strings
  std::deque<ListFlag> lists;

  auto value = [&](const std::string& key, const std::string& type, const std::string& desc,
                   const std::string& group) {
    flags.push_back(Flag{key, false, false, {}, nullptr});
    flags.back().option =
        app.add_option("--" + key, flags.back().text, wrapped(desc))->type_name(type)->group(group);
  };
  auto on_switch = [&](const std::string& key, const std::string& desc, const std::string& group) {
    flags.push_back(Flag{key, true, true, {}, nullptr});
    const std::string text = wrapped(desc);  // add_flag takes the description by reference
    flags.back().option = app.add_flag("--" + key, text)->disable_flag_override()->group(group);
  };
  auto no_switch = [&](const std::string& key, const std::string& desc, const std::string& group) {
    flags.push_back(Flag{key, true, false, {}, nullptr});
    const std::string text = wrapped(desc);  // add_flag takes the description by reference
    flags.back().option = app.add_flag("--no-" + key, text)->disable_flag_override()->group(group);
  };
  auto list = [&](const std::string& flag, const std::string& type, const std::string& desc,
                  const std::string& group, void (*set)(const std::vector<Value>&, RelayConfig&)) {
    lists.push_back(ListFlag{"--" + flag, {}, set});
    app.add_option(lists.back().flag, lists.back().texts, wrapped(desc))
        ->type_name(type)
        ->expected(1)
        ->allow_extra_args(false)  // one value each time, and "[a,b]" is not split into two
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->group(group);
  };

  const std::string g_server = "Server";
  list("listen", "HOST:PORT",
       "Accept SMTP here, numeric; repeatable (default " + std::string(kDefaultListen) + ")",
       g_server, set_listen);
  app.add_option("--config", config_file, "TOML file with any of these settings")
      ->type_name("FILE")
      ->group(g_server);
  value("threads", "N",
        "Worker threads, one io_uring each (default " + std::to_string(default_thread_count()) +
            " here: min(2, CPUs))",
        g_server);
  value("metrics", "HOST:PORT", "Serve Prometheus /metrics here (default: off)", g_server);
  on_switch("verbose", "One log line per session (default: off)", g_server);
  value("recv-buffers", "N",
        "Receive buffers per thread, a power of two (default 1024); memory is only used as "
        "data arrives",
        g_server);
  value("recv-buffer-size", "BYTES", "Bytes per receive buffer (default 16384)", g_server);

  const std::string g_spool = "Spool (a 250 reply means the message is on stable storage)";
  value("spool", "DIR", "Spool directory (default ./spool; Postfix queue_directory)", g_spool);
  value("durability", "MODE",
        "batch: one fdatasync per group of messages (group commit, default); always: one per "
        "message, as Postfix; none: no sync, unsafe, only to measure its cost",
        g_spool);
  value("batch-max-messages", "N",
        "A group commit closes after N messages (1-100000, default 64)...", g_spool);
  value("batch-max-wait", "DURATION",
        "...or this long after its first message (up to 1s; default 0: as soon as no sync "
        "is running, so what arrives during one sync forms the next batch). Both are ignored "
        "with --durability always",
        g_spool);
  value("segment-size", "BYTES", "Preallocated size of a spool file (at least 1M, default 64M)",
        g_spool);
  value("spool-quota-bytes", "BYTES",
        "Refuse new mail while the spool holds this much (default 0 = no quota)", g_spool);
  value("spool-quota-messages", "N",
        "Refuse new mail while the spool holds this many messages (default 0 = no quota)", g_spool);

  const std::string g_relay = "Relaying (checked at RCPT; see below)";
  list("relay-network", "CIDR",
       "Clients that may relay to any domain, e.g. 10.0.0.0/8 or ::1/128; repeatable; 'none' "
       "for no client (Postfix mynetworks; default 127.0.0.0/8 and ::1/128)",
       g_relay, set_relay_networks);
  list("accept-domain", "DOMAIN",
       "Recipient domain any client may send to; *.example.test for its sub-domains; "
       "repeatable (Postfix relay_domains; default none)",
       g_relay, set_accepted_domains);

  const std::string g_routing = "Routing and aliases (docs/routing.md)";
  list("route", "DOMAIN=HOST:PORT[,HOST:PORT]",
       "Send mail for DOMAIN to these hops (numeric), tried in the order written; repeatable. "
       "DOMAIN: example.test, *.example.test (its sub-domains), an address literal such as "
       "[127.0.0.1], or * (every other domain, as Postfix relayhost). [[route]] tables also "
       "take hop priorities and pacing per destination",
       g_routing, set_routes);
  list("alias", "ADDRESS=TARGET[,TARGET]",
       "Deliver mail for ADDRESS (local@domain, or @domain: every address of a domain) to "
       "these mailboxes instead; repeatable; a target may be an alias too, 10 deep at most "
       "(Postfix virtual_alias_maps)",
       g_routing, set_aliases);

  const std::string g_delivery =
      "Delivery (per destination, over all threads; a [[route]] may override the first four)";
  value("destination-concurrency", "N",
        "Connections open at once to one destination (1-10000, default 20; Postfix "
        "default_destination_concurrency_limit)",
        g_delivery);
  value("messages-per-connection", "N",
        "Messages over one connection before another is opened (default 1000; 0 = no limit)",
        g_delivery);
  value("destination-rate", "R",
        "Messages per second to one destination, as a token bucket holding one second's worth "
        "(default 0 = no limit)",
        g_delivery);
  value("outbound-tls", "MODE",
        "STARTTLS to next hops: none, opportunistic (default: when offered, certificates not "
        "checked) or required (no mail without TLS); [[route]] key tls",
        g_delivery);
  on_switch("outbound-tls-verify",
            "Check next hops' certificates where TLS is used (default: not checked)", g_delivery);
  value("outbound-tls-ca", "FILE", "PEM trust anchors for --outbound-tls-verify (default: the system's)",
        g_delivery);
  no_switch("bdat", "Send with DATA even where the next hop offers CHUNKING (BDAT, RFC 3030)",
            g_delivery);
  value("transactions-in-flight", "N",
        "With BDAT and PIPELINING offered: transactions written on one connection before the "
        "earlier ones are answered, each after an RSET (1-64, default 8; 1 = one at a time)",
        g_delivery);
  value("connect-timeout", "DURATION",
        "Wait this long for a connection to a hop (default 30s; Postfix smtp_connect_timeout)",
        g_delivery);
  value("delivery-timeout", "DURATION", "Wait this long for each reply of a hop (default 5m)",
        g_delivery);
  value("idle-timeout", "DURATION",
        "Keep an idle connection this long for the next message (default 2s; 0: close it at "
        "once; Postfix smtp_connection_cache_time_limit)",
        g_delivery);
  value("throttle-pause", "DURATION",
        "After a 421 or 4.7.x reply, open no connection to that destination for this long and "
        "halve its concurrency (default 1s)",
        g_delivery);
  value("max-received", "N",
        "More Received: headers than this is a mail loop: 554 5.4.6 (1-1000, default 50; "
        "Postfix hopcount_limit)",
        g_delivery);

  const std::string g_retry = "Retries (of a deferred recipient)";
  value("retry-first-delay", "DURATION",
        "Try again after this long (1ms-24h, default 5m; Postfix minimal_backoff_time)...",
        g_retry);
  value("retry-factor", "F", "...then each delay this many times the one before (1-10, default 2)...",
        g_retry);
  value("retry-max-delay", "DURATION",
        "...up to this long (from the first delay to 24h, default 4000s; Postfix "
        "maximal_backoff_time)",
        g_retry);
  value("retry-jitter", "F",
        "Move each delay by a random share of up to this either way (0-0.5, default 0.2)",
        g_retry);
  value("max-queue-lifetime", "DURATION",
        "Bounce what is still undelivered after this long in the queue (1ms-2400h, default "
        "120h = 5 days; Postfix maximal_queue_lifetime)",
        g_retry);

  const std::string g_smtp = "SMTP server";
  value("hostname", "NAME",
        "Name in the banner, EHLO reply and Received: (default localhost; Postfix myhostname)",
        g_smtp);
  value("max-message-size", "BYTES",
        "SIZE limit, up to 1023M (default 35M; Postfix message_size_limit)", g_smtp);
  value("max-recipients", "N",
        "Recipients per message (default 100; Postfix smtpd_recipient_limit)", g_smtp);
  value("command-timeout", "DURATION",
        "Wait this long for a command (default 5m; Postfix smtpd_timeout)", g_smtp);
  value("data-timeout", "DURATION", "Wait this long for message data (default 5m)", g_smtp);
  for (const Extension& e : kExtensions) {
    no_switch(std::string(e.key), "Do not offer " + std::string(e.help), g_smtp);
  }

  const std::string g_limits = "Limits";
  value("max-connections", "N",
        "Concurrent sessions in total; beyond, 421 4.7.0 at the banner (default 10000; 0 = no "
        "limit)",
        g_limits);
  value("max-connections-per-client", "N",
        "Concurrent sessions per client IP (default 100; 0 = no limit; Postfix "
        "smtpd_client_connection_count_limit)",
        g_limits);

  const std::string g_tls = "TLS and AUTH (docs/tls.md, docs/auth.md)";
  value("starttls", "MODE", std::string(config::kStarttlsHelp), g_tls);
  value("tls-cert", "FILE", std::string(config::kTlsCertHelp), g_tls);
  value("tls-key", "FILE", std::string(config::kTlsKeyHelp), g_tls);
  value("auth-users", "FILE",
        "Offer AUTH PLAIN and LOGIN (RFC 4954) against this users file (scripts/ringmta-passwd); "
        "authenticated clients may relay to any domain",
        g_tls);
  on_switch("auth-without-tls", "Offer AUTH before STARTTLS too (default: only over TLS)",
            g_tls);
  value("max-auth-failures", "N",
        "Failed AUTH attempts per session, then 421 and close (default 3; 0 = no limit)", g_tls);
  value("auth-client-failures", "N",
        "Failed AUTH attempts per client address within 15 minutes, then 421 to AUTH (default "
        "10; 0 = no limit)",
        g_tls);

  const std::string g_test = "Testing the testbed (never in production: they lose or slow mail)";
  value("test-drop-after-ack", "N",
        "Drop 1 message in N after its 250: logged as delivered, never delivered (default 0 = "
        "off); the harness must report it lost",
        g_test);
  value("test-accept-delay", "DURATION",
        "Hold each 250 to the end of data this much longer (default 0 = off): a slower build "
        "for regression gates",
        g_test);

  const std::string g_out = "Information";
  app.add_flag("--print-config", print_config,
               "Print every setting (defaults included) as TOML and exit")
      ->group(g_out);
  app.set_help_flag("-h,--help", "Print this help and exit")->group(g_out);
  app.set_version_flag("--version", std::string(kProgram) + " " RINGMTA_VERSION,
                       "Print the version and exit")
      ->group(g_out);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e, out_stream, err_stream);
    return 0;
  } catch (const CLI::ParseError& e) {
    err_stream << kProgram << ": " << usage_error(e, app.remaining()) << "\n";
    return 2;
  }

  try {
    RelayConfig cfg;
    Sources src;
    if (!config_file.empty()) {
      const toml::table root = config::parse_toml_file(config_file);
      TomlReader(config_file, cfg, src).read_root(root);
    }
    for (const Flag& f : flags) {
      if (f.option->count() == 0) continue;
      const Origin o = Origin::flag(f.option->get_name());
      apply_key(f.key, f.is_switch ? Value::of_switch(f.switch_value, o) : Value(f.text, o), cfg,
                src);
    }
    for (const ListFlag& l : lists) {
      if (l.texts.empty()) continue;
      std::vector<Value> values;
      for (const std::string& t : l.texts)
        values.emplace_back(t, Origin::flag(l.flag));
      l.set(values, cfg);
    }
    check(cfg, src);

    if (print_config) {
      out_stream << format_relay_config(cfg);
      return 0;
    }
    out = std::move(cfg);
    return -1;
  } catch (const ConfigError& e) {
    err_stream << kProgram << ": " << e.what() << "\n";
    return 2;
  }
}

// ---- --print-config --------------------------------------------------------------------------

namespace {

// A size as "64M" when it has a unit, else as a TOML integer.
std::string toml_size(std::uint64_t bytes) {
  const std::string s = config::format_size(bytes);
  return smtp::is_digit(static_cast<unsigned char>(s.back())) ? s : toml_string(s);
}

std::string toml_duration_ns(std::uint64_t ns) {
  return toml_string(config::format_duration_ns(ns));
}

// A number as TOML: integral values as integers ("2"), others in the shortest exact form.
std::string toml_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<std::int64_t>(v));
  }
  return config::format_double(v);
}

std::string toml_ms(std::uint64_t ms) {
  return toml_duration_ns(ms * kNsPerMs);
}

template <typename T, typename F>
std::string toml_list(const std::vector<T>& items, F text) {
  std::string s = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += ", ";
    s += toml_string(text(items[i]));
  }
  return s + "]";
}

}  // namespace

std::string format_relay_config(const RelayConfig& c) {
  const smtp::ServerConfig& s = c.server;
  const auto yes = [](bool b) { return b ? "true" : "false"; };
  std::ostringstream o;
  o << "# ringmta-relay effective configuration (--print-config): every setting, defaults\n"
       "# included; read it back with --config.\n";
  o << "listen = " << toml_list(c.listen, [](const io::SocketAddress& a) { return a.to_string(); })
    << "\n";
  o << "threads = " << c.threads << "\n";
  if (c.metrics) {
    o << "metrics = " << toml_string(c.metrics->to_string()) << "\n";
  } else {
    o << "# metrics = \"HOST:PORT\"  (off)\n";
  }
  o << "verbose = " << yes(c.verbose) << "\n";
  if (c.test_drop_after_ack != 0) {
    o << "test-drop-after-ack = " << c.test_drop_after_ack << "  # TESTING ONLY: loses mail\n";
  }
  if (c.test_accept_delay_ms != 0) {
    o << "test-accept-delay = \"" << c.test_accept_delay_ms << "ms\"  # TESTING ONLY\n";
  }
  o << "recv-buffers = " << c.recv_buffers << "\n";
  o << "recv-buffer-size = " << c.recv_buffer_size << "\n";

  o << "\n# Spool\n";
  o << "spool = " << toml_string(c.spool) << "\n";
  o << "durability = " << toml_string(durability_name(c.durability))
    << "  # batch | always | none\n";
  o << "batch-max-messages = " << c.batch_max_messages
    << (c.durability == Durability::always ? "  # ignored with durability = \"always\"" : "")
    << "\n";
  o << "batch-max-wait = " << toml_duration_ns(std::uint64_t{c.batch_max_wait_us} * 1'000)
    << (c.durability == Durability::always ? "  # ignored with durability = \"always\"" : "")
    << "\n";
  o << "segment-size = " << toml_size(c.segment_bytes) << "\n";
  o << "spool-quota-bytes = " << toml_size(c.quota_bytes) << "  # 0 = no quota\n";
  o << "spool-quota-messages = " << c.quota_messages << "  # 0 = no quota\n";

  o << "\n# Relaying\n";
  o << "relay-networks = " << toml_list(c.relay_networks, [](const Network& n) {
    return n.to_string();
  }) << "  # Postfix mynetworks\n";
  o << "accept-domains = " << toml_list(c.accepted_domains, [](const std::string& d) { return d; })
    << "  # Postfix relay_domains\n";

  o << "\n# SMTP server\n";
  o << "hostname = " << toml_string(s.hostname) << "\n";
  o << "max-message-size = " << toml_size(s.max_message_size) << "\n";
  o << "max-recipients = " << s.max_recipients << "\n";
  o << "command-timeout = " << toml_duration_ns(std::uint64_t{s.command_timeout_ms} * 1'000'000)
    << "\n";
  o << "data-timeout = " << toml_duration_ns(std::uint64_t{s.data_timeout_ms} * 1'000'000) << "\n";
  for (const Extension& e : kExtensions) {
    o << e.key << " = " << yes(s.*(e.field)) << "\n";
  }
  o << "starttls = " << toml_string(config::starttls_text(s)) << "\n";
  if (!c.tls_cert.empty()) o << "tls-cert = " << toml_string(c.tls_cert) << "\n";
  if (!c.tls_key.empty()) o << "tls-key = " << toml_string(c.tls_key) << "\n";
  if (!c.auth_users.empty()) o << "auth-users = " << toml_string(c.auth_users) << "\n";
  o << "auth-without-tls = " << yes(!s.auth_requires_tls) << "\n";
  o << "max-auth-failures = " << s.max_auth_failures << "  # per session; 0 = no limit\n";
  o << "auth-client-failures = " << c.auth_client_failures << "  # per client, 15 min\n";
  o << "max-connections = " << c.max_connections << "  # 0 = no limit\n";
  o << "max-connections-per-client = " << c.max_connections_per_client << "  # 0 = no limit\n";

  const DeliveryConfig& d = c.delivery;
  o << "\n# Delivery (per destination, over all threads; a [[route]] may override the first "
       "four)\n";
  o << "destination-concurrency = " << d.policy.concurrency << "\n";
  o << "messages-per-connection = " << d.policy.messages_per_connection << "  # 0 = no limit\n";
  o << "destination-rate = " << toml_number(d.policy.rate)
    << "  # messages per second; 0 = no limit\n";
  o << "bdat = " << yes(d.policy.bdat) << "\n";
  o << "transactions-in-flight = " << d.policy.transactions_in_flight << "\n";
  o << "outbound-tls = " << toml_string(tls_policy_text(d.policy.tls)) << "\n";
  o << "outbound-tls-verify = " << yes(d.tls_verify) << "\n";
  if (!d.tls_ca.empty()) o << "outbound-tls-ca = " << toml_string(d.tls_ca) << "\n";
  o << "connect-timeout = " << toml_ms(d.connect_timeout_ms) << "\n";
  o << "delivery-timeout = " << toml_ms(d.reply_timeout_ms) << "\n";
  o << "idle-timeout = " << toml_ms(d.idle_timeout_ms) << "  # 0 = close at once\n";
  o << "throttle-pause = " << toml_ms(d.throttle_pause_ms) << "\n";
  o << "max-received = " << d.max_received << "\n";

  const RetryPolicy& retry = d.retry;
  o << "\n# Retries\n";
  o << "retry-first-delay = " << toml_ms(retry.first_delay_ms) << "\n";
  o << "retry-factor = " << toml_number(retry.factor) << "\n";
  o << "retry-max-delay = " << toml_ms(retry.max_delay_ms) << "\n";
  o << "retry-jitter = " << toml_number(retry.jitter) << "\n";
  o << "max-queue-lifetime = " << toml_ms(retry.lifetime_ms) << "\n";

  if (c.routes.empty()) {
    o << "\n# No [[route]] tables: domain = \"*\" with hops = [\"HOST:PORT\"] is the default "
         "route.\n";
  }
  for (const Route& r : c.routes) {
    o << "\n[[route]]\n";
    o << "domain = " << toml_string(r.domain) << "\n";
    bool in_order = true;  // priorities 0, 1, 2...: strings say it
    for (std::size_t i = 0; i < r.hops.size(); ++i)
      in_order = in_order && r.priority(i) == i;
    if (in_order) {
      o << "hops = " << toml_list(r.hops, [](const io::SocketAddress& a) { return a.to_string(); })
        << "\n";
    } else {
      o << "hops = [\n";
      for (std::size_t i = 0; i < r.hops.size(); ++i) {
        o << "  { address = " << toml_string(r.hops[i].to_string())
          << ", priority = " << r.priority(i) << " },\n";
      }
      o << "]\n";
    }
    if (r.concurrency) o << "concurrency = " << *r.concurrency << "\n";
    if (r.messages_per_connection) {
      o << "messages-per-connection = " << *r.messages_per_connection << "\n";
    }
    if (r.rate) o << "rate = " << toml_number(*r.rate) << "\n";
    if (r.bdat) o << "bdat = " << yes(*r.bdat) << "\n";
    if (r.transactions_in_flight) {
      o << "transactions-in-flight = " << *r.transactions_in_flight << "\n";
    }
    if (r.tls) o << "tls = " << toml_string(tls_policy_text(*r.tls)) << "\n";
  }

  if (c.aliases.empty()) {
    o << "\n# No [[alias]] tables: address = \"info@example.test\" with to = "
         "[\"someone@example.test\"] forwards.\n";
  }
  for (const Alias& a : c.aliases) {
    o << "\n[[alias]]\n";
    o << "address = " << toml_string(a.address) << "\n";
    o << "to = " << toml_list(a.targets, [](const std::string& t) { return t; }) << "\n";
  }
  return o.str();
}

}  // namespace ringmta::relay
