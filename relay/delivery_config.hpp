// Settings of delivery (the queue manager and the outbound client): how each destination is
// paced, the retry schedule, timeouts. Part of RelayConfig (relay_config.hpp documents the
// flags and TOML keys); kept apart so the queue code does not pull in the loader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ringmta::relay {

// How deliveries to one destination are paced. Global defaults in RelayConfig::delivery,
// overridden per [[route]].
struct DeliveryPolicy {
  // Connections open at once to the destination, over all threads; each thread gets an
  // equal share, at least 1 (Postfix default_destination_concurrency_limit = 20).
  std::uint32_t concurrency = 20;
  // Messages over one connection before it is closed and another opened (KumoMTA
  // max_deliveries_per_connection); 0 = no limit.
  std::uint32_t messages_per_connection = 1000;
  // Messages per second to the destination, over all threads, as a token bucket that holds
  // one second's worth; 0 = no limit.
  double rate = 0;
  // Use BDAT (RFC 3030) when the next hop offers CHUNKING.
  bool bdat = true;
  // Transactions written on one connection before the replies of the earlier ones came back
  // (with PIPELINING and BDAT offered; each further one starts with RSET): ready messages
  // leave in one send and are answered in one write. 1 = one transaction at a time.
  std::uint32_t transactions_in_flight = 8;
  // STARTTLS to the next hop: 0 none, 1 opportunistic (when offered; certificates not
  // checked, as Postfix's "may"), 2 required (no mail without TLS). smtp::TlsPolicy values.
  std::uint8_t tls = 1;
  friend bool operator==(const DeliveryPolicy&, const DeliveryPolicy&) = default;
};

// When a deferred recipient is tried again: first_delay, then each delay `factor` times the
// one before, at most max_delay, each moved by a random +-jitter share (so deferred mail does
// not come back in waves); after `lifetime` in the queue it is bounced (Postfix
// minimal_backoff_time 300s, maximal_backoff_time 4000s, maximal_queue_lifetime 5d).
struct RetryPolicy {
  std::uint64_t first_delay_ms = 300'000;
  double factor = 2.0;
  std::uint64_t max_delay_ms = 4'000'000;
  double jitter = 0.2;  // 0..0.5
  std::uint64_t lifetime_ms = 5ull * 24 * 3600 * 1000;
  friend bool operator==(const RetryPolicy&, const RetryPolicy&) = default;
};

struct DeliveryConfig {
  DeliveryPolicy policy;  // defaults for every destination; [[route]] may override
  RetryPolicy retry;
  std::uint32_t connect_timeout_ms = 30'000;   // Postfix smtp_connect_timeout
  std::uint32_t reply_timeout_ms = 300'000;    // each reply of the next hop (Postfix smtp_*_timeout)
  std::uint32_t idle_timeout_ms = 2'000;       // an idle connection kept for reuse (Postfix
                                               // smtp_connection_cache_time_limit)
  // After a 421 or a 4.7.x reply (the destination asks us to slow down): its concurrency
  // halves (at least 1) and no new connection opens for this long; it grows back by one
  // connection per window's worth of successful deliveries (pacing.hpp).
  std::uint32_t throttle_pause_ms = 1'000;
  // A message with more Received: headers than this is a mail loop: 554 5.4.6 at the end of
  // data (Postfix hopcount_limit = 50; RFC 5321 6.3).
  std::uint32_t max_received = 50;
  // --outbound-tls-verify / --outbound-tls-ca FILE: check the next hop's certificate chain
  // (against FILE, or the system's trust anchors) where TLS is used.
  bool tls_verify = false;
  std::string tls_ca;
  friend bool operator==(const DeliveryConfig&, const DeliveryConfig&) = default;
};

// An alias (forwarding rule): `address` (or "@domain": every address of the domain) is
// delivered to `targets` instead.
struct Alias {
  std::string address;
  std::vector<std::string> targets;
  friend bool operator==(const Alias&, const Alias&) = default;
};

}  // namespace ringmta::relay
