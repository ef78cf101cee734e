// The /metrics endpoint on prometheus-cpp's Exposer; see exporter.hpp. The work here is in
// refusing bad addresses clearly: civetweb would take "9101" (all interfaces) or a host name,
// and its own failure message never says what went wrong.
#include "core/metrics/exporter.hpp"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/exposer.h>
#include <sys/socket.h>

#include <stdexcept>
#include <utility>

#include "core/io/socket_address.hpp"

namespace ringmta::metrics {

namespace {

// civetweb reports why it could not start only through the log callback, which has no user
// pointer; startup runs on the calling thread, so a thread-local buffer catches it.
thread_local std::string* t_startup_log = nullptr;

int capture_log(const mg_connection*, const char* message) {
  if (t_startup_log == nullptr) return 0;  // later messages: civetweb's default handling
  if (t_startup_log->empty()) *t_startup_log = message;  // the first one says why
  return 1;
}

// "cannot bind to 127.0.0.1:9101: 98 (Address already in use)" -> "Address already in use".
std::string reason(const std::string& log) {
  const std::size_t open = log.rfind(" (");
  if (log.starts_with("cannot bind to ") && open != std::string::npos && log.ends_with(")")) {
    return log.substr(open + 2, log.size() - open - 3);
  }
  return log;
}

constexpr unsigned kCivetFeatureIpv6 = 8;  // civetweb.h, mg_check_feature()

}  // namespace

MetricsExporter::~MetricsExporter() = default;

void MetricsExporter::add(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);  // Exposer keeps a weak_ptr only
  collectables_.push_back(std::move(collectable));
}

std::unique_ptr<MetricsExporter> start_exporter(
    std::string_view address, std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  io::SocketAddress parsed;
  std::string why;
  if (!io::parse_socket_address(address, parsed, &why)) {
    throw std::runtime_error("metrics: bad address (numeric HOST:PORT, e.g. 127.0.0.1:9101): " +
                             why);
  }
  return start_exporter(parsed, std::move(collectables));
}

std::unique_ptr<MetricsExporter> start_exporter(
    const io::SocketAddress& address,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  // The canonical form of the parsed address, so nothing else reaches civetweb's option
  // syntax (a "s" suffix, comma lists).
  const std::string canonical = address.to_string();
  if (address.storage.ss_family == AF_INET6 && mg_check_feature(kCivetFeatureIpv6) == 0) {
    throw std::runtime_error("metrics: cannot listen on " + canonical +
                             ": this civetweb is built without IPv6 (Debian's is); use an "
                             "IPv4 address such as 127.0.0.1:9101");
  }
  if (address.storage.ss_family != AF_INET && address.storage.ss_family != AF_INET6) {
    throw std::runtime_error("metrics: not an IP address: " + canonical);
  }

  CivetCallbacks callbacks;  // copied by CivetServer
  callbacks.log_message = capture_log;
  std::string startup_log;
  std::unique_ptr<MetricsExporter> exporter(new MetricsExporter());
  t_startup_log = &startup_log;
  try {
    // Scrapes are rare and cheap: two workers so that one slow client cannot block the next.
    exporter->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", canonical, "num_threads", "2"}, &callbacks);
  } catch (const std::exception& e) {
    t_startup_log = nullptr;
    throw std::runtime_error("metrics: cannot listen on " + canonical + ": " +
                             (startup_log.empty() ? std::string(e.what()) : reason(startup_log)));
  }
  t_startup_log = nullptr;

  const std::vector<int> ports = exporter->exposer_->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    throw std::runtime_error("metrics: no listening port after starting on " + canonical);
  }
  exporter->port_ = static_cast<std::uint16_t>(ports.front());
  const std::size_t colon = canonical.rfind(':');
  exporter->address_ = canonical.substr(0, colon + 1) + std::to_string(exporter->port_);
  for (auto& c : collectables)
    exporter->add(std::move(c));
  return exporter;
}

}  // namespace ringmta::metrics
