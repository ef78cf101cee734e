// ringmta-relay configuration: every flag and TOML key, the defaults, every refusal with its
// exact one-line message (file:line:col for TOML), --help/--version, --print-config reading
// back to an equal configuration; networks (CIDR), routes and domain patterns.
#include "relay/relay_config.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "core/config/toml_value.hpp"
#include "tests/unit/config/config_test_support.hpp"

namespace ringmta::relay {
namespace {

using config_test::TomlFile;
using Result = config_test::LoadResult<RelayConfig>;

Result run(std::vector<std::string> args) {
  return config_test::run_loader<RelayConfig>(load_relay_config, "ringmta-relay", std::move(args));
}

// The one line a refusal writes, and its exit code.
std::string refusal(std::vector<std::string> args) {
  return config_test::refusal_text(run(std::move(args)));
}

io::SocketAddress address(const std::string& text) {
  io::SocketAddress a;
  EXPECT_TRUE(io::parse_socket_address(text, a, nullptr)) << text;
  return a;
}

std::vector<std::string> texts(const std::vector<io::SocketAddress>& v) {
  std::vector<std::string> r;
  for (const io::SocketAddress& a : v)
    r.push_back(a.to_string());
  return r;
}

std::vector<std::string> texts(const std::vector<Network>& v) {
  std::vector<std::string> r;
  for (const Network& n : v)
    r.push_back(n.to_string());
  return r;
}

std::vector<std::string> texts(const std::vector<Route>& v) {
  std::vector<std::string> r;
  for (const Route& x : v)
    r.push_back(x.to_string());
  return r;
}

Network network(const std::string& text) {
  Network n;
  std::string why;
  EXPECT_TRUE(Network::parse(text, n, &why)) << text << ": " << why;
  return n;
}

std::string network_refusal(const std::string& text) {
  Network n;
  std::string why;
  EXPECT_FALSE(Network::parse(text, n, &why)) << text;
  return why;
}

std::string route_refusal(const std::string& text) {
  Route r;
  std::string why;
  EXPECT_FALSE(Route::parse(text, r, &why)) << text;
  return why;
}

// ---- Defaults and flags ----------------------------------------------------------------------

TEST(RelayConfig, NoArgumentsGiveTheLoopbackDefaults) {
  const Result r = run({});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
  const RelayConfig& c = r.cfg;
  EXPECT_EQ(texts(c.listen), std::vector<std::string>{"127.0.0.1:2525"});
  EXPECT_EQ(c.threads, default_thread_count());
  EXPECT_GE(c.threads, 1u);
  EXPECT_LE(c.threads, 2u);
  EXPECT_FALSE(c.metrics.has_value());
  EXPECT_FALSE(c.verbose);
  EXPECT_EQ(c.recv_buffers, 1024u);
  EXPECT_EQ(c.recv_buffer_size, 16384u);
  EXPECT_EQ(c.spool, "spool");
  EXPECT_EQ(c.durability, Durability::batch);
  EXPECT_EQ(c.batch_max_messages, 64u);
  EXPECT_EQ(c.batch_max_wait_us, 0u);
  EXPECT_EQ(c.segment_bytes, 64u << 20);
  EXPECT_EQ(c.quota_bytes, 0u);
  EXPECT_EQ(c.quota_messages, 0u);
  EXPECT_EQ(texts(c.relay_networks), (std::vector<std::string>{"127.0.0.0/8", "::1/128"}));
  EXPECT_TRUE(c.accepted_domains.empty());
  EXPECT_TRUE(c.routes.empty());
  EXPECT_EQ(c.server.hostname, "localhost");
  EXPECT_EQ(c.server.max_message_size, 35u << 20);
  EXPECT_EQ(c.server.max_recipients, 100u);
  EXPECT_EQ(c.server.command_timeout_ms, 300'000u);
  EXPECT_EQ(c.server.data_timeout_ms, 300'000u);
  EXPECT_TRUE(c.server.pipelining && c.server.size && c.server.eight_bit_mime &&
              c.server.smtputf8 && c.server.enhanced_status_codes && c.server.chunking &&
              c.server.dsn);
  EXPECT_FALSE(c.server.starttls);
  EXPECT_EQ(c.max_connections, 10000u);
  EXPECT_EQ(c.max_connections_per_client, 100u);
  EXPECT_TRUE(c.aliases.empty());
  const DeliveryConfig& d = c.delivery;
  EXPECT_EQ(d.policy.concurrency, 20u);
  EXPECT_EQ(d.policy.messages_per_connection, 1000u);
  EXPECT_EQ(d.policy.rate, 0.0);
  EXPECT_TRUE(d.policy.bdat);
  EXPECT_EQ(d.policy.transactions_in_flight, 8u);
  EXPECT_EQ(d.retry.first_delay_ms, 300'000u);
  EXPECT_EQ(d.retry.factor, 2.0);
  EXPECT_EQ(d.retry.max_delay_ms, 4'000'000u);
  EXPECT_EQ(d.retry.jitter, 0.2);
  EXPECT_EQ(d.retry.lifetime_ms, 5ull * 24 * 3600 * 1000);
  EXPECT_EQ(d.connect_timeout_ms, 30'000u);
  EXPECT_EQ(d.reply_timeout_ms, 300'000u);
  EXPECT_EQ(d.idle_timeout_ms, 2'000u);
  EXPECT_EQ(d.throttle_pause_ms, 1'000u);
  EXPECT_EQ(d.max_received, 50u);
  // A default-constructed RelayConfig is the same.
  EXPECT_TRUE(c == RelayConfig{});
}

TEST(RelayConfig, EveryFlagSetsItsField) {
  const Result r = run({"--listen",
                        "127.0.0.1:2600",
                        "--listen",
                        "[::1]:2600",
                        "--threads",
                        "3",
                        "--metrics",
                        "127.0.0.1:9100",
                        "--verbose",
                        "--recv-buffers",
                        "256",
                        "--recv-buffer-size",
                        "4096",
                        "--spool",
                        "/var/tmp/relay spool",
                        "--durability",
                        "none",
                        "--batch-max-messages",
                        "500",
                        "--batch-max-wait",
                        "250us",
                        "--segment-size",
                        "128M",
                        "--spool-quota-bytes",
                        "2G",
                        "--spool-quota-messages",
                        "100000",
                        "--relay-network",
                        "10.0.0.0/8",
                        "--relay-network",
                        "[fd00::]/8",
                        "--accept-domain",
                        "Example.TEST",
                        "--accept-domain",
                        "*.example.test",
                        "--route",
                        "example.test=127.0.0.1:2526,[::1]:2527",
                        "--route",
                        "*=[127.0.0.1]:2528",
                        "--hostname",
                        "mx.example.test",
                        "--max-message-size",
                        "10M",
                        "--max-recipients",
                        "1000",
                        "--command-timeout",
                        "30s",
                        "--data-timeout",
                        "2m",
                        "--no-pipelining",
                        "--no-size",
                        "--no-8bitmime",
                        "--no-smtputf8",
                        "--no-enhancedstatuscodes",
                        "--no-chunking",
                        "--no-dsn",
                        "--max-connections",
                        "500",
                        "--max-connections-per-client",
                        "0"});
  ASSERT_EQ(r.rc, -1) << r.err;
  const RelayConfig& c = r.cfg;
  EXPECT_EQ(texts(c.listen), (std::vector<std::string>{"127.0.0.1:2600", "[::1]:2600"}));
  EXPECT_EQ(c.threads, 3u);
  ASSERT_TRUE(c.metrics.has_value());
  EXPECT_EQ(c.metrics->to_string(), "127.0.0.1:9100");
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.recv_buffers, 256u);
  EXPECT_EQ(c.recv_buffer_size, 4096u);
  EXPECT_EQ(c.spool, "/var/tmp/relay spool");
  EXPECT_EQ(c.durability, Durability::none);
  EXPECT_EQ(c.batch_max_messages, 500u);
  EXPECT_EQ(c.batch_max_wait_us, 250u);
  EXPECT_EQ(c.segment_bytes, 128u << 20);
  EXPECT_EQ(c.quota_bytes, std::uint64_t{2} << 30);
  EXPECT_EQ(c.quota_messages, 100000u);
  EXPECT_EQ(texts(c.relay_networks), (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(c.accepted_domains, (std::vector<std::string>{"example.test", "*.example.test"}));
  EXPECT_EQ(texts(c.routes), (std::vector<std::string>{"example.test=127.0.0.1:2526,[::1]:2527",
                                                       "*=127.0.0.1:2528"}));
  EXPECT_EQ(c.server.hostname, "mx.example.test");
  EXPECT_EQ(c.server.max_message_size, 10u << 20);
  EXPECT_EQ(c.server.max_recipients, 1000u);
  EXPECT_EQ(c.server.command_timeout_ms, 30'000u);
  EXPECT_EQ(c.server.data_timeout_ms, 120'000u);
  EXPECT_FALSE(c.server.pipelining || c.server.size || c.server.eight_bit_mime ||
               c.server.smtputf8 || c.server.enhanced_status_codes || c.server.chunking ||
               c.server.dsn);
  EXPECT_EQ(c.max_connections, 500u);
  EXPECT_EQ(c.max_connections_per_client, 0u);
}

TEST(RelayConfig, EachExtensionSwitchTurnsOffOnlyItsOwn) {
  struct Case {
    const char* flag;
    bool smtp::ServerConfig::*field;
  };
  for (const Case k : {Case{"--no-pipelining", &smtp::ServerConfig::pipelining},
                       Case{"--no-size", &smtp::ServerConfig::size},
                       Case{"--no-8bitmime", &smtp::ServerConfig::eight_bit_mime},
                       Case{"--no-smtputf8", &smtp::ServerConfig::smtputf8},
                       Case{"--no-enhancedstatuscodes", &smtp::ServerConfig::enhanced_status_codes},
                       Case{"--no-chunking", &smtp::ServerConfig::chunking},
                       Case{"--no-dsn", &smtp::ServerConfig::dsn}}) {
    const Result r = run({k.flag});
    ASSERT_EQ(r.rc, -1) << r.err;
    RelayConfig want;
    want.server.*k.field = false;
    EXPECT_TRUE(r.cfg == want) << k.flag;
  }
}

TEST(RelayConfig, SizesAndDurationsTakeUnits) {
  const Result r = run({"--segment-size", "1048576", "--max-message-size", "512k",
                        "--batch-max-wait", "1s", "--spool-quota-bytes", "3g"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.segment_bytes, 1u << 20);
  EXPECT_EQ(r.cfg.server.max_message_size, 512u << 10);
  EXPECT_EQ(r.cfg.batch_max_wait_us, 1'000'000u);
  EXPECT_EQ(r.cfg.quota_bytes, std::uint64_t{3} << 30);
  const Result z = run({"--batch-max-wait", "0s", "--max-message-size", "1023M"});
  ASSERT_EQ(z.rc, -1) << z.err;
  EXPECT_EQ(z.cfg.batch_max_wait_us, 0u);
  EXPECT_EQ(z.cfg.server.max_message_size, 1023u << 20);
}

TEST(RelayConfig, AlwaysDurabilityKeepsTheIgnoredBatchSettings) {
  // Documented as ignored with always, so neither refused nor reset: switching back to batch
  // in a saved file brings them back.
  const Result r =
      run({"--durability", "always", "--batch-max-messages", "8", "--batch-max-wait", "5ms"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.durability, Durability::always);
  EXPECT_EQ(r.cfg.batch_max_messages, 8u);
  EXPECT_EQ(r.cfg.batch_max_wait_us, 5000u);
}

TEST(RelayConfig, NoneClearsTheRelayNetworks) {
  const Result r = run({"--relay-network", "none", "--accept-domain", "example.test"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_TRUE(r.cfg.relay_networks.empty());
  EXPECT_EQ(r.cfg.accepted_domains, std::vector<std::string>{"example.test"});
}

TEST(RelayConfig, PortZeroMayRepeatAndEquivalentAddressesAreOne) {
  const Result r = run({"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.listen.size(), 2u);
  EXPECT_EQ(refusal({"--listen", "[::1]:25", "--listen", "[0:0::1]:25"}),
            "ringmta-relay: --listen: [::1]:25 is given twice\n");
}

TEST(RelayConfig, HelpSpeaksPostfixAndShowsDefaults) {
  const Result r = run({"--help"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(r.err, "");
  for (const char* s : {"Usage: ringmta-relay [OPTIONS]",
                        "Server:",
                        "Spool (a 250 reply means the message is on stable storage):",
                        "Relaying (checked at RCPT; see below):",
                        "SMTP server:",
                        "Limits:",
                        "--listen HOST:PORT",
                        "(default 127.0.0.1:2525)",
                        "--durability MODE",
                        "always: one per message, as Postfix",
                        "--batch-max-wait DURATION",
                        "Both are ignored with --durability always",
                        "--segment-size BYTES",
                        "--relay-network CIDR",
                        "(Postfix mynetworks;",
                        "default 127.0.0.0/8 and ::1/128",
                        "--accept-domain DOMAIN",
                        "(Postfix relay_domains; default none)",
                        "--route DOMAIN=HOST:PORT[,HOST:PORT]",
                        "as Postfix relayhost",
                        "Routing and aliases (docs/routing.md):",
                        "--alias ADDRESS=TARGET[,TARGET]",
                        "virtual_alias_maps",
                        "Delivery (per destination, over all threads; a [[route]] may override "
                        "the first four):",
                        "--destination-concurrency N",
                        "default_destination_concurrency_limit",
                        "--messages-per-connection N",
                        "--destination-rate R",
                        "--no-bdat",
                        "--connect-timeout DURATION",
                        "--delivery-timeout DURATION",
                        "--idle-timeout DURATION",
                        "--throttle-pause DURATION",
                        "--max-received N",
                        "Retries (of a deferred recipient):",
                        "--retry-first-delay DURATION",
                        "--retry-factor F",
                        "--retry-max-delay DURATION",
                        "--retry-jitter F",
                        "--max-queue-lifetime DURATION",
                        "maximal_queue_lifetime = 5d          --max-queue-lifetime 120h",
                        "(default 35M; Postfix",
                        "message_size_limit",
                        "--no-pipelining",
                        "--no-dsn",
                        "421 4.7.0",
                        "smtpd_client_connection_count_limit",
                        "--print-config",
                        "relayhost = [127.0.0.1]:2526",
                        "--route '*=127.0.0.1:2526'",
                        "Exit codes: 0 ok; 1 the spool cannot be used"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_LE(line.size(), 100u) << line;
  }
  EXPECT_EQ(run({"-h"}).rc, 0);
}

TEST(RelayConfig, VersionPrintsTheVersion) {
  const Result r = run({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "ringmta-relay 0.1.0\n");
}

// ---- Refusals --------------------------------------------------------------------------------

TEST(RelayConfig, EveryBadFlagIsRefusedWithItsReason) {
  const std::string kBuecher = std::string("b\xc3\xbc") + "cher.test";  // U+00FC in UTF-8
  struct Case {
    std::vector<std::string> args;
    std::string err;  // the whole line after "ringmta-relay: "
  };
  const std::vector<Case> cases = {
      {{"--listen", "localhost:25"},
       "--listen: 'localhost:25': not a numeric IPv4 address (IPv6 goes in brackets; no host "
       "names): \"localhost:25\""},
      {{"--listen", "127.0.0.1:25", "--listen", "127.0.0.1:25"},
       "--listen: 127.0.0.1:25 is given twice"},
      {{"--threads", "0"}, "--threads: must be a thread count from 1 to 1024, got '0'"},
      {{"--threads", "1025"}, "--threads: must be a thread count from 1 to 1024, got '1025'"},
      {{"--threads", "two"}, "--threads: must be a thread count from 1 to 1024, got 'two'"},
      {{"--metrics", "9100"}, "--metrics: '9100': expected HOST:PORT: \"9100\""},
      {{"--recv-buffers", "1000"},
       "--recv-buffers: must be a power of two (io_uring buffer ring), got '1000'"},
      {{"--recv-buffer-size", "100"},
       "--recv-buffer-size: must be bytes from 512 to 1048576, got '100'"},
      {{"--spool", ""}, "--spool: must be a directory name, not empty"},
      {{"--durability", "fsync"}, "--durability: must be batch, always or none, got 'fsync'"},
      {{"--durability", "Batch"}, "--durability: must be batch, always or none, got 'Batch'"},
      {{"--batch-max-messages", "0"},
       "--batch-max-messages: must be a message count from 1 to 100000, got '0'"},
      {{"--batch-max-messages", "100001"},
       "--batch-max-messages: must be a message count from 1 to 100000, got '100001'"},
      {{"--batch-max-wait", "2s"}, "--batch-max-wait: must be at most 1s, got '2s'"},
      {{"--batch-max-wait", "1001ms"}, "--batch-max-wait: must be at most 1s, got '1001ms'"},
      {{"--batch-max-wait", "1000"},
       "--batch-max-wait: '1000' needs a unit (ns, us, ms, s, m or h)"},
      {{"--batch-max-wait", "5x"},
       "--batch-max-wait: '5x': unknown unit 'x' (ns, us, ms, s, m or h)"},
      {{"--batch-max-wait", "soon"},
       "--batch-max-wait: 'soon' is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, "
       "1h)"},
      {{"--batch-max-wait", "-1ms"}, "--batch-max-wait: '-1ms': a duration cannot be negative"},
      {{"--batch-max-wait", "1500ns"},
       "--batch-max-wait: must be whole microseconds, got '1500ns'"},
      {{"--batch-max-wait", ""}, "--batch-max-wait: empty duration (write e.g. 10s, 500ms, 2m)"},
      {{"--segment-size", "512K"}, "--segment-size: must be from 1M to 64G, got '512K'"},
      {{"--segment-size", "65G"}, "--segment-size: must be from 1M to 64G, got '65G'"},
      {{"--segment-size", "64MB"},
       "--segment-size: must be a size in bytes (an integer, or text such as \"512K\", \"35M\", "
       "\"1G\"), got '64MB'"},
      {{"--spool-quota-bytes", "-1"},
       "--spool-quota-bytes: must be a size in bytes (an integer, or text such as \"512K\", "
       "\"35M\", \"1G\"), got '-1'"},
      {{"--spool-quota-messages", "many"},
       "--spool-quota-messages: must be a message count (0: no quota), got 'many'"},
      {{"--relay-network", "10.1.2.3/8"},
       "--relay-network: '10.1.2.3/8': the address has bits set beyond the /8 prefix; the "
       "network is 10.0.0.0/8"},
      {{"--relay-network", "10.0.0.0/33"},
       "--relay-network: '10.0.0.0/33': the prefix length must be a number from 0 to 32 for "
       "IPv4"},
      {{"--relay-network", "localhost"},
       "--relay-network: 'localhost' is not a network: an IPv4 or IPv6 address with an optional "
       "/PREFIX, such as 10.0.0.0/8 or ::1/128 (numeric, no host names)"},
      {{"--relay-network", "10.0.0.0/8", "--relay-network", "10.0.0.0/8"},
       "--relay-network: 10.0.0.0/8 is given twice"},
      {{"--relay-network", "none", "--relay-network", "10.0.0.0/8"},
       "--relay-network: 'none' (no client may relay) cannot be combined with networks"},
      {{"--accept-domain", "*"},
       "--accept-domain: '*' would accept mail for every domain from every client (an open "
       "relay); name the domains, or list the clients in relay-networks"},
      {{"--accept-domain", "bad_domain.test"},
       "--accept-domain: 'bad_domain.test' is not a domain name (write example.test, or "
       "*.example.test for its sub-domains)"},
      {{"--accept-domain", "*.*.test"},
       "--accept-domain: '*.*.test' is not a domain name (write example.test, or *.example.test "
       "for its sub-domains)"},
      {{"--accept-domain", "[127.0.0.1]"},
       "--accept-domain: '[127.0.0.1]' is not a domain name (write example.test, or "
       "*.example.test for its sub-domains)"},
      {{"--accept-domain", kBuecher},
       "--accept-domain: '" + kBuecher +
           "' is not ASCII: write the xn-- form of an internationalised domain"},
      {{"--accept-domain", "a.test", "--accept-domain", "A.Test"},
       "--accept-domain: 'a.test' is given twice (names ignore case)"},
      {{"--route", "example.test"},
       "--route: 'example.test' is not a route: write DOMAIN=HOST:PORT[,HOST:PORT...], e.g. "
       "*=127.0.0.1:2526"},
      {{"--route", "a.test=127.0.0.1:1", "--route", "A.TEST=127.0.0.1:2"},
       "--route: 'a.test' has a route already (names ignore case)"},
      {{"--route", "a.test=localhost:25"},
       "--route: 'a.test=localhost:25': hop 'localhost:25': not a numeric IPv4 address (IPv6 "
       "goes in brackets; no host names)"},
      {{"--hostname", "bad name"},
       "--hostname: must be a host name such as mx.example.test, got 'bad name'"},
      {{"--hostname", ""}, "--hostname: must be a host name such as mx.example.test, got ''"},
      {{"--max-message-size", "0"},
       "--max-message-size: must be from 1 byte to 1023M (the spool keeps a message in one "
       "record of at most 1G; there is no 0 = no limit), got '0'"},
      {{"--max-message-size", "1G"},
       "--max-message-size: must be from 1 byte to 1023M (the spool keeps a message in one "
       "record of at most 1G; there is no 0 = no limit), got '1G'"},
      {{"--max-recipients", "0"}, "--max-recipients: must be from 1 to 1000000, got '0'"},
      {{"--command-timeout", "300"},
       "--command-timeout: '300' needs a unit (ns, us, ms, s, m or h)"},
      {{"--command-timeout", "500us"},
       "--command-timeout: must be whole milliseconds, at least 1ms, got '500us'"},
      {{"--data-timeout", "2h"}, "--data-timeout: must be at most 1h, got '2h'"},
      {{"--max-connections", "-1"},
       "--max-connections: must be a count from 0 (no limit) to 10000000, got '-1'"},
      {{"--max-connections-per-client", "10000001"},
       "--max-connections-per-client: must be a count from 0 (no limit) to 10000000, got "
       "'10000001'"},
  };
  for (const Case& k : cases) {
    EXPECT_EQ(refusal(k.args), "ringmta-relay: " + k.err + "\n") << k.args[0];
  }
}

TEST(RelayConfig, SettingsThatContradictEachOtherAreRefused) {
  EXPECT_EQ(refusal({"--metrics", "127.0.0.1:2525"}),
            "ringmta-relay: --metrics: 127.0.0.1:2525 is also a listen address\n");
  EXPECT_EQ(refusal({"--listen", "[::1]:2600", "--metrics", "[::1]:2600"}),
            "ringmta-relay: --metrics: [::1]:2600 is also a listen address\n");
  EXPECT_EQ(refusal({"--spool-quota-bytes", "1M"}),
            "ringmta-relay: --spool-quota-bytes: must be 0 (no quota) or at least one spool "
            "segment (segment-size is 64M), got 1M\n");
  // Against a raised segment size; the quota is named even when the segment changed.
  EXPECT_EQ(refusal({"--spool-quota-bytes", "100M", "--segment-size", "128M"}),
            "ringmta-relay: --spool-quota-bytes: must be 0 (no quota) or at least one spool "
            "segment (segment-size is 128M), got 100M\n");
  EXPECT_EQ(run({"--spool-quota-bytes", "64M"}).rc, -1);
  EXPECT_EQ(run({"--metrics", "127.0.0.1:0", "--listen", "127.0.0.1:0"}).rc, -1);
}

// STARTTLS on the inbound side: the modes, the certificate and key it needs, and the exact
// refusals (the sink reads the same settings through the same code and texts).
TEST(RelayConfig, StarttlsModesNeedACertificateAndKey) {
  const Result off = run({"--starttls", "off"});
  ASSERT_EQ(off.rc, -1) << off.err;
  EXPECT_FALSE(off.cfg.server.starttls || off.cfg.server.require_tls);
  const Result on = run({"--starttls", "on", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
  ASSERT_EQ(on.rc, -1) << on.err;
  EXPECT_TRUE(on.cfg.server.starttls);
  EXPECT_FALSE(on.cfg.server.require_tls);
  EXPECT_EQ(on.cfg.tls_cert, "c.pem");
  EXPECT_EQ(on.cfg.tls_key, "k.pem");
  const Result required =
      run({"--starttls", "required", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
  ASSERT_EQ(required.rc, -1) << required.err;
  EXPECT_TRUE(required.cfg.server.starttls && required.cfg.server.require_tls);

  const std::string kNeeds = "needs tls-cert and tls-key (--tls-cert FILE --tls-key FILE)\n";
  EXPECT_EQ(refusal({"--starttls", "maybe", "--tls-cert", "c.pem", "--tls-key", "k.pem"}),
            "ringmta-relay: --starttls: must be off, on or required, got 'maybe'\n");
  EXPECT_EQ(refusal({"--starttls", "on"}), "ringmta-relay: --starttls: " + kNeeds);
  EXPECT_EQ(refusal({"--starttls", "required", "--tls-cert", "c.pem"}),
            "ringmta-relay: --starttls: " + kNeeds);
  EXPECT_EQ(refusal({"--starttls", "on", "--tls-key", "k.pem"}),
            "ringmta-relay: --starttls: " + kNeeds);
  EXPECT_EQ(refusal({"--tls-cert", ""}),
            "ringmta-relay: --tls-cert: must be a file name, not empty\n");
  EXPECT_EQ(refusal({"--tls-key", ""}),
            "ringmta-relay: --tls-key: must be a file name, not empty\n");
  // A certificate and key without STARTTLS are kept, and not an error.
  EXPECT_EQ(run({"--tls-cert", "c.pem", "--tls-key", "k.pem"}).rc, -1);

  const TomlFile bad("starttls = \"maybe\"\n");
  EXPECT_EQ(refusal({"--config", bad.path()}),
            "ringmta-relay: " + bad.path() +
                ":1:12: starttls: must be off, on or required, got \"maybe\"\n");
  const TomlFile boolean("starttls = true\n");
  EXPECT_EQ(refusal({"--config", boolean.path()}),
            "ringmta-relay: " + boolean.path() +
                ":1:12: starttls: must be off, on or required, not a boolean\n");
  const TomlFile no_key("\nstarttls = \"on\"\ntls-cert = \"c.pem\"\n");
  EXPECT_EQ(refusal({"--config", no_key.path()}),
            "ringmta-relay: " + no_key.path() + ":2:12: starttls: " + kNeeds);
  const TomlFile empty("tls-key = \"\"\n");
  EXPECT_EQ(refusal({"--config", empty.path()}),
            "ringmta-relay: " + empty.path() + ":1:11: tls-key: must be a file name, not empty\n");
  // The flag that supplies the missing key settles it.
  EXPECT_EQ(run({"--config", no_key.path(), "--tls-key", "k.pem"}).rc, -1);

  // --print-config writes each mode back as its word, with the files.
  for (const std::string mode : {"off", "on", "required"}) {
    const Result printed =
        run({"--starttls", mode, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--print-config"});
    ASSERT_EQ(printed.rc, 0) << printed.err;
    EXPECT_NE(printed.out.find("\nstarttls = \"" + mode +
                               "\"\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\n"),
              std::string::npos)
        << printed.out;
  }
}

TEST(RelayConfig, UsageErrorsAreOneLine) {
  EXPECT_EQ(refusal({"--frobnicate"}),
            "ringmta-relay: --frobnicate: unknown option (ringmta-relay --help lists them)\n");
  EXPECT_EQ(refusal({"--relay-networks=10.0.0.0/8"}),
            "ringmta-relay: --relay-networks: unknown option (ringmta-relay --help lists them)\n");
  EXPECT_EQ(refusal({"extra"}),
            "ringmta-relay: 'extra': unexpected argument (options take the form --name VALUE)\n");
  EXPECT_EQ(refusal({"--no-dsn=false"}), "ringmta-relay: --no-dsn: takes no value\n");
  EXPECT_EQ(refusal({"--verbose=false"}), "ringmta-relay: --verbose: takes no value\n");
  EXPECT_EQ(refusal({"--threads", "1", "--threads", "2"}),
            "ringmta-relay: --threads: At Most 1 required but received 2 (ringmta-relay --help "
            "lists the options)\n");
  const std::string missing = refusal({"--spool"});
  EXPECT_EQ(missing.rfind("ringmta-relay: --spool: ", 0), 0u) << missing;
  EXPECT_EQ(std::count(missing.begin(), missing.end(), '\n'), 1) << missing;
  // A list flag takes one value each time, so a stray word is not swallowed as a second one.
  EXPECT_EQ(refusal({"--listen", "127.0.0.1:1", "127.0.0.1:2"}),
            "ringmta-relay: '127.0.0.1:2': unexpected argument (options take the form --name "
            "VALUE)\n");
}

// ---- TOML ------------------------------------------------------------------------------------

TEST(RelayConfigToml, EveryKeySetsItsField) {
  const TomlFile f(R"(listen = ["127.0.0.1:2600", "[::1]:2600"]
threads = 3
metrics = "127.0.0.1:9100"
verbose = true
recv-buffers = 256
recv-buffer-size = 4096
spool = "/var/tmp/relay"
durability = "always"
batch-max-messages = 500
batch-max-wait = "250us"
segment-size = "128M"
spool-quota-bytes = 2147483648
spool-quota-messages = 100000
relay-networks = ["10.0.0.0/8", "[fd00::]/8", "192.0.2.1"]
accept-domains = ["Example.TEST", "*.example.test"]
hostname = "mx.example.test"
max-message-size = 10485760
max-recipients = 1000
command-timeout = "30s"
data-timeout = "2m"
pipelining = false
size = false
8bitmime = false
smtputf8 = false
enhancedstatuscodes = false
chunking = false
dsn = false
max-connections = 500
max-connections-per-client = 0

[[route]]
domain = "Example.TEST"
hops = ["127.0.0.1:2526", "[::1]:2527"]

[[route]]
domain = "*"
hops = "[127.0.0.1]:2528"
)");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  const RelayConfig& c = r.cfg;
  EXPECT_EQ(texts(c.listen), (std::vector<std::string>{"127.0.0.1:2600", "[::1]:2600"}));
  EXPECT_EQ(c.threads, 3u);
  ASSERT_TRUE(c.metrics.has_value());
  EXPECT_EQ(c.metrics->to_string(), "127.0.0.1:9100");
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.recv_buffers, 256u);
  EXPECT_EQ(c.recv_buffer_size, 4096u);
  EXPECT_EQ(c.spool, "/var/tmp/relay");
  EXPECT_EQ(c.durability, Durability::always);
  EXPECT_EQ(c.batch_max_messages, 500u);
  EXPECT_EQ(c.batch_max_wait_us, 250u);
  EXPECT_EQ(c.segment_bytes, 128u << 20);
  EXPECT_EQ(c.quota_bytes, std::uint64_t{2} << 30);
  EXPECT_EQ(c.quota_messages, 100000u);
  EXPECT_EQ(texts(c.relay_networks),
            (std::vector<std::string>{"10.0.0.0/8", "fd00::/8", "192.0.2.1/32"}));
  EXPECT_EQ(c.accepted_domains, (std::vector<std::string>{"example.test", "*.example.test"}));
  EXPECT_EQ(texts(c.routes), (std::vector<std::string>{"example.test=127.0.0.1:2526,[::1]:2527",
                                                       "*=127.0.0.1:2528"}));
  EXPECT_EQ(c.server.hostname, "mx.example.test");
  EXPECT_EQ(c.server.max_message_size, 10u << 20);
  EXPECT_EQ(c.server.max_recipients, 1000u);
  EXPECT_EQ(c.server.command_timeout_ms, 30'000u);
  EXPECT_EQ(c.server.data_timeout_ms, 120'000u);
  EXPECT_FALSE(c.server.pipelining || c.server.size || c.server.eight_bit_mime ||
               c.server.smtputf8 || c.server.enhanced_status_codes || c.server.chunking ||
               c.server.dsn);
  EXPECT_EQ(c.max_connections, 500u);
  EXPECT_EQ(c.max_connections_per_client, 0u);
}

TEST(RelayConfigToml, ListsTakeOneStringAnArrayOrNothing) {
  {
    const TomlFile f(
        "listen = \"[::1]:2600\"\nrelay-networks = \"10.0.0.0/8\"\n"
        "accept-domains = \"a.test\"\n");
    const Result r = run({"--config", f.path()});
    ASSERT_EQ(r.rc, -1) << r.err;
    EXPECT_EQ(texts(r.cfg.listen), std::vector<std::string>{"[::1]:2600"});
    EXPECT_EQ(texts(r.cfg.relay_networks), std::vector<std::string>{"10.0.0.0/8"});
    EXPECT_EQ(r.cfg.accepted_domains, std::vector<std::string>{"a.test"});
  }
  for (const char* none : {"relay-networks = []\n", "relay-networks = \"none\"\n"}) {
    const TomlFile f(none);
    const Result r = run({"--config", f.path()});
    ASSERT_EQ(r.rc, -1) << r.err;
    EXPECT_TRUE(r.cfg.relay_networks.empty()) << none;
  }
  {
    // Routes in flag form, alone or mixed with tables in one array.
    const TomlFile f(
        "route = [\"a.test=127.0.0.1:1\", {domain = \"*\", hops = "
        "[\"127.0.0.1:2\"]}]\n");
    const Result r = run({"--config", f.path()});
    ASSERT_EQ(r.rc, -1) << r.err;
    EXPECT_EQ(texts(r.cfg.routes),
              (std::vector<std::string>{"a.test=127.0.0.1:1", "*=127.0.0.1:2"}));
    const TomlFile g("route = \"*=127.0.0.1:3\"\n");
    const Result s = run({"--config", g.path()});
    ASSERT_EQ(s.rc, -1) << s.err;
    EXPECT_EQ(texts(s.cfg.routes), std::vector<std::string>{"*=127.0.0.1:3"});
  }
}

TEST(RelayConfigToml, FlagsOverrideTheFileAndListFlagsReplaceItsLists) {
  const TomlFile f(R"(threads = 3
durability = "always"
listen = ["127.0.0.1:2600", "127.0.0.1:2601"]
relay-networks = ["10.0.0.0/8"]
accept-domains = ["a.test"]
[[route]]
domain = "a.test"
hops = ["127.0.0.1:2526"]
)");
  const Result r =
      run({"--config", f.path(), "--threads", "1", "--listen", "127.0.0.1:2700", "--relay-network",
           "192.168.0.0/16", "--accept-domain", "b.test", "--route", "*=127.0.0.1:2999"});
  ASSERT_EQ(r.rc, -1) << r.err;
  EXPECT_EQ(r.cfg.threads, 1u);
  EXPECT_EQ(r.cfg.durability, Durability::always);  // not overridden
  EXPECT_EQ(texts(r.cfg.listen), std::vector<std::string>{"127.0.0.1:2700"});
  EXPECT_EQ(texts(r.cfg.relay_networks), std::vector<std::string>{"192.168.0.0/16"});
  EXPECT_EQ(r.cfg.accepted_domains, std::vector<std::string>{"b.test"});
  EXPECT_EQ(texts(r.cfg.routes), std::vector<std::string>{"*=127.0.0.1:2999"});
  // Without list flags, the file's lists stand.
  const Result k = run({"--config", f.path()});
  ASSERT_EQ(k.rc, -1) << k.err;
  EXPECT_EQ(k.cfg.listen.size(), 2u);
  EXPECT_EQ(texts(k.cfg.routes), std::vector<std::string>{"a.test=127.0.0.1:2526"});
}

TEST(RelayConfigToml, ErrorsNameTheFileLineColumnAndKey) {
  struct Case {
    const char* toml;
    std::string err;  // after "ringmta-relay: FILE:"; a prefix when it ends with a space
  };
  const std::vector<Case> cases = {
      {"threads = 0\n", "1:11: threads: must be a thread count from 1 to 1024, got 0"},
      {"threads = \"2\"\n", "1:11: threads: must be a thread count from 1 to 1024, not a string"},
      {"\n\nverbose = \"yes\"\n", "3:11: verbose: must be true or false, not a string"},
      {"spool = 5\n", "1:9: spool: must be a directory name, not an integer"},
      {"durability = \"fsync\"\n",
       "1:14: durability: must be batch, always or none, got \"fsync\""},
      {"batch-max-messages = 0\n",
       "1:22: batch-max-messages: must be a message count from 1 to 100000, got 0"},
      {"batch-max-wait = 1\n",
       "1:18: batch-max-wait: must be a duration with a unit, such as \"500us\", \"5ms\" or "
       "\"1s\", not an integer"},
      {"batch-max-wait = \"2s\"\n", "1:18: batch-max-wait: must be at most 1s, got \"2s\""},
      {"batch-max-wait = \"1000\"\n",
       "1:18: batch-max-wait: '1000' needs a unit (ns, us, ms, s, m or h)"},
      {"segment-size = \"512K\"\n", "1:16: segment-size: must be from 1M to 64G, got \"512K\""},
      {"segment-size = 1.5\n",
       "1:16: segment-size: must be a size in bytes (an integer, or text such as \"512K\", "
       "\"35M\", \"1G\"), not a floating-point number"},
      {"spool-quota-bytes = \"1M\"\n",
       "1:21: spool-quota-bytes: must be 0 (no quota) or at least one spool segment "
       "(segment-size is 64M), got 1M"},
      {"metrics = \"127.0.0.1:2525\"\n", "1:11: metrics: 127.0.0.1:2525 is also a listen address"},
      {"listen = []\n", "1:10: listen: must name at least one address \"HOST:PORT\""},
      {"listen = [\"127.0.0.1:25\",\n          \"127.0.0.1:25\"]\n",
       "2:11: listen: 127.0.0.1:25 is given twice"},
      {"listen = [1]\n", "1:11: listen: must be an address \"HOST:PORT\", not an integer"},
      {"relay-networks = [\"127.0.0.0/8\", \"10.1.0.0/8\"]\n",
       "1:34: relay-networks: '10.1.0.0/8': the address has bits set beyond the /8 prefix; the "
       "network is 10.0.0.0/8"},
      {"relay-networks = [\"::1/129\"]\n",
       "1:19: relay-networks: '::1/129': the prefix length must be a number from 0 to 128 for "
       "IPv6"},
      {"relay-networks = [\"none\", \"::1\"]\n",
       "1:19: relay-networks: 'none' (no client may relay) cannot be combined with networks"},
      {"accept-domains = [\"a.test\", \"A.TEST\"]\n",
       "1:29: accept-domains: 'a.test' is given twice (names ignore case)"},
      {"accept-domains = [\"*\"]\n",
       "1:19: accept-domains: '*' would accept mail for every domain from every client (an open "
       "relay); name the domains, or list the clients in relay-networks"},
      {"hostname = \"a b\"\n",
       "1:12: hostname: must be a host name such as mx.example.test, got \"a b\""},
      {"max-message-size = 0\n",
       "1:20: max-message-size: must be from 1 byte to 1023M (the spool keeps a message in one "
       "record of at most 1G; there is no 0 = no limit), got 0"},
      {"command-timeout = \"0s\"\n",
       "1:19: command-timeout: must be whole milliseconds, at least 1ms, got \"0s\""},
      {"dsn = 0\n", "1:7: dsn: must be true or false, not an integer"},
      {"max-connections = 1e3\n",
       "1:19: max-connections: must be a count from 0 (no limit) to 10000000, not a "
       "floating-point number"},
      // Routes: tables point at their keys, or at the table for a missing key.
      {"[[route]]\ndomain = \"a b\"\nhops = [\"127.0.0.1:1\"]\n",
       "2:10: domain: 'a b' is not a route domain (a domain, *.example.test for its "
       "sub-domains, * for every other domain, or an address literal such as [127.0.0.1])"},
      {"[[route]]\ndomain = \"[300.0.0.1]\"\nhops = [\"127.0.0.1:1\"]\n",
       "2:10: domain: '[300.0.0.1]' is not an address literal (such as [127.0.0.1] or "
       "[IPv6:::1])"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\", \"localhost:2\"]\n",
       "3:24: hops: 'localhost:2': not a numeric IPv4 address (IPv6 goes in brackets; no host "
       "names)"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:0\"]\n",
       "3:9: hops: '127.0.0.1:0': port 0 cannot be connected to"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n",
       "3:24: hops: hop 127.0.0.1:1 is given twice"},
      {"[[route]]\ndomain = \"a.test\"\nhops = []\n",
       "3:8: hops: must name at least one hop \"HOST:PORT\""},
      {"[[route]]\nhops = [\"127.0.0.1:1\"]\n",
       "1:1: [[route]]: needs domain = \"example.test\" (\"*\" for the default route)"},
      {"\n[[route]]\ndomain = \"a.test\"\n", "2:1: [[route]]: needs hops = [\"HOST:PORT\", ...]"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\"]\nweight = 2\n",
       "4:1: weight: unknown [[route]] key (a route has domain, hops, and the overrides "
       "concurrency, messages-per-connection, rate, bdat, transactions-in-flight and tls)"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\"]\ntransactions-in-flight = 0\n",
       "4:26: transactions-in-flight: must be a transaction count from 1 to 64, got 0"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\"]\n"
       "[[route]]\ndomain = \"A.test\"\nhops = [\"127.0.0.1:2\"]\n",
       "5:10: domain: 'a.test' has a route already (names ignore case)"},
      {"[route]\ndomain = \"a.test\"\n",
       "1:1: route: must be [[route]] tables or \"DOMAIN=HOST:PORT\" strings, not a table: write "
       "[[route]]"},
      {"route = [\"a.test\"]\n",
       "1:10: route: 'a.test' is not a route: write DOMAIN=HOST:PORT[,HOST:PORT...], e.g. "
       "*=127.0.0.1:2526"},
      {"route = [5]\n",
       "1:10: route: must be a route \"DOMAIN=HOST:PORT\" or a [[route]] table, not an integer"},
      {"relay-networks = [8]\n",
       "1:19: relay-networks: must be a network such as \"10.0.0.0/8\" or \"::1/128\", not an "
       "integer"},
      {"accept-domains = [true]\n",
       "1:19: accept-domains: must be a domain such as \"example.test\", not a boolean"},
      {"[[route]]\ndomain = 5\nhops = [\"127.0.0.1:1\"]\n",
       "2:10: domain: must be a domain, \"*.suffix\" or \"*\", not an integer"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [1]\n",
       "3:9: hops: must be a hop \"HOST:PORT\", not an integer"},
      // Unknown keys, with a hint where one helps.
      {"thread = 2\n", "1:1: thread: unknown key"},
      {"batch_max_wait = \"1ms\"\n",
       "1:1: batch_max_wait: unknown key (did you mean 'batch-max-wait'?)"},
      {"relay-network = [\"10.0.0.0/8\"]\n",
       "1:1: relay-network: unknown key (did you mean 'relay-networks'? it takes a list)"},
      {"accept-domain = \"a.test\"\n",
       "1:1: accept-domain: unknown key (did you mean 'accept-domains'? it takes a list)"},
      {"mynetworks = [\"10.0.0.0/8\"]\n",
       "1:1: mynetworks: unknown key (Postfix's mynetworks is relay-networks here)"},
      {"relay_domains = [\"a.test\"]\n",
       "1:1: relay_domains: unknown key (Postfix's relay_domains is accept-domains here)"},
      {"relayhost = \"[127.0.0.1]:2526\"\n",
       "1:1: relayhost: unknown key (Postfix's relayhost is [[route]] with domain = \"*\" here)"},
      {"message_size_limit = 1\n",
       "1:1: message_size_limit: unknown key (Postfix's message_size_limit is max-message-size "
       "here)"},
      {"no-dsn = true\n", "1:1: no-dsn: unknown key (write dsn = false)"},
      {"print-config = true\n", "1:1: print-config: unknown key (a command-line flag only)"},
      {"routes = []\n", "1:1: routes: unknown key (write [[route]] tables)"},
      {"threads = [", ""},  // a TOML syntax error: file:line:col and toml++'s words
  };
  for (const Case& k : cases) {
    const TomlFile f(k.toml);
    const std::string err = refusal({"--config", f.path()});
    const std::string prefix = "ringmta-relay: " + f.path() + ":";
    ASSERT_EQ(err.rfind(prefix, 0), 0u) << err;
    const std::string rest = err.substr(prefix.size());
    if (k.err.empty()) {
      EXPECT_EQ(rest.rfind("1:", 0), 0u) << rest;
    } else {
      EXPECT_EQ(rest, k.err + "\n") << k.toml;
    }
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

TEST(RelayConfigToml, UnreadableConfigFileIsRefused) {
  EXPECT_EQ(refusal({"--config", "/nonexistent/relay.toml"}),
            "ringmta-relay: --config: cannot read '/nonexistent/relay.toml': No such file or "
            "directory\n");
}

TEST(RelayConfigToml, FlagsCheckedAgainstTheFile) {
  // Cross checks see the merged configuration and point at whichever source set the value.
  const TomlFile f("listen = [\"127.0.0.1:2600\"]\n");
  EXPECT_EQ(refusal({"--config", f.path(), "--metrics", "127.0.0.1:2600"}),
            "ringmta-relay: --metrics: 127.0.0.1:2600 is also a listen address\n");
  const TomlFile g("\nsegment-size = \"256M\"\n");
  EXPECT_EQ(refusal({"--config", g.path(), "--spool-quota-bytes", "128M"}),
            "ringmta-relay: --spool-quota-bytes: must be 0 (no quota) or at least one spool "
            "segment (segment-size is 256M), got 128M\n");
}

// ---- --print-config --------------------------------------------------------------------------

TEST(RelayConfigPrint, ReadsBackToTheSameConfiguration) {
  const std::vector<std::vector<std::string>> command_lines = {
      {},
      {"--listen",
       "127.0.0.1:2600",
       "--listen",
       "[::1]:0",
       "--listen",
       "[::1]:0",
       "--threads",
       "3",
       "--metrics",
       "[::1]:9100",
       "--verbose",
       "--recv-buffers",
       "256",
       "--recv-buffer-size",
       "4097",
       "--spool",
       "/tmp/a \"quoted\" \\ spool",
       "--durability",
       "always",
       "--batch-max-messages",
       "7",
       "--batch-max-wait",
       "1500us",
       "--segment-size",
       "1048577",
       "--spool-quota-bytes",
       "3G",
       "--spool-quota-messages",
       "12",
       "--relay-network",
       "0.0.0.0/0",
       "--relay-network",
       "::/0",
       "--accept-domain",
       "a.test",
       "--accept-domain",
       "*.b.test",
       "--route",
       "a.test=127.0.0.1:2526,[::1]:2527",
       "--route",
       "*.b.test=127.0.0.1:2528",
       "--route",
       "[127.0.0.1]=127.0.0.1:2529",
       "--route",
       "*=127.0.0.1:2530",
       "--hostname",
       "mx.example.test",
       "--max-message-size",
       "1000",
       "--max-recipients",
       "5",
       "--command-timeout",
       "1500ms",
       "--data-timeout",
       "1h",
       "--no-chunking",
       "--no-dsn",
       "--max-connections",
       "0",
       "--max-connections-per-client",
       "7"},
      {"--relay-network", "none", "--durability", "none", "--batch-max-wait", "0s"},
  };
  for (const auto& args : command_lines) {
    const Result direct = run(args);
    ASSERT_EQ(direct.rc, -1) << direct.err;
    std::vector<std::string> print = args;
    print.push_back("--print-config");
    const Result printed = run(print);
    ASSERT_EQ(printed.rc, 0) << printed.err;
    EXPECT_EQ(printed.err, "");
    const TomlFile f(printed.out);
    const Result back = run({"--config", f.path()});
    ASSERT_EQ(back.rc, -1) << back.err << "\n" << printed.out;
    EXPECT_TRUE(back.cfg == direct.cfg) << printed.out;
    // And once more: the printed text is a fixed point.
    const Result again = run({"--config", f.path(), "--print-config"});
    EXPECT_EQ(again.out, printed.out);
  }
}

TEST(RelayConfigPrint, EverySettingIsWrittenWithItsDefault) {
  const Result r = run({"--print-config"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const std::string& s : std::vector<std::string>{
           "listen = [\"127.0.0.1:2525\"]\n",
           "threads = " + std::to_string(default_thread_count()) + "\n",
           "# metrics = \"HOST:PORT\"  (off)\n",
           "verbose = false\n",
           "recv-buffers = 1024\n",
           "recv-buffer-size = 16384\n",
           "spool = \"spool\"\n",
           "durability = \"batch\"",
           "batch-max-messages = 64\n",
           "batch-max-wait = \"0s\"\n",
           "segment-size = \"64M\"\n",
           "spool-quota-bytes = 0",
           "spool-quota-messages = 0",
           "relay-networks = [\"127.0.0.0/8\", \"::1/128\"]  # Postfix mynetworks\n",
           "accept-domains = []  # Postfix relay_domains\n",
           "hostname = \"localhost\"\n",
           "max-message-size = \"35M\"\n",
           "max-recipients = 100\n",
           "command-timeout = \"5m\"\n",
           "data-timeout = \"5m\"\n",
           "pipelining = true\n",
           "size = true\n",
           "8bitmime = true\n",
           "smtputf8 = true\n",
           "enhancedstatuscodes = true\n",
           "chunking = true\n",
           "dsn = true\n",
           "max-connections = 10000",
           "max-connections-per-client = 100",
           "destination-concurrency = 20\n",
           "messages-per-connection = 1000  # 0 = no limit\n",
           "destination-rate = 0  # messages per second; 0 = no limit\n",
           "bdat = true\n",
           "connect-timeout = \"30s\"\n",
           "delivery-timeout = \"5m\"\n",
           "idle-timeout = \"2s\"  # 0 = close at once\n",
           "throttle-pause = \"1s\"\n",
           "max-received = 50\n",
           "retry-first-delay = \"5m\"\n",
           "retry-factor = 2\n",
           "retry-max-delay = \"4000s\"\n",
           "retry-jitter = 0.2\n",
           "max-queue-lifetime = \"120h\"\n",
           "# No [[route]] tables",
           "# No [[alias]] tables"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << "missing: " << s << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("ignored"), std::string::npos) << r.out;
  const Result a = run({"--print-config", "--durability", "always"});
  EXPECT_NE(a.out.find("batch-max-messages = 64  # ignored with durability = \"always\"\n"),
            std::string::npos)
      << a.out;
}

TEST(RelayConfigPrint, RoutesAreTables) {
  const Result r = run({"--print-config", "--route", "a.test=127.0.0.1:1,[::1]:2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(
      r.out.find("\n[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\", \"[::1]:2\"]\n\n"),
      std::string::npos)
      << r.out;
}

// ---- Delivery, routes with priorities and overrides, aliases ---------------------------------

TEST(RelayDelivery, EveryFlagSetsItsField) {
  const Result r = run({"--destination-concurrency", "7",    "--messages-per-connection", "0",
                        "--destination-rate", "12.5",        "--no-bdat",
                        "--transactions-in-flight", "1",
                        "--retry-first-delay", "1s",         "--retry-factor", "1.5",
                        "--retry-max-delay", "1h",           "--retry-jitter", "0",
                        "--max-queue-lifetime", "48h",       "--connect-timeout", "250ms",
                        "--delivery-timeout", "1m",          "--idle-timeout", "0",
                        "--throttle-pause", "0s",            "--max-received", "1000"});
  ASSERT_EQ(r.rc, -1) << r.err;
  const DeliveryConfig& d = r.cfg.delivery;
  EXPECT_EQ(d.policy.concurrency, 7u);
  EXPECT_EQ(d.policy.messages_per_connection, 0u);
  EXPECT_EQ(d.policy.rate, 12.5);
  EXPECT_FALSE(d.policy.bdat);
  EXPECT_EQ(d.policy.transactions_in_flight, 1u);
  EXPECT_EQ(d.retry.first_delay_ms, 1'000u);
  EXPECT_EQ(d.retry.factor, 1.5);
  EXPECT_EQ(d.retry.max_delay_ms, 3'600'000u);
  EXPECT_EQ(d.retry.jitter, 0.0);
  EXPECT_EQ(d.retry.lifetime_ms, 48u * 3'600'000u);
  EXPECT_EQ(d.connect_timeout_ms, 250u);
  EXPECT_EQ(d.reply_timeout_ms, 60'000u);
  EXPECT_EQ(d.idle_timeout_ms, 0u);
  EXPECT_EQ(d.throttle_pause_ms, 0u);
  EXPECT_EQ(d.max_received, 1000u);
  // Nothing else moved.
  RelayConfig want;
  want.delivery = d;
  EXPECT_TRUE(r.cfg == want);
}

TEST(RelayDelivery, BoundsAreAccepted) {
  const Result lo = run({"--destination-concurrency", "1", "--retry-first-delay", "1ms",
                         "--retry-max-delay", "1ms", "--retry-factor", "1", "--retry-jitter",
                         "0.5", "--max-queue-lifetime", "1ms", "--connect-timeout", "1ms",
                         "--max-received", "1", "--destination-rate", "0.001"});
  ASSERT_EQ(lo.rc, -1) << lo.err;
  EXPECT_EQ(lo.cfg.delivery.retry.max_delay_ms, 1u);
  EXPECT_EQ(lo.cfg.delivery.retry.lifetime_ms, 1u);
  EXPECT_EQ(lo.cfg.delivery.policy.rate, 0.001);
  const Result hi = run({"--destination-concurrency", "10000", "--retry-first-delay", "24h",
                         "--retry-max-delay", "1440m", "--retry-factor", "10",
                         "--max-queue-lifetime", "2400h", "--delivery-timeout", "1h",
                         "--idle-timeout", "1h", "--throttle-pause", "1h",
                         "--messages-per-connection", "10000000", "--destination-rate",
                         "1000000"});
  ASSERT_EQ(hi.rc, -1) << hi.err;
  EXPECT_EQ(hi.cfg.delivery.retry.lifetime_ms, 100ull * 24 * 3'600'000);
  EXPECT_EQ(hi.cfg.delivery.retry.first_delay_ms, hi.cfg.delivery.retry.max_delay_ms);
}

TEST(RelayDelivery, EveryBadFlagIsRefusedWithItsReason) {
  struct Case {
    std::vector<std::string> args;
    std::string err;  // the whole line after "ringmta-relay: "
  };
  const std::string kMs = "must be whole milliseconds, at least 1ms, got ";
  const std::vector<Case> cases = {
      {{"--destination-concurrency", "0"},
       "--destination-concurrency: must be a connection count from 1 to 10000, got '0'"},
      {{"--destination-concurrency", "10001"},
       "--destination-concurrency: must be a connection count from 1 to 10000, got '10001'"},
      {{"--messages-per-connection", "-1"},
       "--messages-per-connection: must be a message count from 0 (no limit) to 10000000, got "
       "'-1'"},
      {{"--destination-rate", "-1"},
       "--destination-rate: must be messages per second from 0 (no limit) to 1000000, got '-1'"},
      {{"--destination-rate", "fast"},
       "--destination-rate: must be messages per second from 0 (no limit) to 1000000, got "
       "'fast'"},
      {{"--destination-rate", "nan"},
       "--destination-rate: must be messages per second from 0 (no limit) to 1000000, got "
       "'nan'"},
      {{"--destination-rate", "1000001"},
       "--destination-rate: must be messages per second from 0 (no limit) to 1000000, got "
       "'1000001'"},
      {{"--no-bdat=false"}, "--no-bdat: takes no value"},
      {{"--retry-first-delay", "0"}, "--retry-first-delay: " + kMs + "'0'"},
      {{"--retry-first-delay", "1500us"}, "--retry-first-delay: " + kMs + "'1500us'"},
      {{"--retry-first-delay", "25h"}, "--retry-first-delay: must be at most 24h, got '25h'"},
      {{"--retry-first-delay", "300"},
       "--retry-first-delay: '300' needs a unit (ns, us, ms, s, m or h)"},
      {{"--retry-factor", "0.5"}, "--retry-factor: must be a factor from 1 to 10, got '0.5'"},
      {{"--retry-factor", "11"}, "--retry-factor: must be a factor from 1 to 10, got '11'"},
      {{"--retry-max-delay", "2d"}, "--retry-max-delay: '2d': there is no day unit; write 48h"},
      {{"--retry-max-delay", "1.5d"},
       "--retry-max-delay: '1.5d': there is no day unit; write 36h"},
      {{"--retry-jitter", "0.6"}, "--retry-jitter: must be a share from 0 to 0.5, got '0.6'"},
      {{"--retry-jitter", "-0.1"}, "--retry-jitter: must be a share from 0 to 0.5, got '-0.1'"},
      {{"--max-queue-lifetime", "0"}, "--max-queue-lifetime: " + kMs + "'0'"},
      {{"--max-queue-lifetime", "2401h"},
       "--max-queue-lifetime: must be at most 2400h, got '2401h'"},
      {{"--max-queue-lifetime", "5d"},
       "--max-queue-lifetime: '5d': there is no day unit; write 120h"},
      {{"--max-queue-lifetime", "5x"},
       "--max-queue-lifetime: '5x': unknown unit 'x' (ns, us, ms, s, m or h)"},
      {{"--connect-timeout", "0"}, "--connect-timeout: " + kMs + "'0'"},
      {{"--delivery-timeout", "2h"}, "--delivery-timeout: must be at most 1h, got '2h'"},
      {{"--idle-timeout", "1500us"},
       "--idle-timeout: must be whole milliseconds, got '1500us'"},
      {{"--idle-timeout", "61m"}, "--idle-timeout: must be at most 1h, got '61m'"},
      {{"--throttle-pause", "5"}, "--throttle-pause: '5' needs a unit (ns, us, ms, s, m or h)"},
      {{"--max-received", "0"}, "--max-received: must be a count from 1 to 1000, got '0'"},
      {{"--max-received", "1001"}, "--max-received: must be a count from 1 to 1000, got '1001'"},
  };
  for (const Case& k : cases) {
    EXPECT_EQ(refusal(k.args), "ringmta-relay: " + k.err + "\n") << k.args[0] << " " << k.args.back();
  }
}

TEST(RelayDelivery, RetryMaxDelayIsNotShorterThanTheFirst) {
  // Each message names both settings, and points at the one that was given.
  EXPECT_EQ(refusal({"--retry-max-delay", "1m"}),
            "ringmta-relay: --retry-max-delay: must be at least retry-first-delay (5m), got 1m\n");
  EXPECT_EQ(refusal({"--retry-first-delay", "2h"}),
            "ringmta-relay: --retry-first-delay: must be at most retry-max-delay (4000s), got "
            "2h\n");
  EXPECT_EQ(refusal({"--retry-first-delay", "2m", "--retry-max-delay", "1m"}),
            "ringmta-relay: --retry-max-delay: must be at least retry-first-delay (2m), got 1m\n");
  const TomlFile f("retry-first-delay = \"10m\"\n\nretry-max-delay = \"9m\"\n");
  EXPECT_EQ(refusal({"--config", f.path()}),
            "ringmta-relay: " + f.path() +
                ":3:19: retry-max-delay: must be at least retry-first-delay (10m), got 9m\n");
  // Equal is fine, and a raised maximum makes room for a raised first delay.
  EXPECT_EQ(run({"--retry-first-delay", "4000s"}).rc, -1);
  EXPECT_EQ(run({"--retry-first-delay", "2h", "--retry-max-delay", "3h"}).rc, -1);
}

TEST(RelayDelivery, EveryKeySetsItsField) {
  const TomlFile f(R"(destination-concurrency = 7
messages-per-connection = 0
destination-rate = 12
bdat = false
transactions-in-flight = 64
retry-first-delay = "1s"
retry-factor = 1.5
retry-max-delay = "1h"
retry-jitter = 0
max-queue-lifetime = "48h"
connect-timeout = "250ms"
delivery-timeout = "1m"
idle-timeout = "0"
throttle-pause = "0s"
max-received = 1000
)");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  const Result flags = run({"--destination-concurrency", "7", "--messages-per-connection", "0",
                            "--destination-rate", "12", "--no-bdat", "--transactions-in-flight", "64",
                            "--retry-first-delay", "1s",
                            "--retry-factor", "1.5", "--retry-max-delay", "1h", "--retry-jitter",
                            "0", "--max-queue-lifetime", "48h", "--connect-timeout", "250ms",
                            "--delivery-timeout", "1m", "--idle-timeout", "0", "--throttle-pause",
                            "0s", "--max-received", "1000"});
  ASSERT_EQ(flags.rc, -1) << flags.err;
  EXPECT_EQ(r.cfg.delivery.policy.rate, 12.0);
  EXPECT_EQ(r.cfg.delivery.retry.lifetime_ms, 48u * 3'600'000u);
  EXPECT_TRUE(r.cfg.delivery == flags.cfg.delivery);
  EXPECT_TRUE(r.cfg == flags.cfg);
  // A flag overrides the file's key.
  const Result o = run({"--config", f.path(), "--destination-concurrency", "3"});
  ASSERT_EQ(o.rc, -1) << o.err;
  EXPECT_EQ(o.cfg.delivery.policy.concurrency, 3u);
  EXPECT_EQ(o.cfg.delivery.retry.first_delay_ms, 1'000u);
}

TEST(RelayRoute, TablesTakePrioritiesAndOverrides) {
  const TomlFile f(R"([[route]]
domain = "Example.TEST"
hops = [{ address = "127.0.0.1:2526", priority = 10 },
        { address = "[127.0.0.1]:2527", priority = 10 },
        { address = "[::1]:2528", priority = 5 }]
concurrency = 5
messages-per-connection = 0
rate = 2.5
bdat = false
transactions-in-flight = 2

[[route]]
domain = "*"
hops = ["127.0.0.1:2530", "127.0.0.1:2531"]
rate = 100

[[route]]
domain = "[IPv6:::1]"
hops = { address = "[::1]:25" }

[[route]]
domain = "*.b.test"
hops = ["127.0.0.1:1", { address = "127.0.0.1:2", priority = 0 }]
)");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  ASSERT_EQ(r.cfg.routes.size(), 4u);
  const Route& a = r.cfg.routes[0];
  EXPECT_EQ(a.domain, "example.test");
  EXPECT_EQ(texts(a.hops),
            (std::vector<std::string>{"127.0.0.1:2526", "127.0.0.1:2527", "[::1]:2528"}));
  EXPECT_EQ(a.priorities, (std::vector<std::uint32_t>{10, 10, 5}));
  EXPECT_EQ(a.concurrency, 5u);
  EXPECT_EQ(a.messages_per_connection, 0u);
  EXPECT_EQ(a.rate, 2.5);
  EXPECT_EQ(a.bdat, false);
  EXPECT_EQ(a.transactions_in_flight, 2u);
  const DeliveryPolicy p = a.policy(r.cfg.delivery.policy);
  EXPECT_EQ(p.transactions_in_flight, 2u);
  EXPECT_EQ(p.concurrency, 5u);
  EXPECT_EQ(p.messages_per_connection, 0u);
  EXPECT_EQ(p.rate, 2.5);
  EXPECT_FALSE(p.bdat);
  // Strings: failover in the order written; unset overrides stay unset (the global value).
  const Route& b = r.cfg.routes[1];
  EXPECT_EQ(b.priorities, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_FALSE(b.concurrency || b.messages_per_connection || b.bdat || b.transactions_in_flight);
  EXPECT_EQ(b.rate, 100.0);
  const DeliveryPolicy q = b.policy(r.cfg.delivery.policy);
  EXPECT_EQ(q.concurrency, 20u);
  EXPECT_EQ(q.messages_per_connection, 1000u);
  EXPECT_EQ(q.rate, 100.0);
  EXPECT_TRUE(q.bdat);
  EXPECT_EQ(q.transactions_in_flight, 8u);
  EXPECT_EQ(r.cfg.routes[2].domain, "[ipv6:::1]");
  EXPECT_EQ(texts(r.cfg.routes[2].hops), std::vector<std::string>{"[::1]:25"});
  // Mixed: a string's priority is its position, whatever the tables say.
  EXPECT_EQ(r.cfg.routes[3].priorities, (std::vector<std::uint32_t>{0, 0}));
  // The flag form is failover in the order written.
  const Result flag = run({"--route", "a.test=127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"});
  ASSERT_EQ(flag.rc, -1) << flag.err;
  EXPECT_EQ(flag.cfg.routes[0].priorities, (std::vector<std::uint32_t>{0, 1, 2}));
  // Routes differing only in a priority or an override are not equal.
  Route x = flag.cfg.routes[0];
  Route y = x;
  EXPECT_TRUE(x == y);
  y.priorities[2] = 1;
  EXPECT_FALSE(x == y);
  y = x;
  y.bdat = true;
  EXPECT_FALSE(x == y);
  y = x;
  y.transactions_in_flight = 3;
  EXPECT_FALSE(x == y);
  y = x;
  y.priorities.clear();  // missing priorities are the positions
  EXPECT_TRUE(x == y);
}

TEST(RelayAlias, FlagsAndTablesSetTheAliases) {
  const Result r = run({"--alias", "Info@Example.TEST=ann@example.test,Bob@Other.test",
                        "--alias", "@OLD.test=info@example.test", "--alias",
                        "a=b@x.test=c@x.test", "--alias", "x@[127.0.0.1]=y@[IPv6:::1]"});
  ASSERT_EQ(r.rc, -1) << r.err;
  ASSERT_EQ(r.cfg.aliases.size(), 4u);
  // Keys lower case, targets as written.
  EXPECT_EQ(r.cfg.aliases[0].address, "info@example.test");
  EXPECT_EQ(r.cfg.aliases[0].targets,
            (std::vector<std::string>{"ann@example.test", "Bob@Other.test"}));
  EXPECT_EQ(r.cfg.aliases[1].address, "@old.test");
  EXPECT_EQ(r.cfg.aliases[1].targets, std::vector<std::string>{"info@example.test"});
  // A local part may hold '=': the separator is the first '=' after the '@'.
  EXPECT_EQ(r.cfg.aliases[2].address, "a=b@x.test");
  EXPECT_EQ(r.cfg.aliases[2].targets, std::vector<std::string>{"c@x.test"});
  EXPECT_EQ(r.cfg.aliases[3].address, "x@[127.0.0.1]");

  const TomlFile f(R"(alias = ["Info@Example.TEST=ann@example.test,Bob@Other.test",
         { address = "@OLD.test", to = "info@example.test" }]

[[alias]]
address = "a=b@x.test"
to = ["c@x.test"]

[[alias]]
address = "x@[127.0.0.1]"
to = "y@[IPv6:::1]"
)");
  // toml++ refuses an [[alias]] after an inline alias array, so the tables go in a second file.
  const TomlFile g(R"([[alias]]
address = "Info@Example.TEST"
to = ["ann@example.test", "Bob@Other.test"]

[[alias]]
address = "@OLD.test"
to = "info@example.test"

[[alias]]
address = "a=b@x.test"
to = ["c@x.test"]

[[alias]]
address = "x@[127.0.0.1]"
to = "y@[IPv6:::1]"

[[alias]]
address = "\"quoted, local\"@x.test"
to = ["\"a,b\"@x.test", "d@x.test"]
)");
  const Result t = run({"--config", g.path()});
  ASSERT_EQ(t.rc, -1) << t.err;
  ASSERT_EQ(t.cfg.aliases.size(), 5u);
  EXPECT_TRUE(std::equal(r.cfg.aliases.begin(), r.cfg.aliases.end(), t.cfg.aliases.begin()));
  EXPECT_EQ(t.cfg.aliases[4].address, "\"quoted, local\"@x.test");
  EXPECT_EQ(t.cfg.aliases[4].targets,
            (std::vector<std::string>{"\"a,b\"@x.test", "d@x.test"}));
  // The flag list replaces the file's.
  const Result o = run({"--config", g.path(), "--alias", "z@x.test=y@x.test"});
  ASSERT_EQ(o.rc, -1) << o.err;
  ASSERT_EQ(o.cfg.aliases.size(), 1u);
  EXPECT_EQ(o.cfg.aliases[0].address, "z@x.test");
}

TEST(RelayAlias, StringsAndTablesMixInOneArray) {
  const TomlFile f(
      "alias = [\"a@x.test=b@y.test\", { address = \"@z.test\", to = \"c@y.test\" }]\n");
  const Result r = run({"--config", f.path()});
  ASSERT_EQ(r.rc, -1) << r.err;
  ASSERT_EQ(r.cfg.aliases.size(), 2u);
  EXPECT_EQ(r.cfg.aliases[0].address, "a@x.test");
  EXPECT_EQ(r.cfg.aliases[1].targets, std::vector<std::string>{"c@y.test"});
}

TEST(RelayAlias, EveryBadFlagIsRefusedWithItsReason) {
  const std::string kNotAlias =
      " is not an address to alias: write local@domain, or @domain for every address of a "
      "domain";
  const std::string kLong(65, 'l');
  struct Case {
    std::vector<std::string> args;
    std::string err;  // after "ringmta-relay: --alias: "
  };
  const std::vector<Case> cases = {
      {{"info@example.test"},
       "'info@example.test' is not an alias: write ADDRESS=TARGET[,TARGET...], e.g. "
       "info@example.test=someone@example.test"},
      {{"info=a@b.test"}, "'info'" + kNotAlias},
      {{"@bad_domain=a@b.test"}, "'@bad_domain'" + kNotAlias},
      {{"@=a@b.test"}, "'@'" + kNotAlias},
      {{"@*.b.test=a@b.test"}, "'@*.b.test'" + kNotAlias},
      {{"a@b.test@c=a@b.test"}, "'a@b.test@c'" + kNotAlias},
      {{"a@b.test="}, "'a@b.test=': no target after '='"},
      {{"a@b.test=c@d.test,"}, "'a@b.test=c@d.test,': target '' is not a mailbox local@domain (bad local part)"},
      {{"a@b.test=bad"}, "'a@b.test=bad': target 'bad' is not a mailbox local@domain"},
      {{"a@b.test=postmaster"},
       "'a@b.test=postmaster': target 'postmaster' is not a mailbox local@domain"},
      {{"a@b.test=@x.test"}, "'a@b.test=@x.test': target '@x.test' is not a mailbox local@domain"},
      {{"a@b.test=@r.test:c@d.test"},
       "'a@b.test=@r.test:c@d.test': target '@r.test:c@d.test' is not a mailbox local@domain"},
      {{"a@b.test=<c@d.test>"},
       "'a@b.test=<c@d.test>': target '<c@d.test>' is not a mailbox local@domain (bad local part)"},
      {{"a@b.test=c@d..test"},
       "'a@b.test=c@d..test': target 'c@d..test' is not a mailbox local@domain (bad domain)"},
      {{"a@b.test=.c@d.test"},
       "'a@b.test=.c@d.test': target '.c@d.test' is not a mailbox local@domain (bad local "
       "part)"},
      {{"a@b.test=" + kLong + "@d.test"},
       "'a@b.test=" + kLong + "@d.test': target '" + kLong +
           "@d.test' is not a mailbox local@domain (too long, RFC 5321 4.5.3.1)"},
      {{"a@b.test=\xff@d.test"},
       "'a@b.test=\xff@d.test': target '\xff@d.test' is not a mailbox local@domain "
       "(ill-formed UTF-8)"},
      {{"a@b.test=c@d.test,c@d.test"}, "'a@b.test=c@d.test,c@d.test': target 'c@d.test' is given "
                                        "twice"},
      {{"a@b.test=x@y.test", "A@B.TEST=z@y.test"}, "'a@b.test' has an alias already (addresses "
                                                    "ignore case)"},
      {{"@b.test=x@y.test", "@B.test=z@y.test"}, "'@b.test' has an alias already (addresses "
                                                  "ignore case)"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> args;
    for (const std::string& a : k.args) {
      args.push_back("--alias");
      args.push_back(a);
    }
    EXPECT_EQ(refusal(args), "ringmta-relay: --alias: " + k.err + "\n") << k.args[0];
  }
}

// A chain of n aliases a0@x.test -> a1@x.test -> ... -> a<n>@x.test.
std::vector<std::string> alias_chain(int n) {
  std::vector<std::string> args;
  for (int i = 0; i < n; ++i) {
    args.push_back("--alias");
    args.push_back("a" + std::to_string(i) + "@x.test=a" + std::to_string(i + 1) + "@x.test");
  }
  return args;
}

TEST(RelayAlias, CyclesDepthAndFanOutAreRefused) {
  EXPECT_EQ(refusal({"--alias", "a@x.test=b@x.test", "--alias", "b@x.test=a@x.test"}),
            "ringmta-relay: --alias: alias cycle: a@x.test -> b@x.test -> a@x.test\n");
  // Through a domain alias, with how to keep an address as it is.
  EXPECT_EQ(refusal({"--alias", "a@x.test=b@y.test", "--alias", "@y.test=a@x.test"}),
            "ringmta-relay: --alias: alias cycle: a@x.test -> b@y.test -> a@x.test (b@y.test: "
            "expanded by an @domain alias; an alias to itself delivers an address as it is)\n");
  EXPECT_EQ(refusal({"--alias", "@x.test=a@x.test,b@x.test"}),
            "ringmta-relay: --alias: alias cycle: a@x.test -> b@x.test -> a@x.test (a@x.test, "
            "b@x.test: expanded by an @domain alias; an alias to itself delivers an address as "
            "it is)\n");
  // ...which is the cure: each target aliased to itself.
  EXPECT_EQ(run({"--alias", "@x.test=a@x.test,b@x.test", "--alias", "a@x.test=a@x.test",
                 "--alias", "b@x.test=b@x.test"})
                .rc,
            -1);
  // An address that expands to itself (keep a copy) is not a cycle; nor is a diamond.
  EXPECT_EQ(run({"--alias", "a@x.test=a@x.test,b@x.test"}).rc, -1);
  EXPECT_EQ(run({"--alias", "a@x.test=b@x.test,c@x.test", "--alias", "b@x.test=d@x.test",
                 "--alias", "c@x.test=d@x.test"})
                .rc,
            -1);
  // A longer cycle, named from where it closes; keys ignore case.
  EXPECT_EQ(refusal({"--alias", "s@x.test=a@x.test", "--alias", "a@x.test=B@x.test", "--alias",
                     "b@x.test=c@x.test", "--alias", "c@x.test=A@X.TEST"}),
            "ringmta-relay: --alias: alias cycle: a@x.test -> B@x.test -> c@x.test -> "
            "A@X.TEST\n");
  // Ten aliases in a chain are fine, eleven are not.
  EXPECT_EQ(run(alias_chain(10)).rc, -1);
  EXPECT_EQ(refusal(alias_chain(11)),
            "ringmta-relay: --alias: aliases nested deeper than 10: a0@x.test -> a1@x.test -> "
            "a2@x.test -> a3@x.test -> a4@x.test -> a5@x.test -> a6@x.test -> a7@x.test -> "
            "a8@x.test -> a9@x.test -> a10@x.test\n");
  // 1000 final recipients are fine, 1001 are not (counted after expansion and dedup).
  const auto fan_out = [](int groups, int each, const std::string& extra) {
    std::vector<std::string> args;
    std::string top = "all@x.test=";
    for (int g = 0; g < groups; ++g) {
      top += (g > 0 ? "," : "") + ("g" + std::to_string(g) + "@x.test");
      std::string list = "g" + std::to_string(g) + "@x.test=";
      for (int i = 0; i < each; ++i) {
        list += (i > 0 ? "," : "") + ("u" + std::to_string(g * each + i) + "@y.test");
      }
      list += ",u0@Y.TEST";  // a duplicate (domains ignore case) counts once
      args.insert(args.end(), {"--alias", list});
    }
    args.insert(args.begin(), {"--alias", top + extra});
    return args;
  };
  EXPECT_EQ(run(fan_out(10, 100, "")).rc, -1);
  EXPECT_EQ(refusal(fan_out(10, 100, ",last@y.test")),
            "ringmta-relay: --alias: 'all@x.test' expands to more than 1000 recipients\n");
}

TEST(RelayAliasToml, ErrorsNameTheFileLineColumnAndKey) {
  struct Case {
    const char* toml;
    std::string err;  // after "ringmta-relay: FILE:"
  };
  const std::string kA = "[[alias]]\naddress = \"info@x.test\"\n";
  const std::string kR = "[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\"]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Delivery keys.
      {"destination-concurrency = 0\n",
       "1:27: destination-concurrency: must be a connection count from 1 to 10000, got 0"},
      {"messages-per-connection = \"1000\"\n",
       "1:27: messages-per-connection: must be a message count from 0 (no limit) to 10000000, "
       "not a string"},
      {"destination-rate = \"1/s\"\n",
       "1:20: destination-rate: must be messages per second from 0 (no limit) to 1000000, not a "
       "string"},
      {"\nbdat = \"no\"\n", "2:8: bdat: must be true or false, not a string"},
      {"retry-factor = 0.5\n", "1:16: retry-factor: must be a factor from 1 to 10, got 0.5"},
      {"retry-jitter = 1\n", "1:16: retry-jitter: must be a share from 0 to 0.5, got 1"},
      {"max-queue-lifetime = \"5d\"\n",
       "1:22: max-queue-lifetime: '5d': there is no day unit; write 120h"},
      {"idle-timeout = 0\n",
       "1:16: idle-timeout: must be a duration with a unit, such as \"500us\", \"5ms\" or \"1s\", "
       "not an integer"},
      {"connect-timeout = \"0s\"\n",
       "1:19: connect-timeout: must be whole milliseconds, at least 1ms, got \"0s\""},
      {"max-received = 0\n", "1:16: max-received: must be a count from 1 to 1000, got 0"},
      {"retry-first-delay = \"2h\"\n",
       "1:21: retry-first-delay: must be at most retry-max-delay (4000s), got 2h"},
      // Route overrides and hops with priorities.
      {kR + "concurrency = 0\n",
       "4:15: concurrency: must be a connection count from 1 to 10000, got 0"},
      {kR + "messages-per-connection = 1.5\n",
       "4:27: messages-per-connection: must be a message count from 0 (no limit) to 10000000, "
       "not a floating-point number"},
      {kR + "rate = -1\n",
       "4:8: rate: must be messages per second from 0 (no limit) to 1000000, got -1"},
      {kR + "bdat = 1\n", "4:8: bdat: must be true or false, not an integer"},
      {kR + "destination-rate = 1\n",
       "4:1: destination-rate: unknown [[route]] key (a route has domain, hops, and the "
       "overrides concurrency, messages-per-connection, rate, bdat, transactions-in-flight "
       "and tls)"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ address = \"127.0.0.1:1\", priority = -1 }]\n",
       "3:47: priority: must be a priority from 0 to 65535 (lower is tried first), got -1"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ address = \"127.0.0.1:1\", priority = 65536 }]\n",
       "3:47: priority: must be a priority from 0 to 65535 (lower is tried first), got 65536"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ priority = 1 }]\n",
       "3:9: hops: needs address = \"HOST:PORT\""},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ address = \"127.0.0.1:1\", weight = 1 }]\n",
       "3:36: weight: unknown hop key (a hop has address and priority)"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ address = \"localhost:1\" }]\n",
       "3:21: address: 'localhost:1': not a numeric IPv4 address (IPv6 goes in brackets; no host "
       "names)"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [{ address = 1 }]\n",
       "3:21: address: must be a hop \"HOST:PORT\", not an integer"},
      {"[[route]]\ndomain = \"a.test\"\nhops = [\"127.0.0.1:1\",\n"
       "        { address = \"[127.0.0.1]:1\", priority = 5 }]\n",
       "4:21: address: hop 127.0.0.1:1 is given twice"},
      {"[[route]]\ndomain = \"[127.0.0.1]\"\nhops = [\"127.0.0.1:1\"]\n"
       "[[route]]\ndomain = \"[127.0.0.1]\"\nhops = [\"127.0.0.1:2\"]\n",
       "5:10: domain: '[127.0.0.1]' has a route already (names ignore case)"},
      // Aliases.
      {"[[alias]]\naddress = \"info\"\nto = [\"a@b.test\"]\n",
       "2:11: address: 'info' is not an address to alias: write local@domain, or @domain for "
       "every address of a domain"},
      {"[[alias]]\naddress = 5\nto = [\"a@b.test\"]\n",
       "2:11: address: must be an address \"info@example.test\" or \"@example.test\", not an "
       "integer"},
      {kA + "to = [\"a@b.test\", \"bad\"]\n", "3:19: to: 'bad' is not a mailbox local@domain"},
      {kA + "to = [\"a@b.test\", \"a@b.test\"]\n", "3:19: to: 'a@b.test' is given twice"},
      {kA + "to = []\n", "3:6: to: must name at least one mailbox"},
      {kA + "to = [1]\n", "3:7: to: must be a mailbox \"someone@example.test\", not an integer"},
      {"[[alias]]\nto = \"a@b.test\"\n",
       "1:1: [[alias]]: needs address = \"info@example.test\" (\"@example.test\": every address "
       "of the domain)"},
      {"\n" + kA, "2:1: [[alias]]: needs to = [\"someone@example.test\", ...]"},
      {kA + "to = \"a@b.test\"\nfrom = \"x@y.test\"\n",
       "4:1: from: unknown [[alias]] key (an alias has address and to)"},
      {kA + "to = \"a@b.test\"\n[[alias]]\naddress = \"INFO@x.test\"\nto = \"c@d.test\"\n",
       "5:11: address: 'info@x.test' has an alias already (addresses ignore case)"},
      {"[[alias]]\naddress = \"a@x.test\"\nto = \"b@x.test\"\n"
       "[[alias]]\naddress = \"b@x.test\"\nto = \"a@x.test\"\n",
       "2:11: address: alias cycle: a@x.test -> b@x.test -> a@x.test"},
      // The first alias whose expansion fails is named: here the second one.
      {"[[alias]]\naddress = \"z@x.test\"\nto = \"q@x.test\"\n"
       "[[alias]]\naddress = \"a@x.test\"\nto = \"b@x.test\"\n"
       "[[alias]]\naddress = \"b@x.test\"\nto = [\"c@x.test\", \"a@x.test\"]\n",
       "5:11: address: alias cycle: a@x.test -> b@x.test -> a@x.test"},
      {"alias = [\"a@x.test=b@x.test\", \"b@x.test=a@x.test\"]\n",
       "1:10: alias: alias cycle: a@x.test -> b@x.test -> a@x.test"},
      {"[alias]\naddress = \"a@x.test\"\n",
       "1:1: alias: must be [[alias]] tables or \"ADDRESS=TARGET\" strings, not a table: write "
       "[[alias]]"},
      {"alias = [5]\n",
       "1:10: alias: must be an alias \"ADDRESS=TARGET[,TARGET...]\" or an [[alias]] table, not "
       "an integer"},
      {"alias = [\"a@x.test\"]\n",
       "1:10: alias: 'a@x.test' is not an alias: write ADDRESS=TARGET[,TARGET...], e.g. "
       "info@example.test=someone@example.test"},
      // Unknown keys, with a hint where one helps.
      {"aliases = []\n", "1:1: aliases: unknown key (write [[alias]] tables)"},
      {"no-bdat = true\n", "1:1: no-bdat: unknown key (write bdat = false)"},
      {"virtual_alias_maps = \"hash:/etc/postfix/virtual\"\n",
       "1:1: virtual_alias_maps: unknown key (Postfix's virtual_alias_maps is [[alias]] here)"},
      {"maximal_queue_lifetime = \"5d\"\n",
       "1:1: maximal_queue_lifetime: unknown key (Postfix's maximal_queue_lifetime is "
       "max-queue-lifetime here)"},
      {"default_destination_concurrency_limit = 20\n",
       "1:1: default_destination_concurrency_limit: unknown key (Postfix's "
       "default_destination_concurrency_limit is destination-concurrency here)"},
      {"retry_factor = 2\n", "1:1: retry_factor: unknown key (did you mean 'retry-factor'?)"},
  };
  for (const auto& [toml, want] : cases) {
    const TomlFile f(toml);
    const std::string err = refusal({"--config", f.path()});
    EXPECT_EQ(err, "ringmta-relay: " + f.path() + ":" + want + "\n") << toml;
  }
}

TEST(RelayConfigPrint, DeliveryRoutesAndAliasesReadBack) {
  const TomlFile f(R"(destination-concurrency = 3
messages-per-connection = 0
destination-rate = 0.25
bdat = false
retry-first-delay = "1500ms"
retry-factor = 1.25
retry-max-delay = "90m"
retry-jitter = 0.5
max-queue-lifetime = "1ms"
connect-timeout = "1ms"
delivery-timeout = "1h"
idle-timeout = "0"
throttle-pause = "250ms"
max-received = 7

[[route]]
domain = "Example.TEST"
hops = [{ address = "127.0.0.1:2526", priority = 10 }, { address = "[::1]:2527", priority = 10 },
        { address = "127.0.0.1:2528", priority = 0 }]
concurrency = 5
messages-per-connection = 10
rate = 1000000
bdat = true

[[route]]
domain = "*"
hops = ["127.0.0.1:2587"]
rate = 1.5

[[route]]
domain = "[127.0.0.1]"
hops = ["127.0.0.1:2529"]

[[alias]]
address = "Info@Example.test"
to = ["ann@example.test", "Bob@Other.TEST", "\"a \\\" b\"@example.test"]

[[alias]]
address = "@old.test"
to = "info@example.test"
)");
  const Result direct = run({"--config", f.path()});
  ASSERT_EQ(direct.rc, -1) << direct.err;
  const Result printed = run({"--config", f.path(), "--print-config"});
  ASSERT_EQ(printed.rc, 0) << printed.err;
  for (const char* s : {
           "destination-rate = 0.25  # messages per second; 0 = no limit\n",
           "retry-first-delay = \"1500ms\"\n",
           "retry-factor = 1.25\n",
           "retry-max-delay = \"90m\"\n",
           "max-queue-lifetime = \"1ms\"\n",
           "idle-timeout = \"0s\"  # 0 = close at once\n",
           "bdat = false\n",
           "\n[[route]]\ndomain = \"example.test\"\nhops = [\n"
           "  { address = \"127.0.0.1:2526\", priority = 10 },\n"
           "  { address = \"[::1]:2527\", priority = 10 },\n"
           "  { address = \"127.0.0.1:2528\", priority = 0 },\n]\n"
           "concurrency = 5\nmessages-per-connection = 10\nrate = 1000000\nbdat = true\n",
           // Only the overrides that were given.
           "\n[[route]]\ndomain = \"*\"\nhops = [\"127.0.0.1:2587\"]\nrate = 1.5\n\n",
           "\n[[route]]\ndomain = \"[127.0.0.1]\"\nhops = [\"127.0.0.1:2529\"]\n\n",
           "\n[[alias]]\naddress = \"info@example.test\"\n"
           "to = [\"ann@example.test\", \"Bob@Other.TEST\", \"\\\"a \\\\\\\" b\\\"@example.test\"]\n",
           "\n[[alias]]\naddress = \"@old.test\"\nto = [\"info@example.test\"]\n"}) {
    EXPECT_NE(printed.out.find(s), std::string::npos) << "missing: " << s << "\n" << printed.out;
  }
  EXPECT_EQ(printed.out.find("# No [[alias]]"), std::string::npos);
  const TomlFile back_file(printed.out);
  const Result back = run({"--config", back_file.path()});
  ASSERT_EQ(back.rc, -1) << back.err << "\n" << printed.out;
  EXPECT_TRUE(back.cfg == direct.cfg) << printed.out;
  const Result again = run({"--config", back_file.path(), "--print-config"});
  EXPECT_EQ(again.out, printed.out);
  // The comparison sees what it is meant to.
  RelayConfig other = direct.cfg;
  other.aliases[0].targets.pop_back();
  EXPECT_FALSE(other == direct.cfg);
  other = direct.cfg;
  other.delivery.retry.jitter = 0.25;
  EXPECT_FALSE(other == direct.cfg);
  other = direct.cfg;
  other.routes[1].rate.reset();
  EXPECT_FALSE(other == direct.cfg);
}

TEST(RelayConfigPrint, DeliveryFlagsAndAliasFlagsReadBack) {
  const std::vector<std::string> args = {
      "--destination-concurrency", "10000", "--destination-rate", "3.75", "--no-bdat",
      "--retry-first-delay", "24h", "--retry-max-delay", "24h", "--max-queue-lifetime", "2400h",
      "--retry-factor", "10", "--retry-jitter", "0.125", "--idle-timeout", "1h",
      "--route", "*=127.0.0.1:2587,[::1]:2588",
      "--alias", "a@x.test=a@x.test,b@y.test", "--alias", "@z.test=a@x.test"};
  const Result direct = run(args);
  ASSERT_EQ(direct.rc, -1) << direct.err;
  std::vector<std::string> print = args;
  print.push_back("--print-config");
  const Result printed = run(print);
  ASSERT_EQ(printed.rc, 0) << printed.err;
  const TomlFile f(printed.out);
  const Result back = run({"--config", f.path()});
  ASSERT_EQ(back.rc, -1) << back.err << "\n" << printed.out;
  EXPECT_TRUE(back.cfg == direct.cfg) << printed.out;
  EXPECT_NE(printed.out.find("max-queue-lifetime = \"2400h\"\n"), std::string::npos);
  EXPECT_NE(printed.out.find("retry-jitter = 0.125\n"), std::string::npos);
}

// ---- Networks --------------------------------------------------------------------------------

TEST(RelayNetwork, ParsesIPv4AndIPv6WithOrWithoutAPrefix) {
  EXPECT_EQ(network("127.0.0.0/8").to_string(), "127.0.0.0/8");
  EXPECT_EQ(network("10.1.2.3").to_string(), "10.1.2.3/32");
  EXPECT_EQ(network("10.1.2.3/32").to_string(), "10.1.2.3/32");
  EXPECT_EQ(network("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(network("::1").to_string(), "::1/128");
  EXPECT_EQ(network("::1/128").to_string(), "::1/128");
  EXPECT_EQ(network("[::1]/128").to_string(), "::1/128");  // Postfix's form
  EXPECT_EQ(network("2001:DB8::/32").to_string(), "2001:db8::/32");
  EXPECT_EQ(network("::/0").to_string(), "::/0");
  EXPECT_EQ(network("::ffff:10.0.0.0/104").to_string(), "::ffff:10.0.0.0/104");
  EXPECT_EQ(network("10.0.0.0/08").to_string(), "10.0.0.0/8");
  const Network n = network("192.168.0.0/16");
  EXPECT_FALSE(n.v6);
  EXPECT_EQ(n.prefix, 16u);
  EXPECT_TRUE(network("fe80::/10").v6);
  // Equal networks compare equal however they were written.
  EXPECT_TRUE(network("[::1]") == network("0:0::1/128"));
  EXPECT_FALSE(network("10.0.0.0/8") == network("10.0.0.0/9"));
}

TEST(RelayNetwork, RefusesWithAPreciseReason) {
  EXPECT_EQ(network_refusal("10.1.2.3/8"),
            "'10.1.2.3/8': the address has bits set beyond the /8 prefix; the network is "
            "10.0.0.0/8");
  EXPECT_EQ(network_refusal("10.0.0.1/31"),
            "'10.0.0.1/31': the address has bits set beyond the /31 prefix; the network is "
            "10.0.0.0/31");
  EXPECT_EQ(network_refusal("1.0.0.0/0"),
            "'1.0.0.0/0': the address has bits set beyond the /0 prefix; the network is "
            "0.0.0.0/0");
  EXPECT_EQ(network_refusal("fe80::1/10"),
            "'fe80::1/10': the address has bits set beyond the /10 prefix; the network is "
            "fe80::/10");
  EXPECT_EQ(network_refusal("2001:db8:8000::/32"),
            "'2001:db8:8000::/32': the address has bits set beyond the /32 prefix; the network "
            "is 2001:db8::/32");
  EXPECT_EQ(network("2001:db8:8000::/33").to_string(), "2001:db8:8000::/33");
  EXPECT_EQ(network_refusal("10.0.0.0/33"),
            "'10.0.0.0/33': the prefix length must be a number from 0 to 32 for IPv4");
  EXPECT_EQ(network_refusal("::/129"),
            "'::/129': the prefix length must be a number from 0 to 128 for IPv6");
  for (const char* p :
       {"10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8", "10.0.0.0/1000"}) {
    EXPECT_EQ(network_refusal(p), "'" + std::string(p) +
                                      "': the prefix length must be a number from 0 to 32 for "
                                      "IPv4");
  }
  const std::string not_network =
      " is not a network: an IPv4 or IPv6 address with an optional /PREFIX, such as 10.0.0.0/8 "
      "or ::1/128 (numeric, no host names)";
  for (const char* t : {"", "/8", "localhost", "10.1/16", "10.0.0.256", "010.0.0.1", "10.0.0.0 /8",
                        "fe80::1%eth0", "[10.0.0.0/8]", "::1]"}) {
    EXPECT_EQ(network_refusal(t), "'" + std::string(t) + "'" + not_network) << t;
  }
  Network keep = network("192.0.2.0/24");
  EXPECT_FALSE(Network::parse("bad", keep, nullptr));  // no reason wanted: no crash
  EXPECT_EQ(keep.to_string(), "192.0.2.0/24");         // and out is left alone
}

TEST(RelayNetwork, ContainsIPv4) {
  const Network n = network("127.0.0.0/8");
  EXPECT_TRUE(n.contains(address("127.0.0.1:1")));
  EXPECT_TRUE(n.contains(address("127.255.255.255:1")));
  EXPECT_FALSE(n.contains(address("128.0.0.1:1")));
  EXPECT_FALSE(n.contains(address("126.255.255.255:1")));
  const Network host = network("192.0.2.7");  // /32
  EXPECT_TRUE(host.contains(address("192.0.2.7:25")));
  EXPECT_FALSE(host.contains(address("192.0.2.6:25")));
  EXPECT_FALSE(host.contains(address("192.0.2.8:25")));
  // A prefix that is not a whole number of bytes.
  const Network odd = network("10.0.0.0/9");
  EXPECT_TRUE(odd.contains(address("10.127.255.255:1")));
  EXPECT_FALSE(odd.contains(address("10.128.0.0:1")));
  const Network all = network("0.0.0.0/0");
  EXPECT_TRUE(all.contains(address("0.0.0.0:1")));
  EXPECT_TRUE(all.contains(address("255.255.255.255:1")));
  // IPv6 clients are not in an IPv4 network, unless IPv4-mapped.
  EXPECT_FALSE(all.contains(address("[::1]:1")));
  EXPECT_FALSE(all.contains(address("[2001:db8::1]:1")));
  EXPECT_FALSE(n.contains(address("[::127.0.0.1]:1")));  // IPv4-compatible is not mapped
  EXPECT_FALSE(n.contains(io::SocketAddress{}));         // no family
}

TEST(RelayNetwork, ContainsIPv6) {
  const Network loop = network("::1/128");
  EXPECT_TRUE(loop.contains(address("[::1]:25")));
  EXPECT_FALSE(loop.contains(address("[::2]:25")));
  EXPECT_FALSE(loop.contains(address("127.0.0.1:25")));
  const Network doc = network("2001:db8::/32");
  EXPECT_TRUE(doc.contains(address("[2001:db8::1]:25")));
  EXPECT_TRUE(doc.contains(address("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:25")));
  EXPECT_FALSE(doc.contains(address("[2001:db9::]:25")));
  const Network link = network("fe80::/10");
  EXPECT_TRUE(link.contains(address("[febf::1]:25")));
  EXPECT_FALSE(link.contains(address("[fec0::1]:25")));
  const Network all = network("::/0");
  EXPECT_TRUE(all.contains(address("[::]:25")));
  EXPECT_TRUE(all.contains(address("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:25")));
  EXPECT_TRUE(all.contains(address("192.0.2.1:25")));  // as ::ffff:192.0.2.1
}

TEST(RelayNetwork, MappedAddressesMatchIPv4NetworksAndBack) {
  // A dual-stack listener ([::]:port) reports IPv4 clients as ::ffff:a.b.c.d.
  const Network loop4 = network("127.0.0.0/8");
  EXPECT_TRUE(loop4.contains(address("[::ffff:127.0.0.1]:1")));
  EXPECT_FALSE(loop4.contains(address("[::ffff:128.0.0.1]:1")));
  EXPECT_TRUE(network("0.0.0.0/0").contains(address("[::ffff:8.8.8.8]:1")));
  EXPECT_TRUE(network("192.0.2.1").contains(address("[::ffff:192.0.2.1]:1")));
  EXPECT_FALSE(network("192.0.2.1").contains(address("[::ffff:192.0.2.2]:1")));
  EXPECT_FALSE(network("192.0.2.1").contains(address("[::fffe:192.0.2.1]:1")));
  // And an IPv6 network written in the mapped form holds the IPv4 addresses it maps.
  const Network mapped = network("::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.contains(address("10.1.2.3:1")));
  EXPECT_TRUE(mapped.contains(address("[::ffff:10.1.2.3]:1")));
  EXPECT_FALSE(mapped.contains(address("11.0.0.1:1")));
  EXPECT_TRUE(network("::ffff:0.0.0.0/96").contains(address("203.0.113.9:1")));
}

TEST(RelayNetwork, DefaultsHoldLoopbackOnly) {
  const RelayConfig c;
  const auto relays = [&](const std::string& a) {
    return std::any_of(c.relay_networks.begin(), c.relay_networks.end(),
                       [&](const Network& n) { return n.contains(address(a)); });
  };
  EXPECT_TRUE(relays("127.0.0.1:1"));
  EXPECT_TRUE(relays("127.1.2.3:1"));
  EXPECT_TRUE(relays("[::1]:1"));
  EXPECT_TRUE(relays("[::ffff:127.0.0.1]:1"));
  EXPECT_FALSE(relays("10.0.0.1:1"));
  EXPECT_FALSE(relays("[::2]:1"));
  EXPECT_FALSE(relays("[2001:db8::1]:1"));
}

// ---- Routes and domain patterns --------------------------------------------------------------

TEST(RelayRoute, ParsesDomainsAndHops) {
  Route r;
  std::string why;
  ASSERT_TRUE(Route::parse("Example.TEST=127.0.0.1:2526", r, &why)) << why;
  EXPECT_EQ(r.domain, "example.test");
  EXPECT_EQ(texts(r.hops), std::vector<std::string>{"127.0.0.1:2526"});

  ASSERT_TRUE(Route::parse("*=127.0.0.1:1,[::1]:2,[127.0.0.2]:3", r, &why)) << why;
  EXPECT_EQ(r.domain, "*");
  EXPECT_EQ(texts(r.hops), (std::vector<std::string>{"127.0.0.1:1", "[::1]:2", "127.0.0.2:3"}));

  ASSERT_TRUE(Route::parse("*.Sub.Example=127.0.0.1:1", r, &why)) << why;
  EXPECT_EQ(r.domain, "*.sub.example");

  // Address literals, kept as text (lower case) for the router.
  ASSERT_TRUE(Route::parse("[127.0.0.1]=127.0.0.1:2525", r, &why)) << why;
  EXPECT_EQ(r.domain, "[127.0.0.1]");
  ASSERT_TRUE(Route::parse("[IPv6:::1]=[::1]:2525", r, &why)) << why;
  EXPECT_EQ(r.domain, "[ipv6:::1]");
  EXPECT_EQ(texts(r.hops), std::vector<std::string>{"[::1]:2525"});

  // to_string reads back.
  for (const char* t :
       {"a.test=127.0.0.1:1,[::1]:2", "*=127.0.0.1:25", "[127.0.0.1]=10.0.0.1:25"}) {
    ASSERT_TRUE(Route::parse(t, r, &why)) << why;
    EXPECT_EQ(r.to_string(), t);
    Route back;
    ASSERT_TRUE(Route::parse(r.to_string(), back, &why)) << why;
    EXPECT_TRUE(back == r);
  }
}

TEST(RelayRoute, RefusesWithAPreciseReason) {
  EXPECT_EQ(route_refusal("a.test"),
            "'a.test' is not a route: write DOMAIN=HOST:PORT[,HOST:PORT...], e.g. "
            "*=127.0.0.1:2526");
  EXPECT_EQ(route_refusal("a.test="), "'a.test=': no hop HOST:PORT after '='");
  EXPECT_EQ(route_refusal("=127.0.0.1:1"),
            "'' is not a route domain (a domain, *.example.test for its sub-domains, * for every "
            "other domain, or an address literal such as [127.0.0.1])");
  EXPECT_EQ(route_refusal("*.=127.0.0.1:1"),
            "'*.' is not a route domain (a domain, *.example.test for its sub-domains, * for "
            "every other domain, or an address literal such as [127.0.0.1])");
  EXPECT_EQ(route_refusal("a..test=127.0.0.1:1"),
            "'a..test' is not a route domain (a domain, *.example.test for its sub-domains, * "
            "for every other domain, or an address literal such as [127.0.0.1])");
  EXPECT_EQ(route_refusal("[1.2.3]=127.0.0.1:1"),
            "'[1.2.3]' is not an address literal (such as [127.0.0.1] or [IPv6:::1])");
  EXPECT_EQ(route_refusal("a.test=127.0.0.1:1,"),
            "'a.test=127.0.0.1:1,': hop '': expected HOST:PORT");
  EXPECT_EQ(route_refusal("a.test=127.0.0.1"),
            "'a.test=127.0.0.1': hop '127.0.0.1': expected HOST:PORT");
  EXPECT_EQ(route_refusal("a.test=127.0.0.1:99999"),
            "'a.test=127.0.0.1:99999': hop '127.0.0.1:99999': port out of range");
  EXPECT_EQ(route_refusal("a.test=127.0.0.1:0"),
            "'a.test=127.0.0.1:0': hop '127.0.0.1:0': port 0 cannot be connected to");
  EXPECT_EQ(route_refusal("a.test=::1:25"),
            "'a.test=::1:25': hop '::1:25': not a numeric IPv4 address (IPv6 goes in brackets; "
            "no host names)");
  EXPECT_EQ(route_refusal("a.test=mx.a.test:25"),
            "'a.test=mx.a.test:25': hop 'mx.a.test:25': not a numeric IPv4 address (IPv6 goes "
            "in brackets; no host names)");
  EXPECT_EQ(route_refusal("a.test=[mx.a.test]:25"),
            "'a.test=[mx.a.test]:25': hop '[mx.a.test]:25': not a numeric IPv4 address (IPv6 "
            "goes in brackets; no host names)");
  EXPECT_EQ(route_refusal("a.test=127.0.0.1:1,[127.0.0.1]:1"),
            "'a.test=127.0.0.1:1,[127.0.0.1]:1': hop 127.0.0.1:1 is given twice");
}

TEST(RelayDomain, PatternsMatchAsDocumented) {
  EXPECT_TRUE(domain_matches("example.test", "example.test"));
  EXPECT_TRUE(domain_matches("example.test", "Example.TEST"));
  EXPECT_FALSE(domain_matches("example.test", "a.example.test"));
  EXPECT_FALSE(domain_matches("example.test", "xexample.test"));
  EXPECT_FALSE(domain_matches("example.test", "example.tes"));
  EXPECT_TRUE(domain_matches("*.example.test", "a.example.test"));
  EXPECT_TRUE(domain_matches("*.example.test", "A.B.Example.Test"));
  EXPECT_FALSE(domain_matches("*.example.test", "example.test"));
  EXPECT_FALSE(domain_matches("*.example.test", "xexample.test"));
  EXPECT_FALSE(domain_matches("*.example.test", ".example.test"));
  EXPECT_TRUE(domain_matches("*", "anything.test"));
  EXPECT_TRUE(domain_matches("[127.0.0.1]", "[127.0.0.1]"));
}

// ---- core/config helpers (their first user; tests/unit/config once the sink and loadgen use
// them too) -------------------------------------------------------------------------------------

TEST(TomlValue, DurationsBareOrWithUnits) {
  std::uint64_t ns = 0;
  std::string why;
  ASSERT_TRUE(config::parse_duration_ns("1.5s", ns, why));
  EXPECT_EQ(ns, 1'500'000'000u);
  ASSERT_TRUE(config::parse_duration_ns("10", ns, why));  // bare seconds by default
  EXPECT_EQ(ns, 10'000'000'000u);
  EXPECT_FALSE(config::parse_duration_ns("10", ns, why, config::BareNumber::refused));
  EXPECT_EQ(why, "'10' needs a unit (ns, us, ms, s, m or h)");
  ASSERT_TRUE(config::parse_duration_ns("0", ns, why, config::BareNumber::refused));
  EXPECT_EQ(ns, 0u);  // zero is zero in any unit
  EXPECT_FALSE(config::parse_duration_ns("10x", ns, why));
  EXPECT_EQ(why, "'10x': unknown unit 'x' (ns, us, ms, s, m or h; none means seconds)");
  EXPECT_FALSE(config::parse_duration_ns("x", ns, why));
  EXPECT_EQ(why,
            "'x' is not a duration (a number and a unit: 250us, 5ms, 1.5s, 2m, 1h; or "
            "seconds)");
  EXPECT_EQ(config::format_duration_ns(0), "0s");
  EXPECT_EQ(config::format_duration_ns(1'500'000), "1500us");
  EXPECT_EQ(config::format_duration_ns(300'000'000'000), "5m");
  EXPECT_EQ(config::format_duration_ns(1), "1ns");
}

TEST(TomlValue, SizesWithUnits) {
  std::uint64_t n = 0;
  ASSERT_TRUE(config::parse_size("64M", n));
  EXPECT_EQ(n, 64u << 20);
  ASSERT_TRUE(config::parse_size("2g", n));
  EXPECT_EQ(n, std::uint64_t{2} << 30);
  ASSERT_TRUE(config::parse_size("0", n));
  EXPECT_EQ(n, 0u);
  for (const char* bad : {"", "K", "1.5M", "-1", "1T", "1 M", "1048577G"}) {
    EXPECT_FALSE(config::parse_size(bad, n)) << bad;
  }
  EXPECT_EQ(config::format_size(0), "0");
  EXPECT_EQ(config::format_size(1000), "1000");
  EXPECT_EQ(config::format_size(1024), "1K");
  EXPECT_EQ(config::format_size(35u << 20), "35M");
  EXPECT_EQ(config::format_size(std::uint64_t{3} << 30), "3G");
  EXPECT_EQ(config::format_size((1u << 20) + 1), "1048577");
  EXPECT_EQ(config::toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
}

}  // namespace
}  // namespace ringmta::relay
