// ringmta-relay: accepts mail over SMTP, makes it durable in its spool before it says 250,
// routes each recipient and delivers it onward (relay/queue, relay/outbound). At start it
// recovers the spool (torn tails cut, bad records moved aside, outcomes merged) and resumes
// delivery where it stopped; SIGINT/SIGTERM stop it cleanly. `ringmta-relay queue --spool
// DIR` lists what is still to deliver without changing the spool.
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
#include "relay/queue/queue_summary.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_metrics.hpp"
#include "relay/spool/recovery.hpp"
#include "relay/spool/spool_state.hpp"

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

// `ringmta-relay queue --spool DIR [--digest | --summary]`: the live queue (messages with a
// recipient not yet delivered or bounced), read without changing the spool. One line per
// message; --digest prints the accounting fingerprint (X-Ringmta-Id, body octets, body
// SHA-256, pending recipients) in the sink's digest-log format, so the harness and tests can
// compare spools with ledgers; --summary counts pending recipients by domain and age, like
// Postfix's qshape.
int queue_command(int argc, char** argv) {
  std::string dir = "spool";
  bool digest = false;
  bool summary = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--spool" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--digest") {
      digest = true;
    } else if (a == "--summary") {
      summary = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << "Usage: ringmta-relay queue [--spool DIR] [--digest | --summary]\n"
                   "Lists the messages still to deliver without changing the spool (like\n"
                   "postqueue -p); --summary counts recipients by domain and age (like qshape).\n";
      return 0;
    } else {
      std::cerr << "ringmta-relay queue: unknown argument '" << a << "' (see --help)\n";
      return 2;
    }
  }
  if (digest && summary) {
    std::cerr << "ringmta-relay queue: --digest and --summary exclude each other\n";
    return 2;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::cerr << "ringmta-relay queue: no spool directory " << dir << "\n";
    return 1;
  }
  spool::RecoveryReport report;
  std::string error;
  spool::SpoolState state(digest);
  if (!spool::recover_spool(dir, false, state, report, &error)) {
    std::cerr << "ringmta-relay queue: " << error << "\n";
    return 1;
  }
  const std::vector<spool::LiveMessage> live = state.take_live();
  if (summary) {
    relay::print_queue_summary(live, relay::unix_now_ms(), std::cout);
    return 0;
  }
  std::uint64_t recipients = 0;
  for (const spool::LiveMessage& m : live) {
    const auto& e = m.envelope;
    std::string rcpts;
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
      if (spool::is_final(m.outcomes[i].state)) continue;
      if (!rcpts.empty()) rcpts += ',';
      rcpts += e.recipients[i].address;
      ++recipients;
    }
    if (digest) {
      std::cout << m.digest << '\t' << rcpts << '\n';
    } else {
      char id[17];
      std::snprintf(id, sizeof(id), "%016llx", static_cast<unsigned long long>(e.id));
      std::cout << id << ' ' << m.body_length << ' ' << e.arrival_unix_ms << " <" << e.sender
                << "> " << rcpts << '\n';
    }
  }
  if (!digest) {
    std::cout << "-- " << live.size() << " messages, " << recipients << " recipients, "
              << state.live_bytes() << " bytes in " << report.segments << " segments\n";
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
  spool::SpoolState state;
  if (!spool::recover_spool(config.spool, true, state, report, &error)) {
    std::cerr << "ringmta-relay: " << error << "\n";
    return 1;
  }
  std::vector<spool::LiveMessage> live = state.take_live();
  // Segments holding nothing live (every recipient delivered or bounced) go before any
  // writer starts; the rest are handed to the threads with the messages they hold.
  spool::delete_unpinned_segments(state, &report.log);
  for (const std::string& line : report.log) std::cerr << "ringmta-relay: spool: " << line << "\n";
  shared.totals.bytes.store(state.live_bytes());
  shared.totals.messages.store(live.size());
  for (const auto& [thread, seq] : report.last_sequence) {
    if (shared.last_sequence.size() <= thread) shared.last_sequence.resize(thread + 1, 0);
    shared.last_sequence[thread] = seq;
  }
  const unsigned nthreads = config.threads == 0 ? 1 : config.threads;
  shared.recovered.resize(nthreads);
  shared.recovered_segments.resize(nthreads);
  for (const auto& [key, pins] : state.pins()) {
    if (pins > 0) shared.recovered_segments[key.thread % nthreads].push_back(key);
  }
  const std::size_t recovered_messages = live.size();
  for (spool::LiveMessage& m : live) {
    shared.recovered[m.segment.thread % nthreads].push_back(std::move(m));
  }
  live.clear();
  try {
    if (config.server.starttls) {
      io::TlsServerOptions tls;
      tls.cert_file = config.tls_cert;
      tls.key_file = config.tls_key;
      shared.tls = io::TlsContext::server(tls);
    }
    if (!config.auth_users.empty()) {
      shared.users = std::make_unique<auth::UserTable>(auth::UserTable::load(config.auth_users));
      if (config.auth_client_failures != 0) {
        auth::FailureLimiterOptions limits;
        limits.max_failures = config.auth_client_failures;
        shared.auth_limiter = std::make_unique<auth::AuthFailureLimiter>(limits);
      }
    }
    shared.routes = relay::RouteTable(config);
    shared.aliases = relay::AliasTable(config);
    shared.destination_metrics =
        std::make_shared<relay::DestinationMetrics>(shared.routes, nthreads);
    bool outbound_tls = false;
    for (const relay::Destination& d : shared.routes.destinations()) {
      outbound_tls = outbound_tls || d.policy.tls != 0;
    }
    if (outbound_tls) {
      io::TlsClientOptions o;
      o.verify = config.delivery.tls_verify;
      o.ca_file = config.delivery.tls_ca;
      shared.tls_client = io::TlsContext::client(o);
    }
  } catch (const std::exception& e) {
    std::cerr << "ringmta-relay: " << e.what() << "\n";
    return 2;
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
      exporter = metrics::start_exporter(*config.metrics,
                                         {shared.metrics, shared.destination_metrics});
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
            << " recovered " << recovered_messages << " messages in " << report.elapsed_ms
            << " ms"
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
