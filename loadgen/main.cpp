// ringmta-loadgen: drives SMTP load at a server (closed or open loop) and measures latency
// per phase. Prints a live line on a terminal, a summary at the end, and optionally a JSON
// file and a per-message ledger. Exit codes: 0 the run completed, 1 it could not run (or
// nothing was accepted), 2 bad usage or configuration.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "loadgen/engine.hpp"
#include "loadgen/load_config.hpp"
#include "loadgen/message_factory.hpp"
#include "loadgen/report.hpp"
#include "loadgen/size_spec.hpp"

namespace {

using namespace ringmta::loadgen;

// The message factory's settings from the user's: the shapes were validated with the
// factory's own parsers when the configuration was loaded.
std::unique_ptr<MessageFactory> make_message_factory(const LoadConfig& c) {
  MessageFactoryConfig f;
  f.run_id = c.run_id.empty() ? default_run_id() : c.run_id;
  f.from = c.from;
  f.seed = c.seed;
  std::string why;
  if (!parse_size_spec(c.size, f.size, &why)) throw std::invalid_argument("--size: " + why);
  if (!parse_recipient_count(c.recipients, f.recipients, &why)) {
    throw std::invalid_argument("--recipients: " + why);
  }
  f.to_domains.clear();
  for (const std::string& d : c.to_domains) {
    DomainWeight w;
    if (!parse_domain_weight(d, w, &why)) throw std::invalid_argument("--to-domain: " + why);
    f.to_domains.push_back(w);
  }
  return std::make_unique<MessageFactory>(std::move(f));
}

void show_progress(const Progress& p, void* ctx) {
  auto* last = static_cast<std::uint64_t*>(ctx);
  const std::uint64_t per_s = p.accepted - *last;
  *last = p.accepted;
  std::fprintf(stderr, "\r%s",
               progress_line(static_cast<std::uint64_t>(p.elapsed_s), per_s, p.last_p50_ns,
                             p.last_p99_ns, p.errors + p.failed)
                   .c_str());
  std::fflush(stderr);
}

int run(int argc, char** argv) {
  // Workers and the reporter inherit this: SIGINT/SIGTERM reach only the main thread's wait,
  // which ends the run early (results so far are still reported).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  LoadConfig config;
  const int early = load_loadgen_config(argc, argv, config, std::cout, std::cerr);
  if (early >= 0) return early;

  std::unique_ptr<MessageFactory> factory;
  try {
    factory = make_message_factory(config);
  } catch (const std::exception& e) {
    std::cerr << "ringmta-loadgen: " << e.what() << "\n";
    return 2;
  }
  // The threads append their lines to one ledger; it describes this run only, so it starts
  // empty (like --json, which is rewritten).
  if (!config.ledger_path.empty()) {
    std::ofstream ledger(config.ledger_path, std::ios::trunc);
    if (!ledger) {
      std::cerr << "ringmta-loadgen: cannot write " << config.ledger_path << "\n";
      return 2;
    }
  }
  const bool live = config.progress && isatty(STDERR_FILENO) != 0;
  std::uint64_t last_accepted = 0;
  Results results;
  try {
    results = run_load(config, *factory, live ? &show_progress : nullptr, &last_accepted);
  } catch (const std::exception& e) {
    if (live) std::fputc('\n', stderr);
    std::cerr << "ringmta-loadgen: " << e.what() << "\n";
    return 1;
  }
  if (live) std::fputc('\n', stderr);
  write_summary(std::cout, results);
  if (!config.json_path.empty()) {
    std::ofstream out(config.json_path);
    write_json(out, results);
    if (!out) {
      std::cerr << "ringmta-loadgen: cannot write " << config.json_path << "\n";
      return 1;
    }
  }
  // The run happened whatever the server answered; it failed only if no message could even
  // be started (the target refused or never answered every connection).
  return results.started + results.warmup_messages > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
