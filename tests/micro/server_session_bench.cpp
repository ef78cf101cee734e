// A whole pipelined transaction through ServerSession with the default (accept and discard)
// handler: MAIL, RCPT, DATA, a 1 KiB body and its end, replies consumed. Reports messages/s.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "core/smtp/server_session.hpp"
#include "tests/micro/bench_bodies.hpp"

namespace ringmta::smtp {
namespace {

constexpr std::string_view kEnvelope =
    "MAIL FROM:<alice.sender@example.org> SIZE=1024 BODY=8BITMIME\r\n"
    "RCPT TO:<bob@example.net>\r\n"
    "DATA\r\n";

// Replies one transaction must produce (enhanced status codes on, default texts).
constexpr std::string_view kReplies =
    "250 2.1.0 Sender ok\r\n"
    "250 2.1.5 Recipient ok\r\n"
    "354 End data with <CR><LF>.<CR><LF>\r\n"
    "250 2.0.0 Message accepted\r\n";

// Feeds all of `in`, sending (consuming) output whenever the session stops reading, as a
// connection would. Returns the bytes of output that were consumed; 0 if the session stalled.
std::size_t feed_all(ServerSession& s, std::string_view in) {
  std::size_t sent = 0;
  while (!in.empty()) {
    const std::size_t used = s.feed(in);
    in.remove_prefix(used);
    if (used == 0 && s.output().empty()) return 0;  // stuck: not an output backlog
    sent += s.output().size();
    s.consume_output(s.output().size());
  }
  const std::size_t rest = s.output().size();
  s.consume_output(rest);
  return sent + rest;
}

// Args: body size (DATA body with its terminator).
void BM_SessionTransaction(benchmark::State& state) {
  const bench::DataBody body = bench::make_data_body(static_cast<std::size_t>(state.range(0)));
  // One pipelined group as a client writes it: envelope, DATA, body and "." together.
  std::string txn(kEnvelope);
  txn += body.wire;

  const ServerConfig config;
  ServerHandler handler;  // the default: accepts everything, discards the body
  ServerSession session(config, handler);
  session.start();
  session.consume_output(session.output().size());
  if (feed_all(session, "EHLO client.example.org\r\n") == 0 ||
      session.state() != SessionState::ready) {
    state.SkipWithError("EHLO not accepted");
    return;
  }
  // One transaction outside the loop, to check the replies are what the loop expects.
  {
    session.feed(txn);
    if (session.output() != kReplies || session.state() != SessionState::ready) {
      state.SkipWithError("unexpected replies to the transaction");
      return;
    }
    session.consume_output(session.output().size());
  }

  std::string_view in = txn;
  std::size_t out_bytes = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(in);
    out_bytes += feed_all(session, in);
  }
  benchmark::DoNotOptimize(out_bytes);
  if (out_bytes != kReplies.size() * state.iterations() || session.state() != SessionState::ready) {
    state.SkipWithError("a transaction in the loop did not end with 250");
    return;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(txn.size()));
}
BENCHMARK(BM_SessionTransaction)->ArgName("body")->Arg(1024);

}  // namespace
}  // namespace ringmta::smtp
