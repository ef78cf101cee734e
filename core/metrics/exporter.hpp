// The /metrics HTTP endpoint of a binary (--metrics HOST:PORT): prometheus-cpp's Exposer
// (civetweb) serving one or more Collectables, usually MetricsRegistry objects. It runs its
// own threads (civetweb: one listener plus two workers), apart from the io_uring reactors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/socket_address.hpp"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace ringmta::metrics {

class MetricsExporter {
 public:
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;
  // Stops the HTTP threads (waits for a scrape in progress).
  ~MetricsExporter();

  // The port actually bound (the chosen one when started with port 0).
  std::uint16_t port() const { return port_; }
  // "127.0.0.1:9101" with the bound port, for logs and for tests to connect to.
  const std::string& address() const { return address_; }

  // Start-up: also serve `collectable` on /metrics; the exporter keeps it alive.
  void add(std::shared_ptr<prometheus::Collectable> collectable);

 private:
  friend std::unique_ptr<MetricsExporter> start_exporter(
      const io::SocketAddress&, std::vector<std::shared_ptr<prometheus::Collectable>>);
  MetricsExporter() = default;

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::uint16_t port_ = 0;
  std::string address_;
};

// Start-up only (throws std::runtime_error with the address and the reason, e.g.
// "metrics: cannot listen on 127.0.0.1:9101: Address already in use"). `address` is a numeric
// HOST:PORT as for --listen; port 0 picks a free port. Block the signals the process waits for
// (signalfd/sigwait) before calling: civetweb's threads inherit the signal mask. civetweb also
// sets SIGPIPE to SIG_IGN for the whole process.
std::unique_ptr<MetricsExporter> start_exporter(
    std::string_view address,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {});

// The same for an address already parsed (e.g. the --metrics value of a config).
std::unique_ptr<MetricsExporter> start_exporter(
    const io::SocketAddress& address,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {});

}  // namespace ringmta::metrics
