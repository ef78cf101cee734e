// Command parsing throughput: parse_command() over a realistic session mix, and over MAIL and
// RCPT lines alone (the commands with paths and ESMTP parameters). Reports commands/s.
#include <benchmark/benchmark.h>

#include <array>
#include <string_view>

#include "core/smtp/command.hpp"

namespace ringmta::smtp {
namespace {

// One pipelined transaction with its session around it, lines without CRLF.
constexpr std::array<std::string_view, 10> kMix = {
    "EHLO client.example.org",
    "MAIL FROM:<alice.sender@example.org> SIZE=48213 BODY=8BITMIME",
    "RCPT TO:<bob@example.net>",
    "RCPT TO:<carol.receiver@mail.example.com>",
    "DATA",
    "NOOP",
    "RSET",
    "MAIL FROM:<> SIZE=1024 BODY=7BIT",
    "RCPT TO:<postmaster@example.net>",
    "QUIT",
};

constexpr std::array<std::string_view, 4> kMail = {
    "MAIL FROM:<alice.sender@example.org> SIZE=48213 BODY=8BITMIME",
    "MAIL FROM:<bounces+12345-abcd@lists.example.com> SIZE=7731",
    "MAIL FROM:<> SIZE=1024 BODY=7BIT",
    "MAIL FROM:<noreply@notifications.example.net> BODY=8BITMIME",
};

constexpr std::array<std::string_view, 4> kRcpt = {
    "RCPT TO:<bob@example.net>",
    "RCPT TO:<carol.receiver@mail.example.com>",
    "RCPT TO:<postmaster@example.net>",
    "RCPT TO:<d.jones+invoices@accounts.example.org>",
};

template <std::size_t N>
void run_parse(benchmark::State& state, const std::array<std::string_view, N>& lines) {
  for (std::string_view line : lines) {
    if (!parse_command(line).ok()) {
      state.SkipWithError("a benchmark line does not parse");
      return;
    }
  }
  for (auto _ : state) {
    for (std::string_view line : lines) {
      benchmark::DoNotOptimize(line);  // the line is opaque to the optimiser
      Command cmd = parse_command(line);
      benchmark::DoNotOptimize(cmd);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(N));
}

void BM_ParseMix(benchmark::State& state) { run_parse(state, kMix); }
void BM_ParseMail(benchmark::State& state) { run_parse(state, kMail); }
void BM_ParseRcpt(benchmark::State& state) { run_parse(state, kRcpt); }

BENCHMARK(BM_ParseMix);
BENCHMARK(BM_ParseMail);
BENCHMARK(BM_ParseRcpt);

}  // namespace
}  // namespace ringmta::smtp
