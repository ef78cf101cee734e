// The /metrics endpoint: a plain-socket HTTP client scrapes an exporter started on port 0, and
// bad or busy addresses are refused with a message that says why.
#include "core/metrics/exporter.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "core/metrics/metrics_registry.hpp"
#include "tests/unit/metrics/test_metrics.hpp"

namespace ringmta::metrics {
namespace {

using M = test_lists::TestMetrics;

// One HTTP/1.0 GET over loopback; returns the whole response (headers and body).
std::string http_get(std::uint16_t port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket");
  timeval timeout{5, 0};  // a hung exporter fails the test instead of blocking it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("connect");
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    throw std::runtime_error("send");
  }
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return response;
}

std::string start_error(const std::string& address) {
  try {
    start_exporter(address);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(started)";
}

TEST(MetricsExporter, ServesRegistriesOnAnEphemeralPort) {
  auto registry = MetricsRegistry::create<M>();
  ThreadMetrics t = registry->attach_thread();
  t.inc(M::events_total, 42);
  t.inc(M::replies_total[M::replies_total_class::tempfail], 7);

  auto exporter = start_exporter("127.0.0.1:0", {registry});
  ASSERT_NE(exporter->port(), 0);
  EXPECT_EQ(exporter->address(), "127.0.0.1:" + std::to_string(exporter->port()));

  const std::string response = http_get(exporter->port(), "/metrics");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_NE(response.find("Content-Type: text/plain"), std::string::npos) << response;
  EXPECT_NE(response.find("\n# TYPE ringmta_test_events_total counter\n"), std::string::npos);
  EXPECT_NE(response.find("\nringmta_test_events_total 42\n"), std::string::npos) << response;
  EXPECT_NE(response.find("\nringmta_test_replies_total{class=\"tempfail\"} 7\n"),
            std::string::npos)
      << response;

  // A scrape sees increments made after the previous one.
  t.inc(M::events_total);
  EXPECT_NE(http_get(exporter->port(), "/metrics").find("\nringmta_test_events_total 43\n"),
            std::string::npos);
  // More lists can be served by the same endpoint.
  exporter->add(MetricsRegistry::create<test_lists::SinkMetrics>());
  // The registry stays alive through the exporter, even if the binary drops its pointer.
  registry.reset();
  const std::string later = http_get(exporter->port(), "/metrics");
  EXPECT_NE(later.find("\nringmta_test_events_total 43\n"), std::string::npos) << later;
  EXPECT_NE(later.find("\nringmta_sink_sessions_total 0\n"), std::string::npos) << later;
  // Debian 12's civetweb (1.15) takes about 2 s to stop after serving a request (civetweb
  // issue 1163, fixed in 1.16), hence a single serving test.
}

TEST(MetricsExporter, RefusesNonNumericAndOutOfRangeAddresses) {
  for (const char* bad : {"localhost:9101", "9101", ":9101", "127.0.0.1", "127.0.0.1:99999",
                          "127.0.0.1:0s", "127.0.0.1:0,127.0.0.1:0", "300.1.1.1:80"}) {
    const std::string why = start_error(bad);
    EXPECT_TRUE(why.starts_with("metrics: bad address (numeric HOST:PORT")) << bad << ": " << why;
  }
}

TEST(MetricsExporter, SaysWhyABindFailed) {
  auto busy = start_exporter("127.0.0.1:0");
  const std::string busy_address = busy->address();
  const std::string why = start_error(busy_address);
  EXPECT_TRUE(why.starts_with("metrics: cannot listen on " + busy_address + ": ")) << why;
  EXPECT_NE(why.find("Address already in use"), std::string::npos) << why;

  // TEST-NET-1 is never a local address.
  EXPECT_NE(start_error("192.0.2.1:9101").find("Cannot assign requested address"),
            std::string::npos);
}

TEST(MetricsExporter, TakesAnAlreadyParsedAddress) {
  io::SocketAddress address;
  ASSERT_TRUE(io::parse_socket_address("127.0.0.1:0", address, nullptr));
  auto exporter = start_exporter(address);
  EXPECT_NE(exporter->port(), 0);
  EXPECT_EQ(exporter->address(), "127.0.0.1:" + std::to_string(exporter->port()));
}

TEST(MetricsExporter, Ipv6IsRefusedClearlyWhenCivetwebLacksIt) {
  const std::string why = start_error("[::1]:0");
  if (why == "(started)") GTEST_SKIP() << "this civetweb supports IPv6";
  EXPECT_NE(why.find("built without IPv6"), std::string::npos) << why;
}

}  // namespace
}  // namespace ringmta::metrics
