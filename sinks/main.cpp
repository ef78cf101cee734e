// ringmta-sink: mock recipient SMTP servers for benchmarks and tests. Reads its
// configuration (flags and --config TOML), starts one io_uring reactor per thread with a
// listening socket per address, answers as each listener's behaviour table says, and stops
// cleanly on SIGINT/SIGTERM (exit 0). Exit codes: 0 ok, 1 failure at run time, 2 bad usage.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "core/io/worker_group.hpp"
#include "core/metrics/exporter.hpp"
#include "sinks/sink_config.hpp"
#include "sinks/sink_metrics.hpp"
#include "sinks/sink_session.hpp"

namespace {

using namespace ringmta;

bool make_maildir(const std::string& dir, std::string& why) {
  for (const char* sub : {"", "/tmp", "/new", "/cur"}) {
    const std::string path = dir + sub;
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      why = "cannot create " + path + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

int run(int argc, char** argv) {
  // Every thread (workers, the metrics exporter's) inherits this: SIGINT/SIGTERM reach only
  // the main thread's wait in WorkerGroup::run, which stops the workers cleanly.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  sink::SinkConfig config;
  const int early = sink::load_sink_config(argc, argv, config, std::cout, std::cerr);
  if (early >= 0) return early;

  io::ReactorConfig reactor;
  reactor.buffer_count = config.recv_buffers;
  reactor.buffer_size = config.recv_buffer_size;
  if (const std::string missing = io::Reactor::probe_kernel(reactor); !missing.empty()) {
    std::cerr << "ringmta-sink: " << missing << "\n";
    return 1;
  }
  if (config.mode == sink::SinkMode::digest) {
    // Each thread opens its own append handle later; find out now, before the ready line,
    // whether the file can be written at all.
    try {
      sink::DigestLog probe(config.digest_log);
    } catch (const std::exception& e) {
      std::cerr << "ringmta-sink: " << e.what() << "\n";
      return 2;
    }
  }
  if (config.mode == sink::SinkMode::maildir) {
    std::string why;
    if (!make_maildir(config.maildir, why)) {
      std::cerr << "ringmta-sink: " << why << "\n";
      return 2;
    }
  }

  sink::SinkShared shared;
  shared.mode = config.mode;
  shared.digest_path = config.digest_log;
  shared.maildir = config.maildir;
  shared.seed = config.seed;
  shared.metrics = metrics::MetricsRegistry::create<sink::SinkMetrics>();
  std::vector<io::SocketAddress> addresses;
  for (sink::ListenerConfig& l : config.listeners) {
    sink::ListenerRuntime rt;
    rt.server = l.server;
    rt.behaviour = std::make_unique<sink::Behaviour>(l.behaviour);
    if (l.server.starttls) {
      io::TlsServerOptions tls;
      tls.cert_file = l.tls_cert;
      tls.key_file = l.tls_key;
      try {
        rt.tls = io::TlsContext::server(tls);
      } catch (const std::exception& e) {
        std::cerr << "ringmta-sink: listener " << l.address.to_string() << ": " << e.what()
                  << "\n";
        return 2;
      }
    }
    shared.listeners.push_back(std::move(rt));
    addresses.push_back(l.address);
  }

  io::WorkerGroup group(reactor, config.threads, addresses);
  try {
    group.bind();
  } catch (const std::exception& e) {
    std::cerr << "ringmta-sink: " << e.what() << "\n";
    return 2;
  }
  std::unique_ptr<metrics::MetricsExporter> exporter;
  if (config.metrics) {
    try {
      exporter = metrics::start_exporter(*config.metrics, {shared.metrics});
    } catch (const std::exception& e) {
      std::cerr << "ringmta-sink: " << e.what() << "\n";
      return 2;
    }
  }
  // One line a harness can wait for: where each listener is (ports chosen for port 0).
  std::cout << "ringmta-sink " << RINGMTA_VERSION << " listening on";
  for (const io::SocketAddress& a : group.bound()) std::cout << ' ' << a.to_string();
  if (exporter) std::cout << " metrics " << exporter->address();
  std::cout << " mode " << sink::mode_name(config.mode) << " threads " << config.threads
            << std::endl;

  std::vector<std::unique_ptr<sink::SinkThread>> threads(config.threads);
  try {
    group.run(
        [&](io::Reactor& r, std::size_t listener) -> std::unique_ptr<io::ListenHandler> {
          auto& t = threads[r.index()];
          if (!t) t = std::make_unique<sink::SinkThread>(r, shared);
          return std::make_unique<sink::SinkListen>(*t, listener);
        },
        [&](io::Reactor& r) { threads[r.index()].reset(); }, true);
  } catch (const std::exception& e) {
    std::cerr << "ringmta-sink: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
