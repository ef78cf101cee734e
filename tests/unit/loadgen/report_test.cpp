// ringmta-loadgen's output from a hand-built Results: the summary's percentile table and
// figures, the JSON file (parsed back with nlohmann, field by field) and the progress line.
#include "loadgen/report.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace ringmta::loadgen {
namespace {

using Json = nlohmann::json;

constexpr std::uint64_t kMs = 1'000'000;

stats::Histogram& phase(Results& r, Phase p) {
  return r.latency[static_cast<std::size_t>(p)];
}

// 10,000 accepted messages after warm-up: 8000 at 1 ms, 1500 at 2 ms, 450 at 10 ms, 45 at
// 100 ms and 5 at 1 s. Each value is the top of its bucket, so the percentiles report it
// exactly, and every percentile's rank (5000, 7500, 9000, 9900, 9990, 9999) has a neighbour
// rank in the same group, so the figures do not hang on rounding at a group's edge.
Results sample_results() {
  Results r;
  r.run_id = "r20240102T030405-77";
  r.target = "127.0.0.1:2525";
  r.mode = "open";
  r.rate = 500;
  r.threads = 2;
  r.connections = 20;
  r.size_spec = "1024";
  r.seed = 9;
  r.duration_s = 2.0;
  r.warmup_s = 1.0;
  r.start_unix_ms = 1'704'164'645'000;
  r.started = 10003;
  r.accepted = 10000;
  r.tempfail = 1;
  r.permfail = 1;
  r.errors = 1;
  r.warmup_messages = 480;
  r.recipients_accepted = 10000;
  r.recipients_rejected = 2;
  r.bytes_sent = 10000 * 1024;
  r.replies = {{"250 2.0.0", 10000}, {"451 4.3.0", 1}, {"554 5.6.0", 1}};
  r.conn_errors[static_cast<std::size_t>(ConnError::reset)] = 1;
  r.conn_errors[static_cast<std::size_t>(ConnError::reply_timeout)] = 2;
  r.connections_opened = 21;
  r.pipelined_transactions = 10003;
  r.bdat_transactions = 0;
  r.waited_for_connection = 3;
  r.max_connection_wait_ns = 2'500'000;

  stats::Histogram& acc = phase(r, Phase::accept);
  const auto top = [&](std::uint64_t v) { return acc.highest_equivalent(v); };
  acc.record_n(top(1 * kMs), 8000);
  acc.record_n(top(2 * kMs), 1500);
  acc.record_n(top(10 * kMs), 450);
  acc.record_n(top(100 * kMs), 45);
  acc.record_n(1'000 * kMs, 5);  // the max is exact whatever its bucket
  stats::Histogram& con = phase(r, Phase::connect);
  con.record_n(con.highest_equivalent(50'000), 20);
  con.record(80'000);
  // banner, ehlo: empty; envelope: one value.
  phase(r, Phase::envelope).record(phase(r, Phase::envelope).highest_equivalent(300'000));
  stats::Histogram& txn = phase(r, Phase::transaction);
  txn.record_n(txn.highest_equivalent(2 * kMs), 10000);

  r.timeline.resize(3);
  r.timeline[0].accepted = 480;  // warm-up second
  r.timeline[0].accept_latency.record_n(1 * kMs, 480);
  r.timeline[1].accepted = 5000;
  r.timeline[1].tempfail = 1;
  r.timeline[1].accept_latency.record_n(1 * kMs, 5000);
  r.timeline[2].accepted = 0;  // a stalled second: no sample
  r.timeline[2].errors = 1;

  r.cpu_user_s = 0.6;
  r.cpu_system_s = 0.3;
  return r;
}

std::string summary(const Results& r) {
  std::ostringstream o;
  write_summary(o, r);
  return o.str();
}

Json json_of(const Results& r) {
  std::ostringstream o;
  write_json(o, r);
  return Json::parse(o.str());
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(Report, LatencyUnitsFollowTheSize) {
  EXPECT_EQ(format_latency(0), "0ns");
  EXPECT_EQ(format_latency(999), "999ns");
  EXPECT_EQ(format_latency(1'000), "1.00us");
  EXPECT_EQ(format_latency(12'345), "12.35us");
  EXPECT_EQ(format_latency(1'234'567), "1.23ms");
  EXPECT_EQ(format_latency(999'990'000), "999.99ms");
  EXPECT_EQ(format_latency(2'500'000'000), "2.50s");
}

TEST(Report, SummaryHasThePercentileTableOfTheAcceptLatency) {
  const Results r = sample_results();
  const stats::Histogram& acc = r.latency[static_cast<std::size_t>(Phase::accept)];
  // The bucket tops the test recorded, as the table shows them (within 2^-7 of the value).
  ASSERT_EQ(format_latency(acc.highest_equivalent(1 * kMs)), "1.00ms");
  ASSERT_EQ(format_latency(acc.highest_equivalent(2 * kMs)), "2.01ms");
  ASSERT_EQ(format_latency(acc.highest_equivalent(10 * kMs)), "10.03ms");
  ASSERT_EQ(format_latency(acc.highest_equivalent(100 * kMs)), "100.14ms");
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s, "  Accept latency (end of data -> final reply), 10000 messages")) << s;
  EXPECT_TRUE(has_line(s, "    50.000%      1.00ms")) << s;
  EXPECT_TRUE(has_line(s, "    75.000%      1.00ms")) << s;
  EXPECT_TRUE(has_line(s, "    90.000%      2.01ms")) << s;
  EXPECT_TRUE(has_line(s, "    99.000%     10.03ms")) << s;
  EXPECT_TRUE(has_line(s, "    99.900%    100.14ms")) << s;
  EXPECT_TRUE(has_line(s, "    99.990%       1.00s")) << s;
  EXPECT_TRUE(has_line(s, "   100.000%       1.00s  (max)")) << s;
  EXPECT_EQ(s.find("longer than"), std::string::npos) << "no overflow\n" << s;
}

TEST(Report, SummaryNotesRepliesBeyondTheHistogramRange) {
  Results r = sample_results();
  phase(r, Phase::accept).record(90'000 * kMs);  // 90 s, above the 60 s range
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s, "   100.000%      90.00s  (max)")) << s;
  EXPECT_TRUE(has_line(s, "  1 replies took longer than 60.00s, the histogram's range")) << s;
}

TEST(Report, SummaryHeaderPhasesCountsAndCpu) {
  const Results r = sample_results();
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s, "ringmta-loadgen run r20240102T030405-77")) << s;
  EXPECT_TRUE(has_line(
      s, "  target 127.0.0.1:2525, open loop at 500 msg/s, 2 threads, 20 connections at most"))
      << s;
  EXPECT_TRUE(has_line(s, "  measured 2.00s after 1.00s of warm-up, size 1024, seed 9")) << s;
  EXPECT_TRUE(has_line(s, "  Phase               p50        p99        max      count")) << s;
  EXPECT_TRUE(has_line(s, "  connect         50.17us    80.00us    80.00us         21")) << s;
  EXPECT_TRUE(has_line(s, "  banner                -          -          -          0")) << s;
  EXPECT_TRUE(has_line(s, "  envelope       301.06us   301.06us   301.06us          1")) << s;
  EXPECT_TRUE(has_line(s, "  transaction      2.01ms     2.01ms     2.01ms      10000")) << s;
  EXPECT_EQ(s.find("  accept  "), std::string::npos) << "accept has its own table\n" << s;
  EXPECT_TRUE(has_line(s, "  Throughput   5000.00 accepted msg/s (10000 in 2.00s), 4.88 MiB/s"))
      << s;
  EXPECT_TRUE(has_line(s,
                       "  Outcomes     started 10003, accepted 10000, tempfail 1, permfail 1, "
                       "errors 1 (and 480 in the warm-up)"))
      << s;
  EXPECT_TRUE(has_line(s, "  Recipients   accepted 10000, rejected 2")) << s;
  EXPECT_TRUE(has_line(s, "  Replies      250 2.0.0: 10000, 451 4.3.0: 1, 554 5.6.0: 1")) << s;
  EXPECT_TRUE(has_line(s, "  Conn errors  reset 1, reply_timeout 2")) << s;
  EXPECT_TRUE(has_line(s, "  Connections  21 opened; 10003 transactions pipelined, 0 with BDAT"))
      << s;
  EXPECT_TRUE(has_line(s,
                       "  Waits        3 messages waited for a free connection (longest 2.50ms; "
                       "raise --connections)"))
      << s;
  // 0.9 s of CPU over 3 s: 30% of one core, 15% of two threads.
  EXPECT_TRUE(has_line(s,
                       "  Loadgen CPU  0.90s (user 0.60s + system 0.30s) = 30.0% of one core, "
                       "15.0% of 2 threads"))
      << s;
  EXPECT_EQ(s.find("saturated"), std::string::npos) << s;
}

TEST(Report, SummaryOfAClosedLoopRunWithoutAnswers) {
  Results r;
  r.run_id = "x";
  r.target = "127.0.0.1:2525";
  r.mode = "closed";
  r.threads = 1;
  r.connections = 50;
  r.size_spec = "1024";
  r.duration_s = 10;
  r.conn_errors[static_cast<std::size_t>(ConnError::refused)] = 50;
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s, "  target 127.0.0.1:2525, closed loop, 1 thread, 50 connections")) << s;
  EXPECT_TRUE(has_line(s, "  measured 10.00s, size 1024, seed 0")) << s;
  EXPECT_TRUE(has_line(s, "  Accept latency: no message was answered after the warm-up")) << s;
  EXPECT_TRUE(has_line(s, "  Replies      none")) << s;
  EXPECT_TRUE(has_line(s, "  Conn errors  refused 50")) << s;
  EXPECT_EQ(s.find("Waits"), std::string::npos) << "open loop only\n" << s;
  EXPECT_TRUE(has_line(s, "  Throughput   0.00 accepted msg/s (0 in 10.00s), 0.00 MiB/s")) << s;
}

TEST(Report, SaturatedLoadgenIsFlagged) {
  Results r = sample_results();
  r.threads = 1;
  r.cpu_user_s = 2.0;
  r.cpu_system_s = 0.85;  // 2.85 s of 3 s: 95% of the one thread
  const CpuUse c = cpu_use(r);
  EXPECT_DOUBLE_EQ(c.total_s, 2.85);
  EXPECT_DOUBLE_EQ(c.wall_s, 3.0);
  EXPECT_NEAR(c.one_core_pct, 95.0, 1e-9);
  EXPECT_NEAR(c.capacity_pct, 95.0, 1e-9);
  EXPECT_TRUE(c.saturated);
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s,
                       "  WARNING: loadgen saturated (95% of its threads' capacity): these "
                       "figures may measure the loadgen, not the server; add --threads or lower "
                       "the load"))
      << s;
  // The same CPU over two threads is under half their capacity.
  r.threads = 2;
  EXPECT_FALSE(cpu_use(r).saturated);
  EXPECT_EQ(summary(r).find("saturated"), std::string::npos);
}

TEST(Report, TlsHandshakesAndTheirCpuTime) {
  Results r = sample_results();
  r.tls_handshakes = 21;
  r.tls_resumed = 20;
  r.tls_handshake_cpu_ns = 12'345'678;
  const std::string s = summary(r);
  EXPECT_TRUE(has_line(s,
                       "  Connections  21 opened; 10003 transactions pipelined, 0 with BDAT; 21 "
                       "TLS handshakes, 20 resumed, 0.012s CPU in handshakes"))
      << s;
  const Json c = json_of(r)["counts"];
  EXPECT_EQ(c["tls_handshakes"], 21);
  EXPECT_EQ(c["tls_handshake_cpu_ns"], 12'345'678);
}

TEST(Report, JsonHasEveryFigure) {
  const Results r = sample_results();
  const Json j = json_of(r);
  EXPECT_EQ(j["schema"], "ringmta-loadgen/1");
  EXPECT_EQ(j["run_id"], "r20240102T030405-77");
  EXPECT_EQ(j["target"], "127.0.0.1:2525");
  EXPECT_EQ(j["mode"], "open");
  EXPECT_EQ(j["rate_msg_s"], 500.0);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["connections"], 20);
  EXPECT_EQ(j["size_spec"], "1024");
  EXPECT_EQ(j["seed"], 9);
  EXPECT_EQ(j["start_unix_ms"], 1'704'164'645'000ull);
  EXPECT_EQ(j["warmup_s"], 1.0);
  EXPECT_EQ(j["duration_s"], 2.0);
  EXPECT_EQ(j["throughput_msg_s"], 5000.0);
  EXPECT_EQ(j["max_connection_wait_ns"], 2'500'000);

  const Json& c = j["counts"];
  EXPECT_EQ(c["started"], 10003);
  EXPECT_EQ(c["accepted"], 10000);
  EXPECT_EQ(c["tempfail"], 1);
  EXPECT_EQ(c["permfail"], 1);
  EXPECT_EQ(c["errors"], 1);
  EXPECT_EQ(c["warmup_messages"], 480);
  EXPECT_EQ(c["recipients_accepted"], 10000);
  EXPECT_EQ(c["recipients_rejected"], 2);
  EXPECT_EQ(c["bytes_sent"], 10'240'000);
  EXPECT_EQ(c["connections_opened"], 21);
  EXPECT_EQ(c["pipelined_transactions"], 10003);
  EXPECT_EQ(c["bdat_transactions"], 0);
  EXPECT_EQ(c["tls_handshakes"], 0);
  EXPECT_EQ(c["tls_resumed"], 0);
  EXPECT_EQ(c["tls_handshake_cpu_ns"], 0);
  EXPECT_EQ(c["waited_for_connection"], 3);

  EXPECT_EQ(j["replies"], (Json{{"250 2.0.0", 10000}, {"451 4.3.0", 1}, {"554 5.6.0", 1}}));
  EXPECT_EQ(j["conn_errors"], (Json{{"refused", 0},
                                    {"connect_timeout", 0},
                                    {"reset", 1},
                                    {"closed", 0},
                                    {"reply_timeout", 2},
                                    {"tls", 0},
                                    {"auth", 0},
                                    {"protocol", 0},
                                    {"other", 0}}));

  const Json& cpu = j["cpu"];
  EXPECT_DOUBLE_EQ(cpu["user_s"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(cpu["system_s"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(cpu["total_s"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(cpu["wall_s"].get<double>(), 3.0);
  EXPECT_NEAR(cpu["one_core_pct"].get<double>(), 30.0, 1e-9);
  EXPECT_NEAR(cpu["capacity_pct"].get<double>(), 15.0, 1e-9);
  EXPECT_EQ(cpu["saturated"], false);
}

TEST(Report, JsonLatencyPerPhaseWithPercentilesAndBuckets) {
  const Results r = sample_results();
  const Json j = json_of(r);
  const Json& lat = j["latency"];
  for (const char* name : {"connect", "banner", "ehlo", "envelope", "accept", "transaction"}) {
    ASSERT_TRUE(lat.contains(name)) << name;
  }
  const stats::Histogram& h = r.latency[static_cast<std::size_t>(Phase::accept)];
  const Json& a = lat["accept"];
  EXPECT_EQ(a["count"], 10000);
  EXPECT_EQ(a["min_ns"], h.highest_equivalent(1 * kMs));
  EXPECT_EQ(a["max_ns"], 1'000 * kMs);
  EXPECT_DOUBLE_EQ(a["mean_ns"].get<double>(), h.mean());
  EXPECT_EQ(a["highest_ns"], 60'000 * kMs);
  EXPECT_EQ(a["overflow"], 0);
  const Json& p = a["percentiles_ns"];
  EXPECT_EQ(p.size(), 6u);
  EXPECT_EQ(p["50"], h.highest_equivalent(1 * kMs));
  EXPECT_EQ(p["75"], h.highest_equivalent(1 * kMs));
  EXPECT_EQ(p["90"], h.highest_equivalent(2 * kMs));
  EXPECT_EQ(p["99"], h.highest_equivalent(10 * kMs));
  EXPECT_EQ(p["99.9"], h.highest_equivalent(100 * kMs));
  EXPECT_EQ(p["99.99"], 1'000 * kMs);
  // Non-empty buckets only, in order, each [lower, upper, count], adding up to the count.
  const Json& b = a["buckets"];
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(b[0], (Json{h.lowest_equivalent(1 * kMs), h.highest_equivalent(1 * kMs), 8000}));
  EXPECT_EQ(b[1], (Json{h.lowest_equivalent(2 * kMs), h.highest_equivalent(2 * kMs), 1500}));
  EXPECT_EQ(b[2], (Json{h.lowest_equivalent(10 * kMs), h.highest_equivalent(10 * kMs), 450}));
  EXPECT_EQ(b[3], (Json{h.lowest_equivalent(100 * kMs), h.highest_equivalent(100 * kMs), 45}));
  EXPECT_EQ(b[4], (Json{h.lowest_equivalent(1'000 * kMs), h.highest_equivalent(1'000 * kMs), 5}));
  EXPECT_LE(b[4][0].get<std::uint64_t>(), 1'000 * kMs);
  EXPECT_GE(b[4][1].get<std::uint64_t>(), 1'000 * kMs);

  // An empty phase: count 0, no figures (null rather than a 0 that reads as a latency).
  const Json& banner = lat["banner"];
  EXPECT_EQ(banner["count"], 0);
  EXPECT_TRUE(banner["min_ns"].is_null());
  EXPECT_TRUE(banner["mean_ns"].is_null());
  EXPECT_TRUE(banner["max_ns"].is_null());
  EXPECT_TRUE(banner["percentiles_ns"]["99"].is_null());
  EXPECT_EQ(banner["buckets"], Json::array());

  const Json& con = lat["connect"];
  EXPECT_EQ(con["count"], 21);
  EXPECT_EQ(con["min_ns"], con["percentiles_ns"]["50"]);
  EXPECT_EQ(con["max_ns"], 80'000);
}

TEST(Report, JsonTimelineHasOneRowPerSecond) {
  const Results r = sample_results();
  const Json t = json_of(r)["timeline"];
  ASSERT_EQ(t.size(), 3u);
  const std::uint64_t p_1ms = r.timeline[1].accept_latency.value_at_percentile(50);
  EXPECT_EQ(t[0], (Json{{"second", 0},
                        {"accepted", 480},
                        {"tempfail", 0},
                        {"permfail", 0},
                        {"errors", 0},
                        {"p50_ns", p_1ms},
                        {"p99_ns", p_1ms}}));
  EXPECT_EQ(t[1]["second"], 1);
  EXPECT_EQ(t[1]["accepted"], 5000);
  EXPECT_EQ(t[1]["tempfail"], 1);
  // The coarse per-second histogram: within its ~6% of 1 ms.
  EXPECT_GE(t[1]["p50_ns"].get<std::uint64_t>(), 1 * kMs);
  EXPECT_LE(t[1]["p50_ns"].get<std::uint64_t>(), 1'070'000u);
  EXPECT_EQ(t[2]["second"], 2);
  EXPECT_EQ(t[2]["errors"], 1);
  EXPECT_TRUE(t[2]["p50_ns"].is_null());
  EXPECT_TRUE(t[2]["p99_ns"].is_null());
}

TEST(Report, JsonOfAnEmptyClosedLoopRunParses) {
  Results r;
  r.mode = "closed";
  const Json j = json_of(r);
  EXPECT_EQ(j["schema"], "ringmta-loadgen/1");
  EXPECT_TRUE(j["rate_msg_s"].is_null());
  EXPECT_EQ(j["throughput_msg_s"], 0.0);
  EXPECT_EQ(j["timeline"], Json::array());
  EXPECT_EQ(j["replies"], Json::object());
  EXPECT_EQ(j["cpu"]["one_core_pct"], 0.0);
}

TEST(Report, JsonKeepsOneHistogramOrTimelineRowPerLine) {
  // Committed reference results are diffed: buckets and rows must not explode into lines.
  std::ostringstream o;
  write_json(o, sample_results());
  const std::string s = o.str();
  EXPECT_NE(s.find("\n    {\"second\":1,\"accepted\":5000,"), std::string::npos) << s;
  EXPECT_NE(s.find("\n      \"buckets\": [["), std::string::npos) << s;
}

TEST(Report, ProgressLineHasFixedWidthFields) {
  EXPECT_EQ(progress_line(12, 998.4, 1'230'000, 4'560'000, 0),
            "    12s        998 accepted/s   p50    1.23ms   p99    4.56ms   errors 0         ");
  EXPECT_EQ(progress_line(3, 0, 0, 0, 7),
            "     3s          0 accepted/s   p50         -   p99         -   errors 7         ");
  EXPECT_EQ(progress_line(12, 998.4, 1'230'000, 4'560'000, 0).size(),
            progress_line(123456, 12345678, 900, 2'000'000'000, 123).size());
}

}  // namespace
}  // namespace ringmta::loadgen
