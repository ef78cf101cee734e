// ringmta-relay: accepts mail over SMTP and makes it durable in its spool before it says
// 250 (part 1 of the relay: delivery comes with part 2). At start it recovers the spool (torn
// tails cut, bad records moved aside) and reports what it found; SIGINT/SIGTERM stop it
// cleanly. `ringmta-relay queue --spool DIR` lists the spool without changing it.
// Exit codes: 0 ok, 1 failure at run time, 2 bad usage or configuration.
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <iostream>
#include <memory>

#include "core/io/worker_group.hpp"
#include "core/metrics/exporter.hpp"
#include "core/smtp/message_digest.hpp"
#include "relay/inbound_session.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/spool/recovery.hpp"

namespace {

using namespace ringmta;

spool::Durability to_spool(relay::Durability d) {
  switch (d) {
    case relay::Durability::batch: return spool::Durability::batch;
    case relay::Durability::always: return spool::Durability::always;
    case relay::Durability::none: return spool::Durability::none;
  }
  return spool::Durability::batch;
}

// `ringmta-relay queue --spool DIR [--digest]`: one line per message; --digest prints the
// accounting fingerprint (X-Ringmta-Id, body octets, body SHA-256, recipients) in the sink's
// digest-log format, so the harness and tests can compare spools with ledgers.
int queue_command(int argc, char** argv) {
  std::string dir = "spool";
  bool digest = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--spool" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--digest") {
      digest = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << "Usage: ringmta-relay queue [--spool DIR] [--digest]\n"
                   "Lists the messages in the spool without changing it (like postqueue -p).\n";
      return 0;
    } else {
      std::cerr << "ringmta-relay queue: unknown argument '" << a << "' (see --help)\n";
      return 2;
    }
  }
  spool::RecoveryReport report;
  std::string error;
  smtp::MessageDigest md;
  const bool ok = spool::recover_spool(dir, false, [&](const spool::RecoveredMessage& m) {
    const auto& e = m.envelope;
    std::string rcpts;
    for (const auto& r : e.recipients) {
      if (!rcpts.empty()) rcpts += ',';
      rcpts += r.address;
    }
    if (digest) {
      md.begin(e.body_format == spool::StoredBody::raw ? smtp::BodyFormat::raw
                                                       : smtp::BodyFormat::dot_stuffed);
      md.update(m.body);
      md.finish();
      std::cout << (md.id().empty() ? std::string_view("-") : md.id()) << '\t' << md.body_octets()
                << '\t' << md.sha256_hex() << '\t' << rcpts << '\n';
    } else {
      char id[17];
      std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(e.id));
      std::cout << id << ' ' << m.body.size() << ' ' << e.arrival_unix_ms << " <" << e.sender
                << "> " << rcpts << '\n';
    }
  }, report, &error);
  if (!ok) {
    std::cerr << "ringmta-relay queue: " << error << "\n";
    return 1;
  }
  if (!digest) {
    std::cout << "-- " << report.messages << " messages, " << report.recipients
              << " recipients, " << report.bytes << " bytes in " << report.segments
              << " segments\n";
  }
  return 0;
}

int run(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "queue") == 0) return queue_command(argc, argv);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  relay::RelayConfig config;
  const int early = relay::load_relay_config(argc, argv, config, std::cout, std::cerr);
  if (early >= 0) return early;

  io::ReactorConfig reactor;
  reactor.buffer_count = config.recv_buffers;
  reactor.buffer_size = config.recv_buffer_size;
  if (const std::string missing = io::Reactor::probe_kernel(reactor); !missing.empty()) {
    std::cerr << "ringmta-relay: " << missing << "\n";
    return 1;
  }

  relay::RelayShared shared;
  shared.config = &config;
  shared.spool.dir = config.spool;
  shared.spool.durability = to_spool(config.durability);
  shared.spool.batch_max_messages =
      config.durability == relay::Durability::batch ? config.batch_max_messages : 1;
  shared.spool.batch_max_wait_us = config.batch_max_wait_us;
  shared.spool.segment_bytes = config.segment_bytes;
  shared.metrics = metrics::MetricsRegistry::create<relay::RelayMetrics>();
  shared.metrics->set_callback(relay::RelayMetrics::spool_bytes, [&shared] {
    return static_cast<double>(shared.totals.bytes.load(std::memory_order_relaxed));
  });
  shared.metrics->set_callback(relay::RelayMetrics::spool_messages, [&shared] {
    return static_cast<double>(shared.totals.messages.load(std::memory_order_relaxed));
  });

  // Recovery before anything listens: what was acked before a crash is found again.
  spool::RecoveryReport report;
  std::string error;
  if (::mkdir(config.spool.c_str(), 0700) != 0 && errno != EEXIST) {
    std::cerr << "ringmta-relay: cannot create spool " << config.spool << ": "
              << std::strerror(errno) << "\n";
    return 2;
  }
  if (!spool::recover_spool(config.spool, true, [](const spool::RecoveredMessage&) {}, report,
                            &error)) {
    std::cerr << "ringmta-relay: " << error << "\n";
    return 1;
  }
  for (const std::string& line : report.log) std::cerr << "ringmta-relay: spool: " << line << "\n";
  shared.totals.bytes.store(report.bytes);
  shared.totals.messages.store(report.messages);
  for (const auto& [thread, seq] : report.last_sequence) {
    if (shared.last_sequence.size() <= thread) shared.last_sequence.resize(thread + 1, 0);
    shared.last_sequence[thread] = seq;
  }

  io::WorkerGroup group(reactor, config.threads, config.listen);
  try {
    group.bind();
  } catch (const std::exception& e) {
    std::cerr << "ringmta-relay: " << e.what() << "\n";
    return 2;
  }
  std::unique_ptr<metrics::MetricsExporter> exporter;
  if (config.metrics) {
    try {
      exporter = metrics::start_exporter(*config.metrics, {shared.metrics});
    } catch (const std::exception& e) {
      std::cerr << "ringmta-relay: " << e.what() << "\n";
      return 2;
    }
  }
  std::cout << "ringmta-relay " << RINGMTA_VERSION << " listening on";
  for (const io::SocketAddress& a : group.bound()) std::cout << ' ' << a.to_string();
  if (exporter) std::cout << " metrics " << exporter->address();
  std::cout << " spool " << config.spool << " durability "
            << spool::durability_name(shared.spool.durability) << " threads " << config.threads
            << " recovered " << report.messages << " messages in " << report.elapsed_ms << " ms"
            << std::endl;
  if (config.durability == relay::Durability::none) {
    std::cerr << "ringmta-relay: durability none: messages are acked before they reach stable "
                 "storage (for measuring only)\n";
  }

  std::vector<std::unique_ptr<relay::RelayThread>> threads(config.threads);
  try {
    group.run(
        [&](io::Reactor& r, std::size_t) -> std::unique_ptr<io::ListenHandler> {
          auto& t = threads[r.index()];
          if (!t) t = std::make_unique<relay::RelayThread>(r, shared);
          return std::make_unique<relay::RelayListen>(*t);
        },
        nullptr, true);
  } catch (const std::exception& e) {
    std::cerr << "ringmta-relay: " << e.what() << "\n";
    return 1;
  }
  threads.clear();
  if (shared.totals.failed.load()) return 1;
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
